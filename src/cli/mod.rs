//! The `isobench` command line: `run` (the default), `bench`, `compare`.
//!
//! The binary parses these options and calls [`main`]; everything else lives in the library
//! so the tests drive the same code.

pub mod bench;
pub mod compare;
pub mod run;
pub mod subject_args;

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};

use crate::report::export::{Exporter, Table};
use crate::report::schema::Artifact;
use crate::report::{self, write};

/// What does isolation cost a web service? isobench runs the same small service natively,
/// in a Docker container and in a VM, checks it, and measures startup, memory, throughput
/// and latency side by side.
#[derive(Debug, Parser)]
#[command(version, about, long_about = None, propagate_version = true)]
pub struct Cli {
    /// What to do; without one, `run` with its defaults.
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run every available environment and compare them (the default).
    Run(run::RunArgs),
    /// Load one URL and report throughput and latency (the seed's benchmark.py).
    Bench(bench::BenchArgs),
    /// Build the comparison table from saved artifacts (`run` or `bench --output`).
    Compare(compare::CompareArgs),
}

/// Runs the parsed command line; errors are printed once, by the binary.
pub fn main(cli: Cli) -> anyhow::Result<ExitCode> {
    let command =
        cli.command
            .unwrap_or_else(|| match Cli::parse_from(["isobench", "run"]).command {
                Some(command) => command,
                None => unreachable!("`run` parses as a command"),
            });
    match command {
        Command::Run(args) => {
            let output_dir = args.output_dir.clone();
            let artifact = run::run(args)?;
            print!(
                "{}",
                Table.render(&artifact).context("rendering the table")?
            );
            eprintln!(
                "wrote {}/{{{},{},{}}}",
                output_dir.display(),
                write::JSON_FILE,
                write::MARKDOWN_FILE,
                write::HTML_FILE
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Bench(args) => bench::run(args),
        Command::Compare(args) => compare::run(args),
    }
}

/// Summarises the artifact as it stands and writes its JSON, markdown and HTML into `dir`,
/// each atomically, so an interrupt at any moment leaves the previous complete files.
pub fn write_outputs(artifact: &mut Artifact, dir: &Path) -> anyhow::Result<()> {
    artifact.summary = Some(report::summarize(artifact));
    report::write::report_files(dir, artifact)
        .with_context(|| format!("writing the report into {}", dir.display()))?;
    Ok(())
}

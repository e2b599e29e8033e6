//! The `isobench` command line: `run` (the default), `bench`, `compare`, `density`,
//! `doctor`.
//!
//! The binary parses these options and calls [`main`]; everything else lives in the library
//! so the tests drive the same code.
//!
//! Exit codes ([`exit`]):
//!
//! | code | meaning |
//! |---|---|
//! | 0 | every repetition of every environment succeeded; the outputs are written |
//! | 1 | the run finished and its outputs are written, but some repetitions failed (recorded in the artifact with the reason and the service's last log lines) or an environment failed every time and was dropped |
//! | 2 | the run could not go on: bad options, no environment could run, an error outside a repetition (the message says which); outputs written so far stay valid |
//! | 3 | the outputs could not be written (disk full, read-only or missing directory); files written before stay valid, nothing is left running |
//! | 4 | a `--check` failed (the run finished; its outcome is in the artifact's `checks`) |
//! | 130 / 143 | interrupted by SIGINT / SIGTERM; everything started was stopped, outputs written so far stay valid |
//!
//! `isobench doctor` exits 0 ([`exit::OK`]) when every rung can run (the VM under TCG
//! counts: it runs, and says so), 1 ([`exit::NOT_READY`]) when something a rung needs is
//! missing, and 2 when the check itself could not be done.

pub mod bench;
pub mod compare;
pub mod density;
pub mod doctor;
pub mod gate;
pub mod progress_lines;
pub mod run;
pub mod subject_args;

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};

use crate::artifact::Artifact;
use crate::render::write;
use crate::render::{Exporter, Table};

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
    /// Check what every environment needs on this machine, and print (never run) the
    /// commands that would set up what is missing.
    Doctor(doctor::DoctorArgs),
    /// How many instances fit per rung, and what one more costs: instances started one by
    /// one (memory fitted against N), then all at once.
    ///
    /// In each rung, instances start one at a time, each answering its health path before
    /// the next; after each, every live instance's memory (PSS of every host process it
    /// needs, the memory measure of `run`) and the host's MemTotal − MemAvailable are read
    /// and fitted against N: the fixed cost, the marginal cost of one more instance with its
    /// 95% interval, instances per GiB. Then as many start at once, timed until all answer.
    /// No instance starts if the host would keep less than the margin available; every
    /// instance of a rung is stopped before the next rung.
    ///
    /// Others' figures, for comparison (theirs, not measured here): gVisor publishes an empty
    /// sandbox at 23.7 MB against runc's 4.1 MB; Firecracker (NSDI'20) promises at most 5 MiB
    /// of VMM overhead per microVM and quotes about 150 microVMs started per second per
    /// host; LightVM (SOSP'17) packs thousands of unikernel VMs per host; Kata users report
    /// pods starting in about 2 s each when ten start together.
    Density(density::DensityArgs),
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
            let unsure = gate::UnsurePolicy::resolve(args.gate.unsure);
            let run::Finished {
                artifact,
                soak_failed,
            } = run::run(args)?;
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
            // A failed check is the gate's verdict and wins over a partial run's code.
            let checks = gate::report_checks(&artifact, unsure);
            let code = if checks != exit::OK {
                checks
            } else {
                run_exit_code(&artifact, soak_failed)
            };
            Ok(ExitCode::from(code))
        }
        Command::Bench(args) => bench::run(args),
        Command::Compare(args) => compare::run(args),
        Command::Doctor(args) => doctor::run(args),
        Command::Density(args) => density::run(args),
    }
}

/// Exit codes of `isobench` (see the module documentation).
pub mod exit {
    /// Everything succeeded.
    pub const OK: u8 = 0;
    /// Finished with failed repetitions or a dropped environment, recorded in the artifact.
    pub const PARTIAL: u8 = 1;
    /// `isobench doctor`: some rung cannot run on this machine (what it lacks is printed).
    pub const NOT_READY: u8 = 1;
    /// Could not go on.
    pub const ERROR: u8 = 2;
    /// The outputs could not be written.
    pub const OUTPUT: u8 = 3;
    /// A `--check` failed (the run itself finished).
    pub const CHECK_FAILED: u8 = crate::gate::EXIT_CHECK_FAILED;
    /// No `--check` failed, but one was UNSURE and `--unsure fail` (the default on CI).
    pub const CHECK_UNSURE: u8 = crate::gate::EXIT_CHECK_UNSURE;
    /// SIGINT (128 + 2).
    pub const INTERRUPTED: u8 = 130;
    /// SIGTERM (128 + 15).
    pub const TERMINATED: u8 = 143;
}

/// The exit code for a command that failed with `error`: [`exit::OUTPUT`] when an output
/// file could not be written, [`exit::ERROR`] otherwise.
pub fn exit_code(error: &anyhow::Error) -> u8 {
    if error.chain().any(|cause| cause.is::<write::WriteError>()) {
        exit::OUTPUT
    } else {
        exit::ERROR
    }
}

/// [`exit::PARTIAL`] when a finished run recorded a failure (a failed repetition) or its
/// soak failed, else [`exit::OK`].
pub fn run_exit_code(artifact: &Artifact, soak_failed: bool) -> u8 {
    let round_failed = artifact
        .environments
        .iter()
        .any(|env| env.rounds.iter().any(|round| round.failure.is_some()));
    if round_failed || soak_failed {
        exit::PARTIAL
    } else {
        exit::OK
    }
}

/// Name of the file [`check_output_dir`] writes and removes.
const WRITE_CHECK_FILE: &str = ".isobench-write-check";

/// Creates `dir` if needed and checks that a file can be written in it (and removes it), so
/// a read-only or full output directory is reported before anything is started.
pub fn check_output_dir(dir: &Path) -> anyhow::Result<()> {
    let io = |source| write::WriteError::Io {
        path: dir.to_owned(),
        source,
    };
    std::fs::create_dir_all(dir)
        .map_err(io)
        .with_context(|| format!("creating the output directory {}", dir.display()))?;
    let probe = dir.join(WRITE_CHECK_FILE);
    // Some bytes, not an empty file: a full file system still accepts an empty one.
    write::atomic(&probe, &[b'\n'; 4096])
        .with_context(|| format!("the output directory {} is not writable", dir.display()))?;
    std::fs::remove_file(&probe)
        .map_err(io)
        .with_context(|| format!("removing {}", probe.display()))?;
    Ok(())
}

/// Summarises the artifact as it stands, evaluates the checks, and writes its JSON, markdown
/// and HTML into `dir`, each atomically, so an interrupt at any moment leaves the previous
/// complete files.
pub fn write_outputs(
    artifact: &mut Artifact,
    dir: &Path,
    settings: &gate::ReportSettings,
) -> anyhow::Result<()> {
    settings.apply(artifact);
    write::report_files(dir, artifact)
        .with_context(|| format!("writing the report into {}", dir.display()))?;
    Ok(())
}

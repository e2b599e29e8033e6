//! The `isobench` command line: `run`, `bench`, `compare`.

pub mod bench;

/// isobench: what does isolation cost a web service?
#[derive(Debug, clap::Parser)]
#[command(version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Load one URL and report throughput and latency (the seed's benchmark.py).
    Bench(bench::BenchArgs),
}

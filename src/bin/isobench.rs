//! The `isobench` binary: parses the command line and calls the library; the one place that
//! prints an error chain and picks the exit code.

use std::process::ExitCode;

use clap::Parser as _;
use isobench::cli::{Cli, Command};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Bench(args) => isobench::cli::bench::run(args),
    };
    match result {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

//! `isobench-server`: the service under test, as one static binary for the native process,
//! the container (`FROM scratch`, PID 1) and the VM. Everything but option parsing and the
//! log setup lives in [`isobench::service::run`].

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;
use tracing_subscriber::EnvFilter;

fn main() -> ExitCode {
    let args = isobench::service::Args::parse();
    // Logs go to stderr so stdout carries only the `listening on` line.
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    match isobench::service::run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("isobench-server: {error:#}");
            ExitCode::FAILURE
        }
    }
}

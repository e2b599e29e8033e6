//! `isobench`: thin binary over [`isobench::cli`].

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    let cli = isobench::cli::Cli::parse();
    if let Err(error) = isobench::cleanup::install_signal_handlers() {
        eprintln!("isobench: warning: Ctrl-C will not clean up: {error}");
    }
    let outcome = isobench::cli::main(cli);
    isobench::cleanup::wait_if_interrupted();
    match outcome {
        Ok(code) => code,
        Err(error) => {
            eprintln!("isobench: error: {error:#}");
            ExitCode::from(isobench::cli::exit_code(&error))
        }
    }
}

//! The flags of `isobench run` that say *what* is measured: `--image` or `--binary`, its
//! `--port` and `--health` path, how long it may take to start, and which of the
//! container's hardening flags to relax for images that need it.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use crate::docker::Engine;
use crate::env::foreign::{ForeignRun, Hardening};
use crate::subject::{self, Subject, SubjectError};

/// Default bound on a foreign service's startup (spawn or boot to the first 2xx).
pub const DEFAULT_STARTUP_TIMEOUT: Duration = Duration::from_secs(60);

/// What to measure; without `--image` or `--binary`, isobench's own server.
#[derive(Debug, Clone, Default, Args)]
pub struct SubjectArgs {
    /// Measure this image from the local Docker engine (never pulled), e.g. `myapp:latest`:
    /// in a container, chrooted natively into its root filesystem, and as a VM's root.
    #[arg(long, value_name = "REFERENCE", conflicts_with = "binary")]
    pub image: Option<String>,
    /// Measure this static binary: run directly natively, wrapped `FROM scratch` elsewhere.
    #[arg(long, value_name = "PATH", requires = "port")]
    pub binary: Option<PathBuf>,
    /// An argument for `--binary` (repeat for several).
    #[arg(
        long = "binary-arg",
        value_name = "ARG",
        allow_hyphen_values = true,
        requires = "binary"
    )]
    pub binary_args: Vec<String>,
    /// The port the service listens on [default: the image's only exposed port].
    #[arg(long)]
    pub port: Option<u16>,
    /// The path that answers 2xx once the service is ready.
    #[arg(long, value_name = "PATH", default_value = subject::DEFAULT_HEALTH_PATH)]
    pub health: String,
    /// How long a foreign service may take from start to its first 2xx on `--health`.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "60s")]
    pub startup_timeout: Duration,
    /// Container: leave the root filesystem writable (for images that write outside their
    /// volumes); read-only by default.
    #[arg(long)]
    pub writable_root: bool,
    /// Container: keep Docker's default capabilities instead of dropping them all.
    #[arg(long)]
    pub keep_capabilities: bool,
    /// Container: allow gaining privileges (setuid binaries); no-new-privileges by default.
    #[arg(long)]
    pub allow_new_privileges: bool,
}

impl SubjectArgs {
    /// Whether a foreign service was asked for.
    pub fn is_foreign(&self) -> bool {
        self.image.is_some() || self.binary.is_some()
    }

    /// The container hardening these flags leave on.
    pub fn hardening(&self) -> Hardening {
        Hardening {
            read_only_root: !self.writable_root,
            drop_capabilities: !self.keep_capabilities,
            no_new_privileges: !self.allow_new_privileges,
        }
    }

    /// How foreign services are run: the startup bound and the container hardening; no data
    /// directory (a scenario file's `data_dir` adds one, [`crate::cli::run`]).
    pub fn foreign_run(&self) -> ForeignRun {
        ForeignRun {
            startup_timeout: self.startup_timeout,
            hardening: self.hardening(),
            data_dir: None,
        }
    }

    /// Resolves the subject: inspects the image (a missing one is an error naming it), or
    /// checks the binary.
    pub fn resolve(&self) -> Result<Subject, SubjectError> {
        if let Some(reference) = &self.image {
            let engine = Engine::connect().map_err(|error| {
                SubjectError::Engine(anyhow::anyhow!(
                    "--image needs a Docker engine to read {reference} from: {error}"
                ))
            })?;
            return subject::resolve_image(&engine, reference, self.port, Some(&self.health));
        }
        if let Some(path) = &self.binary {
            let port = self
                .port
                .ok_or_else(|| SubjectError::Engine(anyhow::anyhow!("--binary needs --port")))?;
            return subject::resolve_binary(
                path.clone(),
                self.binary_args.clone(),
                port,
                Some(&self.health),
            );
        }
        Ok(Subject::Own)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hardening_is_on_unless_turned_off() {
        let args = SubjectArgs::default();
        assert_eq!(args.hardening(), Hardening::default());
        let args = SubjectArgs {
            writable_root: true,
            ..SubjectArgs::default()
        };
        let hardening = args.hardening();
        assert!(!hardening.read_only_root && hardening.drop_capabilities);
        assert!(hardening.describe().starts_with("writable root filesystem"));
    }

    #[test]
    fn without_image_or_binary_the_subject_is_our_own_server() {
        let args = SubjectArgs::default();
        assert!(!args.is_foreign());
        assert_eq!(args.resolve().unwrap(), Subject::Own);
    }
}

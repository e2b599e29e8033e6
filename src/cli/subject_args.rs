//! The flags of `isobench run` that say *what* is measured: `--image` or `--binary`, its
//! `--port` and `--health` path, how long it may take to start, and which of the
//! container's hardening flags to relax for images that need it.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use crate::docker::Engine;
use crate::env::foreign::{ForeignRun, Hardening};
use crate::subject::scenario_file::{self, LoopKind, PathSpec, ScenarioSpec};
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

    /// How foreign services are run: the startup bound and the container hardening.
    pub fn foreign_run(&self) -> ForeignRun {
        ForeignRun {
            startup_timeout: self.startup_timeout,
            hardening: self.hardening(),
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

/// The scenarios `--scenarios` asks for: a TOML scenario file (one value ending in `.toml`,
/// or naming an existing file), or built-in names. Without any, isobench's own server gets
/// `health`, `mixed` and `fixed-rate`, and a foreign service `health` (closed loop on its
/// health path) and `fixed-rate` (open loop on it at `rate`); `mixed` needs isobench's
/// endpoints, so a foreign service gets it only from a file.
pub fn workloads(
    names: &[String],
    subject: &Subject,
    connections: usize,
    rate: f64,
) -> anyhow::Result<Vec<ScenarioSpec>> {
    if let [single] = names
        && (single.ends_with(".toml") || std::path::Path::new(single).is_file())
    {
        return Ok(scenario_file::load(std::path::Path::new(single))?);
    }
    let defaults: &[&str] = if subject.is_foreign() {
        &["health", "fixed-rate"]
    } else {
        &["health", "mixed", "fixed-rate"]
    };
    let names: Vec<&str> = if names.is_empty() {
        defaults.to_vec()
    } else {
        names.iter().map(|name| name.trim()).collect()
    };
    let health = subject.health_path().to_owned();
    let path = |path: &str, weight| PathSpec {
        path: path.into(),
        weight,
    };
    names
        .into_iter()
        .map(|name| {
            Ok(match name {
                "health" => ScenarioSpec {
                    name: "health".into(),
                    loop_kind: LoopKind::Closed,
                    connections,
                    rate: None,
                    status: 200,
                    paths: vec![path(&health, 1)],
                },
                "fixed-rate" => ScenarioSpec {
                    name: "fixed-rate".into(),
                    loop_kind: LoopKind::Open,
                    connections: scenario_file::DEFAULT_OPEN_CONNECTIONS,
                    rate: Some(rate),
                    status: 200,
                    paths: vec![path(&health, 1)],
                },
                "mixed" if !subject.is_foreign() => ScenarioSpec {
                    name: "mixed".into(),
                    loop_kind: LoopKind::Closed,
                    // Few connections: /memory and /parallel are heavy, and the service
                    // sheds load beyond its caps, which would measure the caps instead.
                    connections: 4,
                    rate: None,
                    status: 200,
                    paths: vec![
                        path("/health", 4),
                        path("/cpu", 3),
                        path("/memory?mb=8", 1),
                        path("/parallel?tasks=4&n=20000", 2),
                    ],
                },
                "mixed" => anyhow::bail!(
                    "--scenarios mixed sends isobench-server's endpoints; for {} give a scenario file (--scenarios my.toml)",
                    subject.name()
                ),
                other => anyhow::bail!(
                    "--scenarios: unknown scenario {other:?}; expected health, mixed, fixed-rate or a .toml scenario file"
                ),
            })
        })
        .collect()
}

/// The measurement protocol's plain scenario for `spec`.
pub fn to_scenario(spec: &ScenarioSpec) -> crate::measure::scenario::Scenario {
    crate::measure::scenario::Scenario {
        name: spec.name.clone(),
        paths: spec
            .paths
            .iter()
            .map(|p| crate::artifact::load::PathWeight {
                path: p.path.clone(),
                weight: p.weight,
            })
            .collect(),
        connections: spec.connections,
        rate_rps: spec.rate,
        expected_status: spec.status,
    }
}

/// The load generator's options for `spec` against `base_url`.
pub fn load_options(spec: &ScenarioSpec, base_url: &str) -> crate::load::LoadOptions {
    let mut options = crate::load::LoadOptions::new(base_url);
    options.connections = spec.connections;
    options.rate = spec.rate;
    options.scenario = spec
        .paths
        .iter()
        .map(|p| crate::artifact::load::PathWeight {
            path: p.path.clone(),
            weight: p.weight,
        })
        .collect();
    options
}

#[cfg(test)]
mod workload_tests {
    use super::*;
    use crate::subject::{ImageConfig, ImageSubject};

    fn foreign() -> Subject {
        Subject::Image(ImageSubject {
            image: ImageConfig {
                reference: "flask:1".into(),
                id: "sha256:00".into(),
                size_bytes: 1,
                entrypoint: vec![],
                cmd: vec!["gunicorn".into()],
                env: vec![],
                workdir: String::new(),
                user: String::new(),
                exposed_tcp_ports: vec![5000],
            },
            port: 5000,
            health_path: "/healthz".into(),
        })
    }

    #[test]
    fn foreign_services_default_to_health_and_fixed_rate_on_their_health_path() {
        let specs = workloads(&[], &foreign(), 50, 100.0).unwrap();
        let names: Vec<&str> = specs.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["health", "fixed-rate"]);
        assert!(specs.iter().all(|s| s.paths[0].path == "/healthz"));
        assert_eq!(specs[1].rate, Some(100.0));
        let own = workloads(&[], &Subject::Own, 50, 100.0).unwrap();
        assert_eq!(own.len(), 3);
        assert_eq!(own[0].paths[0].path, "/health");
    }

    #[test]
    fn mixed_and_unknown_names_are_errors_for_foreign_services() {
        let error = workloads(&["mixed".into()], &foreign(), 50, 1.0).unwrap_err();
        assert!(
            error.to_string().contains("give a scenario file"),
            "{error}"
        );
        let error = workloads(&["soak".into()], &Subject::Own, 50, 1.0).unwrap_err();
        assert!(
            error.to_string().contains("unknown scenario \"soak\""),
            "{error}"
        );
    }

    #[test]
    fn a_toml_value_is_read_as_a_scenario_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("s.toml");
        std::fs::write(
            &file,
            "[[scenario]]\nname = \"x\"\nloop = \"closed\"\npaths = [\"/\"]\nbogus = 1\n",
        )
        .unwrap();
        let error = workloads(&[file.display().to_string()], &foreign(), 50, 1.0).unwrap_err();
        assert!(
            error.to_string().contains("unknown field `bogus`"),
            "{error}"
        );
    }
}

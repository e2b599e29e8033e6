//! The OCI runtimes a Docker engine has registered (`docker info` → `Runtimes`), read but
//! never changed: isobench does not edit a user's daemon configuration (`.ci/run` registers
//! gVisor on CI machines).
//!
//! A runtime's configured arguments decide what a container under it really is — for gVisor
//! the platform (`--platform=ptrace|kvm|systrap`) and the network stack (`--network=sandbox`
//! for gVisor's own netstack, `host` for the kernel's stack of the namespace it runs in) — so
//! they are read here and named in the environment's label.

use std::path::Path;
use std::process::Command;

use anyhow::Context;
use bollard::models::{ContainerCreateBody, HostConfig};

use crate::cleanup::{self, Resource};
use crate::docker::{Engine, EngineRuntime};

/// Runtimes every engine has, which need no rung of their own.
const BUILTIN: [&str; 1] = ["runc"];

/// One runtime as the engine lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegisteredRuntime {
    /// The name containers select it by (`docker run --runtime NAME`).
    pub name: String,
    /// The runtime binary, as configured (may be a bare name looked up on PATH).
    pub path: String,
    /// Arguments the engine passes before every command.
    pub args: Vec<String>,
}

impl RegisteredRuntime {
    /// Whether this is gVisor's `runsc`, by name or by binary.
    pub fn is_gvisor(&self) -> bool {
        self.name == "runsc"
            || Path::new(&self.path).file_name() == Some(std::ffi::OsStr::new("runsc"))
    }

    /// Whether every engine has it (runc, containerd's shims): no rung of its own.
    pub fn is_builtin(&self) -> bool {
        BUILTIN.contains(&self.name.as_str()) || self.name.starts_with("io.containerd.")
    }

    /// The value of a configured `--flag=value` or `--flag value` argument.
    pub fn arg(&self, flag: &str) -> Option<&str> {
        let prefix = format!("{flag}=");
        self.args.iter().enumerate().find_map(|(i, arg)| {
            if let Some(value) = arg.strip_prefix(&prefix) {
                Some(value)
            } else if arg == flag {
                self.args.get(i + 1).map(String::as_str)
            } else {
                None
            }
        })
    }

    /// The first line of `<path> --version`, when the binary answers.
    pub fn version(&self) -> Option<String> {
        let output = Command::new(&self.path).arg("--version").output().ok()?;
        let text = String::from_utf8_lossy(&output.stdout);
        let line = text.lines().next()?.trim();
        (!line.is_empty()).then(|| line.to_owned())
    }

    /// `name (path args…)`, what a label shows.
    pub fn describe(&self) -> String {
        let mut words = vec![self.path.clone()];
        words.extend(self.args.iter().cloned());
        format!("{} ({})", self.name, words.join(" "))
    }
}

/// How a gVisor runtime is configured: what runs under it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GvisorConfig {
    /// How the sentry intercepts system calls: `ptrace`, `kvm`, `systrap`.
    pub platform: String,
    /// `sandbox` (gVisor's own netstack) or `host` (the kernel's stack of the container's
    /// network namespace), `none`.
    pub network: String,
}

impl GvisorConfig {
    /// Defaults of runsc releases of 2022 (Debian 12's): ptrace platform, netstack.
    pub fn of(runtime: &RegisteredRuntime) -> Self {
        Self {
            platform: runtime.arg("--platform").unwrap_or("ptrace").to_owned(),
            network: runtime.arg("--network").unwrap_or("sandbox").to_owned(),
        }
    }

    /// The network path in words.
    pub fn network_text(&self) -> String {
        match self.network.as_str() {
            "host" => "runsc --network=host: the host kernel's TCP stack inside the container's \
                       own network namespace (gVisor's netstack bypassed)"
                .to_owned(),
            "sandbox" => "gVisor's user-space netstack (runsc --network=sandbox)".to_owned(),
            other => format!("runsc --network={other}"),
        }
    }
}

/// The OCI runtimes `engine` has registered, sorted by name.
pub fn registered(engine: &Engine) -> anyhow::Result<Vec<RegisteredRuntime>> {
    Ok(from_info(engine.runtimes()?))
}

/// Starts one container of `image` with the engine's default runtime on `cpuset` and
/// removes it again, also on failure: what it leaves is the engine's parent cgroups,
/// which runc sets up on its first container (see [`super::ContainerEnv`]'s runtime
/// check). What the entrypoint does is irrelevant; it is removed at once.
pub fn start_and_remove_default_runtime(
    engine: &Engine,
    image: &str,
    cpuset: &str,
) -> anyhow::Result<()> {
    let body = ContainerCreateBody {
        image: Some(image.to_owned()),
        labels: Some(cleanup::owner_labels()),
        host_config: Some(HostConfig {
            cpuset_cpus: Some(cpuset.to_owned()),
            ..Default::default()
        }),
        ..Default::default()
    };
    let id = engine
        .create_container(body)
        .with_context(|| format!("creating a runc container from {image}"))?;
    let _registration = cleanup::register(Resource::Container(id.clone()));
    let started = engine
        .start_container(&id)
        .with_context(|| format!("starting a runc container from {image}"));
    let removed = engine.force_remove(&id);
    started?;
    removed
}

/// The engine's registered runtimes, sorted by name, from `docker info`'s `Runtimes`.
pub fn from_info(runtimes: impl IntoIterator<Item = EngineRuntime>) -> Vec<RegisteredRuntime> {
    let mut list: Vec<RegisteredRuntime> = runtimes
        .into_iter()
        .map(|engine| RegisteredRuntime {
            path: engine.path.unwrap_or_else(|| engine.name.clone()),
            name: engine.name,
            args: engine.args.unwrap_or_default(),
        })
        .collect();
    list.sort_by(|a, b| a.name.cmp(&b.name));
    list
}

#[cfg(test)]
mod tests {
    use super::*;

    fn runtime(name: &str, path: &str, args: &[&str]) -> RegisteredRuntime {
        RegisteredRuntime {
            name: name.into(),
            path: path.into(),
            args: args.iter().map(|a| a.to_string()).collect(),
        }
    }

    #[test]
    fn gvisor_is_recognised_by_name_or_binary() {
        assert!(runtime("runsc", "runsc", &[]).is_gvisor());
        assert!(runtime("gvisor", "/usr/bin/runsc", &[]).is_gvisor());
        assert!(!runtime("crun", "/usr/bin/crun", &[]).is_gvisor());
        assert!(runtime("runc", "runc", &[]).is_builtin());
        assert!(runtime("io.containerd.runc.v2", "x", &[]).is_builtin());
        assert!(!runtime("crun", "crun", &[]).is_builtin());
    }

    #[test]
    fn configured_arguments_decide_platform_and_network() {
        let configured = runtime(
            "runsc",
            "/usr/bin/runsc",
            &["--platform=ptrace", "--network", "host"],
        );
        assert_eq!(
            GvisorConfig::of(&configured),
            GvisorConfig {
                platform: "ptrace".into(),
                network: "host".into()
            }
        );
        let bare = runtime("runsc", "runsc", &[]);
        assert_eq!(GvisorConfig::of(&bare).network, "sandbox");
        assert_eq!(configured.arg("--debug"), None);
        assert!(
            GvisorConfig::of(&configured)
                .network_text()
                .contains("host kernel")
        );
    }

    #[test]
    fn info_entries_are_sorted_and_default_their_path() {
        let list = from_info([
            EngineRuntime {
                name: "runsc".to_owned(),
                path: Some("/usr/bin/runsc".to_owned()),
                args: None,
            },
            EngineRuntime {
                name: "crun".to_owned(),
                path: None,
                args: Some(vec!["--debug".to_owned()]),
            },
        ]);
        assert_eq!(list[0], runtime("crun", "crun", &["--debug"]));
        assert_eq!(list[1], runtime("runsc", "/usr/bin/runsc", &[]));
        assert_eq!(list[0].describe(), "crun (crun --debug)");
    }
}

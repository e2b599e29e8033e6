//! A running container: its address and startup, the engine's own timing points, its
//! resources (memory: the footprint of its shim's tree and docker-proxy; CPU: the cgroup's
//! files, else the engine's stats, plus docker-proxy), its logs, and its removal, also when
//! dropped.

use std::time::{Duration, Instant};

use anyhow::{Context, anyhow};
use testcontainers::{Container, GenericImage};

use crate::artifact::StartupPhase;
use crate::cleanup::Registration;
use crate::docker::Engine;
use crate::env::{EnvError, Instance, ResourceReading, logs};
use crate::probe::cgroup::Cgroup;
use crate::probe::container::ContainerReading;
use crate::probe::{process, tree};

/// What of a running container this process can see, found through its main process.
pub(super) struct Visible {
    /// The container's cgroup, for CPU readings in microseconds instead of the engine's stats
    /// (about a second per call).
    pub(super) cgroup: Option<Cgroup>,
    /// The host process whose tree holds the container: containerd's shim for it (the
    /// container's processes, gVisor's sandbox and gofer, are its descendants), else the
    /// main process itself.
    pub(super) root: u32,
    /// Whether `root` is the shim.
    pub(super) shim: bool,
}

/// The container's processes and cgroup as seen from here; `None` when its main process is
/// not visible (another PID namespace), and the engine's stats are read instead.
pub(super) fn visible(engine: &Engine, id: &str) -> Option<Visible> {
    let pid = u32::try_from(engine.inspect_container(id).ok()?.state?.pid?).ok()?;
    let cgroup = Cgroup::of_pid(pid)
        .ok()
        .filter(|cgroup| cgroup.read().is_ok());
    let shim = tree::parent_of(pid).ok().filter(|&parent| {
        // `comm` is the name cut at 15 bytes: `containerd-shim` for every shim version.
        std::fs::read_to_string(format!("/proc/{parent}/comm"))
            .is_ok_and(|comm| comm.starts_with("containerd-shim"))
    });
    Some(Visible {
        cgroup,
        root: shim.unwrap_or(pid),
        shim: shim.is_some(),
    })
}

/// What the memory figures count when they are not the shim's tree: the engine's working
/// set when the container's processes are not visible, its own tree when no shim is its
/// parent; `None` when they are the shim's tree.
pub(super) fn memory_fallback(visible: Option<&Visible>) -> Option<String> {
    match visible {
        None => Some(
            "the engine's working set (cgroup usage less inactive file cache): the container's \
             processes are not visible from here (another PID namespace), so their PSS cannot \
             be read; not comparable with the other environments' PSS"
                .to_owned(),
        ),
        Some(visible) if !visible.shim => Some(crate::probe::footprint::counts(
            "the container's main process and its tree: its parent is no containerd shim, so \
             no runtime process is counted",
        )),
        Some(_) => None,
    }
}

/// A running container; dropping it removes the container.
pub(super) struct ContainerInstance {
    /// Held while a foreign image on the host's network owns its port.
    pub(super) _port_lock: Option<std::fs::File>,
    pub(super) container: Option<Container<GenericImage>>,
    /// Docker's userland proxy for the published port, when the engine uses one.
    pub(super) proxy: Option<u32>,
    /// The container's processes and cgroup, when visible from here.
    pub(super) visible: Option<Visible>,
    /// The footprint of the shim's tree and docker-proxy, when visible.
    pub(super) footprint: Option<crate::probe::footprint::FootprintProbe>,
    pub(super) engine: Engine,
    pub(super) base_url: String,
    /// `/health`, or a foreign image's `--health`.
    pub(super) health_path: String,
    pub(super) startup: Duration,
    pub(super) startup_phases: Vec<StartupPhase>,
    pub(super) _registration: Registration,
    /// The bind-mounted data directory: removed after the container ([`Drop::drop`] runs
    /// before the fields drop).
    pub(super) _data_dir: Option<crate::env::data_dir::DataDir>,
}

/// An engine timestamp on the monotonic clock, through the wall clock read at the request:
/// the engine runs on this host and stamps with the same clock.
fn engine_instant(
    stamp: Option<time::OffsetDateTime>,
    requested: Instant,
    requested_wall: std::time::SystemTime,
) -> Option<Instant> {
    let wall = std::time::SystemTime::from(stamp?);
    let after = wall.duration_since(requested_wall).ok()?;
    requested.checked_add(after)
}

/// An RFC 3339 timestamp as the engine writes it (nanoseconds).
fn rfc3339(text: &str) -> Option<time::OffsetDateTime> {
    time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339).ok()
}

/// Engine API call and create (request → the engine's `Created`), runtime start (→
/// `State.StartedAt`: the process exec'd), then the service's own start and the first 200
/// through the published port.
pub(super) fn engine_phases(
    inspect: &bollard::models::ContainerInspectResponse,
    requested: Instant,
    requested_wall: std::time::SystemTime,
    first_200: Instant,
) -> Vec<StartupPhase> {
    let created = inspect.created;
    let started = inspect
        .state
        .as_ref()
        .and_then(|s| s.started_at.as_deref())
        .and_then(rfc3339);
    crate::env::startup_phases::contiguous(
        requested,
        &[
            (
                "engine api + create",
                engine_instant(created, requested, requested_wall),
            ),
            (
                "runtime start",
                engine_instant(started, requested, requested_wall),
            ),
            ("service start + first 200", Some(first_200)),
        ],
    )
}

impl ContainerInstance {
    fn id(&self) -> &str {
        self.container
            .as_ref()
            .map_or("", |container| container.id())
    }

    /// How the container ended, if it is no longer running: status, exit code, OOM kill.
    fn stopped(&self) -> Option<String> {
        let state = self.engine.inspect_container(self.id()).ok()?.state?;
        if state.running == Some(true) {
            return None;
        }
        Some(format!(
            "the container is no longer running: {}, exit code {}{}",
            state
                .status
                .map_or_else(|| "unknown status".to_owned(), |s| s.to_string()),
            state.exit_code.unwrap_or_default(),
            if state.oom_killed == Some(true) {
                ", killed by the kernel's OOM killer"
            } else {
                ""
            }
        ))
    }
}

impl Instance for ContainerInstance {
    fn base_url(&self) -> &str {
        &self.base_url
    }

    fn health_path(&self) -> &str {
        &self.health_path
    }

    fn startup(&self) -> Duration {
        self.startup
    }

    fn startup_phases(&self) -> Vec<StartupPhase> {
        self.startup_phases.clone()
    }

    fn resources(&self) -> Result<ResourceReading, EnvError> {
        let cgroup = self.visible.as_ref().and_then(|v| v.cgroup.as_ref());
        // CPU from the cgroup (nanoseconds) or the engine's stats; memory from the footprint
        // of the shim's tree, or the engine's working set when the processes are not visible.
        let read = || -> anyhow::Result<ResourceReading> {
            let mut reading = match cgroup {
                Some(cgroup) => {
                    let reading = cgroup.read().context("reading the container's cgroup")?;
                    ResourceReading {
                        memory_bytes: reading.memory_bytes,
                        cpu_seconds: reading.cpu_seconds,
                    }
                }
                None => {
                    let stats = self.engine.stats(self.id())?;
                    let reading =
                        ContainerReading::try_from(&stats).map_err(anyhow::Error::from)?;
                    ResourceReading {
                        memory_bytes: reading.memory_bytes,
                        cpu_seconds: reading.cpu_seconds,
                    }
                }
            };
            if let Some(footprint) = &self.footprint {
                reading.memory_bytes = footprint.read()?.pss_bytes;
            }
            Ok(reading)
        };
        // A stopped container has neither cgroup nor stats: say that, not what is missing.
        let mut total = read().map_err(|error| match self.stopped() {
            Some(stopped) => anyhow!(stopped),
            None => error,
        })?;
        if let Some(proxy) = self.proxy {
            total.cpu_seconds += process::cpu_seconds(proxy).context("reading docker-proxy")?;
        }
        Ok(total)
    }

    fn log_tail(&self, lines: usize) -> Vec<String> {
        let Some(container) = &self.container else {
            return Vec::new();
        };
        // The engine keeps the container's output; the server writes only its address to
        // stdout, so stdout first and then stderr is the order it was written in.
        let mut text =
            String::from_utf8_lossy(&container.stdout_to_vec().unwrap_or_default()).into_owned();
        text.push_str(&String::from_utf8_lossy(
            &container.stderr_to_vec().unwrap_or_default(),
        ));
        logs::last_lines(&text, lines)
    }

    fn stop(mut self: Box<Self>) -> Result<(), EnvError> {
        if let Some(container) = self.container.take() {
            container
                .rm()
                .context("removing the container")
                .map_err(EnvError::from)?;
        }
        Ok(())
    }
}

impl Drop for ContainerInstance {
    fn drop(&mut self) {
        if let Some(container) = self.container.take() {
            // testcontainers removes it on drop; force-remove too in case that failed.
            let id = container.id().to_owned();
            drop(container);
            let _ = self.engine.force_remove(&id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn engine_timestamps_become_contiguous_phases() {
        let requested = Instant::now();
        let wall = std::time::SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let inspect = bollard::models::ContainerInspectResponse {
            created: rfc3339("2023-11-14T22:13:20.050000000Z"),
            state: Some(bollard::models::ContainerState {
                started_at: Some("2023-11-14T22:13:20.300000000Z".into()),
                ..Default::default()
            }),
            ..Default::default()
        };
        let phases = engine_phases(
            &inspect,
            requested,
            wall,
            requested + Duration::from_millis(400),
        );
        let got: Vec<(&str, f64)> = phases
            .iter()
            .map(|p| (p.name.as_str(), p.duration_ms.round()))
            .collect();
        assert_eq!(
            got,
            [
                ("engine api + create", 50.0),
                ("runtime start", 250.0),
                ("service start + first 200", 100.0)
            ]
        );
        // Unparseable stamps merge into the last phase.
        let phases = engine_phases(
            &Default::default(),
            requested,
            wall,
            requested + Duration::from_millis(400),
        );
        assert_eq!(phases.len(), 1);
        assert_eq!(
            phases[0].name,
            "engine api + create + runtime start + service start + first 200"
        );
    }
}

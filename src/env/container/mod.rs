//! Container: the static server in a Docker container, started with testcontainers.
//!
//! The container gets the budget's cpuset and memory limit (no swap), runs as the image's
//! non-root user with a read-only root filesystem, every capability dropped and
//! no-new-privileges, and publishes its port on 127.0.0.1 only. Memory and CPU come from the
//! engine's stats ([`crate::probe::container`]).

pub mod engine;
pub mod image;
pub mod proxy;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow};
use bollard::models::PortBinding;
use testcontainers::core::IntoContainerPort;
use testcontainers::runners::SyncRunner;
use testcontainers::{Container, GenericImage, ImageExt};

use self::engine::Engine;
use self::image::BuiltImage;
use crate::env::cleanup::{self, CONTAINER_LABEL, OWNER_LABEL, Registration, Resource};
use crate::env::{Budget, EnvError, Environment, Instance, ResourceReading, health, server_binary};
use crate::probe::container::ContainerReading;
use crate::probe::process::ProcessProbe;
use crate::report::schema::{EnvKind, EnvironmentLabel, Preparation, StartupPhase};

/// The port the server listens on inside the container.
const SERVICE_PORT: u16 = 8080;
/// How long a container may take from start to its first 200.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(60);

/// The container environment.
pub struct ContainerEnv {
    budget: Budget,
    engine: Engine,
    engine_version: String,
    image: Option<BuiltImage>,
    /// How loopback traffic reaches the container, learnt at the first start.
    proxy_note: std::sync::Mutex<Option<String>>,
}

impl ContainerEnv {
    /// Connects to the local Docker engine; `Unavailable` when none answers.
    pub fn new(budget: Budget) -> Result<Self, EnvError> {
        let engine = Engine::connect()?;
        let engine_version = engine.describe()?;
        Ok(Self {
            budget,
            engine,
            engine_version,
            image: None,
            proxy_note: std::sync::Mutex::new(None),
        })
    }
}

impl Environment for ContainerEnv {
    fn name(&self) -> &str {
        "container"
    }

    fn prepare(&mut self) -> Result<Vec<Preparation>, EnvError> {
        let (server, built) = server_binary::static_server()?;
        let (image, imaged) = image::ensure_image(&self.engine, &server)?;
        self.image = Some(image);
        Ok(vec![built, imaged])
    }

    fn start(&self) -> Result<Box<dyn Instance>, EnvError> {
        let image = self
            .image
            .as_ref()
            .ok_or_else(|| anyhow!("the container environment was not prepared"))?;
        let started = Instant::now();
        let started_wall = std::time::SystemTime::now();
        let cpuset = self.budget.service_cpuset();
        let memory = self.budget.memory_limit_bytes as i64;
        let container = GenericImage::new(&image.repository, &image.tag)
            .with_label(CONTAINER_LABEL, "1")
            .with_label(OWNER_LABEL, std::process::id().to_string())
            .with_readonly_rootfs(true)
            .with_cap_drop("ALL")
            .with_security_opt("no-new-privileges")
            .with_startup_timeout(STARTUP_TIMEOUT)
            .with_host_config_modifier(move |host| {
                host.cpuset_cpus = Some(cpuset.clone());
                host.memory = Some(memory);
                host.memory_swap = Some(memory);
                // Publish on loopback only, on a port the engine picks.
                host.publish_all_ports = Some(false);
                host.port_bindings = Some(HashMap::from([(
                    format!("{SERVICE_PORT}/tcp"),
                    Some(vec![PortBinding {
                        host_ip: Some("127.0.0.1".into()),
                        host_port: Some(String::new()),
                    }]),
                )]));
            })
            .start()
            .with_context(|| format!("starting a container from {}", image.reference()))?;
        let registration = cleanup::register(Resource::Container(container.id().to_owned()));
        let port = container
            .get_host_port_ipv4(SERVICE_PORT.tcp())
            .context("reading the container's published port")?;
        let base_url = format!("http://127.0.0.1:{port}");
        let proxy = proxy::find(port);
        let note = match proxy.map(|pid| proxy::pin_all_threads(pid, &self.budget.service_cpus)) {
            Some(Ok(())) => "loopback traffic crosses docker-proxy, pinned to the service CPUs; its CPU time and memory are counted with the container's".to_owned(),
            Some(Err(error)) => format!("loopback traffic crosses docker-proxy, which could not be pinned ({error}); its CPU time and memory are counted with the container's"),
            None => "no docker-proxy serves the published port: the engine forwards loopback traffic in the kernel".to_owned(),
        };
        *self.proxy_note.lock().unwrap_or_else(|p| p.into_inner()) = Some(note);
        let startup = health::wait_until_healthy(&base_url, started, STARTUP_TIMEOUT, || {
            match container.is_running() {
                Ok(true) => Ok(()),
                _ => Err(anyhow!(
                    "the container exited during startup: {}",
                    String::from_utf8_lossy(&container.stderr_to_vec().unwrap_or_default())
                )),
            }
        })?;
        // Timing points from the engine's own record, read after the clock stopped.
        let startup_phases = self
            .engine
            .inspect_container(container.id())
            .map(|inspect| engine_phases(&inspect, started, started_wall, started + startup))
            .unwrap_or_default();
        Ok(Box::new(ContainerInstance {
            startup_phases,
            container: Some(container),
            proxy: proxy.map(ProcessProbe::new),
            engine: Engine::connect()?,
            base_url,
            startup,
            _registration: registration,
        }))
    }

    fn label(&self) -> EnvironmentLabel {
        let proxy_note = self
            .proxy_note
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        EnvironmentLabel {
            name: self.name().into(),
            kind: EnvKind::Container,
            runtime: self.engine_version.clone(),
            accel: None,
            service_cpus: self.budget.service_cpus.clone(),
            generator_cpus: self.budget.generator_cpus.clone(),
            memory_limit_bytes: Some(self.budget.memory_limit_bytes),
            kernel: None,
            image_size_bytes: self.image.as_ref().map(|image| image.size_bytes),
            detected: None,
            notes: vec![
                "memory is the cgroup working set (usage minus inactive file cache), as docker stats shows it".into(),
                "read-only root filesystem, all capabilities dropped, no-new-privileges, uid 65534".into(),
            ]
            .into_iter()
            .chain(proxy_note)
            .collect(),
            accel_attempts: Vec::new(),
        }
    }
}

/// A running container; dropping it removes the container.
struct ContainerInstance {
    container: Option<Container<GenericImage>>,
    /// Docker's userland proxy for the published port, when the engine uses one.
    proxy: Option<ProcessProbe>,
    engine: Engine,
    base_url: String,
    startup: Duration,
    startup_phases: Vec<StartupPhase>,
    _registration: Registration,
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
fn engine_phases(
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
    crate::env::phases::contiguous(
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
}

impl Instance for ContainerInstance {
    fn base_url(&self) -> &str {
        &self.base_url
    }

    fn startup(&self) -> Duration {
        self.startup
    }

    fn startup_phases(&self) -> Vec<StartupPhase> {
        self.startup_phases.clone()
    }

    fn resources(&self) -> Result<ResourceReading, EnvError> {
        let stats = self.engine.stats(self.id())?;
        let reading = ContainerReading::try_from(&stats).map_err(anyhow::Error::from)?;
        let mut total = ResourceReading {
            memory_bytes: reading.memory_bytes,
            peak_memory_bytes: reading.peak_memory_bytes,
            cpu_seconds: reading.cpu_seconds,
        };
        if let Some(proxy) = &self.proxy {
            let proxy = proxy.read().context("reading docker-proxy")?;
            total.memory_bytes += proxy.rss_bytes;
            total.peak_memory_bytes = total
                .peak_memory_bytes
                .map(|peak| peak + proxy.peak_rss_bytes.unwrap_or(proxy.rss_bytes));
            total.cpu_seconds += proxy.cpu_seconds;
        }
        Ok(total)
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

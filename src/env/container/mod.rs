//! Container: the static server in a Docker container, started with testcontainers.
//!
//! The container gets the budget's cpuset and memory limit (no swap), runs as the image's
//! non-root user with a read-only root filesystem, every capability dropped and
//! no-new-privileges. Memory and CPU come from the engine's stats
//! ([`crate::probe::container`]). One [`ContainerEnv`] is parameterized by a
//! [`ContainerSpec`] — network mode and OCI runtime — so the ladder's container rungs are the
//! same image and hardening with one thing changed:
//!
//! - `container`: Docker's bridge, the port published on 127.0.0.1 only (docker-proxy);
//! - `container-host`: `--network host`, the server bound to 127.0.0.1 on a free port;
//! - `gvisor`: the bridge setup under the engine's `runsc` runtime;
//! - `container-<runtime>`: the bridge setup under any other registered runtime (crun, kata…).
//!
//! Every rung runs a user's image instead when given a [`ForeignContainer`]: the image as
//! it is on the engine (never built, never pulled), its own port and health path, the same
//! budget, and the hardening on unless the user turned a part of it off.

pub mod image;
pub mod listeners;
pub mod proxy;
pub mod runtimes;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow};
use bollard::models::PortBinding;
use testcontainers::core::IntoContainerPort;
use testcontainers::runners::SyncRunner;
use testcontainers::{Container, GenericImage, ImageExt};

use self::image::BuiltImage;
use self::runtimes::{GvisorConfig, RegisteredRuntime};
use crate::artifact::{EnvKind, EnvironmentLabel, Preparation, Rung, StartupPhase, position};
use crate::cleanup::{self, CONTAINER_LABEL, OWNER_LABEL, Registration, Resource};
use crate::docker::Engine;
use crate::env::foreign::ForeignRun;
use crate::env::{Budget, EnvError, Environment, Instance, ResourceReading, health, logs};
use crate::probe::cgroup::Cgroup;
use crate::probe::container::ContainerReading;
use crate::probe::process::ProcessProbe;
use crate::subject::ImageSubject;
use crate::subject::server_binary;

/// The port the server listens on inside the container on a bridge network.
const SERVICE_PORT: u16 = 8080;
/// How long a container may take from start to its first 200.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(60);

/// How the container is attached to the network.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NetworkMode {
    /// Docker's default bridge; the port is published on 127.0.0.1.
    Bridge,
    /// The host's network namespace (`--network host`); the server binds 127.0.0.1.
    Host,
}

/// What distinguishes one container rung from another.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerSpec {
    /// The environment's name: `container`, `container-host`, `gvisor`, `container-crun`.
    pub name: String,
    /// Bridge or host network.
    pub network: NetworkMode,
    /// The OCI runtime; `None` is the engine's default (runc).
    pub runtime: Option<RegisteredRuntime>,
}

impl ContainerSpec {
    /// The default container: bridge network, default runtime.
    pub fn bridge() -> Self {
        Self {
            name: "container".into(),
            network: NetworkMode::Bridge,
            runtime: None,
        }
    }

    /// The same container on the host's network.
    pub fn host_network() -> Self {
        Self {
            name: "container-host".into(),
            network: NetworkMode::Host,
            runtime: None,
        }
    }

    /// The bridge container under a registered runtime: `gvisor` for runsc,
    /// `container-<name>` otherwise.
    pub fn with_runtime(runtime: RegisteredRuntime) -> Self {
        let name = if runtime.is_gvisor() {
            "gvisor".to_owned()
        } else {
            format!("container-{}", runtime.name)
        };
        Self {
            name,
            network: NetworkMode::Bridge,
            runtime: Some(runtime),
        }
    }

    /// This rung's place on the ladder and what it adds.
    fn rung(&self) -> Rung {
        match (&self.runtime, self.network) {
            (None, NetworkMode::Host) => Rung::new(
                position::CONTAINER_HOST_NETWORK,
                "namespaces (pid, mount, ipc, uts; not network), cgroup limits and the \
                 hardening, runc: Docker with --network host, no bridge, NAT or proxy",
                Some("native"),
            ),
            (None, NetworkMode::Bridge) => Rung::new(
                position::CONTAINER_BRIDGE,
                "Docker's network path: a network namespace behind the bridge and NAT, and \
                 docker-proxy carrying loopback traffic to the published port",
                Some("container-host"),
            ),
            (Some(runtime), _) if runtime.is_gvisor() => {
                let config = GvisorConfig::of(runtime);
                Rung::new(
                    position::SANDBOX_RUNTIME,
                    &format!(
                        "gVisor's syscall interposition: a user-space kernel (runsc, platform \
                         {}) between the server and the host; network: {}",
                        config.platform,
                        config.network_text()
                    ),
                    Some("container"),
                )
            }
            (Some(runtime), _) => Rung::new(
                position::SANDBOX_RUNTIME,
                &format!("the OCI runtime {} in place of runc", runtime.describe()),
                Some("container"),
            ),
        }
    }
}

/// A user's image to run instead of isobench's own server, and how.
#[derive(Debug, Clone)]
pub struct ForeignContainer {
    /// The image, its port and health path.
    pub image: ImageSubject,
    /// Startup bound and hardening.
    pub run: ForeignRun,
}

impl ForeignContainer {
    /// `(repository, tag)` of the image reference, as testcontainers wants it.
    fn repository_and_tag(&self) -> (String, String) {
        split_reference(&self.image.image.reference)
    }
}

/// `myapp:1.0` → (`myapp`, `1.0`); `registry:5000/app` → (`registry:5000/app`, `latest`).
fn split_reference(reference: &str) -> (String, String) {
    match reference.rsplit_once(':') {
        Some((name, tag)) if !tag.contains('/') => (name.to_owned(), tag.to_owned()),
        _ => (reference.to_owned(), "latest".to_owned()),
    }
}

/// A container environment.
pub struct ContainerEnv {
    budget: Budget,
    spec: ContainerSpec,
    engine: Engine,
    engine_version: String,
    /// `runsc version …` and the like, for the label.
    runtime_version: Option<String>,
    image: Option<BuiltImage>,
    /// How loopback traffic reaches the container, learnt at the first start.
    proxy_note: std::sync::Mutex<Option<String>>,
    /// A user's image run in place of the server.
    foreign: Option<ForeignContainer>,
}

impl ContainerEnv {
    /// This environment running a user's image instead of isobench's own server.
    pub fn with_foreign(mut self, foreign: ForeignContainer) -> Self {
        self.foreign = Some(foreign);
        self
    }

    /// The `container` rung (bridge, default runtime); `Unavailable` when no engine answers.
    pub fn new(budget: Budget) -> Result<Self, EnvError> {
        Self::with_spec(budget, ContainerSpec::bridge())
    }

    /// The `container-host` rung: the same container on the host's network.
    pub fn host_network(budget: Budget) -> Result<Self, EnvError> {
        Self::with_spec(budget, ContainerSpec::host_network())
    }

    /// The `gvisor` rung: `Unavailable` unless the engine has a runsc runtime registered.
    pub fn gvisor(budget: Budget) -> Result<Self, EnvError> {
        let engine = connect("gvisor")?;
        let registered = runtimes::registered(&engine)?;
        let Some(runsc) = registered.iter().find(|r| r.is_gvisor()) else {
            let names: Vec<&str> = registered.iter().map(|r| r.name.as_str()).collect();
            return Err(EnvError::Unavailable {
                env: "gvisor".into(),
                reason: format!(
                    "the Docker engine has no runsc runtime registered (it lists: {}); \
                     register one in /etc/docker/daemon.json as .ci/run does",
                    names.join(", ")
                ),
            });
        };
        Self::with_spec(budget, ContainerSpec::with_runtime(runsc.clone()))
    }

    /// One environment per registered runtime that is neither built in nor gVisor (crun,
    /// kata, …); none when no engine answers.
    pub fn other_runtimes(budget: &Budget) -> Vec<Result<Self, EnvError>> {
        let Ok(engine) = Engine::connect() else {
            return Vec::new();
        };
        match runtimes::registered(&engine) {
            Ok(registered) => registered
                .into_iter()
                .filter(|r| !r.is_builtin() && !r.is_gvisor())
                .map(|r| Self::with_spec(budget.clone(), ContainerSpec::with_runtime(r)))
                .collect(),
            Err(error) => vec![Err(EnvError::Other(error))],
        }
    }

    /// A container environment of any spec.
    pub fn with_spec(budget: Budget, spec: ContainerSpec) -> Result<Self, EnvError> {
        let engine = connect(&spec.name)?;
        let engine_version = engine.describe()?;
        let runtime_version = spec.runtime.as_ref().and_then(RegisteredRuntime::version);
        Ok(Self {
            budget,
            spec,
            engine,
            engine_version,
            runtime_version,
            image: None,
            proxy_note: std::sync::Mutex::new(None),
            foreign: None,
        })
    }

    /// What distinguishes this environment.
    pub fn spec(&self) -> &ContainerSpec {
        &self.spec
    }

    /// A runtime other than the default must show it can start a container here before it
    /// counts as available: crun without cgroup v2, a KVM platform without working KVM fail
    /// here, and become an "unavailable: reason" line instead of a failed round.
    fn check_runtime(&self) -> Result<Option<Preparation>, EnvError> {
        if self.spec.runtime.is_none() {
            return Ok(None);
        }
        let started = Instant::now();
        let unavailable = |error: EnvError| EnvError::Unavailable {
            env: self.spec.name.clone(),
            reason: format!("{error:#}"),
        };
        let mut what = "runtime check (one container started and removed)".to_owned();
        let instance = match self.start() {
            Err(error) if format!("{error:#}").contains("cpuset") => {
                // On cgroup v1, Debian 12's runsc (2022) creates the engine's parent cgroup
                // (`cpuset/docker`) with no CPUs when no runc container has made it yet, and
                // then cannot give its own container any: "write …/cpuset.cpus: permission
                // denied" on a freshly started engine. runc fills the parent from its own
                // parent on its first container, so one runc container is started first.
                let image = self.image.as_ref().map(BuiltImage::reference);
                let image = image.ok_or_else(|| unavailable(error))?;
                runtimes::start_and_remove_default_runtime(
                    &self.engine,
                    &image,
                    &self.budget.service_cpuset(),
                )
                .map_err(|e| unavailable(e.into()))?;
                what.push_str(
                    ", after one runc container set up the engine's parent cpuset cgroup, \
                     which this runtime leaves empty",
                );
                self.start()
            }
            other => other,
        }
        .map_err(unavailable)?;
        instance.stop().map_err(unavailable)?;
        Ok(Some(Preparation {
            what,
            seconds: started.elapsed().as_secs_f64(),
            cached: false,
        }))
    }
}

/// Connects to the engine, naming `env` when it cannot.
fn connect(env: &str) -> Result<Engine, EnvError> {
    Engine::connect().map_err(|error| EnvError::Unavailable {
        env: env.into(),
        reason: error.reason,
    })
}

/// A container name unique to this process and start: `isobench-<pid>-<n>`.
fn container_name() -> String {
    static STARTS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = STARTS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("isobench-{}-{n}", std::process::id())
}

/// A port nothing listens on now on 127.0.0.1, for a server on the host's network.
fn free_loopback_port() -> anyhow::Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").context("finding a free port")?;
    Ok(listener.local_addr()?.port())
}

impl Environment for ContainerEnv {
    fn name(&self) -> &str {
        &self.spec.name
    }

    fn prepare(&mut self) -> Result<Vec<Preparation>, EnvError> {
        if let Some(foreign) = &self.foreign {
            // The user's image as it is: nothing to build.
            let (repository, tag) = foreign.repository_and_tag();
            self.image = Some(BuiltImage {
                repository,
                tag,
                size_bytes: foreign.image.image.size_bytes,
            });
            return Ok(self.check_runtime()?.into_iter().collect());
        }
        let (server, built) = server_binary::static_server()?;
        let (image, imaged) = image::ensure_image(&self.engine, &server)?;
        self.image = Some(image);
        Ok([built, imaged]
            .into_iter()
            .chain(self.check_runtime()?)
            .collect())
    }

    fn start(&self) -> Result<Box<dyn Instance>, EnvError> {
        let image = self
            .image
            .as_ref()
            .ok_or_else(|| anyhow!("the {} environment was not prepared", self.spec.name))?;
        let started = Instant::now();
        let started_wall = std::time::SystemTime::now();
        let cpuset = self.budget.service_cpuset();
        let memory = self.budget.memory_limit_bytes as i64;
        let network = self.spec.network;
        let runtime = self.spec.runtime.as_ref().map(|r| r.name.clone());
        let foreign = self.foreign.as_ref();
        let service_port = foreign.map_or(SERVICE_PORT, |f| f.image.port);
        let hardening = foreign.map(|f| f.run.hardening).unwrap_or_default();
        let startup_timeout = foreign.map_or(STARTUP_TIMEOUT, |f| f.run.startup_timeout);
        // A foreign image binds its own fixed port; on the host's network that is the host's
        // port, taken under the same per-port lock as the native chroot.
        let mut port_lock = None;
        let host_port = match (network, foreign) {
            (NetworkMode::Host, Some(_)) => {
                port_lock = Some(crate::env::native_foreign::lock_port(
                    service_port,
                    startup_timeout,
                )?);
                crate::env::native_foreign::ensure_port_free(service_port)?;
                Some(service_port)
            }
            (NetworkMode::Host, None) => Some(free_loopback_port()?),
            (NetworkMode::Bridge, _) => None,
        };
        let mut base = GenericImage::new(&image.repository, &image.tag);
        if foreign.is_some() {
            // Published even when the image does not EXPOSE it (the user's --port wins), as
            // `docker run -p` does.
            base = base.with_exposed_port(service_port.tcp());
        }
        let mut request = base
            .with_label(CONTAINER_LABEL, "1")
            .with_label(OWNER_LABEL, std::process::id().to_string())
            .with_readonly_rootfs(hardening.read_only_root)
            .with_startup_timeout(startup_timeout);
        if foreign.is_none() {
            // The service derives its /memory caps from this (it could read the cgroup too;
            // saying it is what every environment does alike).
            request = request.with_env_var("ISOBENCH_MEMORY_LIMIT_MB", (memory >> 20).to_string());
        }
        if hardening.drop_capabilities {
            request = request.with_cap_drop("ALL");
        }
        if hardening.no_new_privileges {
            request = request.with_security_opt("no-new-privileges");
        }
        let request = request.with_host_config_modifier(move |host| {
            host.cpuset_cpus = Some(cpuset.clone());
            host.memory = Some(memory);
            host.memory_swap = Some(memory);
            host.runtime = runtime.clone();
            host.publish_all_ports = Some(false);
            match network {
                // Publish on loopback only, on a port the engine picks.
                NetworkMode::Bridge => {
                    host.port_bindings = Some(HashMap::from([(
                        format!("{service_port}/tcp"),
                        Some(vec![PortBinding {
                            host_ip: Some("127.0.0.1".into()),
                            host_port: Some(String::new()),
                        }]),
                    )]));
                }
                NetworkMode::Host => host.network_mode = Some("host".into()),
            }
        });
        let mut request = request;
        if let Some(port) = host_port.filter(|_| foreign.is_none()) {
            // The image's command binds 0.0.0.0, which on the host's network would be every
            // interface of the machine.
            let port = port.to_string();
            request = request.with_cmd(["--bind", "127.0.0.1", "--port", port.as_str()]);
        }
        // Named, so that a container the engine created but could not start (a runtime that
        // refuses this machine's cgroups, say) can be found and removed: testcontainers
        // returns the error without it, and it would stay behind in the `Created` state.
        let name = container_name();
        let request = request.with_container_name(&name);
        let starting = cleanup::starting();
        let container = match request.start() {
            Ok(container) => container,
            Err(error) => {
                let _ = self.engine.force_remove(&name);
                return Err(anyhow::Error::new(error)
                    .context(format!("starting a container from {}", image.reference()))
                    .into());
            }
        };
        let registration = cleanup::register(Resource::Container(container.id().to_owned()));
        drop(starting);
        cleanup::pause_point(cleanup::Phase::Starting);
        let port = match host_port {
            Some(port) => port,
            None => match container.get_host_port_ipv4(service_port.tcp()) {
                Ok(port) => port,
                // A container that already exited has no published port: say why it exited.
                Err(_) if !container.is_running().unwrap_or(false) => {
                    return Err(anyhow!(
                        "the container exited during startup: {}",
                        String::from_utf8_lossy(&container.stderr_to_vec().unwrap_or_default())
                    )
                    .into());
                }
                Err(error) => {
                    return Err(anyhow::Error::new(error)
                        .context("reading the container's published port")
                        .into());
                }
            },
        };
        let base_url = format!("http://127.0.0.1:{port}");
        let alive = || match container.is_running() {
            Ok(true) => Ok(()),
            _ => Err(anyhow!(
                "the container exited during startup: {}",
                String::from_utf8_lossy(&container.stderr_to_vec().unwrap_or_default())
            )),
        };
        let startup = match foreign {
            Some(foreign) => health::wait_until_ready(
                &base_url,
                &foreign.image.health_path,
                started,
                startup_timeout,
                alive,
            ),
            None => health::wait_until_healthy(&base_url, started, STARTUP_TIMEOUT, alive),
        }?;
        // Found and pinned after the first 200, so isobench's own /proc scan is not counted
        // as the container's startup.
        let proxy = host_port.is_none().then(|| proxy::find(port)).flatten();
        let note = match (network, proxy.map(|pid| proxy::pin_all_threads(pid, &self.budget.service_cpus))) {
            (NetworkMode::Host, _) => "host network: the server binds 127.0.0.1 in the host's network namespace; no bridge, NAT or docker-proxy".to_owned(),
            (_, Some(Ok(()))) => "loopback traffic crosses docker-proxy, pinned to the service CPUs; its CPU time and memory are counted with the container's".to_owned(),
            (_, Some(Err(error))) => format!("loopback traffic crosses docker-proxy, which could not be pinned ({error}); its CPU time and memory are counted with the container's"),
            (_, None) => "no docker-proxy serves the published port: the engine forwards loopback traffic in the kernel".to_owned(),
        };
        *self.proxy_note.lock().unwrap_or_else(|p| p.into_inner()) = Some(note);
        // Timing points from the engine's own record, read after the clock stopped.
        let startup_phases = self
            .engine
            .inspect_container(container.id())
            .map(|inspect| engine_phases(&inspect, started, started_wall, started + startup))
            .unwrap_or_default();
        let engine = Engine::connect()?;
        let cgroup = cgroup_of(&engine, container.id());
        Ok(Box::new(ContainerInstance {
            _port_lock: port_lock,
            startup_phases,
            container: Some(container),
            proxy: proxy.map(ProcessProbe::new),
            cgroup,
            engine,
            base_url,
            health_path: foreign
                .map_or_else(|| "/health".to_owned(), |f| f.image.health_path.clone()),
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
        let runtime = match &self.spec.runtime {
            None => self.engine_version.clone(),
            Some(registered) => format!(
                "{}, runtime {}{}",
                self.engine_version,
                registered.describe(),
                self.runtime_version
                    .as_ref()
                    .map(|v| format!(", {v}"))
                    .unwrap_or_default()
            ),
        };
        let memory_note = match &self.spec.runtime {
            Some(registered) if registered.is_gvisor() => {
                "memory is the cgroup working set of the whole sandbox (sentry, gofer and the server), as docker stats shows it"
            }
            _ => {
                "memory is the cgroup working set (usage minus inactive file cache), as docker stats shows it"
            }
        };
        EnvironmentLabel {
            name: self.name().into(),
            kind: EnvKind::Container,
            runtime,
            accel: None,
            service_cpus: self.budget.service_cpus.clone(),
            generator_cpus: self.budget.generator_cpus.clone(),
            memory_limit_bytes: Some(self.budget.memory_limit_bytes),
            kernel: None,
            image_size_bytes: self.image.as_ref().map(|image| image.size_bytes),
            detected: None,
            notes: match &self.foreign {
                None => vec![
                    memory_note.into(),
                    "read-only root filesystem, all capabilities dropped, no-new-privileges, uid 65534".into(),
                ],
                Some(foreign) => vec![
                    memory_note.into(),
                    foreign.image.image.describe(),
                    foreign.run.hardening.describe(),
                ],
            }
            .into_iter()
            .chain(proxy_note)
            .collect(),
            rung: Some(self.spec.rung()),
            accel_attempts: Vec::new(),
        }
    }
}

/// The container's cgroup, found through its main process, for readings in microseconds
/// instead of the engine's stats (about a second per call); `None` when this process cannot
/// see it (another PID namespace), and the engine's stats are read instead.
fn cgroup_of(engine: &Engine, id: &str) -> Option<Cgroup> {
    let pid = engine.inspect_container(id).ok()?.state?.pid?;
    let cgroup = Cgroup::of_pid(u32::try_from(pid).ok()?).ok()?;
    cgroup.read().ok().map(|_| cgroup)
}

/// A running container; dropping it removes the container.
struct ContainerInstance {
    /// Held while a foreign image on the host's network owns its port.
    _port_lock: Option<std::fs::File>,
    container: Option<Container<GenericImage>>,
    /// Docker's userland proxy for the published port, when the engine uses one.
    proxy: Option<ProcessProbe>,
    /// The container's cgroup files, when readable from here.
    cgroup: Option<Cgroup>,
    engine: Engine,
    base_url: String,
    /// `/health`, or a foreign image's `--health`.
    health_path: String,
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
        // The same working set either way: usage minus inactive file cache.
        let read = || -> anyhow::Result<ResourceReading> {
            Ok(match &self.cgroup {
                Some(cgroup) => {
                    let reading = cgroup.read().context("reading the container's cgroup")?;
                    ResourceReading {
                        memory_bytes: reading.memory_bytes,
                        peak_memory_bytes: None,
                        cpu_seconds: reading.cpu_seconds,
                    }
                }
                None => {
                    let stats = self.engine.stats(self.id())?;
                    let reading =
                        ContainerReading::try_from(&stats).map_err(anyhow::Error::from)?;
                    ResourceReading {
                        memory_bytes: reading.memory_bytes,
                        peak_memory_bytes: reading.peak_memory_bytes,
                        cpu_seconds: reading.cpu_seconds,
                    }
                }
            })
        };
        // A stopped container has neither cgroup nor stats: say that, not what is missing.
        let mut total = read().map_err(|error| match self.stopped() {
            Some(stopped) => anyhow!(stopped),
            None => error,
        })?;
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
mod foreign_tests {
    use super::split_reference;

    #[test]
    fn references_split_into_repository_and_tag() {
        let split = |r| {
            let (a, b) = split_reference(r);
            (a, b)
        };
        assert_eq!(split("myapp:1.0"), ("myapp".into(), "1.0".into()));
        assert_eq!(split("myapp"), ("myapp".into(), "latest".into()));
        assert_eq!(
            split("registry:5000/team/app"),
            ("registry:5000/team/app".into(), "latest".into())
        );
        assert_eq!(
            split("registry:5000/app:v2"),
            ("registry:5000/app".into(), "v2".into())
        );
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

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

mod instance;
pub mod listeners;
pub mod proxy;
pub mod runtimes;
pub mod server_image;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow};
use bollard::models::PortBinding;
use testcontainers::core::{IntoContainerPort, Mount};
use testcontainers::runners::SyncRunner;
use testcontainers::{Container, ContainerRequest, GenericImage, ImageExt};

use self::instance::{ContainerInstance, engine_phases, memory_fallback, visible};
use self::runtimes::{GvisorConfig, RegisteredRuntime};
use self::server_image::BuiltImage;
use crate::artifact::{EnvKind, EnvironmentLabel, Preparation, Rung, position};
use crate::cleanup::{self, CONTAINER_LABEL, OWNER_LABEL, Resource};
use crate::docker::Engine;
use crate::env::data_dir::{self, DataDir};
use crate::env::foreign::{ForeignRun, Hardening};
use crate::env::{Budget, EnvError, Environment, Instance, health};
use crate::probe::footprint::FootprintProbe;
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
    /// What memory counts when the container's processes were not visible at a start (then
    /// the engine's working set stands in for the footprint); `None` while they were.
    memory_note: std::sync::Mutex<Option<String>>,
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
            memory_note: std::sync::Mutex::new(None),
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

/// What the container serves, and so how it is started and judged ready: isobench's own
/// server, or a user's image with its own port, health path and hardening.
struct Served<'a> {
    /// The port the service listens on inside the container.
    port: u16,
    hardening: Hardening,
    startup_timeout: Duration,
    /// A user's image's health path (ready at any 2xx); `None` for isobench's own server
    /// (ready at its first 200 on `/health`, told its memory limit and where to bind).
    foreign_health: Option<&'a str>,
    /// Where the service sees its data directory: `/data` for the own server, the scenario
    /// file's `data_dir` for a user's image; `None`: no data directory.
    data_path: Option<&'a str>,
}

impl ContainerEnv {
    fn served(&self) -> Served<'_> {
        match &self.foreign {
            Some(foreign) => Served {
                port: foreign.image.port,
                hardening: foreign.run.hardening,
                startup_timeout: foreign.run.startup_timeout,
                foreign_health: Some(&foreign.image.health_path),
                data_path: foreign.run.data_dir.as_deref(),
            },
            None => Served {
                port: SERVICE_PORT,
                hardening: Hardening::default(),
                startup_timeout: STARTUP_TIMEOUT,
                foreign_health: None,
                data_path: Some(data_dir::CONTAINER_PATH),
            },
        }
    }

    /// The host port the service answers on when the container shares the host's network
    /// (`None` on a bridge, where the engine publishes one), with the lock that holds it. A
    /// foreign image binds its own fixed port, which on the host's network is the host's,
    /// taken under the same per-port lock as the native chroot.
    fn host_port(
        &self,
        served: &Served<'_>,
    ) -> Result<(Option<u16>, Option<std::fs::File>), EnvError> {
        match (self.spec.network, served.foreign_health) {
            (NetworkMode::Host, Some(_)) => {
                let lock =
                    crate::env::native_foreign::lock_port(served.port, served.startup_timeout)?;
                crate::env::native_foreign::ensure_port_free(served.port)?;
                Ok((Some(served.port), Some(lock)))
            }
            (NetworkMode::Host, None) => Ok((Some(free_loopback_port()?), None)),
            (NetworkMode::Bridge, _) => Ok((None, None)),
        }
    }

    /// The container request: the image with isobench's labels, the budget's cpuset and
    /// memory (no swap), the network, the runtime and the hardening.
    fn request(
        &self,
        image: &BuiltImage,
        served: &Served<'_>,
        host_port: Option<u16>,
        data_dir: Option<&DataDir>,
    ) -> ContainerRequest<GenericImage> {
        let cpuset = self.budget.service_cpuset();
        let memory = self.budget.memory_limit_bytes as i64;
        let network = self.spec.network;
        let runtime = self.spec.runtime.as_ref().map(|r| r.name.clone());
        let own_server = served.foreign_health.is_none();
        let service_port = served.port;
        let mut base = GenericImage::new(&image.repository, &image.tag);
        if !own_server {
            // Published even when the image does not EXPOSE it (the user's --port wins), as
            // `docker run -p` does.
            base = base.with_exposed_port(service_port.tcp());
        }
        let mut request = base
            .with_label(CONTAINER_LABEL, "1")
            .with_label(OWNER_LABEL, std::process::id().to_string())
            .with_readonly_rootfs(served.hardening.read_only_root)
            .with_startup_timeout(served.startup_timeout);
        if own_server {
            // The service derives its /memory caps from this (it could read the cgroup too;
            // saying it is what every environment does alike).
            request = request.with_env_var("ISOBENCH_MEMORY_LIMIT_MB", (memory >> 20).to_string());
        }
        if let (Some(dir), Some(inside)) = (data_dir, served.data_path) {
            // `-e` wins over the image's own ENV, as with `docker run`.
            request = request
                .with_mount(Mount::bind_mount(dir.path().to_string_lossy(), inside))
                .with_env_var(data_dir::ENV_VAR, inside);
        }
        if served.hardening.drop_capabilities {
            request = request.with_cap_drop("ALL");
        }
        if served.hardening.no_new_privileges {
            request = request.with_security_opt("no-new-privileges");
        }
        let mut request = request.with_host_config_modifier(move |host| {
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
        if let Some(port) = host_port.filter(|_| own_server) {
            // The image's command binds 0.0.0.0, which on the host's network would be every
            // interface of the machine.
            let port = port.to_string();
            request = request.with_cmd(["--bind", "127.0.0.1", "--port", port.as_str()]);
        }
        request
    }

    /// What the label says of the data directory: a bind mount, through the gofer under
    /// gVisor; none for a user's image whose scenario file names no `data_dir`.
    fn data_dir_words(&self) -> String {
        let Some(inside) = self.served().data_path else {
            return crate::env::foreign::NO_DATA_DIR.to_owned();
        };
        let seen_as = match &self.spec.runtime {
            Some(registered) if registered.is_gvisor() => {
                format!("bind mount at {inside} (gVisor: every file operation crosses the gofer)")
            }
            _ => format!("bind mount at {inside}"),
        };
        data_dir::describe(&seen_as)
    }

    /// How loopback traffic reaches the container, for its label; pins docker-proxy (`proxy`)
    /// to the service CPUs when there is one.
    fn proxy_note(&self, proxy: Option<u32>) -> String {
        let pinned = proxy.map(|pid| proxy::pin_all_threads(pid, &self.budget.service_cpus));
        match (self.spec.network, pinned) {
            (NetworkMode::Host, _) => "host network: the server binds 127.0.0.1 in the host's network namespace; no bridge, NAT or docker-proxy".to_owned(),
            (_, Some(Ok(()))) => "loopback traffic crosses docker-proxy, pinned to the service CPUs; its CPU time and memory are counted with the container's".to_owned(),
            (_, Some(Err(error))) => format!("loopback traffic crosses docker-proxy, which could not be pinned ({error}); its CPU time and memory are counted with the container's"),
            (_, None) => "no docker-proxy serves the published port: the engine forwards loopback traffic in the kernel".to_owned(),
        }
    }
}

/// The host port the engine published for the service's `port` on 127.0.0.1.
fn published_port(container: &Container<GenericImage>, port: u16) -> Result<u16, EnvError> {
    match container.get_host_port_ipv4(port.tcp()) {
        Ok(port) => Ok(port),
        // A container that already exited has no published port: say why it exited.
        Err(_) if !container.is_running().unwrap_or(false) => {
            Err(exited_during_startup(container).into())
        }
        Err(error) => Err(anyhow::Error::new(error)
            .context("reading the container's published port")
            .into()),
    }
}

/// A container that exited before answering, with what it wrote to stderr.
fn exited_during_startup(container: &Container<GenericImage>) -> anyhow::Error {
    anyhow!(
        "the container exited during startup: {}",
        String::from_utf8_lossy(&container.stderr_to_vec().unwrap_or_default())
    )
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
        let (image, imaged) = server_image::ensure_image(&self.engine, &server)?;
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
        let served = self.served();
        let (host_port, port_lock) = self.host_port(&served)?;
        // Named, so that a container the engine created but could not start (a runtime that
        // refuses this machine's cgroups, say) can be found and removed: testcontainers
        // returns the error without it, and it would stay behind in the `Created` state.
        let name = container_name();
        // The service keeps its files where a database's container would: a host directory
        // bind-mounted into the read-only root (the runtime makes the mount point).
        let data_dir = served
            .data_path
            .is_some()
            .then(DataDir::create)
            .transpose()?;
        let request = self
            .request(image, &served, host_port, data_dir.as_ref())
            .with_container_name(&name);
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
            None => published_port(&container, served.port)?,
        };
        let base_url = format!("http://127.0.0.1:{port}");
        let alive = || match container.is_running() {
            Ok(true) => Ok(()),
            _ => Err(exited_during_startup(&container)),
        };
        let startup = match served.foreign_health {
            Some(path) => {
                health::wait_until_ready(&base_url, path, started, served.startup_timeout, alive)
            }
            None => health::wait_until_healthy(&base_url, started, served.startup_timeout, alive),
        }?;
        // Found and pinned after the first 200, so isobench's own /proc scan is not counted
        // as the container's startup.
        let proxy = host_port.is_none().then(|| proxy::find(port)).flatten();
        let note = self.proxy_note(proxy);
        *self.proxy_note.lock().unwrap_or_else(|p| p.into_inner()) = Some(note);
        // Timing points from the engine's own record, read after the clock stopped.
        let startup_phases = self
            .engine
            .inspect_container(container.id())
            .map(|inspect| engine_phases(&inspect, started, started_wall, started + startup))
            .unwrap_or_default();
        let engine = Engine::connect()?;
        let visible = visible(&engine, container.id());
        if let Some(fallback) = memory_fallback(visible.as_ref()) {
            *self.memory_note.lock().unwrap_or_else(|p| p.into_inner()) = Some(fallback);
        }
        Ok(Box::new(ContainerInstance {
            _port_lock: port_lock,
            startup_phases,
            container: Some(container),
            proxy,
            footprint: visible.as_ref().map(|visible| {
                FootprintProbe::new(std::iter::once(visible.root).chain(proxy).collect())
            }),
            visible,
            engine,
            base_url,
            health_path: served.foreign_health.unwrap_or("/health").to_owned(),
            startup,
            _registration: registration,
            _data_dir: data_dir,
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
        let sandbox = match &self.spec.runtime {
            Some(registered) if registered.is_gvisor() => {
                "gVisor's sandbox (its kernel, the Sentry, with the server inside) and gofer"
            }
            _ => "the container's processes",
        };
        let proxy = match self.spec.network {
            NetworkMode::Host => "",
            _ => " and docker-proxy",
        };
        let memory_counts = match self
            .memory_note
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
        {
            Some(fallback) => fallback,
            None => crate::probe::footprint::counts(&format!(
                "containerd's shim for the container and its tree ({sandbox}){proxy}"
            )),
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
            data_dir: Some(self.data_dir_words()),
            memory_counts: Some(memory_counts),
            notes: match &self.foreign {
                None => vec![
                    "read-only root filesystem, all capabilities dropped, no-new-privileges, uid 65534".into(),
                ],
                Some(foreign) => vec![
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

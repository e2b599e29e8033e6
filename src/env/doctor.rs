//! `isobench doctor`'s checks: for every rung of the ladder, what it needs on this machine,
//! whether that is here, and the commands that would set up what is missing — as data, for
//! `cli::doctor` to word. Nothing here changes the host or starts anything: the engine is
//! asked, files are opened, binaries are asked their version, and the commands are only
//! returned (isobench does not change a user's host; `.ci/run` is what runs them on CI).
//!
//! The checks are the ones the environments themselves make before they run
//! ([`crate::env::vm::QemuVm::with_mode`], [`crate::env::container::ContainerEnv::gvisor`],
//! [`crate::env::vm::accel`]), called one by one so that every missing thing is listed, not
//! just the first. The commands are Debian's, the distribution isobench is developed and
//! tested on, and those `.ci/run` uses.

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::artifact::Accel;
use crate::docker::Engine;
use crate::env::Budget;
use crate::env::container::runtimes::{self, GvisorConfig, RegisteredRuntime};
use crate::env::factory::EnvName;
use crate::env::vm::{BootMode, QemuVm, accel, image};
use crate::probe::cgroup::CgroupLayout;
use crate::subject::server_binary;

/// The rungs `isobench doctor` reports on: the default ladder, one line each (`runtimes`,
/// other registered OCI runtimes, is reported through gVisor's checks on the engine).
pub const RUNGS: [EnvName; 5] = [
    EnvName::Native,
    EnvName::ContainerHost,
    EnvName::Container,
    EnvName::Gvisor,
    EnvName::Vm,
];

/// Something a rung needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Need {
    /// The static server binary every rung runs, or what building it takes (static glibc).
    StaticServer,
    /// A Docker engine that answers.
    DockerEngine,
    /// A cgroup file system for the containers' limits.
    CgroupLayout,
    /// gVisor's `runsc` binary.
    RunscInstalled,
    /// `runsc` registered with the engine as an OCI runtime.
    RunscRegistered,
    /// `qemu-system-x86_64`.
    Qemu,
    /// A guest kernel with the modules the guest loads.
    GuestKernel,
    /// A static busybox for the guest's init.
    Busybox,
    /// KVM, or TCG (software emulation) when KVM cannot be used.
    Accelerator,
}

/// What the check found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Here and usable.
    Found,
    /// Not what the rung prefers, but it runs: the VM under TCG.
    Fallback,
    /// Not here: the rung cannot run.
    Missing,
}

/// One need of one rung, checked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// What is needed.
    pub need: Need,
    /// Whether it is here.
    pub status: Status,
    /// What was found (a version, a path), or why it is missing (the check's own error).
    pub detail: String,
    /// Shell commands that would set it up (as root), in order; empty when there is nothing
    /// to run. Printed, never run.
    pub setup: Vec<String>,
}

impl Finding {
    fn found(need: Need, detail: impl Into<String>) -> Self {
        Self {
            need,
            status: Status::Found,
            detail: detail.into(),
            setup: Vec::new(),
        }
    }

    fn missing(need: Need, detail: impl Into<String>, setup: Vec<String>) -> Self {
        Self {
            need,
            status: Status::Missing,
            detail: detail.into(),
            setup,
        }
    }
}

/// Whether a rung can run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Readiness {
    /// Everything it needs is here.
    Ready,
    /// It runs, on a fallback (the VM under TCG: its figures are software emulation's).
    ReadyWithFallback,
    /// Something it needs is missing.
    NotReady,
}

/// One rung and its findings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RungFindings {
    /// The rung, by the name `--env` takes.
    #[serde(serialize_with = "env_name")]
    pub rung: EnvName,
    /// Whether it can run, from its findings.
    pub readiness: Readiness,
    /// Every need, checked.
    pub findings: Vec<Finding>,
}

impl RungFindings {
    /// `rung` with `findings`, its readiness decided from them.
    pub fn new(rung: EnvName, findings: Vec<Finding>) -> Self {
        Self {
            rung,
            readiness: readiness(&findings),
            findings,
        }
    }
}

fn env_name<S: serde::Serializer>(name: &EnvName, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(name.as_str())
}

/// Not ready when anything is missing; ready on a fallback when something is one.
pub fn readiness(findings: &[Finding]) -> Readiness {
    if findings.iter().any(|f| f.status == Status::Missing) {
        Readiness::NotReady
    } else if findings.iter().any(|f| f.status == Status::Fallback) {
        Readiness::ReadyWithFallback
    } else {
        Readiness::Ready
    }
}

/// The whole diagnosis of this machine.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Diagnosis {
    /// The operating system (`/etc/os-release`'s `PRETTY_NAME`).
    pub os: String,
    /// Whether it is Debian or a derivative (`ID` or `ID_LIKE`), whose packages the setup
    /// commands name.
    pub debian_like: bool,
    /// The cgroup layout, which every container rung shares.
    pub cgroup_layout: Option<CgroupLayout>,
    /// One entry per rung of [`RUNGS`].
    pub rungs: Vec<RungFindings>,
}

impl Diagnosis {
    /// Whether every rung can run (on a fallback or not).
    pub fn all_ready(&self) -> bool {
        self.rungs
            .iter()
            .all(|rung| rung.readiness != Readiness::NotReady)
    }
}

/// What `rung` needs, in the order a run meets them.
pub fn needs(rung: EnvName) -> &'static [Need] {
    use Need::*;
    match rung {
        EnvName::Native => &[StaticServer],
        EnvName::ContainerHost | EnvName::Container | EnvName::Runtimes => {
            &[StaticServer, DockerEngine, CgroupLayout]
        }
        EnvName::Gvisor => &[
            StaticServer,
            DockerEngine,
            CgroupLayout,
            RunscInstalled,
            RunscRegistered,
        ],
        EnvName::Vm | EnvName::VmSnapshot => {
            &[StaticServer, Qemu, GuestKernel, Busybox, Accelerator]
        }
        EnvName::Mock => &[],
    }
}

/// Checks this machine: every need of every rung of [`RUNGS`], each checked once.
pub fn diagnose() -> Diagnosis {
    let os_release = std::fs::read_to_string("/etc/os-release").unwrap_or_default();
    let (os, debian_like) = os_of(&os_release);
    let layout = CgroupLayout::of_host().ok();
    let engine = Engine::connect();
    let registered = engine.as_ref().ok().map(runtimes::registered);
    let runsc = registered
        .as_ref()
        .and_then(|list| list.as_ref().ok())
        .and_then(|list| list.iter().find(|r| r.is_gvisor()).cloned());
    let mut checked = vec![
        static_server(),
        docker_engine(&engine),
        cgroup_layout(layout),
        runsc_installed(runsc.as_ref()),
        runsc_registered(&engine, registered.as_ref(), runsc.as_ref()),
    ];
    checked.extend(vm_needs());
    let rungs = RUNGS
        .into_iter()
        .map(|rung| {
            let findings = needs(rung)
                .iter()
                .filter_map(|need| checked.iter().find(|f| f.need == *need).cloned())
                .collect();
            RungFindings::new(rung, findings)
        })
        .collect();
    Diagnosis {
        os,
        debian_like,
        cgroup_layout: layout,
        rungs,
    }
}

/// `PRETTY_NAME`, and whether `ID` or `ID_LIKE` names Debian, from `/etc/os-release`.
pub fn os_of(os_release: &str) -> (String, bool) {
    let value = |key: &str| {
        os_release.lines().find_map(|line| {
            let value = line.strip_prefix(key)?.strip_prefix('=')?;
            Some(value.trim().trim_matches('"').to_owned())
        })
    };
    let debian_like = [value("ID"), value("ID_LIKE")]
        .into_iter()
        .flatten()
        .any(|ids| ids.split_whitespace().any(|id| id == "debian"));
    (
        value("PRETTY_NAME").unwrap_or_else(|| "unknown".to_owned()),
        debian_like,
    )
}

/// The first `name` on `PATH`.
fn on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}

/// Where static glibc lives on Debian (multiarch) and on distributions without multiarch.
const STATIC_LIBC: [&str; 2] = ["/usr/lib/x86_64-linux-gnu/libc.a", "/usr/lib64/libc.a"];

/// The static server: given by [`server_binary::SERVER_BIN_ENV`], already built, or
/// buildable (static glibc is what a plain Rust toolchain lacks for `+crt-static`).
fn static_server() -> Finding {
    let need = Need::StaticServer;
    if let Some(path) = std::env::var_os(server_binary::SERVER_BIN_ENV) {
        let path = PathBuf::from(path);
        return if path.is_file() {
            Finding::found(
                need,
                format!(
                    "{} (from {})",
                    path.display(),
                    server_binary::SERVER_BIN_ENV
                ),
            )
        } else {
            Finding::missing(
                need,
                format!(
                    "{}={} is not a file",
                    server_binary::SERVER_BIN_ENV,
                    path.display()
                ),
                vec![format!("unset {}", server_binary::SERVER_BIN_ENV)],
            )
        };
    }
    let built = server_binary::target_dir()
        .join("static")
        .join(env!("ISOBENCH_TARGET"))
        .join("release")
        .join("isobench-server");
    if built.is_file() {
        return Finding::found(need, format!("built: {}", built.display()));
    }
    match STATIC_LIBC
        .iter()
        .map(Path::new)
        .find(|path| path.is_file())
    {
        Some(libc) => Finding::found(
            need,
            format!(
                "not built yet; static glibc for the build at {}",
                libc.display()
            ),
        ),
        None => Finding::missing(
            need,
            format!(
                "no static glibc ({}) to link the server with +crt-static",
                STATIC_LIBC.join(" or ")
            ),
            vec!["apt-get install libc6-dev".to_owned()],
        ),
    }
}

fn docker_engine(engine: &Result<Engine, crate::docker::Unreachable>) -> Finding {
    let need = Need::DockerEngine;
    match engine {
        Ok(engine) => Finding::found(
            need,
            engine
                .describe()
                .unwrap_or_else(|error| format!("answers, but no version: {error:#}")),
        ),
        Err(error) => Finding::missing(
            need,
            error.reason.clone(),
            docker_setup(on_path("dockerd").is_some()),
        ),
    }
}

/// What gets a Docker engine running on Debian: its package when `dockerd` is not
/// installed, then the service started (what `.ci/run` does).
pub fn docker_setup(dockerd_installed: bool) -> Vec<String> {
    let mut commands = Vec::new();
    if !dockerd_installed {
        commands.push("apt-get install docker.io".to_owned());
    }
    commands.push("service docker start || systemctl start docker".to_owned());
    commands
}

fn cgroup_layout(layout: Option<CgroupLayout>) -> Finding {
    let need = Need::CgroupLayout;
    match layout {
        Some(CgroupLayout::None) | None => Finding::missing(
            need,
            "no cgroup file system mounted (/proc/self/mounts)",
            vec!["mount -t cgroup2 none /sys/fs/cgroup".to_owned()],
        ),
        Some(layout) => Finding::found(
            need,
            match layout {
                CgroupLayout::V2 => "v2 (unified)",
                CgroupLayout::Hybrid => {
                    "hybrid (v1 controllers, an empty v2 hierarchy beside them)"
                }
                _ => "v1",
            },
        ),
    }
}

fn runsc_installed(registered: Option<&RegisteredRuntime>) -> Finding {
    let need = Need::RunscInstalled;
    let binary = registered
        .map(|runtime| PathBuf::from(&runtime.path))
        .or_else(|| on_path("runsc"));
    let version = binary.as_ref().and_then(|path| {
        RegisteredRuntime {
            name: "runsc".into(),
            path: path.display().to_string(),
            args: Vec::new(),
        }
        .version()
    });
    match (binary, version) {
        (Some(path), Some(version)) => {
            Finding::found(need, format!("{} ({version})", path.display()))
        }
        (Some(path), None) => Finding::missing(
            need,
            format!("{} does not answer --version", path.display()),
            vec!["apt-get install --reinstall runsc".to_owned()],
        ),
        (None, _) => Finding::missing(
            need,
            "no runsc on PATH",
            vec!["apt-get install runsc".to_owned()],
        ),
    }
}

fn runsc_registered(
    engine: &Result<Engine, crate::docker::Unreachable>,
    registered: Option<&anyhow::Result<Vec<RegisteredRuntime>>>,
    runsc: Option<&RegisteredRuntime>,
) -> Finding {
    let need = Need::RunscRegistered;
    let path =
        on_path("runsc").map_or_else(|| "/usr/bin/runsc".to_owned(), |p| p.display().to_string());
    let setup = runsc_registration(&path, on_path("jq").is_some());
    match (engine, registered, runsc) {
        (_, _, Some(runsc)) => {
            let config = GvisorConfig::of(runsc);
            Finding::found(
                need,
                format!(
                    "{}: platform {}, network {}",
                    runsc.describe(),
                    config.platform,
                    config.network
                ),
            )
        }
        (Err(_), _, _) => Finding::missing(need, "no Docker engine to register it with", setup),
        (Ok(_), Some(Err(error)), _) => Finding::missing(
            need,
            format!("the engine's runtimes cannot be read: {error:#}"),
            setup,
        ),
        (Ok(_), Some(Ok(list)), None) => {
            let names: Vec<&str> = list.iter().map(|r| r.name.as_str()).collect();
            Finding::missing(
                need,
                format!(
                    "the engine has no runsc runtime (it lists: {})",
                    names.join(", ")
                ),
                setup,
            )
        }
        (Ok(_), None, None) => Finding::missing(need, "the engine was not asked", setup),
    }
}

/// What registers `runsc` at `runsc_path` with the engine as `.ci/run` does: the ptrace
/// platform (KVM hangs on the machines this is developed on) and the kernel's network stack
/// of the container's namespace (Debian 12's runsc refuses its own netstack in Docker's
/// namespaces), merged into `/etc/docker/daemon.json` with jq, then re-read by dockerd on
/// SIGHUP (no restart: running containers keep running).
pub fn runsc_registration(runsc_path: &str, jq_installed: bool) -> Vec<String> {
    let mut commands = Vec::new();
    if !jq_installed {
        commands.push("apt-get install jq".to_owned());
    }
    commands.extend([
        "mkdir -p /etc/docker && { [ -s /etc/docker/daemon.json ] || echo '{}' > /etc/docker/daemon.json; }".to_owned(),
        format!(
            "jq '.runtimes.runsc = {{path: \"{runsc_path}\", runtimeArgs: [\"--platform=ptrace\", \"--network=host\"]}}' \
             /etc/docker/daemon.json > /etc/docker/daemon.json.new && mv /etc/docker/daemon.json.new /etc/docker/daemon.json"
        ),
        "kill -HUP \"$(pidof dockerd)\"".to_owned(),
    ]);
    commands
}

/// QEMU, the guest kernel and its modules, busybox and the accelerator, each on its own.
fn vm_needs() -> Vec<Finding> {
    let qemu = match crate::env::vm::qemu::Qemu::find() {
        Ok(qemu) => Finding::found(
            Need::Qemu,
            format!("{} ({})", qemu.version_line, qemu.binary.display()),
        ),
        Err(error) => Finding::missing(
            Need::Qemu,
            error.to_string(),
            vec!["apt-get install qemu-system-x86".to_owned()],
        ),
    };
    let mode = BootMode::from_env();
    let kernel_setup = vec!["apt-get install linux-image-cloud-amd64".to_owned()];
    let kernel = match (image::GuestKernel::find(), &mode) {
        (Err(error), _) => Finding::missing(Need::GuestKernel, error.to_string(), kernel_setup),
        (Ok(_), Err(error)) => Finding::missing(
            Need::GuestKernel,
            error.to_string(),
            vec![format!("unset {}", crate::env::vm::boot::BOOT_ENV)],
        ),
        (Ok(kernel), Ok(mode)) => match kernel.resolve_modules(mode.root_modules()) {
            Ok(modules) => Finding::found(
                Need::GuestKernel,
                format!(
                    "{} ({} module(s) for the guest)",
                    kernel.vmlinuz.display(),
                    modules.len()
                ),
            ),
            Err(error) => Finding::missing(Need::GuestKernel, error.to_string(), kernel_setup),
        },
    };
    let busybox = match image::find_busybox() {
        Ok(path) => Finding::found(Need::Busybox, path.display().to_string()),
        Err(error) => Finding::missing(
            Need::Busybox,
            error.to_string(),
            vec!["apt-get install busybox-static".to_owned()],
        ),
    };
    // The probe's cache is keyed by QEMU and the guest kernel: readable only when both are
    // here, which is what constructing the VM environment checks.
    let cached = mode
        .ok()
        .and_then(|mode| QemuVm::with_mode(Budget::for_host(), mode).ok())
        .map(|vm| vm.cached_accel());
    vec![
        qemu,
        kernel,
        busybox,
        accelerator(accel::kvm_device_usable(), cached),
    ]
}

/// The accelerator as the VM would choose it, without booting: forced by
/// [`accel::ACCEL_ENV`]; TCG when `/dev/kvm` does not open; else the probe's cached
/// decision, or, before any probe ran, KVM to be tried first — `/dev/kvm` opening is not
/// enough on every host (guests can hang right after the kernel decompresses), which only
/// the first run's probe boot tells. `cached` is `None` when the VM's other needs are
/// missing (no cache key), `Some(None)` when no probe ran yet.
fn accelerator(
    device: Result<(), accel::KvmDeviceUnusable>,
    cached: Option<Option<accel::AccelDecision>>,
) -> Finding {
    let need = Need::Accelerator;
    match accel::forced("") {
        Err(error) => {
            return Finding::missing(
                need,
                error.to_string(),
                vec![format!("unset {}", accel::ACCEL_ENV)],
            );
        }
        Ok(Some(decision)) => {
            return Finding::found(
                need,
                format!(
                    "{} (forced by {})",
                    accel::qemu_name(decision.accel),
                    accel::ACCEL_ENV
                ),
            );
        }
        Ok(None) => {}
    }
    if let Err(error) = device {
        let setup = if error.kind() == std::io::ErrorKind::PermissionDenied {
            // Debian's udev rule gives /dev/kvm to group kvm.
            vec!["adduser \"$USER\" kvm   # then log in again".to_owned()]
        } else {
            Vec::new()
        };
        return Finding {
            need,
            status: Status::Fallback,
            detail: format!("TCG (software emulation): {error}"),
            setup,
        };
    }
    match cached.flatten() {
        Some(decision) if decision.accel == Accel::Kvm => Finding::found(
            need,
            format!(
                "KVM with -cpu {} (a probe boot answered; cached)",
                decision.cpu
            ),
        ),
        Some(decision) => Finding {
            need,
            status: Status::Fallback,
            detail: format!("{} (cached probe decision)", decision.reason),
            setup: Vec::new(),
        },
        None => Finding::found(
            need,
            format!(
                "/dev/kvm opens, which is not enough on every host: the first run boots a probe \
                 under KVM (-cpu {}) and falls back to TCG if no guest answers",
                accel::KVM_CPU_MODELS.join(" / ")
            ),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn finding(need: Need, status: Status) -> Finding {
        Finding {
            need,
            status,
            detail: String::new(),
            setup: Vec::new(),
        }
    }

    #[test]
    fn a_rung_is_as_ready_as_its_worst_finding() {
        let found = finding(Need::Qemu, Status::Found);
        let fallback = finding(Need::Accelerator, Status::Fallback);
        let missing = finding(Need::Busybox, Status::Missing);
        assert_eq!(readiness(std::slice::from_ref(&found)), Readiness::Ready);
        assert_eq!(
            readiness(&[found.clone(), fallback.clone()]),
            Readiness::ReadyWithFallback
        );
        assert_eq!(
            readiness(&[fallback.clone(), missing.clone(), found]),
            Readiness::NotReady
        );

        let mut diagnosis = Diagnosis {
            os: "Debian GNU/Linux 12 (bookworm)".into(),
            debian_like: true,
            cgroup_layout: Some(CgroupLayout::V2),
            rungs: vec![RungFindings::new(EnvName::Vm, vec![fallback])],
        };
        assert!(diagnosis.all_ready(), "a fallback still runs");
        diagnosis
            .rungs
            .push(RungFindings::new(EnvName::Gvisor, vec![missing]));
        assert!(!diagnosis.all_ready());
    }

    #[test]
    fn every_rung_needs_the_server_and_its_own_things() {
        for rung in RUNGS {
            assert_eq!(needs(rung)[0], Need::StaticServer, "{rung}");
        }
        assert!(needs(EnvName::Gvisor).contains(&Need::RunscRegistered));
        assert!(!needs(EnvName::Container).contains(&Need::RunscRegistered));
        assert!(needs(EnvName::Vm).contains(&Need::Accelerator));
        assert!(!needs(EnvName::Native).contains(&Need::DockerEngine));
    }

    #[test]
    fn debian_and_its_derivatives_are_recognised() {
        let debian = "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nID=debian\n";
        assert_eq!(
            os_of(debian),
            ("Debian GNU/Linux 12 (bookworm)".into(), true)
        );
        let ubuntu = "PRETTY_NAME=\"Ubuntu 24.04 LTS\"\nID=ubuntu\nID_LIKE=debian\n";
        assert!(os_of(ubuntu).1);
        let fedora = "PRETTY_NAME=\"Fedora Linux 40\"\nID=fedora\n";
        assert_eq!(os_of(fedora), ("Fedora Linux 40".into(), false));
        assert_eq!(os_of(""), ("unknown".into(), false));
    }

    #[test]
    fn runsc_is_registered_as_ci_registers_it() {
        let commands = runsc_registration("/usr/bin/runsc", false);
        assert_eq!(commands[0], "apt-get install jq");
        let merge = &commands[2];
        assert!(merge.contains("\"/usr/bin/runsc\""), "{merge}");
        assert!(
            merge.contains("--platform=ptrace") && merge.contains("--network=host"),
            "{merge}"
        );
        assert_eq!(commands.last().unwrap(), "kill -HUP \"$(pidof dockerd)\"");
        assert_eq!(runsc_registration("/usr/bin/runsc", true).len(), 3);
        assert_eq!(docker_setup(false)[0], "apt-get install docker.io");
        assert_eq!(docker_setup(true).len(), 1);
    }

    #[test]
    fn the_accelerator_is_decided_without_booting() {
        if std::env::var_os(accel::ACCEL_ENV).is_some() {
            return;
        }
        let decision = |accel: Accel| accel::AccelDecision {
            accel,
            reason: "TCG: /dev/kvm opens, but no KVM probe boot answered".into(),
            probe_seconds: Some(80.0),
            key: "k".into(),
            cpu: "host".into(),
            attempts: Vec::new(),
        };
        // This host's case: /dev/kvm opens, the cached probe found no guest answering.
        let hanging = accelerator(Ok(()), Some(Some(decision(Accel::Tcg))));
        assert_eq!(hanging.status, Status::Fallback);
        assert!(
            hanging.detail.contains("no KVM probe boot answered"),
            "{}",
            hanging.detail
        );
        let kvm = accelerator(Ok(()), Some(Some(decision(Accel::Kvm))));
        assert_eq!(kvm.status, Status::Found);
        let unprobed = accelerator(Ok(()), Some(None));
        assert_eq!(unprobed.status, Status::Found);
        assert!(
            unprobed.detail.contains("falls back to TCG"),
            "{}",
            unprobed.detail
        );
        let denied = std::io::Error::from(std::io::ErrorKind::PermissionDenied);
        let no_access = accelerator(Err(accel::KvmDeviceUnusable::from(denied)), None);
        assert_eq!(no_access.status, Status::Fallback);
        assert!(
            no_access.setup[0].starts_with("adduser"),
            "{:?}",
            no_access.setup
        );
        let absent = std::io::Error::from(std::io::ErrorKind::NotFound);
        let no_kvm = accelerator(Err(accel::KvmDeviceUnusable::from(absent)), None);
        assert!(no_kvm.setup.is_empty());
    }
}

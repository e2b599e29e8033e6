//! The QEMU VM environment: the image from [`super::image`] (a kernel and an initramfs, no
//! disk) booted with `qemu-system-x86_64 -M q35`, the service reached through user-mode
//! networking's `hostfwd` on a 127.0.0.1 port.
//!
//! Why q35 and not `-M microvm`: microvm boots Debian's 6.1 kernel under QEMU 7.2 in a few
//! seconds on an idle host, but it has no HPET and no ACPI PM timer, so the kernel can only
//! calibrate its clock against the PIT; when the host is busy (several agents or test
//! processes on two cores) TCG's timing jitters, calibration fails ("tsc: Unable to calibrate
//! against PIT … No reference (HPET/PMTIMER) available") and the guest hangs with its clock
//! stuck at 0. q35 has both references and boots reliably under load, at the price of SeaBIOS
//! and PCI enumeration (a second or two). The NIC gets no option ROM (`romfile=`), since
//! nothing network-boots. The QEMU process is pinned to the budget's service CPUs
//! with as many vCPUs, gets the budget's memory as guest RAM, and is supervised by
//! [`super::child`] so it never outlives its test. Startup runs from the start request to the
//! first 200 on `/health`; image assembly and the KVM probe are reported apart.

use std::fs;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::accel::{self, AccelDecision};
use super::child::{Supervised, spawn_supervised};
use super::image::{self, ImageInputs, VmImage};
use crate::env::{
    Budget, EnvError, Environment, Instance, ResourceReading, health, pin, server_binary,
};
use crate::probe::process::ProcessProbe;
use crate::report::schema::{Accel, EnvKind, EnvironmentLabel, Preparation};

/// The environment's name in tables and artifacts.
pub const NAME: &str = "vm";
/// Environment variable naming the QEMU binary (default `qemu-system-x86_64` on `PATH`).
pub const QEMU_ENV: &str = "ISOBENCH_QEMU";
/// Environment variable overriding the boot timeout, in seconds.
pub const BOOT_TIMEOUT_ENV: &str = "ISOBENCH_VM_BOOT_TIMEOUT_S";
/// The port the server listens on inside the guest.
pub const GUEST_PORT: u16 = 8080;
/// How long a boot may take before it counts as failed, under TCG: software emulation on a
/// shared machine with other VMs booting in parallel is slow, and a timeout is not a result.
pub const TCG_BOOT_TIMEOUT: Duration = Duration::from_secs(120);
/// The same under KVM.
pub const KVM_BOOT_TIMEOUT: Duration = Duration::from_secs(60);
/// How long the KVM probe waits for `/health`: a working KVM boots this image in about a
/// second, a broken one hangs forever.
pub const KVM_PROBE_TIMEOUT: Duration = Duration::from_secs(20);
/// How often a boot is retried when another process took the chosen port first.
const PORT_ATTEMPTS: usize = 5;
/// The QEMU machine type (see the module documentation for why not microvm).
pub const MACHINE: &str = "q35";
/// The guest kernel's command line: serial console, few messages (printing to an emulated
/// UART is slow under TCG), power off instead of rebooting on panic.
const KERNEL_CMDLINE: &str = "console=ttyS0 quiet panic=-1";

/// A QEMU binary and its version.
#[derive(Debug, Clone)]
pub struct Qemu {
    /// Path or name of `qemu-system-x86_64`.
    pub binary: PathBuf,
    /// Version number, e.g. `7.2.22`.
    pub version: String,
    /// The first line of `--version`, e.g. `QEMU emulator version 7.2.22 (Debian …)`.
    pub version_line: String,
}

impl Qemu {
    /// Finds QEMU ([`QEMU_ENV`] or `qemu-system-x86_64` on `PATH`) and asks its version.
    pub fn find() -> Result<Self, String> {
        let binary = std::env::var_os(QEMU_ENV)
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("qemu-system-x86_64"));
        Self::at(binary)
    }

    /// The QEMU at `binary`, if it runs and says its version.
    pub fn at(binary: PathBuf) -> Result<Self, String> {
        let output = Command::new(&binary)
            .arg("--version")
            .stdin(Stdio::null())
            .output()
            .map_err(|e| {
                format!(
                    "cannot run {} ({e}); install qemu-system-x86 or set {QEMU_ENV}",
                    binary.display()
                )
            })?;
        let text = String::from_utf8_lossy(&output.stdout);
        let version_line = text.lines().next().unwrap_or_default().trim().to_owned();
        let version = version_line
            .strip_prefix("QEMU emulator version ")
            .and_then(|rest| rest.split_whitespace().next())
            .ok_or_else(|| format!("{} --version printed {version_line:?}", binary.display()))?
            .to_owned();
        Ok(Self {
            binary,
            version,
            version_line,
        })
    }
}

/// Boot settings that differ between the probe and real runs.
#[derive(Debug, Clone, Copy)]
struct BootPlan {
    accel: Accel,
    timeout: Duration,
}

/// The CPU model for `accel`: the host's under KVM; `max` under TCG, which emulates every
/// feature TCG can, including the `hypervisor` CPUID bit the service uses to detect a VM
/// (DMI tables are there too on q35, but the CPU flag is the evidence that works on any
/// machine type).
fn cpu_model(accel: Accel) -> &'static str {
    match accel {
        Accel::Kvm => "host",
        Accel::Tcg | Accel::Provider => "max",
    }
}

/// The QEMU command line for one boot.
fn qemu_command(
    qemu: &Qemu,
    image: &VmImage,
    budget: &Budget,
    accel: Accel,
    port: u16,
    dir: &Path,
) -> Command {
    let mut command = Command::new(&qemu.binary);
    let vcpus = budget.service_cpus.len().max(1);
    let memory_mib = (budget.memory_limit_bytes / (1 << 20)).max(64);
    command
        .args([
            "-M",
            MACHINE,
            "-accel",
            accel::qemu_name(accel),
            "-cpu",
            cpu_model(accel),
        ])
        .args(["-smp", &vcpus.to_string(), "-m", &format!("{memory_mib}M")])
        .args(["-nodefaults", "-no-reboot", "-display", "none"])
        .arg("-serial")
        .arg(format!("file:{}", dir.join("console.log").display()))
        .arg("-kernel")
        .arg(&image.kernel)
        .arg("-initrd")
        .arg(&image.initramfs)
        .args(["-append", KERNEL_CMDLINE])
        .arg("-netdev")
        .arg(format!(
            "user,id=net0,hostfwd=tcp:127.0.0.1:{port}-:{GUEST_PORT}"
        ))
        .args(["-device", "virtio-net-pci,netdev=net0,romfile="])
        .stdin(Stdio::null())
        .stdout(Stdio::null());
    pin::pin_command(&mut command, &budget.service_cpus);
    command
}

/// A free 127.0.0.1 port: bind port 0 and release it. Another process may take it before
/// QEMU binds it; [`boot`] notices and retries with a new one.
fn free_port() -> std::io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// The last `lines` lines of a file, for error messages.
fn tail(path: &Path, lines: usize) -> String {
    let text = fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Why a boot failed.
#[derive(Debug)]
struct BootFailure {
    message: String,
    port_taken: bool,
}

/// Boots one VM and waits for its first 200 on `/health`; on failure QEMU is killed and the
/// instance directory kept when `keep_on_failure` (its console log says what went wrong).
fn boot(
    qemu: &Qemu,
    image: &VmImage,
    budget: &Budget,
    plan: BootPlan,
    requested: Instant,
    keep_on_failure: bool,
) -> Result<QemuInstance, String> {
    let mut last = String::new();
    // Startup stays measured from the original request: a lost port race is part of what
    // starting cost (it fails within milliseconds, before the guest boots).
    for _ in 0..PORT_ATTEMPTS {
        let dir = tempfile::Builder::new()
            .prefix("isobench-vm-")
            .tempdir()
            .map_err(|e| format!("creating the instance directory: {e}"))?;
        match boot_once(qemu, image, budget, plan, requested, dir.path()) {
            Ok((child, port, startup)) => {
                let probe = ProcessProbe::new(child.pid());
                return Ok(QemuInstance {
                    base_url: format!("http://127.0.0.1:{port}"),
                    startup,
                    probe,
                    child,
                    dir,
                });
            }
            Err(failure) if failure.port_taken => last = failure.message,
            Err(failure) => {
                if keep_on_failure {
                    let kept = dir.keep();
                    return Err(format!(
                        "{} (console log kept in {})",
                        failure.message,
                        kept.display()
                    ));
                }
                return Err(failure.message);
            }
        }
    }
    Err(format!(
        "no free port after {PORT_ATTEMPTS} attempts: {last}"
    ))
}

fn boot_once(
    qemu: &Qemu,
    image: &VmImage,
    budget: &Budget,
    plan: BootPlan,
    requested: Instant,
    dir: &Path,
) -> Result<(Supervised, u16, Duration), BootFailure> {
    let fail = |message: String| BootFailure {
        message,
        port_taken: false,
    };
    let port = free_port().map_err(|e| fail(format!("finding a free port: {e}")))?;
    let stderr_path = dir.join("qemu.stderr");
    let stderr = fs::File::create(&stderr_path)
        .map_err(|e| fail(format!("creating {}: {e}", stderr_path.display())))?;
    let mut command = qemu_command(qemu, image, budget, plan.accel, port, dir);
    command.stderr(stderr);
    let mut child = spawn_supervised(command)
        .map_err(|e| fail(format!("starting {}: {e}", qemu.binary.display())))?;
    let base_url = format!("http://127.0.0.1:{port}");
    let result = health::wait_until_healthy(&base_url, requested, plan.timeout, || {
        match child.try_wait()? {
            Some(status) => anyhow::bail!("QEMU exited ({status})"),
            None => Ok(()),
        }
    });
    match result {
        Ok(startup) => Ok((child, port, startup)),
        Err(error) => {
            // Stop first so the console log is complete and no QEMU is left behind.
            let _ = child.stop();
            let qemu_stderr = tail(&stderr_path, 5);
            let console = tail(&dir.join("console.log"), 8);
            Err(BootFailure {
                port_taken: qemu_stderr.contains("host forwarding rule"),
                message: format!(
                    "{} boot ({}) failed: {error:#}; QEMU said: {}; guest console ends with:\n{}",
                    accel::qemu_name(plan.accel).to_uppercase(),
                    qemu.version_line,
                    if qemu_stderr.is_empty() {
                        "nothing"
                    } else {
                        &qemu_stderr
                    },
                    if console.is_empty() {
                        "(nothing)".to_owned()
                    } else {
                        console
                    },
                ),
            })
        }
    }
}

fn boot_timeout(accel: Accel) -> Duration {
    let configured = std::env::var(BOOT_TIMEOUT_ENV)
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
        .map(Duration::from_secs);
    configured.unwrap_or(match accel {
        Accel::Kvm => KVM_BOOT_TIMEOUT,
        Accel::Tcg | Accel::Provider => TCG_BOOT_TIMEOUT,
    })
}

/// What [`QemuVm::prepare`] produced: the image and the accelerator.
#[derive(Debug, Clone)]
struct Prepared {
    image: VmImage,
    accel: AccelDecision,
}

/// The QEMU VM environment (kernel + initramfs, no disk).
pub struct QemuVm {
    budget: Budget,
    qemu: Qemu,
    guest_kernel: image::GuestKernel,
    prepared: Mutex<Option<Prepared>>,
}

fn unavailable(reason: impl Into<String>) -> EnvError {
    EnvError::Unavailable {
        env: NAME.into(),
        reason: reason.into(),
    }
}

/// Where the VM images and the accelerator decision are cached: `target/isobench/vm`.
pub fn cache_root() -> PathBuf {
    server_binary::work_dir().join("vm")
}

impl QemuVm {
    /// Checks that QEMU, a guest kernel with its modules and busybox are here; fails with
    /// [`EnvError::Unavailable`] saying what is missing. Nothing is built or booted yet.
    pub fn new(budget: Budget) -> Result<Self, EnvError> {
        let qemu = Qemu::find().map_err(unavailable)?;
        let guest_kernel = image::GuestKernel::find().map_err(|e| unavailable(e.to_string()))?;
        guest_kernel
            .resolve_modules(image::ROOT_MODULES)
            .map_err(|e| unavailable(e.to_string()))?;
        image::find_busybox().map_err(|e| unavailable(e.to_string()))?;
        Ok(Self {
            budget,
            qemu,
            guest_kernel,
            prepared: Mutex::new(None),
        })
    }

    /// The accelerator cache key for this host, QEMU and guest kernel.
    fn accel_key(&self) -> String {
        let host_kernel = fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
        accel::cache_key(
            host_kernel.trim(),
            &format!("{} -M {MACHINE}", self.qemu.version_line),
            &self.guest_kernel.version,
        )
    }

    /// Assembles (or reuses) the image and decides the accelerator, once per value.
    fn ensure_prepared(&self) -> Result<(Prepared, Vec<Preparation>), EnvError> {
        let mut slot = self.prepared.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(prepared) = slot.as_ref() {
            return Ok((prepared.clone(), Vec::new()));
        }
        let mut steps = Vec::new();
        let (server, build) = server_binary::static_server()?;
        steps.push(build);
        let inputs = ImageInputs::discover(server).map_err(|e| unavailable(e.to_string()))?;
        let (image, assembly) =
            image::assemble(&inputs, &cache_root()).map_err(|e| EnvError::Other(e.into()))?;
        steps.push(assembly);

        let started = Instant::now();
        let probe_image = image.clone();
        let (decision, reused) = accel::decide(
            &cache_root(),
            &self.accel_key(),
            accel::kvm_device_usable,
            || {
                let plan = BootPlan {
                    accel: Accel::Kvm,
                    timeout: KVM_PROBE_TIMEOUT,
                };
                boot(
                    &self.qemu,
                    &probe_image,
                    &self.budget,
                    plan,
                    Instant::now(),
                    false,
                )
                .and_then(|instance| Box::new(instance).stop().map_err(|e| e.to_string()))
            },
        )
        .map_err(|e| {
            EnvError::Other(anyhow::Error::new(e).context("deciding between KVM and TCG"))
        })?;
        steps.push(Preparation {
            what: "vm accelerator probe".into(),
            seconds: started.elapsed().as_secs_f64(),
            cached: reused,
        });
        let prepared = Prepared {
            image,
            accel: decision,
        };
        *slot = Some(prepared.clone());
        Ok((prepared, steps))
    }

    /// The accelerator decision (probing KVM once if no decision is cached yet).
    pub fn accel_decision(&self) -> Result<AccelDecision, EnvError> {
        Ok(self.ensure_prepared()?.0.accel)
    }
}

/// A readable description of `accel` for the runtime label.
fn accel_description(accel: Accel) -> &'static str {
    match accel {
        Accel::Kvm => "KVM hardware virtualisation",
        Accel::Tcg | Accel::Provider => "TCG software emulation",
    }
}

impl Environment for QemuVm {
    fn name(&self) -> &str {
        NAME
    }

    fn prepare(&mut self) -> Result<Vec<Preparation>, EnvError> {
        Ok(self.ensure_prepared()?.1)
    }

    fn start(&self) -> Result<Box<dyn Instance>, EnvError> {
        // The clock starts at the request; preparation (cached after the first call) is
        // reported apart, so it is done before the clock starts.
        let (prepared, _) = self.ensure_prepared()?;
        let requested = Instant::now();
        let plan = BootPlan {
            accel: prepared.accel.accel,
            timeout: boot_timeout(prepared.accel.accel),
        };
        let instance = boot(
            &self.qemu,
            &prepared.image,
            &self.budget,
            plan,
            requested,
            true,
        )
        .map_err(|e| EnvError::Other(anyhow::anyhow!(e)))?;
        Ok(Box::new(instance))
    }

    fn label(&self) -> EnvironmentLabel {
        let prepared = self
            .prepared
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let accel = prepared
            .as_ref()
            .map(|p| p.accel.clone())
            .or_else(|| accel::cached(&cache_root(), &self.accel_key()));
        let mut notes = vec![
            "memory and CPU are those of the QEMU process: guest RAM as far as touched, plus \
             device emulation and user-mode networking; the memory limit is the guest's RAM (-m)"
                .to_owned(),
            "no disk: the guest runs from an initramfs (busybox, the server, virtio modules)"
                .to_owned(),
            format!(
                "QEMU pinned to host CPUs {} with as many vCPUs; machine {MACHINE}, user-mode \
                 networking (hostfwd) to the guest",
                self.budget.service_cpuset()
            ),
        ];
        let runtime = match &accel {
            Some(decision) => {
                notes.push(decision.reason.clone());
                if decision.accel == Accel::Tcg {
                    notes.push(
                        "TCG is software emulation: these numbers say nothing about hardware \
                         virtualisation"
                            .to_owned(),
                    );
                }
                format!(
                    "qemu {} ({MACHINE}, {})",
                    self.qemu.version,
                    accel_description(decision.accel)
                )
            }
            None => {
                notes.push("accelerator not decided yet (prepare() was not called)".to_owned());
                format!("qemu {} ({MACHINE})", self.qemu.version)
            }
        };
        let adds = format!(
            "a hypervisor in place of namespaces: QEMU {MACHINE}, {}, user-mode networking to \
             the guest",
            accel
                .as_ref()
                .map_or("accelerator not decided", |d| accel_description(d.accel))
        );
        EnvironmentLabel {
            rung: Some(crate::report::ladder::vm_rung(adds)),
            name: NAME.into(),
            kind: EnvKind::Vm,
            runtime,
            accel: accel.map(|d| d.accel),
            service_cpus: self.budget.service_cpus.clone(),
            generator_cpus: self.budget.generator_cpus.clone(),
            memory_limit_bytes: Some(self.budget.memory_limit_bytes),
            kernel: Some(self.guest_kernel.version.clone()),
            image_size_bytes: prepared.map(|p| p.image.size_bytes),
            detected: None,
            notes,
        }
    }
}

/// A running VM.
pub struct QemuInstance {
    base_url: String,
    startup: Duration,
    probe: ProcessProbe,
    child: Supervised,
    // Dropped after the child (field order), so QEMU is gone before its files are removed.
    dir: tempfile::TempDir,
}

impl QemuInstance {
    /// The instance's directory (console log `console.log`, QEMU's `qemu.stderr`).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// QEMU's pid.
    pub fn pid(&self) -> u32 {
        self.child.pid()
    }
}

impl Instance for QemuInstance {
    fn base_url(&self) -> &str {
        &self.base_url
    }

    fn startup(&self) -> Duration {
        self.startup
    }

    fn resources(&self) -> Result<ResourceReading, EnvError> {
        let reading = self.probe.read().map_err(|e| {
            EnvError::Other(anyhow::Error::new(e).context("reading the QEMU process"))
        })?;
        Ok(reading.into())
    }

    fn stop(mut self: Box<Self>) -> Result<(), EnvError> {
        self.child
            .stop()
            .map_err(|e| EnvError::Other(anyhow::Error::new(e).context("stopping QEMU")))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_line_follows_the_budget() {
        let qemu = Qemu {
            binary: "qemu-system-x86_64".into(),
            version: "7.2.22".into(),
            version_line: "QEMU emulator version 7.2.22".into(),
        };
        let image = VmImage {
            dir: "/c".into(),
            kernel: "/c/vmlinuz".into(),
            initramfs: "/c/initramfs.cpio.gz".into(),
            kernel_version: "6.1.0-57-amd64".into(),
            size_bytes: 1,
            content_hash: "h".into(),
        };
        let budget = Budget {
            service_cpus: vec![1, 2],
            generator_cpus: vec![0],
            memory_limit_bytes: 1 << 30,
        };
        let command = qemu_command(&qemu, &image, &budget, Accel::Tcg, 40000, Path::new("/d"));
        let args: Vec<String> = command
            .get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        let joined = args.join(" ");
        assert!(joined.contains("-M q35 -accel tcg -cpu max"), "{joined}");
        assert!(joined.contains("-smp 2 -m 1024M"), "{joined}");
        assert!(joined.contains("-serial file:/d/console.log"), "{joined}");
        assert!(
            joined.contains("hostfwd=tcp:127.0.0.1:40000-:8080"),
            "{joined}"
        );
        assert!(joined.contains("-nodefaults -no-reboot"), "{joined}");
        let kvm = qemu_command(&qemu, &image, &budget, Accel::Kvm, 40000, Path::new("/d"));
        let joined: Vec<String> = kvm
            .get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        assert!(joined.join(" ").contains("-accel kvm -cpu host"));
    }

    #[test]
    fn qemu_is_found_by_its_version_or_reported_missing() {
        let err = Qemu::at("/nonexistent/qemu-system-x86_64".into()).unwrap_err();
        assert!(err.contains("install qemu-system-x86"), "{err}");

        let dir = tempfile::tempdir().unwrap();
        let fake = dir.path().join("qemu");
        fs::write(
            &fake,
            "#!/bin/sh\necho 'QEMU emulator version 7.2.22 (Debian 1:7.2+dfsg-7)'\n",
        )
        .unwrap();
        fs::set_permissions(&fake, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
        // A freshly written executable can be briefly "busy" while another test thread forks
        // with the file still open; retry that case only.
        let mut found = Qemu::at(fake.clone());
        for _ in 0..20 {
            match &found {
                Err(e) if e.contains("busy") => {
                    std::thread::sleep(Duration::from_millis(50));
                    found = Qemu::at(fake.clone());
                }
                _ => break,
            }
        }
        assert_eq!(found.unwrap().version, "7.2.22");

        fs::write(&fake, "#!/bin/sh\necho something else\n").unwrap();
        assert!(Qemu::at(fake).is_err());
    }

    /// Boots the real VM and checks `/health` and `/status`. Slow under TCG, so by hand:
    /// `cargo test --lib env::vm::qemu -- --ignored --nocapture`.
    #[test]
    #[ignore = "boots a VM (a minute under TCG); run by hand"]
    fn smoke_boots_and_answers_health() {
        let mut vm = match QemuVm::new(Budget::for_host()) {
            Ok(vm) => vm,
            Err(e) => {
                eprintln!("skipped: {e}");
                return;
            }
        };
        let steps = vm.prepare().unwrap();
        eprintln!("preparation: {steps:?}");
        let label = vm.label();
        eprintln!("label: {}", serde_json::to_string_pretty(&label).unwrap());
        let instance = vm.start().unwrap();
        eprintln!(
            "startup: {:?} at {}",
            instance.startup(),
            instance.base_url()
        );
        let (status, body) = health::get_json(instance.base_url(), "/health").unwrap();
        assert_eq!(status, 200);
        assert_eq!(body, serde_json::json!({"status": "ok"}));
        match health::get_json(instance.base_url(), "/status") {
            Ok((status, body)) => eprintln!("/status {status}: {body}"),
            Err(e) => eprintln!("/status: {e:#}"),
        }
        let reading = instance.resources().unwrap();
        eprintln!("resources: {reading:?}");
        assert!(reading.memory_bytes > 0);
        instance.stop().unwrap();
    }
}

//! The QEMU VM environment: the image from [`super::image`] (a kernel and an initramfs; for a
//! user's image also its root filesystem as a disk, [`super::guest`]) booted with
//! `qemu-system-x86_64`, or restored from a snapshot ([`super::snapshot`], `vm-snapshot`), the
//! service reached through user-mode networking's `hostfwd` on a 127.0.0.1 port.
//!
//! Two boot configurations ([`super::boot`]): the fast one (`microvm`, the uncompressed
//! kernel through PVH; the default) and the seed's (`q35`, SeaBIOS, bzImage;
//! `ISOBENCH_VM_BOOT=legacy`). The serial console goes to a pipe read by
//! [`super::console`], which times the boot's phases; the same character device (multiplexed)
//! takes the SysRq break [`QemuInstance::kill_guest_service`] sends. The QEMU process is
//! pinned to the budget's service CPUs
//! with as many vCPUs, gets the budget's memory as guest RAM, and is supervised by
//! [`super::child`] so it never outlives its test. Startup runs from the start request to the
//! first 200 on `/health`; image assembly and the KVM probe are reported apart.

use std::fs;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use std::io::Write;
use std::process::ChildStdin;

use super::accel::{self, AccelDecision};
use super::boot::{self, BootMode};
use super::child::{Supervised, spawn_supervised};
use super::console::{self, ConsoleLog, Milestones};
use super::guest::{Guest, PreparedGuest};
use super::image::{self, ImageInputs};
use super::snapshot;
use crate::artifact::{Accel, EnvKind, EnvironmentLabel, Preparation, StartupPhase};
use crate::env::{Budget, EnvError, Environment, Instance, ResourceReading, health};
use crate::probe::pin;
use crate::probe::process::ProcessProbe;
use crate::subject::server_binary;

/// The environment's name in tables and artifacts.
pub const NAME: &str = "vm";
/// The name of the VM restored from a snapshot ([`super::snapshot`]).
pub const SNAPSHOT_NAME: &str = "vm-snapshot";
/// Environment variable naming the QEMU binary (default `qemu-system-x86_64` on `PATH`).
pub const QEMU_ENV: &str = "ISOBENCH_QEMU";
/// Environment variable overriding the boot timeout, in seconds.
pub const BOOT_TIMEOUT_ENV: &str = "ISOBENCH_VM_BOOT_TIMEOUT_S";
/// How long a boot may take before it counts as failed, under TCG: software emulation on a
/// shared machine with other VMs booting in parallel is slow, and a timeout is not a result.
pub const TCG_BOOT_TIMEOUT: Duration = Duration::from_secs(120);
/// The same under KVM.
pub const KVM_BOOT_TIMEOUT: Duration = Duration::from_secs(60);
/// How long each KVM probe attempt waits for `/health`: a working KVM boots this image in
/// about a second, a broken one hangs forever.
pub const KVM_PROBE_TIMEOUT: Duration = Duration::from_secs(15);
/// How often a boot is retried when another process took the chosen port first.
const PORT_ATTEMPTS: usize = 5;

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
#[derive(Debug, Clone)]
struct BootPlan {
    accel: Accel,
    /// QEMU's `-cpu` value: `max` under TCG, which emulates every feature TCG can, including
    /// the `hypervisor` CPUID bit the service uses to detect a VM; under KVM the model the
    /// probe found to boot.
    cpu: String,
    timeout: Duration,
    mode: BootMode,
    /// The host TSC's frequency, told to a microvm guest under TCG ([`super::boot`]).
    tsc_khz: Option<u64>,
    /// Whether QEMU gets a QMP socket (`qmp.sock` in the instance directory), to save a
    /// snapshot through.
    qmp: bool,
    /// A snapshot to restore (`-incoming`) instead of booting.
    incoming: Option<PathBuf>,
}

/// The CPU model under TCG.
const TCG_CPU: &str = "max";

/// The QEMU command line for one boot. The console is a multiplexed stdio character device:
/// QEMU's stdout is the guest's serial output (read by [`super::console`]), and its stdin
/// takes the mux's break escape for SysRq.
fn qemu_command(
    qemu: &Qemu,
    guest: &PreparedGuest,
    budget: &Budget,
    plan: &BootPlan,
    port: u16,
    dir: &Path,
) -> Command {
    let image = &guest.image;
    let mut command = Command::new(&qemu.binary);
    let vcpus = budget.service_cpus.len().max(1);
    let memory_mib = (budget.memory_limit_bytes / (1 << 20)).max(64);
    command
        .args([
            "-M",
            plan.mode.machine(),
            "-accel",
            accel::qemu_name(plan.accel),
            "-cpu",
            &plan.cpu,
        ])
        .args(["-smp", &vcpus.to_string(), "-m", &format!("{memory_mib}M")])
        .args(["-nodefaults", "-no-reboot", "-display", "none"])
        // Marks whose QEMU this is, for the orphan sweep (crate::env::orphans::sweep_orphans).
        .args(["-name", &crate::env::orphans::qemu_name(std::process::id())])
        .args(["-chardev", "stdio,id=con,mux=on,signal=off"])
        .args(["-serial", "chardev:con"]);
    if plan.mode == BootMode::Legacy {
        // SeaBIOS logs to the debug port; its `Booting from ROM` marks the firmware's end.
        command.args(["-device", "isa-debugcon,iobase=0x402,chardev=con"]);
    }
    command
        .arg("-kernel")
        .arg(&image.kernel)
        .arg("-initrd")
        .arg(&image.initramfs)
        .arg("-append")
        .arg(plan.mode.cmdline(plan.accel, plan.tsc_khz))
        .arg("-netdev")
        .arg(format!(
            "user,id=net0,hostfwd=tcp:127.0.0.1:{port}-:{}",
            guest.port
        ))
        .args(["-device", plan.mode.nic()]);
    if let Some(disk) = &guest.disk {
        // snapshot=on: the guest's writes go to a temporary overlay, never to the cached disk.
        let mut drive = std::ffi::OsString::from("file=");
        drive.push(disk);
        drive.push(",if=none,id=root,format=raw,snapshot=on");
        command
            .arg("-drive")
            .arg(drive)
            .args(["-device", plan.mode.disk()]);
    }
    if plan.qmp {
        let mut qmp = std::ffi::OsString::from("unix:");
        qmp.push(dir.join(QMP_SOCKET));
        qmp.push(",server=on,wait=off");
        command.arg("-qmp").arg(qmp);
    }
    if let Some(state) = &plan.incoming {
        command
            .arg("-incoming")
            .arg(format!("exec:cat {}", snapshot::shell_quote(state)));
    }
    command.stdin(Stdio::piped()).stdout(Stdio::piped());
    pin::pin_command(&mut command, &budget.service_cpus);
    command
}

/// QEMU's QMP socket in the instance directory, when the plan asks for one.
const QMP_SOCKET: &str = "qmp.sock";

/// A free 127.0.0.1 port: bind port 0 and release it. Another process may take it before
/// QEMU binds it; [`boot`] notices and retries with a new one.
fn free_port() -> std::io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// The last `lines` lines of a file, for error messages.
fn tail_lines(path: &Path, lines: usize) -> String {
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
    guest: &PreparedGuest,
    budget: &Budget,
    plan: &BootPlan,
    requested: Instant,
    keep_on_failure: bool,
) -> Result<QemuInstance, String> {
    let mut last = String::new();
    // Startup stays measured from the original request: a lost port race is part of what
    // starting cost (it fails within milliseconds, before the guest boots).
    for _ in 0..PORT_ATTEMPTS {
        let dir = tempfile::Builder::new()
            .prefix(&crate::env::orphans::vm_instance_dir_prefix(
                std::process::id(),
            ))
            .tempdir()
            .map_err(|e| format!("creating the instance directory: {e}"))?;
        match boot_once(qemu, guest, budget, plan, requested, dir.path()) {
            Ok(booted) => {
                let probe = ProcessProbe::new(booted.child.pid());
                return Ok(QemuInstance {
                    base_url: format!("http://127.0.0.1:{}", booted.port),
                    health_path: guest.health_path.clone(),
                    restored: plan.incoming.is_some(),
                    startup: booted.startup,
                    requested,
                    spawned: booted.spawned,
                    console: booted.console,
                    control: Mutex::new(booted.control),
                    probe,
                    child: booted.child,
                    dir,
                });
            }
            Err(failure) if failure.port_taken => last = failure.message,
            Err(failure) => {
                if keep_on_failure {
                    // Marked, so the next run's orphan sweep leaves it for the user.
                    let _ = fs::write(dir.path().join(crate::env::orphans::KEPT_MARKER), "");
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

/// How often the console is looked at while waiting for the guest's network.
const NETWORK_POLL: Duration = Duration::from_millis(2);

/// Waits until the guest init reports its network up (`isobench-phase: network-up` on the
/// console), so that `/health` is polled only once the guest can answer.
///
/// Polling earlier floods the guest: QEMU's user-mode network accepts every attempt on the
/// host side at once and keeps re-sending its SYN to a guest that cannot answer yet, also
/// after the attempt gave up. A 2-second boot left about 460 such connections inside QEMU,
/// all completed against the service the moment it listened, ahead of the first real
/// request; under load (longer boots, more of them) a check's first request then waited out
/// its 30-second timeout. No 200 can come before the network is up, so startup, still
/// measured from the request to the first 200, is unchanged.
fn wait_for_guest_network(
    console: &ConsoleLog,
    deadline: Instant,
    alive: &mut impl FnMut() -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let mut seen = 0;
    loop {
        if console.any_new(&mut seen, |line| {
            super::console::is_phase_mark(&line.text, "network-up")
        }) {
            return Ok(());
        }
        alive()?;
        if Instant::now() >= deadline {
            anyhow::bail!("the guest did not report its network up (isobench-phase: network-up)");
        }
        std::thread::sleep(NETWORK_POLL);
    }
}

/// A VM that answered `/health`.
struct Booted {
    child: Supervised,
    port: u16,
    startup: Duration,
    spawned: Instant,
    console: ConsoleLog,
    control: Option<ChildStdin>,
}

fn boot_once(
    qemu: &Qemu,
    guest: &PreparedGuest,
    budget: &Budget,
    plan: &BootPlan,
    requested: Instant,
    dir: &Path,
) -> Result<Booted, BootFailure> {
    let fail = |message: String| BootFailure {
        message,
        port_taken: false,
    };
    let port = free_port().map_err(|e| fail(format!("finding a free port: {e}")))?;
    let stderr_path = dir.join("qemu.stderr");
    let stderr = fs::File::create(&stderr_path)
        .map_err(|e| fail(format!("creating {}: {e}", stderr_path.display())))?;
    let mut command = qemu_command(qemu, guest, budget, plan, port, dir);
    command.stderr(stderr);
    let mut child = spawn_supervised(command)
        .map_err(|e| fail(format!("starting {}: {e}", qemu.binary.display())))?;
    let spawned = Instant::now();
    let control = child.take_stdin();
    let (console, _reader) = match child.take_stdout() {
        Some(stdout) => console::spawn_reader(stdout, &dir.join("console.log"))
            .map_err(|e| fail(format!("reading the console: {e}")))?,
        None => return Err(fail("QEMU's stdout was not piped".into())),
    };
    let base_url = format!("http://127.0.0.1:{port}");
    let mut init_seen = 0;
    let mut alive = || {
        // The image guest's init says when the entrypoint exited (or a step failed) before
        // it powers off: name that rather than only QEMU's exit.
        let mut said = None;
        console.any_new(&mut init_seen, |line| {
            let text = line.text.trim();
            if said.is_none() {
                if text.starts_with("isobench-init: the entrypoint exited") {
                    said = Some(format!(
                        "the guest's service exited during startup ({text})"
                    ));
                } else if text.starts_with("isobench-init: FAILED") {
                    said = Some(format!("the guest init failed during startup ({text})"));
                }
            }
            false
        });
        if let Some(said) = said {
            anyhow::bail!(said);
        }
        match child.try_wait()? {
            Some(status) => anyhow::bail!("QEMU exited ({status})"),
            None => Ok(()),
        }
    };
    // A restored guest's network has long been up, and its console says nothing more.
    let network = match plan.incoming {
        Some(_) => Ok(()),
        None => wait_for_guest_network(&console, requested + plan.timeout, &mut alive),
    };
    let result = network.and_then(|()| {
        if guest.is_image() {
            health::wait_until_ready(
                &base_url,
                &guest.health_path,
                requested,
                plan.timeout,
                alive,
            )
        } else {
            health::wait_until_healthy(&base_url, requested, plan.timeout, alive)
        }
    });
    match result {
        Ok(startup) => Ok(Booted {
            child,
            port,
            startup,
            spawned,
            console,
            control,
        }),
        Err(error) => {
            // Stop first so the console log is complete and no QEMU is left behind.
            let _ = child.stop();
            let qemu_stderr = tail_lines(&stderr_path, 5);
            let console = tail_lines(&dir.join("console.log"), 8);
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

/// What [`QemuVm::prepare`] produced: the guest and the accelerator.
#[derive(Debug, Clone)]
struct Prepared {
    guest: PreparedGuest,
    accel: AccelDecision,
    tsc_khz: Option<u64>,
    /// The snapshot every start restores, for the VM from snapshot.
    snapshot: Option<PathBuf>,
}

/// The QEMU VM environment: isobench's own server (kernel + initramfs, no disk) or a user's
/// image (its root filesystem as the guest's disk).
pub struct QemuVm {
    budget: Budget,
    qemu: Qemu,
    guest_kernel: image::GuestKernel,
    mode: BootMode,
    guest: Guest,
    /// Whether every start restores a snapshot ([`super::snapshot`]) instead of booting.
    from_snapshot: bool,
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
    /// The boot configuration comes from [`boot::BOOT_ENV`] (fast unless it says `legacy`).
    pub fn new(budget: Budget) -> Result<Self, EnvError> {
        let mode = BootMode::from_env().map_err(unavailable)?;
        Self::with_mode(budget, mode)
    }

    /// The same with an explicit boot configuration.
    pub fn with_mode(budget: Budget, mode: BootMode) -> Result<Self, EnvError> {
        let qemu = Qemu::find().map_err(unavailable)?;
        let guest_kernel = image::GuestKernel::find().map_err(|e| unavailable(e.to_string()))?;
        guest_kernel
            .resolve_modules(mode.root_modules())
            .map_err(|e| unavailable(e.to_string()))?;
        image::find_busybox().map_err(|e| unavailable(e.to_string()))?;
        Ok(Self {
            budget,
            qemu,
            guest_kernel,
            mode,
            guest: Guest::Own,
            from_snapshot: false,
            prepared: Mutex::new(None),
        })
    }

    /// The VM from snapshot: isobench's own guest booted once and saved right after its
    /// first 200, every start a restore of that snapshot (`vm-snapshot`).
    pub fn from_snapshot(budget: Budget) -> Result<Self, EnvError> {
        let mut vm = Self::new(budget).map_err(|error| match error {
            EnvError::Unavailable { reason, .. } => EnvError::Unavailable {
                env: SNAPSHOT_NAME.into(),
                reason,
            },
            other => other,
        })?;
        vm.from_snapshot = true;
        Ok(vm)
    }

    /// The VM for a user's image (the boot configuration from [`boot::BOOT_ENV`]).
    pub fn for_image(
        budget: Budget,
        subject: crate::subject::ImageSubject,
        run: crate::env::foreign::ForeignRun,
    ) -> Result<Self, EnvError> {
        let mut vm = Self::new(budget)?;
        vm.guest_kernel
            .resolve_modules(super::rootfs::DISK_MODULES)
            .map_err(|e| unavailable(e.to_string()))?;
        vm.guest = Guest::Image {
            subject: Box::new(subject),
            run,
        };
        Ok(vm)
    }

    /// The boot configuration.
    pub fn mode(&self) -> BootMode {
        self.mode
    }

    /// The accelerator cache key for this host, QEMU and guest kernel.
    fn accel_key(&self) -> String {
        let host_kernel = fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
        accel::cache_key(
            host_kernel.trim(),
            &format!("{} -M {}", self.qemu.version_line, self.mode.machine()),
            &self.guest_kernel.version,
        )
    }

    /// Assembles (or reuses) the image and decides the accelerator, once per value. The
    /// accelerator is a property of the host, QEMU and the guest kernel, so it is probed with
    /// isobench's own guest whatever the guest runs: its server answers within seconds, where
    /// a user's service may take longer than a probe waits.
    fn ensure_prepared(&self) -> Result<(Prepared, Vec<Preparation>), EnvError> {
        let mut slot = self.prepared.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(prepared) = slot.as_ref() {
            return Ok((prepared.clone(), Vec::new()));
        }
        let mut steps = Vec::new();
        let (server, build) = server_binary::static_server()?;
        steps.push(build);
        let inputs =
            ImageInputs::discover(server, self.mode).map_err(|e| unavailable(e.to_string()))?;
        let (image, assembly) =
            image::assemble(&inputs, &cache_root()).map_err(|e| EnvError::Other(e.into()))?;
        steps.push(assembly);

        let started = Instant::now();
        let probe_image = image.clone();
        let (decision, reused) = accel::decide(
            &cache_root(),
            &self.accel_key(),
            accel::kvm_device_usable,
            |cpu| {
                let plan = BootPlan {
                    accel: Accel::Kvm,
                    cpu: cpu.to_owned(),
                    timeout: KVM_PROBE_TIMEOUT,
                    mode: self.mode,
                    tsc_khz: None,
                    qmp: false,
                    incoming: None,
                };
                boot(
                    &self.qemu,
                    &PreparedGuest::own(probe_image.clone()),
                    &self.budget,
                    &plan,
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
        let guest = match &self.guest {
            Guest::Own => PreparedGuest::own(image),
            Guest::Image { subject, run } => {
                let (guest, image_steps) =
                    super::guest::prepare_image(subject, run, self.mode, &cache_root())?;
                steps.extend(image_steps);
                guest
            }
        };
        let mut prepared = Prepared {
            guest,
            accel: decision,
            tsc_khz: boot::host_tsc_khz(Duration::from_millis(50)),
            snapshot: None,
        };
        if self.from_snapshot {
            let (state, taken) = self.ensure_snapshot(&prepared)?;
            steps.push(taken);
            prepared.snapshot = Some(state);
        }
        *slot = Some(prepared.clone());
        Ok((prepared, steps))
    }

    /// The plan for booting (or restoring) the prepared guest.
    fn plan(&self, prepared: &Prepared) -> BootPlan {
        BootPlan {
            accel: prepared.accel.accel,
            cpu: match prepared.accel.accel {
                Accel::Kvm => prepared.accel.cpu.clone(),
                Accel::Tcg | Accel::Provider => TCG_CPU.to_owned(),
            },
            timeout: match &self.guest {
                Guest::Own => boot_timeout(prepared.accel.accel),
                // The user's bound on start → first 2xx, but never below the boot's own.
                Guest::Image { run, .. } => {
                    boot_timeout(prepared.accel.accel).max(run.startup_timeout)
                }
            },
            mode: self.mode,
            tsc_khz: prepared.tsc_khz,
            qmp: false,
            incoming: prepared.snapshot.clone(),
        }
    }

    /// The snapshot of `prepared`'s guest, taken first unless cached: a boot with a QMP
    /// socket, the first 200, a second for the health poller's connections to close (their
    /// user-mode networking state would be saved too), then `migrate` into the cache.
    fn ensure_snapshot(&self, prepared: &Prepared) -> Result<(PathBuf, Preparation), EnvError> {
        let started = Instant::now();
        let plan = BootPlan {
            qmp: true,
            incoming: None,
            ..self.plan(prepared)
        };
        let args: Vec<String> = qemu_command(
            &self.qemu,
            &prepared.guest,
            &self.budget,
            &plan,
            0,
            Path::new("/"),
        )
        .get_args()
        .map(|arg| arg.to_string_lossy().into_owned())
        .collect();
        let dir = cache_root()
            .join("snapshots")
            .join(snapshot::cache_key(&self.qemu.version_line, &args));
        fs::create_dir_all(&dir).map_err(|e| EnvError::Other(e.into()))?;
        let state = dir.join("state");
        let lock = fs::File::create(dir.join("lock")).map_err(|e| EnvError::Other(e.into()))?;
        image::lock_exclusive(&lock).map_err(|e| EnvError::Other(e.into()))?;
        let cached = state.is_file();
        if !cached {
            let instance = boot(
                &self.qemu,
                &prepared.guest,
                &self.budget,
                &plan,
                Instant::now(),
                true,
            )
            .map_err(|e| EnvError::Other(anyhow::anyhow!(e).context("booting to snapshot")))?;
            std::thread::sleep(Duration::from_secs(1));
            let partial = dir.join("state.partial");
            let saved = snapshot::Qmp::connect(&instance.dir().join(QMP_SOCKET))
                .and_then(|mut qmp| snapshot::save(&mut qmp, &partial));
            // QEMU is left paused after the migration: stopped either way.
            let _ = Box::new(instance).stop();
            saved.map_err(|e| EnvError::Other(anyhow::Error::new(e)))?;
            fs::rename(&partial, &state).map_err(|e| EnvError::Other(e.into()))?;
        }
        drop(lock);
        Ok((
            state,
            Preparation {
                what: "vm snapshot (boot, first 200, save the guest)".into(),
                seconds: started.elapsed().as_secs_f64(),
                cached,
            },
        ))
    }

    /// The label's note on what the guest runs.
    fn guest_description(&self) -> String {
        match &self.guest {
            Guest::Own => {
                "no disk: the guest runs from an initramfs (busybox, the server, virtio modules)"
                    .to_owned()
            }
            Guest::Image { subject, run } => format!(
                "{} as the guest's root: its exported root filesystem as an ext4 virtio disk \
                 (mkfs.ext4 -d, attached snapshot=on, mounted {}), its entrypoint run by the \
                 guest init as the image's user{}; the guest's kernel and init are isobench's, \
                 no container runtime inside",
                subject.image.describe(),
                if run.hardening.read_only_root {
                    "read-only as the container's --read-only"
                } else {
                    "writable (--writable-root)"
                },
                if run.hardening.no_new_privileges {
                    " with no-new-privileges"
                } else {
                    ""
                },
            ),
        }
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
        if self.from_snapshot {
            SNAPSHOT_NAME
        } else {
            NAME
        }
    }

    fn prepare(&mut self) -> Result<Vec<Preparation>, EnvError> {
        Ok(self.ensure_prepared()?.1)
    }

    fn start(&self) -> Result<Box<dyn Instance>, EnvError> {
        // The clock starts at the request; preparation (cached after the first call) is
        // reported apart, so it is done before the clock starts.
        let (prepared, _) = self.ensure_prepared()?;
        let requested = Instant::now();
        let plan = self.plan(&prepared);
        let instance = boot(
            &self.qemu,
            &prepared.guest,
            &self.budget,
            &plan,
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
            self.guest_description(),
            format!(
                "QEMU pinned to host CPUs {} with as many vCPUs; machine {}, user-mode \
                 networking (hostfwd) to the guest",
                self.budget.service_cpuset(),
                self.mode.machine()
            ),
            match self.mode {
                BootMode::Fast => "boot: fast (microvm, the uncompressed kernel entered through \
                    PVH, uncompressed initramfs, virtio-mmio); ISOBENCH_VM_BOOT=legacy boots the \
                    seed's q35 configuration"
                    .to_owned(),
                BootMode::Legacy => "boot: legacy (q35, SeaBIOS, compressed bzImage and \
                    initramfs, virtio-pci), the seed's configuration"
                    .to_owned(),
            },
            "startup phases: host clock at QEMU exec and at each serial-console milestone \
             (SeaBIOS's last line, the guest init's markers, the server's `listening on`); \
             kernel entry estimated from the guest's printk clock"
                .to_owned(),
        ];
        if self.from_snapshot {
            notes.push(
                "VM from snapshot: the guest was booted once and saved (QEMU migration to a \
                 file) a second after its first 200; every start restores that state with \
                 -incoming, so startup is QEMU's start, loading the saved RAM and devices, and \
                 the resumed service's first 200, not a boot. The guest's clock, memory and \
                 service are those of the saved moment; its startup phases are only these two"
                    .to_owned(),
            );
        }
        if matches!(self.guest, Guest::Image { .. }) {
            notes.push(
                "startup phases of an image: the root disk is mounted before the network-up \
                 mark; the service's own start and its first 2xx are one phase (a foreign \
                 service prints no `listening on` isobench knows)"
                    .to_owned(),
            );
        }
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
                    "qemu {} ({}, {} boot{}, {})",
                    self.qemu.version,
                    self.mode.machine_name(),
                    self.mode.name(),
                    if self.from_snapshot {
                        ", restored from a snapshot"
                    } else {
                        ""
                    },
                    accel_description(decision.accel)
                )
            }
            None => {
                notes.push("accelerator not decided yet (prepare() was not called)".to_owned());
                format!(
                    "qemu {} ({}, {} boot)",
                    self.qemu.version,
                    self.mode.machine_name(),
                    self.mode.name()
                )
            }
        };
        let accel_attempts = accel
            .as_ref()
            .map(|d| d.attempts.clone())
            .unwrap_or_default();
        let adds = format!(
            "a hypervisor in place of namespaces: QEMU {}, {}, user-mode networking to the guest",
            self.mode.machine_name(),
            accel
                .as_ref()
                .map_or("accelerator not decided", |d| accel_description(d.accel))
        );
        EnvironmentLabel {
            name: self.name().into(),
            kind: EnvKind::Vm,
            runtime,
            accel: accel.map(|d| d.accel),
            service_cpus: self.budget.service_cpus.clone(),
            generator_cpus: self.budget.generator_cpus.clone(),
            memory_limit_bytes: Some(self.budget.memory_limit_bytes),
            kernel: Some(self.guest_kernel.version.clone()),
            image_size_bytes: match &self.guest {
                Guest::Own => prepared.map(|p| p.guest.image.size_bytes),
                // The user's image, as every environment of a foreign service reports it.
                Guest::Image { subject, .. } => Some(subject.image.size_bytes),
            },
            detected: None,
            notes,
            accel_attempts,
            // A restore is a way to start the VM rung, not a rung of its own.
            rung: (!self.from_snapshot).then(|| crate::artifact::Rung::vm(adds)),
        }
    }
}

/// A running VM.
pub struct QemuInstance {
    base_url: String,
    /// The path whose 2xx says the service is up (`/health`, or a foreign image's).
    health_path: String,
    /// Whether it was restored from a snapshot rather than booted.
    restored: bool,
    startup: Duration,
    requested: Instant,
    spawned: Instant,
    console: ConsoleLog,
    /// QEMU's stdin: the console multiplexer's input, which takes the SysRq break.
    control: Mutex<Option<ChildStdin>>,
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

    /// Kills every process in the guest but init (the service among them) with the magic
    /// SysRq key `i` (SIGKILL to all but PID 1), sent as a serial BREAK through the console
    /// multiplexer's `C-a b` escape followed by `i`; the kernel command line enables SysRq.
    /// The guest init then sees the service gone and powers the VM off, so QEMU exits.
    pub fn kill_guest_service(&self) -> Result<(), EnvError> {
        let mut control = self.control.lock().unwrap_or_else(|p| p.into_inner());
        let stdin = control
            .as_mut()
            .ok_or_else(|| EnvError::Other(anyhow::anyhow!("the VM's console input is closed")))?;
        let send = |stdin: &mut ChildStdin, bytes: &[u8]| {
            stdin.write_all(bytes).and_then(|()| stdin.flush())
        };
        send(stdin, b"\x01b")
            .and_then(|()| {
                // The SysRq key must come as a separate character after the break.
                std::thread::sleep(Duration::from_millis(100));
                send(stdin, b"i")
            })
            .map_err(|e| {
                EnvError::Other(anyhow::Error::new(e).context("sending SysRq to the guest"))
            })
    }

    /// The guest's own view of its memory (`/proc/meminfo` through the service's `/status`),
    /// to read beside QEMU's RSS.
    pub fn guest_memory(&self) -> Result<GuestMemory, EnvError> {
        let (status, body) = health::get_json(&self.base_url, "/status")?;
        let field = |name: &str| {
            body.pointer(&format!("/memory/{name}"))
                .and_then(serde_json::Value::as_u64)
        };
        match (status, field("total_bytes"), field("available_bytes")) {
            (200, Some(total_bytes), Some(available_bytes)) => Ok(GuestMemory {
                total_bytes,
                available_bytes,
            }),
            _ => Err(EnvError::Other(anyhow::anyhow!(
                "/status answered {status} without memory.total_bytes/available_bytes: {body}"
            ))),
        }
    }
}

/// Memory as the guest kernel sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GuestMemory {
    /// `MemTotal`: the guest's RAM less what its kernel reserved, bytes.
    pub total_bytes: u64,
    /// `MemAvailable`: what the guest could still allocate, bytes.
    pub available_bytes: u64,
}

impl Instance for QemuInstance {
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
        if self.restored {
            // A restore prints nothing on the guest's console: QEMU's start, then loading the
            // saved state and the resumed service's first answer.
            return crate::env::phases::contiguous(
                self.requested,
                &[
                    ("qemu exec", Some(self.spawned)),
                    ("restore + first 200", Some(self.requested + self.startup)),
                ],
            );
        }
        Milestones::from_lines(&self.console.lines()).phases(
            self.requested,
            self.spawned,
            self.requested + self.startup,
        )
    }

    /// The guest console's last lines, each with its arrival time since QEMU started (a
    /// guest that went quiet shows as a gap), then QEMU's own stderr.
    fn log_tail(&self, lines: usize) -> Vec<String> {
        let console = self.console.lines();
        let mut tail: Vec<String> = console[console.len().saturating_sub(lines)..]
            .iter()
            .map(|line| {
                let at = line.at.saturating_duration_since(self.spawned);
                format!("[{:>8.3} s] {}", at.as_secs_f64(), line.text)
            })
            .collect();
        let stderr = tail_lines(&self.dir().join("qemu.stderr"), lines);
        if !stderr.is_empty() {
            tail.push("QEMU stderr:".to_owned());
            tail.extend(stderr.lines().map(str::to_owned));
        }
        tail
    }

    fn resources(&self) -> Result<ResourceReading, EnvError> {
        let reading = self.probe.read().map_err(|e| {
            EnvError::Other(anyhow::Error::new(e).context("reading the QEMU process"))
        })?;
        Ok(reading.into())
    }

    fn stop(mut self: Box<Self>) -> Result<(), EnvError> {
        // A VM that died on its own (QEMU killed, the guest powered off) must not read as one
        // that stopped cleanly: the round it served is a failed repetition.
        let died = self
            .child
            .try_wait()
            .map_err(|e| EnvError::Other(anyhow::Error::new(e).context("waiting for QEMU")))?;
        self.child
            .stop()
            .map_err(|e| EnvError::Other(anyhow::Error::new(e).context("stopping QEMU")))?;
        match died {
            Some(status) => Err(EnvError::Other(anyhow::anyhow!(
                "QEMU had exited before it was stopped: {status}"
            ))),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::image::VmImage;
    use super::*;

    fn plan(accel: Accel, mode: BootMode) -> BootPlan {
        BootPlan {
            accel,
            cpu: if accel == Accel::Kvm { "host" } else { TCG_CPU }.to_owned(),
            timeout: Duration::from_secs(1),
            mode,
            tsc_khz: Some(2_100_000),
            qmp: false,
            incoming: None,
        }
    }

    fn args_of(command: &Command) -> String {
        command
            .get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join(" ")
    }

    #[test]
    fn the_command_line_follows_the_budget_and_the_boot_mode() {
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
        let own = PreparedGuest::own(image.clone());
        let legacy = qemu_command(
            &qemu,
            &own,
            &budget,
            &plan(Accel::Tcg, BootMode::Legacy),
            40000,
            Path::new("/i"),
        );
        let joined = args_of(&legacy);
        assert!(joined.contains("-M q35 -accel tcg -cpu max"), "{joined}");
        assert!(joined.contains("-smp 2 -m 1024M"), "{joined}");
        assert!(
            joined.contains("-chardev stdio,id=con,mux=on,signal=off -serial chardev:con"),
            "{joined}"
        );
        assert!(
            joined.contains("isa-debugcon,iobase=0x402,chardev=con"),
            "{joined}"
        );
        assert!(
            joined.contains("hostfwd=tcp:127.0.0.1:40000-:8080"),
            "{joined}"
        );
        assert!(joined.contains("-nodefaults -no-reboot"), "{joined}");
        let words: Vec<&str> = joined.split(' ').collect();
        assert_eq!(
            crate::env::orphans::qemu_owner(&words),
            Some(std::process::id())
        );
        assert!(joined.contains("virtio-net-pci"), "{joined}");
        assert!(!joined.contains("tsc_early_khz"), "{joined}");

        let fast = args_of(&qemu_command(
            &qemu,
            &own,
            &budget,
            &plan(Accel::Tcg, BootMode::Fast),
            40000,
            Path::new("/i"),
        ));
        assert!(fast.contains("-M microvm,x-option-roms=off"), "{fast}");
        assert!(fast.contains("virtio-net-device,netdev=net0"), "{fast}");
        assert!(fast.contains("tsc_early_khz=2100000"), "{fast}");
        assert!(!fast.contains("debugcon"), "{fast}");

        let kvm = args_of(&qemu_command(
            &qemu,
            &own,
            &budget,
            &plan(Accel::Kvm, BootMode::Fast),
            40000,
            Path::new("/i"),
        ));
        assert!(kvm.contains("-accel kvm -cpu host"), "{kvm}");
        assert!(!kvm.contains("tsc_early_khz"), "{kvm}");
        assert!(
            !joined.contains("-drive") && !fast.contains("-drive"),
            "{fast}"
        );

        // A user's image: its port forwarded, its root disk attached without writing it.
        let image_guest = PreparedGuest {
            image: image.clone(),
            disk: Some("/c/root.ext4".into()),
            port: 5000,
            health_path: "/ping".into(),
        };
        for (mode, device) in [
            (BootMode::Fast, "virtio-blk-device,drive=root"),
            (BootMode::Legacy, "virtio-blk-pci,drive=root"),
        ] {
            let args = args_of(&qemu_command(
                &qemu,
                &image_guest,
                &budget,
                &plan(Accel::Tcg, mode),
                40000,
                Path::new("/i"),
            ));
            assert!(args.contains("hostfwd=tcp:127.0.0.1:40000-:5000"), "{args}");
            assert!(
                args.contains("-drive file=/c/root.ext4,if=none,id=root,format=raw,snapshot=on"),
                "{args}"
            );
            assert!(args.contains(&format!("-device {device}")), "{args}");
        }

        // Saving a snapshot: a QMP socket in the instance directory; restoring: -incoming.
        let saving = BootPlan {
            qmp: true,
            ..plan(Accel::Tcg, BootMode::Fast)
        };
        let args = args_of(&qemu_command(
            &qemu,
            &own,
            &budget,
            &saving,
            40000,
            Path::new("/i"),
        ));
        assert!(
            args.contains("-qmp unix:/i/qmp.sock,server=on,wait=off"),
            "{args}"
        );
        assert!(!args.contains("-incoming"), "{args}");
        let restoring = BootPlan {
            incoming: Some("/c/it's".into()),
            ..plan(Accel::Tcg, BootMode::Fast)
        };
        let args = args_of(&qemu_command(
            &qemu,
            &own,
            &budget,
            &restoring,
            40000,
            Path::new("/i"),
        ));
        assert!(args.contains(r"-incoming exec:cat '/c/it'\''s'"), "{args}");
        assert!(!args.contains("-qmp"), "{args}");
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

    /// Boots the VM, reads its phases and the guest's memory, kills the service inside the
    /// guest and checks that `/health` stops answering and QEMU exits (the guest init powers
    /// off when the service dies). By hand:
    /// `cargo test --features vm --lib env::vm::qemu::tests::kill -- --ignored --nocapture`.
    #[test]
    #[ignore = "boots a VM (seconds to a minute under TCG); run by hand"]
    fn kill_guest_service_ends_the_service_and_the_vm() {
        let mut vm = QemuVm::new(Budget::for_host()).unwrap();
        vm.prepare().unwrap();
        let env: &dyn Environment = &vm;
        let started = env.start().unwrap();
        let phases = started.startup_phases();
        eprintln!("startup {:?}, phases {phases:#?}", started.startup());
        let sum: f64 = phases.iter().map(|p| p.duration_ms).sum();
        assert!((sum - started.startup().as_secs_f64() * 1e3).abs() < 1.0);
        assert!(
            phases.iter().any(|p| p.name.contains("kernel init")),
            "{phases:?}"
        );
        let (status, _) = health::get_json(started.base_url(), "/health").unwrap();
        assert_eq!(status, 200);
        // Reach the concrete instance through a fresh start (the trait object hides it).
        drop(started);
        let (prepared, _) = vm.ensure_prepared().unwrap();
        let plan = vm.plan(&prepared);
        let mut instance = boot(
            &vm.qemu,
            &prepared.guest,
            &vm.budget,
            &plan,
            Instant::now(),
            true,
        )
        .unwrap();
        let memory = instance.guest_memory().unwrap();
        eprintln!("guest memory {memory:?}");
        assert!(memory.total_bytes > 0 && memory.available_bytes <= memory.total_bytes);
        instance.kill_guest_service().unwrap();
        let exited = instance
            .child
            .wait_timeout(Duration::from_secs(60))
            .unwrap();
        assert!(
            exited.is_some(),
            "QEMU still runs after the service was killed"
        );
        assert!(health::get_json(instance.base_url(), "/health").is_err());
        let console = fs::read_to_string(instance.dir().join("console.log")).unwrap();
        assert!(console.contains("isobench-server exited"), "{console}");
    }
}

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

mod command;
mod instance;
mod launch;

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::accel::{self, AccelDecision};
use super::boot::{self, BootMode};
use super::guest::{Guest, PreparedGuest};
use super::image::{self, ImageInputs};
use super::snapshot;
use crate::artifact::{Accel, EnvKind, EnvironmentLabel, Preparation};
use crate::env::{Budget, EnvError, Environment, Instance};
use crate::subject::server_binary;

use super::scratch_disk::ScratchDisk;
use command::{BootPlan, DataDisk, QMP_SOCKET, TCG_CPU, qemu_command};
pub use command::{GuestRam, Qemu};
pub use instance::QemuInstance;
use launch::{boot, boot_timeout};

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

/// What [`QemuVm::prepare`] produced: the guest and the accelerator.
#[derive(Debug, Clone)]
struct BootInputs {
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
    prepared: Mutex<Option<BootInputs>>,
    /// What the label says of the data disk, learnt from the last instance's (its cache
    /// mode depends on the host file system the disk is on).
    data_disk_words: Mutex<Option<String>>,
    /// What backs the guest's RAM on the host.
    ram: GuestRam,
}

fn unavailable(reason: impl std::fmt::Display) -> EnvError {
    EnvError::Unavailable {
        env: NAME.into(),
        reason: reason.to_string(),
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
        let guest_kernel = image::GuestKernel::find().map_err(unavailable)?;
        guest_kernel
            .resolve_modules(mode.root_modules())
            .map_err(unavailable)?;
        image::find_busybox().map_err(unavailable)?;
        Ok(Self {
            budget,
            qemu,
            guest_kernel,
            mode,
            guest: Guest::Own,
            from_snapshot: false,
            prepared: Mutex::new(None),
            data_disk_words: Mutex::new(None),
            ram: GuestRam::Memfd,
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
            .map_err(unavailable)?;
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
    fn ensure_prepared(&self) -> Result<(BootInputs, Vec<Preparation>), EnvError> {
        let mut slot = self.prepared.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(prepared) = slot.as_ref() {
            return Ok((prepared.clone(), Vec::new()));
        }
        let mut steps = Vec::new();
        let (server, build) = server_binary::static_server()?;
        steps.push(build);
        let inputs = ImageInputs::discover(server, self.mode).map_err(unavailable)?;
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
                    data_disk: None,
                    ram: GuestRam::Memfd,
                };
                boot(
                    &self.qemu,
                    &PreparedGuest::own(probe_image.clone()),
                    &self.budget,
                    &plan,
                    Instant::now(),
                    false,
                )
                .map_err(anyhow::Error::from)
                .and_then(|instance| Ok(Box::new(instance).stop()?))
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
                    super::guest::prepare_image(NAME, subject, run, self.mode, &cache_root())?;
                steps.extend(image_steps);
                guest
            }
        };
        let mut prepared = BootInputs {
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
    fn plan(&self, prepared: &BootInputs) -> BootPlan {
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
            data_disk: None,
            ram: self.ram,
        }
    }

    /// The snapshot of `prepared`'s guest, taken first unless cached: a boot with a QMP
    /// socket, the first 200, a second for the health poller's connections to close (their
    /// user-mode networking state would be saved too), then `migrate` into the cache.
    fn ensure_snapshot(&self, prepared: &BootInputs) -> Result<(PathBuf, Preparation), EnvError> {
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

    /// Where instances mount a data disk, if they get one: isobench's own server at `/data`
    /// when booted, a user's image at its scenario file's `data_dir` (a second disk beside
    /// its root). A snapshot would have to be restored onto a copy of the disk it was saved
    /// with, which this rung does not keep.
    fn data_disk_path(&self) -> Option<&str> {
        match &self.guest {
            Guest::Own if !self.from_snapshot => Some(crate::env::data_dir::CONTAINER_PATH),
            Guest::Own => None,
            Guest::Image { run, .. } => run.data_dir.as_deref(),
        }
    }

    /// What the label says of the data directory.
    fn data_dir_words(&self) -> String {
        let Some(inside) = self.data_disk_path() else {
            return match self.guest {
                Guest::Own => {
                    "none: a restored snapshot has no data disk (/files answers 503)".to_owned()
                }
                Guest::Image { .. } => crate::env::foreign::NO_DATA_DIR.to_owned(),
            };
        };
        let learnt = self
            .data_disk_words
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        learnt.unwrap_or_else(|| {
            format!(
                "its own disk: a fresh ext4 virtio-blk disk per instance mounted at {inside} \
                 (its cache mode is known once one has started)"
            )
        })
    }

    /// The label's note on what the guest runs.
    fn guest_description(&self) -> String {
        match &self.guest {
            Guest::Own => {
                "the guest runs from an initramfs (busybox, the server, virtio modules); its only \
                 disk is the data disk"
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

    /// The accelerator decision a probe already made for this host, QEMU and guest kernel,
    /// if one did: read from the cache, nothing assembled or booted (`isobench doctor`).
    pub fn cached_accel(&self) -> Option<AccelDecision> {
        accel::cached(&cache_root(), &self.accel_key())
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
        // The data disk is made before the clock starts, as a deployed VM's disk exists
        // before the VM does.
        let data_disk = self
            .data_disk_path()
            .map(|inside| ScratchDisk::create(prepared.guest.service_user, inside))
            .transpose()?;
        if let Some(disk) = &data_disk {
            *self
                .data_disk_words
                .lock()
                .unwrap_or_else(|p| p.into_inner()) = Some(disk.describe());
        }
        let requested = Instant::now();
        let plan = BootPlan {
            data_disk: data_disk.as_ref().map(|disk| DataDisk {
                path: disk.path.clone(),
                cache: disk.cache,
            }),
            ..self.plan(&prepared)
        };
        let mut instance = boot(
            &self.qemu,
            &prepared.guest,
            &self.budget,
            &plan,
            requested,
            true,
        )
        .map_err(|e| EnvError::Other(e.into()))?;
        instance.data_disk = data_disk;
        Ok(Box::new(instance))
    }

    fn merge_memory(&mut self) -> bool {
        // A restore needs the RAM it was saved from.
        if self.from_snapshot {
            return false;
        }
        self.ram = GuestRam::Mergeable;
        true
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
            "CPU is the QEMU process's: the guest's vCPUs, device emulation and user-mode \
             networking; the memory limit is the guest's RAM (-m)"
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
            data_dir: Some(self.data_dir_words()),
            memory_counts: Some(crate::probe::footprint::counts(match self.ram {
                GuestRam::Memfd => {
                    "the QEMU process: the guest's RAM (a memfd) as far as the guest has touched \
                     it, less what the guest has freed and handed back (virtio-balloon free-page \
                     reporting, in 2 MiB blocks, a few seconds after), and the emulator's own"
                }
                GuestRam::Mergeable => {
                    "the QEMU process: the guest's RAM (private anonymous memory KSM may merge, \
                     huge pages off) as far as the guest has touched it, less what the guest has \
                     freed and handed back (virtio-balloon free-page reporting), a page merged \
                     with other processes' counted in shares, and the emulator's own"
                }
            })),
            notes,
            accel_attempts,
            // A restore is a way to start the VM rung, not a rung of its own.
            rung: (!self.from_snapshot).then(|| crate::artifact::Rung::vm(adds)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::env::health;

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

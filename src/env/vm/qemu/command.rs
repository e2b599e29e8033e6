//! Finding QEMU and writing its command line for one boot: the machine, the accelerator,
//! the guest's CPUs and memory from the budget, the console, user-mode networking's
//! `hostfwd` on 127.0.0.1, a user image's disk, QMP and a snapshot to restore.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use super::super::accel;
use super::super::boot::BootMode;
use super::super::guest::PreparedGuest;
use super::super::snapshot;
use super::QEMU_ENV;
use crate::artifact::Accel;
use crate::env::Budget;
use crate::probe::pin;

/// Why no usable QEMU was found.
#[derive(Debug, thiserror::Error)]
pub enum QemuMissing {
    /// The binary does not run.
    #[error("cannot run {} ({error}); install qemu-system-x86 or set {QEMU_ENV}", binary.display())]
    CannotRun {
        /// The binary tried.
        binary: PathBuf,
        /// Why it did not run.
        error: std::io::Error,
    },
    /// It ran, but did not say a QEMU version.
    #[error("{} --version printed {printed:?}", binary.display())]
    NoVersion {
        /// The binary tried.
        binary: PathBuf,
        /// The first line it printed.
        printed: String,
    },
}

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
    pub fn find() -> Result<Self, QemuMissing> {
        let binary = std::env::var_os(QEMU_ENV)
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("qemu-system-x86_64"));
        Self::at(binary)
    }

    /// The QEMU at `binary`, if it runs and says its version.
    pub fn at(binary: PathBuf) -> Result<Self, QemuMissing> {
        let output = match Command::new(&binary)
            .arg("--version")
            .stdin(Stdio::null())
            .output()
        {
            Ok(output) => output,
            Err(error) => return Err(QemuMissing::CannotRun { binary, error }),
        };
        let text = String::from_utf8_lossy(&output.stdout);
        let version_line = text.lines().next().unwrap_or_default().trim().to_owned();
        let Some(version) = version_line
            .strip_prefix("QEMU emulator version ")
            .and_then(|rest| rest.split_whitespace().next())
            .map(str::to_owned)
        else {
            return Err(QemuMissing::NoVersion {
                binary,
                printed: version_line,
            });
        };
        Ok(Self {
            binary,
            version,
            version_line,
        })
    }
}

/// Boot settings that differ between the probe and real runs.
#[derive(Debug, Clone)]
pub(super) struct BootPlan {
    pub(super) accel: Accel,
    /// QEMU's `-cpu` value: `max` under TCG, which emulates every feature TCG can, including
    /// the `hypervisor` CPUID bit the service uses to detect a VM; under KVM the model the
    /// probe found to boot.
    pub(super) cpu: String,
    pub(super) timeout: Duration,
    pub(super) mode: BootMode,
    /// The host TSC's frequency, told to a microvm guest under TCG ([`crate::env::vm::boot`]).
    pub(super) tsc_khz: Option<u64>,
    /// Whether QEMU gets a QMP socket (`qmp.sock` in the instance directory), to save a
    /// snapshot through.
    pub(super) qmp: bool,
    /// A snapshot to restore (`-incoming`) instead of booting.
    pub(super) incoming: Option<PathBuf>,
    /// The instance's data disk ([`crate::env::vm::scratch_disk`]), mounted at `/data`.
    pub(super) data_disk: Option<DataDisk>,
    /// What backs the guest's RAM on the host.
    pub(super) ram: GuestRam,
}

/// What backs a guest's RAM on the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum GuestRam {
    /// A memfd (shared memory, 4 KiB pages): the host holds what the guest touched and has
    /// not handed back. Shared memory is never merged by KSM.
    #[default]
    Memfd,
    /// Private anonymous memory QEMU advises mergeable, so KSM can merge identical pages
    /// across VMs; QEMU's huge-page advice is overridden (`PR_SET_THP_DISABLE`), so a
    /// 4 KiB touch costs 4 KiB here as well.
    Mergeable,
}

/// A data disk as QEMU attaches it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct DataDisk {
    /// The disk image.
    pub(super) path: PathBuf,
    /// How QEMU caches it.
    pub(super) cache: crate::env::vm::scratch_disk::CacheMode,
}

/// The CPU model under TCG.
pub(super) const TCG_CPU: &str = "max";

/// The QEMU command line for one boot. The console is a multiplexed stdio character device:
/// QEMU's stdout is the guest's serial output (read by [`crate::env::vm::console`]), and its stdin
/// takes the mux's break escape for SysRq.
pub(super) fn qemu_command(
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
        .args([
            "-object",
            &match plan.ram {
                // QEMU advises transparent huge pages for anonymous guest RAM (the host then
                // backs a 4 KiB guest touch with 2 MiB), which would make the VM's footprint
                // the blocks the guest ever touched rather than the pages it holds; shared
                // memory gets no huge pages unless the host asks for them, as Firecracker's
                // guests.
                GuestRam::Memfd => format!("memory-backend-memfd,id=ram,size={memory_mib}M"),
                GuestRam::Mergeable => {
                    format!("memory-backend-ram,id=ram,size={memory_mib}M,merge=on")
                }
            },
            "-machine",
            "memory-backend=ram",
        ])
        .args(["-nodefaults", "-no-reboot", "-display", "none"])
        // Marks whose QEMU this is, for the orphan sweep (crate::env::orphans::sweep_orphans).
        .args(["-name", &crate::env::orphans::qemu_name(std::process::id())])
        .args(["-chardev", "stdio,id=con,mux=on,signal=off"])
        .args(["-serial", "chardev:con"]);
    if plan.mode == BootMode::Legacy {
        // SeaBIOS logs to the debug port; its `Booting from ROM` marks the firmware's end.
        command.args(["-device", "isa-debugcon,iobase=0x402,chardev=con"]);
    }
    if plan.ram == GuestRam::Mergeable {
        // SAFETY: prctl is async-signal-safe and nothing is allocated after fork.
        unsafe {
            std::os::unix::process::CommandExt::pre_exec(&mut command, || {
                // Inherited across exec: QEMU's MADV_HUGEPAGE on guest RAM then gives none.
                if libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
    }
    command
        .arg("-kernel")
        .arg(&image.kernel)
        .arg("-initrd")
        .arg(&image.initramfs)
        .arg("-append")
        .arg(match &plan.data_disk {
            Some(_) => format!(
                "{} {}",
                plan.mode.cmdline(plan.accel, plan.tsc_khz),
                if guest.is_image() {
                    crate::env::vm::scratch_disk::IMAGE_CMDLINE_FLAG
                } else {
                    crate::env::vm::scratch_disk::CMDLINE_FLAG
                }
            ),
            None => plan.mode.cmdline(plan.accel, plan.tsc_khz),
        })
        .arg("-netdev")
        .arg(format!(
            "user,id=net0,hostfwd=tcp:127.0.0.1:{port}-:{}",
            guest.port
        ))
        .args(["-device", plan.mode.nic()])
        .args(["-device", plan.mode.balloon()]);
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
    if let Some(data) = &plan.data_disk {
        // aio=threads: O_DIRECT without io_uring or native AIO, which not every host allows.
        let mut drive = std::ffi::OsString::from("file=");
        drive.push(&data.path);
        drive.push(format!(
            ",if=none,id=data,format=raw,cache={},aio=threads",
            data.cache.qemu_name()
        ));
        command
            .arg("-drive")
            .arg(drive)
            .args(["-device", plan.mode.data_disk()]);
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
pub(super) const QMP_SOCKET: &str = "qmp.sock";

#[cfg(test)]
mod tests {
    use std::fs;

    use super::super::super::image::VmImage;
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
            data_disk: None,
            ram: GuestRam::Memfd,
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
        assert!(
            joined.contains("-object memory-backend-memfd,id=ram,size=1024M"),
            "{joined}"
        );
        let mergeable = args_of(&qemu_command(
            &qemu,
            &own,
            &budget,
            &BootPlan {
                ram: GuestRam::Mergeable,
                ..plan(Accel::Tcg, BootMode::Legacy)
            },
            40000,
            Path::new("/i"),
        ));
        assert!(
            mergeable.contains(
                "-object memory-backend-ram,id=ram,size=1024M,merge=on -machine memory-backend=ram"
            ),
            "{mergeable}"
        );

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
        assert!(
            fast.contains("-device virtio-balloon-device,free-page-reporting=on"),
            "{fast}"
        );
        assert!(
            joined.contains("-device virtio-balloon-pci,free-page-reporting=on"),
            "{joined}"
        );
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
            service_user: (1000, 1000),
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
        // With a data_dir: the scratch disk beside the root, found by its label in the guest.
        let with_data = BootPlan {
            data_disk: Some(DataDisk {
                path: "/t/data.ext4".into(),
                cache: crate::env::vm::scratch_disk::CacheMode::None,
            }),
            ..plan(Accel::Tcg, BootMode::Fast)
        };
        let args = args_of(&qemu_command(
            &qemu,
            &image_guest,
            &budget,
            &with_data,
            40000,
            Path::new("/i"),
        ));
        assert!(args.contains("id=root,format=raw,snapshot=on"), "{args}");
        assert!(
            args.contains("-drive file=/t/data.ext4,if=none,id=data,format=raw,cache=none"),
            "{args}"
        );
        assert!(args.contains("isobench.data=label:isobench-data"), "{args}");
        assert!(!args.contains("isobench.data=vda"), "{args}");

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
        let err = Qemu::at("/nonexistent/qemu-system-x86_64".into())
            .unwrap_err()
            .to_string();
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
                Err(e) if e.to_string().contains("busy") => {
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
}

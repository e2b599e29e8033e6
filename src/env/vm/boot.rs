//! How the QEMU VM boots: the fast path (the default) or the seed's original configuration
//! (`ISOBENCH_VM_BOOT=legacy`), kept so both can be measured side by side in one run
//! (`vm/compare-boot.sh`).
//!
//! | | legacy | fast |
//! |---|---|---|
//! | machine | `q35` (SeaBIOS, PCI, ACPI, HPET) | `microvm` (qboot-based firmware, no PCI) |
//! | kernel | `vmlinuz` (bzImage): the guest decompresses xz itself | the ELF inside it, entered through PVH |
//! | initramfs | gzip -9 | uncompressed cpio |
//! | NIC | virtio-net-pci | virtio-net-device (virtio-mmio, found through microvm's ACPI) |
//!
//! microvm has no HPET and no ACPI PM timer, so the kernel can only calibrate its TSC against
//! the PIT, which under TCG on a busy host fails and hangs the guest with its clock at 0. The
//! fast path therefore tells the kernel the TSC's frequency (`tsc_early_khz`, measured on the
//! host: under TCG the guest's TSC is the host's) and that it is stable (`tsc=reliable`), and
//! skips the IO-APIC timer check (`no_timer_check`). `cryptomgr.notests` skips the crypto
//! self-tests (~0.3 s of emulated CPU); none of the guest's security depends on them.

use std::time::{Duration, Instant};

use crate::artifact::Accel;

/// Environment variable choosing the boot configuration: `fast` (default) or `legacy`.
pub const BOOT_ENV: &str = "ISOBENCH_VM_BOOT";

/// Kernel parameters both configurations share: serial console, few messages (the console is
/// an emulated UART), power off instead of rebooting on panic, and the magic SysRq key, which
/// [`super::qemu::QemuInstance::kill_guest_service`] uses to kill the service.
const COMMON_CMDLINE: &str = "console=ttyS0 quiet panic=-1 sysrq_always_enabled";

/// One of the two boot configurations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BootMode {
    /// The seed's configuration: q35, SeaBIOS, compressed kernel and initramfs, virtio-pci.
    Legacy,
    /// microvm, PVH entry into the uncompressed kernel, uncompressed initramfs, virtio-mmio.
    Fast,
}

/// A boot mode named neither `fast` nor `legacy`.
#[derive(Debug, thiserror::Error)]
#[error("{BOOT_ENV}={value}: expected fast or legacy")]
pub struct UnknownBootMode {
    /// What was asked for.
    pub value: String,
}

impl BootMode {
    /// The mode named by [`BOOT_ENV`]; unset means [`BootMode::Fast`].
    pub fn from_env() -> Result<Self, UnknownBootMode> {
        match std::env::var(BOOT_ENV) {
            Err(_) => Ok(Self::Fast),
            Ok(value) => Self::parse(&value),
        }
    }

    /// `fast` or `legacy` (case-insensitive; empty means fast).
    pub fn parse(value: &str) -> Result<Self, UnknownBootMode> {
        match value.trim().to_ascii_lowercase().as_str() {
            "" | "fast" => Ok(Self::Fast),
            "legacy" => Ok(Self::Legacy),
            other => Err(UnknownBootMode {
                value: other.to_owned(),
            }),
        }
    }

    /// Short name for labels and file names.
    pub fn name(self) -> &'static str {
        match self {
            Self::Legacy => "legacy",
            Self::Fast => "fast",
        }
    }

    /// The QEMU machine type (with options).
    pub fn machine(self) -> &'static str {
        match self {
            Self::Legacy => "q35",
            // No option ROMs to scan; ACPI stays on, since the kernel finds the virtio-mmio
            // devices through it (Debian's kernel lacks CONFIG_VIRTIO_MMIO_CMDLINE_DEVICES).
            Self::Fast => "microvm,x-option-roms=off",
        }
    }

    /// The machine type without options, for labels.
    pub fn machine_name(self) -> &'static str {
        match self {
            Self::Legacy => "q35",
            Self::Fast => "microvm",
        }
    }

    /// The modules the guest loads for its NIC and its balloon (dependencies come from
    /// `modules.dep`).
    pub fn root_modules(self) -> &'static [&'static str] {
        match self {
            Self::Legacy => &["virtio_pci", "virtio_net", "virtio_balloon"],
            Self::Fast => &["virtio_mmio", "virtio_net", "virtio_balloon"],
        }
    }

    /// The balloon, for free-page reporting only (never inflated): the guest tells QEMU which
    /// of its pages are free, in blocks of 2 MiB, and QEMU gives them back to the host. Without
    /// it, RAM the guest touched once stays in QEMU's footprint for the VM's life, and its
    /// memory readings would be a lifetime high-water mark rather than what it holds now.
    pub fn balloon(self) -> &'static str {
        match self {
            Self::Legacy => "virtio-balloon-pci,free-page-reporting=on",
            Self::Fast => "virtio-balloon-device,free-page-reporting=on",
        }
    }

    /// The NIC device, attached to netdev `net0`.
    pub fn nic(self) -> &'static str {
        match self {
            // No option ROM: nothing network-boots.
            Self::Legacy => "virtio-net-pci,netdev=net0,romfile=",
            Self::Fast => "virtio-net-device,netdev=net0",
        }
    }

    /// The disk device for a user's image as the guest's root, attached to drive `root`.
    pub fn disk(self) -> &'static str {
        match self {
            Self::Legacy => "virtio-blk-pci,drive=root",
            Self::Fast => "virtio-blk-device,drive=root",
        }
    }

    /// The `-device` of the data disk ([`crate::env::vm::scratch_disk`]).
    pub fn data_disk(self) -> &'static str {
        match self {
            Self::Legacy => "virtio-blk-pci,drive=data",
            Self::Fast => "virtio-blk-device,drive=data",
        }
    }

    /// Whether the guest boots the ELF kernel through PVH (and an uncompressed initramfs).
    pub fn uncompressed(self) -> bool {
        self == Self::Fast
    }

    /// The kernel command line. `tsc_khz` is the host TSC's frequency (see the module docs);
    /// under KVM the kernel reads its clock from kvmclock and needs no hint.
    pub fn cmdline(self, accel: Accel, tsc_khz: Option<u64>) -> String {
        let mut line = COMMON_CMDLINE.to_owned();
        if self == Self::Fast {
            if accel != Accel::Kvm
                && let Some(khz) = tsc_khz
            {
                line.push_str(&format!(" tsc_early_khz={khz}"));
            }
            line.push_str(" tsc=reliable no_timer_check cryptomgr.notests");
        }
        line
    }
}

/// The host TSC's frequency in kHz, measured against the monotonic clock over `window`.
/// Under TCG the guest reads the host's TSC, so this is the frequency the guest would
/// otherwise have to calibrate.
#[cfg(target_arch = "x86_64")]
pub fn host_tsc_khz(window: Duration) -> Option<u64> {
    // SAFETY: RDTSC has no preconditions on x86_64.
    let rdtsc = || unsafe { core::arch::x86_64::_rdtsc() };
    let (t0, c0) = (Instant::now(), rdtsc());
    std::thread::sleep(window);
    let (c1, t1) = (rdtsc(), Instant::now());
    let nanos = t1.duration_since(t0).as_nanos() as u64;
    (nanos > 0 && c1 > c0).then(|| (c1 - c0) * 1_000_000 / nanos)
}

/// Elsewhere there is no TSC to tell the guest about.
#[cfg(not(target_arch = "x86_64"))]
pub fn host_tsc_khz(_window: Duration) -> Option<u64> {
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_parse_and_say_how_they_boot() {
        assert_eq!(BootMode::parse("").unwrap(), BootMode::Fast);
        assert_eq!(BootMode::parse("Legacy").unwrap(), BootMode::Legacy);
        assert!(
            BootMode::parse("turbo")
                .unwrap_err()
                .to_string()
                .contains("fast or legacy")
        );
        assert_eq!(BootMode::Legacy.machine(), "q35");
        assert!(BootMode::Fast.machine().starts_with("microvm"));
        assert!(BootMode::Fast.root_modules().contains(&"virtio_mmio"));
        assert!(BootMode::Legacy.root_modules().contains(&"virtio_pci"));
        let fast = BootMode::Fast.cmdline(Accel::Tcg, Some(2_100_000));
        assert!(
            fast.contains("tsc_early_khz=2100000 tsc=reliable"),
            "{fast}"
        );
        assert!(fast.contains("sysrq_always_enabled"), "{fast}");
        assert!(
            !BootMode::Fast
                .cmdline(Accel::Kvm, Some(1))
                .contains("tsc_early_khz")
        );
        assert_eq!(
            BootMode::Legacy.cmdline(Accel::Tcg, Some(1)),
            "console=ttyS0 quiet panic=-1 sysrq_always_enabled"
        );
    }

    #[test]
    #[cfg(target_arch = "x86_64")]
    fn the_host_tsc_has_a_plausible_frequency() {
        let khz = host_tsc_khz(Duration::from_millis(20)).unwrap();
        // Any x86_64 TSC of this century: between 100 MHz and 10 GHz.
        assert!((100_000..10_000_000).contains(&khz), "{khz}");
    }
}

//! KVM or TCG: decided by booting, not by the presence of `/dev/kvm`.
//!
//! On some hosts `/dev/kvm` opens but guests hang right after the kernel decompresses, or QEMU
//! aborts setting an MSR; only a boot that reaches `/health` proves KVM works. The probe
//! boots the real image under KVM with a short timeout, once per CPU model in
//! [`KVM_CPU_MODELS`] (the ones that commonly work under nested virtualisation, where the
//! outer hypervisor hides or refuses some MSRs and PMU features), and takes the first that
//! answers; if none does, TCG (software emulation) is used. Every attempt is recorded. The decision is cached on disk under `target/isobench/vm/`, keyed by
//! the host kernel, the QEMU version and the guest kernel, so each test process does not
//! repeat the probe; a file lock makes parallel processes probe once.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::artifact::{Accel, AccelAttempt};

/// Environment variable forcing the accelerator (`kvm` or `tcg`), skipping the probe.
pub const ACCEL_ENV: &str = "ISOBENCH_VM_ACCEL";

/// CPU models the KVM probe tries, in order: the host's own; the host's without the PMU
/// and `IA32_ARCH_CAPABILITIES` (MSR 0x10a, which nested hypervisors often refuse to set:
/// QEMU then aborts with "failed to set MSR 0x10a"); everything KVM offers without the PMU;
/// and the conservative `kvm64`.
pub const KVM_CPU_MODELS: &[&str] = &[
    "host",
    "host,pmu=off,-arch-capabilities",
    "max,pmu=off",
    "kvm64",
];

/// The CPU model used under KVM when it is forced without a probe.
const FORCED_KVM_CPU: &str = "host";
/// The CPU model used under TCG.
const TCG_CPU: &str = "max";

fn tcg_cpu() -> String {
    TCG_CPU.to_owned()
}

/// The accelerator to use and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AccelDecision {
    /// KVM or TCG.
    pub accel: Accel,
    /// Why, in words for the report: the probe's outcome, or that it was forced.
    pub reason: String,
    /// How long the KVM probe boot took, seconds, when one ran.
    pub probe_seconds: Option<f64>,
    /// What the decision is valid for: host kernel, QEMU version, guest kernel.
    pub key: String,
    /// QEMU's `-cpu` value to use.
    #[serde(default = "tcg_cpu")]
    pub cpu: String,
    /// Every KVM probe attempt, in order.
    #[serde(default)]
    pub attempts: Vec<AccelAttempt>,
}

impl AccelDecision {
    /// The accelerator as QEMU's `-accel` names it.
    pub fn qemu_name(&self) -> &'static str {
        qemu_name(self.accel)
    }
}

/// QEMU's `-accel` name for `accel` (the provider's choice is never QEMU's, so TCG for it).
pub fn qemu_name(accel: Accel) -> &'static str {
    match accel {
        Accel::Kvm => "kvm",
        Accel::Tcg | Accel::Provider => "tcg",
    }
}

/// The cache key: what a KVM probe's outcome depends on.
pub fn cache_key(host_kernel: &str, qemu_version: &str, guest_kernel: &str) -> String {
    format!("host {host_kernel}; {qemu_version}; guest {guest_kernel}")
}

fn cache_path(cache_root: &Path, key: &str) -> PathBuf {
    let digest = Sha256::digest(key.as_bytes());
    let short: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
    cache_root.join(format!("accel-{short}.json"))
}

/// An accelerator forced by [`ACCEL_ENV`] that is neither KVM nor TCG.
#[derive(Debug, thiserror::Error)]
#[error("{ACCEL_ENV}={value}: expected kvm or tcg")]
pub struct UnknownAccel {
    /// What was asked for.
    pub value: String,
}

/// Why `/dev/kvm` cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("/dev/kvm cannot be opened: {0}")]
pub struct KvmDeviceUnusable(io::Error);

impl From<io::Error> for KvmDeviceUnusable {
    fn from(error: io::Error) -> Self {
        Self(error)
    }
}

impl KvmDeviceUnusable {
    /// Why the open failed: `PermissionDenied` is a group membership away from working,
    /// `NotFound` is a host without KVM.
    pub fn kind(&self) -> io::ErrorKind {
        self.0.kind()
    }
}

/// The forced accelerator from [`ACCEL_ENV`], if set; an unknown value is an error.
pub fn forced(key: &str) -> Result<Option<AccelDecision>, UnknownAccel> {
    let Some(value) = std::env::var_os(ACCEL_ENV) else {
        return Ok(None);
    };
    let (accel, cpu) = match value.to_string_lossy().to_ascii_lowercase().as_str() {
        "kvm" => (Accel::Kvm, FORCED_KVM_CPU),
        "tcg" => (Accel::Tcg, TCG_CPU),
        other => {
            return Err(UnknownAccel {
                value: other.to_owned(),
            });
        }
    };
    Ok(Some(AccelDecision {
        accel,
        reason: format!("forced by {ACCEL_ENV}"),
        probe_seconds: None,
        key: key.to_owned(),
        cpu: cpu.to_owned(),
        attempts: Vec::new(),
    }))
}

/// Whether `/dev/kvm` can be opened read-write (necessary, not sufficient, for KVM).
pub fn kvm_device_usable() -> Result<(), KvmDeviceUnusable> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm")
        .map(drop)
        .map_err(KvmDeviceUnusable)
}

/// The decision cached for `key`, if a probe already ran.
pub fn cached(cache_root: &Path, key: &str) -> Option<AccelDecision> {
    let text = fs::read_to_string(cache_path(cache_root, key)).ok()?;
    let decision: AccelDecision = serde_json::from_str(&text).ok()?;
    (decision.key == key).then_some(decision)
}

/// One line of a possibly multi-line reason, for labels and tables.
fn one_line(why: &str) -> String {
    why.split('\n')
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" | ")
}

/// Decides the accelerator for `key`: forced by [`ACCEL_ENV`], TCG without a usable
/// `/dev/kvm`, the cached decision, or else the outcome of `probe_kvm` (a KVM boot with the
/// given `-cpu` value that returns `Err(why)` when it does not reach `/health`), tried for
/// each of [`KVM_CPU_MODELS`] until one boots; the decision is then cached. The boolean is
/// whether a stored decision was reused.
pub fn decide<DeviceError: std::fmt::Display, ProbeError: std::fmt::Display>(
    cache_root: &Path,
    key: &str,
    kvm_device: impl FnOnce() -> Result<(), DeviceError>,
    mut probe_kvm: impl FnMut(&str) -> Result<(), ProbeError>,
) -> io::Result<(AccelDecision, bool)> {
    if let Some(decision) = forced(key).map_err(io::Error::other)? {
        return Ok((decision, false));
    }
    if let Err(why) = kvm_device() {
        return Ok((
            AccelDecision {
                accel: Accel::Tcg,
                reason: format!("TCG: {why}"),
                probe_seconds: None,
                key: key.to_owned(),
                cpu: tcg_cpu(),
                attempts: Vec::new(),
            },
            false,
        ));
    }
    fs::create_dir_all(cache_root)?;
    let path = cache_path(cache_root, key);
    let lock = File::create(path.with_extension("lock"))?;
    // Parallel processes wait here for the first one's probe and then read its result.
    super::image::lock_exclusive(&lock)?;
    if let Some(decision) = cached(cache_root, key) {
        return Ok((decision, true));
    }
    let started = Instant::now();
    let mut attempts = Vec::new();
    for cpu in KVM_CPU_MODELS {
        let tried = Instant::now();
        let outcome = probe_kvm(cpu);
        let seconds = tried.elapsed().as_secs_f64();
        attempts.push(AccelAttempt {
            accel: "kvm".into(),
            cpu: (*cpu).to_owned(),
            ok: outcome.is_ok(),
            reason: match &outcome {
                Ok(()) => format!("answered /health after {seconds:.1} s"),
                Err(why) => one_line(&why.to_string()),
            },
            seconds,
        });
        if outcome.is_ok() {
            break;
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    let decision = match attempts.iter().find(|a| a.ok) {
        Some(winner) => AccelDecision {
            accel: Accel::Kvm,
            reason: format!(
                "KVM: a probe boot with -cpu {} answered /health after {:.1} s ({} attempt(s))",
                winner.cpu,
                winner.seconds,
                attempts.len()
            ),
            probe_seconds: Some(seconds),
            key: key.to_owned(),
            cpu: winner.cpu.clone(),
            attempts,
        },
        None => AccelDecision {
            accel: Accel::Tcg,
            // One line: the reason goes into labels and tables.
            reason: format!(
                "TCG: /dev/kvm opens, but no KVM probe boot answered (tried -cpu {}; first \
                 failure: {})",
                KVM_CPU_MODELS.join(" / "),
                attempts.first().map_or("", |a| a.reason.as_str())
            ),
            probe_seconds: Some(seconds),
            key: key.to_owned(),
            cpu: tcg_cpu(),
            attempts,
        },
    };
    let tmp = path.with_extension("json.tmp");
    fs::write(&tmp, serde_json::to_vec_pretty(&decision)?)?;
    fs::rename(&tmp, &path)?;
    Ok((decision, false))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    // ACCEL_ENV is read by `decide`; these tests assume it is unset, as in a normal test run.
    fn skip_if_forced() -> bool {
        std::env::var_os(ACCEL_ENV).is_some()
    }

    #[test]
    fn a_probe_result_is_cached_and_reused() {
        if skip_if_forced() {
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let key = cache_key("6.18", "QEMU emulator version 7.2.22", "6.1.0-57-amd64");
        let probes = Cell::new(0);
        let probe = |_: &str| {
            probes.set(probes.get() + 1);
            Err("no answer within 20 s;\nconsole ends with:\nProbing EDD".to_owned())
        };
        let (first, reused) = decide(dir.path(), &key, || Ok::<(), &str>(()), probe).unwrap();
        assert!(!reused);
        assert_eq!(first.accel, Accel::Tcg);
        assert!(
            first.reason.contains("no answer within 20 s"),
            "{}",
            first.reason
        );
        assert!(!first.reason.contains('\n'), "{}", first.reason);
        assert!(first.probe_seconds.is_some());
        // Every CPU model was tried, and each attempt is on record.
        assert_eq!(first.attempts.len(), KVM_CPU_MODELS.len());
        assert!(first.attempts.iter().all(|a| !a.ok && a.accel == "kvm"));
        assert_eq!(first.attempts[1].cpu, KVM_CPU_MODELS[1]);
        assert_eq!(first.cpu, "max");

        let (second, reused) = decide(
            dir.path(),
            &key,
            || Ok::<(), &str>(()),
            |_| -> Result<(), &str> { unreachable!() },
        )
        .unwrap();
        assert!(reused);
        assert_eq!(second, first);
        assert_eq!(probes.get(), KVM_CPU_MODELS.len());
        assert_eq!(cached(dir.path(), &key), Some(first));

        // Another key (say, a QEMU upgrade) probes again, and a success means KVM.
        let other = cache_key("6.18", "QEMU emulator version 8.0", "6.1.0-57-amd64");
        assert_eq!(cached(dir.path(), &other), None);
        // The first model fails the way nested hosts fail, the second boots.
        let (kvm, reused) = decide(
            dir.path(),
            &other,
            || Ok::<(), &str>(()),
            |cpu| {
                if cpu == "host" {
                    Err("qemu: error: failed to set MSR 0x10a to 0x0")
                } else {
                    Ok(())
                }
            },
        )
        .unwrap();
        assert!(!reused);
        assert_eq!(kvm.accel, Accel::Kvm);
        assert_eq!(kvm.qemu_name(), "kvm");
        assert_eq!(kvm.cpu, KVM_CPU_MODELS[1]);
        let outcomes: Vec<bool> = kvm.attempts.iter().map(|a| a.ok).collect();
        assert_eq!(outcomes, [false, true]);
        assert!(kvm.attempts[0].reason.contains("MSR 0x10a"));
    }

    #[test]
    fn no_usable_kvm_device_means_tcg_without_a_probe() {
        if skip_if_forced() {
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let (decision, reused) = decide(
            dir.path(),
            "k",
            || Err::<(), &str>("/dev/kvm cannot be opened: No such file"),
            |_| -> Result<(), &str> { unreachable!() },
        )
        .unwrap();
        assert!(!reused);
        assert_eq!(decision.accel, Accel::Tcg);
        assert_eq!(decision.qemu_name(), "tcg");
        assert!(decision.reason.contains("/dev/kvm"));
    }

    #[test]
    fn a_corrupt_cache_file_is_ignored() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(cache_path(dir.path(), "k"), "{not json").unwrap();
        assert_eq!(cached(dir.path(), "k"), None);
    }
}

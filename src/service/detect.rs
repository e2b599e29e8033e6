//! How the service sees its environment: `native`, `container` or `vm`, *detected* from
//! what the process can observe, never configured, and reported with the evidence.
//!
//! The signs are the ones systemd-detect-virt and virt-what look at:
//! - container: `/.dockerenv` (Docker), `/run/.containerenv` (Podman), a `container=`
//!   variable in the environment (systemd-nspawn, LXC, Podman), a container runtime's name
//!   in the process's cgroup path (`/proc/self/cgroup`: docker, containerd, kubepods,
//!   libpod, lxc);
//! - vm: the `hypervisor` CPU flag (`/proc/cpuinfo`; set by KVM, Xen, Hyper-V, VMware,
//!   Firecracker), a hypervisor vendor or product in DMI (`/sys/class/dmi/id/sys_vendor`,
//!   `product_name`), and `/sys/hypervisor/type` (Xen).
//!
//! A container inside a VM shows both; container signs win, because the container is the
//! isolation boundary closest to the service. The reading is a pure function of a
//! [`Probe`], so every rule is unit-tested against a fake filesystem.

use std::fmt;
use std::path::Path;

use serde::Serialize;

/// What the service runs in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// No sign of a container or a hypervisor.
    Native,
    /// A container (its signs take precedence over a VM's).
    Container,
    /// A virtual machine.
    Vm,
}

impl Kind {
    /// The lowercase name used in `/status` (`native`, `container`, `vm`).
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Native => "native",
            Kind::Container => "container",
            Kind::Vm => "vm",
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The verdict and what it rests on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Detection {
    /// The environment detected.
    pub kind: Kind,
    /// Every sign seen, container and VM alike, one human-readable line each.
    pub evidence: Vec<String>,
}

/// What detection may look at: file contents and the process environment.
pub trait Probe {
    /// The contents of `path`, if it exists and is readable.
    fn read(&self, path: &str) -> Option<String>;
    /// Whether `path` exists.
    fn exists(&self, path: &str) -> bool;
    /// The value of environment variable `name`.
    fn var(&self, name: &str) -> Option<String>;
}

/// The real filesystem and environment of this process.
#[derive(Debug, Clone, Copy, Default)]
pub struct System;

impl Probe for System {
    fn read(&self, path: &str) -> Option<String> {
        std::fs::read_to_string(path).ok()
    }
    fn exists(&self, path: &str) -> bool {
        Path::new(path).exists()
    }
    fn var(&self, name: &str) -> Option<String> {
        std::env::var(name).ok()
    }
}

/// Detects the environment of the calling process.
pub fn detect() -> Detection {
    detect_with(&System)
}

/// Names in a cgroup path that a container runtime puts there.
const CGROUP_RUNTIMES: [&str; 6] = ["docker", "containerd", "kubepods", "libpod", "lxc", "crio"];

/// DMI vendor and product names of hypervisors (lowercase substrings).
const DMI_HYPERVISORS: [&str; 12] = [
    "qemu",
    "kvm",
    "vmware",
    "virtualbox",
    "innotek",
    "xen",
    "bochs",
    "parallels",
    "bhyve",
    "firecracker",
    "amazon ec2",
    "google compute engine",
];

/// Detects the environment from what `probe` shows.
pub fn detect_with(probe: &impl Probe) -> Detection {
    let containers = container_signs(probe);
    let vms = vm_signs(probe);
    let kind = if !containers.is_empty() {
        Kind::Container
    } else if !vms.is_empty() {
        Kind::Vm
    } else {
        Kind::Native
    };
    let mut evidence: Vec<String> = containers.into_iter().chain(vms).collect();
    if evidence.is_empty() {
        evidence.push("no container or hypervisor signs found".to_owned());
    }
    Detection { kind, evidence }
}

fn container_signs(probe: &impl Probe) -> Vec<String> {
    let mut signs = Vec::new();
    for marker in ["/.dockerenv", "/run/.containerenv"] {
        if probe.exists(marker) {
            signs.push(format!("{marker} exists"));
        }
    }
    if let Some(value) = probe.var("container").filter(|v| !v.is_empty()) {
        signs.push(format!("environment variable container={value}"));
    }
    if let Some(cgroup) = probe.read("/proc/self/cgroup") {
        for line in cgroup.lines() {
            // `hierarchy-id:controllers:path`; the path may itself contain ':'.
            let path = line.splitn(3, ':').nth(2).unwrap_or_default();
            let lower = path.to_ascii_lowercase();
            if let Some(runtime) = CGROUP_RUNTIMES.iter().find(|r| lower.contains(*r)) {
                signs.push(format!("/proc/self/cgroup names {runtime}: {line}"));
                break;
            }
        }
    }
    signs
}

fn vm_signs(probe: &impl Probe) -> Vec<String> {
    let mut signs = Vec::new();
    if let Some(cpuinfo) = probe.read("/proc/cpuinfo") {
        let hypervisor_flag = cpuinfo
            .lines()
            .filter(|line| line.starts_with("flags"))
            .any(|line| line.split_whitespace().any(|flag| flag == "hypervisor"));
        if hypervisor_flag {
            signs.push("/proc/cpuinfo has the hypervisor CPU flag".to_owned());
        }
    }
    for field in ["sys_vendor", "product_name"] {
        let path = format!("/sys/class/dmi/id/{field}");
        if let Some(value) = probe.read(&path) {
            let value = value.trim();
            let lower = value.to_ascii_lowercase();
            if DMI_HYPERVISORS.iter().any(|name| lower.contains(name)) {
                signs.push(format!("DMI {field} is {value:?}"));
            }
        }
    }
    if let Some(kind) = probe.read("/sys/hypervisor/type") {
        let kind = kind.trim();
        if !kind.is_empty() {
            signs.push(format!("/sys/hypervisor/type is {kind:?}"));
        }
    }
    signs
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[derive(Default)]
    struct Fake {
        files: HashMap<&'static str, &'static str>,
        vars: HashMap<&'static str, &'static str>,
    }

    impl Probe for Fake {
        fn read(&self, path: &str) -> Option<String> {
            self.files.get(path).map(|s| s.to_string())
        }
        fn exists(&self, path: &str) -> bool {
            self.files.contains_key(path)
        }
        fn var(&self, name: &str) -> Option<String> {
            self.vars.get(name).map(|s| s.to_string())
        }
    }

    fn fake(files: &[(&'static str, &'static str)]) -> Fake {
        Fake {
            files: files.iter().copied().collect(),
            vars: HashMap::new(),
        }
    }

    const BARE_CPUINFO: &str = "processor\t: 0\nflags\t\t: fpu vme de pse sse2\n";
    const VM_CPUINFO: &str = "processor\t: 0\nflags\t\t: fpu vme hypervisor sse2\n";
    const HOST_CGROUP: &str = "12:memory:/user.slice\n0::/init.scope\n";

    #[test]
    fn bare_metal_is_native() {
        let detection = detect_with(&fake(&[
            ("/proc/cpuinfo", BARE_CPUINFO),
            ("/proc/self/cgroup", HOST_CGROUP),
            ("/sys/class/dmi/id/sys_vendor", "Dell Inc.\n"),
            ("/sys/class/dmi/id/product_name", "PowerEdge R640\n"),
        ]));
        assert_eq!(detection.kind, Kind::Native);
        assert_eq!(detection.evidence.len(), 1);
    }

    #[test]
    fn hypervisor_flag_or_dmi_means_vm() {
        let detection = detect_with(&fake(&[("/proc/cpuinfo", VM_CPUINFO)]));
        assert_eq!(detection.kind, Kind::Vm);
        assert!(detection.evidence[0].contains("hypervisor"));

        let detection = detect_with(&fake(&[
            ("/proc/cpuinfo", BARE_CPUINFO),
            ("/sys/class/dmi/id/sys_vendor", "QEMU\n"),
            (
                "/sys/class/dmi/id/product_name",
                "Standard PC (Q35 + ICH9, 2009)\n",
            ),
        ]));
        assert_eq!(detection.kind, Kind::Vm);
        assert_eq!(detection.evidence, vec!["DMI sys_vendor is \"QEMU\""]);
    }

    #[test]
    fn a_flag_named_like_hypervisor_is_not_the_flag() {
        let detection = detect_with(&fake(&[(
            "/proc/cpuinfo",
            "flags\t: fpu hypervisor_x sse2\nbugs\t: hypervisor\n",
        )]));
        assert_eq!(detection.kind, Kind::Native);
    }

    #[test]
    fn container_signs_are_each_enough() {
        for files in [
            vec![("/.dockerenv", "")],
            vec![("/run/.containerenv", "")],
            vec![(
                "/proc/self/cgroup",
                "4:memory:/docker/0123abcd\n0::/system.slice/containerd.service\n",
            )],
            vec![("/proc/self/cgroup", "0::/kubepods/burstable/pod1/abc\n")],
        ] {
            let detection = detect_with(&fake(&files));
            assert_eq!(detection.kind, Kind::Container, "{files:?}");
        }
        let mut with_var = fake(&[]);
        with_var.vars.insert("container", "podman");
        assert_eq!(detect_with(&with_var).kind, Kind::Container);
    }

    #[test]
    fn container_in_a_vm_is_a_container_with_both_signs_listed() {
        let detection = detect_with(&fake(&[("/.dockerenv", ""), ("/proc/cpuinfo", VM_CPUINFO)]));
        assert_eq!(detection.kind, Kind::Container);
        assert_eq!(detection.evidence.len(), 2);
        assert_eq!(detection.evidence[0], "/.dockerenv exists");
    }

    #[test]
    fn detecting_this_process_gives_an_answer_with_evidence() {
        let detection = detect();
        assert!(!detection.evidence.is_empty());
        let json = serde_json::to_value(&detection).unwrap();
        assert!(["native", "container", "vm"].contains(&json["kind"].as_str().unwrap()));
    }
}

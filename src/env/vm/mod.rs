//! VM environments: a QEMU VM (kernel + initramfs, no disk) assembled by isobench itself (the default, runs here and
//! in CI), and a Vagrant box for users who have Vagrant and a provider (`ISOBENCH_VM=vagrant`).
//!
//! - [`image`]: the guest image (Debian kernel + initramfs with busybox, the static server and
//!   the virtio modules), cached by content hash; [`newc`] writes its cpio archive.
//! - [`guest`]: what the guest runs, isobench's server or a user's image, whose root
//!   filesystem [`rootfs`] makes into the guest's disk.
//! - [`accel`]: KVM or TCG, decided by a probe boot and cached.
//! - [`qemu`]: the QEMU environment and instance; [`child`] keeps QEMU from outliving us.
//! - [`vagrant`]: `vagrant up` / `vagrant destroy` around `vm/Vagrantfile`.

pub mod accel;
pub mod boot;
pub mod child;
pub mod console;
pub mod guest;
pub mod image;
pub mod kernel_elf;
pub mod newc;
pub mod qemu;
pub mod rootfs;
pub mod scratch_disk;
pub mod snapshot;
pub mod vagrant;

pub use accel::AccelDecision;
pub use boot::BootMode;
pub use qemu::{QemuInstance, QemuVm};
pub use vagrant::{VagrantInstance, VagrantVm};

use crate::env::{Budget, EnvError, Environment};

/// Environment variable choosing the VM backend: `qemu` (default) or `vagrant`.
pub const VM_BACKEND_ENV: &str = "ISOBENCH_VM";

/// The VM environment chosen by [`VM_BACKEND_ENV`]: the QEMU VM unless it says `vagrant`.
pub fn from_env(budget: Budget) -> Result<Box<dyn Environment>, EnvError> {
    by_name(&std::env::var(VM_BACKEND_ENV).unwrap_or_default(), budget)
}

/// The VM environment for a backend name: `qemu` (or empty) or `vagrant`.
pub fn by_name(choice: &str, budget: Budget) -> Result<Box<dyn Environment>, EnvError> {
    match backend(choice)? {
        Backend::Qemu => Ok(Box::new(QemuVm::new(budget)?)),
        Backend::Vagrant => Ok(Box::new(VagrantVm::new(budget)?)),
    }
}

/// A VM backend.
enum Backend {
    Qemu,
    Vagrant,
}

/// The backend a name chooses: `qemu` (or empty) or `vagrant`, in any case.
fn backend(choice: &str) -> Result<Backend, EnvError> {
    match choice.trim().to_ascii_lowercase().as_str() {
        "" | "qemu" => Ok(Backend::Qemu),
        "vagrant" => Ok(Backend::Vagrant),
        other => Err(EnvError::Unavailable {
            env: qemu::NAME.into(),
            reason: format!("{VM_BACKEND_ENV}={other}: expected qemu or vagrant"),
        }),
    }
}

/// The accelerator the QEMU VM uses on this machine, for trial names and labels: the
/// cached decision if there is one, else assembles the image and runs the KVM probe once
/// (later calls, in any process, read the cache).
pub fn accel_decision(budget: Budget) -> Result<AccelDecision, EnvError> {
    QemuVm::new(budget)?.accel_decision()
}

/// The VM environment for a user's image: the QEMU VM with the image's root filesystem as
/// its disk ([`guest`]). Vagrant boots a box of its own, which runs only isobench's server.
pub fn foreign(
    budget: Budget,
    image: crate::subject::ImageSubject,
    run: crate::env::foreign::ForeignRun,
) -> Result<Box<dyn Environment>, EnvError> {
    match backend(&std::env::var(VM_BACKEND_ENV).unwrap_or_default())? {
        Backend::Qemu => Ok(Box::new(QemuVm::for_image(budget, image, run)?)),
        Backend::Vagrant => Err(EnvError::Unavailable {
            env: qemu::NAME.into(),
            reason: format!(
                "{VM_BACKEND_ENV}=vagrant: a user's image boots only in the QEMU VM (unset {VM_BACKEND_ENV})"
            ),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reason(result: Result<Box<dyn Environment>, EnvError>) -> Option<String> {
        match result {
            Err(EnvError::Unavailable { reason, .. }) => Some(reason),
            _ => None,
        }
    }

    #[test]
    fn an_unknown_backend_is_unavailable_with_the_choices() {
        let why = reason(by_name("firecracker", Budget::for_host())).unwrap();
        assert!(why.contains("expected qemu or vagrant"), "{why}");
    }

    #[test]
    fn backends_are_chosen_by_name() {
        // Each backend either constructs (its tools are here) or says why not; the name
        // decides which one answered.
        match by_name("QEMU", Budget::for_host()) {
            Ok(env) => assert_eq!(env.name(), qemu::NAME),
            Err(EnvError::Unavailable { env, .. }) => assert_eq!(env, qemu::NAME),
            Err(other) => panic!("{other}"),
        }
        match by_name("vagrant", Budget::for_host()) {
            Ok(env) => assert_eq!(env.name(), vagrant::NAME),
            Err(EnvError::Unavailable { env, .. }) => assert_eq!(env, vagrant::NAME),
            Err(other) => panic!("{other}"),
        }
    }
}

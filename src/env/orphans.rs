//! The orphan sweep: what isobench processes that no longer exist left behind, found by the
//! owner marks [`crate::cleanup`] puts on what it cannot reclaim by itself (a container's
//! owner label, QEMU's `-name`, a VM instance directory's name, a Vagrant machine's owner
//! file), and removed. Every run and every suite starts with [`sweep_orphans`]; it never
//! touches what a live isobench owns, since other isobench processes may be running beside
//! this one.

use crate::cleanup::{CONTAINER_LABEL, OWNER_LABEL, owner_alive};
use crate::docker::Engine;

/// What [`sweep_orphans`] found: each thing it removed, and what it could not remove.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Swept {
    /// One line per removed container, QEMU process or Vagrant machine.
    pub removed: Vec<String>,
    /// One line per orphan that could not be removed, with the reason.
    pub failed: Vec<String>,
}

impl Swept {
    /// A sentence for stderr and the artifact's notes, `None` when nothing was found.
    pub fn note(&self) -> Option<String> {
        if self.removed.is_empty() && self.failed.is_empty() {
            return None;
        }
        let mut note = format!(
            "removed {} left by isobench processes that no longer exist",
            self.removed.len()
        );
        if !self.removed.is_empty() {
            note.push_str(&format!(": {}", self.removed.join("; ")));
        }
        if !self.failed.is_empty() {
            note.push_str(&format!("; could not remove: {}", self.failed.join("; ")));
        }
        Some(note)
    }
}

/// Removes what isobench processes that no longer exist left behind: containers with
/// isobench's label whose owner pid is gone, QEMU processes named for a gone owner
/// ([`qemu_name`]), their VM instance directories ([`vm_instance_dir_prefix`]), the Vagrant
/// machine a gone owner brought up. Never touches anything whose owner is alive, nor anything
/// without an owner mark. Errors are reported, not fatal.
pub fn sweep_orphans() -> Swept {
    let mut swept = Swept::default();
    sweep_containers(&mut swept);
    sweep_qemu(&mut swept);
    sweep_instance_dirs(&std::env::temp_dir(), &mut swept);
    match crate::env::vm::vagrant::sweep_orphan() {
        Some(Ok(removed)) => swept.removed.push(removed),
        Some(Err(failed)) => swept.failed.push(failed.to_string()),
        None => {}
    }
    swept
}

fn sweep_containers(swept: &mut Swept) {
    // No engine, no containers to sweep.
    let Ok(engine) = Engine::connect() else {
        return;
    };
    let containers = match engine.containers_labelled(CONTAINER_LABEL, "1") {
        Ok(containers) => containers,
        Err(error) => {
            swept.failed.push(format!("listing containers: {error:#}"));
            return;
        }
    };
    for (id, labels) in containers {
        let Some(owner) = labels
            .get(OWNER_LABEL)
            .and_then(|pid| pid.parse::<u32>().ok())
        else {
            continue;
        };
        if owner_alive(owner) {
            continue;
        }
        let short = &id[..id.len().min(12)];
        match engine.force_remove(&id) {
            Ok(()) => swept
                .removed
                .push(format!("container {short} (owner pid {owner})")),
            Err(error) => swept.failed.push(format!("container {short}: {error:#}")),
        }
    }
}

/// Prefix of a VM instance directory (console log, QEMU's stderr, QMP socket) in the temp
/// directory: `isobench-vm-<owner pid>-`, so a sweep can tell whose it is when an interrupted
/// run could not remove it.
pub fn vm_instance_dir_prefix(owner: u32) -> String {
    format!("{VM_DIR_PREFIX}{owner}-")
}

const VM_DIR_PREFIX: &str = "isobench-vm-";

/// Prefix of an instance's data directory ([`crate::env::data_dir`]) in the temp directory:
/// `isobench-data-<owner pid>-`.
pub fn data_dir_prefix(owner: u32) -> String {
    format!("{DATA_DIR_PREFIX}{owner}-")
}

const DATA_DIR_PREFIX: &str = "isobench-data-";

/// The marker a failed boot leaves in the instance directory it keeps on purpose (its error
/// names the directory for the user to read): sweeps leave such a directory alone.
pub const KEPT_MARKER: &str = "kept-for-the-user";

/// Removes the VM instance directories and instance data directories under `root` whose
/// owner is gone, except those kept on purpose ([`KEPT_MARKER`]).
fn sweep_instance_dirs(root: &std::path::Path, swept: &mut Swept) {
    let Ok(entries) = std::fs::read_dir(root) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some((kind, owner)) = name
            .to_str()
            .and_then(|name| {
                name.strip_prefix(VM_DIR_PREFIX)
                    .map(|rest| ("VM instance directory", rest))
                    .or_else(|| {
                        name.strip_prefix(DATA_DIR_PREFIX)
                            .map(|rest| ("data directory", rest))
                    })
            })
            .and_then(|(kind, rest)| rest.split_once('-').map(|(pid, _)| (kind, pid)))
            .and_then(|(kind, pid)| pid.parse::<u32>().ok().map(|pid| (kind, pid)))
        else {
            continue;
        };
        let path = entry.path();
        if owner_alive(owner) || path.join(KEPT_MARKER).exists() {
            continue;
        }
        match std::fs::remove_dir_all(&path) {
            Ok(()) => swept
                .removed
                .push(format!("{kind} {} (owner pid {owner})", path.display())),
            Err(error) => swept.failed.push(format!("{}: {error}", path.display())),
        }
    }
}

/// Prefix of the `-name` QEMU gets, followed by the owner's pid.
const QEMU_NAME_PREFIX: &str = "isobench-owner-";

/// The `-name` argument of a QEMU that isobench process `owner` starts: marks the process
/// so a sweep can tell whose it is (QEMU shows the name in `ps` as well).
pub fn qemu_name(owner: u32) -> String {
    format!("{QEMU_NAME_PREFIX}{owner}")
}

/// The owner pid in a QEMU command line (`-name isobench-owner-PID`), if it has one.
pub fn qemu_owner(args: &[&str]) -> Option<u32> {
    args.windows(2).find_map(|pair| {
        let ["-name", value] = pair else { return None };
        // QEMU's -name takes options after a comma (`guest=…,debug-threads=on`).
        let guest = value.split(',').next()?;
        let guest = guest.strip_prefix("guest=").unwrap_or(guest);
        guest.strip_prefix(QEMU_NAME_PREFIX)?.parse().ok()
    })
}

fn sweep_qemu(swept: &mut Swept) {
    for (pid, owner) in qemu_processes() {
        if owner_alive(owner) {
            continue;
        }
        // SAFETY: a plain syscall; the process is a QEMU whose isobench is gone.
        if unsafe { libc::kill(pid as i32, libc::SIGKILL) } == 0 {
            swept
                .removed
                .push(format!("QEMU process {pid} (owner pid {owner})"));
        } else {
            swept.failed.push(format!(
                "QEMU process {pid}: {}",
                std::io::Error::last_os_error()
            ));
        }
    }
}

/// Every running QEMU that an isobench process started, as (QEMU's pid, owner pid), read
/// from `/proc` ([`qemu_name`] on its command line).
pub fn qemu_processes() -> Vec<(u32, u32)> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let pid = entry.file_name().to_str()?.parse::<u32>().ok()?;
            let exe = std::fs::read_link(entry.path().join("exe")).ok()?;
            if !exe.file_name()?.to_str()?.starts_with("qemu-system") {
                return None;
            }
            let cmdline = std::fs::read(entry.path().join("cmdline")).ok()?;
            let text = String::from_utf8_lossy(&cmdline);
            let args: Vec<&str> = text.split('\0').collect();
            Some((pid, qemu_owner(&args)?))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instance_dirs_of_gone_owners_are_swept_unless_kept() {
        let root = tempfile::tempdir().unwrap();
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let gone = child.id();
        child.wait().unwrap();
        let make = |name: String| {
            let dir = root.path().join(name);
            std::fs::create_dir(&dir).unwrap();
            std::fs::write(dir.join("console.log"), "x").unwrap();
            dir
        };
        let orphan = make(format!("{}abc", vm_instance_dir_prefix(gone)));
        let kept = make(format!("{}def", vm_instance_dir_prefix(gone)));
        std::fs::write(kept.join(KEPT_MARKER), "").unwrap();
        let live = make(format!("{}ghi", vm_instance_dir_prefix(std::process::id())));
        let unmarked = make("isobench-vm-oldstyle".into());
        let orphan_data = make(format!("{}jkl", data_dir_prefix(gone)));
        let live_data = make(format!("{}mno", data_dir_prefix(std::process::id())));
        let mut swept = Swept::default();
        sweep_instance_dirs(root.path(), &mut swept);
        assert!(!orphan.exists() && !orphan_data.exists(), "{swept:?}");
        assert!(kept.exists() && live.exists() && unmarked.exists() && live_data.exists());
        assert_eq!(swept.removed.len(), 2, "{swept:?}");
        assert!(
            swept
                .removed
                .iter()
                .all(|line| line.contains(&format!("owner pid {gone}")))
        );
        assert!(
            swept
                .removed
                .iter()
                .any(|line| line.starts_with("data directory"))
        );
    }

    #[test]
    fn qemu_owner_is_read_from_its_name() {
        let name = qemu_name(4242);
        assert_eq!(
            qemu_owner(&["qemu-system-x86_64", "-name", &name, "-m", "1G"]),
            Some(4242)
        );
        let with_options = format!("guest={name},debug-threads=on");
        assert_eq!(qemu_owner(&["qemu", "-name", &with_options]), Some(4242));
        assert_eq!(qemu_owner(&["qemu", "-name", "someone-elses-vm"]), None);
        assert_eq!(qemu_owner(&["qemu", "-m", &name]), None);
        assert_eq!(qemu_owner(&["qemu", "-name"]), None);
    }

    #[test]
    fn the_sweep_note_says_what_was_removed() {
        assert_eq!(Swept::default().note(), None);
        let swept = Swept {
            removed: vec!["container abc (owner pid 7)".into()],
            failed: vec![],
        };
        let note = swept.note().unwrap();
        assert!(
            note.contains("removed 1") && note.contains("container abc"),
            "{note}"
        );
    }
}

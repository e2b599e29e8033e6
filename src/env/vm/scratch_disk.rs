//! The VM's data directory: a fresh virtio-blk disk per instance, ext4, mounted at `/data` by
//! the guest init (for a user's image, at its scenario file's `data_dir`, by `vm/init-image`),
//! removed with the instance — the way a VM that keeps files is deployed. Its directory is
//! registered for cleanup, so an interrupt removes it too.
//!
//! QEMU opens it with `cache=none` (O_DIRECT on the host, and the guest's flushes become
//! host `fdatasync`s), so a guest `fsync` reaches the host's disk, as it does natively and in
//! a container; QEMU's default (`writeback`) would let it stop in the host's page cache and
//! make the VM's fsync look cheaper than the others'. Where the host file system refuses
//! O_DIRECT (tmpfs), `writethrough` keeps the same promise through O_DSYNC, and the label
//! says which.
//!
//! The file system is made whole on the host (`lazy_itable_init=0,lazy_journal_init=0`), so
//! the guest kernel starts no background thread zeroing inode tables during the windows.

use std::fs::OpenOptions;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};

use crate::cleanup::{self, Registration, Resource};
use crate::env::data_dir::filesystem_name;

/// Size of the disk: room for `/files`' largest requests in flight many times over, small
/// enough that mkfs takes a few tens of milliseconds.
const DISK_MIB: u64 = 256;

/// The kernel command-line flag that tells the guest init to mount its data disk.
pub const CMDLINE_FLAG: &str = "isobench.data=vda";

/// The same for a user's image, whose guest (`vm/init-image`) has its root on a disk too and
/// finds the data disk by its file system's label.
pub const IMAGE_CMDLINE_FLAG: &str = "isobench.data=label:isobench-data";

/// How QEMU caches the disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheMode {
    /// `cache=none`: O_DIRECT, guest flushes reach the disk.
    None,
    /// `cache=writethrough`: every write O_DSYNC, for hosts without O_DIRECT.
    Writethrough,
}

impl CacheMode {
    /// QEMU's name.
    pub fn qemu_name(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Writethrough => "writethrough",
        }
    }
}

/// A scratch disk on the host, deleted with its directory.
#[derive(Debug)]
pub struct ScratchDisk {
    /// The disk image.
    pub path: PathBuf,
    /// How QEMU opens it.
    pub cache: CacheMode,
    /// Where the guest mounts it.
    pub mounted_at: String,
    /// Removes the disk (and its directory) when the instance is gone.
    _dir: tempfile::TempDir,
    /// Removes them on an interrupt, when no destructor runs.
    _registration: Registration,
}

impl ScratchDisk {
    /// Makes a fresh ext4 disk whose root directory belongs to `owner` (uid, gid: the
    /// service's user), to be mounted at `mounted_at` in the guest, in a directory the orphan
    /// sweep recognises.
    pub fn create(owner: (u32, u32), mounted_at: &str) -> anyhow::Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix(&crate::env::orphans::vm_instance_dir_prefix(
                std::process::id(),
            ))
            .tempdir()
            .context("creating the VM's scratch disk directory")?;
        let registration = cleanup::register(Resource::Directory(dir.path().to_path_buf()));
        let (uid, gid) = owner;
        let path = dir.path().join("data.ext4");
        let file = std::fs::File::create(&path)?;
        file.set_len(DISK_MIB << 20)?;
        drop(file);
        let output = Command::new("mkfs.ext4")
            .args(["-q", "-F", "-m", "0", "-L", "isobench-data", "-E"])
            .arg(format!(
                "lazy_itable_init=0,lazy_journal_init=0,root_owner={uid}:{gid}"
            ))
            .arg(&path)
            .output()
            .context("running mkfs.ext4 for the VM's data disk (apt-get install e2fsprogs)")?;
        if !output.status.success() {
            bail!(
                "mkfs.ext4 of the VM's data disk failed: {}",
                String::from_utf8_lossy(&output.stderr).trim()
            );
        }
        let cache = if opens_direct(&path) {
            CacheMode::None
        } else {
            CacheMode::Writethrough
        };
        Ok(Self {
            path,
            cache,
            mounted_at: mounted_at.to_owned(),
            _dir: dir,
            _registration: registration,
        })
    }

    /// What the label says of it.
    pub fn describe(&self) -> String {
        let parent = self
            .path
            .parent()
            .and_then(Path::parent)
            .unwrap_or(&self.path);
        format!(
            "its own disk: a fresh {DISK_MIB} MiB ext4 virtio-blk disk per instance mounted at {}, \
             an image file in {} on {}, QEMU cache={} ({})",
            self.mounted_at,
            parent.display(),
            filesystem_name(parent),
            self.cache.qemu_name(),
            match self.cache {
                CacheMode::None => "O_DIRECT; the guest's fsync becomes the host's fdatasync",
                CacheMode::Writethrough =>
                    "the host refuses O_DIRECT here, so every write is O_DSYNC",
            }
        )
    }
}

/// Whether the host file system lets QEMU open `path` with O_DIRECT.
fn opens_direct(path: &Path) -> bool {
    OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_DIRECT)
        .open(path)
        .is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_scratch_disk_is_ext4_owned_by_the_server_and_removed_after() {
        if Command::new("mkfs.ext4").arg("-V").output().is_err() {
            // e2fsprogs is what the VM rung needs; .ci/run installs it.
            panic!("mkfs.ext4 is missing: apt-get install e2fsprogs");
        }
        let disk = ScratchDisk::create((1000, 1001), "/srv/files").unwrap();
        let path = disk.path.clone();
        let dir = path.parent().unwrap().to_path_buf();
        assert_eq!(std::fs::metadata(&path).unwrap().len(), DISK_MIB << 20);
        // debugfs reads the root inode without mounting.
        let stat = Command::new("debugfs")
            .args(["-R", "stat /"])
            .arg(&path)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&stat.stdout);
        assert!(text.contains("User:  1000"), "{text}");
        assert!(text.contains("Group:  1001"), "{text}");
        let words = disk.describe();
        assert!(
            words.contains("cache=") && words.contains("mounted at /srv/files"),
            "{words}"
        );
        drop(disk);
        assert!(!path.exists() && !dir.exists());
    }

    /// An interrupt releases what is registered: the disk's directory goes with it (no
    /// destructor runs on a signal).
    #[test]
    fn an_interrupt_removes_a_scratch_disk() {
        // nextest runs each test in a process of its own: nothing else is registered here.
        let disk = ScratchDisk::create((0, 0), "/data").unwrap();
        let dir = disk.path.parent().unwrap().to_path_buf();
        assert_eq!(cleanup::release_all(), 1);
        assert!(!dir.exists());
        drop(disk);
    }
}

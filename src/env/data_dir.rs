//! Each instance's data directory, the way its rung would deploy a service that keeps files:
//! a fresh host directory per instance — the native server's `--data-dir`, or bind-mounted at
//! [`CONTAINER_PATH`] in a container (the root filesystem stays read-only, as a database's
//! container is deployed). A VM's data directory is a disk of its own instead
//! (`env::vm::qemu`, [`crate::env::vm::scratch_disk`]).
//!
//! A foreign service gets the same where its scenario file names a `data_dir` (a path inside
//! the service, checked by [`service_path`]): bind-mounted at that path in a container, in a
//! private mount namespace at that path of the native chroot, a disk mounted there in the VM;
//! and told where it is in [`ENV_VAR`] in every rung.
//!
//! The directory is named `isobench-data-<owner pid>-…` in the temp directory and registered
//! for cleanup, so an interrupted run removes it and the orphan sweep finds one whose owner
//! died without cleaning up.

use std::path::{Path, PathBuf};

use anyhow::Context;

use crate::cleanup::{self, Registration, Resource};

/// Where a container sees its data directory.
pub const CONTAINER_PATH: &str = "/data";

/// The uid and gid the own server runs as in a container and in the VM (`nobody`).
pub const SERVER_UID: u32 = 65534;

/// The environment variable that tells a service where its data directory is, in every rung
/// (isobench's own server reads it as `--data-dir`; the Flask example reads it too).
pub const ENV_VAR: &str = "ISOBENCH_DATA_DIR";

/// Why a path cannot be a service's data directory.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ServicePathError {
    /// Relative paths have no meaning inside an image.
    #[error("must be an absolute path inside the service, e.g. \"/data\"")]
    Relative,
    /// The whole root filesystem.
    #[error("must not be the root directory: the data directory is mounted over it")]
    Root,
    /// `.` or `..` components, or an empty one (`//`).
    #[error("must be a plain path: no '.', '..' or empty components")]
    NotPlain,
    /// What the runtime itself mounts.
    #[error("must not be in /proc, /sys or /dev, which every rung mounts itself")]
    Reserved,
    /// A byte the VM's spec or a mount cannot carry.
    #[error("must not hold a newline, a NUL byte or a space")]
    Unprintable,
}

/// Checks `value` as a data directory inside a service and returns it without a trailing
/// slash: absolute, not `/`, plain components, nowhere the runtime mounts its own file systems.
pub fn service_path(value: &str) -> Result<String, ServicePathError> {
    if value
        .chars()
        .any(|c| c == '\n' || c == '\0' || c.is_whitespace())
    {
        return Err(ServicePathError::Unprintable);
    }
    let Some(rest) = value.strip_prefix('/') else {
        return Err(ServicePathError::Relative);
    };
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    if rest.is_empty() {
        return Err(ServicePathError::Root);
    }
    let components: Vec<&str> = rest.split('/').collect();
    if components.iter().any(|c| matches!(*c, "" | "." | "..")) {
        return Err(ServicePathError::NotPlain);
    }
    if matches!(components[0], "proc" | "sys" | "dev") {
        return Err(ServicePathError::Reserved);
    }
    Ok(format!("/{rest}"))
}

/// Makes sure `inside` (a [`service_path`]) is a directory of the root filesystem at `root`
/// to mount on, creating it when the image has none (as a container runtime creates a
/// volume's mount point); returns its host path. A symbolic link on the way is refused:
/// followed on the host, it would lead the mount out of the root.
pub fn ensure_mount_point(root: &Path, inside: &str) -> anyhow::Result<PathBuf> {
    let mut path = root.to_path_buf();
    for component in inside.trim_start_matches('/').split('/') {
        path.push(component);
        match std::fs::symlink_metadata(&path) {
            Ok(meta) if meta.file_type().is_symlink() => anyhow::bail!(
                "data_dir {inside}: {} is a symbolic link in the image; give the path it \
                 points to",
                path.strip_prefix(root)
                    .map_or(path.clone(), |p| Path::new("/").join(p))
                    .display()
            ),
            Ok(meta) if meta.is_dir() => {}
            Ok(_) => anyhow::bail!(
                "data_dir {inside}: {} is a file in the image, not a directory",
                path.strip_prefix(root)
                    .map_or(path.clone(), |p| Path::new("/").join(p))
                    .display()
            ),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                match std::fs::create_dir(&path) {
                    // Another process may have made it meanwhile.
                    Ok(()) => {}
                    Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => {}
                    Err(error) => {
                        return Err(error).with_context(|| {
                            format!("creating the mount point {}", path.display())
                        });
                    }
                }
            }
            Err(error) => {
                return Err(error).with_context(|| format!("reading {}", path.display()));
            }
        }
    }
    Ok(path)
}

/// A fresh host directory that lives as long as its instance.
#[derive(Debug)]
pub struct DataDir {
    path: PathBuf,
    _registration: Registration,
}

impl DataDir {
    /// Creates a fresh, empty directory the server (as [`SERVER_UID`] or as this user) can
    /// write.
    pub fn create() -> anyhow::Result<Self> {
        let owner = std::process::id();
        let dir = tempfile::Builder::new()
            .prefix(&crate::env::orphans::data_dir_prefix(owner))
            .tempdir_in(std::env::temp_dir())
            .context("creating the instance's data directory")?;
        // Kept by its registration from here on, not by the TempDir's drop.
        let path = dir.keep();
        let registration = cleanup::register(Resource::Directory(path.clone()));
        // The container's server runs as nobody: it must be able to create files here.
        std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o777))
            .with_context(|| format!("opening {} to the server's user", path.display()))?;
        Ok(Self {
            path,
            _registration: registration,
        })
    }

    /// The directory on the host.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Files left in the directory (an instance's `/files` must leave none).
    pub fn entries(&self) -> usize {
        std::fs::read_dir(&self.path).map_or(0, |entries| entries.count())
    }
}

impl Drop for DataDir {
    fn drop(&mut self) {
        // Best effort: a directory that cannot be removed is the orphan sweep's next time.
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// What a label says of the data directories [`DataDir::create`] makes, the instance seeing
/// each as `seen_as`: where they are and on what file system, since that decides what an
/// fsync reaches. Read from the parent directory, so describing creates nothing.
pub fn describe(seen_as: &str) -> String {
    let parent = std::env::temp_dir();
    let filesystem = filesystem_name(&parent);
    let tmpfs = if filesystem == "tmpfs" {
        " (memory: an fsync reaches no disk)"
    } else {
        ""
    };
    format!(
        "{seen_as}: a fresh host directory per instance in {}, on {filesystem}{tmpfs}",
        parent.display()
    )
}

/// The name of the file system `path` is on, from `statfs`'s magic number.
pub fn filesystem_name(path: &Path) -> String {
    let Ok(c_path) = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()) else {
        return "an unknown file system".to_owned();
    };
    // SAFETY: `statfs` writes only into the zeroed struct it is given; the path is a valid
    // NUL-terminated string that outlives the call.
    let mut stat: libc::statfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statfs(c_path.as_ptr(), &mut stat) } != 0 {
        return "an unknown file system".to_owned();
    }
    // The magic numbers of linux/magic.h; f_type's width differs between architectures.
    match stat.f_type as u64 {
        0xEF53 => "ext4".to_owned(),
        0x0102_1994 => "tmpfs".to_owned(),
        0x5846_5342 => "xfs".to_owned(),
        0x9123_683E => "btrfs".to_owned(),
        0x794C_7630 => "overlayfs".to_owned(),
        0x2FC1_2FC1 => "zfs".to_owned(),
        0xF2F5_2010 => "f2fs".to_owned(),
        0x6969 => "nfs".to_owned(),
        other => format!("a file system of type {other:#x}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_data_dir_is_fresh_writable_and_removed_with_its_instance() {
        let dir = DataDir::create().unwrap();
        let path = dir.path().to_path_buf();
        assert_eq!(dir.entries(), 0);
        std::fs::write(path.join("x"), b"x").unwrap();
        assert_eq!(dir.entries(), 1);
        let mode = std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(&path).unwrap().permissions(),
        );
        assert_eq!(mode & 0o777, 0o777);
        drop(dir);
        assert!(!path.exists());
    }

    #[test]
    fn the_description_names_where_directories_go() {
        let words = describe("bind mount at /data");
        assert!(
            words.starts_with("bind mount at /data: a fresh host directory"),
            "{words}"
        );
        assert!(
            words.contains(&std::env::temp_dir().display().to_string()),
            "{words}"
        );
        assert!(
            words.contains(&filesystem_name(&std::env::temp_dir())),
            "{words}"
        );
        let dir = DataDir::create().unwrap();
        assert_eq!(dir.path().parent(), Some(std::env::temp_dir().as_path()));
    }

    #[test]
    fn the_file_system_is_named() {
        // /proc is procfs everywhere: not one of the named ones, so its number is shown.
        assert_eq!(
            filesystem_name(Path::new("/proc")),
            "a file system of type 0x9fa0"
        );
        let shm = Path::new("/dev/shm");
        if shm.exists() {
            assert_eq!(filesystem_name(shm), "tmpfs");
        }
        assert_eq!(
            filesystem_name(Path::new("/no/such/path")),
            "an unknown file system"
        );
    }

    #[test]
    fn service_paths_are_absolute_plain_and_not_the_root() {
        assert_eq!(service_path("/data").unwrap(), "/data");
        assert_eq!(service_path("/var/lib/app/").unwrap(), "/var/lib/app");
        let cases = [
            ("data", ServicePathError::Relative),
            ("", ServicePathError::Relative),
            ("/", ServicePathError::Root),
            ("/a/../b", ServicePathError::NotPlain),
            ("/a//b", ServicePathError::NotPlain),
            ("/./a", ServicePathError::NotPlain),
            ("/proc/x", ServicePathError::Reserved),
            ("/dev", ServicePathError::Reserved),
            ("/my data", ServicePathError::Unprintable),
            ("/a\nb", ServicePathError::Unprintable),
        ];
        for (value, expected) in cases {
            assert_eq!(service_path(value), Err(expected), "{value:?}");
        }
        // Only the first component is reserved.
        assert_eq!(service_path("/srv/dev").unwrap(), "/srv/dev");
    }

    #[test]
    fn a_mount_point_is_made_when_missing_and_never_through_a_link() {
        let root = tempfile::tempdir().unwrap();
        let made = ensure_mount_point(root.path(), "/var/lib/app").unwrap();
        assert!(made.is_dir());
        assert_eq!(made, root.path().join("var/lib/app"));
        let again = ensure_mount_point(root.path(), "/var/lib/app").unwrap();
        assert_eq!(again, made);
        std::os::unix::fs::symlink("/etc", root.path().join("link")).unwrap();
        let error = ensure_mount_point(root.path(), "/link/data")
            .unwrap_err()
            .to_string();
        assert!(error.contains("/link is a symbolic link"), "{error}");
        assert!(!Path::new("/etc/data").exists() || error.contains("symbolic"));
        std::fs::write(root.path().join("file"), b"").unwrap();
        let error = ensure_mount_point(root.path(), "/file")
            .unwrap_err()
            .to_string();
        assert!(error.contains("/file is a file"), "{error}");
    }

    #[test]
    fn two_instances_never_share_a_directory() {
        let (a, b) = (DataDir::create().unwrap(), DataDir::create().unwrap());
        assert_ne!(a.path(), b.path());
    }
}

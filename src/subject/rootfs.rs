//! An image's root filesystem on disk: exported once through the engine (a container is
//! created, never started, its filesystem streamed out as a tar and unpacked) and cached by
//! image id under `target/isobench/rootfs/`, so the native chroot and the VM run exactly the
//! bytes the container runs.
//!
//! `docker export` rather than `docker save`: export flattens the layers into the filesystem
//! a container sees (whiteouts applied), which is what a chroot or a VM's root needs.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, bail};
use bollard::models::ContainerCreateBody;
use futures_util::StreamExt;

use super::ImageConfig;
use crate::artifact::Preparation;
use crate::cleanup::{self, Resource};
use crate::docker::Engine;
use crate::subject::server_binary;

/// Character devices a chroot gets, since nothing is mounted on its `/dev`: name, major,
/// minor. The ones programs open without asking (the C library, Python, shells).
const DEVICES: &[(&str, u32, u32)] = &[
    ("null", 1, 3),
    ("zero", 1, 5),
    ("full", 1, 7),
    ("random", 1, 8),
    ("urandom", 1, 9),
    ("tty", 5, 0),
];

/// An unpacked root filesystem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RootFs {
    /// The directory to chroot into.
    pub dir: PathBuf,
    /// The image id it was exported from.
    pub image_id: String,
}

/// Where the root filesystems are cached.
pub fn cache_dir() -> PathBuf {
    server_binary::work_dir().join("rootfs")
}

/// Returns the image's root filesystem, exporting it first unless it is cached, and the timed
/// preparation step.
pub fn ensure(engine: &Engine, image: &ImageConfig) -> anyhow::Result<(RootFs, Preparation)> {
    let started = Instant::now();
    let key = cache_key(&image.id);
    let base = cache_dir().join(&key);
    let dir = base.join("root");
    let complete = base.join("complete");
    std::fs::create_dir_all(&base).with_context(|| format!("creating {}", base.display()))?;
    // Parallel test processes export an image once.
    let lock = File::create(base.join("lock"))?;
    lock.lock().context("locking the root filesystem cache")?;
    let cached = complete.exists();
    if !cached {
        if dir.exists() {
            std::fs::remove_dir_all(&dir)
                .with_context(|| format!("removing a partial export at {}", dir.display()))?;
        }
        let tar_path = base.join("export.tar");
        export_tar(engine, image, &tar_path)?;
        unpack(&tar_path, &dir)?;
        std::fs::remove_file(&tar_path).ok();
        add_chroot_basics(&dir)?;
        std::fs::write(&complete, &image.id)?;
    }
    drop(lock);
    Ok((
        RootFs {
            dir,
            image_id: image.id.clone(),
        },
        Preparation {
            what: format!("root filesystem export of {}", image.reference),
            seconds: started.elapsed().as_secs_f64(),
            cached,
        },
    ))
}

/// The id's first 16 hex digits: unique enough for a cache directory name.
pub fn cache_key(image_id: &str) -> String {
    let hex = image_id.strip_prefix("sha256:").unwrap_or(image_id);
    hex.chars().take(16).collect()
}

/// Creates a container from the image (never started), streams `docker export` of it into
/// `tar_path`, and removes the container, also on failure.
fn export_tar(engine: &Engine, image: &ImageConfig, tar_path: &Path) -> anyhow::Result<()> {
    let body = ContainerCreateBody {
        image: Some(image.id.clone()),
        labels: Some(cleanup::owner_labels()),
        // Never started; a command is given only so images without one can be created.
        cmd: image.argv().is_empty().then(|| vec!["/".to_owned()]),
        ..Default::default()
    };
    let created = engine
        .block_on(engine.api().create_container(None, body))
        .with_context(|| format!("creating a container from {} to export it", image.reference))?;
    let _registration = cleanup::register(Resource::Container(created.id.clone()));
    let exported = engine.block_on(async {
        let mut out = BufWriter::new(
            File::create(tar_path).with_context(|| format!("creating {}", tar_path.display()))?,
        );
        let mut stream = engine.api().export_container(&created.id);
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.with_context(|| format!("exporting {}", image.reference))?;
            out.write_all(&chunk)?;
        }
        out.flush()?;
        anyhow::Ok(())
    });
    let removed = engine.force_remove(&created.id);
    exported?;
    removed
}

/// Unpacks the exported tar into `dir`, keeping modes and, when running as root, owners.
fn unpack(tar_path: &Path, dir: &Path) -> anyhow::Result<()> {
    let partial = dir.with_extension("partial");
    if partial.exists() {
        std::fs::remove_dir_all(&partial)?;
    }
    std::fs::create_dir_all(&partial)?;
    let mut archive = tar::Archive::new(File::open(tar_path)?);
    archive.set_preserve_permissions(true);
    archive.set_preserve_mtime(true);
    archive.set_unpack_xattrs(false);
    // SAFETY: geteuid has no preconditions.
    archive.set_preserve_ownerships(unsafe { libc::geteuid() } == 0);
    archive
        .unpack(&partial)
        .with_context(|| format!("unpacking the exported image into {}", partial.display()))?;
    std::fs::rename(&partial, dir)?;
    Ok(())
}

/// What a chroot needs that a container's runtime would mount: `/proc`, `/sys`, `/tmp` and
/// `/dev/shm` as directories, and the common character devices (made only as root; a
/// non-root user cannot chroot anyway).
fn add_chroot_basics(dir: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    for (sub, mode) in [
        ("proc", 0o555),
        ("sys", 0o555),
        ("dev", 0o755),
        ("tmp", 0o1777),
        ("dev/shm", 0o1777),
    ] {
        let path = dir.join(sub);
        if !path.exists() {
            std::fs::create_dir_all(&path)?;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode))?;
        }
    }
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Ok(());
    }
    for &(name, major, minor) in DEVICES {
        let path = dir.join("dev").join(name);
        if path.symlink_metadata().is_ok() {
            continue;
        }
        let c_path = std::ffi::CString::new(path.as_os_str().as_encoded_bytes())?;
        // SAFETY: a valid NUL-terminated path; mknod has no other preconditions.
        let rc = unsafe {
            libc::mknod(
                c_path.as_ptr(),
                libc::S_IFCHR | 0o666,
                libc::makedev(major, minor),
            )
        };
        if rc != 0 {
            bail!(
                "creating {}: {}",
                path.display(),
                std::io::Error::last_os_error()
            );
        }
        // mknod's mode is filtered by the umask.
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o666))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cache_key_is_the_ids_first_16_hex_digits() {
        assert_eq!(
            cache_key("sha256:b0ca7373b459bb02e7613baced1bbdf12086be065bbb78f373b298542635c00d"),
            "b0ca7373b459bb02"
        );
        assert_eq!(cache_key("abc"), "abc");
    }

    #[test]
    fn chroot_basics_are_added() {
        let dir = tempfile::tempdir().unwrap();
        add_chroot_basics(dir.path()).unwrap();
        for sub in ["proc", "sys", "tmp", "dev/shm"] {
            assert!(dir.path().join(sub).is_dir(), "{sub}");
        }
        if unsafe { libc::geteuid() } == 0 {
            use std::os::unix::fs::FileTypeExt;
            let null = std::fs::metadata(dir.path().join("dev/null")).unwrap();
            assert!(null.file_type().is_char_device());
        }
    }
}

//! A user's image as a VM's root: its exported root filesystem ([`crate::subject::rootfs`])
//! turned into an ext4 disk image with `mkfs.ext4 -d` (no mounting, no loop device, no
//! privileges beyond reading the files), cached by image id, plus the spec `isobench-exec`
//! reads in the guest to run the image's entrypoint as its user.
//!
//! A disk rather than an initramfs holding the whole image: an initramfs is unpacked into
//! guest RAM at every boot (for the Flask image, 130 MB copied under emulation before the
//! service can start) and then stays resident, counted as the VM's memory, whereas a
//! container's image stays on disk and only the pages read come into memory. A virtio disk
//! is read on demand, like the container's overlay, so boot time and memory compare fairly.
//! The disk is attached with `snapshot=on`: the guest may write (as a container without
//! `--read-only` may), but the cached image is never changed.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, bail};

use crate::artifact::Preparation;
use crate::subject::ImageConfig;
use crate::subject::rootfs::{RootFs, cache_key};
use crate::subject::server_binary;
use crate::subject::user::ResolvedUser;

/// Modules the image guest loads besides its NIC's: the virtio disk and ext4 (whose
/// checksums need the crc32c algorithm, which the kernel requests at mount time and an
/// initramfs without modprobe cannot load on demand).
pub const DISK_MODULES: &[&str] = &["virtio_blk", "crc32c_generic", "ext4"];

/// The guest init for image VMs (`vm/init-image`).
pub const INIT_IMAGE_SCRIPT: &str = include_str!("../../../vm/init-image");

/// Where the guest's `isobench-exec` finds its spec.
pub const EXEC_SPEC_PATH: &str = "etc/isobench/exec.spec";

/// Free space given to the guest beyond the image's files: room for what the service writes
/// (a container's writable layer has the host's disk behind it).
const HEADROOM_BYTES: u64 = 256 << 20;

/// Returns the ext4 disk image of `rootfs`, making it first unless it is cached, and the
/// timed preparation step.
pub fn ensure_disk(rootfs: &RootFs) -> anyhow::Result<(PathBuf, Preparation)> {
    let started = Instant::now();
    let dir = server_binary::work_dir()
        .join("vm-rootfs")
        .join(cache_key(&rootfs.image_id));
    std::fs::create_dir_all(&dir)?;
    let disk = dir.join("root.ext4");
    let lock = std::fs::File::create(dir.join("lock"))?;
    lock.lock().context("locking the VM disk cache")?;
    let cached = disk.exists();
    if !cached {
        let partial = dir.join("root.ext4.partial");
        make_ext4(&rootfs.dir, &partial)?;
        std::fs::rename(&partial, &disk)?;
    }
    drop(lock);
    Ok((
        disk,
        Preparation {
            what: "VM root disk (mkfs.ext4 -d)".into(),
            seconds: started.elapsed().as_secs_f64(),
            cached,
        },
    ))
}

/// Bytes of the regular files under `dir`, not following symlinks.
fn tree_bytes(dir: &Path) -> std::io::Result<u64> {
    let mut total = 0;
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let meta = entry.path().symlink_metadata()?;
        total += if meta.is_dir() {
            tree_bytes(&entry.path())? + 4096
        } else {
            meta.len().div_ceil(4096) * 4096
        };
    }
    Ok(total)
}

fn make_ext4(source: &Path, disk: &Path) -> anyhow::Result<()> {
    let bytes = tree_bytes(source).with_context(|| format!("measuring {}", source.display()))?;
    // ext4's metadata (inode tables, journal) plus headroom, in whole MiB.
    let size_mib = (bytes + bytes / 4 + HEADROOM_BYTES).div_ceil(1 << 20);
    let file = std::fs::File::create(disk)?;
    file.set_len(size_mib << 20)?;
    drop(file);
    let output = Command::new("mkfs.ext4")
        .args(["-q", "-F", "-m", "0", "-L", "isobench-root", "-d"])
        .arg(source)
        .arg(disk)
        .output()
        .context("running mkfs.ext4 (apt-get install e2fsprogs)")?;
    if !output.status.success() {
        bail!(
            "mkfs.ext4 -d {} failed: {}",
            source.display(),
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(())
}

/// The spec `isobench-exec` reads in the guest: chroot into the mounted disk, enter the
/// working directory, become the image's user (unable to gain privileges when
/// `no_new_privileges`, as the container's hardening), and exec entrypoint + command with the
/// image's environment (completed as `docker run` completes it), told its `data_dir` in
/// `ISOBENCH_DATA_DIR` when it has one.
pub fn exec_spec(
    image: &ImageConfig,
    user: &ResolvedUser,
    no_new_privileges: bool,
    data_dir: Option<&str>,
) -> anyhow::Result<String> {
    let mut spec = String::new();
    writeln!(spec, "root /newroot")?;
    writeln!(spec, "uid {}", user.uid)?;
    writeln!(spec, "gid {}", user.gid)?;
    if no_new_privileges {
        writeln!(spec, "no_new_privs")?;
    }
    writeln!(
        spec,
        "workdir {}",
        if image.workdir.is_empty() {
            "/"
        } else {
            &image.workdir
        }
    )?;
    let mut env = crate::env::foreign::with_data_dir_env(&image.env, data_dir);
    if !env.iter().any(|pair| pair.starts_with("PATH=")) {
        env.push("PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into());
    }
    if !env.iter().any(|pair| pair.starts_with("HOME=")) {
        env.push(format!("HOME={}", user.home));
    }
    for pair in &env {
        writeln!(spec, "env {pair}")?;
    }
    for arg in image.argv() {
        if arg.contains('\n') {
            bail!(
                "image {}: the argument {arg:?} holds a newline, which the VM's exec spec cannot carry",
                image.reference
            );
        }
        writeln!(spec, "arg {arg}")?;
    }
    for field in [&image.workdir].into_iter().chain(&env) {
        if field.contains('\n') {
            bail!("image {}: {field:?} holds a newline", image.reference);
        }
    }
    Ok(spec)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image() -> ImageConfig {
        ImageConfig {
            reference: "flask:1".into(),
            id: "sha256:00".into(),
            size_bytes: 1,
            entrypoint: vec![],
            cmd: vec!["gunicorn".into(), "--bind".into(), "0.0.0.0:5000".into()],
            env: vec!["PYTHONUNBUFFERED=1".into()],
            workdir: "/app".into(),
            user: "app".into(),
            exposed_tcp_ports: vec![5000],
        }
    }

    #[test]
    fn the_exec_spec_carries_everything_docker_run_would_use() {
        let user = ResolvedUser {
            uid: 1000,
            gid: 1000,
            home: "/app".into(),
        };
        let spec = exec_spec(&image(), &user, true, None).unwrap();
        assert_eq!(
            spec,
            "root /newroot\nuid 1000\ngid 1000\nno_new_privs\nworkdir /app\nenv PYTHONUNBUFFERED=1\n\
             env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\n\
             env HOME=/app\narg gunicorn\narg --bind\narg 0.0.0.0:5000\n"
        );
        let told = exec_spec(&image(), &user, true, Some("/data")).unwrap();
        assert!(
            told.contains("env PYTHONUNBUFFERED=1\nenv ISOBENCH_DATA_DIR=/data\n"),
            "{told}"
        );
        let mut bad = image();
        bad.cmd.push("a\nb".into());
        assert!(
            exec_spec(&bad, &user, false, None)
                .unwrap_err()
                .to_string()
                .contains("newline")
        );
    }

    #[test]
    fn makes_an_ext4_image_without_mounting() {
        if Command::new("mkfs.ext4").arg("-V").output().is_err() {
            panic!("mkfs.ext4 is missing: apt-get install e2fsprogs");
        }
        let source = tempfile::tempdir().unwrap();
        std::fs::create_dir(source.path().join("www")).unwrap();
        std::fs::write(source.path().join("www/health"), "ok").unwrap();
        let out = tempfile::tempdir().unwrap();
        let disk = out.path().join("d.ext4");
        make_ext4(source.path(), &disk).unwrap();
        let bytes = std::fs::read(&disk).unwrap();
        // The ext2/3/4 superblock magic 0xEF53 at offset 1024 + 56.
        assert_eq!(&bytes[1024 + 56..1024 + 58], &[0x53, 0xEF]);
        assert!(bytes.len() as u64 >= HEADROOM_BYTES);
        // The file is in it, read back without mounting.
        let cat = Command::new("debugfs")
            .args(["-R", "cat /www/health"])
            .arg(&disk)
            .output()
            .unwrap();
        assert_eq!(String::from_utf8_lossy(&cat.stdout), "ok");
    }
}

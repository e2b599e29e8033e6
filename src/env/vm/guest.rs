//! What the QEMU guest runs: isobench's own server from the initramfs, or a user's image, whose
//! root filesystem becomes the guest's disk and whose entrypoint the guest init runs as the
//! image's user ([`super::rootfs`], `vm/init-image`, `isobench-exec`).
//!
//! Either way the guest boots the same kernel with the same boot configuration; what differs
//! is prepared here: the initramfs's payload and init, the disk, the port the service listens
//! on inside the guest, and the path that says it is ready.

use std::path::PathBuf;

use super::boot::BootMode;
use super::image::{self, GuestFile, ImageInputs, VmImage};
use super::rootfs;
use crate::artifact::Preparation;
use crate::env::EnvError;
use crate::env::foreign::ForeignRun;
use crate::subject::ImageSubject;
use crate::subject::server_binary;

/// The port isobench's own server listens on inside the guest.
pub const OWN_SERVER_PORT: u16 = 8080;

/// Where the image guest's init reads how to mount the image's root (`ro` or `rw`).
const ROOT_OPTIONS_PATH: &str = "etc/isobench/root-options";

/// Where the image guest's init reads the path to mount the data disk at, when the scenario
/// file names a `data_dir` (absent otherwise: no data disk).
const DATA_DIR_PATH: &str = "etc/isobench/data-dir";

/// What the guest runs.
#[derive(Debug, Clone)]
pub enum Guest {
    /// isobench's own static server, from the initramfs (no disk).
    Own,
    /// A user's image as the guest's root.
    Image {
        /// The image and how to reach its service (boxed: far larger than `Own`).
        subject: Box<ImageSubject>,
        /// Startup bound and the container's hardening, mirrored where a VM can.
        run: ForeignRun,
    },
}

/// A guest ready to boot.
#[derive(Debug, Clone)]
pub struct PreparedGuest {
    /// Kernel and initramfs.
    pub image: VmImage,
    /// The image's root filesystem as an ext4 disk (attached with `snapshot=on`), if any.
    pub disk: Option<PathBuf>,
    /// The port the service listens on inside the guest.
    pub port: u16,
    /// The path whose 2xx means ready (`/health` for the own server).
    pub health_path: String,
    /// The uid and gid the service runs as: a data disk's root belongs to them.
    pub service_user: (u32, u32),
}

impl PreparedGuest {
    /// isobench's own server in `image`.
    pub fn own(image: VmImage) -> Self {
        Self {
            image,
            disk: None,
            port: OWN_SERVER_PORT,
            health_path: crate::subject::DEFAULT_HEALTH_PATH.to_owned(),
            service_user: (
                crate::env::data_dir::SERVER_UID,
                crate::env::data_dir::SERVER_UID,
            ),
        }
    }

    /// Whether the guest runs a user's image (readiness is any 2xx on its path, and the
    /// errors name `--port` and `--health`).
    pub fn is_image(&self) -> bool {
        self.disk.is_some()
    }
}

/// Prepares a user's image as the guest: the root filesystem exported through the engine
/// (shared with the native chroot's cache), made an ext4 disk, the image's user resolved in
/// it, and an initramfs with `vm/init-image`, the static `isobench-exec` and its spec, and
/// the disk's modules. With a data directory (`run.data_dir`), its mount point is made in the
/// root filesystem first when the image has none, and the initramfs says where to mount the
/// data disk. Each step is timed and cached; errors name the environment `env`.
pub fn prepare_image(
    env: &str,
    subject: &ImageSubject,
    run: &ForeignRun,
    mode: BootMode,
    cache_root: &std::path::Path,
) -> Result<(PreparedGuest, Vec<Preparation>), EnvError> {
    let mut steps = Vec::new();
    let (root, user, exported) = crate::env::foreign::exported_root(env, &subject.image)?;
    steps.push(exported);
    // Before the disk is made, so a fresh disk holds the mount point (the guest init makes
    // it in a disk cached without one).
    if let Some(inside) = &run.data_dir {
        crate::env::data_dir::ensure_mount_point(&root.dir, inside)
            .map_err(|error| anyhow::anyhow!("image {}: {error:#}", subject.image.reference))?;
    }
    let (disk, made) = rootfs::ensure_disk(&root)?;
    steps.push(made);
    let spec = rootfs::exec_spec(
        &subject.image,
        &user,
        run.hardening.no_new_privileges,
        run.data_dir.as_deref(),
    )?;
    let (exec, built) = server_binary::static_exec()?;
    steps.push(built);
    let root_options = if run.hardening.read_only_root {
        "ro\n"
    } else {
        "rw\n"
    };
    let mut payload = vec![
        GuestFile::program("bin/isobench-exec", exec),
        GuestFile::data(rootfs::EXEC_SPEC_PATH, spec),
        GuestFile::data(ROOT_OPTIONS_PATH, root_options),
    ];
    if let Some(inside) = &run.data_dir {
        payload.push(GuestFile::data(DATA_DIR_PATH, format!("{inside}\n")));
    }
    let inputs = ImageInputs::discover_for(
        payload,
        rootfs::INIT_IMAGE_SCRIPT,
        rootfs::DISK_MODULES,
        mode,
    )
    .map_err(|e| EnvError::Unavailable {
        env: env.into(),
        reason: e.to_string(),
    })?;
    let (image, mut assembly) =
        image::assemble(&inputs, cache_root).map_err(|e| EnvError::Other(e.into()))?;
    assembly.what = format!("vm image assembly for {}", subject.image.reference);
    steps.push(assembly);
    Ok((
        PreparedGuest {
            image,
            disk: Some(disk),
            port: subject.port,
            health_path: subject.health_path.clone(),
            service_user: (user.uid, user.gid),
        },
        steps,
    ))
}

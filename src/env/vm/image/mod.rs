//! The VM image: a Debian kernel plus an initramfs holding busybox, the service's files, the
//! virtio modules and the guest init. For isobench's own server the files are the static
//! `isobench-server` and the init is `vm/init`, with no disk; for a user's image they are the
//! static `isobench-exec` and its spec, the init is `vm/init-image`, and the image's root
//! filesystem comes as a disk ([`super::rootfs`]).
//!
//! Assembled once per content and cached under `target/isobench/vm/<content-hash>/`, keyed by a
//! SHA-256 over the kernel, the modules, the service's files, busybox and the init script, so a change to
//! any of them gives a fresh image and an unchanged input never rebuilds. Parallel test
//! processes serialise on a file lock in the cache directory and the loser reuses the winner's
//! image. The archive is written by [`super::newc`] and compressed by busybox's gzip (busybox
//! is already a requirement of the guest, so no further tool is needed).

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use sha2::{Digest, Sha256};

mod kernel;

pub use kernel::{GuestKernel, KernelModule};

use super::boot::BootMode;
use super::kernel_elf;
use super::newc::NewcArchive;
use crate::artifact::Preparation;

/// Environment variable naming the guest kernel image (`vmlinuz-<version>`) to boot.
pub const KERNEL_ENV: &str = "ISOBENCH_VM_KERNEL";
/// Environment variable naming the guest kernel's module directory (`/lib/modules/<version>`).
pub const MODULES_ENV: &str = "ISOBENCH_VM_MODULES";
/// Environment variable naming a static busybox to put in the guest.
pub const BUSYBOX_ENV: &str = "ISOBENCH_VM_BUSYBOX";

/// The guest init script, PID 1 of the VM (`vm/init` in the repository).
pub const INIT_SCRIPT: &str = include_str!("../../../../vm/init");

/// Bumped when the layout of the image changes, so old cache entries are not reused.
const IMAGE_FORMAT: &str = "isobench-vm-image v4";

/// Why the image could not be assembled.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    /// A required input is missing on this machine (kernel, modules, busybox).
    #[error("{0}")]
    Missing(String),
    /// A module the guest needs is neither a file of the kernel's nor built into it.
    #[error("kernel module {0} is neither in modules.dep nor built in")]
    UnknownModule(String),
    /// `modules.dep` lists a module among its own dependencies.
    #[error("dependency cycle through module {0}")]
    ModuleCycle(String),
    /// Reading inputs or writing the image failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The underlying error.
        source: io::Error,
    },
}

fn io_err(what: impl Into<String>) -> impl FnOnce(io::Error) -> ImageError {
    let what = what.into();
    move |source| ImageError::Io { what, source }
}

/// A static busybox for the guest: [`BUSYBOX_ENV`], else `/bin/busybox` (Debian's
/// busybox-static installs a static one there).
pub fn find_busybox() -> Result<PathBuf, ImageError> {
    let path = std::env::var_os(BUSYBOX_ENV)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/bin/busybox"));
    if !path.is_file() {
        return Err(ImageError::Missing(format!(
            "no busybox at {} (install busybox-static, or set {BUSYBOX_ENV})",
            path.display()
        )));
    }
    Ok(path)
}

/// A file of the guest's service, placed in the initramfs beside busybox and init.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GuestFile {
    /// Its path in the guest, relative to `/` (`bin/isobench-server`).
    pub path: String,
    /// Its permission bits.
    pub mode: u32,
    /// Where its bytes come from.
    pub source: GuestFileSource,
}

/// Where a [`GuestFile`]'s bytes come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GuestFileSource {
    /// A file on the host, read at assembly.
    Host(PathBuf),
    /// Bytes made by isobench (a spec file).
    Bytes(Vec<u8>),
}

impl GuestFile {
    /// An executable from the host at `path` in the guest.
    pub fn program(path: &str, host: PathBuf) -> Self {
        Self {
            path: path.to_owned(),
            mode: 0o755,
            source: GuestFileSource::Host(host),
        }
    }

    /// A plain file holding `bytes` at `path` in the guest.
    pub fn data(path: &str, bytes: impl Into<Vec<u8>>) -> Self {
        Self {
            path: path.to_owned(),
            mode: 0o644,
            source: GuestFileSource::Bytes(bytes.into()),
        }
    }

    fn bytes(&self) -> Result<Vec<u8>, ImageError> {
        match &self.source {
            GuestFileSource::Host(host) => {
                fs::read(host).map_err(io_err(format!("reading {}", host.display())))
            }
            GuestFileSource::Bytes(bytes) => Ok(bytes.clone()),
        }
    }
}

/// Everything that goes into the image.
#[derive(Debug, Clone)]
pub struct ImageInputs {
    /// The guest kernel.
    pub kernel: GuestKernel,
    /// Modules to load, in load order.
    pub modules: Vec<KernelModule>,
    /// The service's files: isobench's static server, or `isobench-exec` and its spec for a
    /// user's image.
    pub payload: Vec<GuestFile>,
    /// A static busybox.
    pub busybox: PathBuf,
    /// The init script.
    pub init: String,
    /// How the image boots: the fast path gets the ELF kernel and an uncompressed
    /// initramfs, the legacy one the bzImage and gzip (see [`super::boot`]).
    pub mode: BootMode,
}

impl ImageInputs {
    /// The inputs found on this machine for `mode` and isobench's own static server.
    pub fn discover(server: PathBuf, mode: BootMode) -> Result<Self, ImageError> {
        Self::discover_for(
            vec![GuestFile::program("bin/isobench-server", server)],
            INIT_SCRIPT,
            // The data disk (crate::env::vm::scratch_disk).
            crate::env::vm::rootfs::DISK_MODULES,
            mode,
        )
    }

    /// The inputs found on this machine for `mode`, with the service's files, its init and
    /// the modules it needs beyond the NIC's.
    pub fn discover_for(
        payload: Vec<GuestFile>,
        init: &str,
        extra_modules: &[&str],
        mode: BootMode,
    ) -> Result<Self, ImageError> {
        let kernel = GuestKernel::find()?;
        let roots: Vec<&str> = mode
            .root_modules()
            .iter()
            .chain(extra_modules)
            .copied()
            .collect();
        let modules = kernel.resolve_modules(&roots)?;
        Ok(Self {
            kernel,
            modules,
            payload,
            busybox: find_busybox()?,
            init: init.to_owned(),
            mode,
        })
    }
}

/// An assembled image in the cache.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VmImage {
    /// The cache directory holding it.
    pub dir: PathBuf,
    /// The kernel to pass to `-kernel` inside `dir`: `vmlinuz` (legacy) or the extracted ELF
    /// `vmlinux` (fast).
    pub kernel: PathBuf,
    /// The newc initramfs to pass to `-initrd`: gzip-compressed (legacy) or plain (fast).
    pub initramfs: PathBuf,
    /// The guest kernel release.
    pub kernel_version: String,
    /// Size of kernel plus initramfs, bytes.
    pub size_bytes: u64,
    /// The content hash naming the cache directory.
    pub content_hash: String,
}

/// Marker written last, so a half-written cache entry is never taken for a finished one.
const READY: &str = "ready";

/// Assembles the image for `inputs` under `cache_root` (normally `target/isobench/vm`), or
/// reuses the cached one, and reports the time it took as `vm image assembly`.
pub fn assemble(
    inputs: &ImageInputs,
    cache_root: &Path,
) -> Result<(VmImage, Preparation), ImageError> {
    let started = Instant::now();
    let kernel_bytes = fs::read(&inputs.kernel.vmlinuz).map_err(io_err(format!(
        "reading {}",
        inputs.kernel.vmlinuz.display()
    )))?;
    let mut payload = Vec::new();
    for file in &inputs.payload {
        payload.push((file, file.bytes()?));
    }
    let busybox_bytes = fs::read(&inputs.busybox)
        .map_err(io_err(format!("reading {}", inputs.busybox.display())))?;
    let mut modules = Vec::new();
    for module in &inputs.modules {
        modules.push((module.name.clone(), module.bytes(&inputs.busybox)?));
    }

    let mut hasher = Sha256::new();
    let mut part = |label: &str, bytes: &[u8]| {
        // Length-prefixed, so no two different input sets hash the same byte stream.
        hasher.update(label.as_bytes());
        hasher.update((bytes.len() as u64).to_le_bytes());
        hasher.update(bytes);
    };
    part("format", IMAGE_FORMAT.as_bytes());
    part("kernel", &kernel_bytes);
    part("kernel-version", inputs.kernel.version.as_bytes());
    for (file, bytes) in &payload {
        part(&format!("{} {:o}", file.path, file.mode), bytes);
    }
    part("busybox", &busybox_bytes);
    part("init", inputs.init.as_bytes());
    part("mode", inputs.mode.name().as_bytes());
    for (name, bytes) in &modules {
        part(name, bytes);
    }
    let hash: String = hasher.finalize()[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();

    let dir = cache_root.join(&hash);
    fs::create_dir_all(&dir).map_err(io_err(format!("creating {}", dir.display())))?;
    let (kernel_name, initramfs_name) = if inputs.mode.uncompressed() {
        ("vmlinux", "initramfs.cpio")
    } else {
        ("vmlinuz", "initramfs.cpio.gz")
    };
    let image = VmImage {
        kernel: dir.join(kernel_name),
        initramfs: dir.join(initramfs_name),
        kernel_version: inputs.kernel.version.clone(),
        size_bytes: 0,
        content_hash: hash,
        dir: dir.clone(),
    };
    let lock = File::create(dir.join("lock")).map_err(io_err("creating the image lock"))?;
    // Held until the end of this function: other processes wait here, then find READY.
    lock_exclusive(&lock).map_err(io_err("locking the image cache"))?;
    let cached = dir.join(READY).is_file();
    if !cached {
        let archive = initramfs_archive(inputs, &busybox_bytes, &payload, &modules)
            .map_err(io_err("writing the cpio archive"))?;

        let cpio_path = dir.join("initramfs.cpio.tmp");
        let mut cpio = File::create(&cpio_path).map_err(io_err("creating the cpio archive"))?;
        archive
            .finish(&mut cpio)
            .map_err(io_err("writing the cpio archive"))?;
        cpio.flush().map_err(io_err("writing the cpio archive"))?;
        drop(cpio);
        let kernel_bytes = if inputs.mode.uncompressed() {
            // The guest reads a plain cpio without decompressing it, and the kernel ELF
            // without decompressing itself: both cost seconds of emulated CPU under TCG.
            fs::rename(&cpio_path, &image.initramfs).map_err(io_err("placing the initramfs"))?;
            kernel_elf::extract(&kernel_bytes).map_err(|e| {
                ImageError::Missing(format!("{}: {e}", inputs.kernel.vmlinuz.display()))
            })?
        } else {
            let gz_tmp = dir.join("initramfs.cpio.gz.tmp");
            gzip(&inputs.busybox, &cpio_path, &gz_tmp)?;
            fs::remove_file(&cpio_path).map_err(io_err("removing the cpio archive"))?;
            fs::rename(&gz_tmp, &image.initramfs).map_err(io_err("placing the initramfs"))?;
            kernel_bytes
        };
        let kernel_tmp = dir.join("kernel.tmp");
        fs::write(&kernel_tmp, &kernel_bytes).map_err(io_err("copying the kernel"))?;
        fs::rename(&kernel_tmp, &image.kernel).map_err(io_err("placing the kernel"))?;
        fs::write(dir.join(READY), &image.kernel_version)
            .map_err(io_err("marking the image ready"))?;
    }
    drop(lock);
    let size = |path: &Path| fs::metadata(path).map(|m| m.len());
    let size_bytes = size(&image.kernel).map_err(io_err("reading the kernel size"))?
        + size(&image.initramfs).map_err(io_err("reading the initramfs size"))?;
    Ok((
        VmImage {
            size_bytes,
            ..image
        },
        Preparation {
            what: "vm image assembly".into(),
            seconds: started.elapsed().as_secs_f64(),
            cached,
        },
    ))
}

/// The initramfs's members: directories, the console node, init, busybox, the service's
/// files, the users the own server runs as, and the modules with their load order.
fn initramfs_archive(
    inputs: &ImageInputs,
    busybox_bytes: &[u8],
    payload: &[(&GuestFile, Vec<u8>)],
    modules: &[(String, Vec<u8>)],
) -> io::Result<NewcArchive> {
    let mut archive = NewcArchive::new();
    for path in [
        "bin",
        "dev",
        "etc",
        "etc/isobench",
        "lib",
        "lib/modules",
        "proc",
        "sys",
        "tmp",
    ] {
        archive.dir(path, 0o755)?;
    }
    // The kernel opens /dev/console for init before devtmpfs is mounted.
    archive.char_device("dev/console", 0o600, 5, 1)?;
    archive.file("init", 0o755, inputs.init.as_bytes())?;
    archive.file("bin/busybox", 0o755, busybox_bytes)?;
    for (file, bytes) in payload {
        archive.file(&file.path, file.mode, bytes)?;
    }
    archive.file(
        "etc/passwd",
        0o644,
        b"root:x:0:0:root:/:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/sh\n",
    )?;
    archive.file("etc/group", 0o644, b"root:x:0:\nnogroup:x:65534:\n")?;
    let mut order = String::new();
    for (name, bytes) in modules {
        archive.file(&format!("lib/modules/{name}.ko"), 0o644, bytes)?;
        order.push_str(&format!("{name}.ko\n"));
    }
    archive.file("etc/isobench/modules", 0o644, order.as_bytes())?;
    Ok(archive)
}

/// Takes an exclusive `flock(2)` on `file`, waiting for other holders; released when the file
/// is closed. `std::fs::File::lock` does the same but needs Rust 1.89, above the crate's MSRV.
pub fn lock_exclusive(file: &File) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    loop {
        // SAFETY: flock on a descriptor we own for the duration of the call.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) } == 0 {
            return Ok(());
        }
        let error = io::Error::last_os_error();
        if error.kind() != io::ErrorKind::Interrupted {
            return Err(error);
        }
    }
}

/// `busybox gzip -9 -c input > output`.
fn gzip(busybox: &Path, input: &Path, output: &Path) -> Result<(), ImageError> {
    let stdin = File::open(input).map_err(io_err("opening the cpio archive"))?;
    let stdout = File::create(output).map_err(io_err("creating the initramfs"))?;
    let result = Command::new(busybox)
        .args(["gzip", "-9", "-c"])
        .stdin(stdin)
        .stdout(stdout)
        .stderr(Stdio::piped())
        .output()
        .map_err(io_err(format!("running {} gzip", busybox.display())))?;
    if !result.status.success() {
        return Err(ImageError::Missing(format!(
            "busybox gzip failed: {}",
            String::from_utf8_lossy(&result.stderr).trim()
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::env::vm::newc::read_members;

    /// Assembles an image from this machine's kernel and busybox with a stand-in server file,
    /// and checks the archive's contents; skipped where no kernel or busybox is installed.
    #[test]
    fn assembled_initramfs_holds_init_server_busybox_and_modules() {
        let (Ok(kernel), Ok(busybox)) = (GuestKernel::find(), find_busybox()) else {
            eprintln!("skipped: no guest kernel or busybox here");
            return;
        };
        let scratch = tempfile::tempdir().unwrap();
        let server = scratch.path().join("isobench-server");
        fs::write(&server, b"stand-in server").unwrap();
        let inputs = ImageInputs {
            modules: kernel
                .resolve_modules(BootMode::Legacy.root_modules())
                .unwrap(),
            kernel,
            payload: vec![GuestFile::program("bin/isobench-server", server.clone())],
            busybox: busybox.clone(),
            init: INIT_SCRIPT.to_owned(),
            mode: BootMode::Legacy,
        };
        let cache = scratch.path().join("cache");
        let (image, prep) = assemble(&inputs, &cache).unwrap();
        assert!(!prep.cached);
        assert_eq!(prep.what, "vm image assembly");
        assert!(image.dir.join(READY).is_file());

        let unzipped = Command::new(&busybox)
            .args(["gzip", "-dc"])
            .arg(&image.initramfs)
            .output()
            .unwrap();
        assert!(unzipped.status.success());
        let members = read_members(&unzipped.stdout).unwrap();
        let find = |name: &str| members.iter().find(|m| m.name == name);
        assert_eq!(find("init").unwrap().data, INIT_SCRIPT.as_bytes());
        assert_eq!(find("init").unwrap().mode & 0o111, 0o111);
        assert_eq!(
            find("bin/isobench-server").unwrap().data,
            b"stand-in server"
        );
        assert!(find("bin/busybox").is_some());
        assert!(find("dev/console").is_some());
        let order = String::from_utf8(find("etc/isobench/modules").unwrap().data.clone()).unwrap();
        for module in order.lines() {
            let member = find(&format!("lib/modules/{module}")).unwrap();
            // Loadable ELF objects, decompressed if the distribution compressed them.
            assert_eq!(&member.data[..4], b"\x7fELF", "{module}");
        }
        let expected: Vec<String> = inputs
            .modules
            .iter()
            .map(|m| format!("{}.ko", m.name))
            .collect();
        assert_eq!(order.lines().collect::<Vec<_>>(), expected);
        assert_eq!(
            image.size_bytes,
            fs::metadata(&image.kernel).unwrap().len()
                + fs::metadata(&image.initramfs).unwrap().len()
        );

        // Same inputs: the cached image is reused, same directory.
        let (again, prep) = assemble(&inputs, &cache).unwrap();
        assert!(prep.cached);
        assert_eq!(again, image);

        // A different server: a different image.
        fs::write(&server, b"another server").unwrap();
        let (other, _) = assemble(&inputs, &cache).unwrap();
        assert_ne!(other.content_hash, image.content_hash);
    }
}

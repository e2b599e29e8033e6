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
pub const INIT_SCRIPT: &str = include_str!("../../../vm/init");

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

/// A kernel to boot as the guest, with its modules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GuestKernel {
    /// Kernel release, e.g. `6.1.0-57-amd64`.
    pub version: String,
    /// The bootable kernel image (`/boot/vmlinuz-<version>`).
    pub vmlinuz: PathBuf,
    /// Its modules (`/lib/modules/<version>`, holding `modules.dep`).
    pub modules_dir: PathBuf,
}

impl GuestKernel {
    /// The kernel named by [`KERNEL_ENV`] (and [`MODULES_ENV`]), else the newest
    /// `/boot/vmlinuz-*` whose `/lib/modules/<version>/modules.dep` exists (Debian's
    /// `linux-image-amd64` installs both), its `cloud` flavour where both are installed
    /// (`guest_kernel_order`).
    pub fn find() -> Result<Self, ImageError> {
        if let Some(path) = std::env::var_os(KERNEL_ENV) {
            let vmlinuz = PathBuf::from(path);
            let version = version_of(&vmlinuz).ok_or_else(|| {
                ImageError::Missing(format!(
                    "{KERNEL_ENV}={}: cannot tell the kernel version from the file name \
                     (expected vmlinuz-<version>)",
                    vmlinuz.display()
                ))
            })?;
            let modules_dir = std::env::var_os(MODULES_ENV)
                .map(PathBuf::from)
                .unwrap_or_else(|| Path::new("/lib/modules").join(&version));
            return Self::checked(version, vmlinuz, modules_dir);
        }
        let mut candidates: Vec<(String, PathBuf)> = fs::read_dir("/boot")
            .map_err(io_err("listing /boot"))?
            .filter_map(Result::ok)
            .map(|entry| entry.path())
            .filter_map(|path| version_of(&path).map(|version| (version, path)))
            .filter(|(version, _)| {
                Path::new("/lib/modules")
                    .join(version)
                    .join("modules.dep")
                    .is_file()
            })
            .collect();
        candidates.sort_by(|a, b| guest_kernel_order(&a.0, &b.0));
        let (version, vmlinuz) = candidates.pop().ok_or_else(|| {
            ImageError::Missing(format!(
                "no guest kernel: no /boot/vmlinuz-<version> with /lib/modules/<version>/\
                 modules.dep (install Debian's linux-image-amd64, or set {KERNEL_ENV})"
            ))
        })?;
        let modules_dir = Path::new("/lib/modules").join(&version);
        Self::checked(version, vmlinuz, modules_dir)
    }

    fn checked(
        version: String,
        vmlinuz: PathBuf,
        modules_dir: PathBuf,
    ) -> Result<Self, ImageError> {
        // Some distributions install the kernel readable by root only; say so plainly.
        File::open(&vmlinuz).map_err(|e| {
            ImageError::Missing(format!(
                "guest kernel {} is not readable: {e}",
                vmlinuz.display()
            ))
        })?;
        if !modules_dir.join("modules.dep").is_file() {
            return Err(ImageError::Missing(format!(
                "no modules.dep in {} (set {MODULES_ENV})",
                modules_dir.display()
            )));
        }
        Ok(Self {
            version,
            vmlinuz,
            modules_dir,
        })
    }

    /// The modules to load for `roots`, dependencies first, each with its file on the host.
    /// Modules built into the kernel (`modules.builtin`) are left out.
    pub fn resolve_modules(&self, roots: &[&str]) -> Result<Vec<KernelModule>, ImageError> {
        let dep_path = self.modules_dir.join("modules.dep");
        let deps = fs::read_to_string(&dep_path)
            .map_err(io_err(format!("reading {}", dep_path.display())))?;
        let builtin =
            fs::read_to_string(self.modules_dir.join("modules.builtin")).unwrap_or_default();
        resolve(&deps, &builtin, roots).map(|modules| {
            modules
                .into_iter()
                .map(|relative| KernelModule {
                    name: module_name(&relative),
                    path: self.modules_dir.join(relative),
                })
                .collect()
        })
    }
}

/// `vmlinuz-6.1.0-57-amd64` → `6.1.0-57-amd64`.
fn version_of(path: &Path) -> Option<String> {
    let name = path.file_name()?.to_str()?;
    let version = name.strip_prefix("vmlinuz-")?;
    (!version.is_empty()).then(|| version.to_owned())
}

/// The order in which a guest kernel is preferred, best last: the newest release, and of one
/// release Debian's `cloud` flavour (`6.1.0-57-cloud-amd64`) over the generic one. The cloud
/// kernel is built for VMs (virtio, no hardware drivers) and compressed with lz4 instead of
/// xz: under TCG on the development machine the fast boot reached its first 200 in 1,941 ms
/// against 2,111 ms (kernel init 1,031 against 1,147 ms), and the legacy boot in 2,930 ms
/// against 6,507 (`vm/compare-boot.sh`, 5 starts each).
fn guest_kernel_order(a: &str, b: &str) -> std::cmp::Ordering {
    let release = |v: &str| v.replacen("-cloud-", "-", 1);
    let cloud = |v: &str| v.contains("-cloud-");
    natural_cmp(&release(a), &release(b)).then(cloud(a).cmp(&cloud(b)))
}

/// Orders versions so `6.1.0-10` sorts after `6.1.0-9` (digit runs compare as numbers).
fn natural_cmp(a: &str, b: &str) -> std::cmp::Ordering {
    fn chunks(s: &str) -> Vec<(bool, &str)> {
        let mut out = Vec::new();
        let mut start = 0;
        let bytes = s.as_bytes();
        for i in 1..=bytes.len() {
            if i == bytes.len() || bytes[i].is_ascii_digit() != bytes[start].is_ascii_digit() {
                out.push((bytes[start].is_ascii_digit(), &s[start..i]));
                start = i;
            }
        }
        out
    }
    let (ca, cb) = (chunks(a), chunks(b));
    for (x, y) in ca.iter().zip(&cb) {
        let ord = match (x, y) {
            ((true, x), (true, y)) => x.len().cmp(&y.len()).then_with(|| x.cmp(y)),
            ((_, x), (_, y)) => x.cmp(y),
        };
        if ord.is_ne() {
            return ord;
        }
    }
    ca.len().cmp(&cb.len())
}

/// `kernel/drivers/net/virtio_net.ko.xz` → `virtio_net`.
fn module_name(relative: &str) -> String {
    let file = relative.rsplit('/').next().unwrap_or(relative);
    let stem = file.split(".ko").next().unwrap_or(file);
    stem.replace('-', "_")
}

/// Resolves `roots` against a `modules.dep` text into module paths (relative to the module
/// directory), every module after all of its dependencies.
fn resolve(
    modules_dep: &str,
    modules_builtin: &str,
    roots: &[&str],
) -> Result<Vec<String>, ImageError> {
    use std::collections::HashMap;
    let mut deps: HashMap<String, (String, Vec<String>)> = HashMap::new();
    for line in modules_dep.lines() {
        let Some((path, rest)) = line.split_once(':') else {
            continue;
        };
        let list = rest.split_whitespace().map(str::to_owned).collect();
        deps.insert(module_name(path), (path.to_owned(), list));
    }
    let builtin: Vec<String> = modules_builtin.lines().map(module_name).collect();

    fn visit(
        name: &str,
        deps: &HashMap<String, (String, Vec<String>)>,
        builtin: &[String],
        out: &mut Vec<String>,
        stack: &mut Vec<String>,
    ) -> Result<(), ImageError> {
        let Some((path, list)) = deps.get(name) else {
            if builtin.iter().any(|b| b == name) {
                return Ok(());
            }
            return Err(ImageError::UnknownModule(name.to_owned()));
        };
        if out.contains(path) {
            return Ok(());
        }
        if stack.iter().any(|s| s == name) {
            return Err(ImageError::ModuleCycle(name.to_owned()));
        }
        stack.push(name.to_owned());
        for dep in list {
            visit(&module_name(dep), deps, builtin, out, stack)?;
        }
        stack.pop();
        out.push(path.clone());
        Ok(())
    }

    let mut out = Vec::new();
    for root in roots {
        visit(
            &root.replace('-', "_"),
            &deps,
            &builtin,
            &mut out,
            &mut Vec::new(),
        )?;
    }
    Ok(out)
}

/// One kernel module to put in the initramfs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KernelModule {
    /// Module name, e.g. `virtio_net`; stored in the guest as `/lib/modules/<name>.ko`.
    pub name: String,
    /// Its file on the host, possibly compressed (`.ko.xz`, `.ko.zst`, `.ko.gz`).
    pub path: PathBuf,
}

impl KernelModule {
    /// The module's ELF bytes, decompressed if the distribution ships it compressed
    /// (busybox `insmod` loads plain `.ko` files only).
    fn bytes(&self, busybox: &Path) -> Result<Vec<u8>, ImageError> {
        let path = self.path.display().to_string();
        let decompress = |program: &Path, args: &[&str]| -> Result<Vec<u8>, ImageError> {
            let output = Command::new(program)
                .args(args)
                .arg(&self.path)
                .stderr(Stdio::piped())
                .output()
                .map_err(io_err(format!(
                    "running {} to decompress {path}",
                    program.display()
                )))?;
            if !output.status.success() {
                return Err(ImageError::Missing(format!(
                    "decompressing {path} failed: {}",
                    String::from_utf8_lossy(&output.stderr).trim()
                )));
            }
            Ok(output.stdout)
        };
        if path.ends_with(".ko") {
            fs::read(&self.path).map_err(io_err(format!("reading {path}")))
        } else if path.ends_with(".ko.xz") {
            decompress(busybox, &["xz", "-dc"])
        } else if path.ends_with(".ko.gz") {
            decompress(busybox, &["gzip", "-dc"])
        } else if path.ends_with(".ko.zst") {
            decompress(Path::new("zstd"), &["-dc"])
        } else {
            Err(ImageError::Missing(format!(
                "unknown module format: {path}"
            )))
        }
    }
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
            &[],
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

    const DEP: &str = "\
kernel/drivers/virtio/virtio.ko: kernel/drivers/virtio/virtio_ring.ko
kernel/drivers/virtio/virtio_ring.ko:
kernel/drivers/virtio/virtio_mmio.ko: kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko
kernel/drivers/net/virtio_net.ko.xz: kernel/drivers/net/net_failover.ko kernel/net/core/failover.ko kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko
kernel/drivers/net/net_failover.ko: kernel/net/core/failover.ko
kernel/net/core/failover.ko:
";

    #[test]
    fn modules_come_after_their_dependencies() {
        let order = resolve(DEP, "", &["virtio_mmio", "virtio_net"]).unwrap();
        let names: Vec<_> = order.iter().map(|p| module_name(p)).collect();
        assert_eq!(
            names,
            [
                "virtio_ring",
                "virtio",
                "virtio_mmio",
                "failover",
                "net_failover",
                "virtio_net"
            ]
        );
        let pos = |n: &str| names.iter().position(|x| x == n).unwrap();
        assert!(pos("failover") < pos("net_failover"));
        assert!(pos("net_failover") < pos("virtio_net"));
    }

    #[test]
    fn builtin_modules_are_skipped_and_unknown_ones_are_errors() {
        let order = resolve(
            DEP,
            "kernel/drivers/virtio/virtio_mmio_x.ko\n",
            &["virtio_mmio_x"],
        )
        .unwrap();
        assert!(order.is_empty());
        let err = resolve(DEP, "", &["no_such_module"]).unwrap_err();
        assert!(err.to_string().contains("no_such_module"), "{err}");
    }

    #[test]
    fn kernel_versions_sort_naturally() {
        let mut v = vec!["6.1.0-9-amd64", "6.1.0-10-amd64", "5.10.0-30-amd64"];
        v.sort_by(|a, b| natural_cmp(a, b));
        assert_eq!(v, ["5.10.0-30-amd64", "6.1.0-9-amd64", "6.1.0-10-amd64"]);
        assert_eq!(
            version_of(Path::new("/boot/vmlinuz-6.1.0-57-amd64")).as_deref(),
            Some("6.1.0-57-amd64")
        );
        assert_eq!(version_of(Path::new("/boot/vmlinuz")), None);
        let mut installed = vec![
            "6.1.0-57-cloud-amd64",
            "6.1.0-9-cloud-amd64",
            "6.1.0-57-amd64",
            "6.1.0-9-amd64",
        ];
        installed.sort_by(|a, b| guest_kernel_order(a, b));
        assert_eq!(
            installed,
            [
                "6.1.0-9-amd64",
                "6.1.0-9-cloud-amd64",
                "6.1.0-57-amd64",
                "6.1.0-57-cloud-amd64"
            ]
        );
        let mut newer_generic = ["6.1.0-58-amd64", "6.1.0-57-cloud-amd64"];
        newer_generic.sort_by(|a, b| guest_kernel_order(a, b));
        assert_eq!(newer_generic.last(), Some(&"6.1.0-58-amd64"));
    }

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

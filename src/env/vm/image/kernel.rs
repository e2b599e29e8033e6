//! The guest kernel: which installed Debian kernel boots (or the one [`super::KERNEL_ENV`]
//! names), and the modules the guest needs from it, in dependency order.

use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::{ImageError, KERNEL_ENV, MODULES_ENV, io_err};

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
    pub(super) fn bytes(&self, busybox: &Path) -> Result<Vec<u8>, ImageError> {
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

#[cfg(test)]
mod tests {
    use super::*;

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
}

//! The memory the service may use, and the `/memory` caps derived from it.
//!
//! A `/memory` request the service accepts must fit: a request at the cap gets 200 (or 503
//! when the budget is taken), never an OOM kill of the whole service. So the caps are not
//! fixed numbers but follow the memory actually available, read at startup:
//!
//! 1. an explicit limit (`--memory-limit-mb`, `ISOBENCH_MEMORY_LIMIT_MB`), which isobench's
//!    environments pass with their budget's limit;
//! 2. else the smallest of the cgroup limits on the way from the process's cgroup up to the
//!    root (v1 `memory.limit_in_bytes`, v2 `memory.max`) and the machine's `MemTotal` (what a
//!    VM guest has).
//!
//! From the limit, [`MemoryCaps::for_limit`] keeps a headroom for everything that is not a
//! `/memory` buffer (the binary, the runtime, connection buffers, in a container the page
//! cache the cgroup also charges, in a VM the guest kernel and the initramfs held in RAM): a
//! quarter of the limit, at least [`MIN_HEADROOM_MB`]. The rest is the budget all concurrent
//! `/memory` requests share, and one request may take all of it.

use std::path::{Path, PathBuf};

use serde::Serialize;

/// MiB in a byte count.
const MIB: u64 = 1024 * 1024;
/// Smallest headroom kept outside the `/memory` budget, MiB: the server's own footprint
/// (a few MiB) with a wide margin, for small limits where a quarter would be too little.
pub const MIN_HEADROOM_MB: u64 = 64;
/// The share of the limit kept as headroom (1/4).
const HEADROOM_DIVISOR: u64 = 4;

/// Where the memory limit came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LimitSource {
    /// `--memory-limit-mb` / `ISOBENCH_MEMORY_LIMIT_MB`.
    Explicit,
    /// A cgroup v1 `memory.limit_in_bytes`.
    CgroupV1,
    /// A cgroup v2 `memory.max`.
    CgroupV2,
    /// `/proc/meminfo`'s `MemTotal`.
    MemTotal,
    /// Not read from this machine (in-process defaults and tests).
    Default,
}

/// The memory limit the caps are derived from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct MemoryLimit {
    /// The limit, MiB (rounded down).
    pub limit_mb: u64,
    /// Where it came from.
    pub source: LimitSource,
}

/// The `/memory` caps for a limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemoryCaps {
    /// Largest single request, MiB.
    pub max_request_mb: u64,
    /// All concurrent requests together, MiB.
    pub budget_mb: u64,
}

/// A limit too small to leave any room for `/memory`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "a memory limit of {limit_mb} MiB leaves nothing for /memory after the {headroom_mb} MiB headroom the service keeps"
)]
pub struct TooLittleMemory {
    /// The limit, MiB.
    pub limit_mb: u64,
    /// The headroom it would need, MiB.
    pub headroom_mb: u64,
}

impl MemoryCaps {
    /// The headroom kept outside the budget for `limit_mb`.
    pub fn headroom_mb(limit_mb: u64) -> u64 {
        (limit_mb / HEADROOM_DIVISOR).max(MIN_HEADROOM_MB)
    }

    /// The caps under a limit of `limit_mb`: budget = limit − headroom, one request may use
    /// the whole budget.
    pub fn for_limit(limit_mb: u64) -> Result<Self, TooLittleMemory> {
        let headroom_mb = Self::headroom_mb(limit_mb);
        match limit_mb.checked_sub(headroom_mb) {
            Some(budget_mb) if budget_mb >= 1 => Ok(Self {
                max_request_mb: budget_mb,
                budget_mb,
            }),
            _ => Err(TooLittleMemory {
                limit_mb,
                headroom_mb,
            }),
        }
    }
}

/// Reads the memory limit of this process from the machine: the smallest cgroup limit on
/// its path, or `MemTotal` when that is smaller or no cgroup limits it.
pub fn detect() -> std::io::Result<MemoryLimit> {
    detect_in(Path::new("/"))
}

/// [`detect`] with `/proc` and `/sys` under `root` (tests give a fake tree).
pub fn detect_in(root: &Path) -> std::io::Result<MemoryLimit> {
    let meminfo = std::fs::read_to_string(root.join("proc/meminfo"))?;
    let total = parse_mem_total(&meminfo).ok_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "/proc/meminfo has no MemTotal line",
        )
    })?;
    let mut best = (total, LimitSource::MemTotal);
    // No /proc/self/cgroup (no cgroups, or a restricted /proc): MemTotal alone.
    if let Ok(membership) = std::fs::read_to_string(root.join("proc/self/cgroup")) {
        for (bytes, source) in cgroup_limits(root, &membership) {
            if bytes < best.0 {
                best = (bytes, source);
            }
        }
    }
    Ok(MemoryLimit {
        limit_mb: best.0 / MIB,
        source: best.1,
    })
}

/// `MemTotal` in bytes from the text of `/proc/meminfo`.
pub fn parse_mem_total(meminfo: &str) -> Option<u64> {
    meminfo.lines().find_map(|line| {
        let rest = line.strip_prefix("MemTotal:")?;
        let mut words = rest.split_whitespace();
        let value: u64 = words.next()?.parse().ok()?;
        match words.next() {
            Some("kB") | None => value.checked_mul(1024),
            Some(_) => None,
        }
    })
}

/// A cgroup limit file's value in bytes; `None` for "no limit" (v2 `max`, v1's huge
/// page-rounded `i64::MAX`) and for anything unreadable.
pub fn parse_limit(text: &str) -> Option<u64> {
    let text = text.trim();
    if text == "max" {
        return None;
    }
    let value: u64 = text.parse().ok()?;
    // v1 reports "unlimited" as i64::MAX rounded down to a page.
    (value < (i64::MAX as u64) / 2).then_some(value)
}

/// Every memory limit set on the process's cgroups, from its own up to the root, for v1
/// (`memory` controller line) and v2 (`0::` line) alike.
fn cgroup_limits(root: &Path, membership: &str) -> Vec<(u64, LimitSource)> {
    let mut limits = Vec::new();
    for line in membership.lines() {
        let mut fields = line.splitn(3, ':');
        let (Some(_), Some(controllers), Some(path)) =
            (fields.next(), fields.next(), fields.next())
        else {
            continue;
        };
        let (mount, file, source) = if controllers.split(',').any(|c| c == "memory") {
            (
                root.join("sys/fs/cgroup/memory"),
                "memory.limit_in_bytes",
                LimitSource::CgroupV1,
            )
        } else if controllers.is_empty() {
            (
                root.join("sys/fs/cgroup"),
                "memory.max",
                LimitSource::CgroupV2,
            )
        } else {
            continue;
        };
        for dir in ancestors(&mount, path) {
            if let Some(bytes) = std::fs::read_to_string(dir.join(file))
                .ok()
                .and_then(|text| parse_limit(&text))
            {
                limits.push((bytes, source));
            }
        }
    }
    limits
}

/// `mount/path`, then each parent up to `mount` itself. Inside a container the path names
/// the host's hierarchy, which does not exist under the container's own cgroup mount; its
/// root is then the container's cgroup, and it is among these.
fn ancestors(mount: &Path, path: &str) -> Vec<PathBuf> {
    let mut dirs = vec![mount.to_path_buf()];
    let mut current = mount.to_path_buf();
    for part in path.split('/').filter(|part| !part.is_empty()) {
        current.push(part);
        dirs.push(current.clone());
    }
    dirs
}

// tempfile comes with the harness feature; the server-only build has no fake trees to make.
#[cfg(all(test, feature = "harness"))]
mod tests {
    use super::*;

    #[test]
    fn caps_leave_a_quarter_or_at_least_64_mib() {
        assert_eq!(
            MemoryCaps::for_limit(1024).unwrap(),
            MemoryCaps {
                max_request_mb: 768,
                budget_mb: 768
            }
        );
        // 200 / 4 = 50 < 64: the minimum headroom applies.
        assert_eq!(MemoryCaps::for_limit(200).unwrap().budget_mb, 136);
        assert_eq!(MemoryCaps::for_limit(65).unwrap().budget_mb, 1);
        let error = MemoryCaps::for_limit(64).unwrap_err();
        assert_eq!(error.headroom_mb, 64);
        assert!(MemoryCaps::for_limit(0).is_err());
    }

    #[test]
    fn limits_parse_and_unlimited_is_none() {
        assert_eq!(parse_limit("1073741824\n"), Some(1 << 30));
        assert_eq!(parse_limit("max\n"), None);
        assert_eq!(parse_limit("9223372036854771712"), None);
        assert_eq!(parse_limit("garbage"), None);
        let meminfo = "MemTotal:       24573452 kB\nMemFree:  1 kB\n";
        assert_eq!(parse_mem_total(meminfo), Some(24_573_452 * 1024));
        assert_eq!(parse_mem_total("MemFree: 1 kB"), None);
    }

    fn write(path: &Path, text: &str) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    const MEMINFO_2G: &str = "MemTotal: 2097152 kB\n";

    #[test]
    fn v1_the_smallest_limit_on_the_path_wins() {
        let root = tempfile::tempdir().unwrap();
        let r = root.path();
        write(&r.join("proc/meminfo"), MEMINFO_2G);
        write(
            &r.join("proc/self/cgroup"),
            "12:cpuset:/a\n4:memory:/docker/abc\n0::/\n",
        );
        write(
            &r.join("sys/fs/cgroup/memory/memory.limit_in_bytes"),
            "9223372036854771712\n",
        );
        write(
            &r.join("sys/fs/cgroup/memory/docker/memory.limit_in_bytes"),
            &format!("{}\n", 3u64 << 30),
        );
        write(
            &r.join("sys/fs/cgroup/memory/docker/abc/memory.limit_in_bytes"),
            &format!("{}\n", 512u64 << 20),
        );
        let limit = detect_in(r).unwrap();
        assert_eq!(
            limit,
            MemoryLimit {
                limit_mb: 512,
                source: LimitSource::CgroupV1
            }
        );
    }

    #[test]
    fn inside_a_container_the_mount_root_is_the_containers_cgroup() {
        let root = tempfile::tempdir().unwrap();
        let r = root.path();
        write(&r.join("proc/meminfo"), MEMINFO_2G);
        // The host path /docker/abc does not exist under the container's mount.
        write(&r.join("proc/self/cgroup"), "4:memory:/docker/abc\n");
        write(
            &r.join("sys/fs/cgroup/memory/memory.limit_in_bytes"),
            &format!("{}\n", 1u64 << 30),
        );
        assert_eq!(detect_in(r).unwrap().limit_mb, 1024);
    }

    #[test]
    fn v2_max_is_no_limit_and_memtotal_wins_when_smaller() {
        let root = tempfile::tempdir().unwrap();
        let r = root.path();
        write(&r.join("proc/meminfo"), MEMINFO_2G);
        write(&r.join("proc/self/cgroup"), "0::/user.slice/test\n");
        write(&r.join("sys/fs/cgroup/user.slice/memory.max"), "max\n");
        write(
            &r.join("sys/fs/cgroup/user.slice/test/memory.max"),
            &format!("{}\n", 8u64 << 30),
        );
        assert_eq!(
            detect_in(r).unwrap(),
            MemoryLimit {
                limit_mb: 2048,
                source: LimitSource::MemTotal
            }
        );
        write(
            &r.join("sys/fs/cgroup/user.slice/memory.max"),
            &format!("{}\n", 300u64 << 20),
        );
        assert_eq!(
            detect_in(r).unwrap(),
            MemoryLimit {
                limit_mb: 300,
                source: LimitSource::CgroupV2
            }
        );
    }

    #[test]
    fn without_cgroups_memtotal_is_the_limit() {
        let root = tempfile::tempdir().unwrap();
        write(&root.path().join("proc/meminfo"), MEMINFO_2G);
        assert_eq!(detect_in(root.path()).unwrap().limit_mb, 2048);
        let empty = tempfile::tempdir().unwrap();
        assert!(detect_in(empty.path()).is_err());
    }

    #[test]
    fn this_machine_has_a_limit() {
        let limit = detect().unwrap();
        assert!(limit.limit_mb > 0, "{limit:?}");
    }
}

//! Memory and CPU of a cgroup read straight from its files, for cheap readings while load
//! runs (the Docker stats API takes about a second per call; a file read takes microseconds).
//!
//! Memory is the working set, usage minus inactive file cache, the figure `docker stats`
//! shows: cgroup v1 `memory.usage_in_bytes − total_inactive_file` (memory.stat), cgroup v2
//! `memory.current − inactive_file`. CPU is `cpuacct.usage` (v1, ns) or `cpu.stat`'s
//! `usage_usec` (v2). The cgroup is found through a member process's `/proc/PID/cgroup`, so
//! whatever cgroup driver the engine uses is followed.

use std::io;
use std::path::{Path, PathBuf};

/// Where cgroup file systems are mounted.
const CGROUP_ROOT: &str = "/sys/fs/cgroup";

/// The files of one cgroup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cgroup {
    /// cgroup v1: separate memory and cpuacct hierarchies.
    V1 {
        /// The memory controller's directory.
        memory: PathBuf,
        /// The cpuacct controller's directory.
        cpuacct: PathBuf,
    },
    /// cgroup v2: one unified directory.
    V2 {
        /// The cgroup's directory.
        dir: PathBuf,
    },
}

/// One reading of a cgroup.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CgroupReading {
    /// Working set now (usage minus inactive file cache), bytes.
    pub memory_bytes: u64,
    /// CPU time used by the cgroup since it was created, seconds.
    pub cpu_seconds: f64,
}

impl Cgroup {
    /// The cgroup of process `pid`, from `/proc/PID/cgroup`.
    pub fn of_pid(pid: u32) -> io::Result<Self> {
        let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup"))?;
        Self::from_proc_cgroup(&text, Path::new(CGROUP_ROOT)).ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::NotFound,
                format!("no memory cgroup of process {pid} under {CGROUP_ROOT}"),
            )
        })
    }

    /// Parses `/proc/PID/cgroup` (`ID:CONTROLLERS:PATH` lines) against the mount `root`.
    fn from_proc_cgroup(text: &str, root: &Path) -> Option<Self> {
        let mut memory = None;
        let mut cpuacct = None;
        let mut unified = None;
        for line in text.lines() {
            let mut parts = line.splitn(3, ':');
            let (Some(_), Some(controllers), Some(path)) =
                (parts.next(), parts.next(), parts.next())
            else {
                continue;
            };
            let relative = path.trim_start_matches('/');
            if controllers.is_empty() {
                unified = Some(root.join(relative));
            }
            for controller in controllers.split(',') {
                match controller {
                    "memory" => memory = Some(root.join("memory").join(relative)),
                    // Co-mounted `cpu,cpuacct` hierarchies are linked as `cpuacct` too.
                    "cpuacct" => cpuacct = Some(root.join("cpuacct").join(relative)),
                    _ => {}
                }
            }
        }
        match (memory, cpuacct, unified) {
            (Some(memory), Some(cpuacct), _) => Some(Self::V1 { memory, cpuacct }),
            (None, _, Some(dir)) => Some(Self::V2 { dir }),
            _ => None,
        }
    }

    /// Reads the cgroup now.
    pub fn read(&self) -> io::Result<CgroupReading> {
        match self {
            Self::V1 { memory, cpuacct } => {
                let usage = read_u64(&memory.join("memory.usage_in_bytes"))?;
                let stat = std::fs::read_to_string(memory.join("memory.stat"))?;
                let inactive = stat_field(&stat, "total_inactive_file").unwrap_or(0);
                let cpu_ns = read_u64(&cpuacct.join("cpuacct.usage"))?;
                Ok(CgroupReading {
                    memory_bytes: usage.saturating_sub(inactive),
                    cpu_seconds: cpu_ns as f64 / 1e9,
                })
            }
            Self::V2 { dir } => {
                let usage = read_u64(&dir.join("memory.current"))?;
                let stat = std::fs::read_to_string(dir.join("memory.stat"))?;
                let inactive = stat_field(&stat, "inactive_file").unwrap_or(0);
                let cpu = std::fs::read_to_string(dir.join("cpu.stat"))?;
                let usec = stat_field(&cpu, "usage_usec").ok_or_else(|| {
                    io::Error::new(io::ErrorKind::InvalidData, "cpu.stat lacks usage_usec")
                })?;
                Ok(CgroupReading {
                    memory_bytes: usage.saturating_sub(inactive),
                    cpu_seconds: usec as f64 / 1e6,
                })
            }
        }
    }
}

fn read_u64(path: &Path) -> io::Result<u64> {
    let text = std::fs::read_to_string(path)?;
    text.trim().parse().map_err(|error| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{}: {error}", path.display()),
        )
    })
}

/// How the host's cgroup file systems are laid out, which decides what a container runtime
/// can do with them (crun wants v2; Debian 12's runsc on v1 needs the engine's parent cpuset
/// filled first, which isobench does, see `env::container`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CgroupLayout {
    /// Only v1 hierarchies, one per controller.
    V1,
    /// The v1 controllers, with an empty v2 hierarchy beside them (`/sys/fs/cgroup/unified`):
    /// systemd's hybrid mode. Controllers are v1's.
    Hybrid,
    /// The v2 unified hierarchy at `/sys/fs/cgroup`.
    V2,
    /// No cgroup file system mounted.
    None,
}

impl CgroupLayout {
    /// The host's layout, from `/proc/self/mounts`.
    pub fn of_host() -> io::Result<Self> {
        Ok(Self::from_mounts(&std::fs::read_to_string(
            "/proc/self/mounts",
        )?))
    }

    /// The layout `mounts` (the `/proc/mounts` format) describe.
    pub fn from_mounts(mounts: &str) -> Self {
        let (mut v1, mut v2_at_root, mut v2_elsewhere) = (false, false, false);
        for line in mounts.lines() {
            let mut fields = line.split_whitespace();
            let (Some(_), Some(target), Some(fstype)) =
                (fields.next(), fields.next(), fields.next())
            else {
                continue;
            };
            match fstype {
                "cgroup" => v1 = true,
                "cgroup2" if target == CGROUP_ROOT => v2_at_root = true,
                "cgroup2" => v2_elsewhere = true,
                _ => {}
            }
        }
        match (v1, v2_at_root || v2_elsewhere) {
            (true, true) => Self::Hybrid,
            (true, false) => Self::V1,
            (false, true) => Self::V2,
            (false, false) => Self::None,
        }
    }
}

/// The value of `key` in a `key value` per line file (memory.stat, cpu.stat).
fn stat_field(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|line| {
        let (name, value) = line.split_once(' ')?;
        (name == key).then(|| value.trim().parse().ok())?
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v1_paths_follow_the_memory_and_cpuacct_lines() {
        let text = "12:cpu,cpuacct:/docker/abc\n9:memory:/docker/abc\n1:name=systemd:/docker/abc\n";
        let cgroup = Cgroup::from_proc_cgroup(text, Path::new("/cg")).unwrap();
        assert_eq!(
            cgroup,
            Cgroup::V1 {
                memory: "/cg/memory/docker/abc".into(),
                cpuacct: "/cg/cpuacct/docker/abc".into(),
            }
        );
    }

    #[test]
    fn v2_uses_the_unified_line() {
        let text = "0::/system.slice/docker-abc.scope\n";
        let cgroup = Cgroup::from_proc_cgroup(text, Path::new("/cg")).unwrap();
        assert_eq!(
            cgroup,
            Cgroup::V2 {
                dir: "/cg/system.slice/docker-abc.scope".into()
            }
        );
    }

    #[test]
    fn v1_working_set_subtracts_inactive_file_cache() {
        let dir = tempfile::tempdir().unwrap();
        let (memory, cpuacct) = (dir.path().join("m"), dir.path().join("c"));
        std::fs::create_dir_all(&memory).unwrap();
        std::fs::create_dir_all(&cpuacct).unwrap();
        std::fs::write(memory.join("memory.usage_in_bytes"), "1000\n").unwrap();
        std::fs::write(
            memory.join("memory.stat"),
            "cache 500\ninactive_file 1\ntotal_inactive_file 300\n",
        )
        .unwrap();
        std::fs::write(cpuacct.join("cpuacct.usage"), "1500000000\n").unwrap();
        let reading = Cgroup::V1 { memory, cpuacct }.read().unwrap();
        assert_eq!(reading.memory_bytes, 700);
        assert_eq!(reading.cpu_seconds, 1.5);
    }

    #[test]
    fn v2_working_set_and_cpu_come_from_the_unified_files() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("memory.current"), "4096\n").unwrap();
        std::fs::write(
            dir.path().join("memory.stat"),
            "anon 2048\nactive_file 1000\ninactive_file 1024\n",
        )
        .unwrap();
        std::fs::write(
            dir.path().join("cpu.stat"),
            "usage_usec 2500000\nuser_usec 2000000\nsystem_usec 500000\n",
        )
        .unwrap();
        let cgroup = Cgroup::V2 {
            dir: dir.path().to_owned(),
        };
        let reading = cgroup.read().unwrap();
        assert_eq!(reading.memory_bytes, 3072);
        assert_eq!(reading.cpu_seconds, 2.5);
        std::fs::write(dir.path().join("cpu.stat"), "user_usec 1\n").unwrap();
        let error = cgroup.read().unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::InvalidData);
    }

    #[test]
    fn the_layout_follows_the_mounted_file_systems() {
        let v1 = "cgroup /sys/fs/cgroup/memory cgroup rw 0 0\n";
        let unified = "cgroup2 /sys/fs/cgroup/unified cgroup2 rw 0 0\n";
        let v2 = "proc /proc proc rw 0 0\ncgroup2 /sys/fs/cgroup cgroup2 rw 0 0\n";
        assert_eq!(CgroupLayout::from_mounts(v1), CgroupLayout::V1);
        assert_eq!(
            CgroupLayout::from_mounts(&format!("{v1}{unified}")),
            CgroupLayout::Hybrid
        );
        assert_eq!(CgroupLayout::from_mounts(v2), CgroupLayout::V2);
        assert_eq!(
            CgroupLayout::from_mounts("proc /proc proc rw 0 0\n"),
            CgroupLayout::None
        );
    }

    #[test]
    fn stat_fields_match_whole_keys() {
        assert_eq!(
            stat_field("total_inactive_file 3\ninactive_file 2\n", "inactive_file"),
            Some(2)
        );
        assert_eq!(stat_field("usage_usec 10\n", "usage"), None);
    }
}

//! The host memory an instance holds, one quantity for every environment: the proportional
//! set size (PSS) of every host process the instance needs, summed.
//!
//! PSS counts each resident page once, divided among the processes that map it: a page only
//! this instance maps counts whole, the text of a binary two instances share counts half in
//! each. Summed over an instance's processes it is what the host gives up for the instance,
//! whatever isolates it, which neither of the other figures at hand is: a process's RSS counts
//! shared pages once per process (and a static binary's file pages in full), a cgroup's usage
//! counts page cache charged to whoever read the file first and kernel memory, and leaves out
//! the processes outside the cgroup that the instance needs (the runtime's shim, docker-proxy,
//! gVisor's gofer). The environments name their processes as roots: each root and its live
//! descendants count (the server's tree natively; containerd's shim, whose tree holds the
//! container's processes and gVisor's sandbox and gofer, and docker-proxy; QEMU).
//!
//! Memory files count once each, in place of the processes' shared mappings of them: a
//! process can hold memory in a file of memory (`memfd`, `/dev/shm`) that no process maps at
//! the moment, which PSS cannot see. gVisor keeps all of its guest's memory in one such
//! file, and maps only the pages in use into the processes that run the application; so
//! where an instance holds memory files open, its figure is the PSS of its processes less
//! their shared-memory mappings, plus the pages allocated to each memory file. (Anonymous
//! shared memory of such an instance is then left out; none of the runtimes has any.)
//!
//! The kernel sums a process's mappings in `/proc/<pid>/smaps_rollup` (Linux 4.14); reading
//! it walks the process's page tables, which takes longer the more it maps (microseconds for
//! a small server, about a millisecond for a VM's QEMU), so callers that sample often pace
//! their readings by what one costs. Reading another user's process needs root (or
//! `CAP_SYS_PTRACE`); the error says so rather than falling back to another measure.

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The measure in words, for labels: what every environment's memory figure is.
pub const MEASURE: &str = "PSS (each resident page divided among the processes that map it)";

/// `MEASURE summed over <processes>`, the label of one environment's memory figures.
pub fn counts(processes: &str) -> String {
    format!("{MEASURE} summed over {processes}")
}

/// Why the footprint could not be read.
#[derive(Debug, thiserror::Error)]
pub enum FootprintError {
    /// A root process no longer exists.
    #[error("process {pid} is gone")]
    Gone {
        /// The root.
        pid: u32,
    },
    /// `/proc/<pid>/smaps_rollup` is not readable by this process.
    #[error(
        "cannot read /proc/{pid}/smaps_rollup ({source}): reading another user's process needs \
         root or CAP_SYS_PTRACE"
    )]
    Unreadable {
        /// The process.
        pid: u32,
        /// What the kernel said.
        source: io::Error,
    },
    /// The file has no `Pss:` line (a kernel older than 4.14 has no such file).
    #[error("/proc/{pid}/smaps_rollup has no Pss line")]
    NoPss {
        /// The process.
        pid: u32,
    },
}

/// One reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Footprint {
    /// The instance's host memory, bytes: PSS of every process read, summed, with memory
    /// files counted in place of the shared mappings of them.
    pub pss_bytes: u64,
    /// How many processes were read.
    pub processes: usize,
    /// How many memory files they hold open.
    pub memory_files: usize,
}

/// The figures of one process's `smaps_rollup`, bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Rollup {
    pss: u64,
    pss_shmem: u64,
}

/// The `Pss:` and `Pss_Shmem:` figures of a `smaps_rollup` text (a kernel before 5.9 has no
/// `Pss_Shmem`: then 0).
fn parse_rollup(text: &str) -> Option<Rollup> {
    let field = |name: &str| -> Option<u64> {
        let line = text.lines().find(|line| line.starts_with(name))?;
        let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
        Some(kib * 1024)
    };
    Some(Rollup {
        pss: field("Pss:")?,
        pss_shmem: field("Pss_Shmem:").unwrap_or(0),
    })
}

/// The rollup of `pid`; `Ok(None)` when it exited before it could be read.
fn rollup_of(pid: u32) -> Result<Option<Rollup>, FootprintError> {
    match std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")) {
        Ok(text) => parse_rollup(&text)
            .map(Some)
            .ok_or(FootprintError::NoPss { pid }),
        Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(None),
        // A process that exits while its file is read reads as ESRCH.
        Err(error) if error.raw_os_error() == Some(libc::ESRCH) => Ok(None),
        Err(source) => Err(FootprintError::Unreadable { pid, source }),
    }
}

/// Whether an fd's target is a file of memory.
fn is_memory_file(target: &std::path::Path) -> bool {
    let target = target.to_string_lossy();
    target.starts_with("/memfd:") || target.starts_with("/dev/shm/")
}

/// The memory files `pid` holds open, each opened here once (by inode) so that every
/// reading measures it with one `fstat`.
fn find_memory_files(pid: u32, found: &mut BTreeMap<(u64, u64), std::fs::File>) {
    use std::os::unix::fs::MetadataExt;
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return;
    };
    for fd in fds.flatten() {
        let Ok(target) = std::fs::read_link(fd.path()) else {
            continue;
        };
        if !is_memory_file(&target) {
            continue;
        }
        if let Ok(file) = std::fs::File::open(fd.path())
            && let Ok(meta) = file.metadata()
        {
            found.entry((meta.dev(), meta.ino())).or_insert(file);
        }
    }
}

/// How often the processes' open files are searched for memory files: a sandbox makes them
/// when it starts, not per request, and a search reads every open fd.
const MEMORY_FILE_SEARCH_EVERY: Duration = Duration::from_secs(1);

/// The memory files found so far and when they were last searched for.
#[derive(Debug, Default)]
struct MemoryFiles {
    searched: Option<Instant>,
    files: BTreeMap<(u64, u64), std::fs::File>,
}

/// Reads one instance's footprint: the processes named by their roots, each root with its
/// live descendants.
#[derive(Debug)]
pub struct FootprintProbe {
    roots: Vec<u32>,
    memory_files: Mutex<MemoryFiles>,
}

impl FootprintProbe {
    /// A probe of `roots` and their descendants.
    pub fn new(roots: Vec<u32>) -> Self {
        Self {
            roots,
            memory_files: Mutex::new(MemoryFiles::default()),
        }
    }

    /// Reads every process now, each once; fails when a root is gone.
    pub fn read(&self) -> Result<Footprint, FootprintError> {
        use std::os::unix::fs::MetadataExt;
        let mut pids = BTreeSet::new();
        for &root in &self.roots {
            let members =
                super::tree::members(root).map_err(|_| FootprintError::Gone { pid: root })?;
            pids.extend(members);
        }
        let (mut pss, mut shmem, mut processes) = (0, 0, 0);
        for &pid in &pids {
            match rollup_of(pid)? {
                Some(rollup) => {
                    pss += rollup.pss;
                    shmem += rollup.pss_shmem;
                    processes += 1;
                }
                None if self.roots.contains(&pid) => return Err(FootprintError::Gone { pid }),
                None => {}
            }
        }
        let mut memory_files = self.memory_files.lock().unwrap_or_else(|p| p.into_inner());
        if memory_files
            .searched
            .is_none_or(|at| at.elapsed() >= MEMORY_FILE_SEARCH_EVERY)
        {
            for &pid in &pids {
                find_memory_files(pid, &mut memory_files.files);
            }
            memory_files.searched = Some(Instant::now());
        }
        let held: u64 = memory_files
            .files
            .values()
            .filter_map(|file| file.metadata().ok().map(|meta| meta.blocks() * 512))
            .sum();
        let pss_bytes = if memory_files.files.is_empty() {
            pss
        } else {
            pss.saturating_sub(shmem) + held
        };
        Ok(Footprint {
            pss_bytes,
            processes,
            memory_files: memory_files.files.len(),
        })
    }
}

/// Reads `roots` and their live descendants once, with a probe that is not kept.
pub fn read(roots: &[u32]) -> Result<Footprint, FootprintError> {
    FootprintProbe::new(roots.to_vec()).read()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_pss_lines() {
        let text = "5570a32ff000-7ffed48eb000 ---p 00000000 00:00 0  [rollup]\n\
                    Rss:                1704 kB\nPss:                 345 kB\n\
                    Pss_Anon:            112 kB\nPss_Shmem:            10 kB\n";
        assert_eq!(
            parse_rollup(text),
            Some(Rollup {
                pss: 345 * 1024,
                pss_shmem: 10 * 1024
            })
        );
        assert_eq!(parse_rollup("Pss: 2 kB\n").map(|r| r.pss_shmem), Some(0));
        assert_eq!(parse_rollup("Rss: 1 kB\n"), None);
    }

    /// Pages a process wrote and holds count whole in its PSS (no other process maps them):
    /// a shell holding 32 MiB of random text in a variable reads at least 32 MiB, itself and
    /// its `sleep`.
    #[test]
    fn counts_what_a_tree_holds() {
        use std::os::unix::process::CommandExt;
        let mut child = std::process::Command::new("sh")
            .args([
                "-c",
                "x=$(head -c 33554432 /dev/urandom | od -An -v -tx1 | head -c 33554432); \
                 echo ready; sleep 5; echo ${#x}",
            ])
            .stdout(std::process::Stdio::piped())
            .process_group(0)
            .spawn()
            .unwrap();
        let mut ready = String::new();
        std::io::BufRead::read_line(
            &mut std::io::BufReader::new(child.stdout.as_mut().unwrap()),
            &mut ready,
        )
        .unwrap();
        // The shell has forked its `sleep` by now; give it a moment to exec.
        std::thread::sleep(std::time::Duration::from_millis(100));
        let holding = read(&[child.id()]);
        let gone = read(&[u32::MAX - 1]);
        // SAFETY: signalling the group of our own child.
        unsafe { libc::kill(-(child.id() as i32), libc::SIGKILL) };
        child.wait().unwrap();
        let holding = holding.unwrap();
        assert_eq!(ready.trim(), "ready");
        assert!(
            holding.processes >= 2,
            "the shell and its sleep: {holding:?}"
        );
        assert!(holding.pss_bytes >= 32 << 20, "{holding:?}");
        assert!(matches!(gone, Err(FootprintError::Gone { .. })));
    }
}

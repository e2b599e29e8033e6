//! The processes of a process *tree*, and their CPU time: a service that forks (gunicorn's
//! master and its workers, busybox httpd's child per connection) is all of its processes,
//! not its first.
//!
//! Read from `/proc/<pid>/stat` of the root and every live descendant, found from the root
//! down through each thread's `/proc/<pid>/task/<tid>/children`, so a reading costs a few
//! files per process of the service, not a walk of every process on the host (readings are
//! taken every few milliseconds, on the generator's CPUs); a kernel without that file
//! (`CONFIG_PROC_CHILDREN`) gets the walk of `/proc`. CPU time is each
//! process's own (its scheduler clock, nanoseconds) plus that of the children it has reaped
//! (`cutime`, `cstime`), so work done by short-lived children that already exited still
//! counts. Memory is the footprint's
//! ([`super::footprint`]), which reads the processes this module finds.

use std::collections::{BTreeMap, BTreeSet};
use std::io;

/// One process's figures from `/proc/<pid>/stat`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stat {
    ppid: u32,
    /// cutime + cstime: the CPU of its children it reaped, clock ticks.
    reaped_ticks: u64,
}

/// Parses `/proc/<pid>/stat`; the command name may hold spaces and parentheses, so fields
/// are counted from the last `)`.
fn parse_stat(text: &str) -> Option<Stat> {
    let rest = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // rest starts at field 3 (state): ppid is field 4, cutime and cstime 16 and 17.
    let field = |n: usize| fields.get(n - 3)?.parse::<u64>().ok();
    Some(Stat {
        ppid: u32::try_from(field(4)?).ok()?,
        reaped_ticks: field(16)? + field(17)?,
    })
}

fn read_all() -> BTreeMap<u32, Stat> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return BTreeMap::new();
    };
    entries
        .filter_map(|entry| {
            let pid: u32 = entry.ok()?.file_name().to_str()?.parse().ok()?;
            let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            Some((pid, parse_stat(&text)?))
        })
        .collect()
}

/// `root` and its descendants among `stats`.
fn tree_of(root: u32, stats: &BTreeMap<u32, Stat>) -> BTreeSet<u32> {
    let mut tree = BTreeSet::from([root]);
    // Descendants can have lower pids than their ancestors (pid wrap), so iterate to a fixpoint.
    loop {
        let before = tree.len();
        for (&pid, stat) in stats {
            if tree.contains(&stat.ppid) {
                tree.insert(pid);
            }
        }
        if tree.len() == before {
            return tree;
        }
    }
}

/// The children of `pid`, from every one of its threads' `children` files; `None` when the
/// kernel has no such file.
fn children_of(pid: u32) -> Option<Vec<u32>> {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).ok()?;
    let mut children = Vec::new();
    let mut any = false;
    for task in tasks.flatten() {
        let Ok(text) = std::fs::read_to_string(task.path().join("children")) else {
            continue;
        };
        any = true;
        children.extend(
            text.split_whitespace()
                .filter_map(|c| c.parse::<u32>().ok()),
        );
    }
    any.then_some(children)
}

/// `root` and its live descendants with their figures, read from the root down; `None`
/// when the kernel lists no children files (then [`read_all`] and [`tree_of`] are used).
fn read_from_root(root: u32) -> Option<BTreeMap<u32, Stat>> {
    let mut stats = BTreeMap::new();
    let mut pending = vec![root];
    while let Some(pid) = pending.pop() {
        if stats.contains_key(&pid) {
            continue;
        }
        let Some(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .ok()
            .and_then(|text| parse_stat(&text))
        else {
            // Exited between its parent's listing and now.
            continue;
        };
        stats.insert(pid, stat);
        match children_of(pid) {
            Some(children) => pending.extend(children),
            None if pid == root => return None,
            None => {}
        }
    }
    Some(stats)
}

/// `root` and its live descendants with their figures; fails if the root is gone.
fn read_tree(root: u32) -> io::Result<BTreeMap<u32, Stat>> {
    let stats = match read_from_root(root) {
        Some(stats) => stats,
        None => {
            let all = read_all();
            let tree = tree_of(root, &all);
            all.into_iter()
                .filter(|(pid, _)| tree.contains(pid))
                .collect()
        }
    };
    if !stats.contains_key(&root) {
        return Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!("process {root} is gone"),
        ));
    }
    Ok(stats)
}

/// The parent of `pid`; fails if it is gone.
pub fn parent_of(pid: u32) -> io::Result<u32> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    parse_stat(&text).map(|stat| stat.ppid).ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("unreadable /proc/{pid}/stat"),
        )
    })
}

/// `root` and its live descendants now; fails if the root is gone.
pub fn members(root: u32) -> io::Result<BTreeSet<u32>> {
    Ok(read_tree(root)?.into_keys().collect())
}

/// CPU time the tree rooted at `root` has used, its reaped children's included, seconds;
/// fails if the root is gone. Each live process's own time comes from its scheduler clock
/// (nanoseconds); only what reaped children used is in `/proc`'s ticks, the sole record of it.
pub fn cpu_seconds(root: u32) -> io::Result<f64> {
    // SAFETY: sysconf has no preconditions.
    let ticks_per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    let mut seconds = 0.0;
    for (pid, stat) in read_tree(root)? {
        match super::process::cpu_seconds(pid) {
            Ok(own) => seconds += own + stat.reaped_ticks as f64 / ticks_per_second,
            Err(error) if pid == root => return Err(error),
            // Exited since the tree was read: its time is now its parent's to report.
            Err(_) => {}
        }
    }
    Ok(seconds)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_stat_line_with_a_hostile_name() {
        let line = "1234 (a) b (c) S 1 1234 1234 0 -1 4194560 100 0 0 0 7 3 2 1 20 0 1 0 100 1000000 250 18446744073709551615";
        assert_eq!(
            parse_stat(line),
            Some(Stat {
                ppid: 1,
                reaped_ticks: 3
            })
        );
        assert_eq!(parse_stat("garbage"), None);
    }

    #[test]
    fn finds_descendants_of_any_depth() {
        let stat = |ppid| Stat {
            ppid,
            reaped_ticks: 1,
        };
        let stats = BTreeMap::from([(10, stat(1)), (5, stat(10)), (20, stat(5)), (30, stat(1))]);
        assert_eq!(tree_of(10, &stats), BTreeSet::from([5, 10, 20]));
    }

    #[test]
    fn reads_a_real_tree_with_its_children() {
        use std::os::unix::process::CommandExt;
        let mut child = std::process::Command::new("sh")
            .args(["-c", "sleep 5 & sleep 5 & wait"])
            .process_group(0)
            .spawn()
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(200));
        let stats = read_all();
        let tree = tree_of(child.id(), &stats);
        let walked = read_from_root(child.id()).expect("this kernel lists children");
        let members = members(child.id());
        // SAFETY: signalling the group of our own child.
        unsafe { libc::kill(-(child.id() as i32), libc::SIGKILL) };
        child.wait().unwrap();
        assert_eq!(tree.len(), 3, "sh and its two sleeps: {tree:?}");
        assert_eq!(
            walked.keys().copied().collect::<BTreeSet<u32>>(),
            tree,
            "the walk from the root finds what the scan of /proc finds"
        );
        assert_eq!(members.unwrap(), tree);
        assert!(cpu_seconds(u32::MAX - 1).is_err());
    }
}

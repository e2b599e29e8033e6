//! Memory and CPU time of one process (the native server, or the QEMU running a VM).
//!
//! RSS and CPU time come from sysinfo; the peak (VmHWM) is read from `/proc/<pid>/status`
//! because sysinfo does not expose it, and a peak sampled by polling would miss short spikes.

use std::io;

use sysinfo::{Pid, ProcessRefreshKind, ProcessesToUpdate, System};

/// One reading of a process.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ProcessReading {
    /// Resident set size now, bytes.
    pub rss_bytes: u64,
    /// Highest resident set size since the process started, bytes (Linux VmHWM).
    pub peak_rss_bytes: Option<u64>,
    /// CPU time used since start, user + system, seconds.
    pub cpu_seconds: f64,
}

/// Reads one process repeatedly; keeps sysinfo's state between readings (behind a lock, so
/// an instance can be read through a shared reference).
pub struct ProcessProbe {
    pid: Pid,
    system: std::sync::Mutex<System>,
}

impl ProcessProbe {
    /// A probe for `pid`.
    pub fn new(pid: u32) -> Self {
        Self {
            pid: Pid::from_u32(pid),
            system: std::sync::Mutex::new(System::new()),
        }
    }

    /// Reads the process now; fails if it no longer exists.
    pub fn read(&self) -> io::Result<ProcessReading> {
        // A panic while reading cannot leave sysinfo's cache inconsistent for our purpose.
        let mut system = self.system.lock().unwrap_or_else(|p| p.into_inner());
        system.refresh_processes_specifics(
            ProcessesToUpdate::Some(&[self.pid]),
            true,
            ProcessRefreshKind::nothing().with_memory().with_cpu(),
        );
        let process = system.process(self.pid).ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::NotFound,
                format!("process {} is gone", self.pid),
            )
        })?;
        Ok(ProcessReading {
            rss_bytes: process.memory(),
            peak_rss_bytes: peak_rss_bytes(self.pid.as_u32()),
            cpu_seconds: process.accumulated_cpu_time() as f64 / 1000.0,
        })
    }
}

/// VmHWM of `pid` in bytes, where `/proc` has it.
fn peak_rss_bytes(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|line| line.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_this_process() {
        let probe = ProcessProbe::new(std::process::id());
        let reading = probe.read().unwrap();
        assert!(reading.rss_bytes > 0);
        assert!(reading.peak_rss_bytes.unwrap() >= reading.rss_bytes / 2);
    }

    #[test]
    fn a_missing_process_is_an_error() {
        assert!(ProcessProbe::new(u32::MAX - 1).read().is_err());
    }
}

//! Memory and CPU time of one process (the native server, or the QEMU running a VM).
//!
//! RSS comes from sysinfo; the peak (VmHWM) is read from `/proc/<pid>/status` because
//! sysinfo does not expose it, and a peak sampled by polling would miss short spikes. CPU
//! time is the process's scheduler clock (`clock_getcpuclockid`), in nanoseconds, all its
//! threads together, exited ones included: `/proc`'s utime and stime (what sysinfo reads)
//! come in 10 ms ticks, a large step against the CPU a window of a few hundred requests
//! uses, and the containers' cgroup clock is in nanoseconds too. Children the process
//! reaped are not in it (a single-process server and QEMU have none).

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

/// CPU time `pid` has used, all its threads, from the kernel's scheduler clock.
pub fn scheduler_cpu_seconds(pid: u32) -> io::Result<f64> {
    let pid = libc::pid_t::try_from(pid)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "pid out of range"))?;
    let mut clock: libc::clockid_t = 0;
    // SAFETY: `clock` is a valid place for the clock id.
    let status = unsafe { libc::clock_getcpuclockid(pid, &mut clock) };
    if status != 0 {
        return Err(io::Error::from_raw_os_error(status));
    }
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `now` is a valid timespec to fill.
    if unsafe { libc::clock_gettime(clock, &mut now) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(now.tv_sec as f64 + now.tv_nsec as f64 / 1e9)
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
            ProcessRefreshKind::nothing().with_memory(),
        );
        let process = system.process(self.pid).ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::NotFound,
                format!("process {} is gone", self.pid),
            )
        })?;
        let rss_bytes = process.memory();
        Ok(ProcessReading {
            rss_bytes,
            peak_rss_bytes: peak_rss_bytes(self.pid.as_u32()),
            cpu_seconds: scheduler_cpu_seconds(self.pid.as_u32())?,
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

    /// Readings move with the CPU actually used, not in 10 ms ticks: after this thread
    /// spins 2 ms of its own CPU time, the process clock has moved at least that much, and
    /// its readings do not all fall on whole 10 ms ticks (which `/proc`'s utime and stime
    /// always would).
    #[test]
    fn cpu_time_is_read_in_nanoseconds() {
        let me = std::process::id();
        let start = scheduler_cpu_seconds(me).unwrap();
        let spun_from = crate::probe::usage::thread_cpu();
        let mut x = 0u64;
        while crate::probe::usage::thread_cpu() - spun_from < std::time::Duration::from_millis(2) {
            x = std::hint::black_box(x.wrapping_add(1));
        }
        let readings: Vec<f64> = (0..3).map(|_| scheduler_cpu_seconds(me).unwrap()).collect();
        assert!(readings[0] - start >= 0.002, "{start} → {readings:?}");
        let on_a_tick = |s: f64| ((s * 1e9).round() as u64).is_multiple_of(10_000_000);
        assert!(!readings.iter().all(|s| on_a_tick(*s)), "{readings:?}");
    }

    #[test]
    fn a_missing_process_is_an_error() {
        assert!(ProcessProbe::new(u32::MAX - 1).read().is_err());
    }
}

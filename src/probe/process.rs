//! CPU time of one process (the native server, QEMU, docker-proxy), from the kernel's
//! scheduler clock (`clock_getcpuclockid`), in nanoseconds, all its threads together,
//! exited ones included: `/proc`'s utime and stime come in 10 ms ticks, a large step
//! against the CPU a window of a few hundred requests uses, and the containers' cgroup clock
//! is in nanoseconds too. Children the process reaped are not in it (a single-process
//! server, QEMU and docker-proxy have none). Memory is the footprint's
//! ([`super::footprint`]), the same measure for every environment.

use std::io;

/// CPU time `pid` has used, all its threads, from the kernel's scheduler clock.
pub fn cpu_seconds(pid: u32) -> io::Result<f64> {
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Readings move with the CPU actually used, not in 10 ms ticks: after this thread
    /// spins 2 ms of its own CPU time, the process clock has moved at least that much, and
    /// its readings do not all fall on whole 10 ms ticks (which `/proc`'s utime and stime
    /// always would).
    #[test]
    fn cpu_time_is_read_in_nanoseconds() {
        let me = std::process::id();
        let start = cpu_seconds(me).unwrap();
        let spun_from = crate::probe::usage::thread_cpu();
        let mut x = 0u64;
        while crate::probe::usage::thread_cpu() - spun_from < std::time::Duration::from_millis(2) {
            x = std::hint::black_box(x.wrapping_add(1));
        }
        let readings: Vec<f64> = (0..3).map(|_| cpu_seconds(me).unwrap()).collect();
        assert!(readings[0] - start >= 0.002, "{start} → {readings:?}");
        let on_a_tick = |s: f64| ((s * 1e9).round() as u64).is_multiple_of(10_000_000);
        assert!(!readings.iter().all(|s| on_a_tick(*s)), "{readings:?}");
    }

    #[test]
    fn a_missing_process_is_an_error() {
        assert!(cpu_seconds(u32::MAX - 1).is_err());
    }
}

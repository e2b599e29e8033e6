//! The generator's own CPU use, so a run can tell when the generator, not the server, was the
//! limit: process CPU time from `getrusage(RUSAGE_SELF)`, and each worker thread's own CPU
//! time from `CLOCK_THREAD_CPUTIME_ID`.

use std::time::Duration;

/// CPU time (user + system) this whole process has used so far.
pub fn process_cpu() -> Duration {
    // SAFETY: all-zero is a valid rusage for the kernel to fill.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: valid pointer to a rusage.
    let rc = unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) };
    if rc != 0 {
        return Duration::ZERO;
    }
    timeval(usage.ru_utime) + timeval(usage.ru_stime)
}

fn timeval(tv: libc::timeval) -> Duration {
    Duration::from_secs(tv.tv_sec.max(0) as u64) + Duration::from_micros(tv.tv_usec.max(0) as u64)
}

/// CPU time the calling thread has used so far.
pub fn thread_cpu() -> Duration {
    // SAFETY: all-zero is a valid timespec for the kernel to fill.
    let mut ts: libc::timespec = unsafe { std::mem::zeroed() };
    // SAFETY: valid pointer to a timespec.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    if rc != 0 {
        return Duration::ZERO;
    }
    Duration::from_secs(ts.tv_sec.max(0) as u64) + Duration::from_nanos(ts.tv_nsec.max(0) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn busy_work_shows_in_thread_and_process_cpu() {
        let (process, thread) = (process_cpu(), thread_cpu());
        let start = std::time::Instant::now();
        let mut x = 0u64;
        while start.elapsed() < Duration::from_millis(50) {
            x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(7));
        }
        assert!(thread_cpu() > thread);
        assert!(process_cpu() > process);
    }
}

//! Waiting for a quiet machine before each instance starts.
//!
//! A round starts right after another environment's instance was stopped (or, for the first
//! round, right after the images were built): the engine removing a container, the kernel
//! writing back a freshly built image, a QEMU process exiting — all of it runs on the same
//! CPUs the next instance's service and load generator are pinned to, and shows up as spread
//! between rounds that has nothing to do with the environment. So each round first waits,
//! bounded, until the whole host's CPU use stays below a threshold over one reading, and
//! records the wait; a round that had to start on a busy machine says so in the
//! environment's notes.

use std::time::{Duration, Instant};

use crate::artifact::QuietWait;
use crate::probe::host::CpuMeter;

/// When the machine counts as quiet, and how long to wait for it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct QuietPolicy {
    /// Quiet means the host's CPU use over one reading ([`CpuMeter::MIN_SPAN`]) is at most
    /// this percentage of all its CPUs together.
    pub busy_at_most_percent: f64,
    /// Longest wait; the instance is started anyway after it, and the round says so.
    pub within: Duration,
}

impl QuietPolicy {
    /// 5% of the machine (a tenth of one CPU on two) over 200 ms: an idle engine and an idle
    /// desktop stay well under it, a container being removed or an image being written back
    /// does not. Five seconds bounds what a machine that never falls quiet adds per round.
    pub const DEFAULT: Self = Self {
        busy_at_most_percent: 5.0,
        within: Duration::from_secs(5),
    };
}

/// Waits until the host is quiet by `policy`, or its bound passes; says how it went.
pub fn wait(policy: &QuietPolicy) -> QuietWait {
    let started = Instant::now();
    let mut meter = CpuMeter::start();
    loop {
        std::thread::sleep(CpuMeter::MIN_SPAN);
        let busy = meter.busy_percent();
        let quiet = busy <= policy.busy_at_most_percent;
        if quiet || started.elapsed() >= policy.within {
            return QuietWait {
                waited_ms: started.elapsed().as_secs_f64() * 1e3,
                busy_percent: busy,
                quiet,
            };
        }
    }
}

/// The environment's note for a round that started on a busy machine.
pub fn busy_note(round: u32, wait: &QuietWait) -> Option<String> {
    (!wait.quiet).then(|| {
        format!(
            "round {} started on a busy machine: {:.0}% of the host's CPU in use after waiting \
             {:.1} s for it to fall quiet",
            round + 1,
            wait.busy_percent,
            wait.waited_ms / 1e3
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_machine_is_quiet_by_a_threshold_of_everything() {
        let policy = QuietPolicy {
            busy_at_most_percent: 100.0,
            within: Duration::from_secs(5),
        };
        let wait = wait(&policy);
        assert!(wait.quiet);
        // One reading, not more.
        assert!(wait.waited_ms >= CpuMeter::MIN_SPAN.as_secs_f64() * 1e3);
        assert!(wait.waited_ms < 2_000.0, "{wait:?}");
        assert_eq!(busy_note(0, &wait), None);
    }

    #[test]
    fn a_busy_machine_is_waited_for_only_within_the_bound_and_noted() {
        let cpus = crate::probe::host::read().logical_cpus as f64;
        let stop = std::sync::atomic::AtomicBool::new(false);
        let wait = std::thread::scope(|scope| {
            scope.spawn(|| {
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    std::hint::spin_loop();
                }
            });
            // One spinning thread is a whole CPU: far above a quarter of one.
            let policy = QuietPolicy {
                busy_at_most_percent: 25.0 / cpus,
                within: Duration::from_millis(600),
            };
            let wait = wait(&policy);
            stop.store(true, std::sync::atomic::Ordering::Relaxed);
            wait
        });
        assert!(!wait.quiet, "{wait:?}");
        assert!(wait.waited_ms >= 600.0, "{wait:?}");
        assert!(wait.busy_percent > 25.0 / cpus, "{wait:?}");
        let note = busy_note(2, &wait).unwrap();
        assert!(
            note.starts_with("round 3 started on a busy machine"),
            "{note}"
        );
    }
}

//! The host the measurements were taken on, recorded in every artifact, and how busy its
//! CPUs are right now.

use std::time::Duration;

use sysinfo::{CpuRefreshKind, MemoryRefreshKind, RefreshKind, System};

use crate::artifact::HostInfo;

/// Reads the host's CPU model, CPU count, kernel, OS, memory and name, as artifacts record
/// them.
pub fn read() -> HostInfo {
    let system = System::new_with_specifics(
        RefreshKind::nothing()
            .with_cpu(CpuRefreshKind::nothing())
            .with_memory(MemoryRefreshKind::nothing().with_ram()),
    );
    HostInfo {
        cpu_model: system
            .cpus()
            .first()
            .map(|cpu| cpu.brand().trim().to_owned())
            .unwrap_or_else(|| "unknown".into()),
        logical_cpus: system.cpus().len(),
        kernel: System::kernel_version().unwrap_or_else(|| "unknown".into()),
        os: System::long_os_version().unwrap_or_else(|| "unknown".into()),
        memory_total_bytes: system.total_memory(),
        hostname: System::host_name().unwrap_or_else(|| "unknown".into()),
    }
}

/// Measures how busy the host's CPUs are, whoever uses them.
pub struct CpuMeter {
    system: System,
}

impl CpuMeter {
    /// The shortest span a reading can cover: below it the kernel's tick counts are too
    /// coarse to tell (sysinfo's `MINIMUM_CPU_UPDATE_INTERVAL`).
    pub const MIN_SPAN: Duration = sysinfo::MINIMUM_CPU_UPDATE_INTERVAL;

    /// A meter whose first [`Self::busy_percent`] covers the time from now.
    pub fn start() -> Self {
        let mut system = System::new_with_specifics(
            RefreshKind::nothing().with_cpu(CpuRefreshKind::nothing().with_cpu_usage()),
        );
        system.refresh_cpu_usage();
        Self { system }
    }

    /// The host's CPU use since the previous call (or [`Self::start`]), as a percentage of
    /// all its CPUs together: 50 on a 2-CPU host means one CPU's worth. Meaningful only when
    /// at least [`Self::MIN_SPAN`] has passed.
    pub fn busy_percent(&mut self) -> f64 {
        self.system.refresh_cpu_usage();
        f64::from(self.system.global_cpu_usage())
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn host_reading_is_plausible() {
        let host = super::read();
        assert!(host.logical_cpus >= 1);
        assert!(host.memory_total_bytes > 0);
        assert_ne!(host.kernel, "unknown");
    }

    #[test]
    fn a_spinning_thread_shows_in_the_cpu_meter() {
        let mut meter = super::CpuMeter::start();
        let until = std::time::Instant::now() + super::CpuMeter::MIN_SPAN * 2;
        let mut spins = 0u64;
        while std::time::Instant::now() < until {
            spins = std::hint::black_box(spins + 1);
        }
        let busy = meter.busy_percent();
        let cpus = super::read().logical_cpus as f64;
        // One thread spinning is one CPU's worth, less whatever the scheduler took from it.
        assert!(
            busy >= 50.0 / cpus && busy <= 100.0,
            "{busy}% busy with one spinning thread on {cpus} CPUs"
        );
    }
}

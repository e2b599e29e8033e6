//! The host the measurements were taken on, recorded in every artifact, and how busy its
//! CPUs are right now.

use std::time::Duration;

use sysinfo::{CpuRefreshKind, MemoryRefreshKind, RefreshKind, System};

use crate::artifact::HostInfo;
use crate::artifact::density::HostMemory;

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

/// The host's memory accounting now, from `/proc/meminfo` (what `isobench density` reads as
/// the host's own view beside the instances' PSS).
pub fn memory() -> std::io::Result<HostMemory> {
    Ok(parse_meminfo(&std::fs::read_to_string("/proc/meminfo")?))
}

/// The fields of `/proc/meminfo` that [`HostMemory`] holds (kB in the file, bytes here);
/// missing fields read 0.
pub fn parse_meminfo(text: &str) -> HostMemory {
    let field = |name: &str| -> u64 {
        text.lines()
            .find_map(|line| {
                let rest = line.strip_prefix(name)?.strip_prefix(':')?;
                rest.split_whitespace().next()?.parse::<u64>().ok()
            })
            .unwrap_or(0)
            * 1024
    };
    HostMemory {
        total_bytes: field("MemTotal"),
        available_bytes: field("MemAvailable"),
        cached_bytes: field("Cached"),
        shmem_bytes: field("Shmem"),
        kernel_bytes: field("SUnreclaim") + field("KernelStack") + field("PageTables"),
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

/// One CPU's time so far, from `/proc/stat` (the kernel's ticks, `USER_HZ`), seconds.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct CpuTimes {
    /// Time anything ran on it: user, nice, system, irq and softirq.
    pub busy_s: f64,
    /// Time the hypervisor gave the virtual CPU's host thread to something else while the
    /// guest wanted to run (steal); 0 on bare metal.
    pub steal_s: f64,
}

/// Every CPU's [`CpuTimes`] now, by CPU number.
pub fn cpu_times() -> std::io::Result<std::collections::BTreeMap<usize, CpuTimes>> {
    // SAFETY: sysconf has no preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    let per_second = if ticks > 0 { ticks as f64 } else { 100.0 };
    Ok(parse_stat(
        &std::fs::read_to_string("/proc/stat")?,
        per_second,
    ))
}

/// The per-CPU lines of `/proc/stat` (`cpuN user nice system idle iowait irq softirq steal
/// …`) with ticks of `1 / per_second` s.
pub fn parse_stat(text: &str, per_second: f64) -> std::collections::BTreeMap<usize, CpuTimes> {
    text.lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let cpu = fields.next()?.strip_prefix("cpu")?.parse::<usize>().ok()?;
            let ticks: Vec<f64> = fields.map_while(|f| f.parse().ok()).collect();
            let tick = |i: usize| ticks.get(i).copied().unwrap_or(0.0) / per_second;
            Some((
                cpu,
                CpuTimes {
                    busy_s: tick(0) + tick(1) + tick(2) + tick(5) + tick(6),
                    steal_s: tick(7),
                },
            ))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn stat_lines_give_busy_and_stolen_time_per_cpu() {
        let text = "cpu  10 0 5 100 0 0 0 3 0 0\ncpu0 100 20 30 400 7 1 2 50 0 0\n\
                    cpu1 1 0 1 1 0 0 0 0 0 0\nintr 5\n";
        let times = super::parse_stat(text, 100.0);
        assert_eq!(times.len(), 2);
        let cpu0 = times[&0];
        assert!((cpu0.busy_s - 1.53).abs() < 1e-9, "{cpu0:?}");
        assert!((cpu0.steal_s - 0.5).abs() < 1e-9);
        assert!(!super::cpu_times().unwrap().is_empty());
    }

    #[test]
    fn host_reading_is_plausible() {
        let host = super::read();
        assert!(host.logical_cpus >= 1);
        assert!(host.memory_total_bytes > 0);
        assert_ne!(host.kernel, "unknown");
    }

    #[test]
    fn meminfo_fields_are_read_in_bytes() {
        let text = "MemTotal:       24000000 kB\nMemFree: 1 kB\nMemAvailable:   20000000 kB\n\
                    Cached: 300 kB\nSwapCached: 7 kB\nShmem: 100 kB\nSUnreclaim: 10 kB\n\
                    KernelStack: 2 kB\nPageTables: 3 kB\n";
        let memory = super::parse_meminfo(text);
        assert_eq!(memory.total_bytes, 24_000_000 * 1024);
        assert_eq!(memory.used_bytes(), 4_000_000 * 1024);
        // `SwapCached` must not be read as `Cached`.
        assert_eq!(memory.cached_bytes, 300 * 1024);
        assert_eq!(memory.shmem_bytes, 100 * 1024);
        assert_eq!(memory.kernel_bytes, 15 * 1024);
        let live = super::memory().unwrap();
        assert!(live.total_bytes > 0 && live.available_bytes <= live.total_bytes);
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

//! The host the measurements were taken on, recorded in every artifact.

use sysinfo::{CpuRefreshKind, MemoryRefreshKind, RefreshKind, System};

use crate::report::schema::HostInfo;

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

#[cfg(test)]
mod tests {
    #[test]
    fn host_reading_is_plausible() {
        let host = super::read();
        assert!(host.logical_cpus >= 1);
        assert!(host.memory_total_bytes > 0);
        assert_ne!(host.kernel, "unknown");
    }
}

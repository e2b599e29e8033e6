//! Container memory and CPU from the Docker engine's stats.
//!
//! Memory is the container's cgroup usage minus its inactive page cache, the same "working
//! set" figure `docker stats` shows (cgroup v1: `total_inactive_file`; v2: `inactive_file`),
//! so file cache the kernel can drop does not count against the container. The peak is the
//! cgroup's own high-water mark (`max_usage`, cgroup v1 only), which includes page cache and
//! so is an upper bound.

use bollard::models::ContainerStatsResponse;

/// One reading of a container.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ContainerReading {
    /// Working set now, bytes.
    pub memory_bytes: u64,
    /// cgroup high-water mark, bytes (cgroup v1 only; includes page cache).
    pub peak_memory_bytes: Option<u64>,
    /// CPU time used since start, seconds.
    pub cpu_seconds: f64,
}

/// Why stats could not be read as a reading.
#[derive(Debug, thiserror::Error)]
#[error("the engine's stats lack {0}")]
pub struct MissingStat(&'static str);

impl TryFrom<&ContainerStatsResponse> for ContainerReading {
    type Error = MissingStat;

    fn try_from(stats: &ContainerStatsResponse) -> Result<Self, Self::Error> {
        let memory = stats
            .memory_stats
            .as_ref()
            .ok_or(MissingStat("memory_stats"))?;
        let usage = memory.usage.ok_or(MissingStat("memory_stats.usage"))?;
        let inactive = memory.stats.as_ref().and_then(|stats| {
            stats
                .get("total_inactive_file")
                .or_else(|| stats.get("inactive_file"))
                .copied()
        });
        let cpu_ns = stats
            .cpu_stats
            .as_ref()
            .and_then(|cpu| cpu.cpu_usage.as_ref())
            .and_then(|usage| usage.total_usage)
            .ok_or(MissingStat("cpu_stats.cpu_usage.total_usage"))?;
        Ok(Self {
            memory_bytes: usage.saturating_sub(inactive.unwrap_or(0)),
            peak_memory_bytes: memory.max_usage,
            cpu_seconds: cpu_ns as f64 / 1e9,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use bollard::models::{ContainerCpuStats, ContainerCpuUsage, ContainerMemoryStats};

    use super::*;

    fn stats(usage: u64, inactive_key: &str, inactive: u64) -> ContainerStatsResponse {
        ContainerStatsResponse {
            memory_stats: Some(ContainerMemoryStats {
                usage: Some(usage),
                max_usage: Some(usage + 10),
                stats: Some(HashMap::from([(inactive_key.to_owned(), inactive)])),
                ..Default::default()
            }),
            cpu_stats: Some(ContainerCpuStats {
                cpu_usage: Some(ContainerCpuUsage {
                    total_usage: Some(1_500_000_000),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn working_set_excludes_inactive_file_cache_on_cgroup_v1_and_v2() {
        for key in ["total_inactive_file", "inactive_file"] {
            let reading = ContainerReading::try_from(&stats(1000, key, 300)).unwrap();
            assert_eq!(reading.memory_bytes, 700);
            assert_eq!(reading.peak_memory_bytes, Some(1010));
            assert_eq!(reading.cpu_seconds, 1.5);
        }
    }

    #[test]
    fn missing_memory_stats_is_an_error() {
        let empty = ContainerStatsResponse::default();
        assert!(ContainerReading::try_from(&empty).is_err());
    }
}

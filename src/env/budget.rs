//! The resource budget every environment gets alike: the service's CPUs, the generator's
//! CPUs and the service's memory limit.

/// CPUs and memory given to the service, and CPUs kept for the load generator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Budget {
    /// Host CPUs the service (process, container or VM) is pinned to.
    pub service_cpus: Vec<usize>,
    /// Host CPUs the load generator is pinned to.
    pub generator_cpus: Vec<usize>,
    /// Memory limit for the service, bytes.
    pub memory_limit_bytes: u64,
}

/// One GiB: the seed's VM size, and enough for the service's largest `/memory` request.
pub const DEFAULT_MEMORY_LIMIT_BYTES: u64 = 1 << 30;

impl Budget {
    /// The last online CPU for the service, the others for the generator; on a one-CPU host
    /// both share CPU 0 (recorded as such, so a reader sees it).
    pub fn for_host() -> Self {
        let cpus = online_cpus();
        let (service, generator) = match cpus.split_last() {
            Some((last, rest)) if !rest.is_empty() => (vec![*last], rest.to_vec()),
            Some((last, _)) => (vec![*last], vec![*last]),
            None => (vec![0], vec![0]),
        };
        Self {
            service_cpus: service,
            generator_cpus: generator,
            memory_limit_bytes: DEFAULT_MEMORY_LIMIT_BYTES,
        }
    }

    /// The service's cpuset in Docker's `--cpuset-cpus` form, e.g. `1` or `2,3`.
    pub fn service_cpuset(&self) -> String {
        self.service_cpus
            .iter()
            .map(usize::to_string)
            .collect::<Vec<_>>()
            .join(",")
    }
}

/// CPUs this process may run on (its affinity mask), in ascending order.
pub fn online_cpus() -> Vec<usize> {
    crate::probe::pin::current_affinity().unwrap_or_else(|_| {
        (0..std::thread::available_parallelism().map_or(1, |n| n.get())).collect()
    })
}

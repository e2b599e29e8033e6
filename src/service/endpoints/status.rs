//! `GET /status`: what the service knows about itself and its host: version, uptime, pid,
//! hostname, kernel, CPUs, memory (sysinfo) and the detected environment with its evidence.

use axum::Json;
use axum::extract::{RawQuery, State};
use serde::Serialize;
use sysinfo::{ProcessRefreshKind, ProcessesToUpdate, System};

use super::on_blocking_pool;
use crate::service::detect::Detection;
use crate::service::error::ApiError;
use crate::service::memory_limit::MemoryLimit;
use crate::service::query::parse_uints;
use crate::service::state::{AppState, CpuTasks};

/// The answer of `/status`.
#[derive(Debug, Serialize)]
pub struct StatusResponse {
    /// The service's version (the crate version).
    pub version: &'static str,
    /// Seconds since the service started.
    pub uptime_s: f64,
    /// Process id (1 in a scratch container).
    pub pid: u32,
    /// The user id the service runs as: least privilege is checked from outside through it.
    pub uid: u32,
    /// Host name as the service sees it (`uname`), if readable.
    pub hostname: Option<String>,
    /// Kernel release (`uname -r`), if readable.
    pub kernel: Option<String>,
    /// CPUs the service may run on (affinity and cgroup quota respected).
    pub cpus: usize,
    /// Threads in the CPU pool that `/cpu` and `/parallel` run on.
    pub pool_threads: usize,
    /// What the timed CPU tasks (`/cpu`, `/syscalls`) have cost so far by the service's own
    /// clocks: read before and after a load, the work of exactly that load's requests.
    pub cpu_tasks: CpuTasks,
    /// Memory as the service sees it.
    pub memory: MemoryStatus,
    /// Threads of the service process (`/proc/self/status`), if readable: a soak samples it.
    pub threads: Option<u64>,
    /// Open file descriptors of the service process (`/proc/self/fd`), if readable.
    pub open_fds: Option<u64>,
    /// The data directory `/files` writes to, when one is configured.
    pub data_dir: Option<DataDirStatus>,
    /// The detected environment and the evidence.
    pub environment: Detection,
}

/// The data directory as `/status` reports it: a client checks from here that `/files`
/// leaves nothing behind, in every environment (the VM's disk included).
#[derive(Debug, Serialize)]
pub struct DataDirStatus {
    /// Its path as the service sees it.
    pub path: String,
    /// Entries in it now (`None` when it cannot be read).
    pub entries: Option<u64>,
}

/// Memory figures of `/status`.
#[derive(Debug, Serialize)]
pub struct MemoryStatus {
    /// Memory of the (virtual) machine, bytes.
    pub total_bytes: u64,
    /// Memory available for new allocations, bytes.
    pub available_bytes: u64,
    /// The service's own resident set size, bytes.
    pub process_rss_bytes: Option<u64>,
    /// The memory limit of the service's cgroup, bytes, when one is set.
    pub cgroup_limit_bytes: Option<u64>,
    /// The memory limit the `/memory` caps were derived from, and where it came from.
    pub limit: MemoryLimit,
    /// Largest `/memory` request accepted, MiB.
    pub max_request_mb: u64,
    /// MiB all concurrent `/memory` requests may hold together.
    pub budget_mb: u64,
}

/// Handles `/status`.
pub async fn status(
    State(state): State<AppState>,
    RawQuery(query): RawQuery,
) -> Result<Json<StatusResponse>, ApiError> {
    parse_uints(query.as_deref(), &[])?;
    let config = state.config();
    let (limit, max_request_mb, budget_mb) = (
        config.memory_limit,
        config.max_memory_mb,
        config.memory_budget_mb,
    );
    let data_dir = config.data_dir.clone();
    let (memory, threads, open_fds, data_dir) = on_blocking_pool(move || {
        (
            read_memory(limit, max_request_mb, budget_mb),
            read_threads(),
            read_open_fds(),
            data_dir.map(|dir| DataDirStatus {
                path: dir.display().to_string(),
                entries: std::fs::read_dir(&dir).ok().map(|e| e.count() as u64),
            }),
        )
    })
    .await?;
    Ok(Json(StatusResponse {
        version: env!("CARGO_PKG_VERSION"),
        uptime_s: state.started().elapsed().as_secs_f64(),
        pid: std::process::id(),
        // SAFETY: getuid cannot fail and has no preconditions.
        uid: unsafe { libc::getuid() },
        hostname: System::host_name(),
        kernel: System::kernel_version(),
        cpus: std::thread::available_parallelism().map_or(1, |n| n.get()),
        pool_threads: rayon::current_num_threads(),
        cpu_tasks: state.cpu_tasks(),
        memory,
        threads,
        open_fds,
        data_dir,
        environment: state.detection().clone(),
    }))
}

/// The `Threads:` count of `/proc/self/status`.
fn read_threads() -> Option<u64> {
    std::fs::read_to_string("/proc/self/status")
        .ok()?
        .lines()
        .find_map(|line| line.strip_prefix("Threads:")?.trim().parse().ok())
}

/// Entries of `/proc/self/fd`, less the one reading the directory holds.
fn read_open_fds() -> Option<u64> {
    let entries = std::fs::read_dir("/proc/self/fd").ok()?.count() as u64;
    Some(entries.saturating_sub(1))
}

/// Reads memory figures from /proc (blocking file reads); the caps are the configuration's.
fn read_memory(limit: MemoryLimit, max_request_mb: u64, budget_mb: u64) -> MemoryStatus {
    let mut system = System::new();
    system.refresh_memory();
    let pid = sysinfo::Pid::from_u32(std::process::id());
    system.refresh_processes_specifics(
        ProcessesToUpdate::Some(&[pid]),
        false,
        ProcessRefreshKind::nothing().with_memory(),
    );
    MemoryStatus {
        total_bytes: system.total_memory(),
        available_bytes: system.available_memory(),
        process_rss_bytes: system.process(pid).map(|process| process.memory()),
        cgroup_limit_bytes: system.cgroup_limits().map(|limits| limits.total_memory),
        limit,
        max_request_mb,
        budget_mb,
    }
}

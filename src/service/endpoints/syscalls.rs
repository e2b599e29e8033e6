//! `GET /syscalls?n=N`: makes N `getppid` system calls on the CPU pool and says how long they
//! took inside the service.
//!
//! `getppid` because it is the cheapest call that always enters the kernel: the C library
//! does not cache it (as older ones cached `getpid`), the vDSO does not answer it (as it does
//! `clock_gettime`), and it touches no file, lock or page, so its time is the system call's
//! entry and exit alone — exactly what a sandbox that interposes on system calls (gVisor's
//! Sentry) or a hypervisor's trap path changes. A `stat` would add the file system's path
//! walk, which `/files` measures on its own.

use axum::Json;
use axum::extract::{RawQuery, State};
use serde::Serialize;

use super::{micros, timed_cpu_task};
use crate::service::error::ApiError;
use crate::service::query::{UintParam, parse_uints};
use crate::service::state::AppState;
use crate::service::work::getppid_calls;

/// The answer of `/syscalls`.
#[derive(Debug, Serialize)]
pub struct SyscallsResponse {
    /// System calls made.
    pub calls: u64,
    /// Which call.
    pub call: &'static str,
    /// Time the calls took, nanoseconds.
    pub elapsed_ns: u64,
    /// Time the task waited for a CPU-pool thread, microseconds.
    pub queued_us: u64,
}

/// Handles `/syscalls`.
pub async fn syscalls(
    State(state): State<AppState>,
    RawQuery(query): RawQuery,
) -> Result<Json<SyscallsResponse>, ApiError> {
    let n_param = UintParam {
        name: "n",
        default: state.config().default_syscalls_n,
        min: 1,
        max: state.config().max_syscalls_n,
    };
    let [n] = parse_uints(query.as_deref(), &[n_param])?;
    let called = timed_cpu_task(&state, move || getppid_calls(n)).await?;
    Ok(Json(SyscallsResponse {
        calls: n,
        call: "getppid",
        elapsed_ns: u64::try_from(called.elapsed.as_nanos()).unwrap_or(u64::MAX),
        queued_us: micros(called.queued),
    }))
}

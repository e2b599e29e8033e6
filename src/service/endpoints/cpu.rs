//! `GET /cpu?n=N`: counts the primes below N by trial division on the CPU pool and says how
//! long that took inside the service, in wall time and in its thread's CPU time.

use axum::Json;
use axum::extract::{RawQuery, State};
use serde::Serialize;

use super::{micros, timed_cpu_task};
use crate::service::error::ApiError;
use crate::service::query::{UintParam, parse_uints};
use crate::service::state::AppState;
use crate::service::work::count_primes_below;

/// The answer of `/cpu`.
#[derive(Debug, Serialize)]
pub struct CpuResponse {
    /// The N worked on.
    pub n: u64,
    /// Primes below N.
    pub primes_below_n: u64,
    /// Time the counting took, microseconds.
    pub elapsed_us: u64,
    /// CPU time the counting took by its thread's own clock, nanoseconds: the work's cost
    /// as the service itself measures it, which an environment's CPU figure for the request
    /// must cover.
    pub cpu_ns: u64,
    /// Time the task waited for a CPU-pool thread, microseconds.
    pub queued_us: u64,
}

/// The `n` parameter with this configuration's default and cap.
pub(crate) fn n_param(state: &AppState) -> UintParam {
    UintParam {
        name: "n",
        default: state.config().default_cpu_n,
        min: 1,
        max: state.config().max_cpu_n,
    }
}

/// Handles `/cpu`.
pub async fn cpu(
    State(state): State<AppState>,
    RawQuery(query): RawQuery,
) -> Result<Json<CpuResponse>, ApiError> {
    let [n] = parse_uints(query.as_deref(), &[n_param(&state)])?;
    let counted = timed_cpu_task(&state, move || count_primes_below(n)).await?;
    Ok(Json(CpuResponse {
        n,
        primes_below_n: counted.value,
        elapsed_us: micros(counted.elapsed),
        cpu_ns: u64::try_from(counted.cpu.as_nanos()).unwrap_or(u64::MAX),
        queued_us: micros(counted.queued),
    }))
}

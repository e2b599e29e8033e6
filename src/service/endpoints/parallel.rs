//! `GET /parallel?tasks=T&n=N`: T independent prime counts of size N on rayon's pool;
//! reports each result, how many pool threads actually ran a task, and the elapsed time.

use std::collections::BTreeSet;
use std::time::Instant;

use axum::Json;
use axum::extract::{RawQuery, State};
use rayon::prelude::*;
use serde::Serialize;

use super::cpu::n_param;
use super::{micros, on_cpu_pool};
use crate::service::error::ApiError;
use crate::service::query::{UintParam, parse_uints};
use crate::service::state::AppState;
use crate::service::work::count_primes_below;

/// The answer of `/parallel`.
#[derive(Debug, Serialize)]
pub struct ParallelResponse {
    /// Number of tasks run.
    pub tasks: u64,
    /// Size of each task.
    pub n: u64,
    /// Primes below N, as each task found it.
    pub results: Vec<u64>,
    /// Distinct pool threads that ran at least one task.
    pub threads: usize,
    /// Threads in the pool (one per CPU available to the process).
    pub pool_threads: usize,
    /// Wall time from the first task's start to the last task's end, microseconds.
    pub elapsed_us: u64,
}

/// Handles `/parallel`.
pub async fn parallel(
    State(state): State<AppState>,
    RawQuery(query): RawQuery,
) -> Result<Json<ParallelResponse>, ApiError> {
    let tasks_param = UintParam {
        name: "tasks",
        default: state.config().default_parallel_tasks,
        min: 1,
        max: state.config().max_parallel_tasks,
    };
    let [tasks, n] = parse_uints(query.as_deref(), &[tasks_param, n_param(&state)])?;
    let permit = state.admit_cpu(tasks)?;
    let response = on_cpu_pool(move || {
        let _permit = permit;
        let started = Instant::now();
        // `tasks` is capped far below usize::MAX by the configuration.
        let outcomes: Vec<(u64, Option<usize>)> = (0..tasks as usize)
            .into_par_iter()
            // One task per work item: each count is big enough to be worth a steal.
            .with_max_len(1)
            .map(|_| (count_primes_below(n), rayon::current_thread_index()))
            .collect();
        let elapsed = started.elapsed();
        let threads = outcomes
            .iter()
            .filter_map(|(_, thread)| *thread)
            .collect::<BTreeSet<_>>()
            .len();
        ParallelResponse {
            tasks,
            n,
            results: outcomes.into_iter().map(|(primes, _)| primes).collect(),
            threads,
            pool_threads: rayon::current_num_threads(),
            elapsed_us: micros(elapsed),
        }
    })
    .await?;
    Ok(Json(response))
}

//! One file per endpoint, plus the helpers that move work off the async workers.

pub mod cpu;
pub mod files;
pub mod health;
pub mod hold;
pub mod memory;
pub mod parallel;
pub mod status;
pub mod syscalls;

use std::panic::AssertUnwindSafe;
use std::time::{Duration, Instant};

use super::error::ApiError;
use super::state::AppState;

/// Runs CPU-bound `work` on rayon's pool (one thread per available CPU) and awaits it, so
/// the tokio workers stay free for `/health`. A panic in `work` becomes a 500 instead of
/// rayon's default of aborting the process.
pub(crate) async fn on_cpu_pool<R: Send + 'static>(
    work: impl FnOnce() -> R + Send + 'static,
) -> Result<R, ApiError> {
    let (sender, receiver) = tokio::sync::oneshot::channel();
    rayon::spawn(move || {
        let result = std::panic::catch_unwind(AssertUnwindSafe(work));
        // The request may have timed out and gone: nobody to tell, nothing to do.
        let _ = sender.send(result);
    });
    match receiver.await {
        Ok(Ok(result)) => Ok(result),
        Ok(Err(panic)) => Err(ApiError::Internal(format!(
            "CPU task panicked: {}",
            panic_message(panic.as_ref())
        ))),
        Err(_) => Err(ApiError::Internal(
            "CPU task ended without an answer".to_owned(),
        )),
    }
}

/// What [`timed_cpu_task`] hands back: the work's result and its times.
pub(crate) struct Timed<R> {
    /// What the work returned.
    pub value: R,
    /// How long it waited for a CPU-pool thread.
    pub queued: Duration,
    /// How long it ran.
    pub elapsed: Duration,
    /// CPU time its thread spent on it, by the thread's own clock: unlike `elapsed`, not
    /// stretched when something else runs on the CPU meanwhile.
    pub cpu: Duration,
}

/// Admits one CPU task (503 beyond the limit) and runs `work` on the CPU pool, timing the
/// wait for a thread apart from the work, so an endpoint reports the work's own time; the
/// work's times are added to the service's totals (`/status`'s `cpu_tasks`).
pub(crate) async fn timed_cpu_task<R: Send + 'static>(
    state: &AppState,
    work: impl FnOnce() -> R + Send + 'static,
) -> Result<Timed<R>, ApiError> {
    let permit = state.admit_cpu(1)?;
    let submitted = Instant::now();
    let totals = state.clone();
    on_cpu_pool(move || {
        let _permit = permit;
        let queued = submitted.elapsed();
        let (started, cpu_before) = (Instant::now(), thread_cpu());
        let value = work();
        let (elapsed, cpu) = (started.elapsed(), thread_cpu().saturating_sub(cpu_before));
        totals.count_cpu_task(cpu, elapsed);
        Timed {
            value,
            queued,
            elapsed,
            cpu,
        }
    })
    .await
}

/// CPU time the calling thread has used so far (`CLOCK_THREAD_CPUTIME_ID`: the kernel's, or
/// a sandbox's, accounting of this thread), zero when the clock cannot be read.
fn thread_cpu() -> Duration {
    // SAFETY: all-zero is a valid timespec for the kernel to fill.
    let mut ts: libc::timespec = unsafe { std::mem::zeroed() };
    // SAFETY: valid pointer to a timespec.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    if rc != 0 {
        return Duration::ZERO;
    }
    Duration::new(
        ts.tv_sec.max(0) as u64,
        ts.tv_nsec.clamp(0, 999_999_999) as u32,
    )
}

/// Runs blocking `work` at once on the thread that took the request, having handed that
/// thread's place in the runtime to another one ([`tokio::task::block_in_place`]), so the
/// runtime keeps serving other connections meanwhile. A handoff to the blocking pool would
/// make the work wait until this thread parks: on a service pinned to one CPU, tens of
/// microseconds a request that belong to the endpoint, not to the work it times. Outside a
/// multi-thread runtime (where `block_in_place` is not allowed), the blocking pool.
pub(crate) async fn on_this_thread<R: Send + 'static>(
    work: impl FnOnce() -> R + Send + 'static,
) -> Result<R, ApiError> {
    match tokio::runtime::Handle::current().runtime_flavor() {
        tokio::runtime::RuntimeFlavor::MultiThread => Ok(tokio::task::block_in_place(work)),
        _ => on_blocking_pool(work).await,
    }
}

/// Runs blocking `work` (memory touching, /proc reads) on tokio's blocking pool.
pub(crate) async fn on_blocking_pool<R: Send + 'static>(
    work: impl FnOnce() -> R + Send + 'static,
) -> Result<R, ApiError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|error| ApiError::Internal(format!("blocking task failed: {error}")))
}

/// The text of a panic payload, when it has one.
pub(crate) fn panic_message(panic: &(dyn std::any::Any + Send)) -> &str {
    panic
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("(non-string panic payload)")
}

/// Microseconds in `duration`, saturating.
pub(crate) fn micros(duration: Duration) -> u64 {
    u64::try_from(duration.as_micros()).unwrap_or(u64::MAX)
}

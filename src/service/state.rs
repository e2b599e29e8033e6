//! Shared state of a running service: configuration, admission budgets, start time and the
//! running totals of its timed CPU work.
//!
//! Admission is `try_acquire` on tokio semaphores, never a wait: a request beyond capacity
//! gets a 503 at once instead of queueing without bound. Permits are moved into the work
//! itself, so a request that times out keeps its share of the budget until its work has
//! really stopped.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::config::Config;
use super::detect::{self, Detection};
use super::error::ApiError;

/// State shared by all handlers (cheap to clone).
#[derive(Debug, Clone)]
pub struct AppState {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    config: Config,
    started: Instant,
    /// Permits are MiB: all concurrent `/memory` requests together stay within the budget.
    memory_budget: Arc<Semaphore>,
    /// Permits are CPU tasks in flight (`/cpu` and `/parallel`).
    cpu_jobs: Arc<Semaphore>,
    /// Permits are `/files` requests in flight.
    files_in_flight: Arc<Semaphore>,
    /// What `/hold` holds: written memory and its share of the memory budget.
    held: std::sync::Mutex<Option<Held>>,
    /// Detected once: the environment of a running process does not change.
    detection: Detection,
    /// What every timed CPU task so far cost, by the service's own clocks.
    cpu_tasks: CpuTaskTotals,
}

/// Running totals of the timed CPU tasks (`/cpu`, `/syscalls`): a client that reads them
/// before and after a load knows what exactly those requests' work cost by the service's own
/// clocks, to set beside what the environment's clock charged for the same span.
#[derive(Debug, Default)]
struct CpuTaskTotals {
    count: AtomicU64,
    cpu_ns: AtomicU64,
    elapsed_ns: AtomicU64,
}

/// [`CpuTaskTotals`] as read at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct CpuTasks {
    /// Timed CPU tasks finished.
    pub count: u64,
    /// Their CPU time by their threads' own clock, nanoseconds.
    pub cpu_ns: u64,
    /// Their wall time, nanoseconds.
    pub elapsed_ns: u64,
}

/// Memory `/hold` keeps until the next `/hold` or exit.
#[derive(Debug)]
pub struct Held {
    /// The written bytes.
    pub buffer: Vec<u8>,
    /// Their MiB of the memory budget.
    pub permit: OwnedSemaphorePermit,
}

/// Permits are counted in `u32`; `Config::validate` keeps budgets far below this, and a
/// larger number here only makes an over-large request fail admission.
fn permits(count: u64) -> u32 {
    u32::try_from(count).unwrap_or(u32::MAX)
}

impl AppState {
    /// State for a service with `config`; detects the environment now.
    pub fn new(config: Config) -> Self {
        let memory_budget = Arc::new(Semaphore::new(permits(config.memory_budget_mb) as usize));
        let cpu_jobs = Arc::new(Semaphore::new(permits(config.max_cpu_jobs) as usize));
        let files_in_flight =
            Arc::new(Semaphore::new(permits(config.max_files_in_flight) as usize));
        Self {
            inner: Arc::new(Inner {
                config,
                started: Instant::now(),
                memory_budget,
                cpu_jobs,
                files_in_flight,
                held: std::sync::Mutex::new(None),
                detection: detect::detect(),
                cpu_tasks: CpuTaskTotals::default(),
            }),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    /// When the service started.
    pub fn started(&self) -> Instant {
        self.inner.started
    }

    /// The environment detected at start.
    pub fn detection(&self) -> &Detection {
        &self.inner.detection
    }

    /// Admits a `/memory` request of `mb` MiB, or refuses with 503.
    pub fn admit_memory(&self, mb: u64) -> Result<OwnedSemaphorePermit, ApiError> {
        self.inner
            .memory_budget
            .clone()
            .try_acquire_many_owned(permits(mb))
            .map_err(|_| {
                ApiError::OverCapacity(format!(
                    "{mb} MiB more would exceed the memory budget of {} MiB",
                    self.inner.config.memory_budget_mb
                ))
            })
    }

    /// Replaces what `/hold` holds with `held` (`None` releases it), returning the old hold
    /// so the caller frees it outside the lock.
    pub fn replace_held(&self, held: Option<Held>) -> Option<Held> {
        let mut slot = self.inner.held.lock().unwrap_or_else(|p| p.into_inner());
        std::mem::replace(&mut *slot, held)
    }

    /// Adds one finished timed CPU task to the totals.
    pub fn count_cpu_task(&self, cpu: Duration, elapsed: Duration) {
        let totals = &self.inner.cpu_tasks;
        let ns = |d: Duration| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        totals.count.fetch_add(1, Ordering::Relaxed);
        totals.cpu_ns.fetch_add(ns(cpu), Ordering::Relaxed);
        totals.elapsed_ns.fetch_add(ns(elapsed), Ordering::Relaxed);
    }

    /// The timed CPU tasks' totals now.
    pub fn cpu_tasks(&self) -> CpuTasks {
        let totals = &self.inner.cpu_tasks;
        CpuTasks {
            count: totals.count.load(Ordering::Relaxed),
            cpu_ns: totals.cpu_ns.load(Ordering::Relaxed),
            elapsed_ns: totals.elapsed_ns.load(Ordering::Relaxed),
        }
    }

    /// Admits `tasks` CPU tasks, or refuses with 503.
    pub fn admit_cpu(&self, tasks: u64) -> Result<OwnedSemaphorePermit, ApiError> {
        self.inner
            .cpu_jobs
            .clone()
            .try_acquire_many_owned(permits(tasks))
            .map_err(|_| {
                ApiError::OverCapacity(format!(
                    "{tasks} more CPU task(s) would exceed the limit of {} in flight",
                    self.inner.config.max_cpu_jobs
                ))
            })
    }

    /// Admits one `/files` request, or refuses with 503.
    pub fn admit_file(&self) -> Result<OwnedSemaphorePermit, ApiError> {
        self.inner
            .files_in_flight
            .clone()
            .try_acquire_owned()
            .map_err(|_| {
                ApiError::OverCapacity(format!(
                    "one more /files request would exceed the limit of {} in flight",
                    self.inner.config.max_files_in_flight
                ))
            })
    }
}

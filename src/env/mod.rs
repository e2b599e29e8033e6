//! Environments: the same service binary started natively, in a container or in a VM.
//!
//! Each environment hands back a running [`Instance`] with a base URL on 127.0.0.1, its
//! startup time (request to start → first 200 on `/health`), and readings of its resources.
//! Preparation (static build, image build, VM image assembly) happens in
//! [`Environment::prepare`] and is timed apart, never inside startup. Stopping always cleans
//! up: [`Instance::stop`], and `Drop` for panics and early returns.

pub mod budget;
pub mod container;
pub mod data_dir;
pub mod doctor;
pub mod factory;
pub mod foreign;
pub mod health;
pub mod ksm;
pub mod logs;
pub mod mock;
pub mod native;
pub mod native_foreign;
pub mod orphans;
pub mod startup_phases;
pub mod vm;

use std::time::Duration;

pub use budget::Budget;

use crate::artifact::{EnvironmentLabel, Preparation, StartupPhase};

/// Why an environment could not be prepared or started.
#[derive(Debug, thiserror::Error)]
pub enum EnvError {
    /// The environment cannot run on this machine (no Docker engine, no QEMU, …).
    #[error("{env} is not available here: {reason}")]
    Unavailable {
        /// The environment's name.
        env: String,
        /// Why, in words a user can act on.
        reason: String,
    },
    /// Anything else that went wrong, with context.
    #[error(transparent)]
    Other(#[from] anyhow::Error),
}

impl From<crate::docker::Unreachable> for EnvError {
    /// No engine answers: every environment that needs one is unavailable here.
    fn from(error: crate::docker::Unreachable) -> Self {
        Self::Unavailable {
            env: "container".into(),
            reason: error.reason,
        }
    }
}

/// An environment ready to be measured, with its timed preparation steps.
pub struct Prepared {
    /// The environment.
    pub env: Box<dyn Environment>,
    /// Its preparation steps (builds, images), timed apart from startup.
    pub preparation: Vec<Preparation>,
}

/// One way of running the service. `Sync`, so that `isobench density` can start several
/// instances of one environment at once, from several threads.
pub trait Environment: Send + Sync {
    /// Short unique name: `native`, `container`, `vm`, `mock`.
    fn name(&self) -> &str;

    /// One-off work before the first start (builds, image assembly); each step is timed and
    /// reported apart from startup. Calling it again reuses what is cached.
    fn prepare(&mut self) -> Result<Vec<Preparation>, EnvError>;

    /// Starts a fresh instance and waits until `/health` answers 200.
    fn start(&self) -> Result<Box<dyn Instance>, EnvError>;

    /// How to read this environment's numbers (runtime, accelerator, cpusets, limits).
    fn label(&self) -> EnvironmentLabel;

    /// Backs the memory of instances started from now on with pages the kernel's same-page
    /// merging ([`ksm`]) may merge, and says whether it could: only a VM's guest RAM can be
    /// made so (KSM merges private anonymous memory its owner advised mergeable; a process
    /// or a container's cannot be on this kernel without changing the service).
    fn merge_memory(&mut self) -> bool {
        false
    }
}

/// A running service in some environment. Dropping it stops it.
pub trait Instance: Send {
    /// `http://127.0.0.1:PORT`, no trailing slash.
    fn base_url(&self) -> &str;

    /// From the request to start until the first 200 on `/health`.
    fn startup(&self) -> Duration;

    /// Where the startup went: contiguous phases summing to [`Instance::startup`], where the
    /// environment can observe them (a VM's firmware, kernel and init; a container's create
    /// and start); empty where it cannot.
    fn startup_phases(&self) -> Vec<StartupPhase> {
        Vec::new()
    }

    /// The path that answers 2xx while the service is up: `/health` for isobench's own
    /// server, the user's `--health` for a foreign one.
    fn health_path(&self) -> &str {
        "/health"
    }

    /// A VM's own view of its memory (its guest kernel's), to report beside the host's
    /// figure; `None` where the instance is no VM or the guest does not say.
    fn guest_memory(&self) -> Option<crate::artifact::GuestMemory> {
        None
    }

    /// Current resource readings of the whole environment (process, container or VM).
    fn resources(&self) -> Result<ResourceReading, EnvError>;

    /// Stops the instance and releases everything it held.
    fn stop(self: Box<Self>) -> Result<(), EnvError>;

    /// The last `lines` lines of the instance's own log (server output, container log,
    /// guest console), for a failure report; empty where the environment keeps none.
    fn log_tail(&self, lines: usize) -> Vec<String> {
        let _ = lines;
        Vec::new()
    }
}

/// Resource readings of an instance at one moment.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ResourceReading {
    /// Host memory the instance holds now, bytes: the PSS of every host process it needs,
    /// summed ([`crate::probe::footprint`]), in every environment but the mock.
    pub memory_bytes: u64,
    /// CPU time used since start, seconds.
    pub cpu_seconds: f64,
}

/// A reading of the instance whose host processes `footprint` reads and whose CPU time since
/// start is `cpu_seconds`.
pub(crate) fn footprint_reading(
    footprint: &crate::probe::footprint::FootprintProbe,
    cpu_seconds: f64,
) -> Result<ResourceReading, EnvError> {
    let footprint = footprint.read().map_err(anyhow::Error::from)?;
    Ok(ResourceReading {
        memory_bytes: footprint.pss_bytes,
        cpu_seconds,
    })
}

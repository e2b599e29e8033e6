//! The load generator behind `isobench bench` and every measurement of `isobench run`.
//!
//! Closed loop (default): each connection sends its next request when the last is answered;
//! this finds the ceiling. Open loop (`rate`): requests are scheduled at a constant total rate
//! and each latency is measured from the request's *intended* send time, so a stalled server
//! shows in the tail instead of silently slowing the generator down (coordinated omission, as
//! corrected by wrk2).
//!
//! [`run`] is synchronous: it builds its own runtimes on its own threads, pinned to the CPUs
//! it is given, and returns when the run is over. Every run is bounded by a duration or a
//! request count, and by a hard deadline, so it always stops by itself.

mod report;

pub use report::{ErrorCounts, GeneratorUsage, LatencyStats, LoadReport, PathReport, PathWeight};

use std::time::Duration;

/// What to send, how hard, and for how long.
#[derive(Debug, Clone, PartialEq)]
pub struct LoadOptions {
    /// Base URL of the service, e.g. `http://127.0.0.1:8080`; paths come from `scenario`.
    pub base_url: String,
    /// Paths (with query) and their relative weights, e.g. `/health` ×8, `/cpu` ×2.
    pub scenario: Vec<PathWeight>,
    /// Concurrent connections.
    pub connections: usize,
    /// How long to measure; `None` when `requests` bounds the run instead.
    pub duration: Option<Duration>,
    /// How many requests to measure; `None` when `duration` bounds the run instead.
    pub requests: Option<u64>,
    /// Load sent before measuring, not counted.
    pub warmup: Duration,
    /// Open loop at this total rate (requests per second); `None` for closed loop.
    pub rate: Option<f64>,
    /// Per-request timeout.
    pub timeout: Duration,
    /// Reuse connections (HTTP/1.1 keep-alive).
    pub keep_alive: bool,
    /// Host CPUs the generator's threads are pinned to; empty for no pinning.
    pub cpus: Vec<usize>,
    /// Show a live progress display (only when stdout is a terminal).
    pub progress: bool,
}

impl LoadOptions {
    /// Sensible defaults against `base_url`: `/health`, 50 connections, 10 s, 1 s warm-up.
    pub fn new(base_url: impl Into<String>) -> Self {
        Self {
            base_url: base_url.into(),
            scenario: vec![PathWeight {
                path: "/health".into(),
                weight: 1,
            }],
            connections: 50,
            duration: Some(Duration::from_secs(10)),
            requests: None,
            warmup: Duration::from_secs(1),
            rate: None,
            timeout: Duration::from_secs(5),
            keep_alive: true,
            cpus: Vec::new(),
            progress: false,
        }
    }
}

/// Why a load run could not be made at all (failed requests are counted, not errors).
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// An option that makes no sense, naming it.
    #[error("invalid option --{option}: {reason}")]
    InvalidOption {
        /// The option's name.
        option: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// The URL is not an `http://` URL with a host and port.
    #[error("unusable URL {url:?}: {reason}")]
    Url {
        /// The URL as given.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// Threads or runtimes could not be created.
    #[error("could not start the load generator: {0}")]
    Io(#[from] std::io::Error),
}

/// Runs one load measurement and returns what the generator saw.
pub fn run(options: &LoadOptions) -> Result<LoadReport, LoadError> {
    let _ = options;
    todo!("load generator")
}

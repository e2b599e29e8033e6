//! What one load run measured: counts, errors by kind, latency from HdrHistograms.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::series::WindowSeries;

/// Utilisation at or above which a CPU (or the generator's whole CPU budget) counts as
/// saturated: beyond it, latency includes time spent waiting for the generator itself. The
/// generator marks its own [`GeneratorUsage::bottleneck`] by it and the analysis judges the
/// service's CPU by it, so both sides of a "both saturated" note use one line.
pub const SATURATED: f64 = 0.9;

/// A path (with query string) and its relative weight in a scenario.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct PathWeight {
    /// Path and query, e.g. `/cpu?n=20000`.
    pub path: String,
    /// Relative weight (≥ 1).
    pub weight: u32,
}

/// What the load generator saw during one measured run (warm-up excluded).
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct LoadReport {
    /// Base URL the load was sent to.
    pub url: String,
    /// Paths and weights.
    pub scenario: Vec<PathWeight>,
    /// Concurrent connections.
    pub connections: usize,
    /// Closed loop (`false`) or open loop at `requested_rate_rps` (`true`).
    pub open_loop: bool,
    /// Requested total rate in open loop, requests per second.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requested_rate_rps: Option<f64>,
    /// Whether connections were reused.
    pub keep_alive: bool,
    /// Per-request timeout, in milliseconds.
    pub timeout_ms: f64,
    /// Warm-up before measuring, in seconds.
    pub warmup_s: f64,
    /// Warm-up requests sent (not measured); with `requests_sent` this is everything the
    /// server was sent.
    #[serde(default)]
    pub warmup_requests: u64,
    /// Length of the measured window, in seconds.
    pub elapsed_s: f64,
    /// Measured requests: closed loop, those started in the measured window; open loop, the
    /// whole measured schedule, including requests that were due but never sent
    /// (`errors.unsent`). Always `ok + errors.total() + unfinished`.
    pub requests_sent: u64,
    /// Closed loop: requests started in the measured window and still unanswered when it
    /// ended. The window is cut at its planned end (a straggler must not stretch it), so
    /// these are neither answers nor failures; they are not in the latency histogram.
    #[serde(default)]
    pub unfinished: u64,
    /// Requests that got a complete HTTP response (any status).
    pub responses: u64,
    /// Responses with a 2xx status and a well-formed body.
    pub ok: u64,
    /// Failures by kind.
    pub errors: ErrorCounts,
    /// `ok` responses per second of the measured window.
    pub throughput_rps: f64,
    /// Requests actually sent per second of the measured window (`requests_sent` less
    /// `errors.unsent`): the achieved rate in open loop.
    pub achieved_rate_rps: f64,
    /// Latency of `ok` responses. Open loop: from each request's intended send time
    /// (coordinated omission corrected), and it also holds every `errors.unsent` request
    /// with its latency from its intended send time to the end of sending (a lower bound, as
    /// wrk2 does), so overload shows in the tail. Closed loop: from the actual send time.
    pub latency: LatencyStats,
    /// Latency of every measured request that ended in the window, answered or failed: a
    /// failed one at the time it took to fail (a timeout at the timeout), from the same
    /// start as `latency`, with `latency`'s `errors.unsent` too. What the service's users
    /// waited; `latency` beside it is the answered requests' alone. Absent in artifacts
    /// written before it was recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub all_requests_latency: Option<LatencyStats>,
    /// Open loop only: latency from the actual send time, the figure a naive tool reports.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uncorrected_latency: Option<LatencyStats>,
    /// Per-path breakdown, keyed by path.
    pub per_path: BTreeMap<String, PathReport>,
    /// `latency`'s HdrHistogram (microseconds), V2-deflate serialized and base64-encoded, so
    /// runs can be merged later.
    pub histogram: String,
    /// [`Self::all_requests_latency`]'s HdrHistogram, encoded as `histogram`: what the
    /// report's percentile curves and merged figures are drawn from. Absent in artifacts
    /// written before it was stored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub all_requests_histogram: Option<String>,
    /// What happened inside the window, slice by slice, and whether it was steady. Absent in
    /// artifacts written before it was recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub series: Option<WindowSeries>,
    /// The generator's own resource use: did it, rather than the server, set the limit?
    pub generator: GeneratorUsage,
}

impl LoadReport {
    /// The latency every report shows: of all requests ([`Self::all_requests_latency`]),
    /// or of the answered ones where an artifact predates it.
    pub fn request_latency(&self) -> &LatencyStats {
        self.all_requests_latency.as_ref().unwrap_or(&self.latency)
    }

    /// The histogram behind [`Self::request_latency`], encoded: of all requests
    /// ([`Self::all_requests_histogram`]), or of the answered ones where an artifact predates
    /// it. What every reader that merges histograms across runs merges.
    pub fn request_histogram(&self) -> &str {
        self.all_requests_histogram
            .as_deref()
            .unwrap_or(&self.histogram)
    }
}

/// Latency summary, in microseconds.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct LatencyStats {
    /// Samples recorded.
    pub count: u64,
    /// Smallest, µs.
    pub min_us: f64,
    /// Mean, µs.
    pub mean_us: f64,
    /// Standard deviation, µs.
    pub stdev_us: f64,
    /// Median, µs.
    pub p50_us: f64,
    /// 90th percentile, µs.
    pub p90_us: f64,
    /// 99th percentile, µs.
    pub p99_us: f64,
    /// 99.9th percentile, µs.
    pub p999_us: f64,
    /// Largest, µs.
    pub max_us: f64,
}

/// Failed requests by kind.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ErrorCounts {
    /// The connection could not be made (refused, reset during connect).
    pub connect: u64,
    /// No complete response within the timeout.
    pub timeout: u64,
    /// 4xx responses.
    pub status_4xx: u64,
    /// 5xx responses.
    pub status_5xx: u64,
    /// Other non-2xx statuses (1xx, 3xx).
    pub status_other: u64,
    /// 2xx responses whose body was malformed or cut short.
    pub body: u64,
    /// I/O errors on an established connection.
    pub io: u64,
    /// Open loop: measured requests that were due but never sent, because the connections
    /// were still held up by the server when sending had to stop (overload).
    #[serde(default)]
    pub unsent: u64,
}

impl ErrorCounts {
    /// All failures together.
    pub fn total(&self) -> u64 {
        self.connect
            + self.timeout
            + self.status_4xx
            + self.status_5xx
            + self.status_other
            + self.body
            + self.io
            + self.unsent
    }
}

/// Per-path counts and latency.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PathReport {
    /// Requests sent to this path.
    pub requests: u64,
    /// `ok` responses from this path.
    pub ok: u64,
    /// Failures from this path, all kinds together.
    pub errors: u64,
    /// Latency of this path's `ok` responses.
    pub latency: LatencyStats,
}

/// The load generator's own resource use.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct GeneratorUsage {
    /// CPUs the generator was pinned to (empty: not pinned).
    pub cpus: Vec<usize>,
    /// Generator threads that sent load.
    pub threads: usize,
    /// CPU time the generator process used in the measured window, seconds.
    pub cpu_seconds: f64,
    /// `cpu_seconds` over (`elapsed_s` × CPUs available to it): 1.0 means saturated.
    pub cpu_utilisation: f64,
    /// True when the generator was saturated, so the numbers may be its limit, not the
    /// server's.
    pub bottleneck: bool,
}

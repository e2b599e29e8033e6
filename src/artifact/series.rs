//! What happened inside one measured window, slice by slice: the time series behind a
//! window's single figures, and the generator's judgement of whether the window was steady.
//!
//! Stored column-wise (one array per quantity, one entry per slice) so a window of twenty
//! slices costs a few hundred bytes of JSON. Slice `i` covers
//! `[i · slice_ms, (i + 1) · slice_ms)` from the start of the measured window (the end of
//! the warm-up); the last one may be shorter, ending where the window ends.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The series of one measured window.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct WindowSeries {
    /// Length of every slice but possibly the last, milliseconds.
    pub slice_ms: f64,
    /// Length of the whole window the slices cover, milliseconds (the last slice ends here).
    pub window_ms: f64,
    /// Per slice: `ok` answers that completed in it.
    pub ok: Vec<u64>,
    /// Per slice: failed requests that ended in it, by kind (the names of
    /// [`crate::artifact::load::ErrorCounts`]'s fields); only kinds that occurred.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub errors: BTreeMap<String, Vec<u64>>,
    /// Per slice: measured requests in flight at some moment of it (sent before its end and
    /// not answered before its start). A slice with requests in flight and no completion is
    /// a stretch in which the service answered nothing although it was asked.
    pub in_flight: Vec<u64>,
    /// Per slice: median latency of every request that ended in it, answered or failed
    /// (corrected in open loop, as the window's own), µs; `null` where none ended.
    pub p50_us: Vec<Option<f64>>,
    /// Per slice: 99th percentile, as `p50_us`.
    pub p99_us: Vec<Option<f64>>,
    /// Per slice: the service's CPU time used in it, seconds, interpolated between the
    /// readings around its two ends (as the window's own); absent where the service was not
    /// read (`isobench bench`), `null` where the readings do not bracket the slice.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub service_cpu_s: Vec<Option<f64>>,
    /// Per slice: the highest memory reading taken inside it, bytes, by the method of the
    /// run's `peak_memory_method`; absent where the service was not read, `null` where no
    /// reading fell inside the slice.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub memory_bytes: Vec<Option<u64>>,
    /// Leading slices kept out of the window's figures because they were still warming up
    /// (see [`Steadiness::warming_up`]); 0 when all of the window counts. The window's
    /// `elapsed_s`, counts and latency then cover the slices after them only, and the
    /// service's CPU is read over the same, shorter window.
    #[serde(default)]
    pub discarded_slices: usize,
    /// Whether the window was steady.
    pub steadiness: Steadiness,
}

/// The steadiness test on one window's series. Each finding is shown as a mark on the cells
/// the window stands behind; the window's figures are kept (the reader is told, not spared).
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Steadiness {
    /// Why the window was not judged at all (too few slices, or too few completions per
    /// slice for an empty one to mean anything); `None` when it was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_judged: Option<String>,
    /// The first slices' throughput was still climbing: well below the rest of the window's,
    /// by more than its slice-to-slice spread explains. Where the window could be cut (a
    /// closed loop bounded by duration), the first quarter was discarded instead
    /// ([`WindowSeries::discarded_slices`]) and this verdict is of the slices kept.
    #[serde(default)]
    pub warming_up: bool,
    /// Stretches in which requests were in flight and nothing completed, each long enough
    /// that the window's own rate makes an empty stretch of that length implausible.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub stalls: Vec<Stall>,
    /// Throughput of the last third of the slices against the first third, percent
    /// (−50 for a server that halved); `None` where not judged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drift_pct: Option<f64>,
    /// The drift is larger than the thirds' slice-to-slice spread explains and than
    /// [`DRIFT_LIMIT_PCT`].
    #[serde(default)]
    pub drifted: bool,
}

impl Steadiness {
    /// Whether anything was found that makes the window unsteady.
    pub fn unsteady(&self) -> bool {
        self.warming_up || self.drifted || !self.stalls.is_empty()
    }
}

/// One stall: slices `first_slice .. first_slice + slices` with requests in flight and no
/// completion.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Stall {
    /// Index of its first slice.
    pub first_slice: usize,
    /// How many slices it lasted.
    pub slices: usize,
}

/// Smallest change between the first and last third of a window, percent, that counts as
/// drift: a machine whose speed wanders by the ±12% seen here is not flagged, a server that
/// halves is.
pub const DRIFT_LIMIT_PCT: f64 = 25.0;

//! The window's time series as the generator keeps it: per slice of the measured window, the
//! completions, failures by kind, requests in flight and a small latency histogram.
//!
//! Each worker thread keeps its own [`SeriesRecorder`] (no sharing on the hot path) and the
//! run merges them once at the end. Slices are created as requests land in them, so a run
//! pays only for the slices it fills. A run bounded by count alone has no planned length:
//! when it outgrows [`MAX_SLICES`], its slices are merged in pairs and their width doubled,
//! so the series keeps its whole span at a coarser grain instead of growing without bound.

use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

use super::recorder::{Outcome, add_errors, count_failure, micros};
use crate::artifact::load::ErrorCounts;

/// Most slices a series holds; past it, slices are merged in pairs.
pub const MAX_SLICES: usize = 1024;
/// Significant digits of a slice's latency histogram: 1% resolution is plenty for a p99 per
/// slice, and keeps a slice at a few KiB.
const SLICE_SIGNIFICANT_DIGITS: u8 = 2;

/// What one slice saw.
#[derive(Debug, Clone)]
pub struct Slice {
    /// `ok` answers that completed in it.
    pub ok: u64,
    /// Failures that ended in it, by kind.
    pub errors: ErrorCounts,
    /// Requests in flight at some moment of it.
    pub in_flight: u64,
    /// Latency of every request that ended in it, µs.
    pub latency: Histogram<u32>,
}

impl Slice {
    fn new(highest_us: u64) -> Self {
        Self {
            ok: 0,
            errors: ErrorCounts::default(),
            in_flight: 0,
            latency: Histogram::new_with_bounds(1, highest_us.max(2), SLICE_SIGNIFICANT_DIGITS)
                .expect("slice histogram bounds are valid"),
        }
    }

    /// Requests that ended in the slice, whatever their outcome.
    pub fn completed(&self) -> u64 {
        self.ok + self.errors.total()
    }

    fn add(&mut self, other: &Slice) {
        self.ok += other.ok;
        add_errors(&mut self.errors, &other.errors);
        // Two halves of one wider slice: a request in flight in both is one request, but
        // which ones were is not kept; the larger count is a lower bound and cannot make an
        // empty slice look busy.
        self.in_flight = self.in_flight.max(other.in_flight);
        self.latency
            .add(&other.latency)
            .expect("slice histograms share the same bounds");
    }
}

/// One worker's series over the measured window that starts at `origin`.
#[derive(Debug, Clone)]
pub struct SeriesRecorder {
    origin: Instant,
    slice: Duration,
    highest_us: u64,
    slices: Vec<Option<Slice>>,
}

impl SeriesRecorder {
    /// An empty series from `origin` in slices of `slice`; latencies above `highest` (the
    /// request timeout, past which nothing is measured) are clamped to it.
    pub fn new(origin: Instant, slice: Duration, highest: Duration) -> Self {
        Self {
            origin,
            slice: slice.max(Duration::from_micros(1)),
            highest_us: u64::try_from(highest.as_micros()).unwrap_or(u64::MAX),
            slices: Vec::new(),
        }
    }

    /// Width of a slice now (it doubles when a run outgrows [`MAX_SLICES`]).
    pub fn slice(&self) -> Duration {
        self.slice
    }

    /// Index of the slice `at` falls in; `None` before the window.
    fn index(&mut self, at: Instant) -> Option<usize> {
        let since = at.checked_duration_since(self.origin)?;
        loop {
            let index = usize::try_from(since.as_nanos() / self.slice.as_nanos()).ok()?;
            if index < MAX_SLICES {
                return Some(index);
            }
            self.coarsen(2);
        }
    }

    fn slot(&mut self, index: usize) -> &mut Slice {
        if self.slices.len() <= index {
            self.slices.resize(index + 1, None);
        }
        let highest = self.highest_us;
        self.slices[index].get_or_insert_with(|| Slice::new(highest))
    }

    /// Records a request sent at `sent` that ended at `done` with `outcome` after `latency`
    /// (the latency the window's histogram records for it).
    pub fn record(&mut self, sent: Instant, done: Instant, outcome: Outcome, latency: Duration) {
        let Some(last) = self.index(done) else {
            return;
        };
        self.mark_in_flight(sent, last);
        let slice = self.slot(last);
        match outcome {
            Outcome::Ok => slice.ok += 1,
            failure => count_failure(&mut slice.errors, failure),
        }
        slice.latency.saturating_record(micros(latency));
    }

    /// Records an open-loop request that was due but never sent, counted where sending
    /// stopped (`at`) with its latency from its due time.
    pub fn record_unsent(&mut self, at: Instant, latency: Duration) {
        let Some(index) = self.index(at) else {
            return;
        };
        let slice = self.slot(index);
        slice.errors.unsent += 1;
        slice.latency.saturating_record(micros(latency));
    }

    /// Records a request sent at `sent` that was still unanswered when the window ended at
    /// `end`: in flight to the end, ended nowhere.
    pub fn record_unfinished(&mut self, sent: Instant, end: Instant) {
        // The end instant itself belongs to the slice after the window's last.
        let last_moment = end.checked_sub(Duration::from_nanos(1)).unwrap_or(end);
        if let Some(last) = self.index(last_moment) {
            self.mark_in_flight(sent, last);
        }
    }

    fn mark_in_flight(&mut self, sent: Instant, last: usize) {
        let first = self.index(sent).unwrap_or(0).min(last);
        for index in first..=last {
            self.slot(index).in_flight += 1;
        }
    }

    /// Merges slices in groups of `factor`, multiplying their width by it.
    fn coarsen(&mut self, factor: u32) {
        if factor <= 1 {
            return;
        }
        let factor_slices = factor as usize;
        let mut merged: Vec<Option<Slice>> = Vec::new();
        for group in self.slices.chunks(factor_slices) {
            let mut into: Option<Slice> = None;
            for slice in group.iter().flatten() {
                match into.as_mut() {
                    None => into = Some(slice.clone()),
                    Some(into) => into.add(slice),
                }
            }
            merged.push(into);
        }
        self.slices = merged;
        self.slice *= factor;
    }

    /// Adds another worker's series (same origin) to this one, at the coarser of the two
    /// widths.
    pub fn merge(&mut self, other: &SeriesRecorder) {
        let mut other = other.clone();
        while self.slice < other.slice {
            self.coarsen(2);
        }
        while other.slice < self.slice {
            other.coarsen(2);
        }
        if self.slices.len() < other.slices.len() {
            self.slices.resize(other.slices.len(), None);
        }
        for (mine, theirs) in self.slices.iter_mut().zip(other.slices) {
            match (mine.as_mut(), theirs) {
                (Some(mine), Some(theirs)) => {
                    // Requests of different workers are different requests.
                    let in_flight = mine.in_flight + theirs.in_flight;
                    mine.add(&theirs);
                    mine.in_flight = in_flight;
                }
                (None, Some(theirs)) => *mine = Some(theirs),
                (_, None) => {}
            }
        }
    }

    /// The slices covering `[origin, origin + span)`, every one present (empty where nothing
    /// landed): what the window's series is made of.
    pub fn covering(&self, span: Duration) -> Vec<Slice> {
        // A window that is a whole number of slices but for rounding (a 2 s window in slices
        // of 2 s / 20, truncated to nanoseconds) gets no sliver of a slice at its end.
        let width = self.slice.as_nanos();
        let count = span
            .as_nanos()
            .saturating_sub(width / 1000)
            .div_ceil(width)
            .max(1);
        let count = usize::try_from(count).unwrap_or(MAX_SLICES).min(MAX_SLICES);
        (0..count)
            .map(|index| {
                self.slices
                    .get(index)
                    .cloned()
                    .flatten()
                    .unwrap_or_else(|| Slice::new(self.highest_us))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn requests_land_in_the_slice_they_end_in_and_are_in_flight_across_their_span() {
        let t0 = Instant::now();
        let mut series = SeriesRecorder::new(t0, 100 * MS, Duration::from_secs(5));
        // Sent in the warm-up, answered in slice 0.
        series.record(t0 - 50 * MS, t0 + 10 * MS, Outcome::Ok, 60 * MS);
        // Sent in slice 0, answered in slice 2.
        series.record(t0 + 50 * MS, t0 + 250 * MS, Outcome::Timeout, 200 * MS);
        series.record(t0 + 260 * MS, t0 + 270 * MS, Outcome::Status(503), 10 * MS);
        // Before the window: not in the series.
        series.record(t0 - 90 * MS, t0 - 80 * MS, Outcome::Ok, 10 * MS);
        let slices = series.covering(400 * MS);
        assert_eq!(slices.len(), 4);
        let ok: Vec<u64> = slices.iter().map(|s| s.ok).collect();
        assert_eq!(ok, [1, 0, 0, 0]);
        let in_flight: Vec<u64> = slices.iter().map(|s| s.in_flight).collect();
        assert_eq!(in_flight, [2, 1, 2, 0]);
        assert_eq!(slices[2].errors.timeout, 1);
        assert_eq!(slices[2].errors.status_5xx, 1);
        assert_eq!(slices[2].completed(), 2);
        assert_eq!(slices[1].completed(), 0);
    }

    #[test]
    fn an_unfinished_request_is_in_flight_to_the_end_and_ends_nowhere() {
        let t0 = Instant::now();
        let mut series = SeriesRecorder::new(t0, 100 * MS, Duration::from_secs(5));
        series.record_unfinished(t0 + 150 * MS, t0 + 300 * MS);
        let slices = series.covering(300 * MS);
        let in_flight: Vec<u64> = slices.iter().map(|s| s.in_flight).collect();
        assert_eq!(in_flight, [0, 1, 1]);
        assert!(slices.iter().all(|s| s.completed() == 0));
    }

    #[test]
    fn a_long_run_is_kept_whole_at_a_coarser_grain() {
        let t0 = Instant::now();
        let mut series = SeriesRecorder::new(t0, MS, Duration::from_secs(5));
        for ms in 0..(3 * MAX_SLICES as u32) {
            let at = t0 + ms * MS;
            series.record(at, at, Outcome::Ok, MS);
        }
        assert_eq!(series.slice(), 4 * MS);
        let slices = series.covering(3 * MAX_SLICES as u32 * MS);
        assert_eq!(
            slices.iter().map(|s| s.ok).sum::<u64>(),
            3 * MAX_SLICES as u64
        );
        assert!(slices.iter().all(|s| s.ok == 4));
    }

    #[test]
    fn merging_workers_adds_their_slices_at_the_coarser_width() {
        let t0 = Instant::now();
        let mut a = SeriesRecorder::new(t0, MS, Duration::from_secs(5));
        let mut b = SeriesRecorder::new(t0, MS, Duration::from_secs(5));
        a.record(t0, t0 + MS / 2, Outcome::Ok, MS);
        b.record(t0, t0 + MS / 2, Outcome::Io, MS);
        b.coarsen(2);
        a.merge(&b);
        assert_eq!(a.slice(), 2 * MS);
        let slices = a.covering(2 * MS);
        assert_eq!(slices.len(), 1);
        assert_eq!((slices[0].ok, slices[0].errors.io), (1, 1));
        assert_eq!(slices[0].in_flight, 2);
        assert_eq!(slices[0].latency.len(), 2);
    }
}

//! What one worker thread saw, kept in fixed-size HdrHistograms and counters (never a list of
//! samples, so memory does not grow with the length of a run), merged once at the end.
//!
//! Latencies are recorded in microseconds with three significant digits (Gil Tene's
//! HdrHistogram): a relative error of at most 0.1% at any magnitude.

use std::time::Duration;

use hdrhistogram::Histogram;

use crate::artifact::load::{ErrorCounts, LatencyStats};

/// Largest latency a histogram tracks, µs (one hour); longer ones are clamped to it, which
/// cannot happen within a run's hard deadline anyway.
const HIGHEST_TRACKABLE_US: u64 = 3_600_000_000;
const SIGNIFICANT_DIGITS: u8 = 3;

/// How one request ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// A 2xx response with its whole body.
    Ok,
    /// The connection could not be made.
    Connect,
    /// No complete response within the timeout.
    Timeout,
    /// A response with this non-2xx status.
    Status(u16),
    /// A 2xx response whose body failed or was cut short.
    Body,
    /// An I/O or protocol error on an established connection.
    Io,
}

/// A fresh, empty latency histogram (µs).
pub fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, HIGHEST_TRACKABLE_US, SIGNIFICANT_DIGITS)
        .expect("constant histogram bounds are valid")
}

/// A latency in whole microseconds, at least 1 (a histogram's lowest value).
pub(super) fn micros(latency: Duration) -> u64 {
    u64::try_from(latency.as_micros())
        .unwrap_or(u64::MAX)
        .max(1)
}

/// Counts and latency of one path.
#[derive(Debug, Clone)]
pub struct PathRecord {
    /// Measured requests sent to the path.
    pub sent: u64,
    /// `ok` responses.
    pub ok: u64,
    /// Failures of every kind.
    pub errors: u64,
    /// Latency of `ok` responses (corrected in open loop), µs.
    pub latency: Histogram<u64>,
}

impl PathRecord {
    fn new() -> Self {
        Self {
            sent: 0,
            ok: 0,
            errors: 0,
            latency: new_histogram(),
        }
    }
}

/// Everything one worker measured (warm-up requests are only counted).
#[derive(Debug, Clone)]
pub struct Recorder {
    /// One record per scenario path, by index.
    pub paths: Vec<PathRecord>,
    /// Open loop: latency from the actual send time, µs.
    pub uncorrected: Option<Histogram<u64>>,
    /// Failures by kind.
    pub errors: ErrorCounts,
    /// Complete HTTP responses, any status.
    pub responses: u64,
    /// Warm-up requests sent (not measured).
    pub warmup_sent: u64,
    /// Closed loop: measured requests still unanswered when the window ended.
    pub unfinished: u64,
    /// Latency of every failed measured request, at the time it took to fail, µs.
    pub failed: Histogram<u64>,
}

impl Recorder {
    /// An empty recorder for `paths` paths; `open_loop` keeps the uncorrected histogram too.
    pub fn new(paths: usize, open_loop: bool) -> Self {
        Self {
            paths: (0..paths).map(|_| PathRecord::new()).collect(),
            uncorrected: open_loop.then(new_histogram),
            errors: ErrorCounts::default(),
            responses: 0,
            warmup_sent: 0,
            unfinished: 0,
            failed: new_histogram(),
        }
    }

    /// Records one measured request to path `path`: its outcome, its latency (from the
    /// intended send time in open loop) and, in open loop, its latency from the actual send.
    pub fn record(
        &mut self,
        path: usize,
        outcome: Outcome,
        latency: Duration,
        uncorrected: Duration,
    ) {
        let record = &mut self.paths[path];
        record.sent += 1;
        if matches!(outcome, Outcome::Ok | Outcome::Status(_) | Outcome::Body) {
            self.responses += 1;
        }
        match outcome {
            Outcome::Ok => {
                record.ok += 1;
                record.latency.saturating_record(micros(latency));
                if let Some(histogram) = &mut self.uncorrected {
                    histogram.saturating_record(micros(uncorrected));
                }
                return;
            }
            failure => count_failure(&mut self.errors, failure),
        }
        record.errors += 1;
        self.failed.saturating_record(micros(latency));
    }

    /// Records one measured open-loop request to path `path` that was due but never sent;
    /// `latency` runs from its due time to when sending stopped, and goes into the
    /// corrected histogram like an answer that late would.
    pub fn record_unsent(&mut self, path: usize, latency: Duration) {
        let record = &mut self.paths[path];
        record.sent += 1;
        record.errors += 1;
        record.latency.saturating_record(micros(latency));
        self.errors.unsent += 1;
    }

    /// Records one measured closed-loop request to path `path` that was still unanswered
    /// when the window ended.
    pub fn record_unfinished(&mut self, path: usize) {
        self.paths[path].sent += 1;
        self.unfinished += 1;
    }

    /// Adds another worker's records to this one.
    pub fn merge(&mut self, other: &Recorder) {
        for (mine, theirs) in self.paths.iter_mut().zip(&other.paths) {
            mine.sent += theirs.sent;
            mine.ok += theirs.ok;
            mine.errors += theirs.errors;
            mine.latency
                .add(&theirs.latency)
                .expect("histograms share the same bounds");
        }
        if let (Some(mine), Some(theirs)) = (&mut self.uncorrected, &other.uncorrected) {
            mine.add(theirs).expect("histograms share the same bounds");
        }
        add_errors(&mut self.errors, &other.errors);
        self.responses += other.responses;
        self.warmup_sent += other.warmup_sent;
        self.unfinished += other.unfinished;
        self.failed
            .add(&other.failed)
            .expect("histograms share the same bounds");
    }

    /// Measured requests sent, all paths.
    pub fn sent(&self) -> u64 {
        self.paths.iter().map(|p| p.sent).sum()
    }

    /// `ok` responses, all paths.
    pub fn ok(&self) -> u64 {
        self.paths.iter().map(|p| p.ok).sum()
    }

    /// The latency of every measured request, answered or failed: `answered` (this
    /// recorder's [`Self::latency`], merged once by the caller) with every failure added.
    pub fn all_requests_latency(&self, answered: &Histogram<u64>) -> Histogram<u64> {
        let mut all = answered.clone();
        all.add(&self.failed)
            .expect("histograms share the same bounds");
        all
    }

    /// The latency of all paths together.
    pub fn latency(&self) -> Histogram<u64> {
        let mut all = new_histogram();
        for path in &self.paths {
            all.add(&path.latency)
                .expect("histograms share the same bounds");
        }
        all
    }
}

/// Counts one failed request (`outcome` other than [`Outcome::Ok`]) under its kind.
pub(super) fn count_failure(errors: &mut ErrorCounts, outcome: Outcome) {
    match outcome {
        Outcome::Ok => {}
        Outcome::Connect => errors.connect += 1,
        Outcome::Timeout => errors.timeout += 1,
        Outcome::Status(status) => match status / 100 {
            4 => errors.status_4xx += 1,
            5 => errors.status_5xx += 1,
            _ => errors.status_other += 1,
        },
        Outcome::Body => errors.body += 1,
        Outcome::Io => errors.io += 1,
    }
}

/// Adds `from`'s failures to `into`'s, kind by kind.
pub(super) fn add_errors(into: &mut ErrorCounts, from: &ErrorCounts) {
    into.connect += from.connect;
    into.timeout += from.timeout;
    into.status_4xx += from.status_4xx;
    into.status_5xx += from.status_5xx;
    into.status_other += from.status_other;
    into.body += from.body;
    into.io += from.io;
    into.unsent += from.unsent;
}

/// Summary statistics of a latency histogram (all zero when it is empty).
pub fn stats(histogram: &Histogram<u64>) -> LatencyStats {
    if histogram.is_empty() {
        return LatencyStats {
            count: 0,
            min_us: 0.0,
            mean_us: 0.0,
            stdev_us: 0.0,
            p50_us: 0.0,
            p90_us: 0.0,
            p99_us: 0.0,
            p999_us: 0.0,
            max_us: 0.0,
        };
    }
    // HdrHistogram reports the highest value equivalent to a bucket for quantiles and max;
    // that is within the 0.1% resolution and never flatters the server.
    let at = |q: f64| histogram.value_at_quantile(q) as f64;
    LatencyStats {
        count: histogram.len(),
        min_us: histogram.min() as f64,
        mean_us: histogram.mean(),
        stdev_us: histogram.stdev(),
        p50_us: at(0.50),
        p90_us: at(0.90),
        p99_us: at(0.99),
        p999_us: at(0.999),
        max_us: histogram.max() as f64,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_outcomes_by_kind_and_merges() {
        let mut a = Recorder::new(2, true);
        a.record(
            0,
            Outcome::Ok,
            Duration::from_millis(2),
            Duration::from_millis(1),
        );
        a.record(1, Outcome::Status(503), Duration::ZERO, Duration::ZERO);
        a.record(1, Outcome::Status(404), Duration::ZERO, Duration::ZERO);
        a.record(1, Outcome::Status(302), Duration::ZERO, Duration::ZERO);
        a.record(0, Outcome::Timeout, Duration::ZERO, Duration::ZERO);
        let mut b = Recorder::new(2, true);
        b.record(0, Outcome::Connect, Duration::ZERO, Duration::ZERO);
        b.record(0, Outcome::Body, Duration::ZERO, Duration::ZERO);
        b.record(1, Outcome::Io, Duration::ZERO, Duration::ZERO);
        b.record_unsent(0, Duration::from_millis(8));
        b.record_unfinished(1);
        b.record(
            1,
            Outcome::Ok,
            Duration::from_millis(4),
            Duration::from_millis(4),
        );
        a.merge(&b);
        assert_eq!(a.sent(), 11);
        assert_eq!(a.ok(), 2);
        assert_eq!(a.responses, 6);
        assert_eq!(a.errors.total(), 8);
        assert_eq!((a.errors.unsent, a.unfinished), (1, 1));
        assert_eq!(
            a.errors.status_4xx + a.errors.status_5xx + a.errors.status_other,
            3
        );
        assert_eq!(a.paths[0].sent, 5);
        assert_eq!(a.paths[1].errors, 4);
        // The unsent request is in the corrected histogram, the unfinished one nowhere.
        let latency = stats(&a.latency());
        assert_eq!(latency.count, 3);
        assert!((latency.min_us - 2000.0).abs() <= 2.0);
        assert!((latency.max_us - 8000.0).abs() <= 8.0);
        assert_eq!(stats(a.uncorrected.as_ref().unwrap()).count, 2);
    }

    #[test]
    fn empty_histogram_has_zero_stats() {
        assert_eq!(stats(&new_histogram()).count, 0);
        assert_eq!(stats(&new_histogram()).p99_us, 0.0);
    }
}

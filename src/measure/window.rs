//! Readings over exactly the measured window: the highest memory reading inside it, and the
//! service's CPU time between its two ends.
//!
//! Resources are read every few milliseconds while load runs, each reading stamped with the
//! moment it was taken. The load generator reports the window its counts cover; the peak is
//! the highest reading taken inside it (so a later scenario never inherits an earlier one's
//! peak, and warm-up and drain do not count), and CPU time at each end of the window is
//! interpolated linearly between the readings around it, so CPU per request divides CPU
//! spent in the window by requests answered in the same window.

use std::time::{Duration, Instant};

use crate::artifact::series::WindowSeries;
use crate::load::MeasuredWindow;

/// One reading of an instance's resources, with the moment it was taken.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sample {
    /// When the reading was taken.
    pub at: Instant,
    /// Memory in use, bytes.
    pub memory_bytes: u64,
    /// CPU time used since start, seconds.
    pub cpu_seconds: f64,
}

/// What the samples say about one window.
#[derive(Debug, Clone, PartialEq)]
pub struct WindowReadings {
    /// Highest memory reading taken within the window.
    pub peak_memory_bytes: Option<u64>,
    /// How many readings the peak was taken over.
    pub readings: usize,
    /// CPU time used between the window's start and end, seconds; negative only when the
    /// source went backwards, which is left for the checks to see rather than hidden.
    pub cpu_seconds: Option<f64>,
}

/// Reads `samples` (in time order) over `window`.
pub fn over(samples: &[Sample], window: &MeasuredWindow) -> WindowReadings {
    let inside: Vec<&Sample> = samples
        .iter()
        .filter(|s| s.at >= window.start && s.at <= window.end)
        .collect();
    WindowReadings {
        peak_memory_bytes: inside.iter().map(|s| s.memory_bytes).max(),
        readings: inside.len(),
        cpu_seconds: cpu_between(samples, window.start, window.end),
    }
}

/// CPU time used between `start` and `end`, each interpolated ([`cpu_at`]).
fn cpu_between(samples: &[Sample], start: Instant, end: Instant) -> Option<f64> {
    let (start, end) = (cpu_at(samples, start)?, cpu_at(samples, end)?);
    // Interpolation across two segments may round an unchanged clock a few ulps below zero;
    // that is noise, a larger drop is the source's own.
    Some(match end - start {
        used if used > -1e-9 => used.max(0.0),
        used => used,
    })
}

/// Fills `series`' service columns from `samples`: per slice (from `series_start`), the CPU
/// time used between its two ends, interpolated as the window's own, and the highest memory
/// reading taken inside it.
pub fn fill_series(samples: &[Sample], series_start: Instant, series: &mut WindowSeries) {
    let slice = Duration::from_secs_f64(series.slice_ms / 1e3);
    let window = Duration::from_secs_f64(series.window_ms / 1e3);
    let count = series.ok.len();
    let (mut cpu, mut memory) = (Vec::with_capacity(count), Vec::with_capacity(count));
    for index in 0..count {
        let begins = series_start + slice * u32::try_from(index).unwrap_or(u32::MAX);
        let ends = (begins + slice).min(series_start + window).max(begins);
        cpu.push(cpu_between(samples, begins, ends));
        memory.push(
            samples
                .iter()
                .filter(|s| s.at >= begins && s.at < ends)
                .map(|s| s.memory_bytes)
                .max(),
        );
    }
    series.service_cpu_s = cpu;
    series.memory_bytes = memory;
}

/// CPU time at `at`, interpolated between the last reading at or before it and the first at
/// or after it; `None` when the readings do not bracket `at`.
fn cpu_at(samples: &[Sample], at: Instant) -> Option<f64> {
    let before = samples.iter().rev().find(|s| s.at <= at)?;
    let after = samples.iter().find(|s| s.at >= at)?;
    let span = after.at.saturating_duration_since(before.at);
    if span.is_zero() {
        return Some(before.cpu_seconds);
    }
    let fraction = at.saturating_duration_since(before.at).as_secs_f64() / span.as_secs_f64();
    Some(before.cpu_seconds + fraction * (after.cpu_seconds - before.cpu_seconds))
}

/// `highest of 95 readings (one per 21 ms on average; asked for every 10 ms) within the
/// 2.00 s measured window`: the spacing actually achieved, which a busy machine stretches.
pub fn peak_method(readings: usize, interval: Duration, window: &MeasuredWindow) -> String {
    let length = window.end.saturating_duration_since(window.start);
    let spacing_ms = length.as_secs_f64() * 1e3 / readings.max(1) as f64;
    format!(
        "highest of {readings} readings (one per {spacing_ms:.0} ms on average; asked for every \
         {} ms) within the {:.2} s measured window",
        interval.as_millis(),
        length.as_secs_f64()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn samples(t0: Instant, points: &[(u64, u64, f64)]) -> Vec<Sample> {
        points
            .iter()
            .map(|&(ms, memory_bytes, cpu_seconds)| Sample {
                at: t0 + Duration::from_millis(ms),
                memory_bytes,
                cpu_seconds,
            })
            .collect()
    }

    #[test]
    fn the_peak_is_taken_inside_the_window_only() {
        let t0 = Instant::now();
        // A spike during warm-up (at 50 ms) and one in the drain (at 450 ms) do not count.
        let s = samples(
            t0,
            &[
                (0, 10, 0.0),
                (50, 99, 0.1),
                (100, 20, 0.2),
                (200, 30, 0.3),
                (300, 25, 0.4),
                (450, 98, 0.5),
            ],
        );
        let window = MeasuredWindow {
            start: t0 + Duration::from_millis(100),
            series_start: t0 + Duration::from_millis(100),
            end: t0 + Duration::from_millis(400),
        };
        let readings = over(&s, &window);
        assert_eq!(readings.peak_memory_bytes, Some(30));
        assert_eq!(readings.readings, 3);
    }

    #[test]
    fn cpu_is_interpolated_at_both_ends() {
        let t0 = Instant::now();
        // CPU grows 1 s per second of wall time; the window is 150..350 ms.
        let s = samples(
            t0,
            &[(0, 1, 0.0), (100, 1, 0.1), (200, 1, 0.2), (400, 1, 0.4)],
        );
        let window = MeasuredWindow {
            start: t0 + Duration::from_millis(150),
            series_start: t0 + Duration::from_millis(150),
            end: t0 + Duration::from_millis(350),
        };
        let cpu = over(&s, &window).cpu_seconds.unwrap();
        assert!((cpu - 0.2).abs() < 1e-9, "{cpu}");
    }

    #[test]
    fn a_cpu_source_that_goes_backwards_is_not_hidden() {
        let t0 = Instant::now();
        let s = samples(t0, &[(0, 1, 0.5), (400, 1, 0.1)]);
        let window = MeasuredWindow {
            start: t0 + Duration::from_millis(100),
            series_start: t0 + Duration::from_millis(100),
            end: t0 + Duration::from_millis(300),
        };
        let cpu = over(&s, &window).cpu_seconds.unwrap();
        assert!((cpu + 0.2).abs() < 1e-9, "{cpu}");
    }

    #[test]
    fn each_slice_gets_its_own_cpu_and_highest_reading() {
        let t0 = Instant::now();
        // CPU grows 1 s per second; memory peaks once in each 100 ms slice.
        let s = samples(
            t0,
            &[
                (0, 5, 0.0),
                (40, 7, 0.04),
                (100, 3, 0.1),
                (150, 9, 0.15),
                (250, 2, 0.25),
                (300, 1, 0.3),
            ],
        );
        let mut series = WindowSeries {
            slice_ms: 100.0,
            window_ms: 250.0,
            ok: vec![1, 1, 1],
            errors: Default::default(),
            in_flight: vec![1, 1, 1],
            p50_us: vec![None; 3],
            p99_us: vec![None; 3],
            service_cpu_s: Vec::new(),
            memory_bytes: Vec::new(),
            discarded_slices: 0,
            steadiness: Default::default(),
        };
        fill_series(&s, t0, &mut series);
        let cpu: Vec<f64> = series.service_cpu_s.iter().map(|c| c.unwrap()).collect();
        for (got, want) in cpu.iter().zip([0.1, 0.1, 0.05]) {
            assert!((got - want).abs() < 1e-9, "{cpu:?}");
        }
        // The last slice is the window's last 50 ms: the reading at 250 ms is past its end.
        assert_eq!(series.memory_bytes, [Some(7), Some(9), None]);
    }

    #[test]
    fn unbracketed_windows_have_no_cpu() {
        let t0 = Instant::now();
        let s = samples(t0, &[(100, 1, 0.1)]);
        let window = MeasuredWindow {
            start: t0,
            series_start: t0,
            end: t0 + Duration::from_millis(200),
        };
        assert_eq!(over(&s, &window).cpu_seconds, None);
    }
}

//! What a window's time series says, as numbers: each slice's span and throughput, the
//! stretches it stalled, and — over the windows of one environment's scenario — how many
//! began warming up and how much of them was kept out of the figures. The renderers word
//! and draw these; nothing here is a sentence.

use crate::artifact::series::WindowSeries;
use crate::artifact::{EnvironmentResult, ScenarioRun};

/// Slice `index`'s span from the start of the window, milliseconds: `[start, end)`. Every
/// slice is `slice_ms` long but the last, which ends where the window ends.
pub fn slice_span_ms(series: &WindowSeries, index: usize) -> (f64, f64) {
    let start = index as f64 * series.slice_ms;
    let end = if index + 1 >= series.ok.len() {
        series.window_ms
    } else {
        (index + 1) as f64 * series.slice_ms
    };
    (start, end)
}

/// Every slice's span, in order (see [`slice_span_ms`]).
pub fn slice_spans_ms(series: &WindowSeries) -> Vec<(f64, f64)> {
    (0..series.ok.len())
        .map(|index| slice_span_ms(series, index))
        .collect()
}

/// Every slice's throughput: its `ok` answers over its own length, requests per second;
/// `None` for a slice with no length (a series whose window ends before its last slice
/// starts, which no generator writes but a hand-edited file might).
pub fn throughput_rps(series: &WindowSeries) -> Vec<Option<f64>> {
    slice_spans_ms(series)
        .into_iter()
        .zip(&series.ok)
        .map(|((start, end), ok)| {
            let seconds = (end - start) / 1000.0;
            (seconds > 0.0).then(|| *ok as f64 / seconds)
        })
        .collect()
}

/// How much of the window's start was discarded as warm-up, milliseconds (0 when none).
pub fn discarded_ms(series: &WindowSeries) -> f64 {
    match series.discarded_slices {
        0 => 0.0,
        n => slice_span_ms(series, n - 1).1,
    }
}

/// Every stall's span, milliseconds from the start of the window, in the order found.
pub fn stall_spans_ms(series: &WindowSeries) -> Vec<(f64, f64)> {
    let last = series.ok.len().saturating_sub(1);
    series
        .steadiness
        .stalls
        .iter()
        .filter(|stall| stall.slices > 0 && !series.ok.is_empty())
        .map(|stall| {
            let first = stall.first_slice.min(last);
            let end = (stall.first_slice + stall.slices - 1).min(last);
            (slice_span_ms(series, first).0, slice_span_ms(series, end).1)
        })
        .collect()
}

/// What the steadiness test found over the windows of one scenario in one environment.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct WindowCounts {
    /// Windows that recorded a series.
    pub windows: usize,
    /// Of those, windows whose leading slices were discarded as warm-up.
    pub discarded: usize,
    /// The least and the most discarded from such a window, milliseconds (0 when none was).
    pub discarded_ms: (f64, f64),
    /// Windows still warming up where they could not be cut.
    pub warming_up: usize,
    /// Windows with at least one stall.
    pub stalled: usize,
    /// Windows whose throughput drifted.
    pub drifted: usize,
    /// Windows the test could not judge.
    pub not_judged: usize,
}

/// What [`WindowCounts`] counts, over `runs` (those without a series are left out).
pub fn window_counts<'a>(runs: impl IntoIterator<Item = &'a ScenarioRun>) -> WindowCounts {
    let mut counts = WindowCounts::default();
    let mut least = f64::INFINITY;
    let mut most = 0.0_f64;
    for series in runs.into_iter().filter_map(|run| run.load.series.as_ref()) {
        let steadiness = &series.steadiness;
        counts.windows += 1;
        counts.warming_up += usize::from(steadiness.warming_up);
        counts.stalled += usize::from(!steadiness.stalls.is_empty());
        counts.drifted += usize::from(steadiness.drifted);
        counts.not_judged += usize::from(steadiness.not_judged.is_some());
        if series.discarded_slices > 0 {
            counts.discarded += 1;
            let ms = discarded_ms(series);
            least = least.min(ms);
            most = most.max(ms);
        }
    }
    if counts.discarded > 0 {
        counts.discarded_ms = (least, most);
    }
    counts
}

/// `env`'s runs of `scenario` (sweep steps are not scenarios of their own).
pub fn scenario_runs<'a>(
    env: &'a EnvironmentResult,
    scenario: &'a str,
) -> impl Iterator<Item = &'a ScenarioRun> + 'a {
    env.rounds
        .iter()
        .flat_map(|round| &round.scenarios)
        .filter(move |run| run.sweep.is_none() && run.scenario == scenario)
}

/// Per scenario of `env`, in the order they ran, the counts of its windows; scenarios none
/// of whose windows recorded a series are left out.
pub fn counts_by_scenario(env: &EnvironmentResult) -> Vec<(String, WindowCounts)> {
    let mut names: Vec<&str> = Vec::new();
    for run in env.rounds.iter().flat_map(|round| &round.scenarios) {
        if run.sweep.is_none() && !names.contains(&run.scenario.as_str()) {
            names.push(&run.scenario);
        }
    }
    names
        .into_iter()
        .map(|name| (name.to_owned(), window_counts(scenario_runs(env, name))))
        .filter(|(_, counts)| counts.windows > 0)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::artifact::series::{Stall, Steadiness};

    fn series(ok: Vec<u64>, slice_ms: f64, window_ms: f64) -> WindowSeries {
        let n = ok.len();
        WindowSeries {
            slice_ms,
            window_ms,
            ok,
            errors: Default::default(),
            in_flight: vec![0; n],
            p50_us: vec![None; n],
            p99_us: vec![None; n],
            service_cpu_s: Vec::new(),
            memory_bytes: Vec::new(),
            discarded_slices: 0,
            steadiness: Steadiness::default(),
        }
    }

    #[test]
    fn the_last_slice_ends_with_the_window_and_counts_at_its_own_length() {
        let s = series(vec![100, 100, 30], 250.0, 600.0);
        assert_eq!(
            slice_spans_ms(&s),
            vec![(0.0, 250.0), (250.0, 500.0), (500.0, 600.0)]
        );
        assert_eq!(
            throughput_rps(&s),
            vec![Some(400.0), Some(400.0), Some(300.0)]
        );
        let broken = series(vec![1, 1], 250.0, 250.0);
        assert_eq!(throughput_rps(&broken), vec![Some(4.0), None]);
    }

    #[test]
    fn stalls_and_discards_are_spans_of_time() {
        let mut s = series(vec![10, 20, 0, 0, 20], 100.0, 500.0);
        s.discarded_slices = 2;
        s.steadiness.stalls = vec![Stall {
            first_slice: 2,
            slices: 2,
        }];
        assert_eq!(discarded_ms(&s), 200.0);
        assert_eq!(stall_spans_ms(&s), vec![(200.0, 400.0)]);
    }

    #[test]
    fn counts_cover_windows_with_a_series_only() {
        let mut artifact = crate::artifact::fixture::artifact();
        let native = &mut artifact.environments[0];
        let counts = window_counts(scenario_runs(native, "health"));
        assert_eq!(counts.windows, 3);
        assert_eq!(counts.discarded, 1, "the fixture's native round 1");
        assert_eq!(counts.discarded_ms, (500.0, 500.0));
        native.rounds[0].scenarios[0].load.series = None;
        let counts = window_counts(scenario_runs(native, "health"));
        assert_eq!(counts.windows, 2);
        let by_scenario = counts_by_scenario(native);
        let names: Vec<&str> = by_scenario.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["health", "fixed-rate"]);
    }
}

//! Was the window steady? Three tests on its series, each asking whether a pattern is larger
//! than the window's own slice-to-slice spread explains, so that a slow service (a few
//! answers per slice) and a fast one (thousands) are judged by the same rule:
//!
//! - **warm-up still under way**: the head (the slices the plan would cut off, else the first
//!   quarter) climbs (its last slice above its first) and its mean throughput is well below
//!   the rest's median (by more than [`WARMING_LIMIT`], and by at least [`WARMING_T`]
//!   standard errors of the rest's spread);
//! - **stall**: consecutive slices with requests in flight and no completion, over a stretch
//!   in which the rest of the window's rate predicts at least [`STALL_EXPECTED`] completions
//!   (a Poisson stream would leave that stretch empty with probability e⁻²⁰);
//! - **drift**: the last third's mean throughput differs from the first third's by at least
//!   [`DRIFT_LIMIT_PCT`], with Welch's t at least [`DRIFT_T`].
//!
//! Stalled slices are left out of the warm-up and drift tests (a stall is one finding, not
//! three). The thresholds are checked against steady series (simulated and real servers) for
//! a false-alarm rate of at most 5% per window, and against a 300 ms stall every second and a
//! server that halves halfway, which must be flagged.

use crate::artifact::series::{DRIFT_LIMIT_PCT, Stall, Steadiness};

/// Fewest judged slices (full-length ones) for a trend to be judged at all.
pub const MIN_SLICES: usize = 8;
/// Fewest `ok` answers per slice, on average, for a trend to be judged: below it one slice's
/// count is mostly chance.
pub const MIN_OK_PER_SLICE: f64 = 5.0;
/// How far below the rest the first quarter must be to count as warming up.
pub const WARMING_LIMIT: f64 = 0.2;
/// Standard errors (of the rest's spread) the first quarter must lie below the rest.
pub const WARMING_T: f64 = 2.5;
/// Welch's t the drift must reach.
pub const DRIFT_T: f64 = 2.5;
/// Completions the window's rate must predict over an empty stretch for it to be a stall.
pub const STALL_EXPECTED: f64 = 20.0;
/// A slice shorter than this share of a full one (the window's last) is too short to judge a
/// rate by; it still counts for stalls.
const SHORTEST_JUDGED: f64 = 0.5;

/// One slice as the tests see it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SliceCounts {
    /// `ok` answers that completed in it.
    pub ok: u64,
    /// Requests that ended in it, any outcome.
    pub completed: u64,
    /// Requests in flight at some moment of it.
    pub in_flight: u64,
    /// Its length as a share of a full slice (1 but for a shorter last slice).
    pub length: f64,
}

/// The slices the warm-up test looks at when no plan decides them: the window's first
/// quarter (at least two).
pub fn default_head(slices: usize) -> usize {
    (slices / 4).max(2)
}

/// Judges `slices` (the window's, in order), the warm-up test on the first quarter.
pub fn judge(slices: &[SliceCounts]) -> Steadiness {
    judge_with_head(slices, default_head(slices.len()))
}

/// Judges `slices`, the warm-up test on the first `head` of them: the slices a warm-up still
/// under way would be cut off with, so the test asks about exactly what would be discarded.
pub fn judge_with_head(slices: &[SliceCounts], head: usize) -> Steadiness {
    let stalls = stalls(slices);
    let mut stalled = vec![false; slices.len()];
    for stall in &stalls {
        stalled[stall.first_slice..stall.first_slice + stall.slices].fill(true);
    }
    let in_stall = |index: usize| stalled[index];
    // Throughput per full slice of every slice long enough to judge and not stalled.
    let rates: Vec<(usize, f64)> = slices
        .iter()
        .enumerate()
        .filter(|(index, s)| s.length >= SHORTEST_JUDGED && !in_stall(*index))
        .map(|(index, s)| (index, s.ok as f64 / s.length))
        .collect();
    let mut steadiness = Steadiness {
        stalls,
        ..Steadiness::default()
    };
    if rates.len() < MIN_SLICES {
        steadiness.not_judged = Some(format!(
            "{} slices long enough to judge, fewer than {MIN_SLICES}",
            rates.len()
        ));
        return steadiness;
    }
    let values: Vec<f64> = rates.iter().map(|(_, r)| *r).collect();
    let mean_ok = mean(&values);
    if mean_ok < MIN_OK_PER_SLICE {
        steadiness.not_judged = Some(format!(
            "{mean_ok:.1} answers per slice on average, fewer than {MIN_OK_PER_SLICE}"
        ));
        return steadiness;
    }

    // Warm-up: the head's slices (stalled ones left out) against the rest.
    let head_end = head.max(2);
    let head: Vec<f64> = rates
        .iter()
        .filter(|(index, _)| *index < head_end)
        .map(|(_, r)| *r)
        .collect();
    let rest: Vec<f64> = rates
        .iter()
        .filter(|(index, _)| *index >= head_end)
        .map(|(_, r)| *r)
        .collect();
    let head_stalled = (0..head_end).any(in_stall);
    if head.len() >= 2 && !head_stalled {
        let climbing = head.last() > head.first();
        let below = mean(&head) < (1.0 - WARMING_LIMIT) * median(&rest);
        steadiness.warming_up =
            climbing && below && shortfall(&head, &rest).is_some_and(|z| z >= WARMING_T);
    }

    // Drift, over what follows a warm-up (which is a trend of its own).
    let judged: Vec<f64> = if steadiness.warming_up { rest } else { values };
    let third = judged.len() / 3;
    if third >= 2 {
        let first = &judged[..third];
        let last = &judged[judged.len() - third..];
        let first_mean = mean(first);
        if first_mean > 0.0 {
            let drift = (mean(last) / first_mean - 1.0) * 100.0;
            steadiness.drift_pct = Some(drift);
            steadiness.drifted = drift.abs() >= DRIFT_LIMIT_PCT
                && welch_t(first, last).is_some_and(|t| t.abs() >= DRIFT_T);
        }
    }
    steadiness
}

/// Maximal runs of slices with requests in flight and no completion that the rest of the
/// window's rate makes implausible.
fn stalls(slices: &[SliceCounts]) -> Vec<Stall> {
    let empty = |s: &SliceCounts| s.completed == 0 && s.in_flight > 0;
    let total_completed: u64 = slices.iter().map(|s| s.completed).sum();
    let total_length: f64 = slices.iter().map(|s| s.length).sum();
    let mut found = Vec::new();
    let mut index = 0;
    while index < slices.len() {
        if !empty(&slices[index]) {
            index += 1;
            continue;
        }
        let first = index;
        while index < slices.len() && empty(&slices[index]) {
            index += 1;
        }
        let length: f64 = slices[first..index].iter().map(|s| s.length).sum();
        let elsewhere = total_length - length;
        // The run itself completed nothing, so the rate elsewhere is the whole window's count.
        let rate = if elsewhere > 0.0 {
            total_completed as f64 / elsewhere
        } else {
            0.0
        };
        if rate * length >= STALL_EXPECTED {
            found.push(Stall {
                first_slice: first,
                slices: index - first,
            });
        }
    }
    found
}

fn mean(values: &[f64]) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    values.iter().sum::<f64>() / values.len() as f64
}

fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    match sorted.len() {
        0 => 0.0,
        n if n % 2 == 1 => sorted[n / 2],
        n => (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0,
    }
}

fn variance(values: &[f64]) -> f64 {
    let m = mean(values);
    values.iter().map(|v| (v - m).powi(2)).sum::<f64>() / (values.len() as f64 - 1.0).max(1.0)
}

/// How many standard errors `head`'s mean lies below `rest`'s, by `rest`'s slice-to-slice
/// spread: a ramp's own spread is the ramp, so it cannot be the yardstick (as Welch's t would
/// make it). `None` when `rest` has no spread and the means are equal.
fn shortfall(head: &[f64], rest: &[f64]) -> Option<f64> {
    if head.is_empty() || rest.len() < 2 {
        return None;
    }
    let error = (variance(rest) / head.len() as f64).sqrt();
    in_errors(mean(rest) - mean(head), error)
}

/// Welch's t of `a`'s mean over `b`'s; `None` when neither has any spread and the means are
/// equal (no evidence either way). Identical counts with different means (a perfectly
/// regular server that changed speed) are infinitely significant.
fn welch_t(a: &[f64], b: &[f64]) -> Option<f64> {
    if a.len() < 2 || b.len() < 2 {
        return None;
    }
    let error = (variance(a) / a.len() as f64 + variance(b) / b.len() as f64).sqrt();
    in_errors(mean(a) - mean(b), error)
}

/// `difference` in standard errors `error`: infinitely many when there is no spread but a
/// difference, `None` when there is neither.
fn in_errors(difference: f64, error: f64) -> Option<f64> {
    if error > 0.0 {
        Some(difference / error)
    } else if difference != 0.0 {
        Some(difference.signum() * f64::INFINITY)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng as _, SeedableRng};
    use rand_distr::{Distribution, Poisson};

    fn slices(ok: &[u64]) -> Vec<SliceCounts> {
        ok.iter()
            .map(|&ok| SliceCounts {
                ok,
                completed: ok,
                in_flight: 10,
                length: 1.0,
            })
            .collect()
    }

    /// `n` slices of a Poisson stream with `rate` answers per slice, rate changed by `shape`.
    fn simulated(
        rng: &mut rand::rngs::StdRng,
        n: usize,
        rate: f64,
        shape: impl Fn(usize) -> f64,
    ) -> Vec<SliceCounts> {
        let ok: Vec<u64> = (0..n)
            .map(|i| {
                let lambda = (rate * shape(i)).max(1e-9);
                Poisson::new(lambda).unwrap().sample(rng) as u64
            })
            .collect();
        slices(&ok)
    }

    #[test]
    fn a_steady_window_is_steady() {
        let verdict = judge(&slices(&[100; 20]));
        assert!(!verdict.unsteady(), "{verdict:?}");
        assert_eq!(verdict.drift_pct, Some(0.0));
        assert_eq!(verdict.not_judged, None);
    }

    #[test]
    fn a_halving_server_drifts() {
        let mut ok = vec![100; 10];
        ok.extend([50; 10]);
        let verdict = judge(&slices(&ok));
        assert!(verdict.drifted, "{verdict:?}");
        assert!((verdict.drift_pct.unwrap() + 50.0).abs() < 1e-9);
        assert!(!verdict.warming_up);
    }

    #[test]
    fn a_stall_every_second_is_found_where_it_is() {
        // 100 ms slices over 2 s; nothing answered in 0.3–0.6 s and 1.3–1.6 s.
        let mut ok = vec![100; 20];
        for i in [3, 4, 5, 13, 14, 15] {
            ok[i] = 0;
        }
        let verdict = judge(&slices(&ok));
        assert_eq!(
            verdict.stalls,
            [
                Stall {
                    first_slice: 3,
                    slices: 3
                },
                Stall {
                    first_slice: 13,
                    slices: 3
                }
            ]
        );
        // The stalled slices are the stall's finding alone.
        assert!(!verdict.drifted && !verdict.warming_up, "{verdict:?}");
    }

    #[test]
    fn an_empty_slice_of_a_slow_service_is_not_a_stall() {
        // One answer per slice on average: an empty slice is chance.
        let ok = [1, 0, 2, 1, 0, 1, 1, 2, 0, 1, 1, 1];
        let verdict = judge(&slices(&ok));
        assert!(verdict.stalls.is_empty());
        assert!(verdict.not_judged.is_some());
    }

    #[test]
    fn an_empty_slice_with_nothing_in_flight_is_no_stall() {
        let mut window = slices(&[100; 20]);
        window[5] = SliceCounts {
            ok: 0,
            completed: 0,
            in_flight: 0,
            length: 1.0,
        };
        assert!(judge(&window).stalls.is_empty());
    }

    #[test]
    fn a_ramp_at_the_start_is_warming_up_and_not_drift() {
        let mut ok = vec![20, 40, 60, 80, 95];
        ok.extend([100; 15]);
        let verdict = judge(&slices(&ok));
        assert!(verdict.warming_up, "{verdict:?}");
        assert!(!verdict.drifted, "{verdict:?}");
    }

    #[test]
    fn a_dip_at_the_start_that_does_not_climb_is_not_warm_up() {
        let mut ok = vec![60, 50, 40, 50, 40];
        ok.extend([100; 15]);
        assert!(!judge(&slices(&ok)).warming_up);
    }

    #[test]
    fn too_few_slices_are_not_judged() {
        let verdict = judge(&slices(&[100, 50, 100]));
        assert!(verdict.not_judged.is_some());
        assert!(!verdict.unsteady());
    }

    /// The false-alarm rate on steady windows, by simulation: Poisson streams of 5 to 5000
    /// answers per slice, with the machine's own wobble (±5% per slice); at most 5% flagged.
    #[test]
    fn steady_windows_are_rarely_flagged() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        for rate in [5.0, 20.0, 100.0, 1000.0, 5000.0] {
            let windows = 400;
            let flagged = (0..windows)
                .filter(|_| {
                    let wobble: Vec<f64> = (0..20)
                        .map(|_| 1.0 + rng.random_range(-0.05..0.05))
                        .collect();
                    judge(&simulated(&mut rng, 20, rate, |i| wobble[i])).unsteady()
                })
                .count();
            let rate_flagged = flagged as f64 / windows as f64;
            eprintln!("{rate} per slice: {flagged} of {windows} steady windows flagged");
            assert!(
                rate_flagged <= 0.05,
                "{rate} per slice: {flagged} of {windows} steady windows flagged"
            );
        }
    }

    /// The patterns that must be found, by simulation at the same rates: a halving, a
    /// 300 ms stall every second, a ramp over the first quarter.
    #[test]
    fn unsteady_windows_are_found() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(11);
        for rate in [20.0, 100.0, 1000.0] {
            let trials = 100;
            let halved = (0..trials)
                .filter(|_| {
                    judge(&simulated(&mut rng, 20, rate, |i| {
                        if i < 10 { 1.0 } else { 0.5 }
                    }))
                    .drifted
                })
                .count();
            let stalled = (0..trials)
                .filter(|_| {
                    let stall = |i: usize| matches!(i % 10, 3..=5);
                    !judge(&simulated(&mut rng, 20, rate, |i| {
                        if stall(i) { 0.0 } else { 1.0 }
                    }))
                    .stalls
                    .is_empty()
                })
                .count();
            let warming = (0..trials)
                .filter(|_| {
                    judge(&simulated(&mut rng, 20, rate, |i| {
                        ((i + 1) as f64 / 5.0).min(1.0)
                    }))
                    .warming_up
                })
                .count();
            eprintln!(
                "{rate} per slice, of {trials}: halving {halved}, stall {stalled}, ramp {warming}"
            );
            assert!(
                halved >= 95,
                "{rate}/slice: halving found {halved} of {trials}"
            );
            assert!(
                stalled >= 95,
                "{rate}/slice: stall found {stalled} of {trials}"
            );
            assert!(
                warming >= 90,
                "{rate}/slice: ramp found {warming} of {trials}"
            );
        }
    }
}

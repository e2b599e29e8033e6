//! Statistics over repetitions: a median with a confidence interval, a ratio of medians with
//! its interval, and a flag for estimates too noisy to read.
//!
//! **Median interval: the distribution-free order-statistic interval** (Thompson 1936; see
//! Conover, *Practical Nonparametric Statistics*, 3rd ed. 1999, §3.2, or Hollander, Wolfe &
//! Chicken, *Nonparametric Statistical Methods*, 2014, §3.6). For sorted samples
//! x₍₁₎ ≤ … ≤ x₍ₙ₎, the number of samples below the true median is Binomial(n, ½), so
//! [x₍ₖ₎, x₍ₙ₊₁₋ₖ₎] covers the median with probability exactly 1 − 2·P(B ≤ k − 1) for any
//! continuous distribution. We take the largest k whose coverage is at least 95%. It was
//! chosen over the percentile bootstrap because isobench has few repetitions (3–10 rounds):
//! the interval is exact rather than asymptotic, needs no random numbers, and *says* what it
//! covers. With n ≤ 5 no pair of order statistics reaches 95%; then the interval is
//! [min, max] and [`Estimate::coverage`] records the smaller coverage it really has
//! (1 − 2·0.5ⁿ: 75% for n = 3), which the exporters show.
//!
//! **Ratio interval: percentile bootstrap of the ratio of medians** (Efron & Tibshirani,
//! *An Introduction to the Bootstrap*, 1993, ch. 13). Both samples are resampled independently
//! [`BOOTSTRAP_RESAMPLES`] times with a fixed seed ([`BOOTSTRAP_SEED`]), so a report is
//! reproducible; the interval is the 2.5th and 97.5th percentiles of the resampled ratios.
//! The point estimate is the ratio of the two sample medians.
//!
//! **Noisy**: an estimate is flagged when its interval's half-width exceeds
//! [`NOISY_RELATIVE_HALF_WIDTH`] (10%) of the point estimate, or when there is a single sample
//! (whose spread is unknown, so the interval is just the point).

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::report::schema::Estimate;

/// Nominal coverage of every interval.
pub const CONFIDENCE: f64 = 0.95;

/// Half-width of the interval, relative to the point estimate, above which it is `noisy`.
pub const NOISY_RELATIVE_HALF_WIDTH: f64 = 0.10;

/// Bootstrap resamples for the ratio interval.
pub const BOOTSTRAP_RESAMPLES: usize = 10_000;

/// Seed of the bootstrap's random number generator, fixed so reports are reproducible.
pub const BOOTSTRAP_SEED: u64 = 0x1503_BE4C_0000_0001;

/// A one-line description of the methods, recorded in `Summary::method`.
pub fn method_description() -> String {
    format!(
        "median with distribution-free order-statistic 95% interval (binomial; [min, max] with \
         lower coverage when n < 6); ratio of medians with percentile bootstrap 95% interval \
         ({BOOTSTRAP_RESAMPLES} resamples, seed {BOOTSTRAP_SEED:#x}); noisy when the half-width \
         exceeds {}% of the estimate or n = 1",
        NOISY_RELATIVE_HALF_WIDTH * 100.0
    )
}

/// The median of a sample, `None` for an empty one or one holding a NaN.
pub fn median(samples: &[f64]) -> Option<f64> {
    let sorted = sorted(samples)?;
    Some(median_of_sorted(&sorted))
}

/// The median and its order-statistic interval; `None` when there are no (finite) samples.
pub fn median_estimate(samples: &[f64]) -> Option<Estimate> {
    let sorted = sorted(samples)?;
    let n = sorted.len();
    let (k, coverage) = order_statistic_rank(n);
    let median = median_of_sorted(&sorted);
    let (ci_low, ci_high) = (sorted[k - 1], sorted[n - k]);
    Some(Estimate {
        median,
        ci_low,
        ci_high,
        n,
        coverage,
        noisy: is_noisy(median, ci_low, ci_high, n),
    })
}

/// A quantity measured once that has no sampling spread (an image's size): its interval is
/// the value itself, with full coverage, never noisy.
pub fn exact(value: f64) -> Estimate {
    Estimate {
        median: value,
        ci_low: value,
        ci_high: value,
        n: 1,
        coverage: 1.0,
        noisy: false,
    }
}

/// The ratio of `samples`' median to `baseline`'s median, with a percentile-bootstrap
/// interval. `None` when either sample is empty or the baseline median is not positive (the
/// ratio is then undefined). `n` is the smaller of the two sample sizes.
pub fn ratio_estimate(samples: &[f64], baseline: &[f64]) -> Option<Estimate> {
    let samples = sorted(samples)?;
    let baseline = sorted(baseline)?;
    let baseline_median = median_of_sorted(&baseline);
    if baseline_median <= 0.0 {
        return None;
    }
    let point = median_of_sorted(&samples) / baseline_median;

    let mut rng = StdRng::seed_from_u64(BOOTSTRAP_SEED);
    let mut ratios = Vec::with_capacity(BOOTSTRAP_RESAMPLES);
    let mut resample_a = vec![0.0; samples.len()];
    let mut resample_b = vec![0.0; baseline.len()];
    for _ in 0..BOOTSTRAP_RESAMPLES {
        resample_into(&samples, &mut resample_a, &mut rng);
        resample_into(&baseline, &mut resample_b, &mut rng);
        let denominator = median_of_sorted(&resample_b);
        // A resample whose baseline median is zero has no ratio; it can only happen when the
        // baseline holds zeros, and dropping those resamples is the conventional choice.
        if denominator > 0.0 {
            ratios.push(median_of_sorted(&resample_a) / denominator);
        }
    }
    if ratios.is_empty() {
        return None;
    }
    ratios.sort_by(f64::total_cmp);
    let tail = (1.0 - CONFIDENCE) / 2.0;
    let ci_low = percentile_of_sorted(&ratios, tail);
    let ci_high = percentile_of_sorted(&ratios, 1.0 - tail);
    let n = samples.len().min(baseline.len());
    Some(Estimate {
        median: point,
        ci_low,
        ci_high,
        n,
        coverage: CONFIDENCE,
        noisy: is_noisy(point, ci_low, ci_high, n),
    })
}

/// Whether an interval is too wide to read: half-width above [`NOISY_RELATIVE_HALF_WIDTH`] of
/// the point, or a single sample.
pub fn is_noisy(point: f64, ci_low: f64, ci_high: f64, n: usize) -> bool {
    if n < 2 {
        return true;
    }
    let half_width = (ci_high - ci_low) / 2.0;
    // The tolerance keeps an interval of exactly 10% (up to rounding, e.g. 1.8..2.2 around
    // 2.0) on the not-noisy side, as the definition says "exceeds".
    half_width > NOISY_RELATIVE_HALF_WIDTH * point.abs() * (1.0 + 1e-9)
}

/// The rank k (1-based) of the order-statistic interval [x₍ₖ₎, x₍ₙ₊₁₋ₖ₎] and its exact
/// coverage: the largest k with coverage ≥ [`CONFIDENCE`], or k = 1 when none reaches it.
/// `n` must be at least 1.
pub fn order_statistic_rank(n: usize) -> (usize, f64) {
    debug_assert!(n >= 1);
    let coverage_of = |k: usize| 1.0 - 2.0 * binomial_half_cdf(n, k - 1);
    let mut k = 1;
    while k < n.div_ceil(2) && coverage_of(k + 1) >= CONFIDENCE {
        k += 1;
    }
    (k, coverage_of(k).max(0.0))
}

/// P(B ≤ m) for B ~ Binomial(n, ½), summed in log space so large n does not underflow.
fn binomial_half_cdf(n: usize, m: usize) -> f64 {
    let ln_half_n = -(n as f64) * std::f64::consts::LN_2;
    let mut ln_choose = 0.0; // ln C(n, 0)
    let mut total = 0.0;
    for i in 0..=m.min(n) {
        if i > 0 {
            ln_choose += ((n - i + 1) as f64).ln() - (i as f64).ln();
        }
        total += (ln_choose + ln_half_n).exp();
    }
    total.min(1.0)
}

fn sorted(samples: &[f64]) -> Option<Vec<f64>> {
    if samples.is_empty() || samples.iter().any(|x| !x.is_finite()) {
        return None;
    }
    let mut sorted = samples.to_vec();
    sorted.sort_by(f64::total_cmp);
    Some(sorted)
}

fn median_of_sorted(sorted: &[f64]) -> f64 {
    let n = sorted.len();
    if n % 2 == 1 {
        sorted[n / 2]
    } else {
        (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0
    }
}

/// Resamples with replacement into `out` and sorts it (for the median).
fn resample_into(from: &[f64], out: &mut [f64], rng: &mut StdRng) {
    for slot in out.iter_mut() {
        *slot = from[rng.random_range(0..from.len())];
    }
    out.sort_by(f64::total_cmp);
}

/// The `q` quantile of sorted values, nearest rank (the convention of Efron & Tibshirani's
/// percentile interval: the ⌈q·B⌉-th of B ordered replicates).
fn percentile_of_sorted(sorted: &[f64], q: f64) -> f64 {
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-12
    }

    #[test]
    fn empty_and_non_finite_samples_have_no_estimate() {
        assert_eq!(median_estimate(&[]), None);
        assert_eq!(median_estimate(&[1.0, f64::NAN]), None);
        assert_eq!(ratio_estimate(&[], &[1.0]), None);
        assert_eq!(ratio_estimate(&[1.0], &[]), None);
    }

    #[test]
    fn single_sample_is_the_point_and_flagged() {
        let e = median_estimate(&[42.0]).unwrap();
        assert_eq!((e.median, e.ci_low, e.ci_high, e.n), (42.0, 42.0, 42.0, 1));
        assert_eq!(
            e.coverage, 0.0,
            "a point covers a continuous median with probability 0"
        );
        assert!(e.noisy);
    }

    #[test]
    fn ten_samples_use_second_and_ninth_order_statistics() {
        // n = 10: P(B ≤ 1) = 11/1024, so k = 2 covers 1 − 22/1024 = 0.978515625;
        // k = 3 would cover 1 − 2·56/1024 = 0.890625 < 0.95.
        let samples = [7.0, 3.0, 10.0, 1.0, 5.0, 9.0, 2.0, 8.0, 4.0, 6.0];
        let e = median_estimate(&samples).unwrap();
        assert_eq!(e.median, 5.5);
        assert_eq!((e.ci_low, e.ci_high), (2.0, 9.0));
        assert!(close(e.coverage, 1.0 - 22.0 / 1024.0));
        assert_eq!(e.n, 10);
    }

    #[test]
    fn twenty_samples_use_sixth_and_fifteenth_order_statistics() {
        // n = 20: P(B ≤ 5) = (1+20+190+1140+4845+15504)/2²⁰ = 21700/1048576 → coverage
        // 0.95861…; P(B ≤ 6) adds 38760, coverage 0.88468… < 0.95.
        let samples: Vec<f64> = (1..=20).rev().map(f64::from).collect();
        let e = median_estimate(&samples).unwrap();
        assert_eq!(e.median, 10.5);
        assert_eq!((e.ci_low, e.ci_high), (6.0, 15.0));
        assert!(close(e.coverage, 1.0 - 2.0 * 21700.0 / 1048576.0));
    }

    #[test]
    fn small_samples_fall_back_to_min_max_with_their_true_coverage() {
        // n = 5: [min, max] covers 1 − 2/32 = 0.9375; n = 6 reaches 1 − 2/64 = 0.96875.
        let five = median_estimate(&[10.0, 12.0, 11.0, 13.0, 9.0]).unwrap();
        assert_eq!((five.median, five.ci_low, five.ci_high), (11.0, 9.0, 13.0));
        assert!(close(five.coverage, 0.9375));
        let six = median_estimate(&[10.0, 12.0, 11.0, 13.0, 9.0, 14.0]).unwrap();
        assert_eq!((six.ci_low, six.ci_high), (9.0, 14.0));
        assert!(close(six.coverage, 0.96875));
        let three = median_estimate(&[100.0, 101.0, 99.0]).unwrap();
        assert!(close(three.coverage, 0.75));
        assert!(!three.noisy, "half-width 1 is 1% of 100");
    }

    #[test]
    fn rank_is_exact_for_a_large_sample() {
        // Exact binomial sums (Python's math.comb): k = 469 covers 0.953709, k = 470 only
        // 0.946322. (The normal approximation n/2 − 1.96·√n/2 ≈ 469.0 agrees.)
        let (k, coverage) = order_statistic_rank(1000);
        assert_eq!(k, 469);
        assert!((coverage - 0.953_708_8).abs() < 1e-6, "{coverage}");
    }

    #[test]
    fn wide_interval_is_noisy() {
        // n = 6 → [min, max] = [50, 150], half-width 50 = 50% of the median 100.
        let e = median_estimate(&[50.0, 95.0, 100.0, 100.0, 105.0, 150.0]).unwrap();
        assert_eq!(e.median, 100.0);
        assert!(e.noisy);
        // Exactly 10% is not above the threshold.
        assert!(!is_noisy(100.0, 90.0, 110.0, 6));
        assert!(is_noisy(100.0, 89.0, 110.0, 6));
    }

    #[test]
    fn ratio_of_constant_samples_is_exact() {
        let e = ratio_estimate(&[20.0, 20.0, 20.0], &[10.0, 10.0, 10.0]).unwrap();
        assert_eq!((e.median, e.ci_low, e.ci_high, e.n), (2.0, 2.0, 2.0, 3));
        assert!(!e.noisy);
    }

    #[test]
    fn ratio_interval_against_a_constant_baseline() {
        // The baseline is always 10, so each replicate is (median of 3 draws from
        // {18, 20, 22}) / 10. P(median = 18) = P(≥ 2 of 3 draws are 18) = 7/27 ≈ 0.26, and
        // likewise for 22, both far above 2.5%: the interval is [1.8, 2.2].
        let e = ratio_estimate(&[18.0, 20.0, 22.0], &[10.0, 10.0, 10.0]).unwrap();
        assert!(close(e.median, 2.0));
        assert!(close(e.ci_low, 1.8) && close(e.ci_high, 2.2), "{e:?}");
        assert!(!e.noisy, "half-width 0.2 is exactly 10% of 2.0");
    }

    #[test]
    fn ratio_is_reproducible_and_contains_the_point() {
        let a = [12.0, 15.0, 11.0, 14.0, 13.0, 16.0, 12.5];
        let b = [10.0, 9.5, 10.5, 11.0, 9.0];
        let first = ratio_estimate(&a, &b).unwrap();
        assert_eq!(first, ratio_estimate(&a, &b).unwrap());
        assert!(first.ci_low <= first.median && first.median <= first.ci_high);
        assert_eq!(first.n, 5);
    }

    #[test]
    fn ratio_with_zero_baseline_is_undefined() {
        assert_eq!(ratio_estimate(&[1.0], &[0.0, 0.0]), None);
    }

    #[test]
    fn single_sample_ratio_is_flagged() {
        let e = ratio_estimate(&[30.0], &[10.0]).unwrap();
        assert_eq!((e.median, e.ci_low, e.ci_high), (3.0, 3.0, 3.0));
        assert!(e.noisy);
    }
}

#[cfg(test)]
mod properties {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        #[test]
        fn interval_brackets_the_median_and_ignores_order(
            mut samples in prop::collection::vec(-1e6f64..1e6, 1..60)
        ) {
            let e = median_estimate(&samples).unwrap();
            prop_assert!(e.ci_low <= e.median && e.median <= e.ci_high);
            prop_assert!((0.0..=1.0).contains(&e.coverage));
            prop_assert_eq!(e.coverage >= CONFIDENCE, samples.len() >= 6);
            samples.reverse();
            prop_assert_eq!(median_estimate(&samples).unwrap(), e);
        }

    }

    proptest! {
        // Each case runs 10,000 resamples; a few dozen cases are plenty.
        #![proptest_config(ProptestConfig::with_cases(32))]

        #[test]
        fn ratio_is_ordered_reproducible_and_scales(
            a in prop::collection::vec(1.0f64..1e4, 1..12),
            b in prop::collection::vec(1.0f64..1e4, 1..12),
        ) {
            let e = ratio_estimate(&a, &b).unwrap();
            prop_assert!(e.ci_low <= e.ci_high);
            prop_assert_eq!(e.n, a.len().min(b.len()));
            prop_assert_eq!(ratio_estimate(&a, &b).unwrap(), e.clone());
            // Doubling the numerator doubles every resampled ratio (same seed, same draws).
            let doubled: Vec<f64> = a.iter().map(|x| x * 2.0).collect();
            let d = ratio_estimate(&doubled, &b).unwrap();
            prop_assert!((d.ci_low - 2.0 * e.ci_low).abs() <= 1e-9 * d.ci_low.abs());
            prop_assert!((d.ci_high - 2.0 * e.ci_high).abs() <= 1e-9 * d.ci_high.abs());
        }
    }
}

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
//! **Ratio interval: the ratio of the two order-statistic intervals.** For the ratio of
//! medians m_A / m_B, take an order-statistic interval [a_lo, a_hi] for m_A (coverage c_A) and
//! [b_lo, b_hi] for m_B (coverage c_B), from independent rounds. When both cover, m_A / m_B
//! lies in [a_lo / b_hi, a_hi / b_lo], so that interval covers with probability at least
//! c_A·c_B: a distribution-free bound whose coverage is known, which `coverage` records. The
//! ranks are the tightest pair whose product still reaches 95%; with too few rounds for that
//! (fewer than 7 per side), the [min, max] intervals are used and the smaller product is
//! reported (0.75² ≈ 56% at n = 3), and the exporters mark the cell. This replaced a
//! percentile bootstrap, whose nominal 95% covered about 90% at n = 3 and 67% at n = 2
//! (see the `ratio_coverage_is_what_it_claims` test). The point estimate is the ratio of the
//! two sample medians.
//!
//! **Noisy**: an estimate is flagged when its interval's half-width exceeds
//! [`NOISY_RELATIVE_HALF_WIDTH`] (10%) of the point estimate, or when there is a single sample
//! (whose spread is unknown, so the interval is just the point).

use crate::artifact::Estimate;

/// Nominal coverage of every interval.
pub const CONFIDENCE: f64 = 0.95;

/// Half-width of the interval, relative to the point estimate, above which it is `noisy`.
pub const NOISY_RELATIVE_HALF_WIDTH: f64 = 0.10;

/// A one-line description of the methods, recorded in `Summary::method`.
pub fn method_description() -> String {
    format!(
        "median with distribution-free order-statistic 95% interval (binomial; [min, max] with \
         lower coverage when n < 6); ratio of medians bounded by the two medians' \
         order-statistic intervals, coverage at least the product of theirs (below 95% when \
         either side has n < 7, then stated); noisy when the half-width exceeds {}% of the \
         estimate or n = 1",
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
        limits: Vec::new(),
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
        limits: Vec::new(),
    }
}

/// The ratio of `samples`' median to `baseline`'s median, with the interval bounded by the
/// two order-statistic intervals and its coverage (at least the product of theirs). `None`
/// when either sample is empty or holds a non-finite value, or the baseline's interval
/// reaches zero or below (the ratio is then unbounded). `n` is the smaller sample size.
pub fn ratio_estimate(samples: &[f64], baseline: &[f64]) -> Option<Estimate> {
    let samples = sorted(samples)?;
    let baseline = sorted(baseline)?;
    let (n_a, n_b) = (samples.len(), baseline.len());
    let baseline_median = median_of_sorted(&baseline);
    if baseline_median <= 0.0 {
        return None;
    }
    let point = median_of_sorted(&samples) / baseline_median;
    let (k_a, k_b, coverage) = ratio_ranks(n_a, n_b);
    let (a_lo, a_hi) = (samples[k_a - 1], samples[n_a - k_a]);
    let (b_lo, b_hi) = (baseline[k_b - 1], baseline[n_b - k_b]);
    if b_lo <= 0.0 {
        return None;
    }
    // With a positive baseline, the smallest ratio has the smallest numerator; which
    // denominator minimises it depends on the numerator's sign.
    let (ci_low, ci_high) = (
        (a_lo / b_hi).min(a_lo / b_lo),
        (a_hi / b_lo).max(a_hi / b_hi),
    );
    let n = n_a.min(n_b);
    Some(Estimate {
        median: point,
        ci_low,
        ci_high,
        n,
        coverage,
        noisy: is_noisy(point, ci_low, ci_high, n),
        limits: Vec::new(),
    })
}

/// Coverage of the order-statistic interval [x₍ₖ₎, x₍ₙ₊₁₋ₖ₎] for a median from n samples:
/// 1 − 2·P(B ≤ k − 1), B ~ Binomial(n, ½).
pub fn interval_coverage(n: usize, k: usize) -> f64 {
    debug_assert!(k >= 1 && k <= n.div_ceil(2));
    (1.0 - 2.0 * binomial_half_cdf(n, k - 1)).max(0.0)
}

/// The ranks (k_A, k_B) of the two medians' intervals for a ratio, and the coverage of their
/// ratio (the product): the pair with the largest k_A + k_B (the tightest) whose product
/// reaches [`CONFIDENCE`], the more balanced pair on a tie; (1, 1) when none does.
pub fn ratio_ranks(n_a: usize, n_b: usize) -> (usize, usize, f64) {
    let mut best = (1, 1, interval_coverage(n_a, 1) * interval_coverage(n_b, 1));
    for k_a in 1..=n_a.div_ceil(2) {
        for k_b in 1..=n_b.div_ceil(2) {
            let coverage = interval_coverage(n_a, k_a) * interval_coverage(n_b, k_b);
            let tighter = k_a + k_b > best.0 + best.1
                || (k_a + k_b == best.0 + best.1 && k_a.abs_diff(k_b) < best.0.abs_diff(best.1));
            if coverage >= CONFIDENCE && tighter {
                best = (k_a, k_b, coverage);
            }
        }
    }
    best
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
    let mut k = 1;
    while k < n.div_ceil(2) && interval_coverage(n, k + 1) >= CONFIDENCE {
        k += 1;
    }
    (k, interval_coverage(n, k))
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
    fn ratio_interval_is_the_ratio_of_the_two_intervals() {
        // n = 7 per side: [min, max] each (98.4%), product 0.984375² ≥ 95%.
        let a = [18.0, 20.0, 22.0, 19.0, 21.0, 20.5, 19.5];
        let b = [10.0, 9.0, 11.0, 10.0, 10.5, 9.5, 10.0];
        let e = ratio_estimate(&a, &b).unwrap();
        assert!(close(e.median, 2.0));
        assert!(
            close(e.ci_low, 18.0 / 11.0) && close(e.ci_high, 22.0 / 9.0),
            "{e:?}"
        );
        assert!(close(e.coverage, (1.0 - 2.0 / 128.0) * (1.0 - 2.0 / 128.0)));
        assert!(e.coverage >= CONFIDENCE);
    }

    #[test]
    fn small_ratios_state_their_low_coverage() {
        // n = 3 per side: 0.75 · 0.75; n = 6: 0.96875² = 0.938 < 95%; n = 10 reaches it with
        // the 2nd order statistics on both sides (0.978515625²).
        let three = ratio_estimate(&[2.0, 3.0, 4.0], &[1.0, 1.5, 2.0]).unwrap();
        assert!(close(three.coverage, 0.5625));
        assert!(close(ratio_ranks(6, 6).2, 0.96875 * 0.96875));
        let (k_a, k_b, coverage) = ratio_ranks(10, 10);
        assert_eq!((k_a, k_b), (2, 2));
        assert!(close(
            coverage,
            (1.0 - 22.0 / 1024.0) * (1.0 - 22.0 / 1024.0)
        ));
    }

    #[test]
    fn ratio_coverage_is_what_it_claims() {
        // Monte Carlo: normal rounds (true medians 200 and 100, spread 10%), 4,000 trials with
        // a fixed seed. The interval must cover the true ratio 2.0 at least as often as its
        // `coverage` says (a percentile bootstrap claimed 95% and covered about 90% at n = 3).
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let mut normal = |mean: f64| {
            let (u1, u2): (f64, f64) = (rng.random::<f64>().max(1e-12), rng.random());
            mean * (1.0 + 0.1 * (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos())
        };
        for n in [2, 3, 5, 7] {
            let trials = 4000;
            let mut covered = 0;
            let mut claimed = 0.0;
            for _ in 0..trials {
                let a: Vec<f64> = (0..n).map(|_| normal(200.0)).collect();
                let b: Vec<f64> = (0..n).map(|_| normal(100.0)).collect();
                let e = ratio_estimate(&a, &b).unwrap();
                claimed = e.coverage;
                if e.ci_low <= 2.0 && 2.0 <= e.ci_high {
                    covered += 1;
                }
            }
            let observed = f64::from(covered) / f64::from(trials);
            // Three binomial standard errors of slack for the simulation itself.
            let slack = 3.0 * (claimed * (1.0 - claimed) / f64::from(trials)).sqrt();
            assert!(
                observed + slack >= claimed,
                "n = {n}: claimed {claimed}, covered {observed}"
            );
        }
    }

    #[test]
    fn ratio_contains_the_point() {
        let a = [12.0, 15.0, 11.0, 14.0, 13.0, 16.0, 12.5];
        let b = [10.0, 9.5, 10.5, 11.0, 9.0];
        let first = ratio_estimate(&a, &b).unwrap();
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
        #[test]
        fn ratio_is_ordered_reproducible_and_scales(
            a in prop::collection::vec(1.0f64..1e4, 1..12),
            b in prop::collection::vec(1.0f64..1e4, 1..12),
        ) {
            let e = ratio_estimate(&a, &b).unwrap();
            prop_assert!(e.ci_low <= e.median && e.median <= e.ci_high);
            prop_assert_eq!(e.n, a.len().min(b.len()));
            prop_assert!((0.0..=1.0).contains(&e.coverage));
            // Doubling the numerator doubles both ends.
            let doubled: Vec<f64> = a.iter().map(|x| x * 2.0).collect();
            let d = ratio_estimate(&doubled, &b).unwrap();
            prop_assert!((d.ci_low - 2.0 * e.ci_low).abs() <= 1e-9 * d.ci_low.abs());
            prop_assert!((d.ci_high - 2.0 * e.ci_high).abs() <= 1e-9 * d.ci_high.abs());
        }
    }
}

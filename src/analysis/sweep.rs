//! Latency under load: the curves of a rate sweep and the capacity read from them.
//!
//! A sweep (wrk2's way of looking at latency: Gil Tene, "How NOT to measure latency") runs
//! open-loop load at rising rates, each a fraction of the environment's *own* measured
//! ceiling (its closed-loop `health` throughput), from light load to past saturation, with
//! latency measured from each request's intended send time. Plotting p50 and p99 against the
//! rate shows where each environment's latency turns up — the curve capacity planners use.
//!
//! Each step is a [`ScenarioRun`](crate::artifact::ScenarioRun) with a
//! [`SweepStep`](crate::artifact::SweepStep). Rounds may derive different rates from
//! their own ceilings, so steps are matched across rounds by fraction, and every figure of a
//! point is the median over the rounds.
//!
//! **Capacity** ("highest rate with p99 under X ms") is the highest step that meets the limit
//! *and every lower step did too*, so one lucky step past a bad one cannot inflate it. A step
//! meets it when its p99 is below X, the generator kept the requested rate (at least
//! [`RATE_KEPT`] of it — otherwise the load the server saw was lower than claimed, and latency
//! of requests never sent is not in the histogram), and at most [`MAX_ERROR_RATIO`] of the
//! requests failed.

use std::collections::BTreeMap;

use crate::analysis::stats;
use crate::artifact::{Artifact, Capacity};

/// p99 limit used when none is given: 10 ms, generous for a health check on loopback, tight
/// enough that an emulated VM reaches it well below its ceiling.
pub const DEFAULT_P99_LIMIT_MS: f64 = 10.0;
/// Fraction of the requested rate the generator must achieve for a step to count.
pub const RATE_KEPT: f64 = 0.95;
/// Share of failed requests above which a step does not count.
pub const MAX_ERROR_RATIO: f64 = 0.001;

/// One point of an environment's curve: the medians over rounds of one sweep step.
#[derive(Debug, Clone, PartialEq)]
pub struct Point {
    /// The step's fraction of the ceiling.
    pub fraction: f64,
    /// Requested rate, req/s.
    pub requested_rps: f64,
    /// Rate the generator actually started requests at, req/s.
    pub achieved_rps: f64,
    /// Median latency (corrected), ms.
    pub p50_ms: f64,
    /// 99th percentile latency (corrected), ms.
    pub p99_ms: f64,
    /// Failed requests over requests sent.
    pub error_ratio: f64,
    /// Rounds behind the point.
    pub rounds: usize,
}

/// One environment's sweep.
#[derive(Debug, Clone, PartialEq)]
pub struct Curve {
    /// The environment's name.
    pub environment: String,
    /// Index of the environment in the artifact (its color in charts).
    pub index: usize,
    /// Median of the rounds' ceilings, req/s.
    pub ceiling_rps: f64,
    /// Points by rising fraction.
    pub points: Vec<Point>,
}

/// Every environment's sweep curve, in the artifact's order; environments without sweep
/// steps are left out.
pub fn curves(artifact: &Artifact) -> Vec<Curve> {
    artifact
        .environments
        .iter()
        .enumerate()
        .filter_map(|(index, env)| {
            // Keyed by the fraction's bits: fractions come from one list, so equal steps of
            // different rounds carry bit-identical fractions.
            let mut steps: BTreeMap<u64, Vec<&crate::artifact::ScenarioRun>> = BTreeMap::new();
            let mut ceilings = Vec::new();
            for run in env.rounds.iter().flat_map(|r| &r.scenarios) {
                if let Some(step) = &run.sweep
                    && step.fraction.is_finite()
                    && step.fraction > 0.0
                {
                    steps.entry(step.fraction.to_bits()).or_default().push(run);
                    ceilings.push(step.ceiling_rps);
                }
            }
            let mut points: Vec<Point> = steps
                .into_values()
                .filter_map(|runs| {
                    let median = |f: &dyn Fn(&crate::artifact::ScenarioRun) -> f64| {
                        stats::median(&runs.iter().map(|r| f(r)).collect::<Vec<_>>())
                    };
                    let answered: Vec<_> = runs
                        .iter()
                        .filter(|r| r.load.request_latency().count > 0)
                        .copied()
                        .collect();
                    let latency = |f: fn(&crate::artifact::ScenarioRun) -> f64| {
                        stats::median(&answered.iter().map(|r| f(r)).collect::<Vec<_>>())
                    };
                    Some(Point {
                        fraction: runs[0].sweep.as_ref()?.fraction,
                        requested_rps: median(&|r| {
                            r.load
                                .requested_rate_rps
                                .unwrap_or(r.load.achieved_rate_rps)
                        })?,
                        achieved_rps: median(&|r| r.load.achieved_rate_rps)?,
                        // A step where nothing was answered has no latency: infinitely bad.
                        p50_ms: latency(|r| r.load.request_latency().p50_us / 1000.0)
                            .unwrap_or(f64::INFINITY),
                        p99_ms: latency(|r| r.load.request_latency().p99_us / 1000.0)
                            .unwrap_or(f64::INFINITY),
                        error_ratio: median(&|r| {
                            r.load.errors.total() as f64 / r.load.requests_sent.max(1) as f64
                        })?,
                        rounds: runs.len(),
                    })
                })
                .collect();
            points.sort_by(|a, b| a.fraction.total_cmp(&b.fraction));
            Some(Curve {
                environment: env.label.name.clone(),
                index,
                ceiling_rps: stats::median(&ceilings)?,
                points,
            })
        })
        .filter(|curve| !curve.points.is_empty())
        .collect()
}

/// Why a point misses the limit, `None` when it meets it.
pub fn miss_reason(point: &Point, p99_limit_ms: f64) -> Option<String> {
    if point.requested_rps > 0.0 && point.achieved_rps < RATE_KEPT * point.requested_rps {
        return Some(format!(
            "rate not kept ({:.0}% of requested)",
            point.achieved_rps / point.requested_rps * 100.0
        ));
    }
    if point.error_ratio > MAX_ERROR_RATIO {
        return Some(format!("{:.1}% errors", point.error_ratio * 100.0));
    }
    if !point.p99_ms.is_finite() {
        return Some("no successful response".into());
    }
    if point.p99_ms >= p99_limit_ms {
        return Some(format!("p99 {} ms", crate::format::number(point.p99_ms)));
    }
    None
}

/// The highest rate whose p99 stayed under `p99_limit_ms` (and every lower step's too).
pub fn capacity(curve: &Curve, p99_limit_ms: f64) -> Capacity {
    let mut capacity = Capacity {
        highest_rate_rps: None,
        first_miss_rps: None,
        first_miss_reason: None,
        rounds: 0,
    };
    for point in &curve.points {
        capacity.rounds = match capacity.rounds {
            0 => point.rounds,
            rounds => rounds.min(point.rounds),
        };
        match miss_reason(point, p99_limit_ms) {
            None => capacity.highest_rate_rps = Some(point.requested_rps),
            Some(reason) => {
                capacity.first_miss_rps = Some(point.requested_rps);
                capacity.first_miss_reason = Some(reason);
                break;
            }
        }
    }
    capacity
}

/// Capacity of every environment with a sweep, by name.
pub fn capacities(artifact: &Artifact, p99_limit_ms: f64) -> BTreeMap<String, Capacity> {
    curves(artifact)
        .iter()
        .map(|curve| (curve.environment.clone(), capacity(curve, p99_limit_ms)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::artifact::fixture;

    #[test]
    fn curves_hold_one_point_per_step_with_medians_over_rounds() {
        let curves = curves(&fixture::with_sweep());
        assert_eq!(curves.len(), 3);
        let native = &curves[0];
        assert_eq!(native.environment, "native");
        assert_eq!(native.ceiling_rps, 10_000.0);
        assert_eq!(native.points.len(), fixture::SWEEP_FRACTIONS.len());
        let half = &native.points[2];
        assert_eq!(half.fraction, 0.5);
        // Rounds' ceilings 10000, 10200, 9800 → requested 5000, 5100, 4900 → median 5000.
        assert!((half.requested_rps - 5000.0).abs() < 1e-9);
        assert!((half.p99_ms - 1.0 / 0.55).abs() < 1e-9, "{half:?}");
        assert!((half.p50_ms - half.p99_ms / 3.0).abs() < 1e-9);
        assert_eq!(half.rounds, 3);
        assert!(
            native
                .points
                .windows(2)
                .all(|w| w[0].fraction < w[1].fraction)
        );
    }

    #[test]
    fn capacity_is_the_highest_step_under_the_limit() {
        let curves = curves(&fixture::with_sweep());
        let by_env: Vec<Capacity> = curves.iter().map(|c| capacity(c, 10.0)).collect();
        // native: 0.9 → 1/0.19 = 5.3 ms passes; 1.0 → 10 ms is not under 10.
        assert!((by_env[0].highest_rate_rps.unwrap() - 9000.0).abs() < 1e-9);
        assert!((by_env[0].first_miss_rps.unwrap() - 10_000.0).abs() < 1e-9);
        assert_eq!(by_env[0].first_miss_reason.as_deref(), Some("p99 10.0 ms"));
        // container: ceiling 9000 → 8100.
        assert!((by_env[1].highest_rate_rps.unwrap() - 8100.0).abs() < 1e-9);
        // vm: 0.5 → 9.09 ms passes, 0.75 → 15.4 ms misses; ceiling 3000 → 1500.
        assert!((by_env[2].highest_rate_rps.unwrap() - 1500.0).abs() < 1e-9);
        assert_eq!(by_env[2].first_miss_reason.as_deref(), Some("p99 15.4 ms"));
        // A generous limit: every step up to the ceiling passes; past it the rate is not
        // kept (the ceiling is 1/1.1 = 91% of the requested rate).
        let generous = capacity(&curves[0], 1000.0);
        assert!((generous.highest_rate_rps.unwrap() - 10_000.0).abs() < 1e-9);
        assert_eq!(
            generous.first_miss_reason.as_deref(),
            Some("rate not kept (91% of requested)")
        );
        // A limit below every step.
        let strict = capacity(&curves[0], 0.5);
        assert_eq!(strict.highest_rate_rps, None);
    }

    #[test]
    fn a_bad_step_below_a_good_one_caps_the_capacity() {
        let mut artifact = fixture::with_sweep();
        // Errors at the 0.25 step of every native round.
        for round in &mut artifact.environments[0].rounds {
            for run in &mut round.scenarios {
                if run.sweep.as_ref().is_some_and(|s| s.fraction == 0.25) {
                    run.load.errors.status_5xx = run.load.requests_sent / 10;
                }
            }
        }
        let native = &curves(&artifact)[0];
        let capacity = capacity(native, 10.0);
        assert!((capacity.highest_rate_rps.unwrap() - 1000.0).abs() < 1e-9);
        assert_eq!(capacity.first_miss_reason.as_deref(), Some("10.0% errors"));
    }

    #[test]
    fn artifacts_without_a_sweep_have_no_curves() {
        assert!(curves(&fixture::artifact()).is_empty());
        assert!(capacities(&fixture::bench_pair(), 10.0).is_empty());
    }
}

//! Latency under load: the curves of a rate sweep and the capacity read from them.
//!
//! A sweep (wrk2's way of looking at latency: Gil Tene, "How NOT to measure latency") runs
//! open-loop load at rising rates, each a fraction of the environment's *own* measured
//! ceiling (its closed-loop `health` throughput, over the same connections), from light load
//! to past saturation, with latency measured from each request's intended send time.
//! Plotting p50 and p99 against the rate shows where each environment's latency turns up —
//! the curve capacity planners use.
//!
//! Each step is a [`ScenarioRun`] with a [`SweepStep`](crate::artifact::SweepStep). Rounds
//! may derive different rates from their own ceilings, so the grid's steps are matched
//! across rounds by fraction, and every figure of a point is the median over the rounds.
//!
//! **Capacity** ("highest rate with p99 under X ms") is read per round, from that round's
//! own steps: the highest one that meets the limit *and every lower step did too*, so one
//! lucky step past a bad one cannot inflate it. Where the grid first misses, the round has
//! bisected between that step and the last that met ([`bisect`]), so the capacity falls
//! between the grid's steps. The figure reported is the median round's (the lower middle one
//! for an even count: a rate that was measured), with the rounds behind it. A step meets
//! the limit when its p99 (all requests) is below X, the generator kept the requested rate
//! (at least [`RATE_KEPT`] of it — otherwise the load the server saw was lower than claimed,
//! and latency of requests never sent is not in the histogram), and at most
//! [`MAX_ERROR_RATIO`] of the requests failed.

use std::collections::BTreeMap;

use crate::analysis::stats;
use crate::artifact::{Capacity, EnvironmentResult, ScenarioRun};

/// p99 limit used when none is given: 10 ms, generous for a health check on loopback, tight
/// enough that an emulated VM reaches it well below its ceiling.
pub const DEFAULT_P99_LIMIT_MS: f64 = 10.0;
/// Fraction of the requested rate the generator must achieve for a step to count.
pub const RATE_KEPT: f64 = 0.95;
/// Share of failed requests above which a step does not count.
pub const MAX_ERROR_RATIO: f64 = 0.001;

/// One point of an environment's curve: the medians over rounds of one sweep step (or one
/// bisection window of one round).
#[derive(Debug, Clone, PartialEq)]
pub struct Point<'a> {
    /// The step's fraction of the ceiling.
    pub fraction: f64,
    /// Requested rate, req/s.
    pub requested_rps: f64,
    /// Rate the generator actually started requests at, req/s.
    pub achieved_rps: f64,
    /// Median latency (all requests, corrected), ms.
    pub p50_ms: f64,
    /// 99th percentile latency (all requests, corrected), ms.
    pub p99_ms: f64,
    /// 99th percentile of the answered requests from their actual send, ms: what a tool
    /// without the coordinated-omission correction reports; `None` where not recorded.
    pub uncorrected_p99_ms: Option<f64>,
    /// Failed requests over requests sent.
    pub error_ratio: f64,
    /// Connections the open loop spread its schedule over.
    pub connections: usize,
    /// The load generator's CPU use over the window, as a share of the CPUs it had.
    pub generator_cpu: f64,
    /// The service's CPU use over the window, as a share of its CPUs; `None` where not read.
    pub service_cpu: Option<f64>,
    /// The service's CPUs busy with anything over the step (the service, and whatever else
    /// ran there), as a share of them; `None` where not recorded.
    pub service_cpus_busy: Option<f64>,
    /// The service's and the generator's CPUs stolen by the hypervisor over the step, as
    /// shares of them; `None` where not recorded.
    pub stolen: Option<(f64, f64)>,
    /// Rounds behind the point.
    pub rounds: usize,
    /// For a bisection window, the round it was measured in (from 0).
    pub round: Option<u32>,
    /// The runs behind the point, for the limits their marks come from.
    pub runs: Vec<&'a ScenarioRun>,
}

/// One environment's sweep.
#[derive(Debug, Clone, PartialEq)]
pub struct Curve<'a> {
    /// The environment's name.
    pub environment: String,
    /// Index of the environment in the artifact (its color in charts).
    pub index: usize,
    /// Median of the rounds' ceilings, req/s.
    pub ceiling_rps: f64,
    /// The grid's points by rising fraction.
    pub points: Vec<Point<'a>>,
    /// The bisection windows, one point each, by round and rising fraction.
    pub bisections: Vec<Point<'a>>,
}

/// The point of `runs` (one step's, of one or more rounds) at `fraction`, on an environment
/// whose service has `service_cpus` CPUs.
fn point<'a>(
    fraction: f64,
    runs: Vec<&'a ScenarioRun>,
    service_cpus: usize,
    round: Option<u32>,
) -> Option<Point<'a>> {
    let median = |f: &dyn Fn(&ScenarioRun) -> Option<f64>| {
        stats::median(&runs.iter().filter_map(|r| f(r)).collect::<Vec<_>>())
    };
    // A step where nothing was answered has no latency: infinitely bad.
    let answered = |f: fn(&ScenarioRun) -> f64| {
        median(&|r| (r.load.request_latency().count > 0).then(|| f(r))).unwrap_or(f64::INFINITY)
    };
    Some(Point {
        fraction,
        requested_rps: median(&|r| {
            Some(
                r.load
                    .requested_rate_rps
                    .unwrap_or(r.load.achieved_rate_rps),
            )
        })?,
        achieved_rps: median(&|r| Some(r.load.achieved_rate_rps))?,
        p50_ms: answered(|r| r.load.request_latency().p50_us / 1000.0),
        p99_ms: answered(|r| r.load.request_latency().p99_us / 1000.0),
        uncorrected_p99_ms: median(&|r| {
            r.load
                .uncorrected_latency
                .as_ref()
                .filter(|l| l.count > 0)
                .map(|l| l.p99_us / 1000.0)
        }),
        error_ratio: median(&|r| {
            Some(r.load.errors.total() as f64 / r.load.requests_sent.max(1) as f64)
        })?,
        connections: runs.iter().map(|r| r.load.connections).max()?,
        generator_cpu: median(&|r| Some(r.load.generator.cpu_utilisation))?,
        service_cpu: median(&|r| {
            let capacity = r.load.elapsed_s * service_cpus as f64;
            r.service_cpu_seconds
                .filter(|_| capacity > 0.0)
                .map(|cpu| cpu / capacity)
        }),
        service_cpus_busy: median(&|r| Some(host_cpu(r)?.service_cpus_busy)),
        stolen: median(&|r| Some(host_cpu(r)?.service_cpus_stolen))
            .zip(median(&|r| Some(host_cpu(r)?.generator_cpus_stolen))),
        rounds: runs.len(),
        round,
        runs,
    })
}

fn host_cpu(run: &ScenarioRun) -> Option<&crate::artifact::HostCpuWindow> {
    run.sweep.as_ref()?.host_cpu.as_ref()
}

/// Every environment's sweep curve, in the artifact's order; environments without sweep
/// steps are left out.
pub fn curves(artifact: &crate::artifact::Artifact) -> Vec<Curve<'_>> {
    artifact
        .environments
        .iter()
        .enumerate()
        .filter_map(|(index, env)| curve(env, index))
        .collect()
}

/// The sweep curve of `env` (at `index` in its artifact), when it has sweep steps.
pub fn curve(env: &EnvironmentResult, index: usize) -> Option<Curve<'_>> {
    let service_cpus = env.label.service_cpus.len();
    // Keyed by the fraction's bits: the grid's fractions come from one list, so equal steps
    // of different rounds carry bit-identical fractions.
    let mut steps: BTreeMap<u64, Vec<&ScenarioRun>> = BTreeMap::new();
    let mut ceilings = Vec::new();
    let mut bisections = Vec::new();
    for round in &env.rounds {
        for run in &round.scenarios {
            let Some(step) = run.sweep.as_ref().filter(|s| valid_fraction(s.fraction)) else {
                continue;
            };
            if step.bisection {
                bisections.extend(point(
                    step.fraction,
                    vec![run],
                    service_cpus,
                    Some(round.round),
                ));
            } else {
                steps.entry(step.fraction.to_bits()).or_default().push(run);
                ceilings.push(step.ceiling_rps);
            }
        }
    }
    let mut points: Vec<Point> = steps
        .into_values()
        .filter_map(|runs| {
            let fraction = runs[0].sweep.as_ref()?.fraction;
            point(fraction, runs, service_cpus, None)
        })
        .collect();
    points.sort_by(|a, b| a.fraction.total_cmp(&b.fraction));
    bisections.sort_by(|a, b| {
        a.round
            .cmp(&b.round)
            .then(a.fraction.total_cmp(&b.fraction))
    });
    (!points.is_empty()).then(|| Curve {
        environment: env.label.name.clone(),
        index,
        ceiling_rps: stats::median(&ceilings).unwrap_or(0.0),
        points,
        bisections,
    })
}

fn valid_fraction(fraction: f64) -> bool {
    fraction.is_finite() && fraction > 0.0
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

/// Why one step's window missed the limit, `None` when it met it: the measurement's own
/// test of the step it has just run (the bisection's next move), the same as the capacity's.
pub fn step_miss(run: &ScenarioRun, p99_limit_ms: f64) -> Option<String> {
    let fraction = run.sweep.as_ref().map_or(1.0, |s| s.fraction);
    match point(fraction, vec![run], 1, None) {
        Some(point) => miss_reason(&point, p99_limit_ms),
        None => Some("no figures".into()),
    }
}

/// Where the next bisection window goes: halfway between the highest fraction that met the
/// limit and the lowest that missed. Each window halves the bracket, so `n` windows leave
/// it `2⁻ⁿ` of the gap between the grid's two steps.
pub fn bisect(met: f64, missed: f64) -> f64 {
    (met + missed) / 2.0
}

/// One round's capacity, read from its own steps.
#[derive(Debug, Clone, PartialEq)]
pub struct RoundCapacity<'a> {
    /// The round (from 0).
    pub round: u32,
    /// Its highest requested rate that met the limit, every lower step meeting it too.
    pub highest_rate_rps: Option<f64>,
    /// Its first step that missed, and why.
    pub first_miss: Option<(f64, String)>,
    /// The steps that met the limit, up to the capacity.
    pub met: Vec<&'a ScenarioRun>,
    /// The step that missed first.
    pub missed: Option<&'a ScenarioRun>,
}

/// Every swept round's own capacity against `p99_limit_ms`, in round order.
pub fn round_capacities(env: &EnvironmentResult, p99_limit_ms: f64) -> Vec<RoundCapacity<'_>> {
    env.rounds
        .iter()
        .filter_map(|round| {
            let mut steps: Vec<&ScenarioRun> = round
                .scenarios
                .iter()
                .filter(|run| {
                    run.sweep
                        .as_ref()
                        .is_some_and(|s| valid_fraction(s.fraction))
                })
                .collect();
            if steps.is_empty() {
                return None;
            }
            let fraction = |run: &ScenarioRun| run.sweep.as_ref().map_or(0.0, |s| s.fraction);
            steps.sort_by(|a, b| fraction(a).total_cmp(&fraction(b)));
            let mut reading = RoundCapacity {
                round: round.round,
                highest_rate_rps: None,
                first_miss: None,
                met: Vec::new(),
                missed: None,
            };
            for run in steps {
                let requested = run
                    .load
                    .requested_rate_rps
                    .unwrap_or(run.load.achieved_rate_rps);
                match step_miss(run, p99_limit_ms) {
                    None => {
                        reading.highest_rate_rps = Some(requested);
                        reading.met.push(run);
                    }
                    Some(reason) => {
                        reading.first_miss = Some((requested, reason));
                        reading.missed = Some(run);
                        break;
                    }
                }
            }
            Some(reading)
        })
        .collect()
}

/// The capacity of the median round among `rounds` (the lower middle one for an even count),
/// with the count; `None` without any. Its limits are the summary's to add.
pub fn capacity(rounds: &[RoundCapacity]) -> Option<Capacity> {
    let mut sorted: Vec<&RoundCapacity> = rounds.iter().collect();
    sorted.sort_by(|a, b| {
        let rate = |r: &RoundCapacity| r.highest_rate_rps.unwrap_or(0.0);
        rate(a).total_cmp(&rate(b))
    });
    let median = sorted.get(sorted.len().checked_sub(1)? / 2)?;
    Some(Capacity {
        highest_rate_rps: median.highest_rate_rps,
        first_miss_rps: median.first_miss.as_ref().map(|(rate, _)| *rate),
        first_miss_reason: median.first_miss.as_ref().map(|(_, reason)| reason.clone()),
        rounds: rounds.len(),
        limits: Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::artifact::fixture;

    /// Each environment's capacity against `limit`, in the artifact's order.
    fn capacities(artifact: &crate::artifact::Artifact, limit: f64) -> Vec<Capacity> {
        artifact
            .environments
            .iter()
            .filter_map(|env| capacity(&round_capacities(env, limit)))
            .collect()
    }

    #[test]
    fn curves_hold_one_point_per_step_with_medians_over_rounds() {
        let artifact = fixture::with_sweep();
        let curves = curves(&artifact);
        assert_eq!(curves.len(), 3);
        let native = &curves[0];
        assert_eq!(native.environment, "native");
        assert_eq!(native.ceiling_rps, 10_000.0);
        assert_eq!(native.points.len(), fixture::SWEEP_FRACTIONS.len());
        assert!(native.bisections.is_empty());
        let half = &native.points[2];
        assert_eq!(half.fraction, 0.5);
        // Rounds' ceilings 10000, 10200, 9800 → requested 5000, 5100, 4900 → median 5000.
        assert!((half.requested_rps - 5000.0).abs() < 1e-9);
        assert!((half.p99_ms - 1.0 / 0.55).abs() < 1e-9, "{half:?}");
        assert!((half.p50_ms - half.p99_ms / 3.0).abs() < 1e-9);
        assert_eq!((half.rounds, half.runs.len(), half.connections), (3, 3, 50));
        assert_eq!(half.generator_cpu, 0.2);
        assert!(
            native
                .points
                .windows(2)
                .all(|w| w[0].fraction < w[1].fraction)
        );
    }

    #[test]
    fn capacity_is_the_median_rounds_highest_step_under_the_limit() {
        let by_env = capacities(&fixture::with_sweep(), 10.0);
        // native: 0.9 → 1/0.19 = 5.3 ms passes; 1.0 → 10 ms is not under 10. Rounds'
        // ceilings 10000, 10200, 9800: 9000, 9180, 8820, the median round's 9000.
        assert!((by_env[0].highest_rate_rps.unwrap() - 9000.0).abs() < 1e-9);
        assert!((by_env[0].first_miss_rps.unwrap() - 10_000.0).abs() < 1e-9);
        assert_eq!(by_env[0].first_miss_reason.as_deref(), Some("p99 10.0 ms"));
        assert_eq!(by_env[0].rounds, 3);
        // container: ceiling 9000 → 8100.
        assert!((by_env[1].highest_rate_rps.unwrap() - 8100.0).abs() < 1e-9);
        // vm: 0.5 → 9.09 ms passes, 0.75 → 15.4 ms misses; ceiling 3000 → 1500.
        assert!((by_env[2].highest_rate_rps.unwrap() - 1500.0).abs() < 1e-9);
        assert_eq!(by_env[2].first_miss_reason.as_deref(), Some("p99 15.4 ms"));
        // A generous limit: every step up to the ceiling passes; past it the rate is not
        // kept (the ceiling is 1/1.1 = 91% of the requested rate).
        let generous = &capacities(&fixture::with_sweep(), 1000.0)[0];
        assert!((generous.highest_rate_rps.unwrap() - 10_000.0).abs() < 1e-9);
        assert_eq!(
            generous.first_miss_reason.as_deref(),
            Some("rate not kept (91% of requested)")
        );
        // A limit below every step.
        let strict = &capacities(&fixture::with_sweep(), 0.5)[0];
        assert_eq!(strict.highest_rate_rps, None);
        assert_eq!(strict.rounds, 3);
    }

    /// A round's bisection windows place its capacity between the grid's steps: here
    /// between 0.9 (met) and 1.0 (missed), at 0.95 (met) and 0.975 (missed).
    #[test]
    fn bisection_windows_read_the_capacity_between_the_grid_steps() {
        let mut artifact = fixture::with_sweep();
        for round in &mut artifact.environments[0].rounds {
            let ceiling = round.scenarios[0].load.throughput_rps;
            for (fraction, p99_ms) in [(0.95, 8.0), (0.975, 12.0)] {
                let mut run = round
                    .scenarios
                    .iter()
                    .find(|s| s.sweep.is_some())
                    .cloned()
                    .unwrap();
                run.load.requested_rate_rps = Some(ceiling * fraction);
                run.load.achieved_rate_rps = ceiling * fraction;
                run.load.latency.p99_us = p99_ms * 1000.0;
                run.sweep = Some(crate::artifact::SweepStep {
                    ceiling_rps: ceiling,
                    fraction,
                    bisection: true,
                    host_cpu: None,
                });
                round.scenarios.push(run);
            }
        }
        let native = &capacities(&artifact, 10.0)[0];
        assert!((native.highest_rate_rps.unwrap() - 9500.0).abs() < 1e-9);
        assert!((native.first_miss_rps.unwrap() - 9750.0).abs() < 1e-9);
        assert_eq!(native.first_miss_reason.as_deref(), Some("p99 12.0 ms"));
        // The curve keeps to the grid; the windows are listed apart, one round each.
        let curve = &curves(&artifact)[0];
        assert_eq!(curve.points.len(), fixture::SWEEP_FRACTIONS.len());
        assert_eq!(curve.bisections.len(), 6);
        assert!(curve.bisections.iter().all(|p| p.rounds == 1));
        assert_eq!(curve.bisections[0].round, Some(0));
        // The bisection halves the bracket.
        assert_eq!(bisect(0.85, 1.0), 0.925);
    }

    #[test]
    fn the_median_round_is_a_measured_one() {
        let mut artifact = fixture::with_sweep();
        // Two rounds only: the lower of the two middle ones, never their mean.
        artifact.environments[0].rounds.truncate(2);
        let native = &capacities(&artifact, 10.0)[0];
        assert!((native.highest_rate_rps.unwrap() - 9000.0).abs() < 1e-9);
        assert_eq!(native.rounds, 2);
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
        let capacity = &capacities(&artifact, 10.0)[0];
        assert!((capacity.highest_rate_rps.unwrap() - 1000.0).abs() < 1e-9);
        assert_eq!(capacity.first_miss_reason.as_deref(), Some("10.0% errors"));
    }

    #[test]
    fn artifacts_without_a_sweep_have_no_curves() {
        assert!(curves(&fixture::artifact()).is_empty());
        assert!(capacities(&fixture::bench_pair(), 10.0).is_empty());
    }
}

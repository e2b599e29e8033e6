//! The cost ladder: what each layer of isolation adds, one rung at a time.
//!
//! Every environment isobench starts carries a [`Rung`] in its label: a position from least
//! to most isolated (native → container on the host's network → container behind Docker's
//! bridge → another OCI runtime such as gVisor → VM), what the rung adds, and the rung its
//! marginal cost is taken over. [`ladder`] orders the measured environments by position and
//! computes, for startup, idle memory, throughput, p50 latency and CPU per request, each
//! rung's ratio over the rung below and over native, with the interval of
//! [`stats::ratio_estimate`] (its coverage recorded and marked when below 95%), and the
//! difference of medians in the metric's unit.
//!
//! The rung below is the label's `over` when that environment is in the run (gVisor is
//! compared with the bridge container it shares its network path with), else the nearest
//! lower rung that is.

use crate::analysis::stats;
use crate::artifact::{Artifact, EnvironmentResult, Estimate, Rung, ScenarioRun, position};

/// A figure the ladder compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LadderMetric {
    /// Start request to first 200, ms.
    Startup,
    /// Memory after startup, MiB.
    IdleMemory,
    /// Closed-loop `/health` throughput, req/s.
    Throughput,
    /// p50 latency of the open-loop scenario (closed-loop `/health` when it is absent), µs.
    P50Latency,
    /// Service CPU time per successful `/health` request, µs.
    CpuPerRequest,
}

impl LadderMetric {
    /// Every metric, in the order tables show them.
    pub const ALL: [Self; 5] = [
        Self::Startup,
        Self::IdleMemory,
        Self::Throughput,
        Self::P50Latency,
        Self::CpuPerRequest,
    ];

    /// Name in tables and sentences.
    pub fn name(self) -> &'static str {
        match self {
            Self::Startup => "startup",
            Self::IdleMemory => "idle memory",
            Self::Throughput => "throughput",
            Self::P50Latency => "p50 latency",
            Self::CpuPerRequest => "CPU per request",
        }
    }

    /// Unit of medians and differences.
    pub fn unit(self) -> &'static str {
        match self {
            Self::Startup => "ms",
            Self::IdleMemory => "MiB",
            Self::Throughput => "req/s",
            Self::P50Latency | Self::CpuPerRequest => "µs",
        }
    }

    /// Whether more is better.
    pub fn higher_is_better(self) -> bool {
        self == Self::Throughput
    }

    /// One sample per round of `env`.
    pub fn samples(self, env: &EnvironmentResult) -> Vec<f64> {
        let rounds = env.rounds.iter();
        match self {
            Self::Startup => rounds.filter_map(|r| r.startup_ms).collect(),
            Self::IdleMemory => rounds
                .filter_map(|r| r.idle_memory_bytes)
                .map(|b| b as f64 / (1024.0 * 1024.0))
                .collect(),
            Self::Throughput => scenario_samples(env, &["health"], |s| {
                (s.load.ok > 0).then_some(s.load.throughput_rps)
            }),
            Self::P50Latency => scenario_samples(env, &["fixed-rate", "health"], |s| {
                (s.load.request_latency().count > 0).then_some(s.load.request_latency().p50_us)
            }),
            Self::CpuPerRequest => scenario_samples(env, &["health"], |s| {
                let cpu = s.service_cpu_seconds?;
                (s.load.ok > 0).then(|| cpu / s.load.ok as f64 * 1e6)
            }),
        }
    }
}

/// Samples of the first scenario in `preferred` that `env` ran.
fn scenario_samples(
    env: &EnvironmentResult,
    preferred: &[&str],
    read: fn(&ScenarioRun) -> Option<f64>,
) -> Vec<f64> {
    preferred
        .iter()
        .map(|scenario| {
            env.rounds
                .iter()
                .flat_map(|r| &r.scenarios)
                .filter(|s| s.scenario == *scenario)
                .filter_map(read)
                .collect::<Vec<f64>>()
        })
        .find(|samples| !samples.is_empty())
        .unwrap_or_default()
}

/// The measured rungs, least isolated first.
#[derive(Debug, Clone, PartialEq)]
pub struct Ladder {
    /// One step per environment with a rung.
    pub steps: Vec<Step>,
}

/// One rung of the ladder as measured.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    /// The environment's name.
    pub env: String,
    /// Its position on the ladder.
    pub position: u32,
    /// What it adds over `below`.
    pub adds: String,
    /// The environment its marginal cost is taken over; `None` for the bottom rung.
    pub below: Option<String>,
    /// One cost per [`LadderMetric::ALL`], in that order.
    pub costs: Vec<Cost>,
}

/// One metric of one rung.
#[derive(Debug, Clone, PartialEq)]
pub struct Cost {
    /// Which metric.
    pub metric: LadderMetric,
    /// The rung's median and interval, when it has samples.
    pub value: Option<Estimate>,
    /// Median minus the rung below's median, in the metric's unit.
    pub delta_over_below: Option<f64>,
    /// Ratio to the rung below, with its interval.
    pub ratio_over_below: Option<Estimate>,
    /// Ratio to native, with its interval.
    pub ratio_over_native: Option<Estimate>,
}

impl Step {
    /// This step's cost in `metric`.
    pub fn cost(&self, metric: LadderMetric) -> Option<&Cost> {
        self.costs.iter().find(|c| c.metric == metric)
    }
}

/// The ladder of `artifact`'s environments that carry a rung; `None` with fewer than two.
pub fn ladder(artifact: &Artifact) -> Option<Ladder> {
    let mut rungs: Vec<(&EnvironmentResult, &Rung)> = artifact
        .environments
        .iter()
        .filter_map(|env| Some((env, env.label.rung.as_ref()?)))
        .collect();
    if rungs.len() < 2 {
        return None;
    }
    rungs.sort_by(|a, b| (a.1.position, &a.0.label.name).cmp(&(b.1.position, &b.0.label.name)));
    let native = rungs
        .iter()
        .find(|(env, rung)| rung.position == position::NATIVE || env.label.name == "native")
        .map(|(env, _)| *env);
    let steps = rungs
        .iter()
        .enumerate()
        .map(|(index, (env, rung))| {
            let below = below(&rungs, index);
            let costs = LadderMetric::ALL
                .iter()
                .map(|&metric| cost(metric, env, below, native))
                .collect();
            Step {
                env: env.label.name.clone(),
                position: rung.position,
                adds: rung.adds.clone(),
                below: below.map(|b| b.label.name.clone()),
                costs,
            }
        })
        .collect();
    Some(Ladder { steps })
}

/// The rung `rungs[index]` is compared with: its `over` when measured, else the nearest
/// rung at a lower position.
fn below<'a>(
    rungs: &[(&'a EnvironmentResult, &Rung)],
    index: usize,
) -> Option<&'a EnvironmentResult> {
    let (_, rung) = rungs[index];
    let named = rung.over.as_deref().and_then(|over| {
        rungs
            .iter()
            .find(|(env, _)| env.label.name == over)
            .map(|(env, _)| *env)
    });
    named.or_else(|| {
        rungs[..index]
            .iter()
            .rev()
            .find(|(_, lower)| lower.position < rung.position)
            .map(|(env, _)| *env)
    })
}

fn cost(
    metric: LadderMetric,
    env: &EnvironmentResult,
    below: Option<&EnvironmentResult>,
    native: Option<&EnvironmentResult>,
) -> Cost {
    let samples = metric.samples(env);
    let value = stats::median_estimate(&samples);
    let below_samples = below.map(|b| metric.samples(b)).unwrap_or_default();
    let delta_over_below = value
        .as_ref()
        .zip(stats::median(&below_samples))
        .map(|(v, b)| v.median - b);
    let ratio_over_below = stats::ratio_estimate(&samples, &below_samples);
    let ratio_over_native = match native {
        Some(native) if native.label.name != env.label.name => {
            stats::ratio_estimate(&samples, &metric.samples(native))
        }
        _ => None,
    };
    Cost {
        metric,
        value,
        delta_over_below,
        ratio_over_below,
        ratio_over_native,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::artifact::fixture;

    #[test]
    fn rungs_are_ordered_and_compared_with_the_rung_below() {
        let ladder = ladder(&fixture::laddered()).expect("three rungs");
        let names: Vec<(&str, Option<&str>)> = ladder
            .steps
            .iter()
            .map(|s| (s.env.as_str(), s.below.as_deref()))
            .collect();
        assert_eq!(
            names,
            vec![
                ("native", None),
                ("container", Some("native")),
                ("vm", Some("container"))
            ]
        );
    }

    #[test]
    fn costs_are_ratios_of_medians_and_differences() {
        let artifact = fixture::laddered();
        let ladder = ladder(&artifact).unwrap();
        let container = &ladder.steps[1];
        let vm = &ladder.steps[2];
        for metric in LadderMetric::ALL {
            let (c, n, v) = (
                stats::median(&metric.samples(&artifact.environments[1])),
                stats::median(&metric.samples(&artifact.environments[0])),
                stats::median(&metric.samples(&artifact.environments[2])),
            );
            let (Some(c), Some(n), Some(v)) = (c, n, v) else {
                continue;
            };
            let over_native = container.cost(metric).unwrap().ratio_over_native.as_ref();
            assert!(
                (over_native.unwrap().median - c / n).abs() < 1e-9,
                "{metric:?}"
            );
            let vm_cost = vm.cost(metric).unwrap();
            assert!((vm_cost.ratio_over_below.as_ref().unwrap().median - v / c).abs() < 1e-9);
            assert!((vm_cost.delta_over_below.unwrap() - (v - c)).abs() < 1e-9);
            assert!((vm_cost.ratio_over_native.as_ref().unwrap().median - v / n).abs() < 1e-9);
        }
        // The bottom rung has no rung below and no ratio to itself.
        let native = ladder.steps[0].cost(LadderMetric::Startup).unwrap();
        assert!(native.ratio_over_below.is_none() && native.ratio_over_native.is_none());
    }

    #[test]
    fn a_missing_named_rung_falls_back_to_the_nearest_lower_one() {
        let mut artifact = fixture::laddered();
        artifact.environments[2].label.rung.as_mut().unwrap().over = Some("gvisor".into());
        let ladder = ladder(&artifact).unwrap();
        assert_eq!(ladder.steps[2].below.as_deref(), Some("container"));
    }

    #[test]
    fn fewer_than_two_rungs_make_no_ladder() {
        let mut artifact = fixture::laddered();
        artifact.environments.truncate(1);
        assert!(ladder(&artifact).is_none());
        assert!(
            ladder(&fixture::artifact()).is_none(),
            "no rungs, no ladder"
        );
    }
}

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

use crate::analysis::{stats, summarize};
use crate::artifact::{Artifact, EnvironmentResult, Estimate, Limit, Rung, ScenarioRun, position};

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
    /// Closed-loop `/syscalls?n=1000` throughput, req/s.
    SyscallsThroughput,
    /// Service CPU time per system call in the `syscalls` scenario, ns: a request's CPU over
    /// its 1000 calls (its HTTP handling included, a thousandth of it per call).
    CpuPerSyscall,
    /// Closed-loop `/files?kb=64&fsync=true` throughput, req/s.
    FilesThroughput,
    /// Closed-loop `/files?kb=64&fsync=false` throughput, req/s.
    FilesNoFsyncThroughput,
}

/// System calls a `syscalls` scenario request makes (`Scenario::syscalls`).
const CALLS_PER_SYSCALLS_REQUEST: f64 = 1000.0;

impl LadderMetric {
    /// Every metric, in the order tables show them.
    pub const ALL: [Self; 9] = [
        Self::Startup,
        Self::IdleMemory,
        Self::Throughput,
        Self::P50Latency,
        Self::CpuPerRequest,
        Self::SyscallsThroughput,
        Self::CpuPerSyscall,
        Self::FilesThroughput,
        Self::FilesNoFsyncThroughput,
    ];

    /// Name in tables and sentences.
    pub fn name(self) -> &'static str {
        match self {
            Self::Startup => "startup",
            Self::IdleMemory => "idle memory",
            Self::Throughput => "throughput",
            Self::P50Latency => "p50 latency",
            Self::CpuPerRequest => "CPU per request",
            Self::SyscallsThroughput => "syscalls throughput",
            Self::CpuPerSyscall => "CPU per system call",
            Self::FilesThroughput => "files throughput (fsync)",
            Self::FilesNoFsyncThroughput => "files throughput (no fsync)",
        }
    }

    /// Unit of medians and differences.
    pub fn unit(self) -> &'static str {
        match self {
            Self::Startup => "ms",
            Self::IdleMemory => "MiB",
            Self::Throughput
            | Self::SyscallsThroughput
            | Self::FilesThroughput
            | Self::FilesNoFsyncThroughput => "req/s",
            Self::P50Latency | Self::CpuPerRequest => "µs",
            Self::CpuPerSyscall => "ns",
        }
    }

    /// Whether more is better.
    pub fn higher_is_better(self) -> bool {
        matches!(
            self,
            Self::Throughput
                | Self::SyscallsThroughput
                | Self::FilesThroughput
                | Self::FilesNoFsyncThroughput
        )
    }

    /// The scenario a scenario metric is read from (`p50` from `p50_scenario`, the same for
    /// every rung); `None` for startup and idle memory.
    pub fn scenario(self, p50_scenario: &'static str) -> Option<&'static str> {
        match self {
            Self::Startup | Self::IdleMemory => None,
            Self::Throughput | Self::CpuPerRequest => Some("health"),
            Self::P50Latency => Some(p50_scenario),
            Self::SyscallsThroughput | Self::CpuPerSyscall => Some("syscalls"),
            Self::FilesThroughput => Some("files"),
            Self::FilesNoFsyncThroughput => Some("files-nofsync"),
        }
    }

    /// One sample per round of `env`.
    pub fn samples(self, env: &EnvironmentResult, p50_scenario: &'static str) -> Vec<f64> {
        let rounds = env.rounds.iter();
        let read: fn(&ScenarioRun) -> Option<f64> = match self {
            Self::Startup => return rounds.filter_map(|r| r.startup_ms).collect(),
            Self::IdleMemory => {
                return rounds
                    .filter_map(|r| r.idle_memory_bytes)
                    .map(|b| b as f64 / (1024.0 * 1024.0))
                    .collect();
            }
            Self::Throughput
            | Self::SyscallsThroughput
            | Self::FilesThroughput
            | Self::FilesNoFsyncThroughput => |s| (s.load.ok > 0).then_some(s.load.throughput_rps),
            Self::P50Latency => {
                |s| (s.load.request_latency().count > 0).then_some(s.load.request_latency().p50_us)
            }
            Self::CpuPerRequest => |s| {
                let cpu = s.service_cpu_seconds?;
                (s.load.ok > 0).then(|| cpu / s.load.ok as f64 * 1e6)
            },
            Self::CpuPerSyscall => |s| {
                let cpu = s.service_cpu_seconds?;
                (s.load.ok > 0).then(|| cpu / s.load.ok as f64 / CALLS_PER_SYSCALLS_REQUEST * 1e9)
            },
        };
        scenario_runs(env, self.scenario(p50_scenario))
            .filter_map(read)
            .collect()
    }

    /// What limited the runs behind this metric in `env` (the load generator, an unkept rate,
    /// failed requests), as the summary's cells carry them.
    fn limits(self, env: &EnvironmentResult, p50_scenario: &'static str) -> Vec<Limit> {
        match self.scenario(p50_scenario) {
            None => Vec::new(),
            scenario => summarize::scenario_limits(
                scenario_runs(env, scenario),
                env.label.service_cpus.len(),
            ),
        }
    }
}

/// The measured (not swept) runs of `scenario` in `env`.
fn scenario_runs<'a>(
    env: &'a EnvironmentResult,
    scenario: Option<&'a str>,
) -> impl Iterator<Item = &'a ScenarioRun> {
    env.rounds
        .iter()
        .flat_map(|r| &r.scenarios)
        .filter(move |s| Some(s.scenario.as_str()) == scenario && s.sweep.is_none())
}

/// The limits of a ratio: those of either side, each kind once.
fn merged(mut limits: Vec<Limit>, other: Vec<Limit>) -> Vec<Limit> {
    for limit in other {
        if !limits.iter().any(|l| l.kind == limit.kind) {
            limits.push(limit);
        }
    }
    limits
}

/// The measured rungs, least isolated first.
#[derive(Debug, Clone, PartialEq)]
pub struct Ladder {
    /// One step per environment with a rung.
    pub steps: Vec<Step>,
    /// The metrics some rung has a figure for, in [`LadderMetric::ALL`]'s order: the
    /// workload scenarios' only when they ran.
    pub metrics: Vec<LadderMetric>,
    /// The scenario every rung's p50 comes from: `fixed-rate` when every rung ran it, else
    /// `health`.
    pub p50_scenario: &'static str,
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
    // One scenario for every rung's p50: the open loop's, when every rung ran it.
    let p50_scenario = if rungs.iter().all(|(env, _)| {
        !LadderMetric::P50Latency
            .samples(env, "fixed-rate")
            .is_empty()
    }) {
        "fixed-rate"
    } else {
        "health"
    };
    let steps: Vec<Step> = rungs
        .iter()
        .enumerate()
        .map(|(index, (env, rung))| {
            let below = below(&rungs, index);
            let costs = LadderMetric::ALL
                .iter()
                .map(|&metric| cost(metric, p50_scenario, env, below, native))
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
    let metrics = LadderMetric::ALL
        .into_iter()
        .filter(|&metric| {
            steps
                .iter()
                .any(|step: &Step| step.cost(metric).is_some_and(|c| c.value.is_some()))
        })
        .collect();
    Some(Ladder {
        steps,
        metrics,
        p50_scenario,
    })
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
    p50_scenario: &'static str,
    env: &EnvironmentResult,
    below: Option<&EnvironmentResult>,
    native: Option<&EnvironmentResult>,
) -> Cost {
    let samples = metric.samples(env, p50_scenario);
    let limits = metric.limits(env, p50_scenario);
    let value = stats::median_estimate(&samples).map(|mut value| {
        value.limits = limits.clone();
        value
    });
    let below_samples = below
        .map(|b| metric.samples(b, p50_scenario))
        .unwrap_or_default();
    let delta_over_below = value
        .as_ref()
        .zip(stats::median(&below_samples))
        .map(|(v, b)| v.median - b);
    let ratio_with = |other: &EnvironmentResult, other_samples: &[f64]| {
        stats::ratio_estimate(&samples, other_samples).map(|mut ratio| {
            ratio.limits = merged(limits.clone(), metric.limits(other, p50_scenario));
            ratio
        })
    };
    let ratio_over_below = below.and_then(|b| ratio_with(b, &below_samples));
    let ratio_over_native = match native {
        Some(native) if native.label.name != env.label.name => {
            ratio_with(native, &metric.samples(native, p50_scenario))
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

    /// Every rung's p50 comes from one scenario: the open loop's only when every rung ran it.
    #[test]
    fn p50_comes_from_one_scenario_for_every_rung() {
        let mut artifact = fixture::laddered();
        let scenarios: Vec<String> = artifact.environments[0].rounds[0]
            .scenarios
            .iter()
            .map(|s| s.scenario.clone())
            .collect();
        assert!(scenarios.iter().any(|s| s == "fixed-rate"), "{scenarios:?}");
        assert_eq!(ladder(&artifact).unwrap().p50_scenario, "fixed-rate");
        for round in &mut artifact.environments[2].rounds {
            round.scenarios.retain(|s| s.scenario != "fixed-rate");
        }
        let ladder = ladder(&artifact).unwrap();
        assert_eq!(ladder.p50_scenario, "health");
        let native_p50 = ladder.steps[0].cost(LadderMetric::P50Latency).unwrap();
        let health: Vec<f64> = artifact.environments[0]
            .rounds
            .iter()
            .flat_map(|r| &r.scenarios)
            .filter(|s| s.scenario == "health")
            .map(|s| s.load.request_latency().p50_us)
            .collect();
        assert_eq!(
            native_p50.value.as_ref().unwrap().median,
            stats::median(&health).unwrap()
        );
    }

    /// A cell the load generator limited carries the mark, in its value and in every ratio
    /// it takes part in.
    #[test]
    fn limited_cells_carry_their_limits() {
        let mut artifact = fixture::laddered();
        for round in &mut artifact.environments[1].rounds {
            for run in &mut round.scenarios {
                if run.scenario == "health" {
                    run.load.generator.bottleneck = true;
                    run.service_cpu_seconds = Some(0.0);
                }
            }
        }
        let ladder = ladder(&artifact).unwrap();
        let generator = |e: &Estimate| {
            e.limits
                .iter()
                .any(|l| l.kind == crate::artifact::LimitKind::GeneratorSaturated)
        };
        let container = ladder.steps[1].cost(LadderMetric::Throughput).unwrap();
        assert!(
            generator(container.value.as_ref().unwrap()),
            "{container:?}"
        );
        assert!(generator(container.ratio_over_below.as_ref().unwrap()));
        let vm = ladder.steps[2].cost(LadderMetric::Throughput).unwrap();
        assert!(
            generator(vm.ratio_over_below.as_ref().unwrap()),
            "over the container"
        );
        assert!(
            !generator(vm.ratio_over_native.as_ref().unwrap()),
            "over native"
        );
        let startup = ladder.steps[1].cost(LadderMetric::Startup).unwrap();
        assert!(startup.value.as_ref().unwrap().limits.is_empty());
    }

    #[test]
    fn costs_are_ratios_of_medians_and_differences() {
        let artifact = fixture::laddered();
        let ladder = ladder(&artifact).unwrap();
        let container = &ladder.steps[1];
        let vm = &ladder.steps[2];
        for metric in LadderMetric::ALL {
            let (c, n, v) = (
                stats::median(&metric.samples(&artifact.environments[1], ladder.p50_scenario)),
                stats::median(&metric.samples(&artifact.environments[0], ladder.p50_scenario)),
                stats::median(&metric.samples(&artifact.environments[2], ladder.p50_scenario)),
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

//! From raw rounds to one row per metric: each environment's median with its interval, the
//! ratio to the baseline, and the seed report's container-vs-VM improvement column.
//!
//! Each round (a fresh instance) contributes one sample per metric, so intervals describe
//! the spread between instances, which is what a reader comparing environments needs; the
//! latency percentiles inside one round are already summaries of thousands of requests.
//! Methods are in [`crate::analysis::stats`].

use std::collections::BTreeMap;

use crate::analysis::{stats, sweep};
use crate::artifact::load::SATURATED;
use crate::artifact::{
    Artifact, Capacity, EnvKind, EnvironmentResult, Estimate, Limit, LimitKind, ScenarioRun, Side,
    Summary, SummaryRow,
};

const MIB: f64 = 1024.0 * 1024.0;

/// An open loop whose achieved rate falls more than this fraction below the requested one did
/// not keep its rate. The generator schedules exactly `rate × window` requests, so a kept
/// schedule is within rounding; 2% leaves room for the window's end being the last answer.
pub const RATE_TOLERANCE: f64 = 0.02;

/// Summarizes with the default baseline ([`default_baseline`]).
pub fn summarize(artifact: &Artifact) -> Summary {
    summarize_with_baseline(artifact, None)
}

/// What a summary is taken against.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Options {
    /// The environment ratios are taken against; `None` (or a name the artifact does not
    /// have) for [`default_baseline`].
    pub baseline: Option<String>,
    /// The p99 limit a latency sweep's capacity is read against, in ms;
    /// [`sweep::DEFAULT_P99_LIMIT_MS`] when `None`.
    pub p99_limit_ms: Option<f64>,
}

/// Summarizes with the named baseline, or the default one when `baseline` is `None` or names
/// no environment of the artifact.
pub fn summarize_with_baseline(artifact: &Artifact, baseline: Option<&str>) -> Summary {
    summarize_with(
        artifact,
        &Options {
            baseline: baseline.map(str::to_owned),
            p99_limit_ms: None,
        },
    )
}

/// Summarizes with `options`.
pub fn summarize_with(artifact: &Artifact, options: &Options) -> Summary {
    let baseline = options
        .baseline
        .as_deref()
        .filter(|name| artifact.environments.iter().any(|e| e.label.name == *name))
        .map(str::to_owned)
        .or_else(|| default_baseline(artifact));
    let pair = container_vm_pair(artifact);

    let mut rows = Vec::new();
    for metric in metrics(artifact) {
        let samples: Vec<(&str, Vec<f64>, bool)> = artifact
            .environments
            .iter()
            .map(|env| {
                let (values, exact) = metric.samples(env);
                (env.label.name.as_str(), values, exact)
            })
            .collect();
        let limits: BTreeMap<&str, Vec<Limit>> = artifact
            .environments
            .iter()
            .map(|env| (env.label.name.as_str(), metric.limits(env)))
            .collect();
        let mut estimates = BTreeMap::new();
        for (name, values, exact) in &samples {
            let estimate = match (exact, values.as_slice()) {
                (true, [value]) => Some(stats::exact(*value)),
                _ => stats::median_estimate(values),
            };
            if let Some(mut estimate) = estimate {
                estimate.limits = limits.get(name).cloned().unwrap_or_default();
                estimates.insert((*name).to_owned(), estimate);
            }
        }
        if estimates.is_empty() {
            continue;
        }
        let mut ratio_to_baseline = BTreeMap::new();
        // An open loop's throughput is the rate it was asked for: a ratio of two set-points
        // says nothing about the environments.
        let comparable = !metric.set_point;
        if let Some(base) = baseline.as_ref().filter(|_| comparable) {
            let base_sample = samples.iter().find(|(name, ..)| name == base);
            for (name, values, exact) in &samples {
                if name == base {
                    continue;
                }
                // The ratio of two exact values (image sizes) is exact too; resampling single
                // values would only make it look noisy.
                let ratio = match (base_sample, values.as_slice()) {
                    (Some((_, base_values, true)), [value]) if *exact => match base_values[..] {
                        [base_value] if base_value > 0.0 => Some(stats::exact(value / base_value)),
                        _ => None,
                    },
                    (Some((_, base_values, _)), _) => stats::ratio_estimate(values, base_values),
                    (None, _) => None,
                };
                if let Some(mut ratio) = ratio {
                    ratio.limits = ratio_limits(&limits, name, base);
                    ratio_to_baseline.insert((*name).to_owned(), ratio);
                }
            }
        }
        let container_vs_vm_improvement_pct =
            pair.as_ref()
                .filter(|_| comparable)
                .and_then(|(container, vm)| {
                    let c = estimates.get(container)?.median;
                    let v = estimates.get(vm)?.median;
                    improvement_pct(c, v, metric.higher_is_better)
                });
        rows.push(SummaryRow {
            metric: metric.name,
            unit: metric.unit.to_owned(),
            higher_is_better: metric.higher_is_better,
            set_point: metric.set_point,
            estimates,
            ratio_to_baseline,
            container_vs_vm_improvement_pct,
        });
    }
    let limit = options.p99_limit_ms.unwrap_or(sweep::DEFAULT_P99_LIMIT_MS);
    let capacity = capacities(artifact, limit);
    Summary {
        method: stats::method_description(),
        baseline,
        rows,
        p99_limit_ms: (!capacity.is_empty()).then_some(limit),
        capacity,
    }
}

/// Every swept environment's latency-under-load capacity against `p99_limit_ms`, by name,
/// with the limits of the steps it stands on ([`capacity_limits`]).
pub fn capacities(artifact: &Artifact, p99_limit_ms: f64) -> BTreeMap<String, Capacity> {
    artifact
        .environments
        .iter()
        .filter_map(|env| {
            let rounds = sweep::round_capacities(env, p99_limit_ms);
            let mut capacity = sweep::capacity(&rounds)?;
            capacity.limits = capacity_limits(&rounds, env.label.service_cpus.len());
            Some((env.label.name.clone(), capacity))
        })
        .collect()
}

/// What limited a capacity, counted in rounds: whatever limited the steps that met the p99
/// limit (a saturated generator, a few errors below the sweep's threshold), and the load
/// generator's part in the first miss (saturated, or behind its schedule because it was).
/// The service's own part in the miss — its p99, its errors, a rate it could not keep — is
/// the finding the capacity reports, worded in its reason, not a mark.
pub fn capacity_limits(rounds: &[sweep::RoundCapacity], service_cpus: usize) -> Vec<Limit> {
    let mut found: BTreeMap<LimitKind, (usize, Side)> = BTreeMap::new();
    for round in rounds {
        let met = scenario_limits(round.met.iter().copied(), service_cpus);
        let missed = scenario_limits(round.missed, service_cpus)
            .into_iter()
            .filter(|limit| limit.bottleneck == Side::Generator);
        let mut kinds: BTreeMap<LimitKind, Side> = BTreeMap::new();
        for limit in met.into_iter().chain(missed) {
            let side = kinds.entry(limit.kind).or_insert(limit.bottleneck);
            if limit.bottleneck == Side::Generator {
                *side = Side::Generator;
            }
        }
        for (kind, side) in kinds {
            let entry = found.entry(kind).or_insert((0, side));
            entry.0 += 1;
            if side == Side::Generator {
                entry.1 = Side::Generator;
            }
        }
    }
    found
        .into_iter()
        .map(|(kind, (rounds, bottleneck))| Limit {
            kind,
            rounds,
            bottleneck,
        })
        .collect()
}

/// The environment ratios are taken against: the one named `native`, else the first native
/// one, else the first one.
pub fn default_baseline(artifact: &Artifact) -> Option<String> {
    let envs = &artifact.environments;
    envs.iter()
        .find(|e| e.label.name == "native")
        .or_else(|| envs.iter().find(|e| e.label.kind == EnvKind::Native))
        .or_else(|| envs.first())
        .map(|e| e.label.name.clone())
}

/// The (container, VM) environments the improvement column compares: the first of each kind.
/// A service isobench did not start (`bench --url`) counts by the kind it detected itself.
pub fn container_vm_pair(artifact: &Artifact) -> Option<(String, String)> {
    let find = |kind: EnvKind, detected: &str| {
        artifact
            .environments
            .iter()
            .find(|e| {
                e.label.kind == kind
                    || (e.label.kind == EnvKind::External
                        && e.label.detected.as_deref() == Some(detected))
            })
            .map(|e| e.label.name.clone())
    };
    Some((
        find(EnvKind::Container, "container")?,
        find(EnvKind::Vm, "vm")?,
    ))
}

/// The seed's improvement: how much better the container is than the VM, in percent of the
/// VM's figure (positive = container better). `None` when the VM's figure is zero.
pub fn improvement_pct(container: f64, vm: f64, higher_is_better: bool) -> Option<f64> {
    if vm == 0.0 {
        return None;
    }
    let better_by = if higher_is_better {
        container - vm
    } else {
        vm - container
    };
    Some(better_by / vm * 100.0)
}

/// Scenario names in order of first appearance across all environments and rounds; the
/// steps of a latency sweep are not scenarios of their own (see [`sweep`]).
pub fn scenario_names(artifact: &Artifact) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    let runs = artifact
        .environments
        .iter()
        .flat_map(|e| &e.rounds)
        .flat_map(|r| &r.scenarios)
        .filter(|s| s.sweep.is_none());
    for run in runs {
        if !names.contains(&run.scenario) {
            names.push(run.scenario.clone());
        }
    }
    names
}

/// The per-round samples behind `metric` (a summary row's name) for one environment, and
/// whether they are exact (measured once, no spread); `None` when the artifact has no such
/// metric. This is what [`summarize`] reduced to an estimate, for comparisons of two runs.
pub fn samples(
    artifact: &Artifact,
    metric: &str,
    env: &EnvironmentResult,
) -> Option<(Vec<f64>, bool)> {
    metrics(artifact)
        .into_iter()
        .find(|m| m.name == metric)
        .map(|m| m.samples(env))
}

/// A ratio's limits: the environment's own, then the baseline's of any other kind (a
/// saturated generator against the baseline compromises the ratio as much).
fn ratio_limits(limits: &BTreeMap<&str, Vec<Limit>>, name: &str, base: &str) -> Vec<Limit> {
    let mut merged = limits.get(name).cloned().unwrap_or_default();
    for limit in limits.get(base).into_iter().flatten() {
        if !merged.iter().any(|l| l.kind == limit.kind) {
            merged.push(limit.clone());
        }
    }
    merged
}

/// Whether the service used at least [`SATURATED`] of its `service_cpus` CPUs over the run's
/// measured window (never when its CPU time was not read).
pub fn service_saturated(run: &ScenarioRun, service_cpus: usize) -> bool {
    let capacity = run.load.elapsed_s * service_cpus as f64;
    run.service_cpu_seconds
        .is_some_and(|cpu| capacity > 0.0 && cpu / capacity >= SATURATED)
}

/// What limited a scenario's runs: generator saturation, an open loop behind its schedule,
/// failed requests, an unsteady window (a warm-up left in, a stall, drift); each with the
/// rounds it happened in and the side it points at.
///
/// A saturated generator limits a run only while the service, on its `service_cpus` CPUs,
/// still had CPU to spare. When both were saturated, more CPU for the generator could not
/// have raised the figure: the service was already using all of its own, so the figure is
/// the service's at its CPU budget. (On loopback the two split the network stack's work, so
/// at a cheap endpoint both saturate together, with wrk as much as with isobench.)
pub fn scenario_limits<'a>(
    runs: impl IntoIterator<Item = &'a ScenarioRun>,
    service_cpus: usize,
) -> Vec<Limit> {
    let (mut saturated, mut both, mut behind, mut behind_and_saturated, mut failed) =
        (0, 0, 0, 0, 0);
    let (mut warming, mut stalled, mut drifted) = (0, 0, 0);
    for run in runs {
        if let Some(steadiness) = run.load.series.as_ref().map(|s| &s.steadiness) {
            warming += usize::from(steadiness.warming_up);
            stalled += usize::from(!steadiness.stalls.is_empty());
            drifted += usize::from(steadiness.drifted);
        }
        let load = &run.load;
        let service_full = service_saturated(run, service_cpus);
        let is_saturated = load.generator.bottleneck && !service_full;
        both += usize::from(load.generator.bottleneck && service_full);
        let is_behind = load.open_loop
            && load
                .requested_rate_rps
                .is_some_and(|rate| load.achieved_rate_rps < rate * (1.0 - RATE_TOLERANCE));
        saturated += usize::from(is_saturated);
        behind += usize::from(is_behind);
        behind_and_saturated += usize::from(is_behind && is_saturated);
        failed += usize::from(load.errors.total() > 0);
    }
    let mut limits = Vec::new();
    if saturated > 0 {
        limits.push(Limit {
            kind: LimitKind::GeneratorSaturated,
            rounds: saturated,
            bottleneck: Side::Generator,
        });
    }
    if both > 0 {
        limits.push(Limit {
            kind: LimitKind::BothSaturated,
            rounds: both,
            bottleneck: Side::Service,
        });
    }
    if behind > 0 {
        limits.push(Limit {
            kind: LimitKind::RateNotKept,
            rounds: behind,
            bottleneck: if behind_and_saturated > 0 {
                Side::Generator
            } else {
                Side::Service
            },
        });
    }
    if failed > 0 {
        limits.push(Limit {
            kind: LimitKind::Errors,
            rounds: failed,
            bottleneck: Side::Service,
        });
    }
    // What the window's own series found; the service's side, or the machine it runs on.
    for (kind, rounds) in [
        (LimitKind::WarmingUp, warming),
        (LimitKind::Stalled, stalled),
        (LimitKind::Drifted, drifted),
    ] {
        if rounds > 0 {
            limits.push(Limit {
                kind,
                rounds,
                bottleneck: Side::Service,
            });
        }
    }
    limits
}

/// Whether an estimate carries a limit of `kind`.
pub fn is_limited(estimate: &Estimate, kind: LimitKind) -> bool {
    estimate.limits.iter().any(|limit| limit.kind == kind)
}

/// One row's definition: how to read its samples from an environment.
struct Metric {
    name: String,
    unit: &'static str,
    higher_is_better: bool,
    source: Source,
    /// The figure is an input the plan set (an open loop's rate), not a measurement.
    set_point: bool,
}

enum Source {
    Startup,
    IdleMemory,
    PeakMemory,
    ScenarioPeakMemory(String),
    ImageSize,
    Scenario(String, Reader),
}

/// Reads one sample from a scenario run, `None` when the run has no such figure.
type Reader = fn(&ScenarioRun) -> Option<f64>;

impl Metric {
    fn new(name: impl Into<String>, unit: &'static str, higher: bool, source: Source) -> Self {
        Self {
            name: name.into(),
            unit,
            higher_is_better: higher,
            source,
            set_point: false,
        }
    }

    /// What limited the runs behind this metric in `env` (scenario metrics only).
    fn limits(&self, env: &EnvironmentResult) -> Vec<Limit> {
        let scenario = match &self.source {
            Source::Scenario(scenario, _) | Source::ScenarioPeakMemory(scenario) => scenario,
            _ => return Vec::new(),
        };
        let runs = env
            .rounds
            .iter()
            .flat_map(|r| &r.scenarios)
            .filter(|s| &s.scenario == scenario);
        // The errors row keeps its errors mark too: a gate on it must see that requests failed.
        scenario_limits(runs, env.label.service_cpus.len())
    }

    /// The samples, one per round, and whether the value is exact (measured once, no spread).
    fn samples(&self, env: &EnvironmentResult) -> (Vec<f64>, bool) {
        let rounds = env.rounds.iter();
        let values = match &self.source {
            Source::Startup => rounds.filter_map(|r| r.startup_ms).collect(),
            Source::IdleMemory => rounds
                .filter_map(|r| r.idle_memory_bytes)
                .map(|b| b as f64 / MIB)
                .collect(),
            Source::ScenarioPeakMemory(scenario) => rounds
                .flat_map(|r| &r.scenarios)
                .filter(|s| &s.scenario == scenario)
                .filter_map(|s| s.peak_memory_bytes)
                .map(|b| b as f64 / MIB)
                .collect(),
            // The round's peak is the highest of its scenarios' window peaks; sweep steps (on
            // request, past the ceiling) stay out, so the row means the same with or without
            // `--no-sweep`.
            Source::PeakMemory => rounds
                .filter_map(|r| {
                    r.scenarios
                        .iter()
                        .filter(|s| s.sweep.is_none())
                        .filter_map(|s| s.peak_memory_bytes)
                        .max()
                })
                .map(|b| b as f64 / MIB)
                .collect(),
            Source::ImageSize => {
                let size = env.label.image_size_bytes.map(|b| b as f64 / MIB);
                return (size.into_iter().collect(), true);
            }
            Source::Scenario(scenario, read) => rounds
                .flat_map(|r| &r.scenarios)
                .filter(|s| &s.scenario == scenario && s.sweep.is_none())
                .filter_map(read)
                .collect(),
        };
        (values, false)
    }
}

fn metrics(artifact: &Artifact) -> Vec<Metric> {
    let mut metrics = vec![
        Metric::new("startup", "ms", false, Source::Startup),
        Metric::new("idle memory", "MiB", false, Source::IdleMemory),
        Metric::new("peak memory", "MiB", false, Source::PeakMemory),
        Metric::new("image size", "MiB", false, Source::ImageSize),
    ];
    for scenario in scenario_names(artifact) {
        let open_loop = artifact
            .environments
            .iter()
            .flat_map(|e| &e.rounds)
            .flat_map(|r| &r.scenarios)
            .any(|s| s.scenario == scenario && s.load.open_loop);
        let per_scenario: [(&str, &'static str, bool, Reader); 7] = [
            ("throughput", "req/s", true, |s| Some(s.load.throughput_rps)),
            ("mean response time", "ms", false, |s| {
                nonempty_latency(s).map(|_| s.load.request_latency().mean_us / 1000.0)
            }),
            ("p50 latency", "ms", false, |s| {
                nonempty_latency(s).map(|_| s.load.request_latency().p50_us / 1000.0)
            }),
            ("p99 latency", "ms", false, |s| {
                nonempty_latency(s).map(|_| s.load.request_latency().p99_us / 1000.0)
            }),
            ("p99.9 latency", "ms", false, |s| {
                nonempty_latency(s).map(|_| s.load.request_latency().p999_us / 1000.0)
            }),
            ("errors", "count", false, |s| {
                Some(s.load.errors.total() as f64)
            }),
            ("CPU per 1k requests", "s", false, cpu_per_thousand),
        ];
        for (name, unit, higher, read) in per_scenario {
            let mut metric = Metric::new(
                format!("{name} ({scenario})"),
                unit,
                higher,
                Source::Scenario(scenario.clone(), read),
            );
            metric.set_point = open_loop && name == "throughput";
            metrics.push(metric);
        }
        metrics.push(Metric::new(
            format!("peak memory ({scenario})"),
            "MiB",
            false,
            Source::ScenarioPeakMemory(scenario.clone()),
        ));
    }
    metrics
}

/// Latency percentiles of a run that recorded no successful response are meaningless zeros.
fn nonempty_latency(run: &ScenarioRun) -> Option<()> {
    (run.load.request_latency().count > 0).then_some(())
}

/// CPU-seconds the service spent per 1,000 successful requests.
fn cpu_per_thousand(run: &ScenarioRun) -> Option<f64> {
    let cpu = run.service_cpu_seconds?;
    (run.load.ok > 0).then(|| cpu / run.load.ok as f64 * 1000.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::artifact::fixture;

    fn row<'a>(summary: &'a Summary, metric: &str) -> &'a SummaryRow {
        summary
            .rows
            .iter()
            .find(|r| r.metric == metric)
            .unwrap_or_else(|| panic!("no row {metric:?}"))
    }

    #[test]
    fn rows_follow_the_fixture() {
        let artifact = fixture::artifact();
        let summary = summarize(&artifact);
        assert_eq!(summary.baseline.as_deref(), Some("native"));

        // Startup samples: native 10, 12, 11 → median 11, [10, 12]; vm 900, 1000, 1100.
        let startup = row(&summary, "startup");
        assert_eq!(startup.unit, "ms");
        let native = &startup.estimates["native"];
        assert_eq!(
            (native.median, native.ci_low, native.ci_high, native.n),
            (11.0, 10.0, 12.0, 3)
        );
        assert_eq!(native.coverage, 0.75);
        let vm = &startup.estimates["vm"];
        assert_eq!(vm.median, 1000.0);
        assert!(!startup.ratio_to_baseline.contains_key("native"));
        assert!((startup.ratio_to_baseline["vm"].median - 1000.0 / 11.0).abs() < 1e-9);
        // Container 100 ms vs VM 1000 ms: 90% better.
        let improvement = startup.container_vs_vm_improvement_pct.unwrap();
        assert!((improvement - 90.0).abs() < 1e-9, "{improvement}");

        // Throughput is higher-is-better: container 9000 vs vm 3000 → +200%.
        let throughput = row(&summary, "throughput (health)");
        assert!(throughput.higher_is_better);
        let improvement = throughput.container_vs_vm_improvement_pct.unwrap();
        assert!((improvement - 200.0).abs() < 1e-9, "{improvement}");

        // CPU per 1k: native uses 0.5 s for 50 000 ok → 0.01 s per 1,000.
        let cpu = row(&summary, "CPU per 1k requests (health)");
        assert!((cpu.estimates["native"].median - 0.01).abs() < 1e-12);

        // Image size is exact, only where known.
        let image = row(&summary, "image size");
        assert!(!image.estimates.contains_key("native"));
        assert_eq!(image.estimates["container"].coverage, 1.0);
        assert!(!image.estimates["container"].noisy);

        // p99 in ms from µs.
        let p99 = row(&summary, "p99 latency (health)");
        assert_eq!(p99.unit, "ms");
        assert!((p99.estimates["native"].median - 1.0).abs() < 1e-12);
    }

    fn env_mut<'a>(artifact: &'a mut Artifact, name: &str) -> &'a mut EnvironmentResult {
        artifact
            .environments
            .iter_mut()
            .find(|e| e.label.name == name)
            .unwrap()
    }

    #[test]
    fn a_saturated_generator_marks_the_cells_it_limited() {
        // Item 1: `run` never looked at the generator's verdict, so a throughput that was the
        // generator's ceiling read like the service's.
        let mut artifact = fixture::without_errors(fixture::artifact());
        for round in &mut env_mut(&mut artifact, "native").rounds[..2] {
            round.scenarios[0].load.generator.bottleneck = true;
        }
        let summary = summarize(&artifact);
        let throughput = row(&summary, "throughput (health)");
        let native = &throughput.estimates["native"].limits;
        assert_eq!(
            native,
            &[Limit {
                kind: LimitKind::GeneratorSaturated,
                rounds: 2,
                bottleneck: Side::Generator,
            }]
        );
        assert!(
            !is_limited(
                &throughput.estimates["container"],
                LimitKind::GeneratorSaturated
            ),
            "{:?}",
            throughput.estimates["container"].limits
        );
        // The baseline's saturation compromises every ratio against it.
        assert!(is_limited(
            &throughput.ratio_to_baseline["container"],
            LimitKind::GeneratorSaturated
        ));
        // Startup is not a load figure.
        assert!(
            row(&summary, "startup").estimates["native"]
                .limits
                .is_empty()
        );
        use crate::render::Exporter;
        let table = crate::render::Table.render(&artifact).unwrap();
        assert!(table.contains("⚠gen"), "{table}");
        assert!(table.contains("bottleneck: the load generator"), "{table}");
    }

    #[test]
    fn a_generator_saturated_beside_a_saturated_service_limits_nothing() {
        // Both sides at their CPU budget: the service could not have gone faster, so the
        // figure is the service's, not the generator's ceiling.
        let mut artifact = fixture::without_errors(fixture::artifact());
        let native = env_mut(&mut artifact, "native");
        let native_rounds = native.rounds.len();
        let cpus = native.label.service_cpus.len() as f64;
        for (i, round) in native.rounds.iter_mut().enumerate() {
            let run = &mut round.scenarios[0];
            run.load.generator.bottleneck = true;
            // Round 0: the service had half its CPU to spare; the others: all of it used.
            let share = if i == 0 { 0.5 } else { 0.97 };
            run.service_cpu_seconds = Some(share * run.load.elapsed_s * cpus);
        }
        let summary = summarize(&artifact);
        let limits = &row(&summary, "throughput (health)").estimates["native"].limits;
        assert_eq!(
            limits,
            &[
                Limit {
                    kind: LimitKind::GeneratorSaturated,
                    rounds: 1,
                    bottleneck: Side::Generator,
                },
                Limit {
                    kind: LimitKind::BothSaturated,
                    rounds: native_rounds - 1,
                    bottleneck: Side::Service,
                }
            ]
        );
        use crate::render::Exporter;
        let table = crate::render::Table.render(&artifact).unwrap();
        assert!(
            table.contains("the load generator and the service were both saturated"),
            "{table}"
        );
    }

    #[test]
    fn errors_and_a_missed_rate_are_marked_on_the_service() {
        let mut artifact = fixture::without_errors(fixture::artifact());
        let vm = env_mut(&mut artifact, "vm");
        vm.rounds[0].scenarios[1].load.achieved_rate_rps *= 0.5;
        vm.rounds[1].scenarios[0].load.errors.timeout = 3;
        let summary = summarize(&artifact);
        let p99 = &row(&summary, "p99 latency (fixed-rate)").estimates["vm"];
        assert_eq!(p99.limits.len(), 1);
        assert_eq!(
            (p99.limits[0].kind, p99.limits[0].bottleneck),
            (LimitKind::RateNotKept, Side::Service)
        );
        let throughput = &row(&summary, "throughput (health)").estimates["vm"];
        assert!(is_limited(throughput, LimitKind::Errors));
        // The errors row keeps the mark, so a gate on it sees that requests failed.
        assert!(is_limited(
            &row(&summary, "errors (health)").estimates["vm"],
            LimitKind::Errors
        ));
        assert!(
            row(&summary, "throughput (health)").estimates["native"]
                .limits
                .is_empty()
        );
    }

    #[test]
    fn an_open_loops_throughput_gets_no_ratio() {
        // Item 10: an open loop's throughput is the requested rate; a ratio of two set-points
        // measured nothing.
        let summary = summarize(&fixture::artifact());
        let fixed = row(&summary, "throughput (fixed-rate)");
        assert!(fixed.ratio_to_baseline.is_empty(), "{fixed:?}");
        assert_eq!(fixed.container_vs_vm_improvement_pct, None);
        assert!(!fixed.estimates.is_empty());
        assert!(
            !row(&summary, "throughput (health)")
                .ratio_to_baseline
                .is_empty()
        );
        assert!(
            !row(&summary, "p99 latency (fixed-rate)")
                .ratio_to_baseline
                .is_empty()
        );
    }

    #[test]
    fn peak_memory_has_a_row_per_scenario_window() {
        let summary = summarize(&fixture::artifact());
        // Native's health windows peak at 20, 21, 19 MiB; its fixed-rate windows 1 MiB less.
        let health = &row(&summary, "peak memory (health)").estimates["native"];
        let fixed = &row(&summary, "peak memory (fixed-rate)").estimates["native"];
        assert_eq!(health.median - fixed.median, 1.0);
    }

    #[test]
    fn the_ratio_of_two_exact_values_is_exact() {
        let mut artifact = fixture::artifact();
        let container_size = artifact
            .environments
            .iter()
            .find(|e| e.label.name == "container")
            .and_then(|e| e.label.image_size_bytes)
            .unwrap();
        let native = artifact
            .environments
            .iter_mut()
            .find(|e| e.label.name == "native")
            .unwrap();
        native.label.image_size_bytes = Some(container_size / 2);
        let summary = summarize(&artifact);
        let ratio = &row(&summary, "image size").ratio_to_baseline["container"];
        assert!((ratio.median - 2.0).abs() < 1e-6, "{ratio:?}");
        assert_eq!((ratio.coverage, ratio.noisy), (1.0, false));
    }

    #[test]
    fn bench_artifacts_without_startup_summarize() {
        let artifact = fixture::bench_pair();
        let summary = summarize(&artifact);
        assert!(summary.rows.iter().all(|r| r.metric != "startup"));
        let throughput = row(&summary, "throughput (bench)");
        assert_eq!(throughput.estimates.len(), 2);
        assert!(throughput.estimates.values().all(|e| e.n == 1 && e.noisy));
        // Detected kinds pair them: container 189 req/s vs vm 127 req/s, as in the seed.
        let improvement = throughput.container_vs_vm_improvement_pct.unwrap();
        assert!((improvement - 48.818_897_6).abs() < 1e-6, "{improvement}");
        assert_eq!(summary.baseline.as_deref(), Some("docker"));
    }

    #[test]
    fn seed_improvements_are_reproduced() {
        // The seed's table: startup 15.2 s vs 2.1 s → 86% faster; memory 512 vs 256 → 50%
        // less; throughput 127 vs 189 → 49% higher; response time 185 vs 124 → 33% faster.
        let round = |x: f64| x.round();
        assert_eq!(round(improvement_pct(2.1, 15.2, false).unwrap()), 86.0);
        assert_eq!(round(improvement_pct(256.0, 512.0, false).unwrap()), 50.0);
        assert_eq!(round(improvement_pct(189.0, 127.0, true).unwrap()), 49.0);
        assert_eq!(round(improvement_pct(124.0, 185.0, false).unwrap()), 33.0);
        assert_eq!(improvement_pct(1.0, 0.0, false), None);
    }

    #[test]
    fn explicit_baseline_is_used_when_it_exists() {
        let artifact = fixture::artifact();
        let summary = summarize_with_baseline(&artifact, Some("container"));
        assert_eq!(summary.baseline.as_deref(), Some("container"));
        let startup = row(&summary, "startup");
        assert!(startup.ratio_to_baseline.contains_key("native"));
        let fallback = summarize_with_baseline(&artifact, Some("nonexistent"));
        assert_eq!(fallback.baseline.as_deref(), Some("native"));
    }

    #[test]
    fn sweep_steps_are_not_scenarios_and_yield_capacity() {
        let artifact = fixture::with_sweep();
        let plain = summarize(&fixture::artifact());
        let summary = summarize(&artifact);
        assert_eq!(
            summary.rows, plain.rows,
            "the sweep adds no row and changes none"
        );
        assert_eq!(summary.p99_limit_ms, Some(sweep::DEFAULT_P99_LIMIT_MS));
        assert_eq!(summary.capacity.len(), 3);
        assert_eq!(plain.p99_limit_ms, None);
        let strict = summarize_with(
            &artifact,
            &Options {
                baseline: None,
                p99_limit_ms: Some(0.5),
            },
        );
        assert_eq!(strict.capacity["native"].highest_rate_rps, None);
    }

    #[test]
    fn capacity_carries_the_limits_of_the_steps_it_stands_on() {
        fn step(env: &mut EnvironmentResult, round: usize, fraction: f64) -> &mut ScenarioRun {
            env.rounds[round]
                .scenarios
                .iter_mut()
                .find(|s| s.sweep.as_ref().is_some_and(|s| s.fraction == fraction))
                .unwrap()
        }
        let mut artifact = fixture::with_sweep();
        // native, round 0: the generator saturated at a step that met the limit.
        step(&mut artifact.environments[0], 0, 0.5)
            .load
            .generator
            .bottleneck = true;
        // container, every round: the first miss is the generator's (saturated, behind its
        // schedule), so the capacity may be its limit.
        for round in 0..3 {
            let miss = step(&mut artifact.environments[1], round, 1.0);
            miss.load.generator.bottleneck = true;
            miss.load.achieved_rate_rps *= 0.8;
        }
        // vm: saturated only past its first miss, and the miss is the service's p99.
        step(&mut artifact.environments[2], 0, 1.0)
            .load
            .generator
            .bottleneck = true;
        let summary = summarize(&artifact);
        let kinds = |env: &str| -> Vec<(LimitKind, usize, Side)> {
            summary.capacity[env]
                .limits
                .iter()
                .map(|l| (l.kind, l.rounds, l.bottleneck))
                .collect()
        };
        assert_eq!(
            kinds("native"),
            [(LimitKind::GeneratorSaturated, 1, Side::Generator)]
        );
        assert_eq!(
            kinds("container"),
            [
                (LimitKind::GeneratorSaturated, 3, Side::Generator),
                (LimitKind::RateNotKept, 3, Side::Generator)
            ]
        );
        assert_eq!(kinds("vm"), []);
        let table = crate::render::Exporter::render(&crate::render::Table, &{
            let mut artifact = artifact.clone();
            artifact.summary = Some(summary.clone());
            artifact
        })
        .unwrap();
        assert!(
            table.contains("n = 3 rounds) ⚠gen ⚠rate"),
            "the capacity line carries its marks:\n{table}"
        );
    }

    #[test]
    fn samples_are_the_rounds_figures() {
        let artifact = fixture::artifact();
        let (values, exact) = samples(&artifact, "startup", &artifact.environments[0]).unwrap();
        assert_eq!((values, exact), (vec![10.0, 12.0, 11.0], false));
        assert!(samples(&artifact, "no such metric", &artifact.environments[0]).is_none());
    }

    #[test]
    fn latency_rows_count_every_request_where_it_was_recorded() {
        let mut artifact = fixture::artifact();
        for round in &mut artifact.environments[0].rounds {
            for run in &mut round.scenarios {
                let mut all = run.load.latency.clone();
                all.p99_us = 200_000.0;
                run.load.all_requests_latency = Some(all);
            }
        }
        let summary = summarize(&artifact);
        let p99 = &row(&summary, "p99 latency (health)").estimates;
        assert_eq!(
            p99["native"].median, 200.0,
            "native's failed requests count"
        );
        assert!(
            p99["container"].median < 200.0,
            "no all-requests figure: the answered"
        );
    }

    #[test]
    fn empty_artifact_has_no_rows() {
        let mut artifact = fixture::artifact();
        artifact.environments.clear();
        let summary = summarize(&artifact);
        assert!(summary.rows.is_empty());
        assert_eq!(summary.baseline, None);
    }
}

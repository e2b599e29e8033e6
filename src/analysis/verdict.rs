//! Comparing two runs: per metric and environment, the change from OLD to NEW with its
//! interval and a verdict, in the manner of hyperfine's "… times faster than …" and critcmp's
//! side-by-side columns.
//!
//! The change is the ratio of NEW's median to OLD's over the same per-round samples the
//! summary used, with the same distribution-free interval ([`stats::ratio_estimate`], its
//! coverage stated). A verdict is given only when the interval covers at least 95%, excludes
//! 1 *and* the median moved by at least the noise threshold (critcmp's `--threshold` idea),
//! so a tight interval around a 0.3% shift is still "no significant change". Nothing is
//! decided, and the change says why, when a side has too few rounds for 95%, when either
//! side's figure was limited (the load generator, an unkept rate, failed requests), or when
//! the two runs are not the same experiment: a different accelerator (TCG against KVM, both
//! "vm"), host (CPU model and count) or plan (the scenario's load, its window).

use crate::analysis::headline::withheld_because;
use crate::analysis::stats;
use crate::analysis::summarize;
use crate::artifact::{Artifact, EnvKind, EnvironmentResult, Estimate, Summary};

/// Default smallest relative change that earns a verdict: 2%.
pub const DEFAULT_NOISE_THRESHOLD: f64 = 0.02;

/// What happened to one figure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Better, beyond the interval and the noise threshold.
    Better,
    /// Worse, beyond the interval and the noise threshold.
    Worse,
    /// The interval holds 1, or the change is below the noise threshold.
    NoChange,
    /// Too few rounds on a side to tell.
    Undecided,
}

/// One metric of one environment, OLD against NEW.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    /// The summary row's name.
    pub metric: String,
    /// The row's unit.
    pub unit: String,
    /// Whether a larger value is better.
    pub higher_is_better: bool,
    /// The environment's name.
    pub environment: String,
    /// OLD's estimate.
    pub old: Estimate,
    /// NEW's estimate.
    pub new: Estimate,
    /// NEW / OLD with its interval, and the limits of either side.
    pub ratio: Estimate,
    /// The verdict.
    pub verdict: Verdict,
    /// Why no verdict was given, when [`Verdict::Undecided`].
    pub why: Option<String>,
}

/// The outcome of comparing two runs.
#[derive(Debug, Clone, PartialEq)]
pub struct Comparison {
    /// Every metric of every environment present in both, in NEW's summary order.
    pub changes: Vec<Change>,
    /// Environments measured only in OLD.
    pub only_old: Vec<String>,
    /// Environments measured only in NEW.
    pub only_new: Vec<String>,
    /// The noise threshold used.
    pub noise_threshold: f64,
}

impl Comparison {
    /// The change of `metric` in `environment`, when both runs have it.
    pub fn change(&self, metric: &str, environment: &str) -> Option<&Change> {
        self.changes
            .iter()
            .find(|c| c.metric == metric && c.environment == environment)
    }
}

/// Whether two artifacts are two runs of the same environments (compare them OLD → NEW)
/// rather than pieces to put side by side (the seed's bench files): both hold an environment
/// isobench started itself, and they share at least one environment name.
pub fn are_two_runs(old: &Artifact, new: &Artifact) -> bool {
    let started = |a: &Artifact| {
        a.environments
            .iter()
            .any(|e| e.label.kind != EnvKind::External)
    };
    started(old)
        && started(new)
        && new.environments.iter().any(|e| {
            old.environments
                .iter()
                .any(|o| o.label.name == e.label.name)
        })
}

/// Compares OLD and NEW; `old_summary` and `new_summary` are their summaries (same
/// baseline).
pub fn compare(
    old: &Artifact,
    old_summary: &Summary,
    new: &Artifact,
    new_summary: &Summary,
    noise_threshold: f64,
) -> Comparison {
    let mut changes = Vec::new();
    for row in &new_summary.rows {
        let Some(old_row) = old_summary.rows.iter().find(|r| r.metric == row.metric) else {
            continue;
        };
        for env in &new.environments {
            let name = &env.label.name;
            let Some(old_env) = old.environments.iter().find(|e| &e.label.name == name) else {
                continue;
            };
            let (Some(new_estimate), Some(old_estimate)) =
                (row.estimates.get(name), old_row.estimates.get(name))
            else {
                continue;
            };
            let Some((new_values, new_exact)) = summarize::samples(new, &row.metric, env) else {
                continue;
            };
            let Some((old_values, old_exact)) = summarize::samples(old, &row.metric, old_env)
            else {
                continue;
            };
            let exact = new_exact && old_exact;
            let ratio = match (new_values.as_slice(), old_values.as_slice()) {
                ([n], [o]) if exact && *o > 0.0 => Some(stats::exact(n / o)),
                _ => stats::ratio_estimate(&new_values, &old_values),
            };
            let Some(mut ratio) = ratio else {
                continue;
            };
            for limit in old_estimate.limits.iter().chain(&new_estimate.limits) {
                if !ratio.limits.iter().any(|l| l.kind == limit.kind) {
                    ratio.limits.push(limit.clone());
                }
            }
            let why = if !exact && (new_values.len() < 2 || old_values.len() < 2) {
                Some("too few rounds to tell".to_owned())
            } else {
                not_comparable(old, old_env, new, env, &row.metric)
                    .or_else(|| unsure(&ratio, exact))
            };
            let verdict = if why.is_some() {
                Verdict::Undecided
            } else {
                let moved = (ratio.median - 1.0).abs() >= noise_threshold;
                let higher = ratio.ci_low > 1.0 && moved;
                let lower = ratio.ci_high < 1.0 && moved;
                match (higher, lower, row.higher_is_better) {
                    (true, _, true) | (_, true, false) => Verdict::Better,
                    (true, _, false) | (_, true, true) => Verdict::Worse,
                    _ => Verdict::NoChange,
                }
            };
            changes.push(Change {
                metric: row.metric.clone(),
                unit: row.unit.clone(),
                higher_is_better: row.higher_is_better,
                environment: name.clone(),
                old: old_estimate.clone(),
                new: new_estimate.clone(),
                ratio,
                verdict,
                why,
            });
        }
    }
    let names = |a: &Artifact| -> Vec<String> {
        a.environments
            .iter()
            .map(|e| e.label.name.clone())
            .collect()
    };
    let (old_names, new_names) = (names(old), names(new));
    Comparison {
        changes,
        only_old: old_names
            .iter()
            .filter(|n| !new_names.contains(n))
            .cloned()
            .collect(),
        only_new: new_names
            .iter()
            .filter(|n| !old_names.contains(n))
            .cloned()
            .collect(),
        noise_threshold,
    }
}

/// Why two runs' figures are not the same experiment, if they are not: the accelerator,
/// the host, or (for a scenario's figure) the load it was measured under.
fn not_comparable(
    old: &Artifact,
    old_env: &EnvironmentResult,
    new: &Artifact,
    new_env: &EnvironmentResult,
    metric: &str,
) -> Option<String> {
    let accel = |env: &EnvironmentResult| {
        env.label
            .accel
            .map_or_else(|| "none".to_owned(), |a| format!("{a:?}"))
    };
    if old_env.label.accel != new_env.label.accel {
        return Some(format!(
            "OLD ran with accelerator {}, NEW with {}",
            accel(old_env),
            accel(new_env)
        ));
    }
    let host = |a: &Artifact| format!("{} × {}", a.host.logical_cpus, a.host.cpu_model);
    if host(old) != host(new) {
        return Some(format!("different hosts: {} and {}", host(old), host(new)));
    }
    if old_env.label.service_cpus.len() != new_env.label.service_cpus.len() {
        return Some(format!(
            "the service had {} CPU(s) in OLD, {} in NEW",
            old_env.label.service_cpus.len(),
            new_env.label.service_cpus.len()
        ));
    }
    let scenario = crate::analysis::headline::scenario_of(metric);
    let plan = |env: &EnvironmentResult| {
        let run = env
            .rounds
            .iter()
            .flat_map(|r| &r.scenarios)
            .find(|s| s.scenario == scenario && s.sweep.is_none())?;
        let load = &run.load;
        let paths: Vec<String> = load
            .scenario
            .iter()
            .map(|p| format!("{}×{}", p.path, p.weight))
            .collect();
        Some(format!(
            "{} {}, {} connection(s){}, {:.1} s window",
            if load.open_loop {
                "open loop"
            } else {
                "closed loop"
            },
            paths.join(" "),
            load.connections,
            load.requested_rate_rps
                .map_or_else(String::new, |r| format!(" at {r} req/s")),
            load.elapsed_s
        ))
    };
    match (plan(old_env), plan(new_env)) {
        (Some(old_plan), Some(new_plan)) if old_plan != new_plan => {
            Some(format!("the plan differs: OLD {old_plan}, NEW {new_plan}"))
        }
        _ => None,
    }
}

/// Why the change cannot be relied on, if it cannot: its interval covers less than 95%, or
/// a side's figure was limited.
fn unsure(ratio: &Estimate, exact: bool) -> Option<String> {
    if !exact && ratio.coverage < stats::CONFIDENCE {
        return Some(format!(
            "the interval covers {:.0}% (95% needs 7 rounds a side)",
            ratio.coverage * 100.0
        ));
    }
    let limited: Vec<&str> = ratio
        .limits
        .iter()
        .filter_map(|limit| withheld_because(limit.kind))
        .collect();
    (!limited.is_empty()).then(|| limited.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::summarize::summarize;
    use crate::artifact::fixture;

    /// The fixture at a default run's seven rounds (95% coverage), no request failed.
    fn seven() -> Artifact {
        fixture::without_errors(fixture::with_rounds(fixture::artifact(), 7))
    }

    fn compare_fixture(new: &Artifact) -> Comparison {
        let old = seven();
        compare(
            &old,
            &summarize(&old),
            new,
            &summarize(new),
            DEFAULT_NOISE_THRESHOLD,
        )
    }

    fn change<'a>(comparison: &'a Comparison, metric: &str, env: &str) -> &'a Change {
        comparison
            .change(metric, env)
            .unwrap_or_else(|| panic!("no change for {metric} / {env}"))
    }

    #[test]
    fn identical_runs_show_no_significant_change() {
        let comparison = compare_fixture(&seven());
        assert!(!comparison.changes.is_empty());
        for c in &comparison.changes {
            assert!(
                matches!(c.verdict, Verdict::NoChange),
                "{} {}: {:?}",
                c.environment,
                c.metric,
                c.verdict
            );
            assert_eq!(c.ratio.median, 1.0);
        }
    }

    #[test]
    fn slower_startup_and_higher_throughput_are_worse_and_better() {
        let mut new = seven();
        for round in &mut new.environments[2].rounds {
            // vm: startup doubled, throughput up 50%.
            round.startup_ms = round.startup_ms.map(|s| s * 2.0);
            round.scenarios[0].load.throughput_rps *= 1.5;
        }
        let comparison = compare_fixture(&new);
        let startup = change(&comparison, "startup", "vm");
        assert_eq!(startup.verdict, Verdict::Worse);
        assert!((startup.ratio.median - 2.0).abs() < 1e-9);
        let throughput = change(&comparison, "throughput (health)", "vm");
        assert_eq!(throughput.verdict, Verdict::Better);
        assert_eq!(
            change(&comparison, "startup", "native").verdict,
            Verdict::NoChange
        );
    }

    #[test]
    fn a_lower_startup_is_better() {
        let mut new = seven();
        for round in &mut new.environments[0].rounds {
            round.startup_ms = round.startup_ms.map(|s| s / 2.0);
        }
        let comparison = compare_fixture(&new);
        let startup = change(&comparison, "startup", "native");
        assert_eq!(startup.verdict, Verdict::Better);
        assert!((startup.ratio.median - 0.5).abs() < 1e-9);
    }

    #[test]
    fn a_change_below_the_noise_threshold_is_no_change() {
        // Constant rounds give a point interval: 1% above 1, entirely, and still no change.
        let mut old = seven();
        let mut new = seven();
        for (artifact, startup) in [(&mut old, 10.0), (&mut new, 10.1)] {
            for round in &mut artifact.environments[0].rounds {
                round.startup_ms = Some(startup);
            }
        }
        let comparison = compare(&old, &summarize(&old), &new, &summarize(&new), 0.02);
        let startup = change(&comparison, "startup", "native");
        assert!(startup.ratio.ci_low > 1.0, "a tight interval above 1");
        assert_eq!(startup.verdict, Verdict::NoChange);
    }

    #[test]
    fn single_rounds_are_undecided_and_an_exact_change_is_a_change() {
        let mut old = seven();
        let mut new = seven();
        for artifact in [&mut old, &mut new] {
            for env in &mut artifact.environments {
                env.rounds.truncate(1);
            }
        }
        for round in &mut new.environments[0].rounds {
            round.idle_memory_bytes = round.idle_memory_bytes.map(|b| b * 3);
        }
        let comparison = compare(&old, &summarize(&old), &new, &summarize(&new), 0.02);
        let memory = change(&comparison, "idle memory", "native");
        assert_eq!(memory.verdict, Verdict::Undecided);
        // Image sizes are exact: a change is a change.
        let mut bigger = seven();
        bigger.environments[1].label.image_size_bytes = Some(8 << 20);
        let comparison = compare_fixture(&bigger);
        let image = change(&comparison, "image size", "container");
        assert_eq!(image.verdict, Verdict::Worse);
    }

    #[test]
    fn runs_are_told_from_bench_pieces() {
        let run = seven();
        assert!(are_two_runs(&run, &run));
        let bench = fixture::bench_pair();
        assert!(!are_two_runs(&bench, &bench));
        let mut other = seven();
        for env in &mut other.environments {
            env.label.name.push_str("-x");
        }
        assert!(!are_two_runs(&run, &other));
        let comparison = compare_fixture(&{
            let mut a = seven();
            a.environments.remove(2);
            a
        });
        assert_eq!(comparison.only_old, ["vm"]);
        assert!(comparison.only_new.is_empty());
    }

    /// Too few rounds for 95%, another accelerator, another plan, a limited figure: no
    /// verdict, and the change says why.
    #[test]
    fn no_verdict_without_the_same_experiment_at_95_percent() {
        let three = fixture::without_errors(fixture::artifact());
        let mut slower = three.clone();
        for round in &mut slower.environments[2].rounds {
            round.startup_ms = round.startup_ms.map(|s| s * 2.0);
        }
        let comparison = compare(
            &three,
            &summarize(&three),
            &slower,
            &summarize(&slower),
            0.02,
        );
        let startup = change(&comparison, "startup", "vm");
        assert_eq!(startup.verdict, Verdict::Undecided);
        assert!(
            startup.why.as_deref().unwrap().contains("covers 56%"),
            "{startup:?}"
        );

        let mut kvm = seven();
        kvm.environments[2].label.accel = Some(crate::artifact::Accel::Kvm);
        let startup = change(&compare_fixture(&kvm), "startup", "vm").clone();
        assert_eq!(startup.verdict, Verdict::Undecided);
        assert!(startup.why.unwrap().contains("accelerator"));

        let mut longer = seven();
        for round in &mut longer.environments[0].rounds {
            for run in &mut round.scenarios {
                run.load.elapsed_s *= 2.0;
            }
        }
        let comparison = compare_fixture(&longer);
        let throughput = change(&comparison, "throughput (health)", "native");
        assert!(
            throughput
                .why
                .as_deref()
                .unwrap()
                .starts_with("the plan differs"),
            "{throughput:?}"
        );
        assert_eq!(
            change(&comparison, "startup", "native").verdict,
            Verdict::NoChange,
            "startup is no scenario's"
        );

        let mut limited = seven();
        for round in &mut limited.environments[1].rounds {
            round.scenarios[0].load.generator.bottleneck = true;
            round.scenarios[0].service_cpu_seconds = Some(0.0);
        }
        let throughput = change(
            &compare_fixture(&limited),
            "throughput (health)",
            "container",
        )
        .clone();
        assert_eq!(throughput.verdict, Verdict::Undecided);
        assert!(throughput.why.unwrap().contains("generator"));
    }

    /// The false-verdict rate, by simulation: two runs of one distribution (seven rounds a
    /// side, 10% spread) get "no significant change" at least 95% of the time.
    #[test]
    fn two_runs_of_one_distribution_rarely_get_a_verdict() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(11);
        let mut normal = |mean: f64| {
            let (u1, u2): (f64, f64) = (rng.random::<f64>().max(1e-12), rng.random());
            mean * (1.0 + 0.1 * (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos())
        };
        let trials = 400;
        let mut verdicts = 0;
        for _ in 0..trials {
            let mut runs = [seven(), seven()];
            for run in &mut runs {
                for round in &mut run.environments[0].rounds {
                    round.startup_ms = Some(normal(100.0));
                }
            }
            let [old, new] = &runs;
            let comparison = compare(old, &summarize(old), new, &summarize(new), 0.0);
            let startup = change(&comparison, "startup", "native");
            if matches!(startup.verdict, Verdict::Better | Verdict::Worse) {
                verdicts += 1;
            }
        }
        let rate = f64::from(verdicts) / f64::from(trials);
        assert!(
            rate <= 0.05,
            "{verdicts} of {trials} same-distribution pairs got a verdict"
        );
    }
}

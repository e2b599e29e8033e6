//! Evaluating [`Check`]s against a run's summary: which row a check's metric names, the
//! figure or ratio it compares, and the notes that make a pass inconclusive.

use super::parse::{Check, threshold_in};
use crate::analysis::headline;
use crate::analysis::stats;
use crate::analysis::summarize;
use crate::artifact::{Artifact, CheckOutcome, CheckStatus, Estimate, Side, Summary};
use crate::format::{limit_description, number};

/// Evaluates every check against the artifact's summary (computed when absent).
pub fn evaluate_all(artifact: &Artifact, summary: &Summary, checks: &[Check]) -> Vec<CheckOutcome> {
    checks
        .iter()
        .map(|check| evaluate(artifact, summary, check))
        .collect()
}

/// Evaluates one check.
pub fn evaluate(artifact: &Artifact, summary: &Summary, check: &Check) -> CheckOutcome {
    let failed = |note: String, metric: Option<String>| CheckOutcome {
        check: check.text.clone(),
        metric,
        status: CheckStatus::Fail,
        value: None,
        threshold: check.threshold,
        unit: check.unit.clone(),
        excess_pct: None,
        notes: vec![note],
    };
    let row_name = match resolve(artifact, summary, &check.metric) {
        Ok(name) => name,
        Err(unresolved) => return failed(unresolved.to_string(), None),
    };
    let Some(row) = summary.rows.iter().find(|r| r.metric == row_name) else {
        return failed(format!("this run has no `{row_name}` figure"), None);
    };
    if row.set_point {
        return failed(
            format!(
                "refused: `{row_name}` is a set-point (the open loop's rate, asked for, not \
                 measured); check its latency or its errors instead"
            ),
            Some(row_name),
        );
    }
    let env_of = |name: &str| artifact.environments.iter().find(|e| e.label.name == name);
    let names = || {
        artifact
            .environments
            .iter()
            .map(|e| e.label.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let Some(env) = env_of(&check.environment) else {
        return failed(
            format!("{} was not measured (have: {})", check.environment, names()),
            Some(row_name),
        );
    };
    let (value, unit, threshold) = match &check.over {
        None => match row.estimates.get(&check.environment) {
            Some(estimate) => (
                estimate.clone(),
                row.unit.clone(),
                threshold_in(check, &row.unit),
            ),
            None => {
                return failed(
                    format!("{} has no {row_name} figure", check.environment),
                    Some(row_name),
                );
            }
        },
        Some(over) => {
            let Some(base) = env_of(over) else {
                return failed(
                    format!("{over} was not measured (have: {})", names()),
                    Some(row_name),
                );
            };
            match ratio(artifact, &row_name, env, base) {
                Some(estimate) => (estimate, "×".to_owned(), check.threshold),
                None => {
                    return failed(
                        format!(
                            "no ratio: {} or {over} has no {row_name} figure, or {over}'s is zero",
                            check.environment
                        ),
                        Some(row_name),
                    );
                }
            }
        }
    };

    let mut notes = Vec::new();
    let holds = check.operator.holds(value.median, threshold);
    let far_end = if check.operator.is_upper_bound() {
        value.ci_high
    } else {
        value.ci_low
    };
    let crosses = holds && !check.operator.holds(far_end, threshold);
    if crosses {
        notes.push(format!(
            "the interval [{}, {}] crosses the threshold",
            number(value.ci_low),
            number(value.ci_high)
        ));
    }
    let low_coverage = value.coverage < stats::CONFIDENCE;
    if low_coverage {
        notes.push(format!(
            "the interval covers {:.0}%, not 95% (n = {}; a median needs 6 rounds, a ratio 7)",
            value.coverage * 100.0,
            value.n
        ));
    }
    if value.noisy {
        notes.push(if value.n < 2 {
            "a single sample: its spread is unknown".to_owned()
        } else {
            "noisy: the interval is wider than ±10% of the median".to_owned()
        });
    }
    // Limits come from each environment's own cell of the row, a ratio's from both.
    let mut generator_limited = false;
    for name in std::iter::once(&check.environment).chain(&check.over) {
        if let Some(estimate) = row.estimates.get(name) {
            let (limit_notes, generator) = limit_notes(name, estimate);
            notes.extend(limit_notes);
            generator_limited |= generator;
        }
    }
    let uncertain = value.noisy || generator_limited || crosses || low_coverage;
    let status = if !holds {
        CheckStatus::Fail
    } else if uncertain {
        CheckStatus::Inconclusive
    } else {
        CheckStatus::Pass
    };
    let excess_pct = (threshold != 0.0).then(|| {
        let past = if check.operator.is_upper_bound() {
            value.median - threshold
        } else {
            threshold - value.median
        };
        past / threshold.abs() * 100.0
    });
    CheckOutcome {
        check: check.text.clone(),
        metric: Some(row_name),
        status,
        value: Some(value),
        threshold,
        unit,
        excess_pct,
        notes,
    }
}

/// Why a check's metric names no one summary row.
#[derive(Debug, thiserror::Error)]
enum Unresolved {
    /// No row of the run is that figure.
    #[error("this run has no {0} figure")]
    Missing(String),
    /// Several scenarios measured it.
    #[error("`{metric}` is measured in several scenarios; name one: {}", rows.join(", "))]
    Ambiguous { metric: String, rows: Vec<String> },
}

/// The summary row a check's metric means: the headline's own row for the four questions'
/// words, the named row when a scenario is given, the only scenario's row otherwise.
fn resolve(artifact: &Artifact, summary: &Summary, metric: &str) -> Result<String, Unresolved> {
    let questions = headline::headline(artifact, summary);
    let headline_row = |title: &str| {
        questions
            .iter()
            .find(|q| q.title == title)
            .map(|q| q.metric.clone())
            .ok_or_else(|| Unresolved::Missing(title.to_lowercase()))
    };
    match metric {
        "startup" | "idle memory" | "peak memory" | "image size" => return Ok(metric.to_owned()),
        "memory" => return headline_row("Memory"),
        "throughput" => return headline_row("Throughput"),
        "response time" => return headline_row("Response time"),
        _ => {}
    }
    if metric.ends_with(')') {
        return Ok(metric.to_owned());
    }
    let candidates: Vec<&str> = summary
        .rows
        .iter()
        .map(|r| r.metric.as_str())
        .filter(|name| {
            name.strip_prefix(metric)
                .is_some_and(|rest| rest.starts_with(" ("))
        })
        .collect();
    match candidates.as_slice() {
        [only] => Ok((*only).to_owned()),
        [] => Err(Unresolved::Missing(metric.to_owned())),
        many => Err(Unresolved::Ambiguous {
            metric: metric.to_owned(),
            rows: many.iter().map(|row| (*row).to_owned()).collect(),
        }),
    }
}

/// The ratio of two environments' medians with its bootstrap interval, as the summary takes
/// ratios to its baseline.
pub(super) fn ratio(
    artifact: &Artifact,
    metric: &str,
    env: &crate::artifact::EnvironmentResult,
    base: &crate::artifact::EnvironmentResult,
) -> Option<Estimate> {
    let (values, exact) = summarize::samples(artifact, metric, env)?;
    let (base_values, base_exact) = summarize::samples(artifact, metric, base)?;
    match (values.as_slice(), base_values.as_slice()) {
        ([value], [base_value]) if exact && base_exact && *base_value > 0.0 => {
            Some(stats::exact(value / base_value))
        }
        _ => stats::ratio_estimate(&values, &base_values),
    }
}

/// The limits of an environment's cell (`Estimate::limits`, from the measurement protocol) as
/// notes, and whether any points at the load generator — then the figure may be the
/// generator's limit, not the service's, and a passing check cannot be relied on. Limits that
/// point at the service (its errors, a rate it could not keep) describe the service itself:
/// they are noted but do not make the outcome uncertain.
fn limit_notes(environment: &str, estimate: &Estimate) -> (Vec<String>, bool) {
    let mut notes = Vec::new();
    let mut generator = false;
    for limit in &estimate.limits {
        let what = limit_description(limit.kind);
        let side = match limit.bottleneck {
            Side::Generator => {
                generator = true;
                "the figure may be the generator's limit, not the service's"
            }
            Side::Service => "bottleneck: the service",
        };
        notes.push(format!(
            "{environment}: {what} in {} of {} rounds ({side})",
            limit.rounds, estimate.n
        ));
    }
    (notes, generator)
}

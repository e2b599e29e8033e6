//! Threshold checks, k6-style: `--check 'vm startup < 2s'`, `--check 'container/native
//! throughput >= 0.3'`, repeatable or one per line in a file, evaluated against a run's
//! summary. `run` and `compare` exit with [`EXIT_CHECK_FAILED`] when one fails.
//!
//! Grammar (whitespace between the parts, the metric may hold spaces):
//!
//! ```text
//! check     = subject metric operator threshold
//! subject   = ENV | ENV "/" ENV          a figure, or the ratio of two environments' medians
//! metric    = startup | memory | throughput | response time          (the headline's rows)
//!           | idle memory | peak memory | image size
//!           | (p50 | p99 | p99.9) [latency] | mean response time | errors | CPU per 1k requests
//!           followed by " (SCENARIO)" for a scenario's row, e.g. "p99 latency (mixed)"
//! operator  = "<" | "<=" | ">" | ">="    (also ≤ ≥)
//! threshold = NUMBER [UNIT]              time: ns us µs ms s; memory: B KiB MiB GiB;
//!                                        rate: req/s rps; ratio: x ×; none = the row's unit
//! ```
//!
//! A check compares the **median**. It passes only when the whole interval meets the
//! threshold on a clean cell; a median that meets it on a noisy cell, with an interval
//! crossing the threshold, or on a cell the load generator (not the service) limited — the
//! per-cell limits the measurement protocol records in `Estimate::limits` — is
//! [`CheckStatus::Inconclusive`] and says why — never a silent pass. A missing figure fails.

use std::path::Path;

use crate::analysis::headline;
use crate::analysis::stats;
use crate::analysis::summarize;
use crate::artifact::{Artifact, CheckOutcome, CheckStatus, Estimate, Side, Summary};
use crate::format::{limit_description, number};

/// Exit code of `run` and `compare` when a check failed (2 is any other error).
pub const EXIT_CHECK_FAILED: u8 = 4;

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operator {
    /// `<`
    Less,
    /// `<=`
    LessOrEqual,
    /// `>`
    Greater,
    /// `>=`
    GreaterOrEqual,
}

impl Operator {
    fn holds(self, value: f64, threshold: f64) -> bool {
        match self {
            Self::Less => value < threshold,
            Self::LessOrEqual => value <= threshold,
            Self::Greater => value > threshold,
            Self::GreaterOrEqual => value >= threshold,
        }
    }

    fn is_upper_bound(self) -> bool {
        matches!(self, Self::Less | Self::LessOrEqual)
    }
}

/// What a metric measures, which decides the units its threshold may have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    /// A duration (row units `ms` or `s`).
    Time,
    /// An amount of memory (row unit `MiB`).
    Memory,
    /// Requests per second.
    Rate,
    /// A count.
    Count,
}

impl Family {
    fn name(self) -> &'static str {
        match self {
            Self::Time => "time",
            Self::Memory => "memory",
            Self::Rate => "rate",
            Self::Count => "count",
        }
    }
}

/// A parsed check.
#[derive(Debug, Clone, PartialEq)]
pub struct Check {
    /// The check as written (trimmed).
    pub text: String,
    /// The environment whose figure is checked.
    pub environment: String,
    /// For a ratio: the environment it is divided by.
    pub over: Option<String>,
    /// The metric as written, normalised (`p99` → `p99 latency`).
    pub metric: String,
    /// What the metric measures.
    pub family: Family,
    /// The comparison.
    pub operator: Operator,
    /// The threshold as written.
    pub threshold: f64,
    /// Its unit as written (empty: the row's own unit, or a plain ratio).
    pub unit: String,
}

/// Why a check could not be parsed. Every message quotes the check.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ParseError {
    /// No `<`, `<=`, `>` or `>=`.
    #[error(
        "check `{0}`: no comparison; write <, <=, > or >= between the metric and the \
         threshold, e.g. `vm startup < 2s`"
    )]
    NoOperator(String),
    /// `=` or `==`, which a benchmark figure almost never meets exactly.
    #[error("check `{0}`: `=` is not supported (a measured figure is never exact); use <= or >=")]
    Equality(String),
    /// Nothing before the operator.
    #[error(
        "check `{0}`: nothing before the comparison; expected an environment and a metric, e.g. \
         `vm startup < 2s`"
    )]
    MissingSubject(String),
    /// An environment name with characters no environment has.
    #[error(
        "check `{check}`: `{subject}` is not an environment or a ratio of two (ENV or ENV/ENV, \
         letters, digits, `-`, `_`, `.`)"
    )]
    BadSubject {
        /// The check.
        check: String,
        /// The subject as written.
        subject: String,
    },
    /// The metric is missing or unknown.
    #[error("check `{check}`: unknown metric `{metric}`; known: {}", KNOWN_METRICS.join(", "))]
    UnknownMetric {
        /// The check.
        check: String,
        /// The metric as written.
        metric: String,
    },
    /// Nothing after the operator.
    #[error("check `{0}`: no threshold after the comparison")]
    MissingThreshold(String),
    /// The threshold does not start with a number.
    #[error("check `{check}`: `{text}` is not a number")]
    BadNumber {
        /// The check.
        check: String,
        /// The threshold as written.
        text: String,
    },
    /// A unit isobench does not know.
    #[error(
        "check `{check}`: unknown unit `{unit}`; use ns, us, µs, ms, s, B, KiB, MiB, GiB, req/s, \
         rps, or x for a ratio"
    )]
    UnknownUnit {
        /// The check.
        check: String,
        /// The unit as written.
        unit: String,
    },
    /// A unit of another kind than the metric.
    #[error("check `{check}`: {metric} is a {family}, but `{unit}` is a unit of {unit_family}")]
    UnitMismatch {
        /// The check.
        check: String,
        /// The metric.
        metric: String,
        /// What the metric measures.
        family: &'static str,
        /// The unit as written.
        unit: String,
        /// What the unit measures.
        unit_family: &'static str,
    },
    /// A ratio with a unit other than `x`.
    #[error(
        "check `{check}`: {subject} is a ratio, so its threshold is a plain number (or `0.3x`), \
         not `{unit}`"
    )]
    RatioWithUnit {
        /// The check.
        check: String,
        /// The ratio as written.
        subject: String,
        /// The unit as written.
        unit: String,
    },
    /// `x` on a figure that is not a ratio.
    #[error(
        "check `{check}`: `x` means a ratio; write ENV/BASELINE (e.g. `vm/native {metric} < 5x`) \
         or give the threshold in a unit"
    )]
    RatioUnitWithoutRatio {
        /// The check.
        check: String,
        /// The metric.
        metric: String,
    },
    /// A line of a check file.
    #[error("{path}, line {line}: {source}")]
    InFile {
        /// The file.
        path: String,
        /// 1-based line number.
        line: usize,
        /// The error on that line.
        source: Box<ParseError>,
    },
    /// The check file could not be read.
    #[error("cannot read the check file {path}: {reason}")]
    ReadFile {
        /// The file.
        path: String,
        /// The I/O error.
        reason: String,
    },
}

/// The metric names a check may use (each per-scenario one also with ` (SCENARIO)`).
pub const KNOWN_METRICS: [&str; 16] = [
    "startup",
    "memory",
    "throughput",
    "response time",
    "idle memory",
    "peak memory",
    "image size",
    "mean response time",
    "p50 latency",
    "p99 latency",
    "p99.9 latency",
    "p50",
    "p99",
    "p99.9",
    "errors",
    "CPU per 1k requests",
];

/// The family of a metric's base name (without ` (scenario)`), `None` when unknown; short
/// forms are normalised (`p99` → `p99 latency`).
fn family_of(base: &str) -> Option<(String, Family)> {
    let base = base.trim();
    let normalised = match base {
        "p50" | "p99" | "p99.9" => format!("{base} latency"),
        other => other.to_owned(),
    };
    let family = match normalised.as_str() {
        "startup"
        | "response time"
        | "mean response time"
        | "p50 latency"
        | "p99 latency"
        | "p99.9 latency"
        | "CPU per 1k requests" => Family::Time,
        "memory" | "idle memory" | "peak memory" | "image size" => Family::Memory,
        "throughput" => Family::Rate,
        "errors" => Family::Count,
        _ => return None,
    };
    Some((normalised, family))
}

/// Parses one check.
pub fn parse(text: &str) -> Result<Check, ParseError> {
    let check = text.trim().to_owned();
    let (left, operator, right) = split_operator(&check)?;
    let left = left.trim();
    if left.is_empty() {
        return Err(ParseError::MissingSubject(check));
    }
    let (subject, metric_text) = left
        .split_once(char::is_whitespace)
        .map(|(s, m)| (s, m.trim()))
        .unwrap_or((left, ""));
    let valid_name = |name: &str| {
        !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    };
    let (environment, over) = match subject.split_once('/') {
        Some((a, b)) if valid_name(a) && valid_name(b) => (a.to_owned(), Some(b.to_owned())),
        None if valid_name(subject) => (subject.to_owned(), None),
        _ => {
            return Err(ParseError::BadSubject {
                subject: subject.to_owned(),
                check,
            });
        }
    };
    // `p99 latency (mixed)`: the base name decides the family; the scenario is kept.
    let (base, scenario) = match metric_text.rsplit_once(" (") {
        Some((base, rest)) if rest.ends_with(')') && rest.len() > 1 => {
            (base, Some(&rest[..rest.len() - 1]))
        }
        _ => (metric_text, None),
    };
    let Some((base, family)) = family_of(base) else {
        return Err(ParseError::UnknownMetric {
            metric: metric_text.to_owned(),
            check,
        });
    };
    let metric = match scenario {
        Some(scenario) => format!("{base} ({scenario})"),
        None => base,
    };

    let right = right.trim();
    if right.is_empty() {
        return Err(ParseError::MissingThreshold(check));
    }
    let split = right
        .find(|c: char| !(c.is_ascii_digit() || matches!(c, '.' | '-' | '+' | 'e' | 'E')))
        .unwrap_or(right.len());
    let (number_text, unit) = right.split_at(split);
    let threshold: f64 = match number_text.parse() {
        Ok(value) if f64::is_finite(value) => value,
        _ => {
            return Err(ParseError::BadNumber {
                text: right.to_owned(),
                check,
            });
        }
    };
    let unit = unit.trim().to_owned();
    match (&over, unit_family(&unit)) {
        (_, Err(())) => return Err(ParseError::UnknownUnit { unit, check }),
        (Some(_), Ok(UnitKind::Ratio | UnitKind::None)) => {}
        (Some(_), Ok(_)) => {
            return Err(ParseError::RatioWithUnit {
                subject: subject.to_owned(),
                unit,
                check,
            });
        }
        (None, Ok(UnitKind::Ratio)) => {
            return Err(ParseError::RatioUnitWithoutRatio { metric, check });
        }
        (None, Ok(UnitKind::Of(unit_family, _))) if unit_family != family => {
            return Err(ParseError::UnitMismatch {
                metric,
                family: family.name(),
                unit,
                unit_family: unit_family.name(),
                check,
            });
        }
        (None, Ok(_)) => {}
    }
    Ok(Check {
        text: check,
        environment,
        over,
        metric,
        family,
        operator,
        threshold,
        unit,
    })
}

/// Parses a check file: one check per line; blank lines and lines starting with `#` are
/// skipped.
pub fn parse_file(path: &Path) -> Result<Vec<Check>, ParseError> {
    let text = std::fs::read_to_string(path).map_err(|e| ParseError::ReadFile {
        path: path.display().to_string(),
        reason: e.to_string(),
    })?;
    parse_lines(&path.display().to_string(), &text)
}

/// [`parse_file`] on text already read; `origin` names it in errors.
pub fn parse_lines(origin: &str, text: &str) -> Result<Vec<Check>, ParseError> {
    text.lines()
        .enumerate()
        .filter(|(_, line)| {
            let line = line.trim();
            !line.is_empty() && !line.starts_with('#')
        })
        .map(|(index, line)| {
            parse(line).map_err(|source| ParseError::InFile {
                path: origin.to_owned(),
                line: index + 1,
                source: Box::new(source),
            })
        })
        .collect()
}

fn split_operator(check: &str) -> Result<(&str, Operator, &str), ParseError> {
    let candidates = [
        ("<=", Operator::LessOrEqual),
        (">=", Operator::GreaterOrEqual),
        ("≤", Operator::LessOrEqual),
        ("≥", Operator::GreaterOrEqual),
        ("<", Operator::Less),
        (">", Operator::Greater),
    ];
    // The leftmost operator wins; at one position the two-character form wins.
    let found = candidates
        .iter()
        .filter_map(|(token, op)| check.find(token).map(|at| (at, token.len(), *op)))
        .min_by_key(|(at, len, _)| (*at, std::cmp::Reverse(*len)));
    match found {
        Some((at, len, op)) => Ok((&check[..at], op, &check[at + len..])),
        None if check.contains('=') => Err(ParseError::Equality(check.to_owned())),
        None => Err(ParseError::NoOperator(check.to_owned())),
    }
}

enum UnitKind {
    None,
    Ratio,
    /// A family and the factor to the family's base unit (ms, MiB, req/s, count).
    Of(Family, f64),
}

fn unit_family(unit: &str) -> Result<UnitKind, ()> {
    const MIB: f64 = 1024.0 * 1024.0;
    Ok(match unit {
        "" => UnitKind::None,
        "x" | "×" => UnitKind::Ratio,
        "ns" => UnitKind::Of(Family::Time, 1e-6),
        "us" | "µs" => UnitKind::Of(Family::Time, 1e-3),
        "ms" => UnitKind::Of(Family::Time, 1.0),
        "s" => UnitKind::Of(Family::Time, 1e3),
        "B" => UnitKind::Of(Family::Memory, 1.0 / MIB),
        "KiB" => UnitKind::Of(Family::Memory, 1.0 / 1024.0),
        "MiB" => UnitKind::Of(Family::Memory, 1.0),
        "GiB" => UnitKind::Of(Family::Memory, 1024.0),
        "req/s" | "rps" => UnitKind::Of(Family::Rate, 1.0),
        _ => return Err(()),
    })
}

/// The threshold in a row's unit (`ms`, `s`, `MiB`, `req/s`, `count`); a unitless threshold
/// is in the row's unit already.
fn threshold_in(check: &Check, row_unit: &str) -> f64 {
    let factor = match unit_family(&check.unit) {
        Ok(UnitKind::Of(_, factor)) => factor,
        _ => return check.threshold,
    };
    // The family's base units are ms, MiB, req/s; a row in seconds divides by 1000.
    let row_factor = match row_unit {
        "s" => 1e3,
        _ => 1.0,
    };
    check.threshold * factor / row_factor
}

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
    let uncertain = value.noisy || generator_limited || crosses;
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
fn ratio(
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

/// One line per outcome: `FAIL  vm startup < 2s: 2.31 s, 15.5% over [notes]`.
pub fn outcome_lines(outcomes: &[CheckOutcome]) -> Vec<String> {
    outcomes
        .iter()
        .map(|outcome| {
            let status = match outcome.status {
                CheckStatus::Pass => "PASS",
                CheckStatus::Inconclusive => "UNSURE",
                CheckStatus::Fail => "FAIL",
            };
            let mut line = format!("{status:<6} {}", outcome.check);
            if let Some(value) = &outcome.value {
                let unit = if outcome.unit == "×" {
                    "×".to_owned()
                } else {
                    format!(" {}", outcome.unit)
                };
                line.push_str(&format!(
                    ": {}{unit} [{}, {}]",
                    number(value.median),
                    number(value.ci_low),
                    number(value.ci_high)
                ));
                if let Some(excess) = outcome.excess_pct {
                    if excess > 0.0 {
                        line.push_str(&format!(", {excess:.1}% past the threshold"));
                    } else {
                        line.push_str(&format!(", {:.1}% headroom", -excess));
                    }
                }
            }
            if let Some(metric) = &outcome.metric {
                line.push_str(&format!(" ({metric})"));
            }
            for note in &outcome.notes {
                line.push_str(&format!("; {note}"));
            }
            line
        })
        .collect()
}

/// Whether any check failed.
pub fn any_failed(outcomes: &[CheckOutcome]) -> bool {
    outcomes.iter().any(|o| o.status == CheckStatus::Fail)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::summarize::summarize;
    use crate::artifact::fixture;

    fn run(check: &str) -> CheckOutcome {
        let artifact = fixture::artifact();
        let summary = summarize(&artifact);
        evaluate(&artifact, &summary, &parse(check).unwrap())
    }

    #[test]
    fn the_briefs_examples_parse() {
        let c = parse("container/native throughput >= 0.3").unwrap();
        assert_eq!(c.environment, "container");
        assert_eq!(c.over.as_deref(), Some("native"));
        assert_eq!(c.metric, "throughput");
        assert_eq!(c.operator, Operator::GreaterOrEqual);
        assert_eq!(c.threshold, 0.3);
        let c = parse("vm startup < 2s").unwrap();
        assert_eq!((c.environment.as_str(), c.over.as_deref()), ("vm", None));
        assert_eq!(
            (c.operator, c.threshold, c.unit.as_str()),
            (Operator::Less, 2.0, "s")
        );
        let c = parse("  vm   p99 (fixed-rate) <= 500 us ").unwrap();
        assert_eq!(c.metric, "p99 latency (fixed-rate)");
        assert_eq!(c.unit, "us");
        assert_eq!(
            parse("vm/native startup ≤ 100x").unwrap().operator,
            Operator::LessOrEqual
        );
    }

    #[test]
    fn parse_errors_name_the_problem() {
        let message = |text: &str| parse(text).unwrap_err().to_string();
        assert!(message("vm startup 2s").contains("no comparison"));
        assert!(message("vm startup == 2s").contains("`=` is not supported"));
        assert!(message("< 2s").contains("nothing before the comparison"));
        assert!(message("vm boot time < 2s").contains("unknown metric `boot time`"));
        assert!(message("vm < 2s").contains("unknown metric ``"));
        assert!(message("vm startup <").contains("no threshold"));
        assert!(message("vm startup < fast").contains("`fast` is not a number"));
        assert!(message("vm startup < 2 fortnights").contains("unknown unit `fortnights`"));
        assert_eq!(
            message("vm startup < 2 MiB"),
            "check `vm startup < 2 MiB`: startup is a time, but `MiB` is a unit of memory"
        );
        assert!(message("vm/native startup < 2s").contains("is a ratio"));
        assert!(message("vm startup < 2x").contains("`x` means a ratio"));
        assert!(message("vm/ startup < 2").contains("`vm/` is not an environment"));
        let err = parse_lines("checks.txt", "# gate\n\nvm startup < 2s\nvm startup 2s\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("checks.txt, line 4: check `vm startup 2s`"),
            "{err}"
        );
    }

    #[test]
    fn a_check_file_skips_comments_and_blanks() {
        let checks = parse_lines(
            "f",
            "# c\n\nvm startup < 2s\n container/native throughput >= 0.3\n",
        )
        .unwrap();
        assert_eq!(checks.len(), 2);
    }

    #[test]
    fn ratio_check_passes_on_the_fixture() {
        // container/native throughput: 0.900× [0.873, 0.929], clean cells.
        let outcome = run("container/native throughput >= 0.3");
        assert_eq!(outcome.status, CheckStatus::Pass, "{outcome:?}");
        assert_eq!(outcome.metric.as_deref(), Some("throughput (health)"));
        assert!((outcome.value.unwrap().median - 0.9).abs() < 1e-9);
        // headroom: (0.3 − 0.9) / 0.3 = −200%
        assert!((outcome.excess_pct.unwrap() + 200.0).abs() < 1e-9);
    }

    #[test]
    fn failing_check_says_by_how_much() {
        // vm startup median 1000 ms against 0.5 s: 100% past.
        let outcome = run("vm startup < 0.5s");
        assert_eq!(outcome.status, CheckStatus::Fail);
        assert_eq!(outcome.threshold, 500.0);
        assert_eq!(outcome.unit, "ms");
        assert!((outcome.excess_pct.unwrap() - 100.0).abs() < 1e-9);
        let line = &outcome_lines(&[outcome])[0];
        assert!(
            line.starts_with(
                "FAIL   vm startup < 0.5s: 1000 ms [900, 1100], 100.0% past the threshold"
            ),
            "{line}"
        );
    }

    #[test]
    fn a_passing_median_on_a_shaky_cell_is_inconclusive() {
        // vm startup 1000 ms [900, 1100]: the median passes 1050 ms, the interval crosses it.
        let outcome = run("vm startup < 1050ms");
        assert_eq!(outcome.status, CheckStatus::Inconclusive);
        assert!(
            outcome.notes[0].contains("crosses the threshold"),
            "{:?}",
            outcome.notes
        );
        // vm p99 (health) is noisy: 5 ms [3, 7].
        let outcome = run("vm p99 latency (health) < 20ms");
        assert_eq!(outcome.status, CheckStatus::Inconclusive);
        assert!(
            outcome.notes.iter().any(|n| n.starts_with("noisy")),
            "{:?}",
            outcome.notes
        );
    }

    #[test]
    fn a_generator_limited_cell_says_so() {
        let mut artifact = fixture::artifact();
        for round in &mut artifact.environments[1].rounds {
            round.scenarios[0].load.generator.bottleneck = true;
        }
        let summary = summarize(&artifact);
        let outcome = evaluate(
            &artifact,
            &summary,
            &parse("container throughput > 100 rps").unwrap(),
        );
        assert_eq!(outcome.status, CheckStatus::Inconclusive);
        assert!(
            outcome
                .notes
                .iter()
                .any(|n| n.contains("generator was saturated in 3 of 3")),
            "{:?}",
            outcome.notes
        );
    }

    #[test]
    fn missing_figures_fail_with_a_reason() {
        let outcome = run("gvisor startup < 2s");
        assert_eq!(outcome.status, CheckStatus::Fail);
        assert!(
            outcome.notes[0].starts_with("gvisor was not measured (have: native, container, vm)")
        );
        let outcome = run("native image size < 1 MiB");
        assert_eq!(outcome.status, CheckStatus::Fail);
        let outcome = run("vm p99 < 1s");
        assert!(
            outcome.notes[0].contains("name one: p99 latency (health), p99 latency (fixed-rate)"),
            "{:?}",
            outcome.notes
        );
    }

    #[test]
    fn units_convert_to_the_rows_unit() {
        let check = parse("vm CPU per 1k requests (health) < 60 ms").unwrap();
        assert!((threshold_in(&check, "s") - 0.06).abs() < 1e-12);
        let outcome = run("vm CPU per 1k requests (health) < 60 ms");
        assert_eq!(outcome.status, CheckStatus::Pass, "{outcome:?}");
        assert_eq!(
            run("vm CPU per 1k requests (health) < 40 ms").status,
            CheckStatus::Fail
        );
        let check = parse("vm memory < 1 GiB").unwrap();
        assert_eq!(threshold_in(&check, "MiB"), 1024.0);
        assert_eq!(run("vm memory < 64 MiB").status, CheckStatus::Pass);
        assert_eq!(run("vm memory < 60 MiB").status, CheckStatus::Fail);
    }
}

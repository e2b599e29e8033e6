//! Parsing `--check` text into [`Check`]s: the grammar in [`super`], units and their
//! families, a check file's lines.

use std::path::Path;

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
    pub(super) fn holds(self, value: f64, threshold: f64) -> bool {
        match self {
            Self::Less => value < threshold,
            Self::LessOrEqual => value <= threshold,
            Self::Greater => value > threshold,
            Self::GreaterOrEqual => value >= threshold,
        }
    }

    pub(super) fn is_upper_bound(self) -> bool {
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
pub(super) fn family_of(base: &str) -> Option<(String, Family)> {
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

pub(super) enum UnitKind {
    None,
    Ratio,
    /// A family and the factor to the family's base unit (ms, MiB, req/s, count).
    Of(Family, f64),
}

pub(super) fn unit_family(unit: &str) -> Result<UnitKind, ()> {
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
pub(super) fn threshold_in(check: &Check, row_unit: &str) -> f64 {
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

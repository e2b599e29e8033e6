//! Exporters: one per output format, each in its own file behind the small [`Exporter`]
//! trait (the shape of hyperfine's `export/`). They share the cell formatting here, so the
//! terminal, markdown and HTML say the same thing the same way.

mod charts;
pub mod comparison;
pub mod density;
mod headline;
mod html;
mod ladder;
mod markdown;
mod measurements;
pub mod series;
mod sweep;
mod table;
pub mod write;

use std::borrow::Cow;

pub use html::Html;
pub use markdown::Markdown;
pub use table::Table;

use crate::analysis::stats::CONFIDENCE;
use crate::analysis::summarize;
use crate::artifact::{
    Artifact, Capacity, EnvironmentResult, Estimate, Limit, LimitKind, Preparation, Side, Summary,
};
use crate::format::{accel_text, env_title, limit_description, number};

/// Why an exporter could not render.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// A chart could not be drawn.
    #[error("cannot draw the {chart} chart: {reason}")]
    Chart {
        /// Which chart.
        chart: String,
        /// What the charting library reported.
        reason: String,
    },
}

/// Renders an artifact (with its summary, computed when absent) into one output format.
pub trait Exporter {
    /// Renders the whole report as text.
    fn render(&self, artifact: &Artifact) -> Result<String, ExportError>;
}

/// The artifact's summary, or one computed now when the writer did not include it.
pub(crate) fn summary_of(artifact: &Artifact) -> Cow<'_, Summary> {
    match &artifact.summary {
        Some(summary) => Cow::Borrowed(summary),
        None => Cow::Owned(summarize::summarize(artifact)),
    }
}

/// Marker for an interval whose coverage is below the nominal 95% (too few rounds).
pub(crate) const LOW_COVERAGE_MARK: &str = "†";
/// Marker for a noisy estimate.
pub(crate) const NOISY_MARK: &str = "±noisy";

/// Marker of a figure the load generator may have limited (it was saturated).
pub(crate) const GENERATOR_MARK: &str = "⚠gen";
/// Marker of an open loop that fell behind its schedule (the rate was not kept).
pub(crate) const RATE_MARK: &str = "⚠rate";
/// Marker of a figure behind which requests failed.
pub(crate) const ERRORS_MARK: &str = "⚠err";
/// Marker of a window whose first slices were still warming up and stayed in the figure.
pub(crate) const WARMING_MARK: &str = "⚠warm";
/// Marker of a window in which the service stalled.
pub(crate) const STALL_MARK: &str = "⚠stall";
/// Marker of a window whose throughput drifted between its first and last third.
pub(crate) const DRIFT_MARK: &str = "⚠drift";

/// The limit marks of an estimate, ` ⚠gen ⚠err`, or nothing when nothing limited it.
pub(crate) fn limit_marks(estimate: &Estimate) -> String {
    marks_of(&estimate.limits)
}

/// The marks of `limits`, ` ⚠gen ⚠err`, or nothing.
pub(crate) fn marks_of(limits: &[Limit]) -> String {
    let mut marks = String::new();
    for limit in limits {
        let mark = match limit.kind {
            LimitKind::GeneratorSaturated => GENERATOR_MARK,
            LimitKind::RateNotKept => RATE_MARK,
            LimitKind::Errors => ERRORS_MARK,
            LimitKind::WarmingUp => WARMING_MARK,
            LimitKind::Stalled => STALL_MARK,
            LimitKind::Drifted => DRIFT_MARK,
            // The figure is the service's: noted under the table, not marked.
            LimitKind::BothSaturated => continue,
        };
        marks.push(' ');
        marks.push_str(mark);
    }
    marks
}

/// The legend of the limit marks, saying which side each points at.
pub(crate) fn limit_legend() -> String {
    format!(
        "{GENERATOR_MARK}: the load generator was saturated in some of these rounds while the \
         service had CPU to spare, so the figure may be the generator's limit, not the \
         service's (bottleneck: generator); \
         {RATE_MARK}: the open loop sent fewer requests than scheduled (bottleneck: the \
         generator when it was also saturated, else the service); {ERRORS_MARK}: requests \
         failed (bottleneck: the service); {WARMING_MARK}, {STALL_MARK}, {DRIFT_MARK}: in \
         some of these windows the service was still warming up, answered nothing for a \
         stretch while asked, or its throughput drifted between the window's first and last \
         third (bottleneck: the service or the machine; the time series shows where)."
    )
}

/// Which side limited which environment's scenarios, one line per environment and kind, e.g.
/// `native: the load generator was saturated in health (2 rounds); bottleneck: the load
/// generator.`; when nothing was limited, one line saying so.
pub(crate) fn bottleneck_notes(summary: &Summary) -> Vec<String> {
    use std::collections::BTreeMap;
    // (environment, kind) → side and the scenarios with their rounds, from the estimates of
    // every scenario row (all rows of one scenario carry the same limits).
    /// The side a kind of limit points at, and the scenarios (with rounds) it happened in.
    type Found = (Side, Vec<(String, usize)>);
    let mut found: BTreeMap<(&str, LimitKind), Found> = BTreeMap::new();
    for row in &summary.rows {
        let Some(scenario) = row
            .metric
            .rsplit_once(" (")
            .and_then(|(_, rest)| rest.strip_suffix(')'))
        else {
            continue;
        };
        for (env, estimate) in &row.estimates {
            for limit in &estimate.limits {
                let entry = found
                    .entry((env.as_str(), limit.kind))
                    .or_insert_with(|| (limit.bottleneck, Vec::new()));
                if limit.bottleneck == Side::Generator {
                    entry.0 = Side::Generator;
                }
                if !entry.1.iter().any(|(name, _)| name == scenario) {
                    entry.1.push((scenario.to_owned(), limit.rounds));
                }
            }
        }
    }
    let mut notes: Vec<String> = found
        .into_iter()
        .map(|((env, kind), (side, scenarios))| {
            let what = limit_description(kind);
            let side = match side {
                Side::Generator => "the load generator",
                Side::Service => "the service",
            };
            let scenarios: Vec<String> = scenarios
                .iter()
                .map(|(name, rounds)| {
                    let word = if *rounds == 1 { "round" } else { "rounds" };
                    format!("{name} ({rounds} {word})")
                })
                .collect();
            format!(
                "{env}: {what} in {}; bottleneck: {side}.",
                scenarios.join(", ")
            )
        })
        .collect();
    let loaded = summary
        .rows
        .iter()
        .any(|row| row.metric.starts_with("throughput ("));
    if notes.is_empty() && loaded {
        notes.push(
            "Load generator verdict: never saturated in any measured window; every open loop \
             kept its rate; no request failed."
                .into(),
        );
    }
    notes
}

/// `12.3 ms [11.9, 12.8]`, with `†` when the interval covers less than 95% and `±noisy`.
pub(crate) fn estimate_cell(estimate: &Estimate, unit: &str) -> String {
    // Counts are whole numbers in every round, and so are their medians' bounds; the median
    // of an even number of rounds can end in .5, which `number` shows.
    let number = |x: f64| {
        if unit == "count" && x.fract() == 0.0 && x.abs() < 1e15 {
            format!("{x:.0}")
        } else {
            number(x)
        }
    };
    let unit = unit_suffix(unit);
    let mut cell = if estimate.n == 1 && estimate.coverage >= 1.0 {
        format!("{}{unit}", number(estimate.median))
    } else if estimate.n == 1 {
        format!("{}{unit} (n=1)", number(estimate.median))
    } else {
        format!(
            "{}{unit} [{}, {}]",
            number(estimate.median),
            number(estimate.ci_low),
            number(estimate.ci_high)
        )
    };
    if estimate.n > 1 && estimate.coverage < CONFIDENCE {
        cell.push_str(LOW_COVERAGE_MARK);
    }
    if estimate.noisy {
        cell.push(' ');
        cell.push_str(NOISY_MARK);
    }
    cell.push_str(&limit_marks(estimate));
    cell
}

/// `1.23× [1.10, 1.40]`, with `†` when the interval covers less than 95%, `±noisy`, and the
/// limit marks.
pub(crate) fn ratio_cell(estimate: &Estimate) -> String {
    let mut cell = format!(
        "{}× [{}, {}]",
        number(estimate.median),
        number(estimate.ci_low),
        number(estimate.ci_high)
    );
    if estimate.coverage < CONFIDENCE {
        cell.push_str(LOW_COVERAGE_MARK);
    }
    if estimate.noisy {
        cell.push(' ');
        cell.push_str(NOISY_MARK);
    }
    cell.push_str(&limit_marks(estimate));
    cell
}

/// The seed's improvement column: `+86.2%` (positive = container better).
pub(crate) fn improvement_cell(pct: Option<f64>) -> String {
    match pct {
        Some(pct) => format!("{pct:+.1}%"),
        None => "—".into(),
    }
}

/// The environments that could not run, as one line: `name: reason; name: reason`.
pub fn unavailable_line(unavailable: &[crate::artifact::Unavailable]) -> String {
    unavailable
        .iter()
        .map(|u| format!("{}: {}", u.name, u.reason))
        .collect::<Vec<_>>()
        .join("; ")
}

fn unit_suffix(unit: &str) -> String {
    match unit {
        "count" => String::new(),
        unit => format!(" {unit}"),
    }
}

/// The explanation of the markers and columns, shared by markdown and HTML legends.
pub(crate) fn method_notes(summary: &Summary, artifact: &Artifact) -> Vec<String> {
    let mut notes = vec![
        format!("Method: {}.", summary.method),
        format!(
            "{LOW_COVERAGE_MARK} fewer than 6 samples: no pair of order statistics reaches 95%, \
             so the interval is [min, max], which covers the median with probability 1 − 2·0.5ⁿ \
             (75% for n = 3, 94% for n = 5)."
        ),
        format!(
            "{NOISY_MARK}: the interval's half-width exceeds 10% of the estimate, or there was a \
             single sample."
        ),
    ];
    if let Some(baseline) = &summary.baseline {
        notes.push(format!(
            "Ratios are each environment's median over {baseline}'s (lower is better unless the \
             metric is throughput). Their intervals are bounded by both medians' intervals and \
             cover at least the product of their coverages; {LOW_COVERAGE_MARK} marks a ratio \
             below 95% (fewer than 7 rounds on a side)."
        ));
    }
    notes.push(limit_legend());
    notes.extend(bottleneck_notes(summary));
    if let Some((container, vm)) = summarize::container_vm_pair(artifact) {
        notes.push(format!(
            "{container} vs {vm}: how much better {container} is than {vm}, in percent of \
             {vm}'s median (positive = {container} better), as in the seed report."
        ));
    }
    notes.push(
        "Latency in open-loop scenarios is measured from each request's intended send time \
         (coordinated omission corrected)."
            .into(),
    );
    let every_request = artifact
        .environments
        .iter()
        .flat_map(|env| &env.rounds)
        .flat_map(|round| &round.scenarios)
        .any(|run| run.load.all_requests_latency.is_some());
    if every_request {
        notes.push(
            "Latency counts every request: one that failed at the time it took to fail (a \
             timeout at the timeout), so failures show in the tail instead of vanishing from \
             it."
            .into(),
        );
    }
    notes
}

/// "Measured on HOST (CPU, N CPUs, X GiB, OS, kernel K); written T by isobench V.", then
/// the service measured when the artifact names it, with every string from the artifact
/// passed through `escape` and the host name and service emphasised by `strong` (both per
/// output format).
pub(crate) fn provenance(
    artifact: &Artifact,
    escape: fn(&str) -> String,
    strong: fn(String) -> String,
) -> String {
    let host = &artifact.host;
    let service = artifact.service.as_ref().map_or(String::new(), |service| {
        format!(
            " Service: {} {}.",
            strong(escape(&service.name)),
            escape(&service_details(service))
        )
    });
    format!(
        "Measured on {} ({}, {} CPUs, {:.1} GiB, {}, kernel {}); written {} by isobench {}.{service}",
        strong(escape(&host.hostname)),
        escape(&host.cpu_model),
        host.logical_cpus,
        host.memory_total_bytes as f64 / (1024.0 * 1024.0 * 1024.0),
        escape(&host.os),
        escape(&host.kernel),
        escape(&artifact.created_at),
        escape(&artifact.tool_version),
    )
}

/// What a reader needs to know the service again: "(image, id 0123456789ab, 133.3 MB, runs
/// [\"gunicorn\", …] as app, port 5000, ready at /health)".
pub(crate) fn service_details(service: &crate::artifact::ServiceInfo) -> String {
    use crate::artifact::ServiceKind;
    let mut parts = vec![
        match service.kind {
            ServiceKind::Own => "isobench's own server",
            ServiceKind::Image => "image",
            ServiceKind::Binary => "static binary",
        }
        .to_owned(),
    ];
    if let Some(id) = &service.image_id {
        let hex = id.strip_prefix("sha256:").unwrap_or(id);
        parts.push(format!("id {}", &hex[..hex.len().min(12)]));
    }
    if let Some(bytes) = service.size_bytes {
        parts.push(format!("{:.1} MB", bytes as f64 / 1e6));
    }
    if !service.command.is_empty() {
        let user = match service.user.as_deref() {
            None => String::new(),
            Some("") => " as root".to_owned(),
            Some(user) => format!(" as {user}"),
        };
        parts.push(format!("runs {:?}{user}", service.command));
    }
    if let Some(port) = service.port {
        parts.push(format!("port {port}"));
    }
    parts.push(format!("ready at {}", service.health_path));
    format!("({})", parts.join(", "))
}

/// Columns of the environments table, in the order of [`environment_cells`].
pub(crate) const ENVIRONMENT_COLUMNS: [&str; 10] = [
    "environment",
    "kind",
    "runtime",
    "accelerator",
    "service CPUs",
    "generator CPUs",
    "memory limit",
    "kernel",
    "detected",
    "rounds",
];

/// One environment's row of the environments table, with the strings that come from the
/// artifact passed through `escape`.
pub(crate) fn environment_cells(
    env: &EnvironmentResult,
    escape: fn(&str) -> String,
) -> [String; 10] {
    let label = &env.label;
    let cpus = |list: &[usize]| {
        if list.is_empty() {
            "none".to_owned()
        } else {
            list.iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(",")
        }
    };
    [
        escape(&label.name),
        format!("{:?}", label.kind).to_lowercase(),
        escape(&label.runtime),
        label.accel.map(accel_text).unwrap_or("—").to_owned(),
        cpus(&label.service_cpus),
        cpus(&label.generator_cpus),
        label
            .memory_limit_bytes
            .map(|b| format!("{} MiB", b / (1024 * 1024)))
            .unwrap_or_else(|| "none".into()),
        label
            .kernel
            .as_deref()
            .map(escape)
            .unwrap_or_else(|| "—".into()),
        label
            .detected
            .as_deref()
            .map(escape)
            .unwrap_or_else(|| "—".into()),
        env.rounds.len().to_string(),
    ]
}

/// Everything a reader must know about `env`'s figures, unescaped, in the order every report
/// lists them: its preparation steps, what its memory counts, what its data directory is,
/// the label's own notes, then per scenario how much of its windows was discarded as
/// warm-up ([`warmup_notes`]).
pub(crate) fn environment_notes(env: &EnvironmentResult) -> Vec<String> {
    let label = &env.label;
    env.preparation
        .iter()
        .map(preparation_note)
        .chain(label.memory_counts.iter().map(|m| format!("memory: {m}")))
        .chain(
            label
                .data_dir
                .iter()
                .map(|d| format!("data directory: {d}")),
        )
        .chain(label.notes.iter().cloned())
        .chain(warmup_notes(env))
        .collect()
}

/// Per scenario of `env` in which some window's leading slices were discarded as warm-up:
/// `health: 3 of 7 windows began warming up; their first 0.5 s were kept out of the
/// figures`. The figures cover the rest of those windows; a reader must know they are not
/// the whole of the time measured.
pub(crate) fn warmup_notes(env: &EnvironmentResult) -> Vec<String> {
    crate::analysis::series::counts_by_scenario(env)
        .iter()
        .filter_map(|(scenario, counts)| series::warmup_note(scenario, counts))
        .collect()
}

/// "WHAT took N s[, cached] (not part of startup)" for one preparation step.
fn preparation_note(preparation: &Preparation) -> String {
    format!(
        "{} took {:.1} s{} (not part of startup)",
        preparation.what,
        preparation.seconds,
        if preparation.cached { ", cached" } else { "" }
    )
}

/// The environments compared against the baseline: all but the baseline itself.
pub(crate) fn compared<'a>(
    artifact: &'a Artifact,
    summary: &Summary,
) -> Vec<&'a EnvironmentResult> {
    let baseline = summary.baseline.as_deref();
    artifact
        .environments
        .iter()
        .filter(|env| Some(env.label.name.as_str()) != baseline)
        .collect()
}

/// The headline's title: what the lines say and how many rounds stand behind them.
pub(crate) fn headline_title(summary: &Summary) -> String {
    match &summary.baseline {
        Some(baseline) => format!(
            "What isolation costs: median of the rounds, and × {baseline} with its interval (95% \
             unless marked †)"
        ),
        None => "What isolation costs: median of the rounds".to_owned(),
    }
}

/// The latency-under-load capacity, when a sweep ran: a title and one line per environment,
/// `native: 9000 req/s (at 10000 req/s: p99 10.0 ms; n = 3 rounds)`.
pub(crate) fn capacity_lines(
    artifact: &Artifact,
    summary: &Summary,
) -> Option<(String, Vec<String>)> {
    let limit = summary.p99_limit_ms?;
    if summary.capacity.is_empty() {
        return None;
    }
    let title = format!(
        "Latency under load — highest swept rate with p99 under {} ms (open loop, each \
         environment swept from low load past its own ceiling)",
        number(limit)
    );
    let lines = artifact
        .environments
        .iter()
        .filter_map(|env| {
            let capacity = summary.capacity.get(&env.label.name)?;
            Some(format!(
                "{}: {}",
                env_title(&env.label),
                capacity_text(capacity)
            ))
        })
        .collect();
    Some((title, lines))
}

/// Escapes text for HTML element content and attribute values.
pub(crate) fn escape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Escapes text for a GitHub markdown table cell: no pipes, no inline HTML, no markup, one
/// line.
pub(crate) fn escape_markdown(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\\' | '|' | '*' | '_' | '`' | '[' | ']' | '#' | '~' => {
                out.push('\\');
                out.push(c);
            }
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '\n' | '\r' | '\t' => out.push(' '),
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out
}

/// Removes control characters (terminal escape sequences) from text shown in a terminal.
pub(crate) fn sanitize_terminal(text: &str) -> String {
    text.chars()
        .map(|c| if c == '\n' || c == '\t' { ' ' } else { c })
        .filter(|c| !c.is_control())
        .collect()
}

/// `9000 req/s (at 10000 req/s: p99 10.0 ms; n = 3 rounds) ⚠gen`, in words, with the marks
/// of what limited the steps it stands on.
fn capacity_text(capacity: &Capacity) -> String {
    let miss = match (capacity.first_miss_rps, &capacity.first_miss_reason) {
        (Some(rate), Some(reason)) => format!("at {} req/s: {reason}", number(rate)),
        _ => "every step met it; the sweep did not find the limit".into(),
    };
    // How many rounds stand behind the steps: with one, nothing says how far the next run
    // would land from it.
    let rounds = match capacity.rounds {
        0 => String::new(),
        1 => "; n = 1 round: spread unknown".to_owned(),
        n => format!("; n = {n} rounds"),
    };
    let marks = marks_of(&capacity.limits);
    match capacity.highest_rate_rps {
        Some(rate) => format!("{} req/s ({miss}{rounds}){marks}", number(rate)),
        None => format!("below the lowest step ({miss}{rounds}){marks}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn estimate(
        median: f64,
        low: f64,
        high: f64,
        n: usize,
        coverage: f64,
        noisy: bool,
    ) -> Estimate {
        Estimate {
            median,
            ci_low: low,
            ci_high: high,
            n,
            coverage,
            noisy,
            limits: Vec::new(),
        }
    }

    #[test]
    fn capacity_says_the_rate_and_where_it_ended() {
        let below = Capacity {
            highest_rate_rps: None,
            first_miss_rps: Some(1000.0),
            first_miss_reason: Some("p99 10.0 ms".into()),
            rounds: 1,
            limits: Vec::new(),
        };
        assert_eq!(
            capacity_text(&below),
            "below the lowest step (at 1000 req/s: p99 10.0 ms; n = 1 round: spread unknown)"
        );
        let unbounded = Capacity {
            highest_rate_rps: Some(9000.0),
            first_miss_rps: None,
            first_miss_reason: None,
            rounds: 3,
            limits: Vec::new(),
        };
        assert_eq!(
            capacity_text(&unbounded),
            "9000 req/s (every step met it; the sweep did not find the limit; n = 3 rounds)"
        );
        // What limited the steps it stands on is marked, as on every other figure.
        let limited = Capacity {
            limits: vec![
                Limit {
                    kind: LimitKind::GeneratorSaturated,
                    rounds: 1,
                    bottleneck: Side::Generator,
                },
                Limit {
                    kind: LimitKind::Errors,
                    rounds: 1,
                    bottleneck: Side::Service,
                },
            ],
            ..below
        };
        assert_eq!(
            capacity_text(&limited),
            "below the lowest step (at 1000 req/s: p99 10.0 ms; n = 1 round: spread unknown) \
             ⚠gen ⚠err"
        );
    }

    #[test]
    fn cells_show_interval_and_markers() {
        let e = estimate(12.3, 11.9, 12.8, 10, 0.978, false);
        assert_eq!(estimate_cell(&e, "ms"), "12.3 ms [11.9, 12.8]");
        let e = estimate(12.3, 11.0, 14.0, 3, 0.75, true);
        assert_eq!(estimate_cell(&e, "ms"), "12.3 ms [11.0, 14.0]† ±noisy");
        let e = estimate(5.0, 5.0, 5.0, 1, 0.0, true);
        assert_eq!(estimate_cell(&e, "count"), "5 (n=1) ±noisy");
        let e = estimate(2.5, 2.0, 3.0, 4, 0.875, true);
        assert_eq!(estimate_cell(&e, "count"), "2.50 [2, 3]† ±noisy");
        let e = estimate(4.0, 4.0, 4.0, 1, 1.0, false);
        assert_eq!(estimate_cell(&e, "MiB"), "4.00 MiB");
        let e = estimate(1.5, 1.2, 1.9, 3, 0.95, true);
        assert_eq!(ratio_cell(&e), "1.50× [1.20, 1.90] ±noisy");
        assert_eq!(improvement_cell(Some(86.18)), "+86.2%");
        assert_eq!(improvement_cell(Some(-5.0)), "-5.0%");
        assert_eq!(improvement_cell(None), "—");
    }

    #[test]
    fn the_provenance_names_the_service_measured() {
        use crate::artifact::{ServiceInfo, ServiceKind};
        let mut artifact = Artifact::on_host(crate::artifact::fixture::host(), Vec::new());
        let plain = provenance(&artifact, escape_markdown, |s| format!("**{s}**"));
        assert!(!plain.contains("Service:"), "{plain}");
        artifact.service = Some(ServiceInfo {
            name: "flask:1".into(),
            kind: ServiceKind::Image,
            image_id: Some("sha256:ba5b5098e6fc7834fd03a4fbe3e2c79d".into()),
            size_bytes: Some(133_323_666),
            command: vec!["gunicorn".into(), "app:app".into()],
            user: Some("app".into()),
            port: Some(5000),
            health_path: "/health".into(),
        });
        let named = provenance(&artifact, escape_markdown, |s| format!("**{s}**"));
        assert!(
            named.ends_with(
                " Service: **flask:1** (image, id ba5b5098e6fc, 133.3 MB, runs \\[\"gunicorn\", \
                 \"app:app\"\\] as app, port 5000, ready at /health)."
            ),
            "{named}"
        );
        assert_eq!(
            service_details(&crate::subject::Subject::Own.info()),
            "(isobench's own server, ready at /health)"
        );
    }

    #[test]
    fn escaping_neutralises_markup() {
        assert_eq!(
            escape_html("<script>a & 'b' \"c\"</script>"),
            "&lt;script&gt;a &amp; &#39;b&#39; &quot;c&quot;&lt;/script&gt;"
        );
        assert_eq!(escape_markdown("a|b <i>\n*x*"), "a\\|b &lt;i&gt; \\*x\\*");
        assert_eq!(sanitize_terminal("ok\u{1b}[31mred\u{7}"), "ok[31mred");
    }
}

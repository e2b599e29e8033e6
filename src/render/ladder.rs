//! The cost-ladder section of every report: one row per rung (least isolated first), each
//! metric's median, its change over the rung below and its ratio to native, and one sentence
//! per rung naming the layer it adds. The numbers come from [`crate::analysis::ladder`].

use std::fmt::Write as _;

use comfy_table::{CellAlignment, ContentArrangement, presets};

use super::{ExportError, charts, escape_html, escape_markdown, estimate_cell, ratio_cell};
use crate::analysis::ladder::{self, Cost, Ladder, LadderMetric, Step};
use crate::analysis::stats;
use crate::artifact::{Artifact, Estimate};

/// Column headers: the rung, then one per metric.
fn header(ladder: &Ladder) -> Vec<String> {
    std::iter::once("rung (over the rung below)".to_owned())
        .chain(
            ladder
                .metrics
                .iter()
                .map(|m| format!("{} ({})", m.name(), m.unit())),
        )
        .collect()
}

/// The lines of one cell: the median, the change over the rung below, the ratio to native.
fn cell_lines(cost: Option<&Cost>) -> Vec<String> {
    let Some(cost) = cost else {
        return vec!["—".into()];
    };
    let mut lines = vec![
        cost.value
            .as_ref()
            .map(|v| estimate_cell(v, cost.metric.unit()))
            .unwrap_or_else(|| "—".into()),
    ];
    if let Some(ratio) = &cost.ratio_over_below {
        let delta = cost
            .delta_over_below
            .map(|d| format!(" ({})", signed(d, cost.metric.unit())))
            .unwrap_or_default();
        lines.push(format!("step {}{delta}", percent_change(ratio)));
    }
    if let Some(ratio) = &cost.ratio_over_native {
        lines.push(format!("vs native {}", ratio_cell(ratio)));
    }
    lines
}

fn rung_title(step: &Step) -> String {
    match &step.below {
        Some(below) => format!("{} (over {below})", step.env),
        None => step.env.clone(),
    }
}

/// Rows of cells, each cell a list of lines.
fn rows(ladder: &Ladder) -> Vec<Vec<Vec<String>>> {
    ladder
        .steps
        .iter()
        .map(|step| {
            std::iter::once(vec![rung_title(step)])
                .chain(ladder.metrics.iter().map(|&m| cell_lines(step.cost(m))))
                .collect()
        })
        .collect()
}

/// What the cells are, and which scenario each metric comes from (p50: the open loop when
/// every rung ran it, else the closed loop on /health, the same for every rung).
fn legend(ladder: &Ladder) -> String {
    let has = |metric: LadderMetric| ladder.metrics.contains(&metric);
    let mut sources = Vec::new();
    if has(LadderMetric::Throughput) || has(LadderMetric::CpuPerRequest) {
        sources.push("throughput and CPU per request from the health scenario".to_owned());
    }
    if has(LadderMetric::P50Latency) {
        sources.push(format!("p50 from {}", ladder.p50_scenario));
    }
    if has(LadderMetric::SyscallsThroughput) || has(LadderMetric::CpuPerSyscall) {
        sources.push(
            "syscalls from /syscalls?n=1000 (CPU per system call: a request's CPU over its \
             1000 calls)"
                .to_owned(),
        );
    }
    if has(LadderMetric::FilesThroughput) || has(LadderMetric::FilesNoFsyncThroughput) {
        sources.push(
            "files from /files?kb=64 with and without fsync, in each rung's data directory"
                .to_owned(),
        );
    }
    let sources = if sources.is_empty() {
        String::new()
    } else {
        let mut joined = sources.join("; ");
        if let Some(first) = joined.get_mut(0..1) {
            first.make_ascii_uppercase();
        }
        format!(" {joined}.")
    };
    format!(
        "each cell: median [interval]; step = change over the rung below (ratio of medians \
         with its interval, † below 95% coverage, and the difference of medians); vs native = \
         ratio to native; ⚠gen, ⚠rate, ⚠err as in the tables.{sources}"
    )
}

/// The section for the terminal, `None` without a ladder (fewer than two rungs).
pub(crate) fn terminal(artifact: &Artifact) -> Option<String> {
    let ladder = ladder::ladder(artifact)?;
    let mut table = comfy_table::Table::new();
    table
        .load_preset(presets::UTF8_FULL_CONDENSED)
        .set_content_arrangement(ContentArrangement::Disabled)
        .set_header(header(&ladder));
    for row in rows(&ladder) {
        let cells: Vec<String> = row
            .iter()
            .map(|lines| {
                let lines: Vec<String> =
                    lines.iter().map(|l| super::sanitize_terminal(l)).collect();
                lines.join("\n")
            })
            .collect();
        table.add_row(cells);
    }
    for index in 1..table.column_count() {
        if let Some(column) = table.column_mut(index) {
            column.set_cell_alignment(CellAlignment::Right);
        }
    }
    let mut out = format!("The cost ladder\n{table}\n{}\n", legend(&ladder));
    for sentence in sentences(&ladder) {
        let _ = writeln!(out, "- {}", super::sanitize_terminal(&sentence));
    }
    Some(out)
}

/// The markdown section, `None` without a ladder.
pub(crate) fn markdown(artifact: &Artifact) -> Option<String> {
    let ladder = ladder::ladder(artifact)?;
    let e = escape_markdown;
    let mut out = String::from("\n## The cost ladder\n\n");
    let header = header(&ladder);
    let _ = writeln!(
        out,
        "| {} |",
        header.iter().map(|h| e(h)).collect::<Vec<_>>().join(" | ")
    );
    let alignment: Vec<&str> = (0..header.len())
        .map(|i| if i == 0 { ":---" } else { "---:" })
        .collect();
    let _ = writeln!(out, "| {} |", alignment.join(" | "));
    for row in rows(&ladder) {
        let cells: Vec<String> = row
            .iter()
            .map(|lines| lines.iter().map(|l| e(l)).collect::<Vec<_>>().join("<br>"))
            .collect();
        let _ = writeln!(out, "| {} |", cells.join(" | "));
    }
    let _ = writeln!(out, "\n{}\n", e(&legend(&ladder)));
    for sentence in sentences(&ladder) {
        let _ = writeln!(out, "- {}", e(&sentence));
    }
    Some(out)
}

/// The HTML section with its charts, `None` without a ladder.
pub(crate) fn html(artifact: &Artifact) -> Result<Option<String>, ExportError> {
    let Some(ladder) = ladder::ladder(artifact) else {
        return Ok(None);
    };
    let h = escape_html;
    let mut out = String::from("<h2>The cost ladder</h2>\n<div class=\"wide\"><table>\n<tr>");
    for column in header(&ladder) {
        let _ = write!(out, "<th>{}</th>", h(&column));
    }
    let _ = writeln!(out, "</tr>");
    for row in rows(&ladder) {
        let _ = write!(out, "<tr>");
        for (index, lines) in row.iter().enumerate() {
            let class = if index == 0 { "" } else { " class=\"n\"" };
            let text: Vec<String> = lines.iter().map(|l| h(l)).collect();
            let _ = write!(out, "<td{class}>{}</td>", text.join("<br>"));
        }
        let _ = writeln!(out, "</tr>");
    }
    let _ = writeln!(out, "</table></div>\n<p>{}</p>\n<ul>", h(&legend(&ladder)));
    for sentence in sentences(&ladder) {
        let _ = writeln!(out, "<li>{}</li>", h(&sentence));
    }
    let _ = writeln!(out, "</ul>\n<div class=\"charts\">");
    for metric in [LadderMetric::CpuPerRequest, LadderMetric::P50Latency] {
        if let Some(svg) = charts::ladder_steps(&ladder, metric)? {
            let _ = writeln!(out, "<figure>\n{svg}\n</figure>");
        }
    }
    let _ = writeln!(out, "</div>");
    Ok(Some(out))
}

/// `−12% [−15, −9]`: a ratio as a change in percent with its interval, marked `†` when the
/// interval covers less than 95% (too few rounds), and with the limit marks of either side.
pub(crate) fn percent_change(ratio: &Estimate) -> String {
    let pct = |r: f64| (r - 1.0) * 100.0;
    let mark = if ratio.coverage < stats::CONFIDENCE {
        super::LOW_COVERAGE_MARK
    } else {
        ""
    };
    format!(
        "{} [{}, {}]{mark}{}",
        signed(pct(ratio.median), "%"),
        signed_bare(pct(ratio.ci_low)),
        signed_bare(pct(ratio.ci_high)),
        super::limit_marks(ratio)
    )
}

/// `+12 µs`, `−3.4 ms`: a difference with its sign and three significant digits.
pub(crate) fn signed(value: f64, unit: &str) -> String {
    let space = if unit == "%" || unit.is_empty() {
        ""
    } else {
        " "
    };
    format!("{}{space}{unit}", signed_bare(value))
}

fn signed_bare(value: f64) -> String {
    let magnitude = crate::format::number(value.abs());
    if value < 0.0 {
        format!("−{magnitude}")
    } else {
        format!("+{magnitude}")
    }
}

/// One sentence per rung above the bottom: "container over container-host (Docker's
/// network path: …): throughput −31% [−35, −27], p50 latency +45 µs (+20% [12, 28]), …".
pub(crate) fn sentences(ladder: &Ladder) -> Vec<String> {
    ladder
        .steps
        .iter()
        .filter_map(|step| {
            let below = step.below.as_ref()?;
            let parts: Vec<String> = step
                .costs
                .iter()
                .filter_map(|cost| {
                    let ratio = cost.ratio_over_below.as_ref()?;
                    Some(match (cost.metric, cost.delta_over_below) {
                        (
                            LadderMetric::P50Latency
                            | LadderMetric::CpuPerRequest
                            | LadderMetric::CpuPerSyscall,
                            Some(delta),
                        ) => {
                            format!(
                                "{} {} ({})",
                                cost.metric.name(),
                                signed(delta, cost.metric.unit()),
                                percent_change(ratio)
                            )
                        }
                        _ => format!("{} {}", cost.metric.name(), percent_change(ratio)),
                    })
                })
                .collect();
            (!parts.is_empty()).then(|| {
                format!(
                    "{} over {below} ({}): {}",
                    step.env,
                    step.adds,
                    parts.join(", ")
                )
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::artifact::fixture;

    /// The laddered fixture with its `health` runs copied as the workload scenarios.
    fn with_workloads() -> Artifact {
        let mut artifact = fixture::laddered();
        for env in &mut artifact.environments {
            for round in &mut env.rounds {
                let health: Vec<_> = round
                    .scenarios
                    .iter()
                    .filter(|s| s.scenario == "health" && s.sweep.is_none())
                    .cloned()
                    .collect();
                for name in ["syscalls", "files", "files-nofsync"] {
                    round
                        .scenarios
                        .extend(health.iter().cloned().map(|mut run| {
                            run.scenario = name.to_owned();
                            run
                        }));
                }
            }
        }
        artifact
    }

    #[test]
    fn workload_columns_appear_only_when_their_scenarios_ran() {
        let plain = terminal(&fixture::laddered()).unwrap();
        let worked = terminal(&with_workloads()).unwrap();
        for metric in [
            LadderMetric::SyscallsThroughput,
            LadderMetric::CpuPerSyscall,
            LadderMetric::FilesThroughput,
            LadderMetric::FilesNoFsyncThroughput,
        ] {
            assert!(!plain.contains(metric.name()), "{metric:?} in\n{plain}");
            assert!(
                worked.contains(metric.name()),
                "{metric:?} missing in\n{worked}"
            );
        }
        assert!(worked.contains("CPU per system call (ns)"), "{worked}");
        assert!(
            worked.contains("data directory"),
            "the legend says where files go"
        );
    }

    #[test]
    fn every_format_shows_every_rung_and_metric() {
        let artifact = with_workloads();
        let text = terminal(&artifact).unwrap();
        let md = markdown(&artifact).unwrap();
        let page = html(&artifact).unwrap().unwrap();
        for out in [&text, &md, &page] {
            for name in ["native", "container (over native)", "vm (over container)"] {
                assert!(out.contains(name), "{name} missing in\n{out}");
            }
            for metric in LadderMetric::ALL {
                assert!(out.contains(metric.name()), "{metric:?} missing");
            }
            assert!(out.contains("step "), "{out}");
            assert!(out.contains("vs native "), "{out}");
        }
        assert!(page.contains("the &lt;network&gt; path"), "escaped");
        assert_eq!(page.matches("<svg").count(), 2, "two ladder charts");
    }

    #[test]
    fn no_rungs_no_section() {
        let artifact = fixture::artifact();
        assert!(terminal(&artifact).is_none());
        assert!(markdown(&artifact).is_none());
        assert!(html(&artifact).unwrap().is_none());
    }

    #[test]
    fn sentences_name_the_layer_and_sign_the_change() {
        let ladder = ladder::ladder(&fixture::laddered()).unwrap();
        let sentences = sentences(&ladder);
        assert_eq!(sentences.len(), 2);
        assert!(sentences[0].starts_with("container over native (the <network> path): "));
        assert!(sentences[1].contains("throughput "), "{}", sentences[1]);
        assert_eq!(signed(-12.0, "%"), "−12.0%");
        assert_eq!(signed(45.0, "µs"), "+45.0 µs");
    }
}

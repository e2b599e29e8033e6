//! The terminal report: the headline (four questions, one line per environment), then the
//! full table (comfy-table) grouped by scenario — one row per metric, one column per
//! environment, then the ratios to the baseline and the container-vs-VM column — and a short
//! legend below.

use comfy_table::{CellAlignment, ContentArrangement, presets};

use super::measurements::{Group, measurements};
use super::{
    ExportError, Exporter, LOW_COVERAGE_MARK, NOISY_MARK, capacity_lines, headline_title,
    sanitize_terminal, summary_of,
};
use crate::analysis::{headline, summarize};
use crate::artifact::Artifact;

/// The table printed by `isobench compare` and `isobench run`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Table;

impl Exporter for Table {
    fn render(&self, artifact: &Artifact) -> Result<String, ExportError> {
        let summary = summary_of(artifact);
        let baseline = summary.baseline.as_deref();
        let pair = summarize::container_vm_pair(artifact);

        let mut out = String::new();
        let questions = headline::headline(artifact, &summary);
        if !questions.is_empty() {
            out.push_str(&sanitize_terminal(&headline_title(&summary)));
            out.push('\n');
            for line in super::headline::lines(&questions, baseline) {
                out.push_str(&sanitize_terminal(&line));
                out.push('\n');
            }
            out.push('\n');
        }
        if let Some((title, lines)) = capacity_lines(artifact, &summary) {
            out.push_str(&sanitize_terminal(&title));
            out.push('\n');
            for line in lines {
                out.push_str(&sanitize_terminal(&format!("  {line}")));
                out.push('\n');
            }
            out.push('\n');
        }

        let measured = measurements(artifact, &summary);
        for group in &measured.groups {
            let mut header = vec![sanitize_terminal(&group_title(group))];
            header.extend(
                measured
                    .columns
                    .iter()
                    .map(|column| sanitize_terminal(column.text())),
            );
            let mut table = comfy_table::Table::new();
            table
                .load_preset(presets::UTF8_FULL_CONDENSED)
                // Fixed layout: the output does not depend on the terminal's width, so it is
                // the same on a terminal, in a pipe and in CI logs.
                .set_content_arrangement(ContentArrangement::Disabled)
                .set_header(header);
            for row in &group.rows {
                let mut cells = vec![sanitize_terminal(&row.label)];
                cells.extend(row.cells.iter().cloned());
                table.add_row(cells);
            }
            for index in 1..table.column_count() {
                if let Some(column) = table.column_mut(index) {
                    column.set_cell_alignment(CellAlignment::Right);
                }
            }
            out.push_str(&table.to_string());
            out.push('\n');
        }

        let host = &artifact.host;
        out.push_str(&sanitize_terminal(&format!(
            "host: {} ({} CPUs, kernel {}); {LOW_COVERAGE_MARK} interval below 95% coverage \
             (n < 6, [min, max]); {NOISY_MARK} half-width > 10% or n = 1",
            host.cpu_model, host.logical_cpus, host.kernel
        )));
        out.push('\n');
        if let Some(service) = &artifact.service {
            out.push_str(&sanitize_terminal(&format!(
                "service: {} {}",
                service.name,
                super::service_details(service)
            )));
            out.push('\n');
        }
        // Which side limited which figure: the terminal's reader sees the bottleneck too.
        let limits = super::bottleneck_notes(&summary);
        let limited = summary.rows.iter().any(|row| {
            row.estimates
                .values()
                .chain(row.ratio_to_baseline.values())
                .any(|e| !e.limits.is_empty())
        });
        if limited {
            out.push_str(&sanitize_terminal(&super::limit_legend()));
            out.push('\n');
        }
        {
            for note in limits {
                out.push_str(&sanitize_terminal(&note));
                out.push('\n');
            }
        }
        // The terminal has no environment notes: the warm-up discards are said here.
        for env in &artifact.environments {
            for note in super::warmup_notes(env) {
                out.push_str(&sanitize_terminal(&format!("{}: {note}", env.label.name)));
                out.push('\n');
            }
        }
        if let Some((container, vm)) = &pair {
            out.push_str(&sanitize_terminal(&format!(
                "{container} vs {vm}: positive = {container} better, in % of {vm}'s median"
            )));
            out.push('\n');
        }
        if let Some(section) = super::ladder::terminal(artifact) {
            out.push_str(&section);
        }
        for unavailable in &artifact.unavailable {
            out.push_str(&sanitize_terminal(&format!(
                "not measured: {}: {}",
                unavailable.name, unavailable.reason
            )));
            out.push('\n');
        }
        Ok(out)
    }
}

/// A group's header cell: `health (closed loop, 50 connections: /health)`.
fn group_title(group: &Group) -> String {
    if group.description.is_empty() {
        group.title.clone()
    } else {
        format!("{} ({})", group.title, group.description)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::artifact::fixture;

    #[test]
    fn headline_first_then_tables_grouped_by_scenario() {
        let text = Table.render(&fixture::artifact()).unwrap();
        let first = text.lines().next().unwrap();
        assert!(first.starts_with("What isolation costs"), "{first}");
        let position = |needle: &str| {
            text.find(needle)
                .unwrap_or_else(|| panic!("{needle} missing from {text}"))
        };
        // Headline in the seed's order, then the groups in the order the scenarios ran.
        assert!(position("Startup — ") < position("Memory — "));
        assert!(position("Memory — ") < position("Throughput — "));
        assert!(position("Throughput — ") < position("Response time — "));
        assert!(position("Response time — ") < position("every instance"));
        assert!(position("every instance") < position("health (closed loop"));
        assert!(position("health (closed loop") < position("fixed-rate (open loop at 1000"));
        let header = text.lines().find(|l| l.contains("every instance")).unwrap();
        for column in [
            "native",
            "container",
            "vm (TCG, emulated)",
            "container / native",
            "vm / native",
            "container vs vm",
        ] {
            assert!(header.contains(column), "{column} missing from {header}");
        }
        assert!(text.contains("11.0 ms [10.0, 12.0]†"), "{text}");
        assert!(text.contains("+90.0%"), "{text}");
        assert!(text.contains("not measured: vagrant"), "{text}");
        let legend: Vec<&str> = text
            .lines()
            .skip_while(|l| !l.starts_with("host:"))
            .collect();
        // Host, the limit marks' legend, one line per environment whose requests failed (the
        // fixture has a timeout and a 5xx in every run), one per unsteady window's finding
        // (container warming up and drifting, vm stalled), native's warm-up discard,
        // improvement, not measured.
        assert_eq!(
            legend.len(),
            11,
            "host, limits, warm-up, improvement and not-measured lines: {legend:?}"
        );
        assert!(
            legend.contains(
                &"native: health: 1 of 3 windows began warming up; its first 0.5 s was kept \
                  out of the figures"
            ),
            "{legend:?}"
        );
        assert!(
            legend.contains(
                &"native: requests failed in health (3 rounds), fixed-rate (3 rounds); \
                  bottleneck: the service."
            ),
            "{legend:?}"
        );
    }

    #[test]
    fn terminal_report_snapshot() {
        insta::assert_snapshot!(Table.render(&fixture::artifact()).unwrap());
    }

    #[test]
    fn terminal_escapes_from_artifacts_are_removed() {
        let mut artifact = fixture::artifact();
        artifact.environments[0].label.name = "nat\u{1b}[2Jive".into();
        let text = Table.render(&artifact).unwrap();
        assert!(!text.contains('\u{1b}'));
    }

    #[test]
    fn bench_pair_renders_without_startup() {
        let text = Table.render(&fixture::bench_pair()).unwrap();
        assert!(!text.contains("startup"));
        assert!(text.contains("throughput (bench)"));
        assert!(text.contains("(n=1) ±noisy"));
        assert!(text.contains("+48.8%"), "{text}");
    }
}

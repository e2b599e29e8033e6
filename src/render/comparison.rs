//! Two runs compared (`isobench compare OLD.json NEW.json`): critcmp's side-by-side columns
//! (old, new, change) with a verdict per metric and environment, then hyperfine's "… times
//! faster than before" lines for the significant changes. Terminal and markdown say the same
//! thing in the same order.

use std::fmt::Write as _;

use comfy_table::{CellAlignment, ContentArrangement, presets};

use super::{escape_markdown, estimate_cell, sanitize_terminal};
use crate::analysis::verdict::{Comparison, summary_lines};

const COLUMNS: [&str; 6] = ["metric", "environment", "old", "new", "change", "verdict"];

fn cells(comparison: &Comparison) -> Vec<[String; 6]> {
    comparison
        .changes
        .iter()
        .map(|c| {
            [
                c.metric.clone(),
                c.environment.clone(),
                estimate_cell(&c.old, &c.unit),
                estimate_cell(&c.new, &c.unit),
                c.change_text(),
                c.words().to_owned(),
            ]
        })
        .collect()
}

fn notes(comparison: &Comparison) -> Vec<String> {
    let mut notes = Vec::new();
    if !comparison.only_old.is_empty() {
        notes.push(format!("only in OLD: {}", comparison.only_old.join(", ")));
    }
    if !comparison.only_new.is_empty() {
        notes.push(format!("only in NEW: {}", comparison.only_new.join(", ")));
    }
    notes.push(format!(
        "change = NEW / OLD − 1 with its 95% bootstrap interval; a verdict needs the interval \
         to exclude 0 and a change of at least {:.0}%; intervals from fewer than ~10 rounds \
         are optimistic",
        comparison.noise_threshold * 100.0
    ));
    notes
}

/// The comparison for a terminal.
pub fn terminal(comparison: &Comparison, old: &str, new: &str) -> String {
    let mut out = format!(
        "OLD: {}\nNEW: {}\n\n",
        sanitize_terminal(old),
        sanitize_terminal(new)
    );
    for line in summary_lines(comparison) {
        out.push_str(&sanitize_terminal(&line));
        out.push('\n');
    }
    out.push('\n');
    let mut table = comfy_table::Table::new();
    table
        .load_preset(presets::UTF8_FULL_CONDENSED)
        .set_content_arrangement(ContentArrangement::Disabled)
        .set_header(COLUMNS);
    for row in cells(comparison) {
        table.add_row(row.iter().map(|c| sanitize_terminal(c)));
    }
    for index in 2..5 {
        if let Some(column) = table.column_mut(index) {
            column.set_cell_alignment(CellAlignment::Right);
        }
    }
    out.push_str(&table.to_string());
    out.push('\n');
    for note in notes(comparison) {
        out.push_str(&sanitize_terminal(&note));
        out.push('\n');
    }
    out
}

/// The comparison as GitHub markdown (for a job summary).
pub fn markdown(comparison: &Comparison, old: &str, new: &str) -> String {
    let e = escape_markdown;
    let mut out = String::new();
    // `write!` to a String cannot fail.
    let _ = writeln!(out, "## Compared with the previous run\n");
    let _ = writeln!(out, "- OLD: {}\n- NEW: {}\n", e(old), e(new));
    for line in summary_lines(comparison) {
        let line = line.trim_start();
        if line.starts_with(|c: char| c.is_ascii_digit()) || line.starts_with("No ") {
            let _ = writeln!(out, "{}\n", e(line));
        } else {
            let _ = writeln!(out, "- {}", e(line));
        }
    }
    let _ = writeln!(out, "\n| {} |", COLUMNS.join(" | "));
    let _ = writeln!(out, "| :--- | :--- | ---: | ---: | ---: | :--- |");
    for row in cells(comparison) {
        let row: Vec<String> = row.iter().map(|c| e(c)).collect();
        let _ = writeln!(out, "| {} |", row.join(" | "));
    }
    out.push('\n');
    for note in notes(comparison) {
        let _ = writeln!(out, "- {}", e(&note));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::summarize::summarize;
    use crate::analysis::verdict::compare;
    use crate::artifact::fixture;

    fn slower_vm() -> Comparison {
        let old = fixture::artifact();
        let mut new = fixture::artifact();
        for round in &mut new.environments[2].rounds {
            round.startup_ms = round.startup_ms.map(|s| s * 2.0);
        }
        compare(&old, &summarize(&old), &new, &summarize(&new), 0.02)
    }

    #[test]
    fn terminal_leads_with_the_verdicts_then_the_table() {
        let text = terminal(&slower_vm(), "old.json", "new.json");
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "OLD: old.json");
        assert!(lines[3].starts_with("0 better, 1 worse"), "{text}");
        assert!(lines[4].starts_with("  vm: startup is 2.00 ["), "{text}");
        let row = lines
            .iter()
            .find(|l| l.contains(" startup ") && l.contains(" vm "))
            .unwrap();
        assert!(row.contains("+100.0% [") && row.contains("slower"), "{row}");
        assert!(text.contains("a verdict needs the interval"));
    }

    #[test]
    fn markdown_has_one_row_per_change() {
        let comparison = slower_vm();
        let text = markdown(&comparison, "main", "this run");
        let rows = text.lines().filter(|l| l.starts_with("| ")).count();
        assert_eq!(
            rows,
            comparison.changes.len() + 2,
            "header, alignment and one row per change"
        );
        // Brackets are escaped in markdown; they render as brackets.
        assert!(text.contains("- vm: startup is 2.00 \\["), "{text}");
    }
}

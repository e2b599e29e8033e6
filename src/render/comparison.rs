//! Two runs compared (`isobench compare OLD.json NEW.json`): critcmp's side-by-side columns
//! (old, new, change) with a verdict per metric and environment, then hyperfine's "… times
//! faster than before" lines for the significant changes. Terminal and markdown say the same
//! thing in the same order.

use std::fmt::Write as _;

use comfy_table::{CellAlignment, ContentArrangement, presets};

use super::{escape_markdown, estimate_cell, sanitize_terminal};
use crate::analysis::verdict::{Change, Comparison, Verdict};
use crate::format::number;

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
                change_text(c),
                verdict_words(c),
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
        "change = NEW / OLD − 1 with its distribution-free interval (its coverage is that of \
         the two runs' rounds: 95% needs 7 a side); a verdict needs 95% coverage, the interval \
         to exclude 0, a change of at least {:.0}%, no limited figure on either side, and the \
         same accelerator, host and plan",
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

/// The verdict in the metric's own words: `faster`, `slower`, `less memory`, …, or why
/// there is none.
pub(crate) fn verdict_words(change: &Change) -> String {
    let [better, worse] = words_for(&change.metric);
    match change.verdict {
        Verdict::Better => better.to_owned(),
        Verdict::Worse => worse.to_owned(),
        Verdict::NoChange => "no significant change".to_owned(),
        Verdict::Undecided => format!(
            "no verdict: {}",
            change.why.as_deref().unwrap_or("too few rounds to tell")
        ),
    }
}

/// `+9.1% [+2.0%, +15.0%]`.
pub(crate) fn change_text(change: &Change) -> String {
    let pct = |r: f64| format!("{:+.1}%", (r - 1.0) * 100.0);
    if change.ratio.ci_low == change.ratio.ci_high {
        pct(change.ratio.median)
    } else {
        format!(
            "{} [{}, {}]",
            pct(change.ratio.median),
            pct(change.ratio.ci_low),
            pct(change.ratio.ci_high)
        )
    }
}

/// hyperfine's phrasing: `1.25 [1.10, 1.40] times faster`, as the factor by which NEW is
/// better or worse (always ≥ 1).
pub(crate) fn factor_text(change: &Change) -> String {
    let (low, median, high) = (
        change.ratio.ci_low,
        change.ratio.median,
        change.ratio.ci_high,
    );
    // Express as a factor ≥ 1 in the direction of the change.
    let (median, low, high) = if median >= 1.0 {
        (median, low, high)
    } else {
        (1.0 / median, 1.0 / high, 1.0 / low)
    };
    format!(
        "{} [{}, {}] times {}",
        number(median),
        number(low),
        number(high),
        verdict_words(change)
    )
}

/// Words for better and worse, by what the metric measures.
fn words_for(metric: &str) -> [&'static str; 2] {
    if metric.contains("memory") || metric.starts_with("image size") {
        ["smaller", "larger"]
    } else if metric.starts_with("errors") {
        ["fewer", "more"]
    } else if metric.starts_with("CPU per") {
        ["cheaper", "costlier"]
    } else {
        // Startup, latency and throughput are all speeds.
        ["faster", "slower"]
    }
}

/// hyperfine-style lines for the significant changes: `container: throughput (health) is 1.25
/// [1.10, 1.40] times faster`; one line saying so when nothing changed.
pub(crate) fn summary_lines(comparison: &Comparison) -> Vec<String> {
    let significant: Vec<&Change> = comparison
        .changes
        .iter()
        .filter(|c| matches!(c.verdict, Verdict::Better | Verdict::Worse))
        .collect();
    if significant.is_empty() {
        return vec![format!(
            "No significant change in {} figures (noise threshold {:.0}%).",
            comparison.changes.len(),
            comparison.noise_threshold * 100.0
        )];
    }
    let (better, worse): (Vec<&Change>, Vec<&Change>) = significant
        .iter()
        .copied()
        .partition(|c| c.verdict == Verdict::Better);
    let mut lines = vec![format!(
        "{} better, {} worse, {} unchanged or undecided (noise threshold {:.0}%):",
        better.len(),
        worse.len(),
        comparison.changes.len() - significant.len(),
        comparison.noise_threshold * 100.0
    )];
    for change in worse.iter().chain(&better) {
        lines.push(format!(
            "  {}: {} is {} than before",
            change.environment,
            change.metric,
            factor_text(change)
        ));
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::summarize::summarize;
    use crate::analysis::verdict::compare;
    use crate::artifact::fixture;

    fn slower_vm() -> Comparison {
        // Seven rounds a side, as a default run: intervals at 95%, so verdicts are given.
        let old = fixture::without_errors(fixture::with_rounds(fixture::artifact(), 7));
        let mut new = old.clone();
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
        assert!(text.contains("a verdict needs 95% coverage"));
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

    fn compare_fixture(new: &crate::artifact::Artifact) -> Comparison {
        let old = fixture::artifact();
        compare(&old, &summarize(&old), new, &summarize(new), 0.02)
    }

    #[test]
    fn identical_runs_say_nothing_changed() {
        let comparison = compare_fixture(&fixture::artifact());
        assert_eq!(
            summary_lines(&comparison)[0],
            format!(
                "No significant change in {} figures (noise threshold 2%).",
                comparison.changes.len()
            )
        );
    }

    /// A change of `metric` by the ratio `median [low, high]`, with `verdict`.
    fn change(metric: &str, (median, low, high): (f64, f64, f64), verdict: Verdict) -> Change {
        let estimate = |median, ci_low, ci_high| crate::artifact::Estimate {
            median,
            ci_low,
            ci_high,
            n: 7,
            coverage: 0.98,
            noisy: false,
            limits: Vec::new(),
        };
        Change {
            metric: metric.into(),
            unit: "ms".into(),
            higher_is_better: false,
            environment: "vm".into(),
            old: estimate(1.0, 1.0, 1.0),
            new: estimate(median, low, high),
            ratio: estimate(median, low, high),
            verdict,
            why: None,
        }
    }

    #[test]
    fn verdicts_are_worded_for_what_the_metric_measures() {
        let slower = change("startup", (2.0, 1.8, 2.2), Verdict::Worse);
        assert_eq!(verdict_words(&slower), "slower");
        assert_eq!(change_text(&slower), "+100.0% [+80.0%, +120.0%]");
        assert_eq!(factor_text(&slower), "2.00 [1.80, 2.20] times slower");
        // A ratio below 1 reads as a factor above 1; the interval's ends swap.
        let faster = change("startup", (0.5, 0.4, 0.625), Verdict::Better);
        assert_eq!(change_text(&faster), "-50.0% [-60.0%, -37.5%]");
        assert_eq!(factor_text(&faster), "2.00 [1.60, 2.50] times faster");
        let exact = change("image size", (1.5, 1.5, 1.5), Verdict::Worse);
        assert_eq!(change_text(&exact), "+50.0%");
        assert_eq!(verdict_words(&exact), "larger");
        let memory = change("idle memory", (3.0, 3.0, 3.0), Verdict::Undecided);
        assert_eq!(verdict_words(&memory), "no verdict: too few rounds to tell");
        let same = change("throughput (health)", (1.0, 0.99, 1.01), Verdict::NoChange);
        assert_eq!(verdict_words(&same), "no significant change");
        assert_eq!(
            verdict_words(&change("errors (health)", (0.5, 0.4, 0.6), Verdict::Better)),
            "fewer"
        );
    }

    #[test]
    fn significant_changes_get_a_line_each_worse_first() {
        let comparison = Comparison {
            changes: vec![
                change("throughput (health)", (1.5, 1.4, 1.6), Verdict::Better),
                change("startup", (2.0, 1.8, 2.2), Verdict::Worse),
                change("p50 latency (health)", (1.0, 0.99, 1.01), Verdict::NoChange),
            ],
            ..compare_fixture(&fixture::artifact())
        };
        let lines = summary_lines(&comparison);
        assert_eq!(
            lines[0],
            "1 better, 1 worse, 1 unchanged or undecided (noise threshold 2%):"
        );
        assert_eq!(
            lines[1],
            "  vm: startup is 2.00 [1.80, 2.20] times slower than before"
        );
        assert!(
            lines[2].starts_with("  vm: throughput (health) is 1.50"),
            "{lines:?}"
        );
    }
}

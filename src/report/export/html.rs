//! The HTML report: one self-contained file (inline CSS, inline SVG charts, no scripts and no
//! external references) holding the comparison table, the environments' labels, latency
//! percentile curves per scenario and bars with error bars for throughput, startup and
//! memory. Every string from the artifact is escaped.

use std::fmt::Write as _;

use super::charts;
use super::{
    ENVIRONMENT_COLUMNS, ExportError, Exporter, compared, env_title, environment_cells,
    escape_html, estimate_cell, improvement_cell, method_notes, preparation_note, provenance,
    ratio_cell, summary_of,
};
use crate::report::schema::Artifact;
use crate::report::summarize;

/// A self-contained HTML page.
#[derive(Debug, Clone, Copy, Default)]
pub struct Html;

const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1100px;\
color:#222;padding:0 1em}table{border-collapse:collapse;margin:1em 0;font-size:14px}\
th,td{border:1px solid #ccc;padding:4px 8px}td.n{text-align:right;white-space:nowrap}\
th{background:#f3f3f3}.charts{display:flex;flex-wrap:wrap;gap:8px}\
.swatch{display:inline-block;width:12px;height:12px;margin-right:4px;vertical-align:middle}\
.wide{overflow-x:auto}.problem{color:#a00}footer{color:#666;font-size:13px}";

impl Exporter for Html {
    fn render(&self, artifact: &Artifact) -> Result<String, ExportError> {
        let summary = summary_of(artifact);
        let h = escape_html;
        let mut out = String::new();
        // `write!` to a String cannot fail; the results are ignored on purpose.
        let _ = write!(
            out,
            "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
             <title>isobench report</title>\n<style>{STYLE}</style>\n</head>\n<body>\n\
             <h1>isobench: what does isolation cost a web service?</h1>\n"
        );
        let _ = writeln!(
            out,
            "<p>{}</p>",
            provenance(artifact, escape_html, |host| format!("<b>{host}</b>"))
        );

        // The comparison table.
        let envs = &artifact.environments;
        let baseline = summary.baseline.as_deref();
        let compared = compared(artifact, &summary);
        let pair = summarize::container_vm_pair(artifact);
        let _ = writeln!(
            out,
            "<h2>Comparison</h2>\n<div class=\"wide\"><table>\n<tr><th>metric</th>"
        );
        for (index, env) in envs.iter().enumerate() {
            let _ = writeln!(
                out,
                "<th><span class=\"swatch\" style=\"background:{}\"></span>{}</th>",
                css_color(index),
                h(&env_title(&env.label))
            );
        }
        if let Some(baseline) = baseline {
            for env in &compared {
                let _ = writeln!(out, "<th>{} / {}</th>", h(&env.label.name), h(baseline));
            }
        }
        if let Some((container, vm)) = &pair {
            let _ = writeln!(out, "<th>{} vs {}</th>", h(container), h(vm));
        }
        let _ = writeln!(out, "</tr>");
        for row in &summary.rows {
            let _ = write!(out, "<tr><td>{}</td>", h(&row.metric));
            for env in envs {
                let cell = row
                    .estimates
                    .get(&env.label.name)
                    .map(|e| estimate_cell(e, &row.unit))
                    .unwrap_or_else(|| "—".into());
                let _ = write!(out, "<td class=\"n\">{}</td>", h(&cell));
            }
            if baseline.is_some() {
                for env in &compared {
                    let cell = row
                        .ratio_to_baseline
                        .get(&env.label.name)
                        .map(ratio_cell)
                        .unwrap_or_else(|| "—".into());
                    let _ = write!(out, "<td class=\"n\">{}</td>", h(&cell));
                }
            }
            if pair.is_some() {
                let cell = improvement_cell(row.container_vs_vm_improvement_pct);
                let _ = write!(out, "<td class=\"n\">{}</td>", h(&cell));
            }
            let _ = writeln!(out, "</tr>");
        }
        let _ = writeln!(out, "</table></div>\n<ul>");
        for note in method_notes(&summary, artifact) {
            let _ = writeln!(out, "<li>{}</li>", h(&note));
        }
        let _ = writeln!(out, "</ul>");

        // Charts.
        let _ = writeln!(out, "<h2>Latency percentiles</h2>");
        for scenario in summarize::scenario_names(artifact) {
            let chart = charts::latency_curves(artifact, &scenario)?;
            match chart.svg {
                Some(svg) => {
                    let _ = writeln!(out, "<figure>\n{svg}\n</figure>");
                }
                None => {
                    let _ = writeln!(
                        out,
                        "<p>{}: no latency histogram to draw.</p>",
                        h(&scenario)
                    );
                }
            }
            for problem in chart.problems {
                let _ = writeln!(out, "<p class=\"problem\">{}</p>", h(&problem));
            }
        }
        let _ = writeln!(
            out,
            "<h2>Medians with their intervals</h2>\n<div class=\"charts\">"
        );
        let charted = summary.rows.iter().filter(|row| {
            matches!(
                row.metric.as_str(),
                "startup" | "idle memory" | "peak memory"
            ) || row.metric.starts_with("throughput (")
        });
        for row in charted {
            if let Some(svg) = charts::bars(artifact, row)? {
                let _ = writeln!(out, "<figure>\n{svg}\n</figure>");
            }
        }
        let _ = writeln!(out, "</div>");
        if let Some(svg) = charts::startup_phases(artifact)? {
            let _ = writeln!(out, "<h2>Startup phases</h2>\n<figure>\n{svg}\n</figure>");
        }

        // Environments.
        let _ = write!(
            out,
            "<h2>Environments</h2>\n<div class=\"wide\"><table>\n<tr>"
        );
        for column in ENVIRONMENT_COLUMNS.iter().chain(&["notes"]) {
            let _ = write!(out, "<th>{column}</th>");
        }
        let _ = writeln!(out, "</tr>");
        for env in envs {
            let notes: Vec<String> = env
                .preparation
                .iter()
                .map(preparation_note)
                .chain(env.label.notes.iter().cloned())
                .map(|note| h(&note))
                .collect();
            let cells = environment_cells(env, h);
            let _ = write!(out, "<tr>");
            for (column, cell) in ENVIRONMENT_COLUMNS.iter().zip(&cells) {
                let class = if *column == "rounds" {
                    " class=\"n\""
                } else {
                    ""
                };
                let _ = write!(out, "<td{class}>{cell}</td>");
            }
            let _ = writeln!(out, "<td>{}</td></tr>", notes.join("<br>"));
        }
        let _ = writeln!(out, "</table></div>");
        if !artifact.unavailable.is_empty() {
            let _ = writeln!(out, "<h2>Not measured</h2>\n<ul>");
            for unavailable in &artifact.unavailable {
                let _ = writeln!(
                    out,
                    "<li>{}: {}</li>",
                    h(&unavailable.name),
                    h(&unavailable.reason)
                );
            }
            let _ = writeln!(out, "</ul>");
        }
        let _ = writeln!(
            out,
            "<footer>Generated by isobench {}.</footer>\n</body>\n</html>",
            h(&artifact.tool_version)
        );
        Ok(out)
    }
}

fn css_color(index: usize) -> String {
    let c = charts::color(index);
    format!("#{:02x}{:02x}{:02x}", c.0, c.1, c.2)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::fixture;

    /// The page with every inline SVG replaced by a placeholder that counts its drawn
    /// elements: the structure is pinned, the charting library's exact coordinates are not.
    fn skeleton(html: &str) -> String {
        let mut out = String::new();
        let mut rest = html;
        while let Some(start) = rest.find("<svg") {
            out.push_str(&rest[..start]);
            let end = rest[start..].find("</svg>").expect("closed svg") + start + "</svg>".len();
            let svg = &rest[start..end];
            let _ = write!(
                out,
                "<svg polylines={} rects={} texts={}/>",
                svg.matches("<polyline").count(),
                svg.matches("<rect").count(),
                svg.matches("<text").count()
            );
            rest = &rest[end..];
        }
        out.push_str(rest);
        out
    }

    #[test]
    fn html_report_skeleton_snapshot() {
        let html = Html.render(&fixture::artifact()).unwrap();
        insta::assert_snapshot!(skeleton(&html));
    }

    #[test]
    fn html_is_self_contained() {
        let html = Html.render(&fixture::artifact()).unwrap();
        for external in ["<script", "<link", "src=", "@import", "url("] {
            assert!(!html.contains(external), "found {external}");
        }
        // Four scenario-independent bar charts at most, plus one latency chart per scenario.
        assert!(html.matches("<svg").count() >= 2 + 4);
    }

    #[test]
    fn artifact_text_is_escaped_everywhere() {
        let mut artifact = fixture::artifact();
        artifact.environments[1].label.name = "<script>alert(1)</script>".into();
        artifact.host.hostname = "h\"><img onerror=x>".into();
        artifact.environments[2].rounds[0].scenarios[0].scenario = "<b>bold</b>".into();
        let html = Html.render(&artifact).unwrap();
        assert!(!html.contains("<script"), "unescaped environment name");
        assert!(!html.contains("<img"), "unescaped host name");
        assert!(!html.contains("<b>bold"), "unescaped scenario name");
        assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
    }
}

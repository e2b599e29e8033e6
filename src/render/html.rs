//! The HTML report: one self-contained file (inline CSS, inline SVG charts, no scripts and no
//! external references). Same order as the terminal and markdown: the headline (four
//! questions), checks, then pictures — the headline's figures as bars with error bars and the
//! latency under load per environment — then the full table grouped by scenario, latency
//! percentile curves per scenario, inside each scenario's windows (small multiples of
//! throughput and p99 slice by slice, one panel per environment), the environments' labels
//! and the method. Every chart has a
//! short "how to read this" beside it. The page reflows down to a phone's width (tables
//! scroll sideways, charts scale) and prints cleanly (print stylesheet). Every string from
//! the artifact is escaped.

use std::fmt::Write as _;

use super::charts;
use super::measurements::{Column, measurements};
use super::{
    DRIFT_MARK, ENVIRONMENT_COLUMNS, ExportError, Exporter, STALL_MARK, WARMING_MARK,
    capacity_lines, environment_cells, environment_notes, escape_html, headline_title,
    method_notes, provenance, summary_of,
};
use crate::analysis::{headline, summarize, sweep};
use crate::artifact::{Artifact, CheckStatus, Summary};
use crate::format::{env_title, number};

/// A self-contained HTML page.
#[derive(Debug, Clone, Copy, Default)]
pub struct Html;

const STYLE: &str = "\
*{box-sizing:border-box}\
body{font:16px/1.45 system-ui,-apple-system,'Segoe UI',sans-serif;margin:0 auto;max-width:1100px;\
color:#222;padding:0 16px 2em}\
h1{font-size:1.6em;margin:.8em 0 .3em}h2{font-size:1.3em;border-bottom:1px solid #ddd;\
padding-bottom:4px;margin:1.8em 0 .6em}h3{font-size:1.05em;margin:1.2em 0 .3em}\
.measured{font-weight:normal;color:#555}\
table{border-collapse:collapse;margin:.4em 0;font-size:14px}\
th,td{border:1px solid #ccc;padding:4px 8px;vertical-align:top}th{background:#f3f3f3;\
text-align:left}td.n{text-align:right;white-space:nowrap}\
.wide{overflow-x:auto;-webkit-overflow-scrolling:touch;max-width:100%}\
.better{color:#17662a}.worse{color:#a31515}\
.swatch{display:inline-block;width:12px;height:12px;margin-right:4px;vertical-align:middle}\
.chart{display:flex;flex-wrap:wrap;gap:8px 24px;align-items:flex-start;margin:1em 0 1.6em;\
break-inside:avoid;page-break-inside:avoid}\
.chart figure{margin:0;flex:1 1 360px;min-width:0;max-width:760px}\
.chart figure.small{flex-basis:300px;max-width:380px}\
.chart svg{width:100%;height:auto;display:block}\
.chart .how{flex:1 1 220px;font-size:14px;background:#f6f7f9;border-left:3px solid #99a;\
padding:8px 12px;margin:0}.how h4{margin:0 0 4px;font-size:14px}.how p{margin:.3em 0}\
.grid{display:flex;flex-wrap:wrap;gap:8px;flex:2 1 500px}\
.chart figure.multiples{flex:3 1 600px;max-width:none}\
.panels{display:grid;grid-template-columns:repeat(auto-fill,minmax(240px,1fr));gap:8px}\
.panel{min-width:0}\
.check-pass{color:#17662a}.check-fail{color:#a31515;font-weight:bold}\
.check-inconclusive{color:#8a5200}.problem{color:#a00}footer{color:#666;font-size:13px;\
margin-top:2em}\
@media (max-width:640px){body{font-size:15px;padding:0 10px 2em}h1{font-size:1.3em}\
table{font-size:12.5px}th,td{padding:3px 5px}td.n{white-space:normal}.chart .how{font-size:13px}}\
@media print{body{max-width:none;font-size:10pt;padding:0;color:#000}\
h2{break-after:avoid;page-break-after:avoid}.wide{overflow:visible}\
table{font-size:8pt}th,td{padding:2px 4px}tr{break-inside:avoid;page-break-inside:avoid}\
.chart .how{background:none;border-left:1px solid #000}.chart figure{max-width:48%}\
.chart figure.small{max-width:31%}.chart figure.multiples{max-width:100%}\
.panels{grid-template-columns:repeat(3,1fr)}footer{color:#000}}";

/// "How to read this" for a chart, in a box beside it.
fn how_to_read(out: &mut String, paragraphs: &[String]) {
    let _ = write!(out, "<div class=\"how\"><h4>How to read this</h4>");
    for paragraph in paragraphs {
        let _ = write!(out, "<p>{}</p>", escape_html(paragraph));
    }
    let _ = writeln!(out, "</div>");
}

impl Exporter for Html {
    fn render(&self, artifact: &Artifact) -> Result<String, ExportError> {
        let summary = summary_of(artifact);
        let h = escape_html;
        let mut out = String::new();
        // `write!` to a String cannot fail; the results are ignored on purpose.
        let _ = write!(
            out,
            "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
             <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
             <title>isobench report</title>\n<style>{STYLE}</style>\n</head>\n<body>\n\
             <h1>isobench: what does isolation cost a web service?</h1>\n"
        );
        let _ = writeln!(
            out,
            "<p>{}</p>",
            provenance(artifact, escape_html, |host| format!("<b>{host}</b>"))
        );

        headline_section(&mut out, artifact, &summary);
        checks_section(&mut out, artifact);
        key_charts(&mut out, artifact, &summary)?;
        latency_under_load(&mut out, artifact, &summary)?;
        full_table(&mut out, artifact, &summary);
        if let Some(section) = super::ladder::html(artifact)? {
            out.push_str(&section);
        }
        percentile_curves(&mut out, artifact)?;
        inside_the_window(&mut out, artifact)?;
        if let Some(svg) = charts::startup_phases(artifact)? {
            let _ = writeln!(out, "<h2>Startup phases</h2>\n<figure>\n{svg}\n</figure>");
        }

        // Environments.
        let envs = &artifact.environments;
        let _ = write!(
            out,
            "<h2>Environments</h2>\n<div class=\"wide\"><table>\n<tr>"
        );
        for column in ENVIRONMENT_COLUMNS.iter().chain(&["notes"]) {
            let _ = write!(out, "<th>{column}</th>");
        }
        let _ = writeln!(out, "</tr>");
        for env in envs {
            let notes: Vec<String> = environment_notes(env).iter().map(|n| h(n)).collect();
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
        let _ = writeln!(out, "<h2>How to read the numbers</h2>\n<ul>");
        for note in method_notes(&summary, artifact) {
            let _ = writeln!(out, "<li>{}</li>", h(&note));
        }
        let _ = writeln!(out, "</ul>");
        let _ = writeln!(
            out,
            "<footer>Generated by isobench {}.</footer>\n</body>\n</html>",
            h(&artifact.tool_version)
        );
        Ok(out)
    }
}

fn headline_section(out: &mut String, artifact: &Artifact, summary: &Summary) {
    let h = escape_html;
    let questions = headline::headline(artifact, summary);
    if questions.is_empty() {
        return;
    }
    let ratio_title = summary
        .baseline
        .as_deref()
        .map_or_else(|| "ratio".to_owned(), |b| format!("× {}", h(b)));
    let _ = writeln!(
        out,
        "<h2>Headline</h2>\n<p>{}.</p>",
        h(&headline_title(summary))
    );
    for question in &questions {
        let _ = writeln!(
            out,
            "<h3>{} <span class=\"measured\">— {}</span></h3>\n<div class=\"wide\"><table>\n\
             <tr><th>environment</th><th>median</th><th>{ratio_title} [interval, 95% unless †]</th>\
             <th>in words</th></tr>",
            h(question.title),
            h(&question.measured)
        );
        for answer in &question.answers {
            let class = match answer.better {
                Some(true) => " class=\"better\"",
                Some(false) => " class=\"worse\"",
                None => "",
            };
            let ratio = answer
                .ratio
                .as_ref()
                .map(|r| super::headline::ratio_text(r, None))
                .unwrap_or_else(|| "—".into());
            let _ = writeln!(
                out,
                "<tr><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td{class}>{}</td></tr>",
                h(&answer.environment),
                h(&super::headline::value_text(answer)),
                h(&ratio),
                h(&answer.words)
            );
        }
        let _ = writeln!(out, "</table></div>");
    }
    if let Some((title, lines)) = capacity_lines(artifact, summary) {
        let _ = writeln!(out, "<h3>{}</h3>\n<ul>", h(&title));
        for line in lines {
            let _ = writeln!(out, "<li>{}</li>", h(&line));
        }
        let _ = writeln!(out, "</ul>");
    }
}

fn checks_section(out: &mut String, artifact: &Artifact) {
    if artifact.checks.is_empty() {
        return;
    }
    let _ = writeln!(out, "<h2>Checks</h2>\n<ul>");
    let lines = crate::gate::outcome_lines(&artifact.checks);
    for (outcome, line) in artifact.checks.iter().zip(lines) {
        let class = match outcome.status {
            CheckStatus::Pass => "check-pass",
            CheckStatus::Inconclusive => "check-inconclusive",
            CheckStatus::Fail => "check-fail",
        };
        let _ = writeln!(out, "<li class=\"{class}\">{}</li>", escape_html(&line));
    }
    let _ = writeln!(out, "</ul>");
}

/// Bars with error bars for the headline's figures.
fn key_charts(out: &mut String, artifact: &Artifact, summary: &Summary) -> Result<(), ExportError> {
    let charted: Vec<_> = summary
        .rows
        .iter()
        .filter(|row| {
            matches!(
                row.metric.as_str(),
                "startup" | "idle memory" | "peak memory"
            ) || row.metric.starts_with("throughput (")
        })
        .collect();
    if charted.is_empty() {
        return Ok(());
    }
    let _ = writeln!(
        out,
        "<h2>Medians with their intervals</h2>\n<div class=\"chart\"><div class=\"grid\">"
    );
    for row in charted {
        if let Some(svg) = charts::bars(artifact, row)? {
            let _ = writeln!(out, "<figure class=\"small\">\n{svg}\n</figure>");
        }
    }
    let _ = writeln!(out, "</div>");
    how_to_read(
        out,
        &[
            "Each bar is an environment's median over its rounds (fresh instances); the black \
             whisker is the 95% interval of that median (less than 95% with fewer than 6 \
             rounds: see the table's †)."
                .into(),
            "Bars whose whiskers overlap cannot be told apart. Higher is better only for \
             throughput; for startup and memory, shorter bars are better."
                .into(),
            "A VM labelled TCG is software-emulated: its figures say nothing about a \
             hardware-virtualised VM."
                .into(),
        ],
    );
    let _ = writeln!(out, "</div>");
    Ok(())
}

fn latency_under_load(
    out: &mut String,
    artifact: &Artifact,
    summary: &Summary,
) -> Result<(), ExportError> {
    let curves = sweep::curves(artifact);
    let Some(limit) = summary.p99_limit_ms else {
        return Ok(());
    };
    if curves.is_empty() {
        return Ok(());
    }
    // One latency axis for every environment, so the charts compare at a glance.
    let finite = curves
        .iter()
        .flat_map(|c| &c.points)
        .flat_map(|p| [p.p50_ms, p.p99_ms])
        .filter(|ms| ms.is_finite() && *ms > 0.0);
    let (low, high) = finite.fold((f64::INFINITY, limit), |(lo, hi), ms| {
        (lo.min(ms), hi.max(ms))
    });
    let range = (low.min(limit) * 0.7, high * 1.4);
    let _ = writeln!(
        out,
        "<h2>Latency under load</h2>\n<div class=\"chart\"><div class=\"grid\">"
    );
    for curve in &curves {
        let title = artifact
            .environments
            .get(curve.index)
            .map(|e| env_title(&e.label))
            .unwrap_or_else(|| curve.environment.clone());
        let svg = charts::latency_under_load(curve, &title, range, limit)?;
        let _ = writeln!(out, "<figure class=\"small\">\n{svg}\n</figure>");
    }
    let _ = writeln!(out, "</div>");
    how_to_read(
        out,
        &[
            "Each environment is loaded at a fixed rate (open loop) that rises from a tenth of \
             its own ceiling — the most it served in the closed-loop health scenario, the \
             vertical line — to past it. Latency is counted from when each request was due, so \
             queueing is not hidden (coordinated omission corrected)."
                .into(),
            "Solid with dots: p99, the latency 1 request in 100 exceeds; dashed: p50, the \
             typical request. Where the curves bend upward the service has started to queue; \
             the dotted horizontal line is the p99 limit."
                .into(),
            format!(
                "The highest rate whose p99 stays under {} ms (and the rate was kept, with \
                 almost no errors) is listed in the headline: a capacity you can plan with.",
                number(limit)
            ),
        ],
    );
    let _ = writeln!(out, "</div>");
    if let Some(steps) = super::sweep::html(artifact) {
        out.push_str(&steps);
    }
    Ok(())
}

fn full_table(out: &mut String, artifact: &Artifact, summary: &Summary) {
    let h = escape_html;
    let table = measurements(artifact, summary);
    let _ = writeln!(out, "<h2>All measurements</h2>");
    for group in &table.groups {
        if group.description.is_empty() {
            let _ = writeln!(out, "<h3>{}</h3>", h(&group.title));
        } else {
            let _ = writeln!(
                out,
                "<h3>Scenario {} <span class=\"measured\">— {}</span></h3>",
                h(&group.title),
                h(&group.description)
            );
        }
        let _ = writeln!(out, "<div class=\"wide\"><table>\n<tr><th>metric</th>");
        for column in &table.columns {
            match column {
                Column::Environment { index, title } => {
                    let _ = writeln!(
                        out,
                        "<th><span class=\"swatch\" style=\"background:{}\"></span>{}</th>",
                        css_color(*index),
                        h(title)
                    );
                }
                other => {
                    let _ = writeln!(out, "<th>{}</th>", h(other.text()));
                }
            }
        }
        let _ = writeln!(out, "</tr>");
        for row in &group.rows {
            let _ = write!(out, "<tr><td>{}</td>", h(&row.label));
            for cell in &row.cells {
                let _ = write!(out, "<td class=\"n\">{}</td>", h(cell));
            }
            let _ = writeln!(out, "</tr>");
        }
        let _ = writeln!(out, "</table></div>");
    }
}

fn percentile_curves(out: &mut String, artifact: &Artifact) -> Result<(), ExportError> {
    let h = escape_html;
    let scenarios = summarize::scenario_names(artifact);
    if scenarios.is_empty() {
        return Ok(());
    }
    let _ = writeln!(out, "<h2>Latency percentiles</h2>");
    for scenario in scenarios {
        let chart = charts::latency_curves(artifact, &scenario)?;
        match chart.svg {
            Some(svg) => {
                let _ = writeln!(out, "<div class=\"chart\"><figure>\n{svg}\n</figure>");
                how_to_read(
                    out,
                    &[
                        format!(
                            "Scenario {scenario}: {}.",
                            super::measurements::scenario_description(artifact, &scenario)
                        ),
                        "Each line is one environment's latency (all rounds merged) at every \
                         percentile: left is the typical request, right the slowest. The \
                         horizontal axis is stretched so 90%, 99%, 99.9% are equally spaced, \
                         and the vertical axis is logarithmic."
                            .into(),
                        "A line that is higher everywhere is slower everywhere; a line that \
                         only rises at the right has a worse tail (rare, long stalls)."
                            .into(),
                    ],
                );
                let _ = writeln!(out, "</div>");
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
    Ok(())
}

/// "Inside the window": per scenario (sweep steps are not scenarios), a figure of small
/// multiples — one panel per environment, every round's throughput and p99 slice by slice —
/// with what the steadiness test found in each environment's windows beside it. Left out
/// when no window recorded a series.
fn inside_the_window(out: &mut String, artifact: &Artifact) -> Result<(), ExportError> {
    use crate::analysis::series::{scenario_runs, window_counts};
    let h = escape_html;
    let mut figures = Vec::new();
    for scenario in summarize::scenario_names(artifact) {
        if let Some(panels) = charts::window_multiples(artifact, &scenario)? {
            figures.push((scenario, panels));
        }
    }
    if figures.is_empty() {
        return Ok(());
    }
    let _ = writeln!(out, "<h2>Inside the window</h2>");
    for (scenario, panels) in figures {
        let _ = writeln!(
            out,
            "<h3>Scenario {} <span class=\"measured\">— {}</span></h3>\n\
             <div class=\"chart\"><figure class=\"multiples\" data-scenario=\"{}\">\
             <div class=\"panels\">",
            h(&scenario),
            h(&super::measurements::scenario_description(
                artifact, &scenario
            )),
            h(&scenario)
        );
        for panel in &panels {
            let _ = writeln!(
                out,
                "<div class=\"panel\" data-environment=\"{}\">\n{}\n</div>",
                h(&artifact.environments[panel.index].label.name),
                panel.svg
            );
        }
        let _ = writeln!(out, "</div></figure>");
        let findings: Vec<String> = artifact
            .environments
            .iter()
            .filter_map(|env| {
                let counts = window_counts(scenario_runs(env, &scenario));
                (counts.windows > 0).then(|| {
                    format!(
                        "{}: {}",
                        env.label.name,
                        super::series::findings_words(&counts)
                    )
                })
            })
            .collect();
        let slices: Vec<f64> = artifact
            .environments
            .iter()
            .flat_map(|env| scenario_runs(env, &scenario))
            .filter_map(|run| run.load.series.as_ref().map(|s| s.slice_ms))
            .collect();
        let (least, most) = slices
            .iter()
            .fold((f64::INFINITY, 0.0_f64), |(lo, hi), ms| {
                (lo.min(*ms), hi.max(*ms))
            });
        let slice = if super::series::seconds(least) == super::series::seconds(most) {
            super::series::seconds(most)
        } else {
            format!(
                "{}–{}",
                super::series::seconds(least),
                super::series::seconds(most)
            )
        };
        how_to_read(
            out,
            &[
                format!("Scenario {scenario} — {}.", findings.join(". ")),
                format!(
                    "One panel per environment, one thin line per round (a fresh instance), \
                     across the measured window in {slice} s slices. Top: answers completed \
                     per second of each slice; bottom: the slice's p99 over every request that \
                     ended in it (log scale). Each row has one scale across the panels."
                ),
                format!(
                    "Grey dashed: warm-up slices kept out of the figures. Red band: a stall, \
                     requests waiting and nothing completed. A gap: no request ended in that \
                     slice. Marks on a title, as in the tables: {WARMING_MARK} still warming \
                     up where the window could not be cut (an open loop), {STALL_MARK} a \
                     stall, {DRIFT_MARK} the last third's throughput off the first's by more \
                     than its spread and {}%.",
                    crate::artifact::series::DRIFT_LIMIT_PCT
                ),
            ],
        );
        let _ = writeln!(out, "</div>");
    }
    Ok(())
}

fn css_color(index: usize) -> String {
    let c = charts::color(index);
    format!("#{:02x}{:02x}{:02x}", c.0, c.1, c.2)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::artifact::fixture;

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

    fn exactly_once(html: &str, needle: &str) -> bool {
        html.matches(needle).count() == 1
    }

    #[test]
    fn sweep_charts_and_capacity_appear_with_how_to_read() {
        let html = Html.render(&fixture::with_sweep()).unwrap();
        assert!(html.contains("<h2>Latency under load</h2>"));
        assert_eq!(
            html.matches("latency under load (").count(),
            0,
            "no chart error text"
        );
        assert!(
            html.contains("native: 9000 req/s (at 10000 req/s: p99 10.0 ms; n = 3 rounds)"),
            "capacity"
        );
        // Under the sweep's charts, every step as it was recorded.
        assert!(exactly_once(&html, "<h3>Every step of the sweep</h3>"));
        assert!(
            html.find("<h3>Every step of the sweep</h3>")
                > html.find("<h2>Latency under load</h2>")
        );
        // Every chart block has its explanation: bars, the sweep, one percentile chart and one
        // figure inside the window per scenario (health and fixed-rate).
        assert_eq!(html.matches("<div class=\"how\">").count(), 1 + 1 + 2 + 2);
        // Headline before the table, the table before the percentile curves.
        let at = |needle: &str| html.find(needle).unwrap_or_else(|| panic!("{needle}"));
        assert!(at("<h2>Headline</h2>") < at("<h2>All measurements</h2>"));
        assert!(at("<h2>All measurements</h2>") < at("<h2>Latency percentiles</h2>"));
    }

    /// Writes the fixture's page (with a sweep) under `target/isobench/fixture-report/`, the
    /// page the report's browser screenshots are taken of.
    #[test]
    fn the_fixture_page_is_written_for_a_browser_check() {
        let dir =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/isobench/fixture-report");
        std::fs::create_dir_all(&dir).unwrap();
        let mut artifact = fixture::with_sweep();
        let summary = crate::analysis::summarize::summarize(&artifact);
        artifact.checks = crate::gate::evaluate_all(
            &artifact,
            &summary,
            &[
                crate::gate::parse("container/native throughput >= 0.3").unwrap(),
                crate::gate::parse("vm startup < 0.5s").unwrap(),
                crate::gate::parse("vm startup < 1050ms").unwrap(),
            ],
        );
        artifact.summary = Some(summary);
        let html = Html.render(&artifact).unwrap();
        let path = dir.join("report.html");
        std::fs::write(&path, &html).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), html);
        assert!(html.contains("check-fail") && html.contains("check-pass"));
        assert!(html.contains("check-inconclusive"));
    }

    /// The figure of `scenario` inside the window, from its opening tag to its end.
    fn window_figure<'a>(html: &'a str, scenario: &str) -> &'a str {
        let open = format!("<figure class=\"multiples\" data-scenario=\"{scenario}\">");
        let start = html
            .find(&open)
            .unwrap_or_else(|| panic!("no figure for {scenario}"));
        let end = html[start..].find("</figure>").unwrap() + start;
        &html[start..end]
    }

    /// The panel of `env` in a figure.
    fn panel<'a>(figure: &'a str, env: &str) -> &'a str {
        let open = format!("<div class=\"panel\" data-environment=\"{env}\">");
        let start = figure
            .find(&open)
            .unwrap_or_else(|| panic!("no panel for {env}"));
        let end = figure[start..].find("</div>").unwrap() + start;
        &figure[start..end]
    }

    #[test]
    fn inside_the_window_one_figure_per_scenario_one_panel_per_environment() {
        let html = Html.render(&fixture::with_sweep()).unwrap();
        let at = |needle: &str| html.find(needle).unwrap_or_else(|| panic!("{needle}"));
        assert!(at("<h2>Latency percentiles</h2>") < at("<h2>Inside the window</h2>"));
        // Sweep steps are not scenarios: health and fixed-rate only.
        assert_eq!(html.matches("<figure class=\"multiples\"").count(), 2);
        for scenario in ["health", "fixed-rate"] {
            let figure = window_figure(&html, scenario);
            assert_eq!(
                figure.matches("<div class=\"panel\"").count(),
                3,
                "{scenario}"
            );
            assert_eq!(figure.matches("<svg").count(), 3, "{scenario}");
            for env in ["native", "container", "vm"] {
                assert!(panel(figure, env).contains("<svg"), "{scenario}: {env}");
            }
        }
        let health = window_figure(&html, "health");
        // Each panel's title with the marks its windows earned.
        assert!(panel(health, "vm").contains("vm (TCG, emulated) ⚠stall"));
        assert!(panel(health, "container").contains("container ⚠drift"));
        assert!(panel(window_figure(&html, "fixed-rate"), "container").contains("container ⚠warm"));
        // The stall is a band, the discarded warm-up grey: in those panels only.
        let band = "fill=\"#E63946\"";
        let grey = "stroke=\"#969696\"";
        assert!(panel(health, "vm").contains(band));
        assert!(!panel(health, "native").contains(band));
        assert!(panel(health, "native").contains(grey));
        assert!(!panel(health, "vm").contains(grey));
        // Beside it, what was found, with the warm-up discard said.
        assert!(html.contains(
            "Scenario health — native: 1 of 3 windows began warming up; its first 0.5 s was \
             kept out of the figures. container: 1 of 3 drifted (⚠drift). vm: 1 of 3 stalled \
             (⚠stall)."
        ));
    }

    #[test]
    fn a_panel_without_windows_says_so_and_no_series_no_section() {
        let mut artifact = fixture::artifact();
        for run in artifact.environments[1]
            .rounds
            .iter_mut()
            .flat_map(|r| &mut r.scenarios)
        {
            run.load.series = None;
        }
        let html = Html.render(&artifact).unwrap();
        let health = window_figure(&html, "health");
        assert!(panel(health, "container").contains("no time series recorded"));
        assert!(!panel(health, "native").contains("no time series recorded"));
        let html = Html.render(&fixture::bench_pair()).unwrap();
        assert!(
            !html.contains("Inside the window"),
            "the bench pair has no series"
        );
    }

    #[test]
    fn the_warmup_discard_is_said_in_the_environment_notes() {
        let html = Html.render(&fixture::artifact()).unwrap();
        let environments = &html[html.find("<h2>Environments</h2>").unwrap()..];
        assert!(environments.contains(
            "health: 1 of 3 windows began warming up; its first 0.5 s was kept out of the \
             figures"
        ));
    }

    #[test]
    fn responsive_and_printable() {
        let html = Html.render(&fixture::artifact()).unwrap();
        assert!(html.contains("name=\"viewport\""));
        assert!(html.contains("@media print"));
        assert!(html.contains("@media (max-width:640px)"));
        assert!(html.contains(".chart svg{width:100%;height:auto"));
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

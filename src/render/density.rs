//! The report of `isobench density`: one row per rung (fixed MiB, marginal MiB with its
//! interval, instances per GiB, whether the host agrees, startup of the 1st and N-th
//! instance, the concurrent start), then a line per rung saying why its ramp ended and where
//! the two accountings part. The rows are built once ([`document`]) and printed as a
//! terminal table, markdown or HTML (with a memory-against-N chart per rung);
//! [`write_files`] writes them with the JSON next to them, each atomically.

use std::fmt::Write as _;
use std::path::Path;

use comfy_table::{ContentArrangement, presets};

use super::write::{self, WriteError};
use super::{ExportError, charts, escape_html, escape_markdown, sanitize_terminal};
use crate::analysis::density::summarize;
use crate::artifact::density::{
    Agreement, DensityArtifact, DensityRung, InstanceCount, LinearFit, PageMerging, RampEnd,
    RungSummary,
};
use crate::format::{env_title, number};

/// File name of the density artifact in an output directory.
pub const JSON_FILE: &str = "density.json";
/// File name of the markdown report.
pub const MARKDOWN_FILE: &str = "density.md";
/// File name of the HTML report.
pub const HTML_FILE: &str = "density.html";

const GIB: f64 = (1u64 << 30) as f64;

/// The columns of the table.
const COLUMNS: [&str; 9] = [
    "rung",
    "instances",
    "fixed MiB (a)",
    "marginal MiB (a) [95%]",
    "instances per GiB [95%]",
    "host marginal MiB (b) [95%]",
    "(a) vs (b)",
    "startup 1st / N-th",
    "N concurrent: all answering after",
];

/// The report, built once: a header row, one row per rung, and notes under it.
pub struct Document {
    /// The run's first line (host, margin, settle).
    pub title: String,
    /// One row of [`COLUMNS`] cells per rung.
    pub rows: Vec<Vec<String>>,
    /// One line per rung: why its ramp ended, and what parts (a) from (b).
    pub notes: Vec<String>,
}

/// `m [lo, hi]` for a fit's slope.
fn slope_cell(fit: Option<&LinearFit>) -> String {
    match fit {
        None => "–".into(),
        Some(fit) => match fit.slope_ci95_mib {
            Some((low, high)) => {
                format!(
                    "{} [{}, {}]",
                    number(fit.slope_mib),
                    number(low),
                    number(high)
                )
            }
            None => format!(
                "{} (n = {}, no interval)",
                number(fit.slope_mib),
                fit.points
            ),
        },
    }
}

fn per_gib_cell(summary: &RungSummary) -> String {
    match (summary.instances_per_gib, summary.instances_per_gib_ci95) {
        (Some(point), Some((low, high))) => {
            format!("{} [{}, {}]", number(point), number(low), number(high))
        }
        (Some(point), None) => format!("{} (no interval)", number(point)),
        _ => "–".into(),
    }
}

fn agreement_cell(agreement: &Agreement) -> String {
    match agreement {
        Agreement::TooFewPoints => "– (fewer than 3 instances)".into(),
        Agreement::Agree => "agree".into(),
        Agreement::Part { gap_mib, .. } => format!("part: (b) − (a) = {} MiB", number(*gap_mib)),
    }
}

fn ms(value: Option<f64>) -> String {
    value.map_or_else(|| "–".into(), |ms| format!("{} ms", number(ms)))
}

fn concurrent_cell(rung: &DensityRung, summary: &RungSummary) -> String {
    match &rung.concurrent {
        None => "– (not run)".into(),
        Some(start) => match (start.all_answering_ms, summary.concurrent_instances_per_s) {
            (Some(ms), Some(rate)) => format!(
                "{}: {} ms ({} instances/s)",
                start.instances,
                number(ms),
                number(rate)
            ),
            _ => format!(
                "{}: {} of them failed",
                start.instances,
                start.failures.len()
            ),
        },
    }
}

/// How many instances each ramp aimed at, in words.
fn count_words(count: InstanceCount) -> String {
    match count {
        InstanceCount::Requested { instances } => format!("up to {instances} instances per rung"),
        InstanceCount::Fit {
            share_percent,
            min,
            max,
        } => format!(
            "per rung as many instances as fit {share_percent}% of the memory available above \
             the margin at its first instance's cost, {min} to {max}"
        ),
    }
}

/// How a derived count came about, in words.
fn target_note(rung: &DensityRung, count: InstanceCount) -> Option<String> {
    let (InstanceCount::Fit { share_percent, .. }, Some(fit)) = (count, rung.target.fit) else {
        return None;
    };
    Some(format!(
        "aimed at {} instances: {share_percent}% of {} GiB available above the margin over \
         {} MiB for the first instance is {}{}",
        rung.target.instances,
        number(fit.available_bytes.saturating_sub(fit.margin_bytes) as f64 / GIB),
        number(fit.per_instance_bytes as f64 / (1u64 << 20) as f64),
        fit.fitting,
        if fit.fitting == u64::from(rung.target.instances) {
            String::new()
        } else {
            format!(", bounded to {}", rung.target.instances)
        }
    ))
}

/// Why the rung's ramp ended, in words.
fn end_note(rung: &DensityRung) -> String {
    let requested = rung.target.instances;
    let reached = rung.steps.len();
    match &rung.end {
        RampEnd::Reached => format!("reached {reached} of {requested} instances"),
        RampEnd::Margin {
            available_bytes,
            next_estimate_bytes,
            margin_bytes,
        } => format!(
            "stopped at {reached} of {requested} to keep the host's margin: {} GiB available, \
             the next instance expected to take {} MiB, {} GiB kept free",
            number(*available_bytes as f64 / GIB),
            number(*next_estimate_bytes as f64 / (1u64 << 20) as f64),
            number(*margin_bytes as f64 / GIB)
        ),
        RampEnd::Failed {
            instance, reason, ..
        } => format!("ended at {reached} of {requested}: instance {instance} failed, {reason}"),
    }
}

/// Where (a) and (b) part, in words.
fn agreement_note(summary: &RungSummary) -> Option<String> {
    match summary.agreement {
        Agreement::Part {
            gap_mib,
            page_cache_mib,
            shmem_mib,
            kernel_mib,
        } => Some(format!(
            "the host counts {} MiB per instance {} than the instances' PSS; per instance \
             its page cache moved {} MiB, shared memory {} MiB, kernel memory {} MiB (the host \
             figure also moves with everything else running on it)",
            number(gap_mib.abs()),
            if gap_mib < 0.0 { "less" } else { "more" },
            number(page_cache_mib),
            number(shmem_mib),
            number(kernel_mib)
        )),
        _ => None,
    }
}

/// What page merging saved, in words: by the memory measure and by KSM's own count.
fn merging_note(merging: &PageMerging) -> String {
    const MIB: f64 = (1u64 << 20) as f64;
    let before: u64 = merging.before_bytes.iter().sum();
    let after: u64 = merging.after_bytes.iter().sum();
    let saved = merging.saved_by_measure_bytes() as f64;
    format!(
        "KSM with {} instances running: {} MiB before merging, {} MiB after ({} MiB per \
         instance), {} MiB saved ({}%); KSM's own count: {} MiB saved ({} pages sharing {} \
         merged ones, host-wide); {} full scans in {} s at {} pages every {} ms{}",
        merging.instances,
        number(before as f64 / MIB),
        number(after as f64 / MIB),
        number(after as f64 / MIB / f64::from(merging.instances.max(1))),
        number(saved / MIB),
        number(if before > 0 {
            saved / before as f64 * 100.0
        } else {
            0.0
        }),
        number(merging.saved_by_ksm_bytes() as f64 / MIB),
        merging.pages_sharing,
        merging.pages_shared,
        merging.full_scans,
        number(merging.waited_ms as f64 / 1e3),
        merging.pages_to_scan,
        merging.sleep_millisecs,
        if merging.settled {
            ""
        } else {
            "; not settled when the time allowed ran out"
        }
    )
}

/// The report of `artifact`, its summary computed from the rungs.
pub fn document(artifact: &DensityArtifact) -> Document {
    let settings = &artifact.settings;
    let mut title = format!(
        "density on host {} ({} CPUs, {} GiB): {}, keeping {} GiB available ({}), readings \
         {} after each start",
        artifact.host.hostname,
        artifact.host.logical_cpus,
        number(artifact.host.memory_total_bytes as f64 / GIB),
        count_words(settings.instances),
        number(settings.margin_bytes as f64 / GIB),
        settings.margin_rule,
        settings.settle_ms.map_or_else(
            || "500 ms (5 s in a VM)".to_owned(),
            |ms| format!("{ms} ms")
        )
    );
    if let Some(mb) = settings.hold_mib {
        let _ = write!(title, ", each instance holding {mb} MiB");
    }
    if settings.ksm {
        title.push_str(", KSM page merging after each VM ramp (--ksm)");
    }
    let mut rows = Vec::new();
    let mut notes = Vec::new();
    for rung in &artifact.rungs {
        let summary = summarize(rung);
        let name = env_title(&rung.label);
        rows.push(vec![
            name.clone(),
            summary.instances_reached.to_string(),
            summary
                .instances_fit
                .map_or_else(|| "–".into(), |fit| number(fit.intercept_mib)),
            slope_cell(summary.instances_fit.as_ref()),
            per_gib_cell(&summary),
            slope_cell(summary.host_fit.as_ref()),
            agreement_cell(&summary.agreement),
            format!(
                "{} / {}",
                ms(summary.startup_first_ms),
                ms(summary.startup_last_ms)
            ),
            concurrent_cell(rung, &summary),
        ]);
        if let Some(note) = target_note(rung, settings.instances) {
            notes.push(format!("{name}: {note}"));
        }
        notes.push(format!("{name}: {}", end_note(rung)));
        if let Some(note) = agreement_note(&summary) {
            notes.push(format!("{name}: {note}"));
        }
        if let Some(counts) = &rung.label.memory_counts {
            notes.push(format!("{name}: (a) is {counts}"));
        }
        for problem in &rung.stop_problems {
            notes.push(format!("{name}: {problem}"));
        }
        if let Some(load) = &rung.load {
            let spread = |l: &crate::artifact::density::SpreadLoad| {
                format!(
                    "{} instance(s) over {} connections: {} req/s, p99 {}{}",
                    l.instances,
                    l.connections,
                    number(l.throughput_rps),
                    ms(l.p99_ms),
                    if l.failed_requests > 0 {
                        format!(", {} requests failed", l.failed_requests)
                    } else {
                        String::new()
                    }
                )
            };
            notes.push(format!(
                "{name}: load: {}; {}",
                spread(&load.one),
                spread(&load.all)
            ));
        }
        if let Some(start) = &rung.concurrent {
            for failure in &start.failures {
                notes.push(format!("{name}: concurrent start: {failure}"));
            }
        }
        match &rung.merging {
            Some(merging) => notes.push(format!("{name}: {}", merging_note(merging))),
            None if settings.ksm => notes.push(format!(
                "{name}: KSM: not applied (only a VM's guest RAM can be made mergeable)"
            )),
            None => {}
        }
    }
    for unavailable in &artifact.unavailable {
        notes.push(format!(
            "{}: not measured: {}",
            unavailable.name, unavailable.reason
        ));
    }
    Document { title, rows, notes }
}

/// The terminal table.
pub fn table(artifact: &DensityArtifact) -> String {
    let document = document(artifact);
    let mut table = comfy_table::Table::new();
    table
        .load_preset(presets::UTF8_FULL_CONDENSED)
        .set_content_arrangement(ContentArrangement::Dynamic)
        .set_header(COLUMNS);
    for row in &document.rows {
        table.add_row(row.iter().map(|cell| sanitize_terminal(cell)));
    }
    let mut out = sanitize_terminal(&document.title);
    out.push('\n');
    let _ = writeln!(out, "{table}");
    for note in &document.notes {
        let _ = writeln!(out, "  {}", sanitize_terminal(note));
    }
    out
}

/// The markdown report.
pub fn markdown(artifact: &DensityArtifact) -> String {
    let document = document(artifact);
    let mut out = format!(
        "# isobench density\n\n{}\n\n",
        escape_markdown(&document.title)
    );
    let _ = writeln!(out, "| {} |", COLUMNS.join(" | "));
    let _ = writeln!(out, "|{}", "---|".repeat(COLUMNS.len()));
    for row in &document.rows {
        let cells: Vec<String> = row.iter().map(|cell| escape_markdown(cell)).collect();
        let _ = writeln!(out, "| {} |", cells.join(" | "));
    }
    out.push('\n');
    for note in &document.notes {
        let _ = writeln!(out, "- {}", escape_markdown(note));
    }
    out.push_str(METHOD_MARKDOWN);
    out
}

/// How the figures were made, under every report.
const METHOD_MARKDOWN: &str = "\n(a) is the sum over the live instances of isobench's one \
memory measure (PSS of every host process an instance needs); (b) is the host's MemTotal − \
MemAvailable less its value before the rung's first start. Both are fitted against the number \
of instances by least squares; the marginal cost is the slope, with a 95% interval from \
Student's t on n − 2 degrees of freedom; the fixed cost is (a)'s intercept (pages all \
instances share, counted once); instances per GiB is 1024 / the marginal MiB. (a) and (b) \
agree when their intervals overlap.\n";

/// The HTML report: the table, the notes, and a memory-against-N chart per rung.
pub fn html(artifact: &DensityArtifact) -> Result<String, ExportError> {
    let document = document(artifact);
    let mut out = String::from(
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
         <title>isobench density</title><style>\
         body{font:16px/1.45 system-ui,sans-serif;margin:0 auto;max-width:1100px;padding:0 16px 2em}\
         table{border-collapse:collapse;font-size:14px}th,td{border:1px solid #ccc;padding:4px 8px}\
         th{background:#f3f3f3;text-align:left}.wide{overflow-x:auto}\
         .charts{display:flex;flex-wrap:wrap;gap:8px}.charts svg{max-width:100%;height:auto}\
         </style></head><body><h1>isobench density</h1>",
    );
    let _ = write!(
        out,
        "<p>{}</p><div class=\"wide\"><table><tr>",
        escape_html(&document.title)
    );
    for column in COLUMNS {
        let _ = write!(out, "<th>{}</th>", escape_html(column));
    }
    out.push_str("</tr>");
    for row in &document.rows {
        out.push_str("<tr>");
        for cell in row {
            let _ = write!(out, "<td>{}</td>", escape_html(cell));
        }
        out.push_str("</tr>");
    }
    out.push_str("</table></div><ul>");
    for note in &document.notes {
        let _ = write!(out, "<li>{}</li>", escape_html(note));
    }
    out.push_str("</ul><h2>Memory against instances</h2><div class=\"charts\">");
    for (index, rung) in artifact.rungs.iter().enumerate() {
        let summary = summarize(rung);
        if let Some(svg) = charts::density_memory(rung, summary.instances_fit.as_ref(), index)? {
            out.push_str(&svg);
        }
    }
    let _ = writeln!(
        out,
        "</div><h2>Method</h2><p>{}</p></body></html>",
        escape_html(METHOD_MARKDOWN.trim())
    );
    Ok(out)
}

/// Fills in the summary, then writes [`JSON_FILE`], [`MARKDOWN_FILE`] and [`HTML_FILE`]
/// into `dir`, each atomically: an interrupt at any moment leaves the previous whole files.
pub fn write_files(dir: &Path, artifact: &mut DensityArtifact) -> Result<(), WriteError> {
    artifact.summary = artifact.rungs.iter().map(summarize).collect();
    let json_path = dir.join(JSON_FILE);
    let mut json = serde_json::to_string_pretty(artifact).map_err(|source| WriteError::Json {
        path: json_path.clone(),
        source,
    })?;
    json.push('\n');
    write::atomic(&json_path, json.as_bytes())?;
    write::atomic(&dir.join(MARKDOWN_FILE), markdown(artifact).as_bytes())?;
    let html_path = dir.join(HTML_FILE);
    let page = html(artifact).map_err(|source| WriteError::Render {
        path: html_path.clone(),
        source,
    })?;
    write::atomic(&html_path, page.as_bytes())
}

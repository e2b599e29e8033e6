//! The latency-under-load table, built once for every format: per swept environment, one row
//! per grid step (medians over the rounds, with n) and one per bisection window, each with
//! what the step recorded — the rate asked and kept, the connections, p50 and p99 from each
//! request's due time beside p99 from its actual send, the generator's and the service's CPU,
//! errors — so a figure that looks odd (a p99 at light load above a more isolated rung's) can
//! be read from the artifact: which side was busy, and whether the tail is the service's or
//! the schedule's. The numbers come from [`crate::analysis::sweep`].

use std::fmt::Write as _;

use super::{escape_html, escape_markdown, marks_of};
use crate::analysis::summarize::scenario_limits;
use crate::analysis::sweep::{self, Point};
use crate::artifact::Artifact;
use crate::format::{env_title, number};

/// Column headers of every environment's rows.
pub(crate) const COLUMNS: [&str; 13] = [
    "step (× ceiling)",
    "asked (req/s)",
    "kept (req/s)",
    "connections",
    "p50 (ms)",
    "p99 (ms)",
    "p99 from send (ms)",
    "generator CPU",
    "service CPU",
    "service's CPUs busy",
    "stolen (service's / generator's)",
    "errors",
    "n",
];

/// One environment's rows.
pub(crate) struct EnvironmentSweep {
    /// Its title (with the accelerator for a VM) and ceiling: `native (ceiling 20000 req/s)`.
    pub title: String,
    /// One row of cells per point, grid steps first, then bisection windows.
    pub rows: Vec<Vec<String>>,
}

/// The table: one block per swept environment, in the artifact's order.
pub(crate) fn table(artifact: &Artifact) -> Vec<EnvironmentSweep> {
    sweep::curves(artifact)
        .iter()
        .map(|curve| {
            let env = &artifact.environments[curve.index];
            let service_cpus = env.label.service_cpus.len();
            EnvironmentSweep {
                title: format!(
                    "{} (ceiling {} req/s)",
                    env_title(&env.label),
                    number(curve.ceiling_rps)
                ),
                rows: curve
                    .points
                    .iter()
                    .chain(&curve.bisections)
                    .map(|point| row(point, service_cpus))
                    .collect(),
            }
        })
        .collect()
}

fn row(point: &Point, service_cpus: usize) -> Vec<String> {
    let ms = |x: f64| {
        if x.is_finite() {
            number(x)
        } else {
            "—".into()
        }
    };
    let share = |x: f64| format!("{:.0}%", x * 100.0);
    let step = match point.round {
        Some(round) => format!(
            "{} · bisection, round {}",
            number(point.fraction),
            round + 1
        ),
        None => number(point.fraction),
    };
    let marks = marks_of(&scenario_limits(point.runs.iter().copied(), service_cpus));
    vec![
        step,
        number(point.requested_rps),
        number(point.achieved_rps),
        point.connections.to_string(),
        ms(point.p50_ms),
        format!("{}{marks}", ms(point.p99_ms)),
        point.uncorrected_p99_ms.map_or_else(|| "—".into(), ms),
        share(point.generator_cpu),
        point.service_cpu.map_or_else(|| "—".into(), share),
        point.service_cpus_busy.map_or_else(|| "—".into(), share),
        point.stolen.map_or_else(
            || "—".into(),
            |(service, generator)| format!("{} / {}", share(service), share(generator)),
        ),
        if point.error_ratio > 0.0 {
            format!("{}%", number(point.error_ratio * 100.0))
        } else {
            "0".into()
        },
        point.rounds.to_string(),
    ]
}

/// How to read the table, one sentence each.
pub(crate) fn notes() -> Vec<String> {
    vec![
        "Each step is open-loop load on the ceiling's own path over the ceiling's own \
         connections, at a fraction of the ceiling (the closed-loop health throughput of the \
         same round); grid steps are medians over n rounds, a bisection window is one round's \
         extra window between its last step that met the p99 limit and its first that missed."
            .into(),
        "p50 and p99 count every request from when it was due whenever the service had held \
         its connection past that time (coordinated omission corrected), and from its actual \
         send when the connection was idle; p99 from send is the answered requests' p99 from \
         the actual send alone. Where the two agree, the tail is the service's own answer \
         time, not a queue behind the schedule."
            .into(),
        "Generator and service CPU are shares of the CPUs each had over the window; the \
         service's CPUs busy is what anything used of them over the step (the service's own \
         share, and whatever else ran there: another process, docker-proxy, a kernel thread), \
         and stolen what a hypervisor under this machine took from the service's and the \
         generator's CPUs (0 on bare metal), from the host's /proc/stat in 10 ms ticks. At \
         light load the p99 is the slowest 1% of a few thousand answers: a handful of waits \
         for a CPU that something else held sets it, so a light-load p99 far above p50, with \
         the service's CPUs busier than the service or stolen beside it, is the machine's, \
         not the rung's."
            .into(),
    ]
}

/// The markdown section, `None` without a sweep.
pub(crate) fn markdown(artifact: &Artifact) -> Option<String> {
    let blocks = table(artifact);
    if blocks.is_empty() {
        return None;
    }
    let e = escape_markdown;
    let mut out = String::from("### Every step of the sweep\n\n");
    for block in &blocks {
        let _ = writeln!(out, "**{}**\n", e(&block.title));
        let _ = writeln!(
            out,
            "| {} |",
            COLUMNS.iter().map(|c| e(c)).collect::<Vec<_>>().join(" | ")
        );
        let alignment: Vec<&str> = (0..COLUMNS.len())
            .map(|i| if i == 0 { ":---" } else { "---:" })
            .collect();
        let _ = writeln!(out, "| {} |", alignment.join(" | "));
        for row in &block.rows {
            let cells: Vec<String> = row.iter().map(|c| e(c)).collect();
            let _ = writeln!(out, "| {} |", cells.join(" | "));
        }
        out.push('\n');
    }
    for note in notes() {
        let _ = writeln!(out, "- {}", e(&note));
    }
    out.push('\n');
    Some(out)
}

/// The HTML section under the sweep's charts, `None` without a sweep.
pub(crate) fn html(artifact: &Artifact) -> Option<String> {
    let blocks = table(artifact);
    if blocks.is_empty() {
        return None;
    }
    let h = escape_html;
    let mut out = String::from("<h3>Every step of the sweep</h3>\n");
    for block in &blocks {
        let _ = writeln!(
            out,
            "<div class=\"wide\"><table>\n<caption>{}</caption>\n<tr>",
            h(&block.title)
        );
        for column in COLUMNS {
            let _ = write!(out, "<th>{}</th>", h(column));
        }
        let _ = writeln!(out, "</tr>");
        for row in &block.rows {
            let _ = write!(out, "<tr>");
            for (index, cell) in row.iter().enumerate() {
                let class = if index == 0 { "" } else { " class=\"n\"" };
                let _ = write!(out, "<td{class}>{}</td>", h(cell));
            }
            let _ = writeln!(out, "</tr>");
        }
        let _ = writeln!(out, "</table></div>");
    }
    let _ = writeln!(out, "<ul>");
    for note in notes() {
        let _ = writeln!(out, "<li>{}</li>", h(&note));
    }
    let _ = writeln!(out, "</ul>");
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::artifact::fixture;

    #[test]
    fn every_step_shows_what_it_recorded() {
        let mut artifact = fixture::with_sweep();
        // The first native round's 0.1 step: its generator saturated, its answers' tail
        // measured from the send as well.
        let run = artifact.environments[0].rounds[0]
            .scenarios
            .iter_mut()
            .find(|s| s.sweep.as_ref().is_some_and(|s| s.fraction == 0.1))
            .unwrap();
        run.load.generator.bottleneck = true;
        run.load.generator.cpu_utilisation = 0.97;
        let mut from_send = run.load.latency.clone();
        from_send.p99_us = 900.0;
        run.load.uncorrected_latency = Some(from_send);
        let blocks = table(&artifact);
        assert_eq!(blocks.len(), 3);
        assert_eq!(blocks[0].title, "native (ceiling 10000 req/s)");
        assert_eq!(blocks[0].rows.len(), fixture::SWEEP_FRACTIONS.len());
        let first = &blocks[0].rows[0];
        assert_eq!(first.len(), COLUMNS.len());
        // 0.1 of the ceilings 10000, 10200, 9800; p99 = 1 / (1 − 0.09) ms.
        assert_eq!(
            first,
            &[
                "0.100",
                "1000",
                "1000",
                "50",
                "0.366",
                "1.10 ⚠gen",
                "0.900",
                "20%",
                "—",
                "—",
                "—",
                "0",
                "3"
            ]
        );
        let text = markdown(&artifact).unwrap();
        assert!(
            text.contains("| step (× ceiling) | asked (req/s) |"),
            "{text}"
        );
        assert!(text.contains("p99 from send"), "{text}");
        assert!(
            html(&artifact)
                .unwrap()
                .contains("<caption>native (ceiling")
        );
        assert!(markdown(&fixture::artifact()).is_none());
    }
}

//! A window's time series in words, in one terminal line and as CSV: the sparkline and the
//! steadiness verdict `isobench bench` prints, the CSV its `--series-csv` writes, and the
//! warm-up notes every report shows beside a scenario's figures. The numbers come from
//! [`crate::analysis::series`]; only the wording is here.

use std::fmt::Write as _;

use crate::analysis::series::{
    WindowCounts, discarded_ms, slice_spans_ms, stall_spans_ms, throughput_rps,
};
use crate::artifact::series::WindowSeries;

/// The eight levels of a sparkline, lowest first.
const LEVELS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];
/// A slice in which nothing completed, or whose throughput is unknown: a gap, so a stall
/// stands out from a slow slice (which is `▁`).
const EMPTY: char = ' ';
/// Between the discarded warm-up slices and the ones the figures count.
const DISCARD_SEPARATOR: char = '┊';

/// One character per value, on a scale from zero to the largest value: `v` gets level
/// ⌈8·v/max⌉ (so only the largest values are `█` and any value above zero is at least `▁`);
/// zero and unknown values are a blank. The scale starts at zero, not at the smallest value,
/// so a steady window reads as a flat top row and a dip's depth is its real size.
pub fn sparkline(values: &[Option<f64>]) -> String {
    let max = values
        .iter()
        .flatten()
        .copied()
        .filter(|v| v.is_finite())
        .fold(0.0_f64, f64::max);
    values
        .iter()
        .map(|value| match value {
            Some(v) if *v > 0.0 && v.is_finite() && max > 0.0 => {
                let level = (v / max * LEVELS.len() as f64).ceil() as usize;
                LEVELS[level.clamp(1, LEVELS.len()) - 1]
            }
            _ => EMPTY,
        })
        .collect()
}

/// Seconds from milliseconds, with at most two decimals and no trailing zeros: `0.3`, `2.5`,
/// `5`.
pub fn seconds(ms: f64) -> String {
    let text = format!("{:.2}", ms / 1000.0);
    let text = text.trim_end_matches('0').trim_end_matches('.');
    if text == "-0" {
        "0".into()
    } else {
        text.into()
    }
}

/// A percentage with its sign, a true minus for negative values: `−48%`, `+12%`.
fn signed_pct(pct: f64) -> String {
    let rounded = pct.round();
    if rounded < 0.0 {
        format!("−{}%", -rounded)
    } else {
        format!("+{rounded}%")
    }
}

/// The steadiness verdict in words: `steady`, or what was found, `; `-separated: `warming
/// up, 2 slices discarded (the first 0.5 s)`, `still warming up (kept in the figures)`,
/// `stall at 0.3–0.6 s`, `drifted −48%`, `not judged: REASON`.
pub fn steadiness_words(series: &WindowSeries) -> String {
    let steadiness = &series.steadiness;
    let mut parts = Vec::new();
    if series.discarded_slices > 0 {
        let n = series.discarded_slices;
        parts.push(format!(
            "warming up, {n} slice{} discarded (the first {} s)",
            if n == 1 { "" } else { "s" },
            seconds(discarded_ms(series))
        ));
    }
    if let Some(reason) = &steadiness.not_judged {
        parts.push(format!("not judged: {reason}"));
    }
    if steadiness.warming_up {
        parts.push("still warming up (kept in the figures)".into());
    }
    for (start, end) in stall_spans_ms(series) {
        parts.push(format!("stall at {}–{} s", seconds(start), seconds(end)));
    }
    if steadiness.drifted {
        parts.push(match steadiness.drift_pct {
            Some(pct) => format!("drifted {}", signed_pct(pct)),
            None => "drifted".into(),
        });
    }
    if parts.is_empty() {
        "steady".into()
    } else {
        parts.join("; ")
    }
}

/// `isobench bench`'s line under its summary: the throughput of every slice as a sparkline
/// (the discarded warm-up slices before a `┊`), its scale, and the verdict, e.g.
/// `throughput per 250 ms slice (█ = 10.2k req/s): ▃▇┊████▇███ — warming up, 2 slices
/// discarded (the first 0.5 s)`.
pub fn series_line(series: &WindowSeries) -> String {
    let throughput = throughput_rps(series);
    let max = throughput.iter().flatten().copied().fold(0.0_f64, f64::max);
    let line = sparkline(&throughput);
    let discarded = series.discarded_slices.min(throughput.len());
    let line = if discarded > 0 {
        let mut chars: Vec<char> = line.chars().collect();
        chars.insert(discarded, DISCARD_SEPARATOR);
        chars.into_iter().collect()
    } else {
        line
    };
    format!(
        "throughput per {} ms slice (█ = {} req/s): {line} — {}",
        crate::format::number(series.slice_ms),
        crate::format::number(max),
        steadiness_words(series)
    )
}

/// One CSV field: as it is, or quoted (RFC 4180) when it holds a comma, a quote or a line
/// break, which only a hand-edited error kind could.
fn field(text: &str) -> String {
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.to_owned()
    }
}

/// The series as CSV, one row per slice: `start_ms,end_ms,ok`, one `errors_KIND` column per
/// kind of failure that occurred, `in_flight,p50_us,p99_us,throughput_rps`, then
/// `discarded_warmup` and `stalled` (1 or 0), and `service_cpu_s`, `memory_bytes` where the
/// service was read. An unknown figure is an empty field.
pub fn csv(series: &WindowSeries) -> String {
    let mut header: Vec<String> = vec!["start_ms".into(), "end_ms".into(), "ok".into()];
    header.extend(
        series
            .errors
            .keys()
            .map(|kind| field(&format!("errors_{kind}"))),
    );
    header.extend(
        [
            "in_flight",
            "p50_us",
            "p99_us",
            "throughput_rps",
            "discarded_warmup",
            "stalled",
        ]
        .map(String::from),
    );
    let cpu = !series.service_cpu_s.is_empty();
    let memory = !series.memory_bytes.is_empty();
    if cpu {
        header.push("service_cpu_s".into());
    }
    if memory {
        header.push("memory_bytes".into());
    }
    let mut out = header.join(",");
    out.push('\n');
    let stalls = stall_spans_ms(series);
    let throughput = throughput_rps(series);
    let text = |value: Option<String>| value.unwrap_or_default();
    for (i, (start, end)) in slice_spans_ms(series).into_iter().enumerate() {
        let mut row = vec![start.to_string(), end.to_string(), series.ok[i].to_string()];
        row.extend(
            series
                .errors
                .values()
                .map(|counts| text(counts.get(i).map(u64::to_string))),
        );
        let stalled = stalls.iter().any(|(a, b)| *a <= start && end <= *b);
        row.extend([
            text(series.in_flight.get(i).map(u64::to_string)),
            text(
                series
                    .p50_us
                    .get(i)
                    .copied()
                    .flatten()
                    .map(|v| v.to_string()),
            ),
            text(
                series
                    .p99_us
                    .get(i)
                    .copied()
                    .flatten()
                    .map(|v| v.to_string()),
            ),
            text(throughput[i].map(|v| format!("{v:.1}"))),
            u8::from(i < series.discarded_slices).to_string(),
            u8::from(stalled).to_string(),
        ]);
        if cpu {
            row.push(text(
                series
                    .service_cpu_s
                    .get(i)
                    .copied()
                    .flatten()
                    .map(|v| v.to_string()),
            ));
        }
        if memory {
            row.push(text(
                series
                    .memory_bytes
                    .get(i)
                    .copied()
                    .flatten()
                    .map(|v| v.to_string()),
            ));
        }
        let _ = writeln!(out, "{}", row.join(","));
    }
    out
}

/// "`N` of `M` windows began warming up; their first 0.5 s were kept out of the figures"
/// (with the least and the most discarded where they differ); `None` when no window was cut.
pub(crate) fn discard_words(counts: &WindowCounts) -> Option<String> {
    if counts.discarded == 0 {
        return None;
    }
    let (least, most) = counts.discarded_ms;
    let span = if seconds(least) == seconds(most) {
        seconds(most)
    } else {
        format!("{}–{}", seconds(least), seconds(most))
    };
    let windows = if counts.windows == 1 {
        "window"
    } else {
        "windows"
    };
    Some(if counts.discarded == 1 {
        format!(
            "1 of {} {windows} began warming up; its first {span} s was kept out of the \
             figures",
            counts.windows
        )
    } else {
        format!(
            "{} of {} {windows} began warming up; their first {span} s were kept out of the \
             figures",
            counts.discarded, counts.windows
        )
    })
}

/// The note beside a scenario's figures: `health: 3 of 7 windows began warming up; their
/// first 0.5 s were kept out of the figures`; `None` when no window was cut.
pub(crate) fn warmup_note(scenario: &str, counts: &WindowCounts) -> Option<String> {
    discard_words(counts).map(|words| format!("{scenario}: {words}"))
}

/// Everything the steadiness test found in one environment's windows of a scenario, in
/// words with the table's marks: `1 of 3 windows began warming up; its first 0.5 s was kept
/// out of the figures; 1 of 3 stalled (⚠stall)`, or `all 3 windows steady`.
pub(crate) fn findings_words(counts: &WindowCounts) -> String {
    use super::{DRIFT_MARK, STALL_MARK, WARMING_MARK};
    let total = counts.windows;
    let mut parts: Vec<String> = discard_words(counts).into_iter().collect();
    for (count, what) in [
        (
            counts.warming_up,
            format!("still warming up where the window could not be cut ({WARMING_MARK})"),
        ),
        (counts.stalled, format!("stalled ({STALL_MARK})")),
        (counts.drifted, format!("drifted ({DRIFT_MARK})")),
        (counts.not_judged, "not judged (too few slices)".to_owned()),
    ] {
        if count > 0 {
            parts.push(format!("{count} of {total} {what}"));
        }
    }
    if parts.is_empty() {
        match total {
            1 => "its one window steady".into(),
            n => format!("all {n} windows steady"),
        }
    } else {
        parts.join("; ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::artifact::series::{Stall, Steadiness};

    fn series(ok: Vec<u64>) -> WindowSeries {
        let n = ok.len();
        WindowSeries {
            slice_ms: 100.0,
            window_ms: n as f64 * 100.0,
            ok,
            errors: Default::default(),
            in_flight: vec![4; n],
            p50_us: vec![Some(500.0); n],
            p99_us: vec![Some(2000.0); n],
            service_cpu_s: Vec::new(),
            memory_bytes: Vec::new(),
            discarded_slices: 0,
            steadiness: Steadiness::default(),
        }
    }

    #[test]
    fn sparkline_maps_zero_to_max_onto_eight_levels() {
        let values: Vec<Option<f64>> = (0..=8).map(|v| Some(f64::from(v))).collect();
        assert_eq!(sparkline(&values), " ▁▂▃▄▅▆▇█");
        // Any value above zero is at least the lowest level; unknown values are gaps.
        assert_eq!(
            sparkline(&[Some(100.0), Some(99.0), Some(0.5), None, Some(50.0)]),
            "██▁ ▄"
        );
        assert_eq!(sparkline(&[Some(0.0), Some(0.0)]), "  ");
        assert_eq!(sparkline(&[]), "");
    }

    #[test]
    fn the_verdict_says_what_was_found() {
        let steady = series(vec![10; 10]);
        assert_eq!(steadiness_words(&steady), "steady");
        assert_eq!(
            series_line(&steady),
            "throughput per 100 ms slice (█ = 100 req/s): ██████████ — steady"
        );

        let mut warm = series(vec![2, 6, 10, 10, 10, 10]);
        warm.discarded_slices = 2;
        assert_eq!(
            series_line(&warm),
            "throughput per 100 ms slice (█ = 100 req/s): ▂▅┊████ — warming up, 2 slices \
             discarded (the first 0.2 s)"
        );

        let mut stalled = series(vec![10, 10, 10, 0, 0, 0, 10]);
        stalled.steadiness.stalls = vec![Stall {
            first_slice: 3,
            slices: 3,
        }];
        assert_eq!(
            series_line(&stalled),
            "throughput per 100 ms slice (█ = 100 req/s): ███   █ — stall at 0.3–0.6 s"
        );

        let mut drifted = series(vec![10, 10, 8, 6, 5, 5]);
        drifted.steadiness.drift_pct = Some(-48.4);
        drifted.steadiness.drifted = true;
        drifted.steadiness.warming_up = true;
        assert_eq!(
            steadiness_words(&drifted),
            "still warming up (kept in the figures); drifted −48%"
        );
        let mut unjudged = series(vec![1, 1]);
        unjudged.steadiness.not_judged = Some("too few slices".into());
        assert_eq!(steadiness_words(&unjudged), "not judged: too few slices");
    }

    #[test]
    fn seconds_drop_trailing_zeros() {
        assert_eq!(seconds(300.0), "0.3");
        assert_eq!(seconds(2500.0), "2.5");
        assert_eq!(seconds(5000.0), "5");
        assert_eq!(seconds(250.0), "0.25");
        assert_eq!(seconds(0.0), "0");
    }

    #[test]
    fn csv_has_one_row_per_slice_with_the_last_one_shorter() {
        let mut s = series(vec![40, 0, 10]);
        s.window_ms = 250.0;
        s.discarded_slices = 1;
        s.p50_us[1] = None;
        s.p99_us[1] = None;
        s.errors.insert("timeout".into(), vec![0, 2, 0]);
        s.errors.insert("status_5xx".into(), vec![1, 0, 0]);
        s.steadiness.stalls = vec![Stall {
            first_slice: 1,
            slices: 1,
        }];
        assert_eq!(
            csv(&s),
            "start_ms,end_ms,ok,errors_status_5xx,errors_timeout,in_flight,p50_us,p99_us,\
             throughput_rps,discarded_warmup,stalled\n\
             0,100,40,1,0,4,500,2000,400.0,1,0\n\
             100,200,0,0,2,4,,,0.0,0,1\n\
             200,250,10,0,0,4,500,2000,200.0,0,0\n"
        );
        s.service_cpu_s = vec![Some(0.05), None, Some(0.025)];
        s.memory_bytes = vec![Some(1_048_576), Some(1_052_672), None];
        let text = csv(&s);
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].ends_with(",stalled,service_cpu_s,memory_bytes"));
        assert_eq!(lines[1], "0,100,40,1,0,4,500,2000,400.0,1,0,0.05,1048576");
        assert_eq!(lines[2], "100,200,0,0,2,4,,,0.0,0,1,,1052672");
        assert_eq!(lines[3], "200,250,10,0,0,4,500,2000,200.0,0,0,0.025,");
    }

    #[test]
    fn warmup_notes_count_windows_and_time() {
        let mut counts = WindowCounts {
            windows: 7,
            discarded: 3,
            discarded_ms: (500.0, 500.0),
            ..WindowCounts::default()
        };
        assert_eq!(
            warmup_note("health", &counts).unwrap(),
            "health: 3 of 7 windows began warming up; their first 0.5 s were kept out of the \
             figures"
        );
        counts.discarded_ms = (250.0, 750.0);
        assert!(
            warmup_note("health", &counts)
                .unwrap()
                .contains("their first 0.25–0.75 s were")
        );
        counts.discarded = 1;
        assert_eq!(
            discard_words(&counts).unwrap(),
            "1 of 7 windows began warming up; its first 0.25–0.75 s was kept out of the figures"
        );
        counts.discarded = 0;
        assert_eq!(warmup_note("health", &counts), None);
        counts.stalled = 2;
        assert_eq!(findings_words(&counts), "2 of 7 stalled (⚠stall)");
        counts.stalled = 0;
        assert_eq!(findings_words(&counts), "all 7 windows steady");
    }
}

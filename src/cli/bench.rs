//! `isobench bench`: load one URL, print a summary, optionally write a JSON artifact.
//!
//! The successor of the seed's `python benchmark.py --url URL --output FILE`. The artifact
//! holds one environment of kind `external` with one round and one scenario named `bench`,
//! so `isobench compare` reads it like any other run.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};
use comfy_table::{Cell, CellAlignment, Table, presets::UTF8_FULL_CONDENSED};

use crate::artifact::load::{LoadReport, PathWeight};
use crate::artifact::{Artifact, EnvKind, EnvironmentLabel, EnvironmentResult, Round, ScenarioRun};
use crate::load::{self, LoadOptions};

/// How long to wait for the target's `/status` when labelling the artifact; a target that
/// does not answer quickly is simply not labelled.
const STATUS_WAIT: Duration = Duration::from_secs(2);
/// An open-loop run that sent less than this share of the requested rate gets a warning.
const RATE_SHORTFALL: f64 = 0.95;
/// Measured window when neither `--duration` nor `--requests` is given.
const DEFAULT_DURATION: Duration = Duration::from_secs(10);

/// Options of `isobench bench`.
#[derive(Debug, Clone, clap::Args)]
pub struct BenchArgs {
    /// Target URL, e.g. `http://127.0.0.1:8080/health`; its path and query are what is sent
    /// unless `--scenario` is given.
    #[arg(long, short = 'u')]
    pub url: String,

    /// Paths and weights, comma-separated `PATH[:WEIGHT]`, e.g. `health:8,/cpu?n=20000:2`.
    /// Short names: health, cpu, memory, parallel, status.
    #[arg(long, short = 's')]
    pub scenario: Option<String>,

    /// Concurrent connections.
    #[arg(long, short = 'c', default_value_t = 50)]
    pub connections: usize,

    /// How long to measure, e.g. `5s`, `500ms` (default 10s unless `--requests` is given).
    #[arg(long, short = 'd', value_parser = humantime::parse_duration)]
    pub duration: Option<Duration>,

    /// How many requests to measure (with `--duration` too, whichever comes first).
    #[arg(long, short = 'n')]
    pub requests: Option<u64>,

    /// Load sent before measuring, not counted.
    #[arg(long, default_value = "1s", value_parser = humantime::parse_duration)]
    pub warmup: Duration,

    /// Open loop at this total rate (requests per second), latency corrected for
    /// coordinated omission; without it, closed loop.
    #[arg(long, short = 'r')]
    pub rate: Option<f64>,

    /// Per-request timeout, connecting included.
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    pub timeout: Duration,

    /// Open a new connection for every request.
    #[arg(long)]
    pub no_keep_alive: bool,

    /// Pin the generator's threads to these CPUs, e.g. `0` or `0,2-3` (one thread each).
    #[arg(long, value_parser = parse_cpu_list)]
    pub cpus: Option<CpuList>,

    /// Name of the target in the artifact (default: the URL's host:port).
    #[arg(long)]
    pub name: Option<String>,

    /// Write a JSON artifact here.
    #[arg(long, short = 'o')]
    pub output: Option<PathBuf>,

    /// Write the measured window's time series here as CSV, one row per slice: start_ms,
    /// end_ms, ok, errors_KIND per kind that occurred, in_flight, p50_us, p99_us,
    /// throughput_rps, discarded_warmup, stalled.
    #[arg(long, value_name = "FILE")]
    pub series_csv: Option<PathBuf>,

    /// Never show the live progress display.
    #[arg(long)]
    pub no_progress: bool,

    /// HTTP client: `lean` (prepared requests, minimal parsing, the fast default) or
    /// `hyper` (the full client, for comparison).
    #[arg(long, value_enum, default_value_t = load::ClientKind::Lean)]
    pub client: load::ClientKind,
}

/// A list of CPU numbers, written `0,2-3`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CpuList(pub Vec<usize>);

/// Why a CPU list does not parse.
#[derive(Debug, thiserror::Error)]
pub enum CpuListError {
    /// A part is not a number.
    #[error("{0:?} is not a CPU number")]
    NotANumber(String),
    /// A range's end is below its start.
    #[error("{0:?}: range runs backwards")]
    Backwards(String),
    /// Nothing was listed.
    #[error("no CPUs given")]
    Empty,
}

/// Parses `0,2-3` into `[0, 2, 3]`.
pub fn parse_cpu_list(text: &str) -> Result<CpuList, CpuListError> {
    let mut cpus = Vec::new();
    for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let number = |s: &str| {
            s.trim()
                .parse::<usize>()
                .map_err(|_| CpuListError::NotANumber(s.to_owned()))
        };
        match part.split_once('-') {
            Some((low, high)) => {
                let (low, high) = (number(low)?, number(high)?);
                if low > high {
                    return Err(CpuListError::Backwards(part.to_owned()));
                }
                cpus.extend(low..=high);
            }
            None => cpus.push(number(part)?),
        }
    }
    if cpus.is_empty() {
        return Err(CpuListError::Empty);
    }
    cpus.sort_unstable();
    cpus.dedup();
    Ok(CpuList(cpus))
}

/// The target split into the base URL the generator connects to, the path the URL names,
/// and a display name (`host:port`).
fn split_url(url: &str) -> anyhow::Result<(String, String, String)> {
    let parsed = url::Url::parse(url).with_context(|| format!("unusable URL {url:?}"))?;
    if parsed.scheme() != "http" {
        bail!(
            "unusable URL {url:?}: only http:// is supported, not {}://",
            parsed.scheme()
        );
    }
    let host = parsed
        .host_str()
        .with_context(|| format!("unusable URL {url:?}: no host"))?;
    let port = parsed
        .port_or_known_default()
        .with_context(|| format!("unusable URL {url:?}: no port"))?;
    let base = format!("http://{host}:{port}");
    let mut path = parsed.path().to_owned();
    if let Some(query) = parsed.query() {
        path.push('?');
        path.push_str(query);
    }
    Ok((base, path, format!("{host}:{port}")))
}

/// The load options `args` ask for, and the display name of the target.
pub fn options(args: &BenchArgs) -> anyhow::Result<(LoadOptions, String)> {
    let (base, path, host_port) = split_url(&args.url)?;
    let scenario = match &args.scenario {
        Some(spec) => load::scenario::parse(spec).context("invalid option --scenario")?,
        None => vec![PathWeight { path, weight: 1 }],
    };
    let duration = match (args.duration, args.requests) {
        (None, None) => Some(DEFAULT_DURATION),
        (duration, _) => duration,
    };
    let options = LoadOptions {
        base_url: base,
        scenario,
        connections: args.connections,
        duration,
        requests: args.requests,
        warmup: args.warmup,
        rate: args.rate,
        timeout: args.timeout,
        keep_alive: !args.no_keep_alive,
        cpus: args.cpus.clone().map(|c| c.0).unwrap_or_default(),
        progress: !args.no_progress,
        client: args.client,
    };
    Ok((options, args.name.clone().unwrap_or(host_port)))
}

/// Runs `isobench bench`: measures, prints the summary, writes the artifact if asked, and
/// fails when no request succeeded.
pub fn run(args: BenchArgs) -> anyhow::Result<ExitCode> {
    let (options, name) = options(&args)?;
    // A mistyped directory is found before the load runs, not after.
    if let Some(path) = &args.series_csv {
        writable_target(path).context("invalid option --series-csv")?;
    }
    let report = load::run(&options).context("load run failed")?;

    let detected = if report.ok > 0 {
        detect(&options.base_url)
    } else {
        None
    };
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{}", summary(&report, &name, detected.as_deref()))?;
    drop(stdout);
    if report.generator.bottleneck {
        eprintln!(
            "warning: the load generator was saturated ({:.0}% of the CPUs it had, or one of \
             its threads always busy): these figures may be its limit, not the server's; \
             give it more CPUs (--cpus) or fewer connections",
            report.generator.cpu_utilisation * 100.0,
        );
    }

    if let Some(requested) = report.requested_rate_rps
        && report.achieved_rate_rps < RATE_SHORTFALL * requested
    {
        eprintln!(
            "warning: asked for {requested} req/s but only {:.1} req/s were sent: the server \
             held the connections up (see the corrected latency) or there are too few \
             connections (--connections) for this rate",
            report.achieved_rate_rps
        );
    }

    // Written before judging the run, so a failed run still leaves its evidence.
    if let Some(path) = &args.output {
        let artifact = artifact(report.clone(), &name, detected);
        crate::render::write::json(path, &artifact)
            .with_context(|| format!("writing the artifact to {}", path.display()))?;
        println!("wrote {}", path.display());
    }
    if let Some(path) = &args.series_csv {
        write_series_csv(&report, path)?;
        println!("wrote {}", path.display());
    }
    if report.ok == 0 {
        bail!(
            "no request succeeded: {} sent, errors: {}",
            report.requests_sent,
            error_summary(&report.errors)
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Why a file cannot be written at `path`, when that can be told before writing: it is a
/// directory, or the directory it would be in does not exist.
fn writable_target(path: &Path) -> anyhow::Result<()> {
    if path.is_dir() {
        bail!("{} is a directory", path.display());
    }
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    if !dir.is_dir() {
        bail!(
            "cannot write {}: there is no directory {}",
            path.display(),
            dir.display()
        );
    }
    Ok(())
}

/// Writes `report`'s series to `path` as CSV ([`crate::render::series::csv`]); an error when
/// the run recorded none or the file cannot be written.
fn write_series_csv(report: &LoadReport, path: &Path) -> anyhow::Result<()> {
    let Some(series) = &report.series else {
        bail!(
            "cannot write {}: this run recorded no series",
            path.display()
        );
    };
    writable_target(path)?;
    crate::render::write::atomic(path, crate::render::series::csv(series).as_bytes())
        .with_context(|| format!("writing the series to {}", path.display()))
}

/// The environment the target reports in `/status`, if it answers within [`STATUS_WAIT`].
fn detect(base_url: &str) -> Option<String> {
    let (sender, receiver) = std::sync::mpsc::channel();
    let base_url = base_url.to_owned();
    // A thread so a target that accepts but never answers cannot hold the command up; the
    // look-up itself is bounded by its own client timeout.
    std::thread::spawn(move || {
        let _ = sender.send(crate::env::health::detected_environment(&base_url).ok());
    });
    receiver.recv_timeout(STATUS_WAIT).ok().flatten()
}

/// The artifact for one bench run.
pub fn artifact(report: LoadReport, name: &str, detected: Option<String>) -> Artifact {
    let mut notes = vec![format!(
        "isobench bench against {}; isobench did not start this service",
        report.url
    )];
    if report.generator.bottleneck {
        notes.push("the load generator was saturated during this run".into());
    }
    Artifact::now(vec![EnvironmentResult {
        label: EnvironmentLabel {
            name: name.into(),
            kind: EnvKind::External,
            runtime: "external".into(),
            accel: None,
            service_cpus: Vec::new(),
            generator_cpus: report.generator.cpus.clone(),
            memory_limit_bytes: None,
            kernel: None,
            image_size_bytes: None,
            detected,
            data_dir: None,
            memory_counts: None,
            notes,
            rung: None,
            accel_attempts: Vec::new(),
        },
        preparation: Vec::new(),
        rounds: vec![Round {
            round: 0,
            startup_ms: None,
            startup_phases: Vec::new(),
            idle_memory_bytes: None,
            idle_memory_method: None,
            idle_guest_memory: None,
            quiet_wait: None,
            scenarios: vec![ScenarioRun {
                scenario: "bench".into(),
                load: report,
                peak_memory_bytes: None,
                peak_memory_method: None,
                service_cpu_seconds: None,
                sweep: None,
            }],
            failure: None,
        }],
    }])
}

fn error_summary(errors: &crate::artifact::load::ErrorCounts) -> String {
    let kinds = [
        ("connect", errors.connect),
        ("timeout", errors.timeout),
        ("4xx", errors.status_4xx),
        ("5xx", errors.status_5xx),
        ("other status", errors.status_other),
        ("body", errors.body),
        ("io", errors.io),
        ("unsent", errors.unsent),
    ];
    let parts: Vec<String> = kinds
        .iter()
        .filter(|(_, n)| *n > 0)
        .map(|(kind, n)| format!("{n} {kind}"))
        .collect();
    if parts.is_empty() {
        "none".into()
    } else {
        parts.join(", ")
    }
}

fn ms(us: f64) -> String {
    format!("{:.3}", us / 1e3)
}

/// The terminal summary: the run, the counts, latency (corrected and uncorrected in open
/// loop), the per-path breakdown, and where the run recorded a series, its throughput slice
/// by slice as a sparkline with the steadiness verdict.
pub fn summary(report: &LoadReport, name: &str, detected: Option<&str>) -> String {
    let mut out = String::new();
    let mode = match report.requested_rate_rps {
        Some(rate) => format!(
            "open loop at {rate} req/s (achieved {:.1} req/s)",
            report.achieved_rate_rps
        ),
        None => "closed loop".into(),
    };
    out.push_str(&format!(
        "{name} ({}{}): {mode}, {} connections{}, {:.2} s measured after {:.2} s warm-up \
         ({} warm-up requests)\n",
        report.url,
        detected
            .map(|d| format!(", detected {d}"))
            .unwrap_or_default(),
        report.connections,
        if report.keep_alive {
            ""
        } else {
            ", no keep-alive"
        },
        report.elapsed_s,
        report.warmup_s,
        report.warmup_requests,
    ));
    out.push_str(&format!(
        "requests {} · responses {} · ok {} · errors: {}{}\n",
        report.requests_sent,
        report.responses,
        report.ok,
        error_summary(&report.errors),
        if report.unfinished > 0 {
            format!(
                " · {} unanswered at the end of the window",
                report.unfinished
            )
        } else {
            String::new()
        }
    ));
    out.push_str(&format!(
        "throughput {:.1} req/s · generator CPU {:.2} s ({:.0}% of the CPUs it had, {} \
         threads)\n",
        report.throughput_rps,
        report.generator.cpu_seconds,
        report.generator.cpu_utilisation * 100.0,
        report.generator.threads
    ));

    let mut table = Table::new();
    table.load_preset(UTF8_FULL_CONDENSED);
    table.set_header(vec![
        "latency (ms)",
        "count",
        "min",
        "mean",
        "stdev",
        "p50",
        "p90",
        "p99",
        "p99.9",
        "max",
    ]);
    let mut row = |label: String, s: &crate::artifact::load::LatencyStats| {
        let mut cells = vec![Cell::new(label), Cell::new(s.count)];
        for value in [
            s.min_us, s.mean_us, s.stdev_us, s.p50_us, s.p90_us, s.p99_us, s.p999_us, s.max_us,
        ] {
            cells.push(Cell::new(ms(value)).set_alignment(CellAlignment::Right));
        }
        table.add_row(cells);
    };
    let from = if report.open_loop {
        " (from intended send)"
    } else {
        ""
    };
    if let Some(all) = &report.all_requests_latency {
        row(format!("all requests{from}"), all);
    }
    row(format!("answered ok{from}"), &report.latency);
    if let Some(uncorrected) = &report.uncorrected_latency {
        row("answered ok (uncorrected)".into(), uncorrected);
    }
    if report.per_path.len() > 1 {
        for (path, path_report) in &report.per_path {
            row(
                format!(
                    "{path} ({} sent, {} errors)",
                    path_report.requests, path_report.errors
                ),
                &path_report.latency,
            );
        }
    }
    out.push_str(&table.to_string());
    if let Some(series) = &report.series {
        out.push('\n');
        out.push_str(&crate::render::series::series_line(series));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_lists() {
        assert_eq!(parse_cpu_list("0,2-3,2").unwrap(), CpuList(vec![0, 2, 3]));
        assert!(parse_cpu_list("3-1").is_err());
        assert!(parse_cpu_list("x").is_err());
        assert!(parse_cpu_list("").is_err());
    }

    #[test]
    fn url_path_becomes_the_scenario() {
        let (base, path, name) = split_url("http://127.0.0.1:8080/cpu?n=10").unwrap();
        assert_eq!(base, "http://127.0.0.1:8080");
        assert_eq!(path, "/cpu?n=10");
        assert_eq!(name, "127.0.0.1:8080");
        assert_eq!(
            split_url("http://localhost").unwrap().0,
            "http://localhost:80"
        );
        assert!(split_url("https://127.0.0.1").is_err());
        assert!(split_url("127.0.0.1:8080").is_err());
    }

    /// A bench-like report with the fixture's steady series (250 ms slices over 5 s).
    fn report() -> LoadReport {
        crate::artifact::fixture::artifact().environments[0].rounds[0].scenarios[0]
            .load
            .clone()
    }

    #[test]
    fn the_summary_ends_with_the_sparkline_and_verdict_when_there_is_a_series() {
        let mut report = report();
        let text = summary(&report, "fixture", None);
        let last = text.lines().last().unwrap();
        assert!(
            last.starts_with("throughput per 250 ms slice (█ = "),
            "{last}"
        );
        assert!(last.ends_with(" — steady"), "{last}");
        assert_eq!(
            last.split(": ")
                .nth(1)
                .unwrap()
                .split(" — ")
                .next()
                .unwrap()
                .chars()
                .count(),
            20,
            "one character per slice: {last}"
        );
        report.series = None;
        let text = summary(&report, "fixture", None);
        assert!(!text.contains("throughput per"), "{text}");
        assert!(text.lines().last().unwrap().starts_with('└'), "{text}");
    }

    #[test]
    fn series_csv_is_written_or_refused_with_a_reason() {
        let dir = tempfile::tempdir().unwrap();
        let mut report = report();
        let path = dir.path().join("series.csv");
        write_series_csv(&report, &path).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 1 + 20, "a header and one row per slice");
        assert!(lines[0].starts_with("start_ms,end_ms,ok,errors_status_5xx,errors_timeout,"));
        assert!(lines[20].starts_with("4750,5000,"), "{}", lines[20]);

        let missing = dir.path().join("no/such/dir/series.csv");
        let error = format!("{:#}", write_series_csv(&report, &missing).unwrap_err());
        assert!(error.contains("there is no directory"), "{error}");
        let error = format!("{:#}", write_series_csv(&report, dir.path()).unwrap_err());
        assert!(error.contains("is a directory"), "{error}");

        report.series = None;
        let error = format!("{:#}", write_series_csv(&report, &path).unwrap_err());
        assert!(error.ends_with("this run recorded no series"), "{error}");
    }
}

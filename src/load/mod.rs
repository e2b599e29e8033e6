//! The load generator behind `isobench bench` and every measurement of `isobench run`.
//!
//! Closed loop (default): each connection sends its next request when the last is answered;
//! this finds the ceiling. Open loop (`rate`): requests are scheduled at a constant total rate
//! and each latency is measured from the request's *intended* send time, so a stalled server
//! shows in the tail instead of silently slowing the generator down (coordinated omission, as
//! corrected by wrk2).
//!
//! [`run`] is synchronous: it builds its own runtimes on its own threads, pinned to the CPUs
//! it is given, and returns when the run is over. Every run is bounded by a duration or a
//! request count, and by a hard deadline, so it always stops by itself. If one worker thread
//! fails, every other one is stopped before the error is returned.
//!
//! # The measured window ([`MeasuredWindow`], from [`run_with_window`])
//!
//! - Closed loop bounded by a duration: exactly the planned window, from the end of the
//!   warm-up for `duration`. Measured requests are those answered in it (one sent during
//!   the warm-up and answered after it included) and those started in it. One still
//!   unanswered when the window ends is cut off there and counted in
//!   [`LoadReport::unfinished`], neither an answer nor a failure, and not in the latency
//!   histogram: a straggler (say, a timeout) near the end cannot stretch the window and
//!   divide the throughput. Its connection stops with the window.
//! - Closed loop bounded by a count: from the end of the warm-up to the last answer (the
//!   count defines the window).
//! - Open loop: from the end of the warm-up to the later of the scheduled end and the last
//!   measured answer; the counts cover the whole measured schedule. Requests a connection
//!   could not send by the send limit (the server held it up) are counted
//!   `errors.unsent` and enter the corrected histogram with their latency from their due
//!   time to the send limit, as wrk2 counts them up to the end of its run.
//!
//! Throughput is `ok` over the window; the generator's CPU is read over the same window.

mod client;
mod plan;
mod progress;
pub mod recorder;
pub mod scenario;
mod series;
pub mod steadiness;
mod worker;

use crate::artifact::load::{
    ErrorCounts, GeneratorUsage, LoadReport, PathReport, PathWeight, SATURATED,
};
use crate::artifact::series::{Steadiness, WindowSeries};
use crate::probe::usage;
pub use client::ClientKind;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use plan::{LoadPlan, Pacing};
use progress::{Goal, Progress};
use recorder::Recorder;
use series::SeriesRecorder;
use steadiness::SliceCounts;
use worker::{Live, WorkerResult};

/// What to send, how hard, and for how long.
#[derive(Debug, Clone, PartialEq)]
pub struct LoadOptions {
    /// Base URL of the service, e.g. `http://127.0.0.1:8080`; paths come from `scenario`.
    pub base_url: String,
    /// Paths (with query) and their relative weights, e.g. `/health` ×8, `/cpu` ×2.
    pub scenario: Vec<PathWeight>,
    /// Concurrent connections.
    pub connections: usize,
    /// How long to measure; `None` when `requests` bounds the run instead.
    pub duration: Option<Duration>,
    /// How many requests to measure; `None` when `duration` bounds the run instead.
    pub requests: Option<u64>,
    /// Load sent before measuring, not counted.
    pub warmup: Duration,
    /// Open loop at this total rate (requests per second); `None` for closed loop.
    pub rate: Option<f64>,
    /// Per-request timeout.
    pub timeout: Duration,
    /// Reuse connections (HTTP/1.1 keep-alive).
    pub keep_alive: bool,
    /// Host CPUs the generator's threads are pinned to; empty for no pinning.
    pub cpus: Vec<usize>,
    /// Show a live progress display (only when stdout is a terminal).
    pub progress: bool,
    /// The HTTP client that drives the connections.
    pub client: ClientKind,
}

impl LoadOptions {
    /// Sensible defaults against `base_url`: `/health`, 50 connections, 10 s, 1 s warm-up.
    pub fn new(base_url: impl Into<String>) -> Self {
        Self {
            base_url: base_url.into(),
            scenario: vec![PathWeight {
                path: "/health".into(),
                weight: 1,
            }],
            connections: 50,
            duration: Some(Duration::from_secs(10)),
            requests: None,
            warmup: Duration::from_secs(1),
            rate: None,
            timeout: Duration::from_secs(5),
            keep_alive: true,
            cpus: Vec::new(),
            progress: false,
            client: ClientKind::default(),
        }
    }
}

/// Why a load run could not be made at all (failed requests are counted, not errors).
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// An option that makes no sense, naming it.
    #[error("invalid option --{option}: {reason}")]
    InvalidOption {
        /// The option's name.
        option: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// The URL is not an `http://` URL with a host and port.
    #[error("unusable URL {url:?}: {reason}")]
    Url {
        /// The URL as given.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// Threads or runtimes could not be created.
    #[error("could not start the load generator: {0}")]
    Io(#[from] std::io::Error),
}

/// How long past the hard deadline the workers get to hand their results back before the run
/// is declared broken (they stop by themselves at the deadline; this is only a backstop).
const COLLECT_GRACE: Duration = Duration::from_secs(2);
/// Shortest measured window over which the generator's saturation is judged at all.
const MIN_JUDGED_WINDOW: Duration = Duration::from_millis(200);
/// How often the progress display is refreshed.
const PROGRESS_TICK: Duration = Duration::from_millis(100);

/// The stretch of time a report's counts, throughput and generator CPU cover (see the
/// module documentation for how it is defined in each mode).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MeasuredWindow {
    /// When measuring began: the end of the warm-up, or the end of the window's first
    /// quarter when a warm-up still under way was cut off there.
    pub start: Instant,
    /// When measuring ended.
    pub end: Instant,
    /// Where the report's time series starts: the end of the warm-up, whether or not its
    /// first slices were kept out of the figures.
    pub series_start: Instant,
}

/// Runs one load measurement and returns what the generator saw.
pub fn run(options: &LoadOptions) -> Result<LoadReport, LoadError> {
    run_with_window(options).map(|(report, _)| report)
}

/// Runs one load measurement and returns what the generator saw and exactly the window its
/// counts and throughput cover, so readings taken elsewhere (the server's CPU) can be put on
/// the same interval.
pub fn run_with_window(options: &LoadOptions) -> Result<(LoadReport, MeasuredWindow), LoadError> {
    let plan = Arc::new(plan::build(options)?);
    drive(options, &plan, worker::spawn)
}

/// Starts a worker thread: `(plan, index, live counters, where to send the result)`.
type Spawn = fn(
    Arc<LoadPlan>,
    usize,
    Arc<Live>,
    mpsc::Sender<(usize, std::io::Result<WorkerResult>)>,
) -> std::io::Result<()>;

/// Runs `plan` on workers started by `spawn`, collects their results and assembles the
/// report. When a worker (or starting one) fails, all of them are told to stop and are
/// waited for before the error is returned.
fn drive(
    options: &LoadOptions,
    plan: &Arc<LoadPlan>,
    spawn: Spawn,
) -> Result<(LoadReport, MeasuredWindow), LoadError> {
    let goal = match (&plan.pacing, options.duration, options.requests) {
        (Pacing::Open { measured, .. }, _, _) => Goal::Requests(*measured),
        (Pacing::Closed { .. }, Some(window), _) => Goal::Time(window),
        (Pacing::Closed { .. }, None, Some(n)) => Goal::Requests(n),
        (Pacing::Closed { .. }, None, None) => Goal::Time(Duration::ZERO),
    };
    let progress = Progress::new(options.progress, goal);
    // A closed loop bounded by duration ends exactly at its planned end: the generator's CPU
    // is read then, not when the last thread has wound down.
    let planned_end = match plan.pacing {
        Pacing::Closed { end, .. } if options.duration.is_some() => Some(end),
        _ => None,
    };

    let (sender, receiver) = mpsc::channel();
    let lives: Vec<Arc<Live>> = plan.threads.iter().map(|_| Arc::default()).collect();
    let mut failure: Option<LoadError> = None;
    let mut started = 0;
    for (index, live) in lives.iter().enumerate() {
        match spawn(Arc::clone(plan), index, Arc::clone(live), sender.clone()) {
            Ok(()) => started += 1,
            Err(error) => {
                failure = Some(error.into());
                plan.stop.send_replace(true);
                break;
            }
        }
    }
    drop(sender);

    let mut results: Vec<Option<WorkerResult>> = plan.threads.iter().map(|_| None).collect();
    let mut received = 0;
    let mut cpu_at_measure_start: Option<(Instant, Duration)> = None;
    let mut cpu_at_head_end: Option<(Instant, Duration)> = None;
    let mut cpu_at_measure_end: Option<(Instant, Duration)> = None;
    while received < started {
        let now = Instant::now();
        if cpu_at_measure_start.is_none() && now >= plan.measure_start {
            cpu_at_measure_start = Some((now, usage::process_cpu()));
        }
        if cpu_at_head_end.is_none() && now >= plan.head_end {
            cpu_at_head_end = Some((now, usage::process_cpu()));
        }
        if let Some(end) = planned_end
            && cpu_at_measure_end.is_none()
            && now >= end
        {
            cpu_at_measure_end = Some((now, usage::process_cpu()));
        }
        if now >= plan.hard_deadline + COLLECT_GRACE {
            progress.finish();
            plan.stop.send_replace(true);
            return Err(failure.unwrap_or_else(|| {
                LoadError::Io(std::io::Error::other(
                    "load generator threads did not stop at the hard deadline",
                ))
            }));
        }
        let mut wait = PROGRESS_TICK;
        if cpu_at_measure_start.is_none() {
            wait = wait.min(plan.measure_start.saturating_duration_since(now));
        } else if cpu_at_head_end.is_none() {
            wait = wait.min(plan.head_end.saturating_duration_since(now));
        } else if let Some(end) = planned_end
            && cpu_at_measure_end.is_none()
        {
            wait = wait.min(end.saturating_duration_since(now));
        }
        match receiver.recv_timeout(wait) {
            Ok((index, Ok(result))) => {
                results[index] = Some(result);
                received += 1;
            }
            Ok((_, Err(error))) => {
                received += 1;
                // Nobody measures the others' load any more: stop them all, then report.
                plan.stop.send_replace(true);
                failure.get_or_insert(error.into());
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                progress.finish();
                plan.stop.send_replace(true);
                return Err(failure.unwrap_or_else(|| {
                    LoadError::Io(std::io::Error::other("a load generator thread died"))
                }));
            }
        }
        let (done, ok) = lives.iter().fold((0, 0), |(done, ok), live| {
            (
                done + live.done.load(Ordering::Relaxed),
                ok + live.ok.load(Ordering::Relaxed),
            )
        });
        progress.update(plan.measure_start, done, ok);
    }
    progress.finish();
    if let Some(error) = failure {
        return Err(error);
    }
    let finished = cpu_at_measure_end.unwrap_or_else(|| (Instant::now(), usage::process_cpu()));
    let cpu_since = |reading: Option<(Instant, Duration)>| {
        reading.map(|(at, cpu)| {
            (
                finished.0.saturating_duration_since(at),
                finished.1.saturating_sub(cpu),
            )
        })
    };
    let cpu = GeneratorCpu {
        whole_window: cpu_since(cpu_at_measure_start),
        after_head: cpu_since(cpu_at_head_end),
    };
    let results: Vec<WorkerResult> = results.into_iter().flatten().collect();
    Ok(assemble(options, plan, &results, cpu))
}

/// The generator's CPU time over the window (wall time, CPU time), from its start and from
/// the end of its first quarter (for a window whose warm-up was cut off there).
struct GeneratorCpu {
    whole_window: Option<(Duration, Duration)>,
    after_head: Option<(Duration, Duration)>,
}

/// Merges the workers' results into the report.
fn assemble(
    options: &LoadOptions,
    plan: &LoadPlan,
    results: &[WorkerResult],
    cpu: GeneratorCpu,
) -> (LoadReport, MeasuredWindow) {
    let mut head = Recorder::new(plan.weights.len(), plan.open_loop());
    let mut body = Recorder::new(plan.weights.len(), plan.open_loop());
    let mut series = SeriesRecorder::new(plan.measure_start, plan.slice, plan.timeout);
    for result in results {
        head.merge(&result.records.head);
        body.merge(&result.records.body);
        series.merge(&result.records.series);
    }
    let mut all = head.clone();
    all.merge(&body);
    let last_done = results.iter().filter_map(|r| r.last_done).max();
    let until_last_answer = last_done
        .map(|last| last.saturating_duration_since(plan.measure_start))
        .unwrap_or_default();
    let elapsed = match plan.pacing {
        // Cut at its planned end: answers after it are not counted (see the module docs)...
        // unless the request count ran out first.
        Pacing::Closed { requests, .. } if options.duration.is_some() => {
            if requests.is_some_and(|n| all.sent() >= n) {
                until_last_answer.min(plan.planned_window)
            } else {
                plan.planned_window
            }
        }
        Pacing::Closed { .. } => until_last_answer,
        // Never shorter than planned: an open-loop run that kept to its schedule has exactly
        // the asked-for rate.
        Pacing::Open { .. } => until_last_answer.max(plan.planned_window),
    };
    let (window_series, discarded) = window_series(plan, &series, elapsed);
    // A warm-up still under way is cut off: the figures are the rest of the window's, and
    // what was sent in the part cut off counts as warm-up.
    let (all, elapsed, cpu_window, start) = if discarded {
        let mut figures = body;
        figures.warmup_sent += head.warmup_sent + head.sent();
        let head_length = plan.head_end - plan.measure_start;
        (
            figures,
            elapsed.saturating_sub(head_length),
            cpu.after_head,
            plan.head_end,
        )
    } else {
        (all, elapsed, cpu.whole_window, plan.measure_start)
    };
    let window = MeasuredWindow {
        start,
        end: start + elapsed,
        series_start: plan.measure_start,
    };
    let elapsed_s = elapsed.as_secs_f64();
    let per_second = |n: u64| {
        if elapsed_s > 0.0 {
            n as f64 / elapsed_s
        } else {
            0.0
        }
    };

    let latency = all.latency();
    let all_requests = all.all_requests_latency(&latency);
    let per_path: BTreeMap<String, PathReport> = options
        .scenario
        .iter()
        .zip(&all.paths)
        .map(|(path, record)| {
            (
                path.path.clone(),
                PathReport {
                    requests: record.sent,
                    ok: record.ok,
                    errors: record.errors,
                    latency: recorder::stats(&record.latency),
                },
            )
        })
        .collect();

    let cpus_available = plan::generator_cpu_count(&plan.threads);
    let thread_busy: Vec<f64> = results
        .iter()
        .filter(|r| !r.wall.is_zero())
        .map(|r| r.thread_cpu.as_secs_f64() / r.wall.as_secs_f64())
        .collect();
    let generator = generator_usage(
        options.cpus.clone(),
        plan.threads.len(),
        cpus_available,
        cpu_window,
        &thread_busy,
    );

    let report = LoadReport {
        url: options.base_url.clone(),
        scenario: options.scenario.clone(),
        connections: options.connections,
        open_loop: plan.open_loop(),
        requested_rate_rps: options.rate,
        keep_alive: options.keep_alive,
        timeout_ms: options.timeout.as_secs_f64() * 1e3,
        warmup_s: options.warmup.as_secs_f64(),
        warmup_requests: all.warmup_sent,
        elapsed_s,
        requests_sent: all.sent(),
        unfinished: all.unfinished,
        responses: all.responses,
        ok: all.ok(),
        throughput_rps: per_second(all.ok()),
        achieved_rate_rps: per_second(all.sent() - all.errors.unsent),
        latency: recorder::stats(&latency),
        all_requests_latency: Some(recorder::stats(&all_requests)),
        uncorrected_latency: all.uncorrected.as_ref().map(recorder::stats),
        per_path,
        histogram: crate::artifact::histogram::encode(&latency),
        all_requests_histogram: Some(crate::artifact::histogram::encode(&all_requests)),
        series: Some(window_series),
        generator,
        errors: all.errors,
    };
    (report, window)
}

/// The window's series over `span` (the whole window, before anything is cut off), judged;
/// and whether its first quarter is to be cut off as a warm-up still under way (only where
/// the plan allows it: a closed loop bounded by duration).
fn window_series(plan: &LoadPlan, series: &SeriesRecorder, span: Duration) -> (WindowSeries, bool) {
    let slices = series.covering(span);
    let width = series.slice();
    let counts: Vec<SliceCounts> = slices
        .iter()
        .enumerate()
        .map(|(index, slice)| {
            let begins = width * u32::try_from(index).unwrap_or(u32::MAX);
            let length = span.saturating_sub(begins).min(width);
            SliceCounts {
                ok: slice.ok,
                completed: slice.completed(),
                in_flight: slice.in_flight,
                length: length.as_secs_f64() / width.as_secs_f64(),
            }
        })
        .collect();
    let head = usize::try_from((plan.head_end - plan.measure_start).as_nanos() / width.as_nanos())
        .unwrap_or(0);
    let judged_head = if head > 0 {
        head
    } else {
        steadiness::default_head(counts.len())
    };
    let mut verdict = steadiness::judge_with_head(&counts, judged_head);
    let discarded = verdict.warming_up && head > 0 && head < counts.len();
    if discarded {
        verdict = rejudged_after(&counts, head);
    }
    let quantile = |q: f64| {
        slices
            .iter()
            .map(|s| (!s.latency.is_empty()).then(|| s.latency.value_at_quantile(q) as f64))
            .collect()
    };
    let mut errors = std::collections::BTreeMap::new();
    for (kind, count) in error_kinds() {
        let per_slice: Vec<u64> = slices.iter().map(|s| count(&s.errors)).collect();
        if per_slice.iter().any(|n| *n > 0) {
            errors.insert(kind.to_owned(), per_slice);
        }
    }
    let series = WindowSeries {
        slice_ms: width.as_secs_f64() * 1e3,
        window_ms: span.as_secs_f64() * 1e3,
        ok: slices.iter().map(|s| s.ok).collect(),
        errors,
        in_flight: slices.iter().map(|s| s.in_flight).collect(),
        p50_us: quantile(0.5),
        p99_us: quantile(0.99),
        service_cpu_s: Vec::new(),
        memory_bytes: Vec::new(),
        discarded_slices: if discarded { head } else { 0 },
        steadiness: verdict,
    };
    (series, discarded)
}

/// The steadiness of the slices from `from` on, with stalls numbered in the whole window.
fn rejudged_after(counts: &[SliceCounts], from: usize) -> Steadiness {
    let mut verdict = steadiness::judge(&counts[from..]);
    for stall in &mut verdict.stalls {
        stall.first_slice += from;
    }
    verdict
}

/// Reads one kind of failure from the counts.
type ErrorKind = fn(&ErrorCounts) -> u64;

/// The kinds of failure a series counts per slice, named as [`ErrorCounts`]' fields.
fn error_kinds() -> [(&'static str, ErrorKind); 8] {
    [
        ("connect", |e| e.connect),
        ("timeout", |e| e.timeout),
        ("status_4xx", |e| e.status_4xx),
        ("status_5xx", |e| e.status_5xx),
        ("status_other", |e| e.status_other),
        ("body", |e| e.body),
        ("io", |e| e.io),
        ("unsent", |e| e.unsent),
    ]
}

/// The generator's CPU use over the measured window (`cpu_window` = wall time, CPU time),
/// and whether it was the bottleneck: the process used at least [`SATURATED`] of the
/// CPUs it had, or one worker thread was busy that share of its time (its connections then
/// waited for it, whatever the other CPUs did).
fn generator_usage(
    cpus: Vec<usize>,
    threads: usize,
    cpus_available: usize,
    cpu_window: Option<(Duration, Duration)>,
    thread_busy: &[f64],
) -> GeneratorUsage {
    let (cpu_seconds, cpu_utilisation) = match cpu_window {
        Some((wall, cpu)) if !wall.is_zero() => (
            cpu.as_secs_f64(),
            cpu.as_secs_f64() / (wall.as_secs_f64() * cpus_available.max(1) as f64),
        ),
        Some((_, cpu)) => (cpu.as_secs_f64(), 0.0),
        None => (0.0, 0.0),
    };
    let busiest_thread = thread_busy.iter().copied().fold(0.0, f64::max);
    // Over a few milliseconds, starting the runtimes dominates the CPU time; no verdict.
    let judged = cpu_window.is_some_and(|(wall, _)| wall >= MIN_JUDGED_WINDOW);
    GeneratorUsage {
        cpus,
        threads,
        cpu_seconds,
        cpu_utilisation,
        bottleneck: judged && (cpu_utilisation >= SATURATED || busiest_thread >= SATURATED),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read as _, Write as _};
    use std::sync::atomic::{AtomicBool, AtomicU64};

    /// A keep-alive HTTP/1.1 server on 127.0.0.1 answering every request `200 ok` and
    /// counting them; it stops accepting when `stop` is set.
    fn counting_server(stop: Arc<AtomicBool>) -> (String, Arc<AtomicU64>) {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        listener.set_nonblocking(true).unwrap();
        let hits = Arc::new(AtomicU64::new(0));
        let counter = Arc::clone(&hits);
        std::thread::spawn(move || {
            while !stop.load(Ordering::SeqCst) {
                let Ok((mut stream, _)) = listener.accept() else {
                    std::thread::sleep(Duration::from_millis(5));
                    continue;
                };
                let _ = stream.set_nonblocking(false);
                let counter = Arc::clone(&counter);
                // Ends when the generator closes the connection.
                std::thread::spawn(move || {
                    let mut request = [0u8; 4096];
                    while let Ok(n) = stream.read(&mut request) {
                        if n == 0 {
                            break;
                        }
                        counter.fetch_add(1, Ordering::SeqCst);
                        let answer = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
                        if stream.write_all(answer).is_err() {
                            break;
                        }
                    }
                });
            }
        });
        (url, hits)
    }

    /// Worker 0 sends load; every other worker fails 200 ms in.
    fn spawn_one_failing(
        plan: Arc<LoadPlan>,
        index: usize,
        live: Arc<Live>,
        results: mpsc::Sender<(usize, std::io::Result<WorkerResult>)>,
    ) -> std::io::Result<()> {
        if index == 0 {
            return worker::spawn(plan, index, live, results);
        }
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(200));
            let _ = results.send((index, Err(std::io::Error::other("injected failure"))));
        });
        Ok(())
    }

    /// Issue 11 item 9: when one worker fails, the run stops every other worker before it
    /// returns the error, so no load goes on that nobody measures.
    #[test]
    fn a_failing_worker_stops_all_the_others() {
        let stop = Arc::new(AtomicBool::new(false));
        let (url, hits) = counting_server(Arc::clone(&stop));
        let mut options = LoadOptions::new(url);
        options.connections = 4;
        options.warmup = Duration::ZERO;
        options.duration = Some(Duration::from_secs(5));
        let plan = Arc::new(plan::build(&options).unwrap());
        assert!(plan.threads.len() >= 2);
        let error = drive(&options, &plan, spawn_one_failing).unwrap_err();
        assert!(error.to_string().contains("injected failure"), "{error}");
        // A request written just before the stop may still be read by the server.
        std::thread::sleep(Duration::from_millis(100));
        let at_return = hits.load(Ordering::SeqCst);
        assert!(at_return > 0, "worker 0 never sent");
        std::thread::sleep(Duration::from_millis(300));
        assert_eq!(hits.load(Ordering::SeqCst), at_return, "load went on");
        stop.store(true, Ordering::SeqCst);
    }

    #[test]
    fn saturation_of_the_process_or_one_thread_is_a_bottleneck() {
        let window = |wall_ms, cpu_ms| {
            Some((
                Duration::from_millis(wall_ms),
                Duration::from_millis(cpu_ms),
            ))
        };
        let idle = generator_usage(vec![], 2, 2, window(1000, 400), &[0.2, 0.2]);
        assert!((idle.cpu_utilisation - 0.2).abs() < 1e-9);
        assert!(!idle.bottleneck);
        let busy = generator_usage(vec![0, 1], 2, 2, window(1000, 1900), &[0.95, 0.95]);
        assert!(busy.bottleneck);
        let one_thread = generator_usage(vec![], 2, 2, window(1000, 1000), &[0.97, 0.03]);
        assert!(one_thread.bottleneck);
        let too_short = generator_usage(vec![], 2, 2, window(20, 40), &[1.0, 1.0]);
        assert!(!too_short.bottleneck);
        let unmeasured = generator_usage(vec![], 1, 1, None, &[]);
        assert_eq!(unmeasured.cpu_seconds, 0.0);
        assert!(!unmeasured.bottleneck);
    }
}

//! Honesty checks of the load generator and `isobench bench`, against in-process fixture
//! servers on 127.0.0.1 port 0: coordinated-omission correction, exact request counting,
//! error classification, rate accuracy, and the JSON artifact (schema and round trip).
//!
//! Assertions are about relationships between measurements and exact counts, never about
//! how fast this machine is.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::ConnectInfo;
use axum::http::StatusCode;
use axum::routing::get;
use clap::Parser as _;
use isobench::artifact::load::{LoadReport, PathWeight};
use isobench::artifact::{Artifact, EnvKind};
use isobench::cli::{Cli, Command};
use isobench::load::{self, ClientKind, LoadOptions};

/// Runs whose latency or rate is asserted on take turns, so they do not compete for the CPU.
fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// An axum server on its own thread and runtime; stopped when dropped.
struct Fixture {
    addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Fixture {
    fn serve(router: Router) -> Self {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                let app = router.into_make_service_with_connect_info::<SocketAddr>();
                tokio::select! {
                    _ = axum::serve(listener, app) => {}
                    _ = stopped => {}
                }
            });
            // Dropping the runtime cancels connections still open (e.g. ones held forever).
            runtime.shutdown_timeout(Duration::from_millis(100));
        });
        Self {
            addr,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn options(base_url: &str, path: &str) -> LoadOptions {
    let mut options = LoadOptions::new(base_url);
    options.scenario = vec![PathWeight {
        path: path.into(),
        weight: 1,
    }];
    options.warmup = Duration::ZERO;
    options
}

/// Every measured request ends in exactly one outcome (or is counted unfinished at the end
/// of a closed-loop window), and the corrected histogram holds every answer and every
/// request that could not be sent.
fn assert_accounted(report: &LoadReport) {
    assert_eq!(
        report.requests_sent,
        report.ok + report.errors.total() + report.unfinished,
        "{report:#?}"
    );
    assert_eq!(report.latency.count, report.ok + report.errors.unsent);
    let per_path: u64 = report.per_path.values().map(|p| p.requests).sum();
    assert_eq!(per_path, report.requests_sent);
}

fn cli(args: &[&str]) -> isobench::cli::bench::BenchArgs {
    let mut argv = vec!["isobench", "bench", "--no-progress"];
    argv.extend_from_slice(args);
    match Cli::try_parse_from(argv).expect("arguments parse").command {
        Some(Command::Bench(args)) => args,
        other => panic!("expected the bench command, got {other:?}"),
    }
}

/// Every 1 s (from its start) the server holds every response for 200 ms. An open-loop run
/// must show the stall in its corrected tail; a closed-loop run, and the uncorrected
/// open-loop figure, hide it (the few connections wait once each and the many fast requests
/// around them dominate the percentiles), exactly the error wrk2 was written to expose.
#[test]
fn open_loop_shows_a_stall_that_closed_loop_hides() {
    const STALL: Duration = Duration::from_millis(200);
    const PERIOD_MS: u128 = 1000;
    let _turn = serial();
    let epoch = Instant::now();
    let fixture = Fixture::serve(Router::new().route(
        "/stall",
        get(move || async move {
            let phase = epoch.elapsed().as_millis() % PERIOD_MS;
            if phase < STALL.as_millis() {
                let rest = STALL.as_millis() - phase;
                tokio::time::sleep(Duration::from_millis(rest as u64)).await;
            }
            "ok"
        }),
    ));
    let stall_us = STALL.as_micros() as f64;

    let mut open = options(&fixture.base_url(), "/stall");
    open.connections = 4;
    open.duration = Some(Duration::from_millis(2500));
    open.rate = Some(1000.0);
    let open = load::run(&open).unwrap();
    assert_accounted(&open);
    let uncorrected = open.uncorrected_latency.clone().expect("open loop");

    let mut closed = options(&fixture.base_url(), "/stall");
    closed.connections = 4;
    closed.duration = Some(Duration::from_millis(2500));
    let closed = load::run(&closed).unwrap();
    assert_accounted(&closed);

    eprintln!(
        "stall {stall_us} µs: open-loop corrected p99 {} µs, uncorrected p99 {} µs; \
         closed-loop p99 {} µs, max {} µs",
        open.latency.p99_us, uncorrected.p99_us, closed.latency.p99_us, closed.latency.max_us
    );
    // The stall happened to both runs...
    assert!(
        closed.latency.max_us >= stall_us / 2.0,
        "{:?}",
        closed.latency
    );
    assert!(uncorrected.max_us >= stall_us / 2.0, "{uncorrected:?}");
    // ...the corrected open-loop tail shows it...
    assert!(open.latency.p99_us >= stall_us / 2.0, "{:?}", open.latency);
    // ...and the closed-loop and uncorrected figures hide it.
    assert!(
        closed.latency.p99_us <= stall_us / 4.0,
        "{:?}",
        closed.latency
    );
    assert!(uncorrected.p99_us <= stall_us / 4.0, "{uncorrected:?}");
    assert!(open.latency.p99_us >= 4.0 * uncorrected.p99_us);
}

/// Counts every request the server sees.
fn counting_fixture() -> (Fixture, Arc<AtomicU64>) {
    let hits = Arc::new(AtomicU64::new(0));
    let counter = Arc::clone(&hits);
    let fixture = Fixture::serve(Router::new().route(
        "/count",
        get(move || {
            counter.fetch_add(1, Ordering::SeqCst);
            async { "ok" }
        }),
    ));
    (fixture, hits)
}

#[test]
fn closed_loop_sends_exactly_the_requested_count_plus_warmup() {
    let (fixture, hits) = counting_fixture();
    let mut options = options(&fixture.base_url(), "/count");
    options.connections = 8;
    options.duration = None;
    options.requests = Some(777);
    options.warmup = Duration::from_millis(200);
    let report = load::run(&options).unwrap();
    assert_accounted(&report);
    assert_eq!(report.requests_sent, 777);
    assert_eq!(report.ok, 777);
    assert!(report.warmup_requests > 0);
    assert_eq!(
        hits.load(Ordering::SeqCst),
        report.requests_sent + report.warmup_requests
    );
}

#[test]
fn open_loop_sends_exactly_the_requested_count_plus_warmup() {
    let (fixture, hits) = counting_fixture();
    let mut options = options(&fixture.base_url(), "/count");
    options.connections = 5;
    options.duration = None;
    options.requests = Some(123);
    options.rate = Some(1000.0);
    options.warmup = Duration::from_millis(50);
    let report = load::run(&options).unwrap();
    assert_accounted(&report);
    assert_eq!(report.requests_sent, 123);
    assert_eq!(report.warmup_requests, 50);
    assert_eq!(hits.load(Ordering::SeqCst), 123 + 50);
}

#[test]
fn scenario_weights_are_kept_exactly() {
    let fixture = Fixture::serve(
        Router::new()
            .route("/a", get(|| async { "a" }))
            .route("/b", get(|| async { "b" })),
    );
    let mut options = options(&fixture.base_url(), "/a");
    options.scenario = load::scenario::parse("/a:3,/b:1").unwrap();
    options.connections = 1;
    options.duration = None;
    options.requests = Some(400);
    let report = load::run(&options).unwrap();
    assert_accounted(&report);
    assert_eq!(report.per_path["/a"].requests, 300);
    assert_eq!(report.per_path["/b"].requests, 100);
    assert_eq!(report.per_path["/b"].latency.count, 100);
}

#[test]
fn keep_alive_reuses_connections_and_can_be_turned_off() {
    let peers = Arc::new(Mutex::new(HashSet::new()));
    let seen = Arc::clone(&peers);
    let fixture = Fixture::serve(Router::new().route(
        "/peer",
        get(move |ConnectInfo(peer): ConnectInfo<SocketAddr>| {
            seen.lock().unwrap().insert(peer);
            async { "ok" }
        }),
    ));
    for client in CLIENTS {
        peers.lock().unwrap().clear();
        let mut options = options(&fixture.base_url(), "/peer");
        options.client = client;
        options.connections = 2;
        options.duration = None;
        options.requests = Some(40);
        let report = load::run(&options).unwrap();
        assert_eq!(report.ok, 40, "{client:?}");
        assert_eq!(peers.lock().unwrap().len(), 2, "{client:?}");

        peers.lock().unwrap().clear();
        options.keep_alive = false;
        let report = load::run(&options).unwrap();
        assert_eq!(report.ok, 40, "{client:?}");
        assert!(!report.keep_alive);
        assert_eq!(peers.lock().unwrap().len(), 40, "{client:?}");
    }
}

#[test]
fn refused_connections_are_connect_errors_and_fail_the_command() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let base = format!("http://127.0.0.1:{port}");
    let mut options = options(&base, "/health");
    options.connections = 2;
    options.duration = None;
    options.requests = Some(6);
    let report = load::run(&options).unwrap();
    assert_accounted(&report);
    assert_eq!(report.errors.connect, 6);
    assert_eq!(report.responses, 0);

    let error = isobench::cli::bench::run(cli(&[
        "--url",
        &format!("{base}/health"),
        "-n",
        "3",
        "--warmup",
        "0s",
    ]))
    .unwrap_err();
    assert!(
        format!("{error:#}").contains("no request succeeded"),
        "{error:#}"
    );
}

#[test]
fn unanswered_requests_are_timeouts() {
    let fixture =
        Fixture::serve(Router::new().route("/hang", get(std::future::pending::<&'static str>)));
    let mut options = options(&fixture.base_url(), "/hang");
    options.connections = 3;
    options.duration = None;
    options.requests = Some(3);
    options.timeout = Duration::from_millis(200);
    let report = load::run(&options).unwrap();
    assert_accounted(&report);
    assert_eq!(report.errors.timeout, 3);
    assert_eq!(report.ok, 0);
}

/// Issue 25 item 3: latency counts failures. A server that never answers 1 request in 50:
/// with a 200 ms timeout, 2% of the requests take 200 ms to fail, so the all-requests p99 is
/// at least the timeout, while the answered requests' p99 stays far below it.
#[test]
fn a_request_never_answered_puts_the_timeout_in_the_tail() {
    let seen = Arc::new(AtomicU64::new(0));
    let counter = Arc::clone(&seen);
    let fixture = Fixture::serve(Router::new().route(
        "/mostly",
        get(move || {
            let n = counter.fetch_add(1, Ordering::SeqCst);
            async move {
                if n % 50 == 49 {
                    std::future::pending::<()>().await;
                }
                "ok"
            }
        }),
    ));
    let mut options = options(&fixture.base_url(), "/mostly");
    options.connections = 4;
    options.duration = None;
    options.requests = Some(200);
    options.timeout = Duration::from_millis(200);
    let report = load::run(&options).unwrap();
    assert_accounted(&report);
    assert_eq!(report.errors.timeout, 4, "{:?}", report.errors);
    let all = report.all_requests_latency.as_ref().expect("recorded");
    assert_eq!(all.count, 200);
    assert!(
        all.p99_us >= 200_000.0,
        "all-requests p99 {} µs",
        all.p99_us
    );
    assert_eq!(report.request_latency(), all);
    assert_eq!(report.latency.count, 196);
    assert!(
        report.latency.p99_us < 200_000.0,
        "answered p99 {} µs",
        report.latency.p99_us
    );
}

#[test]
fn status_classes_are_counted_per_kind_and_path() {
    let fixture = Fixture::serve(Router::new().route("/ok", get(|| async { "ok" })).route(
        "/boom",
        get(|| async { (StatusCode::INTERNAL_SERVER_ERROR, "boom") }),
    ));
    for client in CLIENTS {
        let mut options = options(&fixture.base_url(), "/ok");
        options.client = client;
        options.scenario = load::scenario::parse("/ok,/boom,/missing").unwrap();
        options.connections = 1;
        options.duration = None;
        options.requests = Some(30);
        let report = load::run(&options).unwrap();
        assert_accounted(&report);
        assert_eq!(report.ok, 10, "{client:?}");
        assert_eq!(report.errors.status_5xx, 10);
        assert_eq!(report.errors.status_4xx, 10);
        assert_eq!(report.responses, 30);
        assert_eq!(report.per_path["/boom"].errors, 10);
        assert_eq!(report.per_path["/missing"].errors, 10);
        assert_eq!(report.per_path["/ok"].ok, 10);
    }
}

/// A 2xx whose body is cut short (the server promises 100 bytes, sends 5 and closes) is a
/// body error, not a success.
#[test]
fn truncated_bodies_are_body_errors() {
    use std::io::{Read as _, Write as _};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    // Detached: it serves exactly the connections this test makes, then ends.
    std::thread::spawn(move || {
        for _ in 0..4 * CLIENTS.len() {
            let Ok((mut stream, _)) = listener.accept() else {
                return;
            };
            let mut request = [0u8; 1024];
            let _ = stream.read(&mut request);
            let _ = stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nshort");
        }
    });
    for client in CLIENTS {
        let mut options = options(&format!("http://{addr}"), "/truncated");
        options.client = client;
        options.connections = 1;
        options.duration = None;
        options.requests = Some(4);
        options.timeout = Duration::from_secs(2);
        let report = load::run(&options).unwrap();
        assert_accounted(&report);
        assert_eq!(report.errors.body, 4, "{client:?}: {:?}", report.errors);
        assert_eq!(report.responses, 4);
    }
}

#[test]
fn unusable_urls_and_options_are_clear_errors() {
    for args in [
        vec!["--url", "127.0.0.1:8080/health"],
        vec!["--url", "https://127.0.0.1:8080/health"],
        vec!["--url", "http://127.0.0.1:9/health", "-c", "0"],
        vec!["--url", "http://127.0.0.1:9/health", "--rate", "0"],
        vec!["--url", "http://127.0.0.1:9/health", "--scenario", "nosuch"],
        vec!["--url", "http://127.0.0.1:9/health", "--timeout", "0s"],
    ] {
        let error = isobench::cli::bench::run(cli(&args)).unwrap_err();
        let text = format!("{error:#}");
        assert!(
            text.contains("URL") || text.contains("option"),
            "{args:?}: {text}"
        );
    }
    // Malformed durations are refused by the parser itself.
    assert!(
        Cli::try_parse_from(["isobench", "bench", "--url", "http://x", "-d", "5 parsecs"]).is_err()
    );
}

/// At a modest rate the generator keeps to its schedule: the exact number of requests, and
/// an achieved rate within a few percent of the requested one.
#[test]
fn open_loop_keeps_the_requested_rate() {
    let _turn = serial();
    let fixture = Fixture::serve(Router::new().route("/ok", get(|| async { "ok" })));
    let mut options = options(&fixture.base_url(), "/ok");
    options.connections = 10;
    options.rate = Some(200.0);
    options.duration = Some(Duration::from_secs(2));
    let report = load::run(&options).unwrap();
    assert_accounted(&report);
    assert!(report.open_loop);
    assert_eq!(report.requests_sent, 400);
    assert_eq!(report.ok, 400);
    let rate = report.achieved_rate_rps;
    assert!((rate / 200.0 - 1.0).abs() <= 0.05, "achieved {rate} req/s");
    assert!((report.throughput_rps / 200.0 - 1.0).abs() <= 0.05);
}

fn schema_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("src/artifact/schema.json")
}

fn generated_schema() -> String {
    let schema = schemars::schema_for!(Artifact);
    serde_json::to_string_pretty(&schema).unwrap() + "\n"
}

/// The checked-in schema is the one the types generate; `ISOBENCH_BLESS=1` rewrites it.
#[test]
fn checked_in_schema_matches_the_types() {
    let generated = generated_schema();
    if std::env::var_os("ISOBENCH_BLESS").is_some() {
        std::fs::write(schema_path(), &generated).unwrap();
    }
    let checked_in = std::fs::read_to_string(schema_path()).unwrap_or_default();
    assert!(
        checked_in == generated,
        "{} is out of date; rerun with ISOBENCH_BLESS=1 and commit it",
        schema_path().display()
    );
}

/// `bench --output` writes an artifact that validates against the checked-in schema and
/// parses back into the typed structs (which refuse unknown fields).
#[test]
fn bench_output_validates_and_round_trips() {
    let fixture = Fixture::serve(
        Router::new()
            .route("/health", get(|| async { r#"{"status":"ok"}"# }))
            .route(
                "/status",
                get(|| async {
                    axum::Json(
                        serde_json::json!({"environment": {"kind": "native", "evidence": []}}),
                    )
                }),
            ),
    );
    let dir = tempfile::tempdir().unwrap();
    let output = dir.path().join("bench.json");
    let code = isobench::cli::bench::run(cli(&[
        "--url",
        &format!("{}/health", fixture.base_url()),
        "-c",
        "4",
        "-d",
        "300ms",
        "--warmup",
        "100ms",
        "--rate",
        "500",
        "--name",
        "fixture",
        "--output",
        output.to_str().unwrap(),
    ]))
    .unwrap();
    assert_eq!(code, std::process::ExitCode::SUCCESS);

    let text = std::fs::read_to_string(&output).unwrap();
    let value: serde_json::Value = serde_json::from_str(&text).unwrap();
    let schema: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(schema_path()).unwrap()).unwrap();
    let validator = jsonschema::validator_for(&schema).unwrap();
    let problems: Vec<String> = validator
        .iter_errors(&value)
        .map(|e| format!("{}: {e}", e.instance_path()))
        .collect();
    assert!(problems.is_empty(), "{problems:#?}");

    let artifact: Artifact = serde_json::from_value(value).unwrap();
    assert_eq!(artifact.environments.len(), 1);
    let environment = &artifact.environments[0];
    assert_eq!(environment.label.kind, EnvKind::External);
    assert_eq!(environment.label.name, "fixture");
    assert_eq!(environment.label.detected.as_deref(), Some("native"));
    let run = &environment.rounds[0].scenarios[0];
    assert_eq!(run.scenario, "bench");
    assert_eq!(environment.rounds[0].startup_ms, None);
    let report = &run.load;
    assert_accounted(report);
    assert_eq!(report.requests_sent, 150);
    assert_eq!(report.per_path["/health"].ok, report.ok);
    let histogram = isobench::artifact::histogram::decode(&report.histogram).unwrap();
    assert_eq!(histogram.len(), report.latency.count);
    assert!(report.generator.cpu_seconds > 0.0);
    // Only the artifact is left in the directory: the temporary file was renamed.
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
}

/// Issue 11 item 4: a closed-loop window is the planned one. One request near the end that
/// the server never answers must not stretch the window to its timeout (which would cut the
/// reported throughput by the ratio of the two); it is counted as still in flight instead.
#[test]
fn closed_loop_window_is_not_stretched_by_a_straggler() {
    let _turn = serial();
    let epoch = Instant::now();
    let hung = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let fixture = Fixture::serve(Router::new().route(
        "/straggle",
        get(move || {
            let hung = Arc::clone(&hung);
            async move {
                // The first request that arrives 600 ms in (inside the 1 s window) never gets
                // an answer; every other one is answered at once.
                if epoch.elapsed() >= Duration::from_millis(600)
                    && !hung.swap(true, Ordering::SeqCst)
                {
                    std::future::pending::<()>().await;
                }
                "ok"
            }
        }),
    ));
    let mut options = options(&fixture.base_url(), "/straggle");
    options.connections = 4;
    options.duration = Some(Duration::from_secs(1));
    options.timeout = Duration::from_secs(4);
    let (report, window) = load::run_with_window(&options).unwrap();
    assert_eq!(report.errors.timeout, 0, "{:?}", report.errors);
    // The planned second, less the first quarter if a busy machine made it look like a
    // warm-up still under way (then cut off, and said so in the series).
    let series = report.series.as_ref().expect("a series");
    let planned = Duration::from_secs(1)
        - Duration::from_secs_f64(series.slice_ms / 1e3) * series.discarded_slices as u32;
    assert!(
        (report.elapsed_s - planned.as_secs_f64()).abs() < 1e-6,
        "window {} s, planned {planned:?}",
        report.elapsed_s
    );
    let measured = window.end - window.start;
    assert!(
        measured.abs_diff(planned) < Duration::from_micros(1),
        "{measured:?}"
    );
    assert_eq!(window.end - window.series_start, Duration::from_secs(1));
    // The held request, and at most one per other connection cut off by the window's end.
    assert!(
        (1..=4).contains(&report.unfinished),
        "{} unfinished",
        report.unfinished
    );
    assert_accounted(&report);
    assert!((report.throughput_rps - report.ok as f64).abs() < 1e-6);
}

/// Issue 25 item 6: a closed-loop window counts every answer inside it. A server answering
/// each request after 300 ms, one connection, 150 ms of warm-up and a 1 s window
/// ([150, 1150] ms): the answers come at about 300, 600 and 900 ms, all inside the window,
/// and the request sent at 900 ms is cut off by its end. Three answers and one unfinished;
/// the request sent during the warm-up is one of the three (counting by the send time lost
/// it, one request per connection per window, while the window's CPU paid for it).
#[test]
fn closed_loop_counts_every_answer_inside_its_window() {
    let _turn = serial();
    let fixture = Fixture::serve(Router::new().route(
        "/slow",
        get(|| async {
            tokio::time::sleep(Duration::from_millis(300)).await;
            "ok"
        }),
    ));
    let mut options = options(&fixture.base_url(), "/slow");
    options.connections = 1;
    options.warmup = Duration::from_millis(150);
    options.duration = Some(Duration::from_secs(1));
    let report = load::run(&options).unwrap();
    assert_accounted(&report);
    assert_eq!(report.ok, 3, "{report:#?}");
    assert_eq!(report.unfinished, 1, "{report:#?}");
    assert_eq!(
        report.warmup_requests, 0,
        "answered inside the window: measured"
    );
    assert!((report.throughput_rps - 3.0).abs() < 1e-6);
}

/// Issue 11 item 5: an overloaded open loop cannot send most of its schedule. Those requests
/// must be counted (`unsent`) and appear in the corrected histogram with their latency from
/// the intended send time to the end of sending, not vanish.
#[test]
fn overloaded_open_loop_counts_unsent_requests() {
    let _turn = serial();
    let fixture = Fixture::serve(Router::new().route(
        "/slow",
        get(|| async {
            tokio::time::sleep(Duration::from_millis(100)).await;
            "ok"
        }),
    ));
    let mut options = options(&fixture.base_url(), "/slow");
    options.connections = 2;
    options.rate = Some(1000.0);
    options.duration = Some(Duration::from_secs(1));
    options.timeout = Duration::from_millis(300);
    let report = load::run(&options).unwrap();
    // The whole schedule is accounted for: what was sent plus what could not be.
    assert_eq!(report.requests_sent, 1000, "{:?}", report.errors);
    assert_accounted(&report);
    // Two connections at 100 ms per answer send about 26 requests in the 1.3 s allowed.
    assert!(report.errors.unsent >= 950, "{:?}", report.errors);
    let histogram = isobench::artifact::histogram::decode(&report.histogram).unwrap();
    assert_eq!(histogram.len(), report.latency.count);
    // The earliest unsent request was due right at the start and was still unsent when
    // sending stopped, window + timeout later: that is the tail.
    let longest_us = (1.0 + 0.3) * 1e6;
    assert!(
        (report.latency.max_us / longest_us - 1.0).abs() < 0.05,
        "{:?}",
        report.latency
    );
    assert!(report.latency.p50_us >= 0.3e6, "{:?}", report.latency);
    let sent = report.requests_sent - report.errors.unsent;
    assert!((report.achieved_rate_rps - sent as f64 / report.elapsed_s).abs() < 1e-6);
}

/// Issue 11 item 8: open-loop counts are integer arithmetic: 1.1 s at 100 req/s is 110
/// requests (a float `ceil` made it 111), 30 ms of warm-up at 100 req/s is 3.
#[test]
fn open_loop_schedule_counts_are_exact() {
    let (fixture, hits) = counting_fixture();
    let mut options = options(&fixture.base_url(), "/count");
    options.connections = 4;
    options.rate = Some(100.0);
    options.duration = Some(Duration::from_millis(1100));
    options.warmup = Duration::from_millis(30);
    let report = load::run(&options).unwrap();
    assert_accounted(&report);
    assert_eq!(report.requests_sent, 110);
    assert_eq!(report.warmup_requests, 3);
    assert_eq!(hits.load(Ordering::SeqCst), 113);
}

/// Issue 11 item 9: a path listed twice would share one per-path entry (the second
/// overwriting the first); it is refused, naming the path.
#[test]
fn a_path_listed_twice_is_refused() {
    let mut options = options("http://127.0.0.1:9", "/a");
    options.scenario = vec![
        PathWeight {
            path: "/a".into(),
            weight: 1,
        },
        PathWeight {
            path: "/a".into(),
            weight: 3,
        },
    ];
    options.duration = Some(Duration::from_millis(100));
    match load::run(&options) {
        Err(load::LoadError::InvalidOption { option, reason }) => {
            assert_eq!(option, "scenario");
            assert!(reason.contains("/a"), "{reason}");
        }
        other => panic!("accepted a duplicate path: {other:?}"),
    }
    let error = load::scenario::parse("health,/health:2").unwrap_err();
    assert!(error.to_string().contains("/health"), "{error}");
}

/// Both HTTP clients; every test of answer handling runs with each.
const CLIENTS: [ClientKind; 2] = [ClientKind::Lean, ClientKind::Hyper];

/// A raw HTTP server on 127.0.0.1 that gives every request the same bytes, counting the
/// connections it accepted; with `close`, it closes each connection after one answer.
/// Stopped (and its threads ended) when dropped.
struct RawServer {
    addr: SocketAddr,
    accepted: Arc<AtomicU64>,
    stop: Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl RawServer {
    fn serve(answer: &'static [u8], close: bool) -> Self {
        use std::io::{Read as _, Write as _};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let accepted = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (count, stopped) = (Arc::clone(&accepted), Arc::clone(&stop));
        let thread = std::thread::spawn(move || {
            let mut connections = Vec::new();
            while !stopped.load(Ordering::SeqCst) {
                let Ok((mut stream, _)) = listener.accept() else {
                    std::thread::sleep(Duration::from_millis(2));
                    continue;
                };
                count.fetch_add(1, Ordering::SeqCst);
                stream.set_nonblocking(false).unwrap();
                stream
                    .set_read_timeout(Some(Duration::from_millis(200)))
                    .unwrap();
                let stopped = Arc::clone(&stopped);
                connections.push(std::thread::spawn(move || {
                    let mut request = Vec::new();
                    let mut chunk = [0u8; 1024];
                    while !stopped.load(Ordering::SeqCst) {
                        match stream.read(&mut chunk) {
                            Ok(0) => return,
                            Ok(n) => request.extend_from_slice(&chunk[..n]),
                            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
                            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => continue,
                            Err(_) => return,
                        }
                        while let Some(end) = request.windows(4).position(|w| w == b"\r\n\r\n") {
                            request.drain(..end + 4);
                            if stream.write_all(answer).is_err() || close {
                                return;
                            }
                        }
                    }
                }));
            }
            for connection in connections {
                let _ = connection.join();
            }
        });
        Self {
            addr,
            accepted,
            stop,
            thread: Some(thread),
        }
    }

    fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for RawServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn exact(base_url: &str, client: ClientKind, requests: u64) -> LoadOptions {
    let mut options = options(base_url, "/x");
    options.client = client;
    options.connections = 2;
    options.duration = None;
    options.requests = Some(requests);
    options.timeout = Duration::from_secs(2);
    options
}

/// Chunked answers (with a chunk extension and a trailer) are read to their end, and the
/// connection is kept for the next request.
#[test]
fn both_clients_read_chunked_answers_and_keep_the_connection() {
    let server = RawServer::serve(
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n\
          5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nX-Trailer: 1\r\n\r\n",
        false,
    );
    for client in CLIENTS {
        let before = server.accepted.load(Ordering::SeqCst);
        let report = load::run(&exact(&server.base_url(), client, 40)).unwrap();
        assert_accounted(&report);
        assert_eq!(report.ok, 40, "{client:?}: {:?}", report.errors);
        // Never more than one connection per slot: none was reopened. (A slot can also open
        // none, when the other claims every request before its first.)
        let accepted = server.accepted.load(Ordering::SeqCst) - before;
        assert!(
            (1..=2).contains(&accepted),
            "{client:?}: {accepted} connections"
        );
    }
}

/// `Connection: close` answers: every request gets a new connection, none fails.
#[test]
fn both_clients_follow_connection_close() {
    let server = RawServer::serve(
        b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok",
        true,
    );
    for client in CLIENTS {
        let before = server.accepted.load(Ordering::SeqCst);
        let report = load::run(&exact(&server.base_url(), client, 30)).unwrap();
        assert_accounted(&report);
        assert_eq!(report.ok, 30, "{client:?}: {:?}", report.errors);
        assert_eq!(
            server.accepted.load(Ordering::SeqCst) - before,
            30,
            "{client:?}"
        );
    }
}

/// An HTTP/1.0 answer without a length ends when the server closes: a whole answer.
#[test]
fn both_clients_read_bodies_delimited_by_close() {
    let server = RawServer::serve(b"HTTP/1.0 200 OK\r\n\r\nthe body ends at the close", true);
    for client in CLIENTS {
        let report = load::run(&exact(&server.base_url(), client, 10)).unwrap();
        assert_accounted(&report);
        assert_eq!(report.ok, 10, "{client:?}: {:?}", report.errors);
    }
}

/// A chunked body cut off by the close is a body error for both clients.
#[test]
fn both_clients_count_a_cut_chunked_body_as_a_body_error() {
    let server = RawServer::serve(
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n10\r\nshort",
        true,
    );
    for client in CLIENTS {
        let report = load::run(&exact(&server.base_url(), client, 6)).unwrap();
        assert_accounted(&report);
        assert_eq!(report.errors.body, 6, "{client:?}: {:?}", report.errors);
        assert_eq!(report.responses, 6);
    }
}

/// Large bodies (many reads) and streamed (chunked) ones from axum, and statuses by class.
#[test]
fn both_clients_agree_on_large_streamed_and_failing_answers() {
    let fixture = Fixture::serve(
        Router::new()
            .route("/large", get(|| async { vec![b'x'; 300_000] }))
            .route(
                "/streamed",
                get(|| async {
                    let chunks = (0..50).map(|i| {
                        Ok::<_, std::convert::Infallible>(bytes_of(format!("chunk {i}\n")))
                    });
                    axum::body::Body::from_stream(futures_util::stream::iter(chunks))
                }),
            )
            .route(
                "/boom",
                get(|| async { (StatusCode::SERVICE_UNAVAILABLE, "no") }),
            )
            .route("/empty", get(|| async { StatusCode::NO_CONTENT })),
    );
    for client in CLIENTS {
        let mut options = exact(&fixture.base_url(), client, 80);
        // One connection: its picker alone makes the mix exact.
        options.connections = 1;
        options.scenario = load::scenario::parse("/large,/streamed,/boom,/empty,/missing").unwrap();
        let report = load::run(&options).unwrap();
        assert_accounted(&report);
        assert_eq!(report.ok, 48, "{client:?}: {:?}", report.errors);
        assert_eq!(report.errors.status_5xx, 16, "{client:?}");
        assert_eq!(report.errors.status_4xx, 16, "{client:?}");
        assert_eq!(report.responses, 80, "{client:?}");
    }
}

fn bytes_of(text: String) -> axum::body::Bytes {
    axum::body::Bytes::from(text)
}

/// Open loop at 50 000 req/s: whatever this machine manages, the run is well formed. The
/// schedule's count is exact, every scheduled request is accounted for, the corrected
/// histogram holds every answer and every unsent request and decodes to the reported count,
/// and correction never makes a latency smaller than its uncorrected figure.
#[test]
fn open_loop_at_50k_keeps_a_well_formed_record() {
    let _turn = serial();
    let fixture = Fixture::serve(Router::new().route("/ok", get(|| async { "ok" })));
    let mut options = options(&fixture.base_url(), "/ok");
    options.connections = 64;
    options.rate = Some(50_000.0);
    options.duration = Some(Duration::from_secs(1));
    options.warmup = Duration::from_millis(200);
    let report = load::run(&options).unwrap();
    eprintln!(
        "50k open loop: achieved {:.0} req/s, {} unsent, corrected p99 {} µs",
        report.achieved_rate_rps, report.errors.unsent, report.latency.p99_us
    );
    assert_accounted(&report);
    assert_eq!(report.requests_sent, 50_000);
    let uncorrected = report.uncorrected_latency.clone().expect("open loop");
    assert_eq!(uncorrected.count, report.ok);
    let histogram = isobench::artifact::histogram::decode(&report.histogram).unwrap();
    assert_eq!(histogram.len(), report.latency.count);
    assert!(report.latency.p50_us >= uncorrected.p50_us);
    assert!(report.latency.p99_us >= uncorrected.p99_us);
    assert!(report.latency.max_us >= uncorrected.max_us);
}

/// Issue 28: the window's time series and the steadiness test on it, against servers whose
/// answer is known: one that holds every response 300 ms of every second, one whose
/// throughput halves halfway through, and steady ones. They judge timing, so they run alone
/// (`::perf::`).
mod steadiness {
    use super::*;
    use isobench::artifact::series::WindowSeries;

    fn series(report: &LoadReport) -> &WindowSeries {
        report
            .series
            .as_ref()
            .expect("every run records its series")
    }

    /// Every slice's counts add up to the window's, and the series covers the window.
    fn assert_series_accounts(report: &LoadReport) {
        let series = series(report);
        let kept = series.discarded_slices..series.ok.len();
        assert_eq!(series.ok[kept.clone()].iter().sum::<u64>(), report.ok);
        let failed: u64 = series
            .errors
            .values()
            .map(|per_slice| per_slice[kept.clone()].iter().sum::<u64>())
            .sum();
        assert_eq!(failed, report.errors.total(), "{:?}", series.errors);
        for column in [
            series.p50_us.len(),
            series.p99_us.len(),
            series.in_flight.len(),
        ] {
            assert_eq!(column, series.ok.len());
        }
        let covered = series.slice_ms * (series.ok.len() as f64 - 1.0);
        assert!(covered < series.window_ms && series.window_ms <= covered + series.slice_ms);
    }

    /// A server that holds every response for `stall` of every second, the stall starting
    /// `offset` into each second after `epoch`.
    fn stalling(epoch: Instant, stall: Duration, offset: Duration) -> Fixture {
        Fixture::serve(Router::new().route(
            "/stall",
            get(move || async move {
                let phase = (epoch.elapsed() + Duration::from_secs(1) - offset).as_millis() % 1000;
                if phase < stall.as_millis() {
                    let rest = (stall.as_millis() - phase) as u64;
                    tokio::time::sleep(Duration::from_millis(rest)).await;
                }
                "ok"
            }),
        ))
    }

    mod perf {
        use super::*;

        /// A 300 ms stall every second, in the middle of each second of a 2 s window: both a
        /// closed and an open loop flag it, at the slices where it happened.
        #[test]
        fn a_stall_every_second_is_flagged_where_it_happened() {
            for rate in [None, Some(500.0)] {
                // The window starts about 20 ms after the run is planned; stalls at 0.5–0.8 s
                // and 1.5–1.8 s of it.
                let epoch = Instant::now();
                let fixture = stalling(
                    epoch,
                    Duration::from_millis(300),
                    Duration::from_millis(520),
                );
                let mut options = options(&fixture.base_url(), "/stall");
                options.connections = 4;
                options.rate = rate;
                options.duration = Some(Duration::from_secs(2));
                let report = load::run(&options).unwrap();
                assert_accounted(&report);
                assert_series_accounts(&report);
                let steadiness = &series(&report).steadiness;
                eprintln!("rate {rate:?}: {steadiness:?}");
                assert_eq!(steadiness.stalls.len(), 2, "{steadiness:?}");
                for (stall, at_slice) in steadiness.stalls.iter().zip([5, 15]) {
                    assert!(
                        (at_slice..=at_slice + 1).contains(&stall.first_slice)
                            && (1..=3).contains(&stall.slices),
                        "{stall:?}"
                    );
                }
            }
        }

        /// The service time doubles 1 s into a 2 s window: the closed loop's throughput halves
        /// and the window is flagged as drifting, by about −50%.
        #[test]
        fn a_server_that_halves_halfway_is_flagged() {
            let epoch = Instant::now();
            let fixture = Fixture::serve(Router::new().route(
                "/halving",
                get(move || async move {
                    let slow = epoch.elapsed() >= Duration::from_millis(1020);
                    let hold = if slow { 10 } else { 5 };
                    tokio::time::sleep(Duration::from_millis(hold)).await;
                    "ok"
                }),
            ));
            let mut options = options(&fixture.base_url(), "/halving");
            options.connections = 4;
            options.duration = Some(Duration::from_secs(2));
            let report = load::run(&options).unwrap();
            assert_accounted(&report);
            assert_series_accounts(&report);
            let steadiness = &series(&report).steadiness;
            eprintln!("{steadiness:?}");
            assert!(steadiness.drifted, "{steadiness:?}");
            let drift = steadiness.drift_pct.unwrap();
            assert!((-65.0..=-35.0).contains(&drift), "drift {drift}%");
            assert!(steadiness.stalls.is_empty());
        }

        /// A service that answers in 20 ms for its first 0.4 s and in 5 ms after: the window's
        /// first quarter is cut off as a warm-up still under way, the figures are the rest's
        /// (counts, window length and throughput from exactly the slices kept), and what was
        /// sent in the quarter cut off counts as warm-up.
        #[test]
        fn a_warm_up_still_under_way_is_cut_off_and_said_so() {
            let epoch = Instant::now();
            let fixture = Fixture::serve(Router::new().route(
                "/cold",
                get(move || async move {
                    let cold = epoch.elapsed() < Duration::from_millis(420);
                    tokio::time::sleep(Duration::from_millis(if cold { 20 } else { 5 })).await;
                    "ok"
                }),
            ));
            let mut options = options(&fixture.base_url(), "/cold");
            options.connections = 4;
            options.duration = Some(Duration::from_secs(2));
            let report = load::run(&options).unwrap();
            assert_accounted(&report);
            assert_series_accounts(&report);
            let series = series(&report);
            eprintln!("ok per slice {:?}: {:?}", series.ok, series.steadiness);
            assert_eq!(series.discarded_slices, 5, "{series:?}");
            assert!(
                (report.elapsed_s - 1.5).abs() < 1e-6,
                "{}",
                report.elapsed_s
            );
            let kept: u64 = series.ok[5..].iter().sum();
            assert_eq!(report.ok, kept);
            assert!((report.throughput_rps - kept as f64 / 1.5).abs() < 1e-6);
            let cut_off: u64 = series.ok[..5].iter().sum();
            assert!(
                report.warmup_requests >= cut_off,
                "{}",
                report.warmup_requests
            );
            assert!(
                !series.steadiness.warming_up,
                "judged again on what was kept"
            );
        }

        /// Steady servers (fixed service times of 1 ms and 5 ms, which another process on
        /// the machine cannot stretch the way it slows a CPU-bound server) are flagged in at
        /// most 5% of their windows: one of twenty here.
        #[test]
        fn steady_servers_are_rarely_flagged() {
            let fixture = Fixture::serve(
                Router::new()
                    .route(
                        "/1ms",
                        get(|| async {
                            tokio::time::sleep(Duration::from_millis(1)).await;
                            "ok"
                        }),
                    )
                    .route(
                        "/5ms",
                        get(|| async {
                            tokio::time::sleep(Duration::from_millis(5)).await;
                            "ok"
                        }),
                    ),
            );
            let mut flagged = Vec::new();
            let windows = 10;
            for path in ["/1ms", "/5ms"] {
                for _ in 0..windows {
                    let mut options = options(&fixture.base_url(), path);
                    options.connections = 4;
                    options.warmup = Duration::from_millis(100);
                    options.duration = Some(Duration::from_millis(500));
                    let report = load::run(&options).unwrap();
                    assert_accounted(&report);
                    assert_series_accounts(&report);
                    let steadiness = &series(&report).steadiness;
                    assert_eq!(steadiness.not_judged, None, "{path}: {steadiness:?}");
                    if steadiness.unsteady() || series(&report).discarded_slices > 0 {
                        flagged.push((path, steadiness.clone()));
                    }
                }
            }
            assert!(
                flagged.len() <= 1,
                "of {} windows: {flagged:#?}",
                2 * windows
            );
        }
    }
}

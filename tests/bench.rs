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
use isobench::cli::{Cli, Command};
use isobench::load::{self, LoadOptions, LoadReport, PathWeight};
use isobench::report::schema::{Artifact, EnvKind};

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

/// Every measured request ends in exactly one outcome.
fn assert_accounted(report: &LoadReport) {
    assert_eq!(
        report.requests_sent,
        report.ok + report.errors.total(),
        "{report:#?}"
    );
    assert_eq!(report.latency.count, report.ok);
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
    let mut options = options(&fixture.base_url(), "/peer");
    options.connections = 2;
    options.duration = None;
    options.requests = Some(40);
    let report = load::run(&options).unwrap();
    assert_eq!(report.ok, 40);
    assert_eq!(peers.lock().unwrap().len(), 2);

    peers.lock().unwrap().clear();
    options.keep_alive = false;
    let report = load::run(&options).unwrap();
    assert_eq!(report.ok, 40);
    assert!(!report.keep_alive);
    assert_eq!(peers.lock().unwrap().len(), 40);
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

#[test]
fn status_classes_are_counted_per_kind_and_path() {
    let fixture = Fixture::serve(Router::new().route("/ok", get(|| async { "ok" })).route(
        "/boom",
        get(|| async { (StatusCode::INTERNAL_SERVER_ERROR, "boom") }),
    ));
    let mut options = options(&fixture.base_url(), "/ok");
    options.scenario = load::scenario::parse("/ok,/boom,/missing").unwrap();
    options.connections = 1;
    options.duration = None;
    options.requests = Some(30);
    let report = load::run(&options).unwrap();
    assert_accounted(&report);
    assert_eq!(report.ok, 10);
    assert_eq!(report.errors.status_5xx, 10);
    assert_eq!(report.errors.status_4xx, 10);
    assert_eq!(report.responses, 30);
    assert_eq!(report.per_path["/boom"].errors, 10);
    assert_eq!(report.per_path["/missing"].errors, 10);
    assert_eq!(report.per_path["/ok"].ok, 10);
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
        for _ in 0..4 {
            let Ok((mut stream, _)) = listener.accept() else {
                return;
            };
            let mut request = [0u8; 1024];
            let _ = stream.read(&mut request);
            let _ = stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nshort");
        }
    });
    let mut options = options(&format!("http://{addr}"), "/truncated");
    options.connections = 1;
    options.duration = None;
    options.requests = Some(4);
    options.timeout = Duration::from_secs(2);
    let report = load::run(&options).unwrap();
    assert_accounted(&report);
    assert_eq!(report.errors.body, 4, "{:?}", report.errors);
    assert_eq!(report.responses, 4);
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
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("src/report/artifact.schema.json")
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
    let histogram = load::recorder::decode(&report.histogram).unwrap();
    assert_eq!(histogram.len(), report.latency.count);
    assert!(report.generator.cpu_seconds > 0.0);
    // Only the artifact is left in the directory: the temporary file was renamed.
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
}

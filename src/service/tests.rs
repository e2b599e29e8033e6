//! In-process tests of the whole router: every endpoint and every class of bad input, driven
//! with `tower::ServiceExt::oneshot` (no socket).

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use axum::routing::get;
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;

use super::middleware::Limits;
use super::*;

/// Small caps so valid requests stay quick.
fn small_config() -> Config {
    Config {
        default_cpu_n: 1_000,
        max_cpu_n: 100_000,
        default_memory_mb: 2,
        max_memory_mb: 8,
        memory_budget_mb: 8,
        default_parallel_tasks: 4,
        max_parallel_tasks: 8,
        max_cpu_jobs: 8,
        ..Config::default()
    }
}

async fn send(router: Router, request: Request<Body>) -> (StatusCode, Option<String>, Value) {
    let response = router.oneshot(request).await.unwrap();
    let status = response.status();
    let content_type = response
        .headers()
        .get(header::CONTENT_TYPE)
        .map(|value| value.to_str().unwrap().to_owned());
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let body = serde_json::from_slice(&bytes)
        .unwrap_or_else(|error| panic!("body {bytes:?} is not JSON: {error}"));
    (status, content_type, body)
}

async fn get_json(router: Router, uri: &str) -> (StatusCode, Value) {
    let request = Request::get(uri).body(Body::empty()).unwrap();
    let (status, content_type, body) = send(router, request).await;
    assert_eq!(content_type.as_deref(), Some("application/json"), "{uri}");
    (status, body)
}

async fn get_ok(uri: &str) -> Value {
    let (status, body) = get_json(app(small_config()), uri).await;
    assert_eq!(status, StatusCode::OK, "{uri}: {body}");
    body
}

async fn get_bad(uri: &str, param: &str, words: &str) {
    get_bad_with(small_config(), uri, param, words).await;
}

async fn get_bad_with(config: Config, uri: &str, param: &str, words: &str) {
    let (status, body) = get_json(app(config), uri).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{uri}: {body}");
    assert_eq!(body["param"], param, "{uri}: {body}");
    let error = body["error"].as_str().unwrap();
    assert!(error.contains(words), "{uri}: {error:?} lacks {words:?}");
}

#[tokio::test]
async fn health_is_exactly_ok() {
    let response = app(Config::default())
        .oneshot(Request::get("/health").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()[header::CONTENT_TYPE], "application/json");
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(&bytes[..], br#"{"status":"ok"}"#);
    // An empty query is no parameter at all.
    let (status, body) = get_json(app(Config::default()), "/health?").await;
    assert_eq!((status, body), (StatusCode::OK, json!({"status": "ok"})));
    // HEAD answers like GET, without the body.
    let response = app(Config::default())
        .oneshot(Request::head("/health").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    assert!(bytes.is_empty());
}

#[tokio::test]
async fn cpu_counts_primes() {
    let body = get_ok("/cpu?n=10000").await;
    assert_eq!(body["n"], 10_000);
    assert_eq!(body["primes_below_n"], 1_229);
    assert!(body["elapsed_us"].is_u64());
    // The default N.
    let body = get_ok("/cpu").await;
    assert_eq!(body["n"], 1_000);
    assert_eq!(body["primes_below_n"], 168);
}

#[tokio::test]
async fn memory_touches_every_page() {
    let body = get_ok("/memory?mb=4").await;
    assert_eq!(body["mb"], 4);
    let page = body["page_bytes"].as_u64().unwrap();
    assert_eq!(
        body["pages_touched"].as_u64().unwrap(),
        4 * 1024 * 1024 / page
    );
    assert!(body["elapsed_us"].is_u64());
    assert_eq!(get_ok("/memory").await["mb"], 2);
}

#[tokio::test]
async fn parallel_runs_every_task() {
    let body = get_ok("/parallel?tasks=6&n=1000").await;
    assert_eq!(body["tasks"], 6);
    assert_eq!(body["n"], 1000);
    assert_eq!(body["results"], json!([168, 168, 168, 168, 168, 168]));
    let threads = body["threads"].as_u64().unwrap();
    let pool = body["pool_threads"].as_u64().unwrap();
    assert!(threads >= 1 && threads <= pool, "{body}");
    assert!(body["elapsed_us"].is_u64());
    let body = get_ok("/parallel").await;
    assert_eq!(body["results"].as_array().unwrap().len(), 4);
}

/// The totals of `/status` add up exactly the work the `/cpu` answers reported, so a client
/// reading them around a load knows what that load's work cost by the service's clocks.
#[tokio::test]
async fn status_totals_the_cpu_tasks_work() {
    let router = app(small_config());
    let totals = |body: &Value| {
        let tasks = &body["cpu_tasks"];
        let field = |name: &str| tasks[name].as_u64().unwrap();
        (field("count"), field("cpu_ns"), field("elapsed_ns"))
    };
    let before = totals(&get_json(router.clone(), "/status").await.1);
    let mut reported = 0;
    for _ in 0..3 {
        let (status, body) = get_json(router.clone(), "/cpu?n=100000").await;
        assert_eq!(status, StatusCode::OK, "{body}");
        reported += body["cpu_ns"].as_u64().unwrap();
    }
    let after = totals(&get_json(router, "/status").await.1);
    assert_eq!(after.0 - before.0, 3);
    assert_eq!(after.1 - before.1, reported);
    assert!(after.2 - before.2 >= reported / 2, "{before:?} {after:?}");
}

#[tokio::test]
async fn status_reports_itself_and_the_detected_environment() {
    let body = get_ok("/status").await;
    assert_eq!(body["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(body["pid"], std::process::id());
    assert!(body["uptime_s"].as_f64().unwrap() >= 0.0);
    assert!(body["cpus"].as_u64().unwrap() >= 1);
    assert!(body["hostname"].is_string());
    assert!(body["kernel"].is_string());
    let memory = &body["memory"];
    let total = memory["total_bytes"].as_u64().unwrap();
    assert!(total > 0);
    assert!(memory["available_bytes"].as_u64().unwrap() <= total);
    assert!(memory["process_rss_bytes"].as_u64().unwrap() > 0);
    // The caps the configuration derived, and the limit they came from.
    assert_eq!(memory["max_request_mb"], 8);
    assert_eq!(memory["budget_mb"], 8);
    assert!(memory["limit"]["limit_mb"].as_u64().unwrap() > 0);
    assert!(body["threads"].as_u64().unwrap() >= 1);
    // stdin, stdout, stderr at least.
    assert!(body["open_fds"].as_u64().unwrap() >= 3);
    let detected = detect::detect();
    assert_eq!(body["environment"]["kind"], detected.kind.as_str());
    assert_eq!(
        body["environment"]["evidence"],
        serde_json::to_value(&detected.evidence).unwrap()
    );
}

#[tokio::test]
async fn bad_numbers_are_400_naming_the_parameter() {
    get_bad("/cpu?n=abc", "n", "whole number").await;
    get_bad("/cpu?n=-5", "n", "negative").await;
    get_bad("/cpu?n=0", "n", "at least 1").await;
    get_bad("/cpu?n=100001", "n", "at most 100000").await;
    get_bad("/cpu?n=184467440737095516160", "n", "at most").await;
    get_bad("/cpu?n=", "n", "empty").await;
    get_bad("/memory?mb=9", "mb", "at most 8").await;
    get_bad("/memory?mb=0", "mb", "at least 1").await;
    get_bad("/memory?mb=1.5", "mb", "whole number").await;
    get_bad("/parallel?tasks=0", "tasks", "at least 1").await;
    get_bad("/parallel?tasks=9", "tasks", "at most 8").await;
    get_bad("/parallel?tasks=2&n=-1", "n", "negative").await;
}

#[tokio::test]
async fn unknown_repeated_and_badly_encoded_parameters_are_400() {
    get_bad("/cpu?m=5", "m", "unknown").await;
    get_bad("/parallel?tasks=2&tasks=3", "tasks", "more than once").await;
    get_bad("/memory?mb=%4", "mb", "percent-encoding").await;
    get_bad("/memory?mb=%C3%28", "mb", "UTF-8").await;
    get_bad("/health?verbose=1", "verbose", "unknown").await;
    get_bad("/status?x", "x", "unknown").await;
}

#[tokio::test]
async fn unknown_path_is_404_and_wrong_method_405() {
    let (status, body) = get_json(app(small_config()), "/nope").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(body["error"].as_str().unwrap().contains("/nope"));
    for method in ["POST", "PUT", "DELETE"] {
        let request = Request::builder()
            .method(method)
            .uri("/cpu")
            .body(Body::empty())
            .unwrap();
        let (status, _, body) = send(app(small_config()), request).await;
        assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED, "{method}");
        assert!(body["error"].as_str().unwrap().contains(method));
    }
}

#[tokio::test]
async fn oversized_targets_and_headers_are_refused_with_json() {
    let config = Config {
        max_uri_bytes: 100,
        max_header_bytes: 200,
        ..small_config()
    };
    let uri = format!("/cpu?n=1{}", "0".repeat(100));
    let (status, body) = get_json(app(config.clone()), &uri).await;
    assert_eq!(status, StatusCode::URI_TOO_LONG, "{body}");
    let request = Request::get("/health")
        .header("x-padding", "a".repeat(300))
        .body(Body::empty())
        .unwrap();
    let (status, _, body) = send(app(config), request).await;
    assert_eq!(
        status,
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
        "{body}"
    );
}

#[tokio::test]
async fn over_budget_is_503_and_the_budget_comes_back() {
    let state = state::AppState::new(small_config());
    let held = state.admit_memory(6).unwrap();
    let error = state.admit_memory(4).unwrap_err();
    assert_eq!(error.status(), StatusCode::SERVICE_UNAVAILABLE);
    drop(held);
    let _held = state.admit_memory(8).unwrap();
    let held = state.admit_cpu(8).unwrap();
    assert_eq!(
        state.admit_cpu(1).unwrap_err().status(),
        StatusCode::SERVICE_UNAVAILABLE
    );
    drop(held);
    let _held = state.admit_cpu(1).unwrap();
}

#[tokio::test]
async fn concurrent_memory_requests_beyond_the_budget_get_503() {
    // Budget 8 MiB; three concurrent 4 MiB requests cannot all be admitted at once, so
    // each either succeeds or is refused with a JSON 503, never anything else.
    let router = app(small_config());
    let requests = (0..6).map(|_| get_json(router.clone(), "/memory?mb=4"));
    let answers = futures_join(requests).await;
    for (status, body) in &answers {
        match *status {
            StatusCode::OK => assert_eq!(body["mb"], 4),
            StatusCode::SERVICE_UNAVAILABLE => {
                assert!(body["error"].as_str().unwrap().contains("budget"))
            }
            other => panic!("unexpected {other}: {body}"),
        }
    }
    assert!(answers.iter().any(|(status, _)| *status == StatusCode::OK));
}

/// Runs futures concurrently on the test runtime and collects their outputs in order.
async fn futures_join<F>(futures: impl Iterator<Item = F>) -> Vec<F::Output>
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    let handles: Vec<_> = futures.map(tokio::spawn).collect();
    let mut outputs = Vec::with_capacity(handles.len());
    for handle in handles {
        outputs.push(handle.await.unwrap());
    }
    outputs
}

fn limits(timeout_ms: u64) -> Limits {
    Limits {
        max_uri_bytes: 1024,
        max_header_bytes: 1024,
        timeout: std::time::Duration::from_millis(timeout_ms),
    }
}

#[tokio::test]
async fn a_panicking_handler_is_a_json_500() {
    async fn explode() -> &'static str {
        panic!("boom")
    }
    let router = with_layers(
        Router::new().route("/explode", get(explode)),
        limits(30_000),
    );
    let (status, body) = get_json(router, "/explode").await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    // The panic message stays in the log.
    assert_eq!(body, json!({"error": "internal server error"}));
}

#[tokio::test]
async fn a_panicking_cpu_task_is_a_json_500_not_an_abort() {
    async fn explode_on_pool() -> Result<&'static str, ApiError> {
        endpoints::on_cpu_pool(|| -> &'static str { panic!("boom on the pool") }).await
    }
    // A generous timeout: symbolising the panic's backtrace on a loaded machine can take
    // seconds, and this test is about the panic, not the timeout.
    let router = with_layers(
        Router::new().route("/explode", get(explode_on_pool)),
        limits(30_000),
    );
    let (status, body) = get_json(router, "/explode").await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(body, json!({"error": "internal server error"}));
}

#[tokio::test]
async fn a_slow_request_times_out_with_json() {
    async fn sleepy() -> &'static str {
        tokio::time::sleep(std::time::Duration::from_secs(60)).await;
        "late"
    }
    let router = with_layers(Router::new().route("/sleepy", get(sleepy)), limits(20));
    let (status, body) = get_json(router, "/sleepy").await;
    assert_eq!(status, StatusCode::GATEWAY_TIMEOUT);
    assert!(body["error"].as_str().unwrap().contains("timed out"));
}

#[tokio::test]
async fn serve_answers_on_a_real_socket_and_stops_when_told() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(serve(listener, small_config(), async {
        let _ = stopped.await;
    }));
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    stream
        .write_all(b"GET /health HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.ends_with(r#"{"status":"ok"}"#), "{answer}");
    stop.send(()).unwrap();
    server.await.unwrap().unwrap();
}

#[tokio::test]
async fn syscalls_makes_the_calls_it_is_asked_for() {
    let body = get_ok("/syscalls?n=500").await;
    assert_eq!(body["calls"], 500);
    assert_eq!(body["call"], "getppid");
    assert!(body["elapsed_ns"].as_u64().unwrap() > 0, "{body}");
    assert_eq!(
        get_ok("/syscalls").await["calls"],
        config::DEFAULT_SYSCALLS_N
    );
}

#[tokio::test]
async fn syscalls_refuses_bad_counts_naming_n() {
    get_bad("/syscalls?n=0", "n", "at least 1").await;
    get_bad("/syscalls?n=-3", "n", "negative").await;
    get_bad("/syscalls?n=1000001", "n", "at most").await;
    get_bad("/syscalls?calls=3", "calls", "unknown").await;
}

fn files_config(dir: &std::path::Path) -> Config {
    Config {
        data_dir: Some(dir.to_path_buf()),
        max_file_kb: 256,
        max_files_in_flight: 2,
        ..small_config()
    }
}

#[tokio::test]
async fn files_round_trips_and_leaves_nothing_behind() {
    let dir = tempfile::tempdir().unwrap();
    for (uri, fsync) in [
        ("/files?kb=64&fsync=true", true),
        ("/files?kb=64&fsync=0", false),
        ("/files?kb=64", false),
    ] {
        let (status, body) = get_json(app(files_config(dir.path())), uri).await;
        assert_eq!(status, StatusCode::OK, "{uri}: {body}");
        assert_eq!(body["bytes"], 64 * 1024, "{uri}");
        assert_eq!(body["fsync"], fsync, "{uri}");
        assert_eq!(body["verified"], true, "{uri}");
    }
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}

#[tokio::test]
async fn files_refuses_bad_input_naming_the_parameter() {
    let dir = tempfile::tempdir().unwrap();
    for (uri, param, words) in [
        ("/files?kb=257", "kb", "at most 256"),
        ("/files?kb=x", "kb", "whole number"),
        ("/files?fsync=yes", "fsync", "true, false"),
        ("/files?fsync=", "fsync", "true, false"),
        ("/files?kb=1&kb=2", "kb", "more than once"),
        ("/files?size=1", "size", "unknown"),
    ] {
        get_bad_with(files_config(dir.path()), uri, param, words).await;
    }
}

#[tokio::test]
async fn files_without_a_usable_data_directory_is_a_503_naming_it() {
    let (status, body) = get_json(app(small_config()), "/files").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("data directory"),
        "{body}"
    );

    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("gone");
    let (status, body) = get_json(app(files_config(&missing)), "/files").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("data directory"),
        "{body}"
    );
}

#[tokio::test]
async fn files_in_flight_beyond_the_limit_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let state = state::AppState::new(files_config(dir.path()));
    let held: Vec<_> = (0..2).map(|_| state.admit_file().unwrap()).collect();
    let refused = state.admit_file().unwrap_err();
    assert_eq!(refused.status(), StatusCode::SERVICE_UNAVAILABLE);
    drop(held);
    assert!(state.admit_file().is_ok());
}

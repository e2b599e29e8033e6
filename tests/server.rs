//! The real `isobench-server` binary on 127.0.0.1, port 0: it announces its address, answers
//! every endpoint with the contract's JSON over real HTTP, refuses bad input with JSON, and
//! exits 0 promptly on SIGTERM and SIGINT.
#![cfg(feature = "harness")]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// A running server, killed if a test fails before stopping it.
struct Server {
    child: Child,
    address: String,
}

impl Server {
    fn start(extra_args: &[&str]) -> Server {
        let mut child = Command::new(env!("CARGO_BIN_EXE_isobench-server"))
            .args(["--bind", "127.0.0.1", "--port", "0"])
            .args(extra_args)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawning isobench-server");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .expect("reading the first line of stdout");
        let address = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
            .to_owned();
        assert!(address.starts_with("127.0.0.1:"), "{address}");
        assert_ne!(address, "127.0.0.1:0", "the real port is printed");
        Server { child, address }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.address)
    }

    /// GETs `path`, returning the status, content type and JSON body.
    fn get(&self, path: &str) -> (u16, String, Value) {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(30)))
            .build()
            .into();
        let mut response = agent.get(&self.url(path)).call().expect(path);
        let status = response.status().as_u16();
        let content_type = response
            .headers()
            .get("content-type")
            .map(|value| value.to_str().unwrap().to_owned())
            .unwrap_or_default();
        let text = response.body_mut().read_to_string().unwrap();
        let body = serde_json::from_str(&text)
            .unwrap_or_else(|error| panic!("{path}: {text:?} is not JSON: {error}"));
        (status, content_type, body)
    }

    fn get_ok(&self, path: &str) -> Value {
        let (status, content_type, body) = self.get(path);
        assert_eq!(status, 200, "{path}: {body}");
        assert_eq!(content_type, "application/json", "{path}");
        body
    }

    /// Sends `signal` and waits (bounded) for the process to exit; returns its exit code.
    fn stop_with(mut self, signal: libc::c_int) -> Option<i32> {
        let pid = libc::pid_t::try_from(self.child.id()).unwrap();
        // SAFETY: kill(2) on our own child's pid has no memory-safety preconditions.
        assert_eq!(unsafe { libc::kill(pid, signal) }, 0);
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code();
            }
            assert!(
                Instant::now() < deadline,
                "server still running 10 s after signal {signal}"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Sends raw bytes and returns whatever the server answers (status line and all).
fn raw_exchange(address: &str, request: &[u8]) -> String {
    let mut stream = TcpStream::connect(address).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    // The server may answer and close before it has read everything; that is fine.
    let _ = stream.write_all(request);
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    String::from_utf8_lossy(&answer).into_owned()
}

#[test]
fn every_endpoint_answers_its_contract() {
    let server = Server::start(&[]);
    let (status, content_type, body) = server.get("/health");
    assert_eq!((status, content_type.as_str()), (200, "application/json"));
    assert_eq!(body, serde_json::json!({"status": "ok"}));

    let body = server.get_ok("/cpu?n=100000");
    assert_eq!(body["n"], 100_000);
    // π(100 000) = 9592.
    assert_eq!(body["primes_below_n"], 9_592);
    assert!(body["elapsed_us"].is_u64());
    // The work's CPU time by its thread's clock: some, and never more than its wall time
    // allows. The two clocks tick from different sources (the scheduler's runtime and the
    // monotonic clock), so over the same stretch one may run a few microseconds ahead of the
    // other. A tenth of a percent and 20 µs absorb that; a CPU clock that counted another
    // thread's time would be far beyond it.
    let cpu_ns = body["cpu_ns"].as_u64().unwrap() as f64;
    let wall_ns = body["elapsed_us"].as_u64().unwrap() as f64 * 1e3;
    assert!(cpu_ns > 0.0, "{body}");
    assert!(cpu_ns <= wall_ns * 1.001 + 20e3, "{body}");
    let body = server.get_ok("/cpu");
    assert_eq!(body["n"], 50_000);
    assert_eq!(body["primes_below_n"], 5_133);

    let body = server.get_ok("/memory?mb=16");
    assert_eq!(body["mb"], 16);
    let page = body["page_bytes"].as_u64().unwrap();
    assert_eq!(
        body["pages_touched"].as_u64().unwrap(),
        16 << 20 >> page.trailing_zeros()
    );

    let body = server.get_ok("/parallel?tasks=4&n=10000");
    assert_eq!(body["results"], serde_json::json!([1229, 1229, 1229, 1229]));
    assert!(body["threads"].as_u64().unwrap() >= 1);

    let body = server.get_ok("/status");
    assert_eq!(body["pid"], server.child.id());
    let detected = isobench::service::detect::detect();
    assert_eq!(body["environment"]["kind"], detected.kind.as_str());
    assert!(body["memory"]["process_rss_bytes"].as_u64().unwrap() > 0);

    assert_eq!(server.stop_with(libc::SIGTERM), Some(0));
}

#[test]
fn bad_input_gets_json_errors_over_the_wire() {
    let server = Server::start(&["--max-memory-mb", "64", "--memory-budget-mb", "64"]);
    for (path, status, param) in [
        ("/cpu?n=-1", 400, Some("n")),
        ("/cpu?n=abc", 400, Some("n")),
        ("/cpu?n=1&n=2", 400, Some("n")),
        ("/cpu?n=%G0", 400, Some("n")),
        ("/cpu?n=99999999999999999999999", 400, Some("n")),
        ("/memory?mb=65", 400, Some("mb")),
        ("/parallel?threads=2", 400, Some("threads")),
        ("/nowhere", 404, None),
    ] {
        let (got, content_type, body) = server.get(path);
        assert_eq!(got, status, "{path}: {body}");
        assert_eq!(content_type, "application/json", "{path}");
        assert!(body["error"].is_string(), "{path}: {body}");
        assert_eq!(body["param"].as_str(), param, "{path}: {body}");
    }

    let answer = raw_exchange(
        &server.address,
        b"DELETE /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert!(answer.starts_with("HTTP/1.1 405"), "{answer}");
    assert!(answer.contains("{\"error\""), "{answer}");

    let long_target = format!(
        "GET /cpu?n={} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        "1".repeat(10_000)
    );
    let answer = raw_exchange(&server.address, long_target.as_bytes());
    assert!(answer.starts_with("HTTP/1.1 414"), "{answer}");
    assert!(answer.contains("{\"error\""), "{answer}");

    let big_header = format!(
        "GET /health HTTP/1.1\r\nHost: x\r\nX-Pad: {}\r\nConnection: close\r\n\r\n",
        "a".repeat(20_000)
    );
    let answer = raw_exchange(&server.address, big_header.as_bytes());
    assert!(answer.starts_with("HTTP/1.1 431"), "{answer}");
    assert!(answer.contains("{\"error\""), "{answer}");

    // Beyond hyper's own buffer the server still answers (hyper's 431) instead of dropping
    // the connection.
    let huge_header = format!(
        "GET /health HTTP/1.1\r\nHost: x\r\nX-Pad: {}\r\n\r\n",
        "a".repeat(1 << 20)
    );
    let answer = raw_exchange(&server.address, huge_header.as_bytes());
    assert!(answer.starts_with("HTTP/1.1 4"), "{answer:.200}");

    // Still healthy after all that.
    assert_eq!(server.get_ok("/health")["status"], "ok");
    assert_eq!(server.stop_with(libc::SIGINT), Some(0));
}

#[test]
fn bad_configuration_fails_with_a_message() {
    let output = Command::new(env!("CARGO_BIN_EXE_isobench-server"))
        .args(["--port", "0", "--bind", "127.0.0.1"])
        .args(["--max-memory-mb", "4096", "--memory-budget-mb", "1024"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("max-memory-mb"), "{stderr}");
    assert!(output.stdout.is_empty());
}

#[test]
fn health_answers_while_cpu_work_saturates_the_pool() {
    let server = Server::start(&["--request-timeout-ms", "120000"]);
    let pool = server.get_ok("/status")["pool_threads"].as_u64().unwrap();
    // Twice as many long prime counts as the CPU pool has threads: if CPU work ran on the
    // async workers, /health would queue behind it.
    let url = server.url("/cpu?n=1000000");
    let workers: Vec<_> = (0..2 * pool)
        .map(|_| {
            let url = url.clone();
            std::thread::spawn(move || {
                let agent: ureq::Agent = ureq::Agent::config_builder()
                    .timeout_global(Some(Duration::from_secs(120)))
                    .build()
                    .into();
                agent.get(&url).call().map(|mut response| {
                    let body: Value = response.body_mut().read_json().unwrap();
                    body["primes_below_n"].as_u64()
                })
            })
        })
        .collect();
    // Give the requests time to be admitted before probing.
    std::thread::sleep(Duration::from_millis(300));
    for _ in 0..5 {
        assert_eq!(server.get_ok("/health")["status"], "ok");
        assert_eq!(
            server.get_ok("/status")["version"],
            env!("CARGO_PKG_VERSION")
        );
    }
    assert!(
        workers.iter().any(|worker| !worker.is_finished()),
        "the CPU work finished before /health was probed: the test proved nothing"
    );
    for worker in workers {
        // π(1 000 000) = 78 498.
        assert_eq!(worker.join().unwrap().unwrap(), Some(78_498));
    }
    assert_eq!(server.stop_with(libc::SIGTERM), Some(0));
}

#[test]
fn over_capacity_is_503_and_slow_requests_time_out_with_504() {
    // One CPU task admitted at a time, a short timeout, and a prime count far longer than it.
    let server = Server::start(&[
        "--max-cpu-jobs",
        "1",
        "--max-parallel-tasks",
        "1",
        "--default-parallel-tasks",
        "1",
        "--max-cpu-n",
        "50000000",
        "--request-timeout-ms",
        "1500",
        "--shutdown-grace-ms",
        "100",
    ]);
    let url = server.url("/cpu?n=50000000");
    let slow = std::thread::spawn(move || {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(60)))
            .build()
            .into();
        let mut response = agent.get(&url).call().unwrap();
        let body: Value = response.body_mut().read_json().unwrap();
        (response.status().as_u16(), body)
    });
    std::thread::sleep(Duration::from_millis(300));
    let (status, content_type, body) = server.get("/cpu?n=10");
    assert_eq!(
        (status, content_type.as_str()),
        (503, "application/json"),
        "{body}"
    );
    assert!(
        body["error"].as_str().unwrap().contains("CPU task"),
        "{body}"
    );

    let (status, body) = slow.join().unwrap();
    assert_eq!(status, 504, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("timed out"),
        "{body}"
    );
    // The timed-out work is still running and still holds its permit: the budget stays
    // honest instead of admitting more work than the CPUs can take.
    assert_eq!(server.get("/parallel?n=10").0, 503);
    // /health does not need a permit.
    assert_eq!(server.get_ok("/health")["status"], "ok");
    // The grace period is short; the abandoned count does not hold up the exit.
    assert_eq!(server.stop_with(libc::SIGTERM), Some(0));
}

//! Waiting for a service to come up, and small blocking HTTP look-ups of its JSON endpoints.
//!
//! Startup is measured to the first 200 on `/health`, on a fresh connection each time, so a
//! listener that accepts but does not answer yet is not mistaken for a ready service.
//!
//! Attempts overlap: a new one starts every [`POLL_INTERVAL`] whether or not earlier ones
//! have answered, and the first 200 wins. A forwarder that accepts connections before the
//! service listens (QEMU's user-mode network does) holds an early attempt unanswered; with
//! one attempt at a time, that attempt's timeout would be added to startup, while here a
//! later attempt answers as soon as the service does.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::task::JoinSet;

/// How often a new `/health` attempt starts while waiting: fine enough that the interval is
/// small against even a native process's startup.
pub const POLL_INTERVAL: Duration = Duration::from_millis(2);
/// How long one attempt may wait for its answer (a software-emulated guest's first answer
/// can take a while; other attempts start meanwhile, so this adds nothing to startup).
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(1);
/// Most attempts in flight at once (each holds a socket while a forwarder holds it).
pub const MAX_ATTEMPTS_IN_FLIGHT: usize = 256;

fn agent(timeout: Duration) -> ureq::Agent {
    ureq::Agent::config_builder()
        .timeout_global(Some(timeout))
        .http_status_as_error(false)
        .max_idle_connections(0)
        .build()
        .into()
}

/// Polls `{base_url}/health` until it answers 200, and returns the time from `since` to
/// that answer. `alive` is asked between attempts so a process that died fails at once
/// instead of timing out.
pub fn wait_until_healthy(
    base_url: &str,
    since: Instant,
    timeout: Duration,
    mut alive: impl FnMut() -> anyhow::Result<()>,
) -> anyhow::Result<Duration> {
    let authority = base_url
        .strip_prefix("http://")
        .with_context(|| format!("{base_url} is not an http:// URL"))?
        .trim_end_matches('/')
        .to_owned();
    let url = format!("{base_url}/health");
    let deadline = since + timeout;
    // One worker thread drives the attempts, so their answers are timed as they arrive even
    // while this thread asks `alive` (which may block on a runtime of its own).
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .context("building the health poller's runtime")?;
    let mut attempts = JoinSet::new();
    loop {
        if attempts.len() < MAX_ATTEMPTS_IN_FLIGHT {
            attempts.spawn_on(attempt(authority.clone()), runtime.handle());
        }
        let answered = runtime.block_on(first_answer(&mut attempts, POLL_INTERVAL));
        if let Some(at) = answered {
            return Ok(at.saturating_duration_since(since));
        }
        alive()?;
        if Instant::now() >= deadline {
            bail!("{url} did not answer 200 within {timeout:?}");
        }
    }
}

/// Waits up to `slice` for an attempt to bring a 200; the moment it arrived, or `None`.
async fn first_answer(attempts: &mut JoinSet<Option<Instant>>, slice: Duration) -> Option<Instant> {
    let sleep = tokio::time::sleep(slice);
    tokio::pin!(sleep);
    loop {
        tokio::select! {
            Some(answered) = attempts.join_next(), if !attempts.is_empty() => {
                if let Ok(Some(at)) = answered {
                    return Some(at);
                }
            }
            () = &mut sleep => return None,
        }
    }
}

/// One GET of `/health` on a fresh connection: the moment a 200 arrived, or `None`.
async fn attempt(authority: String) -> Option<Instant> {
    let exchange = async {
        let mut stream = tokio::net::TcpStream::connect(&authority).await.ok()?;
        let request =
            format!("GET /health HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await.ok()?;
        // The status line is all that matters: `HTTP/1.1 200 OK`.
        let mut head = Vec::with_capacity(64);
        let mut buffer = [0u8; 64];
        while !head.contains(&b'\n') && head.len() < 1024 {
            let read = stream.read(&mut buffer).await.ok()?;
            if read == 0 {
                break;
            }
            head.extend_from_slice(&buffer[..read]);
        }
        let status = head.split(|&b| b == b' ').nth(1)?;
        (status == b"200").then(Instant::now)
    };
    tokio::time::timeout(ATTEMPT_TIMEOUT, exchange)
        .await
        .ok()
        .flatten()
}

/// GETs `{base_url}{path}` and parses the JSON body, whatever the status.
pub fn get_json(base_url: &str, path: &str) -> anyhow::Result<(u16, serde_json::Value)> {
    let url = format!("{base_url}{path}");
    let mut response = agent(Duration::from_secs(30))
        .get(&url)
        .call()
        .with_context(|| format!("GET {url}"))?;
    let status = response.status().as_u16();
    let body: serde_json::Value = response
        .body_mut()
        .read_json()
        .with_context(|| format!("GET {url}: body is not JSON"))?;
    Ok((status, body))
}

/// The environment the service says it runs in (`/status` → `environment.kind`).
pub fn detected_environment(base_url: &str) -> anyhow::Result<String> {
    let (status, body) = get_json(base_url, "/status")?;
    if status != 200 {
        bail!("/status answered {status}");
    }
    body.pointer("/environment/kind")
        .and_then(|kind| kind.as_str())
        .map(str::to_owned)
        .context("/status has no environment.kind")
}

/// How long a health path may keep answering a 4xx before startup gives up early: a service
/// that is up but says "not found" on its health path will not change its mind, and waiting
/// the whole startup timeout for it only hides the mistake.
pub const CLIENT_ERROR_GRACE: Duration = Duration::from_secs(3);

/// Polls `{base_url}{path}` until it answers any 2xx (a foreign service's readiness), and
/// returns the time since `since`. Fails when `alive` fails, when the path keeps answering
/// a 4xx for [`CLIENT_ERROR_GRACE`], or at `timeout`; the error says what was last seen.
pub fn wait_until_ready(
    base_url: &str,
    path: &str,
    since: Instant,
    timeout: Duration,
    mut alive: impl FnMut() -> anyhow::Result<()>,
) -> anyhow::Result<Duration> {
    let agent = agent(Duration::from_millis(500));
    let url = format!("{base_url}{path}");
    let deadline = since + timeout;
    let mut last;
    let mut first_client_error: Option<Instant> = None;
    loop {
        match agent.get(&url).call() {
            Ok(response) if response.status().is_success() => return Ok(since.elapsed()),
            Ok(response) => {
                let status = response.status().as_u16();
                last = format!("it answered {status}");
                if response.status().is_client_error() {
                    let first = *first_client_error.get_or_insert_with(Instant::now);
                    if first.elapsed() >= CLIENT_ERROR_GRACE {
                        bail!(
                            "{url} answered {status} for {CLIENT_ERROR_GRACE:?}, never a 2xx: is the health path right? (--health)"
                        );
                    }
                } else {
                    first_client_error = None;
                }
            }
            Err(error) => last = format!("last attempt: {error}"),
        }
        alive()?;
        if Instant::now() >= deadline {
            bail!(
                "{url} did not answer 2xx within {timeout:?} ({last}); is the port right? (--port)"
            );
        }
        std::thread::sleep(POLL_INTERVAL);
    }
}

/// Pause between attempts of [`still_answering`]: the service is up (it answered before)
/// and is given seconds, so there is no startup to time to the millisecond.
const STILL_ANSWERING_POLL: Duration = Duration::from_millis(50);

/// Checks that the service still answers `path` with a 2xx, trying for up to `within` (a
/// queue an overload left behind may take a moment to drain); the error says what was last
/// seen. A service that died answers nothing: refused at once natively, an accepted
/// connection that stays silent behind QEMU's user-mode network.
pub fn still_answering(base_url: &str, path: &str, within: Duration) -> anyhow::Result<()> {
    let agent = agent(Duration::from_secs(1));
    let url = format!("{base_url}{path}");
    let deadline = Instant::now() + within;
    loop {
        let last = match agent.get(&url).call() {
            Ok(response) if response.status().is_success() => return Ok(()),
            Ok(response) => format!("it answered {}", response.status().as_u16()),
            Err(error) => error.to_string(),
        };
        if Instant::now() >= deadline {
            bail!("{url} no longer answers 2xx ({last})");
        }
        std::thread::sleep(STILL_ANSWERING_POLL);
    }
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};
    use std::net::TcpListener;

    use super::*;

    /// A listener that, like QEMU's user-mode network before the guest listens, accepts
    /// connections and holds them unanswered until `ready_after`, then answers 200.
    fn late_server(ready_after: Duration) -> (String, Instant) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let base_url = format!("http://{}", listener.local_addr().unwrap());
        let started = Instant::now();
        std::thread::spawn(move || {
            let mut held = Vec::new();
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                if started.elapsed() < ready_after {
                    held.push(stream);
                    continue;
                }
                let mut buffer = [0u8; 1024];
                let _ = stream.read(&mut buffer);
                let _ = stream.write_all(
                    b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok",
                );
            }
        });
        (base_url, started)
    }

    #[test]
    fn a_held_early_attempt_does_not_delay_startup() {
        // Ready 200 ms in. One attempt at a time with a 500 ms per-try timeout measured at
        // least 500 ms (the first attempt, accepted and held, had to time out first).
        let ready_after = Duration::from_millis(200);
        let (base_url, started) = late_server(ready_after);
        let startup =
            wait_until_healthy(&base_url, started, Duration::from_secs(10), || Ok(())).unwrap();
        assert!(startup >= ready_after, "{startup:?}");
        assert!(startup < Duration::from_millis(450), "{startup:?}");
    }

    #[test]
    fn alive_may_block_on_a_runtime_of_its_own() {
        // testcontainers' blocking `is_running` does; it must not run inside the poller's.
        let (base_url, started) = late_server(Duration::from_millis(50));
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let startup = wait_until_healthy(&base_url, started, Duration::from_secs(10), || {
            runtime.block_on(async { Ok(()) })
        })
        .unwrap();
        assert!(startup >= Duration::from_millis(50), "{startup:?}");
    }

    #[test]
    fn a_dead_service_fails_at_once() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let base_url = format!("http://{}", listener.local_addr().unwrap());
        drop(listener);
        let error = wait_until_healthy(&base_url, Instant::now(), Duration::from_secs(30), || {
            bail!("the process exited")
        })
        .unwrap_err();
        assert!(error.to_string().contains("exited"), "{error}");
    }

    #[test]
    fn no_answer_times_out() {
        let (base_url, started) = late_server(Duration::from_secs(3600));
        let error = wait_until_healthy(&base_url, started, Duration::from_millis(100), || Ok(()))
            .unwrap_err();
        assert!(error.to_string().contains("did not answer 200"), "{error}");
    }
}

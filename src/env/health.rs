//! Waiting for a service to come up, and small blocking HTTP look-ups of its JSON endpoints.
//!
//! Startup is measured to the first 2xx on the health path (`/health` for isobench's own
//! server, the user's `--health` for a foreign one), on a fresh connection each time, so a
//! listener that accepts but does not answer yet is not mistaken for a ready service.
//!
//! For isobench's own server, attempts overlap ([`Pace::OVERLAPPING`]): a new one starts
//! every [`POLL_INTERVAL`] whether or not earlier ones have answered, and the first 2xx wins.
//! A forwarder that accepts connections before the service listens (QEMU's user-mode network
//! does) holds an early attempt unanswered; with one attempt at a time, that attempt's
//! timeout would be added to startup, while here a later attempt answers as soon as the
//! service does. The server answers in microseconds once up, so the extra attempts cost it
//! nothing.
//!
//! A foreign service gets one attempt at a time ([`Pace::ONE_AT_A_TIME`]), because many
//! services listen long before they can answer: gunicorn binds its socket, then forks workers
//! that import the application (seconds, more under emulation), and every attempt made
//! meanwhile waits in the socket's backlog. Hundreds of overlapping attempts, each abandoned
//! after its timeout, are still answered one by one once a worker is up, and the first answer
//! to a live attempt comes only after all of them: in a VM under TCG the Flask example never
//! answered a live attempt within two minutes. One attempt with a long timeout waits in the
//! backlog and is answered first. (The VM polls only once its guest reports its network up,
//! so QEMU holds no attempt, and a container's proxy closes at once while nothing listens.)

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::task::JoinSet;

/// How often a new `/health` attempt starts while waiting: fine enough that the interval is
/// small against even a native process's startup.
pub const POLL_INTERVAL: Duration = Duration::from_millis(2);
/// How attempts are made while waiting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pace {
    /// Most attempts in flight at once.
    pub max_in_flight: usize,
    /// How long one attempt may wait for its answer.
    pub attempt_timeout: Duration,
}

impl Pace {
    /// isobench's own server: overlapping attempts (see the module docs). An attempt waits
    /// up to a second (a software-emulated guest's first answer can take a while; other
    /// attempts start meanwhile, so this adds nothing to startup), and at most 256 are in
    /// flight (each holds a socket while a forwarder holds it).
    pub const OVERLAPPING: Self = Self {
        max_in_flight: 256,
        attempt_timeout: Duration::from_secs(1),
    };
    /// A foreign service: one attempt at a time, each waiting up to 10 s in the service's
    /// backlog (see the module docs).
    pub const ONE_AT_A_TIME: Self = Self {
        max_in_flight: 1,
        attempt_timeout: Duration::from_secs(10),
    };
}

fn agent(timeout: Duration) -> ureq::Agent {
    ureq::Agent::config_builder()
        .timeout_global(Some(timeout))
        .http_status_as_error(false)
        .max_idle_connections(0)
        .build()
        .into()
}

/// Polls `{base_url}/health` until it answers 200 (isobench's own server), and returns the
/// time from `since` to that answer. `alive` is asked between attempts so a process that
/// died fails at once instead of timing out.
pub fn wait_until_healthy(
    base_url: &str,
    since: Instant,
    timeout: Duration,
    alive: impl FnMut() -> anyhow::Result<()>,
) -> anyhow::Result<Duration> {
    let url = format!("{base_url}/health");
    poll(
        base_url,
        "/health",
        Pace::OVERLAPPING,
        since,
        timeout,
        alive,
    )
    .map_err(|stop| match stop {
        Stop::Dead(error) => error,
        Stop::ClientError(status) => {
            anyhow::anyhow!("{url} answered {status} for {CLIENT_ERROR_GRACE:?}, never a 200")
        }
        Stop::Timeout(last) => {
            anyhow::anyhow!("{url} did not answer 200 within {timeout:?} ({last})")
        }
    })
}

/// How long a health path may keep answering a 4xx before startup gives up early: a service
/// that is up but says "not found" on its health path will not change its mind, and waiting
/// the whole startup timeout for it only hides the mistake.
pub const CLIENT_ERROR_GRACE: Duration = Duration::from_secs(3);

/// Polls `{base_url}{path}` until it answers any 2xx (a foreign service's readiness), and
/// returns the time since `since`. Fails when `alive` fails, when the path keeps answering
/// a 4xx for [`CLIENT_ERROR_GRACE`], or at `timeout`; the error says what was last seen and
/// which flag to check.
pub fn wait_until_ready(
    base_url: &str,
    path: &str,
    since: Instant,
    timeout: Duration,
    alive: impl FnMut() -> anyhow::Result<()>,
) -> anyhow::Result<Duration> {
    let url = format!("{base_url}{path}");
    poll(base_url, path, Pace::ONE_AT_A_TIME, since, timeout, alive).map_err(|stop| match stop {
        Stop::Dead(error) => error,
        Stop::ClientError(status) => anyhow::anyhow!(
            "{url} answered {status} for {CLIENT_ERROR_GRACE:?}, never a 2xx: is the health path right? (--health)"
        ),
        Stop::Timeout(last) => anyhow::anyhow!(
            "{url} did not answer 2xx within {timeout:?} ({last}); is the port right? (--port)"
        ),
    })
}

/// Why [`poll`] stopped without a 2xx.
enum Stop {
    /// `alive` failed.
    Dead(anyhow::Error),
    /// The path answered this 4xx status for [`CLIENT_ERROR_GRACE`].
    ClientError(u16),
    /// The timeout passed; what was last seen.
    Timeout(String),
}

/// The poller behind both waits: a new attempt every [`POLL_INTERVAL`] while fewer than
/// `pace.max_in_flight` are open, the first 2xx wins (see the module docs).
fn poll(
    base_url: &str,
    path: &str,
    pace: Pace,
    since: Instant,
    timeout: Duration,
    mut alive: impl FnMut() -> anyhow::Result<()>,
) -> Result<Duration, Stop> {
    let authority = base_url
        .strip_prefix("http://")
        .with_context(|| format!("{base_url} is not an http:// URL"))
        .map_err(Stop::Dead)?
        .trim_end_matches('/')
        .to_owned();
    let deadline = since + timeout;
    // One worker thread drives the attempts, so their answers are timed as they arrive even
    // while this thread asks `alive` (which may block on a runtime of its own).
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .context("building the health poller's runtime")
        .map_err(Stop::Dead)?;
    let mut attempts = JoinSet::new();
    let mut seen = Seen::default();
    loop {
        if attempts.len() < pace.max_in_flight {
            attempts.spawn_on(
                attempt(authority.clone(), path.to_owned(), pace.attempt_timeout),
                runtime.handle(),
            );
        }
        if let Some(at) = runtime.block_on(first_success(&mut attempts, POLL_INTERVAL, &mut seen)) {
            return Ok(at.saturating_duration_since(since));
        }
        if let Some(first) = seen.client_error_since
            && first.elapsed() >= CLIENT_ERROR_GRACE
        {
            return Err(Stop::ClientError(seen.last_status.unwrap_or_default()));
        }
        alive().map_err(Stop::Dead)?;
        if Instant::now() >= deadline {
            return Err(Stop::Timeout(match seen.last_status {
                Some(status) => format!("it answered {status}"),
                None => "no answer".to_owned(),
            }));
        }
    }
}

/// What the attempts so far brought, short of a 2xx.
#[derive(Default)]
struct Seen {
    last_status: Option<u16>,
    /// Since when every answer has been a 4xx (reset by any other status).
    client_error_since: Option<Instant>,
}

/// Waits up to `slice` for an attempt to bring a 2xx; the moment it arrived, or `None`. Other
/// answers are recorded in `seen`.
async fn first_success(
    attempts: &mut JoinSet<Option<(Instant, u16)>>,
    slice: Duration,
    seen: &mut Seen,
) -> Option<Instant> {
    let sleep = tokio::time::sleep(slice);
    tokio::pin!(sleep);
    loop {
        tokio::select! {
            Some(answered) = attempts.join_next(), if !attempts.is_empty() => {
                let Ok(Some((at, status))) = answered else { continue };
                if (200..300).contains(&status) {
                    return Some(at);
                }
                seen.last_status = Some(status);
                if (400..500).contains(&status) {
                    seen.client_error_since.get_or_insert(at);
                } else {
                    seen.client_error_since = None;
                }
            }
            () = &mut sleep => return None,
        }
    }
}

/// One GET of `path` on a fresh connection: when the status line arrived, and its status.
async fn attempt(authority: String, path: String, timeout: Duration) -> Option<(Instant, u16)> {
    let exchange = async {
        let mut stream = tokio::net::TcpStream::connect(&authority).await.ok()?;
        let request =
            format!("GET {path} HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\n\r\n");
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
        let status = std::str::from_utf8(status).ok()?.parse().ok()?;
        Some((Instant::now(), status))
    };
    tokio::time::timeout(timeout, exchange).await.ok().flatten()
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

    /// A listener that answers every request with `status`.
    fn answering(status: &'static str) -> String {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let base_url = format!("http://{}", listener.local_addr().unwrap());
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let mut buffer = [0u8; 1024];
                let _ = stream.read(&mut buffer);
                let _ = stream.write_all(
                    format!("HTTP/1.1 {status}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
                        .as_bytes(),
                );
            }
        });
        base_url
    }

    /// A listener that, like gunicorn while its workers import the application, is bound but
    /// accepts nothing until `ready_after`; then answers each request `204`, one at a time.
    /// Returns the URL and the count of requests it has read.
    fn backlogged_server(
        ready_after: Duration,
    ) -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let base_url = format!("http://{}", listener.local_addr().unwrap());
        let requests = std::sync::Arc::new(AtomicUsize::new(0));
        let counted = requests.clone();
        std::thread::spawn(move || {
            std::thread::sleep(ready_after);
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let mut buffer = [0u8; 1024];
                if matches!(stream.read(&mut buffer), Ok(n) if n > 0) {
                    counted.fetch_add(1, Ordering::SeqCst);
                }
                let _ = stream.write_all(
                    b"HTTP/1.1 204 No Content\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
                );
            }
        });
        (base_url, requests)
    }

    #[test]
    fn a_foreign_service_that_listens_before_it_answers_is_not_flooded() {
        let started = Instant::now();
        let (base_url, requests) = backlogged_server(Duration::from_millis(300));
        let startup =
            wait_until_ready(&base_url, "/ping", started, Duration::from_secs(10), || {
                Ok(())
            })
            .unwrap();
        assert!(startup >= Duration::from_millis(300), "{startup:?}");
        assert!(startup < Duration::from_millis(600), "{startup:?}");
        // One attempt waited in the backlog and was answered first. Overlapping attempts
        // (one every 2 ms) left about 150 in the backlog, each answered in turn.
        std::thread::sleep(Duration::from_millis(100));
        let read = requests.load(std::sync::atomic::Ordering::SeqCst);
        assert!(read <= 2, "the service read {read} health requests");
    }

    #[test]
    fn a_health_path_that_keeps_answering_404_fails_early_naming_the_flag() {
        let started = Instant::now();
        let error = wait_until_ready(
            &answering("404 Not Found"),
            "/healthz",
            started,
            Duration::from_secs(60),
            || Ok(()),
        )
        .unwrap_err()
        .to_string();
        assert!(error.contains("/healthz answered 404"), "{error}");
        assert!(error.contains("(--health)"), "{error}");
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "{:?}",
            started.elapsed()
        );
        // A server error is not a wrong path: the wait goes on to the timeout.
        let error = wait_until_ready(
            &answering("503 Service Unavailable"),
            "/health",
            Instant::now(),
            Duration::from_millis(300),
            || Ok(()),
        )
        .unwrap_err()
        .to_string();
        assert!(error.contains("did not answer 2xx"), "{error}");
        assert!(error.contains("it answered 503"), "{error}");
        assert!(error.contains("(--port)"), "{error}");
    }

    #[test]
    fn no_answer_times_out() {
        let (base_url, started) = late_server(Duration::from_secs(3600));
        let error = wait_until_healthy(&base_url, started, Duration::from_millis(100), || Ok(()))
            .unwrap_err();
        assert!(error.to_string().contains("did not answer 200"), "{error}");
    }
}

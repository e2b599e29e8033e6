//! Waiting for a service to come up, and small blocking HTTP look-ups of its JSON endpoints.
//!
//! Startup is measured to the first 200 on `/health`, polled every few milliseconds on a
//! fresh connection each time, so a listener that accepts but does not answer yet is not
//! mistaken for a ready service.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};

/// How often `/health` is polled while waiting: fine enough that the poll interval is small
/// against even a native process's startup.
pub const POLL_INTERVAL: Duration = Duration::from_millis(2);

fn agent(timeout: Duration) -> ureq::Agent {
    ureq::Agent::config_builder()
        .timeout_global(Some(timeout))
        .http_status_as_error(false)
        .max_idle_connections(0)
        .build()
        .into()
}

/// Polls `{base_url}/health` until it answers 200, and returns the time since `since`.
/// `alive` is asked between polls so a process that died fails at once instead of timing out.
pub fn wait_until_healthy(
    base_url: &str,
    since: Instant,
    timeout: Duration,
    mut alive: impl FnMut() -> anyhow::Result<()>,
) -> anyhow::Result<Duration> {
    let agent = agent(Duration::from_millis(500));
    let url = format!("{base_url}/health");
    let deadline = since + timeout;
    loop {
        if let Ok(response) = agent.get(&url).call()
            && response.status() == 200
        {
            return Ok(since.elapsed());
        }
        alive()?;
        if Instant::now() >= deadline {
            bail!("{url} did not answer 200 within {timeout:?}");
        }
        std::thread::sleep(POLL_INTERVAL);
    }
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

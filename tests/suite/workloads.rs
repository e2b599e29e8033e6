//! Known answers for the workload endpoints, per environment: what `/syscalls` and `/files`
//! report must be what a client sees.
//!
//! - `<env>::perf::syscall_time_agrees_with_the_services_clock`: the time one more system
//!   call adds to a request, seen from the client (the median latency at N calls minus at 1,
//!   over N − 1), agrees with the service's own timing of its loop. It fails when something
//!   else grows with N (the work leaks out of the loop) or when the environment's clock is not
//!   the host's (a guest clock running fast or slow under emulation).
//! - `native::perf::files_agree_with_the_same_work_in_process`: a `/files` request without
//!   fsync costs, beyond a `/health` request, what the same round trip costs timed in this
//!   process on the same file system: the endpoint adds nothing of its own.
//!
//! Both compare medians of interleaved requests on one connection, and run alone (the `perf`
//! group), since the machine's noise moves both sides alike only when nothing runs beside.

use std::time::{Duration, Instant};

use isobench::env::Instance;
use libtest_mimic::{Failed, Trial};
use serde_json::Value;

use super::envs;

/// Requests of each kind whose median is compared.
const SAMPLES: usize = 21;
/// What the service's loop should take per request at the large N: long enough that the
/// client's timing noise (tens of µs) is a few percent of it.
const TARGET_LOOP: Duration = Duration::from_millis(20);
/// Agreement asked of two medians of the same quantity.
const TOLERANCE: f64 = 0.25;

/// The trials of environment `env`.
pub fn trials(env: &'static str) -> Vec<Trial> {
    let name = format!("{env}::perf::syscall_time_agrees_with_the_services_clock");
    let mut trials = vec![Trial::test(name.clone(), move || {
        let (environment, _) = envs::prepared(env)?;
        envs::with_instance(&name, environment.as_ref(), syscall_time_agrees)
    })];
    if env == "native" {
        const FILES: &str = "native::perf::files_agree_with_the_same_work_in_process";
        trials.push(Trial::test(FILES, || {
            let (environment, _) = envs::prepared("native")?;
            envs::with_instance(FILES, environment.as_ref(), files_agree)
        }));
    }
    trials
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(30)))
        .build()
        .into()
}

/// GETs `path`, returning the client-side latency and the JSON body of a 200.
fn timed_get(
    agent: &ureq::Agent,
    instance: &dyn Instance,
    path: &str,
) -> Result<(Duration, Value), Failed> {
    let url = format!("{}{path}", instance.base_url());
    let started = Instant::now();
    let mut response = agent
        .get(&url)
        .call()
        .map_err(|e| format!("GET {url}: {e}"))?;
    let body = response
        .body_mut()
        .read_to_string()
        .map_err(|e| format!("GET {url}: {e}"))?;
    let elapsed = started.elapsed();
    if response.status() != 200 {
        return Err(format!("GET {url}: {} {body}", response.status()).into());
    }
    let body = serde_json::from_str(&body).map_err(|e| format!("GET {url}: {e}: {body}"))?;
    Ok((elapsed, body))
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn ns_of(body: &Value) -> Result<f64, Failed> {
    body["elapsed_ns"]
        .as_u64()
        .map(|ns| ns as f64)
        .ok_or_else(|| format!("no elapsed_ns in {body}").into())
}

fn syscall_time_agrees(instance: &dyn Instance) -> Result<(), Failed> {
    let agent = agent();
    // A first look at the call's cost here picks N so the loop takes about TARGET_LOOP.
    let (_, probe) = timed_get(&agent, instance, "/syscalls?n=1000")?;
    let per_call_ns = (ns_of(&probe)? / 1000.0).max(1.0);
    let n = ((TARGET_LOOP.as_nanos() as f64 / per_call_ns) as u64).clamp(1000, 100_000);
    let (mut large, mut small, mut own) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..SAMPLES {
        let (elapsed, body) = timed_get(&agent, instance, &format!("/syscalls?n={n}"))?;
        large.push(elapsed.as_nanos() as f64);
        own.push(ns_of(&body)? / n as f64);
        let (elapsed, _) = timed_get(&agent, instance, "/syscalls?n=1")?;
        small.push(elapsed.as_nanos() as f64);
    }
    let seen = (median(large) - median(small)) / (n - 1) as f64;
    let own = median(own);
    eprintln!(
        "syscalls: n = {n}, per call {own:.1} ns by the service's clock, {seen:.1} ns seen by the client"
    );
    if (seen / own - 1.0).abs() > TOLERANCE {
        return Err(format!(
            "one getppid costs {own:.1} ns by the service's clock but {seen:.1} ns seen from \
             the client (n = {n}): beyond {:.0}%",
            TOLERANCE * 100.0
        )
        .into());
    }
    Ok(())
}

fn files_agree(instance: &dyn Instance) -> Result<(), Failed> {
    const KB: usize = 1024;
    let agent = agent();
    // The same file system as the instance's data directory (both are in the temp
    // directory), and the same CPU: the in-process round trips run on a thread pinned where
    // the server runs, so whatever else the machine does slows both alike.
    let dir = tempfile::tempdir()?;
    let service_cpus = isobench::env::Budget::for_host().service_cpus;
    let (go, turns) = std::sync::mpsc::channel::<()>();
    let (timed, timings) = std::sync::mpsc::channel::<Result<f64, String>>();
    let path = dir.path().to_path_buf();
    let worker = std::thread::spawn(move || {
        if let Err(error) = isobench::probe::pin::pin_current_thread(&service_cpus) {
            let _ = timed.send(Err(format!("pinning: {error}")));
            return;
        }
        for () in turns {
            let started = Instant::now();
            let result = isobench::service::scratch::round_trip(&path, KB * 1024, false)
                .map(|_| started.elapsed().as_secs_f64())
                .map_err(|e| e.to_string());
            if timed.send(result).is_err() {
                return;
            }
        }
    });
    let (mut files, mut health, mut in_process) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..SAMPLES {
        let (elapsed, body) = timed_get(&agent, instance, &format!("/files?kb={KB}&fsync=false"))?;
        if body["verified"] != true {
            return Err(format!("not verified: {body}").into());
        }
        files.push(elapsed.as_secs_f64());
        health.push(timed_get(&agent, instance, "/health")?.0.as_secs_f64());
        go.send(()).map_err(|_| "the in-process worker ended")?;
        in_process.push(
            timings
                .recv()
                .map_err(|_| "the in-process worker ended")??,
        );
    }
    drop(go);
    let _ = worker.join();
    let endpoint = median(files) - median(health);
    let direct = median(in_process);
    eprintln!(
        "files: {KB} KiB without fsync, {:.0} µs through the endpoint (beyond /health), {:.0} µs in-process",
        endpoint * 1e6,
        direct * 1e6
    );
    if (endpoint / direct - 1.0).abs() > TOLERANCE {
        return Err(format!(
            "a {KB} KiB round trip takes {:.0} µs through /files (beyond /health) but {:.0} µs \
             in-process: beyond {:.0}%",
            endpoint * 1e6,
            direct * 1e6,
            TOLERANCE * 100.0
        )
        .into());
    }
    Ok(())
}

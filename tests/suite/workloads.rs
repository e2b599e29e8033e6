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
//! - `<env>::perf::cpu_per_request_agrees_with_the_services_clock`: under closed-loop load
//!   on `/cpu` at about 1 ms of work a request, the CPU the environment's clock charges per
//!   answered request (`service_cpu_seconds / ok`, the figure of every report) covers the
//!   work as the service's own thread clock measured it (`cpu_ns`). Both figures include
//!   more than the work — the environment's everything the request cost (HTTP, the network
//!   path, a sandbox's Sentry), the service's nothing but the counting — so the same load on
//!   `/cpu?n=1` is taken off both, and what is left, the work as each clock saw it, must agree
//!   within 5%. The VM's figure is QEMU's host CPU, which covers the guest's kernel and the
//!   emulation as well and is not on the guest's clock: there it must be at least the work.
//!
//! All compare medians of interleaved requests (or windows of the same load) and run alone
//! (the `perf` group), since the machine's noise moves both sides alike only when nothing
//! runs beside.

use std::time::{Duration, Instant};

use isobench::env::Instance;
use libtest_mimic::{Failed, Trial};
use serde_json::Value;

use super::envs;

/// Requests of each kind whose median is compared.
const SAMPLES: usize = 21;
/// Round trips of each kind `/files`' known answer compares: a round trip takes well under a
/// millisecond, so many cost little, and the median of many moves less with the machine's
/// noise than that of the few the slower known answers can afford.
const FILE_SAMPLES: usize = 101;
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
    let cpu = format!("{env}::perf::cpu_per_request_agrees_with_the_services_clock");
    trials.push(Trial::test(cpu.clone(), move || {
        let (environment, _) = envs::prepared(env)?;
        let covers_more = environment.label().kind == isobench::artifact::EnvKind::Vm;
        envs::with_instance(&cpu, environment.as_ref(), |instance| {
            cpu_per_request_agrees(instance, covers_more)
        })
    }));
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

/// The work of one loaded `/cpu` request by the service's own thread clock: the 1 ms server
/// of the known answer, and the same with three times the work.
const TARGET_WORK: Duration = Duration::from_millis(1);
/// How much more work the larger load's requests do: the more, the smaller a change of what
/// a request costs beside its work (the machine's state between loads) is beside the
/// difference.
const LARGER_WORK: u32 = 3;
/// Each load's window; the two loads alternate twice, so a machine that drifts moves both.
const LOAD_WINDOW: Duration = Duration::from_millis(500);
/// Agreement asked of the two clocks' measure of the same work.
const CLOCKS_AGREE: f64 = 0.05;

/// The service's own measure of the work of one request to `path`, seconds: the median over
/// sequential requests of its thread's CPU time (`cpu_ns`), or of its wall time
/// (`elapsed_us`) where that clock only ticks (gVisor's Sentry accounts a thread's CPU in
/// 10 ms ticks, so a millisecond of work reads 0 or 10 ms); and whether it fell back.
fn own_cpu(
    agent: &ureq::Agent,
    instance: &dyn Instance,
    path: &str,
) -> Result<(f64, bool), Failed> {
    let (mut cpu, mut wall) = (Vec::with_capacity(SAMPLES), Vec::with_capacity(SAMPLES));
    for _ in 0..SAMPLES {
        let (_, body) = timed_get(agent, instance, path)?;
        let field = |name: &str| {
            body[name]
                .as_u64()
                .ok_or_else(|| format!("no {name} in {body}"))
        };
        cpu.push(field("cpu_ns")?);
        wall.push(field("elapsed_us")? as f64 / 1e6);
    }
    // A clock that moves in whole milliseconds, or not at all, cannot time a millisecond.
    let ticks = cpu.iter().all(|ns| ns % 1_000_000 == 0);
    Ok(if ticks {
        (median(wall), true)
    } else {
        (
            median(cpu.into_iter().map(|ns| ns as f64 / 1e9).collect()),
            false,
        )
    })
}

/// The service's running totals of its timed CPU work (`/status`'s `cpu_tasks`): tasks and
/// CPU seconds by their threads' clock.
fn cpu_tasks(agent: &ureq::Agent, instance: &dyn Instance) -> Result<(u64, f64), Failed> {
    let (_, body) = timed_get(agent, instance, "/status")?;
    let tasks = &body["cpu_tasks"];
    let field = |name: &str| {
        tasks[name]
            .as_u64()
            .ok_or_else(|| format!("no cpu_tasks.{name} in {body}"))
    };
    Ok((field("count")?, field("cpu_ns")? as f64 / 1e9))
}

/// One load's work per request: the environment's CPU and the service's own measure.
struct PerRequest {
    /// CPU the environment's clock charged, seconds.
    env: f64,
    /// The work by the service's thread clock, seconds.
    cpu: f64,
    /// Requests the service worked on.
    count: u64,
}

impl PerRequest {
    /// Two loads' requests together.
    fn pooled(a: &Self, b: &Self) -> Self {
        let (na, nb) = (a.count as f64, b.count as f64);
        let mean = |x: f64, y: f64| (x * na + y * nb) / (na + nb);
        Self {
            env: mean(a.env, b.env),
            cpu: mean(a.cpu, b.cpu),
            count: a.count + b.count,
        }
    }
}

/// A closed loop on `path` for [`LOAD_WINDOW`] over two connections (one request is worked on
/// while the other's answer travels, so the service never idles), with the environment's
/// CPU and the service's totals read around it: both cover exactly the same requests, at
/// the same time, so a machine that speeds up or slows down moves both alike.
fn per_request(
    agent: &ureq::Agent,
    instance: &dyn Instance,
    path: &str,
    drain: Duration,
) -> Result<PerRequest, Failed> {
    let mut options = isobench::load::LoadOptions::new(instance.base_url());
    options.scenario = vec![isobench::artifact::load::PathWeight {
        path: path.into(),
        weight: 1,
    }];
    options.connections = 2;
    options.duration = Some(LOAD_WINDOW);
    options.warmup = Duration::ZERO;
    options.cpus = isobench::env::Budget::for_host().generator_cpus;
    let tasks_before = cpu_tasks(agent, instance)?;
    let env_before = instance.resources().map_err(|e| format!("reading: {e}"))?;
    let report = isobench::load::run(&options).map_err(|e| format!("loading {path}: {e}"))?;
    // The last requests' work, cut off from the window, ends inside the service: wait for
    // it, so the environment's reading covers all the work the totals will count.
    std::thread::sleep(drain);
    let env_after = instance.resources().map_err(|e| format!("reading: {e}"))?;
    let tasks_after = cpu_tasks(agent, instance)?;
    let count = tasks_after.0 - tasks_before.0;
    if count < 20 || report.errors.total() > 0 {
        return Err(format!(
            "{path}: {count} requests worked on, {} failed",
            report.errors.total()
        )
        .into());
    }
    let n = count as f64;
    Ok(PerRequest {
        env: (env_after.cpu_seconds - env_before.cpu_seconds) / n,
        cpu: (tasks_after.1 - tasks_before.1) / n,
        count,
    })
}

/// `/cpu`'s N for about `work` of CPU here, from the service's clock at N = 50,000 (`probe`).
fn n_for(work: Duration, probe: f64) -> u64 {
    // The work grows as N^1.5 / ln N; N^1.5 is near enough.
    let scale = work.as_secs_f64() / probe.max(1e-6);
    ((50_000.0 * scale.powf(1.0 / 1.5)) as u64).clamp(2_000, 5_000_000)
}

fn cpu_per_request_agrees(instance: &dyn Instance, covers_more: bool) -> Result<(), Failed> {
    let agent = agent();
    let (probe, ticks) = own_cpu(&agent, instance, "/cpu?n=50000")?;
    let one = n_for(TARGET_WORK, probe);
    let two = n_for(LARGER_WORK * TARGET_WORK, probe);
    let drain = Duration::from_secs_f64((probe * 20.0).max(0.05));
    let mut loads = Vec::new();
    for n in [one, two, one, two] {
        loads.push(per_request(
            &agent,
            instance,
            &format!("/cpu?n={n}"),
            drain,
        )?);
    }
    let (small, large) = (
        PerRequest::pooled(&loads[0], &loads[2]),
        PerRequest::pooled(&loads[1], &loads[3]),
    );
    let us = |s: f64| s * 1e6;
    if ticks {
        return covers_the_ticked_work(&loads);
    }
    let work = large.cpu - small.cpu;
    let seen = large.env - small.env;
    eprintln!(
        "cpu: per request, n = {one} ({} requests): {:.1} µs of work by the service's thread \
         clock, {:.1} µs by the environment's ({:.3}×); n = {two} ({} requests): {:.1} µs, \
         {:.1} µs ({:.3}×); the {:.1} µs more work cost {:.1} µs more: {:.3}×",
        small.count,
        us(small.cpu),
        us(small.env),
        small.env / small.cpu,
        large.count,
        us(large.cpu),
        us(large.env),
        large.env / large.cpu,
        us(work),
        us(seen),
        seen / work,
    );
    if covers_more {
        for load in [&small, &large] {
            if load.env < load.cpu * (1.0 - CLOCKS_AGREE) {
                return Err(format!(
                    "QEMU's CPU per request ({:.1} µs) is below the work the guest measured in \
                     it ({:.1} µs): the host's figure must cover the guest's",
                    us(load.env),
                    us(load.cpu)
                )
                .into());
            }
        }
        return Ok(());
    }
    if (seen / work - 1.0).abs() > CLOCKS_AGREE {
        return Err(format!(
            "{:.1} µs more work a request by the service's thread clock cost {:.1} µs more by \
             the environment's clock: beyond {:.0}%",
            us(work),
            us(seen),
            CLOCKS_AGREE * 100.0
        )
        .into());
    }
    Ok(())
}

/// The tick of gVisor's per-thread CPU clock.
const SENTRY_TICK: f64 = 0.01;

/// Where the service's thread clock only ticks (gVisor's Sentry charges a thread's CPU a
/// 10 ms tick at a time): no millisecond can be timed, but the ticks over all the loads are a
/// sample of the work's CPU (each lands on whichever thread runs), unbiased, with a spread of
/// about √ticks ticks. The environment's clock, which covers the Sentry, the gofer and the
/// shim besides the work, must then charge at least the ticked work, less 5% and two spreads.
fn covers_the_ticked_work(loads: &[PerRequest]) -> Result<(), Failed> {
    let total = |f: fn(&PerRequest) -> f64| loads.iter().map(|l| f(l) * l.count as f64).sum();
    let (env, work): (f64, f64) = (total(|l| l.env), total(|l| l.cpu));
    let allowance = 2.0 * (work / SENTRY_TICK).sqrt() * SENTRY_TICK;
    let floor = work * (1.0 - CLOCKS_AGREE) - allowance;
    eprintln!(
        "cpu: over {} requests the service's thread clock ticked {:.2} s of work, the \
         environment's clock charged {:.2} s ({:.3}×; at least {floor:.2} s asked)",
        loads.iter().map(|l| l.count).sum::<u64>(),
        work,
        env,
        env / work
    );
    if env < floor {
        return Err(format!(
            "the environment's clock charged {env:.2} s for work its service's clock ticked at \
             {work:.2} s: below {floor:.2} s"
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
    for _ in 0..FILE_SAMPLES {
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

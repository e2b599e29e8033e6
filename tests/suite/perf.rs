//! Performance trials: startup over n repetitions, idle memory, closed-loop throughput and
//! open-loop latency at a fixed rate. They assert only that measurements are well-formed
//! (never a timing), print a short summary, and record JSON artifacts.
//!
//! They run in a one-thread nextest test group, so two never compete for the CPUs. The load
//! generator is pinned to the budget's generator CPUs, the service to its own.

use std::time::Duration;

use isobench::env::{Budget, Environment};
use isobench::load::{self, LoadOptions, LoadReport, PathWeight};
use isobench::report::schema::{Accel, Round, ScenarioRun};
use libtest_mimic::{Failed, Trial};

use super::{artifacts, envs};

/// The fixed rate of the open-loop trial: low enough to sit below every environment's
/// ceiling, software-emulated VMs included, so latency reflects service time, not overload.
const FIXED_RATE_RPS: f64 = 200.0;

/// The perf trials of environment `env`.
pub fn trials(env: &'static str) -> Vec<Trial> {
    let measurements: [(&str, Measure); 4] = [
        ("startup", startup),
        ("idle_memory", idle_memory),
        ("throughput", throughput),
        ("latency", latency),
    ];
    measurements
        .into_iter()
        .map(|(measurement, measure)| {
            let name = format!("{env}::perf::{measurement}");
            Trial::test(name.clone(), move || {
                let (environment, preparation) = envs::prepared(env)?;
                let short = is_emulated(environment.as_ref());
                let rounds = measure(&name, environment.as_ref(), short)?;
                let path = artifacts::record(measurement, environment.label(), preparation, rounds)
                    .map_err(|e| format!("recording {name}: {e:#}"))?;
                println!("    artifact: {}", path.display());
                Ok(())
            })
        })
        .collect()
}

type Measure = fn(&str, &dyn Environment, bool) -> Result<Vec<Round>, Failed>;

/// Software-emulated VMs get shorter trials (and say so), since each costs many times more.
fn is_emulated(env: &dyn Environment) -> bool {
    let emulated = env.label().accel == Some(Accel::Tcg);
    if emulated {
        println!("    {}: TCG software emulation, short trial", env.name());
    }
    emulated
}

fn startup(trial: &str, env: &dyn Environment, short: bool) -> Result<Vec<Round>, Failed> {
    let repetitions = if short { 3 } else { 5 };
    let mut rounds = Vec::new();
    for round in 0..repetitions {
        envs::with_instance(trial, env, |instance| {
            let startup_ms = instance.startup().as_secs_f64() * 1e3;
            let memory = instance
                .resources()
                .map_err(|e| format!("reading resources: {e:#}"))?;
            well_formed(startup_ms > 0.0, "startup must be positive")?;
            well_formed(memory.memory_bytes > 0, "memory must be positive")?;
            // Phases, where an environment reports them, are contiguous and sum to startup.
            let phases = instance.startup_phases();
            let sum: f64 = phases.iter().map(|p| p.duration_ms).sum();
            well_formed(
                phases.is_empty() || (sum - startup_ms).abs() <= 1.0,
                "startup phases must sum to the startup",
            )?;
            well_formed(
                phases
                    .iter()
                    .all(|p| p.duration_ms >= 0.0 && !p.name.is_empty()),
                "startup phases must be named and non-negative",
            )?;
            rounds.push(Round {
                round,
                startup_ms: Some(startup_ms),
                startup_phases: phases,
                idle_memory_bytes: Some(memory.memory_bytes),
                scenarios: Vec::new(),
            });
            Ok(())
        })?;
    }
    let startups: Vec<String> = rounds
        .iter()
        .filter_map(|r| r.startup_ms)
        .map(|ms| format!("{ms:.1}"))
        .collect();
    println!(
        "    {}: startup ms over {repetitions} starts: {}",
        env.name(),
        startups.join(", ")
    );
    Ok(rounds)
}

fn idle_memory(trial: &str, env: &dyn Environment, _short: bool) -> Result<Vec<Round>, Failed> {
    let mut round = None;
    envs::with_instance(trial, env, |instance| {
        // Let startup work (page faults, lazy initialisation) settle before reading.
        std::thread::sleep(Duration::from_secs(1));
        let reading = instance
            .resources()
            .map_err(|e| format!("reading resources: {e:#}"))?;
        well_formed(reading.memory_bytes > 0, "memory must be positive")?;
        println!(
            "    {}: idle memory {:.1} MiB",
            env.name(),
            reading.memory_bytes as f64 / (1 << 20) as f64
        );
        round = Some(Round {
            round: 0,
            startup_ms: Some(instance.startup().as_secs_f64() * 1e3),
            startup_phases: Vec::new(),
            idle_memory_bytes: Some(reading.memory_bytes),
            scenarios: Vec::new(),
        });
        Ok(())
    })?;
    Ok(round.into_iter().collect())
}

fn throughput(trial: &str, env: &dyn Environment, short: bool) -> Result<Vec<Round>, Failed> {
    scenario_round(trial, env, "health", |base_url| {
        let mut options = load_options(base_url, short);
        options.connections = 50;
        options
    })
}

fn latency(trial: &str, env: &dyn Environment, short: bool) -> Result<Vec<Round>, Failed> {
    scenario_round(trial, env, "fixed-rate", |base_url| {
        let mut options = load_options(base_url, short);
        options.connections = 20;
        options.rate = Some(FIXED_RATE_RPS);
        options
    })
}

fn load_options(base_url: &str, short: bool) -> LoadOptions {
    let mut options = LoadOptions::new(base_url);
    options.scenario = vec![PathWeight {
        path: "/health".into(),
        weight: 1,
    }];
    options.duration = Some(Duration::from_secs(if short { 3 } else { 5 }));
    options.warmup = Duration::from_secs(1);
    options.cpus = Budget::for_host().generator_cpus;
    options
}

/// Starts an instance, runs one load scenario against it, and records the service's CPU
/// time and peak memory across it.
fn scenario_round(
    trial: &str,
    env: &dyn Environment,
    scenario: &str,
    options: impl FnOnce(&str) -> LoadOptions,
) -> Result<Vec<Round>, Failed> {
    let mut round = None;
    envs::with_instance(trial, env, |instance| {
        let options = options(instance.base_url());
        let before = instance.resources().map_err(|e| format!("{e:#}"))?;
        let report = load::run(&options).map_err(|e| format!("load: {e:#}"))?;
        let after = instance.resources().map_err(|e| format!("{e:#}"))?;
        check_report(&report)?;
        print_summary(env.name(), scenario, &report);
        let cpu_seconds = after.cpu_seconds - before.cpu_seconds;
        well_formed(cpu_seconds >= 0.0, "service CPU time must not go backwards")?;
        round = Some(Round {
            round: 0,
            startup_ms: Some(instance.startup().as_secs_f64() * 1e3),
            startup_phases: Vec::new(),
            idle_memory_bytes: Some(before.memory_bytes),
            scenarios: vec![ScenarioRun {
                scenario: scenario.into(),
                peak_memory_bytes: after.peak_memory_bytes.or(Some(after.memory_bytes)),
                service_cpu_seconds: Some(cpu_seconds),
                load: report,
            }],
        });
        Ok(())
    })?;
    Ok(round.into_iter().collect())
}

fn check_report(report: &LoadReport) -> Result<(), Failed> {
    well_formed(report.ok > 0, "no request succeeded")?;
    well_formed(report.ok <= report.responses, "more ok than responses")?;
    well_formed(
        report.responses <= report.requests_sent,
        "more responses than requests",
    )?;
    well_formed(report.throughput_rps > 0.0, "throughput must be positive")?;
    let l = &report.latency;
    well_formed(
        l.min_us <= l.p50_us && l.p50_us <= l.p99_us && l.p99_us <= l.max_us,
        "latency percentiles out of order",
    )?;
    well_formed(
        report.errors.total() == 0,
        "errors against a healthy service",
    )
}

fn print_summary(env: &str, scenario: &str, report: &LoadReport) {
    let rate = report
        .requested_rate_rps
        .map(|rate| {
            format!(
                " at {rate:.0} req/s requested, {:.0} achieved",
                report.achieved_rate_rps
            )
        })
        .unwrap_or_default();
    println!(
        "    {env} {scenario}{rate}: {:.0} req/s, p50 {:.0} µs, p99 {:.0} µs, p99.9 {:.0} µs, {} ok in {:.1} s",
        report.throughput_rps,
        report.latency.p50_us,
        report.latency.p99_us,
        report.latency.p999_us,
        report.ok,
        report.elapsed_s
    );
}

fn well_formed(condition: bool, what: &str) -> Result<(), Failed> {
    if condition {
        Ok(())
    } else {
        Err(format!("malformed measurement: {what}").into())
    }
}

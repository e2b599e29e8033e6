//! Performance trials: startup and idle memory over n fresh instances, closed-loop
//! throughput and open-loop latency at a fixed rate. Each builds an isobench
//! [`Plan`] and runs it through the very protocol `isobench run` uses
//! ([`isobench::measure::rounds::run`]): same idle moment, same scenarios, same readings. They
//! assert only that measurements are well-formed (never a timing), print a short summary, and
//! record JSON artifacts.
//!
//! nextest runs them alone (`.config/nextest.toml`: a perf trial takes every test thread), so
//! nothing else, a VM boot least of all, competes with them for the CPUs.

use isobench::artifact::load::LoadReport;
use isobench::artifact::{Accel, Artifact, EnvironmentResult, Preparation, Round};
use isobench::env::{Environment, Prepared};
use isobench::measure::rounds;
use isobench::measure::{Plan, Scenario, protocol};
use libtest_mimic::{Failed, Trial};

use super::{artifacts, envs};

/// The fixed rate of the open-loop trial: low enough to sit below every environment's
/// ceiling, software-emulated VMs included, so latency reflects service time, not overload.
const FIXED_RATE_RPS: f64 = 200.0;
/// Connections of the closed-loop trial, as `isobench run`'s default.
const CONNECTIONS: usize = 50;

/// The perf trials of environment `env`.
pub fn trials(env: &'static str) -> Vec<Trial> {
    let measurements = ["startup", "idle_memory", "throughput", "latency"];
    measurements
        .into_iter()
        .map(|measurement| {
            let name = format!("{env}::perf::{measurement}");
            Trial::test(name.clone(), move || {
                let (environment, preparation) = envs::prepared(env)?;
                let plan = plan(measurement, is_emulated(environment.as_ref()));
                let result = measure(&plan, environment, preparation)?;
                summarise(env, measurement, &result.rounds);
                let path =
                    artifacts::record(measurement, result.label, result.preparation, result.rounds)
                        .map_err(|e| format!("recording {name}: {e:#}"))?;
                println!("    artifact: {}", path.display());
                Ok(())
            })
        })
        .collect()
}

/// The plan of one trial: `isobench run`'s defaults, narrowed to what the trial measures.
fn plan(measurement: &str, emulated: bool) -> Plan {
    let (scenarios, repetitions) = match measurement {
        // Software-emulated VMs boot many times slower; fewer starts, said in the output.
        "startup" => (Vec::new(), if emulated { 3 } else { 5 }),
        "idle_memory" => (Vec::new(), 1),
        "throughput" => (vec![Scenario::health(CONNECTIONS)], 1),
        _ => (vec![Scenario::fixed_rate(FIXED_RATE_RPS)], 1),
    };
    let mut plan = Plan::new(scenarios);
    plan.repetitions = repetitions;
    plan
}

/// Software-emulated VMs get fewer starts (and say so), since each costs many times more.
fn is_emulated(env: &dyn Environment) -> bool {
    let emulated = env.label().accel == Some(Accel::Tcg);
    if emulated {
        println!("    {}: TCG software emulation, fewer starts", env.name());
    }
    emulated
}

/// Runs `plan` on `env` through the shared protocol and checks every round.
fn measure(
    plan: &Plan,
    env: Box<dyn Environment>,
    preparation: Vec<Preparation>,
) -> Result<EnvironmentResult, Failed> {
    let mut artifact = Artifact::now(Vec::new());
    rounds::run(
        plan,
        &[Prepared { env, preparation }],
        &mut artifact,
        &mut protocol::Quiet,
        &mut |_| Ok(()),
    )
    .map_err(|e| format!("{e}"))?;
    if let Some(unavailable) = artifact.unavailable.first() {
        return Err(format!("{}: {}", unavailable.name, unavailable.reason).into());
    }
    let result = artifact
        .environments
        .pop()
        .ok_or("the protocol returned no environment")?;
    for round in &result.rounds {
        check_round(round, plan)?;
    }
    Ok(result)
}

fn check_round(round: &Round, plan: &Plan) -> Result<(), Failed> {
    if let Some(failure) = &round.failure {
        return Err(format!(
            "round {} failed at {}: {}\n{}",
            round.round,
            failure.phase,
            failure.reason,
            failure.log_tail.join("\n")
        )
        .into());
    }
    well_formed(
        round.startup_ms.is_some_and(|ms| ms > 0.0),
        "startup must be positive",
    )?;
    well_formed(
        round.idle_memory_bytes.is_some_and(|b| b > 0),
        "idle memory must be positive",
    )?;
    well_formed(
        round.scenarios.len() == plan.scenarios.len(),
        "every scenario must have run",
    )?;
    for run in &round.scenarios {
        check_report(&run.load)?;
        well_formed(
            run.peak_memory_bytes.is_some_and(|b| b > 0),
            "the window's peak memory must be positive",
        )?;
        well_formed(
            run.service_cpu_seconds.is_some_and(|s| s >= 0.0),
            "service CPU time must not go backwards",
        )?;
    }
    Ok(())
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

fn summarise(env: &str, measurement: &str, rounds: &[Round]) {
    let startups: Vec<String> = rounds
        .iter()
        .filter_map(|r| r.startup_ms)
        .map(|ms| format!("{ms:.1}"))
        .collect();
    let idle: Vec<String> = rounds
        .iter()
        .filter_map(|r| r.idle_memory_bytes)
        .map(|b| format!("{:.1}", b as f64 / (1 << 20) as f64))
        .collect();
    println!(
        "    {env} {measurement}: startup ms {}; idle MiB {}",
        startups.join(", "),
        idle.join(", ")
    );
    for run in rounds.iter().flat_map(|r| &r.scenarios) {
        let report = &run.load;
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
            "    {env} {}{rate}: {:.0} req/s, p50 {:.0} µs, p99 {:.0} µs, p99.9 {:.0} µs, {} ok in {:.1} s; peak {:.1} MiB; generator {}",
            run.scenario,
            report.throughput_rps,
            report.latency.p50_us,
            report.latency.p99_us,
            report.latency.p999_us,
            report.ok,
            report.elapsed_s,
            run.peak_memory_bytes.unwrap_or(0) as f64 / (1 << 20) as f64,
            if report.generator.bottleneck {
                "saturated"
            } else {
                "not saturated"
            }
        );
    }
}

fn well_formed(condition: bool, what: &str) -> Result<(), Failed> {
    if condition {
        Ok(())
    } else {
        Err(format!("malformed measurement: {what}").into())
    }
}

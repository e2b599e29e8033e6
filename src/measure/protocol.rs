//! The per-instance protocol, the same for every environment and for `isobench run` and the
//! test suite alike:
//!
//! 0. **quiet**: wait (bounded) for the host's CPUs to fall quiet ([`crate::measure::quiet`]);
//! 1. **start** a fresh instance (startup = request to start → first 200);
//! 2. **idle**: wait [`Plan::idle_settle`] after the first 200, read memory once (the one
//!    moment idle memory is defined at);
//! 3. each **scenario**: read resources, run the load while reading resources every
//!    [`Plan::sample_interval`], read again; the peak and the CPU time are taken over exactly
//!    the window the load's counts cover ([`crate::measure::window`]);
//! 4. **stop**.
//!
//! A failure in any phase ends the round, not the run: what was measured before it is kept,
//! and the round records the phase, the error and the tail of the instance's log.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::analysis::sweep;
use crate::artifact::{HostCpuWindow, Round, RoundFailure, ScenarioRun, SweepStep};
use crate::env::{EnvError, Environment, Instance, health};
use crate::load::{self, LoadError};
use crate::measure::plan::Plan;
use crate::measure::quiet;
use crate::measure::scenario::{Scenario, Sweep};
use crate::measure::window::{self, Sample};
use crate::probe::{host, pin};

/// Lines of the instance's log kept with a failure.
pub const LOG_TAIL_LINES: usize = 20;

/// Why one phase of a round failed.
#[derive(Debug, thiserror::Error)]
pub enum PhaseError {
    /// The environment failed (start, reading, stop).
    #[error(transparent)]
    Env(#[from] EnvError),
    /// The load could not be run at all.
    #[error("running the load: {0}")]
    Load(#[from] LoadError),
    /// The load generator's thread panicked.
    #[error("the load generator panicked")]
    LoadPanicked,
    /// The service stopped answering during the scenario (it died, or was killed).
    #[error(
        "the service stopped answering during the scenario ({errors} of {sent} requests \
         failed): {reason}"
    )]
    Died {
        /// Requests of the window that failed.
        errors: u64,
        /// Requests of the window sent.
        sent: u64,
        /// What the health check saw.
        reason: String,
    },
}

/// One round's measurements, and what the service said about its own environment.
#[derive(Debug, Clone, PartialEq)]
pub struct RoundOutcome {
    /// The round, possibly with a failure.
    pub round: Round,
    /// The environment the service detected (`/status`), when it answered.
    pub detected: Option<String>,
}

/// A step of one round, as an observer sees it begin. Its text (`start`,
/// `scenario:health`, `sweep:0.5`, …) is what a round's recorded failure names.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum RoundPhase<'a> {
    /// Waiting for a quiet machine.
    Quiet,
    /// Starting the instance (the startup clock runs).
    Start,
    /// Reading the idle instance.
    Idle,
    /// Loading the instance with one scenario.
    Scenario(&'a str),
    /// One step of the latency sweep, at this fraction of the round's ceiling.
    SweepStep(f64),
    /// Stopping the instance.
    Stop,
}

impl std::fmt::Display for RoundPhase<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Quiet => f.write_str("quiet"),
            Self::Start => f.write_str("start"),
            Self::Idle => f.write_str("idle"),
            Self::Scenario(name) => write!(f, "scenario:{name}"),
            Self::SweepStep(fraction) => write!(f, "sweep:{fraction}"),
            Self::Stop => f.write_str("stop"),
        }
    }
}

/// What the protocol tells its caller as it goes (for progress displays).
pub trait Observer {
    /// A phase of round `round` of `env` begins.
    fn phase(&mut self, _round: u32, _env: &str, _phase: RoundPhase<'_>) {}
}

/// An observer that ignores everything.
pub struct Quiet;

impl Observer for Quiet {}

/// Runs one round of `plan` on a fresh instance of `env`.
pub fn run_round(
    env: &dyn Environment,
    plan: &Plan,
    index: u32,
    observer: &mut dyn Observer,
) -> RoundOutcome {
    let mut round = Round {
        round: index,
        startup_ms: None,
        startup_phases: Vec::new(),
        idle_memory_bytes: None,
        idle_memory_method: None,
        idle_guest_memory: None,
        quiet_wait: None,
        scenarios: Vec::new(),
        failure: None,
    };
    if let Some(policy) = &plan.quiet {
        observer.phase(index, env.name(), RoundPhase::Quiet);
        round.quiet_wait = Some(quiet::wait(policy));
    }
    observer.phase(index, env.name(), RoundPhase::Start);
    let instance = match env.start() {
        Ok(instance) => instance,
        Err(error) => {
            round.failure = Some(failure(RoundPhase::Start, &error, Vec::new()));
            return RoundOutcome {
                round,
                detected: None,
            };
        }
    };
    let started = Instant::now();
    round.startup_ms = Some(instance.startup().as_secs_f64() * 1e3);
    round.startup_phases = instance.startup_phases();

    let detected = measure_instance(
        instance.as_ref(),
        env.name(),
        plan,
        started,
        &mut round,
        observer,
    );

    observer.phase(index, env.name(), RoundPhase::Stop);
    let tail = instance.log_tail(LOG_TAIL_LINES);
    if let Err(error) = instance.stop()
        && round.failure.is_none()
    {
        round.failure = Some(failure(RoundPhase::Stop, &error, tail));
    }
    RoundOutcome { round, detected }
}

/// Idle reading and every scenario; records a failure in `round` and stops at the first.
fn measure_instance(
    instance: &dyn Instance,
    env_name: &str,
    plan: &Plan,
    started: Instant,
    round: &mut Round,
    observer: &mut dyn Observer,
) -> Option<String> {
    observer.phase(round.round, env_name, RoundPhase::Idle);
    // `start` returns right after the first 200; the idle moment is measured from there.
    std::thread::sleep(plan.idle_settle.saturating_sub(started.elapsed()));
    match instance.resources() {
        Ok(idle) => {
            round.idle_memory_bytes = Some(idle.memory_bytes);
            round.idle_guest_memory = instance.guest_memory();
            round.idle_memory_method = Some(format!(
                "one reading {} ms after the first 200, before any load",
                plan.idle_settle.as_millis()
            ));
        }
        Err(error) => {
            round.failure = Some(failure(
                RoundPhase::Idle,
                &error,
                instance.log_tail(LOG_TAIL_LINES),
            ));
            return None;
        }
    }
    let detected = health::detected_environment(instance.base_url()).ok();
    for scenario in &plan.scenarios {
        let phase = RoundPhase::Scenario(&scenario.name);
        observer.phase(round.round, env_name, phase);
        match measure_scenario(instance, scenario, plan).and_then(|run| survived(instance, run)) {
            Ok(run) => round.scenarios.push(run),
            Err(error) => {
                round.failure = Some(failure(phase, &error, instance.log_tail(LOG_TAIL_LINES)));
                break;
            }
        }
    }
    if let Some(sweep) = &plan.sweep
        && round.round < sweep.rounds
        && round.failure.is_none()
    {
        run_sweep(instance, env_name, plan, sweep, round, observer);
    }
    detected
}

/// The sweep's steps, each open loop at a fraction of this round's own `health` throughput,
/// over `health`'s own connections and paths; where a step first misses the p99 limit, up to
/// [`Sweep::bisections`] more windows bisect between it and the last step that met it, before
/// the heavier steps above (whose overload could leave a queue behind for them).
fn run_sweep(
    instance: &dyn Instance,
    env_name: &str,
    plan: &Plan,
    sweep: &Sweep,
    round: &mut Round,
    observer: &mut dyn Observer,
) {
    let Some(ceiling) = plan
        .scenarios
        .iter()
        .find(|s| s.name == crate::measure::scenario::SWEEP_CEILING_SCENARIO)
    else {
        return;
    };
    let Some(ceiling_rps) = round
        .scenarios
        .iter()
        .find(|s| s.scenario == ceiling.name && s.sweep.is_none())
        .map(|s| s.load.throughput_rps)
        .filter(|rps| *rps > 0.0)
    else {
        return;
    };
    let mut step = |fraction: f64, bisection: bool, round: &mut Round| -> Option<bool> {
        let phase = RoundPhase::SweepStep(fraction);
        observer.phase(round.round, env_name, phase);
        let host_before = (Instant::now(), host::cpu_times().ok());
        let measured =
            measure_scenario(instance, &sweep.step(ceiling, ceiling_rps, fraction), plan);
        let host_cpu = host_window(host_before, &plan.budget);
        match measured.and_then(|run| survived(instance, run)) {
            Ok(mut run) => {
                run.sweep = Some(SweepStep {
                    ceiling_rps,
                    fraction,
                    bisection,
                    host_cpu,
                });
                let met = sweep::step_miss(&run, sweep.p99_limit_ms).is_none();
                round.scenarios.push(run);
                Some(met)
            }
            Err(error) => {
                round.failure = Some(failure(phase, &error, instance.log_tail(LOG_TAIL_LINES)));
                None
            }
        }
    };
    // The highest fraction so far whose step met the limit, every lower one meeting it too;
    // once a step misses, the bracket is found and bisected.
    let mut met_below: Option<f64> = None;
    let mut bracketed = false;
    for &fraction in &sweep.fractions {
        let Some(met) = step(fraction, false, round) else {
            return;
        };
        if bracketed {
            continue;
        }
        if met {
            met_below = Some(fraction);
            continue;
        }
        bracketed = true;
        // Below the lowest step there is nothing that met the limit to bisect from.
        let Some(mut low) = met_below else {
            continue;
        };
        let mut high = fraction;
        for _ in 0..sweep.bisections {
            let middle = sweep::bisect(low, high);
            match step(middle, true, round) {
                Some(true) => low = middle,
                Some(false) => high = middle,
                None => return,
            }
        }
    }
}

/// The host's CPUs from `before` (an instant and its `/proc/stat` reading) to now, over the
/// budget's service and generator CPUs; `None` when either reading failed.
fn host_window(
    before: (Instant, Option<BTreeMap<usize, host::CpuTimes>>),
    budget: &crate::env::Budget,
) -> Option<HostCpuWindow> {
    let (started, Some(before)) = before else {
        return None;
    };
    let after = host::cpu_times().ok()?;
    let span_s = started.elapsed().as_secs_f64();
    let share = |cpus: &[usize], of: fn(&host::CpuTimes) -> f64| -> Option<f64> {
        let used: f64 = cpus
            .iter()
            .map(|cpu| Some(of(after.get(cpu)?) - of(before.get(cpu)?)))
            .sum::<Option<f64>>()?;
        (span_s > 0.0 && !cpus.is_empty()).then(|| used / (span_s * cpus.len() as f64))
    };
    Some(HostCpuWindow {
        span_s,
        service_cpus_busy: share(&budget.service_cpus, |t| t.busy_s)?,
        service_cpus_stolen: share(&budget.service_cpus, |t| t.steal_s)?,
        generator_cpus_busy: share(&budget.generator_cpus, |t| t.busy_s)?,
        generator_cpus_stolen: share(&budget.generator_cpus, |t| t.steal_s)?,
    })
}

/// The failure record: the error with its causes (each once), and the log's tail.
fn failure(
    phase: RoundPhase<'_>,
    error: &(dyn std::error::Error + 'static),
    log_tail: Vec<String>,
) -> RoundFailure {
    let mut reason = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !reason.contains(&text) {
            reason.push_str(": ");
            reason.push_str(&text);
        }
        source = cause.source();
    }
    RoundFailure {
        phase: phase.to_string(),
        reason,
        log_tail,
    }
}

/// How long a service may take to answer its health path again after a scenario (the
/// queue an overload left behind draining) before the round counts it as dead.
const ALIVE_WITHIN: Duration = Duration::from_secs(5);

/// `run`, when the service still answers its health path after it. A service that died in
/// the last moments of a window leaves a run that looks like any other with a few errors
/// (and a VM whose guest was powering off could even be stopped as if nothing happened):
/// its figures are not the environment's, and the round is a failed repetition.
fn survived(instance: &dyn Instance, run: ScenarioRun) -> Result<ScenarioRun, PhaseError> {
    match health::still_answering(instance.base_url(), instance.health_path(), ALIVE_WITHIN) {
        Ok(()) => Ok(run),
        Err(error) => Err(PhaseError::Died {
            errors: run.load.errors.total(),
            sent: run.load.requests_sent,
            reason: format!("{error:#}"),
        }),
    }
}

/// Longest wait for a window that a load run reported as still open when it returned.
const MAX_WAIT_FOR_WINDOW_END: Duration = Duration::from_secs(1);

/// Runs one scenario against `instance`, reading its resources throughout.
pub fn measure_scenario(
    instance: &dyn Instance,
    scenario: &Scenario,
    plan: &Plan,
) -> Result<ScenarioRun, PhaseError> {
    let options = scenario.load_options(
        instance.base_url(),
        plan.window,
        plan.warmup,
        plan.request_timeout,
        &plan.budget.generator_cpus,
    );
    // The readings run on this thread; keep it off the service's CPUs while load runs.
    let affinity = pin::current_affinity().ok();
    let _ = pin::pin_current_thread(&plan.budget.generator_cpus);
    let outcome = sample_during(instance, plan.sample_interval, || {
        load::run_with_window(&options)
    });
    if let Some(affinity) = affinity {
        let _ = pin::pin_current_thread(&affinity);
    }
    let (loaded, mut samples) = outcome?;
    let (mut report, measured) = loaded?;
    // An open loop whose last request was answered early returns before its planned window
    // closes; one more reading once it has closed keeps the window's end bracketed.
    if samples.last().is_some_and(|last| last.at < measured.end) {
        let wait = measured.end.saturating_duration_since(Instant::now());
        std::thread::sleep(wait.min(MAX_WAIT_FOR_WINDOW_END));
        samples.push(sample(instance)?);
    }
    let readings = window::over(&samples, &measured);
    if let Some(series) = report.series.as_mut() {
        window::fill_series(&samples, measured.series_start, series);
    }
    Ok(ScenarioRun {
        scenario: scenario.name.clone(),
        peak_memory_bytes: readings.peak_memory_bytes,
        peak_memory_method: Some(window::peak_method(
            readings.readings,
            plan.sample_interval,
            &measured,
        )),
        service_cpu_seconds: readings.cpu_seconds,
        load: report,
        sweep: None,
    })
}

/// How many times a reading's own cost the pause between readings is at least: readings run
/// on the generator's CPUs, and one of a VM's large QEMU takes a millisecond, so they are
/// spaced to take at most a twentieth of the thread that takes them.
const READING_COST_SHARE: u32 = 19;

/// Runs `work` on its own thread while reading `instance` every `interval` (or more rarely,
/// when readings are costly: [`READING_COST_SHARE`]) on this one; the readings include one
/// just before and one just after, so any window inside is bracketed.
fn sample_during<T: Send>(
    instance: &dyn Instance,
    interval: Duration,
    work: impl FnOnce() -> T + Send,
) -> Result<(T, Vec<Sample>), PhaseError> {
    let mut samples = vec![sample(instance)?];
    let mut failed = None;
    let result = std::thread::scope(|scope| {
        let worker = scope.spawn(work);
        let mut pause = interval;
        while !worker.is_finished() {
            std::thread::sleep(pause);
            let before = Instant::now();
            let reading = sample(instance);
            pause = interval.max(before.elapsed() * READING_COST_SHARE);
            match reading {
                Ok(sample) => samples.push(sample),
                // Keep the load running to its end (it is bounded); report afterwards.
                Err(error) => {
                    failed.get_or_insert(error);
                }
            }
        }
        worker.join()
    });
    let result = result.map_err(|_| PhaseError::LoadPanicked)?;
    if let Some(error) = failed {
        return Err(error.into());
    }
    samples.push(sample(instance)?);
    Ok((result, samples))
}

fn sample(instance: &dyn Instance) -> Result<Sample, EnvError> {
    let before = Instant::now();
    let reading = instance.resources()?;
    // Stamped at the middle of the reading: the best guess of when it was true.
    let at = before + before.elapsed() / 2;
    Ok(Sample {
        at,
        memory_bytes: reading.memory_bytes,
        cpu_seconds: reading.cpu_seconds,
    })
}

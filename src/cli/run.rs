//! `isobench run`: every environment, every scenario, n interleaved repetitions, one report.
//!
//! The pipeline reads top to bottom: options → environments (prepared, or listed as
//! unavailable with the reason) → rounds, each starting a fresh instance of every
//! environment in a shuffled order (A B C, C A B, …, so drift of a shared machine hits all
//! alike) and running every scenario against it → the artifact, rewritten with its report
//! after every environment's round, so a later failure or an interrupt loses nothing.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use rand::SeedableRng;
use rand::seq::SliceRandom;

use crate::env::container::ContainerEnv;
use crate::env::mock::{MockEnv, MockReadings};
use crate::env::native::NativeEnv;
use crate::env::{Budget, EnvError, Environment, Instance, health};
use crate::load::{self, LoadOptions, PathWeight};
use crate::report::schema::{
    Artifact, EnvironmentLabel, EnvironmentResult, Round, ScenarioRun, Unavailable,
};

/// Options of `isobench run`.
#[derive(Debug, Clone, Args)]
pub struct RunArgs {
    /// Environments to run, in any order. Default: native, container and vm, each when this
    /// machine can run it (those that cannot are listed with the reason).
    #[arg(long, value_delimiter = ',', value_enum)]
    pub env: Vec<EnvName>,
    /// Scenarios to run against every instance.
    #[arg(
        long,
        value_delimiter = ',',
        value_enum,
        default_value = "health,mixed,fixed-rate"
    )]
    pub scenarios: Vec<Scenario>,
    /// Repetitions: fresh instances of every environment, interleaved [default: 3; 2 with
    /// --quick, 10 with --thorough].
    #[arg(long, short = 'n')]
    pub repetitions: Option<u32>,
    /// Measured length of each scenario, e.g. `5s` [default: 5s; 2s with --quick, 10s with
    /// --thorough].
    #[arg(long, value_parser = humantime::parse_duration)]
    pub duration: Option<Duration>,
    /// Load sent before each scenario's measurement, not counted.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "1s")]
    pub warmup: Duration,
    /// Connections of the closed-loop `health` scenario.
    #[arg(long, default_value_t = 50)]
    pub connections: usize,
    /// Request rate of the open-loop `fixed-rate` scenario, requests per second; keep it
    /// below every environment's ceiling so it measures latency, not overload.
    #[arg(long, default_value_t = 200.0)]
    pub rate: f64,
    /// Where the JSON artifact, markdown table and HTML report are written.
    #[arg(long, default_value = "target/isobench/report")]
    pub output_dir: PathBuf,
    /// Fewer and shorter repetitions (2 × 2 s): a smoke test, not a measurement.
    #[arg(long, conflicts_with = "thorough")]
    pub quick: bool,
    /// More and longer repetitions (10 × 10 s) for tight intervals.
    #[arg(long)]
    pub thorough: bool,
    /// Seed of the per-round shuffle of environments (recorded in the artifact's notes).
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
}

/// An environment `isobench run` can start.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum EnvName {
    /// The server as a plain process.
    Native,
    /// The server in a Docker container.
    Container,
    /// The server in a VM (QEMU booting a kernel and an initramfs; Vagrant with
    /// ISOBENCH_VM=vagrant).
    Vm,
    /// An in-process server with fixed readings, for trying the pipeline out.
    Mock,
}

/// A load scenario.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Scenario {
    /// Closed loop on `/health`: the throughput ceiling.
    Health,
    /// Closed loop on a mix of `/health`, `/cpu`, `/memory` and `/parallel`.
    Mixed,
    /// Open loop on `/health` at `--rate`: latency with coordinated omission corrected.
    FixedRate,
}

impl Scenario {
    fn name(self) -> &'static str {
        match self {
            Self::Health => "health",
            Self::Mixed => "mixed",
            Self::FixedRate => "fixed-rate",
        }
    }

    fn load_options(self, base_url: &str, plan: &Plan) -> LoadOptions {
        let mut options = LoadOptions::new(base_url);
        options.duration = Some(plan.duration);
        options.warmup = plan.warmup;
        options.cpus = plan.budget.generator_cpus.clone();
        let path = |path: &str, weight| PathWeight {
            path: path.into(),
            weight,
        };
        match self {
            Self::Health => {
                options.connections = plan.connections;
                options.scenario = vec![path("/health", 1)];
            }
            Self::Mixed => {
                // Few connections: /memory and /parallel are heavy, and the service sheds
                // load beyond its caps, which would measure the caps instead of the work.
                options.connections = 4;
                options.scenario = vec![
                    path("/health", 4),
                    path("/cpu", 3),
                    path("/memory?mb=8", 1),
                    path("/parallel?tasks=4&n=20000", 2),
                ];
            }
            Self::FixedRate => {
                options.connections = 16;
                options.rate = Some(plan.rate);
                options.scenario = vec![path("/health", 1)];
            }
        }
        options
    }
}

/// The resolved plan: presets applied, budget chosen.
struct Plan {
    repetitions: u32,
    duration: Duration,
    warmup: Duration,
    connections: usize,
    rate: f64,
    budget: Budget,
}

impl Plan {
    fn from_args(args: &RunArgs) -> Self {
        let (repetitions, duration) = if args.quick {
            (2, Duration::from_secs(2))
        } else if args.thorough {
            (10, Duration::from_secs(10))
        } else {
            (3, Duration::from_secs(5))
        };
        Self {
            repetitions: args.repetitions.unwrap_or(repetitions),
            duration: args.duration.unwrap_or(duration),
            warmup: args.warmup,
            connections: args.connections,
            rate: args.rate,
            budget: Budget::for_host(),
        }
    }
}

/// Runs the comparison and writes its outputs; returns the artifact.
pub fn run(args: RunArgs) -> anyhow::Result<Artifact> {
    let plan = Plan::from_args(&args);
    validate(&args, &plan)?;
    std::fs::create_dir_all(&args.output_dir)
        .with_context(|| format!("creating {}", args.output_dir.display()))?;
    let requested = if args.env.is_empty() {
        vec![EnvName::Native, EnvName::Container, EnvName::Vm]
    } else {
        args.env.clone()
    };

    let mut artifact = Artifact::now(Vec::new());
    let run_note = format!(
        "round order shuffled with seed {}; {} repetitions of {:?} per scenario",
        args.seed, plan.repetitions, plan.duration
    );
    let mut environments = Vec::new();
    for name in requested {
        let spinner = ProgressBar::new_spinner().with_message(format!("preparing {name:?}"));
        spinner.enable_steady_tick(Duration::from_millis(120));
        let prepared = prepared(name, &plan);
        spinner.finish_and_clear();
        match prepared {
            Ok((env, preparation)) => {
                artifact.environments.push(EnvironmentResult {
                    label: label_of(env.as_ref(), &run_note, None),
                    preparation,
                    rounds: Vec::new(),
                });
                environments.push(env);
            }
            Err(error) => {
                eprintln!("isobench: skipping {name:?}: {error:#}");
                artifact.unavailable.push(Unavailable {
                    name: format!("{name:?}").to_lowercase(),
                    reason: format!("{error:#}"),
                });
            }
        }
    }
    anyhow::ensure!(!environments.is_empty(), "no environment could run");

    let steps = u64::from(plan.repetitions) * environments.len() as u64;
    let progress = ProgressBar::new(steps).with_style(
        ProgressStyle::with_template("{elapsed_precise} [{bar:30}] {pos}/{len} {msg}")
            .context("progress template")?,
    );
    let mut rng = rand::rngs::StdRng::seed_from_u64(args.seed);
    for round in 0..plan.repetitions {
        let mut order: Vec<usize> = (0..environments.len()).collect();
        order.shuffle(&mut rng);
        for index in order {
            let env = environments[index].as_ref();
            progress.set_message(format!("round {}: {}", round + 1, env.name()));
            let measured = measure_round(env, round, &args.scenarios, &plan, &progress)
                .with_context(|| format!("round {round} of {}", env.name()))?;
            let result = &mut artifact.environments[index];
            // Some of the label (how traffic reaches a container, say) is learnt by starting.
            let detected = result.label.detected.take().or(measured.1);
            result.label = label_of(env, &run_note, detected);
            result.rounds.push(measured.0);
            crate::cli::write_outputs(&mut artifact, &args.output_dir)?;
            progress.inc(1);
        }
    }
    progress.finish_and_clear();
    crate::cli::write_outputs(&mut artifact, &args.output_dir)?;
    Ok(artifact)
}

/// The environment's label plus what this run adds: its own note and the environment the
/// service detected.
fn label_of(env: &dyn Environment, run_note: &str, detected: Option<String>) -> EnvironmentLabel {
    let mut label = env.label();
    label.notes.push(run_note.to_owned());
    label.detected = detected;
    label
}

fn validate(args: &RunArgs, plan: &Plan) -> anyhow::Result<()> {
    anyhow::ensure!(plan.repetitions >= 1, "--repetitions must be at least 1");
    anyhow::ensure!(!plan.duration.is_zero(), "--duration must be positive");
    anyhow::ensure!(plan.connections >= 1, "--connections must be at least 1");
    anyhow::ensure!(
        plan.rate.is_finite() && plan.rate > 0.0,
        "--rate must be a positive number of requests per second"
    );
    anyhow::ensure!(
        !args.scenarios.is_empty(),
        "--scenarios must name at least one"
    );
    Ok(())
}

fn prepared(
    name: EnvName,
    plan: &Plan,
) -> Result<
    (
        Box<dyn Environment>,
        Vec<crate::report::schema::Preparation>,
    ),
    EnvError,
> {
    let budget = plan.budget.clone();
    let mut env: Box<dyn Environment> = match name {
        EnvName::Native => Box::new(NativeEnv::new(budget)),
        EnvName::Container => Box::new(ContainerEnv::new(budget)?),
        EnvName::Vm => crate::env::vm::from_env(budget)?,
        EnvName::Mock => Box::new(MockEnv::new("mock", budget, MockReadings::default())),
    };
    let preparation = env.prepare()?;
    Ok((env, preparation))
}

/// One fresh instance of `env`: startup, idle memory, then every scenario.
fn measure_round(
    env: &dyn Environment,
    round: u32,
    scenarios: &[Scenario],
    plan: &Plan,
    progress: &ProgressBar,
) -> anyhow::Result<(Round, Option<String>)> {
    let instance = env.start()?;
    let outcome = measure_instance(
        instance.as_ref(),
        env.name(),
        round,
        scenarios,
        plan,
        progress,
    );
    let stopped = instance.stop();
    let measured = outcome?;
    stopped?;
    Ok(measured)
}

fn measure_instance(
    instance: &dyn Instance,
    env_name: &str,
    round: u32,
    scenarios: &[Scenario],
    plan: &Plan,
    progress: &ProgressBar,
) -> anyhow::Result<(Round, Option<String>)> {
    let startup_ms = instance.startup().as_secs_f64() * 1e3;
    // Idle memory after startup work (lazy initialisation, page faults) has settled.
    std::thread::sleep(Duration::from_millis(500));
    let idle = instance.resources()?;
    let detected = health::detected_environment(instance.base_url()).ok();
    let mut runs = Vec::new();
    for &scenario in scenarios {
        progress.set_message(format!(
            "round {}: {env_name} {}",
            round + 1,
            scenario.name()
        ));
        let options = scenario.load_options(instance.base_url(), plan);
        let before = instance.resources()?;
        let report = load::run(&options)?;
        let after = instance.resources()?;
        runs.push(ScenarioRun {
            scenario: scenario.name().into(),
            peak_memory_bytes: Some(
                after
                    .peak_memory_bytes
                    .unwrap_or(after.memory_bytes)
                    .max(before.memory_bytes),
            ),
            service_cpu_seconds: Some((after.cpu_seconds - before.cpu_seconds).max(0.0)),
            load: report,
        });
    }
    let round = Round {
        round,
        startup_ms: Some(startup_ms),
        startup_phases: instance.startup_phases(),
        idle_memory_bytes: Some(idle.memory_bytes),
        scenarios: runs,
    };
    Ok((round, detected))
}

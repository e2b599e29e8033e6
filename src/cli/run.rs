//! `isobench run`: every environment, every scenario, n interleaved repetitions, one report.
//!
//! The pipeline reads top to bottom: flags → a plain [`Plan`] → environments from the one
//! factory (prepared, or listed as unavailable with the reason) → [`measure::rounds::run`],
//! the protocol the test suite runs too → the artifact with its report, rewritten after
//! every instance's round, so a later failure or an interrupt loses nothing.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};

use crate::env::factory::{self, EnvName};
use crate::measure::Plan;
use crate::measure::plan::{DEFAULT_REPETITIONS, DEFAULT_WARMUP, DEFAULT_WINDOW};
use crate::measure::protocol::Observer;
use crate::measure::rounds::{self, Prepared};
use crate::measure::scenario::{BUILT_IN, Scenario};
use crate::report::schema::{Artifact, Unavailable};
use crate::subject::Subject;

/// Options of `isobench run`.
///
/// Why the defaults (7 rounds × 2 s windows, 0.5 s warm-up): an interval for a median needs
/// n ≥ 6 rounds to reach 95% (order statistics: [min, max] covers 1 − 2·0.5ⁿ), and a ratio
/// of two environments, bounded by both medians' intervals, needs n ≥ 7 on each side
/// (0.984² ≥ 95%). Seven short rounds cost about the wall time three 5 s rounds did, and
/// the spread of throughput between repetitions is set by the instance more than by the
/// window: measured on a busy 2-CPU machine, the coefficient of variation of health
/// throughput across 7 × 2 s rounds was MEASURED_CV.
#[derive(Debug, Clone, Args)]
pub struct RunArgs {
    /// Environments to run, comma-separated: native, container-host, container, gvisor,
    /// runtimes (one per other registered runtime), vm, mock. Default: the whole ladder
    /// (all but mock), each when this machine can run it (those that cannot are listed with
    /// the reason).
    #[arg(long, value_delimiter = ',')]
    pub env: Vec<EnvName>,
    /// Scenarios to run against every instance: health (closed loop on /health, the
    /// ceiling), mixed (closed loop over /health, /cpu, /memory, /parallel), fixed-rate (open
    /// loop on /health at --rate, coordinated omission corrected).
    /// Or one TOML scenario file (`--scenarios my.toml`, see `src/subject/scenario_file.rs`).
    /// Without the flag: health,mixed,fixed-rate for isobench's own server; health and
    /// fixed-rate on the health path for `--image` / `--binary`.
    #[arg(long, value_delimiter = ',')]
    pub scenarios: Vec<String>,
    /// What to measure (isobench's own server unless --image or --binary).
    #[command(flatten)]
    pub subject: super::subject_args::SubjectArgs,
    /// Repetitions: fresh instances of every environment, interleaved [default: 7, the
    /// fewest that give 95% intervals for medians and their ratios; 2 with --quick, 15 with
    /// --thorough].
    #[arg(long, short = 'n')]
    pub repetitions: Option<u32>,
    /// Measured window of each scenario, e.g. `2s` [default: 2s; 1s with --quick, 5s with
    /// --thorough].
    #[arg(long, value_parser = humantime::parse_duration)]
    pub duration: Option<Duration>,
    /// Load sent before each scenario's window, not counted [default: 500ms].
    #[arg(long, value_parser = humantime::parse_duration)]
    pub warmup: Option<Duration>,
    /// Connections of the closed-loop `health` scenario.
    #[arg(long, default_value_t = 50)]
    pub connections: usize,
    /// Request rate of the open-loop `fixed-rate` scenario, requests per second; keep it
    /// below every environment's ceiling so it measures latency, not overload (a cell whose
    /// rate was not kept is marked ⚠rate).
    #[arg(long, default_value_t = 200.0)]
    pub rate: f64,
    /// Where the JSON artifact, markdown table and HTML report are written.
    #[arg(long, default_value = "target/isobench/report")]
    pub output_dir: PathBuf,
    /// Fewer and shorter repetitions (2 × 1 s): a smoke test, not a measurement (intervals
    /// cover 50%, and say so).
    #[arg(long, conflicts_with = "thorough")]
    pub quick: bool,
    /// More and longer repetitions (15 × 5 s) for tight intervals.
    #[arg(long)]
    pub thorough: bool,
    /// Seed of the per-round shuffle of environments (recorded in the artifact's notes).
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
}

/// The plan `args` ask for, measuring isobench's own server.
pub fn plan_from_args(args: &RunArgs) -> anyhow::Result<Plan> {
    plan_for(args, &Subject::Own)
}

/// The plan `args` ask for against `subject`: presets applied, scenarios resolved (built-in
/// names, or a scenario file), this host's budget.
pub fn plan_for(args: &RunArgs, subject: &Subject) -> anyhow::Result<Plan> {
    let (repetitions, window) = if args.quick {
        (2, Duration::from_secs(1))
    } else if args.thorough {
        (15, Duration::from_secs(5))
    } else {
        (DEFAULT_REPETITIONS, DEFAULT_WINDOW)
    };
    let is_file = matches!(args.scenarios.as_slice(), [single]
        if single.ends_with(".toml") || std::path::Path::new(single).is_file());
    let scenarios = if subject.is_foreign() || is_file {
        super::subject_args::workloads(&args.scenarios, subject, args.connections, args.rate)?
            .iter()
            .map(super::subject_args::to_scenario)
            .collect()
    } else {
        let names: Vec<String> = if args.scenarios.is_empty() {
            BUILT_IN.iter().map(|name| (*name).to_owned()).collect()
        } else {
            args.scenarios.clone()
        };
        names
            .iter()
            .map(|name| {
                Scenario::built_in(name.trim(), args.connections, args.rate).with_context(|| {
                    format!(
                        "--scenarios: unknown scenario {name:?}; expected {}",
                        BUILT_IN.join(", ")
                    )
                })
            })
            .collect::<anyhow::Result<Vec<_>>>()?
    };
    let mut plan = Plan::new(scenarios);
    plan.repetitions = args.repetitions.unwrap_or(repetitions);
    plan.window = args.duration.unwrap_or(window);
    plan.warmup = args.warmup.unwrap_or(DEFAULT_WARMUP);
    plan.seed = args.seed;
    plan.validate().map_err(|error| {
        // Name the flag behind each plan field.
        let text = error
            .0
            .replace("repetitions", "--repetitions")
            .replace("the measured window", "--duration")
            .replace("connections", "--connections")
            .replace("the rate", "--rate");
        anyhow::anyhow!(text)
    })?;
    Ok(plan)
}

/// Runs the comparison and writes its outputs; returns the artifact.
pub fn run(args: RunArgs) -> anyhow::Result<Artifact> {
    let subject = args.subject.resolve()?;
    let plan = plan_for(&args, &subject)?;
    let foreign_run = args.subject.foreign_run();
    std::fs::create_dir_all(&args.output_dir)
        .with_context(|| format!("creating {}", args.output_dir.display()))?;
    let requested = if args.env.is_empty() {
        EnvName::DEFAULT.to_vec()
    } else {
        args.env.clone()
    };

    let mut artifact = Artifact::now(Vec::new());
    let mut prepared = Vec::new();
    for name in requested {
        let spinner = ProgressBar::new_spinner().with_message(format!("preparing {name}"));
        spinner.enable_steady_tick(Duration::from_millis(120));
        // `runtimes` stands for one environment per registered runtime.
        let outcomes = if subject.is_foreign() {
            let prepared = crate::env::foreign::prepared(
                name.as_str(),
                plan.budget.clone(),
                &subject,
                &foreign_run,
            );
            vec![(name.to_string(), prepared)]
        } else {
            factory::prepared_all(name, plan.budget.clone())
        };
        spinner.finish_and_clear();
        for (name, outcome) in outcomes {
            match outcome {
                Ok((env, preparation)) => prepared.push(Prepared { env, preparation }),
                Err(error) => {
                    eprintln!("isobench: skipping {name}: {error:#}");
                    artifact.unavailable.push(Unavailable {
                        name: name.to_string(),
                        reason: format!("{error:#}"),
                    });
                }
            }
        }
    }
    anyhow::ensure!(!prepared.is_empty(), "no environment could run");

    let steps = u64::from(plan.repetitions) * prepared.len() as u64;
    let progress = ProgressBar::new(steps).with_style(
        ProgressStyle::with_template("{elapsed_precise} [{bar:30}] {pos}/{len} {msg}")
            .context("progress template")?,
    );
    let mut observer = Progress(&progress);
    let output_dir = args.output_dir.clone();
    let mut after_round = |artifact: &mut Artifact| -> Result<(), BoxedError> {
        crate::cli::write_outputs(artifact, &output_dir)
            .map_err(|error| BoxedError::from(format!("{error:#}")))?;
        progress.set_position(
            artifact
                .environments
                .iter()
                .map(|e| e.rounds.len() as u64)
                .sum(),
        );
        Ok(())
    };
    let outcome = rounds::run(
        &plan,
        prepared,
        &mut artifact,
        &mut observer,
        &mut after_round,
    );
    progress.finish_and_clear();
    outcome?;
    for result in &artifact.environments {
        for round in &result.rounds {
            if let Some(failure) = &round.failure {
                eprintln!(
                    "isobench: {} round {} failed at {}: {}",
                    result.label.name,
                    round.round + 1,
                    failure.phase,
                    failure.reason
                );
            }
        }
    }
    anyhow::ensure!(
        !artifact.environments.is_empty(),
        "no environment completed a round: {}",
        artifact
            .unavailable
            .iter()
            .map(|u| format!("{}: {}", u.name, u.reason))
            .collect::<Vec<_>>()
            .join("; ")
    );
    Ok(artifact)
}

/// Shows the protocol's phases on the progress bar.
struct Progress<'a>(&'a ProgressBar);

impl Observer for Progress<'_> {
    fn phase(&mut self, round: u32, env: &str, phase: &str) {
        self.0
            .set_message(format!("round {}: {env} {phase}", round + 1));
    }
}

/// The per-round hook's error, as [`rounds::run`] takes it.
type BoxedError = Box<dyn std::error::Error + Send + Sync>;

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        run: RunArgs,
    }

    fn plan(args: &[&str]) -> anyhow::Result<Plan> {
        let cli = Cli::try_parse_from(std::iter::once("run").chain(args.iter().copied()))?;
        plan_from_args(&cli.run)
    }

    #[test]
    fn the_default_plan_is_a_95_percent_plan() {
        let plan = plan(&[]).unwrap();
        assert_eq!(plan.repetitions, 7);
        let (_, coverage) = crate::report::stats::order_statistic_rank(plan.repetitions as usize);
        assert!(coverage >= 0.95, "{coverage}");
        let n = plan.repetitions as usize;
        assert!(crate::report::stats::ratio_ranks(n, n).2 >= 0.95);
        let names: Vec<_> = plan.scenarios.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, BUILT_IN);
    }

    #[test]
    fn flags_become_the_plan() {
        let plan = plan(&[
            "-n",
            "3",
            "--duration",
            "1500ms",
            "--scenarios",
            "fixed-rate",
            "--rate",
            "50",
        ])
        .unwrap();
        assert_eq!(plan.repetitions, 3);
        assert_eq!(plan.window, Duration::from_millis(1500));
        assert_eq!(plan.scenarios, vec![Scenario::fixed_rate(50.0)]);
    }

    #[test]
    fn bad_flags_are_named() {
        let error = plan(&["--scenarios", "soak"]).unwrap_err().to_string();
        assert!(error.contains("unknown scenario \"soak\""), "{error}");
        let error = plan(&["--rate", "0"]).unwrap_err().to_string();
        assert!(error.contains("--rate"), "{error}");
        let error = plan(&["-n", "0"]).unwrap_err().to_string();
        assert!(error.contains("--repetitions"), "{error}");
        assert!(plan(&["--env", "kata"]).is_err());
    }
}

//! `isobench run`: every environment, every scenario, n interleaved repetitions, one report.
//!
//! The pipeline reads top to bottom: flags → a plain [`Plan`] → environments from the one
//! factory (prepared, or listed as unavailable with the reason) → [`crate::measure::rounds::run`],
//! the protocol the test suite runs too → the artifact with its report, rewritten after
//! every instance's round, so a later failure or an interrupt loses nothing.

use std::io::IsTerminal as _;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};

use crate::artifact::{Artifact, Unavailable};
use crate::cleanup::{self, Phase};
use crate::cli::progress_lines;
use crate::env::Prepared;
use crate::env::factory::{self, EnvName};
use crate::env::{Environment, orphans};
use crate::measure::Plan;
use crate::measure::plan::{DEFAULT_REPETITIONS, DEFAULT_WARMUP, DEFAULT_WINDOW, PlanSetting};
use crate::measure::protocol::{Observer, RoundPhase};
use crate::measure::rounds;
use crate::measure::scenario::{
    BUILT_IN, BUILT_IN_FOR_ANY_SERVICE, BuiltInError, ON_REQUEST, Scenario,
};
use crate::measure::scenario_file::{self, ScenarioFile};
use crate::measure::soak::{self, SoakPlan, SoakVerdict};
use crate::subject::Subject;

/// Options of `isobench run`.
///
/// Why the defaults (7 rounds × 2 s windows, 0.5 s warm-up): an interval for a median needs
/// n ≥ 6 rounds to reach 95% (order statistics: [min, max] covers 1 − 2·0.5ⁿ), and a ratio
/// of two environments, bounded by both medians' intervals, needs n ≥ 7 on each side
/// (0.984² ≥ 95%); more, shorter rounds buy that coverage for the measuring time fewer
/// long ones would take. Every round's throughput is in the artifact, so the spread between
/// rounds can be checked, and `±noisy` marks a median whose interval is wider than ±10%.
/// Each round first waits for the host's CPUs to fall quiet, so what isobench's own
/// previous instance left running is not part of that spread. (The README's "Why these
/// defaults" has the figures behind this.)
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
    /// loop on /health at --rate, coordinated omission corrected); on request only:
    /// syscalls (closed loop on /syscalls?n=1000, a thousand getppid calls a request), files
    /// and files-nofsync (closed loop on /files?kb=64, a fresh file written, fsynced or not,
    /// read back and removed in the instance's data directory) — not in the default set,
    /// because three more scenarios in every round of every rung add minutes to a run.
    /// Or one TOML scenario file (`--scenarios my.toml`, see `src/measure/scenario_file.rs`),
    /// whose `data_dir` gives `--image` / `--binary` a fresh data directory per instance at
    /// that path in every rung.
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
    /// More and longer repetitions (15 × 5 s) for tight intervals, then a 10-minute soak of
    /// every environment at saturation (RSS, open fds and threads sampled; growth beyond
    /// noise fails the run with exit code 1).
    #[arg(long)]
    pub thorough: bool,
    /// Seed of the per-round shuffle of environments (recorded in the artifact's notes).
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Skip the latency-under-load sweep (open loop from a tenth of each environment's own
    /// ceiling to past it; run after the scenarios when `health` is among them).
    #[arg(long)]
    pub no_sweep: bool,
    /// How many rounds run the sweep, from the first: each sweep is eight more measured
    /// windows per environment (and up to three bisecting the capacity), so one round draws
    /// the curve by default and the capacity says n = 1; more give each point and the
    /// capacity a median over rounds.
    #[arg(long, default_value_t = crate::measure::scenario::DEFAULT_SWEEP_ROUNDS)]
    pub sweep_rounds: u32,
    /// Checks and report options.
    #[command(flatten)]
    pub gate: crate::cli::gate::GateArgs,
}

/// The plan `args` ask for, measuring isobench's own server.
pub fn plan_from_args(args: &RunArgs) -> anyhow::Result<Plan> {
    plan_for(args, &Subject::Own)
}

/// The plan `args` ask for against `subject`: presets applied, scenarios resolved (built-in
/// names, or a scenario file), this host's budget.
pub fn plan_for(args: &RunArgs, subject: &Subject) -> anyhow::Result<Plan> {
    Ok(planned(args, subject)?.0)
}

/// The plan `args` ask for against `subject`, and the data directory its scenario file names
/// for a foreign service (a path inside it; see [`scenario_file`]).
pub fn planned(args: &RunArgs, subject: &Subject) -> anyhow::Result<(Plan, Option<String>)> {
    let (repetitions, window) = if args.quick {
        (2, Duration::from_secs(1))
    } else if args.thorough {
        (15, Duration::from_secs(5))
    } else {
        (DEFAULT_REPETITIONS, DEFAULT_WINDOW)
    };
    let ScenarioFile {
        scenarios,
        data_dir,
    } = scenarios_for(&args.scenarios, subject, args.connections, args.rate)?;
    let mut plan = Plan::new(scenarios);
    plan.repetitions = args.repetitions.unwrap_or(repetitions);
    plan.window = args.duration.unwrap_or(window);
    plan.warmup = args.warmup.unwrap_or(DEFAULT_WARMUP);
    plan.seed = args.seed;
    // The sweep takes its ceiling from `health` (and, step by step, its connections and
    // paths); without `health` there is nothing to sweep from.
    let has_ceiling = plan
        .scenarios
        .iter()
        .any(|s| s.name == crate::measure::scenario::SWEEP_CEILING_SCENARIO);
    if has_ceiling && !args.no_sweep {
        plan.sweep = Some(crate::measure::scenario::Sweep {
            rounds: args.sweep_rounds,
            p99_limit_ms: args.gate.p99_under.as_secs_f64() * 1e3,
            ..Default::default()
        });
    }
    plan.validate().map_err(|error| match error.setting() {
        Some(setting) => anyhow::anyhow!("{error} (set by {})", flag_of(setting)),
        None => anyhow::Error::new(error),
    })?;
    Ok((plan, data_dir))
}

/// The scenarios `--scenarios` asks for: a TOML scenario file (one value ending in `.toml`,
/// or naming an existing file), or built-in names. Without any, isobench's own server gets
/// `health`, `mixed` and `fixed-rate`, and a foreign service `health` (closed loop on its
/// health path) and `fixed-rate` (open loop on it at `rate`); `mixed` needs isobench's
/// endpoints, so a foreign service gets it only from a file. A file's `data_dir` is for a
/// foreign service: isobench's own server always has its data directory at `/data`.
pub fn scenarios_for(
    names: &[String],
    subject: &Subject,
    connections: usize,
    rate: f64,
) -> anyhow::Result<ScenarioFile> {
    if let [single] = names
        && (single.ends_with(".toml") || std::path::Path::new(single).is_file())
    {
        let file = scenario_file::load(std::path::Path::new(single))?;
        if let Some(dir) = &file.data_dir
            && !subject.is_foreign()
        {
            anyhow::bail!(
                "scenario file {single}: data_dir {dir:?} is for a service of --image or \
                 --binary; isobench's own server always has its data directory at {}",
                crate::env::data_dir::CONTAINER_PATH
            );
        }
        return Ok(file);
    }
    let own_server = !subject.is_foreign();
    let defaults: &[&str] = if own_server {
        &BUILT_IN
    } else {
        &BUILT_IN_FOR_ANY_SERVICE
    };
    let names: Vec<&str> = if names.is_empty() {
        defaults.to_vec()
    } else {
        names.iter().map(|name| name.trim()).collect()
    };
    let scenarios = names
        .into_iter()
        .map(|name| {
            Scenario::built_in(name, subject.health_path(), own_server, connections, rate).map_err(
                |error| match error {
                    BuiltInError::NeedsOwnServer(_) => anyhow::anyhow!(
                        "--scenarios {error}; for {} give a scenario file (--scenarios my.toml)",
                        subject.name()
                    ),
                    BuiltInError::Unknown(_) => anyhow::anyhow!(
                        "--scenarios: {error}; expected {} or a .toml scenario file",
                        BUILT_IN
                            .iter()
                            .chain(&ON_REQUEST)
                            .copied()
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                },
            )
        })
        .collect::<anyhow::Result<_>>()?;
    Ok(ScenarioFile {
        scenarios,
        data_dir: None,
    })
}

/// The flag of `isobench run` behind a plan setting.
fn flag_of(setting: PlanSetting) -> &'static str {
    match setting {
        PlanSetting::Repetitions => "--repetitions",
        PlanSetting::Window => "--duration",
        PlanSetting::Connections => "--connections",
        PlanSetting::Rate => "--rate",
    }
}

/// What a finished run hands back: the artifact it wrote, and whether `--thorough`'s soak
/// failed somewhere (a finished run then exits [`crate::cli::exit::PARTIAL`]).
pub struct Finished {
    /// The artifact, as written.
    pub artifact: Artifact,
    /// Whether a soak found failed requests or growth beyond noise.
    pub soak_failed: bool,
}

/// Runs the comparison and writes its outputs.
pub fn run(args: RunArgs) -> anyhow::Result<Finished> {
    let subject = args.subject.resolve()?;
    let (plan, data_dir) = planned(&args, &subject)?;
    let foreign_run = crate::env::foreign::ForeignRun {
        data_dir,
        ..args.subject.foreign_run()
    };
    // Check files are read before anything is measured, so a typo costs nothing.
    let settings = args.gate.settings(None)?;
    // Before anything starts: a full disk or a read-only directory is found in a second,
    // not after the first round.
    crate::cli::check_output_dir(&args.output_dir)?;
    let swept = orphans::sweep_orphans().note();
    if let Some(note) = &swept {
        eprintln!("isobench: {note}");
    }
    let requested = if args.env.is_empty() {
        EnvName::DEFAULT.to_vec()
    } else {
        args.env.clone()
    };

    let mut artifact = Artifact::now(Vec::new());
    artifact.service = Some(subject.info());
    // Off a terminal the bar and spinner are hidden: plain lines say what goes on instead.
    let plain_lines = !std::io::stderr().is_terminal();
    let mut prepared = Vec::new();
    for kind in requested {
        if plain_lines {
            eprintln!("isobench: preparing {kind}");
        }
        let spinner = ProgressBar::new_spinner().with_message(format!("preparing {kind}"));
        spinner.enable_steady_tick(Duration::from_millis(120));
        cleanup::enter_phase(Phase::Preparing);
        // `runtimes` stands for one environment per registered runtime.
        let outcomes = factory::prepared_all(kind, plan.budget.clone(), &subject, &foreign_run);
        spinner.finish_and_clear();
        for (name, outcome) in outcomes {
            match outcome {
                Ok(environment) => prepared.push(environment),
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
    let names: Vec<String> = prepared.iter().map(|p| p.env.name().to_owned()).collect();
    if plain_lines {
        eprintln!(
            "isobench: measuring {}: {} rounds each",
            names.join(", "),
            plan.repetitions
        );
    }
    let mut lines = plain_lines.then(|| progress_lines::Tracker::new(&plan, names, Instant::now()));
    let output_dir = args.output_dir.clone();
    // The write error itself, kept whole: its type decides the exit code.
    let mut write_error = None;
    let mut after_round = |artifact: &mut Artifact| -> Result<(), BoxedError> {
        // The round ended when the hook was called; the writing below counts in the next.
        let finished = Instant::now();
        cleanup::enter_phase(Phase::Writing);
        if let Err(error) = crate::cli::write_outputs(artifact, &output_dir, &settings) {
            let message = BoxedError::from(format!("{error:#}"));
            write_error = Some(error);
            return Err(message);
        }
        progress.set_position(
            artifact
                .environments
                .iter()
                .map(|e| e.rounds.len() as u64)
                .sum(),
        );
        if let Some(done) = lines
            .as_mut()
            .and_then(|tracker| tracker.after_round(artifact, finished))
        {
            eprintln!("{}", progress_lines::line(&done));
        }
        Ok(())
    };
    let outcome = rounds::run(
        &plan,
        &prepared,
        &mut artifact,
        &mut observer,
        &mut after_round,
    );
    progress.finish_and_clear();
    if let Some(error) = write_error {
        return Err(error);
    }
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
    let mut notes = Vec::new();
    if let Some(note) = swept {
        notes.push(format!("before this run, the orphan sweep {note}"));
    }
    let mut soak_failed = false;
    if args.thorough {
        for Prepared { env, .. } in &prepared {
            let (note, verdict) = soak_environment(env.as_ref(), &plan, &args.output_dir)
                .with_context(|| format!("the soak of {}", env.name()))?;
            soak_failed |= verdict != SoakVerdict::Steady;
            eprintln!("isobench: {}: {note}", env.name());
            if let Some(result) = artifact
                .environments
                .iter_mut()
                .find(|result| result.label.name == env.name())
            {
                result.label.notes.push(note);
            }
        }
    }
    if !notes.is_empty() || args.thorough {
        for result in &mut artifact.environments {
            result.label.notes.extend(notes.iter().cloned());
        }
        cleanup::enter_phase(Phase::Writing);
        crate::cli::write_outputs(&mut artifact, &args.output_dir, &settings)?;
    }
    anyhow::ensure!(
        !artifact.environments.is_empty(),
        "no environment completed a round: {}",
        crate::render::unavailable_line(&artifact.unavailable)
    );
    Ok(Finished {
        artifact,
        soak_failed,
    })
}

/// Shows the protocol's phases on the progress bar.
struct Progress<'a>(&'a ProgressBar);

impl Observer for Progress<'_> {
    fn phase(&mut self, round: u32, env: &str, phase: RoundPhase<'_>) {
        // The run's phases, for interrupts and fault injection: environments pause once they
        // have started something, a scenario where its load begins.
        match phase {
            RoundPhase::Start => cleanup::record_phase(Phase::Starting),
            RoundPhase::Scenario(_) => cleanup::enter_phase(Phase::Loading),
            _ => {}
        }
        self.0
            .set_message(format!("round {}: {env} {phase}", round + 1));
    }
}

/// `--thorough`'s long soak of a fresh instance of `env` ([`crate::measure::soak`]): its
/// samples go to `soak-<env>.json` in `output_dir`; returns the environment's note and the
/// verdict.
fn soak_environment(
    env: &dyn Environment,
    plan: &Plan,
    output_dir: &std::path::Path,
) -> anyhow::Result<(String, SoakVerdict)> {
    let soak_plan = SoakPlan::long(plan.budget.generator_cpus.clone());
    let result = soak::soak_fresh_instance(env, &soak_plan)?;
    cleanup::enter_phase(Phase::Writing);
    let path = output_dir.join(format!("soak-{}.json", env.name()));
    let json = serde_json::to_vec_pretty(&result).context("serializing the soak")?;
    crate::render::write::atomic(&path, &json)?;
    let verdict = result.verdict();
    let words = match &verdict {
        SoakVerdict::Steady => "no growth beyond noise".to_owned(),
        SoakVerdict::Failed(problems) => format!("soak FAILED: {}", problems.join("; ")),
    };
    let note = format!(
        "soak of {:?} at saturation ({}): {}; {words}",
        soak_plan.length,
        path.display(),
        result.describe()
    );
    Ok((note, verdict))
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
        let (_, coverage) = crate::analysis::stats::order_statistic_rank(plan.repetitions as usize);
        assert!(coverage >= 0.95, "{coverage}");
        let n = plan.repetitions as usize;
        assert!(crate::analysis::stats::ratio_ranks(n, n).2 >= 0.95);
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

    /// The sweep bisects against the report's own p99 limit; it runs only with `health`,
    /// whose connections its steps take (`measure::tests`).
    #[test]
    fn the_sweep_reads_against_the_reports_limit() {
        let sweep = plan(&[]).unwrap().sweep.unwrap();
        assert_eq!(sweep.p99_limit_ms, 10.0);
        let sweep = plan(&["--p99-under", "2500us"]).unwrap().sweep.unwrap();
        assert_eq!(sweep.p99_limit_ms, 2.5);
        assert!(plan(&["--no-sweep"]).unwrap().sweep.is_none());
        assert!(plan(&["--scenarios", "mixed"]).unwrap().sweep.is_none());
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

#[cfg(test)]
mod scenario_tests {
    use super::*;
    use crate::subject::{ImageConfig, ImageSubject};

    fn foreign() -> Subject {
        Subject::Image(ImageSubject {
            image: ImageConfig {
                reference: "flask:1".into(),
                id: "sha256:00".into(),
                size_bytes: 1,
                entrypoint: vec![],
                cmd: vec!["gunicorn".into()],
                env: vec![],
                workdir: String::new(),
                user: String::new(),
                exposed_tcp_ports: vec![5000],
            },
            port: 5000,
            health_path: "/healthz".into(),
        })
    }

    #[test]
    fn foreign_services_default_to_health_and_fixed_rate_on_their_health_path() {
        let specs = scenarios_for(&[], &foreign(), 50, 100.0).unwrap().scenarios;
        let names: Vec<&str> = specs.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["health", "fixed-rate"]);
        assert!(specs.iter().all(|s| s.paths[0].path == "/healthz"));
        assert_eq!(specs[1].rate_rps, Some(100.0));
        let own = scenarios_for(&[], &Subject::Own, 50, 100.0)
            .unwrap()
            .scenarios;
        assert_eq!(own.len(), 3);
        assert_eq!(own[0].paths[0].path, "/health");
    }

    #[test]
    fn mixed_and_unknown_names_are_errors_for_foreign_services() {
        let error = scenarios_for(&["mixed".into()], &foreign(), 50, 1.0).unwrap_err();
        assert!(
            error.to_string().contains("give a scenario file"),
            "{error}"
        );
        let error = scenarios_for(&["soak".into()], &Subject::Own, 50, 1.0).unwrap_err();
        assert!(
            error.to_string().contains("unknown scenario \"soak\""),
            "{error}"
        );
    }

    #[test]
    fn a_toml_value_is_read_as_a_scenario_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("s.toml");
        std::fs::write(
            &file,
            "[[scenario]]\nname = \"x\"\nloop = \"closed\"\npaths = [\"/\"]\nbogus = 1\n",
        )
        .unwrap();
        let error = scenarios_for(&[file.display().to_string()], &foreign(), 50, 1.0).unwrap_err();
        assert!(
            error.to_string().contains("unknown field `bogus`"),
            "{error}"
        );
    }

    #[test]
    fn a_files_data_dir_is_for_a_foreign_service_only() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("s.toml");
        std::fs::write(
            &file,
            "data_dir = \"/srv/files\"\n[[scenario]]\nname = \"x\"\nloop = \"closed\"\npaths = [\"/\"]\n",
        )
        .unwrap();
        let names = [file.display().to_string()];
        let read = scenarios_for(&names, &foreign(), 50, 1.0).unwrap();
        assert_eq!(read.data_dir.as_deref(), Some("/srv/files"));
        let error = scenarios_for(&names, &Subject::Own, 50, 1.0).unwrap_err();
        assert!(
            error
                .to_string()
                .contains("is for a service of --image or --binary"),
            "{error}"
        );
    }
}

//! Options shared by `run` and `compare` that shape the report and gate on it: threshold
//! checks (`--check`, `--check-file`) and the p99 limit of the latency-under-load capacity
//! (`--p99-under`).

use std::path::PathBuf;
use std::time::Duration;

use crate::analysis::summarize;
use crate::artifact::Artifact;
use crate::gate::{self, Check};

/// Report and gate options.
#[derive(Debug, Clone, clap::Args)]
pub struct GateArgs {
    /// A threshold the run must meet, k6-style, e.g. `vm startup < 2s` or `container/native
    /// throughput >= 0.3` (ENV or ENV/ENV, a metric, <, <=, >, >=, a number with an optional
    /// unit). Repeatable. Exit code 4 when one fails.
    #[arg(long = "check", value_name = "CHECK", value_parser = gate::parse)]
    pub checks: Vec<Check>,
    /// A file of checks, one per line (blank lines and `#` comments skipped). Repeatable.
    #[arg(long, value_name = "FILE")]
    pub check_file: Vec<PathBuf>,
    /// The p99 latency the latency-under-load capacity is read against: the report gives each
    /// environment's highest swept rate with p99 under it.
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration, default_value = "10ms")]
    pub p99_under: Duration,
}

/// What `run` and `compare` apply to an artifact before writing and printing it.
#[derive(Debug, Clone, Default)]
pub struct ReportSettings {
    /// Baseline and p99 limit of the summary.
    pub summary: summarize::Options,
    /// Checks to evaluate.
    pub checks: Vec<Check>,
}

impl GateArgs {
    /// Reads the check files and resolves the options; `baseline` as given by the command.
    pub fn settings(&self, baseline: Option<String>) -> anyhow::Result<ReportSettings> {
        let mut checks = self.checks.clone();
        for path in &self.check_file {
            checks.extend(gate::parse_file(path)?);
        }
        anyhow::ensure!(
            !self.p99_under.is_zero(),
            "--p99-under must be a positive duration, e.g. 10ms"
        );
        Ok(ReportSettings {
            summary: summarize::Options {
                baseline,
                p99_limit_ms: Some(self.p99_under.as_secs_f64() * 1e3),
            },
            checks,
        })
    }
}

impl ReportSettings {
    /// Summarizes the artifact and records every check's outcome in it.
    pub fn apply(&self, artifact: &mut Artifact) {
        let summary = summarize::summarize_with(artifact, &self.summary);
        artifact.checks = gate::evaluate_all(artifact, &summary, &self.checks);
        artifact.summary = Some(summary);
    }
}

/// Prints the checks' outcomes (stdout) and returns the exit code they call for: 0, or
/// [`gate::EXIT_CHECK_FAILED`] when one failed.
pub fn report_checks(artifact: &Artifact) -> u8 {
    if artifact.checks.is_empty() {
        return 0;
    }
    println!("\nChecks:");
    for line in gate::outcome_lines(&artifact.checks) {
        println!("  {}", crate::render::sanitize_terminal(&line));
    }
    let failed = artifact
        .checks
        .iter()
        .filter(|c| c.status == crate::artifact::CheckStatus::Fail)
        .count();
    let unsure = artifact
        .checks
        .iter()
        .filter(|c| c.status == crate::artifact::CheckStatus::Inconclusive)
        .count();
    if unsure > 0 {
        eprintln!(
            "isobench: {unsure} check(s) passed on figures that cannot be relied on (UNSURE above)"
        );
    }
    if failed > 0 {
        eprintln!(
            "isobench: {failed} of {} check(s) failed (exit code {})",
            artifact.checks.len(),
            gate::EXIT_CHECK_FAILED
        );
        gate::EXIT_CHECK_FAILED
    } else {
        0
    }
}

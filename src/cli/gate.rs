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
    /// What a check that holds on figures that cannot be relied on (UNSURE: an interval
    /// covering less than 95%, or a figure the load generator limited) does to the exit code:
    /// `fail` exits 5, `pass` exits 0 with a warning. Default: `fail` when `CI=true`, else
    /// `pass`.
    #[arg(long, value_enum, value_name = "fail|pass")]
    pub unsure: Option<UnsurePolicy>,
}

/// What an UNSURE check does to the exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum UnsurePolicy {
    /// Exit [`gate::EXIT_CHECK_UNSURE`].
    Fail,
    /// Exit 0, with a warning on stderr (the policy off CI).
    #[default]
    Pass,
}

impl UnsurePolicy {
    /// `given`, else `fail` on CI (`CI=true`, as GitHub Actions and most CI systems set it)
    /// and `pass` elsewhere.
    pub fn resolve(given: Option<Self>) -> Self {
        given.unwrap_or_else(|| {
            if std::env::var("CI").is_ok_and(|v| v == "true") {
                Self::Fail
            } else {
                Self::Pass
            }
        })
    }
}

/// What `run` and `compare` apply to an artifact before writing and printing it.
#[derive(Debug, Clone, Default)]
pub struct ReportSettings {
    /// Baseline and p99 limit of the summary.
    pub summary: summarize::Options,
    /// Checks to evaluate.
    pub checks: Vec<Check>,
    /// What an UNSURE outcome does to the exit code.
    pub unsure: UnsurePolicy,
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
            unsure: UnsurePolicy::resolve(self.unsure),
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

/// Prints the checks' outcomes (stdout) and returns the exit code they call for: 0,
/// [`gate::EXIT_CHECK_FAILED`] when one failed, else [`gate::EXIT_CHECK_UNSURE`] when one was
/// UNSURE and `unsure` says so.
pub fn report_checks(artifact: &Artifact, unsure: UnsurePolicy) -> u8 {
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
    let unsure_count = artifact
        .checks
        .iter()
        .filter(|c| c.status == crate::artifact::CheckStatus::Inconclusive)
        .count();
    if failed > 0 {
        eprintln!(
            "isobench: {failed} of {} check(s) failed (exit code {})",
            artifact.checks.len(),
            gate::EXIT_CHECK_FAILED
        );
        return gate::EXIT_CHECK_FAILED;
    }
    if unsure_count == 0 {
        return 0;
    }
    match unsure {
        UnsurePolicy::Fail => {
            eprintln!(
                "isobench: {unsure_count} check(s) held on figures that cannot be relied on \
                 (UNSURE above; exit code {}, --unsure pass to accept them)",
                gate::EXIT_CHECK_UNSURE
            );
            gate::EXIT_CHECK_UNSURE
        }
        UnsurePolicy::Pass => {
            eprintln!(
                "isobench: {unsure_count} check(s) held on figures that cannot be relied on \
                 (UNSURE above; accepted: --unsure pass)"
            );
            0
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::artifact::{CheckOutcome, CheckStatus, fixture};

    fn with_checks(statuses: &[CheckStatus]) -> Artifact {
        let mut artifact = fixture::artifact();
        artifact.checks = statuses
            .iter()
            .map(|&status| CheckOutcome {
                check: "vm startup < 2s".into(),
                metric: Some("startup".into()),
                status,
                value: None,
                threshold: 2000.0,
                unit: "ms".into(),
                excess_pct: None,
                notes: Vec::new(),
            })
            .collect();
        artifact
    }

    /// UNSURE has its own exit code under `--unsure fail` and none under `pass`; a failed
    /// check wins over an UNSURE one either way.
    #[test]
    fn unsure_exits_by_policy() {
        use CheckStatus::{Fail, Inconclusive, Pass};
        let unsure = with_checks(&[Pass, Inconclusive]);
        assert_eq!(
            report_checks(&unsure, UnsurePolicy::Fail),
            gate::EXIT_CHECK_UNSURE
        );
        assert_eq!(report_checks(&unsure, UnsurePolicy::Pass), 0);
        let failed = with_checks(&[Inconclusive, Fail]);
        for policy in [UnsurePolicy::Fail, UnsurePolicy::Pass] {
            assert_eq!(report_checks(&failed, policy), gate::EXIT_CHECK_FAILED);
        }
        assert_eq!(report_checks(&with_checks(&[Pass]), UnsurePolicy::Fail), 0);
        assert_eq!(
            UnsurePolicy::resolve(Some(UnsurePolicy::Fail)),
            UnsurePolicy::Fail
        );
    }
}

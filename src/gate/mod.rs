//! Threshold checks, k6-style: `--check 'vm startup < 2s'`, `--check 'container/native
//! throughput >= 0.3'`, repeatable or one per line in a file, evaluated against a run's
//! summary. `run` and `compare` exit with [`EXIT_CHECK_FAILED`] when one fails, and with
//! [`EXIT_CHECK_UNSURE`] when one holds only on figures that cannot be relied on and
//! `--unsure fail` (the default on CI).
//!
//! Grammar (whitespace between the parts, the metric may hold spaces):
//!
//! ```text
//! check     = subject metric operator threshold
//! subject   = ENV | ENV "/" ENV          a figure, or the ratio of two environments' medians
//! metric    = startup | memory | throughput | response time          (the headline's rows)
//!           | idle memory | peak memory | image size
//!           | (p50 | p99 | p99.9) [latency] | mean response time | errors | CPU per 1k requests
//!           followed by " (SCENARIO)" for a scenario's row, e.g. "p99 latency (mixed)"
//! operator  = "<" | "<=" | ">" | ">="    (also ≤ ≥)
//! threshold = NUMBER [UNIT]              time: ns us µs ms s; memory: B KiB MiB GiB;
//!                                        rate: req/s rps; ratio: x ×; none = the row's unit
//! ```
//!
//! A check compares the **median**. It passes only when the whole interval meets the
//! threshold on a clean cell; a median that meets it on a noisy cell, with an interval
//! crossing the threshold, or on a cell the load generator (not the service) limited — the
//! per-cell limits the measurement protocol records in `Estimate::limits` — is
//! [`CheckStatus::Inconclusive`] and says why — never a silent pass. A missing figure fails.

mod evaluate;
mod parse;

pub use evaluate::{evaluate, evaluate_all};
pub use parse::{Check, Family, Operator, ParseError, parse, parse_file, parse_lines};

use crate::artifact::{CheckOutcome, CheckStatus};
use crate::format::number;

/// Exit code of `run` and `compare` when a check failed (2 is any other error).
pub const EXIT_CHECK_FAILED: u8 = 4;

/// Exit code when no check failed but one was UNSURE and `--unsure fail` (the default on CI).
pub const EXIT_CHECK_UNSURE: u8 = 5;

/// One line per outcome: `FAIL  vm startup < 2s: 2.31 s, 15.5% over [notes]`.
pub fn outcome_lines(outcomes: &[CheckOutcome]) -> Vec<String> {
    outcomes
        .iter()
        .map(|outcome| {
            let status = match outcome.status {
                CheckStatus::Pass => "PASS",
                CheckStatus::Inconclusive => "UNSURE",
                CheckStatus::Fail => "FAIL",
            };
            let mut line = format!("{status:<6} {}", outcome.check);
            if let Some(value) = &outcome.value {
                let unit = if outcome.unit == "×" {
                    "×".to_owned()
                } else {
                    format!(" {}", outcome.unit)
                };
                line.push_str(&format!(
                    ": {}{unit} [{}, {}]",
                    number(value.median),
                    number(value.ci_low),
                    number(value.ci_high)
                ));
                if let Some(excess) = outcome.excess_pct {
                    if excess > 0.0 {
                        line.push_str(&format!(", {excess:.1}% past the threshold"));
                    } else {
                        line.push_str(&format!(", {:.1}% headroom", -excess));
                    }
                }
            }
            if let Some(metric) = &outcome.metric {
                line.push_str(&format!(" ({metric})"));
            }
            for note in &outcome.notes {
                line.push_str(&format!("; {note}"));
            }
            line
        })
        .collect()
}

/// Whether any check failed.
pub fn any_failed(outcomes: &[CheckOutcome]) -> bool {
    outcomes.iter().any(|o| o.status == CheckStatus::Fail)
}

#[cfg(test)]
mod tests {
    use super::parse::threshold_in;
    use super::*;
    use crate::analysis::summarize::summarize;
    use crate::artifact::fixture;

    /// `check` against the fixture at a default run's 7 rounds.
    fn run(check: &str) -> CheckOutcome {
        let artifact = fixture::with_rounds(fixture::artifact(), 7);
        let summary = summarize(&artifact);
        evaluate(&artifact, &summary, &parse(check).unwrap())
    }

    #[test]
    fn the_briefs_examples_parse() {
        let c = parse("container/native throughput >= 0.3").unwrap();
        assert_eq!(c.environment, "container");
        assert_eq!(c.over.as_deref(), Some("native"));
        assert_eq!(c.metric, "throughput");
        assert_eq!(c.operator, Operator::GreaterOrEqual);
        assert_eq!(c.threshold, 0.3);
        let c = parse("vm startup < 2s").unwrap();
        assert_eq!((c.environment.as_str(), c.over.as_deref()), ("vm", None));
        assert_eq!(
            (c.operator, c.threshold, c.unit.as_str()),
            (Operator::Less, 2.0, "s")
        );
        let c = parse("  vm   p99 (fixed-rate) <= 500 us ").unwrap();
        assert_eq!(c.metric, "p99 latency (fixed-rate)");
        assert_eq!(c.unit, "us");
        assert_eq!(
            parse("vm/native startup ≤ 100x").unwrap().operator,
            Operator::LessOrEqual
        );
    }

    #[test]
    fn parse_errors_name_the_problem() {
        let message = |text: &str| parse(text).unwrap_err().to_string();
        assert!(message("vm startup 2s").contains("no comparison"));
        assert!(message("vm startup == 2s").contains("`=` is not supported"));
        assert!(message("< 2s").contains("nothing before the comparison"));
        assert!(message("vm boot time < 2s").contains("unknown metric `boot time`"));
        assert!(message("vm < 2s").contains("unknown metric ``"));
        assert!(message("vm startup <").contains("no threshold"));
        assert!(message("vm startup < fast").contains("`fast` is not a number"));
        assert!(message("vm startup < 2 fortnights").contains("unknown unit `fortnights`"));
        assert_eq!(
            message("vm startup < 2 MiB"),
            "check `vm startup < 2 MiB`: startup is a time, but `MiB` is a unit of memory"
        );
        assert!(message("vm/native startup < 2s").contains("is a ratio"));
        assert!(message("vm startup < 2x").contains("`x` means a ratio"));
        assert!(message("vm/ startup < 2").contains("`vm/` is not an environment"));
        let err = parse_lines("checks.txt", "# gate\n\nvm startup < 2s\nvm startup 2s\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("checks.txt, line 4: check `vm startup 2s`"),
            "{err}"
        );
    }

    #[test]
    fn a_check_file_skips_comments_and_blanks() {
        let checks = parse_lines(
            "f",
            "# c\n\nvm startup < 2s\n container/native throughput >= 0.3\n",
        )
        .unwrap();
        assert_eq!(checks.len(), 2);
    }

    #[test]
    fn ratio_check_passes_on_the_fixture() {
        // container/native throughput: 0.900× [0.873, 0.929], clean cells.
        let outcome = run("container/native throughput >= 0.3");
        assert_eq!(outcome.status, CheckStatus::Pass, "{outcome:?}");
        assert_eq!(outcome.metric.as_deref(), Some("throughput (health)"));
        assert!((outcome.value.unwrap().median - 0.9).abs() < 1e-9);
        // headroom: (0.3 − 0.9) / 0.3 = −200%
        assert!((outcome.excess_pct.unwrap() + 200.0).abs() < 1e-9);
    }

    #[test]
    fn an_interval_below_95_percent_coverage_is_unsure() {
        // Three rounds: the ratio's interval covers about 56%, not 95%.
        let artifact = fixture::artifact();
        let summary = summarize(&artifact);
        let check = parse("container/native throughput >= 0.3").unwrap();
        let outcome = evaluate(&artifact, &summary, &check);
        assert_eq!(outcome.status, CheckStatus::Inconclusive, "{outcome:?}");
        assert!(
            outcome.notes.iter().any(|n| n.contains("not 95% (n = 3")),
            "{:?}",
            outcome.notes
        );
    }

    #[test]
    fn failing_check_says_by_how_much() {
        // vm startup median 1000 ms against 0.5 s: 100% past.
        let outcome = run("vm startup < 0.5s");
        assert_eq!(outcome.status, CheckStatus::Fail);
        assert_eq!(outcome.threshold, 500.0);
        assert_eq!(outcome.unit, "ms");
        assert!((outcome.excess_pct.unwrap() - 100.0).abs() < 1e-9);
        let line = &outcome_lines(&[outcome])[0];
        assert!(
            line.starts_with(
                "FAIL   vm startup < 0.5s: 1000 ms [900, 1100], 100.0% past the threshold"
            ),
            "{line}"
        );
    }

    #[test]
    fn a_passing_median_on_a_shaky_cell_is_inconclusive() {
        // vm startup 1000 ms [900, 1100]: the median passes 1050 ms, the interval crosses it.
        let outcome = run("vm startup < 1050ms");
        assert_eq!(outcome.status, CheckStatus::Inconclusive);
        assert!(
            outcome.notes[0].contains("crosses the threshold"),
            "{:?}",
            outcome.notes
        );
        // vm p99 (health) is noisy: 5 ms [3, 7].
        let outcome = run("vm p99 latency (health) < 20ms");
        assert_eq!(outcome.status, CheckStatus::Inconclusive);
        assert!(
            outcome.notes.iter().any(|n| n.starts_with("noisy")),
            "{:?}",
            outcome.notes
        );
    }

    #[test]
    fn a_generator_limited_cell_says_so() {
        let mut artifact = fixture::artifact();
        for round in &mut artifact.environments[1].rounds {
            round.scenarios[0].load.generator.bottleneck = true;
        }
        let summary = summarize(&artifact);
        let outcome = evaluate(
            &artifact,
            &summary,
            &parse("container throughput > 100 rps").unwrap(),
        );
        assert_eq!(outcome.status, CheckStatus::Inconclusive);
        assert!(
            outcome
                .notes
                .iter()
                .any(|n| n.contains("generator was saturated in 3 of 3")),
            "{:?}",
            outcome.notes
        );
    }

    #[test]
    fn missing_figures_fail_with_a_reason() {
        let outcome = run("gvisor startup < 2s");
        assert_eq!(outcome.status, CheckStatus::Fail);
        assert!(
            outcome.notes[0].starts_with("gvisor was not measured (have: native, container, vm)")
        );
        let outcome = run("native image size < 1 MiB");
        assert_eq!(outcome.status, CheckStatus::Fail);
        let outcome = run("vm p99 < 1s");
        assert!(
            outcome.notes[0].contains("name one: p99 latency (health), p99 latency (fixed-rate)"),
            "{:?}",
            outcome.notes
        );
    }

    /// An open loop's throughput is the rate it was asked for: a check on it would pass or
    /// fail on the run's own settings, so it is refused, saying why.
    #[test]
    fn a_check_on_a_set_point_is_refused() {
        let outcome = run("native throughput (fixed-rate) > 100 rps");
        assert_eq!(outcome.status, CheckStatus::Fail);
        assert!(
            outcome.notes[0].contains("is a set-point"),
            "{:?}",
            outcome.notes
        );
        let outcome = run("container/native throughput (fixed-rate) > 0.5");
        assert!(
            outcome.notes[0].starts_with("refused"),
            "{:?}",
            outcome.notes
        );
    }

    #[test]
    fn units_convert_to_the_rows_unit() {
        let check = parse("vm CPU per 1k requests (health) < 60 ms").unwrap();
        assert!((threshold_in(&check, "s") - 0.06).abs() < 1e-12);
        let outcome = run("vm CPU per 1k requests (health) < 60 ms");
        assert_eq!(outcome.status, CheckStatus::Pass, "{outcome:?}");
        assert_eq!(
            run("vm CPU per 1k requests (health) < 40 ms").status,
            CheckStatus::Fail
        );
        let check = parse("vm memory < 1 GiB").unwrap();
        assert_eq!(threshold_in(&check, "MiB"), 1024.0);
        assert_eq!(run("vm memory < 64 MiB").status, CheckStatus::Pass);
        assert_eq!(run("vm memory < 60 MiB").status, CheckStatus::Fail);
    }
}

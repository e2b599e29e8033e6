//! The headline: the seed report's four questions — startup, memory, throughput, response
//! time — answered in one line per environment, each as a value and "× native" with its
//! interval, in words a newcomer reads in ten seconds. Every exporter prints it first, in the
//! same order, before the full table.
//!
//! The headline only *picks* rows of the [`Summary`]; it computes no statistic of its own, so
//! it can never disagree with the table below it.

use crate::analysis::stats;
use crate::artifact::{Artifact, Estimate, Summary, SummaryRow};
use crate::format::number;

/// One of the four questions and its answer per environment.
#[derive(Debug, Clone, PartialEq)]
pub struct Question {
    /// Short title: `Startup`, `Memory`, `Throughput`, `Response time`.
    pub title: &'static str,
    /// What exactly was measured, e.g. `idle, right after startup`.
    pub measured: String,
    /// The summary row the answer comes from.
    pub metric: String,
    /// One answer per environment that has the figure, in the artifact's order.
    pub answers: Vec<Answer>,
}

/// One environment's answer to one question.
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    /// The environment's column title (its name, with the accelerator for a VM).
    pub environment: String,
    /// The environment's name as in the summary (no accelerator).
    pub name: String,
    /// The value, `12.3 ms`.
    pub value: String,
    /// The estimate behind the value (its interval's coverage and limits, for the marks).
    pub estimate: Estimate,
    /// The ratio to the baseline with its interval; `None` for the baseline itself or when
    /// there is no ratio.
    pub ratio: Option<Estimate>,
    /// The answer in words: `slower to start`, `about the same`, `baseline`.
    pub words: String,
    /// Whether this environment did better than the baseline (`Some(true)`), worse
    /// (`Some(false)`), or neither can be told (`None`, also for the baseline itself).
    pub better: Option<bool>,
}

/// Which way a ratio points, read from its interval.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// The whole interval is above 1.
    Higher,
    /// The whole interval is below 1.
    Lower,
    /// The interval holds 1: no difference can be told.
    Unclear,
}

/// Where the ratio's interval lies relative to 1.
pub fn direction(ratio: &Estimate) -> Direction {
    if ratio.ci_low > 1.0 {
        Direction::Higher
    } else if ratio.ci_high < 1.0 {
        Direction::Lower
    } else {
        Direction::Unclear
    }
}

/// What every environment's memory figure is, for the headline's memory row.
const MEMORY_MEASURED: &str =
    "host memory the instance holds: PSS summed over every host process it needs";

/// The four questions answered from the artifact's summary; questions whose row is missing
/// (a `bench` artifact has no startup) are left out.
pub fn headline(artifact: &Artifact, summary: &Summary) -> Vec<Question> {
    let specs: [(&'static str, Option<Picked<'_>>, [&str; 2]); 4] = [
        (
            "Startup",
            row(summary, "startup").map(|r| {
                (
                    r,
                    "from the request to start to the first 200 on /health".into(),
                )
            }),
            ["slower to start", "faster to start"],
        ),
        (
            "Memory",
            row(summary, "idle memory")
                .map(|r| (r, format!("{MEMORY_MEASURED}, idle right after startup")))
                .or_else(|| {
                    row(summary, "peak memory")
                        .map(|r| (r, format!("{MEMORY_MEASURED}, highest seen under load")))
                }),
            ["uses more memory", "uses less memory"],
        ),
        (
            "Throughput",
            throughput_row(summary),
            ["serves more requests", "serves fewer requests"],
        ),
        (
            "Response time",
            response_row(artifact, summary),
            ["answers slower", "answers faster"],
        ),
    ];
    let baseline = summary.baseline.as_deref();
    specs
        .into_iter()
        .filter_map(|(title, found, [higher, lower])| {
            let (row, measured) = found?;
            let answers = artifact
                .environments
                .iter()
                .filter_map(|env| {
                    let name = env.label.name.as_str();
                    let estimate = row.estimates.get(name)?;
                    let ratio = row.ratio_to_baseline.get(name);
                    let reservation = reservation(estimate, ratio);
                    let words = if Some(name) == baseline {
                        "baseline".to_owned()
                    } else if let Some(reservation) = &reservation {
                        format!("no verdict: {reservation}")
                    } else {
                        match ratio.map(direction) {
                            Some(Direction::Higher) => higher.to_owned(),
                            Some(Direction::Lower) => lower.to_owned(),
                            Some(Direction::Unclear) => "no clear difference".to_owned(),
                            None => "no ratio".to_owned(),
                        }
                    };
                    let better = if Some(name) == baseline || reservation.is_some() {
                        None
                    } else {
                        match ratio.map(direction) {
                            Some(Direction::Higher) => Some(row.higher_is_better),
                            Some(Direction::Lower) => Some(!row.higher_is_better),
                            _ => None,
                        }
                    };
                    Some(Answer {
                        better,
                        environment: crate::format::env_title(&env.label),
                        name: name.to_owned(),
                        value: value_text(estimate, &row.unit),
                        estimate: estimate.clone(),
                        ratio: ratio.cloned(),
                        words: if estimate.n < 2 && estimate.coverage < 1.0 {
                            format!("{words} (one sample: spread unknown)")
                        } else if estimate.noisy || ratio.is_some_and(|r| r.noisy) {
                            format!("{words} (noisy)")
                        } else {
                            words
                        },
                    })
                })
                .collect::<Vec<_>>();
            (!answers.is_empty()).then(|| Question {
                title,
                measured,
                metric: row.metric.clone(),
                answers,
            })
        })
        .collect()
}

/// Why no better or worse can be said of a cell: its interval (or its ratio's) covers less
/// than 95%, or the load generator, an unkept rate or failed requests limited a figure.
/// (A generator saturated beside a service that used all of its CPU leaves the figure the
/// service's: no reservation. See [`withheld_because`] for the steadiness marks.)
fn reservation(estimate: &Estimate, ratio: Option<&Estimate>) -> Option<String> {
    use crate::artifact::LimitKind;
    let mut reasons = Vec::new();
    let coverage = std::iter::once(estimate)
        .chain(ratio)
        .filter(|e| e.n > 1)
        .map(|e| e.coverage)
        .fold(1.0_f64, f64::min);
    if coverage < stats::CONFIDENCE {
        reasons.push(format!("the interval covers {:.0}%", coverage * 100.0));
    }
    let mut kinds: Vec<LimitKind> = std::iter::once(estimate)
        .chain(ratio)
        .flat_map(|e| e.limits.iter().map(|l| l.kind))
        .collect();
    kinds.sort();
    kinds.dedup();
    reasons.extend(
        kinds
            .into_iter()
            .filter_map(withheld_because)
            .map(str::to_owned),
    );
    (!reasons.is_empty()).then(|| reasons.join(", "))
}

/// Why a limit of `kind` withholds a better or worse, in words; `None` when it does not. The
/// steadiness marks do not: an unsteady window is still the service's, in that environment,
/// on this machine, and the interval over rounds already holds the spread between windows;
/// the mark tells the reader which windows to look into.
pub fn withheld_because(kind: crate::artifact::LimitKind) -> Option<&'static str> {
    use crate::artifact::LimitKind;
    match kind {
        LimitKind::GeneratorSaturated => Some("the load generator was saturated"),
        LimitKind::RateNotKept => Some("the rate was not kept"),
        LimitKind::Errors => Some("requests failed"),
        LimitKind::BothSaturated
        | LimitKind::WarmingUp
        | LimitKind::Stalled
        | LimitKind::Drifted => None,
    }
}

fn value_text(estimate: &Estimate, unit: &str) -> String {
    format!("{} {unit}", number(estimate.median))
}

/// A summary row picked for a question, and what it measured in words.
type Picked<'a> = (&'a SummaryRow, String);

fn row<'a>(summary: &'a Summary, metric: &str) -> Option<&'a SummaryRow> {
    summary.rows.iter().find(|r| r.metric == metric)
}

/// The closed-loop ceiling: `health` when run (it is the ceiling scenario), else the first
/// scenario's throughput.
fn throughput_row(summary: &Summary) -> Option<(&SummaryRow, String)> {
    row(summary, "throughput (health)")
        .map(|r| (r, "most requests per second, closed loop on /health".into()))
        .or_else(|| {
            let r = summary
                .rows
                .iter()
                .find(|r| r.metric.starts_with("throughput ("))?;
            Some((r, r.metric.clone()))
        })
}

/// p99 at a fixed rate when an open-loop scenario ran (the latency a user sees at a given
/// load, coordinated omission corrected), else the mean response time of the first scenario
/// (the seed's figure).
fn response_row<'a>(artifact: &Artifact, summary: &'a Summary) -> Option<(&'a SummaryRow, String)> {
    let open_loop = crate::analysis::summarize::scenario_names(artifact)
        .into_iter()
        .find_map(|scenario| {
            let run = artifact
                .environments
                .iter()
                .flat_map(|e| &e.rounds)
                .flat_map(|r| &r.scenarios)
                .find(|s| s.scenario == scenario && s.load.open_loop)?;
            Some((scenario, run.load.requested_rate_rps))
        });
    if let Some((scenario, rate)) = open_loop
        && let Some(r) = row(summary, &format!("p99 latency ({scenario})"))
    {
        let rate = rate.map_or_else(String::new, |r| format!(" at {} req/s", number(r)));
        return Some((r, format!("p99{rate}, open loop ({scenario})")));
    }
    let r = summary
        .rows
        .iter()
        .find(|r| r.metric.starts_with("mean response time ("))?;
    Some((r, r.metric.clone()))
}

/// `health` from `throughput (health)`.
pub fn scenario_of(metric: &str) -> &str {
    metric
        .rsplit_once(" (")
        .and_then(|(_, rest)| rest.strip_suffix(')'))
        .unwrap_or("")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::summarize::summarize;
    use crate::artifact::fixture;

    #[test]
    fn four_questions_in_order_with_ratios_and_words() {
        // Failed requests take a cell's verdict away (`no_verdict_…` below); here, none.
        let artifact = fixture::without_errors(fixture::with_rounds(fixture::artifact(), 7));
        let summary = summarize(&artifact);
        let questions = headline(&artifact, &summary);
        let titles: Vec<_> = questions.iter().map(|q| q.title).collect();
        assert_eq!(titles, ["Startup", "Memory", "Throughput", "Response time"]);
        let startup = &questions[0];
        assert_eq!(startup.answers.len(), 3);
        assert_eq!(startup.answers[0].words, "baseline");
        assert_eq!(startup.answers[0].ratio, None);
        assert_eq!(startup.answers[1].value, "100 ms");
        let ratio = startup.answers[1].ratio.as_ref().unwrap();
        let three_digits = |x: f64| crate::format::number(x);
        assert_eq!(
            [ratio.median, ratio.ci_low, ratio.ci_high].map(three_digits),
            ["9.09", "7.92", "11.0"]
        );
        assert_eq!(startup.answers[1].words, "slower to start (noisy)");
        assert_eq!(startup.answers[1].better, Some(false));
        assert_eq!(startup.answers[2].environment, "vm (TCG, emulated)");
        // Throughput: container 0.90× [0.873, 0.929], entirely below 1.
        assert_eq!(questions[2].metric, "throughput (health)");
        assert_eq!(questions[2].answers[1].words, "serves fewer requests");
        assert_eq!(questions[2].answers[1].better, Some(false));
        // Response time: the open-loop scenario's p99 at its requested rate.
        assert_eq!(questions[3].metric, "p99 latency (fixed-rate)");
        assert!(
            questions[3].measured.contains("at 1000 req/s"),
            "{:?}",
            questions[3]
        );
    }

    #[test]
    fn an_interval_holding_one_is_no_clear_difference() {
        let ratio =
            crate::analysis::stats::ratio_estimate(&[9.0, 10.0, 11.0], &[10.0, 10.5, 9.5]).unwrap();
        assert_eq!(direction(&ratio), Direction::Unclear);
        let mut artifact = fixture::with_rounds(fixture::artifact(), 7);
        // Make the container's startup equal native's, round for round.
        let native: Vec<_> = artifact.environments[0]
            .rounds
            .iter()
            .map(|r| r.startup_ms)
            .collect();
        for (round, startup) in artifact.environments[1].rounds.iter_mut().zip(native) {
            round.startup_ms = startup;
        }
        let summary = summarize(&artifact);
        let questions = headline(&artifact, &summary);
        assert!(
            questions[0].answers[1]
                .words
                .starts_with("no clear difference"),
            "{:?}",
            questions[0].answers[1]
        );
    }

    #[test]
    fn bench_artifacts_answer_what_they_can() {
        let artifact = fixture::bench_pair();
        let summary = summarize(&artifact);
        let questions = headline(&artifact, &summary);
        let titles: Vec<_> = questions.iter().map(|q| q.title).collect();
        assert_eq!(titles, ["Throughput", "Response time"]);
        assert_eq!(questions[1].metric, "mean response time (bench)");
        // The bench fixture's second service failed requests: no verdict on it.
        assert_eq!(
            questions[0].answers[1].words,
            "no verdict: requests failed (one sample: spread unknown)"
        );
        assert_eq!(questions[0].answers[1].better, None);
    }

    /// Below 95% coverage, or where the load generator limited a figure, the headline says
    /// why it gives no verdict instead of "slower" or "faster".
    #[test]
    fn no_verdict_on_low_coverage_or_a_limited_cell() {
        let artifact = fixture::artifact();
        let questions = headline(&artifact, &summarize(&artifact));
        let startup = &questions[0].answers[1];
        assert!(
            startup
                .words
                .starts_with("no verdict: the interval covers 56%"),
            "{startup:?}"
        );
        assert_eq!(startup.better, None);

        let mut artifact = fixture::with_rounds(fixture::artifact(), 7);
        for round in &mut artifact.environments[1].rounds {
            round.scenarios[0].load.generator.bottleneck = true;
        }
        let questions = headline(&artifact, &summarize(&artifact));
        let throughput = &questions[2].answers[1];
        assert!(
            throughput
                .words
                .starts_with("no verdict: the load generator was saturated"),
            "{throughput:?}"
        );
        assert_eq!(throughput.better, None);
    }

    #[test]
    fn scenario_is_read_from_the_metric() {
        assert_eq!(scenario_of("throughput (health)"), "health");
        assert_eq!(scenario_of("p99 latency (fixed-rate)"), "fixed-rate");
        assert_eq!(scenario_of("startup"), "");
    }
}

//! Plain progress lines for `isobench run` when stderr is not a terminal (a CI log, `| tee`),
//! where the progress bar is hidden and a run would otherwise print nothing for minutes: one
//! line per finished round of an environment, saying what finished, its headline figure and
//! the time left — what cargo and nextest print in CI logs instead of their bars.
//!
//! The [`Tracker`] reads which round finished from the artifact itself (the environment
//! whose round count grew since the last call), so it needs nothing from the protocol beyond
//! the per-round hook; [`line`] words a [`RoundDone`], and is all that knows the words.

use std::collections::BTreeMap;
use std::time::Instant;

use crate::artifact::{Artifact, Round};
use crate::measure::Plan;

/// One environment's round that has just finished, and what is left of the run.
#[derive(Debug, Clone, PartialEq)]
pub struct RoundDone {
    /// The environment's name.
    pub env: String,
    /// The round's index, from 0.
    pub round: u32,
    /// Rounds per environment in the plan.
    pub rounds: u32,
    /// Wall time from the end of the previous round (or the start of the rounds) to the end
    /// of this one: quiet wait, start, scenarios, sweep and stop, seconds.
    pub seconds: f64,
    /// What the round measured, or where it failed.
    pub outcome: Outcome,
    /// The estimated time the remaining rounds take, seconds; `None` when nothing is left.
    pub seconds_left: Option<f64>,
}

/// How a round ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Every phase ran; the headline figure when the round has a scenario.
    Measured(Option<Headline>),
    /// The round failed at `phase` (`start`, `scenario:health`, …) for `reason`.
    Failed {
        /// Where it failed.
        phase: String,
        /// The error, possibly several lines.
        reason: String,
    },
}

/// The figure a line shows for a round: one scenario's throughput and p99.
#[derive(Debug, Clone, PartialEq)]
pub struct Headline {
    /// The scenario's name.
    pub scenario: String,
    /// Whether it was an open loop, whose throughput is the rate asked for.
    pub open_loop: bool,
    /// `ok` responses per second.
    pub throughput_rps: f64,
    /// p99 latency of the `ok` responses, µs.
    pub p99_us: f64,
    /// Failed requests of the window.
    pub errors: u64,
}

/// The headline of `round`: its first closed-loop scenario (the ceiling, `health` by
/// default), else its first scenario; sweep steps are never it.
pub fn headline(round: &Round) -> Option<Headline> {
    let named = || round.scenarios.iter().filter(|run| run.sweep.is_none());
    let run = named()
        .find(|run| !run.load.open_loop)
        .or_else(|| named().next())?;
    Some(Headline {
        scenario: run.scenario.clone(),
        open_loop: run.load.open_loop,
        throughput_rps: run.load.throughput_rps,
        p99_us: run.load.latency.p99_us,
        errors: run.load.errors.total(),
    })
}

/// One round of one environment still to run, or run: what its time depends on.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    /// The environment's name.
    pub env: String,
    /// Whether the round includes the latency sweep (eight more windows, and up to three that
    /// bisect its capacity).
    pub swept: bool,
}

/// The time the `remaining` rounds take, estimated from the `finished` ones (each with its
/// seconds): each remaining round takes the mean of the finished rounds most like it — the
/// same environment and sweep, else the same environment, else the same sweep, else any —
/// since a VM's round under emulation can take ten times a native one's. `None` when
/// nothing has finished yet.
pub fn seconds_left(finished: &[(Step, f64)], remaining: &[Step]) -> Option<f64> {
    if finished.is_empty() {
        return None;
    }
    let mean_of = |like: &dyn Fn(&Step) -> bool| {
        let times: Vec<f64> = finished
            .iter()
            .filter(|(step, _)| like(step))
            .map(|(_, seconds)| *seconds)
            .collect();
        (!times.is_empty()).then(|| times.iter().sum::<f64>() / times.len() as f64)
    };
    Some(
        remaining
            .iter()
            .map(|step| {
                mean_of(&|done| done.env == step.env && done.swept == step.swept)
                    .or_else(|| mean_of(&|done| done.env == step.env))
                    .or_else(|| mean_of(&|done| done.swept == step.swept))
                    .or_else(|| mean_of(&|_| true))
                    .unwrap_or(0.0)
            })
            .sum(),
    )
}

/// Follows a run's rounds through the artifact the per-round hook is handed.
#[derive(Debug)]
pub struct Tracker {
    /// The environments measured, in the order they were prepared.
    envs: Vec<String>,
    /// Rounds per environment.
    rounds: u32,
    /// Rounds that run the sweep, from the first.
    sweep_rounds: u32,
    /// Rounds of each environment seen in the artifact so far.
    seen: BTreeMap<String, usize>,
    /// Every finished round with its seconds.
    finished: Vec<(Step, f64)>,
    /// When the last round ended (or the rounds began).
    last: Instant,
}

impl Tracker {
    /// A tracker of `plan` run over `envs`, whose rounds begin at `started`.
    pub fn new(plan: &Plan, envs: Vec<String>, started: Instant) -> Self {
        Self {
            envs,
            rounds: plan.repetitions,
            sweep_rounds: plan.sweep.as_ref().map_or(0, |sweep| sweep.rounds),
            seen: BTreeMap::new(),
            finished: Vec::new(),
            last: started,
        }
    }

    fn step(&self, env: &str, round: u32) -> Step {
        Step {
            env: env.to_owned(),
            swept: round < self.sweep_rounds,
        }
    }

    /// The round that finished since the last call, reading `artifact` at `now`; `None` when
    /// no environment has a new round (the hook's last call, after every round).
    pub fn after_round(&mut self, artifact: &Artifact, now: Instant) -> Option<RoundDone> {
        let (env, round) = artifact.environments.iter().find_map(|result| {
            let seen = self.seen.get(&result.label.name).copied().unwrap_or(0);
            (result.rounds.len() > seen)
                .then(|| result.rounds.last())
                .flatten()
                .map(|round| (result.label.name.clone(), round))
        })?;
        self.seen
            .insert(env.clone(), self.seen.get(&env).copied().unwrap_or(0) + 1);
        let seconds = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.finished.push((self.step(&env, round.round), seconds));
        let remaining: Vec<Step> = self
            .envs
            .iter()
            .flat_map(|name| {
                let seen = self.seen.get(name).copied().unwrap_or(0) as u32;
                (seen..self.rounds).map(move |index| (name, index))
            })
            .map(|(name, index)| self.step(name, index))
            .collect();
        let outcome = match &round.failure {
            Some(failure) => Outcome::Failed {
                phase: failure.phase.clone(),
                reason: failure.reason.clone(),
            },
            None => Outcome::Measured(headline(round)),
        };
        Some(RoundDone {
            env,
            round: round.round,
            rounds: self.rounds,
            seconds,
            outcome,
            seconds_left: if remaining.is_empty() {
                None
            } else {
                seconds_left(&self.finished, &remaining)
            },
        })
    }
}

/// The line for `done`, e.g. `isobench: round 2/7 container done in 41 s: 17,192 req/s
/// health, p99 0.99 ms; about 5 min left`.
pub fn line(done: &RoundDone) -> String {
    let what = format!(
        "isobench: round {}/{} {}",
        done.round + 1,
        done.rounds,
        done.env
    );
    let took = duration(done.seconds);
    let body = match &done.outcome {
        Outcome::Measured(Some(figure)) => format!("{what} done in {took}: {}", words(figure)),
        Outcome::Measured(None) => format!("{what} done in {took}"),
        Outcome::Failed { phase, reason } => {
            // The whole error is printed at the end of the run and kept in the artifact; the
            // progress line keeps to one line.
            let first = reason.lines().next().unwrap_or_default().trim();
            format!("{what} FAILED at {phase} after {took}: {first}")
        }
    };
    match done.seconds_left {
        Some(left) => format!("{body}; about {} left", rounded(left)),
        None => format!("{body}; that was the last round"),
    }
}

fn words(figure: &Headline) -> String {
    let p99_ms = crate::format::number(figure.p99_us / 1000.0);
    let mut text = if figure.open_loop {
        format!(
            "p99 {p99_ms} ms {} at {} req/s",
            figure.scenario,
            grouped(figure.throughput_rps)
        )
    } else {
        format!(
            "{} req/s {}, p99 {p99_ms} ms",
            grouped(figure.throughput_rps),
            figure.scenario
        )
    };
    if figure.errors > 0 {
        text.push_str(&format!(", {} errors", grouped(figure.errors as f64)));
    }
    text
}

/// A whole number with thousands separated by commas, `17,192`.
fn grouped(x: f64) -> String {
    let digits = format!("{:.0}", x.max(0.0));
    let mut out = String::new();
    for (index, digit) in digits.chars().enumerate() {
        if index > 0 && (digits.len() - index).is_multiple_of(3) {
            out.push(',');
        }
        out.push(digit);
    }
    out
}

/// A measured duration: tenths of a second below 10 s, whole seconds below 2 min, then
/// minutes and seconds.
fn duration(seconds: f64) -> String {
    if seconds < 10.0 {
        format!("{seconds:.1} s")
    } else if seconds < 120.0 {
        format!("{seconds:.0} s")
    } else {
        let whole = seconds.round() as u64;
        format!("{} min {} s", whole / 60, whole % 60)
    }
}

/// An estimate, no more precise than it is: to 5 s below a minute, whole minutes below an
/// hour, then hours and minutes.
fn rounded(seconds: f64) -> String {
    if seconds < 60.0 {
        format!("{} s", ((seconds / 5.0).round() as u64).max(1) * 5)
    } else if seconds < 3600.0 {
        format!("{} min", (seconds / 60.0).round() as u64)
    } else {
        let minutes = (seconds / 60.0).round() as u64;
        format!("{} h {} min", minutes / 60, minutes % 60)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::artifact::RoundFailure;
    use crate::artifact::fixture;

    fn measured(env: &str, round: u32, seconds: f64, left: Option<f64>) -> RoundDone {
        RoundDone {
            env: env.into(),
            round,
            rounds: 7,
            seconds,
            outcome: Outcome::Measured(Some(Headline {
                scenario: "health".into(),
                open_loop: false,
                throughput_rps: 17_192.4,
                p99_us: 990.0,
                errors: 0,
            })),
            seconds_left: left,
        }
    }

    #[test]
    fn a_line_says_what_finished_its_figure_and_the_time_left() {
        assert_eq!(
            line(&measured("container", 1, 41.2, Some(301.0))),
            "isobench: round 2/7 container done in 41 s: 17,192 req/s health, p99 0.990 ms; \
             about 5 min left"
        );
        assert_eq!(
            line(&measured("vm", 6, 4.24, None)),
            "isobench: round 7/7 vm done in 4.2 s: 17,192 req/s health, p99 0.990 ms; that was \
             the last round"
        );
        let mut open = measured("native", 0, 130.0, Some(12.0));
        open.outcome = Outcome::Measured(Some(Headline {
            scenario: "fixed-rate".into(),
            open_loop: true,
            throughput_rps: 200.0,
            p99_us: 1234.0,
            errors: 1_500,
        }));
        assert_eq!(
            line(&open),
            "isobench: round 1/7 native done in 2 min 10 s: p99 1.23 ms fixed-rate at 200 req/s, \
             1,500 errors; about 10 s left"
        );
    }

    #[test]
    fn a_failed_round_says_where_on_one_line() {
        let mut done = measured("gvisor", 2, 3.0, Some(7_500.0));
        done.outcome = Outcome::Failed {
            phase: "start".into(),
            reason: "no 200 within 60 s\nlast log line".into(),
        };
        assert_eq!(
            line(&done),
            "isobench: round 3/7 gvisor FAILED at start after 3.0 s: no 200 within 60 s; about \
             2 h 5 min left"
        );
    }

    #[test]
    fn numbers_are_grouped_and_estimates_rounded() {
        assert_eq!(grouped(0.4), "0");
        assert_eq!(grouped(999.0), "999");
        assert_eq!(grouped(1_000.0), "1,000");
        assert_eq!(grouped(1_234_567.0), "1,234,567");
        assert_eq!(rounded(1.0), "5 s");
        assert_eq!(rounded(59.0), "60 s");
        assert_eq!(rounded(89.0), "1 min");
        assert_eq!(rounded(3_600.0), "1 h 0 min");
    }

    fn step(env: &str, swept: bool) -> Step {
        Step {
            env: env.into(),
            swept,
        }
    }

    #[test]
    fn the_time_left_comes_from_the_rounds_most_alike() {
        assert_eq!(seconds_left(&[], &[step("vm", false)]), None);
        let finished = [
            (step("native", true), 20.0),
            (step("native", false), 4.0),
            (step("vm", true), 100.0),
        ];
        // native without sweep: its own 4 s; vm without sweep: the vm's only round, 100 s;
        // a never-seen environment with the sweep: the mean of the swept rounds, 60 s.
        let left = seconds_left(
            &finished,
            &[
                step("native", false),
                step("vm", false),
                step("gvisor", true),
            ],
        );
        assert_eq!(left, Some(164.0));
        assert_eq!(seconds_left(&finished, &[]), Some(0.0));
    }

    #[test]
    fn the_tracker_reports_each_new_round_once() {
        let full = fixture::artifact();
        let mut artifact = full.clone();
        for result in &mut artifact.environments {
            result.rounds.clear();
        }
        let mut plan = Plan::new(Vec::new());
        plan.repetitions = 3;
        plan.sweep = None;
        let names: Vec<String> = full
            .environments
            .iter()
            .map(|e| e.label.name.clone())
            .collect();
        let start = Instant::now();
        let mut tracker = Tracker::new(&plan, names, start);
        // The vm's first round ends 10 s in, then the native's first 2 s later.
        artifact.environments[2]
            .rounds
            .push(full.environments[2].rounds[0].clone());
        let done = tracker
            .after_round(&artifact, start + Duration::from_secs(10))
            .unwrap();
        assert_eq!((done.env.as_str(), done.round), ("vm", 0));
        assert_eq!(done.seconds, 10.0);
        // Eight rounds left, none seen but the vm's: 10 s each.
        assert_eq!(done.seconds_left, Some(80.0));
        let Outcome::Measured(Some(figure)) = &done.outcome else {
            panic!("{:?}", done.outcome)
        };
        assert_eq!(figure.scenario, "health");
        assert_eq!(figure.throughput_rps, 3_000.0);

        let mut failed = full.environments[0].rounds[0].clone();
        failed.failure = Some(RoundFailure {
            phase: "stop".into(),
            reason: "gone".into(),
            log_tail: Vec::new(),
        });
        artifact.environments[0].rounds.push(failed);
        let done = tracker
            .after_round(&artifact, start + Duration::from_secs(12))
            .unwrap();
        assert_eq!(done.env, "native");
        assert_eq!(done.seconds, 2.0);
        assert!(matches!(done.outcome, Outcome::Failed { .. }));
        // Nothing new: the hook's last call after every round.
        assert_eq!(
            tracker.after_round(&artifact, start + Duration::from_secs(13)),
            None
        );
    }

    #[test]
    fn the_headline_is_the_first_closed_loop_scenario() {
        let mut round = fixture::artifact().environments[0].rounds[0].clone();
        assert_eq!(headline(&round).unwrap().scenario, "health");
        round.scenarios.remove(0);
        let open = headline(&round).unwrap();
        assert_eq!(
            (open.scenario.as_str(), open.open_loop),
            ("fixed-rate", true)
        );
        round.scenarios.clear();
        assert_eq!(headline(&round), None);
    }
}

//! The measurement plan: everything the protocol needs, as plain data. `isobench run` builds
//! it from its flags, the test suite from its own, and both hand it to the same
//! [`crate::measure`] code.

use std::time::Duration;

use crate::env::Budget;
use crate::measure::quiet::QuietPolicy;
use crate::measure::scenario::{Scenario, ScenarioProblem, Sweep, SweepProblem};

/// Default repetitions. Seven rounds is the smallest n whose [min, max] interval covers a
/// median with at least 97.5% (1 − 2·0.5⁷ = 98.4%), so that the ratio of two environments'
/// medians, bounded by both intervals, still covers with at least 95% (0.984² = 96.9%); six
/// would give 96.9% per median but only 93.8% for ratios.
pub const DEFAULT_REPETITIONS: u32 = 7;
/// Default measured window of each scenario. Shorter windows buy more rounds in the same wall
/// time. Measured here, the spread of throughput between windows came from the machine's
/// own changes of speed, which persisted over several consecutive 2 s windows (four windows
/// on one instance within 0.5% of each other, 20% below the next instance's), so longer
/// windows would not average them out (see `isobench run --help` for the measured spread).
pub const DEFAULT_WINDOW: Duration = Duration::from_secs(2);
/// Default warm-up before each window (connections made, caches and JIT-free code warm).
pub const DEFAULT_WARMUP: Duration = Duration::from_millis(500);
/// The one moment idle memory is read: this long after the instance first answered 200.
pub const IDLE_SETTLE: Duration = Duration::from_millis(500);
/// How often memory and CPU are read while load runs; peaks are the highest reading within
/// the measured window.
pub const SAMPLE_INTERVAL: Duration = Duration::from_millis(10);
/// Per-request timeout of the load generator.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// What to measure and how.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// Scenarios run against every instance, in order.
    pub scenarios: Vec<Scenario>,
    /// Fresh instances per environment, interleaved across environments.
    pub repetitions: u32,
    /// Measured window of each scenario.
    pub window: Duration,
    /// Load sent before each window, not counted.
    pub warmup: Duration,
    /// When idle memory is read: this long after the first 200.
    pub idle_settle: Duration,
    /// How often resources are read during load.
    pub sample_interval: Duration,
    /// Per-request timeout.
    pub request_timeout: Duration,
    /// CPUs and memory of the service and the generator.
    pub budget: Budget,
    /// Seed of the per-round shuffle of environments.
    pub seed: u64,
    /// The latency-under-load sweep run after the scenarios; needs the `health` scenario.
    pub sweep: Option<Sweep>,
    /// The wait for a quiet machine before each instance starts; `None` starts at once
    /// (for trials that run beside others, where the machine is never quiet).
    pub quiet: Option<QuietPolicy>,
}

/// A plan that cannot be run, and why.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PlanError {
    /// Nothing would be repeated.
    #[error("invalid plan: repetitions must be at least 1")]
    NoRepetitions,
    /// Nothing would be measured.
    #[error("invalid plan: the measured window must be longer than zero")]
    EmptyWindow,
    /// Resources would never be sampled.
    #[error("invalid plan: the sampling interval must be longer than zero")]
    NoSampleInterval,
    /// Every request would time out at once.
    #[error("invalid plan: the request timeout must be longer than zero")]
    NoRequestTimeout,
    /// The quiet machine's threshold is not a percentage.
    #[error("invalid plan: the quiet machine's CPU threshold must be a percentage, 0 to 100")]
    QuietThreshold,
    /// A scenario is wrong on its own.
    #[error("invalid plan: {0}")]
    Scenario(#[from] ScenarioProblem),
    /// The sweep is wrong on its own.
    #[error("invalid plan: {0}")]
    Sweep(#[from] SweepProblem),
    /// A sweep without the scenario it takes its ceiling from.
    #[error("invalid plan: the latency sweep needs the health scenario (its ceiling)")]
    SweepWithoutCeiling,
    /// Two scenarios share a name.
    #[error("invalid plan: scenario {0} is listed twice")]
    Duplicate(String),
}

/// The setting of a plan that a [`PlanError`] is about, for a front end to name its own
/// flag or field for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlanSetting {
    /// [`Plan::repetitions`].
    Repetitions,
    /// [`Plan::window`].
    Window,
    /// A scenario's connections.
    Connections,
    /// A scenario's open-loop rate.
    Rate,
}

impl PlanError {
    /// The setting to change, when one setting alone is wrong.
    pub fn setting(&self) -> Option<PlanSetting> {
        match self {
            Self::NoRepetitions => Some(PlanSetting::Repetitions),
            Self::EmptyWindow => Some(PlanSetting::Window),
            Self::Scenario(ScenarioProblem::NoConnections(_)) => Some(PlanSetting::Connections),
            Self::Scenario(ScenarioProblem::BadRate(_)) => Some(PlanSetting::Rate),
            _ => None,
        }
    }
}

impl Plan {
    /// The default plan over `scenarios` on this host's budget.
    pub fn new(scenarios: Vec<Scenario>) -> Self {
        Self {
            scenarios,
            repetitions: DEFAULT_REPETITIONS,
            window: DEFAULT_WINDOW,
            warmup: DEFAULT_WARMUP,
            idle_settle: IDLE_SETTLE,
            sample_interval: SAMPLE_INTERVAL,
            request_timeout: REQUEST_TIMEOUT,
            budget: Budget::for_host(),
            seed: 1,
            sweep: None,
            quiet: Some(QuietPolicy::DEFAULT),
        }
    }

    /// Checks the plan; the error names what is wrong.
    pub fn validate(&self) -> Result<(), PlanError> {
        if self.repetitions == 0 {
            return Err(PlanError::NoRepetitions);
        }
        if self.window.is_zero() {
            return Err(PlanError::EmptyWindow);
        }
        if self.sample_interval.is_zero() {
            return Err(PlanError::NoSampleInterval);
        }
        if self.request_timeout.is_zero() {
            return Err(PlanError::NoRequestTimeout);
        }
        if let Some(quiet) = &self.quiet
            && !(0.0..=100.0).contains(&quiet.busy_at_most_percent)
        {
            return Err(PlanError::QuietThreshold);
        }
        for scenario in &self.scenarios {
            scenario.validate()?;
        }
        if let Some(sweep) = &self.sweep {
            sweep.validate()?;
            if !self
                .scenarios
                .iter()
                .any(|s| s.name == crate::measure::scenario::SWEEP_CEILING_SCENARIO)
            {
                return Err(PlanError::SweepWithoutCeiling);
            }
        }
        let mut names: Vec<&str> = self.scenarios.iter().map(|s| s.name.as_str()).collect();
        names.sort_unstable();
        if let Some(pair) = names.windows(2).find(|pair| pair[0] == pair[1]) {
            return Err(PlanError::Duplicate(pair[0].to_owned()));
        }
        Ok(())
    }

    /// A one-line description recorded in every environment's notes.
    pub fn describe(&self) -> String {
        let quiet = match &self.quiet {
            Some(quiet) => format!(
                "each started once the host's CPU use fell to {}% or less (waiting at most \
                 {:?}); ",
                quiet.busy_at_most_percent, quiet.within
            ),
            None => String::new(),
        };
        format!(
            "{} rounds, fresh instances interleaved in an order shuffled with seed {}, \
             {quiet}each scenario {:?} measured after {:?} warm-up; idle memory read {:?} \
             after the first 200; memory and CPU read every {:?} during load",
            self.repetitions,
            self.seed,
            self.window,
            self.warmup,
            self.idle_settle,
            self.sample_interval
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_plan_is_valid() {
        let plan = Plan::new(vec![Scenario::health(50), Scenario::fixed_rate(200.0)]);
        plan.validate().unwrap();
        assert!(plan.describe().contains("7 rounds"));
    }

    #[test]
    fn bad_plans_say_what_is_wrong() {
        let mut plan = Plan::new(vec![Scenario::health(50)]);
        plan.repetitions = 0;
        assert_eq!(plan.validate(), Err(PlanError::NoRepetitions));
        let mut plan = Plan::new(vec![Scenario::health(50), Scenario::health(4)]);
        assert!(matches!(plan.validate(), Err(PlanError::Duplicate(_))));
        plan.scenarios.pop();
        plan.window = Duration::ZERO;
        assert_eq!(plan.validate(), Err(PlanError::EmptyWindow));
    }
}

//! The measurement plan: everything the protocol needs, as plain data. `isobench run` builds
//! it from its flags, the test suite from its own, and both hand it to the same
//! [`crate::measure`] code.

use std::time::Duration;

use crate::env::Budget;
use crate::measure::quiet::QuietPolicy;
use crate::measure::scenario::{Scenario, Sweep};

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
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid plan: {0}")]
pub struct PlanError(pub String);

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
        let bad = |what: &str| Err(PlanError(what.into()));
        if self.repetitions == 0 {
            return bad("repetitions must be at least 1");
        }
        if self.window.is_zero() {
            return bad("the measured window must be longer than zero");
        }
        if self.sample_interval.is_zero() {
            return bad("the sampling interval must be longer than zero");
        }
        if self.request_timeout.is_zero() {
            return bad("the request timeout must be longer than zero");
        }
        if let Some(quiet) = &self.quiet
            && !(0.0..=100.0).contains(&quiet.busy_at_most_percent)
        {
            return bad("the quiet machine's CPU threshold must be a percentage, 0 to 100");
        }
        for scenario in &self.scenarios {
            scenario.validate().map_err(PlanError)?;
        }
        if let Some(sweep) = &self.sweep {
            sweep.validate().map_err(PlanError)?;
            if !self
                .scenarios
                .iter()
                .any(|s| s.name == crate::measure::scenario::SWEEP_CEILING_SCENARIO)
            {
                return bad("the latency sweep needs the health scenario (its ceiling)");
            }
        }
        let mut names: Vec<&str> = self.scenarios.iter().map(|s| s.name.as_str()).collect();
        names.sort_unstable();
        if let Some(pair) = names.windows(2).find(|pair| pair[0] == pair[1]) {
            return bad(&format!("scenario {} is listed twice", pair[0]));
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
        assert!(plan.validate().unwrap_err().0.contains("repetitions"));
        let mut plan = Plan::new(vec![Scenario::health(50), Scenario::health(4)]);
        assert!(plan.validate().unwrap_err().0.contains("listed twice"));
        plan.scenarios.pop();
        plan.window = Duration::ZERO;
        assert!(plan.validate().unwrap_err().0.contains("window"));
    }
}

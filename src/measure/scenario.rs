//! Scenarios: what load to put on an instance. Plain data (a scenario file turns into the
//! same type), with the three built-in scenarios of `isobench run` as constructors.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::artifact::load::PathWeight;
use crate::load::LoadOptions;

/// One load scenario: where to send, how many connections, closed or open loop.
/// What is wrong with a scenario on its own.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ScenarioProblem {
    /// It has no name.
    #[error("a scenario needs a name")]
    Unnamed,
    /// It requests nothing.
    #[error("scenario {0}: no paths")]
    NoPaths(String),
    /// A path would never be requested.
    #[error("scenario {scenario}: {path} has weight 0")]
    ZeroWeight {
        /// The scenario.
        scenario: String,
        /// The path.
        path: String,
    },
    /// A path is not a request target.
    #[error("scenario {scenario}: {problem}")]
    BadPath {
        /// The scenario.
        scenario: String,
        /// What is wrong with the path.
        problem: crate::load::scenario::ScenarioError,
    },
    /// It opens no connection.
    #[error("scenario {0}: connections must be at least 1")]
    NoConnections(String),
    /// Its open-loop rate is not a positive number.
    #[error("scenario {0}: the rate must be a positive number of requests per second")]
    BadRate(String),
    /// The status it expects is not one the generator counts as correct.
    #[error(
        "scenario {scenario}: expected status {status} is not 2xx; the load generator counts \
         only 2xx answers as correct"
    )]
    NotSuccess {
        /// The scenario.
        scenario: String,
        /// The status it expects.
        status: u16,
    },
}

/// What is wrong with a latency sweep.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SweepProblem {
    /// No step.
    #[error("the sweep needs at least one step")]
    NoSteps,
    /// A step is zero, negative or not a number.
    #[error("sweep steps must be positive fractions of the ceiling")]
    StepNotPositive,
    /// The steps do not rise.
    #[error("sweep steps must rise")]
    StepsDoNotRise,
    /// The p99 limit is zero, negative or not a number.
    #[error("the sweep's p99 limit must be a positive number of milliseconds")]
    LimitNotPositive,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// Name used in reports: `health`, `mixed`, `fixed-rate`, or a scenario file's own.
    pub name: String,
    /// Paths (with query) and their relative weights.
    pub paths: Vec<PathWeight>,
    /// Concurrent connections.
    pub connections: usize,
    /// Open loop at this total rate, requests per second; `None` for a closed loop (each
    /// connection sends its next request when the last is answered: the ceiling).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_rps: Option<f64>,
    /// The status a correct answer has. The generator counts any 2xx with a well-formed body
    /// as ok, so only 2xx statuses are accepted here.
    #[serde(default = "default_expected_status")]
    pub expected_status: u16,
}

fn default_expected_status() -> u16 {
    200
}

/// Connections of the open-loop `fixed-rate` scenario: enough that a few slow answers do not
/// hold back the schedule at the default rate.
pub const FIXED_RATE_CONNECTIONS: usize = 16;
/// Connections of the `mixed` scenario: few, because `/memory` and `/parallel` are heavy and
/// the service sheds load beyond its caps, which would measure the caps instead of the work.
pub const MIXED_CONNECTIONS: usize = 4;

/// Connections of the `syscalls` and `files` scenarios: enough to keep the service's CPU
/// (or its disk) busy while one answer is on its way back, few enough not to meet the
/// `/files` in-flight cap.
pub const WORKLOAD_CONNECTIONS: usize = 4;

/// Names of the built-in scenarios a run of isobench's own server measures by default, in
/// their order.
pub const BUILT_IN: [&str; 3] = ["health", "mixed", "fixed-rate"];

/// Built-in scenarios measured when asked for (`--scenarios syscalls,files`): where isolation
/// meets system calls and storage. Not in the default set: three more scenarios in every
/// round of five rungs would add minutes to the default run.
pub const ON_REQUEST: [&str; 3] = ["syscalls", "files", "files-nofsync"];

/// The built-ins a service other than isobench's own gets by default: `mixed` sends
/// isobench-server's endpoints.
pub const BUILT_IN_FOR_ANY_SERVICE: [&str; 2] = ["health", "fixed-rate"];

/// Why a name is no built-in scenario for the service.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BuiltInError {
    /// No built-in has the name.
    #[error("unknown scenario {0:?}")]
    Unknown(String),
    /// A scenario of isobench-server's endpoints asked of another service.
    #[error("{0} sends isobench-server's endpoints")]
    NeedsOwnServer(String),
}

fn path(path: &str, weight: u32) -> PathWeight {
    PathWeight {
        path: path.into(),
        weight,
    }
}

impl Scenario {
    /// Closed loop on `/health` with `connections`: the throughput ceiling.
    pub fn health(connections: usize) -> Self {
        Self::health_at("/health", connections)
    }

    /// The same on the service's own health path.
    pub fn health_at(health_path: &str, connections: usize) -> Self {
        Self {
            name: "health".into(),
            paths: vec![path(health_path, 1)],
            connections,
            rate_rps: None,
            expected_status: 200,
        }
    }

    /// Closed loop on a mix of `/health`, `/cpu`, `/memory` and `/parallel`.
    pub fn mixed() -> Self {
        Self {
            name: "mixed".into(),
            paths: vec![
                path("/health", 4),
                path("/cpu", 3),
                path("/memory?mb=8", 1),
                path("/parallel?tasks=4&n=20000", 2),
            ],
            connections: MIXED_CONNECTIONS,
            rate_rps: None,
            expected_status: 200,
        }
    }

    /// Closed loop on `/syscalls?n=1000`: a thousand `getppid` calls a request, so a rung
    /// that interposes on system calls (gVisor) or traps them (a VM) shows it.
    pub fn syscalls() -> Self {
        Self {
            name: "syscalls".into(),
            paths: vec![path("/syscalls?n=1000", 1)],
            connections: WORKLOAD_CONNECTIONS,
            rate_rps: None,
            expected_status: 200,
        }
    }

    /// Closed loop on `/files?kb=64&fsync=…`: a fresh 64 KiB file written, fsynced when
    /// `fsync`, read back and removed in the instance's data directory, so the rung's storage
    /// path (a bind mount, gVisor's gofer, a VM's virtio disk) shows.
    pub fn files(fsync: bool) -> Self {
        Self {
            name: if fsync { "files" } else { "files-nofsync" }.into(),
            paths: vec![path(&format!("/files?kb=64&fsync={fsync}"), 1)],
            connections: WORKLOAD_CONNECTIONS,
            rate_rps: None,
            expected_status: 200,
        }
    }

    /// Open loop on `/health` at `rate_rps`: latency with coordinated omission corrected.
    pub fn fixed_rate(rate_rps: f64) -> Self {
        Self::fixed_rate_at("/health", rate_rps)
    }

    /// The same on the service's own health path.
    pub fn fixed_rate_at(health_path: &str, rate_rps: f64) -> Self {
        Self {
            name: "fixed-rate".into(),
            paths: vec![path(health_path, 1)],
            connections: FIXED_RATE_CONNECTIONS,
            rate_rps: Some(rate_rps),
            expected_status: 200,
        }
    }

    /// A built-in scenario by name (see [`BUILT_IN`] and [`ON_REQUEST`]) for a service
    /// answering health on `health_path`, with the closed-loop connections and open-loop rate
    /// given; those of isobench-server's endpoints only for it (`own_server`).
    pub fn built_in(
        name: &str,
        health_path: &str,
        own_server: bool,
        connections: usize,
        rate_rps: f64,
    ) -> Result<Self, BuiltInError> {
        match name {
            "health" => Ok(Self::health_at(health_path, connections)),
            "mixed" | "syscalls" | "files" | "files-nofsync" if !own_server => {
                Err(BuiltInError::NeedsOwnServer(name.to_owned()))
            }
            "mixed" => Ok(Self::mixed()),
            "syscalls" => Ok(Self::syscalls()),
            "files" => Ok(Self::files(true)),
            "files-nofsync" => Ok(Self::files(false)),
            "fixed-rate" => Ok(Self::fixed_rate_at(health_path, rate_rps)),
            other => Err(BuiltInError::Unknown(other.to_owned())),
        }
    }

    /// Whether requests are paced at a fixed rate.
    pub fn open_loop(&self) -> bool {
        self.rate_rps.is_some()
    }

    /// Checks the scenario on its own; the error names what is wrong.
    pub fn validate(&self) -> Result<(), ScenarioProblem> {
        if self.name.trim().is_empty() {
            return Err(ScenarioProblem::Unnamed);
        }
        let scenario = || self.name.clone();
        if self.paths.is_empty() {
            return Err(ScenarioProblem::NoPaths(scenario()));
        }
        for path in &self.paths {
            if path.weight == 0 {
                return Err(ScenarioProblem::ZeroWeight {
                    scenario: scenario(),
                    path: path.path.clone(),
                });
            }
            crate::load::scenario::validate_path(&path.path).map_err(|problem| {
                ScenarioProblem::BadPath {
                    scenario: scenario(),
                    problem,
                }
            })?;
        }
        if self.connections == 0 {
            return Err(ScenarioProblem::NoConnections(scenario()));
        }
        if let Some(rate) = self.rate_rps
            && !(rate.is_finite() && rate > 0.0)
        {
            return Err(ScenarioProblem::BadRate(scenario()));
        }
        if !(200..300).contains(&self.expected_status) {
            return Err(ScenarioProblem::NotSuccess {
                scenario: scenario(),
                status: self.expected_status,
            });
        }
        Ok(())
    }

    /// The load generator's options for this scenario against `base_url`.
    pub fn load_options(
        &self,
        base_url: &str,
        window: Duration,
        warmup: Duration,
        request_timeout: Duration,
        generator_cpus: &[usize],
    ) -> LoadOptions {
        let mut options = LoadOptions::new(base_url);
        options.scenario = self.paths.clone();
        options.connections = self.connections;
        options.rate = self.rate_rps;
        options.duration = Some(window);
        options.requests = None;
        options.warmup = warmup;
        options.timeout = request_timeout;
        options.cpus = generator_cpus.to_vec();
        options
    }
}

/// A latency-under-load sweep (wrk2's way of looking at latency): after the scenarios, open
/// loop at each fraction of the instance's own ceiling — the throughput of the closed-loop
/// `health` scenario in the same round — from light load to past saturation, sent to the
/// ceiling's own paths over the ceiling's own connections (a rate scaled from a ceiling
/// reached over 50 connections but sent over fewer would put the knee elsewhere). Where a
/// step first misses the p99 limit, a few more windows bisect between it and the last step
/// that met it, so the capacity is read between the grid's steps. Each window is recorded as
/// a `sweep` scenario run with its [`SweepStep`](crate::artifact::SweepStep);
/// `analysis::sweep` reads the curves.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Sweep {
    /// Requested rates as fractions of the ceiling, rising.
    pub fractions: Vec<f64>,
    /// How many rounds sweep, from the first (see [`DEFAULT_SWEEP_ROUNDS`]).
    pub rounds: u32,
    /// The p99 limit the capacity is read against, in milliseconds (`--p99-under`): where
    /// the bisection looks.
    pub p99_limit_ms: f64,
    /// Extra windows that bisect between the last step that met the limit and the first
    /// that missed, in the same round: each halves the bracket.
    pub bisections: u32,
}

/// Name of the scenario the sweep takes its ceiling from.
pub const SWEEP_CEILING_SCENARIO: &str = "health";

/// Rounds that sweep by default. One: a sweep is eight windows and up to three bisecting
/// ones per environment and round (2.6 minutes a round for the five rungs, measured on the
/// 2-core development machine), so sweeping every round of the default 7 would add about
/// 15 minutes to a 9-minute run, three rounds about 5; the capacity cell says
/// `n = 1 round: spread unknown` instead (the README has the figures).
pub const DEFAULT_SWEEP_ROUNDS: u32 = 1;

/// Bisection windows by default: three halve a bracket of 15% of the ceiling (the grid's
/// step near the knee) to under 2%.
pub const DEFAULT_BISECTIONS: u32 = 3;

impl Default for Sweep {
    /// A tenth of the ceiling to 1.3× past it; denser near the knee.
    fn default() -> Self {
        Self {
            fractions: vec![0.1, 0.25, 0.5, 0.7, 0.85, 1.0, 1.15, 1.3],
            rounds: DEFAULT_SWEEP_ROUNDS,
            p99_limit_ms: 10.0,
            bisections: DEFAULT_BISECTIONS,
        }
    }
}

impl Sweep {
    /// The open-loop scenario of one step at `fraction` of `ceiling_rps`, the throughput
    /// `ceiling` reached: its paths, over its connections.
    pub fn step(&self, ceiling: &Scenario, ceiling_rps: f64, fraction: f64) -> Scenario {
        Scenario {
            name: "sweep".into(),
            paths: ceiling.paths.clone(),
            connections: ceiling.connections,
            rate_rps: Some(ceiling_rps * fraction),
            expected_status: ceiling.expected_status,
        }
    }

    /// Checks the sweep; the error names what is wrong.
    pub fn validate(&self) -> Result<(), SweepProblem> {
        if self.fractions.is_empty() {
            return Err(SweepProblem::NoSteps);
        }
        if self.fractions.iter().any(|f| !(f.is_finite() && *f > 0.0)) {
            return Err(SweepProblem::StepNotPositive);
        }
        if self.fractions.windows(2).any(|w| w[0] >= w[1]) {
            return Err(SweepProblem::StepsDoNotRise);
        }
        if !(self.p99_limit_ms.is_finite() && self.p99_limit_ms > 0.0) {
            return Err(SweepProblem::LimitNotPositive);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn built_ins_are_valid_and_named() {
        for &name in BUILT_IN.iter().chain(&ON_REQUEST) {
            let scenario = Scenario::built_in(name, "/health", true, 50, 200.0).unwrap();
            assert_eq!(scenario.name, name);
            scenario.validate().unwrap();
        }
        assert_eq!(
            Scenario::built_in("soak", "/health", true, 50, 200.0),
            Err(BuiltInError::Unknown("soak".into()))
        );
        assert_eq!(
            Scenario::built_in("mixed", "/healthz", false, 50, 200.0),
            Err(BuiltInError::NeedsOwnServer("mixed".into()))
        );
        let theirs = Scenario::built_in("fixed-rate", "/healthz", false, 50, 100.0).unwrap();
        assert_eq!(theirs.paths[0].path, "/healthz");
        assert_eq!(theirs.rate_rps, Some(100.0));
        assert!(Scenario::fixed_rate(200.0).open_loop());
        assert!(!Scenario::mixed().open_loop());
    }

    #[test]
    fn bad_scenarios_say_what_is_wrong() {
        let mut s = Scenario::health(0);
        assert_eq!(
            s.validate(),
            Err(ScenarioProblem::NoConnections("health".into()))
        );
        s = Scenario::fixed_rate(f64::NAN);
        assert!(matches!(s.validate(), Err(ScenarioProblem::BadRate(_))));
        s = Scenario::health(1);
        s.expected_status = 404;
        assert!(s.validate().unwrap_err().to_string().contains("2xx"));
        s = Scenario::mixed();
        s.paths[1].weight = 0;
        assert!(
            s.validate()
                .unwrap_err()
                .to_string()
                .contains("/cpu has weight 0")
        );
        s = Scenario::health(1);
        s.paths[0].path = "health".into();
        assert!(s.validate().is_err());
    }

    #[test]
    fn sweep_steps_are_open_loop_fractions_of_the_ceiling_over_its_connections() {
        let sweep = Sweep::default();
        sweep.validate().unwrap();
        let ceiling = Scenario::health_at("/healthz", 7);
        let step = sweep.step(&ceiling, 1000.0, 0.5);
        assert_eq!((step.name.as_str(), step.rate_rps), ("sweep", Some(500.0)));
        // The ceiling's own connections and paths (a foreign service's health path).
        assert_eq!(step.connections, 7);
        assert_eq!(step.paths, ceiling.paths);
        step.validate().unwrap();
        let falling = Sweep {
            fractions: vec![0.5, 0.25],
            ..Sweep::default()
        };
        assert_eq!(falling.validate(), Err(SweepProblem::StepsDoNotRise));
        let no_limit = Sweep {
            p99_limit_ms: 0.0,
            ..Sweep::default()
        };
        assert_eq!(no_limit.validate(), Err(SweepProblem::LimitNotPositive));
    }

    #[test]
    fn scenarios_are_plain_data() {
        let json = r#"{"name":"burst","paths":[{"path":"/cpu","weight":2}],"connections":8,"rate_rps":50.0}"#;
        let scenario: Scenario = serde_json::from_str(json).unwrap();
        assert_eq!(scenario.expected_status, 200);
        assert_eq!(scenario.rate_rps, Some(50.0));
        let options = scenario.load_options(
            "http://127.0.0.1:1",
            Duration::from_secs(2),
            Duration::ZERO,
            Duration::from_secs(5),
            &[0],
        );
        assert_eq!((options.connections, options.rate), (8, Some(50.0)));
        assert_eq!(options.scenario, scenario.paths);
    }
}

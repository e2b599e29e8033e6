//! The protocol against the mock environment, whose readings are known in advance: memory
//! grows by a fixed amount per open connection and CPU time by a fixed amount per request.

use std::time::Duration;

use crate::artifact::load::PathWeight;
use crate::artifact::{Artifact, EnvironmentResult, HostInfo};
use crate::env::Budget;
use crate::env::Environment as _;
use crate::env::Prepared;
use crate::env::mock::{MockEnv, MockReadings};
use crate::measure::plan::Plan;
use crate::measure::protocol::{self, Observer, Quiet, RoundPhase};
use crate::measure::quiet::QuietPolicy;
use crate::measure::rounds;
use crate::measure::scenario::{Scenario, Sweep};

const MIB: u64 = 1 << 20;

fn host() -> HostInfo {
    HostInfo {
        cpu_model: "test".into(),
        logical_cpus: 1,
        kernel: "test".into(),
        os: "test".into(),
        memory_total_bytes: 1,
        hostname: "test".into(),
    }
}

fn closed(name: &str, connections: usize) -> Scenario {
    Scenario {
        name: name.into(),
        paths: vec![PathWeight {
            path: "/health".into(),
            weight: 1,
        }],
        connections,
        rate_rps: None,
        expected_status: 200,
    }
}

fn plan(scenarios: Vec<Scenario>, repetitions: u32, window_ms: u64, warmup_ms: u64) -> Plan {
    let mut plan = Plan::new(scenarios);
    plan.repetitions = repetitions;
    plan.window = Duration::from_millis(window_ms);
    plan.warmup = Duration::from_millis(warmup_ms);
    plan.idle_settle = Duration::from_millis(100);
    plan.budget = Budget::for_host();
    // Unit tests run beside each other: the machine is never quiet.
    plan.quiet = None;
    plan
}

fn mock(name: &str, readings: MockReadings) -> Prepared {
    Prepared {
        env: Box::new(MockEnv::new(name, Budget::for_host(), readings)),
        preparation: Vec::new(),
    }
}

fn run(plan: &Plan, prepared: Vec<Prepared>) -> (Artifact, usize) {
    let mut artifact = Artifact::on_host(host(), Vec::new());
    let mut writes = 0;
    rounds::run(plan, &prepared, &mut artifact, &mut Quiet, &mut |_| {
        writes += 1;
        Ok(())
    })
    .unwrap();
    (artifact, writes)
}

fn env<'a>(artifact: &'a Artifact, name: &str) -> &'a EnvironmentResult {
    artifact
        .environments
        .iter()
        .find(|e| e.label.name == name)
        .unwrap_or_else(|| panic!("no environment {name}"))
}

#[test]
fn peak_memory_is_each_windows_own_and_idle_memory_is_read_before_load() {
    // 1 MiB per open connection: a window under c connections peaks at base + c MiB. The old
    // protocol reported the lifetime high-water mark, so the narrow scenario after the wide
    // one inherited the wide one's peak.
    let readings = MockReadings {
        memory_per_connection_bytes: MIB,
        ..MockReadings::default()
    };
    let base = readings.memory_bytes;
    let plan = plan(vec![closed("wide", 12), closed("narrow", 2)], 1, 400, 200);
    let (artifact, _) = run(&plan, vec![mock("mock", readings)]);
    let round = &env(&artifact, "mock").rounds[0];
    assert_eq!(round.failure, None);
    assert_eq!(round.idle_memory_bytes, Some(base));
    assert!(
        round
            .idle_memory_method
            .as_deref()
            .unwrap()
            .contains("100 ms after the first 200")
    );
    let peaks: Vec<_> = round
        .scenarios
        .iter()
        .map(|s| s.peak_memory_bytes)
        .collect();
    assert_eq!(peaks, [Some(base + 12 * MIB), Some(base + 2 * MIB)]);
    for scenario in &round.scenarios {
        let method = scenario.peak_memory_method.as_deref().unwrap();
        assert!(method.contains("s measured window"), "{method}");
    }
}

#[test]
fn cpu_per_request_covers_exactly_the_measured_window() {
    // 1 ms of CPU per request: CPU per 1,000 requests is 1 s. The old protocol divided CPU
    // over warm-up + window by the window's requests: about 2 s here (1 s warm-up, 1 s window).
    let readings = MockReadings {
        cpu_seconds_per_request: 0.001,
        ..MockReadings::default()
    };
    let plan = plan(vec![closed("health", 4)], 1, 1000, 1000);
    let (artifact, _) = run(&plan, vec![mock("mock", readings)]);
    let run = &env(&artifact, "mock").rounds[0].scenarios[0];
    let per_thousand = run.service_cpu_seconds.unwrap() / run.load.ok as f64 * 1000.0;
    // Requests in flight at either end of the window (at most 4 each) are the only slack.
    assert!(
        (per_thousand - 1.0).abs() < 0.05,
        "{per_thousand} s per 1k requests"
    );
}

#[test]
fn every_round_records_its_wait_for_a_quiet_machine() {
    let mut plan = plan(vec![closed("health", 2)], 2, 200, 0);
    // A threshold no machine misses: one reading per round, recorded. (The busy case, with
    // its bound and note, is `quiet`'s own test.)
    plan.quiet = Some(QuietPolicy {
        busy_at_most_percent: 100.0,
        within: Duration::from_secs(5),
    });
    let (artifact, _) = run(&plan, vec![mock("mock", MockReadings::default())]);
    let mock_env = env(&artifact, "mock");
    for round in &mock_env.rounds {
        let wait = round.quiet_wait.as_ref().expect("the wait is recorded");
        assert!(wait.quiet, "{wait:?}");
    }
    assert!(
        mock_env
            .label
            .notes
            .iter()
            .all(|n| !n.contains("busy machine")),
        "{:?}",
        mock_env.label.notes
    );
    assert!(
        mock_env
            .label
            .notes
            .iter()
            .any(|n| n.contains("fell to 100% or less")),
        "the plan's note says how rounds wait: {:?}",
        mock_env.label.notes
    );
}

#[test]
fn a_service_that_dies_during_a_scenario_fails_the_round() {
    // The service dies part-way through the first window while its readings go on (a VM's
    // guest powering off): the load only sees errors, which the old protocol recorded as a
    // completed scenario with a few errors, and the round as a success.
    let plan = plan(vec![closed("health", 2), closed("after", 2)], 1, 600, 0);
    let dying = MockEnv::new("dying", Budget::for_host(), MockReadings::default())
        .with_death_after_requests(200);
    let round = protocol::run_round(&dying, &plan, 0, &mut Quiet).round;
    let failure = round.failure.as_ref().expect("the round failed");
    assert_eq!(failure.phase, "scenario:health");
    assert!(
        failure
            .reason
            .contains("stopped answering during the scenario"),
        "{}",
        failure.reason
    );
    // Neither the window it died in nor any later one counts as the environment's figure.
    assert!(round.scenarios.is_empty(), "{:?}", round.scenarios);
}

#[test]
fn a_failed_round_is_recorded_and_the_run_goes_on() {
    let plan = plan(vec![closed("health", 2)], 3, 200, 0);
    let flaky = Prepared {
        env: Box::new(
            MockEnv::new("flaky", Budget::for_host(), MockReadings::default())
                .with_failing_starts([1]),
        ),
        preparation: Vec::new(),
    };
    let broken = Prepared {
        env: Box::new(
            MockEnv::new("broken", Budget::for_host(), MockReadings::default())
                .with_failing_starts(0..3),
        ),
        preparation: Vec::new(),
    };
    let (artifact, writes) = run(
        &plan,
        vec![mock("good", MockReadings::default()), flaky, broken],
    );
    // After each of the 9 instance rounds, and once at the end.
    assert_eq!(writes, 10);
    let good = env(&artifact, "good");
    assert_eq!(good.rounds.len(), 3);
    assert!(
        good.rounds
            .iter()
            .all(|r| r.failure.is_none() && r.scenarios.len() == 1)
    );
    let flaky = env(&artifact, "flaky");
    let failed: Vec<_> = flaky
        .rounds
        .iter()
        .filter_map(|r| r.failure.as_ref())
        .collect();
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0].phase, "start");
    assert!(
        failed[0].reason.contains("fails on purpose"),
        "{}",
        failed[0].reason
    );
    assert!(
        flaky
            .label
            .notes
            .iter()
            .any(|n| n.starts_with("round 2 failed at start")),
        "{:?}",
        flaky.label.notes
    );
    assert!(
        artifact
            .environments
            .iter()
            .all(|e| e.label.name != "broken")
    );
    let dropped = artifact
        .unavailable
        .iter()
        .find(|u| u.name == "broken")
        .unwrap();
    assert!(
        dropped.reason.contains("every one of its 3 rounds failed"),
        "{}",
        dropped.reason
    );
}

#[test]
fn rounds_are_interleaved_in_a_shuffled_order() {
    struct Order(Vec<(u32, String)>);
    impl Observer for Order {
        fn phase(&mut self, round: u32, env: &str, phase: RoundPhase<'_>) {
            if phase == RoundPhase::Start {
                self.0.push((round, env.to_owned()));
            }
        }
    }
    let plan = plan(Vec::new(), 6, 100, 0);
    let names = ["a", "b", "c"];
    let prepared: Vec<Prepared> = names
        .iter()
        .map(|n| mock(n, MockReadings::default()))
        .collect();
    let mut artifact = Artifact::on_host(host(), Vec::new());
    let mut order = Order(Vec::new());
    rounds::run(&plan, &prepared, &mut artifact, &mut order, &mut |_| Ok(())).unwrap();
    let per_round: Vec<Vec<&str>> = (0..6)
        .map(|r| {
            order
                .0
                .iter()
                .filter(|(round, _)| *round == r)
                .map(|(_, e)| e.as_str())
                .collect()
        })
        .collect();
    for round in &per_round {
        let mut sorted = round.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, names, "every environment once per round");
    }
    assert!(
        per_round.iter().any(|r| r != &per_round[0]),
        "the order is shuffled"
    );
}

/// The sweep's steps go to the ceiling's own paths over the ceiling's own connections (the
/// default sweep's 32 connections, beside a ceiling reached over 3, put the knee elsewhere),
/// and where the grid first misses, bisection windows follow in the same round.
#[test]
fn sweep_steps_take_the_ceilings_connections_and_bisect_the_capacity() {
    let mut ceiling = closed("health", 3);
    // About a millisecond of CPU a request: a ceiling the service sets, not the generator.
    ceiling.paths[0].path = "/cpu?n=20000".into();
    let mut plan = plan(vec![ceiling], 1, 300, 100);
    // A twentieth of the ceiling is kept; 5× it cannot be over the same connections (not
    // even on a busy machine that held the ceiling down).
    plan.sweep = Some(Sweep {
        fractions: vec![0.05, 5.0],
        rounds: 1,
        p99_limit_ms: 60_000.0,
        bisections: 2,
    });
    plan.validate().unwrap();
    let env = MockEnv::new("mock", Budget::for_host(), MockReadings::default());
    let round = protocol::run_round(&env, &plan, 0, &mut Quiet).round;
    assert_eq!(round.failure, None);
    let steps: Vec<_> = round
        .scenarios
        .iter()
        .filter(|s| s.sweep.is_some())
        .collect();
    for step in &steps {
        assert_eq!(step.load.connections, 3, "{:?}", step.sweep);
        assert_eq!(step.load.scenario[0].path, "/cpu?n=20000");
        assert!(step.load.open_loop);
    }
    let fractions = |bisection: bool| -> Vec<f64> {
        steps
            .iter()
            .filter_map(|s| s.sweep.as_ref())
            .filter(|s| s.bisection == bisection)
            .map(|s| s.fraction)
            .collect()
    };
    let misses: Vec<_> = steps
        .iter()
        .map(|s| crate::analysis::sweep::step_miss(s, 60_000.0))
        .collect();
    assert_eq!(fractions(false), [0.05, 5.0]);
    let bisections = fractions(true);
    assert_eq!(bisections.len(), 2, "{bisections:?}, misses {misses:?}");
    assert_eq!(bisections[0], 2.525, "halfway between 0.05 and 5");
    assert!(
        [1.2875, 3.7625]
            .iter()
            .any(|f| (f - bisections[1]).abs() < 1e-9),
        "the next halves the bracket the first left: {bisections:?}"
    );
    let ceiling_rps = steps[0].sweep.as_ref().unwrap().ceiling_rps;
    let artifact = Artifact::on_host(
        host(),
        vec![EnvironmentResult {
            label: env.label(),
            preparation: Vec::new(),
            rounds: vec![round.clone()],
        }],
    );
    let capacity = &crate::analysis::summarize::capacities(&artifact, 60_000.0)["mock"];
    let highest = capacity
        .highest_rate_rps
        .expect("a twentieth of the ceiling met the limit");
    assert!(
        highest >= 0.05 * ceiling_rps * 0.999 && highest < 5.0 * ceiling_rps,
        "{capacity:?}"
    );
    assert_eq!(capacity.rounds, 1);
}

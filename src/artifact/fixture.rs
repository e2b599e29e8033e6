//! Deterministic artifacts with fixed, hand-chosen numbers, for the report's tests and
//! snapshots (no environment, no load, no clock).

use std::collections::BTreeMap;

use hdrhistogram::Histogram;

use crate::artifact::load::{ErrorCounts, GeneratorUsage, LatencyStats, LoadReport, PathWeight};
use crate::artifact::series::{Stall, Steadiness, WindowSeries};
use crate::artifact::{
    Accel, Artifact, EnvKind, EnvironmentLabel, EnvironmentResult, HostInfo, Preparation, Round,
    Rung, SCHEMA_VERSION, ScenarioRun, Unavailable, position,
};

/// One environment's figures per round (three rounds).
struct Figures {
    startup_ms: [f64; 3],
    idle_mib: [u64; 3],
    peak_mib: [u64; 3],
    throughput_rps: [f64; 3],
    p99_us: [f64; 3],
    /// Multiplies every latency (p50 400 µs, p99.9 2 ms for factor 1).
    latency_factor: f64,
    /// Service CPU-seconds per 1,000 ok requests.
    cpu_per_thousand_s: f64,
}

const MIB: u64 = 1024 * 1024;
const ELAPSED_S: f64 = 5.0;

/// Native, container and a TCG VM, three rounds each, scenarios `health` and `fixed-rate`,
/// every window with a series ([`series`]): steady, but for native's `health` round 1
/// (warm-up discarded), the container's `health` round 2 (drifted), its `fixed-rate`
/// round 0 (still warming up: an open loop cannot be cut) and the VM's `health` round 2
/// (a stall).
pub fn artifact() -> Artifact {
    let mut native = environment(
        label("native", EnvKind::Native, "process", None, None),
        Figures {
            startup_ms: [10.0, 12.0, 11.0],
            idle_mib: [8, 8, 9],
            peak_mib: [20, 21, 19],
            throughput_rps: [10_000.0, 10_200.0, 9_800.0],
            p99_us: [1000.0, 1100.0, 950.0],
            latency_factor: 1.0,
            cpu_per_thousand_s: 0.01,
        },
    );
    let mut container = environment(
        label(
            "container",
            EnvKind::Container,
            "docker 20.10.24",
            None,
            Some(4 * MIB),
        ),
        Figures {
            startup_ms: [100.0, 110.0, 95.0],
            idle_mib: [9, 9, 9],
            peak_mib: [22, 22, 23],
            throughput_rps: [9_000.0, 9_100.0, 8_900.0],
            p99_us: [1200.0, 1250.0, 1150.0],
            latency_factor: 1.2,
            cpu_per_thousand_s: 0.011,
        },
    );
    let mut vm = environment(
        label(
            "vm",
            EnvKind::Vm,
            "qemu 7.2.22 (microvm)",
            Some(Accel::Tcg),
            Some(40 * MIB),
        ),
        Figures {
            startup_ms: [900.0, 1000.0, 1100.0],
            idle_mib: [60, 61, 62],
            peak_mib: [80, 90, 70],
            throughput_rps: [3_000.0, 3_100.0, 2_900.0],
            p99_us: [5000.0, 7000.0, 3000.0],
            latency_factor: 4.0,
            cpu_per_thousand_s: 0.05,
        },
    );
    vm.label
        .notes
        .push("TCG: software emulation <not KVM> & slow".into());
    unsteady(&mut native, "health", 1, Unsteady::Discarded);
    unsteady(&mut container, "health", 2, Unsteady::Drifted);
    unsteady(&mut container, "fixed-rate", 0, Unsteady::WarmingUp);
    unsteady(&mut vm, "health", 2, Unsteady::Stalled);
    vm.preparation.push(Preparation {
        what: "vm image assembly".into(),
        seconds: 2.5,
        cached: false,
    });
    Artifact {
        schema_version: SCHEMA_VERSION,
        tool_version: "0.1.0".into(),
        created_at: "2026-11-29T12:00:00Z".into(),
        host: host(),
        environments: vec![native, container, vm],
        unavailable: vec![Unavailable {
            name: "vagrant".into(),
            reason: "vagrant trials need --features vm".into(),
        }],
        summary: None,
        checks: Vec::new(),
        service: None,
    }
}

/// What the seed's workflow produces after merging: two `bench --url` artifacts, one round
/// each, no startup; the container and the VM known only by what the service detected.
pub fn bench_pair() -> Artifact {
    let bench = |name: &str, detected: &str, rps: f64| {
        let mut label = label(name, EnvKind::External, "external", None, None);
        label.detected = Some(detected.into());
        label.service_cpus.clear();
        EnvironmentResult {
            label,
            preparation: Vec::new(),
            rounds: vec![Round {
                round: 0,
                startup_ms: None,
                startup_phases: Vec::new(),
                idle_memory_bytes: None,
                idle_memory_method: None,
                idle_guest_memory: None,
                quiet_wait: None,
                scenarios: vec![scenario_run("bench", rps, 1000.0, 1.0, None, None)],
                failure: None,
            }],
        }
    };
    Artifact {
        environments: vec![
            bench("docker", "container", 189.0),
            bench("vm", "vm", 127.0),
        ],
        unavailable: Vec::new(),
        ..artifact()
    }
}

/// The fixed host of every fixture.
pub fn host() -> HostInfo {
    HostInfo {
        cpu_model: "Fixture CPU @ 2.00GHz".into(),
        logical_cpus: 2,
        kernel: "6.1.0-test".into(),
        os: "Debian GNU/Linux 12".into(),
        memory_total_bytes: 24 * 1024 * MIB,
        hostname: "fixture".into(),
    }
}

fn label(
    name: &str,
    kind: EnvKind,
    runtime: &str,
    accel: Option<Accel>,
    image_size_bytes: Option<u64>,
) -> EnvironmentLabel {
    EnvironmentLabel {
        name: name.into(),
        kind,
        runtime: runtime.into(),
        accel,
        service_cpus: vec![1],
        generator_cpus: vec![0],
        memory_limit_bytes: Some(512 * MIB),
        kernel: Some("6.1.0-test".into()),
        image_size_bytes,
        detected: Some(
            match kind {
                EnvKind::Container => "container",
                EnvKind::Vm => "vm",
                _ => "native",
            }
            .into(),
        ),
        data_dir: None,
        memory_counts: Some(crate::probe::footprint::counts("the fixture's processes")),
        notes: Vec::new(),
        rung: None,
        accel_attempts: Vec::new(),
    }
}

fn environment(label: EnvironmentLabel, f: Figures) -> EnvironmentResult {
    let mut rounds: Vec<Round> = (0..3)
        .map(|i| {
            let peak = Some(f.peak_mib[i] * MIB);
            let cpu = Some(f.cpu_per_thousand_s);
            Round {
                round: i as u32,
                startup_ms: Some(f.startup_ms[i]),
                startup_phases: Vec::new(),
                idle_memory_bytes: Some(f.idle_mib[i] * MIB),
                idle_memory_method: None,
                idle_guest_memory: None,
                quiet_wait: None,
                scenarios: vec![
                    scenario_run(
                        "health",
                        f.throughput_rps[i],
                        f.p99_us[i],
                        f.latency_factor,
                        peak,
                        cpu,
                    ),
                    scenario_run(
                        "fixed-rate",
                        1000.0,
                        f.p99_us[i] * 2.0,
                        f.latency_factor,
                        peak.map(|p| p - MIB),
                        cpu.map(|c| c * 1.5),
                    ),
                ],
                failure: None,
            }
        })
        .collect();
    for (index, round) in rounds.iter_mut().enumerate() {
        for run in &mut round.scenarios {
            run.load.series = Some(series(run, index));
        }
    }
    EnvironmentResult {
        label,
        preparation: Vec::new(),
        rounds,
    }
}

/// Length of the fixture's slices, milliseconds: 20 in a 5 s window.
pub const SLICE_MS: f64 = 250.0;

/// Slice-to-slice wiggle of the fixture's steady series, a fraction of the window's figure
/// (hand-chosen, so no platform's `sin` changes a count).
const WIGGLE: [f64; 20] = [
    0.0, 0.03, -0.02, 0.01, -0.03, 0.02, 0.0, -0.01, 0.03, -0.02, 0.01, 0.02, -0.03, 0.0, 0.02,
    -0.01, -0.02, 0.03, 0.01, -0.01,
];

/// A steady series for `run` of round `round`: every slice near the window's throughput and
/// latency, the window's failures (a 5xx, a timeout) in two slices, the service's CPU and
/// memory where the run read them.
pub fn series(run: &ScenarioRun, round: usize) -> WindowSeries {
    let load = &run.load;
    let slices = (load.elapsed_s * 1000.0 / SLICE_MS).round() as usize;
    let wiggle = |i: usize| WIGGLE[(i + 3 * round) % WIGGLE.len()];
    let per_slice = load.throughput_rps * SLICE_MS / 1000.0;
    let ok = (0..slices)
        .map(|i| (per_slice * (1.0 + wiggle(i))).round() as u64)
        .collect();
    let latency = load.request_latency();
    let in_flight = if load.open_loop {
        2
    } else {
        load.connections as u64
    };
    let mut errors = BTreeMap::new();
    let one_at = |at: usize| (0..slices).map(|i| u64::from(i == at)).collect::<Vec<_>>();
    errors.insert("status_5xx".to_owned(), one_at(3));
    errors.insert("timeout".to_owned(), one_at(slices - 2));
    WindowSeries {
        slice_ms: SLICE_MS,
        window_ms: load.elapsed_s * 1000.0,
        ok,
        errors,
        in_flight: vec![in_flight; slices],
        p50_us: (0..slices)
            .map(|i| Some(short(latency.p50_us * (1.0 + wiggle(i)))))
            .collect(),
        p99_us: (0..slices)
            .map(|i| Some(short(latency.p99_us * (1.0 - 2.0 * wiggle(i)))))
            .collect(),
        service_cpu_s: match run.service_cpu_seconds {
            Some(cpu) => (0..slices)
                .map(|i| Some(short(cpu / slices as f64 * (1.0 + wiggle(i)))))
                .collect(),
            None => Vec::new(),
        },
        memory_bytes: match run.peak_memory_bytes {
            Some(peak) => (0..slices)
                .map(|i| Some(peak - (i as u64 % 4) * 64 * 1024))
                .collect(),
            None => Vec::new(),
        },
        discarded_slices: 0,
        steadiness: Steadiness {
            drift_pct: Some(wiggle(slices - 1) * 100.0),
            ..Steadiness::default()
        },
    }
}

/// `x` to six decimals: few enough digits that JSON gives back the very same `f64` (an
/// artifact round-trips through a file in the tests).
fn short(x: f64) -> f64 {
    (x * 1e6).round() / 1e6
}

/// How [`unsteady`] spoils a steady window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unsteady {
    /// Two leading slices still climbing (30% and 70%), discarded: the window starts 0.5 s
    /// earlier and its figures cover the 5 s after them.
    Discarded,
    /// The first two slices at 60% and 85%, kept (an open loop's window cannot be cut).
    WarmingUp,
    /// Slices 8 and 9 (2–2.5 s) with every connection waiting and nothing completed; the
    /// next slice's p99 holds the stalled requests (520 ms).
    Stalled,
    /// Throughput falling steadily to 60% by the end: the last third 35% below the first.
    Drifted,
}

/// Makes `env`'s `scenario` window of `round` unsteady in the way `how` says.
pub fn unsteady(env: &mut EnvironmentResult, scenario: &str, round: usize, how: Unsteady) {
    let run = env.rounds[round]
        .scenarios
        .iter_mut()
        .find(|run| run.scenario == scenario)
        .expect("the fixture has the scenario");
    let series = run.load.series.as_mut().expect("every fixture run has one");
    let first = series.ok[0];
    match how {
        Unsteady::Discarded => {
            let climbing = [0.3, 0.7].map(|f| (first as f64 * f).round() as u64);
            prepend(&mut series.ok, climbing);
            let in_flight = series.in_flight[0];
            prepend(&mut series.in_flight, [in_flight; 2]);
            let p50 = series.p50_us[0].map(|us| us * 3.0);
            let p99 = series.p99_us[0].map(|us| us * 4.0);
            prepend(&mut series.p50_us, [p50; 2]);
            prepend(&mut series.p99_us, [p99; 2]);
            for column in series.errors.values_mut() {
                prepend(column, [0; 2]);
            }
            if let Some(cpu) = series.service_cpu_s.first().copied() {
                prepend(&mut series.service_cpu_s, [cpu; 2]);
            }
            if let Some(memory) = series.memory_bytes.first().copied() {
                prepend(&mut series.memory_bytes, [memory; 2]);
            }
            series.window_ms += 2.0 * SLICE_MS;
            series.discarded_slices = 2;
        }
        Unsteady::WarmingUp => {
            series.ok[0] = (first as f64 * 0.6).round() as u64;
            series.ok[1] = (first as f64 * 0.85).round() as u64;
            series.steadiness.warming_up = true;
        }
        Unsteady::Stalled => {
            for slice in [8, 9] {
                series.ok[slice] = 0;
                series.p50_us[slice] = None;
                series.p99_us[slice] = None;
            }
            series.p99_us[10] = Some(520_000.0);
            series.steadiness.stalls = vec![Stall {
                first_slice: 8,
                slices: 2,
            }];
        }
        Unsteady::Drifted => {
            let n = series.ok.len();
            for (i, ok) in series.ok.iter_mut().enumerate() {
                *ok = (*ok as f64 * (1.0 - 0.4 * i as f64 / (n - 1) as f64)).round() as u64;
            }
            series.steadiness.drift_pct = Some(-35.0);
            series.steadiness.drifted = true;
        }
    }
}

/// A scenario run whose `ok` count is `throughput × 5 s` and whose service CPU time is
/// `cpu_per_thousand_s` per 1,000 ok requests.
pub fn scenario_run(
    scenario: &str,
    throughput_rps: f64,
    p99_us: f64,
    latency_factor: f64,
    peak_memory_bytes: Option<u64>,
    cpu_per_thousand_s: Option<f64>,
) -> ScenarioRun {
    let ok = (throughput_rps * ELAPSED_S) as u64;
    let p50 = 400.0 * latency_factor;
    let p90 = 600.0 * latency_factor;
    let p999 = (2000.0 * latency_factor).max(p99_us * 1.5);
    let max = p999 * 2.0;
    let latency = LatencyStats {
        count: ok,
        min_us: 100.0 * latency_factor,
        mean_us: 450.0 * latency_factor,
        stdev_us: 150.0 * latency_factor,
        p50_us: p50,
        p90_us: p90,
        p99_us,
        p999_us: p999,
        max_us: max,
    };
    let open_loop = scenario == "fixed-rate";
    let load = LoadReport {
        all_requests_latency: None,
        url: "http://127.0.0.1:8080".into(),
        scenario: vec![PathWeight {
            path: "/health".into(),
            weight: 1,
        }],
        connections: 50,
        open_loop,
        requested_rate_rps: open_loop.then_some(throughput_rps),
        keep_alive: true,
        timeout_ms: 5000.0,
        warmup_s: 1.0,
        warmup_requests: 1000,
        elapsed_s: ELAPSED_S,
        requests_sent: ok + 2,
        unfinished: 0,
        responses: ok + 1,
        ok,
        errors: ErrorCounts {
            timeout: 1,
            status_5xx: 1,
            ..ErrorCounts::default()
        },
        throughput_rps,
        achieved_rate_rps: throughput_rps,
        histogram: histogram([p50, p90, p99_us, p999, max]),
        all_requests_histogram: None,
        series: None,
        latency,
        uncorrected_latency: None,
        per_path: BTreeMap::new(),
        generator: GeneratorUsage {
            cpus: vec![0],
            threads: 1,
            cpu_seconds: 1.0,
            cpu_utilisation: 0.2,
            bottleneck: false,
        },
    };
    ScenarioRun {
        scenario: scenario.into(),
        load,
        peak_memory_bytes,
        peak_memory_method: None,
        service_cpu_seconds: cpu_per_thousand_s.map(|c| c * ok as f64 / 1000.0),
        sweep: None,
    }
}

/// Puts `items` before `column`'s first entry.
fn prepend<T>(column: &mut Vec<T>, items: [T; 2]) {
    let rest = std::mem::take(column);
    column.extend(items);
    column.extend(rest);
}

/// Fractions of each round's own ceiling the fixture sweep requests.
pub const SWEEP_FRACTIONS: [f64; 8] = [0.1, 0.25, 0.5, 0.75, 0.9, 1.0, 1.1, 1.25];

/// [`artifact`] with a latency-under-load sweep in every round: each step's rate is a
/// fraction of that round's `health` throughput; up to the ceiling the rate is kept and
/// p99 = base / (1 − 0.9·fraction) (base: native 1 ms, container 1.2 ms, vm 5 ms), so with a
/// 10 ms limit native holds up to 0.9 (9000 req/s), container to 0.9 (8100 req/s) and the VM
/// to 0.5 (1500 req/s); past the ceiling the achieved rate stays at the ceiling and p99 is
/// 100 × base. Every step's peak memory is 4 GiB, far above the scenarios'.
pub fn with_sweep() -> Artifact {
    let mut artifact = artifact();
    for (env, base_ms) in artifact.environments.iter_mut().zip([1.0, 1.2, 5.0]) {
        for round in &mut env.rounds {
            let ceiling = round.scenarios[0].load.throughput_rps;
            for fraction in SWEEP_FRACTIONS {
                let requested = ceiling * fraction;
                let (achieved, p99_ms) = if fraction <= 1.0 {
                    (requested, base_ms / (1.0 - 0.9 * fraction))
                } else {
                    (ceiling, base_ms * 100.0)
                };
                // Far above every scenario's peak: a summary that let sweep steps into its
                // peak memory would show it.
                let peak = Some(4 << 30);
                let mut run = scenario_run("sweep", achieved, p99_ms * 1000.0, 1.0, peak, None);
                run.load.open_loop = true;
                run.load.requested_rate_rps = Some(requested);
                run.load.achieved_rate_rps = achieved;
                run.load.latency.p50_us = p99_ms * 1000.0 / 3.0;
                run.load.errors = ErrorCounts::default();
                run.sweep = Some(crate::artifact::SweepStep {
                    ceiling_rps: ceiling,
                    fraction,
                    bisection: false,
                    host_cpu: None,
                });
                round.scenarios.push(run);
            }
        }
    }
    artifact
}

/// An HdrHistogram (µs) with 90% of samples near p50, then p90, p99, p99.9 and max, encoded
/// as an artifact stores it ([`crate::artifact::histogram`]).
pub fn histogram([p50, p90, p99, p999, max]: [f64; 5]) -> String {
    let mut h = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("valid bounds");
    for (value, count) in [(p50, 5000), (p90, 4000), (p99, 900), (p999, 90), (max, 10)] {
        h.record_n(value as u64, count)
            .expect("value within bounds");
    }
    crate::artifact::histogram::encode(&h)
}

/// [`artifact`] with rungs: native at the bottom, the container over it (adding "the
/// <network> path", markup to be escaped), the VM over the container.
pub fn laddered() -> Artifact {
    let mut artifact = artifact();
    for env in &mut artifact.environments {
        env.label.rung = Some(match env.label.kind {
            EnvKind::Native => Rung::new(position::NATIVE, "baseline", None),
            EnvKind::Container => Rung::new(
                position::CONTAINER_BRIDGE,
                "the <network> path",
                Some("native"),
            ),
            _ => Rung::vm("the hypervisor".into()),
        });
    }
    artifact
}

/// `artifact` with no failed request in any run.
pub fn without_errors(mut artifact: Artifact) -> Artifact {
    for run in artifact
        .environments
        .iter_mut()
        .flat_map(|e| &mut e.rounds)
        .flat_map(|r| &mut r.scenarios)
    {
        run.load.errors = Default::default();
    }
    artifact
}

/// `artifact` with each environment's rounds repeated in turn up to `rounds`, so its
/// intervals reach the coverage a real default run has (7 rounds: 95% for a ratio).
pub fn with_rounds(mut artifact: Artifact, rounds: usize) -> Artifact {
    for env in &mut artifact.environments {
        let original = env.rounds.clone();
        env.rounds = (0..rounds)
            .map(|index| {
                let mut round = original[index % original.len()].clone();
                round.round = index as u32;
                round
            })
            .collect();
    }
    artifact
}

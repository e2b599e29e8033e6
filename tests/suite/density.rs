//! `isobench density`'s known answer in every environment, and its cleanup on interrupt.
//!
//! Known answer: three instances of the own server, each holding `HELD_MIB` through its
//! `/hold`, ramped by the same code `isobench density` runs: the marginal cost by the memory
//! measure is at least what each holds, and at most that plus the whole footprint of one
//! idle instance (the rung's own overhead cannot exceed what one idle instance reads); the
//! instances per GiB say the same; the concurrent start answers; nothing is left running.
//!
//! Interrupts: the `isobench` binary is sent SIGTERM in the middle of a ramp (after the
//! first rung was written) and in the middle of a concurrent start; nothing it started may
//! survive, and the artifact it had written stays valid JSON.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use isobench::analysis::density::summarize;
use isobench::artifact::density::{DensityArtifact, RampEnd};
use isobench::measure::density::{self, DensityPlan, ProcMeminfo, Silent};
use libtest_mimic::{Failed, Trial};

use super::cleanup::{expect_nothing_left, wait_with_deadline};
use super::envs;
use super::processes::{MARKER_ENV, containers_of};

/// What each instance holds, MiB: far above the readings' noise, small enough that three
/// of them fit any CI machine.
const HELD_MIB: u64 = 64;

/// Instances per ramp: the fewest that give the slope an interval.
const INSTANCES: u32 = 3;

/// How far below the held MiB the slope may read: PSS moves by a few hundred KiB between
/// readings (allocator and runtime churn), and the slope of three points is their ends'
/// difference over two.
const BELOW_MIB: f64 = 1.5;

const MIB: f64 = 1024.0 * 1024.0;

/// The density trials of environment `env`.
pub fn trials(env: &'static str) -> Vec<Trial> {
    vec![Trial::test(
        format!("{env}::density::held_mib_is_the_marginal_cost"),
        move || held_mib_is_the_marginal_cost(env),
    )]
}

/// The harness trials: interrupts of `isobench density` leave nothing behind.
pub fn harness_trials() -> Vec<Trial> {
    vec![
        Trial::test("harness::density_interrupted_ramp_leaves_nothing", || {
            interrupted_density_leaves_nothing(Cut::Ramp)
        }),
        Trial::test(
            "harness::density_interrupted_concurrent_start_leaves_nothing",
            || interrupted_density_leaves_nothing(Cut::Concurrent),
        ),
    ]
}

fn held_mib_is_the_marginal_cost(env: &str) -> Result<(), Failed> {
    let (environment, preparation) = envs::prepared(env)?;
    let total = isobench::probe::host::memory()
        .map_err(|e| format!("reading /proc/meminfo: {e}"))?
        .total_bytes;
    let plan = DensityPlan {
        instances: isobench::artifact::density::InstanceCount::Requested {
            instances: INSTANCES,
        },
        margin_bytes: density::default_margin_bytes(total),
        settle: None,
        hold_mib: Some(HELD_MIB),
        concurrent: true,
        load: None,
    };
    let rung = density::measure_rung(
        environment.as_ref(),
        preparation,
        &plan,
        &ProcMeminfo,
        &mut Silent,
    )
    .map_err(|e| format!("{e:#}"))?;
    let left = containers_of(std::process::id())?;
    if !left.is_empty() {
        return Err(format!("containers left running after the rung: {left:?}").into());
    }
    if rung.end != RampEnd::Reached || rung.steps.len() != INSTANCES as usize {
        return Err(format!(
            "the ramp ended {:?} after {} steps",
            rung.end,
            rung.steps.len()
        )
        .into());
    }
    let summary = summarize(&rung);
    let fit = summary
        .instances_fit
        .ok_or("no fit of the instances' memory")?;
    let idle_mib = rung
        .steps
        .iter()
        .filter_map(|step| step.idle_memory_bytes)
        .map(|bytes| bytes as f64 / MIB)
        .fold(0.0, f64::max);
    let held = HELD_MIB as f64;
    let readings: Vec<String> = rung
        .steps
        .iter()
        .map(|s| format!("{:.1}", s.instances_memory_bytes as f64 / MIB))
        .collect();
    let described = format!(
        "marginal {:.2} MiB {:?}, fixed {:.2} MiB, one idle instance {idle_mib:.2} MiB, \
         readings {readings:?} MiB, host marginal {:?}",
        fit.slope_mib,
        fit.slope_ci95_mib,
        fit.intercept_mib,
        summary.host_fit.map(|f| f.slope_mib)
    );
    eprintln!("{env}: {described}");
    if fit.slope_mib < held - BELOW_MIB {
        return Err(format!("each instance holds {HELD_MIB} MiB, but {described}").into());
    }
    if fit.slope_mib > held + idle_mib + BELOW_MIB {
        return Err(format!(
            "one more instance costs more than {HELD_MIB} MiB and a whole idle instance: \
             {described}"
        )
        .into());
    }
    let per_gib = summary.instances_per_gib.ok_or("no instances per GiB")?;
    if (per_gib * fit.slope_mib - 1024.0).abs() > 1e-6 || per_gib > 1024.0 / (held - BELOW_MIB) {
        return Err(format!("{per_gib} instances per GiB for {described}").into());
    }
    let concurrent = rung.concurrent.as_ref().ok_or("no concurrent start")?;
    if concurrent.all_answering_ms.is_none() || concurrent.instances != INSTANCES {
        return Err(format!("the concurrent start: {concurrent:?}").into());
    }
    if !rung.stop_problems.is_empty() {
        return Err(format!("stopping: {:?}", rung.stop_problems).into());
    }
    Ok(())
}

/// Where the interrupt comes.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Cut {
    /// At the second instance of the container ramp, after the native rung was written.
    Ramp,
    /// While the container rung starts its instances at once.
    Concurrent,
}

fn interrupted_density_leaves_nothing(cut: Cut) -> Result<(), Failed> {
    let dir = tempfile::tempdir()?;
    let marker = format!("{}-density-{:?}", std::process::id(), Instant::now());
    let mut command = Command::new(env!("CARGO_BIN_EXE_isobench"));
    command
        .args(["density", "--env", "native,container", "--instances", "3"])
        .args(["--settle", "200ms", "--output-dir"])
        .arg(dir.path())
        .env(MARKER_ENV, &marker)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut child = command.spawn()?;
    let pid = child.id();
    let stderr = child.stderr.take().ok_or("no stderr")?;
    let (lines, seen) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = lines.send(line);
        }
    });
    let wanted = match cut {
        Cut::Ramp => "container: starting instance 2",
        Cut::Concurrent => "container: starting 3 at once",
    };
    let deadline = Instant::now() + Duration::from_secs(150);
    let mut log = Vec::new();
    loop {
        match seen.recv_timeout(Duration::from_millis(200)) {
            Ok(line) => {
                let found = line.contains(wanted);
                log.push(line);
                if found {
                    break;
                }
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                return Err(format!("isobench ended before {wanted:?}: {log:#?}").into());
            }
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            return Err(format!("never saw {wanted:?}: {log:#?}").into());
        }
    }
    // Inside the start: the container is being created (ramp) or several are (concurrent).
    std::thread::sleep(Duration::from_millis(300));
    // SAFETY: signalling our own child.
    unsafe { libc::kill(pid as i32, libc::SIGTERM) };
    let status = wait_with_deadline(&mut child, Duration::from_secs(30))?;
    if status.code() != Some(143) {
        return Err(format!("exited {status} after SIGTERM, not 143: {log:#?}").into());
    }
    expect_nothing_left(pid, &marker)?;
    let text = std::fs::read_to_string(dir.path().join("density.json"))
        .map_err(|e| format!("the native rung's density.json: {e}"))?;
    let artifact: DensityArtifact =
        serde_json::from_str(&text).map_err(|e| format!("density.json is not valid: {e}"))?;
    if artifact.rungs.len() != 1 || artifact.rungs[0].label.name != "native" {
        let names: Vec<&str> = artifact
            .rungs
            .iter()
            .map(|r| r.label.name.as_str())
            .collect();
        return Err(format!("expected the native rung alone, found {names:?}").into());
    }
    Ok(())
}

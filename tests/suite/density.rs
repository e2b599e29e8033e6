//! `isobench density`'s known answer in every environment, and its cleanup on interrupt.
//!
//! Known answer: three instances of the own server, each holding `HELD_MIB` through its
//! `/hold`, ramped by the same code `isobench density` runs: the marginal cost by the memory
//! measure is at least what each holds, and at most that plus the whole footprint of one
//! idle instance (the rung's own overhead cannot exceed what one idle instance reads); the
//! instances per GiB say the same; the concurrent start answers; nothing is left running.
//!
//! Merging (`--ksm`, the VM): see [`merging_saves_what_instances_hold_alike`].
//!
//! Interrupts: the `isobench` binary is sent SIGTERM in the middle of a ramp (after the
//! first rung was written), in the middle of a concurrent start, and while KSM merges a VM
//! rung; nothing it started may survive (processes, containers, instance and data
//! directories, KSM's settings), and the artifact it had written stays valid JSON.

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
    let mut trials = vec![Trial::test(
        format!("{env}::density::held_mib_is_the_marginal_cost"),
        move || held_mib_is_the_marginal_cost(env),
    )];
    if env == "vm" {
        trials.push(Trial::test(
            "vm::density::merging_saves_what_instances_hold_alike",
            merging_saves_what_instances_hold_alike,
        ));
        trials.push(Trial::test(
            "vm::density::interrupted_merging_puts_ksm_back",
            || interrupted_density_leaves_nothing(Cut::Merging),
        ));
    }
    trials
}

/// VMs of the merging trial: the fewest that have pages to merge with each other.
const MERGED_INSTANCES: u32 = 2;

/// How far merging may fall short of, or KSM's own count part from, the known answer: the
/// guests keep running (timers, the balloon handing freed pages back) between readings.
const MERGING_SLACK_MIB: f64 = 8.0;

/// Known answer for `--ksm`: two VMs with mergeable RAM each hold `HELD_MIB` of one byte
/// value (`/hold` writes every byte the same), so every held page is identical to every
/// other and merging must save at least all of them but one, `2 × HELD_MIB` less slack. The
/// memory measure's saving must agree with KSM's own count of the pages it saved (within
/// 10% and the slack: no other process here advises memory mergeable), and each VM's
/// reading must have grown by the held MiB when it held them, not by huge pages' worth
/// (QEMU's huge-page advice is overridden on mergeable RAM). KSM's settings must be back as
/// they were after the rung.
fn merging_saves_what_instances_hold_alike() -> Result<(), Failed> {
    let (mut environment, preparation) = envs::prepared("vm")?;
    if !environment.merge_memory() {
        return Err("the VM would not take mergeable RAM".into());
    }
    let root = std::path::Path::new(isobench::env::ksm::SYSFS);
    isobench::env::ksm::writable(root).map_err(|e| format!("{e}"))?;
    let before = ksm_settings()?;
    let plan = DensityPlan {
        concurrent: false,
        merging: Some(density::MergePlan::on_host()),
        ..holding_plan(MERGED_INSTANCES)?
    };
    let rung = density::measure_rung(
        environment.as_ref(),
        preparation,
        &plan,
        &ProcMeminfo,
        &mut Silent,
    )
    .map_err(|e| format!("{e:#}"))?;
    let after = ksm_settings()?;
    if after != before {
        return Err(format!("KSM's settings were {before:?} and are {after:?}").into());
    }
    if rung.steps.len() != MERGED_INSTANCES as usize {
        return Err(format!("the ramp ended {:?}", rung.end).into());
    }
    // Each VM's growth as it held: the reading before `/hold` (right after the boot)
    // against its reading at the step it started in. Only an upper bound: a guest that
    // hands back what its boot freed meanwhile grows less, while huge pages would add tens
    // of MiB.
    for (index, step) in rung.steps.iter().enumerate() {
        let idle = step.idle_memory_bytes.ok_or("no reading before /hold")? as f64 / MIB;
        let holding = step.instance_memory_bytes[index] as f64 / MIB;
        let grown = holding - idle;
        if grown > HELD_MIB as f64 + 2.0 * MERGING_SLACK_MIB {
            return Err(format!(
                "instance {} grew {grown:.1} MiB holding {HELD_MIB} MiB ({idle:.1} → \
                 {holding:.1} MiB)",
                index + 1
            )
            .into());
        }
    }
    let merging = rung.merging.as_ref().ok_or("no merging recorded")?;
    let by_measure = merging.saved_by_measure_bytes() as f64 / MIB;
    let by_ksm = merging.saved_by_ksm_bytes() as f64 / MIB;
    let described = format!(
        "merging saved {by_measure:.1} MiB by the memory measure ({:?} → {:?} bytes), \
         {by_ksm:.1} MiB by KSM's count ({} pages sharing {} merged ones), {} full scans in \
         {} ms, settled: {}",
        merging.before_bytes,
        merging.after_bytes,
        merging.pages_sharing,
        merging.pages_shared,
        merging.full_scans,
        merging.waited_ms,
        merging.settled
    );
    eprintln!("vm: {described}");
    let expected = (MERGED_INSTANCES as u64 * HELD_MIB) as f64 - MERGING_SLACK_MIB;
    if !merging.settled || by_measure < expected {
        return Err(format!("at least {expected:.0} MiB expected: {described}").into());
    }
    if (by_measure - by_ksm).abs() > 0.1 * by_ksm + MERGING_SLACK_MIB {
        return Err(format!("the two counts part: {described}").into());
    }
    if !rung.stop_problems.is_empty() {
        return Err(format!("stopping: {:?}", rung.stop_problems).into());
    }
    Ok(())
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

/// A ramp to `instances`, each holding [`HELD_MIB`], with the default margin and settle,
/// and the concurrent start after it.
fn holding_plan(instances: u32) -> Result<DensityPlan, Failed> {
    let total = isobench::probe::host::memory()
        .map_err(|e| format!("reading /proc/meminfo: {e}"))?
        .total_bytes;
    Ok(DensityPlan {
        instances: isobench::artifact::density::InstanceCount::Requested { instances },
        margin_bytes: density::default_margin_bytes(total),
        settle: None,
        hold_mib: Some(HELD_MIB),
        concurrent: true,
        load: None,
        merging: None,
    })
}

fn held_mib_is_the_marginal_cost(env: &str) -> Result<(), Failed> {
    let (environment, preparation) = envs::prepared(env)?;
    let plan = holding_plan(INSTANCES)?;
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
    /// While KSM merges the VM rung's instances (`--ksm`): its settings must be back too.
    Merging,
}

/// KSM's settings `--ksm` changes, as they are now.
fn ksm_settings() -> Result<Vec<String>, Failed> {
    let root = std::path::Path::new(isobench::env::ksm::SYSFS);
    ["run", "pages_to_scan", "sleep_millisecs"]
        .iter()
        .map(|name| {
            std::fs::read_to_string(root.join(name))
                .map(|text| text.trim().to_owned())
                .map_err(|e| format!("reading KSM's {name}: {e}").into())
        })
        .collect()
}

fn interrupted_density_leaves_nothing(cut: Cut) -> Result<(), Failed> {
    let dir = tempfile::tempdir()?;
    let marker = format!("{}-density-{:?}", std::process::id(), Instant::now());
    let ksm_before = match cut {
        Cut::Merging => Some(ksm_settings()?),
        Cut::Ramp | Cut::Concurrent => None,
    };
    let mut command = Command::new(env!("CARGO_BIN_EXE_isobench"));
    match cut {
        Cut::Ramp | Cut::Concurrent => command
            .args(["density", "--env", "native,container", "--instances", "3"])
            .args(["--settle", "200ms"]),
        Cut::Merging => command
            .args(["density", "--env", "vm", "--instances", "2", "--ksm"])
            .args(["--no-concurrent", "--settle", "1s"]),
    };
    command
        .arg("--output-dir")
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
        Cut::Merging => "vm: KSM on with 2 running",
    };
    let deadline = Instant::now() + Duration::from_secs(240);
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
    let prefixes = [
        isobench::env::orphans::vm_instance_dir_prefix(pid),
        isobench::env::orphans::data_dir_prefix(pid),
    ];
    let left: Vec<String> = std::fs::read_dir(std::env::temp_dir())?
        .filter_map(|entry| entry.ok()?.file_name().into_string().ok())
        .filter(|name| prefixes.iter().any(|prefix| name.starts_with(prefix)))
        .collect();
    if !left.is_empty() {
        return Err(format!("directories left in the temp directory: {left:?}").into());
    }
    if let Some(before) = ksm_before {
        let after = ksm_settings()?;
        if after != before {
            return Err(format!("KSM's settings were {before:?} and are {after:?}").into());
        }
        // The one rung was cut short: nothing of it is written.
        return match std::fs::read_to_string(dir.path().join("density.json")) {
            Err(_) => Ok(()),
            Ok(text) => Err(format!("an interrupted sole rung was written: {text}").into()),
        };
    }
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

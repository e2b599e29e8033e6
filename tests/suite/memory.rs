//! The memory measure's known answers, in every environment: the figure isobench reads as an
//! instance's memory (PSS summed over every host process the instance needs) moves by what
//! the service holds, and isolation never reads as less memory than the same server alone.
//!
//! The service holds memory through its `/hold?mb=M` (every byte written, kept until the next
//! `/hold`): the same instance read holding 0 and holding M, so nothing but the held pages
//! differs between the two readings.

use std::time::Duration;

use isobench::env::{Environment, Instance, health};
use libtest_mimic::{Failed, Trial};

use super::envs;

/// What the service is asked to hold, MiB: far above the readings' noise (a few hundred KiB
/// of allocator and runtime churn), far below any environment's budget.
const HELD_MIB: u64 = 64;

/// How far the change may be from what was held: the 10%.
const TOLERANCE: f64 = 0.10;

const MIB: f64 = 1024.0 * 1024.0;

/// The memory trials of environment `env`.
pub fn trials(env: &'static str) -> Vec<Trial> {
    let mut trials = vec![Trial::test(
        format!("{env}::memory::held_mib_reads_as_held"),
        move || held_reads_as_held(env),
    )];
    if env == "native" {
        trials.push(Trial::test(
            "native::memory::shared_text_counted_once",
            shared_text_counted_once,
        ));
    } else {
        trials.push(Trial::test(
            format!("{env}::memory::not_below_native"),
            move || not_below_native(env),
        ));
    }
    trials
}

/// Lets the instance settle after a change (a VM's guest reports freed pages to QEMU after a
/// delay), then reads its memory a few times and keeps the median.
fn settled_memory(instance: &dyn Instance, settle: Duration) -> Result<f64, Failed> {
    std::thread::sleep(settle);
    let mut readings = Vec::new();
    for _ in 0..5 {
        let reading = instance
            .resources()
            .map_err(|e| format!("reading the instance: {e:#}"))?;
        readings.push(reading.memory_bytes as f64);
        std::thread::sleep(Duration::from_millis(50));
    }
    readings.sort_by(f64::total_cmp);
    Ok(readings[readings.len() / 2])
}

/// How long to wait after a change before reading.
fn settle_for(env: &str) -> Duration {
    if env == "vm" {
        Duration::from_secs(5)
    } else {
        Duration::from_millis(300)
    }
}

fn hold(instance: &dyn Instance, mb: u64) -> Result<(), Failed> {
    let path = format!("/hold?mb={mb}");
    let (status, body) =
        health::get_json(instance.base_url(), &path).map_err(|e| format!("{e:#}"))?;
    if status != 200 || body["held_mb"] != mb {
        return Err(format!("GET {path} answered {status} {body}").into());
    }
    Ok(())
}

/// The service holding `HELD_MIB` reads that much more than holding nothing, within 10%;
/// and a bad `mb` is a 400 naming it.
fn held_reads_as_held(env: &str) -> Result<(), Failed> {
    let (environment, _) = envs::prepared(env)?;
    let trial = format!("{env}::memory::held_mib_reads_as_held");
    envs::with_instance(&trial, environment.as_ref(), |instance| {
        let (status, body) =
            health::get_json(instance.base_url(), "/hold?mb=-1").map_err(|e| format!("{e:#}"))?;
        if status != 400 || body["param"] != "mb" {
            return Err(format!("/hold?mb=-1 answered {status} {body}").into());
        }
        let settle = settle_for(env);
        let empty = settled_memory(instance, settle)?;
        hold(instance, HELD_MIB)?;
        let holding = settled_memory(instance, settle)?;
        hold(instance, 0)?;
        let change_mib = (holding - empty) / MIB;
        let expected = HELD_MIB as f64;
        if (change_mib - expected).abs() > TOLERANCE * expected {
            return Err(format!(
                "holding {HELD_MIB} MiB read {change_mib:.2} MiB more ({:.2} → {:.2} MiB; \
                 {})",
                empty / MIB,
                holding / MIB,
                environment.label().memory_counts.unwrap_or_default()
            )
            .into());
        }
        eprintln!(
            "{env}: holding {HELD_MIB} MiB reads {change_mib:.2} MiB more ({:.2} → {:.2} MiB)",
            empty / MIB,
            holding / MIB
        );
        Ok(())
    })
}

/// The idle server in `env` reads at least what the same server reads natively: the same
/// bytes plus isolation cannot cost less. One instance after the other, each read settled.
fn not_below_native(env: &str) -> Result<(), Failed> {
    let (native, _) = envs::prepared("native")?;
    let (isolated, _) = envs::prepared(env)?;
    let trial = format!("{env}::memory::not_below_native");
    let settle = settle_for(env);
    let read = |environment: &dyn Environment| -> Result<f64, Failed> {
        let mut memory = 0.0;
        envs::with_instance(&trial, environment, |instance| {
            memory = settled_memory(instance, settle)?;
            Ok(())
        })?;
        Ok(memory)
    };
    let native_bytes = read(native.as_ref())?;
    let isolated_bytes = read(isolated.as_ref())?;
    eprintln!(
        "idle: native {:.2} MiB, {env} {:.2} MiB",
        native_bytes / MIB,
        isolated_bytes / MIB
    );
    if isolated_bytes < native_bytes {
        return Err(format!(
            "{env} read {:.2} MiB idle, less than native's {:.2} MiB ({})",
            isolated_bytes / MIB,
            native_bytes / MIB,
            isolated.label().memory_counts.unwrap_or_default()
        )
        .into());
    }
    Ok(())
}

/// A running `isobench-server` started directly, so the trial knows its pid; killed on drop.
struct Server(std::process::Child);

impl Server {
    fn start() -> Result<Self, Failed> {
        use std::io::BufRead;
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_isobench-server"))
            .args(["--bind", "127.0.0.1", "--port", "0"])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .map_err(|e| format!("starting isobench-server: {e}"))?;
        let mut line = String::new();
        let stdout = child.stdout.take().ok_or("no stdout")?;
        std::io::BufReader::new(stdout)
            .read_line(&mut line)
            .map_err(|e| format!("reading the server's address: {e}"))?;
        if !line.starts_with("listening on") {
            let _ = child.kill();
            return Err(format!("the server printed {line:?}").into());
        }
        Ok(Self(child))
    }

    fn pss(&self) -> Result<f64, Failed> {
        let footprint =
            isobench::probe::footprint::read(&[self.0.id()]).map_err(|e| format!("{e}"))?;
        Ok(footprint.pss_bytes as f64)
    }

    /// The resident set and the part of it backed by a file (the binary's text and
    /// read-only data), bytes.
    fn resident(&self) -> Result<(f64, f64), Failed> {
        let text = std::fs::read_to_string(format!("/proc/{}/smaps_rollup", self.0.id()))
            .map_err(|e| format!("{e}"))?;
        let field = |name: &str| -> Option<f64> {
            let line = text.lines().find(|l| l.starts_with(name))?;
            Some(line.split_whitespace().nth(1)?.parse::<f64>().ok()? * 1024.0)
        };
        match (field("Rss:"), field("Anonymous:")) {
            (Some(rss), Some(anonymous)) => Ok((rss, rss - anonymous)),
            _ => Err(format!("no Rss/Anonymous in smaps_rollup: {text}").into()),
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Two instances of one binary: the text they share is not counted twice. The first
/// instance's figure falls when the second starts, by half of the pages both touched (each
/// now owns half of them), so by more than nothing and by no more than half its own
/// file-backed pages; their two figures together stay below their resident sets together,
/// which count the shared pages in both.
fn shared_text_counted_once() -> Result<(), Failed> {
    let first = Server::start()?;
    std::thread::sleep(Duration::from_millis(300));
    let alone = first.pss()?;
    let (_, text) = first.resident()?;
    let second = Server::start()?;
    std::thread::sleep(Duration::from_millis(300));
    let shared = first.pss()?;
    let both = shared + second.pss()?;
    let resident_sets = first.resident()?.0 + second.resident()?.0;
    let drop = alone - shared;
    eprintln!(
        "first instance alone {:.2} MiB, beside a second {:.2} MiB (file-backed {:.2} MiB); \
         both {:.2} MiB",
        alone / MIB,
        shared / MIB,
        text / MIB,
        both / MIB
    );
    // Both run the same start-up, so they touch most of the same pages of the binary: a
    // fifth of them is a floor the sharing clears by far.
    if drop < 0.2 * text || drop > 0.5 * text + 64.0 * 1024.0 {
        return Err(format!(
            "the first instance's figure fell by {:.2} MiB when a second started: expected \
             between a fifth and a half of its {:.2} MiB of file-backed pages",
            drop / MIB,
            text / MIB
        )
        .into());
    }
    if both >= resident_sets {
        return Err(format!(
            "the two instances read {:.2} MiB together, not less than their resident sets' \
             {:.2} MiB: the shared pages were counted twice",
            both / MIB,
            resident_sets / MIB
        )
        .into());
    }
    Ok(())
}

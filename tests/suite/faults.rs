//! Fault injection, in every environment: `<env>::fault::*`.
//!
//! - `memory_at_cap`: the service's `/memory` caps follow the memory it has; a request at
//!   the cap gets 200 or 503, and the service lives on.
//! - `service_killed` (every environment; under gVisor the kill goes through the engine into
//!   the sandbox, in the VM through the guest's serial console as SysRq),
//!   `stopped_from_outside` (the container rungs), `qemu_killed` (vm): the service or what
//!   holds it dies in the middle of a scenario of `isobench run`; the run records a failed
//!   repetition and goes on.
//! - `output_disk_full`, `output_read_only`: the output directory on a small tmpfs that is
//!   full or read-only, from the start or from the middle of the run.
//! - `sigint_while_<phase>`, `sigterm_while_<phase>`: a signal in each phase of a run.
//!
//! Each run-level trial drives the real `isobench` binary and checks what a user would: the
//! exit code ([`isobench::cli::exit`]), the artifact (if there is one, valid JSON with what
//! had finished), and that nothing is left running (no process carrying the trial's marker,
//! no container owned by the run). Mounting tmpfs needs root, as on the machines this suite
//! runs on; without it those trials fail, they do not skip.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use isobench::cleanup::{PAUSE_AT_ENV, TRACE_PHASES_ENV};
use isobench::cli::exit;
use isobench::docker::Engine;
use isobench::env::{Budget, health};
use isobench::service::memory_limit::MemoryCaps;
use libtest_mimic::{Failed, Trial};
use serde_json::Value;

use super::cleanup::{expect_nothing_left, wait_with_deadline};
use super::envs;
use super::processes::{MARKER_ENV, containers_of, marked_processes};

/// The phases a signal is sent in.
const PHASES: [&str; 4] = ["preparing", "starting", "loading", "writing"];

/// The fault trials of environment `env`.
pub fn trials(env: &'static str) -> Vec<Trial> {
    let mut trials = vec![
        trial(env, "memory_at_cap", memory_at_cap),
        trial(env, "output_disk_full", output_disk_full),
        trial(env, "output_read_only", output_read_only),
    ];
    match env {
        "native" => trials.push(trial(env, "service_killed", service_killed)),
        "container" | "container-host" | "gvisor" => {
            trials.push(trial(env, "service_killed", service_killed));
            trials.push(trial(env, "stopped_from_outside", stopped_from_outside));
        }
        "vm" => {
            trials.push(trial(env, "service_killed", service_killed));
            trials.push(trial(env, "qemu_killed", qemu_killed));
        }
        _ => {}
    }
    for (signal, signal_name) in [(libc::SIGINT, "sigint"), (libc::SIGTERM, "sigterm")] {
        for phase in PHASES {
            trials.push(Trial::test(
                format!("{env}::fault::{signal_name}_while_{phase}"),
                move || signal_in_phase(env, signal, phase),
            ));
        }
    }
    trials
}

fn trial(env: &'static str, name: &str, check: fn(&'static str) -> Result<(), Failed>) -> Trial {
    Trial::test(format!("{env}::fault::{name}"), move || check(env))
}

// ---------------------------------------------------------------------------------------
// The service's memory caps

fn memory_at_cap(env: &'static str) -> Result<(), Failed> {
    let (environment, _) = envs::prepared(env)?;
    let budget_limit_mb = Budget::for_host().memory_limit_bytes >> 20;
    let trial = format!("{env}::fault::memory_at_cap");
    envs::with_instance(&trial, environment.as_ref(), |instance| {
        let url = instance.base_url();
        let (_, before) = health::get_json(url, "/status")?;
        let memory = &before["memory"];
        let number = |value: &Value| value.as_u64().ok_or(format!("/status: {memory}"));
        let limit_mb = number(&memory["limit"]["limit_mb"])?;
        let cap = number(&memory["max_request_mb"])?;
        let budget_mb = number(&memory["budget_mb"])?;
        // Native and container are told the budget's limit; a VM guest reads its MemTotal,
        // its RAM less what the kernel reserves.
        if limit_mb > budget_limit_mb || limit_mb < budget_limit_mb * 3 / 4 {
            return Err(format!(
                "the service's limit is {limit_mb} MiB, the budget's {budget_limit_mb} MiB"
            )
            .into());
        }
        if cap > budget_mb || budget_mb + MemoryCaps::headroom_mb(limit_mb) > limit_mb {
            return Err(format!(
                "cap {cap} MiB, budget {budget_mb} MiB do not fit in {limit_mb} MiB with headroom"
            )
            .into());
        }
        let at_cap = format!("/memory?mb={cap}");
        // Two at the cap at once: each 200 or 503 (the budget admits one at a time).
        let statuses: Vec<u16> = std::thread::scope(|scope| {
            let requests: Vec<_> = (0..2)
                .map(|_| scope.spawn(|| health::get_json(url, &at_cap).map(|(s, _)| s)))
                .collect();
            requests
                .into_iter()
                .map(|request| request.join().map_err(|_| "a request panicked".to_owned()))
                .collect::<Result<Result<Vec<u16>, _>, _>>()
        })?
        .map_err(|e| format!("{e:#}"))?;
        if statuses.iter().any(|status| ![200, 503].contains(status)) {
            return Err(format!("two requests at the cap answered {statuses:?}").into());
        }
        // Alone, a request at the cap is served in full.
        let (status, body) = health::get_json(url, &at_cap)?;
        if status != 200 || body["mb"] != cap {
            return Err(format!("{at_cap} answered {status}: {body}").into());
        }
        let (status, body) = health::get_json(url, &format!("/memory?mb={}", cap + 1))?;
        if status != 400 || body["param"] != "mb" {
            return Err(format!("one MiB over the cap answered {status}: {body}").into());
        }
        let (status, _) = health::get_json(url, "/health")?;
        if status != 200 {
            return Err(format!("/health answered {status} after the requests at the cap").into());
        }
        // The same process, never restarted (a container's PID 1 would be again 1).
        let (_, after) = health::get_json(url, "/status")?;
        let uptime = |body: &Value| body["uptime_s"].as_f64().unwrap_or(0.0);
        if after["pid"] != before["pid"] || uptime(&after) < uptime(&before) {
            return Err(format!("the service restarted: {before} then {after}").into());
        }
        instance
            .resources()
            .map_err(|e| format!("the instance is gone: {e:#}"))?;
        println!("    {env}: limit {limit_mb} MiB, cap {cap} MiB, two at once: {statuses:?}");
        Ok(())
    })
}

// ---------------------------------------------------------------------------------------
// Running `isobench run` with a fault

/// One `isobench run` of one environment, its stderr collected line by line.
struct Run {
    child: Child,
    marker: String,
    output_dir: PathBuf,
    stderr: Arc<Mutex<Vec<String>>>,
}

impl Run {
    /// `isobench run --env ENV -n ROUNDS` on `/health` for 2 s per round, writing into
    /// `output_dir`, phases traced on stderr.
    fn spawn(
        env: &str,
        rounds: u32,
        output_dir: &Path,
        extra_env: &[(&str, &str)],
    ) -> Result<Self, Failed> {
        let marker = format!("fault-{}-{:?}", std::process::id(), Instant::now());
        let mut child = Command::new(env!("CARGO_BIN_EXE_isobench"))
            .args(["run", "--env", env, "-n", &rounds.to_string()])
            .args([
                "--duration",
                "2s",
                "--warmup",
                "0s",
                "--scenarios",
                "health",
            ])
            .arg("--output-dir")
            .arg(output_dir)
            .env(MARKER_ENV, &marker)
            .env(TRACE_PHASES_ENV, "1")
            .envs(extra_env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()?;
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let lines = stderr.clone();
        let pipe = child.stderr.take().ok_or("no stderr pipe")?;
        std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                lines.lock().unwrap_or_else(|p| p.into_inner()).push(line);
            }
        });
        Ok(Self {
            child,
            marker,
            output_dir: output_dir.to_owned(),
            stderr,
        })
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn stderr_text(&self) -> String {
        self.stderr
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .join("\n")
    }

    /// Waits until stderr has had `count` lines equal to `line`.
    fn wait_for_line(&mut self, line: &str, count: usize, limit: Duration) -> Result<(), Failed> {
        let deadline = Instant::now() + limit;
        loop {
            let seen = self
                .stderr
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .iter()
                .filter(|l| l.as_str() == line)
                .count();
            if seen >= count {
                return Ok(());
            }
            if let Some(status) = self.child.try_wait()? {
                return Err(format!(
                    "isobench exited ({status}) before `{line}` ×{count}:\n{}",
                    self.stderr_text()
                )
                .into());
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                return Err(format!(
                    "no `{line}` ×{count} within {limit:?}:\n{}",
                    self.stderr_text()
                )
                .into());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits until the run is in the `round`-th (1-based) load of its scenarios.
    fn wait_for_load(&mut self, round: usize) -> Result<(), Failed> {
        self.wait_for_line("isobench: phase loading", round, Duration::from_secs(600))
    }

    fn wait_exit(&mut self, limit: Duration) -> Result<ExitStatus, Failed> {
        wait_with_deadline(&mut self.child, limit)
    }

    /// Expects exit `code`, then that nothing is left running and that the output
    /// directory holds no half-written file.
    fn expect_exit(&mut self, code: u8, limit: Duration) -> Result<(), Failed> {
        let status = self.wait_exit(limit)?;
        // The reader thread may still be collecting the last lines.
        std::thread::sleep(Duration::from_millis(100));
        if status.code() != Some(i32::from(code)) {
            return Err(format!(
                "expected exit {code}, got {status}; stderr:\n{}",
                self.stderr_text()
            )
            .into());
        }
        expect_nothing_left(self.pid(), &self.marker)?;
        let temporary: Vec<String> = std::fs::read_dir(&self.output_dir)
            .map(|entries| {
                entries
                    .filter_map(Result::ok)
                    .map(|entry| entry.file_name().to_string_lossy().into_owned())
                    .filter(|name| name.ends_with(".tmp") || name.contains("write-check"))
                    .collect()
            })
            .unwrap_or_default();
        if !temporary.is_empty() {
            return Err(format!("left in the output directory: {temporary:?}").into());
        }
        Ok(())
    }

    /// The artifact, if one was written; an error if it is not valid JSON.
    fn artifact(&self) -> Result<Option<Value>, Failed> {
        let path = self.output_dir.join("isobench.json");
        match std::fs::read_to_string(&path) {
            Ok(text) => serde_json::from_str(&text)
                .map(Some)
                .map_err(|e| format!("{} is not valid JSON: {e}", path.display()).into()),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(error) => Err(format!("{}: {error}", path.display()).into()),
        }
    }
}

/// The rounds of the one environment in `artifact`.
fn rounds(artifact: &Value) -> Result<Vec<Value>, Failed> {
    artifact
        .pointer("/environments/0/rounds")
        .and_then(Value::as_array)
        .cloned()
        .ok_or_else(|| format!("the artifact has no rounds: {artifact:.300}").into())
}

/// After a fault in the second of two rounds: the run finished with exit 1, the first
/// round is whole, the second is a recorded failure with a reason.
fn expect_recorded_failure(run: &mut Run) -> Result<(), Failed> {
    run.expect_exit(exit::PARTIAL, Duration::from_secs(180))?;
    let artifact = run.artifact()?.ok_or("no artifact was written")?;
    let rounds = rounds(&artifact)?;
    let failures: Vec<&Value> = rounds
        .iter()
        .filter_map(|round| round.get("failure").filter(|f| !f.is_null()))
        .collect();
    if rounds.len() != 2 || failures.len() != 1 {
        return Err(format!(
            "expected 2 rounds, 1 failed; got {} rounds, {} failed: {failures:?}",
            rounds.len(),
            failures.len()
        )
        .into());
    }
    let reason = failures[0]["reason"].as_str().unwrap_or_default();
    if reason.trim().is_empty() {
        return Err(format!("the failure has no reason: {}", failures[0]).into());
    }
    println!("    recorded: {}", failures[0]);
    Ok(())
}

fn service_killed(env: &'static str) -> Result<(), Failed> {
    let dir = tempfile::tempdir()?;
    let mut run = Run::spawn(env, 2, dir.path(), &[])?;
    run.wait_for_load(2)?;
    std::thread::sleep(Duration::from_millis(700));
    if env == "gvisor" {
        // The service is not a host process under gVisor: the engine has runsc deliver the
        // SIGKILL to it inside the sandbox.
        docker(&["kill", "--signal", "KILL", &running_container(&run)?])?;
    } else if env == "vm" {
        sysrq_kill_in_guest(&run)?;
    } else {
        let pid = service_pid(env, &run)?;
        // SAFETY: a plain syscall on the service process this trial's run started.
        unsafe { libc::kill(pid as i32, libc::SIGKILL) };
    }
    expect_recorded_failure(&mut run)
}

/// Kills every guest process but init, the service among them, from outside the run: the
/// magic SysRq key `i` (SIGKILL to all but PID 1) typed on the guest's serial console, which
/// is QEMU's stdin, the pipe the run holds open. Writing to that pipe through
/// `/proc/<qemu>/fd/0` is what `QemuInstance::kill_guest_service` does from inside: the
/// console multiplexer's `C-a b` escape (a serial BREAK), then `i`.
fn sysrq_kill_in_guest(run: &Run) -> Result<(), Failed> {
    let qemu = marked_processes(&run.marker)
        .first()
        .copied()
        .ok_or("no QEMU process found")?;
    let mut console = std::fs::OpenOptions::new()
        .write(true)
        .open(format!("/proc/{qemu}/fd/0"))
        .map_err(|e| format!("opening QEMU's console input: {e}"))?;
    console.write_all(b"\x01b")?;
    console.flush()?;
    // The SysRq key must come as a character of its own after the break.
    std::thread::sleep(Duration::from_millis(100));
    console.write_all(b"i")?;
    console.flush()?;
    Ok(())
}

/// The host pid of the service process of `run`: the native server, or the container's.
fn service_pid(env: &str, run: &Run) -> Result<u32, Failed> {
    match env {
        "native" => marked_processes(&run.marker)
            .first()
            .copied()
            .ok_or_else(|| "no server process found".into()),
        "container" | "container-host" => {
            let id = running_container(run)?;
            let engine = Engine::connect().map_err(|e| format!("{e:#}"))?;
            let state = engine
                .inspect_container(&id)
                .map_err(|e| format!("{e:#}"))?
                .state
                .ok_or("the container has no state")?;
            state
                .pid
                .filter(|pid| *pid > 0)
                .map(|pid| pid as u32)
                .ok_or_else(|| format!("container {id} has no process").into())
        }
        other => Err(format!("no service pid for {other}").into()),
    }
}

fn running_container(run: &Run) -> Result<String, Failed> {
    containers_of(run.pid())?
        .into_iter()
        .next()
        .ok_or_else(|| "no container found".into())
}

fn stopped_from_outside(env: &'static str) -> Result<(), Failed> {
    let dir = tempfile::tempdir()?;
    let mut run = Run::spawn(env, 2, dir.path(), &[])?;
    run.wait_for_load(2)?;
    std::thread::sleep(Duration::from_millis(700));
    docker(&["stop", "--time", "1", &running_container(&run)?])?;
    expect_recorded_failure(&mut run)
}

/// Runs the docker CLI with `args`; its failure is the trial's.
fn docker(args: &[&str]) -> Result<(), Failed> {
    let status = Command::new("docker")
        .args(args)
        .stdout(Stdio::null())
        .status()?;
    if !status.success() {
        return Err(format!("docker {}: {status}", args.join(" ")).into());
    }
    Ok(())
}

fn qemu_killed(env: &'static str) -> Result<(), Failed> {
    let dir = tempfile::tempdir()?;
    let mut run = Run::spawn(env, 2, dir.path(), &[])?;
    run.wait_for_load(2)?;
    std::thread::sleep(Duration::from_millis(700));
    let qemu = marked_processes(&run.marker)
        .first()
        .copied()
        .ok_or("no QEMU process found")?;
    // SAFETY: a plain syscall on the QEMU this trial's run started.
    unsafe { libc::kill(qemu as i32, libc::SIGKILL) };
    expect_recorded_failure(&mut run)
}

// ---------------------------------------------------------------------------------------
// The output directory

/// A small tmpfs mounted for one trial, unmounted on drop.
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    fn mount(size: &str) -> Result<Self, Failed> {
        let dir = tempfile::tempdir()?;
        mount(&[
            "-t",
            "tmpfs",
            "-o",
            &format!("size={size}"),
            "isobench-fault",
            &dir.path().to_string_lossy(),
        ])?;
        Ok(Self { dir })
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn remount(&self, options: &str) -> Result<(), Failed> {
        mount(&[
            "-o",
            &format!("remount,{options}"),
            &self.path().to_string_lossy(),
        ])
    }

    /// Writes a file until the file system is full.
    fn fill(&self) -> Result<(), Failed> {
        let mut file = std::fs::File::create(self.path().join("filler"))?;
        let chunk = vec![0xA5u8; 64 * 1024];
        loop {
            match file.write_all(&chunk) {
                Ok(()) => {}
                Err(error) if error.raw_os_error() == Some(libc::ENOSPC) => return Ok(()),
                Err(error) => return Err(format!("filling the tmpfs: {error}").into()),
            }
        }
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}

fn mount(args: &[&str]) -> Result<(), Failed> {
    let output = Command::new("mount").args(args).output()?;
    if output.status.success() {
        Ok(())
    } else {
        Err(format!(
            "mount {args:?}: {} (these trials need root)",
            String::from_utf8_lossy(&output.stderr).trim()
        )
        .into())
    }
}

/// A run whose output directory cannot be written from the start fails in seconds with
/// `message`, exit 3, having started nothing; one that loses its directory after the first
/// round fails with exit 3 and leaves the first round's artifact whole.
fn output_fault(
    env: &'static str,
    break_it: impl Fn(&Tmpfs) -> Result<(), Failed>,
    mend_it: impl Fn(&Tmpfs) -> Result<(), Failed>,
    message: &str,
) -> Result<(), Failed> {
    let tmpfs = Tmpfs::mount("8m")?;
    let output = tmpfs.path().join("out");
    std::fs::create_dir(&output)?;

    break_it(&tmpfs)?;
    let mut run = Run::spawn(env, 1, &output, &[])?;
    run.expect_exit(exit::OUTPUT, Duration::from_secs(60))?;
    let stderr = run.stderr_text();
    if !stderr.contains(message) || stderr.contains("phase starting") {
        return Err(format!("expected `{message}` before anything started:\n{stderr}").into());
    }
    if run.artifact()?.is_some() {
        return Err("an artifact appeared in an unwritable directory".into());
    }

    mend_it(&tmpfs)?;
    let mut run = Run::spawn(env, 2, &output, &[])?;
    run.wait_for_load(2)?;
    break_it(&tmpfs)?;
    run.expect_exit(exit::OUTPUT, Duration::from_secs(180))?;
    let stderr = run.stderr_text();
    if !stderr.contains(message) {
        return Err(format!("expected `{message}`:\n{stderr}").into());
    }
    let artifact = run
        .artifact()?
        .ok_or("the first round's artifact is gone")?;
    let rounds = rounds(&artifact)?;
    if rounds.len() != 1 {
        return Err(format!("expected the first round only, got {}", rounds.len()).into());
    }
    Ok(())
}

fn output_disk_full(env: &'static str) -> Result<(), Failed> {
    output_fault(
        env,
        Tmpfs::fill,
        |tmpfs| Ok(std::fs::remove_file(tmpfs.path().join("filler"))?),
        "No space left on device",
    )
}

fn output_read_only(env: &'static str) -> Result<(), Failed> {
    output_fault(
        env,
        |tmpfs| tmpfs.remount("ro"),
        |tmpfs| tmpfs.remount("rw"),
        "Read-only file system",
    )
}

// ---------------------------------------------------------------------------------------
// Signals

fn signal_in_phase(env: &'static str, signal: i32, phase: &'static str) -> Result<(), Failed> {
    let dir = tempfile::tempdir()?;
    let mut run = Run::spawn(env, 2, dir.path(), &[(PAUSE_AT_ENV, phase)])?;
    if env == "vm" && phase == "starting" {
        // QEMU's start has no pause point: the boot itself takes long enough.
        run.wait_for_line("isobench: phase starting", 1, Duration::from_secs(600))?;
        let deadline = Instant::now() + Duration::from_secs(60);
        while marked_processes(&run.marker).is_empty() {
            if Instant::now() > deadline {
                return Err("QEMU never started".into());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    } else {
        let paused = format!("isobench: paused at {phase} ({PAUSE_AT_ENV})");
        run.wait_for_line(&paused, 1, Duration::from_secs(600))?;
    }
    // SAFETY: signalling the child this trial started.
    unsafe { libc::kill(run.pid() as i32, signal) };
    let code = if signal == libc::SIGINT {
        exit::INTERRUPTED
    } else {
        exit::TERMINATED
    };
    run.expect_exit(code, Duration::from_secs(15))?;
    let stderr = run.stderr_text();
    if !stderr.contains(&format!("interrupted while {phase}")) {
        return Err(format!("the message does not say the phase:\n{stderr}").into());
    }
    // Whatever was written is whole.
    if let Some(artifact) = run.artifact()? {
        rounds(&artifact)?;
    }
    Ok(())
}

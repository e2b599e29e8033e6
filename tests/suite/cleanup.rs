//! Trials that check nothing is left behind when a trial fails or is interrupted.
//!
//! Each runs this very test binary as a child on one trial, makes it fail on purpose or
//! interrupts it with SIGINT once its instance is up, then looks for leftovers: containers
//! labelled with the child's pid, and server or QEMU processes carrying the child's marker in
//! their environment (children inherit it).

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use libtest_mimic::{Failed, Trial};

use super::envs::FAIL_ON_PURPOSE_ENV;
use super::processes::{MARKER_ENV, containers_of, marked_processes};

/// The cleanup trials.
pub fn trials() -> Vec<Trial> {
    let mut trials = vec![Trial::test(
        "harness::sweep_removes_only_orphans",
        sweep_removes_only_orphans,
    )];
    for &env in super::envs::ENVIRONMENTS {
        trials.push(Trial::test(
            format!("harness::{env}_failed_trial_leaves_nothing"),
            move || failed_trial_leaves_nothing(env),
        ));
        trials.push(Trial::test(
            format!("harness::{env}_interrupted_trial_leaves_nothing"),
            move || interrupted_trial_leaves_nothing(env),
        ));
    }
    trials
}

fn spawn_child(trial: &str, marker: &str, fail: bool) -> Result<Child, Failed> {
    let mut command = Command::new(std::env::current_exe()?);
    command
        .args(["--exact", trial, "--test-threads", "1"])
        .env(MARKER_ENV, marker)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    if fail {
        command.env(FAIL_ON_PURPOSE_ENV, trial);
    }
    Ok(command.spawn()?)
}

fn marker() -> String {
    format!("{}-{:?}", std::process::id(), Instant::now())
}

fn failed_trial_leaves_nothing(env: &str) -> Result<(), Failed> {
    let trial = format!("{env}::health");
    let marker = marker();
    let mut child = spawn_child(&trial, &marker, true)?;
    let pid = child.id();
    let status = wait_with_deadline(&mut child, Duration::from_secs(120))?;
    if status.success() {
        return Err(format!("{trial} was made to fail but passed").into());
    }
    expect_nothing_left(pid, &marker)
}

fn interrupted_trial_leaves_nothing(env: &str) -> Result<(), Failed> {
    let trial = format!("{env}::perf::throughput");
    let marker = marker();
    let mut child = spawn_child(&trial, &marker, false)?;
    let pid = child.id();
    // Interrupt once the instance is up: its server process (native) or container exists.
    let deadline = Instant::now() + Duration::from_secs(120);
    while !instance_exists(pid, &marker)? {
        if Instant::now() > deadline || child.try_wait()?.is_some() {
            let _ = child.kill();
            return Err(format!("{trial} never started an instance").into());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(500));
    // SAFETY: signalling our own child.
    unsafe { libc::kill(pid as i32, libc::SIGINT) };
    let interrupted = Instant::now();
    wait_with_deadline(&mut child, Duration::from_secs(20))?;
    println!(
        "    {trial} exited {:.1} s after SIGINT",
        interrupted.elapsed().as_secs_f64()
    );
    expect_nothing_left(pid, &marker)
}

pub fn wait_with_deadline(
    child: &mut Child,
    limit: Duration,
) -> Result<std::process::ExitStatus, Failed> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(status);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            return Err(format!("the child did not exit within {limit:?}").into());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn instance_exists(pid: u32, marker: &str) -> Result<bool, Failed> {
    Ok(!marked_processes(marker).is_empty() || !containers_of(pid)?.is_empty())
}

/// Waits up to 10 s for everything `pid` (containers) and `marker` (processes) started to
/// be gone; fails naming what is left.
pub fn expect_nothing_left(pid: u32, marker: &str) -> Result<(), Failed> {
    // Removal is asynchronous in the engine and the kernel; allow a moment.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let processes = marked_processes(marker);
        let containers = containers_of(pid)?;
        if processes.is_empty() && containers.is_empty() {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(
                format!("left behind: processes {processes:?}, containers {containers:?}").into(),
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A pid that no process has: a child that has exited and been reaped.
fn dead_pid() -> Result<u32, Failed> {
    let mut child = Command::new("true").spawn()?;
    let pid = child.id();
    child.wait()?;
    Ok(pid)
}

/// A container or process this trial made, removed on drop whatever the sweep did.
enum Made {
    Container(String),
    Process(Child),
}

impl Drop for Made {
    fn drop(&mut self) {
        match self {
            Made::Container(id) => {
                let _ = Command::new("docker")
                    .args(["rm", "-f", id.as_str()])
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status();
            }
            Made::Process(child) => {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}

fn container_owned_by(owner: u32, image: &str) -> Result<Made, Failed> {
    use isobench::cleanup::{CONTAINER_LABEL, OWNER_LABEL};
    let output = Command::new("docker")
        .args(["create", "--label", &format!("{CONTAINER_LABEL}=1")])
        .args(["--label", &format!("{OWNER_LABEL}={owner}"), image])
        .output()?;
    if !output.status.success() {
        return Err(format!("docker create: {}", String::from_utf8_lossy(&output.stderr)).into());
    }
    Ok(Made::Container(
        String::from_utf8_lossy(&output.stdout).trim().to_owned(),
    ))
}

fn qemu_owned_by(owner: u32) -> Result<Made, Failed> {
    let child = Command::new("qemu-system-x86_64")
        .args(["-M", "none", "-nodefaults", "-display", "none", "-S"])
        .args(["-name", &isobench::env::orphans::qemu_name(owner)])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    Ok(Made::Process(child))
}

fn container_exists(id: &str) -> Result<bool, Failed> {
    Ok(Command::new("docker")
        .args(["inspect", id])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()?
        .success())
}

/// The sweep removes containers and QEMU processes of a dead owner, and leaves those of a
/// live one (this trial) alone.
fn sweep_removes_only_orphans() -> Result<(), Failed> {
    use isobench::docker::Engine;
    use isobench::env::container::server_image;
    let engine = Engine::connect().map_err(|e| format!("{e:#}"))?;
    let (server, _) =
        isobench::subject::server_binary::static_server().map_err(|e| format!("{e:#}"))?;
    let (built, _) = server_image::ensure_image(&engine, &server).map_err(|e| format!("{e:#}"))?;
    let dead = dead_pid()?;
    let alive = std::process::id();
    let orphan = container_owned_by(dead, &built.reference())?;
    let owned = container_owned_by(alive, &built.reference())?;
    let mut orphan_qemu = qemu_owned_by(dead)?;
    let mut owned_qemu = qemu_owned_by(alive)?;
    // VM instance directories an interrupted run could not remove, one kept on purpose.
    let instance_dir = |owner: u32, kept: bool| -> Result<std::path::PathBuf, Failed> {
        let dir = tempfile::Builder::new()
            .prefix(&isobench::env::orphans::vm_instance_dir_prefix(owner))
            .tempdir()
            .map_err(|e| e.to_string())?
            .keep();
        if kept {
            std::fs::write(dir.join(isobench::env::orphans::KEPT_MARKER), "")
                .map_err(|e| e.to_string())?;
        }
        Ok(dir)
    };
    let orphan_dir = instance_dir(dead, false)?;
    let owned_dir = instance_dir(alive, false)?;
    let kept_dir = instance_dir(dead, true)?;
    // QEMU reads its command line at once; give /proc a moment to show the process.
    std::thread::sleep(Duration::from_millis(300));

    let swept = isobench::env::orphans::sweep_orphans();
    let note = swept.note().unwrap_or_default();
    println!("    {note}");

    let (Made::Container(orphan_id), Made::Container(owned_id)) = (&orphan, &owned) else {
        unreachable!()
    };
    if container_exists(orphan_id)? {
        return Err(format!("the dead owner's container is still there: {note}").into());
    }
    if !container_exists(owned_id)? {
        return Err("the sweep removed a container whose owner is alive".into());
    }
    let (Made::Process(orphan_child), Made::Process(owned_child)) =
        (&mut orphan_qemu, &mut owned_qemu)
    else {
        unreachable!()
    };
    let exited = wait_with_deadline(orphan_child, Duration::from_secs(5))?;
    if exited.success() {
        return Err("the orphan QEMU exited by itself, not killed by the sweep".into());
    }
    if owned_child.try_wait()?.is_some() {
        return Err("the sweep killed a QEMU whose owner is alive".into());
    }
    let vm_dirs = (orphan_dir.exists(), owned_dir.exists(), kept_dir.exists());
    for dir in [&owned_dir, &kept_dir] {
        let _ = std::fs::remove_dir_all(dir);
    }
    if vm_dirs != (false, true, true) {
        return Err(format!(
            "VM instance directories (orphan, owned, kept) exist after the sweep: {vm_dirs:?}: {note}"
        )
        .into());
    }
    if !note.contains(&format!("owner pid {dead}")) || note.contains(&format!("owner pid {alive}"))
    {
        return Err(format!("the note does not say what was removed: {note}").into());
    }
    Ok(())
}

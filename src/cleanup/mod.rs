//! Cleanup of everything a run started, also when it is interrupted.
//!
//! Each instance registers what it started (a child process, a container) and unregisters
//! when it stops. [`install_signal_handlers`] makes SIGINT and SIGTERM release whatever is
//! still registered before the process exits, since neither `Drop` nor unwinding runs on a
//! signal. Children are additionally started with `PR_SET_PDEATHSIG` (see
//! [`kill_with_parent`]) so even a SIGKILLed isobench leaves no process behind. What the
//! kernel cannot reclaim for us carries its owner's pid: containers an owner label
//! ([`OWNER_LABEL`]), QEMU a `-name`, a Vagrant machine an owner file; every run and every
//! suite starts with the orphan sweep ([`crate::env::orphans`]), which removes those whose
//! owner is gone, and only those.
//!
//! The run also records which [`Phase`] it is in, so an interrupt says what it cut short;
//! `ISOBENCH_PAUSE_AT=<phase>` holds the run at the start of that phase for a moment, so
//! fault-injection tests can send their signal inside a given phase.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::docker::Engine;

/// Label put on every container isobench starts.
pub const CONTAINER_LABEL: &str = "isobench";
/// Label holding the pid of the isobench process that started the container.
pub const OWNER_LABEL: &str = "isobench.owner-pid";

/// Whether the isobench process `pid` still exists. A pid reused by another process counts
/// as alive: the sweep then leaves an orphan in place, never removes what someone owns.
pub fn owner_alive(pid: u32) -> bool {
    pid != 0 && std::path::Path::new(&format!("/proc/{pid}")).exists()
}

/// Both labels, as the engine API takes them for a container this process creates.
pub fn owner_labels() -> std::collections::HashMap<String, String> {
    std::collections::HashMap::from([
        (CONTAINER_LABEL.to_owned(), "1".to_owned()),
        (OWNER_LABEL.to_owned(), std::process::id().to_string()),
    ])
}

/// Something started that must not outlive the run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resource {
    /// A child process (killed with SIGKILL, with its process group).
    Process(u32),
    /// A container (force-removed).
    Container(String),
    /// Something released by running a command (a Vagrant machine: `vagrant destroy -f`).
    Command(ReleaseCommand),
    /// A directory isobench made for an instance (removed with everything in it).
    Directory(PathBuf),
    /// A kernel setting isobench changed for a measurement (a sysfs file), and the value
    /// to write back.
    Setting {
        /// The file.
        path: PathBuf,
        /// What it held before.
        value: String,
    },
}

/// A command that releases a resource, recorded so it can run from the signal handler.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReleaseCommand {
    /// What it releases, for messages.
    pub what: String,
    program: OsString,
    args: Vec<OsString>,
    envs: Vec<(OsString, OsString)>,
    dir: Option<PathBuf>,
}

/// How long a release command may run before it is abandoned (and reported).
const RELEASE_COMMAND_TIMEOUT: Duration = Duration::from_secs(120);

impl ReleaseCommand {
    /// Records `command` (program, arguments, environment, directory) to release `what`.
    pub fn from_command(what: impl Into<String>, command: &Command) -> Self {
        Self {
            what: what.into(),
            program: command.get_program().to_owned(),
            args: command.get_args().map(ToOwned::to_owned).collect(),
            envs: command
                .get_envs()
                .filter_map(|(key, value)| Some((key.to_owned(), value?.to_owned())))
                .collect(),
            dir: command.get_current_dir().map(ToOwned::to_owned),
        }
    }

    /// Runs the command to completion (bounded by a timeout).
    pub fn run(&self) -> anyhow::Result<()> {
        let mut command = Command::new(&self.program);
        command
            .args(&self.args)
            .envs(self.envs.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if let Some(dir) = &self.dir {
            command.current_dir(dir);
        }
        let mut child = command.spawn()?;
        let deadline = Instant::now() + RELEASE_COMMAND_TIMEOUT;
        loop {
            if let Some(status) = child.try_wait()? {
                anyhow::ensure!(status.success(), "{status}");
                return Ok(());
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                anyhow::bail!("did not finish within {RELEASE_COMMAND_TIMEOUT:?}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

static LIVE: Mutex<BTreeMap<u64, Resource>> = Mutex::new(BTreeMap::new());
static INTERRUPTED: AtomicBool = AtomicBool::new(false);
static NEXT: AtomicU64 = AtomicU64::new(0);

/// Keeps a resource registered while alive; dropping it unregisters (the owner cleaned up).
#[derive(Debug)]
pub struct Registration(u64);

impl Drop for Registration {
    fn drop(&mut self) {
        live().remove(&self.0);
    }
}

fn live() -> std::sync::MutexGuard<'static, BTreeMap<u64, Resource>> {
    // A panic while holding the lock poisons it; the map itself is still consistent.
    LIVE.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Registers a resource for release on interrupt.
pub fn register(resource: Resource) -> Registration {
    let key = NEXT.fetch_add(1, Ordering::Relaxed);
    live().insert(key, resource);
    Registration(key)
}

/// Releases every registered resource now, the latest first (like destructors: what was
/// started inside another is released before it); returns how many there were.
pub fn release_all() -> usize {
    let mut resources: Vec<Resource> = std::mem::take(&mut *live()).into_values().rev().collect();
    let mut engine = None;
    // A container is registered once its start returns; one interrupted while starting (a
    // gVisor sandbox takes seconds to start) is found by its owner label instead.
    if let Ok(connected) = Engine::connect() {
        let owner = std::process::id().to_string();
        if let Ok(starting) = connected.containers_labelled(OWNER_LABEL, &owner) {
            for (id, _) in starting {
                if !resources.contains(&Resource::Container(id.clone())) {
                    resources.push(Resource::Container(id));
                }
            }
        }
        engine = Some(connected);
    }
    for resource in &resources {
        match resource {
            Resource::Process(pid) => kill_group(*pid),
            Resource::Container(id) => {
                if engine.is_none() {
                    engine = Engine::connect().ok();
                }
                if let Some(engine) = &engine
                    && let Err(error) = engine.force_remove(id)
                {
                    eprintln!("isobench: could not remove container {id}: {error:#}");
                }
            }
            Resource::Command(command) => {
                if let Err(error) = command.run() {
                    eprintln!("isobench: could not release {}: {error:#}", command.what);
                }
            }
            Resource::Directory(path) => {
                if let Err(error) = std::fs::remove_dir_all(path)
                    && error.kind() != std::io::ErrorKind::NotFound
                {
                    eprintln!("isobench: could not remove {}: {error}", path.display());
                }
            }
            Resource::Setting { path, value } => {
                if let Err(error) = restore_setting(path, value) {
                    eprintln!("isobench: could not restore {}: {error}", path.display());
                }
            }
        }
    }
    resources.len()
}

/// Writes a changed kernel setting back.
pub fn restore_setting(path: &Path, value: &str) -> std::io::Result<()> {
    std::fs::write(path, value)
}

/// What is registered now, oldest first (for tests of what registers).
#[cfg(test)]
pub(crate) fn registered() -> Vec<Resource> {
    live().values().cloned().collect()
}

/// Container starts under way: between the engine's create call and the registration of
/// what it created, a container is in no list a signal handler could read.
static STARTING: AtomicUsize = AtomicUsize::new(0);

/// Longest wait, on a signal, for starts under way to register what they created.
const STARTING_GRACE: Duration = Duration::from_secs(10);

/// Marks a container start under way until dropped (after its container is registered).
#[must_use = "the start counts as under way only while the guard lives"]
pub struct Starting(());

impl Drop for Starting {
    fn drop(&mut self) {
        STARTING.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Marks a container start under way; drop the guard once its container is registered.
pub fn starting() -> Starting {
    STARTING.fetch_add(1, Ordering::SeqCst);
    Starting(())
}

/// Waits (bounded) for container starts under way to register or fail; true if any was
/// under way. A create call in flight when a signal came completes after the handler's first
/// look, and its container would outlive the run.
fn wait_for_starts() -> bool {
    let deadline = Instant::now() + STARTING_GRACE;
    let mut waited = false;
    while STARTING.load(Ordering::SeqCst) > 0 && Instant::now() < deadline {
        waited = true;
        std::thread::sleep(Duration::from_millis(20));
    }
    waited
}

/// Sends SIGKILL to a process and its process group.
pub fn kill_group(pid: u32) {
    // SAFETY: plain syscalls on pids we started; a stale pid at worst gets ESRCH.
    unsafe {
        libc::kill(-(pid as i32), libc::SIGKILL);
        libc::kill(pid as i32, libc::SIGKILL);
    }
}

/// Starts the child in its own process group and has the kernel kill it when the thread
/// that spawned it dies, so nothing survives an isobench that was killed outright. The
/// spawning thread must therefore live as long as the child (instances are used on the
/// thread that started them).
pub fn kill_with_parent(command: &mut Command) {
    command.process_group(0);
    // SAFETY: prctl is async-signal-safe.
    unsafe {
        command.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) == 0 {
                Ok(())
            } else {
                Err(std::io::Error::last_os_error())
            }
        });
    }
}

/// On SIGINT or SIGTERM: release everything registered, then exit with 128 + the signal.
/// Call once, early, from a binary's `main`.
pub fn install_signal_handlers() -> std::io::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let (mut interrupt, mut terminate) = runtime.block_on(async {
        Ok::<_, std::io::Error>((
            signal(SignalKind::interrupt())?,
            signal(SignalKind::terminate())?,
        ))
    })?;
    std::thread::Builder::new()
        .name("isobench-signals".into())
        .spawn(move || {
            let code = runtime.block_on(async {
                tokio::select! {
                    _ = interrupt.recv() => 130,
                    _ = terminate.recv() => 143,
                }
            });
            INTERRUPTED.store(true, Ordering::SeqCst);
            let phase = current_phase();
            let mut released = release_all();
            if wait_for_starts() {
                released += release_all();
            }
            let during = phase.map_or(String::new(), |phase| format!(" while {}", phase.name()));
            eprintln!("isobench: interrupted{during}; stopped {released} running instance(s)");
            std::process::exit(code);
        })?;
    Ok(())
}

/// Whether a signal is being handled: the process is about to exit with 128 + the signal.
pub fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::SeqCst)
}

/// Returns at once unless a signal is being handled; then blocks, so that the work the
/// interrupt cut short (and now fails) does not exit with its own error before the handler
/// has released everything and exited with the signal's code.
pub fn wait_if_interrupted() {
    while interrupted() {
        std::thread::park();
    }
}

/// The phases of a run, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Preparing environments (builds, images).
    Preparing = 1,
    /// Starting an instance.
    Starting = 2,
    /// Putting load on an instance.
    Loading = 3,
    /// Writing the artifact and the reports.
    Writing = 4,
}

impl Phase {
    const ALL: [Phase; 4] = [
        Phase::Preparing,
        Phase::Starting,
        Phase::Loading,
        Phase::Writing,
    ];

    /// The phase's name, as `ISOBENCH_PAUSE_AT` takes it.
    pub fn name(self) -> &'static str {
        match self {
            Phase::Preparing => "preparing",
            Phase::Starting => "starting",
            Phase::Loading => "loading",
            Phase::Writing => "writing",
        }
    }
}

static PHASE: AtomicU8 = AtomicU8::new(0);
static PAUSED: AtomicBool = AtomicBool::new(false);

/// Environment variable naming a phase to pause at, once, for [`PAUSE`]: lets a test send
/// a signal while the run is certainly in that phase.
pub const PAUSE_AT_ENV: &str = "ISOBENCH_PAUSE_AT";
/// How long [`PAUSE_AT_ENV`] holds the run.
pub const PAUSE: Duration = Duration::from_secs(20);
/// Environment variable that, set to anything, makes the run print `isobench: phase NAME`
/// on stderr at each phase it enters (tests inject faults in a given phase by it).
pub const TRACE_PHASES_ENV: &str = "ISOBENCH_TRACE_PHASES";

/// Records that the run enters `phase`, then pauses there if [`PAUSE_AT_ENV`] says so.
pub fn enter_phase(phase: Phase) {
    record_phase(phase);
    pause_point(phase);
}

/// Records that the run enters `phase` without pausing: for phases whose interesting
/// moment comes later (starting: once something was started; see [`pause_point`]).
pub fn record_phase(phase: Phase) {
    PHASE.store(phase as u8, Ordering::SeqCst);
    if std::env::var_os(TRACE_PHASES_ENV).is_some() {
        eprintln!("isobench: phase {}", phase.name());
    }
}

/// Pauses for [`PAUSE`] if [`PAUSE_AT_ENV`] names `phase`, the run is in that phase, and no
/// pause happened yet. The phase check matters where preparing starts something itself (a
/// runtime's trial container while preparing gVisor passes the `starting` point).
pub fn pause_point(phase: Phase) {
    if std::env::var(PAUSE_AT_ENV).is_ok_and(|name| name == phase.name())
        && current_phase() == Some(phase)
        && !PAUSED.swap(true, Ordering::SeqCst)
    {
        eprintln!("isobench: paused at {} ({PAUSE_AT_ENV})", phase.name());
        std::thread::sleep(PAUSE);
    }
}

/// The phase the run is in, if it has entered one.
pub fn current_phase() -> Option<Phase> {
    let value = PHASE.load(Ordering::SeqCst);
    Phase::ALL.into_iter().find(|phase| *phase as u8 == value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owners_are_alive_or_not() {
        assert!(owner_alive(std::process::id()));
        assert!(!owner_alive(0));
        // Pids are below 2^22 on Linux (pid_max's ceiling).
        assert!(!owner_alive(u32::MAX - 1));
    }

    #[test]
    fn an_interrupt_removes_registered_directories() {
        // nextest runs each test in a process of its own: nothing else is registered here.
        let dir = tempfile::tempdir().unwrap().keep();
        std::fs::write(dir.join("left-by-files"), b"x").unwrap();
        let _registration = register(Resource::Directory(dir.clone()));
        assert_eq!(release_all(), 1);
        assert!(!dir.exists());
    }

    #[test]
    fn release_commands_run_with_their_environment() {
        let dir = std::env::temp_dir();
        let mut command = Command::new("sh");
        command
            .args(["-c", "test \"$ISOBENCH_RELEASE_TEST\" = yes"])
            .env("ISOBENCH_RELEASE_TEST", "yes")
            .current_dir(&dir);
        ReleaseCommand::from_command("a test", &command)
            .run()
            .unwrap();
        command.env("ISOBENCH_RELEASE_TEST", "no");
        assert!(
            ReleaseCommand::from_command("a test", &command)
                .run()
                .is_err()
        );
    }
}

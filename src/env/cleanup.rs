//! Cleanup of everything a run started, also when it is interrupted.
//!
//! Each instance registers what it started (a child process, a container) and unregisters
//! when it stops. [`install_signal_handlers`] makes SIGINT and SIGTERM release whatever is
//! still registered before the process exits, since neither `Drop` nor unwinding runs on a
//! signal. Children are additionally started with `PR_SET_PDEATHSIG` (see
//! [`kill_with_parent`]) so even a SIGKILLed isobench leaves no process behind; containers
//! carry an owner label so a later run can sweep those of a dead owner ([`sweep_orphans`]).

use std::collections::BTreeMap;
use std::os::unix::process::CommandExt;
use std::process::Command;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use crate::env::container::engine::Engine;

/// Label put on every container isobench starts.
pub const CONTAINER_LABEL: &str = "isobench";
/// Label holding the pid of the isobench process that started the container.
pub const OWNER_LABEL: &str = "isobench.owner-pid";

/// Something started that must not outlive the run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resource {
    /// A child process (killed with SIGKILL, with its process group).
    Process(u32),
    /// A container (force-removed).
    Container(String),
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

/// Releases every registered resource now; returns how many there were.
pub fn release_all() -> usize {
    let mut resources: Vec<Resource> = std::mem::take(&mut *live()).into_values().collect();
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
        }
    }
    resources.len()
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
            let released = release_all();
            eprintln!("isobench: interrupted; stopped {released} running instance(s)");
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

/// Removes containers left by isobench processes that no longer exist (killed outright).
pub fn sweep_orphans() -> anyhow::Result<usize> {
    let engine = match Engine::connect() {
        Ok(engine) => engine,
        Err(_) => return Ok(0),
    };
    let mut removed = 0;
    for (id, labels) in engine.containers_labelled(CONTAINER_LABEL, "1")? {
        let owner_alive = labels
            .get(OWNER_LABEL)
            .and_then(|pid| pid.parse::<u32>().ok())
            .is_some_and(|pid| std::path::Path::new(&format!("/proc/{pid}")).exists());
        if !owner_alive {
            engine.force_remove(&id)?;
            removed += 1;
        }
    }
    Ok(removed)
}

//! One boot, start to first answer: a free port, QEMU spawned and supervised, its console
//! read, the guest's network awaited and then its health; a lost port race retried, a
//! failure explained from QEMU's stderr and the console's last lines.

use std::fs;
use std::net::TcpListener;
use std::path::Path;
use std::process::ChildStdin;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::super::accel;
use super::super::child::{Supervised, spawn_supervised};
use super::super::console::{self, ConsoleLog};
use super::super::guest::PreparedGuest;
use super::command::{BootPlan, Qemu, qemu_command};
use super::instance::{QemuInstance, tail_lines};
use super::{BOOT_TIMEOUT_ENV, KVM_BOOT_TIMEOUT, TCG_BOOT_TIMEOUT};
use crate::artifact::Accel;
use crate::env::{Budget, health};

/// How often a boot is retried when another process took the chosen port first.
const PORT_ATTEMPTS: usize = 5;

/// A free 127.0.0.1 port: bind port 0 and release it. Another process may take it before
/// QEMU binds it; [`boot`] notices and retries with a new one.
pub(super) fn free_port() -> std::io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// Why no VM came up.
#[derive(Debug, thiserror::Error)]
pub enum BootError {
    /// The instance directory could not be made.
    #[error("creating the instance directory: {0}")]
    InstanceDir(std::io::Error),
    /// QEMU ran and the guest did not answer (what QEMU and the console said is in the
    /// message); `kept` is the instance directory left for the user to read.
    #[error("{message}{}", kept.as_ref().map_or_else(String::new, |dir| format!(" (console log kept in {})", dir.display())))]
    Failed {
        /// What went wrong, with QEMU's stderr and the console's last lines.
        message: String,
        /// The kept instance directory, when the caller asked to keep it.
        kept: Option<std::path::PathBuf>,
    },
    /// Other processes took every port chosen.
    #[error("no free port after {attempts} attempts: {last}")]
    NoFreePort {
        /// Boots tried.
        attempts: usize,
        /// The last attempt's failure.
        last: String,
    },
}

/// Why one boot attempt failed.
#[derive(Debug)]
pub(super) struct BootFailure {
    pub(super) message: String,
    pub(super) port_taken: bool,
}

/// Boots one VM and waits for its first 200 on `/health`; on failure QEMU is killed and the
/// instance directory kept when `keep_on_failure` (its console log says what went wrong).
pub(super) fn boot(
    qemu: &Qemu,
    guest: &PreparedGuest,
    budget: &Budget,
    plan: &BootPlan,
    requested: Instant,
    keep_on_failure: bool,
) -> Result<QemuInstance, BootError> {
    let mut last = String::new();
    // Startup stays measured from the original request: a lost port race is part of what
    // starting cost (it fails within milliseconds, before the guest boots).
    for _ in 0..PORT_ATTEMPTS {
        let dir = tempfile::Builder::new()
            .prefix(&crate::env::orphans::vm_instance_dir_prefix(
                std::process::id(),
            ))
            .tempdir()
            .map_err(BootError::InstanceDir)?;
        // Registered, so an interrupt (whose handler exits without dropping it) removes it
        // as well; a directory kept for the user is unregistered with the failure.
        let dir_registration =
            crate::cleanup::register(crate::cleanup::Resource::Directory(dir.path().to_owned()));
        match boot_once(qemu, guest, budget, plan, requested, dir.path()) {
            Ok(booted) => {
                return Ok(QemuInstance {
                    base_url: format!("http://127.0.0.1:{}", booted.port),
                    health_path: guest.health_path.clone(),
                    restored: plan.incoming.is_some(),
                    startup: booted.startup,
                    requested,
                    spawned: booted.spawned,
                    console: booted.console,
                    control: Mutex::new(booted.control),
                    footprint: crate::probe::footprint::FootprintProbe::new(vec![
                        booted.child.pid(),
                    ]),
                    child: booted.child,
                    dir,
                    _dir_registration: dir_registration,
                    data_disk: None,
                });
            }
            Err(failure) if failure.port_taken => last = failure.message,
            Err(failure) => {
                if keep_on_failure {
                    // Marked, so the next run's orphan sweep leaves it for the user.
                    let _ = fs::write(dir.path().join(crate::env::orphans::KEPT_MARKER), "");
                    return Err(BootError::Failed {
                        message: failure.message,
                        kept: Some(dir.keep()),
                    });
                }
                return Err(BootError::Failed {
                    message: failure.message,
                    kept: None,
                });
            }
        }
    }
    Err(BootError::NoFreePort {
        attempts: PORT_ATTEMPTS,
        last,
    })
}

/// How often the console is looked at while waiting for the guest's network.
pub(super) const NETWORK_POLL: Duration = Duration::from_millis(2);

/// Waits until the guest init reports its network up (`isobench-phase: network-up` on the
/// console), so that `/health` is polled only once the guest can answer.
///
/// Polling earlier floods the guest: QEMU's user-mode network accepts every attempt on the
/// host side at once and keeps re-sending its SYN to a guest that cannot answer yet, also
/// after the attempt gave up. A 2-second boot left about 460 such connections inside QEMU,
/// all completed against the service the moment it listened, ahead of the first real
/// request; under load (longer boots, more of them) a check's first request then waited out
/// its 30-second timeout. No 200 can come before the network is up, so startup, still
/// measured from the request to the first 200, is unchanged.
pub(super) fn wait_for_guest_network(
    console: &ConsoleLog,
    deadline: Instant,
    alive: &mut impl FnMut() -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let mut seen = 0;
    loop {
        if console.any_new(&mut seen, |line| {
            console::is_phase_mark(&line.text, "network-up")
        }) {
            return Ok(());
        }
        alive()?;
        if Instant::now() >= deadline {
            anyhow::bail!("the guest did not report its network up (isobench-phase: network-up)");
        }
        std::thread::sleep(NETWORK_POLL);
    }
}

/// A VM that answered `/health`.
pub(super) struct Booted {
    pub(super) child: Supervised,
    pub(super) port: u16,
    pub(super) startup: Duration,
    pub(super) spawned: Instant,
    pub(super) console: ConsoleLog,
    pub(super) control: Option<ChildStdin>,
}

pub(super) fn boot_once(
    qemu: &Qemu,
    guest: &PreparedGuest,
    budget: &Budget,
    plan: &BootPlan,
    requested: Instant,
    dir: &Path,
) -> Result<Booted, BootFailure> {
    let fail = |message: String| BootFailure {
        message,
        port_taken: false,
    };
    let port = free_port().map_err(|e| fail(format!("finding a free port: {e}")))?;
    let stderr_path = dir.join("qemu.stderr");
    let stderr = fs::File::create(&stderr_path)
        .map_err(|e| fail(format!("creating {}: {e}", stderr_path.display())))?;
    let mut command = qemu_command(qemu, guest, budget, plan, port, dir);
    command.stderr(stderr);
    let mut child = spawn_supervised(command)
        .map_err(|e| fail(format!("starting {}: {e}", qemu.binary.display())))?;
    let spawned = Instant::now();
    let control = child.take_stdin();
    let (console, _reader) = match child.take_stdout() {
        Some(stdout) => console::spawn_reader(stdout, &dir.join("console.log"))
            .map_err(|e| fail(format!("reading the console: {e}")))?,
        None => return Err(fail("QEMU's stdout was not piped".into())),
    };
    let base_url = format!("http://127.0.0.1:{port}");
    let mut init_seen = 0;
    let mut alive = || {
        // The image guest's init says when the entrypoint exited (or a step failed) before
        // it powers off: name that rather than only QEMU's exit.
        let mut said = None;
        console.any_new(&mut init_seen, |line| {
            let text = line.text.trim();
            if said.is_none() {
                if text.starts_with("isobench-init: the entrypoint exited") {
                    said = Some(format!(
                        "the guest's service exited during startup ({text})"
                    ));
                } else if text.starts_with("isobench-init: FAILED") {
                    said = Some(format!("the guest init failed during startup ({text})"));
                }
            }
            false
        });
        if let Some(said) = said {
            anyhow::bail!(said);
        }
        match child.try_wait()? {
            Some(status) => anyhow::bail!("QEMU exited ({status})"),
            None => Ok(()),
        }
    };
    // A restored guest's network has long been up, and its console says nothing more.
    let network = match plan.incoming {
        Some(_) => Ok(()),
        None => wait_for_guest_network(&console, requested + plan.timeout, &mut alive),
    };
    let result = network.and_then(|()| {
        if guest.is_image() {
            health::wait_until_ready(
                &base_url,
                &guest.health_path,
                requested,
                plan.timeout,
                alive,
            )
        } else {
            health::wait_until_healthy(&base_url, requested, plan.timeout, alive)
        }
    });
    match result {
        Ok(startup) => Ok(Booted {
            child,
            port,
            startup,
            spawned,
            console,
            control,
        }),
        Err(error) => {
            // Stop first so the console log is complete and no QEMU is left behind.
            let _ = child.stop();
            let qemu_stderr = tail_lines(&stderr_path, 5);
            let console = tail_lines(&dir.join("console.log"), 8);
            Err(BootFailure {
                port_taken: qemu_stderr.contains("host forwarding rule"),
                message: format!(
                    "{} boot ({}) failed: {error:#}; QEMU said: {}; guest console ends with:\n{}",
                    accel::qemu_name(plan.accel).to_uppercase(),
                    qemu.version_line,
                    if qemu_stderr.is_empty() {
                        "nothing"
                    } else {
                        &qemu_stderr
                    },
                    if console.is_empty() {
                        "(nothing)".to_owned()
                    } else {
                        console
                    },
                ),
            })
        }
    }
}

pub(super) fn boot_timeout(accel: Accel) -> Duration {
    let configured = std::env::var(BOOT_TIMEOUT_ENV)
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
        .map(Duration::from_secs);
    configured.unwrap_or(match accel {
        Accel::Kvm => KVM_BOOT_TIMEOUT,
        Accel::Tcg | Accel::Provider => TCG_BOOT_TIMEOUT,
    })
}

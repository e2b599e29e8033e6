//! A running VM: its address, startup and boot phases from the console, its QEMU process's
//! resources, the SysRq kill of the guest's service, and its stop.

use std::fs;
use std::io::Write as _;
use std::path::Path;
use std::process::ChildStdin;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::super::child::Supervised;
use super::super::console::{ConsoleLog, Milestones};
use crate::artifact::{GuestMemory, StartupPhase};
use crate::env::{EnvError, Instance, ResourceReading, health};

/// The last `lines` lines of a file, for error messages.
pub(super) fn tail_lines(path: &Path, lines: usize) -> String {
    let text = fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// A running VM.
pub struct QemuInstance {
    pub(super) base_url: String,
    /// The path whose 2xx says the service is up (`/health`, or a foreign image's).
    pub(super) health_path: String,
    /// Whether it was restored from a snapshot rather than booted.
    pub(super) restored: bool,
    pub(super) startup: Duration,
    pub(super) requested: Instant,
    pub(super) spawned: Instant,
    pub(super) console: ConsoleLog,
    /// QEMU's stdin: the console multiplexer's input, which takes the SysRq break.
    pub(super) control: Mutex<Option<ChildStdin>>,
    pub(super) child: Supervised,
    /// QEMU's footprint.
    pub(super) footprint: crate::probe::footprint::FootprintProbe,
    // Dropped after the child (field order), so QEMU is gone before its files are removed.
    pub(super) dir: tempfile::TempDir,
    /// Keeps `dir` registered for removal on an interrupt while the instance lives.
    pub(super) _dir_registration: crate::cleanup::Registration,
    /// The data disk mounted at `/data`, removed with the instance (after QEMU, as `dir`).
    pub(super) data_disk: Option<crate::env::vm::scratch_disk::ScratchDisk>,
}

impl QemuInstance {
    /// The instance's directory (console log `console.log`, QEMU's `qemu.stderr`).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// QEMU's pid.
    pub fn pid(&self) -> u32 {
        self.child.pid()
    }

    /// Kills every process in the guest but init (the service among them) with the magic
    /// SysRq key `i` (SIGKILL to all but PID 1), sent as a serial BREAK through the console
    /// multiplexer's `C-a b` escape followed by `i`; the kernel command line enables SysRq.
    /// The guest init then sees the service gone and powers the VM off, so QEMU exits.
    pub fn kill_guest_service(&self) -> Result<(), EnvError> {
        let mut control = self.control.lock().unwrap_or_else(|p| p.into_inner());
        let stdin = control
            .as_mut()
            .ok_or_else(|| EnvError::Other(anyhow::anyhow!("the VM's console input is closed")))?;
        let send = |stdin: &mut ChildStdin, bytes: &[u8]| {
            stdin.write_all(bytes).and_then(|()| stdin.flush())
        };
        send(stdin, b"\x01b")
            .and_then(|()| {
                // The SysRq key must come as a separate character after the break.
                std::thread::sleep(Duration::from_millis(100));
                send(stdin, b"i")
            })
            .map_err(|e| {
                EnvError::Other(anyhow::Error::new(e).context("sending SysRq to the guest"))
            })
    }

    /// The guest's own view of its memory (`/proc/meminfo` through the service's `/status`),
    /// to read beside QEMU's RSS.
    pub fn guest_memory(&self) -> Result<GuestMemory, EnvError> {
        let (status, body) = health::get_json(&self.base_url, "/status")?;
        let field = |name: &str| {
            body.pointer(&format!("/memory/{name}"))
                .and_then(serde_json::Value::as_u64)
        };
        match (status, field("total_bytes"), field("available_bytes")) {
            (200, Some(total_bytes), Some(available_bytes)) => Ok(GuestMemory {
                total_bytes,
                available_bytes,
            }),
            _ => Err(EnvError::Other(anyhow::anyhow!(
                "/status answered {status} without memory.total_bytes/available_bytes: {body}"
            ))),
        }
    }
}

impl Instance for QemuInstance {
    fn base_url(&self) -> &str {
        &self.base_url
    }

    fn health_path(&self) -> &str {
        &self.health_path
    }

    fn startup(&self) -> Duration {
        self.startup
    }

    fn guest_memory(&self) -> Option<GuestMemory> {
        QemuInstance::guest_memory(self).ok()
    }

    fn startup_phases(&self) -> Vec<StartupPhase> {
        if self.restored {
            // A restore prints nothing on the guest's console: QEMU's start, then loading the
            // saved state and the resumed service's first answer.
            return crate::env::startup_phases::contiguous(
                self.requested,
                &[
                    ("qemu exec", Some(self.spawned)),
                    ("restore + first 200", Some(self.requested + self.startup)),
                ],
            );
        }
        Milestones::from_lines(&self.console.lines()).phases(
            self.requested,
            self.spawned,
            self.requested + self.startup,
        )
    }

    /// The guest console's last lines, each with its arrival time since QEMU started (a
    /// guest that went quiet shows as a gap), then QEMU's own stderr.
    fn log_tail(&self, lines: usize) -> Vec<String> {
        let console = self.console.lines();
        let mut tail: Vec<String> = console[console.len().saturating_sub(lines)..]
            .iter()
            .map(|line| {
                let at = line.at.saturating_duration_since(self.spawned);
                format!("[{:>8.3} s] {}", at.as_secs_f64(), line.text)
            })
            .collect();
        let stderr = tail_lines(&self.dir().join("qemu.stderr"), lines);
        if !stderr.is_empty() {
            tail.push("QEMU stderr:".to_owned());
            tail.extend(stderr.lines().map(str::to_owned));
        }
        tail
    }

    fn resources(&self) -> Result<ResourceReading, EnvError> {
        let pid = self.child.pid();
        let cpu = crate::probe::process::cpu_seconds(pid).map_err(|e| {
            EnvError::Other(anyhow::Error::new(e).context("reading QEMU's CPU time"))
        })?;
        crate::env::footprint_reading(&self.footprint, cpu)
    }

    fn stop(mut self: Box<Self>) -> Result<(), EnvError> {
        // A VM that died on its own (QEMU killed, the guest powered off) must not read as one
        // that stopped cleanly: the round it served is a failed repetition.
        let died = self
            .child
            .try_wait()
            .map_err(|e| EnvError::Other(anyhow::Error::new(e).context("waiting for QEMU")))?;
        self.child
            .stop()
            .map_err(|e| EnvError::Other(anyhow::Error::new(e).context("stopping QEMU")))?;
        match died {
            Some(status) => Err(EnvError::Other(anyhow::anyhow!(
                "QEMU had exited before it was stopped: {status}"
            ))),
            None => Ok(()),
        }
    }
}

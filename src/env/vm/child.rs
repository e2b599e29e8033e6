//! Supervising a VM process so that it never outlives the test that started it.
//!
//! The child gets its own process group (signals reach QEMU and anything it spawns) and
//! `PR_SET_PDEATHSIG = SIGKILL`, so the kernel kills it if isobench dies without running its
//! destructors (an interrupted test, a SIGKILL). PDEATHSIG fires when the *thread* that forked
//! exits, not the process, so children are forked from one long-lived spawner thread rather
//! than from whichever short-lived test thread asked for them.
//!
//! Stopping sends SIGTERM to the group, waits a short grace period, then SIGKILLs it; the
//! guard does the same on drop, so an early return or a panic cleans up too.

use std::io;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, ExitStatus};
use std::sync::OnceLock;
use std::sync::mpsc::{self, Sender};
use std::time::{Duration, Instant};

/// How long a child gets to exit after SIGTERM before it is SIGKILLed.
pub const TERM_GRACE: Duration = Duration::from_secs(3);

type SpawnRequest = (Command, Sender<io::Result<Child>>);

fn spawner() -> &'static Sender<SpawnRequest> {
    static SPAWNER: OnceLock<Sender<SpawnRequest>> = OnceLock::new();
    SPAWNER.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<SpawnRequest>();
        std::thread::Builder::new()
            .name("isobench-vm-spawner".into())
            .spawn(move || {
                // Lives as long as the process (the sender is in a static), which is what
                // makes PDEATHSIG mean "isobench died".
                for (mut command, reply) in rx {
                    let _ = reply.send(command.spawn());
                }
            })
            .expect("spawning the VM spawner thread");
        tx
    })
}

/// Spawns `command` in its own process group, killed if isobench dies.
pub fn spawn_supervised(mut command: Command) -> io::Result<Supervised> {
    let parent = std::process::id();
    command.process_group(0);
    // SAFETY: prctl and getppid are async-signal-safe; nothing is allocated after fork.
    unsafe {
        command.pre_exec(move || {
            if libc::prctl(
                libc::PR_SET_PDEATHSIG,
                libc::SIGKILL as libc::c_ulong,
                0,
                0,
                0,
            ) != 0
            {
                return Err(io::Error::last_os_error());
            }
            // The parent may have died between fork and prctl; then nobody would kill us.
            if libc::getppid() as u32 != parent {
                return Err(io::Error::other("parent exited during spawn"));
            }
            Ok(())
        });
    }
    let (tx, rx) = mpsc::channel();
    spawner()
        .send((command, tx))
        .map_err(|_| io::Error::other("VM spawner thread is gone"))?;
    let child = rx
        .recv()
        .map_err(|_| io::Error::other("VM spawner thread did not answer"))??;
    Ok(Supervised { child: Some(child) })
}

/// A running child that is stopped on [`Supervised::stop`] or drop.
#[derive(Debug)]
pub struct Supervised {
    child: Option<Child>,
}

impl Supervised {
    /// The child's pid (also its process group id).
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    /// The child's stdin, if it was piped (once).
    pub fn take_stdin(&mut self) -> Option<std::process::ChildStdin> {
        self.child.as_mut().and_then(|child| child.stdin.take())
    }

    /// The child's stdout, if it was piped (once).
    pub fn take_stdout(&mut self) -> Option<std::process::ChildStdout> {
        self.child.as_mut().and_then(|child| child.stdout.take())
    }

    /// `Some(status)` if the child has exited.
    pub fn try_wait(&mut self) -> io::Result<Option<ExitStatus>> {
        match self.child.as_mut() {
            Some(child) => child.try_wait(),
            None => Ok(None),
        }
    }

    /// Waits up to `timeout` for the child to exit by itself.
    pub fn wait_timeout(&mut self, timeout: Duration) -> io::Result<Option<ExitStatus>> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.try_wait()? {
                return Ok(Some(status));
            }
            if Instant::now() >= deadline {
                return Ok(None);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGTERM to the group, [`TERM_GRACE`] to exit, then SIGKILL; reaps the child.
    pub fn stop(&mut self) -> io::Result<Option<ExitStatus>> {
        let Some(mut child) = self.child.take() else {
            return Ok(None);
        };
        if let Some(status) = child.try_wait()? {
            kill_group(child.id(), libc::SIGKILL);
            return Ok(Some(status));
        }
        kill_group(child.id(), libc::SIGTERM);
        let deadline = Instant::now() + TERM_GRACE;
        while Instant::now() < deadline {
            if let Some(status) = child.try_wait()? {
                // Anything QEMU left in its group goes too.
                kill_group(child.id(), libc::SIGKILL);
                return Ok(Some(status));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        kill_group(child.id(), libc::SIGKILL);
        child.wait().map(Some)
    }
}

impl Drop for Supervised {
    fn drop(&mut self) {
        let _ = self.stop();
    }
}

fn kill_group(pgid: u32, signal: libc::c_int) {
    // SAFETY: kill with a negative pid signals that process group; no memory is involved.
    // Only ever our own child's group (it was made a group leader at spawn).
    unsafe {
        libc::kill(-(pgid as libc::pid_t), signal);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alive(pid: u32) -> bool {
        // SAFETY: signal 0 only checks existence.
        unsafe { libc::kill(pid as libc::pid_t, 0) == 0 }
    }

    #[test]
    fn stop_kills_a_child_that_ignores_nothing() {
        let mut command = Command::new("sleep");
        command.arg("30");
        let mut child = spawn_supervised(command).unwrap();
        let pid = child.pid();
        assert!(child.try_wait().unwrap().is_none());
        let status = child.stop().unwrap().unwrap();
        assert!(!status.success());
        assert!(!alive(pid));
    }

    #[test]
    fn a_child_ignoring_sigterm_is_killed_after_the_grace() {
        let mut command = Command::new("sh");
        command.args(["-c", "trap '' TERM; while :; do sleep 1; done"]);
        let child = spawn_supervised(command).unwrap();
        let pid = child.pid();
        drop(child);
        assert!(!alive(pid));
    }

    #[test]
    fn the_child_survives_the_thread_that_asked_for_it() {
        let child = std::thread::spawn(|| {
            let mut command = Command::new("sleep");
            command.arg("30");
            spawn_supervised(command).unwrap()
        })
        .join()
        .unwrap();
        std::thread::sleep(Duration::from_millis(100));
        assert!(alive(child.pid()));
        drop(child);
    }
}

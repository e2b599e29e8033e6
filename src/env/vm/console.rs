//! The guest's serial console, read on the host: every line is stamped with the host's
//! monotonic clock as it arrives and appended to `console.log`, and the boot's milestones
//! become startup phases.
//!
//! QEMU writes the console to a pipe (`-chardev stdio`), read by one thread here, so the guest
//! never waits on a file and the host clock is taken the moment a line arrives. Milestones:
//! - SeaBIOS's `Booting from ROM` on the debug console (legacy boot only): firmware done;
//! - `isobench-phase: <name>` lines, which the guest init writes to the kernel log (printed
//!   with the guest's printk time even under `quiet`): `init`, `network-up`;
//! - the server's own `listening on` line.
//!
//! Kernel entry cannot be seen from outside; it is estimated as *host arrival − guest time*
//! of the phase markers (the guest's printk clock starts when the kernel sets up its TSC,
//! early in `setup_arch`), taking the smallest such value, since arrival only ever lags.

use std::fs::File;
use std::io::{Read, Write};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::artifact::StartupPhase;

/// One console line and when the host received it.
#[derive(Debug, Clone, PartialEq)]
pub struct ConsoleLine {
    /// Host monotonic time of arrival.
    pub at: Instant,
    /// The line, without its line ending.
    pub text: String,
}

/// Lines seen so far, shared with the reader thread.
#[derive(Debug, Default, Clone)]
pub struct ConsoleLog {
    lines: Arc<Mutex<Vec<ConsoleLine>>>,
}

impl ConsoleLog {
    /// A copy of the lines received so far.
    pub fn lines(&self) -> Vec<ConsoleLine> {
        self.lines.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Whether a line that arrived since `*seen` passes `test`; `*seen` moves past every
    /// line looked at, so a caller polling for a line reads each line once instead of copying
    /// the whole log every time.
    pub fn any_new(&self, seen: &mut usize, test: impl FnMut(&ConsoleLine) -> bool) -> bool {
        let lines = self.lines.lock().unwrap_or_else(|p| p.into_inner());
        let found = lines.get(*seen..).is_some_and(|new| new.iter().any(test));
        *seen = lines.len();
        found
    }

    fn push(&self, line: ConsoleLine) {
        self.lines
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(line);
    }
}

/// Reads `source` (QEMU's stdout) until it closes, stamping lines and appending them to
/// `log_path`. The thread ends when QEMU exits.
pub fn spawn_reader(
    mut source: impl Read + Send + 'static,
    log_path: &Path,
) -> std::io::Result<(ConsoleLog, JoinHandle<()>)> {
    let mut file = File::create(log_path)?;
    let log = ConsoleLog::default();
    let shared = log.clone();
    let handle = std::thread::Builder::new()
        .name("isobench-vm-console".into())
        .spawn(move || {
            let mut pending: Vec<u8> = Vec::new();
            let mut buffer = [0u8; 4096];
            loop {
                let n = match source.read(&mut buffer) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => n,
                };
                let at = Instant::now();
                let _ = file.write_all(&buffer[..n]);
                pending.extend_from_slice(&buffer[..n]);
                while let Some(end) = pending.iter().position(|&b| b == b'\n') {
                    let line: Vec<u8> = pending.drain(..=end).collect();
                    let text = String::from_utf8_lossy(&line)
                        .trim_end_matches(['\r', '\n'])
                        .to_owned();
                    shared.push(ConsoleLine { at, text });
                }
            }
            if !pending.is_empty() {
                shared.push(ConsoleLine {
                    at: Instant::now(),
                    text: String::from_utf8_lossy(&pending).into_owned(),
                });
            }
        })?;
    Ok((log, handle))
}

/// The guest's printk time in a console line `[    1.234567] …`, seconds.
fn printk_seconds(text: &str) -> Option<f64> {
    let rest = text.trim_start().strip_prefix('[')?;
    let (number, _) = rest.split_once(']')?;
    number.trim().parse().ok()
}

/// The boot's milestones on the host clock.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Milestones {
    /// The firmware handed over to the kernel (SeaBIOS's `Booting from ROM`).
    pub firmware_done: Option<Instant>,
    /// The kernel's clock started (estimated; see the module docs).
    pub kernel_entry: Option<Instant>,
    /// The guest init started.
    pub init: Option<Instant>,
    /// The guest's network is configured.
    pub network_up: Option<Instant>,
    /// The server printed `listening on`.
    pub listening: Option<Instant>,
}

/// The phase a guest init's `isobench-phase: <phase>` mark names, if `text` is one.
fn phase_mark(text: &str) -> Option<&str> {
    text.split_once("isobench-phase: ")
        .map(|(_, name)| name.trim())
}

/// Whether `text` is the guest init's `isobench-phase: <phase>` mark.
pub fn is_phase_mark(text: &str, phase: &str) -> bool {
    phase_mark(text) == Some(phase)
}

impl Milestones {
    /// Milestones found in `lines`.
    pub fn from_lines(lines: &[ConsoleLine]) -> Self {
        let mut found = Self::default();
        let mut entry: Option<Instant> = None;
        for line in lines {
            let text = line.text.as_str();
            if found.firmware_done.is_none() && text.contains("Booting from ROM") {
                found.firmware_done = Some(line.at);
            }
            if found.listening.is_none() && text.contains("listening on") {
                found.listening = Some(line.at);
            }
            if let Some(name) = phase_mark(text) {
                let slot = match name {
                    "init" => &mut found.init,
                    "network-up" => &mut found.network_up,
                    _ => continue,
                };
                slot.get_or_insert(line.at);
                if let Some(guest) = printk_seconds(text)
                    && let Some(zero) = Duration::try_from_secs_f64(guest)
                        .ok()
                        .and_then(|g| line.at.checked_sub(g))
                {
                    entry = Some(entry.map_or(zero, |e| e.min(zero)));
                }
            }
        }
        found.kernel_entry = entry;
        found
    }

    /// Contiguous phases from `requested` to `first_200` that sum to the startup exactly.
    /// `spawned` is when QEMU had been exec'd. A milestone that was not seen, or that is out
    /// of order (an estimate off by clock drift), merges its phase into the next one.
    pub fn phases(
        &self,
        requested: Instant,
        spawned: Instant,
        first_200: Instant,
    ) -> Vec<StartupPhase> {
        crate::env::startup_phases::contiguous(
            requested,
            &[
                ("qemu exec", Some(spawned)),
                ("firmware", self.firmware_done),
                ("kernel load", self.kernel_entry),
                ("kernel init", self.init),
                ("modules + network", self.network_up),
                ("service start", self.listening),
                ("first 200", Some(first_200)),
            ],
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(t0: Instant, ms: u64, text: &str) -> ConsoleLine {
        ConsoleLine {
            at: t0 + Duration::from_millis(ms),
            text: text.to_owned(),
        }
    }

    #[test]
    fn new_lines_are_each_looked_at_once() {
        let t0 = Instant::now();
        let log = ConsoleLog::default();
        let mut seen = 0;
        let network_up = |l: &ConsoleLine| is_phase_mark(&l.text, "network-up");
        assert!(!log.any_new(&mut seen, network_up));
        log.push(line(t0, 1, "[    1.000000] isobench-phase: init"));
        assert!(!log.any_new(&mut seen, network_up));
        assert_eq!(seen, 1);
        log.push(line(t0, 2, "[    1.100000] isobench-phase: network-up"));
        assert!(log.any_new(&mut seen, network_up));
        // Already looked at: not found again.
        assert!(!log.any_new(&mut seen, network_up));
        assert!(!is_phase_mark(
            "isobench-phase: network-upish",
            "network-up"
        ));
    }

    #[test]
    fn milestones_are_read_from_the_console() {
        let t0 = Instant::now();
        let lines = vec![
            line(t0, 300, "SeaBIOS (version 1.16.2-debian-1.16.2-1)"),
            line(t0, 900, "Booting from ROM..."),
            line(t0, 4000, "[    2.500000] isobench-phase: init"),
            // Arrived late: its estimate of kernel entry (4.4 - 2.6 = 1.8 s) loses to 1.5 s.
            line(t0, 4400, "[    2.600000] isobench-phase: network-up"),
            line(
                t0,
                4500,
                "isobench-init: starting isobench-server as nobody",
            ),
            line(t0, 4600, "listening on 0.0.0.0:8080"),
        ];
        let found = Milestones::from_lines(&lines);
        assert_eq!(found.firmware_done, Some(t0 + Duration::from_millis(900)));
        assert_eq!(found.kernel_entry, Some(t0 + Duration::from_millis(1500)));
        assert_eq!(found.init, Some(t0 + Duration::from_millis(4000)));
        assert_eq!(found.network_up, Some(t0 + Duration::from_millis(4400)));
        assert_eq!(found.listening, Some(t0 + Duration::from_millis(4600)));

        let phases = found.phases(
            t0,
            t0 + Duration::from_millis(10),
            t0 + Duration::from_millis(5000),
        );
        let names: Vec<&str> = phases.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "qemu exec",
                "firmware",
                "kernel load",
                "kernel init",
                "modules + network",
                "service start",
                "first 200"
            ]
        );
        let ms: Vec<f64> = phases.iter().map(|p| p.duration_ms.round()).collect();
        assert_eq!(ms, [10.0, 890.0, 600.0, 2500.0, 400.0, 200.0, 400.0]);
    }

    #[test]
    fn missing_or_disordered_milestones_merge_into_the_next_phase() {
        let t0 = Instant::now();
        // No firmware line (qboot prints none), and a guest clock that claims to have
        // started before QEMU did.
        let lines = vec![
            line(t0, 1000, "[    5.000000] isobench-phase: init"),
            line(t0, 1200, "listening on 0.0.0.0:8080"),
        ];
        let found = Milestones::from_lines(&lines);
        assert_eq!(found.firmware_done, None);
        let phases = found.phases(
            t0,
            t0 + Duration::from_millis(5),
            t0 + Duration::from_millis(1300),
        );
        let names: Vec<&str> = phases.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "qemu exec",
                "firmware + kernel load + kernel init",
                "modules + network + service start",
                "first 200"
            ]
        );
        let total: f64 = phases.iter().map(|p| p.duration_ms).sum();
        assert!((total - 1300.0).abs() < 1e-6, "{total}");
    }

    #[test]
    fn the_reader_stamps_lines_and_keeps_the_log() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("console.log");
        let input: &[u8] = b"first\r\nsecond\npartial";
        let (log, handle) = spawn_reader(input, &path).unwrap();
        handle.join().unwrap();
        let texts: Vec<String> = log.lines().into_iter().map(|l| l.text).collect();
        assert_eq!(texts, ["first", "second", "partial"]);
        assert_eq!(std::fs::read(&path).unwrap(), input);
        assert_eq!(printk_seconds("[    1.250000] x"), Some(1.25));
        assert_eq!(printk_seconds("no time"), None);
    }
}

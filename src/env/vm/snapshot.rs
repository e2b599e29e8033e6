//! "VM from snapshot": the guest saved once, right after its service first answered, and
//! restored at every start, the way Firecracker users restore microVMs instead of booting.
//!
//! The snapshot is QEMU's migration stream written to a file (`migrate` to `exec:cat > file`
//! over QMP), and a restore is the same QEMU command line with `-incoming exec:cat file`: QEMU
//! loads the guest's RAM and device state and resumes it where it was, its service already
//! listening. QEMU 7.2 (Debian 12) has no `file:` migration URI, hence `exec:`. Only the
//! host side of user-mode networking is new (a fresh 127.0.0.1 port), which the guest never
//! sees.
//!
//! A snapshot is only valid for the exact machine it was taken from (same QEMU, kernel,
//! initramfs, memory, vCPUs, devices), so it is cached under a key hashed over QEMU's version
//! and the whole command line but the per-boot parts (port, sockets), and taken again when any
//! of them changes.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// How long saving the snapshot may take (92 MB under TCG took half a second here).
pub const SAVE_TIMEOUT: Duration = Duration::from_secs(60);
/// How long QEMU's QMP socket may take to appear after QEMU starts.
const QMP_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How often the migration's progress is asked.
const PROGRESS_POLL: Duration = Duration::from_millis(20);

/// Why a snapshot could not be taken.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    /// Talking to QEMU's QMP socket failed.
    #[error("QMP at {socket}: {source}")]
    Io {
        /// The socket.
        socket: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// QEMU answered a command with an error, or something that is not QMP.
    #[error("QMP {command}: {message}")]
    Qmp {
        /// The command.
        command: String,
        /// What QEMU said.
        message: String,
    },
    /// The migration did not complete.
    #[error("saving the snapshot {0}")]
    Migration(String),
}

/// A QMP connection: one command at a time, events skipped.
pub struct Qmp {
    socket: PathBuf,
    reader: BufReader<UnixStream>,
    writer: UnixStream,
}

impl Qmp {
    /// Connects to QEMU's QMP socket (waiting for it to appear), reads the greeting and
    /// leaves capabilities negotiation.
    pub fn connect(socket: &Path) -> Result<Self, SnapshotError> {
        let io = |source| SnapshotError::Io {
            socket: socket.to_owned(),
            source,
        };
        let deadline = Instant::now() + QMP_CONNECT_TIMEOUT;
        let stream = loop {
            match UnixStream::connect(socket) {
                Ok(stream) => break stream,
                Err(_) if Instant::now() < deadline => std::thread::sleep(PROGRESS_POLL),
                Err(error) => return Err(io(error)),
            }
        };
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .map_err(io)?;
        let writer = stream.try_clone().map_err(io)?;
        let mut qmp = Self {
            socket: socket.to_owned(),
            reader: BufReader::new(stream),
            writer,
        };
        let greeting = qmp.read_message()?;
        if greeting.get("QMP").is_none() {
            return Err(SnapshotError::Qmp {
                command: "greeting".into(),
                message: greeting.to_string(),
            });
        }
        qmp.execute("qmp_capabilities", None)?;
        Ok(qmp)
    }

    fn read_message(&mut self) -> Result<Value, SnapshotError> {
        let mut line = String::new();
        let read = self
            .reader
            .read_line(&mut line)
            .map_err(|source| SnapshotError::Io {
                socket: self.socket.clone(),
                source,
            })?;
        if read == 0 {
            return Err(SnapshotError::Qmp {
                command: "read".into(),
                message: "QEMU closed the QMP socket".into(),
            });
        }
        serde_json::from_str(&line).map_err(|error| SnapshotError::Qmp {
            command: "read".into(),
            message: format!("not JSON ({error}): {line}"),
        })
    }

    /// Runs `command` with `arguments`; its `return` value, or its error as a
    /// [`SnapshotError::Qmp`]. Asynchronous events that arrive meanwhile are skipped.
    pub fn execute(
        &mut self,
        command: &str,
        arguments: Option<Value>,
    ) -> Result<Value, SnapshotError> {
        let mut message = json!({ "execute": command });
        if let Some(arguments) = arguments {
            message["arguments"] = arguments;
        }
        writeln!(self.writer, "{message}").map_err(|source| SnapshotError::Io {
            socket: self.socket.clone(),
            source,
        })?;
        loop {
            let answer = self.read_message()?;
            if let Some(value) = answer.get("return") {
                return Ok(value.clone());
            }
            if let Some(error) = answer.get("error") {
                return Err(SnapshotError::Qmp {
                    command: command.into(),
                    message: error
                        .get("desc")
                        .and_then(Value::as_str)
                        .map_or_else(|| error.to_string(), str::to_owned),
                });
            }
        }
    }
}

/// `exec:` URI argument quoting: the path in single quotes for `/bin/sh -c`.
pub fn shell_quote(path: &Path) -> String {
    format!("'{}'", path.display().to_string().replace('\'', r"'\''"))
}

/// Saves the running guest behind `qmp` into `state` (the migration stream), waiting for the
/// migration to complete; QEMU's guest is left paused, to be stopped.
pub fn save(qmp: &mut Qmp, state: &Path) -> Result<(), SnapshotError> {
    qmp.execute(
        "migrate",
        Some(json!({ "uri": format!("exec:cat > {}", shell_quote(state)) })),
    )?;
    let deadline = Instant::now() + SAVE_TIMEOUT;
    loop {
        let progress = qmp.execute("query-migrate", None)?;
        match progress.get("status").and_then(Value::as_str) {
            Some("completed") => return Ok(()),
            Some("failed" | "cancelled") => {
                return Err(SnapshotError::Migration(format!(
                    "failed: {}",
                    progress
                        .get("error-desc")
                        .and_then(Value::as_str)
                        .unwrap_or("QEMU gave no reason")
                )));
            }
            _ if Instant::now() >= deadline => {
                return Err(SnapshotError::Migration(format!(
                    "did not complete within {SAVE_TIMEOUT:?}: {progress}"
                )));
            }
            _ => std::thread::sleep(PROGRESS_POLL),
        }
    }
}

/// The cache key of a snapshot: QEMU's version line and every argument but the per-boot ones
/// (the host port in `hostfwd`, the QMP socket, `-name`'s owner pid, and the TSC frequency
/// measured at each preparation, a few kHz apart from run to run: the saved guest keeps the
/// one it booted with), hashed.
pub fn cache_key(version_line: &str, args: &[String]) -> String {
    use sha2::{Digest, Sha256};
    let mut hasher = Sha256::new();
    hasher.update(version_line.as_bytes());
    let mut skip_next = false;
    for arg in args {
        if skip_next {
            skip_next = false;
            continue;
        }
        if arg == "-qmp" || arg == "-name" || arg == "-incoming" {
            skip_next = true;
            continue;
        }
        let stable = match arg.split_once("hostfwd=tcp:127.0.0.1:") {
            // Keep the guest port, drop the host's.
            Some((before, after)) => format!(
                "{before}hostfwd=tcp:127.0.0.1:*{}",
                after.split_once('-').map_or("", |(_, guest)| guest)
            ),
            None if arg.contains("tsc_early_khz=") => arg
                .split(' ')
                .filter(|word| !word.starts_with("tsc_early_khz="))
                .collect::<Vec<_>>()
                .join(" "),
            None => arg.clone(),
        };
        hasher.update((stable.len() as u64).to_le_bytes());
        hasher.update(stable.as_bytes());
    }
    hasher.finalize()[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(port: u16, qmp: &str, owner: u32) -> Vec<String> {
        [
            "-M",
            "microvm",
            "-name",
            &format!("isobench-owner-{owner}"),
            "-netdev",
            &format!("user,id=net0,hostfwd=tcp:127.0.0.1:{port}-:8080"),
            "-qmp",
            &format!("unix:{qmp},server=on,wait=off"),
        ]
        .map(str::to_owned)
        .to_vec()
    }

    #[test]
    fn the_key_ignores_per_boot_parts_only() {
        let key = cache_key("QEMU 7.2", &args(40000, "/a/qmp", 1));
        assert_eq!(key, cache_key("QEMU 7.2", &args(41234, "/b/qmp", 2)));
        assert_ne!(key, cache_key("QEMU 8.0", &args(40000, "/a/qmp", 1)));
        let mut other_guest = args(40000, "/a/qmp", 1);
        other_guest[5] = "user,id=net0,hostfwd=tcp:127.0.0.1:40000-:5000".into();
        assert_ne!(key, cache_key("QEMU 7.2", &other_guest));
        let mut measured = args(40000, "/a/qmp", 1);
        measured.push("console=ttyS0 tsc_early_khz=2299998 tsc=reliable".into());
        let mut remeasured = args(40000, "/a/qmp", 1);
        remeasured.push("console=ttyS0 tsc_early_khz=2300004 tsc=reliable".into());
        assert_eq!(
            cache_key("QEMU 7.2", &measured),
            cache_key("QEMU 7.2", &remeasured)
        );
        let mut other_machine = args(40000, "/a/qmp", 1);
        other_machine[1] = "q35".into();
        assert_ne!(key, cache_key("QEMU 7.2", &other_machine));
    }

    #[test]
    fn paths_are_quoted_for_the_shell() {
        assert_eq!(shell_quote(Path::new("/a b/s")), "'/a b/s'");
        assert_eq!(shell_quote(Path::new("/it's")), r"'/it'\''s'");
    }

    /// A fake QEMU on a socket: greets, accepts capabilities, reports one event before
    /// answering, then fails a command.
    #[test]
    fn qmp_answers_are_read_past_events_and_errors_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("qmp.sock");
        let listener = std::os::unix::net::UnixListener::bind(&socket).unwrap();
        let server = std::thread::spawn(move || {
            let (stream, _) = listener.accept().unwrap();
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut writer = stream;
            writeln!(
                writer,
                r#"{{"QMP": {{"version": {{}}, "capabilities": []}}}}"#
            )
            .unwrap();
            let mut line = String::new();
            for answer in [
                r#"{"return": {}}"#,
                r#"{"event": "RESUME"}
{"return": {"status": "completed"}}"#,
                r#"{"error": {"class": "GenericError", "desc": "no migration here"}}"#,
            ] {
                line.clear();
                reader.read_line(&mut line).unwrap();
                writeln!(writer, "{answer}").unwrap();
            }
        });
        let mut qmp = Qmp::connect(&socket).unwrap();
        let status = qmp.execute("query-migrate", None).unwrap();
        assert_eq!(status["status"], "completed");
        let error = qmp
            .execute("migrate", Some(json!({"uri": "x"})))
            .unwrap_err();
        assert_eq!(error.to_string(), "QMP migrate: no migration here");
        server.join().unwrap();
    }
}

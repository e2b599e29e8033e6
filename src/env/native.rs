//! Native: the static server as a plain process on the host, pinned to the service's CPUs.
//!
//! No memory limit is applied: a process has no equivalent of a container's or VM's memory
//! cap short of creating a cgroup, which needs privileges a user's machine may not grant. The
//! label says so, so nobody reads the native figures as capped. The service is still told
//! the budget's limit (`ISOBENCH_MEMORY_LIMIT_MB`), so it accepts the same `/memory` requests
//! as in the container and the VM.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};

use crate::artifact::{EnvKind, EnvironmentLabel, Preparation};
use crate::cleanup::{self, Registration, Resource};
use crate::env::data_dir::DataDir;
use crate::env::logs::LogTail;
use crate::env::{Budget, EnvError, Environment, Instance, ResourceReading, health};
use crate::probe::footprint::FootprintProbe;
use crate::probe::pin;
use crate::subject::server_binary;

/// How long the process may take from spawn to its first 200.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a stopped server gets to exit after SIGTERM before it is killed.
const STOP_GRACE: Duration = Duration::from_secs(5);

/// The native environment.
pub struct NativeEnv {
    budget: Budget,
    server: Option<PathBuf>,
}

impl NativeEnv {
    /// A native environment on `budget`'s service CPUs.
    pub fn new(budget: Budget) -> Self {
        Self {
            budget,
            server: None,
        }
    }
}

impl Environment for NativeEnv {
    fn name(&self) -> &str {
        "native"
    }

    fn prepare(&mut self) -> Result<Vec<Preparation>, EnvError> {
        let (server, built) = server_binary::static_server()?;
        self.server = Some(server);
        Ok(vec![built])
    }

    fn start(&self) -> Result<Box<dyn Instance>, EnvError> {
        let server = self
            .server
            .as_ref()
            .ok_or_else(|| anyhow!("the native environment was not prepared"))?;
        let data_dir = DataDir::create()?;
        let mut command = Command::new(server);
        command
            .args(["--bind", "127.0.0.1", "--port", "0"])
            .arg("--data-dir")
            .arg(data_dir.path())
            .stdin(Stdio::null())
            .env(
                "ISOBENCH_MEMORY_LIMIT_MB",
                (self.budget.memory_limit_bytes >> 20).to_string(),
            )
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        pin::pin_command(&mut command, &self.budget.service_cpus);
        cleanup::kill_with_parent(&mut command);

        let started = Instant::now();
        let mut child = command
            .spawn()
            .with_context(|| format!("spawning {}", server.display()))?;
        let registration = cleanup::register(Resource::Process(child.id()));
        cleanup::pause_point(cleanup::Phase::Starting);
        let logs = LogTail::new();
        if let Some(stderr) = child.stderr.take() {
            logs.follow(stderr);
        }
        let address = match announced_address(&mut child, &logs) {
            Ok(address) => address,
            Err(error) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(with_log_tail(error, &logs).into());
            }
        };
        let base_url = format!("http://{address}");
        let startup =
            health::wait_until_healthy(&base_url, started, STARTUP_TIMEOUT, || {
                match child.try_wait() {
                    Ok(None) => Ok(()),
                    Ok(Some(status)) => bail!("the server exited during startup: {status}"),
                    Err(error) => Err(error.into()),
                }
            });
        let startup = match startup {
            Ok(startup) => startup,
            Err(error) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(with_log_tail(error, &logs).into());
            }
        };
        Ok(Box::new(NativeInstance {
            footprint: FootprintProbe::new(vec![child.id()]),
            _data_dir: data_dir,
            child,
            base_url,
            startup,
            logs,
            _registration: registration,
        }))
    }

    fn label(&self) -> EnvironmentLabel {
        EnvironmentLabel {
            name: self.name().into(),
            kind: EnvKind::Native,
            runtime: "process".into(),
            accel: None,
            service_cpus: self.budget.service_cpus.clone(),
            generator_cpus: self.budget.generator_cpus.clone(),
            memory_limit_bytes: None,
            kernel: None,
            image_size_bytes: self
                .server
                .as_ref()
                .and_then(|server| std::fs::metadata(server).ok())
                .map(|meta| meta.len()),
            detected: None,
            data_dir: Some(crate::env::data_dir::describe("--data-dir")),
            memory_counts: Some(crate::probe::footprint::counts(
                "the server process (and any process it starts)",
            )),
            notes: vec![
                "no memory limit: a plain process has none short of a privileged cgroup".into(),
                "image size is the static server binary's size".into(),
            ],
            rung: Some(crate::artifact::Rung::new(
                crate::artifact::position::NATIVE,
                "the baseline: the server as a plain process on the host",
                None,
            )),
            accel_attempts: Vec::new(),
        }
    }
}

/// Lines of the server's output quoted in a startup error.
const STARTUP_ERROR_LINES: usize = 20;

/// `error` with the server's last output lines, which usually say why it did not start.
fn with_log_tail(error: anyhow::Error, logs: &LogTail) -> anyhow::Error {
    // The drain threads may still be reading what the server wrote just before it exited.
    std::thread::sleep(Duration::from_millis(50));
    let tail = logs.last(STARTUP_ERROR_LINES).join("\n");
    if tail.is_empty() {
        error
    } else {
        error.context(format!("the server's last output:\n{tail}"))
    }
}

/// Reads the server's `listening on ADDR` line from its stdout, then keeps draining stdout
/// on a thread (into `logs`, like every line) so the server never blocks on a full pipe.
fn announced_address(child: &mut Child, logs: &LogTail) -> anyhow::Result<String> {
    let stdout = child
        .stdout
        .take()
        .context("the server's stdout was not piped")?;
    let (sender, receiver) = mpsc::channel();
    let logs = logs.clone();
    std::thread::spawn(move || {
        let mut reader = BufReader::new(stdout);
        let mut line = String::new();
        while matches!(reader.read_line(&mut line), Ok(read) if read > 0) {
            let text = line.trim_end().to_owned();
            line.clear();
            logs.push(text.clone());
            if let Some(address) = text.trim().strip_prefix("listening on ") {
                let _ = sender.send(address.to_owned());
                break;
            }
        }
        logs.drain(reader);
    });
    receiver
        .recv_timeout(STARTUP_TIMEOUT)
        .context("the server did not announce its address")
}

/// A running native server; dropping it kills the process.
struct NativeInstance {
    child: Child,
    footprint: FootprintProbe,
    /// Removed after the process: dropped after [`Drop::drop`] has killed it.
    _data_dir: DataDir,
    base_url: String,
    startup: Duration,
    logs: LogTail,
    _registration: Registration,
}

impl Instance for NativeInstance {
    fn base_url(&self) -> &str {
        &self.base_url
    }

    fn startup(&self) -> Duration {
        self.startup
    }

    fn resources(&self) -> Result<ResourceReading, EnvError> {
        let pid = self.child.id();
        let cpu =
            crate::probe::process::cpu_seconds(pid).context("reading the server's CPU time")?;
        crate::env::footprint_reading(&self.footprint, cpu)
    }

    fn stop(mut self: Box<Self>) -> Result<(), EnvError> {
        // A server that died on its own (killed, crashed) must not read as one that failed
        // to stop.
        if let Some(status) = self.child.try_wait().context("waiting for the server")? {
            return Err(anyhow!("the server had exited before it was stopped: {status}").into());
        }
        // SAFETY: signalling our own child.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + STOP_GRACE;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().context("waiting for the server")? {
                if status.success() {
                    return Ok(());
                }
                return Err(anyhow!("the server exited with {status} after SIGTERM").into());
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        Err(anyhow!("the server did not exit within {STOP_GRACE:?} of SIGTERM; killed").into())
    }

    fn log_tail(&self, lines: usize) -> Vec<String> {
        self.logs.last(lines)
    }
}

impl Drop for NativeInstance {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

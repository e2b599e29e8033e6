//! Native for a foreign service. An image: its own root filesystem (exported once through the engine,
//! [`crate::subject::rootfs`]) run with `chroot`, with the image's entrypoint, command,
//! environment, working directory and user — the same bytes as in the container, but no
//! namespaces and no cgroups: the service shares the host's network, process table and
//! memory, pinned to the service's CPUs like the native server. A static binary: run
//! directly, as isobench's own server is.
//!
//! A data directory (the scenario file's `data_dir`) is a fresh host directory per instance,
//! as for the native server. The chroot sees it at the path asked for through one bind
//! mount, made in a mount namespace of the service's own (unshared just before the chroot,
//! its mounts private), so concurrent instances each see their own and the host's mount
//! table never holds it: the one namespace this rung has, and its label says so. A binary run
//! directly has no root of its own to mount into: it is told the host directory's path in
//! `ISOBENCH_DATA_DIR`, and the label says that too.
//!
//! Sharing the host's network means the service binds its own fixed port on the host. A
//! file lock per port serialises isobench's native instances of it across processes (the
//! suite runs trials in parallel), and a port some other program holds is an error naming it.

use std::ffi::CString;
use std::fs::File;
use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};

use crate::artifact::{EnvKind, EnvironmentLabel, Preparation};
use crate::cleanup::{self, Registration, Resource};
use crate::env::data_dir::{self, DataDir};
use crate::env::foreign::ForeignRun;
use crate::env::{Budget, EnvError, Environment, Instance, ResourceReading, health};
use crate::probe::pin;
use crate::subject::rootfs::RootFs;
use crate::subject::server_binary;
use crate::subject::user::ResolvedUser;
use crate::subject::{BinarySubject, ImageSubject};

/// How long a stopped service gets to exit after SIGTERM before its group is killed.
const STOP_GRACE: Duration = Duration::from_secs(10);
/// How often a busy port lock is retried.
const LOCK_POLL: Duration = Duration::from_millis(50);

/// What runs natively.
#[derive(Debug, Clone)]
pub enum Foreign {
    /// An image, chrooted into its root filesystem.
    Image(ImageSubject),
    /// A static binary, run directly.
    Binary(BinarySubject),
}

/// The native environment for a foreign service.
pub struct NativeForeignEnv {
    budget: Budget,
    foreign: Foreign,
    run: ForeignRun,
    prepared: Option<Chroot>,
}

/// What [`NativeForeignEnv::prepare`] made of an image: its root filesystem, its user, and
/// the data directory's mount point in the root.
struct Chroot {
    rootfs: RootFs,
    user: ResolvedUser,
    mount_point: Option<std::path::PathBuf>,
}

impl NativeForeignEnv {
    /// A native environment for `foreign` on `budget`'s service CPUs; a start fails after
    /// `run.startup_timeout` without a 2xx on the health path, and every instance gets a
    /// data directory when `run.data_dir` names one.
    pub fn new(budget: Budget, foreign: Foreign, run: ForeignRun) -> Self {
        Self {
            budget,
            foreign,
            run,
            prepared: None,
        }
    }

    fn port_and_health(&self) -> (u16, &str) {
        match &self.foreign {
            Foreign::Image(image) => (image.port, &image.health_path),
            Foreign::Binary(binary) => (binary.port, &binary.health_path),
        }
    }

    /// The command for the image, chrooted and with its user, environment and directory;
    /// `data_dir`, when given, bind-mounted at the prepared mount point first.
    fn image_command(
        &self,
        image: &ImageSubject,
        data_dir: Option<&DataDir>,
    ) -> anyhow::Result<Command> {
        let chroot = self
            .prepared
            .as_ref()
            .ok_or_else(|| anyhow!("the native environment was not prepared"))?;
        let image = &image.image;
        let argv = image.argv();
        let env = crate::env::foreign::with_data_dir_env(&image.env, self.run.data_dir.as_deref());
        let mut command = Command::new(&argv[0]);
        command
            .args(&argv[1..])
            .env_clear()
            .envs(environment(&env, &chroot.user));
        pin::pin_command(&mut command, &self.budget.service_cpus);
        let bind = match (data_dir, &chroot.mount_point) {
            (Some(dir), Some(target)) => Some((dir.path(), target.as_path())),
            _ => None,
        };
        enter_root(
            &mut command,
            &chroot.rootfs,
            &image.workdir,
            &chroot.user,
            bind,
        )?;
        Ok(command)
    }

    /// What the label says of the data directory.
    fn data_dir_words(&self) -> String {
        let Some(inside) = &self.run.data_dir else {
            return crate::env::foreign::NO_DATA_DIR.to_owned();
        };
        match &self.foreign {
            Foreign::Image(_) => data_dir::describe(&format!(
                "bind mount at {inside} in the service's own mount namespace (its only \
                 namespace; the host's mount table never holds it; a mount point the image \
                 lacks is made, empty, in its exported root filesystem)"
            )),
            Foreign::Binary(_) => data_dir::describe(&format!(
                "not at {inside}: a binary run directly has no root of its own to mount into, \
                 so {} names the host directory itself",
                data_dir::ENV_VAR
            )),
        }
    }
}

impl Environment for NativeForeignEnv {
    fn name(&self) -> &str {
        "native"
    }

    fn prepare(&mut self) -> Result<Vec<Preparation>, EnvError> {
        let Foreign::Image(subject) = &self.foreign else {
            return Ok(Vec::new());
        };
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            return Err(EnvError::Unavailable {
                env: "native".into(),
                reason:
                    "running an image's root filesystem natively needs chroot, which needs root"
                        .into(),
            });
        }
        let (rootfs, user, exported) =
            crate::env::foreign::exported_root("native", &subject.image)?;
        let mount_point = self
            .run
            .data_dir
            .as_deref()
            .map(|inside| data_dir::ensure_mount_point(&rootfs.dir, inside))
            .transpose()
            .map_err(|error| anyhow!("image {}: {error:#}", subject.image.reference))?;
        self.prepared = Some(Chroot {
            rootfs,
            user,
            mount_point,
        });
        Ok(vec![exported])
    }

    fn start(&self) -> Result<Box<dyn Instance>, EnvError> {
        let (port, health_path) = self.port_and_health();
        let port_lock = lock_port(port, self.run.startup_timeout)?;
        ensure_port_free(port)?;
        // Made before the clock starts, as a deployed service's directory exists before it.
        let data_dir = self
            .run
            .data_dir
            .is_some()
            .then(DataDir::create)
            .transpose()?;
        let (mut command, argv) = match &self.foreign {
            Foreign::Image(image) => (
                self.image_command(image, data_dir.as_ref())?,
                image.image.argv(),
            ),
            Foreign::Binary(binary) => {
                let mut command = Command::new(&binary.path);
                command.args(&binary.args);
                if let Some(dir) = &data_dir {
                    command.env(data_dir::ENV_VAR, dir.path());
                }
                pin::pin_command(&mut command, &self.budget.service_cpus);
                let argv = std::iter::once(binary.path.display().to_string())
                    .chain(binary.args.iter().cloned())
                    .collect();
                (command, argv)
            }
        };
        command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        // After the credentials change, which clears PR_SET_PDEATHSIG.
        cleanup::kill_with_parent(&mut command);

        let started = Instant::now();
        let mut child = command
            .spawn()
            .with_context(|| format!("starting {argv:?}"))?;
        let registration = cleanup::register(Resource::Process(child.id()));
        let stderr = drain_stderr(&mut child);
        let base_url = format!("http://127.0.0.1:{port}");
        let startup = health::wait_until_ready(
            &base_url,
            health_path,
            started,
            self.run.startup_timeout,
            || match child.try_wait() {
                Ok(None) => Ok(()),
                Ok(Some(status)) => bail!(
                    "{argv:?} exited during startup ({status}); its last output: {}",
                    stderr.tail()
                ),
                Err(error) => Err(error.into()),
            },
        );
        let startup = match startup {
            Ok(startup) => startup,
            Err(error) => {
                kill_group(&mut child);
                return Err(error.into());
            }
        };
        Ok(Box::new(ChrootInstance {
            footprint: crate::probe::footprint::FootprintProbe::new(vec![child.id()]),
            child,
            base_url,
            health_path: health_path.to_owned(),
            startup,
            _registration: registration,
            _port_lock: port_lock,
            _data_dir: data_dir,
        }))
    }

    fn label(&self) -> EnvironmentLabel {
        let (runtime, image_size_bytes, what) = match &self.foreign {
            Foreign::Image(image) => (
                "chroot",
                Some(image.image.size_bytes),
                format!(
                    "chroot into the root filesystem of {}: no namespaces{}, no cgroups, the host's network",
                    image.image.describe(),
                    if self.run.data_dir.is_some() {
                        " but a mount namespace holding the data directory's bind mount"
                    } else {
                        ""
                    }
                ),
            ),
            Foreign::Binary(binary) => (
                "process",
                std::fs::metadata(&binary.path).ok().map(|meta| meta.len()),
                format!(
                    "the binary {} run directly: no namespaces, no cgroups, the host's network",
                    binary.path.display()
                ),
            ),
        };
        EnvironmentLabel {
            name: self.name().into(),
            kind: EnvKind::Native,
            runtime: runtime.into(),
            accel: None,
            service_cpus: self.budget.service_cpus.clone(),
            generator_cpus: self.budget.generator_cpus.clone(),
            memory_limit_bytes: None,
            kernel: None,
            image_size_bytes,
            detected: None,
            data_dir: Some(self.data_dir_words()),
            memory_counts: Some(crate::probe::footprint::counts(
                "the service's process tree (pages its forked workers share count once in all)",
            )),
            notes: vec![
                what,
                "no memory limit: a plain process has none short of a privileged cgroup".into(),
            ],
            accel_attempts: Vec::new(),
            rung: Some(crate::artifact::Rung::new(
                crate::artifact::position::NATIVE,
                match (&self.foreign, &self.run.data_dir) {
                    (Foreign::Image(_), Some(_)) => {
                        "the baseline: the service's own files as plain processes on the host \
                         (chroot, and a mount namespace for the data directory only)"
                    }
                    _ => {
                        "the baseline: the service's own files as plain processes on the host \
                         (chroot only)"
                    }
                },
                None,
            )),
        }
    }
}

/// Where the port locks live.
fn lock_dir() -> std::path::PathBuf {
    server_binary::work_dir().join("ports")
}

/// Takes the per-port lock, waiting up to `timeout` for another isobench process's
/// instance to release it.
pub(crate) fn lock_port(port: u16, timeout: Duration) -> anyhow::Result<File> {
    let dir = lock_dir();
    std::fs::create_dir_all(&dir)?;
    let file = File::create(dir.join(format!("{port}.lock")))?;
    let deadline = Instant::now() + timeout;
    loop {
        match file.try_lock() {
            Ok(()) => return Ok(file),
            Err(std::fs::TryLockError::WouldBlock) if Instant::now() < deadline => {
                std::thread::sleep(LOCK_POLL);
            }
            Err(std::fs::TryLockError::WouldBlock) => {
                bail!("port {port} stayed taken by another isobench run for {timeout:?}")
            }
            Err(std::fs::TryLockError::Error(error)) => return Err(error.into()),
        }
    }
}

/// Fails, naming the port, when something on the host already listens on it: the chrooted
/// service would fail to bind, or worse, the load would go to that other program.
pub(crate) fn ensure_port_free(port: u16) -> anyhow::Result<()> {
    for address in ["0.0.0.0", "127.0.0.1"] {
        TcpListener::bind((address, port)).with_context(|| {
            format!(
                "port {port} is already in use on this host ({address}); the native environment runs the image in the host's network, so it needs that port free"
            )
        })?;
    }
    Ok(())
}

/// The image's environment, completed as `docker run` completes it.
fn environment(image_env: &[String], user: &ResolvedUser) -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> = image_env
        .iter()
        .filter_map(|pair| {
            let (name, value) = pair.split_once('=')?;
            Some((name.to_owned(), value.to_owned()))
        })
        .collect();
    let has = |env: &[(String, String)], name: &str| env.iter().any(|(n, _)| n == name);
    if !has(&env, "PATH") {
        env.push((
            "PATH".into(),
            "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into(),
        ));
    }
    if !has(&env, "HOME") {
        env.push(("HOME".into(), user.home.clone()));
    }
    env
}

/// Makes the child chroot into `rootfs`, enter `workdir` and drop to `user` before exec;
/// the program is then looked up in the image's `PATH`, inside the chroot. With `bind`
/// (a host directory, its mount point in the root), the child first unshares its mount
/// namespace, makes every mount in it private (so nothing reaches the host's) and
/// bind-mounts the directory there.
fn enter_root(
    command: &mut Command,
    rootfs: &RootFs,
    workdir: &str,
    user: &ResolvedUser,
    bind: Option<(&std::path::Path, &std::path::Path)>,
) -> anyhow::Result<()> {
    let c_path = |path: &std::path::Path| CString::new(path.as_os_str().as_encoded_bytes());
    let root = c_path(&rootfs.dir)?;
    let workdir = CString::new(if workdir.is_empty() { "/" } else { workdir })?;
    let bind = bind
        .map(|(source, target)| Ok::<_, std::ffi::NulError>((c_path(source)?, c_path(target)?)))
        .transpose()?;
    let (uid, gid) = (user.uid, user.gid);
    // SAFETY: only async-signal-safe calls on memory prepared before the fork.
    unsafe {
        command.pre_exec(move || {
            let check = |rc: libc::c_int| {
                if rc == 0 {
                    Ok(())
                } else {
                    Err(std::io::Error::last_os_error())
                }
            };
            if let Some((source, target)) = &bind {
                check(libc::unshare(libc::CLONE_NEWNS))?;
                check(libc::mount(
                    std::ptr::null(),
                    c"/".as_ptr(),
                    std::ptr::null(),
                    libc::MS_REC | libc::MS_PRIVATE,
                    std::ptr::null(),
                ))?;
                check(libc::mount(
                    source.as_ptr(),
                    target.as_ptr(),
                    std::ptr::null(),
                    libc::MS_BIND,
                    std::ptr::null(),
                ))?;
            }
            check(libc::chroot(root.as_ptr()))?;
            check(libc::chdir(workdir.as_ptr()))?;
            let groups = [gid];
            check(libc::setgroups(1, groups.as_ptr()))?;
            check(libc::setgid(gid))?;
            check(libc::setuid(uid))?;
            Ok(())
        });
    }
    Ok(())
}

/// The last lines the service wrote to stderr, kept for error messages.
#[derive(Clone, Default)]
struct StderrTail(std::sync::Arc<std::sync::Mutex<std::collections::VecDeque<String>>>);

impl StderrTail {
    fn tail(&self) -> String {
        let lines = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if lines.is_empty() {
            "(nothing)".into()
        } else {
            lines.iter().cloned().collect::<Vec<_>>().join(" | ")
        }
    }
}

/// Keeps reading the child's stderr on a thread (so it never blocks on a full pipe),
/// remembering the last few lines.
fn drain_stderr(child: &mut Child) -> StderrTail {
    let tail = StderrTail::default();
    if let Some(stderr) = child.stderr.take() {
        let keep = tail.clone();
        std::thread::spawn(move || {
            use std::io::BufRead;
            for line in std::io::BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                let mut lines = keep.0.lock().unwrap_or_else(|p| p.into_inner());
                if lines.len() == 5 {
                    lines.pop_front();
                }
                lines.push_back(line.chars().take(300).collect());
            }
        });
    }
    tail
}

/// SIGKILLs the child's process group (the service and whatever it forked) and reaps it.
fn kill_group(child: &mut Child) {
    // SAFETY: signalling the process group our own child leads.
    unsafe { libc::kill(-(child.id() as i32), libc::SIGKILL) };
    let _ = child.wait();
}

/// A running chrooted service; dropping it kills its process group.
struct ChrootInstance {
    child: Child,
    footprint: crate::probe::footprint::FootprintProbe,
    base_url: String,
    health_path: String,
    startup: Duration,
    _registration: Registration,
    /// Held while the service owns the port.
    _port_lock: File,
    /// The instance's data directory, removed after the service ([`Drop::drop`] runs before
    /// the fields drop); its bind mount went with the service's mount namespace.
    _data_dir: Option<DataDir>,
}

impl Instance for ChrootInstance {
    fn base_url(&self) -> &str {
        &self.base_url
    }

    fn health_path(&self) -> &str {
        &self.health_path
    }

    fn startup(&self) -> Duration {
        self.startup
    }

    fn resources(&self) -> Result<ResourceReading, EnvError> {
        let root = self.child.id();
        let cpu =
            crate::probe::tree::cpu_seconds(root).context("reading the service's process tree")?;
        crate::env::footprint_reading(&self.footprint, cpu)
    }

    fn stop(mut self: Box<Self>) -> Result<(), EnvError> {
        // SIGTERM to the leader: services stop their own workers (gunicorn does).
        // SAFETY: signalling our own child.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + STOP_GRACE;
        while Instant::now() < deadline {
            if self
                .child
                .try_wait()
                .context("waiting for the service")?
                .is_some()
            {
                // Workers it forked and did not stop go with the group.
                // SAFETY: as above, for the group.
                unsafe { libc::kill(-(self.child.id() as i32), libc::SIGKILL) };
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        kill_group(&mut self.child);
        Err(anyhow!("the service did not exit within {STOP_GRACE:?} of SIGTERM; killed").into())
    }
}

impl Drop for ChrootInstance {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            kill_group(&mut self.child);
        }
        // SAFETY: the group may still hold forked workers after the leader exited.
        unsafe { libc::kill(-(self.child.id() as i32), libc::SIGKILL) };
        let _ = self.child.wait();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_environment_is_completed_like_docker_run() {
        let user = ResolvedUser {
            uid: 1000,
            gid: 1000,
            home: "/app".into(),
        };
        let env = environment(&["PYTHONUNBUFFERED=1".into(), "A=b=c".into()], &user);
        assert_eq!(env[0], ("PYTHONUNBUFFERED".into(), "1".into()));
        assert_eq!(env[1], ("A".into(), "b=c".into()));
        assert!(
            env.iter()
                .any(|(n, v)| n == "PATH" && v.contains("/usr/bin"))
        );
        assert!(env.contains(&("HOME".into(), "/app".into())));
        let env = environment(&["HOME=/h".into(), "PATH=/x".into()], &user);
        assert_eq!(env.len(), 2);
    }

    #[test]
    fn a_taken_port_is_named() {
        let listener = TcpListener::bind(("127.0.0.1", 0)).unwrap();
        let port = listener.local_addr().unwrap().port();
        let error = format!("{:#}", ensure_port_free(port).unwrap_err());
        assert!(
            error.contains(&format!("port {port} is already in use")),
            "{error}"
        );
    }
}

//! The Vagrant VM environment: `vm/Vagrantfile` (a Debian box running the static server as a
//! systemd service) driven with `vagrant up` / `vagrant destroy -f`, the service reached on
//! the forwarded 127.0.0.1:5001.
//!
//! For users who have Vagrant and a provider (VirtualBox or libvirt) and chose it with
//! `ISOBENCH_VM=vagrant`. Every check that can fail is done in [`VagrantVm::new`] and takes
//! seconds: Vagrant itself, a usable provider, the box. Startup runs from `vagrant up` until
//! the first 200 on `/health`, so it includes the box import and the provisioning, which is
//! what starting a Vagrant VM costs. Resources are read from the provider's VM process (found
//! by the machine id Vagrant records) where this user can read it.
//!
//! A machine being brought up is registered for cleanup (an interrupt runs `vagrant destroy
//! -f`) and marked with its owner's pid in `.vagrant/isobench-owner`, so that
//! [`sweep_orphan`] can destroy a machine whose isobench died without cleaning up.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::child::spawn_supervised;
use crate::artifact::{Accel, EnvKind, EnvironmentLabel, Preparation};
use crate::cleanup::{self, Registration, ReleaseCommand, Resource};
use crate::env::{Budget, EnvError, Environment, Instance, ResourceReading, health};
use crate::subject::server_binary;

/// The environment's name in tables and artifacts.
pub const NAME: &str = "vm-vagrant";
/// Environment variable naming the `vagrant` binary (default `vagrant` on `PATH`).
pub const VAGRANT_ENV: &str = "ISOBENCH_VAGRANT";
/// Environment variable naming the box (read by the Vagrantfile too).
pub const BOX_ENV: &str = "ISOBENCH_VAGRANT_BOX";
/// The box used when [`BOX_ENV`] is unset.
pub const DEFAULT_BOX: &str = "debian/bookworm64";
/// Environment variable naming the forwarded host port (read by the Vagrantfile too).
pub const PORT_ENV: &str = "ISOBENCH_VAGRANT_PORT";
/// The seed's forwarded port.
pub const DEFAULT_PORT: u16 = 5001;
/// How long any quick vagrant command (`--version`, `box list`, …) may take.
const QUICK_TIMEOUT: Duration = Duration::from_secs(30);
/// How long `vagrant up` may take to a healthy service: a box import and a boot.
const UP_TIMEOUT: Duration = Duration::from_secs(900);
/// How long `vagrant destroy -f` may take.
const DESTROY_TIMEOUT: Duration = Duration::from_secs(300);

fn unavailable(reason: impl std::fmt::Display) -> EnvError {
    EnvError::Unavailable {
        env: NAME.into(),
        reason: reason.to_string(),
    }
}

/// Why a vagrant command, or the machine it manages, failed.
#[derive(Debug, thiserror::Error)]
pub enum VagrantError {
    /// Capturing a command's output failed.
    #[error("{what}: {error}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// The underlying error.
        error: std::io::Error,
    },
    /// The program could not be started.
    #[error("cannot run {program}: {error}")]
    CannotRun {
        /// The program.
        program: String,
        /// Why it did not start.
        error: std::io::Error,
    },
    /// The program overran its time and was killed.
    #[error("{program} did not finish within {timeout:?}")]
    Timeout {
        /// The program.
        program: String,
        /// The time it had.
        timeout: Duration,
    },
    /// A command ran and failed.
    #[error("{command} failed: {stderr}")]
    Failed {
        /// The command, as a user would type it.
        command: &'static str,
        /// What it wrote to stderr.
        stderr: String,
    },
    /// The box is not installed for the provider.
    #[error(
        "box {box_name} for {provider} is not installed (vagrant box list: {listed}); add it \
         with `vagrant box add {box_name} --provider {provider}` or set {BOX_ENV}"
    )]
    BoxMissing {
        /// The box.
        box_name: String,
        /// The provider's name.
        provider: &'static str,
        /// What `vagrant box list` printed.
        listed: String,
    },
    /// The provider's own tools or Vagrant's plugin for it are missing.
    #[error("{0}")]
    ProviderMissing(&'static str),
}

/// A machine the orphan sweep could not destroy, and why.
#[derive(Debug, thiserror::Error)]
#[error("{machine}: {reason}")]
pub struct NotDestroyed {
    /// The machine and its gone owner.
    pub machine: String,
    /// Why it is still there.
    pub reason: VagrantError,
}

/// What a finished command printed.
#[derive(Debug)]
struct Output {
    status: ExitStatus,
    stdout: String,
    stderr: String,
}

/// Runs `command` to completion within `timeout`, capturing its output through files (no
/// pipe to fill up) and killing it if it overruns.
fn run(mut command: Command, timeout: Duration) -> Result<Output, VagrantError> {
    let io = |what| move |error| VagrantError::Io { what, error };
    let dir = tempfile::tempdir().map_err(io("creating a directory for its output"))?;
    let (out, err) = (dir.path().join("stdout"), dir.path().join("stderr"));
    let program = command.get_program().to_string_lossy().into_owned();
    command
        .stdin(Stdio::null())
        .stdout(fs::File::create(&out).map_err(io("creating its stdout file"))?)
        .stderr(fs::File::create(&err).map_err(io("creating its stderr file"))?);
    let mut child = spawn_supervised(command).map_err(|error| VagrantError::CannotRun {
        program: program.clone(),
        error,
    })?;
    let status = child
        .wait_timeout(timeout)
        .map_err(io("waiting for it"))?
        .ok_or(VagrantError::Timeout { program, timeout })?;
    Ok(Output {
        status,
        stdout: fs::read_to_string(&out).unwrap_or_default(),
        stderr: fs::read_to_string(&err).unwrap_or_default(),
    })
}

/// Which provider backs the VM.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Provider {
    /// Oracle VirtualBox.
    VirtualBox,
    /// libvirt (QEMU/KVM) through the vagrant-libvirt plugin.
    Libvirt,
}

impl Provider {
    /// Vagrant's name for it.
    pub fn name(self) -> &'static str {
        match self {
            Provider::VirtualBox => "virtualbox",
            Provider::Libvirt => "libvirt",
        }
    }
}

/// The boxes `vagrant box list` printed, as (name, provider) pairs. Lines look like
/// `debian/bookworm64 (virtualbox, 12.20240503.1)`.
fn parse_box_list(text: &str) -> Vec<(String, String)> {
    text.lines()
        .filter_map(|line| {
            let (name, rest) = line.trim().split_once(" (")?;
            let provider = rest.split([',', ')']).next()?.trim();
            Some((name.trim().to_owned(), provider.to_owned()))
        })
        .collect()
}

/// Whether `vagrant box list` output has `box_name` for `provider`; else what to do.
fn check_box(box_name: &str, provider: Provider, box_list: &str) -> Result<(), VagrantError> {
    let present = parse_box_list(box_list)
        .iter()
        .any(|(name, p)| name == box_name && p == provider.name());
    if present {
        return Ok(());
    }
    Err(VagrantError::BoxMissing {
        box_name: box_name.to_owned(),
        provider: provider.name(),
        listed: box_list.trim().to_owned(),
    })
}

/// The Vagrant VM environment.
pub struct VagrantVm {
    budget: Budget,
    vagrant: PathBuf,
    version: String,
    provider: Provider,
    box_name: String,
    port: u16,
    vagrant_dir: PathBuf,
    server: Mutex<Option<PathBuf>>,
}

impl VagrantVm {
    /// Checks Vagrant, a provider and the box; fails fast with [`EnvError::Unavailable`]
    /// saying which is missing.
    pub fn new(budget: Budget) -> Result<Self, EnvError> {
        let vagrant = std::env::var_os(VAGRANT_ENV)
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("vagrant"));
        Self::with_vagrant(budget, vagrant, server_binary::manifest_dir().join("vm"))
    }

    /// As [`VagrantVm::new`], with an explicit `vagrant` binary and Vagrantfile directory.
    pub fn with_vagrant(
        budget: Budget,
        vagrant: PathBuf,
        vagrant_dir: PathBuf,
    ) -> Result<Self, EnvError> {
        if !vagrant_dir.join("Vagrantfile").is_file() {
            return Err(unavailable(format!(
                "no Vagrantfile in {}",
                vagrant_dir.display()
            )));
        }
        let quick = |args: &[&str]| {
            let mut command = Command::new(&vagrant);
            command.args(args);
            vagrant_env(&mut command, &vagrant_dir);
            run(command, QUICK_TIMEOUT)
        };
        let version =
            quick(&["--version"]).map_err(|e| unavailable(format!("{e} (install Vagrant)")))?;
        let version = version
            .stdout
            .trim()
            .strip_prefix("Vagrant ")
            .unwrap_or(version.stdout.trim())
            .to_owned();

        let forced = match std::env::var("VAGRANT_DEFAULT_PROVIDER").ok().as_deref() {
            None | Some("") => None,
            Some("virtualbox") => Some(Provider::VirtualBox),
            Some("libvirt") => Some(Provider::Libvirt),
            Some(other) => {
                return Err(unavailable(format!(
                    "VAGRANT_DEFAULT_PROVIDER={other}: isobench's Vagrantfile supports virtualbox and libvirt"
                )));
            }
        };
        let provider = choose_provider(forced, quick)?;

        let box_name = std::env::var(BOX_ENV).unwrap_or_else(|_| DEFAULT_BOX.to_owned());
        let boxes = quick(&["box", "list"]).map_err(unavailable)?;
        check_box(&box_name, provider, &boxes.stdout).map_err(unavailable)?;
        let port = std::env::var(PORT_ENV)
            .ok()
            .and_then(|p| p.parse().ok())
            .unwrap_or(DEFAULT_PORT);
        Ok(Self {
            budget,
            vagrant,
            version,
            provider,
            box_name,
            port,
            vagrant_dir,
            server: Mutex::new(None),
        })
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(&self.vagrant);
        command.args(args);
        vagrant_env(&mut command, &self.vagrant_dir);
        let cpus = self.budget.service_cpus.len().max(1);
        let memory_mb = self.budget.memory_limit_bytes / (1 << 20);
        command
            .env("VAGRANT_DEFAULT_PROVIDER", self.provider.name())
            .env(BOX_ENV, &self.box_name)
            .env(PORT_ENV, self.port.to_string())
            .env("ISOBENCH_VM_CPUS", cpus.to_string())
            .env("ISOBENCH_VM_MEMORY_MB", memory_mb.to_string())
            .env("ISOBENCH_VM_CPUSET", self.budget.service_cpuset());
        if let Some(server) = self
            .server
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
        {
            command.env("ISOBENCH_SERVER", server);
        }
        command
    }

    fn destroy(&self) -> Result<(), VagrantError> {
        let output = run(self.command(&["destroy", "-f"]), DESTROY_TIMEOUT)?;
        destroyed(&output)
    }
}

/// Whether `vagrant destroy -f` did what it says.
fn destroyed(output: &Output) -> Result<(), VagrantError> {
    if output.status.success() {
        Ok(())
    } else {
        Err(VagrantError::Failed {
            command: "vagrant destroy -f",
            stderr: output.stderr.trim().to_owned(),
        })
    }
}

/// Settings every vagrant invocation gets: the Vagrantfile's directory, no version check
/// over the network (offline machines, and it costs seconds).
fn vagrant_env(command: &mut Command, dir: &Path) {
    command
        .env("VAGRANT_CWD", dir)
        .env("VAGRANT_CHECKPOINT_DISABLE", "1")
        .current_dir(dir);
}

/// Whether `provider` can run here: VirtualBox needs `VBoxManage`; libvirt needs `virsh` and
/// the vagrant-libvirt plugin.
fn provider_usable(
    provider: Provider,
    quick: &impl Fn(&[&str]) -> Result<Output, VagrantError>,
) -> Result<(), VagrantError> {
    let runs = |program: &str| {
        Command::new(program)
            .arg("--version")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    match provider {
        Provider::VirtualBox if runs("VBoxManage") => Ok(()),
        Provider::VirtualBox => Err(VagrantError::ProviderMissing(
            "VirtualBox is not installed (no VBoxManage)",
        )),
        Provider::Libvirt if !runs("virsh") => Err(VagrantError::ProviderMissing(
            "libvirt is not installed (no virsh)",
        )),
        Provider::Libvirt => {
            let plugins = quick(&["plugin", "list"])?;
            if plugins.stdout.contains("vagrant-libvirt") {
                Ok(())
            } else {
                Err(VagrantError::ProviderMissing(
                    "the vagrant-libvirt plugin is not installed \
                     (vagrant plugin install vagrant-libvirt)",
                ))
            }
        }
    }
}

/// The forced provider if it is usable, else the first usable of VirtualBox and libvirt.
fn choose_provider(
    forced: Option<Provider>,
    quick: impl Fn(&[&str]) -> Result<Output, VagrantError>,
) -> Result<Provider, EnvError> {
    if let Some(provider) = forced {
        provider_usable(provider, &quick).map_err(|why| {
            unavailable(format!(
                "provider {} (VAGRANT_DEFAULT_PROVIDER): {why}",
                provider.name()
            ))
        })?;
        return Ok(provider);
    }
    let mut reasons = Vec::new();
    for provider in [Provider::VirtualBox, Provider::Libvirt] {
        match provider_usable(provider, &quick) {
            Ok(()) => return Ok(provider),
            Err(why) => reasons.push(why.to_string()),
        }
    }
    Err(unavailable(format!(
        "no usable Vagrant provider: {}",
        reasons.join("; ")
    )))
}

impl Environment for VagrantVm {
    fn name(&self) -> &str {
        NAME
    }

    fn prepare(&mut self) -> Result<Vec<Preparation>, EnvError> {
        let (server, build) = server_binary::static_server()?;
        *self.server.lock().unwrap_or_else(|p| p.into_inner()) = Some(server);
        Ok(vec![build])
    }

    fn start(&self) -> Result<Box<dyn Instance>, EnvError> {
        if self
            .server
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_none()
        {
            let (server, _) = server_binary::static_server()?;
            *self.server.lock().unwrap_or_else(|p| p.into_inner()) = Some(server);
        }
        let logs = server_binary::work_dir().join("vm").join("vagrant");
        fs::create_dir_all(&logs).map_err(|e| EnvError::Other(e.into()))?;
        let log_path = logs.join("up.log");
        let log = fs::File::create(&log_path).map_err(|e| EnvError::Other(e.into()))?;
        let log_err = log.try_clone().map_err(|e| EnvError::Other(e.into()))?;

        // Registered and marked before `vagrant up`: an interrupt during the up destroys it,
        // and a sweep can tell it from a machine a live isobench is using.
        write_owner(&self.vagrant_dir, &self.vagrant)
            .map_err(|e| EnvError::Other(anyhow::anyhow!("marking the Vagrant machine: {e}")))?;
        let destroy_registration = cleanup::register(Resource::Command(
            ReleaseCommand::from_command("the Vagrant machine", &self.command(&["destroy", "-f"])),
        ));
        let requested = Instant::now();
        let mut up = self.command(&["up", "--provider", self.provider.name()]);
        up.stdin(Stdio::null()).stdout(log).stderr(log_err);
        let mut up = spawn_supervised(up)
            .map_err(|e| EnvError::Other(anyhow::anyhow!("starting vagrant up: {e}")))?;
        // Released before the destroy (latest first): vagrant refuses to destroy a machine
        // another vagrant process is still bringing up.
        let up_registration = cleanup::register(Resource::Process(up.pid()));
        let base_url = format!("http://127.0.0.1:{}", self.port);
        let mut up_status = None;
        let healthy = health::wait_until_healthy(&base_url, requested, UP_TIMEOUT, || {
            if up_status.is_none() {
                up_status = up.try_wait()?;
            }
            match up_status {
                Some(status) if !status.success() => anyhow::bail!("vagrant up failed ({status})"),
                _ => Ok(()),
            }
        });
        let finish = healthy.and_then(|startup| {
            // The service answers before provisioning reports back; let `vagrant up` finish
            // so the machine is in a state `destroy` handles cleanly.
            match up.wait_timeout(UP_TIMEOUT)? {
                Some(status) if status.success() => Ok(startup),
                Some(status) => anyhow::bail!("vagrant up failed ({status})"),
                None => anyhow::bail!("vagrant up did not finish within {UP_TIMEOUT:?}"),
            }
        });
        match finish {
            Ok(startup) => {
                drop(up_registration);
                let process = provider_process(&self.vagrant_dir, self.provider);
                Ok(Box::new(VagrantInstance {
                    base_url,
                    startup,
                    provider_pid: process,
                    footprint: process
                        .map(|pid| crate::probe::footprint::FootprintProbe::new(vec![pid])),
                    destroy: Some(self.command(&["destroy", "-f"])),
                    vagrant_dir: self.vagrant_dir.clone(),
                    _registration: destroy_registration,
                }))
            }
            Err(error) => {
                drop(up);
                drop(up_registration);
                let destroyed = self
                    .destroy()
                    .err()
                    .map_or_else(String::new, |e| e.to_string());
                if destroyed.is_empty() {
                    remove_owner(&self.vagrant_dir);
                }
                drop(destroy_registration);
                let log_text = fs::read_to_string(&log_path).unwrap_or_default();
                let tail: Vec<&str> = log_text.lines().rev().take(10).collect();
                Err(EnvError::Other(anyhow::anyhow!(
                    "{error:#}; {destroyed} vagrant up's last lines ({}):\n{}",
                    log_path.display(),
                    tail.into_iter().rev().collect::<Vec<_>>().join("\n")
                )))
            }
        }
    }

    fn label(&self) -> EnvironmentLabel {
        let mut notes = vec![
            format!("box {}, provider {}", self.box_name, self.provider.name()),
            "startup includes vagrant up: box import, boot and provisioning".to_owned(),
            "resources are the provider's VM process where this user can read it, else unknown"
                .to_owned(),
        ];
        if self.provider == Provider::VirtualBox {
            notes.push(
                "VirtualBox cannot pin the VM to host CPUs: service_cpus only sets the vCPU count"
                    .to_owned(),
            );
        }
        EnvironmentLabel {
            rung: Some(crate::artifact::Rung::vm(format!(
                "a hypervisor in place of namespaces: {} under Vagrant",
                self.provider.name()
            ))),
            name: NAME.into(),
            kind: EnvKind::Vm,
            runtime: format!("vagrant {} ({})", self.version, self.provider.name()),
            accel: Some(Accel::Provider),
            service_cpus: self.budget.service_cpus.clone(),
            generator_cpus: self.budget.generator_cpus.clone(),
            memory_limit_bytes: Some(self.budget.memory_limit_bytes),
            kernel: None,
            image_size_bytes: None,
            detected: None,
            data_dir: None,
            memory_counts: Some(crate::probe::footprint::counts(
                "the provider's VM process (VBoxHeadless, or libvirt's QEMU)",
            )),
            notes,
            accel_attempts: Vec::new(),
        }
    }
}

/// The pid of the provider's VM process: the process whose command line holds the machine id
/// Vagrant recorded (VirtualBox's `VBoxHeadless --startvm <id>`, libvirt's `qemu … -uuid <id>`).
fn provider_process(vagrant_dir: &Path, provider: Provider) -> Option<u32> {
    let id_path = vagrant_dir
        .join(".vagrant/machines/default")
        .join(provider.name())
        .join("id");
    let id = fs::read_to_string(id_path).ok()?.trim().to_owned();
    if id.is_empty() {
        return None;
    }
    fs::read_dir("/proc")
        .ok()?
        .filter_map(Result::ok)
        .find_map(|entry| {
            let pid: u32 = entry.file_name().to_str()?.parse().ok()?;
            let cmdline = fs::read(entry.path().join("cmdline")).ok()?;
            String::from_utf8_lossy(&cmdline)
                .contains(&id)
                .then_some(pid)
        })
}

/// The file in a Vagrantfile's directory naming the isobench that brought the machine up
/// (pid, then the `vagrant` binary, one a line).
fn owner_file(vagrant_dir: &Path) -> PathBuf {
    vagrant_dir.join(".vagrant").join("isobench-owner")
}

fn write_owner(vagrant_dir: &Path, vagrant: &Path) -> std::io::Result<()> {
    let path = owner_file(vagrant_dir);
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent)?;
    }
    fs::write(
        path,
        format!("{}\n{}\n", std::process::id(), vagrant.display()),
    )
}

fn remove_owner(vagrant_dir: &Path) {
    let _ = fs::remove_file(owner_file(vagrant_dir));
}

/// Destroys the machine of isobench's Vagrantfile if the isobench that brought it up is
/// gone: `None` when there is none to destroy (no mark, or its owner is alive), else what
/// was destroyed or why it could not be.
pub fn sweep_orphan() -> Option<Result<String, NotDestroyed>> {
    sweep_orphan_in(&server_binary::manifest_dir().join("vm"))
}

/// [`sweep_orphan`] for the Vagrantfile in `vagrant_dir`.
pub fn sweep_orphan_in(vagrant_dir: &Path) -> Option<Result<String, NotDestroyed>> {
    let text = fs::read_to_string(owner_file(vagrant_dir)).ok()?;
    let mut lines = text.lines();
    let owner: u32 = lines.next()?.trim().parse().ok()?;
    if crate::cleanup::owner_alive(owner) {
        return None;
    }
    let vagrant = lines
        .next()
        .map_or_else(|| PathBuf::from("vagrant"), PathBuf::from);
    let mut command = Command::new(vagrant);
    command.args(["destroy", "-f"]);
    vagrant_env(&mut command, vagrant_dir);
    let what = format!(
        "Vagrant machine in {} (owner pid {owner})",
        vagrant_dir.display()
    );
    Some(
        match run(command, DESTROY_TIMEOUT).and_then(|output| destroyed(&output)) {
            Ok(()) => {
                remove_owner(vagrant_dir);
                Ok(what)
            }
            Err(reason) => Err(NotDestroyed {
                machine: what,
                reason,
            }),
        },
    )
}

/// A running Vagrant VM; dropping it destroys the machine.
pub struct VagrantInstance {
    base_url: String,
    startup: Duration,
    /// The provider's process running the VM (VirtualBox's VBoxHeadless, libvirt's QEMU),
    /// when found.
    provider_pid: Option<u32>,
    /// The provider process's footprint, when found.
    footprint: Option<crate::probe::footprint::FootprintProbe>,
    destroy: Option<Command>,
    vagrant_dir: PathBuf,
    /// Destroys the machine on an interrupt; dropped once it is destroyed.
    _registration: Registration,
}

impl VagrantInstance {
    fn destroy(&mut self) -> Result<(), VagrantError> {
        let Some(command) = self.destroy.take() else {
            return Ok(());
        };
        destroyed(&run(command, DESTROY_TIMEOUT)?)?;
        remove_owner(&self.vagrant_dir);
        Ok(())
    }
}

impl Instance for VagrantInstance {
    fn base_url(&self) -> &str {
        &self.base_url
    }

    fn startup(&self) -> Duration {
        self.startup
    }

    fn resources(&self) -> Result<ResourceReading, EnvError> {
        let pid = self.provider_pid.ok_or_else(|| {
            EnvError::Other(anyhow::anyhow!(
                "the provider's VM process was not found or is not readable: resources unknown"
            ))
        })?;
        let cpu = crate::probe::process::cpu_seconds(pid).map_err(|e| {
            EnvError::Other(anyhow::Error::new(e).context("reading the provider's VM process"))
        })?;
        let footprint = self.footprint.as_ref().ok_or_else(|| {
            EnvError::Other(anyhow::anyhow!("the provider's VM process was not found"))
        })?;
        crate::env::footprint_reading(footprint, cpu)
    }

    fn stop(mut self: Box<Self>) -> Result<(), EnvError> {
        self.destroy().map_err(|e| EnvError::Other(e.into()))
    }
}

impl Drop for VagrantInstance {
    fn drop(&mut self) {
        let _ = self.destroy();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vagrant_installed() -> bool {
        Command::new("vagrant")
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }

    /// A stand-in `vagrant` that records its arguments and working directory.
    fn fake_vagrant(dir: &Path) -> PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let script = dir.join("vagrant");
        fs::write(
            &script,
            format!(
                "#!/bin/sh\necho \"$(pwd) $*\" >> {}\n",
                dir.join("calls").display()
            ),
        )
        .unwrap();
        fs::set_permissions(&script, fs::Permissions::from_mode(0o755)).unwrap();
        script
    }

    #[test]
    fn the_sweep_destroys_a_dead_owners_machine_only() {
        let tools = tempfile::tempdir().unwrap();
        let vagrant = fake_vagrant(tools.path());
        let machine = tempfile::tempdir().unwrap();
        // No mark: nothing to do.
        assert!(sweep_orphan_in(machine.path()).is_none());
        // A live owner (this test): left alone.
        write_owner(machine.path(), &vagrant).unwrap();
        assert!(sweep_orphan_in(machine.path()).is_none());
        assert!(!tools.path().join("calls").exists());
        // A dead owner: destroyed, and the mark removed.
        let dead = u32::MAX - 1;
        fs::write(
            owner_file(machine.path()),
            format!("{dead}\n{}\n", vagrant.display()),
        )
        .unwrap();
        let removed = sweep_orphan_in(machine.path()).unwrap().unwrap();
        assert!(removed.contains(&format!("owner pid {dead}")), "{removed}");
        let calls = fs::read_to_string(tools.path().join("calls")).unwrap();
        assert_eq!(
            calls.trim(),
            format!(
                "{} destroy -f",
                machine.path().canonicalize().unwrap().display()
            )
        );
        assert!(!owner_file(machine.path()).exists());
    }

    #[test]
    fn box_list_is_parsed() {
        let text =
            "debian/bookworm64 (virtualbox, 12.20240503.1)\nubuntu/jammy64   (libvirt, 1.0)\n";
        assert_eq!(
            parse_box_list(text),
            [
                ("debian/bookworm64".to_owned(), "virtualbox".to_owned()),
                ("ubuntu/jammy64".to_owned(), "libvirt".to_owned())
            ]
        );
        assert!(
            parse_box_list("There are no installed boxes! Use `vagrant box add` to add some.")
                .is_empty()
        );
    }

    #[test]
    fn the_box_must_exist_for_the_provider() {
        let list = "debian/bookworm64 (libvirt, 12.1)\n";
        assert!(check_box("debian/bookworm64", Provider::Libvirt, list).is_ok());
        let why = check_box("debian/bookworm64", Provider::VirtualBox, list)
            .unwrap_err()
            .to_string();
        assert!(
            why.contains("vagrant box add debian/bookworm64 --provider virtualbox"),
            "{why}"
        );
        let none = "There are no installed boxes! Use `vagrant box add` to add some.";
        assert!(check_box("debian/bookworm64", Provider::Libvirt, none).is_err());
    }

    #[test]
    fn a_missing_vagrant_is_unavailable() {
        let dir = server_binary::manifest_dir().join("vm");
        let result =
            VagrantVm::with_vagrant(Budget::for_host(), "/nonexistent/vagrant".into(), dir);
        match result {
            Err(EnvError::Unavailable { env, reason }) => {
                assert_eq!(env, NAME);
                assert!(reason.contains("install Vagrant"), "{reason}");
            }
            Err(other) => panic!("expected Unavailable, got {other}"),
            Ok(_) => panic!("expected Unavailable"),
        }
    }

    #[test]
    fn a_missing_provider_or_box_is_unavailable() {
        if !vagrant_installed() {
            eprintln!("skipped: vagrant is not installed");
            return;
        }
        // Where a provider and the box exist this succeeds; anything else must be Unavailable.
        match VagrantVm::new(Budget::for_host()) {
            Ok(vm) => assert_eq!(vm.label().accel, Some(Accel::Provider)),
            Err(EnvError::Unavailable { reason, .. }) => {
                eprintln!("unavailable: {reason}");
                assert!(
                    reason.contains("provider") || reason.contains("box"),
                    "{reason}"
                )
            }
            Err(other) => panic!("expected Unavailable, got {other}"),
        }
    }

    #[test]
    fn the_vagrantfile_validates() {
        if !vagrant_installed() {
            eprintln!("skipped: vagrant is not installed");
            return;
        }
        // Provider blocks need a usable provider to validate; everything else is checked. The
        // file provisioner needs an existing source: any file will do for validation.
        let dir = server_binary::manifest_dir().join("vm");
        let mut command = Command::new("vagrant");
        command
            .args(["validate", "--ignore-provider"])
            .env("ISOBENCH_SERVER", dir.join("init"));
        vagrant_env(&mut command, &dir);
        let output = run(command, QUICK_TIMEOUT).unwrap();
        assert!(
            output.status.success(),
            "vagrant validate: {}{}",
            output.stdout,
            output.stderr
        );
        assert!(
            output.stdout.contains("validated successfully"),
            "{}",
            output.stdout
        );
    }
}

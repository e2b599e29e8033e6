//! The one place environments are made from their names, for isobench's own server and a
//! user's service alike, for `isobench run` and the test suite alike, so all of them measure
//! exactly the same environments on the same budget.

use std::fmt;
use std::str::FromStr;

use crate::artifact::Preparation;
use crate::docker::Engine;
use crate::env::container::{ContainerEnv, ForeignContainer};
use crate::env::foreign::{ForeignRun, wrap_binary};
use crate::env::mock::{MockEnv, MockReadings};
use crate::env::native::NativeEnv;
use crate::env::native_foreign::{Foreign, NativeForeignEnv};
use crate::env::{Budget, EnvError, Environment, Prepared};
use crate::subject::Subject;

/// An environment isobench can start, by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EnvName {
    /// The server as a plain process.
    Native,
    /// The server in a Docker container on the host's network (namespaces and cgroups
    /// without Docker's network path), bound to 127.0.0.1.
    ContainerHost,
    /// The server in a Docker container behind the bridge, its port published on 127.0.0.1.
    Container,
    /// The bridge container under gVisor, when the engine has a runsc runtime registered.
    Gvisor,
    /// The bridge container under every other runtime the engine has registered (crun,
    /// kata, …), one environment each (`container-<runtime>`).
    Runtimes,
    /// The server in a VM (QEMU booting a kernel and an initramfs; Vagrant with
    /// `ISOBENCH_VM=vagrant`).
    Vm,
    /// The QEMU VM restored from a snapshot taken after its first 200, instead of booted:
    /// a way to start the VM rung, measured on request (`--env vm-snapshot`).
    VmSnapshot,
    /// An in-process server with fixed readings, for trying the pipeline out.
    Mock,
}

impl EnvName {
    /// Every name, in the order `isobench run` lists them: the ladder ([`Self::DEFAULT`]),
    /// then the VM from snapshot and the mock.
    pub const ALL: [EnvName; 8] = [
        Self::Native,
        Self::ContainerHost,
        Self::Container,
        Self::Gvisor,
        Self::Runtimes,
        Self::Vm,
        Self::VmSnapshot,
        Self::Mock,
    ];

    /// What `isobench run` measures when no environment is named: the whole ladder. Not the
    /// VM from snapshot (a second way to start the VM rung, which would add a full
    /// environment's rounds to every default run) nor the mock.
    pub const DEFAULT: &'static [EnvName] = match Self::ALL.split_at(6) {
        (ladder, [EnvName::VmSnapshot, EnvName::Mock]) => ladder,
        _ => panic!("EnvName::ALL must end with the VM from snapshot and the mock"),
    };

    /// The name as written on the command line and in reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Native => "native",
            Self::ContainerHost => "container-host",
            Self::Container => "container",
            Self::Gvisor => "gvisor",
            Self::Runtimes => "runtimes",
            Self::Vm => "vm",
            Self::VmSnapshot => "vm-snapshot",
            Self::Mock => "mock",
        }
    }
}

impl fmt::Display for EnvName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A name that is not an environment.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown environment {given:?}: expected one of native, container-host, container, gvisor, \
     runtimes, vm, vm-snapshot, mock"
)]
pub struct UnknownEnv {
    /// The name as given.
    pub given: String,
}

impl FromStr for EnvName {
    type Err = UnknownEnv;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let wanted = s.trim().to_ascii_lowercase();
        Self::ALL
            .into_iter()
            .find(|name| name.as_str() == wanted)
            .ok_or_else(|| UnknownEnv { given: s.into() })
    }
}

/// The environment `name` for `subject` on `budget`, prepared (builds, images), with its
/// timed preparation steps; `EnvError::Unavailable` when this machine cannot run it.
/// `runtimes` stands for several environments: use [`prepared_all`] for it.
pub fn prepared(
    name: EnvName,
    budget: Budget,
    subject: &Subject,
    run: &ForeignRun,
) -> Result<Prepared, EnvError> {
    let mut all = prepared_all(name, budget, subject, run);
    match all.len() {
        1 => all.remove(0).1,
        n => Err(EnvError::Unavailable {
            env: name.to_string(),
            reason: format!("{name} stands for {n} environments here, not one"),
        }),
    }
}

/// An environment by its own name, constructed or with the reason it cannot be.
type Named = (String, Result<Box<dyn Environment>, EnvError>);

/// An environment as a factory made it, with the steps making it took.
type Built = (Box<dyn Environment>, Vec<Preparation>);

/// Every environment `name` stands for, by its own name, each prepared for `subject` or
/// with the reason it cannot run: one for most names, one per registered runtime (possibly
/// none) for `runtimes`. `run` says how a foreign subject runs; isobench's own server
/// ignores it.
pub fn prepared_all(
    name: EnvName,
    budget: Budget,
    subject: &Subject,
    run: &ForeignRun,
) -> Vec<(String, Result<Prepared, EnvError>)> {
    let built: Vec<(String, Result<Built, EnvError>)> = match subject {
        Subject::Own => own(name, budget)
            .into_iter()
            .map(|(own, env)| (own, env.map(|env| (env, Vec::new()))))
            .collect(),
        foreign_subject => vec![(
            name.to_string(),
            foreign(name, budget, foreign_subject, run),
        )],
    };
    built
        .into_iter()
        .map(|(own, env)| {
            let prepared = env.and_then(|(mut env, mut preparation)| {
                preparation.extend(env.prepare()?);
                Ok(Prepared { env, preparation })
            });
            (own, prepared)
        })
        .collect()
}

/// The environments `name` stands for, running isobench's own server.
fn own(name: EnvName, budget: Budget) -> Vec<Named> {
    let boxed =
        |env: Result<ContainerEnv, EnvError>| env.map(|env| Box::new(env) as Box<dyn Environment>);
    match name {
        EnvName::Native => vec![(name.to_string(), Ok(Box::new(NativeEnv::new(budget))))],
        EnvName::ContainerHost => {
            vec![(name.to_string(), boxed(ContainerEnv::host_network(budget)))]
        }
        EnvName::Container => vec![(name.to_string(), boxed(ContainerEnv::new(budget)))],
        EnvName::Gvisor => vec![(name.to_string(), boxed(ContainerEnv::gvisor(budget)))],
        EnvName::Runtimes => ContainerEnv::other_runtimes(&budget)
            .into_iter()
            .map(|env| {
                let own = env
                    .as_ref()
                    .map_or_else(|_| name.to_string(), |env| env.spec().name.clone());
                (own, boxed(env))
            })
            .collect(),
        EnvName::Vm => vec![(name.to_string(), crate::env::vm::from_env(budget))],
        EnvName::VmSnapshot => vec![(
            name.to_string(),
            crate::env::vm::QemuVm::from_snapshot(budget)
                .map(|vm| Box::new(vm) as Box<dyn Environment>),
        )],
        EnvName::Mock => vec![(
            name.to_string(),
            Ok(Box::new(MockEnv::new(
                "mock",
                budget,
                MockReadings::default(),
            ))),
        )],
    }
}

/// The environment `name` running a foreign `subject` (a user's image or static binary),
/// with the steps it took to make (wrapping a binary into an image). The same image runs in
/// every rung: natively chrooted into its root filesystem, in a container, and in a VM
/// whose root is that filesystem; a static binary runs directly natively and is wrapped
/// `FROM scratch` for every other rung.
fn foreign(
    name: EnvName,
    budget: Budget,
    subject: &Subject,
    run: &ForeignRun,
) -> Result<Built, EnvError> {
    let supported = matches!(
        name,
        EnvName::Native
            | EnvName::ContainerHost
            | EnvName::Container
            | EnvName::Gvisor
            | EnvName::Vm
    );
    if !supported {
        return Err(EnvError::Unavailable {
            env: name.to_string(),
            reason: "this environment runs only isobench's own server".into(),
        });
    }
    let mut steps = Vec::new();
    let image = match (name, subject) {
        (_, Subject::Own) => {
            return Err(anyhow::anyhow!("isobench's own server is not a foreign service").into());
        }
        (EnvName::Native, Subject::Binary(binary)) => {
            let env = NativeForeignEnv::new(budget, Foreign::Binary(binary.clone()), run.clone());
            return Ok((Box::new(env), steps));
        }
        (_, Subject::Image(image)) => image.clone(),
        (_, Subject::Binary(binary)) => {
            let engine = Engine::connect()?;
            let (image, wrapped) = wrap_binary(&engine, binary)?;
            steps.push(wrapped);
            image
        }
    };
    let container = |env: ContainerEnv| -> Box<dyn Environment> {
        Box::new(env.with_foreign(ForeignContainer {
            image: image.clone(),
            run: run.clone(),
        }))
    };
    let env: Box<dyn Environment> = match name {
        EnvName::Native => Box::new(NativeForeignEnv::new(
            budget,
            Foreign::Image(image.clone()),
            run.clone(),
        )),
        EnvName::Container => container(ContainerEnv::new(budget)?),
        EnvName::ContainerHost => container(ContainerEnv::host_network(budget)?),
        EnvName::Gvisor => container(ContainerEnv::gvisor(budget)?),
        _ => crate::env::vm::foreign(budget, image.clone(), run.clone())?,
    };
    Ok((env, steps))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_ignore_case() {
        for name in EnvName::ALL {
            assert_eq!(name.to_string().parse::<EnvName>(), Ok(name));
        }
        assert_eq!(" VM ".parse::<EnvName>(), Ok(EnvName::Vm));
        let error = "kata".parse::<EnvName>().unwrap_err();
        assert!(error.to_string().contains("expected one of"), "{error}");
    }

    #[test]
    fn the_default_is_the_ladder() {
        let expected: Vec<EnvName> = EnvName::ALL
            .into_iter()
            .filter(|name| !matches!(name, EnvName::Mock | EnvName::VmSnapshot))
            .collect();
        assert_eq!(EnvName::DEFAULT, expected.as_slice());
    }

    #[test]
    fn the_mock_is_prepared_without_steps() {
        let prepared = prepared(
            EnvName::Mock,
            Budget::for_host(),
            &Subject::Own,
            &ForeignRun::default(),
        )
        .unwrap();
        assert_eq!(prepared.env.name(), "mock");
        assert!(prepared.preparation.is_empty());
    }
}

//! The one place environments are made from their names, for `isobench run` and the test
//! suite alike, so both measure exactly the same environments on the same budget.

use std::fmt;
use std::str::FromStr;

use crate::artifact::Preparation;
use crate::env::container::ContainerEnv;
use crate::env::mock::{MockEnv, MockReadings};
use crate::env::native::NativeEnv;
use crate::env::{Budget, EnvError, Environment};

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

/// A prepared environment with its timed preparation steps.
pub type Prepared = (Box<dyn Environment>, Vec<Preparation>);

/// The environment `name` on `budget`, prepared (builds, images), with its timed preparation
/// steps; `EnvError::Unavailable` when this machine cannot run it. `runtimes` stands for
/// several environments: use [`prepared_all`] for it.
pub fn prepared(name: EnvName, budget: Budget) -> Result<Prepared, EnvError> {
    let mut all = prepared_all(name, budget);
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

/// Every environment `name` stands for, by its own name, each prepared or with the reason
/// it cannot run: one for most names, one per registered runtime (possibly none) for
/// `runtimes`.
pub fn prepared_all(name: EnvName, budget: Budget) -> Vec<(String, Result<Prepared, EnvError>)> {
    let boxed =
        |env: Result<ContainerEnv, EnvError>| env.map(|env| Box::new(env) as Box<dyn Environment>);
    let built: Vec<Named> = match name {
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
    };
    built
        .into_iter()
        .map(|(own, env)| {
            let prepared = env.and_then(|mut env| {
                let preparation = env.prepare()?;
                Ok((env, preparation))
            });
            (own, prepared)
        })
        .collect()
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
        let (env, preparation) = prepared(EnvName::Mock, Budget::for_host()).unwrap();
        assert_eq!(env.name(), "mock");
        assert!(preparation.is_empty());
    }
}

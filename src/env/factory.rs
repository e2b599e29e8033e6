//! The one place environments are made from their names, for `isobench run` and the test
//! suite alike, so both measure exactly the same environments on the same budget.

use std::fmt;
use std::str::FromStr;

use crate::env::container::ContainerEnv;
use crate::env::mock::{MockEnv, MockReadings};
use crate::env::native::NativeEnv;
use crate::env::{Budget, EnvError, Environment};
use crate::report::schema::Preparation;

/// An environment isobench can start, by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EnvName {
    /// The server as a plain process.
    Native,
    /// The server in a Docker container.
    Container,
    /// The server in a VM (QEMU booting a kernel and an initramfs; Vagrant with
    /// `ISOBENCH_VM=vagrant`).
    Vm,
    /// An in-process server with fixed readings, for trying the pipeline out.
    Mock,
}

impl EnvName {
    /// Every name, in the order `isobench run` lists them.
    pub const ALL: [EnvName; 4] = [Self::Native, Self::Container, Self::Vm, Self::Mock];

    /// What `isobench run` measures when no environment is named.
    pub const DEFAULT: [EnvName; 3] = [Self::Native, Self::Container, Self::Vm];

    /// The name as written on the command line and in reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Native => "native",
            Self::Container => "container",
            Self::Vm => "vm",
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
#[error("unknown environment {given:?}: expected one of native, container, vm, mock")]
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

/// The environment `name` on `budget`, prepared (builds, images), with its timed preparation
/// steps; `EnvError::Unavailable` when this machine cannot run it.
pub fn prepared(
    name: EnvName,
    budget: Budget,
) -> Result<(Box<dyn Environment>, Vec<Preparation>), EnvError> {
    let mut env: Box<dyn Environment> = match name {
        EnvName::Native => Box::new(NativeEnv::new(budget)),
        EnvName::Container => Box::new(ContainerEnv::new(budget)?),
        EnvName::Vm => crate::env::vm::from_env(budget)?,
        EnvName::Mock => Box::new(MockEnv::new("mock", budget, MockReadings::default())),
    };
    let preparation = env.prepare()?;
    Ok((env, preparation))
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
    fn the_mock_is_prepared_without_steps() {
        let (env, preparation) = prepared(EnvName::Mock, Budget::for_host()).unwrap();
        assert_eq!(env.name(), "mock");
        assert!(preparation.is_empty());
    }
}

//! VM environments: a QEMU microVM, and Vagrant behind the `vm` feature.

use crate::env::{Budget, EnvError, Environment};

/// The VM environment chosen by `ISOBENCH_VM`.
pub fn from_env(budget: Budget) -> Result<Box<dyn Environment>, EnvError> {
    let _ = budget;
    Err(EnvError::Unavailable {
        env: "vm".into(),
        reason: "not built yet".into(),
    })
}

//! Which environments the suite runs, and how each is started for a trial.

use isobench::env::container::ContainerEnv;
use isobench::env::native::NativeEnv;
use isobench::env::{Budget, Environment, Instance};
use isobench::report::schema::Preparation;
use libtest_mimic::Failed;

/// Environments with trials; the VM only with `--features vm`.
pub const ENVIRONMENTS: &[&str] = &[
    "native",
    "container",
    #[cfg(feature = "vm")]
    "vm",
];

/// Set to a trial's full name to make that trial fail after its instance started: used to
/// check that a failing trial leaves nothing behind.
pub const FAIL_ON_PURPOSE_ENV: &str = "ISOBENCH_FAIL_TRIAL";

/// A prepared environment of kind `name`, on the host's standard budget, with its timed
/// preparation steps.
pub fn prepared(name: &str) -> Result<(Box<dyn Environment>, Vec<Preparation>), Failed> {
    let budget = Budget::for_host();
    let mut env: Box<dyn Environment> = match name {
        "native" => Box::new(NativeEnv::new(budget)),
        "container" => Box::new(ContainerEnv::new(budget).map_err(|e| format!("{e:#}"))?),
        #[cfg(feature = "vm")]
        "vm" => isobench::env::vm::from_env(budget).map_err(|e| format!("{e:#}"))?,
        other => return Err(format!("unknown environment {other}").into()),
    };
    let preparation = env
        .prepare()
        .map_err(|e| format!("preparing {name}: {e:#}"))?;
    Ok((env, preparation))
}

/// Starts a fresh instance of `env`, runs `body` against it and stops it, also when `body`
/// fails or panics (the instance's `Drop` cleans up during unwinding).
pub fn with_instance(
    trial: &str,
    env: &dyn Environment,
    body: impl FnOnce(&dyn Instance) -> Result<(), Failed>,
) -> Result<(), Failed> {
    let instance = env
        .start()
        .map_err(|e| format!("starting {}: {e:#}", env.name()))?;
    if std::env::var(FAIL_ON_PURPOSE_ENV).is_ok_and(|name| name == trial) {
        panic!("{trial} fails on purpose ({FAIL_ON_PURPOSE_ENV})");
    }
    let outcome = body(instance.as_ref());
    instance
        .stop()
        .map_err(|e| format!("stopping {}: {e:#}", env.name()))?;
    outcome
}

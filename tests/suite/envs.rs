//! Which environments the suite runs, and how each is started for a trial.

use isobench::env::container::ContainerEnv;
use isobench::env::native::NativeEnv;
use isobench::env::{Budget, Environment, Instance};
use isobench::report::schema::Preparation;
use libtest_mimic::Failed;

/// Environments with trials; the VM only with `--features vm`.
pub const ENVIRONMENTS: &[&str] = &[
    "native",
    "container-host",
    "container",
    "gvisor",
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
        "container-host" => {
            Box::new(ContainerEnv::host_network(budget).map_err(|e| format!("{e:#}"))?)
        }
        "gvisor" => Box::new(ContainerEnv::gvisor(budget).map_err(|e| format!("{e:#}"))?),
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

/// Set by `.ci/run` once it has registered gVisor with the engine: the gVisor trials must
/// then run, and fail if gVisor does not work, instead of being skipped.
pub const REQUIRE_GVISOR_ENV: &str = "ISOBENCH_REQUIRE_GVISOR";

/// Why the trials of `env` are skipped on this machine: only an optional environment (gVisor)
/// that this machine lacks and that `.ci/run` did not set up (nor `CI=true` demands).
pub fn skip_reason(env: &str) -> Option<String> {
    if env != "gvisor" {
        return None;
    }
    let required = std::env::var(REQUIRE_GVISOR_ENV).is_ok_and(|v| v == "1")
        || std::env::var("CI").is_ok_and(|v| v == "true");
    if required {
        return None;
    }
    match ContainerEnv::gvisor(Budget::for_host()) {
        Err(isobench::env::EnvError::Unavailable { reason, .. }) => Some(reason),
        _ => None,
    }
}

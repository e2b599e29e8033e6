//! Which environments the suite runs, and how each is started for a trial.

use isobench::artifact::Preparation;
use isobench::env::factory::{self, EnvName};
use isobench::env::foreign::ForeignRun;
use isobench::env::{Budget, Environment, Instance, Prepared};
use isobench::subject::Subject;
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
/// preparation steps: the same factory `isobench run` uses.
pub fn prepared(name: &str) -> Result<(Box<dyn Environment>, Vec<Preparation>), Failed> {
    let name: EnvName = name.parse().map_err(|e| format!("{e}"))?;
    let Prepared { env, preparation } = factory::prepared(
        name,
        Budget::for_host(),
        &Subject::Own,
        &ForeignRun::default(),
    )
    .map_err(|e| format!("preparing {name}: {e:#}"))?;
    Ok((env, preparation))
}

/// Lines of an instance's log attached to a failed check.
const LOG_TAIL_LINES: usize = 40;

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
    // A failed check carries the instance's own log (server output, container log, guest
    // console): a hung guest or a crashed server shows there, not in the HTTP error.
    let outcome = body(instance.as_ref()).map_err(|failure| {
        let tail = instance.log_tail(LOG_TAIL_LINES);
        if tail.is_empty() {
            failure
        } else {
            let message = failure.message().unwrap_or("failed");
            format!(
                "{message}\n--- last {} lines of the instance's log ---\n{}",
                tail.len(),
                tail.join("\n")
            )
            .into()
        }
    });
    instance
        .stop()
        .map_err(|e| format!("stopping {}: {e:#}", env.name()))?;
    outcome
}

/// Whether the gVisor trials must run: `1` when `.ci/run` has registered gVisor with the
/// engine (they then fail if gVisor does not work instead of being skipped), `0` when a
/// pipeline says it set up no gVisor (the GitHub `test` job), unset: required on `CI=true`.
pub const REQUIRE_GVISOR_ENV: &str = "ISOBENCH_REQUIRE_GVISOR";

/// Why the trials of `env` are skipped on this machine: only an optional environment (gVisor)
/// that this machine lacks and that is not required ([`REQUIRE_GVISOR_ENV`]).
pub fn skip_reason(env: &str) -> Option<String> {
    if env != "gvisor" {
        return None;
    }
    let required = match std::env::var(REQUIRE_GVISOR_ENV).as_deref() {
        Ok("1") => true,
        Ok("0") => false,
        // Unset (or another value): a CI machine must not pass by skipping what it lacks.
        _ => std::env::var("CI").is_ok_and(|v| v == "true"),
    };
    if required {
        return None;
    }
    match isobench::env::container::ContainerEnv::gvisor(Budget::for_host()) {
        Err(isobench::env::EnvError::Unavailable { reason, .. }) => Some(reason),
        _ => None,
    }
}

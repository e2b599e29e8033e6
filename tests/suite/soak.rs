//! Soak trials: each environment at saturation for a while must answer every request and
//! hold its memory steady — RSS at the end within 10% of RSS right after warm-up.
//!
//! The default is a short form that fits the test run (8 s); set `ISOBENCH_SOAK` to a
//! duration (`ISOBENCH_SOAK=60s`) for the long form. Soak trials share the one-thread perf
//! test group, since saturation is exactly what must not overlap with other measurements.

use std::time::Duration;

use isobench::env::{Budget, Environment};
use isobench::load::{self, LoadOptions};
use libtest_mimic::{Failed, Trial};

use super::envs;

/// Environment variable holding the soak's length, e.g. `60s`.
pub const SOAK_ENV: &str = "ISOBENCH_SOAK";
const SHORT_SOAK: Duration = Duration::from_secs(8);
const WARMUP: Duration = Duration::from_secs(2);
/// Connections held open during the soak.
const SOAK_CONNECTIONS: usize = 16;
/// Allowed growth of RSS over the soak, relative to after warm-up.
const MAX_GROWTH: f64 = 0.10;

/// The soak trial of environment `env`.
pub fn trials(env: &'static str) -> Vec<Trial> {
    let name = format!("{env}::perf::soak");
    vec![Trial::test(name.clone(), move || {
        let length = match std::env::var(SOAK_ENV) {
            Ok(value) => humantime::parse_duration(&value)
                .map_err(|e| format!("{SOAK_ENV}={value:?}: {e}"))?,
            Err(_) => SHORT_SOAK,
        };
        let (environment, _) = envs::prepared(env)?;
        soak(&name, environment.as_ref(), length)
    })]
}

fn soak(trial: &str, env: &dyn Environment, length: Duration) -> Result<(), Failed> {
    envs::with_instance(trial, env, |instance| {
        let mut options = LoadOptions::new(instance.base_url());
        // Enough connections to keep a one-CPU service saturated; more only lengthen the
        // queues in front of it (and, in an emulated VM, QEMU's user-mode network stack).
        options.connections = SOAK_CONNECTIONS;
        options.cpus = Budget::for_host().generator_cpus;
        options.warmup = Duration::ZERO;

        options.duration = Some(WARMUP);
        load::run(&options).map_err(|e| format!("warm-up: {e:#}"))?;
        let warm = instance.resources().map_err(|e| format!("{e:#}"))?;

        options.duration = Some(length);
        let report = load::run(&options).map_err(|e| format!("soak: {e:#}"))?;
        let end = instance.resources().map_err(|e| format!("{e:#}"))?;

        let growth = end.memory_bytes as f64 / warm.memory_bytes as f64 - 1.0;
        println!(
            "    {}: {:?} at saturation: {} ok at {:.0} req/s, {:?} errors; memory {:.1} → {:.1} MiB ({:+.1}%)",
            env.name(),
            length,
            report.ok,
            report.throughput_rps,
            report.errors,
            warm.memory_bytes as f64 / f64::from(1 << 20),
            end.memory_bytes as f64 / f64::from(1 << 20),
            growth * 100.0
        );
        let failed = report.errors.total();
        if report.ok == 0 || failed > 0 {
            return Err(format!(
                "{failed} of {} requests failed: {:?}",
                report.requests_sent, report.errors
            )
            .into());
        }
        if growth > MAX_GROWTH {
            return Err(format!(
                "memory grew {:.1}% over the soak (limit {:.0}%)",
                growth * 100.0,
                MAX_GROWTH * 100.0
            )
            .into());
        }
        Ok(())
    })
}

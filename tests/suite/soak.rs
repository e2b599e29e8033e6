//! Soak trials: each environment at saturation for a while must answer every request and
//! hold its resident memory, open file descriptors and threads steady, sampled from the
//! service's `/status` ([`isobench::measure::soak`], which defines the noise).
//!
//! The default is a short form that fits the test run (8 s). The long soak is 10 minutes per
//! environment:
//!
//! ```sh
//! ISOBENCH_SOAK=thorough cargo nextest run --test suite -E 'test(/::perf::soak$/)'
//! ```
//!
//! (`ISOBENCH_SOAK=90s` for any other length.) Each soak's samples and verdict are written to
//! `target/isobench/soak/<env>.json`. Soak trials share the one-thread perf test group, since
//! saturation is exactly what must not overlap with other measurements.

use std::time::Duration;

use isobench::env::Budget;
use isobench::measure::soak::{self, SoakPlan};
use isobench::subject::server_binary;
use libtest_mimic::Trial;

use super::envs;

/// Environment variable holding the soak's length, e.g. `60s`, or `thorough` (10 minutes).
pub const SOAK_ENV: &str = "ISOBENCH_SOAK";
const SHORT_SOAK: Duration = Duration::from_secs(8);

/// The soak trial of environment `env`.
pub fn trials(env: &'static str) -> Vec<Trial> {
    let name = format!("{env}::perf::soak");
    vec![Trial::test(name.clone(), move || {
        let generator = Budget::for_host().generator_cpus;
        let plan = match std::env::var(SOAK_ENV).as_deref() {
            Ok("thorough") => SoakPlan::long(generator),
            Ok(value) => SoakPlan::of_length(
                humantime::parse_duration(value)
                    .map_err(|e| format!("{SOAK_ENV}={value:?}: {e}"))?,
                generator,
            ),
            Err(_) => SoakPlan::of_length(SHORT_SOAK, generator),
        };
        let (environment, _) = envs::prepared(env)?;
        envs::with_instance(&name, environment.as_ref(), |instance| {
            let result =
                soak::soak(instance.base_url(), &plan).map_err(|e| format!("soak: {e:#}"))?;
            println!(
                "    {env}: {:?} at saturation: {}",
                plan.length,
                result.describe()
            );
            let dir = server_binary::work_dir().join("soak");
            std::fs::create_dir_all(&dir)?;
            let path = dir.join(format!("{env}.json"));
            std::fs::write(&path, serde_json::to_string_pretty(&result)?)?;
            let problems = result.problems();
            if problems.is_empty() {
                Ok(())
            } else {
                Err(format!("{} (samples in {})", problems.join("; "), path.display()).into())
            }
        })
    })]
}

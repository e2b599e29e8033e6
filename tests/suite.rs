//! The isobench test suite: one libtest-mimic binary whose trials are named
//! `<environment>::<check>` (correctness) and `<environment>::perf::<measurement>`.
//!
//! nextest runs each trial in its own process, so nothing is shared in memory: the static
//! server, the container image and the VM image are cached on disk under `target/`, and perf
//! trials merge their results into per-environment JSON artifacts under
//! `target/isobench/suite/` under a file lock. Perf trials run `isobench run`'s own protocol
//! (`isobench::measure`) and run alone: `.config/nextest.toml` gives each every test thread.

mod suite {
    pub mod artifacts;
    pub mod cleanup;
    pub mod density;
    pub mod endpoints;
    pub mod envs;
    pub mod faults;
    pub mod foreign;
    pub mod groups;
    #[path = "../support/images.rs"]
    pub mod images;
    pub mod memory;
    pub mod perf;
    #[path = "../support/processes.rs"]
    pub mod processes;
    pub mod soak;
    pub mod workloads;
}

use libtest_mimic::{Arguments, Trial};

fn main() {
    let arguments = Arguments::from_args();
    if let Err(error) = isobench::cleanup::install_signal_handlers() {
        eprintln!("could not install signal handlers: {error}");
    }
    // Every suite starts by removing what isobench processes that died left behind (never
    // what a live one owns). nextest runs each trial in a process of its own: only the first
    // process of a run sweeps, so trials that make orphans on purpose (the sweep's own test)
    // are not raced by another trial's start.
    if first_process_of_this_run()
        && let Some(note) = isobench::env::orphans::sweep_orphans().note()
    {
        eprintln!("isobench suite: {note}");
    }
    let mut trials: Vec<Trial> = Vec::new();
    for env in suite::envs::ENVIRONMENTS {
        trials.extend(suite::endpoints::trials(env));
        trials.extend(suite::perf::trials(env));
        trials.extend(suite::soak::trials(env));
        trials.extend(suite::faults::trials(env));
        trials.extend(suite::foreign::trials(env));
        trials.extend(suite::memory::trials(env));
        trials.extend(suite::workloads::trials(env));
        trials.extend(suite::density::trials(env));
    }
    trials.extend(suite::cleanup::trials());
    trials.extend(suite::density::harness_trials());
    // Over every trial listed above: each perf trial must run alone under nextest.
    let names = trials.iter().map(|t| t.name().to_owned()).collect();
    trials.push(suite::groups::trial(names));
    // An optional environment this machine lacks: its trials are listed as ignored, with why.
    for env in suite::envs::ENVIRONMENTS {
        if let Some(reason) = suite::envs::skip_reason(env) {
            eprintln!("skipping the {env} trials: {reason}");
            let (own, harness) = (format!("{env}::"), format!("harness::{env}_"));
            trials = trials
                .into_iter()
                .map(|t| {
                    let skip = t.name().starts_with(&own) || t.name().starts_with(&harness);
                    if skip { t.with_ignored_flag(true) } else { t }
                })
                .collect();
        }
    }
    let conclusion = libtest_mimic::run(&arguments, trials);
    isobench::cleanup::wait_if_interrupted();
    conclusion.exit();
}

/// Whether this is the first suite process of this nextest run (always, outside nextest):
/// the first to create the run's marker file under `target/isobench/`.
fn first_process_of_this_run() -> bool {
    let Ok(run) = std::env::var("NEXTEST_RUN_ID") else {
        return true;
    };
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/isobench/suite-runs");
    if std::fs::create_dir_all(&dir).is_err() {
        return true;
    }
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(dir.join(run))
        .is_ok()
}

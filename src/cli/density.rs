//! `isobench density`: how many instances of one service fit on this host per rung, and
//! what one more costs.
//!
//! Flags → a plain [`DensityPlan`] → each environment from the one factory, prepared and
//! measured in turn ([`crate::measure::density`]: the ramp, then the concurrent start) →
//! `density.json` with its markdown and HTML, rewritten after every rung, so an interrupt or
//! a later failure keeps every finished rung.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;

use crate::artifact::Unavailable;
use crate::artifact::density::{
    DensityArtifact, DensitySettings, InstanceCount, RampEnd, RampStep, RampTarget,
};
use crate::cleanup::{self, Phase};
use crate::env::factory::{self, EnvName};
use crate::env::{Budget, Prepared, orphans};
use crate::measure::density::{self, DensityObserver, DensityPlan, ProcMeminfo};
use crate::render::density as report;

const MIB: u64 = 1 << 20;

/// Options of `isobench density` (its `--help` text, with the anchors' figures, is on
/// [`crate::cli::Command::Density`]).
#[derive(Debug, Clone, Args)]
pub struct DensityArgs {
    /// Environments to ramp, comma-separated (as for `run`): native, container-host,
    /// container, gvisor, runtimes, vm, vm-snapshot, mock. Default: the whole ladder, each
    /// when this machine can run it.
    #[arg(long, value_delimiter = ',')]
    pub env: Vec<EnvName>,
    /// What to measure (isobench's own server unless --image or --binary).
    #[command(flatten)]
    pub subject: super::subject_args::SubjectArgs,
    /// Instances each rung's ramp tries to reach [default: what fits half of the memory
    /// this host has available above the margin, at the cost the rung's first instance
    /// measured, and 2 to 8: at least 2 to fit a marginal cost, at most 8 so a rung of VMs
    /// booting under emulation (TCG) stays within minutes on a small CI machine; the
    /// artifact records each rung's count and the figures behind it]. Ask for more for a
    /// packing figure (the host's margin still stops the ramp).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub instances: Option<u32>,
    /// Host memory to keep available, MiB: no instance starts if it would leave less
    /// [default: max(20% of RAM, 2 GiB)].
    #[arg(long, conflicts_with = "margin_percent")]
    pub margin_mib: Option<u64>,
    /// Host memory to keep available, percent of RAM (at least 2 GiB all the same).
    #[arg(long, value_parser = clap::value_parser!(u8).range(1..=95))]
    pub margin_percent: Option<u8>,
    /// Wait after each instance answers before reading, e.g. `1s` [default: 500ms; 5s for
    /// a VM, whose guest reports freed pages late].
    #[arg(long, value_parser = humantime::parse_duration)]
    pub settle: Option<std::time::Duration>,
    /// isobench's own server only: each instance holds this many MiB (`/hold`) before the
    /// readings, a known answer for the marginal cost (it must read at least this much).
    #[arg(long)]
    pub hold_mib: Option<u64>,
    /// Skip the concurrent start after each ramp.
    #[arg(long)]
    pub no_concurrent: bool,
    /// After each ramp, with every instance running: the closed loop on the health path
    /// (--load-connections over --load-duration) on the first instance alone, then spread
    /// evenly over all of them at once: aggregate throughput and p99, so a reader sees
    /// whether N small instances share the CPU as well as one.
    #[arg(long)]
    pub load: bool,
    /// Connections of `--load`, in all.
    #[arg(long, default_value_t = 50, requires = "load")]
    pub load_connections: usize,
    /// Measured window of `--load`.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "2s", requires = "load")]
    pub load_duration: std::time::Duration,
    /// Page merging for the VM rungs: each guest's RAM is private memory KSM may merge
    /// (huge pages off), and once the ramp is over, every instance running, the kernel's
    /// same-page merging (/sys/kernel/mm/ksm) is turned on at a fast scan rate until a full
    /// scan merges no more (at most 2 min); the instances are read before and after, beside
    /// KSM's own count of the pages it saved. Needs root. KSM's settings are put back after
    /// the rung (also on Ctrl-C or SIGTERM); pages merged stay merged until their processes
    /// exit, and the VMs are stopped first. Other rungs run as without it: a process's or a
    /// container's memory cannot be made mergeable from outside on this kernel.
    #[arg(long)]
    pub ksm: bool,
    /// Where density.json, density.md and density.html are written.
    #[arg(long, default_value = "target/isobench/density")]
    pub output_dir: PathBuf,
}

/// The margin `args` ask for on a host with `total_bytes` of RAM, and how it was chosen.
pub fn margin(args: &DensityArgs, total_bytes: u64) -> (u64, String) {
    match (args.margin_mib, args.margin_percent) {
        (Some(mib), _) => (mib.saturating_mul(MIB), format!("--margin-mib {mib}")),
        (None, Some(percent)) => (
            (total_bytes.saturating_mul(u64::from(percent)) / 100).max(2 << 30),
            format!("--margin-percent {percent}, at least 2 GiB"),
        ),
        (None, None) => (
            density::default_margin_bytes(total_bytes),
            "max(20% of RAM, 2 GiB)".into(),
        ),
    }
}

/// Prints the ramp's progress on stderr, and records the run's phases for interrupts.
struct Progress;

impl DensityObserver for Progress {
    fn starting(&mut self, env: &str, instance: u32) {
        eprintln!("isobench: {env}: starting instance {instance}");
    }

    fn step(&mut self, env: &str, step: &RampStep) {
        eprintln!(
            "isobench: {env}: {} running, {} MiB by PSS, host {} MiB used; started in {:.0} ms",
            step.instances,
            step.instances_memory_bytes / MIB,
            step.host.used_bytes() / MIB,
            step.startup_ms
        );
    }

    fn target(&mut self, env: &str, target: &RampTarget) {
        if let Some(fit) = &target.fit {
            eprintln!(
                "isobench: {env}: aiming at {} instances ({} fit half of the {} MiB available \
                 above the margin at {} MiB each)",
                target.instances,
                fit.fitting,
                fit.available_bytes.saturating_sub(fit.margin_bytes) / MIB,
                fit.per_instance_bytes / MIB
            );
        }
    }

    fn concurrent(&mut self, env: &str, instances: u32) {
        eprintln!("isobench: {env}: starting {instances} at once");
    }

    fn merging(&mut self, env: &str, instances: u32) {
        eprintln!(
            "isobench: {env}: KSM on with {instances} running; waiting for merging to settle"
        );
    }

    fn load(&mut self, env: &str, instances: u32) {
        cleanup::enter_phase(Phase::Loading);
        eprintln!("isobench: {env}: loading 1, then all {instances} instances");
    }
}

/// Runs `isobench density` and prints its table; the exit code says whether every rung
/// went as asked (a ramp ended by a failure, or a failed concurrent start, is
/// [`crate::cli::exit::PARTIAL`]).
pub fn run(args: DensityArgs) -> anyhow::Result<ExitCode> {
    if args.hold_mib.is_some() && args.subject.is_foreign() {
        anyhow::bail!("--hold-mib needs isobench's own server (/hold), not --image or --binary");
    }
    let merging = args.ksm.then(density::MergePlan::on_host);
    if let Some(merging) = &merging {
        crate::env::ksm::writable(&merging.root)?;
    }
    let subject = args.subject.resolve()?;
    let foreign_run = args.subject.foreign_run();
    crate::cli::check_output_dir(&args.output_dir)?;
    let swept = orphans::sweep_orphans().note();
    if let Some(note) = &swept {
        eprintln!("isobench: {note}");
    }
    let host = crate::measure::artifact::host_info();
    let (margin_bytes, margin_rule) = margin(&args, host.memory_total_bytes);
    let plan = DensityPlan {
        instances: args.instances.map_or(density::DEFAULT_COUNT, |instances| {
            InstanceCount::Requested { instances }
        }),
        margin_bytes,
        settle: args.settle,
        hold_mib: args.hold_mib,
        concurrent: !args.no_concurrent,
        load: args.load.then(|| density::DensityLoad {
            connections: args.load_connections.max(1),
            window: args.load_duration,
            warmup: crate::measure::plan::DEFAULT_WARMUP,
            cpus: Budget::for_host().generator_cpus,
        }),
        merging,
    };
    let settings = DensitySettings {
        instances: plan.instances,
        margin_bytes,
        margin_rule,
        settle_ms: plan.settle.map(|settle| settle.as_millis() as u64),
        hold_mib: plan.hold_mib,
        concurrent: plan.concurrent,
        ksm: args.ksm,
    };
    let mut artifact = DensityArtifact::on_host(host, subject.info(), settings);
    let requested = if args.env.is_empty() {
        EnvName::DEFAULT.to_vec()
    } else {
        args.env.clone()
    };
    let mut partial = false;
    for kind in requested {
        cleanup::enter_phase(Phase::Preparing);
        eprintln!("isobench: preparing {kind}");
        for (name, outcome) in
            factory::prepared_all(kind, Budget::for_host(), &subject, &foreign_run)
        {
            let Prepared {
                mut env,
                preparation,
            } = match outcome {
                Ok(prepared) => prepared,
                Err(error) => {
                    eprintln!("isobench: skipping {name}: {error:#}");
                    artifact.unavailable.push(Unavailable {
                        name,
                        reason: format!("{error:#}"),
                    });
                    continue;
                }
            };
            // A rung merges only where its memory can be made mergeable (a VM's RAM).
            let rung_plan = DensityPlan {
                merging: plan.merging.clone().filter(|_| env.merge_memory()),
                ..plan.clone()
            };
            let rung = density::measure_rung(
                env.as_ref(),
                preparation,
                &rung_plan,
                &ProcMeminfo,
                &mut Progress,
            )
            .with_context(|| format!("the density ramp of {name}"));
            // A signal releases the instances under the ramp's feet, which then ends as if a
            // start had failed: that rung is the interrupt's, not a measurement, so it is
            // neither recorded nor written; the handler exits with the signal's code.
            if cleanup::interrupted() {
                cleanup::wait_if_interrupted();
            }
            let rung = rung?;
            partial |= matches!(rung.end, RampEnd::Failed { .. })
                || rung
                    .concurrent
                    .as_ref()
                    .is_some_and(|start| !start.failures.is_empty());
            artifact.rungs.push(rung);
            cleanup::enter_phase(Phase::Writing);
            report::write_files(&args.output_dir, &mut artifact).with_context(|| {
                format!("writing the report into {}", args.output_dir.display())
            })?;
        }
    }
    // Also when nothing ran: the artifact then says why every rung could not.
    report::write_files(&args.output_dir, &mut artifact)
        .with_context(|| format!("writing the report into {}", args.output_dir.display()))?;
    anyhow::ensure!(
        !artifact.rungs.is_empty(),
        "no environment could run: {}",
        crate::render::unavailable_line(&artifact.unavailable)
    );
    print!("{}", report::table(&artifact));
    eprintln!(
        "wrote {}/{{{},{},{}}}",
        args.output_dir.display(),
        report::JSON_FILE,
        report::MARKDOWN_FILE,
        report::HTML_FILE
    );
    Ok(ExitCode::from(if partial {
        crate::cli::exit::PARTIAL
    } else {
        crate::cli::exit::OK
    }))
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        density: DensityArgs,
    }

    fn parse(args: &[&str]) -> Result<DensityArgs, clap::Error> {
        Cli::try_parse_from(std::iter::once("density").chain(args.iter().copied()))
            .map(|cli| cli.density)
    }

    const GIB: u64 = 1 << 30;

    #[test]
    fn the_margin_is_the_default_or_what_a_flag_says() {
        let args = parse(&[]).unwrap();
        assert_eq!(args.instances, None);
        assert_eq!(margin(&args, 24 * GIB).0, 24 * GIB / 5);
        assert_eq!(margin(&args, 4 * GIB).0, 2 * GIB);
        let args = parse(&["--margin-mib", "512"]).unwrap();
        assert_eq!(
            margin(&args, 24 * GIB),
            (512 * MIB, "--margin-mib 512".into())
        );
        let args = parse(&["--margin-percent", "50"]).unwrap();
        assert_eq!(margin(&args, 24 * GIB).0, 12 * GIB);
        assert_eq!(margin(&args, 2 * GIB).0, 2 * GIB);
    }

    #[test]
    fn bad_flags_are_refused() {
        assert!(parse(&["--margin-mib", "1", "--margin-percent", "5"]).is_err());
        assert!(parse(&["--instances", "0"]).is_err());
        assert!(parse(&["--margin-percent", "99"]).is_err());
        assert!(parse(&["--env", "kata"]).is_err());
    }
}

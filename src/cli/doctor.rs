//! `isobench doctor`: what every rung of the ladder needs on this machine, what is here, and
//! the commands that would set up what is missing — printed, never run. The checks are
//! [`crate::env::doctor`]'s; this module only words them (a table on stdout, or `--json`) and
//! picks the exit code: [`super::exit::OK`] when every rung can run,
//! [`super::exit::NOT_READY`] when one cannot.

use std::fmt::Write as _;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;

use crate::env::doctor::{self, Diagnosis, Finding, Need, Readiness, Status};

/// Options of `isobench doctor`.
#[derive(Debug, Clone, Args)]
pub struct DoctorArgs {
    /// Print the findings as JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// Checks this machine and prints the findings.
pub fn run(args: DoctorArgs) -> anyhow::Result<ExitCode> {
    let diagnosis = doctor::diagnose();
    if args.json {
        let json = serde_json::to_string_pretty(&diagnosis).context("serializing the findings")?;
        println!("{json}");
    } else {
        print!("{}", render(&diagnosis));
    }
    Ok(ExitCode::from(exit_code(&diagnosis)))
}

/// [`super::exit::OK`] when every rung can run (a VM under TCG can), else
/// [`super::exit::NOT_READY`].
pub fn exit_code(diagnosis: &Diagnosis) -> u8 {
    if diagnosis.all_ready() {
        super::exit::OK
    } else {
        super::exit::NOT_READY
    }
}

/// A need in words.
fn need_title(need: Need) -> &'static str {
    match need {
        Need::StaticServer => "static server",
        Need::DockerEngine => "Docker engine",
        Need::CgroupLayout => "cgroups",
        Need::RunscInstalled => "runsc",
        Need::RunscRegistered => "runsc registered",
        Need::Qemu => "QEMU",
        Need::GuestKernel => "guest kernel",
        Need::Busybox => "busybox",
        Need::Accelerator => "accelerator",
    }
}

fn status_word(status: Status) -> &'static str {
    match status {
        Status::Found => "found",
        Status::Fallback => "fallback",
        Status::Missing => "MISSING",
    }
}

fn readiness_words(readiness: Readiness) -> &'static str {
    match readiness {
        Readiness::Ready => "ready",
        Readiness::ReadyWithFallback => "ready, on a fallback",
        Readiness::NotReady => "NOT READY",
    }
}

/// The findings as text: each rung with its status and its needs, then the setup commands
/// once per need (with the rungs waiting for it), then the count.
pub fn render(diagnosis: &Diagnosis) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "isobench doctor: what each environment needs on {} (nothing is changed)",
        diagnosis.os
    );
    let width = diagnosis
        .rungs
        .iter()
        .flat_map(|rung| &rung.findings)
        .map(|finding| need_title(finding.need).len())
        .max()
        .unwrap_or(0);
    for rung in &diagnosis.rungs {
        let _ = writeln!(
            out,
            "\n{:<16}{}",
            rung.rung.as_str(),
            readiness_words(rung.readiness)
        );
        for finding in &rung.findings {
            let _ = writeln!(
                out,
                "  {:<8} {:<width$}  {}",
                status_word(finding.status),
                need_title(finding.need),
                finding.detail
            );
        }
    }
    let setups = setups(diagnosis);
    if !setups.is_empty() {
        let whose = if diagnosis.debian_like {
            "on this system".to_owned()
        } else {
            format!(
                "as on Debian ({} may name its packages otherwise)",
                diagnosis.os
            )
        };
        let _ = writeln!(
            out,
            "\nTo set up what is missing, as root {whose} — isobench runs none of these:"
        );
        for (finding, rungs) in setups {
            let _ = writeln!(
                out,
                "  {} ({}):",
                need_title(finding.need),
                rungs.join(", ")
            );
            for command in &finding.setup {
                let _ = writeln!(out, "    {command}");
            }
        }
    }
    let ready = diagnosis
        .rungs
        .iter()
        .filter(|rung| rung.readiness != Readiness::NotReady)
        .count();
    let _ = writeln!(
        out,
        "\n{ready} of {} environments ready{}",
        diagnosis.rungs.len(),
        if ready == diagnosis.rungs.len() {
            String::new()
        } else {
            "; `isobench run` skips the others and says why".to_owned()
        }
    );
    out
}

/// Every finding with commands to run, once per need, with the rungs that report it.
fn setups(diagnosis: &Diagnosis) -> Vec<(&Finding, Vec<&'static str>)> {
    let mut setups: Vec<(&Finding, Vec<&'static str>)> = Vec::new();
    for rung in &diagnosis.rungs {
        for finding in rung.findings.iter().filter(|f| !f.setup.is_empty()) {
            match setups
                .iter_mut()
                .find(|(seen, _)| seen.need == finding.need)
            {
                Some((_, rungs)) => rungs.push(rung.rung.as_str()),
                None => setups.push((finding, vec![rung.rung.as_str()])),
            }
        }
    }
    setups
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::env::doctor::RungFindings;
    use crate::env::factory::EnvName;
    use crate::probe::cgroup::CgroupLayout;

    fn finding(need: Need, status: Status, detail: &str, setup: &[&str]) -> Finding {
        Finding {
            need,
            status,
            detail: detail.into(),
            setup: setup.iter().map(|c| c.to_string()).collect(),
        }
    }

    /// A machine with an engine but no runsc, and a VM under TCG.
    fn diagnosis() -> Diagnosis {
        let server = finding(Need::StaticServer, Status::Found, "built", &[]);
        let engine = finding(Need::DockerEngine, Status::Found, "docker 20.10.24", &[]);
        let runsc = finding(
            Need::RunscInstalled,
            Status::Missing,
            "no runsc on PATH",
            &["apt-get install runsc"],
        );
        let accel = finding(Need::Accelerator, Status::Fallback, "TCG: hangs", &[]);
        Diagnosis {
            os: "Debian GNU/Linux 12 (bookworm)".into(),
            debian_like: true,
            cgroup_layout: Some(CgroupLayout::Hybrid),
            rungs: vec![
                RungFindings::new(EnvName::Native, vec![server.clone()]),
                RungFindings::new(EnvName::Container, vec![server.clone(), engine.clone()]),
                RungFindings::new(EnvName::Gvisor, vec![server.clone(), engine, runsc]),
                RungFindings::new(EnvName::Vm, vec![server, accel]),
            ],
        }
    }

    #[test]
    fn the_table_names_every_rung_its_needs_and_the_commands() {
        let text = render(&diagnosis());
        let expected = "\
isobench doctor: what each environment needs on Debian GNU/Linux 12 (bookworm) (nothing is changed)

native          ready
  found    static server  built

container       ready
  found    static server  built
  found    Docker engine  docker 20.10.24

gvisor          NOT READY
  found    static server  built
  found    Docker engine  docker 20.10.24
  MISSING  runsc          no runsc on PATH

vm              ready, on a fallback
  found    static server  built
  fallback accelerator    TCG: hangs

To set up what is missing, as root on this system — isobench runs none of these:
  runsc (gvisor):
    apt-get install runsc

3 of 4 environments ready; `isobench run` skips the others and says why
";
        assert_eq!(text, expected);
    }

    #[test]
    fn commands_are_listed_once_per_need_and_named_debians_elsewhere() {
        let mut diagnosis = diagnosis();
        let engine = finding(
            Need::DockerEngine,
            Status::Missing,
            "no engine",
            &["apt-get install docker.io"],
        );
        for rung in &mut diagnosis.rungs[1..3] {
            rung.findings[1] = engine.clone();
            *rung = RungFindings::new(rung.rung, rung.findings.clone());
        }
        diagnosis.debian_like = false;
        diagnosis.os = "Fedora Linux 40".into();
        let text = render(&diagnosis);
        assert_eq!(
            text.matches("apt-get install docker.io").count(),
            1,
            "{text}"
        );
        assert!(
            text.contains("  Docker engine (container, gvisor):\n"),
            "{text}"
        );
        assert!(text.contains("as on Debian (Fedora Linux 40"), "{text}");
        assert!(text.contains("2 of 4 environments ready"), "{text}");
    }

    #[test]
    fn the_exit_code_says_whether_every_rung_can_run() {
        let mut diagnosis = diagnosis();
        assert_eq!(exit_code(&diagnosis), crate::cli::exit::NOT_READY);
        diagnosis.rungs.remove(2);
        assert_eq!(
            exit_code(&diagnosis),
            crate::cli::exit::OK,
            "a VM on TCG runs"
        );
        assert!(render(&diagnosis).ends_with("\n3 of 3 environments ready\n"));
        assert!(!render(&diagnosis).contains("To set up"));
    }

    #[test]
    fn the_json_names_rungs_needs_and_statuses() {
        let json = serde_json::to_value(diagnosis()).unwrap();
        let gvisor = &json["rungs"][2];
        assert_eq!(gvisor["rung"], "gvisor");
        assert_eq!(gvisor["readiness"], "not-ready");
        assert_eq!(gvisor["findings"][2]["need"], "runsc-installed");
        assert_eq!(gvisor["findings"][2]["status"], "missing");
        assert_eq!(json["cgroup_layout"], "hybrid");
    }
}

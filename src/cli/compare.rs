//! `isobench compare A.json B.json …`: two ways to read saved artifacts.
//!
//! - **Two runs** (`compare OLD.json NEW.json`, both from `isobench run` and sharing
//!   environments): per metric and environment, the change from OLD to NEW with its interval
//!   and a verdict — faster, slower, no significant change — in the style of hyperfine's
//!   comparisons and critcmp ([`crate::analysis::verdict`]).
//! - **Side by side** (any other set, or `--side-by-side`): the artifacts are merged and
//!   compared as environments, the seed report's workflow (bench the container to
//!   `docker_results.json`, the VM to `vm_results.json`, then compare).
//!
//! Both evaluate `--check`s against the newest figures (NEW, or the merged artifact) and exit
//! with code 4 when one fails.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;

use crate::analysis::verdict;
use crate::artifact::Artifact;
use crate::artifact::merge::{self, origin_of};
use crate::cli::gate::{self, GateArgs};
use crate::render::write;
use crate::render::{Exporter, Table, comparison};

/// Options of `isobench compare`.
#[derive(Debug, Clone, clap::Args)]
pub struct CompareArgs {
    /// Artifacts to compare (JSON from `isobench run` or `isobench bench --output`); two runs
    /// of the same environments are compared OLD → NEW.
    #[arg(required = true, value_name = "ARTIFACT")]
    pub files: Vec<PathBuf>,
    /// Also write the (newest or merged) artifact, markdown and HTML reports into this
    /// directory.
    #[arg(long, value_name = "DIR")]
    pub output_dir: Option<PathBuf>,
    /// Environment to take ratios against (default: `native`, else the first environment).
    #[arg(long, value_name = "NAME")]
    pub baseline: Option<String>,
    /// Put two runs side by side as environments instead of comparing OLD → NEW.
    #[arg(long)]
    pub side_by_side: bool,
    /// Smallest change, in percent, that earns a faster/slower verdict.
    #[arg(long, value_name = "PERCENT", default_value_t = 2.0)]
    pub noise_threshold: f64,
    /// Also write what was printed as GitHub markdown to this file (for a CI job summary).
    #[arg(long, value_name = "FILE")]
    pub markdown: Option<PathBuf>,
    /// Checks and report options.
    #[command(flatten)]
    pub gate: GateArgs,
}

/// Runs `isobench compare`: success when every file was read, the report was made and no
/// check failed.
pub fn run(args: CompareArgs) -> anyhow::Result<ExitCode> {
    anyhow::ensure!(
        args.noise_threshold.is_finite() && args.noise_threshold >= 0.0,
        "--noise-threshold must be a percentage of at least 0"
    );
    let settings = args.gate.settings(args.baseline.clone())?;
    let mut inputs = Vec::with_capacity(args.files.len());
    for path in &args.files {
        let artifact = merge::load(path)?;
        inputs.push((origin_of(path), artifact));
    }
    if let [(_, old), (_, new)] = inputs.as_slice()
        && !args.side_by_side
        && verdict::are_two_runs(old, new)
    {
        let (old, new) = (old.clone(), new.clone());
        return two_runs(&args, &settings, old, new);
    }

    let mut artifact = merge::merge(inputs).context("merging the artifacts")?;
    if artifact.environments.is_empty() {
        anyhow::bail!(
            "the artifacts hold no measured environment{}",
            if artifact.unavailable.is_empty() {
                String::new()
            } else {
                format!(
                    " (unavailable: {})",
                    crate::render::unavailable_line(&artifact.unavailable)
                )
            }
        );
    }
    check_baseline(&args, &artifact)?;
    settings.apply(&mut artifact);

    print!(
        "{}",
        Table.render(&artifact).context("rendering the table")?
    );
    if let Some(path) = &args.markdown {
        let text = crate::render::Markdown
            .render(&artifact)
            .context("rendering markdown")?;
        write::atomic(path, text.as_bytes())?;
    }
    write_report(&args, &artifact)?;
    Ok(ExitCode::from(gate::report_checks(
        &artifact,
        settings.unsure,
    )))
}

/// OLD → NEW: verdicts per metric and environment, then the checks on NEW.
fn two_runs(
    args: &CompareArgs,
    settings: &gate::ReportSettings,
    mut old: Artifact,
    mut new: Artifact,
) -> anyhow::Result<ExitCode> {
    check_baseline(args, &new)?;
    settings.apply(&mut old);
    settings.apply(&mut new);
    let (Some(old_summary), Some(new_summary)) = (&old.summary, &new.summary) else {
        unreachable!("apply always sets the summary");
    };
    let result = verdict::compare(
        &old,
        old_summary,
        &new,
        new_summary,
        args.noise_threshold / 100.0,
    );
    let describe = |path: &Path, artifact: &Artifact| {
        format!(
            "{} (written {} on {})",
            path.display(),
            artifact.created_at,
            artifact.host.hostname
        )
    };
    let old_label = describe(&args.files[0], &old);
    let new_label = describe(&args.files[1], &new);
    print!("{}", comparison::terminal(&result, &old_label, &new_label));
    if let Some(path) = &args.markdown {
        let mut text = comparison::markdown(&result, &old_label, &new_label);
        if !new.checks.is_empty() {
            text.push_str("\n### Checks\n\n");
            for line in crate::gate::outcome_lines(&new.checks) {
                text.push_str(&format!("- {}\n", crate::render::escape_markdown(&line)));
            }
        }
        write::atomic(path, text.as_bytes())?;
    }
    write_report(args, &new)?;
    Ok(ExitCode::from(gate::report_checks(&new, settings.unsure)))
}

fn check_baseline(args: &CompareArgs, artifact: &Artifact) -> anyhow::Result<()> {
    if let Some(baseline) = &args.baseline
        && !artifact
            .environments
            .iter()
            .any(|e| &e.label.name == baseline)
    {
        let names: Vec<&str> = artifact
            .environments
            .iter()
            .map(|e| e.label.name.as_str())
            .collect();
        anyhow::bail!(
            "--baseline {baseline}: no such environment (have: {})",
            names.join(", ")
        );
    }
    Ok(())
}

fn write_report(args: &CompareArgs, artifact: &Artifact) -> anyhow::Result<()> {
    if let Some(dir) = &args.output_dir {
        let written = write::report_files(dir, artifact)
            .with_context(|| format!("writing the report into {}", dir.display()))?;
        println!(
            "wrote {}, {} and {}",
            written.json.display(),
            written.markdown.display(),
            written.html.display()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::artifact::fixture;

    fn args(files: Vec<PathBuf>, output_dir: Option<PathBuf>) -> CompareArgs {
        use clap::Parser as _;
        let mut cli = crate::cli::Cli::parse_from(["isobench", "compare", "x.json"]);
        let Some(crate::cli::Command::Compare(mut parsed)) = cli.command.take() else {
            unreachable!("`compare` parses as compare");
        };
        parsed.files = files;
        parsed.output_dir = output_dir;
        parsed
    }

    fn two_run_files(dir: &Path, new: &Artifact) -> Vec<PathBuf> {
        let old_path = dir.join("old.json");
        let new_path = dir.join("new.json");
        write::json(&old_path, &fixture::artifact()).unwrap();
        write::json(&new_path, new).unwrap();
        vec![old_path, new_path]
    }

    #[test]
    fn two_runs_are_compared_and_a_failed_check_exits_4() {
        let dir = tempfile::tempdir().unwrap();
        // Seven rounds, as a default run has: the passing check's interval covers 95%.
        let files = two_run_files(dir.path(), &fixture::with_rounds(fixture::artifact(), 7));
        let mut a = args(files.clone(), Some(dir.path().join("out")));
        a.markdown = Some(dir.path().join("comparison.md"));
        assert_eq!(run(a).unwrap(), ExitCode::SUCCESS);
        let md = std::fs::read_to_string(dir.path().join("comparison.md")).unwrap();
        assert!(md.contains("No significant change"), "{md}");

        let mut a = args(files, Some(dir.path().join("out")));
        a.gate.checks = vec![
            crate::gate::parse("vm startup < 0.5s").unwrap(),
            crate::gate::parse("container/native throughput >= 0.3").unwrap(),
        ];
        assert_eq!(
            run(a).unwrap(),
            ExitCode::from(crate::gate::EXIT_CHECK_FAILED)
        );
        // The artifact records every check's outcome.
        let written = merge::load(&dir.path().join("out").join(write::JSON_FILE)).unwrap();
        let statuses: Vec<_> = written.checks.iter().map(|c| c.status).collect();
        use crate::artifact::CheckStatus;
        assert_eq!(statuses, [CheckStatus::Fail, CheckStatus::Pass]);
    }

    #[test]
    fn a_bad_check_file_is_an_error_naming_the_line() {
        let dir = tempfile::tempdir().unwrap();
        let files = two_run_files(dir.path(), &fixture::artifact());
        let check_file = dir.path().join("checks.txt");
        std::fs::write(
            &check_file,
            "# gate\nvm startup < 2s\nvm startup < 2 parsecs\n",
        )
        .unwrap();
        let mut a = args(files, None);
        a.gate.check_file = vec![check_file];
        let err = format!("{:#}", run(a).unwrap_err());
        assert!(
            err.contains("checks.txt, line 3") && err.contains("unknown unit `parsecs`"),
            "{err}"
        );
    }

    #[test]
    fn compares_two_bench_files_into_a_report() {
        let dir = tempfile::tempdir().unwrap();
        let mut paths = Vec::new();
        for (stem, env) in [("docker_results", 0), ("vm_results", 1)] {
            let mut artifact = fixture::bench_pair();
            let keep = artifact.environments.remove(env);
            artifact.environments = vec![keep];
            // Both files name their environment the same, as `bench` would.
            artifact.environments[0].label.name = "external".into();
            let path = dir.path().join(format!("{stem}.json"));
            write::json(&path, &artifact).unwrap();
            paths.push(path);
        }
        let out = dir.path().join("out");
        let code = run(args(paths, Some(out.clone()))).unwrap();
        assert_eq!(code, ExitCode::SUCCESS);
        let merged = merge::load(&out.join(write::JSON_FILE)).unwrap();
        let names: Vec<_> = merged
            .environments
            .iter()
            .map(|e| e.label.name.as_str())
            .collect();
        assert_eq!(names, ["external-docker_results", "external-vm_results"]);
        let summary = merged.summary.unwrap();
        let throughput = summary
            .rows
            .iter()
            .find(|r| r.metric == "throughput (bench)")
            .unwrap();
        assert!(throughput.container_vs_vm_improvement_pct.is_some());
    }

    #[test]
    fn a_bad_file_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let good = dir.path().join("good.json");
        write::json(&good, &fixture::artifact()).unwrap();
        let bad = dir.path().join("bad.json");
        std::fs::write(&bad, "{\"schema_version\": 1, \"truncated").unwrap();
        let err = run(args(vec![good.clone(), bad], None)).unwrap_err();
        assert!(format!("{err:#}").contains("bad.json"), "{err:#}");

        let missing = dir.path().join("missing.json");
        let err = run(args(vec![good, missing], None)).unwrap_err();
        assert!(format!("{err:#}").contains("missing.json"), "{err:#}");
    }

    #[test]
    fn an_unknown_baseline_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("run.json");
        write::json(&path, &fixture::artifact()).unwrap();
        let mut a = args(vec![path], None);
        a.baseline = Some("bare-metal".into());
        let err = run(a).unwrap_err();
        assert!(err.to_string().contains("bare-metal") && err.to_string().contains("native"));
    }
}

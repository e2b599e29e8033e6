//! `isobench compare A.json B.json …`: reads artifacts written by `isobench run` or
//! `isobench bench --output`, merges them, prints the comparison table and optionally writes
//! the JSON, markdown and HTML reports. This is the seed report's workflow (bench the
//! container to `docker_results.json`, the VM to `vm_results.json`, then compare) with
//! intervals and a legend.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;

use crate::report::export::{Exporter, Table};
use crate::report::merge::{self, origin_of};
use crate::report::summarize::summarize_with_baseline;
use crate::report::write;

/// Options of `isobench compare`.
#[derive(Debug, Clone, clap::Args)]
pub struct CompareArgs {
    /// Artifacts to compare (JSON from `isobench run` or `isobench bench --output`).
    #[arg(required = true, value_name = "ARTIFACT")]
    pub files: Vec<PathBuf>,
    /// Also write the merged artifact, markdown and HTML reports into this directory.
    #[arg(long, value_name = "DIR")]
    pub output_dir: Option<PathBuf>,
    /// Environment to take ratios against (default: `native`, else the first environment).
    #[arg(long, value_name = "NAME")]
    pub baseline: Option<String>,
}

/// Runs `isobench compare`: success when every file was read and the report was made.
pub fn run(args: CompareArgs) -> anyhow::Result<ExitCode> {
    let mut inputs = Vec::with_capacity(args.files.len());
    for path in &args.files {
        let artifact = merge::load(path)?;
        inputs.push((origin_of(path), artifact));
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
                    artifact
                        .unavailable
                        .iter()
                        .map(|u| format!("{}: {}", u.name, u.reason))
                        .collect::<Vec<_>>()
                        .join("; ")
                )
            }
        );
    }
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
    artifact.summary = Some(summarize_with_baseline(&artifact, args.baseline.as_deref()));

    print!(
        "{}",
        Table.render(&artifact).context("rendering the table")?
    );
    if let Some(dir) = &args.output_dir {
        let written = write::report_files(dir, &artifact)
            .with_context(|| format!("writing the report into {}", dir.display()))?;
        println!(
            "wrote {}, {} and {}",
            written.json.display(),
            written.markdown.display(),
            written.html.display()
        );
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::fixture;

    fn args(files: Vec<PathBuf>, output_dir: Option<PathBuf>) -> CompareArgs {
        CompareArgs {
            files,
            output_dir,
            baseline: None,
        }
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

//! Perf trials' JSON artifacts under `target/isobench/suite/`.
//!
//! Each perf trial runs in its own process and writes its own file,
//! `suite/<env>/<measurement>.json`; after each write, the per-environment artifact
//! (`suite/<env>.json`) and the combined one (`suite/combined.json`) are rebuilt from all trial
//! files under a file lock, so they are complete whichever trial ran last and a rerun replaces
//! its own contribution instead of accumulating.

use std::fs::File;
use std::path::{Path, PathBuf};

use anyhow::Context;
use isobench::artifact::{Artifact, EnvironmentLabel, EnvironmentResult, Preparation, Round};
use isobench::render::write;
use isobench::subject::server_binary;

/// `target/isobench/suite`.
pub fn suite_dir() -> PathBuf {
    server_binary::work_dir().join("suite")
}

/// Records one trial's rounds and rebuilds the per-environment and combined artifacts.
/// Returns the path of the per-environment artifact.
pub fn record(
    measurement: &str,
    label: EnvironmentLabel,
    preparation: Vec<Preparation>,
    rounds: Vec<Round>,
) -> anyhow::Result<PathBuf> {
    let dir = suite_dir();
    let env_dir = dir.join(&label.name);
    std::fs::create_dir_all(&env_dir)?;
    let lock = File::create(dir.join(".lock"))?;
    lock.lock().context("locking the suite's artifacts")?;

    let env_name = label.name.clone();
    let trial = Artifact::now(vec![EnvironmentResult {
        label,
        preparation,
        rounds,
    }]);
    write::json(&env_dir.join(format!("{measurement}.json")), &trial)?;

    let mut environments = Vec::new();
    let mut names: Vec<_> = std::fs::read_dir(&dir)?
        .filter_map(|entry| entry.ok())
        .filter(|entry| entry.path().is_dir())
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    for name in names {
        let merged = merge_trials(&dir.join(&name))?;
        if let Some(merged) = merged {
            write::json(
                &dir.join(format!("{name}.json")),
                &Artifact::now(vec![merged.clone()]),
            )?;
            environments.push(merged);
        }
    }
    write::json(&dir.join("combined.json"), &Artifact::now(environments))?;
    Ok(dir.join(format!("{env_name}.json")))
}

/// Folds an environment's trial files into one result, rounds renumbered in file order.
fn merge_trials(env_dir: &Path) -> anyhow::Result<Option<EnvironmentResult>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(env_dir)?
        .filter_map(|entry| entry.ok().map(|entry| entry.path()))
        .filter(|path| path.extension().is_some_and(|ext| ext == "json"))
        .collect();
    files.sort();
    let mut merged: Option<EnvironmentResult> = None;
    for file in files {
        let text = std::fs::read_to_string(&file)?;
        let Ok(artifact) = serde_json::from_str::<Artifact>(&text) else {
            // A file from an older schema is stale: the trial that wrote it will rewrite it.
            continue;
        };
        for result in artifact.environments {
            let target = merged.get_or_insert_with(|| EnvironmentResult {
                label: result.label.clone(),
                preparation: Vec::new(),
                rounds: Vec::new(),
            });
            target.label = result.label;
            target.preparation.extend(result.preparation);
            for mut round in result.rounds {
                round.round = target.rounds.len() as u32;
                target.rounds.push(round);
            }
        }
    }
    Ok(merged)
}

//! Reading artifacts from disk and combining several into one, so results measured apart
//! (the seed's `docker_results.json` and `vm_results.json`) can be compared side by side.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use crate::artifact::{Artifact, SCHEMA_VERSION};

/// Why an artifact could not be read or artifacts could not be merged.
#[derive(Debug, thiserror::Error)]
pub enum MergeError {
    /// The file could not be read.
    #[error("cannot read {}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not JSON, or not an isobench artifact.
    #[error("{} is not a valid isobench artifact", path.display())]
    Parse {
        /// The file.
        path: PathBuf,
        /// What serde found wrong.
        source: serde_json::Error,
    },
    /// The artifact was written in a format version this isobench does not know.
    #[error(
        "{} has schema version {found}, but this isobench (v{}) reads only version \
         {SCHEMA_VERSION}",
        path.display(),
        env!("CARGO_PKG_VERSION")
    )]
    SchemaVersion {
        /// The file.
        path: PathBuf,
        /// The version it declares (`None`: no `schema_version` field at all).
        found: VersionFound,
    },
    /// Nothing to merge.
    #[error("no artifacts to merge")]
    Empty,
}

/// The schema version a file declared, for the error message.
#[derive(Debug)]
pub struct VersionFound(pub Option<serde_json::Value>);

impl std::fmt::Display for VersionFound {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.0 {
            Some(value) => write!(f, "{value}"),
            None => f.write_str("(missing)"),
        }
    }
}

/// Reads one artifact, checking its schema version *before* the full parse so an artifact
/// from another isobench version gets a message about the version, not about a field.
pub fn load(path: &Path) -> Result<Artifact, MergeError> {
    let text = std::fs::read_to_string(path).map_err(|source| MergeError::Read {
        path: path.to_owned(),
        source,
    })?;
    parse(path, &text)
}

/// Parses an artifact's text; `path` names it in errors.
pub fn parse(path: &Path, text: &str) -> Result<Artifact, MergeError> {
    let parse_error = |source| MergeError::Parse {
        path: path.to_owned(),
        source,
    };
    let value: serde_json::Value = serde_json::from_str(text).map_err(parse_error)?;
    let version = value.get("schema_version");
    if version.and_then(serde_json::Value::as_u64) != Some(u64::from(SCHEMA_VERSION)) {
        return Err(MergeError::SchemaVersion {
            path: path.to_owned(),
            found: VersionFound(version.cloned()),
        });
    }
    serde_json::from_value(value).map_err(parse_error)
}

/// Combines artifacts, each with a short origin (normally its file stem), into one.
///
/// Environments are concatenated in order; a name used by several inputs gets each input's
/// origin as a suffix (`external-docker_results`, `external-vm_results`), and a name still
/// taken after that a counter. The first artifact's host is the report's
/// host; environments measured on a different host say so in their notes. `created_at` is the
/// latest of the inputs; `tool_version` lists each distinct writer's version; `unavailable` entries are concatenated; the summary is dropped (it
/// must be recomputed over the merged environments).
pub fn merge(inputs: Vec<(String, Artifact)>) -> Result<Artifact, MergeError> {
    // A name used by more than one input is ambiguous in every input, so all of its
    // environments get their origin as a suffix, not just the later ones.
    let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
    for (_, artifact) in &inputs {
        let names: BTreeSet<&str> = artifact
            .environments
            .iter()
            .map(|e| e.label.name.as_str())
            .collect();
        for name in names {
            *seen.entry(name).or_default() += 1;
        }
    }
    let ambiguous: BTreeSet<String> = seen
        .into_iter()
        .filter(|(_, count)| *count > 1)
        .map(|(name, _)| name.to_owned())
        .collect();

    let mut inputs = inputs.into_iter();
    let (first_origin, first) = inputs.next().ok_or(MergeError::Empty)?;
    let mut merged = Artifact {
        summary: None,
        checks: Vec::new(),
        environments: Vec::new(),
        unavailable: Vec::new(),
        ..first.clone()
    };
    let mut taken: BTreeSet<String> = BTreeSet::new();
    for (origin, artifact) in std::iter::once((first_origin, first)).chain(inputs) {
        // Different writers are all named, so a reader can tell the artifact is a mix.
        if !merged
            .tool_version
            .split(", ")
            .any(|v| v == artifact.tool_version)
        {
            merged.tool_version = format!("{}, {}", merged.tool_version, artifact.tool_version);
        }
        if artifact.created_at > merged.created_at {
            merged.created_at = artifact.created_at.clone();
        }
        // One service named for the whole file only when every input measured that one.
        if artifact.service != merged.service {
            merged.service = None;
        }
        let other_host = artifact.host != merged.host;
        for mut env in artifact.environments {
            let name = if ambiguous.contains(&env.label.name) {
                format!("{}-{origin}", env.label.name)
            } else {
                env.label.name.clone()
            };
            env.label.name = unique(name, &mut taken);
            if other_host {
                env.label.notes.push(format!(
                    "measured on another host: {} ({}, {} CPUs, kernel {})",
                    artifact.host.hostname,
                    artifact.host.cpu_model,
                    artifact.host.logical_cpus,
                    artifact.host.kernel
                ));
            }
            merged.environments.push(env);
        }
        merged.unavailable.extend(artifact.unavailable);
    }
    Ok(merged)
}

/// The origin to give a file in [`merge`]: its stem, or the whole path when it has none.
pub fn origin_of(path: &Path) -> String {
    path.file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.display().to_string())
}

/// `name`, or `name-2`, `name-3`, … when it is taken already.
fn unique(name: String, taken: &mut BTreeSet<String>) -> String {
    let mut candidate = name.clone();
    let mut counter = 2;
    while taken.contains(&candidate) {
        candidate = format!("{name}-{counter}");
        counter += 1;
    }
    taken.insert(candidate.clone());
    candidate
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::artifact::fixture;

    fn names(artifact: &Artifact) -> Vec<&str> {
        artifact
            .environments
            .iter()
            .map(|e| e.label.name.as_str())
            .collect()
    }

    #[test]
    fn same_names_are_made_unique_with_the_origin() {
        let a = fixture::bench_pair();
        let merged = merge(vec![
            ("docker_results".into(), a.clone()),
            ("vm_results".into(), a.clone()),
            ("vm_results".into(), a),
        ])
        .unwrap();
        assert_eq!(
            names(&merged),
            [
                "docker-docker_results",
                "vm-docker_results",
                "docker-vm_results",
                "vm-vm_results",
                "docker-vm_results-2",
                "vm-vm_results-2"
            ]
        );
        assert_eq!(merged.summary, None);
    }

    #[test]
    fn other_hosts_are_noted_and_latest_time_kept() {
        let a = fixture::bench_pair();
        let mut b = fixture::bench_pair();
        b.host.hostname = "elsewhere".into();
        b.created_at = "2026-12-01T00:00:00Z".into();
        b.environments.truncate(1);
        b.environments[0].label.name = "docker2".into();
        let merged = merge(vec![("a".into(), a), ("b".into(), b)]).unwrap();
        assert_eq!(merged.created_at, "2026-12-01T00:00:00Z");
        assert_eq!(merged.host.hostname, "fixture");
        assert_eq!(merged.tool_version, "0.1.0");
        let noted = &merged.environments[2].label;
        assert_eq!(noted.name, "docker2");
        assert!(noted.notes[0].contains("elsewhere"), "{:?}", noted.notes);
        assert!(merged.environments[0].label.notes.is_empty());
    }

    #[test]
    fn nothing_to_merge_is_an_error() {
        assert!(matches!(merge(Vec::new()), Err(MergeError::Empty)));
    }

    #[test]
    fn unknown_schema_version_is_refused_by_name() {
        let mut value = serde_json::to_value(fixture::artifact()).unwrap();
        value["schema_version"] = 99.into();
        value["a_field_from_the_future"] = true.into();
        let err = parse(Path::new("new.json"), &value.to_string()).unwrap_err();
        let message = err.to_string();
        assert!(matches!(err, MergeError::SchemaVersion { .. }));
        assert!(
            message.contains("new.json") && message.contains("99"),
            "{message}"
        );

        let err = parse(Path::new("old.json"), "{}").unwrap_err();
        assert!(err.to_string().contains("(missing)"), "{err}");
    }

    #[test]
    fn invalid_json_and_missing_files_name_the_file() {
        let err = parse(Path::new("broken.json"), "{not json").unwrap_err();
        assert!(matches!(err, MergeError::Parse { .. }));
        assert!(err.to_string().contains("broken.json"));

        let mut value = serde_json::to_value(fixture::artifact()).unwrap();
        value.as_object_mut().unwrap().remove("host");
        let err = parse(Path::new("hostless.json"), &value.to_string()).unwrap_err();
        assert!(err.to_string().contains("hostless.json") && err.to_string().contains("host"));

        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.json");
        let err = load(&missing).unwrap_err();
        assert!(matches!(err, MergeError::Read { .. }));
        assert!(err.to_string().contains("missing.json"));
    }

    #[test]
    fn artifact_round_trips_through_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("run.json");
        let artifact = fixture::artifact();
        std::fs::write(&path, serde_json::to_string_pretty(&artifact).unwrap()).unwrap();
        assert_eq!(load(&path).unwrap(), artifact);
        assert_eq!(origin_of(&path), "run");
    }
}

//! Scenario files: named load scenarios for a service, in TOML, so a user measures the paths
//! that matter to *their* service.
//!
//! ```toml
//! data_dir = "/data"          # optional: the service's data directory, a path inside it
//!
//! [[scenario]]
//! name = "browse"             # unique; names the scenario in the report
//! loop = "closed"             # "closed" (each connection sends when answered) or "open"
//! connections = 8             # default: 50 closed, 16 open
//! status = 200               # the status every correct answer has (a 2xx); default 200
//! paths = ["/health", { path = "/items?page=2", weight = 3 }]
//!
//! [[scenario]]
//! name = "steady"
//! loop = "open"
//! rate = 100.0                # requests per second; required for an open loop
//! paths = ["/health"]
//! ```
//!
//! `data_dir` gives a foreign service (`--image`, `--binary`) a fresh data directory per
//! instance at that path in every rung, as isobench's own server has at `/data`: a host
//! directory bind-mounted there in a container and under gVisor, bind-mounted there in a
//! private mount namespace of the native chroot (a `--binary` run directly has no root of its
//! own: it gets the host directory's own path), a fresh ext4 disk mounted there in the VM.
//! Every rung also tells the service the path in `ISOBENCH_DATA_DIR`, and its label says what
//! the directory is. The path must be absolute, not `/`, and outside `/proc`, `/sys` and
//! `/dev`. Without the key a foreign service gets no data directory.
//!
//! A path is a string (weight 1) or a table with `path` and `weight` (≥ 1). The expected
//! status is per scenario and a 2xx, since the load generator counts only 2xx answers as
//! correct. Unknown keys anywhere are errors naming the key (serde's `deny_unknown_fields`),
//! so a typo never silently falls back to a default.

use std::collections::BTreeSet;
use std::path::Path;

use serde::Deserialize;

use super::scenario::{FIXED_RATE_CONNECTIONS, Scenario};
use crate::artifact::load::PathWeight;
use crate::load::scenario::validate_path;

/// Connections of a closed loop when the file does not say.
pub const DEFAULT_CLOSED_CONNECTIONS: usize = 50;
/// Connections of an open loop when the file does not say: the built-in open loop's.
pub const DEFAULT_OPEN_CONNECTIONS: usize = FIXED_RATE_CONNECTIONS;

/// Why a scenario file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ScenarioFileError {
    /// The file could not be read.
    #[error("reading scenario file {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// Not valid TOML, or not the expected shape (unknown keys included); the message names
    /// the key and the line.
    #[error("scenario file {path}: {message}")]
    Parse {
        /// The file.
        path: String,
        /// What the TOML parser says, with the place.
        message: String,
    },
    /// The `data_dir` key is not a usable path inside the service.
    #[error("scenario file {path}: data_dir {value:?} {problem}")]
    DataDir {
        /// The file.
        path: String,
        /// The value as given.
        value: String,
        /// What is wrong with it.
        problem: crate::env::data_dir::ServicePathError,
    },
    /// Valid TOML whose content makes no sense.
    #[error("scenario file {path}, scenario {scenario:?}: {problem}")]
    Invalid {
        /// The file.
        path: String,
        /// The scenario concerned.
        scenario: String,
        /// What is wrong.
        problem: String,
    },
}

/// The whole file.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    /// Where the service keeps its files, inside it.
    data_dir: Option<String>,
    scenario: Vec<RawScenario>,
}

/// A scenario file, read and checked.
#[derive(Debug, Clone, PartialEq)]
pub struct ScenarioFile {
    /// Its scenarios, in order.
    pub scenarios: Vec<Scenario>,
    /// The service's data directory, a path inside it (checked by
    /// [`crate::env::data_dir::service_path`]), when the file names one.
    pub data_dir: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawScenario {
    name: String,
    #[serde(rename = "loop")]
    loop_kind: LoopKind,
    connections: Option<usize>,
    rate: Option<f64>,
    #[serde(default = "ok_status")]
    status: u16,
    /// Strings or tables; read one by one (not as an untagged enum) so that an unknown key
    /// inside a path's table is reported by name instead of as "no variant matched".
    paths: Vec<toml::Value>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
struct FullPath {
    path: String,
    #[serde(default = "one")]
    weight: u32,
}

fn one() -> u32 {
    1
}

fn ok_status() -> u16 {
    200
}

/// Closed or open loop, as the file says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
enum LoopKind {
    /// Each connection sends its next request when the last is answered: the ceiling.
    Closed,
    /// Requests at a fixed total rate, latency from the intended send time.
    Open,
}

/// Reads and validates a scenario file.
pub fn load(path: &Path) -> Result<ScenarioFile, ScenarioFileError> {
    let text = std::fs::read_to_string(path).map_err(|source| ScenarioFileError::Read {
        path: path.display().to_string(),
        source,
    })?;
    parse(&text, &path.display().to_string())
}

/// Parses and validates scenario-file text; `origin` names it in errors.
pub fn parse(text: &str, origin: &str) -> Result<ScenarioFile, ScenarioFileError> {
    let file: File = toml::from_str(text).map_err(|error| ScenarioFileError::Parse {
        path: origin.into(),
        message: error.to_string().trim_end().to_owned(),
    })?;
    let data_dir = file
        .data_dir
        .map(|value| {
            crate::env::data_dir::service_path(&value).map_err(|problem| {
                ScenarioFileError::DataDir {
                    path: origin.into(),
                    value,
                    problem,
                }
            })
        })
        .transpose()?;
    let invalid = |scenario: &str, problem: String| ScenarioFileError::Invalid {
        path: origin.into(),
        scenario: scenario.into(),
        problem,
    };
    if file.scenario.is_empty() {
        return Err(invalid("", "the file defines no [[scenario]]".into()));
    }
    let mut names = BTreeSet::new();
    let mut specs = Vec::new();
    for raw in file.scenario {
        let name = raw.name.trim().to_owned();
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        {
            return Err(invalid(
                &raw.name,
                "a name is letters, digits, '-', '_' or '.'".into(),
            ));
        }
        if !names.insert(name.clone()) {
            return Err(invalid(&name, "the name is used twice".into()));
        }
        let connections = raw.connections.unwrap_or(match raw.loop_kind {
            LoopKind::Closed => DEFAULT_CLOSED_CONNECTIONS,
            LoopKind::Open => DEFAULT_OPEN_CONNECTIONS,
        });
        if connections == 0 {
            return Err(invalid(&name, "connections must be at least 1".into()));
        }
        match (raw.loop_kind, raw.rate) {
            (LoopKind::Open, None) => {
                return Err(invalid(&name, "an open loop needs a rate".into()));
            }
            (LoopKind::Open, Some(rate)) if !(rate.is_finite() && rate > 0.0) => {
                return Err(invalid(&name, format!("rate {rate} must be positive")));
            }
            (LoopKind::Closed, Some(_)) => {
                return Err(invalid(
                    &name,
                    "a closed loop has no rate (use loop = \"open\")".into(),
                ));
            }
            _ => {}
        }
        if raw.paths.is_empty() {
            return Err(invalid(&name, "paths is empty".into()));
        }
        let mut paths = Vec::new();
        for (index, raw_path) in raw.paths.into_iter().enumerate() {
            let full = match raw_path {
                toml::Value::String(path) => FullPath { path, weight: 1 },
                table @ toml::Value::Table(_) => table.try_into::<FullPath>().map_err(|error| {
                    invalid(
                        &name,
                        format!("paths[{index}]: {}", error.to_string().trim_end()),
                    )
                })?,
                other => {
                    return Err(invalid(
                        &name,
                        format!(
                            "paths[{index}]: expected a path string or a table, found {}",
                            other.type_str()
                        ),
                    ));
                }
            };
            validate_path(&full.path).map_err(|error| invalid(&name, error.to_string()))?;
            if full.weight == 0 {
                return Err(invalid(
                    &name,
                    format!("{}: the weight must be at least 1", full.path),
                ));
            }
            paths.push(PathWeight {
                path: full.path,
                weight: full.weight,
            });
        }
        if !(200..300).contains(&raw.status) {
            return Err(invalid(
                &name,
                format!(
                    "status {} is not a 2xx; the load generator counts only 2xx answers as correct",
                    raw.status
                ),
            ));
        }
        specs.push(Scenario {
            name,
            paths,
            connections,
            rate_rps: raw.rate,
            expected_status: raw.status,
        });
    }
    Ok(ScenarioFile {
        scenarios: specs,
        data_dir,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = r#"
[[scenario]]
name = "browse"
loop = "closed"
connections = 8
status = 204
paths = ["/health", { path = "/cpu?n=2000", weight = 3 }, { path = "/a" }]

[[scenario]]
name = "steady"
loop = "open"
rate = 100.0
paths = ["/health"]
"#;

    #[test]
    fn parses_closed_and_open_scenarios() {
        let file = parse(EXAMPLE, "t.toml").unwrap();
        assert_eq!(file.data_dir, None);
        let specs = file.scenarios;
        assert_eq!(specs.len(), 2);
        assert_eq!(specs[0].name, "browse");
        assert!(!specs[0].open_loop());
        assert_eq!(specs[0].connections, 8);
        assert_eq!(
            specs[0].paths,
            vec![
                PathWeight {
                    path: "/health".into(),
                    weight: 1
                },
                PathWeight {
                    path: "/cpu?n=2000".into(),
                    weight: 3
                },
                PathWeight {
                    path: "/a".into(),
                    weight: 1
                },
            ]
        );
        assert_eq!(specs[0].expected_status, 204);
        assert_eq!(specs[1].expected_status, 200);
        assert!(specs[1].open_loop());
        assert_eq!(specs[1].rate_rps, Some(100.0));
        assert_eq!(specs[1].connections, DEFAULT_OPEN_CONNECTIONS);
    }

    #[test]
    fn an_unknown_key_is_an_error_naming_it() {
        let text = EXAMPLE.replace("connections = 8", "conections = 8");
        let error = parse(&text, "t.toml").unwrap_err().to_string();
        assert!(error.contains("unknown field `conections`"), "{error}");
        assert!(error.starts_with("scenario file t.toml:"), "{error}");
        let text = EXAMPLE.replace("weight = 3", "wieght = 3");
        let error = parse(&text, "t.toml").unwrap_err().to_string();
        assert!(error.contains("wieght"), "{error}");
        let error = parse("[[scenarios]]\nname = \"x\"\n", "t.toml")
            .unwrap_err()
            .to_string();
        assert!(error.contains("unknown field `scenarios`"), "{error}");
    }

    #[test]
    fn nonsense_is_an_error_naming_the_scenario() {
        let cases = [
            (
                EXAMPLE.replace("rate = 100.0\n", ""),
                "an open loop needs a rate",
            ),
            (
                EXAMPLE.replace("name = \"steady\"", "name = \"browse\""),
                "used twice",
            ),
            (
                EXAMPLE.replace("connections = 8", "connections = 0"),
                "at least 1",
            ),
            (
                EXAMPLE.replace("weight = 3", "weight = 0"),
                "weight must be at least 1",
            ),
            (
                EXAMPLE.replace("\"/health\", {", "\"health\", {"),
                "must start with '/'",
            ),
            (EXAMPLE.replace("status = 204", "status = 404"), "not a 2xx"),
            (
                EXAMPLE.replace("{ path = \"/a\" }", "3"),
                "paths[2]: expected a path string",
            ),
            (
                EXAMPLE.replace("connections = 8", "rate = 5.0"),
                "closed loop has no rate",
            ),
        ];
        for (text, expected) in cases {
            let error = parse(&text, "t.toml").unwrap_err().to_string();
            assert!(error.contains(expected), "{error} should say {expected}");
        }
    }

    #[test]
    fn data_dir_is_a_checked_path_inside_the_service() {
        let text = format!("data_dir = \"/var/lib/app/\"\n{EXAMPLE}");
        let file = parse(&text, "t.toml").unwrap();
        assert_eq!(file.data_dir.as_deref(), Some("/var/lib/app"));
        assert_eq!(file.scenarios.len(), 2);
        for (value, expected) in [
            ("data", "data_dir \"data\" must be an absolute path"),
            ("/", "data_dir \"/\" must not be the root directory"),
            ("/a/../b", "no '.', '..'"),
            ("/proc/x", "must not be in /proc"),
        ] {
            let text = format!("data_dir = {value:?}\n{EXAMPLE}");
            let error = parse(&text, "t.toml").unwrap_err().to_string();
            assert!(
                error.starts_with("scenario file t.toml: data_dir"),
                "{error}"
            );
            assert!(error.contains(expected), "{error} should say {expected}");
        }
        // A key inside a scenario is still an unknown key there.
        let text = EXAMPLE.replace("name = \"steady\"", "name = \"steady\"\ndata_dir = \"/d\"");
        let error = parse(&text, "t.toml").unwrap_err().to_string();
        assert!(error.contains("unknown field `data_dir`"), "{error}");
    }

    #[test]
    fn a_missing_file_is_named() {
        let error = load(Path::new("/nonexistent/s.toml"))
            .unwrap_err()
            .to_string();
        assert!(
            error.starts_with("reading scenario file /nonexistent/s.toml"),
            "{error}"
        );
    }
}

//! Scenarios: which paths a run sends, in what proportion, and the order each connection
//! sends them in.
//!
//! Syntax (`--scenario`): comma-separated items `PATH[:WEIGHT]`, where `PATH` starts with
//! `/` (path and query, e.g. `/cpu?n=20000`) or is a short name for one of the service's
//! endpoints (`health`, `cpu`, `memory`, `parallel`, `status`), and `WEIGHT` is a whole
//! number ≥ 1 (default 1). Example: `health:8,/cpu?n=20000:2`. A comma inside a path must be
//! percent-encoded (`%2C`).
//!
//! Paths are picked by smooth weighted round-robin (nginx's upstream algorithm) rather than
//! at random: the mix is exact over every cycle of `sum(weights)` requests and interleaved
//! within it, so short runs and exact request counts still get the asked-for proportions.

use super::PathWeight;

/// Short names for the service's endpoints and the path each stands for.
pub const SHORT_NAMES: &[(&str, &str)] = &[
    ("health", "/health"),
    ("cpu", "/cpu?n=20000"),
    ("memory", "/memory?mb=16"),
    ("parallel", "/parallel?tasks=4&n=20000"),
    ("status", "/status"),
];

/// Why a scenario could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScenarioError {
    /// The scenario has no items.
    #[error("the scenario is empty")]
    Empty,
    /// An item is neither a path starting with `/` nor a known short name.
    #[error("{item:?} is neither a path starting with '/' nor one of the short names {names}")]
    UnknownName {
        /// The item as written.
        item: String,
        /// The short names that exist.
        names: String,
    },
    /// A weight of 0.
    #[error("{item:?}: the weight must be at least 1")]
    ZeroWeight {
        /// The item as written.
        item: String,
    },
    /// The same path twice (perhaps once by its short name): its results would be one entry.
    #[error("{path:?} is listed twice; give it once with the sum of the weights")]
    Duplicate {
        /// The path.
        path: String,
    },
    /// A path that is not a valid request target.
    #[error("{path:?} is not a valid path and query: {reason}")]
    BadPath {
        /// The path.
        path: String,
        /// What is wrong with it.
        reason: String,
    },
}

/// Parses a scenario such as `health:8,/cpu?n=20000:2`.
pub fn parse(spec: &str) -> Result<Vec<PathWeight>, ScenarioError> {
    let mut scenario = Vec::new();
    for item in spec
        .split(',')
        .map(str::trim)
        .filter(|item| !item.is_empty())
    {
        // The weight is whatever follows the last ':' when it is a number, so a ':' inside a
        // query value (rare, but legal) does not need escaping.
        let (target, weight) = match item.rsplit_once(':') {
            Some((target, weight)) if weight.parse::<u32>().is_ok() => {
                (target, weight.parse::<u32>().unwrap_or(1))
            }
            _ => (item, 1),
        };
        if weight == 0 {
            return Err(ScenarioError::ZeroWeight { item: item.into() });
        }
        let path = resolve(target).ok_or_else(|| ScenarioError::UnknownName {
            item: item.into(),
            names: SHORT_NAMES
                .iter()
                .map(|(name, _)| *name)
                .collect::<Vec<_>>()
                .join(", "),
        })?;
        validate_path(&path)?;
        if scenario.iter().any(|p: &PathWeight| p.path == path) {
            return Err(ScenarioError::Duplicate { path });
        }
        scenario.push(PathWeight { path, weight });
    }
    if scenario.is_empty() {
        return Err(ScenarioError::Empty);
    }
    Ok(scenario)
}

fn resolve(target: &str) -> Option<String> {
    if target.starts_with('/') {
        return Some(target.to_owned());
    }
    SHORT_NAMES
        .iter()
        .find(|(name, _)| *name == target)
        .map(|(_, path)| (*path).to_owned())
}

/// Checks that `path` is an origin-form request target (`/…`, optional query, no fragment).
pub fn validate_path(path: &str) -> Result<http::Uri, ScenarioError> {
    let bad = |reason: &str| ScenarioError::BadPath {
        path: path.into(),
        reason: reason.into(),
    };
    if !path.starts_with('/') {
        return Err(bad("it must start with '/'"));
    }
    if path.contains('#') {
        return Err(bad("a fragment is never sent"));
    }
    let uri: http::Uri = path
        .parse()
        .map_err(|e: http::uri::InvalidUri| bad(&e.to_string()))?;
    if uri.scheme().is_some() || uri.authority().is_some() {
        return Err(bad("give a path, not a URL"));
    }
    Ok(uri)
}

/// Picks path indices by smooth weighted round-robin; one per connection.
#[derive(Debug, Clone)]
pub struct Picker {
    weights: Vec<i64>,
    current: Vec<i64>,
    total: i64,
}

impl Picker {
    /// A picker over `weights`, advanced `offset` picks so that connections started together
    /// do not all send the same path at the same moment.
    pub fn new(weights: &[u32], offset: usize) -> Self {
        let weights: Vec<i64> = weights.iter().map(|&w| i64::from(w.max(1))).collect();
        let total = weights.iter().sum();
        let mut picker = Self {
            current: vec![0; weights.len()],
            weights,
            total,
        };
        let skip = (offset as u64 % picker.total.max(1) as u64) as usize;
        for _ in 0..skip {
            picker.next_index();
        }
        picker
    }

    /// The index of the next path to send.
    pub fn next_index(&mut self) -> usize {
        if self.weights.len() == 1 {
            return 0;
        }
        for (current, weight) in self.current.iter_mut().zip(&self.weights) {
            *current += weight;
        }
        // The first maximum wins ties, which keeps the order deterministic.
        let mut best = 0;
        for i in 1..self.current.len() {
            if self.current[i] > self.current[best] {
                best = i;
            }
        }
        self.current[best] -= self.total;
        best
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_paths_short_names_and_weights() {
        let scenario = parse("health:8, /cpu?n=20000:2 ,/a:b").unwrap();
        assert_eq!(
            scenario,
            vec![
                PathWeight {
                    path: "/health".into(),
                    weight: 8
                },
                PathWeight {
                    path: "/cpu?n=20000".into(),
                    weight: 2
                },
                PathWeight {
                    path: "/a:b".into(),
                    weight: 1
                },
            ]
        );
    }

    #[test]
    fn rejects_bad_scenarios() {
        assert_eq!(parse(" , "), Err(ScenarioError::Empty));
        assert!(matches!(
            parse("helth"),
            Err(ScenarioError::UnknownName { .. })
        ));
        assert!(matches!(
            parse("/x:0"),
            Err(ScenarioError::ZeroWeight { .. })
        ));
        assert!(matches!(parse("/a b"), Err(ScenarioError::BadPath { .. })));
        assert_eq!(
            parse("health,/health:2"),
            Err(ScenarioError::Duplicate {
                path: "/health".into()
            })
        );
        assert!(matches!(
            parse("/a#frag"),
            Err(ScenarioError::BadPath { .. })
        ));
    }

    #[test]
    fn picker_keeps_exact_proportions_and_interleaves() {
        let mut picker = Picker::new(&[8, 2], 0);
        let cycle: Vec<usize> = (0..10).map(|_| picker.next_index()).collect();
        assert_eq!(cycle.iter().filter(|&&i| i == 1).count(), 2);
        // Interleaved: the two picks of path 1 are not adjacent.
        let first = cycle.iter().position(|&i| i == 1).unwrap();
        assert_ne!(cycle[first + 1], 1);
        // Every later cycle has the same counts.
        let counts = (0..1000).fold([0usize; 2], |mut counts, _| {
            counts[picker.next_index()] += 1;
            counts
        });
        assert_eq!(counts, [800, 200]);
    }

    #[test]
    fn picker_offsets_differ() {
        let a: Vec<usize> = {
            let mut p = Picker::new(&[1, 1, 1], 0);
            (0..3).map(|_| p.next_index()).collect()
        };
        let b: Vec<usize> = {
            let mut p = Picker::new(&[1, 1, 1], 1);
            (0..3).map(|_| p.next_index()).collect()
        };
        assert_ne!(a[0], b[0]);
    }
}

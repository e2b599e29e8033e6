//! Reports: the JSON artifact, statistics over repetitions, the table, markdown and HTML.
//!
//! The pipeline reads top to bottom: [`merge::load`] artifacts (or take the one `run` just
//! made), [`merge::merge`] them, [`summarize::summarize`] into per-metric estimates
//! ([`stats`]), pick the [`headline`], render with an [`export::Exporter`], and [`write`] the
//! files atomically. [`verdict`] compares two runs, [`check`] gates on thresholds, and
//! [`sweep`] reads the latency-under-load curves.

pub mod check;
pub mod export;
pub mod headline;
pub mod ladder;
pub mod merge;
pub mod schema;
pub mod stats;
pub mod summarize;
pub mod sweep;
pub mod verdict;
pub mod write;

#[cfg(test)]
pub(crate) mod fixture;

pub use merge::{load, merge};
pub use summarize::summarize;

/// The environments that could not run, as one line: `name: reason; name: reason`.
pub fn unavailable_line(unavailable: &[schema::Unavailable]) -> String {
    unavailable
        .iter()
        .map(|u| format!("{}: {}", u.name, u.reason))
        .collect::<Vec<_>>()
        .join("; ")
}

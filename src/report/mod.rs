//! Reports: the JSON artifact, statistics over repetitions, the table, markdown and HTML.
//!
//! The pipeline reads top to bottom: [`merge::load`] artifacts (or take the one `run` just
//! made), [`merge::merge`] them, [`summarize::summarize`] into per-metric estimates
//! ([`stats`]), render with an [`export::Exporter`], and [`write`] the files atomically.

pub mod export;
pub mod ladder;
pub mod merge;
pub mod schema;
pub mod stats;
pub mod summarize;
pub mod write;

#[cfg(test)]
pub(crate) mod fixture;

pub use merge::{load, merge};
pub use summarize::summarize;

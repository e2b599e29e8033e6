//! Analysis: what the measurements in an artifact say, as numbers and findings.
//!
//! [`summarize`](mod@summarize) turns repetitions into per-metric estimates ([`stats`]); [`headline`] picks
//! the seed's four questions out of them; [`ladder`] takes isolation apart rung by rung;
//! [`sweep`] reads the latency-under-load curves; [`series`] reads inside each measured
//! window; [`verdict`] compares two runs; [`density`] fits memory against the number of
//! instances.

pub mod density;
pub mod headline;
pub mod ladder;
pub mod series;
pub mod stats;
pub mod summarize;
pub mod sweep;
pub mod verdict;

pub use summarize::summarize;

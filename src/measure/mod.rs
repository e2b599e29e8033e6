//! The measurement stage between environments and the report: the one protocol that both
//! `isobench run` and the test suite use, so the suite tests exactly what `run` publishes.
//!
//! - [`plan`]: what to measure, as plain data (no command-line types);
//! - [`scenario`]: the load scenarios, as plain data;
//! - [`quiet`]: the bounded wait for a quiet machine before each instance starts;
//! - [`protocol`]: one round on one fresh instance (start → idle reading → each scenario:
//!   reading, load, reading → stop), failures recorded, not raised;
//! - [`window`]: peak memory and CPU time over exactly the load's measured window;
//! - [`rounds`]: shuffled, interleaved rounds over several environments, the artifact handed
//!   back after every round;
//! - [`artifact`]: `Artifact::now`, which stamps an artifact with this host;
//! - [`soak`]: one instance held at saturation, RSS, open fds and threads sampled;
//! - [`density`]: instances started one by one, then at once, until N or the host's margin.
//!
//! This is the only module that drives environments, the load generator and the probes
//! together.

pub mod artifact;
pub mod density;
pub mod plan;
pub mod protocol;
pub mod quiet;
pub mod rounds;
pub mod scenario;
pub mod scenario_file;
pub mod soak;
pub mod window;

pub use plan::Plan;
pub use scenario::Scenario;

#[cfg(test)]
mod tests;

//! The `density.json` artifact of `isobench density`: how many instances of one service fit
//! on this host per rung, and what one more costs.
//!
//! Plain serde data like the rest of [`crate::artifact`]: the ramp's raw readings per rung
//! (every live instance's memory by the one memory measure, and the host's own accounting,
//! after each start), the concurrent start, and the summary the writer computes from them
//! ([`crate::analysis::density`]). The checked-in `density.schema.json` next to this file is
//! generated from these types, and a test keeps the two the same.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{EnvironmentLabel, HostInfo, Preparation, ServiceInfo, Unavailable};

/// Version of the density artifact's format; bump on any incompatible change.
pub const DENSITY_SCHEMA_VERSION: u32 = 3;

/// One `density.json`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct DensityArtifact {
    /// Format version, [`DENSITY_SCHEMA_VERSION`] when written.
    pub schema_version: u32,
    /// isobench's own version (`CARGO_PKG_VERSION`).
    pub tool_version: String,
    /// When the artifact was written, RFC 3339 in UTC.
    pub created_at: String,
    /// The machine the instances ran on.
    pub host: HostInfo,
    /// The service measured.
    pub service: ServiceInfo,
    /// What the run was asked to do.
    pub settings: DensitySettings,
    /// One entry per rung measured, in the order they ran; a rung appears once its ramp is
    /// over, so an interrupted run keeps every finished rung.
    pub rungs: Vec<DensityRung>,
    /// Rungs that were asked for but could not run, and why.
    #[serde(default)]
    pub unavailable: Vec<Unavailable>,
    /// The fits, one per rung in [`Self::rungs`], computed when the artifact was written.
    #[serde(default)]
    pub summary: Vec<RungSummary>,
}

/// The settings of one `isobench density` run.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct DensitySettings {
    /// How many instances each rung's ramp was to reach: `--instances`, or derived per rung
    /// (each rung's [`DensityRung::target`] says what it came to, and from what).
    pub instances: InstanceCount,
    /// Host memory the ramp keeps available: no instance starts unless, after it, at least
    /// this much would be left (MemAvailable), bytes.
    pub margin_bytes: u64,
    /// How the margin was chosen, in words (`max(20% of RAM, 2 GiB)`, `--margin-mib 4096`).
    pub margin_rule: String,
    /// Wait after each instance answers (and holds what it was asked to) before the readings,
    /// milliseconds, when `--settle` set it; absent: each rung's default (see
    /// [`DensityRung::settle_ms`]).
    pub settle_ms: Option<u64>,
    /// MiB each instance of isobench's own server was asked to hold (`/hold`) before the
    /// readings, when asked (a known answer for the marginal cost).
    pub hold_mib: Option<u64>,
    /// Whether the concurrent start ran after each ramp.
    pub concurrent: bool,
    /// Whether `--ksm` asked for page merging on the rungs that can have it (VMs).
    #[serde(default)]
    pub ksm: bool,
}

/// How many instances a ramp is to reach.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum InstanceCount {
    /// `--instances N`: this many, the margin permitting.
    Requested {
        /// N.
        instances: u32,
    },
    /// The default: per rung, as many as fit `share_percent` of the memory the host had
    /// available above the margin before the rung's first start, at the cost its first
    /// instance measured, and at least `min`, at most `max` (the margin still stops the ramp
    /// before it would be crossed).
    Fit {
        /// The share of the available memory above the margin the instances may take, %.
        share_percent: u32,
        /// The fewest instances aimed at (a fit of the marginal cost needs two points).
        min: u32,
        /// The most instances aimed at.
        max: u32,
    },
}

/// What a rung's ramp aimed at, and how a derived count came about.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct RampTarget {
    /// The instances the ramp was to reach.
    pub instances: u32,
    /// The derivation, with [`InstanceCount::Fit`] once the first instance was measured;
    /// absent with `--instances`, or when the first instance never ran (the ramp then aimed at
    /// the rule's `max`).
    pub fit: Option<TargetFit>,
}

/// The figures a derived instance count comes from: `fitting` = share × (`available_bytes` −
/// `margin_bytes`) / `per_instance_bytes`, then bounded.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct TargetFit {
    /// `MemAvailable` before the rung's first start, bytes.
    pub available_bytes: u64,
    /// The margin kept, bytes.
    pub margin_bytes: u64,
    /// What the first instance cost, by the larger of the two readings (its memory by the
    /// memory measure, the host's used memory), bytes.
    pub per_instance_bytes: u64,
    /// The instances that fit before the bounds are applied.
    pub fitting: u64,
}

/// One rung's ramp and concurrent start.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct DensityRung {
    /// The environment, as `run` labels it (its memory label says what the per-instance
    /// figure counts).
    pub label: EnvironmentLabel,
    /// Its preparation steps (builds, images), timed apart.
    pub preparation: Vec<Preparation>,
    /// Wait after each instance answered before the readings, milliseconds.
    pub settle_ms: u64,
    /// The host's accounting before the rung's first start.
    pub host_before: HostMemory,
    /// The instances the ramp aimed at, and how that count was derived.
    pub target: RampTarget,
    /// One step per instance started, in order.
    pub steps: Vec<RampStep>,
    /// Why the ramp ended.
    pub end: RampEnd,
    /// The concurrent start after the ramp, when it ran.
    pub concurrent: Option<ConcurrentStart>,
    /// With `--load`: the same closed loop on one instance, then spread over all the ramp
    /// reached, while all of them run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub load: Option<LoadAtDensity>,
    /// With `--ksm`, on a rung whose memory KSM can merge: what merging saved once the ramp
    /// was over, every instance running.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub merging: Option<PageMerging>,
    /// Problems stopping instances (each is force-released all the same).
    #[serde(default)]
    pub stop_problems: Vec<String>,
}

/// The host's memory accounting at one moment, from `/proc/meminfo`, bytes.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, JsonSchema, PartialEq, Eq, Default)]
#[serde(deny_unknown_fields)]
pub struct HostMemory {
    /// `MemTotal`.
    pub total_bytes: u64,
    /// `MemAvailable`: what could be given to new work without swapping.
    pub available_bytes: u64,
    /// `Cached`: the page cache (file pages, and shared memory, which the kernel counts here).
    pub cached_bytes: u64,
    /// `Shmem`: shared memory and tmpfs (memfd, `/dev/shm`).
    pub shmem_bytes: u64,
    /// `SUnreclaim` + `KernelStack` + `PageTables`: kernel memory the instances' processes
    /// cost that no process's PSS shows.
    pub kernel_bytes: u64,
}

impl HostMemory {
    /// `MemTotal − MemAvailable`: what the host counts as used.
    pub fn used_bytes(&self) -> u64 {
        self.total_bytes.saturating_sub(self.available_bytes)
    }
}

/// The readings after the ramp's N-th instance answered and settled.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RampStep {
    /// Instances running at this step (1 for the first).
    pub instances: u32,
    /// Startup of the instance started at this step (request to start → first 2xx on its
    /// health path), milliseconds.
    pub startup_ms: f64,
    /// The new instance's own memory right after it answered, before it was asked to hold
    /// anything, bytes (only with a hold).
    pub idle_memory_bytes: Option<u64>,
    /// Every live instance's memory by the memory measure, in start order, bytes.
    pub instance_memory_bytes: Vec<u64>,
    /// Their sum: (a), what the instances hold by the memory measure, bytes.
    pub instances_memory_bytes: u64,
    /// The host's accounting at the same moment: (b) is its used memory less
    /// [`DensityRung::host_before`]'s.
    pub host: HostMemory,
}

/// Why a ramp ended.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum RampEnd {
    /// Every instance aimed at ([`DensityRung::target`]) started.
    Reached,
    /// The next instance would have left less than the margin available; it was not
    /// started.
    Margin {
        /// `MemAvailable` before the start that was not made, bytes.
        available_bytes: u64,
        /// What the next instance was expected to take (the largest cost of one so far),
        /// bytes.
        next_estimate_bytes: u64,
        /// The margin kept, bytes.
        margin_bytes: u64,
    },
    /// An instance failed to start or to be read; the ramp ended there.
    Failed {
        /// Which instance (1 for the first).
        instance: u32,
        /// What failed, with the error.
        reason: String,
        /// The last lines of the failed instance's log, where it had one.
        #[serde(default)]
        log_tail: Vec<String>,
    },
}

/// The closed loop on one instance and spread over N, so a reader sees whether N small
/// instances share the CPU as well as one.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct LoadAtDensity {
    /// All the connections on the first instance (the others running idle).
    pub one: SpreadLoad,
    /// The same connections spread evenly over every instance at once.
    pub all: SpreadLoad,
}

/// One closed-loop window over some instances, each with its own generator.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SpreadLoad {
    /// Instances loaded.
    pub instances: u32,
    /// Connections in all (split evenly, at least one per instance).
    pub connections: usize,
    /// Successful responses per second, summed over the instances.
    pub throughput_rps: f64,
    /// 99th percentile of the merged latency histograms, milliseconds; absent when no
    /// request succeeded or a histogram could not be read.
    pub p99_ms: Option<f64>,
    /// Requests that failed (errors of every kind; requests still in flight when the window
    /// closed are not failures).
    pub failed_requests: u64,
}

/// The kernel's same-page merging (KSM) turned on with every instance of the ramp running
/// (each VM's guest RAM advised mergeable from its start), and what it saved once it had
/// settled. KSM's counters cover every mergeable process on the host, these instances and
/// any other; the instances' own readings are the memory measure's, before and after.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PageMerging {
    /// Instances running while KSM merged.
    pub instances: u32,
    /// ksmd's pages scanned per wake-up while isobench waited.
    pub pages_to_scan: u64,
    /// ksmd's sleep between wake-ups while isobench waited, milliseconds.
    pub sleep_millisecs: u64,
    /// The instances' memory (the memory measure) right before KSM was turned on, bytes,
    /// each.
    pub before_bytes: Vec<u64>,
    /// Their memory once merging had settled, bytes, each.
    pub after_bytes: Vec<u64>,
    /// Whether KSM was already merging before isobench turned it on.
    pub was_running: bool,
    /// KSM's `pages_sharing` before isobench turned it on, where it was already merging
    /// (pages other processes saved); 0 where it was stopped, since a stopped KSM's counters
    /// still hold processes gone since (pages some other process still has merged from an
    /// earlier run would then count as saved here).
    pub pages_sharing_before: u64,
    /// KSM's `pages_sharing` once settled: pages merging saves, host-wide.
    pub pages_sharing: u64,
    /// KSM's `pages_shared` once settled: the merged pages those stand for.
    pub pages_shared: u64,
    /// Full scans ksmd made while isobench waited.
    pub full_scans: u64,
    /// How long isobench waited for merging to settle, milliseconds.
    pub waited_ms: u64,
    /// Whether it settled (a full scan, after the first three, merged no more) before the
    /// time allowed ran out.
    pub settled: bool,
    /// The host's page size, bytes.
    pub page_bytes: u64,
}

impl PageMerging {
    /// What merging saved by the memory measure: the instances' memory before less after,
    /// bytes (negative had they grown meanwhile).
    pub fn saved_by_measure_bytes(&self) -> i64 {
        let sum = |v: &[u64]| v.iter().map(|b| *b as i64).sum::<i64>();
        sum(&self.before_bytes) - sum(&self.after_bytes)
    }

    /// What KSM says merging saved while isobench waited: pages newly sharing, bytes.
    pub fn saved_by_ksm_bytes(&self) -> u64 {
        self.pages_sharing.saturating_sub(self.pages_sharing_before) * self.page_bytes
    }
}

/// N instances started at once, each from its own thread.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ConcurrentStart {
    /// Instances started at once (as many as the ramp reached).
    pub instances: u32,
    /// Each instance's own startup, in the order they answered, milliseconds.
    pub startup_ms: Vec<f64>,
    /// From the common start signal until the last of them answered, when all did,
    /// milliseconds.
    pub all_answering_ms: Option<f64>,
    /// Starts that failed, with the reason.
    #[serde(default)]
    pub failures: Vec<String>,
}

/// A least-squares line `y = intercept + slope · N` with its 95% interval.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct LinearFit {
    /// Points fitted.
    pub points: u32,
    /// The slope: what one more instance costs, MiB.
    pub slope_mib: f64,
    /// The 95% interval of the slope (Student's t on n − 2 degrees of freedom), MiB; absent
    /// with fewer than three points.
    pub slope_ci95_mib: Option<(f64, f64)>,
    /// The intercept: the cost at N = 0 (shared pages counted once, runtime set-up), MiB.
    pub intercept_mib: f64,
    /// The residuals' standard deviation, MiB (0 with two points).
    pub residual_sd_mib: f64,
}

/// What one rung's ramp says, computed by [`crate::analysis::density`].
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RungSummary {
    /// The rung's name.
    pub env: String,
    /// Instances the ramp reached.
    pub instances_reached: u32,
    /// (a) the instances' memory by the memory measure against N.
    pub instances_fit: Option<LinearFit>,
    /// (b) the host's used memory (less before the rung) against N.
    pub host_fit: Option<LinearFit>,
    /// Instances per GiB: 1024 / (a)'s marginal MiB.
    pub instances_per_gib: Option<f64>,
    /// Instances per GiB at the two ends of (a)'s interval (low, high).
    pub instances_per_gib_ci95: Option<(f64, f64)>,
    /// Whether (a) and (b) agree.
    pub agreement: Agreement,
    /// Startup of the first instance, milliseconds.
    pub startup_first_ms: Option<f64>,
    /// Startup of the last instance of the ramp, milliseconds.
    pub startup_last_ms: Option<f64>,
    /// Instances per second of the concurrent start: N / time until all answered.
    pub concurrent_instances_per_s: Option<f64>,
}

/// Whether the instances' own figure (a) and the host's accounting (b) agree on the
/// marginal cost.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Agreement {
    /// Fewer than three instances: no interval, so no comparison.
    TooFewPoints,
    /// The two marginal costs' 95% intervals overlap.
    Agree,
    /// They do not: the host's marginal cost less the instances', and the per-instance
    /// slopes of the host's categories that could account for the gap.
    Part {
        /// (b)'s marginal MiB less (a)'s.
        gap_mib: f64,
        /// Slope of the page cache (`Cached` less `Shmem`), MiB per instance.
        page_cache_mib: f64,
        /// Slope of shared memory (`Shmem`), MiB per instance.
        shmem_mib: f64,
        /// Slope of kernel memory (`SUnreclaim`, stacks, page tables), MiB per instance.
        kernel_mib: f64,
    },
}

impl DensityArtifact {
    /// A new, empty density artifact of this isobench, written now on `host`.
    pub fn on_host(host: HostInfo, service: ServiceInfo, settings: DensitySettings) -> Self {
        Self {
            schema_version: DENSITY_SCHEMA_VERSION,
            tool_version: env!("CARGO_PKG_VERSION").into(),
            created_at: time::OffsetDateTime::now_utc()
                .format(&time::format_description::well_known::Rfc3339)
                .unwrap_or_else(|_| "unknown".into()),
            host,
            service,
            settings,
            rungs: Vec::new(),
            unavailable: Vec::new(),
            summary: Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    fn schema_path() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("src/artifact/density.schema.json")
    }

    /// The checked-in schema is the one the types generate; `ISOBENCH_BLESS=1` rewrites it.
    #[test]
    fn checked_in_density_schema_matches_the_types() {
        let schema = schemars::schema_for!(super::DensityArtifact);
        let generated = serde_json::to_string_pretty(&schema).unwrap() + "\n";
        if std::env::var_os("ISOBENCH_BLESS").is_some() {
            std::fs::write(schema_path(), &generated).unwrap();
        }
        let checked_in = std::fs::read_to_string(schema_path()).unwrap_or_default();
        assert!(
            checked_in == generated,
            "{} is stale: rerun with ISOBENCH_BLESS=1",
            schema_path().display()
        );
    }
}

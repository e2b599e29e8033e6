//! The JSON artifact: every raw measurement a run or a bench took, plus its summary.
//!
//! Plain serde structs with units in the field names. The checked-in `artifact.schema.json`
//! next to this file is generated from these types (schemars), and `tests/bench.rs` validates
//! real output against it, so a change here that is not reflected there fails the suite
//! (`ISOBENCH_BLESS=1 cargo test --test bench` rewrites it). Bump [`SCHEMA_VERSION`] on any
//! incompatible change.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::load::LoadReport;

/// Version of the artifact format; readers refuse versions they do not know.
pub const SCHEMA_VERSION: u32 = 1;

/// One JSON artifact, written by `isobench run`, `isobench bench --output` and the test suite.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Artifact {
    /// Format version, [`SCHEMA_VERSION`] when written.
    pub schema_version: u32,
    /// isobench's own version (`CARGO_PKG_VERSION`).
    pub tool_version: String,
    /// When the artifact was written, RFC 3339 in UTC.
    pub created_at: String,
    /// The machine the measurements were taken on.
    pub host: HostInfo,
    /// One entry per environment that was measured.
    pub environments: Vec<EnvironmentResult>,
    /// Environments that were asked for (or would run by default) but could not run, and why.
    #[serde(default)]
    pub unavailable: Vec<Unavailable>,
    /// Summary statistics over the repetitions, when the writer computed them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<Summary>,
}

impl Artifact {
    /// A new artifact of this isobench, written now on this host, holding `environments`.
    pub fn now(environments: Vec<EnvironmentResult>) -> Self {
        Self {
            schema_version: SCHEMA_VERSION,
            tool_version: env!("CARGO_PKG_VERSION").into(),
            created_at: time::OffsetDateTime::now_utc()
                .format(&time::format_description::well_known::Rfc3339)
                .unwrap_or_else(|_| "unknown".into()),
            host: crate::probe::host::read(),
            environments,
            unavailable: Vec::new(),
            summary: None,
        }
    }
}

/// The machine the measurements were taken on.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct HostInfo {
    /// CPU model as the kernel names it.
    pub cpu_model: String,
    /// Logical CPUs online.
    pub logical_cpus: usize,
    /// Kernel release (`uname -r`).
    pub kernel: String,
    /// Operating system name and version.
    pub os: String,
    /// Physical memory in bytes.
    pub memory_total_bytes: u64,
    /// Host name.
    pub hostname: String,
}

/// What kind of isolation an environment provides.
#[derive(
    Debug, Clone, Copy, Serialize, Deserialize, JsonSchema, PartialEq, Eq, Hash, PartialOrd, Ord,
)]
#[serde(rename_all = "lowercase")]
pub enum EnvKind {
    /// A plain process on the host.
    Native,
    /// A container on a Docker engine.
    Container,
    /// A virtual machine.
    Vm,
    /// A service at a URL isobench did not start (`isobench bench --url`); its kind, when
    /// known, comes from the service's own `/status`.
    External,
    /// The deterministic mock used in tests.
    Mock,
}

/// How a VM's CPU is provided. TCG is software emulation, and its numbers say nothing about
/// hardware virtualisation; every table and chart names the accelerator.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, JsonSchema, PartialEq, Eq, Hash)]
#[serde(rename_all = "lowercase")]
pub enum Accel {
    /// Hardware virtualisation through /dev/kvm.
    Kvm,
    /// QEMU's Tiny Code Generator: software emulation.
    Tcg,
    /// Whatever the provider chose (Vagrant's VirtualBox or libvirt).
    Provider,
}

/// Everything needed to read an environment's numbers honestly.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct EnvironmentLabel {
    /// Short unique name used in tables and file names: `native`, `container`, `vm`, …
    pub name: String,
    /// The kind of isolation.
    pub kind: EnvKind,
    /// What runs it, with versions: `process`, `docker 20.10.24`, `qemu 7.2.22 (q35, TCG software emulation)`.
    pub runtime: String,
    /// For VMs: how the CPU is provided.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accel: Option<Accel>,
    /// Host CPUs the service (process, container or VM) was pinned to.
    pub service_cpus: Vec<usize>,
    /// Host CPUs the load generator was pinned to.
    pub generator_cpus: Vec<usize>,
    /// Memory limit applied to the service, in bytes; `None` where none could be applied.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_limit_bytes: Option<u64>,
    /// The kernel the service ran on (the guest's, for a VM).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kernel: Option<String>,
    /// Size of the container image or VM image, in bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_size_bytes: Option<u64>,
    /// The environment the service itself detected (`/status`): `native`, `container`, `vm`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detected: Option<String>,
    /// Anything else a reader must know to interpret the numbers.
    #[serde(default)]
    pub notes: Vec<String>,
    /// For VMs: every accelerator the probe tried before settling, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub accel_attempts: Vec<AccelAttempt>,
}

/// One-off work before the first start, timed apart from startup.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Preparation {
    /// What was done: `static server build`, `image build`, `vm image assembly`.
    pub what: String,
    /// Wall time it took, in seconds.
    pub seconds: f64,
    /// Whether a cached result was reused (then `seconds` is the cache look-up).
    pub cached: bool,
}

/// All measurements of one environment.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct EnvironmentResult {
    /// How to read the numbers.
    pub label: EnvironmentLabel,
    /// One-off preparation steps, never included in startup.
    #[serde(default)]
    pub preparation: Vec<Preparation>,
    /// One entry per repetition (a fresh instance each round).
    pub rounds: Vec<Round>,
}

/// One repetition: a fresh instance started, measured under every scenario, stopped.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Round {
    /// Repetition index, from 0.
    pub round: u32,
    /// From the request to start until the first 200 on `/health`, in milliseconds; absent for
    /// a service isobench did not start.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub startup_ms: Option<f64>,
    /// Where the startup went: contiguous phases summing to `startup_ms`, where the
    /// environment can tell (a VM's firmware, kernel and init; a container's create and start).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub startup_phases: Vec<StartupPhase>,
    /// Memory of the service right after startup, before any load, in bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idle_memory_bytes: Option<u64>,
    /// The scenarios run against this instance, in order.
    pub scenarios: Vec<ScenarioRun>,
}

/// One phase of a startup, in order; an instance's phases are contiguous and sum to its
/// startup.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct StartupPhase {
    /// What happened in it: `firmware`, `kernel init`, `create`, `first 200`, … Phases whose
    /// boundary could not be observed are merged and named `a + b`.
    pub name: String,
    /// How long it took, in milliseconds.
    pub duration_ms: f64,
}

/// One attempt of the VM's accelerator probe: a boot under KVM with one CPU model.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AccelAttempt {
    /// The accelerator tried: `kvm`.
    pub accel: String,
    /// The QEMU `-cpu` value tried, e.g. `host`, `host,-arch-capabilities`, `qemu64`.
    pub cpu: String,
    /// Whether the probe boot answered `/health`.
    pub ok: bool,
    /// What happened, in one line: QEMU's error, the console's last lines, or the time taken.
    pub reason: String,
    /// How long the attempt took, in seconds.
    pub seconds: f64,
}

/// One scenario's measurement against one instance.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ScenarioRun {
    /// Scenario name: `health`, `mixed`, `fixed-rate`, or `bench` for `isobench bench`.
    pub scenario: String,
    /// What the load generator saw.
    pub load: LoadReport,
    /// Highest memory of the service seen during the scenario, in bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peak_memory_bytes: Option<u64>,
    /// CPU time the service (process, container or VM) used during the scenario, in seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_cpu_seconds: Option<f64>,
}

/// An environment that could not run, and why.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Unavailable {
    /// The environment's name.
    pub name: String,
    /// Why it could not run.
    pub reason: String,
}

/// Summary statistics: one row per metric, one estimate per environment.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Summary {
    /// Method used for the intervals and the noisy flag (`report::stats::method_description`).
    pub method: String,
    /// The environment ratios are taken against (normally `native`).
    pub baseline: Option<String>,
    /// One row per metric.
    pub rows: Vec<SummaryRow>,
}

/// One metric across environments.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SummaryRow {
    /// Metric name, e.g. `startup`, `idle memory`, `throughput (health)`, `p99 (mixed)`.
    pub metric: String,
    /// Unit of the estimates: `ms`, `MiB`, `req/s`, `µs`, `s`, `count`, `bytes`.
    pub unit: String,
    /// Whether a larger value is better (throughput) or worse (latency, memory).
    pub higher_is_better: bool,
    /// Estimate per environment name.
    pub estimates: BTreeMap<String, Estimate>,
    /// Ratio of each environment to the baseline, with its interval.
    #[serde(default)]
    pub ratio_to_baseline: BTreeMap<String, Estimate>,
    /// The seed's column: how much better the container is than the VM, in percent (positive
    /// means the container is better), from the medians.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container_vs_vm_improvement_pct: Option<f64>,
}

/// A median with its confidence interval.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Estimate {
    /// Median of the samples (for a ratio: the ratio of the two medians).
    pub median: f64,
    /// Lower end of the confidence interval (95% unless `coverage` says less).
    pub ci_low: f64,
    /// Upper end of the confidence interval (95% unless `coverage` says less).
    pub ci_high: f64,
    /// Number of samples.
    pub n: usize,
    /// Probability that the interval covers the true value: 0.95 or more normally; less when
    /// there were too few samples to reach 95% (see `report::stats`), 1.0 for a quantity
    /// measured exactly once without sampling spread (an image size).
    pub coverage: f64,
    /// The interval is wide relative to the median (see `report::stats`).
    pub noisy: bool,
}

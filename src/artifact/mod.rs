//! The JSON artifact: every raw measurement a run or a bench took, plus its summary.
//!
//! Plain serde structs with units in the field names. The checked-in `schema.json`
//! next to this file is generated from these types (schemars), and `tests/load.rs` validates
//! real output against it, so a change here that is not reflected there fails the suite
//! (`ISOBENCH_BLESS=1 cargo test --test load` rewrites it). Bump [`SCHEMA_VERSION`] on any
//! incompatible change.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

pub mod density;
pub mod histogram;
pub mod load;
pub mod merge;
pub mod series;

#[cfg(test)]
pub(crate) mod fixture;

pub use merge::{load, merge};

use load::LoadReport;

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
    /// Every threshold check (`--check`) evaluated against this artifact, with its outcome.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub checks: Vec<CheckOutcome>,
    /// The service measured (written by `isobench run`; absent from `bench` artifacts, which
    /// load a URL whatever serves it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<ServiceInfo>,
}

/// The service a run measured, as it was resolved before anything started.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ServiceInfo {
    /// `isobench-server`, the image reference as given, or the binary's file name.
    pub name: String,
    /// Which kind of service it is.
    pub kind: ServiceKind,
    /// The image's id (`sha256:…`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_id: Option<String>,
    /// The image's size as the engine reports it, or the binary's, bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size_bytes: Option<u64>,
    /// What runs: the image's entrypoint followed by its command, or the binary and its
    /// arguments; empty for isobench's own server.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub command: Vec<String>,
    /// The image's `USER` (empty: root).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// The port the service listens on (isobench's own server: chosen per environment).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// The path whose 2xx answer means ready.
    pub health_path: String,
}

/// Which kind of service a run measured.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum ServiceKind {
    /// isobench's own server.
    Own,
    /// A Docker image from the local engine.
    Image,
    /// A static binary.
    Binary,
}

impl Artifact {
    /// A new artifact of this isobench, written now on `host`, holding `environments`.
    /// (`Artifact::now`, which reads the host too, lives with the readings in
    /// [`crate::measure::artifact`], so this module stays plain data.)
    pub fn on_host(host: HostInfo, environments: Vec<EnvironmentResult>) -> Self {
        Self {
            schema_version: SCHEMA_VERSION,
            tool_version: env!("CARGO_PKG_VERSION").into(),
            created_at: time::OffsetDateTime::now_utc()
                .format(&time::format_description::well_known::Rfc3339)
                .unwrap_or_else(|_| "unknown".into()),
            host,
            environments,
            unavailable: Vec::new(),
            summary: None,
            checks: Vec::new(),
            service: None,
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
    /// What the memory figures count here: the measure (PSS summed, the same in every
    /// environment) and the host processes it is summed over.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_counts: Option<String>,
    /// What the service's data directory is here (what `/files` writes to): a host
    /// directory, a bind mount, a VM's own disk and its cache mode; absent where the service
    /// has none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_dir: Option<String>,
    /// Anything else a reader must know to interpret the numbers.
    #[serde(default)]
    pub notes: Vec<String>,
    /// Where the environment stands on the isolation ladder and what it adds to the rung it
    /// is compared with (`analysis::ladder`); absent for services isobench did not start.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rung: Option<Rung>,
    /// For VMs: every accelerator the probe tried before settling, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub accel_attempts: Vec<AccelAttempt>,
}

/// A rung of the isolation ladder: native, container with host network, container behind
/// Docker's bridge, another OCI runtime (gVisor, …), VM.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Rung {
    /// Order from least to most isolated (`artifact::position`); equal positions are
    /// alternatives on the same step.
    pub position: u32,
    /// What this rung adds over the one it is compared with: network path, runtime, platform,
    /// accelerator, in words.
    pub adds: String,
    /// The environment this rung's marginal cost is taken over; absent for the bottom rung
    /// and where the nearest lower rung present in the run is meant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub over: Option<String>,
}

impl Rung {
    /// A rung at `position` that adds `adds`, compared with `over`.
    pub fn new(position: u32, adds: &str, over: Option<&str>) -> Self {
        Self {
            position,
            adds: adds.to_owned(),
            over: over.map(str::to_owned),
        }
    }

    /// A VM's rung: the hypervisor in place of the container's namespaces, so its cost is
    /// taken over the bridge container (both reach the service through a userland network
    /// path).
    pub fn vm(adds: String) -> Self {
        Self {
            position: position::VM,
            adds,
            over: Some("container".into()),
        }
    }
}

/// Positions on the isolation ladder, least isolated first.
pub mod position {
    /// The server as a plain process.
    pub const NATIVE: u32 = 0;
    /// A container in the host's network namespace: namespaces and cgroups only.
    pub const CONTAINER_HOST_NETWORK: u32 = 1;
    /// A container behind Docker's bridge: adds Docker's network path.
    pub const CONTAINER_BRIDGE: u32 = 2;
    /// A container under another OCI runtime (gVisor's runsc, crun, kata, …).
    pub const SANDBOX_RUNTIME: u32 = 3;
    /// A virtual machine.
    pub const VM: u32 = 4;
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
    /// Memory of the service at one defined moment before any load (see
    /// `idle_memory_method`), in bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idle_memory_bytes: Option<u64>,
    /// A VM's own view of its memory at the idle reading (the guest kernel's `/proc/meminfo`),
    /// beside the host's figure; absent elsewhere.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idle_guest_memory: Option<GuestMemory>,
    /// How and when `idle_memory_bytes` was read, e.g. `working set read once, 500 ms after
    /// the first 200`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idle_memory_method: Option<String>,
    /// The wait for a quiet machine before this instance was started, where the plan asked
    /// for one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quiet_wait: Option<QuietWait>,
    /// The scenarios run against this instance, in order.
    pub scenarios: Vec<ScenarioRun>,
    /// Why this repetition did not complete, when it did not: the measurements it holds are
    /// those taken before the failure.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<RoundFailure>,
}

/// Memory as a VM's guest kernel sees it.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct GuestMemory {
    /// `MemTotal`: the guest's RAM less what its kernel reserved, bytes.
    pub total_bytes: u64,
    /// `MemAvailable`: what the guest could still allocate, bytes.
    pub available_bytes: u64,
}

/// How long a round waited for the machine to fall quiet before starting its instance, so
/// that what the previous instance's teardown (or anything else) left running does not share
/// the CPUs with this one's measurements.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct QuietWait {
    /// Time spent waiting, in milliseconds.
    pub waited_ms: f64,
    /// The host's CPU use over the wait's last reading, as a percentage of all its CPUs
    /// together (50 on a 2-CPU host is one CPU's worth).
    pub busy_percent: f64,
    /// Whether the machine fell below the plan's threshold within its bound; when not, the
    /// instance was started anyway and the environment's notes say so.
    pub quiet: bool,
}

/// A repetition that failed part-way; the run went on with the other environments.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RoundFailure {
    /// Where it failed: `start`, `idle`, `scenario:<name>` or `stop`.
    pub phase: String,
    /// The error, with its causes.
    pub reason: String,
    /// The last lines of the instance's own log, where the environment keeps one.
    #[serde(default)]
    pub log_tail: Vec<String>,
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
    /// Highest memory of the service within the scenario's measured window, in bytes
    /// (method in `peak_memory_method`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peak_memory_bytes: Option<u64>,
    /// How `peak_memory_bytes` was taken, e.g. `highest of 214 working-set readings every
    /// 10 ms within the measured window`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peak_memory_method: Option<String>,
    /// CPU time the service (process, container or VM) used within the measured window, in
    /// seconds: the same window the load's counts cover.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_cpu_seconds: Option<f64>,
    /// Set when this run is one step of a latency-under-load sweep: open loop at a rate
    /// derived from the environment's own measured ceiling. Sweep steps are read by
    /// `analysis::sweep`, not summarized as scenarios of their own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sweep: Option<SweepStep>,
}

/// One step of a latency-under-load sweep.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SweepStep {
    /// The ceiling the rate was derived from: the environment's closed-loop `health`
    /// throughput, in requests per second.
    pub ceiling_rps: f64,
    /// The requested rate as a fraction of `ceiling_rps` (1.0 = the ceiling; above 1 is
    /// past saturation).
    pub fraction: f64,
    /// Set on the extra windows of a round that bisect between its last grid step that met
    /// the p99 limit and the first that missed, so the capacity is read between the grid's
    /// steps; absent on the grid's own steps (which are matched across rounds by fraction).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub bisection: bool,
    /// What the host's CPUs did over the step (warm-up and window), so a tail at light load
    /// can be told from the machine: others running on the service's CPUs, a hypervisor
    /// stealing them. Absent in artifacts written before it was recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_cpu: Option<HostCpuWindow>,
}

/// The host's CPUs over one span, from `/proc/stat`'s ticks (10 ms on most kernels): as
/// shares of the CPUs' time over the span, 1.0 = every one of them all the time.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct HostCpuWindow {
    /// Length of the span, seconds.
    pub span_s: f64,
    /// The service's CPUs busy with anything (the service included).
    pub service_cpus_busy: f64,
    /// The service's CPUs stolen by the hypervisor (the guest wanted them, the host ran
    /// something else); 0 on bare metal.
    pub service_cpus_stolen: f64,
    /// The generator's CPUs busy with anything (the generator included).
    pub generator_cpus_busy: f64,
    /// The generator's CPUs stolen by the hypervisor.
    pub generator_cpus_stolen: f64,
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
    /// Method used for the intervals and the noisy flag (`analysis::stats::method_description`).
    pub method: String,
    /// The environment ratios are taken against (normally `native`).
    pub baseline: Option<String>,
    /// One row per metric.
    pub rows: Vec<SummaryRow>,
    /// The p99 limit the latency-under-load capacity is read against, in milliseconds
    /// (`--p99-under`); absent when no sweep ran.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p99_limit_ms: Option<f64>,
    /// Per environment: the highest swept rate whose p99 stayed under `p99_limit_ms`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub capacity: BTreeMap<String, Capacity>,
}

/// The highest rate of a latency-under-load sweep at which an environment still answered
/// within the p99 limit, with the rate kept and (almost) no errors.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Capacity {
    /// The highest requested rate that met the limit, and every lower step did too, in
    /// requests per second (the median round's: a rate that was measured); `None` when even
    /// the lowest step missed it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub highest_rate_rps: Option<f64>,
    /// The first step that missed the limit, in requests per second; `None` when every step
    /// met it (the sweep did not find the limit).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_miss_rps: Option<f64>,
    /// Why that step missed: `p99 35.2 ms`, `rate not kept (81% of requested)`, `2.1% errors`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_miss_reason: Option<String>,
    /// Rounds behind the figure: each swept round reads its own capacity from its steps
    /// (grid and bisection), and the figures above are those of the median round; with one,
    /// their spread is unknown. 0 in artifacts written before it was recorded.
    #[serde(default)]
    pub rounds: usize,
    /// What limited the steps the capacity stands on (those that met the limit, and the
    /// load generator's part in the first miss), counted in rounds: a capacity the generator
    /// may have held down carries the same marks as any other figure.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub limits: Vec<Limit>,
}

/// Whether a threshold check held.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum CheckStatus {
    /// The median meets the threshold, and so does its whole interval, on a clean cell.
    Pass,
    /// The median meets the threshold, but the interval crosses it, or the cell is noisy or
    /// limited by something other than the service: do not rely on it.
    Inconclusive,
    /// The median misses the threshold, or there is no such figure.
    Fail,
}

/// The outcome of one threshold check (`--check`).
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct CheckOutcome {
    /// The check as written.
    pub check: String,
    /// The summary row it was evaluated on (`throughput (health)`), when it resolved to one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metric: Option<String>,
    /// Pass, inconclusive or fail.
    pub status: CheckStatus,
    /// The figure compared: a median, or a ratio of medians; absent when there was none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<Estimate>,
    /// The threshold, in `unit`.
    pub threshold: f64,
    /// Unit of `value` and `threshold` (`ms`, `req/s`, `×` for a ratio).
    pub unit: String,
    /// How far the median is past the threshold, in percent of the threshold: positive when
    /// it fails, negative (the headroom) when it passes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub excess_pct: Option<f64>,
    /// Everything that makes the outcome less than certain, or why it failed without a value.
    #[serde(default)]
    pub notes: Vec<String>,
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
    /// Whether the figure is a set-point: an open loop's throughput is the rate it was asked
    /// for, not a property of the environment, so it has no ratios and takes no checks.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub set_point: bool,
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
    /// there were too few samples to reach 95% (see `analysis::stats`), 1.0 for a quantity
    /// measured exactly once without sampling spread (an image size).
    pub coverage: f64,
    /// The interval is wide relative to the median (see `analysis::stats`).
    pub noisy: bool,
    /// What limited the measurements behind this figure (empty: nothing known did).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub limits: Vec<Limit>,
}

/// Something that limited the measurements behind a figure, so the figure may describe the
/// measuring rather than the service.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Limit {
    /// What happened.
    pub kind: LimitKind,
    /// In how many of the rounds behind the figure it happened.
    pub rounds: usize,
    /// Which side it points at: the load generator or the service under test.
    pub bottleneck: Side,
}

/// What limited a measurement.
#[derive(
    Debug, Clone, Copy, Serialize, Deserialize, JsonSchema, PartialEq, Eq, PartialOrd, Ord,
)]
#[serde(rename_all = "snake_case")]
pub enum LimitKind {
    /// The load generator used (nearly) all its CPU: the figure may be its ceiling.
    GeneratorSaturated,
    /// An open loop sent fewer requests than scheduled (achieved rate below the requested).
    RateNotKept,
    /// Requests failed (errors > 0).
    Errors,
    /// The load generator was saturated, and so was the service (all of its CPUs): more CPU
    /// for the generator could not have raised the figure, which is the service's at its CPU
    /// budget. Noted, not marked on the cell.
    BothSaturated,
    /// The window's first slices were still climbing and could not be cut off (an open
    /// loop's schedule, a run bounded by count): part of the window measured a cold service.
    WarmingUp,
    /// The service answered nothing for a stretch of the window while requests waited.
    Stalled,
    /// The window's throughput changed between its first and last third by more than its
    /// spread explains (a server or a machine that slowed down or sped up mid-window).
    Drifted,
}

/// The side a limit points at.
#[derive(
    Debug, Clone, Copy, Serialize, Deserialize, JsonSchema, PartialEq, Eq, PartialOrd, Ord,
)]
#[serde(rename_all = "snake_case")]
pub enum Side {
    /// The load generator.
    Generator,
    /// The service under test (and its environment).
    Service,
}

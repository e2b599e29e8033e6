//! The density ramp of one rung: instances started one at a time, each answering its health
//! path before the next starts, every live instance and the host read after each; then the
//! same number started at once.
//!
//! How many: `--instances N`, or by default what fits a sensible share of this host
//! ([`DEFAULT_COUNT`]): half of the memory available above the margin before the rung, over
//! what the rung's first instance measured, within 2..=8 ([`fitting_instances`]). The cost
//! is the rung's own, measured, not a guess per kind of isolation: a VM's guest or a large
//! image costs what it costs on this host. The first instance always starts (the margin
//! permitting), since it is the measurement the count needs.
//!
//! Safety comes first. Before each start the host must keep its margin: `MemAvailable` less
//! what the next instance is expected to take (the largest cost of one instance so far, by
//! either reading) must stay above [`DensityPlan::margin_bytes`], or the ramp stops there and
//! says so. A start that fails ends the rung's ramp with the reason, and the caller goes on
//! with the next rung. Every instance an environment starts is registered for cleanup by the
//! environment itself, so a signal releases it; the ramp stops every instance of a rung
//! before it returns (and `Drop` does on a panic), so no two rungs ever share the host.
//!
//! The concurrent start keeps each instance on the thread that started it until all are
//! stopped: a native server dies with the thread that spawned it
//! ([`crate::cleanup::kill_with_parent`]), so a thread may not end while its instance lives.

use std::path::PathBuf;
use std::sync::mpsc;
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use crate::artifact::density::{
    ConcurrentStart, DensityRung, HostMemory, InstanceCount, LoadAtDensity, PageMerging, RampEnd,
    RampStep, RampTarget, SpreadLoad, TargetFit,
};
use crate::artifact::histogram::decode;
use crate::artifact::load::{LoadReport, PathWeight};
use crate::artifact::{EnvKind, Preparation};
use crate::cleanup::{self, Phase};
use crate::env::ksm::{self, KsmError, KsmSession, ScanRate};
use crate::env::{EnvError, Environment, Instance, health};
use crate::load::LoadOptions;

/// Lines of a failed instance's log kept with the ramp's end.
const LOG_TAIL_LINES: usize = 20;

/// What a density run asks of every rung.
#[derive(Debug, Clone, PartialEq)]
pub struct DensityPlan {
    /// Instances to reach: a number, or what fits ([`DEFAULT_COUNT`]).
    pub instances: InstanceCount,
    /// `MemAvailable` to keep after each start, bytes.
    pub margin_bytes: u64,
    /// Wait after each start before the readings; `None`: [`settle_for`] the rung's kind.
    pub settle: Option<Duration>,
    /// MiB each instance of isobench's own server holds (`/hold`) before the readings.
    pub hold_mib: Option<u64>,
    /// Whether to start as many instances as the ramp reached at once, after it.
    pub concurrent: bool,
    /// With `--load`: the closed loop run on one and on all instances after the ramp.
    pub load: Option<DensityLoad>,
    /// With `--ksm`, on a rung whose memory KSM can merge: merging turned on after the ramp.
    pub merging: Option<MergePlan>,
}

/// KSM turned on once a ramp is over, every instance running, until merging settles.
#[derive(Debug, Clone, PartialEq)]
pub struct MergePlan {
    /// Where KSM's settings are ([`ksm::SYSFS`]).
    pub root: PathBuf,
    /// How fast ksmd scans meanwhile.
    pub rate: ScanRate,
    /// Full scans, at least, before merging may count as settled; then one more must merge
    /// nothing more. A page merges on KSM's second look at it at the earliest (the first
    /// records its checksum), and KSM places memory advised while a scan was under way just
    /// behind its cursor, so the first scan counted may not look at a VM at all: three.
    pub scans: u64,
    /// Longest wait for merging to settle.
    pub timeout: Duration,
}

impl MergePlan {
    /// The host's KSM at [`ScanRate::MEASURING`], three scans and one more, at most two
    /// minutes.
    pub fn on_host() -> Self {
        Self {
            root: PathBuf::from(ksm::SYSFS),
            rate: ScanRate::MEASURING,
            scans: 3,
            timeout: Duration::from_secs(120),
        }
    }
}

/// The closed loop of `--load`.
#[derive(Debug, Clone, PartialEq)]
pub struct DensityLoad {
    /// Connections in all.
    pub connections: usize,
    /// Measured window.
    pub window: Duration,
    /// Load before the window, not counted.
    pub warmup: Duration,
    /// CPUs the generators are pinned to (the budget's generator CPUs).
    pub cpus: Vec<usize>,
}

/// The default instance count: half of the memory available above the margin, at the cost
/// of the rung's first instance, and 2 to 8 instances. Half, so the run leaves the host room
/// for everything else on it beyond the margin; at least 2, the fewest a marginal cost can be
/// fitted from; at most 8, enough points for a narrow interval while a rung of VMs booting
/// under emulation (TCG), and eight of them starting at once, stays within minutes on a
/// small CI machine. `--instances` asks for more.
pub const DEFAULT_COUNT: InstanceCount = InstanceCount::Fit {
    share_percent: 50,
    min: 2,
    max: 8,
};

/// The instances that fit `share_percent` of `available_bytes` above `margin_bytes` at
/// `per_instance_bytes` each (a cost of 0 counts as 1 byte), before and after bounding to
/// `min..=max`: `(fitting, bounded)`.
pub fn fitting_instances(
    available_bytes: u64,
    margin_bytes: u64,
    per_instance_bytes: u64,
    share_percent: u32,
    (min, max): (u32, u32),
) -> (u64, u32) {
    let spare = u128::from(available_bytes.saturating_sub(margin_bytes));
    let share = spare * u128::from(share_percent) / 100;
    let fitting = u64::try_from(share / u128::from(per_instance_bytes.max(1))).unwrap_or(u64::MAX);
    let bounded = fitting.clamp(u64::from(min), u64::from(max.max(min)));
    (fitting, bounded as u32)
}

/// The default settle of a rung of `kind`: a VM's guest reports the pages it freed while
/// booting to QEMU a few seconds late (free-page reporting), so its reading settles later.
pub fn settle_for(kind: EnvKind) -> Duration {
    match kind {
        EnvKind::Vm => Duration::from_secs(5),
        _ => Duration::from_millis(500),
    }
}

/// The default margin on a host with `total_bytes` of RAM: 20% of it or 2 GiB, whichever
/// is more, so neither a small nor a large host is ever pushed into swap or the OOM killer.
pub fn default_margin_bytes(total_bytes: u64) -> u64 {
    (total_bytes / 5).max(2 << 30)
}

/// Where the host's accounting comes from: `/proc/meminfo` ([`ProcMeminfo`]), or a test's
/// figures.
pub trait HostReader {
    /// The host's memory now.
    fn read(&self) -> std::io::Result<HostMemory>;
}

/// The host's own `/proc/meminfo`.
pub struct ProcMeminfo;

impl HostReader for ProcMeminfo {
    fn read(&self) -> std::io::Result<HostMemory> {
        crate::probe::host::memory()
    }
}

/// Why a rung could not be measured at all (a failing instance only ends its ramp).
#[derive(Debug, thiserror::Error)]
pub enum DensityError {
    /// The host's memory could not be read, so no start can be made safely.
    #[error("reading the host's memory (/proc/meminfo): {0}")]
    Host(#[from] std::io::Error),
    /// KSM could not be turned on, read or put back.
    #[error("page merging (--ksm): {0}")]
    Ksm(#[from] KsmError),
    /// An instance could not be read while KSM merged.
    #[error("reading instance {instance} while KSM merged: {source}")]
    Merging {
        /// Which, from 1.
        instance: usize,
        /// The failure.
        #[source]
        source: EnvError,
    },
}

/// What the ramp tells its caller as it goes.
pub trait DensityObserver {
    /// Instance `instance` of `env` is about to start.
    fn starting(&mut self, _env: &str, _instance: u32) {}
    /// A step's readings are in.
    fn step(&mut self, _env: &str, _step: &RampStep) {}
    /// The count the ramp aims at was derived from the first instance's cost.
    fn target(&mut self, _env: &str, _target: &RampTarget) {}
    /// The concurrent start of `instances` begins.
    fn concurrent(&mut self, _env: &str, _instances: u32) {}
    /// The closed loop on one, then on all `instances`, begins.
    fn load(&mut self, _env: &str, _instances: u32) {}
    /// KSM is turned on with `instances` running, and merging awaited.
    fn merging(&mut self, _env: &str, _instances: u32) {}
}

/// An observer that ignores everything.
pub struct Silent;

impl DensityObserver for Silent {}

/// The ramp and the concurrent start of `env`, every instance stopped before it returns.
pub fn measure_rung(
    env: &dyn Environment,
    preparation: Vec<Preparation>,
    plan: &DensityPlan,
    host: &dyn HostReader,
    observer: &mut dyn DensityObserver,
) -> Result<DensityRung, DensityError> {
    let label = env.label();
    let settle = plan.settle.unwrap_or_else(|| settle_for(label.kind));
    let host_before = host.read()?;
    let mut live: Vec<Box<dyn Instance>> = Vec::new();
    let outcome = ramp(env, plan, settle, host, &host_before, &mut live, observer);
    let merged = match (&plan.merging, &outcome) {
        (Some(merging), Ok(_)) if !live.is_empty() && !cleanup::interrupted() => {
            observer.merging(env.name(), live.len() as u32);
            Some(merge_pages(&live, merging))
        }
        _ => None,
    };
    let load = match (&plan.load, &outcome) {
        (Some(load), Ok(_)) if !live.is_empty() && !cleanup::interrupted() => {
            observer.load(env.name(), live.len() as u32);
            let urls: Vec<String> = live.iter().map(|i| i.base_url().to_owned()).collect();
            let path = live[0].health_path().to_owned();
            Some(LoadAtDensity {
                one: spread_load(&urls[..1], &path, load),
                all: spread_load(&urls, &path, load),
            })
        }
        _ => None,
    };
    let mut stop_problems = stop_all(live);
    // KSM's settings go back once the instances are gone, never under them.
    let merging = merged.transpose()?.map(|(merging, session)| {
        drop(session);
        merging
    });
    let (steps, end, largest, target) = outcome?;
    let concurrent = if plan.concurrent && steps.len() >= 2 && !cleanup::interrupted() {
        let available = host.read()?.available_bytes;
        // The ramp's instances are gone, so as many as it reached fit again; fewer if the
        // host has less to spare now.
        let fit = available.saturating_sub(plan.margin_bytes) / largest.max(1);
        let count = (steps.len() as u64).min(fit) as u32;
        (count >= 2).then(|| {
            observer.concurrent(env.name(), count);
            let (start, problems) = concurrent_start(env, count);
            stop_problems.extend(problems);
            start
        })
    } else {
        None
    };
    Ok(DensityRung {
        label,
        preparation,
        settle_ms: settle.as_millis() as u64,
        host_before,
        target,
        steps,
        end,
        concurrent,
        load,
        merging,
        stop_problems,
    })
}

/// Every live instance's memory by the memory measure, or the index of the first that could
/// not be read, with why.
fn read_all(live: &[Box<dyn Instance>]) -> Result<Vec<u64>, (usize, EnvError)> {
    live.iter()
        .enumerate()
        .map(|(index, instance)| {
            instance
                .resources()
                .map(|reading| reading.memory_bytes)
                .map_err(|error| (index, error))
        })
        .collect()
}

/// [`read_all`] while KSM merges, where an unreadable instance ends the merging.
fn read_all_merging(live: &[Box<dyn Instance>]) -> Result<Vec<u64>, DensityError> {
    read_all(live).map_err(|(index, source)| DensityError::Merging {
        instance: index + 1,
        source,
    })
}

/// Turns KSM on with every instance of `live` running, waits for merging to settle and
/// reads them again; the session is returned to be ended (KSM put back) once they are gone.
fn merge_pages(
    live: &[Box<dyn Instance>],
    plan: &MergePlan,
) -> Result<(PageMerging, KsmSession), DensityError> {
    let before_bytes = read_all_merging(live)?;
    // Stopped, KSM does not keep its counters up (the pages of processes gone since are
    // dropped by its next scans), so they are a baseline only while it runs.
    let was_running = ksm::running(&plan.root)?;
    let pages_sharing_before = if was_running {
        ksm::counters(&plan.root)?.pages_sharing
    } else {
        0
    };
    let session = KsmSession::start(&plan.root, plan.rate)?;
    let started = Instant::now();
    let from = session.counters()?;
    let (settled_at, settled) = session.wait_settled(from, plan.scans, plan.timeout)?;
    let waited = started.elapsed();
    let after_bytes = read_all_merging(live)?;
    let merging = PageMerging {
        instances: live.len() as u32,
        pages_to_scan: plan.rate.pages_to_scan,
        sleep_millisecs: plan.rate.sleep_millisecs,
        before_bytes,
        after_bytes,
        was_running,
        pages_sharing_before,
        pages_sharing: settled_at.pages_sharing,
        pages_shared: settled_at.pages_shared,
        full_scans: settled_at.full_scans.saturating_sub(from.full_scans),
        waited_ms: waited.as_millis() as u64,
        settled,
        page_bytes: crate::service::work::page_bytes() as u64,
    };
    Ok((merging, session))
}

/// The closed loop `load` spread evenly over `urls` at once, one generator each on the same
/// generator CPUs; throughput summed, latency histograms merged.
fn spread_load(urls: &[String], path: &str, load: &DensityLoad) -> SpreadLoad {
    let per_instance = (load.connections / urls.len().max(1)).max(1);
    let reports: Vec<Result<LoadReport, String>> = std::thread::scope(|scope| {
        let handles: Vec<_> = urls
            .iter()
            .map(|url| {
                scope.spawn(move || {
                    let mut options = LoadOptions::new(url.clone());
                    options.scenario = vec![PathWeight {
                        path: path.to_owned(),
                        weight: 1,
                    }];
                    options.connections = per_instance;
                    options.duration = Some(load.window);
                    options.warmup = load.warmup;
                    options.cpus = load.cpus.clone();
                    crate::load::run(&options).map_err(|e| e.to_string())
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err("the generator panicked".into()))
            })
            .collect()
    });
    SpreadLoad {
        instances: urls.len() as u32,
        connections: per_instance * urls.len(),
        throughput_rps: reports.iter().flatten().map(|r| r.throughput_rps).sum(),
        p99_ms: merged_p99_ms(&reports),
        failed_requests: reports.iter().flatten().map(|r| r.errors.total()).sum(),
    }
}

/// The p99 of every generator's requests together, ms: their all-requests histograms merged
/// (a failed request at the time it took to fail, a timeout at the timeout), the answered
/// ones' where a report has no other; `None` when one generator failed or a histogram
/// cannot be read or merged, since a p99 of the others would leave that instance's tail out.
fn merged_p99_ms(reports: &[Result<LoadReport, String>]) -> Option<f64> {
    let mut merged: Option<hdrhistogram::Histogram<u64>> = None;
    for report in reports {
        let histogram = decode(report.as_ref().ok()?.request_histogram()).ok()?;
        match merged.as_mut() {
            Some(into) => into.add(&histogram).ok()?,
            None => merged = Some(histogram),
        }
    }
    merged
        .filter(|h| !h.is_empty())
        .map(|h| h.value_at_quantile(0.99) as f64 / 1e3)
}

/// Stops every instance, the latest first; returns what failed (each is released anyway:
/// a failed stop has already dropped what it held).
fn stop_all(live: Vec<Box<dyn Instance>>) -> Vec<String> {
    live.into_iter()
        .enumerate()
        .rev()
        .filter_map(|(index, instance)| {
            instance
                .stop()
                .err()
                .map(|error| format!("stopping instance {}: {error:#}", index + 1))
        })
        .collect()
}

/// The ramp's steps, why it ended, the largest cost of one instance seen, and what it
/// aimed at.
type RampOutcome = (Vec<RampStep>, RampEnd, u64, RampTarget);

/// Starts instances into `live` one at a time until the plan's count (derived from the
/// first instance's cost, `before` the host before the rung, unless the plan gives one), the
/// margin or a failure; `live` holds them for the caller to stop, whatever happens.
fn ramp(
    env: &dyn Environment,
    plan: &DensityPlan,
    settle: Duration,
    host: &dyn HostReader,
    before: &HostMemory,
    live: &mut Vec<Box<dyn Instance>>,
    observer: &mut dyn DensityObserver,
) -> Result<RampOutcome, DensityError> {
    let mut steps: Vec<RampStep> = Vec::new();
    let mut largest = 0u64;
    let mut previous = (0u64, before.used_bytes());
    // Until the first instance is measured, a derived count aims at its bound.
    let mut target = RampTarget {
        instances: match plan.instances {
            InstanceCount::Requested { instances } => instances,
            InstanceCount::Fit { max, .. } => max,
        },
        fit: None,
    };
    let end = loop {
        let instance_number = live.len() as u32 + 1;
        if instance_number > target.instances || cleanup::interrupted() {
            break RampEnd::Reached;
        }
        let now = host.read()?;
        if now.available_bytes < plan.margin_bytes.saturating_add(largest) {
            break RampEnd::Margin {
                available_bytes: now.available_bytes,
                next_estimate_bytes: largest,
                margin_bytes: plan.margin_bytes,
            };
        }
        observer.starting(env.name(), instance_number);
        cleanup::record_phase(Phase::Starting);
        let instance = match env.start() {
            Ok(instance) => instance,
            Err(error) => break failed(instance_number, "starting", &error, None),
        };
        let startup_ms = instance.startup().as_secs_f64() * 1e3;
        live.push(instance);
        let newest = live.last().map(Box::as_ref);
        let idle = match (plan.hold_mib, newest) {
            (Some(mb), Some(instance)) => match held(instance, mb) {
                Ok(idle) => Some(idle),
                Err(error) => break failed(instance_number, "holding", &error, Some(instance)),
            },
            _ => None,
        };
        std::thread::sleep(settle);
        let readings = match read_all(live) {
            Ok(readings) => readings,
            Err((index, error)) => {
                let what = format!("reading instance {}", index + 1);
                break failed(instance_number, &what, &error, Some(live[index].as_ref()));
            }
        };
        let host_now = host.read()?;
        let sum: u64 = readings.iter().sum();
        let cost = sum
            .saturating_sub(previous.0)
            .max(host_now.used_bytes().saturating_sub(previous.1));
        largest = largest.max(cost);
        previous = (sum, host_now.used_bytes());
        let step = RampStep {
            instances: instance_number,
            startup_ms,
            idle_memory_bytes: idle,
            instance_memory_bytes: readings,
            instances_memory_bytes: sum,
            host: host_now,
        };
        observer.step(env.name(), &step);
        steps.push(step);
        if let (
            1,
            InstanceCount::Fit {
                share_percent,
                min,
                max,
            },
        ) = (instance_number, plan.instances)
        {
            let (fitting, bounded) = fitting_instances(
                before.available_bytes,
                plan.margin_bytes,
                cost,
                share_percent,
                (min, max),
            );
            target = RampTarget {
                instances: bounded,
                fit: Some(TargetFit {
                    available_bytes: before.available_bytes,
                    margin_bytes: plan.margin_bytes,
                    per_instance_bytes: cost,
                    fitting,
                }),
            };
            observer.target(env.name(), &target);
        }
    };
    Ok((steps, end, largest, target))
}

/// The ramp's end at instance `instance`, which failed at `what`.
fn failed(
    instance: u32,
    what: &str,
    error: &dyn std::fmt::Display,
    failed: Option<&dyn Instance>,
) -> RampEnd {
    RampEnd::Failed {
        instance,
        reason: format!("{what}: {error:#}"),
        log_tail: failed.map_or_else(Vec::new, |i| i.log_tail(LOG_TAIL_LINES)),
    }
}

/// The instance's own memory now, then it is made to hold `mb` MiB (`/hold`).
fn held(instance: &dyn Instance, mb: u64) -> Result<u64, EnvError> {
    let idle = instance.resources()?.memory_bytes;
    let path = format!("/hold?mb={mb}");
    let (status, body) = health::get_json(instance.base_url(), &path)?;
    if status != 200 || body["held_mb"] != mb {
        return Err(anyhow::anyhow!("GET {path} answered {status} {body}").into());
    }
    Ok(idle)
}

/// What one thread of the concurrent start reports: when its instance answered, counted
/// from the common start, and its own startup; or why it failed.
type Answered = Result<(Duration, Duration), String>;

/// Starts `count` instances of `env` at once, one thread each released by one barrier, and
/// waits until every one answered or failed; then stops them all. Returns the start and the
/// stop problems.
pub fn concurrent_start(env: &dyn Environment, count: u32) -> (ConcurrentStart, Vec<String>) {
    let threads = count as usize;
    let go = Arc::new(Barrier::new(threads + 1));
    let stop = Arc::new(Barrier::new(threads + 1));
    let (answers, answered) = mpsc::channel::<Answered>();
    let (stops, stopped) = mpsc::channel::<Option<String>>();
    cleanup::record_phase(Phase::Starting);
    std::thread::scope(|scope| {
        for index in 0..threads {
            let (go, stop, answers, stops) = (
                Arc::clone(&go),
                Arc::clone(&stop),
                answers.clone(),
                stops.clone(),
            );
            scope.spawn(move || {
                go.wait();
                let began = Instant::now();
                let outcome = env.start();
                let elapsed = began.elapsed();
                let instance = match outcome {
                    Ok(instance) => {
                        let _ = answers.send(Ok((elapsed, instance.startup())));
                        Some(instance)
                    }
                    Err(error) => {
                        let _ = answers.send(Err(format!("instance {}: {error:#}", index + 1)));
                        None
                    }
                };
                // Hold the instance (and this thread, which a native server dies with) until
                // every start is in.
                stop.wait();
                let problem = instance.and_then(|instance| {
                    instance
                        .stop()
                        .err()
                        .map(|e| format!("stopping concurrent instance {}: {e:#}", index + 1))
                });
                let _ = stops.send(problem);
            });
        }
        drop((answers, stops));
        go.wait();
        let mut startup_ms = Vec::new();
        let mut failures = Vec::new();
        let mut last = Duration::ZERO;
        for answer in answered.iter().take(threads) {
            match answer {
                Ok((elapsed, own)) => {
                    last = last.max(elapsed);
                    startup_ms.push(own.as_secs_f64() * 1e3);
                }
                Err(reason) => failures.push(reason),
            }
        }
        stop.wait();
        let problems: Vec<String> = stopped.iter().flatten().collect();
        let start = ConcurrentStart {
            instances: count,
            all_answering_ms: failures.is_empty().then_some(last.as_secs_f64() * 1e3),
            startup_ms,
            failures,
        };
        (start, problems)
    })
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;
    use crate::env::Budget;
    use crate::env::mock::{MockEnv, MockReadings};

    const MIB: u64 = 1 << 20;
    const GIB: u64 = 1 << 30;

    /// A host whose available memory drops by `per_instance` for every live mock instance.
    struct FakeHost {
        env: Arc<MockEnv>,
        total: u64,
        available_idle: u64,
        per_instance: u64,
    }

    impl HostReader for FakeHost {
        fn read(&self) -> std::io::Result<HostMemory> {
            let used = u64::from(self.env.live_instances()) * self.per_instance;
            Ok(HostMemory {
                total_bytes: self.total,
                available_bytes: self.available_idle - used,
                ..HostMemory::default()
            })
        }
    }

    fn plan(instances: u32) -> DensityPlan {
        DensityPlan {
            instances: InstanceCount::Requested { instances },
            margin_bytes: 2 * GIB,
            settle: Some(Duration::ZERO),
            hold_mib: None,
            concurrent: true,
            load: None,
            merging: None,
        }
    }

    fn mock(readings: MockReadings) -> Arc<MockEnv> {
        Arc::new(MockEnv::new("mock", Budget::for_host(), readings))
    }

    fn host(env: &Arc<MockEnv>, available_idle: u64, per_instance: u64) -> FakeHost {
        FakeHost {
            env: Arc::clone(env),
            total: 24 * GIB,
            available_idle,
            per_instance,
        }
    }

    /// Records what the observer saw, and the live instances at each step.
    #[derive(Default)]
    struct Seen {
        starts: Mutex<Vec<u32>>,
        concurrent: Mutex<Option<u32>>,
    }

    impl DensityObserver for &Seen {
        fn starting(&mut self, _env: &str, instance: u32) {
            self.starts.lock().unwrap().push(instance);
        }
        fn concurrent(&mut self, _env: &str, instances: u32) {
            *self.concurrent.lock().unwrap() = Some(instances);
        }
    }

    /// The rung of three mock instances with KSM merging (played on `sysfs`: 40 pages, then
    /// no more) after the ramp.
    fn merged_rung(sysfs: &std::path::Path, env: &Arc<MockEnv>) -> DensityRung {
        let host = host(env, 20 * GIB, 30 * MIB);
        let plan = DensityPlan {
            merging: Some(MergePlan {
                root: sysfs.to_owned(),
                rate: ScanRate::MEASURING,
                scans: 2,
                timeout: Duration::from_secs(30),
            }),
            concurrent: false,
            ..plan(3)
        };
        let ksmd = crate::env::ksm::fake::scans(
            sysfs,
            &[(8, 10), (9, 40), (10, 40)],
            Duration::from_millis(300),
        );
        let rung = measure_rung(env.as_ref(), Vec::new(), &plan, &host, &mut Silent).unwrap();
        ksmd.join().unwrap();
        rung
    }

    #[test]
    fn merging_counts_from_what_a_running_ksm_had_already_saved() {
        let env = mock(MockReadings::default());
        let sysfs = crate::env::ksm::fake::sysfs("1");
        std::fs::write(sysfs.path().join("pages_sharing"), "4\n").unwrap();
        let merging = merged_rung(sysfs.path(), &env).merging.unwrap();
        assert!(merging.was_running);
        assert_eq!(merging.pages_sharing_before, 4);
        assert_eq!(merging.saved_by_ksm_bytes(), 36 * merging.page_bytes);
        let run = std::fs::read_to_string(sysfs.path().join("run")).unwrap();
        assert_eq!(run.trim(), "1");
    }

    #[test]
    fn merging_reads_every_running_instance_before_and_after_and_puts_ksm_back() {
        let env = mock(MockReadings {
            memory_bytes: 8 * MIB,
            ..MockReadings::default()
        });
        let sysfs = crate::env::ksm::fake::sysfs("0");
        // A stopped KSM's count is stale, not a baseline.
        std::fs::write(sysfs.path().join("pages_sharing"), "4\n").unwrap();
        let rung = merged_rung(sysfs.path(), &env);
        let merging = rung.merging.expect("merging ran");
        assert!(!merging.was_running);
        assert_eq!(merging.pages_sharing_before, 0);
        assert_eq!(merging.instances, 3);
        assert_eq!(merging.before_bytes, vec![8 * MIB; 3]);
        assert_eq!(merging.after_bytes, vec![8 * MIB; 3]);
        assert!(merging.settled, "{merging:?}");
        assert_eq!(merging.full_scans, 3);
        assert_eq!(merging.saved_by_ksm_bytes(), 40 * merging.page_bytes);
        assert_eq!(merging.saved_by_measure_bytes(), 0);
        assert_eq!(env.live_instances(), 0);
        let setting = |name: &str| std::fs::read_to_string(sysfs.path().join(name)).unwrap();
        assert_eq!(setting("run").trim(), "0");
        assert_eq!(setting("pages_to_scan").trim(), "100");
    }

    #[test]
    fn the_ramp_reaches_n_reads_every_instance_and_stops_them_all() {
        let env = mock(MockReadings {
            memory_bytes: 8 * MIB,
            ..MockReadings::default()
        });
        let host = host(&env, 20 * GIB, 30 * MIB);
        let seen = Seen::default();
        let rung = measure_rung(env.as_ref(), Vec::new(), &plan(4), &host, &mut &seen).unwrap();
        assert_eq!(rung.end, RampEnd::Reached);
        assert_eq!(rung.steps.len(), 4);
        for (index, step) in rung.steps.iter().enumerate() {
            assert_eq!(step.instances as usize, index + 1);
            assert_eq!(step.instance_memory_bytes, vec![8 * MIB; index + 1]);
            assert_eq!(step.instances_memory_bytes, 8 * MIB * (index as u64 + 1));
            assert_eq!(
                step.host.used_bytes(),
                4 * GIB + 30 * MIB * (index as u64 + 1)
            );
        }
        assert_eq!(*seen.starts.lock().unwrap(), [1, 2, 3, 4]);
        let concurrent = rung.concurrent.as_ref().unwrap();
        assert_eq!(concurrent.instances, 4);
        assert_eq!(concurrent.startup_ms.len(), 4);
        assert!(concurrent.failures.is_empty());
        assert!(concurrent.all_answering_ms.is_some());
        assert!(rung.stop_problems.is_empty(), "{:?}", rung.stop_problems);
        assert_eq!(env.live_instances(), 0, "instances left running");

        let summary = crate::analysis::density::summarize(&rung);
        let a = summary.instances_fit.unwrap();
        assert!((a.slope_mib - 8.0).abs() < 1e-9, "{a:?}");
        assert!(a.intercept_mib.abs() < 1e-9, "{a:?}");
        let b = summary.host_fit.unwrap();
        assert!((b.slope_mib - 30.0).abs() < 1e-9, "{b:?}");
        assert!((summary.instances_per_gib.unwrap() - 128.0).abs() < 1e-9);
        // Exact lines with different slopes: zero-width intervals that do not overlap.
        assert!(matches!(
            summary.agreement,
            crate::artifact::density::Agreement::Part { gap_mib, .. } if (gap_mib - 22.0).abs() < 1e-9
        ));
    }

    /// With 2 GiB + 2.5 × 1 GiB available and 1 GiB per instance, two instances fit: the
    /// third would leave less than the margin, so it is never started.
    #[test]
    fn the_ramp_stops_before_the_margin_would_be_crossed() {
        let env = mock(MockReadings::default());
        let host = host(&env, 2 * GIB + 5 * GIB / 2, GIB);
        let seen = Seen::default();
        let rung = measure_rung(env.as_ref(), Vec::new(), &plan(8), &host, &mut &seen).unwrap();
        assert_eq!(rung.steps.len(), 2);
        match rung.end {
            RampEnd::Margin {
                available_bytes,
                next_estimate_bytes,
                margin_bytes,
            } => {
                assert_eq!(available_bytes, 2 * GIB + GIB / 2);
                assert_eq!(next_estimate_bytes, GIB);
                assert_eq!(margin_bytes, 2 * GIB);
            }
            other => panic!("ended {other:?}"),
        }
        assert_eq!(
            *seen.starts.lock().unwrap(),
            [1, 2],
            "a start past the margin"
        );
        // The concurrent start is bounded by the margin too: two fit again once the ramp's
        // instances are gone.
        assert_eq!(*seen.concurrent.lock().unwrap(), Some(2));
        assert_eq!(env.live_instances(), 0);
    }

    #[test]
    fn a_host_without_room_for_one_starts_nothing() {
        let env = mock(MockReadings::default());
        let host = host(&env, GIB, MIB);
        let rung = measure_rung(env.as_ref(), Vec::new(), &plan(3), &host, &mut Silent).unwrap();
        assert!(rung.steps.is_empty());
        assert!(matches!(rung.end, RampEnd::Margin { .. }), "{:?}", rung.end);
        assert!(rung.concurrent.is_none());
        assert_eq!(env.starts(), 0);
    }

    /// The third start fails: the ramp ends there with the reason, the two running are
    /// stopped, and the concurrent start (two, as reached) goes on — and its own failure is
    /// recorded, not raised.
    #[test]
    fn a_failed_start_ends_the_ramp_with_its_reason_and_leaves_nothing() {
        let env = Arc::new(
            MockEnv::new("mock", Budget::for_host(), MockReadings::default())
                .with_failing_starts([2, 4]),
        );
        let host = host(&env, 20 * GIB, 10 * MIB);
        let rung = measure_rung(env.as_ref(), Vec::new(), &plan(6), &host, &mut Silent).unwrap();
        assert_eq!(rung.steps.len(), 2);
        match &rung.end {
            RampEnd::Failed {
                instance, reason, ..
            } => {
                assert_eq!(*instance, 3);
                assert!(reason.contains("fails on purpose"), "{reason}");
            }
            other => panic!("ended {other:?}"),
        }
        let concurrent = rung.concurrent.as_ref().unwrap();
        assert_eq!(concurrent.instances, 2);
        assert_eq!(concurrent.startup_ms.len() + concurrent.failures.len(), 2);
        assert_eq!(concurrent.failures.len(), 1, "{concurrent:?}");
        assert!(concurrent.all_answering_ms.is_none());
        assert_eq!(env.live_instances(), 0);
    }

    /// `--load`: the closed loop reaches one instance and then all of them, every
    /// generator's answers counted.
    #[test]
    fn the_load_runs_on_one_and_on_all_instances() {
        let env = mock(MockReadings::default());
        let host = host(&env, 20 * GIB, MIB);
        let mut plan = plan(3);
        plan.concurrent = false;
        plan.load = Some(DensityLoad {
            connections: 6,
            window: Duration::from_millis(300),
            warmup: Duration::ZERO,
            cpus: Vec::new(),
        });
        let rung = measure_rung(env.as_ref(), Vec::new(), &plan, &host, &mut Silent).unwrap();
        let load = rung.load.unwrap();
        assert_eq!((load.one.instances, load.one.connections), (1, 6));
        assert_eq!((load.all.instances, load.all.connections), (3, 6));
        for spread in [&load.one, &load.all] {
            assert!(spread.throughput_rps > 0.0, "{spread:?}");
            assert_eq!(spread.failed_requests, 0, "{spread:?}");
            assert!(spread.p99_ms.is_some_and(|ms| ms > 0.0), "{spread:?}");
        }
        assert_eq!(env.live_instances(), 0);
    }

    /// Known answers of the derivation: 24 GiB available, the default margin (a fifth of
    /// 24 GiB) kept, half of the rest is 9.6 GiB.
    #[test]
    fn the_default_count_is_what_fits_half_the_spare_memory_within_2_to_8() {
        let InstanceCount::Fit {
            share_percent,
            min,
            max,
        } = DEFAULT_COUNT
        else {
            panic!("the default is derived");
        };
        assert_eq!((share_percent, min, max), (50, 2, 8));
        let margin = default_margin_bytes(24 * GIB);
        let fit = |available, cost| fitting_instances(available, margin, cost, 50, (2, 8));
        // 9.6 GiB / 1 GiB: 9, bounded to 8.
        assert_eq!(fit(24 * GIB, GIB), (9, 8));
        // 9.6 GiB / 2 GiB: 4, within the bounds.
        assert_eq!(fit(24 * GIB, 2 * GIB), (4, 4));
        // 9.6 GiB / 183 MiB (this machine's VM): 53, bounded to 8.
        assert_eq!(fit(24 * GIB, 183 * MIB), (53, 8));
        // 9.6 GiB / 6 GiB: 1, raised to 2 (the margin still guards the second start).
        assert_eq!(fit(24 * GIB, 6 * GIB), (1, 2));
        // Nothing above the margin: 0 fit, still 2 aimed at.
        assert_eq!(fit(margin / 2, MIB), (0, 2));
        // A cost of nothing counts as a byte, never a division by zero.
        assert_eq!(fitting_instances(4 * GIB, 2 * GIB, 0, 50, (2, 8)), (GIB, 8));
        // 33% of 3 GiB spare is 0.99 GiB: 3 instances of 256 MiB, not 4 (rounded down).
        assert_eq!(
            fitting_instances(5 * GIB, 2 * GIB, 256 * MIB, 33, (1, 16)),
            (3, 3)
        );
    }

    /// The ramp derives its count from the first instance: 20 GiB available, 2 GiB kept,
    /// half of 18 GiB at 3 GiB per instance is 3.
    #[test]
    fn a_derived_count_comes_from_the_first_instances_cost() {
        let env = mock(MockReadings {
            memory_bytes: MIB,
            ..MockReadings::default()
        });
        let host = host(&env, 20 * GIB, 3 * GIB);
        let mut plan = plan(0);
        plan.instances = DEFAULT_COUNT;
        plan.concurrent = false;
        let seen = Seen::default();
        let rung = measure_rung(env.as_ref(), Vec::new(), &plan, &host, &mut &seen).unwrap();
        assert_eq!(rung.end, RampEnd::Reached);
        assert_eq!(*seen.starts.lock().unwrap(), [1, 2, 3]);
        assert_eq!(
            rung.target,
            RampTarget {
                instances: 3,
                fit: Some(TargetFit {
                    available_bytes: 20 * GIB,
                    margin_bytes: 2 * GIB,
                    per_instance_bytes: 3 * GIB,
                    fitting: 3,
                }),
            }
        );
        assert_eq!(env.live_instances(), 0);
        // `--instances` is taken as it is.
        let rung =
            measure_rung(env.as_ref(), Vec::new(), &self::plan(2), &host, &mut Silent).unwrap();
        assert_eq!(
            rung.target,
            RampTarget {
                instances: 2,
                fit: None
            }
        );
    }

    /// A server that never answers 1 request in 50: merged over the instances, the p99 of
    /// every request is at least the timeout (the answered requests' alone would be fast).
    #[test]
    fn the_merged_p99_counts_the_request_never_answered() {
        const TIMEOUT_US: u64 = 5_000_000;
        let report = |never_answered: u64| {
            let mut answered =
                hdrhistogram::Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).unwrap();
            answered.record_n(300, 50 - never_answered).unwrap();
            let mut all = answered.clone();
            all.record_n(TIMEOUT_US, never_answered).unwrap();
            let mut run =
                crate::artifact::fixture::scenario_run("health", 50.0, 300.0, 1.0, None, None);
            run.load.histogram = crate::artifact::histogram::encode(&answered);
            run.load.all_requests_histogram = Some(crate::artifact::histogram::encode(&all));
            Ok(run.load)
        };
        // Each instance's generator saw one of its 50 requests time out.
        let reports = [report(1), report(1)];
        let p99 = merged_p99_ms(&reports).unwrap();
        assert!(p99 >= TIMEOUT_US as f64 / 1e3, "{p99} ms");
        // An artifact that predates the all-requests histogram: the answered ones'.
        let old: Vec<Result<LoadReport, String>> = reports
            .iter()
            .map(|r| {
                let mut r = r.clone().unwrap();
                r.all_requests_histogram = None;
                Ok(r)
            })
            .collect();
        assert!(merged_p99_ms(&old).unwrap() < 1.0);
        // A generator that failed leaves no p99 that would hide its instance.
        assert_eq!(merged_p99_ms(&[report(0), Err("failed".into())]), None);
    }

    #[test]
    fn the_default_margin_is_a_fifth_of_ram_or_2_gib() {
        assert_eq!(default_margin_bytes(24 * GIB), 24 * GIB / 5);
        assert_eq!(default_margin_bytes(4 * GIB), 2 * GIB);
    }
}

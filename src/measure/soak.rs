//! The soak: one instance at saturation for a long while, its resident memory, open file
//! descriptors and threads sampled as it goes; growth beyond noise is a leak.
//!
//! Samples come from the service's own `/status` (`memory.process_rss_bytes`, `open_fds`,
//! `threads`), read the same way in every environment — the process in a container or a
//! VM guest is measured from inside, where the host cannot see its descriptors or threads.
//!
//! **Noise.** The first and the last [`EDGE_SAMPLES`] samples are each reduced to their
//! median, so one sample taken mid-burst does not decide; growth is end − start, and noise is:
//! - RSS: [`RSS_NOISE_FRACTION`] of the start, at least [`RSS_NOISE_BYTES`]: the allocator
//!   keeps freed memory in per-thread caches and the kernel's socket buffers come and go
//!   with the connections, which moves RSS by a few MiB at saturation without any leak;
//! - open fds: [`FD_NOISE`]: the sampler's own connection and a connection being accepted or
//!   closed at the moment of a sample (the load keeps a fixed number of connections open);
//! - threads: [`THREAD_NOISE`]: the runtime starts a blocking-pool thread on demand (`/status`
//!   itself uses one) and retires it after 10 s idle.

use std::time::{Duration, Instant};

use anyhow::Context;
use serde::{Deserialize, Serialize};

use crate::artifact::load::LoadReport;
use crate::cleanup::{self, Phase};
use crate::env::{Environment, health};
use crate::load::{self, LoadOptions};

/// Samples at each end reduced to a median.
pub const EDGE_SAMPLES: usize = 3;
/// RSS noise as a fraction of the start.
pub const RSS_NOISE_FRACTION: f64 = 0.10;
/// Smallest RSS noise, bytes.
pub const RSS_NOISE_BYTES: u64 = 8 << 20;
/// Open file descriptors the service may gain without it counting as growth.
pub const FD_NOISE: u64 = 2;
/// Threads the service may gain without it counting as growth.
pub const THREAD_NOISE: u64 = 2;

/// How a soak is run.
#[derive(Debug, Clone)]
pub struct SoakPlan {
    /// How long the instance is held at saturation after the warm-up.
    pub length: Duration,
    /// Load before the first sample, so start-up allocations are not counted as growth.
    pub warmup: Duration,
    /// Closed-loop connections on `/health`: enough to saturate the service.
    pub connections: usize,
    /// Time between samples.
    pub sample_every: Duration,
    /// Host CPUs of the load generator.
    pub generator_cpus: Vec<usize>,
}

impl SoakPlan {
    /// The long soak (`--thorough`, and the documented command): 10 minutes, a sample every
    /// 10 s.
    pub fn long(generator_cpus: Vec<usize>) -> Self {
        Self {
            length: Duration::from_secs(600),
            warmup: Duration::from_secs(5),
            connections: 16,
            sample_every: Duration::from_secs(10),
            generator_cpus,
        }
    }

    /// A soak of `length` with samples spaced to give at least `2 × EDGE_SAMPLES + 2` of them.
    pub fn of_length(length: Duration, generator_cpus: Vec<usize>) -> Self {
        let spacing = (length / (2 * EDGE_SAMPLES as u32 + 2)).min(Duration::from_secs(10));
        Self {
            length,
            warmup: Duration::from_secs(2),
            connections: 16,
            sample_every: spacing.max(Duration::from_millis(200)),
            generator_cpus,
        }
    }
}

/// One reading of the service during the soak.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sample {
    /// Milliseconds since the soak's load started (after the warm-up).
    pub at_ms: u64,
    /// Resident set size of the service process, bytes.
    pub rss_bytes: u64,
    /// Open file descriptors of the service process.
    pub open_fds: u64,
    /// Threads of the service process.
    pub threads: u64,
}

/// Start, end and growth of one quantity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Growth {
    /// Median of the first samples.
    pub start: u64,
    /// Median of the last samples.
    pub end: u64,
    /// Growth allowed as noise.
    pub noise: u64,
}

impl Growth {
    /// Whether it grew beyond noise.
    pub fn leaks(&self) -> bool {
        self.end > self.start.saturating_add(self.noise)
    }
}

/// What a soak found.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SoakResult {
    /// Every sample, in order.
    pub samples: Vec<Sample>,
    /// Resident memory, bytes.
    pub rss: Growth,
    /// Open file descriptors.
    pub open_fds: Growth,
    /// Threads.
    pub threads: Growth,
    /// Requests answered 200.
    pub ok: u64,
    /// Requests that failed, any class.
    pub failed: u64,
    /// Throughput over the soak, requests per second.
    pub throughput_rps: f64,
}

/// What a soak says of the service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SoakVerdict {
    /// Every request answered and nothing grew beyond noise.
    Steady,
    /// Requests failed or something grew: each way, in words.
    Failed(Vec<String>),
}

impl SoakResult {
    /// The soak's verdict.
    pub fn verdict(&self) -> SoakVerdict {
        let problems = self.problems();
        if problems.is_empty() {
            SoakVerdict::Steady
        } else {
            SoakVerdict::Failed(problems)
        }
    }

    /// Every way the soak failed: requests that failed, quantities that grew beyond noise.
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if self.ok == 0 || self.failed > 0 {
            problems.push(format!("{} ok, {} failed requests", self.ok, self.failed));
        }
        for (name, growth) in [
            ("RSS (bytes)", self.rss),
            ("open fds", self.open_fds),
            ("threads", self.threads),
        ] {
            if growth.leaks() {
                problems.push(format!(
                    "{name} grew from {} to {}, beyond the noise of {}",
                    growth.start, growth.end, growth.noise
                ));
            }
        }
        problems
    }

    /// One line for logs and notes.
    pub fn describe(&self) -> String {
        let mib = |bytes: u64| bytes as f64 / f64::from(1 << 20);
        format!(
            "{} samples; RSS {:.1} → {:.1} MiB, open fds {} → {}, threads {} → {}; {} ok at {:.0} req/s, {} failed",
            self.samples.len(),
            mib(self.rss.start),
            mib(self.rss.end),
            self.open_fds.start,
            self.open_fds.end,
            self.threads.start,
            self.threads.end,
            self.ok,
            self.throughput_rps,
            self.failed
        )
    }
}

/// Reads one sample from `{base_url}/status`.
pub fn sample(base_url: &str, at: Duration) -> anyhow::Result<Sample> {
    let (status, body) = health::get_json(base_url, "/status")?;
    anyhow::ensure!(status == 200, "/status answered {status}");
    let field = |pointer: &str| {
        body.pointer(pointer)
            .and_then(serde_json::Value::as_u64)
            .with_context(|| format!("/status has no {pointer}"))
    };
    Ok(Sample {
        at_ms: at.as_millis() as u64,
        rss_bytes: field("/memory/process_rss_bytes")?,
        open_fds: field("/open_fds")?,
        threads: field("/threads")?,
    })
}

/// Starts a fresh instance of `env`, soaks it by `plan` and stops it. The run's phase (for
/// interrupts and fault injection) follows: starting, then loading.
pub fn soak_fresh_instance(env: &dyn Environment, plan: &SoakPlan) -> anyhow::Result<SoakResult> {
    cleanup::record_phase(Phase::Starting);
    let instance = env.start()?;
    cleanup::enter_phase(Phase::Loading);
    let result = soak(instance.base_url(), plan);
    instance.stop()?;
    result
}

/// Holds the service at `base_url` at saturation for `plan.length`, sampling it; errors
/// only when the soak could not be run (the load failed to start, `/status` unreadable).
pub fn soak(base_url: &str, plan: &SoakPlan) -> anyhow::Result<SoakResult> {
    let mut options = LoadOptions::new(base_url);
    options.connections = plan.connections;
    options.cpus = plan.generator_cpus.clone();
    // The warm-up is the load's own, on the connections the soak then keeps: a separate
    // warm-up run closed its connections, and the soak's first samples then caught a server
    // still accepting the new ones (under TCG, 17 → 27 descriptors over the first seconds,
    // read as growth).
    options.warmup = plan.warmup;
    options.progress = false;
    options.duration = Some(plan.length);
    let started = Instant::now();
    let (report, samples) = std::thread::scope(|scope| {
        let load = scope.spawn(|| load::run(&options));
        let mut samples = Vec::new();
        let mut error = None;
        // The first sample one interval after the warm-up.
        let mut next = plan.warmup + plan.sample_every;
        while !load.is_finished() {
            let now = started.elapsed();
            if now >= next {
                match sample(base_url, now.saturating_sub(plan.warmup)) {
                    Ok(sample) => samples.push(sample),
                    Err(failed) => error = error.or(Some(failed)),
                }
                next += plan.sample_every;
            }
            std::thread::sleep(Duration::from_millis(50).min(plan.sample_every));
        }
        let report = load
            .join()
            .map_err(|_| anyhow::anyhow!("the soak's load panicked"));
        (report, samples_or(samples, error))
    });
    let report: LoadReport = report?.context("the soak's load")?;
    // Only samples under load: after it, the connections are closed and fewer descriptors
    // would hide growth.
    Ok(evaluate(samples?, &report))
}

fn samples_or(samples: Vec<Sample>, error: Option<anyhow::Error>) -> anyhow::Result<Vec<Sample>> {
    match error {
        Some(error) if samples.len() < 2 * EDGE_SAMPLES => {
            Err(error.context("sampling /status during the soak"))
        }
        _ => Ok(samples),
    }
}

/// The median of `values` (the lower one of an even count).
fn median(mut values: Vec<u64>) -> u64 {
    values.sort_unstable();
    values
        .get((values.len().saturating_sub(1)) / 2)
        .copied()
        .unwrap_or(0)
}

/// Start, end and growth of one quantity over `samples`.
fn growth(
    samples: &[Sample],
    value: impl Fn(&Sample) -> u64,
    noise: impl Fn(u64) -> u64,
) -> Growth {
    let edge = EDGE_SAMPLES.min(samples.len().div_ceil(2)).max(1);
    let start = median(samples.iter().take(edge).map(&value).collect());
    let end = median(samples.iter().rev().take(edge).map(&value).collect());
    Growth {
        start,
        end,
        noise: noise(start),
    }
}

/// The verdict on `samples` taken during a soak whose load reported `report`.
pub fn evaluate(samples: Vec<Sample>, report: &LoadReport) -> SoakResult {
    let rss = growth(
        &samples,
        |s| s.rss_bytes,
        |start| ((start as f64 * RSS_NOISE_FRACTION) as u64).max(RSS_NOISE_BYTES),
    );
    let open_fds = growth(&samples, |s| s.open_fds, |_| FD_NOISE);
    let threads = growth(&samples, |s| s.threads, |_| THREAD_NOISE);
    SoakResult {
        samples,
        rss,
        open_fds,
        threads,
        ok: report.ok,
        failed: report.errors.total(),
        throughput_rps: report.throughput_rps,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn samples(rss_mib: &[u64], fds: &[u64], threads: &[u64]) -> Vec<Sample> {
        rss_mib
            .iter()
            .zip(fds)
            .zip(threads)
            .enumerate()
            .map(|(index, ((rss, fds), threads))| Sample {
                at_ms: index as u64 * 1000,
                rss_bytes: rss << 20,
                open_fds: *fds,
                threads: *threads,
            })
            .collect()
    }

    #[test]
    fn steady_readings_pass_and_a_single_spike_does_not_decide() {
        let s = samples(
            &[20, 21, 20, 22, 60, 21, 20, 21],
            &[25, 25, 26, 25, 25, 27, 25, 25],
            &[5, 5, 6, 5, 5, 5, 6, 5],
        );
        let rss = growth(&s, |x| x.rss_bytes, |_| RSS_NOISE_BYTES);
        assert_eq!((rss.start, rss.end), (20 << 20, 21 << 20));
        assert!(!rss.leaks());
        assert!(!growth(&s, |x| x.open_fds, |_| FD_NOISE).leaks());
    }

    #[test]
    fn growth_beyond_noise_is_a_leak() {
        let s = samples(
            &[20, 20, 20, 30, 40, 50, 60, 70],
            &[25, 25, 25, 30, 35, 40, 45, 50],
            &[5, 5, 5, 5, 5, 9, 9, 9],
        );
        let rss = growth(&s, |x| x.rss_bytes, |_| RSS_NOISE_BYTES);
        assert_eq!((rss.start, rss.end), (20 << 20, 60 << 20));
        assert!(rss.leaks());
        assert!(growth(&s, |x| x.open_fds, |_| FD_NOISE).leaks());
        assert!(growth(&s, |x| x.threads, |_| THREAD_NOISE).leaks());
        // Exactly at the noise is not a leak.
        let edge = Growth {
            start: 10,
            end: 12,
            noise: 2,
        };
        assert!(!edge.leaks());
    }

    #[test]
    fn medians_and_short_series() {
        assert_eq!(median(vec![3, 1, 2]), 2);
        assert_eq!(median(vec![4, 1, 3, 2]), 2);
        assert_eq!(median(vec![]), 0);
        let s = samples(&[10, 11], &[5, 6], &[1, 1]);
        let g = growth(&s, |x| x.rss_bytes, |_| 0);
        assert_eq!((g.start, g.end), (10 << 20, 11 << 20));
    }

    #[test]
    fn plans_sample_often_enough() {
        let plan = SoakPlan::of_length(Duration::from_secs(8), vec![0]);
        assert!(plan.length.as_millis() / plan.sample_every.as_millis() >= 8);
        let long = SoakPlan::long(vec![0]);
        assert_eq!(long.length, Duration::from_secs(600));
        assert_eq!(long.length.as_millis() / long.sample_every.as_millis(), 60);
    }
}

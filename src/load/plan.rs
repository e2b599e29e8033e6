//! Turns [`LoadOptions`] into a checked plan: the resolved target, the phases on the clock,
//! the bounds that stop the run, and the open-loop schedule.
//!
//! Every run has a hard deadline (end of the measured window + timeout + margin) after which
//! the workers are abandoned even if the server hangs, so a run always stops by itself.
//!
//! Open loop follows wrk2: request `k` (counted from the start of the warm-up, across all
//! connections) is due at `start + k / rate`, and connection `i` sends requests
//! `i, i + C, i + 2C, …`. The number of warm-up and measured requests is therefore fixed
//! before the run starts, which makes request counts exact. The rate is held as an integer
//! number of requests per 10⁶ s ([`Rate`]) and every count and due time is integer
//! arithmetic on nanoseconds, so 1.1 s at 100 req/s is exactly 110 requests (a float `ceil`
//! of 110.00000000000001 made it 111).

use std::net::SocketAddr;
use std::sync::atomic::AtomicU64;
use std::time::{Duration, Instant};

use http::header::HeaderValue;

use super::client::Target;
use super::{LoadError, LoadOptions, scenario};

/// Longest run a `--requests` bound alone may take: a run must be bounded in time even when
/// the count is never reached.
pub const MAX_COUNT_ONLY_RUN: Duration = Duration::from_secs(600);
/// Slack past the last moment a request may still be answered before workers are abandoned.
const DEADLINE_MARGIN: Duration = Duration::from_secs(1);
/// Time given to the worker threads to start before the clock (and the schedule) begins.
const SPIN_UP: Duration = Duration::from_millis(20);
/// Most connections accepted; far beyond what one host can usefully open to one server.
pub const MAX_CONNECTIONS: usize = 10_000;
/// Slices of a planned window in its time series: 100 ms of the default 2 s window, enough
/// slices for the steadiness tests' thirds and quarters.
pub const SLICES_PER_WINDOW: u32 = 20;
/// Slice width of a run with no planned length (bounded by count alone).
pub const UNPLANNED_SLICE: Duration = Duration::from_millis(100);
/// Slices a warm-up still under way is cut off with: the window's first quarter.
pub const HEAD_SLICES: u32 = SLICES_PER_WINDOW / 4;

/// How requests are paced.
#[derive(Debug)]
pub enum Pacing {
    /// Each connection sends its next request when the last is answered.
    Closed {
        /// No measured request starts at or after this instant.
        end: Instant,
        /// Measured requests allowed, when the run is bounded by count.
        requests: Option<u64>,
        /// Measured requests claimed so far (tickets), shared by every connection.
        claimed: AtomicU64,
    },
    /// Requests are due at a constant total rate.
    Open {
        /// Requests per second, all connections together.
        rate: Rate,
        /// Requests `0..warmup` are warm-up.
        warmup: u64,
        /// Requests `warmup..warmup + measured` are measured.
        measured: u64,
        /// A connection that is so far behind that it would still be sending at this instant
        /// gives up the rest of its schedule; its measured requests left are counted
        /// `unsent`, with their latency up to this instant.
        send_limit: Instant,
    },
}

/// A checked, resolved load run.
#[derive(Debug)]
pub struct LoadPlan {
    /// Where to connect and what to send.
    pub target: Target,
    /// Scenario weights by path index.
    pub weights: Vec<u32>,
    /// Concurrent connections.
    pub connections: usize,
    /// Per-request timeout.
    pub timeout: Duration,
    /// When the warm-up (and the open-loop schedule) begins.
    pub start: Instant,
    /// When measuring begins.
    pub measure_start: Instant,
    /// The measured window as planned: the duration in closed loop (zero when bounded by
    /// count), the scheduled span in open loop.
    pub planned_window: Duration,
    /// Pacing and the bounds it implies.
    pub pacing: Pacing,
    /// Workers are abandoned at this instant whatever happens.
    pub hard_deadline: Instant,
    /// Set to `true` to make every worker stop at once (one of them failed).
    pub stop: tokio::sync::watch::Sender<bool>,
    /// One worker thread per entry; `Some(cpu)` pins that thread.
    pub threads: Vec<Option<usize>>,
    /// Width of a slice of the window's time series.
    pub slice: Duration,
    /// End of the window's first quarter, which a warm-up still under way is cut off at; the
    /// window's start when the window cannot be cut (open loop, a run bounded by count).
    pub head_end: Instant,
}

impl LoadPlan {
    /// Whether requests are paced at a constant rate.
    pub fn open_loop(&self) -> bool {
        matches!(self.pacing, Pacing::Open { .. })
    }

    /// Due time of open-loop request `k`.
    pub fn due(&self, k: u64, rate: Rate) -> Instant {
        self.start + rate.offset(k)
    }
}

/// Nanoseconds in 10⁶ s: the unit of [`Rate`] times the unit of a due time.
const NANOS_PER_MEGASECOND: u128 = 1_000_000_000_000_000;

/// An open-loop rate as an integer: requests per 10⁶ seconds (micro-requests per second), so
/// counts and due times need no floating point.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    per_megasecond: u64,
}

impl Rate {
    /// `per_second` rounded to a millionth of a request per second; `None` when that is not
    /// a positive number that fits.
    pub fn new(per_second: f64) -> Option<Self> {
        let scaled = (per_second * 1e6).round();
        // u64::MAX as f64 rounds up to 2^64, so `<` keeps the conversion exact.
        (scaled.is_finite() && scaled >= 1.0 && scaled < u64::MAX as f64).then_some(Self {
            per_megasecond: scaled as u64,
        })
    }

    /// How many requests fall due in `span` (due times `0, 1/rate, …` before `span`).
    pub fn count_in(self, span: Duration) -> u64 {
        let numerator = span.as_nanos() * u128::from(self.per_megasecond);
        u64::try_from(numerator.div_ceil(NANOS_PER_MEGASECOND)).unwrap_or(u64::MAX)
    }

    /// When request `k` is due, counted from the start of the schedule.
    pub fn offset(self, k: u64) -> Duration {
        let nanos = u128::from(k) * NANOS_PER_MEGASECOND / u128::from(self.per_megasecond);
        Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
    }
}

fn invalid(option: &'static str, reason: impl Into<String>) -> LoadError {
    LoadError::InvalidOption {
        option,
        reason: reason.into(),
    }
}

/// Checks `options` and resolves the target; the clock starts now.
pub fn build(options: &LoadOptions) -> Result<LoadPlan, LoadError> {
    let (addr, host) = resolve(&options.base_url)?;
    if options.scenario.is_empty() {
        return Err(invalid("scenario", "no paths to send"));
    }
    let mut uris = Vec::with_capacity(options.scenario.len());
    for (index, path) in options.scenario.iter().enumerate() {
        if path.weight == 0 {
            return Err(invalid("scenario", format!("{}: weight 0", path.path)));
        }
        // Results are kept per path; a second entry would overwrite the first one's.
        if options.scenario[..index]
            .iter()
            .any(|p| p.path == path.path)
        {
            return Err(invalid(
                "scenario",
                format!(
                    "{} is listed twice; give it once with the sum of the weights",
                    path.path
                ),
            ));
        }
        uris.push(
            scenario::validate_path(&path.path).map_err(|e| invalid("scenario", e.to_string()))?,
        );
    }
    if options.connections == 0 || options.connections > MAX_CONNECTIONS {
        return Err(invalid(
            "connections",
            format!("must be between 1 and {MAX_CONNECTIONS}"),
        ));
    }
    if options.timeout.is_zero() {
        return Err(invalid("timeout", "must be longer than zero"));
    }
    if options.duration.is_none() && options.requests.is_none() {
        return Err(invalid("duration", "give a duration or a request count"));
    }
    if options.duration.is_some_and(|d| d.is_zero()) {
        return Err(invalid("duration", "must be longer than zero"));
    }
    if options.requests == Some(0) {
        return Err(invalid("requests", "must be at least 1"));
    }
    let rate = match options.rate {
        None => None,
        Some(rate) => Some(Rate::new(rate).ok_or_else(|| {
            invalid(
                "rate",
                "must be a positive number of requests per second (at least 0.000001)",
            )
        })?),
    };
    let threads = threads(options)?;

    let start = Instant::now() + SPIN_UP;
    let (measure_start, planned_window, pacing, last_send) = match rate {
        None => {
            let measure_start = start + options.warmup;
            let window = options.duration.unwrap_or(MAX_COUNT_ONLY_RUN);
            let end = measure_start + window;
            let planned = options.duration.unwrap_or(Duration::ZERO);
            let pacing = Pacing::Closed {
                end,
                requests: options.requests,
                claimed: AtomicU64::new(0),
            };
            (measure_start, planned, pacing, end)
        }
        Some(rate) => {
            let warmup = rate.count_in(options.warmup);
            let by_duration = options.duration.map(|d| rate.count_in(d).max(1));
            let measured = match (by_duration, options.requests) {
                (Some(d), Some(n)) => d.min(n),
                (Some(d), None) => d,
                (None, Some(n)) => n,
                (None, None) => unreachable!("checked above"),
            };
            let span = rate.offset(warmup.saturating_add(measured));
            if span > MAX_COUNT_ONLY_RUN + options.warmup {
                return Err(invalid(
                    "requests",
                    format!(
                        "at {} req/s this schedule takes {span:?}, longer than the \
                         {MAX_COUNT_ONLY_RUN:?} a run may last",
                        options.rate.unwrap_or_default()
                    ),
                ));
            }
            let measure_start = start + rate.offset(warmup);
            let window = span - rate.offset(warmup);
            let send_limit = start + span + options.timeout;
            let pacing = Pacing::Open {
                rate,
                warmup,
                measured,
                send_limit,
            };
            (measure_start, window, pacing, send_limit)
        }
    };
    let slice = if planned_window.is_zero() {
        UNPLANNED_SLICE
    } else {
        (planned_window / SLICES_PER_WINDOW).max(Duration::from_micros(1))
    };
    // Only a closed loop bounded by its duration alone can start its window later: an open
    // loop's schedule and a count define what is measured.
    let cuttable =
        matches!(pacing, Pacing::Closed { requests: None, .. }) && options.duration.is_some();
    let head_end = if cuttable {
        measure_start + slice * HEAD_SLICES
    } else {
        measure_start
    };
    Ok(LoadPlan {
        target: Target::new(addr, host, uris, options.keep_alive, options.client),
        weights: options.scenario.iter().map(|p| p.weight).collect(),
        connections: options.connections,
        timeout: options.timeout,
        start,
        measure_start,
        planned_window,
        pacing,
        hard_deadline: last_send + options.timeout + DEADLINE_MARGIN,
        stop: tokio::sync::watch::Sender::new(false),
        threads,
        slice,
        head_end,
    })
}

/// The target's socket address and `Host` header from an `http://host:port` base URL.
fn resolve(base_url: &str) -> Result<(SocketAddr, HeaderValue), LoadError> {
    let bad = |reason: &str| LoadError::Url {
        url: base_url.into(),
        reason: reason.into(),
    };
    let url = url::Url::parse(base_url).map_err(|e| bad(&e.to_string()))?;
    match url.scheme() {
        "http" => {}
        "https" => return Err(bad("https is not supported; the service speaks plain HTTP")),
        other => return Err(bad(&format!("scheme {other:?} is not http"))),
    }
    let host = url.host_str().ok_or_else(|| bad("no host"))?;
    let port = url.port_or_known_default().ok_or_else(|| bad("no port"))?;
    if !matches!(url.path(), "" | "/") || url.query().is_some() {
        return Err(bad(
            "a base URL has no path or query; paths belong in the scenario",
        ));
    }
    let addr = url
        .socket_addrs(|| None)
        .map_err(|e| bad(&format!("cannot resolve the host: {e}")))?
        .into_iter()
        .next()
        .ok_or_else(|| bad("the host resolves to no address"))?;
    let header = HeaderValue::from_str(&format!("{host}:{port}"))
        .map_err(|_| bad("host is not a valid Host header"))?;
    Ok((addr, header))
}

/// One worker thread (event loop) per CPU the generator may use, never more than there are
/// connections; when `options.cpus` is given, thread `i` is pinned to `cpus[i]`.
///
/// Never two loops on one CPU: they hand the CPU to each other, a context switch and a
/// wakeup each time, and spend more CPU per request for it. What a second loop seems to buy
/// on a shared host is CPU share against other processes on the same CPU (the scheduler is
/// fair per thread), not efficiency; isobench instead pins the service and its helpers away
/// from the generator's CPUs. (The README's "Why these defaults" has the measurement.)
fn threads(options: &LoadOptions) -> Result<Vec<Option<usize>>, LoadError> {
    let count = |cpus: usize| cpus.min(options.connections).max(1);
    if options.cpus.is_empty() {
        let available = crate::probe::pin::current_affinity()
            .map(|cpus| cpus.len())
            .unwrap_or_else(|_| std::thread::available_parallelism().map_or(1, |n| n.get()));
        return Ok(vec![None; count(available)]);
    }
    let allowed = crate::probe::pin::current_affinity()?;
    if let Some(cpu) = options.cpus.iter().find(|cpu| !allowed.contains(cpu)) {
        return Err(invalid(
            "cpus",
            format!("CPU {cpu} is not one this process may run on ({allowed:?})"),
        ));
    }
    let cpus = &options.cpus;
    Ok((0..count(cpus.len())).map(|i| Some(cpus[i])).collect())
}

/// The distinct CPUs the generator may use: the pinned ones, else its affinity.
pub fn generator_cpu_count(threads: &[Option<usize>]) -> usize {
    let mut pinned: Vec<usize> = threads.iter().flatten().copied().collect();
    pinned.sort_unstable();
    pinned.dedup();
    if pinned.is_empty() {
        crate::probe::pin::current_affinity().map_or(1, |cpus| cpus.len().max(1))
    } else {
        pinned.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(url: &str) -> LoadOptions {
        LoadOptions::new(url)
    }

    #[test]
    fn rejects_unusable_urls() {
        for url in [
            "127.0.0.1:8080",
            "https://127.0.0.1:8080",
            "ftp://127.0.0.1",
            "http://127.0.0.1:8080/health",
            "http://",
        ] {
            assert!(
                matches!(build(&options(url)), Err(LoadError::Url { .. })),
                "{url} accepted"
            );
        }
    }

    #[test]
    fn rejects_bad_options_by_name() {
        let check = |change: fn(&mut LoadOptions), name: &str| {
            let mut o = options("http://127.0.0.1:9");
            change(&mut o);
            match build(&o) {
                Err(LoadError::InvalidOption { option, .. }) => assert_eq!(option, name),
                other => panic!("{name}: {other:?}"),
            }
        };
        check(|o| o.connections = 0, "connections");
        check(|o| o.timeout = Duration::ZERO, "timeout");
        check(|o| o.duration = None, "duration");
        check(|o| o.requests = Some(0), "requests");
        check(|o| o.rate = Some(0.0), "rate");
        check(|o| o.rate = Some(f64::NAN), "rate");
        check(|o| o.scenario.clear(), "scenario");
        check(|o| o.cpus = vec![100_000], "cpus");
    }

    #[test]
    fn open_loop_counts_are_fixed_in_advance() {
        let mut o = options("http://127.0.0.1:9");
        o.rate = Some(200.0);
        o.duration = Some(Duration::from_secs(2));
        o.warmup = Duration::from_millis(500);
        let plan = build(&o).unwrap();
        match plan.pacing {
            Pacing::Open {
                warmup, measured, ..
            } => assert_eq!((warmup, measured), (100, 400)),
            Pacing::Closed { .. } => panic!("closed"),
        }
        assert_eq!(plan.planned_window, Duration::from_secs(2));
        assert!(plan.hard_deadline > plan.measure_start + Duration::from_secs(2));
    }

    #[test]
    fn rates_count_and_schedule_in_integers() {
        let rate = Rate::new(100.0).unwrap();
        assert_eq!(rate.count_in(Duration::from_millis(1100)), 110);
        assert_eq!(rate.count_in(Duration::from_millis(30)), 3);
        assert_eq!(rate.count_in(Duration::from_micros(10_001)), 2);
        assert_eq!(rate.offset(110), Duration::from_millis(1100));
        let third = Rate::new(1.0 / 3.0).unwrap();
        assert_eq!(third.count_in(Duration::from_secs(3)), 1);
        assert_eq!(third.offset(1), Duration::from_nanos(3_000_003_000));
        assert_eq!(Rate::new(0.0), None);
        assert_eq!(Rate::new(1e-9), None);
        assert_eq!(Rate::new(f64::INFINITY), None);
        let mut o = options("http://127.0.0.1:9");
        o.rate = Some(100.0);
        o.duration = Some(Duration::from_millis(1100));
        o.warmup = Duration::from_millis(30);
        match build(&o).unwrap().pacing {
            Pacing::Open {
                warmup, measured, ..
            } => assert_eq!((warmup, measured), (3, 110)),
            Pacing::Closed { .. } => panic!("closed"),
        }
    }

    #[test]
    fn one_loop_per_generator_cpu_never_more_than_connections() {
        let allowed = crate::probe::pin::current_affinity().unwrap();
        let mut o = options("http://127.0.0.1:9");
        o.cpus = allowed.clone();
        let plan = build(&o).unwrap();
        let pinned: Vec<_> = allowed.iter().copied().map(Some).collect();
        assert_eq!(plan.threads, pinned);
        assert_eq!(generator_cpu_count(&plan.threads), allowed.len());
        o.cpus = vec![allowed[0]];
        assert_eq!(build(&o).unwrap().threads, vec![Some(allowed[0])]);
        o.cpus = allowed.clone();
        o.connections = 1;
        assert_eq!(build(&o).unwrap().threads, vec![Some(allowed[0])]);
    }

    #[test]
    fn host_header_and_address() {
        let plan = build(&options("http://127.0.0.1:8080/")).unwrap();
        assert_eq!(plan.target.host, "127.0.0.1:8080");
        assert_eq!(plan.target.addr.port(), 8080);
    }
}

//! Mock: the real service in-process, with deterministic startup and resource readings.
//!
//! Everything downstream of an environment (the load generator, `isobench run`, statistics
//! and reports) can be exercised with it on any machine, without Docker or QEMU, and with
//! readings a test can predict exactly: memory grows by a fixed amount per open connection
//! and CPU time by a fixed amount per request, so the right peak for a window with c
//! connections, and the right CPU per request, are known in advance.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::task::{Context as TaskContext, Poll};
use std::time::Duration;

use anyhow::{Context, anyhow};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;

use crate::artifact::{EnvKind, EnvironmentLabel, Preparation};
use crate::env::{Budget, EnvError, Environment, Instance, ResourceReading};
use crate::service;

/// The readings every mock instance reports.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MockReadings {
    /// Reported startup time.
    pub startup: Duration,
    /// Reported memory with no connection open, bytes.
    pub memory_bytes: u64,
    /// Memory added per open connection, bytes.
    pub memory_per_connection_bytes: u64,
    /// Reported CPU time before any request, seconds.
    pub cpu_seconds: f64,
    /// CPU time added per request received, seconds.
    pub cpu_seconds_per_request: f64,
}

impl Default for MockReadings {
    fn default() -> Self {
        Self {
            startup: Duration::from_millis(5),
            memory_bytes: 8 << 20,
            memory_per_connection_bytes: 0,
            cpu_seconds: 0.25,
            cpu_seconds_per_request: 0.0,
        }
    }
}

/// The mock environment.
pub struct MockEnv {
    name: String,
    budget: Budget,
    readings: MockReadings,
    /// Starts (counted from 0) that fail on purpose.
    failing_starts: Vec<u32>,
    starts: AtomicU32,
    /// Instances started and not yet dropped: what a test checks is zero after a run.
    live: Arc<AtomicU32>,
    /// Requests after which each instance's service dies (every connection fails from then
    /// on, while its readings go on, like a VM whose guest is powering off).
    dies_after_requests: Option<u64>,
}

impl MockEnv {
    /// A mock called `name` that reports `readings`.
    pub fn new(name: impl Into<String>, budget: Budget, readings: MockReadings) -> Self {
        Self {
            name: name.into(),
            budget,
            readings,
            failing_starts: Vec::new(),
            starts: AtomicU32::new(0),
            live: Arc::new(AtomicU32::new(0)),
            dies_after_requests: None,
        }
    }

    /// Makes every instance's service die once it has received `requests` requests.
    pub fn with_death_after_requests(mut self, requests: u64) -> Self {
        self.dies_after_requests = Some(requests);
        self
    }

    /// Instances of this mock running now (started, not yet stopped or dropped).
    pub fn live_instances(&self) -> u32 {
        self.live.load(Ordering::SeqCst)
    }

    /// Starts asked of this mock so far, failed ones included.
    pub fn starts(&self) -> u32 {
        self.starts.load(Ordering::SeqCst)
    }

    /// Makes the given starts (counted from 0) fail, as a broken environment would.
    pub fn with_failing_starts(mut self, starts: impl IntoIterator<Item = u32>) -> Self {
        self.failing_starts = starts.into_iter().collect();
        self
    }
}

impl Environment for MockEnv {
    fn name(&self) -> &str {
        &self.name
    }

    fn prepare(&mut self) -> Result<Vec<Preparation>, EnvError> {
        Ok(Vec::new())
    }

    fn start(&self) -> Result<Box<dyn Instance>, EnvError> {
        let start = self.starts.fetch_add(1, Ordering::Relaxed);
        if self.failing_starts.contains(&start) {
            return Err(anyhow!("mock start {start} fails on purpose").into());
        }
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .context("building the mock's runtime")?;
        let listener = runtime
            .block_on(TcpListener::bind("127.0.0.1:0"))
            .context("binding the mock's port")?;
        let address = listener.local_addr().context("reading the mock's port")?;
        let counters = Arc::new(Counters {
            dies_after_requests: self.dies_after_requests.unwrap_or(u64::MAX),
            ..Counters::default()
        });
        let listener = CountingListener {
            listener,
            counters: Arc::clone(&counters),
        };
        let (stop, stopped) = oneshot::channel::<()>();
        let requests = Arc::clone(&counters);
        let app = service::app(service::Config::default()).layer(
            tower::util::MapRequestLayer::new(move |request: axum::extract::Request| {
                requests.requests.fetch_add(1, Ordering::Relaxed);
                request
            }),
        );
        runtime.spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = stopped.await;
                })
                .await;
        });
        self.live.fetch_add(1, Ordering::SeqCst);
        Ok(Box::new(MockInstance {
            live: Arc::clone(&self.live),
            runtime: Some(runtime),
            stop: Some(stop),
            base_url: format!("http://{address}"),
            readings: self.readings,
            counters,
        }))
    }

    fn label(&self) -> EnvironmentLabel {
        EnvironmentLabel {
            name: self.name.clone(),
            kind: EnvKind::Mock,
            runtime: "in-process mock".into(),
            accel: None,
            service_cpus: self.budget.service_cpus.clone(),
            generator_cpus: self.budget.generator_cpus.clone(),
            memory_limit_bytes: None,
            kernel: None,
            image_size_bytes: None,
            detected: None,
            data_dir: None,
            memory_counts: Some("fixed figures set by the test, not a measurement".into()),
            notes: vec!["deterministic readings for tests; not a measurement".into()],
            rung: None,
            accel_attempts: Vec::new(),
        }
    }
}

/// The in-process server; dropping it shuts the runtime down.
struct MockInstance {
    /// The environment's count of live instances, decremented on drop.
    live: Arc<AtomicU32>,
    runtime: Option<tokio::runtime::Runtime>,
    stop: Option<oneshot::Sender<()>>,
    base_url: String,
    readings: MockReadings,
    counters: Arc<Counters>,
}

/// What the mock's readings are computed from.
#[derive(Debug, Default)]
struct Counters {
    connections: AtomicU64,
    requests: AtomicU64,
    /// The service is dead from this many requests on.
    dies_after_requests: u64,
}

impl Counters {
    fn dead(&self) -> bool {
        self.requests.load(Ordering::Relaxed) >= self.dies_after_requests
    }
}

/// What a dead service's connections do: fail.
fn reset() -> io::Error {
    io::Error::new(io::ErrorKind::ConnectionReset, "the mock service died")
}

/// A listener that counts open connections.
struct CountingListener {
    listener: TcpListener,
    counters: Arc<Counters>,
}

impl axum::serve::Listener for CountingListener {
    type Io = CountedStream;
    type Addr = std::net::SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        let (stream, address) = axum::serve::Listener::accept(&mut self.listener).await;
        self.counters.connections.fetch_add(1, Ordering::Relaxed);
        let counters = Arc::clone(&self.counters);
        (CountedStream { stream, counters }, address)
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.listener.local_addr()
    }
}

/// A connection that is counted until it is dropped.
struct CountedStream {
    stream: TcpStream,
    counters: Arc<Counters>,
}

impl Drop for CountedStream {
    fn drop(&mut self) {
        self.counters.connections.fetch_sub(1, Ordering::Relaxed);
    }
}

impl AsyncRead for CountedStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.counters.dead() {
            return Poll::Ready(Err(reset()));
        }
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for CountedStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if self.counters.dead() {
            return Poll::Ready(Err(reset()));
        }
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

impl Instance for MockInstance {
    fn base_url(&self) -> &str {
        &self.base_url
    }

    fn startup(&self) -> Duration {
        self.readings.startup
    }

    fn resources(&self) -> Result<ResourceReading, EnvError> {
        let readings = &self.readings;
        let connections = self.counters.connections.load(Ordering::Relaxed);
        let requests = self.counters.requests.load(Ordering::Relaxed);
        let memory_bytes =
            readings.memory_bytes + connections * readings.memory_per_connection_bytes;
        Ok(ResourceReading {
            memory_bytes,
            cpu_seconds: readings.cpu_seconds + requests as f64 * readings.cpu_seconds_per_request,
        })
    }

    fn stop(self: Box<Self>) -> Result<(), EnvError> {
        Ok(())
    }
}

impl Drop for MockInstance {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_timeout(Duration::from_secs(1));
        }
        self.live.fetch_sub(1, Ordering::SeqCst);
    }
}

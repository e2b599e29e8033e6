//! Mock: the real service in-process, with deterministic startup and resource readings.
//!
//! Everything downstream of an environment (the load generator, `isobench run`, statistics
//! and reports) can be exercised with it on any machine, without Docker or QEMU, and with
//! readings a test can predict exactly.

use std::time::Duration;

use anyhow::Context;
use tokio::sync::oneshot;

use crate::env::{Budget, EnvError, Environment, Instance, ResourceReading};
use crate::report::schema::{EnvKind, EnvironmentLabel, Preparation};
use crate::service;

/// The readings every mock instance reports.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MockReadings {
    /// Reported startup time.
    pub startup: Duration,
    /// Reported memory, bytes (also the peak).
    pub memory_bytes: u64,
    /// Reported CPU time, seconds.
    pub cpu_seconds: f64,
}

impl Default for MockReadings {
    fn default() -> Self {
        Self {
            startup: Duration::from_millis(5),
            memory_bytes: 8 << 20,
            cpu_seconds: 0.25,
        }
    }
}

/// The mock environment.
pub struct MockEnv {
    name: String,
    budget: Budget,
    readings: MockReadings,
}

impl MockEnv {
    /// A mock called `name` that reports `readings`.
    pub fn new(name: impl Into<String>, budget: Budget, readings: MockReadings) -> Self {
        Self {
            name: name.into(),
            budget,
            readings,
        }
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
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .context("building the mock's runtime")?;
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .context("binding the mock's port")?;
        let address = listener.local_addr().context("reading the mock's port")?;
        let (stop, stopped) = oneshot::channel::<()>();
        let app = service::app(service::Config::default());
        runtime.spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = stopped.await;
                })
                .await;
        });
        Ok(Box::new(MockInstance {
            runtime: Some(runtime),
            stop: Some(stop),
            base_url: format!("http://{address}"),
            readings: self.readings,
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
            notes: vec!["deterministic readings for tests; not a measurement".into()],
            accel_attempts: Vec::new(),
        }
    }
}

/// The in-process server; dropping it shuts the runtime down.
struct MockInstance {
    runtime: Option<tokio::runtime::Runtime>,
    stop: Option<oneshot::Sender<()>>,
    base_url: String,
    readings: MockReadings,
}

impl Instance for MockInstance {
    fn base_url(&self) -> &str {
        &self.base_url
    }

    fn startup(&self) -> Duration {
        self.readings.startup
    }

    fn resources(&self) -> Result<ResourceReading, EnvError> {
        Ok(ResourceReading {
            memory_bytes: self.readings.memory_bytes,
            peak_memory_bytes: Some(self.readings.memory_bytes),
            cpu_seconds: self.readings.cpu_seconds,
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
    }
}

//! Running the service: the tokio runtime sized to the CPUs the process may use, signal
//! handling, binding, the `listening on ADDR` line, and graceful shutdown with a bounded
//! grace period.

use std::future::Future;
use std::io::Write;
use std::net::SocketAddr;

use anyhow::Context;
use axum::ServiceExt;
use axum::serve::ListenerExt;
use tokio::net::TcpListener;
use tokio::signal::unix::{Signal, SignalKind, signal};

use super::app;
use super::config::{Args, Config};
use super::fast_health::WithHealthFastPath;

/// Serves [`app`]`(config)` on `listener` until `shutdown` resolves, then lets in-flight
/// requests finish for at most the configured grace period.
pub async fn serve(
    listener: TcpListener,
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let grace = config.shutdown_grace();
    let max_header_bytes = config.max_header_bytes;
    let service = WithHealthFastPath::new(app(config), max_header_bytes);
    let (stopping_tx, stopping_rx) = tokio::sync::oneshot::channel::<()>();
    let listener = listener.tap_io(|stream| {
        // Small JSON answers on keep-alive connections: never wait for Nagle.
        if let Err(error) = stream.set_nodelay(true) {
            tracing::debug!(%error, "could not set TCP_NODELAY");
        }
    });
    let server =
        axum::serve(listener, service.into_make_service()).with_graceful_shutdown(async move {
            shutdown.await;
            let _ = stopping_tx.send(());
        });
    tokio::select! {
        result = server.into_future() => result,
        () = async {
            // Only a shutdown that was really asked for starts the grace clock.
            if stopping_rx.await.is_ok() {
                tokio::time::sleep(grace).await;
            } else {
                std::future::pending::<()>().await;
            }
        } => {
            tracing::warn!(?grace, "requests still running after the grace period; stopping anyway");
            Ok(())
        }
    }
}

/// SIGTERM and SIGINT handlers, installed before the service announces itself so that a
/// signal sent the moment the `listening on` line appears is already a graceful shutdown
/// (this matters as PID 1 in a container, where unhandled SIGTERM is ignored).
pub struct ShutdownSignals {
    terminate: Signal,
    interrupt: Signal,
}

impl ShutdownSignals {
    /// Installs the handlers (inside a tokio runtime).
    pub fn install() -> std::io::Result<Self> {
        Ok(Self {
            terminate: signal(SignalKind::terminate())?,
            interrupt: signal(SignalKind::interrupt())?,
        })
    }

    /// Resolves at the first SIGTERM or SIGINT.
    pub async fn recv(mut self) {
        let name = tokio::select! {
            _ = self.terminate.recv() => "SIGTERM",
            _ = self.interrupt.recv() => "SIGINT",
        };
        tracing::info!("{name} received, shutting down");
    }
}

/// Resolves at the first SIGTERM or SIGINT (installing the handlers on first poll).
pub async fn shutdown_signal() {
    match ShutdownSignals::install() {
        Ok(signals) => signals.recv().await,
        Err(error) => {
            tracing::error!(%error, "cannot install signal handlers; serving until killed");
            std::future::pending::<()>().await
        }
    }
}

/// How long the runtime waits for blocking tasks once serving has stopped.
const RUNTIME_SHUTDOWN_TIMEOUT: std::time::Duration = std::time::Duration::from_millis(100);

/// The CPUs this process may run on (its affinity mask and cgroup quota respected).
fn available_cpus() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// The whole `isobench-server`: resolves the configuration (the `/memory` caps from the
/// memory limit) and validates it, builds a multi-thread runtime
/// with one worker per available CPU, installs signal handlers, binds, prints
/// `listening on ADDR` (the real port when `--port 0`) and serves until SIGTERM/SIGINT.
pub fn run(args: Args) -> anyhow::Result<()> {
    let config = args.resolve()?;
    let workers = available_cpus();
    // The CPU pool, started now rather than by the first /cpu request, so that request's
    // timing holds no thread start-up; one thread per available CPU, like the runtime.
    rayon::ThreadPoolBuilder::new()
        .num_threads(workers)
        .thread_name(|index| format!("cpu-pool-{index}"))
        .build_global()
        .context("starting the CPU pool")?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .build()
        .context("building the tokio runtime")?;
    let served = runtime.block_on(async move {
        let signals = ShutdownSignals::install().context("installing signal handlers")?;
        let address = SocketAddr::new(args.bind, args.port);
        let listener = TcpListener::bind(address)
            .await
            .with_context(|| format!("binding {address}"))?;
        let bound = listener.local_addr().context("reading the bound address")?;
        tracing::info!(%bound, workers, ?config, "isobench-server starting");
        {
            let mut stdout = std::io::stdout().lock();
            writeln!(stdout, "listening on {bound}").context("writing to stdout")?;
            stdout.flush().context("flushing stdout")?;
        }
        serve(listener, config, signals.recv())
            .await
            .context("serving")
    });
    // Dropping a runtime waits for every blocking task, and a /memory request can outlast
    // the grace period: past it, the process exits and the kernel reclaims the rest.
    runtime.shutdown_timeout(RUNTIME_SHUTDOWN_TIMEOUT);
    served?;
    tracing::info!("stopped");
    Ok(())
}

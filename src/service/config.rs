//! The service's configuration: every cap, budget and timeout, settable by command-line flag
//! or environment variable (`ISOBENCH_*`), with defaults that keep a 2-core, 24 GiB host
//! safe however the endpoints are called.

use std::net::IpAddr;
use std::time::Duration;

/// Default `/cpu` size: about one millisecond of trial division in release mode on the
/// development host (see [`super::work`]).
pub const DEFAULT_CPU_N: u64 = 50_000;
/// Default cap on `n`: about half a second of work per task on the development host.
pub const DEFAULT_MAX_CPU_N: u64 = 5_000_000;
/// Default `/memory` size in MiB.
pub const DEFAULT_MEMORY_MB: u64 = 64;
/// Default cap on one `/memory` request, MiB.
pub const DEFAULT_MAX_MEMORY_MB: u64 = 1024;
/// Default budget for all concurrent `/memory` requests together, MiB.
pub const DEFAULT_MEMORY_BUDGET_MB: u64 = 2048;
/// Default number of `/parallel` tasks.
pub const DEFAULT_PARALLEL_TASKS: u64 = 8;
/// Default cap on `/parallel` tasks per request.
pub const DEFAULT_MAX_PARALLEL_TASKS: u64 = 64;
/// Default number of CPU tasks (`/cpu` requests and `/parallel` tasks) admitted at once.
pub const DEFAULT_MAX_CPU_JOBS: u64 = 128;
/// Default per-request timeout, milliseconds.
pub const DEFAULT_REQUEST_TIMEOUT_MS: u64 = 30_000;
/// Default limit on the request target (path and query), bytes.
pub const DEFAULT_MAX_URI_BYTES: u64 = 8 * 1024;
/// Default limit on all request header names and values together, bytes.
pub const DEFAULT_MAX_HEADER_BYTES: u64 = 16 * 1024;
/// Default time in-flight requests get to finish after SIGTERM/SIGINT, milliseconds.
pub const DEFAULT_SHUTDOWN_GRACE_MS: u64 = 5_000;

/// Caps, budgets and timeouts of the service. Every numeric query parameter has a cap here.
#[derive(Debug, Clone, PartialEq, Eq, clap::Args)]
pub struct Config {
    /// `/cpu` and `/parallel`: `n` when the query does not give one.
    #[arg(long, env = "ISOBENCH_DEFAULT_CPU_N", default_value_t = DEFAULT_CPU_N)]
    pub default_cpu_n: u64,
    /// `/cpu` and `/parallel`: largest accepted `n`.
    #[arg(long, env = "ISOBENCH_MAX_CPU_N", default_value_t = DEFAULT_MAX_CPU_N)]
    pub max_cpu_n: u64,
    /// `/memory`: `mb` when the query does not give one (MiB).
    #[arg(long, env = "ISOBENCH_DEFAULT_MEMORY_MB", default_value_t = DEFAULT_MEMORY_MB)]
    pub default_memory_mb: u64,
    /// `/memory`: largest accepted `mb` (MiB).
    #[arg(long, env = "ISOBENCH_MAX_MEMORY_MB", default_value_t = DEFAULT_MAX_MEMORY_MB)]
    pub max_memory_mb: u64,
    /// `/memory`: MiB all concurrent requests may hold together; beyond it, 503.
    #[arg(long, env = "ISOBENCH_MEMORY_BUDGET_MB", default_value_t = DEFAULT_MEMORY_BUDGET_MB)]
    pub memory_budget_mb: u64,
    /// `/parallel`: `tasks` when the query does not give one.
    #[arg(long, env = "ISOBENCH_DEFAULT_PARALLEL_TASKS", default_value_t = DEFAULT_PARALLEL_TASKS)]
    pub default_parallel_tasks: u64,
    /// `/parallel`: largest accepted `tasks`.
    #[arg(long, env = "ISOBENCH_MAX_PARALLEL_TASKS", default_value_t = DEFAULT_MAX_PARALLEL_TASKS)]
    pub max_parallel_tasks: u64,
    /// CPU tasks admitted at once (a `/cpu` request is one, a `/parallel` request one per
    /// task); beyond it, 503.
    #[arg(long, env = "ISOBENCH_MAX_CPU_JOBS", default_value_t = DEFAULT_MAX_CPU_JOBS)]
    pub max_cpu_jobs: u64,
    /// Per-request timeout (milliseconds); a request that takes longer gets a JSON 504.
    #[arg(long, env = "ISOBENCH_REQUEST_TIMEOUT_MS", default_value_t = DEFAULT_REQUEST_TIMEOUT_MS)]
    pub request_timeout_ms: u64,
    /// Longest accepted request target (path and query, bytes); longer gets a JSON 414.
    #[arg(long, env = "ISOBENCH_MAX_URI_BYTES", default_value_t = DEFAULT_MAX_URI_BYTES)]
    pub max_uri_bytes: u64,
    /// Largest accepted request headers (names and values together, bytes); larger gets a
    /// JSON 431.
    #[arg(long, env = "ISOBENCH_MAX_HEADER_BYTES", default_value_t = DEFAULT_MAX_HEADER_BYTES)]
    pub max_header_bytes: u64,
    /// How long in-flight requests may run on after SIGTERM/SIGINT (milliseconds).
    #[arg(long, env = "ISOBENCH_SHUTDOWN_GRACE_MS", default_value_t = DEFAULT_SHUTDOWN_GRACE_MS)]
    pub shutdown_grace_ms: u64,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            default_cpu_n: DEFAULT_CPU_N,
            max_cpu_n: DEFAULT_MAX_CPU_N,
            default_memory_mb: DEFAULT_MEMORY_MB,
            max_memory_mb: DEFAULT_MAX_MEMORY_MB,
            memory_budget_mb: DEFAULT_MEMORY_BUDGET_MB,
            default_parallel_tasks: DEFAULT_PARALLEL_TASKS,
            max_parallel_tasks: DEFAULT_MAX_PARALLEL_TASKS,
            max_cpu_jobs: DEFAULT_MAX_CPU_JOBS,
            request_timeout_ms: DEFAULT_REQUEST_TIMEOUT_MS,
            max_uri_bytes: DEFAULT_MAX_URI_BYTES,
            max_header_bytes: DEFAULT_MAX_HEADER_BYTES,
            shutdown_grace_ms: DEFAULT_SHUTDOWN_GRACE_MS,
        }
    }
}

/// A configuration that contradicts itself.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid configuration: {0}")]
pub struct ConfigError(String);

/// Largest memory budget accepted, MiB: the semaphore counts permits in `u32`, and more
/// than 1 TiB is a typo on any host this runs on.
const MAX_MEMORY_BUDGET_MB: u64 = 1 << 20;
/// Largest CPU-job count accepted: the semaphore counts permits in `u32`.
const MAX_CPU_JOBS: u64 = 1 << 20;

impl Config {
    /// Checks that defaults lie within caps, caps within budgets, and nothing is zero that
    /// must not be.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let fail = |message: String| Err(ConfigError(message));
        let at_least_one = [
            ("default-cpu-n", self.default_cpu_n),
            ("default-memory-mb", self.default_memory_mb),
            ("default-parallel-tasks", self.default_parallel_tasks),
            ("max-cpu-jobs", self.max_cpu_jobs),
            ("request-timeout-ms", self.request_timeout_ms),
            ("max-uri-bytes", self.max_uri_bytes),
            ("max-header-bytes", self.max_header_bytes),
        ];
        for (name, value) in at_least_one {
            if value == 0 {
                return fail(format!("--{name} must be at least 1"));
            }
        }
        let ordered = [
            (
                "default-cpu-n",
                self.default_cpu_n,
                "max-cpu-n",
                self.max_cpu_n,
            ),
            (
                "default-memory-mb",
                self.default_memory_mb,
                "max-memory-mb",
                self.max_memory_mb,
            ),
            (
                "max-memory-mb",
                self.max_memory_mb,
                "memory-budget-mb",
                self.memory_budget_mb,
            ),
            (
                "memory-budget-mb",
                self.memory_budget_mb,
                "(limit)",
                MAX_MEMORY_BUDGET_MB,
            ),
            (
                "default-parallel-tasks",
                self.default_parallel_tasks,
                "max-parallel-tasks",
                self.max_parallel_tasks,
            ),
            (
                "max-parallel-tasks",
                self.max_parallel_tasks,
                "max-cpu-jobs",
                self.max_cpu_jobs,
            ),
            ("max-cpu-jobs", self.max_cpu_jobs, "(limit)", MAX_CPU_JOBS),
        ];
        for (small, small_value, large, large_value) in ordered {
            if small_value > large_value {
                return fail(format!(
                    "--{small} ({small_value}) must not exceed --{large} ({large_value})"
                ));
            }
        }
        Ok(())
    }

    /// The per-request timeout.
    pub fn request_timeout(&self) -> Duration {
        Duration::from_millis(self.request_timeout_ms)
    }

    /// How long in-flight requests may run on after a shutdown signal.
    pub fn shutdown_grace(&self) -> Duration {
        Duration::from_millis(self.shutdown_grace_ms)
    }
}

/// Command-line arguments of `isobench-server`.
#[derive(Debug, Clone, clap::Parser)]
#[command(
    name = "isobench-server",
    version,
    about = "The service under test: /health, /cpu, /memory, /parallel and /status as JSON."
)]
pub struct Args {
    /// TCP port to listen on; 0 picks a free one (printed on stdout).
    #[arg(long, env = "ISOBENCH_PORT", default_value_t = 8080)]
    pub port: u16,
    /// Address to listen on.
    #[arg(long, env = "ISOBENCH_BIND", default_value = "0.0.0.0")]
    pub bind: IpAddr,
    /// Caps, budgets and timeouts.
    #[command(flatten)]
    pub config: Config,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[test]
    fn defaults_are_valid_and_match_clap() {
        Config::default().validate().unwrap();
        let args = Args::try_parse_from(["isobench-server"]).unwrap();
        assert_eq!(args.config, Config::default());
        assert_eq!(args.port, 8080);
        assert_eq!(args.bind.to_string(), "0.0.0.0");
    }

    #[test]
    fn flags_override_defaults() {
        let args = Args::try_parse_from([
            "isobench-server",
            "--port",
            "0",
            "--bind",
            "127.0.0.1",
            "--max-memory-mb",
            "16",
        ])
        .unwrap();
        assert_eq!(args.port, 0);
        assert_eq!(args.config.max_memory_mb, 16);
    }

    #[test]
    fn contradictions_are_rejected() {
        let config = Config {
            max_memory_mb: 4096,
            ..Config::default()
        };
        let error = config.validate().unwrap_err().to_string();
        assert!(error.contains("max-memory-mb"), "{error}");
        let config = Config {
            request_timeout_ms: 0,
            ..Config::default()
        };
        assert!(config.validate().is_err());
        let config = Config {
            default_cpu_n: 10,
            max_cpu_n: 5,
            ..Config::default()
        };
        assert!(config.validate().is_err());
    }
}

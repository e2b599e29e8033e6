//! The service's configuration: every cap, budget and timeout, settable by command-line flag
//! or environment variable (`ISOBENCH_*`), with defaults that keep a 2-core, 24 GiB host
//! safe however the endpoints are called.
//!
//! The `/memory` caps are not fixed: [`Args::resolve`] derives them from the memory limit
//! read at startup ([`super::memory_limit`]), so that whatever the service accepts fits in
//! the memory it has.

use std::net::IpAddr;
use std::time::Duration;

use super::memory_limit::{self, LimitSource, MemoryCaps, MemoryLimit};

/// Default `/cpu` size: about one millisecond of trial division in release mode on the
/// development host (see [`super::work`]).
pub const DEFAULT_CPU_N: u64 = 50_000;
/// Default cap on `n`: about half a second of work per task on the development host.
pub const DEFAULT_MAX_CPU_N: u64 = 5_000_000;
/// Default `/memory` size in MiB.
pub const DEFAULT_MEMORY_MB: u64 = 64;
/// The memory limit [`Config::default`] assumes, MiB: isobench's budget for every
/// environment (1 GiB). A running server reads its real limit instead ([`Args::resolve`]).
pub const DEFAULT_MEMORY_LIMIT_MB: u64 = 1024;
/// Cap on one `/memory` request under [`DEFAULT_MEMORY_LIMIT_MB`], MiB.
pub const DEFAULT_MAX_MEMORY_MB: u64 = 768;
/// Budget of all concurrent `/memory` requests under [`DEFAULT_MEMORY_LIMIT_MB`], MiB.
pub const DEFAULT_MEMORY_BUDGET_MB: u64 = 768;
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
/// Default `/syscalls` count.
pub const DEFAULT_SYSCALLS_N: u64 = 1_000;
/// Default cap on `/syscalls` `n`: about four seconds under gVisor's ptrace platform (some
/// 40 µs a call), well inside the request timeout.
pub const DEFAULT_MAX_SYSCALLS_N: u64 = 100_000;
/// Default `/files` size, KiB.
pub const DEFAULT_FILE_KB: u64 = 64;
/// Default cap on `/files` `kb`: a request holds the bytes twice (written and read back).
pub const DEFAULT_MAX_FILE_KB: u64 = 4_096;
/// Default number of `/files` requests in flight at once; beyond it, 503.
pub const DEFAULT_MAX_FILES_IN_FLIGHT: u64 = 16;
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
    /// `/memory`: largest accepted `mb` (MiB); set by [`Args::resolve`] from the memory
    /// limit or `--max-memory-mb`.
    #[arg(skip = DEFAULT_MAX_MEMORY_MB)]
    pub max_memory_mb: u64,
    /// `/memory`: MiB all concurrent requests may hold together; beyond it, 503. Set by
    /// [`Args::resolve`] from the memory limit or `--memory-budget-mb`.
    #[arg(skip = DEFAULT_MEMORY_BUDGET_MB)]
    pub memory_budget_mb: u64,
    /// The memory limit the `/memory` caps were derived from (reported by `/status`).
    #[arg(skip = MemoryLimit { limit_mb: DEFAULT_MEMORY_LIMIT_MB, source: LimitSource::Default })]
    pub memory_limit: MemoryLimit,
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
    /// `/syscalls`: `n` when the query does not give one.
    #[arg(long, env = "ISOBENCH_DEFAULT_SYSCALLS_N", default_value_t = DEFAULT_SYSCALLS_N)]
    pub default_syscalls_n: u64,
    /// `/syscalls`: largest accepted `n`.
    #[arg(long, env = "ISOBENCH_MAX_SYSCALLS_N", default_value_t = DEFAULT_MAX_SYSCALLS_N)]
    pub max_syscalls_n: u64,
    /// `/files`: the directory its files go to; without one, `/files` answers 503.
    #[arg(long, env = "ISOBENCH_DATA_DIR")]
    pub data_dir: Option<std::path::PathBuf>,
    /// `/files`: `kb` when the query does not give one.
    #[arg(long, env = "ISOBENCH_DEFAULT_FILE_KB", default_value_t = DEFAULT_FILE_KB)]
    pub default_file_kb: u64,
    /// `/files`: largest accepted `kb`.
    #[arg(long, env = "ISOBENCH_MAX_FILE_KB", default_value_t = DEFAULT_MAX_FILE_KB)]
    pub max_file_kb: u64,
    /// `/files` requests admitted at once; beyond it, 503.
    #[arg(long, env = "ISOBENCH_MAX_FILES_IN_FLIGHT", default_value_t = DEFAULT_MAX_FILES_IN_FLIGHT)]
    pub max_files_in_flight: u64,
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
            memory_limit: MemoryLimit {
                limit_mb: DEFAULT_MEMORY_LIMIT_MB,
                source: LimitSource::Default,
            },
            default_parallel_tasks: DEFAULT_PARALLEL_TASKS,
            max_parallel_tasks: DEFAULT_MAX_PARALLEL_TASKS,
            max_cpu_jobs: DEFAULT_MAX_CPU_JOBS,
            request_timeout_ms: DEFAULT_REQUEST_TIMEOUT_MS,
            max_uri_bytes: DEFAULT_MAX_URI_BYTES,
            max_header_bytes: DEFAULT_MAX_HEADER_BYTES,
            shutdown_grace_ms: DEFAULT_SHUTDOWN_GRACE_MS,
            default_syscalls_n: DEFAULT_SYSCALLS_N,
            max_syscalls_n: DEFAULT_MAX_SYSCALLS_N,
            data_dir: None,
            default_file_kb: DEFAULT_FILE_KB,
            max_file_kb: DEFAULT_MAX_FILE_KB,
            max_files_in_flight: DEFAULT_MAX_FILES_IN_FLIGHT,
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
/// Largest `/files` size accepted, KiB: a request holds its bytes twice in memory.
const MAX_FILE_KB: u64 = 256 * 1024;
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
            ("default-syscalls-n", self.default_syscalls_n),
            ("max-files-in-flight", self.max_files_in_flight),
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
            (
                "default-syscalls-n",
                self.default_syscalls_n,
                "max-syscalls-n",
                self.max_syscalls_n,
            ),
            (
                "default-file-kb",
                self.default_file_kb,
                "max-file-kb",
                self.max_file_kb,
            ),
            ("max-file-kb", self.max_file_kb, "(limit)", MAX_FILE_KB),
            (
                "max-files-in-flight",
                self.max_files_in_flight,
                "(limit)",
                MAX_CPU_JOBS,
            ),
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

/// How the `/memory` caps are set: from the memory limit unless given outright.
#[derive(Debug, Clone, PartialEq, Eq, clap::Args)]
pub struct MemoryArgs {
    /// Memory the service may use, MiB; the `/memory` caps are derived from it, keeping a
    /// quarter (at least 64 MiB) as headroom. Default: the smallest of the cgroup memory
    /// limits and the machine's MemTotal, read at startup.
    #[arg(long, env = "ISOBENCH_MEMORY_LIMIT_MB")]
    pub memory_limit_mb: Option<u64>,
    /// `/memory`: largest accepted `mb` (MiB) [default: the whole budget].
    #[arg(long, env = "ISOBENCH_MAX_MEMORY_MB")]
    pub max_memory_mb: Option<u64>,
    /// `/memory`: MiB all concurrent requests may hold together; beyond it, 503 [default:
    /// the memory limit minus the headroom; more is refused].
    #[arg(long, env = "ISOBENCH_MEMORY_BUDGET_MB")]
    pub memory_budget_mb: Option<u64>,
}

/// Command-line arguments of `isobench-server`.
#[derive(Debug, Clone, clap::Parser)]
#[command(
    name = "isobench-server",
    version,
    about = "The service under test: /health, /cpu, /memory, /hold, /parallel, /status, /syscalls and /files as JSON."
)]
pub struct Args {
    /// TCP port to listen on; 0 picks a free one (printed on stdout).
    #[arg(long, env = "ISOBENCH_PORT", default_value_t = 8080)]
    pub port: u16,
    /// Address to listen on.
    #[arg(long, env = "ISOBENCH_BIND", default_value = "0.0.0.0")]
    pub bind: IpAddr,
    /// The memory limit and the `/memory` caps.
    #[command(flatten)]
    pub memory: MemoryArgs,
    /// Caps, budgets and timeouts.
    #[command(flatten)]
    pub config: Config,
}

impl Args {
    /// The configuration to serve with: the `/memory` caps derived from the memory limit
    /// (explicit, else read from this machine), or the explicit caps when they fit in it;
    /// then validated.
    pub fn resolve(&self) -> Result<Config, ConfigError> {
        self.resolve_with(memory_limit::detect)
    }

    /// [`Args::resolve`] with the machine's limit read by `detect` (tests pass a fixed one).
    pub fn resolve_with(
        &self,
        detect: impl FnOnce() -> std::io::Result<MemoryLimit>,
    ) -> Result<Config, ConfigError> {
        let limit = match self.memory.memory_limit_mb {
            Some(limit_mb) => MemoryLimit {
                limit_mb,
                source: LimitSource::Explicit,
            },
            None => detect().map_err(|error| {
                ConfigError(format!(
                    "cannot read the memory limit ({error}); pass --memory-limit-mb"
                ))
            })?,
        };
        let caps = MemoryCaps::for_limit(limit.limit_mb)
            .map_err(|error| ConfigError(format!("--memory-limit-mb: {error}")))?;
        let budget_mb = self.memory.memory_budget_mb.unwrap_or(caps.budget_mb);
        if budget_mb > caps.budget_mb {
            return Err(ConfigError(format!(
                "--memory-budget-mb ({budget_mb}) must not exceed {} MiB: the memory limit \
                 ({} MiB, {:?}) minus {} MiB headroom",
                caps.budget_mb,
                limit.limit_mb,
                limit.source,
                MemoryCaps::headroom_mb(limit.limit_mb)
            )));
        }
        let max_memory_mb = self
            .memory
            .max_memory_mb
            .unwrap_or(caps.max_request_mb.min(budget_mb));
        let config = Config {
            max_memory_mb,
            memory_budget_mb: budget_mb,
            memory_limit: limit,
            // A default above a small limit's cap would make a plain `/memory` a 400.
            default_memory_mb: self.config.default_memory_mb.min(max_memory_mb.max(1)),
            ..self.config.clone()
        };
        config.validate()?;
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn fixed_limit(limit_mb: u64) -> impl FnOnce() -> std::io::Result<MemoryLimit> {
        move || {
            Ok(MemoryLimit {
                limit_mb,
                source: LimitSource::MemTotal,
            })
        }
    }

    #[test]
    fn defaults_are_valid_and_match_clap() {
        Config::default().validate().unwrap();
        let args = Args::try_parse_from(["isobench-server"]).unwrap();
        let resolved = args
            .resolve_with(fixed_limit(DEFAULT_MEMORY_LIMIT_MB))
            .unwrap();
        assert_eq!(
            resolved,
            Config {
                memory_limit: MemoryLimit {
                    limit_mb: DEFAULT_MEMORY_LIMIT_MB,
                    source: LimitSource::MemTotal
                },
                ..Config::default()
            }
        );
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
        let config = args.resolve_with(fixed_limit(1024)).unwrap();
        assert_eq!(config.max_memory_mb, 16);
        assert_eq!(config.memory_budget_mb, 768);
    }

    #[test]
    fn caps_follow_the_memory_limit() {
        let args = Args::try_parse_from(["isobench-server"]).unwrap();
        // A 24 GiB host: 18 GiB for /memory.
        let config = args.resolve_with(fixed_limit(24 * 1024)).unwrap();
        assert_eq!(
            (config.max_memory_mb, config.memory_budget_mb),
            (18432, 18432)
        );
        // A 128 MiB container: 64 MiB, and the default request shrinks to fit.
        let config = args.resolve_with(fixed_limit(128)).unwrap();
        assert_eq!((config.max_memory_mb, config.memory_budget_mb), (64, 64));
        assert_eq!(config.default_memory_mb, 64);
        let config = args.resolve_with(fixed_limit(100)).unwrap();
        assert_eq!(config.max_memory_mb, 36);
        assert_eq!(config.default_memory_mb, 36);
        // Too small for anything.
        let error = args.resolve_with(fixed_limit(50)).unwrap_err().to_string();
        assert!(error.contains("leaves nothing"), "{error}");
        // The explicit limit beats the machine's.
        let args = Args::try_parse_from(["isobench-server", "--memory-limit-mb", "1024"]).unwrap();
        let config = args.resolve_with(fixed_limit(24 * 1024)).unwrap();
        assert_eq!(config.memory_limit.source, LimitSource::Explicit);
        assert_eq!(config.memory_budget_mb, 768);
        // So does an unreadable machine not matter then, and matters otherwise.
        let unreadable = || Err(std::io::Error::other("no /proc"));
        assert!(args.resolve_with(unreadable).is_ok());
        let args = Args::try_parse_from(["isobench-server"]).unwrap();
        let error = args.resolve_with(unreadable).unwrap_err().to_string();
        assert!(error.contains("--memory-limit-mb"), "{error}");
    }

    #[test]
    fn an_explicit_budget_beyond_the_limit_is_refused() {
        let args = Args::try_parse_from([
            "isobench-server",
            "--memory-limit-mb",
            "1024",
            "--memory-budget-mb",
            "2048",
        ])
        .unwrap();
        let error = args.resolve_with(fixed_limit(1)).unwrap_err().to_string();
        assert!(error.contains("--memory-budget-mb (2048)"), "{error}");
        // A cap above an explicit budget is a contradiction, as before.
        let args = Args::try_parse_from([
            "isobench-server",
            "--max-memory-mb",
            "4096",
            "--memory-budget-mb",
            "1024",
        ])
        .unwrap();
        let error = args
            .resolve_with(fixed_limit(24 * 1024))
            .unwrap_err()
            .to_string();
        assert!(error.contains("max-memory-mb"), "{error}");
    }

    #[test]
    fn contradictions_are_rejected() {
        let config = Config {
            max_memory_mb: DEFAULT_MEMORY_BUDGET_MB + 1,
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

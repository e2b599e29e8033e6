//! The service under test: a small axum app with `/health`, `/cpu`, `/memory`, `/parallel`
//! and `/status` (and `/hold`, which keeps written memory for the memory measure's known
//! answers), answering JSON, with every input validated, every resource budgeted and
//! every failure a JSON error.
//!
//! [`app`] builds the router (tests drive it with `tower::ServiceExt::oneshot`); [`serve`]
//! runs it on a listener until a shutdown future resolves; [`run`] is the whole
//! `isobench-server` binary: runtime, signals, bind, serve. [`serve`] answers a plain
//! `GET /health` in front of the router ([`fast_health`]), because it is the throughput
//! probe; the answer is identical. [`detect::detect`] is the environment detection
//! `/status` reports, public so a harness can compare.
//!
//! | answer | when |
//! |---|---|
//! | 200 | valid request |
//! | 400 `{"error","param"}` | bad query: not a number, negative, zero, above the cap, overflowing, empty, unknown or repeated parameter, bad percent-encoding, not UTF-8 |
//! | 404 / 405 `{"error"}` | unknown path / method other than GET (and HEAD) |
//! | 414 / 431 `{"error"}` | target longer than `--max-uri-bytes` / headers larger than `--max-header-bytes` |
//! | 503 `{"error"}` | over the `/memory` (and `/hold`) MiB budget or the CPU-task limit (refused at once, never queued), or the allocator refused |
//! | 504 `{"error"}` | the request outlived `--request-timeout-ms` |
//! | 500 `{"error"}` | a panic in a handler or a CPU task (details only in the log) |
//!
//! Query strings are parsed strictly ([`query`]): unknown and repeated parameters are
//! rejected with a 400 naming them, like malformed values, so a typo never silently runs the
//! default. Requests hyper itself cannot parse (a malformed request line, a target over
//! 64 KiB, more than 100 headers, a head over about 400 KiB) are answered by hyper with a
//! bodiless 400/414/431 before they reach the router: answered, never dropped, but not JSON.

pub mod config;
pub mod detect;
pub mod endpoints;
pub mod error;
pub mod fast_health;
pub mod memory_limit;
pub mod middleware;
pub mod query;
pub mod scratch;
pub mod server;
pub mod state;
pub mod work;

use axum::Router;
use axum::routing::get;
use tower_http::catch_panic::CatchPanicLayer;

pub use config::{Args, Config};
pub use error::ApiError;
pub use server::{run, serve, shutdown_signal};

use middleware::Limits;
use state::AppState;

/// Builds the service's router for `config` (assumed valid: see [`Config::validate`]).
pub fn app(config: Config) -> Router {
    let limits = Limits {
        max_uri_bytes: config.max_uri_bytes,
        max_header_bytes: config.max_header_bytes,
        timeout: config.request_timeout(),
    };
    let routes = Router::new()
        .route("/health", get(endpoints::health::health))
        .route("/cpu", get(endpoints::cpu::cpu))
        .route("/memory", get(endpoints::memory::memory))
        .route("/hold", get(endpoints::hold::hold))
        .route("/parallel", get(endpoints::parallel::parallel))
        .route("/status", get(endpoints::status::status))
        .route("/syscalls", get(endpoints::syscalls::syscalls))
        .route("/files", get(endpoints::files::files))
        .with_state(AppState::new(config));
    with_layers(routes, limits)
}

/// Wraps `routes` in what every route gets: JSON 404/405, size limits, the timeout and
/// panic catching. Separate from [`app`] so tests can put a panicking route under the very
/// same layers.
fn with_layers(routes: Router, limits: Limits) -> Router {
    routes
        .fallback(middleware::not_found)
        .method_not_allowed_fallback(middleware::method_not_allowed)
        .layer(axum::middleware::from_fn_with_state(
            limits,
            middleware::guard,
        ))
        .layer(CatchPanicLayer::custom(middleware::panic_response))
}

#[cfg(test)]
mod tests;

//! The service under test: a small axum app with `/health`, `/cpu`, `/memory`, `/parallel`
//! and `/status`.

use axum::Router;

/// Service configuration: caps and timeouts.
#[derive(Debug, Clone, Default)]
pub struct Config {}

/// Builds the router.
pub fn app(config: Config) -> Router {
    let _ = config;
    Router::new()
}

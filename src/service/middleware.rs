//! What wraps every route: request-size limits and the per-request timeout (one small
//! middleware, so the hot `/health` path pays for a single layer), JSON answers for
//! unknown paths and methods, and panic catching that turns a handler panic into a JSON
//! 500 instead of a dropped connection.

use std::any::Any;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{Method, Uri};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::endpoints::panic_message;
use super::error::ApiError;

/// Limits checked before a request reaches its handler.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Longest accepted request target, bytes.
    pub max_uri_bytes: u64,
    /// Largest accepted header block (names and values), bytes.
    pub max_header_bytes: u64,
    /// Time a request may take.
    pub timeout: Duration,
}

/// Refuses over-long targets (414) and over-large headers (431), then runs the request
/// under the timeout (504 on expiry). hyper's own, larger limits (about 400 KiB of head)
/// still apply before this.
pub async fn guard(State(limits): State<Limits>, request: Request, next: Next) -> Response {
    let uri_bytes = request
        .uri()
        .path_and_query()
        .map_or(0, |target| target.as_str().len());
    if uri_bytes as u64 > limits.max_uri_bytes {
        return ApiError::UriTooLong {
            bytes: uri_bytes,
            limit: limits.max_uri_bytes,
        }
        .into_response();
    }
    let header_bytes: usize = request
        .headers()
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len())
        .sum();
    if header_bytes as u64 > limits.max_header_bytes {
        return ApiError::HeadersTooLarge {
            bytes: header_bytes,
            limit: limits.max_header_bytes,
        }
        .into_response();
    }
    match tokio::time::timeout(limits.timeout, next.run(request)).await {
        Ok(response) => response,
        Err(_) => ApiError::Timeout {
            timeout_ms: u64::try_from(limits.timeout.as_millis()).unwrap_or(u64::MAX),
        }
        .into_response(),
    }
}

/// The longest path echoed back in a 404.
const PATH_ECHO_MAX_BYTES: usize = 128;

/// 404 for any path the router does not know.
pub async fn not_found(uri: Uri) -> ApiError {
    let path = uri.path();
    let mut end = path.len().min(PATH_ECHO_MAX_BYTES);
    // Paths are ASCII on the wire, but stay on a char boundary whatever hyper hands over.
    while !path.is_char_boundary(end) {
        end -= 1;
    }
    ApiError::NotFound {
        path: path[..end].to_owned(),
    }
}

/// 405 for a known path asked with a method it does not answer.
pub async fn method_not_allowed(method: Method) -> ApiError {
    let mut name = method.as_str().to_owned();
    name.truncate(32);
    ApiError::MethodNotAllowed { method: name }
}

/// Turns a caught panic into a JSON 500 (the message goes to the log only).
pub fn panic_response(panic: Box<dyn Any + Send + 'static>) -> Response {
    ApiError::Internal(format!(
        "handler panicked: {}",
        panic_message(panic.as_ref())
    ))
    .into_response()
}

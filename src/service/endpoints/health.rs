//! `GET /health`: the liveness and throughput probe. As cheap as axum allows: a static body
//! and a static header, no allocation of its own, no state, no query parsing unless a query
//! is present.

use axum::http::{HeaderValue, Uri, header};
use axum::response::{IntoResponse, Response};

use crate::service::error::ApiError;
use crate::service::query::parse_uints;

/// The exact body of a healthy answer.
pub const BODY: &str = r#"{"status":"ok"}"#;

/// Answers 200 `{"status":"ok"}`; a query string is rejected like on every other endpoint.
pub async fn health(uri: Uri) -> Result<Response, ApiError> {
    if uri.query().is_some() {
        parse_uints(uri.query(), &[])?;
    }
    Ok((
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        BODY,
    )
        .into_response())
}

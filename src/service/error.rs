//! The service's one error type: every failure becomes a JSON response with the right
//! status; internal details are logged and never sent to the client. (After axum's
//! `examples/error-handling`.)

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use super::query::QueryError;
use super::scratch::FileError;
use super::work::MemoryError;

/// Everything a request can fail with.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// A bad query parameter: 400 naming it.
    #[error(transparent)]
    Query(#[from] QueryError),
    /// No such path: 404.
    #[error("no such endpoint: {path}")]
    NotFound {
        /// The path asked for (shortened).
        path: String,
    },
    /// The path exists but not for this method: 405.
    #[error("method {method} not allowed (endpoints answer GET)")]
    MethodNotAllowed {
        /// The method used.
        method: String,
    },
    /// The request target is longer than the configured limit: 414.
    #[error("request target is {bytes} bytes, the limit is {limit}")]
    UriTooLong {
        /// Its length.
        bytes: usize,
        /// The configured limit.
        limit: u64,
    },
    /// The request headers are larger than the configured limit: 431.
    #[error("request headers are {bytes} bytes, the limit is {limit}")]
    HeadersTooLarge {
        /// Their size.
        bytes: usize,
        /// The configured limit.
        limit: u64,
    },
    /// Admitting the request would exceed a budget: 503.
    #[error("over capacity: {0}")]
    OverCapacity(String),
    /// The request took longer than the configured timeout: 504.
    #[error("request timed out after {timeout_ms} ms")]
    Timeout {
        /// The configured timeout.
        timeout_ms: u64,
    },
    /// `/memory` could not get its memory from the allocator: 503 (try a smaller `mb`).
    #[error(transparent)]
    Memory(#[from] MemoryError),
    /// `/files` could not use the data directory: 503 when it is missing, full or read-only
    /// (the client can do nothing but try elsewhere), 500 when the bytes came back wrong.
    #[error(transparent)]
    File(#[from] FileError),
    /// Anything else (a panic, a lost worker): 500, details only in the log.
    #[error("internal error: {0}")]
    Internal(String),
}

/// The JSON body of every error response.
#[derive(Debug, Serialize)]
struct ErrorBody {
    /// What went wrong, for a human.
    error: String,
    /// The query parameter at fault, for 400s about a parameter.
    #[serde(skip_serializing_if = "Option::is_none")]
    param: Option<String>,
}

impl ApiError {
    /// The HTTP status this error answers with.
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::Query(_) => StatusCode::BAD_REQUEST,
            ApiError::NotFound { .. } => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::UriTooLong { .. } => StatusCode::URI_TOO_LONG,
            ApiError::HeadersTooLarge { .. } => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            ApiError::OverCapacity(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Timeout { .. } => StatusCode::GATEWAY_TIMEOUT,
            ApiError::Memory(MemoryError::Alloc { .. }) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::File(FileError::Corrupt { .. }) => StatusCode::INTERNAL_SERVER_ERROR,
            ApiError::File(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Memory(MemoryError::Corrupt { .. }) | ApiError::Internal(_) => {
                StatusCode::INTERNAL_SERVER_ERROR
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let body = match self {
            ApiError::Query(error) => ErrorBody {
                error: error.to_string(),
                param: Some(error.param),
            },
            ApiError::Internal(_) | ApiError::Memory(MemoryError::Corrupt { .. }) => {
                // The details stay in the log: they may describe the server's internals.
                tracing::error!(error = %self, "request failed");
                ErrorBody {
                    error: "internal server error".to_owned(),
                    param: None,
                }
            }
            other => {
                tracing::debug!(error = %other, status = status.as_u16(), "request refused");
                ErrorBody {
                    error: other.to_string(),
                    param: None,
                }
            }
        };
        (status, Json(body)).into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::service::query::Problem;
    use http_body_util::BodyExt;

    async fn body_of(error: ApiError) -> (StatusCode, serde_json::Value) {
        let response = error.into_response();
        let status = response.status();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        (status, serde_json::from_slice(&bytes).unwrap())
    }

    #[tokio::test]
    async fn query_errors_name_the_parameter() {
        let (status, body) = body_of(ApiError::Query(QueryError {
            param: "n".into(),
            problem: Problem::Negative,
        }))
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(body["param"], "n");
        assert!(body["error"].as_str().unwrap().contains("negative"));
    }

    #[tokio::test]
    async fn internal_errors_hide_their_details() {
        let (status, body) = body_of(ApiError::Internal("secret path /x/y".into())).await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(body, serde_json::json!({"error": "internal server error"}));
    }
}

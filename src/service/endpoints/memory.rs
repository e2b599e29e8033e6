//! `GET /memory?mb=M`: allocates M MiB, writes every page, verifies, frees, and reports the
//! time of each step. Admitted against a global MiB budget so concurrent requests cannot
//! together exhaust the host.

use axum::Json;
use axum::extract::{RawQuery, State};
use serde::Serialize;

use super::{micros, on_blocking_pool};
use crate::service::error::ApiError;
use crate::service::query::{UintParam, parse_uints};
use crate::service::state::AppState;
use crate::service::work::{page_bytes, touch_memory};

/// Bytes in a MiB.
const MIB: u64 = 1024 * 1024;

/// The answer of `/memory`.
#[derive(Debug, Serialize)]
pub struct MemoryResponse {
    /// MiB allocated.
    pub mb: u64,
    /// Pages written and verified.
    pub pages_touched: u64,
    /// Size of a page, bytes.
    pub page_bytes: usize,
    /// Allocate + write + verify + free, microseconds.
    pub elapsed_us: u64,
    /// Reserving the memory, microseconds.
    pub alloc_us: u64,
    /// Writing every page (the page faults), microseconds.
    pub write_us: u64,
    /// Reading every page back, microseconds.
    pub verify_us: u64,
    /// Freeing, microseconds.
    pub free_us: u64,
}

/// Handles `/memory`.
pub async fn memory(
    State(state): State<AppState>,
    RawQuery(query): RawQuery,
) -> Result<Json<MemoryResponse>, ApiError> {
    let mb_param = UintParam {
        name: "mb",
        default: state.config().default_memory_mb,
        min: 1,
        max: state.config().max_memory_mb,
    };
    let [mb] = parse_uints(query.as_deref(), &[mb_param])?;
    let permit = state.admit_memory(mb)?;
    let page = page_bytes();
    let bytes = usize::try_from(mb.saturating_mul(MIB))
        .map_err(|_| ApiError::Internal(format!("{mb} MiB does not fit in usize")))?;
    let touch = on_blocking_pool(move || {
        let _permit = permit;
        touch_memory(bytes, page)
    })
    .await??;
    Ok(Json(MemoryResponse {
        mb,
        pages_touched: touch.pages_touched,
        page_bytes: page,
        elapsed_us: micros(touch.alloc + touch.write + touch.verify + touch.free),
        alloc_us: micros(touch.alloc),
        write_us: micros(touch.write),
        verify_us: micros(touch.verify),
        free_us: micros(touch.free),
    }))
}

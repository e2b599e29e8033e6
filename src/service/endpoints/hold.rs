//! `GET /hold?mb=M`: allocates M MiB, writes every byte, and keeps it until the next
//! `/hold` (`mb=0` releases it) or the service exits: a service whose footprint is known,
//! so that what isobench reads as the instance's memory can be checked against it in every
//! environment. The held MiB count against the same budget as `/memory`'s.

use axum::Json;
use axum::extract::{RawQuery, State};
use serde::Serialize;

use super::on_blocking_pool;
use crate::service::error::ApiError;
use crate::service::query::{UintParam, parse_uints};
use crate::service::state::{AppState, Held};
use crate::service::work::written_buffer;

/// Bytes in a MiB.
const MIB: u64 = 1024 * 1024;

/// The answer of `/hold`.
#[derive(Debug, Serialize)]
pub struct HoldResponse {
    /// MiB held now, every byte written.
    pub held_mb: u64,
    /// MiB released: what the previous `/hold` held.
    pub released_mb: u64,
}

/// Handles `/hold`.
pub async fn hold(
    State(state): State<AppState>,
    RawQuery(query): RawQuery,
) -> Result<Json<HoldResponse>, ApiError> {
    let mb_param = UintParam {
        name: "mb",
        default: 0,
        min: 0,
        max: state.config().max_memory_mb,
    };
    let [mb] = parse_uints(query.as_deref(), &[mb_param])?;
    // The old hold goes first, so holding M again in place of M fits the budget.
    let released_mb = state
        .replace_held(None)
        .map_or(0, |old| old.buffer.len() as u64 / MIB);
    if mb == 0 {
        return Ok(Json(HoldResponse {
            held_mb: 0,
            released_mb,
        }));
    }
    let permit = state.admit_memory(mb)?;
    let bytes = usize::try_from(mb.saturating_mul(MIB))
        .map_err(|_| ApiError::Internal(format!("{mb} MiB does not fit in usize")))?;
    let buffer = on_blocking_pool(move || written_buffer(bytes)).await??;
    state.replace_held(Some(Held { buffer, permit }));
    Ok(Json(HoldResponse {
        held_mb: mb,
        released_mb,
    }))
}

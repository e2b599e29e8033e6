//! `GET /files?kb=K&fsync=BOOL`: writes K KiB to a fresh file in the service's data
//! directory, fsyncs it when asked, reads it back, compares and removes it
//! ([`crate::service::scratch`]), on the thread that took the request (the runtime's other
//! work handed to another thread meanwhile). Bounded by a size cap and a number
//! of requests in flight; a missing, full or read-only data directory is a JSON 503.

use axum::Json;
use axum::extract::{RawQuery, State};
use serde::Serialize;

use super::{micros, on_this_thread};
use crate::service::error::ApiError;
use crate::service::query::{UintParam, parse_bool, parse_pairs, parse_uint};
use crate::service::scratch::{FileError, round_trip};
use crate::service::state::AppState;

/// The answer of `/files`.
#[derive(Debug, Serialize)]
pub struct FilesResponse {
    /// Bytes written and read back.
    pub bytes: u64,
    /// Whether the file was fsynced before it was read back.
    pub fsync: bool,
    /// Whether the bytes read back were those written (always true in a 200: a mismatch is
    /// a 500).
    pub verified: bool,
    /// Time to create and write the file, microseconds.
    pub write_us: u64,
    /// Time the fsync took, microseconds (0 without one).
    pub fsync_us: u64,
    /// Time to read back and compare, microseconds.
    pub read_us: u64,
    /// Time to remove the file, microseconds.
    pub remove_us: u64,
}

/// Handles `/files`.
pub async fn files(
    State(state): State<AppState>,
    RawQuery(query): RawQuery,
) -> Result<Json<FilesResponse>, ApiError> {
    let kb_param = UintParam {
        name: "kb",
        default: state.config().default_file_kb,
        min: 0,
        max: state.config().max_file_kb,
    };
    let [kb, fsync] = parse_pairs(query.as_deref(), &["kb", "fsync"])?;
    let kb = match kb {
        Some(value) => parse_uint(&kb_param, &value)?,
        None => kb_param.default,
    };
    let fsync = match fsync {
        Some(value) => parse_bool("fsync", &value)?,
        None => false,
    };
    let dir = state
        .config()
        .data_dir
        .clone()
        .ok_or(FileError::NoDataDir)?;
    let permit = state.admit_file()?;
    let bytes = usize::try_from(kb.saturating_mul(1024))
        .map_err(|_| ApiError::Internal(format!("{kb} KiB does not fit in usize")))?;
    let trip = on_this_thread(move || {
        let _permit = permit;
        round_trip(&dir, bytes, fsync)
    })
    .await??;
    Ok(Json(FilesResponse {
        bytes: trip.bytes,
        fsync,
        verified: true,
        write_us: micros(trip.write),
        fsync_us: micros(trip.fsync),
        read_us: micros(trip.read),
        remove_us: micros(trip.remove),
    }))
}

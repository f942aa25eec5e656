//! Repository maintenance: `repo/gc`, `repo/stat` and `repo/verify`.

use super::{blocking, ApiError, ApiState};
use crate::rpc::types::{GcResponse, RepoStatResponse, VerifyResponse};
use axum::extract::State;
use axum::Json;
use std::sync::Arc;

pub(super) async fn repo_gc(State(s): State<ApiState>) -> Result<Json<GcResponse>, ApiError> {
    // No add, pin or import runs while the collector decides what is live.
    let _guard = s.online.gc_lock().write().await;
    let node = Arc::clone(s.online.node());
    let r = blocking(move || node.gc()).await?;
    // What is gone is no longer answered for on the DHT.
    s.online.withdraw_stale().await;
    Ok(Json(GcResponse::from(&r)))
}

pub(super) async fn repo_stat(
    State(s): State<ApiState>,
) -> Result<Json<RepoStatResponse>, ApiError> {
    let node = Arc::clone(s.online.node());
    let st = blocking(move || node.stat()).await?;
    Ok(Json(RepoStatResponse::from(&st)))
}

pub(super) async fn repo_verify(
    State(s): State<ApiState>,
) -> Result<Json<VerifyResponse>, ApiError> {
    let node = Arc::clone(s.online.node());
    let r = blocking(move || node.verify(&mut |_| {})).await?;
    Ok(Json(VerifyResponse::from(&r)))
}

//! Repository maintenance: `repo/gc`, `repo/stat` and `repo/verify`; the
//! config as the daemon runs with it: `config/show` and `config KEY`
//! (read-only, secrets redacted).

use super::{bad_request, blocking, internal, ApiError, ApiState, Params};
use crate::rpc::types::{ConfigValue, GcResponse, RepoStatResponse, VerifyResponse};
use axum::extract::{RawQuery, State};
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

pub(super) async fn config_show(
    State(s): State<ApiState>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let v = s.online.node().config().redacted_json().map_err(internal)?;
    Ok(Json(v))
}

/// `config KEY`: one setting. Setting values over the API is refused:
/// cairn's config is `config.toml`, read at start.
pub(super) async fn config_get(
    State(s): State<ApiState>,
    RawQuery(q): RawQuery,
) -> Result<Json<ConfigValue>, ApiError> {
    let q = Params::parse(q);
    let args = q.all("arg");
    let key = match args.as_slice() {
        [] => return Err(bad_request("argument \"key\" is required")),
        [key] => key.to_string(),
        _ => {
            return Err(bad_request(
                "setting config values over the API is not supported: edit config.toml \
                 and restart the daemon",
            ))
        }
    };
    let value = s
        .online
        .node()
        .config()
        .redacted_value(&key)
        .map_err(internal)?
        .ok_or_else(|| {
            internal(format!(
                "failed to get config value: key has no attribute {key:?}"
            ))
        })?;
    Ok(Json(ConfigValue { key, value }))
}

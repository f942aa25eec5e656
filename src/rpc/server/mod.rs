//! The daemon's HTTP API server (axum): Kubo's `POST /api/v0/...` names,
//! parameters and response shapes (the bodies are [`super::types`]), so the
//! CLI and existing IPFS clients drive the node the same way. This module
//! holds what every handler shares (state, errors, parameters, JSON-lines
//! streaming) and the routes; each command group has its own file.
//!
//! Arguments come in the query string (`arg` may repeat, as in Kubo);
//! uploads (`add`, `block/put`, `dag/import`) are `multipart/form-data`.
//! Long operations stream JSON lines. Blocking work (store, hashing,
//! waiting on peers from the DAG reader) runs on blocking threads.

mod add;
mod blocks;
mod dag;
mod keys;
mod names;
mod network;
mod pins;
mod read;
mod repo;
pub mod upload;

use super::types::ErrorBody;
use crate::node::online::OnlineNode;
use crate::node::NodeError;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use bytes::Bytes;
use futures::StreamExt as _;
use serde::Serialize;
use std::sync::Arc;
use tokio::sync::mpsc;

/// What the handlers share.
#[derive(Clone)]
pub struct ApiState {
    /// The node the API drives.
    pub online: Arc<OnlineNode>,
    /// Asks the daemon to stop (`/api/v0/shutdown`).
    pub shutdown: mpsc::Sender<()>,
    /// Who may call (checked before any handler runs).
    pub guard: Arc<super::guard::ApiGuard>,
}

/// An error in Kubo's JSON shape.
#[derive(Debug)]
pub struct ApiError(pub(super) StatusCode, pub(super) String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        // Kubo: code 1 for the client's mistakes, 0 for the node's.
        let code = if self.0.is_client_error() { 1 } else { 0 };
        (self.0, Json(ErrorBody::new(code, self.1))).into_response()
    }
}

fn bad_request(msg: impl std::fmt::Display) -> ApiError {
    ApiError(StatusCode::BAD_REQUEST, msg.to_string())
}

fn internal(msg: impl std::fmt::Display) -> ApiError {
    ApiError(StatusCode::INTERNAL_SERVER_ERROR, msg.to_string())
}

fn node_err(e: NodeError) -> ApiError {
    match e {
        NodeError::Block(_)
        | NodeError::ImportOptions(_)
        | NodeError::Upload(_)
        | NodeError::NotPinned { .. }
        | NodeError::Config(_) => bad_request(e),
        NodeError::Key(ref k) if k.is_bad_request() => bad_request(e),
        NodeError::Ipns(ref i) if i.is_bad_request() => bad_request(e),
        other => internal(other),
    }
}

/// Runs blocking work on a blocking thread.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, NodeError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| internal(format!("worker thread: {e}")))?
        .map_err(node_err)
}

/// Query parameters; `arg` may repeat.
struct Params(Vec<(String, String)>);

impl Params {
    fn parse(raw: Option<String>) -> Params {
        Params(
            form_urlencoded::parse(raw.unwrap_or_default().as_bytes())
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect(),
        )
    }

    fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    fn all(&self, key: &str) -> Vec<&str> {
        self.0
            .iter()
            .filter(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    fn arg(&self) -> Result<&str, ApiError> {
        self.get("arg")
            .ok_or_else(|| bad_request("argument \"arg\" is required"))
    }

    /// The `arg` parameter as a `CID[/path]`, with its root CID.
    fn path_arg(&self) -> Result<(String, crate::block::Cid), ApiError> {
        let path = self.arg()?;
        let root = crate::block::parse_cid(path).map_err(bad_request)?;
        Ok((path.to_string(), root))
    }

    fn bool(&self, key: &str, default: bool) -> Result<bool, ApiError> {
        match self.get(key) {
            None => Ok(default),
            Some("" | "true" | "1") => Ok(true),
            Some("false" | "0") => Ok(false),
            Some(v) => Err(bad_request(format!(
                "{key}: expected true or false, not {v:?}"
            ))),
        }
    }

    fn num<T: std::str::FromStr>(&self, key: &str) -> Result<Option<T>, ApiError> {
        self.get(key)
            .map(|v| {
                v.parse()
                    .map_err(|_| bad_request(format!("{key}: not a valid number: {v:?}")))
            })
            .transpose()
    }
}

/// The routes, for `axum::serve`.
pub fn router(state: ApiState) -> Router {
    Router::new()
        .route("/api/v0/id", post(network::id))
        .route("/api/v0/version", post(network::version))
        .route("/api/v0/swarm/peers", post(network::swarm_peers))
        .route("/api/v0/swarm/connect", post(network::swarm_connect))
        .route("/api/v0/routing/findprovs", post(network::findprovs))
        .route("/api/v0/routing/reprovide", post(network::reprovide))
        .route("/api/v0/stats/bw", post(network::stats_bw))
        .route("/api/v0/bitswap/stat", post(network::bitswap_stat))
        .route("/api/v0/shutdown", post(shutdown))
        .route("/api/v0/add", post(add::add))
        .route("/api/v0/cat", post(read::cat))
        .route("/api/v0/get", post(read::get))
        .route("/api/v0/ls", post(read::ls))
        .route("/api/v0/pin/add", post(pins::pin_add))
        .route("/api/v0/pin/rm", post(pins::pin_rm))
        .route("/api/v0/pin/ls", post(pins::pin_ls))
        .route("/api/v0/pin/status", post(pins::pin_status))
        .route("/api/v0/block/get", post(blocks::block_get))
        .route("/api/v0/block/put", post(blocks::block_put))
        .route("/api/v0/block/stat", post(blocks::block_stat))
        .route("/api/v0/dag/export", post(dag::dag_export))
        .route("/api/v0/dag/import", post(dag::dag_import))
        .route("/api/v0/key/gen", post(keys::key_gen))
        .route("/api/v0/key/list", post(keys::key_list))
        .route("/api/v0/key/rm", post(keys::key_rm))
        .route("/api/v0/key/rename", post(keys::key_rename))
        .route("/api/v0/key/export", post(keys::key_export))
        .route("/api/v0/key/import", post(keys::key_import))
        .route("/api/v0/name/publish", post(names::name_publish))
        .route("/api/v0/name/resolve", post(names::name_resolve))
        .route("/api/v0/repo/gc", post(repo::repo_gc))
        .route("/api/v0/repo/stat", post(repo::repo_stat))
        .route("/api/v0/repo/verify", post(repo::repo_verify))
        .route("/metrics", axum::routing::get(metrics))
        .route("/debug/metrics/prometheus", axum::routing::get(metrics))
        // Uploads are streamed, never buffered whole: no body size limit.
        .layer(axum::extract::DefaultBodyLimit::disable())
        .layer(axum::middleware::from_fn_with_state(
            state.guard.clone(),
            super::guard::authorize,
        ))
        .layer(axum::middleware::from_fn_with_state(
            (state.online.request_counter(), "api"),
            crate::http::count_requests,
        ))
        .with_state(state)
}

/// Prometheus metrics: libp2p's and cairn's (`cairn_*`).
async fn metrics(State(s): State<ApiState>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        s.online.metrics_text(),
    )
        .into_response()
}

async fn shutdown(State(s): State<ApiState>) -> StatusCode {
    let _ = s.shutdown.send(()).await;
    StatusCode::OK
}

// ----- JSON-lines answers -----

/// One line of a JSON-lines answer: an item, or the error that ends it.
type Line<T> = Result<T, ErrorBody>;

/// A stream's error line (`Code` 0: the node failed).
fn stream_error(msg: impl std::fmt::Display) -> ErrorBody {
    ErrorBody::new(0, msg.to_string())
}

/// A line's bytes, newline included.
fn line_bytes<T: Serialize>(line: &Line<T>) -> Bytes {
    let text = match line {
        Ok(item) => serde_json::to_string(item),
        Err(e) => serde_json::to_string(e),
    };
    let mut text = text.unwrap_or_else(|e| {
        serde_json::to_string(&stream_error(format!("encoding the answer: {e}")))
            .unwrap_or_default()
    });
    text.push('\n');
    Bytes::from(text)
}

/// A 200 answer streaming `first`, then the lines from `rx`.
fn lines_body<T: Serialize + Send + 'static>(
    first: Option<Line<T>>,
    rx: mpsc::Receiver<Line<T>>,
) -> Response {
    let rest =
        futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|v| (v, rx)) });
    let stream = futures::stream::iter(first)
        .chain(rest)
        .map(|line| Ok::<_, std::io::Error>(line_bytes(&line)));
    (
        [(header::CONTENT_TYPE, "application/json")],
        axum::body::Body::from_stream(stream),
    )
        .into_response()
}

/// Streams JSON lines from `rx` as the response body.
fn json_lines<T: Serialize + Send + 'static>(rx: mpsc::Receiver<Line<T>>) -> Response {
    lines_body(None, rx)
}

/// Like [`json_lines`], but an error that comes before anything else is
/// answered as a plain error (status 500, or 400 for `Code` 1) instead of a
/// 200 stream that carries it, as Kubo does.
async fn json_lines_or_error<T: Serialize + Send + 'static>(
    mut rx: mpsc::Receiver<Line<T>>,
) -> Response {
    let first = rx.recv().await;
    if let Some(Err(e)) = &first {
        let status = if e.code == 1 {
            StatusCode::BAD_REQUEST
        } else {
            StatusCode::INTERNAL_SERVER_ERROR
        };
        return (status, Json(e.clone())).into_response();
    }
    lines_body(first, rx)
}

//! The daemon's HTTP API server (axum).

use crate::node::online::OnlineNode;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;
use std::sync::Arc;
use tokio::sync::mpsc;

/// What the handlers share.
#[derive(Clone)]
pub struct ApiState {
    pub online: Arc<OnlineNode>,
    /// Asks the daemon to stop (`/api/v0/shutdown`).
    pub shutdown: mpsc::Sender<()>,
}

/// An error in Kubo's JSON shape.
pub struct ApiError(StatusCode, String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({ "Message": self.1, "Code": 0, "Type": "error" });
        (self.0, Json(body)).into_response()
    }
}

fn bad_request(msg: impl std::fmt::Display) -> ApiError {
    ApiError(StatusCode::BAD_REQUEST, msg.to_string())
}

fn internal(msg: impl std::fmt::Display) -> ApiError {
    ApiError(StatusCode::INTERNAL_SERVER_ERROR, msg.to_string())
}

#[derive(Deserialize)]
struct Arg {
    arg: Option<String>,
    #[serde(rename = "num-providers")]
    num_providers: Option<usize>,
}

impl Arg {
    fn required(&self) -> Result<&str, ApiError> {
        self.arg
            .as_deref()
            .ok_or_else(|| bad_request("argument \"arg\" is required"))
    }
}

/// The routes, for `axum::serve`.
pub fn router(state: ApiState) -> Router {
    Router::new()
        .route("/api/v0/id", post(id))
        .route("/api/v0/version", post(version))
        .route("/api/v0/swarm/peers", post(swarm_peers))
        .route("/api/v0/swarm/connect", post(swarm_connect))
        .route("/api/v0/routing/findprovs", post(findprovs))
        .route("/api/v0/shutdown", post(shutdown))
        .route("/api/v0/cat", post(cat))
        .with_state(state)
}

async fn id(State(s): State<ApiState>) -> Result<Json<serde_json::Value>, ApiError> {
    let addrs = s
        .online
        .net()
        .swarm
        .listen_addrs()
        .await
        .map_err(internal)?;
    let addrs: Vec<String> = addrs.iter().map(|a| a.to_string()).collect();
    Ok(Json(s.online.node().id_json(&addrs).map_err(internal)?))
}

async fn version() -> Json<serde_json::Value> {
    Json(json!({ "Version": env!("CARGO_PKG_VERSION"), "System": std::env::consts::ARCH }))
}

async fn swarm_peers(State(s): State<ApiState>) -> Result<Json<serde_json::Value>, ApiError> {
    let peers = s.online.net().swarm.peer_addrs().await.map_err(internal)?;
    let list: Vec<_> = peers
        .into_iter()
        .map(|(p, a)| json!({ "Addr": a.to_string(), "Peer": p.to_string() }))
        .collect();
    Ok(Json(json!({ "Peers": list })))
}

async fn swarm_connect(
    State(s): State<ApiState>,
    Query(q): Query<Arg>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let addr: libp2p::Multiaddr = q
        .required()?
        .parse()
        .map_err(|e| bad_request(format!("invalid multiaddr: {e}")))?;
    let peer = s.online.net().swarm.dial(addr).await.map_err(internal)?;
    Ok(Json(
        json!({ "Strings": [format!("connect {peer} success")] }),
    ))
}

async fn findprovs(State(s): State<ApiState>, Query(q): Query<Arg>) -> Result<String, ApiError> {
    let cid = crate::block::parse_cid(q.required()?).map_err(bad_request)?;
    let limit = q.num_providers.unwrap_or(20).clamp(1, 1000);
    let providers = s
        .online
        .net()
        .swarm
        .find_providers(cid, limit)
        .await
        .map_err(internal)?;
    // Kubo streams routing events, one JSON object a line; Type 4 = Provider.
    let mut out = String::new();
    for p in providers {
        let ev = json!({ "Extra": "", "ID": "", "Responses": [{ "Addrs": [], "ID": p.to_string() }], "Type": 4 });
        out.push_str(&ev.to_string());
        out.push('\n');
    }
    Ok(out)
}

#[derive(Deserialize)]
struct CatArgs {
    arg: Option<String>,
    offset: Option<u64>,
    length: Option<u64>,
}

async fn cat(State(s): State<ApiState>, Query(q): Query<CatArgs>) -> Result<Response, ApiError> {
    let path = q
        .arg
        .ok_or_else(|| bad_request("argument \"arg\" is required"))?;
    crate::block::parse_cid(&path).map_err(bad_request)?;
    let (reader, _session) = s
        .online
        .cat(&path, q.offset.unwrap_or(0), q.length)
        .await
        .map_err(internal)?;
    Ok(stream_reader(reader))
}

/// Streams a file reader (blocking: disk, hashing, waiting for peers) from a
/// blocking thread through a small channel into a response body.
fn stream_reader(reader: crate::dag::reader::FileReader) -> Response {
    let (tx, rx) = mpsc::channel::<Result<bytes::Bytes, std::io::Error>>(8);
    tokio::task::spawn_blocking(move || {
        for chunk in reader {
            if tx
                .blocking_send(chunk.map_err(std::io::Error::other))
                .is_err()
            {
                return;
            }
        }
    });
    let stream =
        futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|c| (c, rx)) });
    axum::body::Body::from_stream(stream).into_response()
}

async fn shutdown(State(s): State<ApiState>) -> StatusCode {
    let _ = s.shutdown.send(()).await;
    StatusCode::OK
}

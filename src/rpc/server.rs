//! The daemon's HTTP API server (axum).

use crate::net::Network;
use crate::node::Node;
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
    pub node: Arc<Node>,
    pub net: Arc<Network>,
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
    let addrs = s.net.swarm.listen_addrs().await.map_err(internal)?;
    let addrs: Vec<String> = addrs.iter().map(|a| a.to_string()).collect();
    Ok(Json(s.node.id_json(&addrs).map_err(internal)?))
}

async fn version() -> Json<serde_json::Value> {
    Json(json!({ "Version": env!("CARGO_PKG_VERSION"), "System": std::env::consts::ARCH }))
}

async fn swarm_peers(State(s): State<ApiState>) -> Result<Json<serde_json::Value>, ApiError> {
    let peers = s.net.swarm.peer_addrs().await.map_err(internal)?;
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
    let peer = s.net.swarm.dial(addr).await.map_err(internal)?;
    Ok(Json(
        json!({ "Strings": [format!("connect {peer} success")] }),
    ))
}

async fn findprovs(State(s): State<ApiState>, Query(q): Query<Arg>) -> Result<String, ApiError> {
    let cid = crate::block::parse_cid(q.required()?).map_err(bad_request)?;
    let limit = q.num_providers.unwrap_or(20).clamp(1, 1000);
    let providers = s
        .net
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

/// How long a fetch from the network may take before the request fails.
const FETCH_DEADLINE: std::time::Duration = std::time::Duration::from_secs(600);

/// Makes the whole DAG under `root` local, fetching what is missing from
/// connected peers and DHT providers; then announces this node as a
/// provider of `root`.
async fn ensure_local(s: &ApiState, root: crate::block::Cid) -> Result<(), ApiError> {
    let node = s.node.clone();
    let complete = tokio::task::spawn_blocking(move || node.has_dag(&root))
        .await
        .map_err(internal)?
        .map_err(internal)?;
    if complete {
        return Ok(());
    }
    let mut peers = s.net.swarm.peers().await.map_err(internal)?;
    if let Ok(found) = s.net.swarm.find_providers(root, 20).await {
        for p in found {
            if !peers.contains(&p) && p != s.net.peer_id {
                peers.push(p);
            }
        }
    }
    if peers.is_empty() {
        return Err(internal(format!(
            "{root} is not local and no peer is known to have it"
        )));
    }
    s.net
        .bitswap
        .fetch_dag(
            root,
            &peers,
            Default::default(),
            FETCH_DEADLINE,
            &mut |_| {},
        )
        .await
        .map_err(internal)?;
    if let Err(e) = s.net.swarm.provide(root).await {
        tracing::debug!(%root, "provide after fetch: {e}");
    }
    Ok(())
}

async fn cat(State(s): State<ApiState>, Query(q): Query<CatArgs>) -> Result<Response, ApiError> {
    let path = q
        .arg
        .ok_or_else(|| bad_request("argument \"arg\" is required"))?;
    let root = crate::block::parse_cid(&path).map_err(bad_request)?;
    ensure_local(&s, root).await?;
    // Reading is blocking work (disk, hashing): a blocking thread streams
    // chunks through a small channel into the response body.
    let (tx, rx) = mpsc::channel::<Result<bytes::Bytes, std::io::Error>>(8);
    let node = s.node.clone();
    let (offset, length) = (q.offset.unwrap_or(0), q.length);
    let reader = tokio::task::spawn_blocking(move || node.cat(&path, offset, length))
        .await
        .map_err(internal)?
        .map_err(internal)?;
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
    Ok(axum::body::Body::from_stream(stream).into_response())
}

async fn shutdown(State(s): State<ApiState>) -> StatusCode {
    let _ = s.shutdown.send(()).await;
    StatusCode::OK
}

//! The daemon's HTTP API server (axum): Kubo's `POST /api/v0/...` names,
//! parameters and response shapes, so the CLI and existing IPFS clients
//! drive the node the same way.
//!
//! Arguments come in the query string (`arg` may repeat, as in Kubo);
//! uploads (`add`, `block/put`, `dag/import`) are `multipart/form-data`.
//! Long operations stream JSON lines. Blocking work (store, hashing,
//! waiting on peers from the DAG reader) runs on blocking threads.

use crate::block::{parse_cid, Cid, CidFormat, HashAlg, DAG_PB, RAW};
use crate::dag::reader::ReadOptions;
use crate::dag::BlockSource;
use crate::http::stream_blocking;
use crate::node::online::OnlineNode;
use crate::node::{AddInput, AddOptions, NodeError};
use axum::extract::{Multipart, RawQuery, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use bytes::Bytes;
use serde_json::{json, Value};
use std::sync::Arc;
use tokio::sync::mpsc;

/// What the handlers share.
#[derive(Clone)]
pub struct ApiState {
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
        let body = json!({ "Message": self.1, "Code": code, "Type": "error" });
        (self.0, Json(body)).into_response()
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
        .route("/api/v0/id", post(id))
        .route("/api/v0/version", post(version))
        .route("/api/v0/swarm/peers", post(swarm_peers))
        .route("/api/v0/swarm/connect", post(swarm_connect))
        .route("/api/v0/routing/findprovs", post(findprovs))
        .route("/api/v0/routing/reprovide", post(reprovide))
        .route("/api/v0/stats/bw", post(stats_bw))
        .route("/api/v0/bitswap/stat", post(bitswap_stat))
        .route("/api/v0/shutdown", post(shutdown))
        .route("/api/v0/add", post(add))
        .route("/api/v0/cat", post(cat))
        .route("/api/v0/get", post(get))
        .route("/api/v0/ls", post(ls))
        .route("/api/v0/pin/add", post(pin_add))
        .route("/api/v0/pin/rm", post(pin_rm))
        .route("/api/v0/pin/ls", post(pin_ls))
        .route("/api/v0/pin/status", post(pin_status))
        .route("/api/v0/block/get", post(block_get))
        .route("/api/v0/block/put", post(block_put))
        .route("/api/v0/block/stat", post(block_stat))
        .route("/api/v0/dag/export", post(dag_export))
        .route("/api/v0/dag/import", post(dag_import))
        .route("/api/v0/repo/gc", post(repo_gc))
        .route("/api/v0/repo/stat", post(repo_stat))
        .route("/api/v0/repo/verify", post(repo_verify))
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

// ----- node and network -----

async fn id(State(s): State<ApiState>) -> Result<Json<Value>, ApiError> {
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

async fn version() -> Json<Value> {
    Json(json!({
        "Version": env!("CARGO_PKG_VERSION"),
        "Commit": "",
        "Repo": "cairn-1",
        "System": format!("{}/{}", std::env::consts::ARCH, std::env::consts::OS),
        "Golang": "",
    }))
}

async fn swarm_peers(State(s): State<ApiState>) -> Result<Json<Value>, ApiError> {
    let peers = s.online.net().swarm.peer_addrs().await.map_err(internal)?;
    let list: Vec<_> = peers
        .into_iter()
        .map(|(p, a)| json!({ "Addr": a.to_string(), "Peer": p.to_string() }))
        .collect();
    Ok(Json(json!({ "Peers": list })))
}

async fn swarm_connect(
    State(s): State<ApiState>,
    RawQuery(q): RawQuery,
) -> Result<Json<Value>, ApiError> {
    let q = Params::parse(q);
    let mut lines = Vec::new();
    for a in q.all("arg") {
        let addr: libp2p::Multiaddr = a
            .parse()
            .map_err(|e| bad_request(format!("invalid multiaddr {a:?}: {e}")))?;
        let peer = s.online.net().swarm.dial(addr).await.map_err(internal)?;
        lines.push(format!("connect {peer} success"));
    }
    if lines.is_empty() {
        return Err(bad_request("argument \"arg\" is required"));
    }
    Ok(Json(json!({ "Strings": lines })))
}

async fn findprovs(State(s): State<ApiState>, RawQuery(q): RawQuery) -> Result<String, ApiError> {
    let q = Params::parse(q);
    let cid = parse_cid(q.arg()?).map_err(bad_request)?;
    let limit = q
        .num::<usize>("num-providers")?
        .unwrap_or(20)
        .clamp(1, 1000);
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

async fn reprovide(State(s): State<ApiState>) -> Result<Json<Value>, ApiError> {
    let keys = s
        .online
        .provider()
        .reprovide()
        .await
        .ok_or_else(|| internal("the provider has stopped"))?;
    let st = &s.online.provider().stats;
    use std::sync::atomic::Ordering::Relaxed;
    Ok(Json(json!({
        "Keys": keys,
        "Provided": st.provided.load(Relaxed),
        "Failed": st.failed.load(Relaxed),
    })))
}

async fn stats_bw(State(s): State<ApiState>) -> Json<Value> {
    let bw = s.online.net().bandwidth();
    let (rate_in, rate_out) = s.online.bandwidth_rates();
    Json(json!({
        "TotalIn": bw.total_in,
        "TotalOut": bw.total_out,
        "RateIn": rate_in,
        "RateOut": rate_out,
    }))
}

async fn bitswap_stat(State(s): State<ApiState>) -> Result<Json<Value>, ApiError> {
    let st = s.online.net().bitswap.stats();
    let peers = s.online.net().swarm.peers().await.map_err(internal)?;
    Ok(Json(json!({
        "BlocksReceived": st.blocks_received,
        "DataReceived": st.bytes_received,
        "BlocksSent": st.blocks_sent,
        "DataSent": st.bytes_sent,
        "Peers": peers.iter().map(|p| p.to_string()).collect::<Vec<_>>(),
        "ActiveSessions": st.active_sessions,
        "SessionPeers": st.session_peers,
        // cairn's: each running fetch, for progress bars.
        "Sessions": st.sessions.iter().map(|x| json!({
            "Root": x.root.map(|c| c.to_string()),
            "Peers": x.peers,
            "Senders": x.senders,
            "Blocks": x.blocks,
            "Bytes": x.bytes,
        })).collect::<Vec<_>>(),
    })))
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

// ----- reading -----

/// Streams JSON lines from `rx` as the response body.
fn json_lines(rx: mpsc::Receiver<Value>) -> Response {
    let stream = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|v| {
            let mut line = v.to_string();
            line.push('\n');
            (Ok::<_, std::io::Error>(Bytes::from(line)), rx)
        })
    });
    (
        [(header::CONTENT_TYPE, "application/json")],
        axum::body::Body::from_stream(stream),
    )
        .into_response()
}

/// Like [`json_lines`], but an error that comes before anything else is
/// answered as a plain error (status 500, or 400 for a bad upload) instead of
/// a 200 stream that carries it, as Kubo does.
async fn json_lines_or_error(mut rx: mpsc::Receiver<Value>) -> Response {
    let first = rx.recv().await;
    if let Some(v) = &first {
        if v["Type"] == "error" {
            let status = if v["Code"] == 1 {
                StatusCode::BAD_REQUEST
            } else {
                StatusCode::INTERNAL_SERVER_ERROR
            };
            return (status, Json(v.clone())).into_response();
        }
    }
    let (tx, rest) = mpsc::channel(1);
    if let Some(v) = first {
        let _ = tx.send(v).await;
    }
    drop(tx);
    let head = futures::stream::unfold(
        rest,
        |mut rx| async move { rx.recv().await.map(|v| (v, rx)) },
    );
    let tail =
        futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|v| (v, rx)) });
    let stream = futures::StreamExt::map(futures::StreamExt::chain(head, tail), |v: Value| {
        let mut line = v.to_string();
        line.push('\n');
        Ok::<_, std::io::Error>(Bytes::from(line))
    });
    (
        [(header::CONTENT_TYPE, "application/json")],
        axum::body::Body::from_stream(stream),
    )
        .into_response()
}

fn stream_error(msg: impl std::fmt::Display) -> Value {
    json!({ "Message": msg.to_string(), "Code": 0, "Type": "error" })
}

async fn cat(State(s): State<ApiState>, RawQuery(q): RawQuery) -> Result<Response, ApiError> {
    let q = Params::parse(q);
    let path = q.arg()?.to_string();
    parse_cid(&path).map_err(bad_request)?;
    let offset = q.num::<u64>("offset")?.unwrap_or(0);
    let length = q.num::<u64>("length")?;
    let (reader, session) = s
        .online
        .cat(&path, offset, length)
        .await
        .map_err(node_err)?;
    let online = Arc::clone(&s.online);
    Ok(stream_blocking("application/octet-stream", move |out| {
        for chunk in reader {
            let chunk = chunk.map_err(|e| e.to_string())?;
            out.send(chunk).map_err(|e| e.to_string())?;
        }
        drop(session);
        drop(online);
        Ok(())
    }))
}

async fn get(State(s): State<ApiState>, RawQuery(q): RawQuery) -> Result<Response, ApiError> {
    let q = Params::parse(q);
    let path = q.arg()?.to_string();
    let root = parse_cid(&path).map_err(bad_request)?;
    let cid = s.online.resolve(&path).await.map_err(node_err)?;
    let name = if cid == root {
        root.to_string()
    } else {
        path.trim_end_matches('/')
            .rsplit('/')
            .next()
            .unwrap_or("out")
            .to_string()
    };
    let session = s.online.session(Some(cid)).await.map_err(node_err)?;
    let source: Arc<dyn BlockSource> = Arc::new(session);
    let online = Arc::clone(&s.online);
    Ok(stream_blocking("application/x-tar", move |out| {
        let opts = ReadOptions {
            window: 64,
            ..ReadOptions::default()
        };
        crate::dag::reader::export_tar(&source, cid, &name, opts, out)
            .map_err(|e| e.to_string())?;
        drop(online);
        Ok(())
    }))
}

async fn ls(State(s): State<ApiState>, RawQuery(q): RawQuery) -> Result<Json<Value>, ApiError> {
    let q = Params::parse(q);
    let mut objects = Vec::new();
    for path in q.all("arg") {
        parse_cid(path).map_err(bad_request)?;
        let cid = s.online.resolve(path).await.map_err(node_err)?;
        let session = s.online.session(Some(cid)).await.map_err(node_err)?;
        let entries = blocking(move || Ok(crate::dag::reader::list(&session, &cid)?)).await?;
        let links: Vec<Value> = entries
            .iter()
            .map(|e| {
                let kind = match e.kind {
                    "directory" | "sharded directory" => 1,
                    "symlink" => 4,
                    _ => 2,
                };
                // Kubo reports the file size; directories have none.
                let size = if kind == 1 { 0 } else { e.size };
                json!({ "Name": e.name, "Hash": e.cid.to_string(), "Size": size, "Type": kind, "Target": "" })
            })
            .collect();
        objects.push(json!({ "Hash": path, "Links": links }));
    }
    if objects.is_empty() {
        return Err(bad_request("argument \"arg\" is required"));
    }
    Ok(Json(json!({ "Objects": objects })))
}

// ----- adding -----

/// A file part's bytes, fed from the async request to the blocking builder.
struct PartReader {
    rx: mpsc::Receiver<Result<Bytes, String>>,
    current: Bytes,
}

impl std::io::Read for PartReader {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        while self.current.is_empty() {
            match self.rx.blocking_recv() {
                Some(Ok(b)) => self.current = b,
                Some(Err(e)) => return Err(std::io::Error::other(e)),
                None => return Ok(0),
            }
        }
        let n = out.len().min(self.current.len());
        out[..n].copy_from_slice(&self.current[..n]);
        let _ = self.current.split_to(n);
        Ok(n)
    }
}

/// Import options from Kubo's `add` parameters.
fn add_options(s: &ApiState, q: &Params) -> Result<AddOptions, ApiError> {
    let mut import = s
        .online
        .node()
        .config()
        .import
        .options()
        .map_err(internal)?;
    if let Some(v) = q.num::<u8>("cid-version")? {
        if v > 1 {
            return Err(bad_request(format!("unknown CID version {v}")));
        }
        import.format.version = v;
        import.raw_leaves = v == 1;
        if v == 0 {
            import.format.hash = HashAlg::Sha2_256;
        }
    }
    if let Some(h) = q.get("hash") {
        let h: HashAlg = h.parse().map_err(bad_request)?;
        if import.format.version == 0 && h != HashAlg::Sha2_256 {
            import.format.version = 1;
            import.raw_leaves = true;
        }
        import.format.hash = h;
    }
    if let Some(c) = q.get("chunker") {
        import.chunker = c.parse().map_err(bad_request)?;
    }
    if q.get("raw-leaves").is_some() {
        import.raw_leaves = q.bool("raw-leaves", true)?;
    }
    if let Some(m) = q.num::<usize>("max-links")? {
        import.max_links = m;
    }
    if let Some(l) = q.get("layout") {
        import.layout = l.parse().map_err(bad_request)?;
    }
    if q.bool("trickle", false)? {
        import.layout = crate::dag::builder::Layout::Trickle;
    }
    if let Some(t) = q.num::<u64>("shard-threshold")? {
        import.sharding.threshold_bytes = t;
    }
    match q.get("shard-estimate") {
        None => {}
        Some("links") => import.sharding.estimate = crate::dag::hamt::SizeEstimate::Links,
        Some("block") => import.sharding.estimate = crate::dag::hamt::SizeEstimate::Block,
        Some(other) => {
            return Err(bad_request(format!(
                "shard-estimate: expected links or block, not {other:?}"
            )))
        }
    }
    import.validate().map_err(bad_request)?;
    Ok(AddOptions {
        import,
        pin: q.bool("pin", true)?,
        only_hash: q.bool("only-hash", false)?,
        hidden: true,
        wrap: q.bool("wrap-with-directory", false)?,
    })
}

/// The path a multipart part names (Kubo's clients URL-escape it).
fn part_path(field: &axum::extract::multipart::Field<'_>) -> Result<String, ApiError> {
    let raw = field
        .file_name()
        .or(field.name())
        .ok_or_else(|| bad_request("a multipart part has no file name"))?;
    // Kubo's clients escape names as query strings: `+` is a space.
    let plus = raw.replace('+', " ");
    let decoded = percent_encoding::percent_decode_str(&plus)
        .decode_utf8()
        .map_err(|_| bad_request(format!("part name {raw:?} is not UTF-8")))?;
    Ok(decoded.trim_matches('/').to_string())
}

async fn add(
    State(s): State<ApiState>,
    RawQuery(q): RawQuery,
    mut multipart: Multipart,
) -> Result<Response, ApiError> {
    let q = Params::parse(q);
    let opts = add_options(&s, &q)?;
    let progress = q.bool("progress", false)?;
    let (entries_tx, entries_rx) = std::sync::mpsc::sync_channel::<Result<AddInput, NodeError>>(1);
    let (out_tx, out_rx) = mpsc::channel::<Value>(64);
    let guard = s.online.gc_lock().clone().read_owned().await;
    // The builder runs on a blocking thread and pulls entries as they come.
    let node = Arc::clone(s.online.node());
    let builder_out = out_tx.clone();
    let builder = tokio::task::spawn_blocking(move || {
        let mut next = || entries_rx.recv().ok();
        let mut last_progress = 0u64;
        let result = node.add_entries(
            &mut next,
            &opts,
            &mut |e| {
                // Kubo's Size: the cumulative DAG size, as a string.
                let _ = builder_out.blocking_send(json!({
                    "Name": e.name,
                    "Hash": e.cid.to_string(),
                    "Size": e.dag_size.to_string(),
                }));
            },
            // The provider lists the blocks itself once the add is done.
            &mut |_| {},
            &mut |name, n, done| {
                // As Kubo: every 256 KiB of a file, and once at its end.
                if progress && (done || n >= last_progress + PROGRESS_STEP_BYTES) {
                    last_progress = if done { 0 } else { n };
                    let _ = builder_out.blocking_send(json!({ "Name": name, "Bytes": n }));
                }
            },
        );
        (result, opts)
    });
    let online = Arc::clone(&s.online);
    tokio::spawn(async move {
        // Feed parts to the builder, each file's bytes through a channel.
        let mut failure = None;
        loop {
            let field = match multipart.next_field().await {
                Ok(Some(f)) => f,
                Ok(None) => break,
                Err(e) => {
                    failure = Some(format!("reading the upload: {e}"));
                    break;
                }
            };
            let path = match part_path(&field) {
                Ok(p) => p,
                Err(e) => {
                    failure = Some(e.1);
                    break;
                }
            };
            let kind = field.content_type().unwrap_or("").to_string();
            let input = match kind.as_str() {
                "application/x-directory" => Some(AddInput::Directory { path }),
                "application/symlink" => {
                    let mut field = field;
                    let mut target = Vec::new();
                    while let Ok(Some(chunk)) = field.chunk().await {
                        target.extend_from_slice(&chunk);
                        if target.len() > 4096 {
                            break;
                        }
                    }
                    match String::from_utf8(target) {
                        Ok(target) if target.len() <= 4096 => {
                            Some(AddInput::Symlink { path, target })
                        }
                        _ => {
                            failure = Some(format!("{path}: symlink target is not valid"));
                            break;
                        }
                    }
                }
                _ => {
                    let (tx, rx) = mpsc::channel(16);
                    let reader = PartReader {
                        rx,
                        current: Bytes::new(),
                    };
                    let entry = AddInput::File {
                        path,
                        reader: Box::new(reader),
                    };
                    let tx_entries = entries_tx.clone();
                    let sent = tokio::task::spawn_blocking(move || tx_entries.send(Ok(entry)))
                        .await
                        .map(|r| r.is_ok())
                        .unwrap_or(false);
                    if !sent {
                        break;
                    }
                    let mut field = field;
                    loop {
                        match field.chunk().await {
                            Ok(Some(chunk)) => {
                                if tx.send(Ok(chunk)).await.is_err() {
                                    break;
                                }
                            }
                            Ok(None) => break,
                            Err(e) => {
                                let _ = tx.send(Err(format!("reading the upload: {e}"))).await;
                                break;
                            }
                        }
                    }
                    None
                }
            };
            if let Some(entry) = input {
                let tx_entries = entries_tx.clone();
                let sent = tokio::task::spawn_blocking(move || tx_entries.send(Ok(entry)))
                    .await
                    .map(|r| r.is_ok())
                    .unwrap_or(false);
                if !sent {
                    break;
                }
            }
        }
        if let Some(f) = failure {
            let tx_entries = entries_tx.clone();
            let _ = tokio::task::spawn_blocking(move || {
                tx_entries.send(Err(NodeError::Upload(f.into())))
            })
            .await;
        }
        drop(entries_tx);
        let (result, opts) = match builder.await {
            Ok(r) => r,
            Err(e) => {
                let _ = out_tx.send(stream_error(format!("add failed: {e}"))).await;
                return;
            }
        };
        drop(guard);
        match result {
            Ok(roots) => {
                if !opts.only_hash {
                    let pin = opts.pin.then_some(crate::store::PinKind::Recursive);
                    for r in &roots {
                        online.announce_added(r.cid, pin).await;
                    }
                }
            }
            Err(e) => {
                let _ = out_tx.send(stream_error(e)).await;
            }
        }
    });
    Ok(json_lines_or_error(out_rx).await)
}

/// Progress lines every this many bytes of a file (Kubo's step).
const PROGRESS_STEP_BYTES: u64 = 256 * 1024;

// ----- pins -----

async fn pin_add(State(s): State<ApiState>, RawQuery(q): RawQuery) -> Result<Response, ApiError> {
    let q = Params::parse(q);
    let recursive = q.bool("recursive", true)?;
    let progress = q.bool("progress", false)?;
    // cairn's extension: keep this many copies on live nodes.
    let replication = q.num::<u8>("replication")?;
    if replication.is_some() && !recursive {
        return Err(bad_request("replication needs a recursive pin"));
    }
    let paths: Vec<String> = q.all("arg").iter().map(|a| a.to_string()).collect();
    if paths.is_empty() {
        return Err(bad_request("argument \"arg\" is required"));
    }
    let mut cids = Vec::new();
    for p in &paths {
        parse_cid(p).map_err(bad_request)?;
        cids.push(s.online.resolve(p).await.map_err(node_err)?);
    }
    let (tx, rx) = mpsc::channel::<Value>(64);
    let online = Arc::clone(&s.online);
    tokio::spawn(async move {
        let _guard = online.gc_lock().read().await;
        let mut done = Vec::new();
        for cid in cids {
            let tx2 = tx.clone();
            let mut last = 0u64;
            let result = online
                .pin_add(cid, recursive, &mut |st| {
                    if progress && st.blocks >= last + 64 {
                        last = st.blocks;
                        let _ = tx2.try_send(json!({ "Progress": st.blocks }));
                    }
                })
                .await;
            let result = match (result, replication) {
                (Ok(()), Some(factor)) => online
                    .replicator()
                    .pin(cid, Some(factor))
                    .await
                    .map(|_| ())
                    .map_err(|e| e.to_string()),
                (r, _) => r.map_err(|e| e.to_string()),
            };
            match result {
                Ok(()) => done.push(cid.to_string()),
                Err(e) => {
                    let _ = tx.send(stream_error(format!("pinning {cid}: {e}"))).await;
                    return;
                }
            }
        }
        let _ = tx.send(json!({ "Pins": done })).await;
    });
    Ok(json_lines(rx))
}

async fn pin_rm(State(s): State<ApiState>, RawQuery(q): RawQuery) -> Result<Json<Value>, ApiError> {
    let q = Params::parse(q);
    let mut removed = Vec::new();
    for p in q.all("arg") {
        parse_cid(p).map_err(bad_request)?;
        let node = Arc::clone(s.online.node());
        let p = p.to_string();
        let cid = blocking(move || node.resolve(&p)).await?;
        // A replicated root is removed network-wide (a tombstone).
        let replicated = s.online.replicator().unpin(&cid).await;
        let node = Arc::clone(s.online.node());
        let unpinned = blocking(move || node.pin_rm(&cid).map(|_| ())).await;
        if let Err(e) = unpinned {
            if !replicated {
                return Err(e);
            }
        }
        removed.push(cid.to_string());
    }
    if removed.is_empty() {
        return Err(bad_request("argument \"arg\" is required"));
    }
    s.online.withdraw_stale().await;
    Ok(Json(json!({ "Pins": removed })))
}

async fn pin_ls(State(s): State<ApiState>, RawQuery(q): RawQuery) -> Result<Json<Value>, ApiError> {
    let q = Params::parse(q);
    let kind = q.get("type").unwrap_or("all").to_string();
    let kinds: Vec<&'static str> = match kind.as_str() {
        "all" => vec!["recursive", "direct", "indirect"],
        "recursive" => vec!["recursive"],
        "direct" => vec!["direct"],
        "indirect" => vec!["indirect"],
        other => {
            return Err(bad_request(format!(
                "unknown pin type {other:?} (expected all, recursive, direct or indirect)"
            )))
        }
    };
    let node = Arc::clone(s.online.node());
    let pins = blocking(move || node.pin_ls(&kinds)).await?;
    let wanted: Vec<Cid> = q
        .all("arg")
        .iter()
        .map(|a| parse_cid(a).map_err(bad_request))
        .collect::<Result<_, _>>()?;
    // Kubo answers a map; `Order` keeps cairn's listing order for the CLI.
    let mut keys = serde_json::Map::new();
    let mut order = Vec::new();
    for p in pins {
        if !wanted.is_empty() && !wanted.contains(&p.cid) {
            continue;
        }
        keys.insert(p.cid.to_string(), json!({ "Type": p.kind }));
        order.push(json!([p.cid.to_string(), p.kind]));
    }
    // As Kubo: asking about something that is not pinned is an error.
    if let Some(c) = wanted.iter().find(|c| !keys.contains_key(&c.to_string())) {
        return Err(internal(format!("path '{c}' is not pinned")));
    }
    Ok(Json(json!({ "Keys": keys, "Order": order })))
}

/// `pin status`: every holder of a replicated root with its state, and the
/// root's overall state (probed now).
async fn pin_status(
    State(s): State<ApiState>,
    RawQuery(q): RawQuery,
) -> Result<Json<Value>, ApiError> {
    let q = Params::parse(q);
    let cid = parse_cid(q.arg()?).map_err(bad_request)?;
    let st = s
        .online
        .replicator()
        .status(&cid)
        .await
        .map_err(|e| match e {
            crate::replicate::ReplicateError::Unknown { .. } => bad_request(e),
            other => internal(other),
        })?;
    let holders: Vec<Value> = st
        .holders
        .iter()
        .map(|h| json!({ "peer": h.peer.to_string(), "state": h.state.as_str(), "since": h.since }))
        .collect();
    Ok(Json(json!({
        "cid": cid.to_string(),
        "factor": st.record.factor,
        "max": st.record.max,
        "removed": st.record.removed,
        "state": if st.record.removed { "removed" } else { st.state.as_str() },
        "holders": holders,
    })))
}

// ----- blocks -----

async fn block_get(State(s): State<ApiState>, RawQuery(q): RawQuery) -> Result<Response, ApiError> {
    let q = Params::parse(q);
    let cid = parse_cid(q.arg()?).map_err(bad_request)?;
    let session = s.online.session(Some(cid)).await.map_err(node_err)?;
    let block = session.get(cid).await.map_err(|e| node_err(e.into()))?;
    Ok((
        [(header::CONTENT_TYPE, "application/octet-stream")],
        block.data().clone(),
    )
        .into_response())
}

async fn block_stat(
    State(s): State<ApiState>,
    RawQuery(q): RawQuery,
) -> Result<Json<Value>, ApiError> {
    let q = Params::parse(q);
    let cid = parse_cid(q.arg()?).map_err(bad_request)?;
    let session = s.online.session(Some(cid)).await.map_err(node_err)?;
    let block = session.get(cid).await.map_err(|e| node_err(e.into()))?;
    Ok(Json(
        json!({ "Key": cid.to_string(), "Size": block.data().len() }),
    ))
}

/// The first part of a multipart upload, read whole up to `limit` bytes.
async fn first_part(multipart: &mut Multipart, limit: usize) -> Result<Vec<u8>, ApiError> {
    let mut field = multipart
        .next_field()
        .await
        .map_err(|e| bad_request(format!("reading the upload: {e}")))?
        .ok_or_else(|| bad_request("the upload holds no file"))?;
    let mut data = Vec::new();
    while let Some(chunk) = field
        .chunk()
        .await
        .map_err(|e| bad_request(format!("reading the upload: {e}")))?
    {
        if data.len() + chunk.len() > limit {
            return Err(bad_request(format!("block over the {limit}-byte limit")));
        }
        data.extend_from_slice(&chunk);
    }
    Ok(data)
}

async fn block_put(
    State(s): State<ApiState>,
    RawQuery(q): RawQuery,
    mut multipart: Multipart,
) -> Result<Json<Value>, ApiError> {
    let q = Params::parse(q);
    let codec = match q.get("cid-codec").unwrap_or("raw") {
        "raw" => RAW,
        "dag-pb" => DAG_PB,
        other => {
            return Err(bad_request(format!(
                "unsupported codec {other:?} (expected raw or dag-pb)"
            )))
        }
    };
    let hash: HashAlg = q
        .get("mhtype")
        .unwrap_or("sha2-256")
        .parse()
        .map_err(bad_request)?;
    let pin = q.bool("pin", false)?;
    let data = first_part(&mut multipart, crate::block::MAX_BLOCK_BYTES).await?;
    let size = data.len();
    let version = if codec == DAG_PB && hash == HashAlg::Sha2_256 {
        0
    } else {
        1
    };
    let node = Arc::clone(s.online.node());
    let cid =
        blocking(move || node.block_put(data, CidFormat { version, hash }, codec, pin)).await?;
    s.online.announce_block(cid, pin).await;
    Ok(Json(json!({ "Key": cid.to_string(), "Size": size })))
}

// ----- CAR -----

async fn dag_export(
    State(s): State<ApiState>,
    RawQuery(q): RawQuery,
) -> Result<Response, ApiError> {
    let q = Params::parse(q);
    let path = q.arg()?.to_string();
    parse_cid(&path).map_err(bad_request)?;
    let cid = s.online.resolve(&path).await.map_err(node_err)?;
    // Make the DAG local first: a CAR is written in walk order.
    s.online
        .fetch_dag(cid, None, &mut |_| {})
        .await
        .map_err(node_err)?;
    let node = Arc::clone(s.online.node());
    Ok(stream_blocking("application/vnd.ipld.car", move |out| {
        node.dag_export(&cid, out).map_err(|e| e.to_string())?;
        Ok(())
    }))
}

async fn dag_import(
    State(s): State<ApiState>,
    RawQuery(q): RawQuery,
    mut multipart: Multipart,
) -> Result<Response, ApiError> {
    let q = Params::parse(q);
    let pin_roots = q.bool("pin-roots", true)?;
    let (tx, rx) = mpsc::channel::<Value>(16);
    let online = Arc::clone(&s.online);
    tokio::spawn(async move {
        let _guard = online.gc_lock().read().await;
        loop {
            let field = match multipart.next_field().await {
                Ok(Some(f)) => f,
                Ok(None) => break,
                Err(e) => {
                    let _ = tx
                        .send(stream_error(format!("reading the upload: {e}")))
                        .await;
                    return;
                }
            };
            let (ctx, crx) = mpsc::channel(16);
            let reader = PartReader {
                rx: crx,
                current: Bytes::new(),
            };
            let node = Arc::clone(online.node());
            let import = tokio::task::spawn_blocking(move || node.dag_import(reader, pin_roots));
            let mut field = field;
            loop {
                match field.chunk().await {
                    Ok(Some(chunk)) => {
                        if ctx.send(Ok(chunk)).await.is_err() {
                            break;
                        }
                    }
                    Ok(None) => break,
                    Err(e) => {
                        let _ = ctx.send(Err(format!("reading the upload: {e}"))).await;
                        break;
                    }
                }
            }
            drop(ctx);
            match import.await {
                Ok(Ok(r)) => {
                    for root in &r.roots {
                        let pin = pin_roots.then_some(crate::store::PinKind::Recursive);
                        online.announce_added(*root, pin).await;
                        let _ = tx
                            .send(json!({ "Root": { "Cid": { "/": root.to_string() }, "PinErrorMsg": "" } }))
                            .await;
                    }
                    let _ = tx
                        .send(json!({ "Stats": { "BlockCount": r.blocks, "BlockBytesCount": r.new_bytes } }))
                        .await;
                }
                Ok(Err(e)) => {
                    let _ = tx.send(stream_error(e)).await;
                    return;
                }
                Err(e) => {
                    let _ = tx.send(stream_error(format!("import failed: {e}"))).await;
                    return;
                }
            }
        }
    });
    Ok(json_lines(rx))
}

// ----- repo -----

async fn repo_gc(State(s): State<ApiState>) -> Result<Json<Value>, ApiError> {
    // No add, pin or import runs while the collector decides what is live.
    let _guard = s.online.gc_lock().write().await;
    let node = Arc::clone(s.online.node());
    let r = blocking(move || node.gc()).await?;
    // What is gone is no longer answered for on the DHT.
    s.online.withdraw_stale().await;
    Ok(Json(json!({
        "RemovedBlocks": r.removed_blocks,
        "RemovedBytes": r.removed_bytes,
        "ReclaimedBytes": r.reclaimed_bytes,
        "CompactedSegments": r.compacted_segments,
    })))
}

async fn repo_stat(State(s): State<ApiState>) -> Result<Json<Value>, ApiError> {
    let node = Arc::clone(s.online.node());
    let st = blocking(move || node.stat()).await?;
    let segments: Vec<Value> = st
        .segments
        .iter()
        .map(|g| json!({ "Id": g.id, "LiveBytes": g.live_bytes, "FileBytes": g.file_bytes }))
        .collect();
    Ok(Json(json!({
        "RepoSize": st.store.stored_bytes,
        "NumObjects": st.store.blocks,
        "BlockBytes": st.store.block_bytes,
        "Pins": st.store.pins,
        "NumSegments": st.store.segments,
        "RepoPath": st.path.map(|p| p.display().to_string()).unwrap_or_default(),
        "Segments": segments,
        "Version": format!("cairn-repo@{}", env!("CARGO_PKG_VERSION")),
    })))
}

async fn repo_verify(State(s): State<ApiState>) -> Result<Json<Value>, ApiError> {
    let node = Arc::clone(s.online.node());
    let r = blocking(move || node.verify(&mut |_| {})).await?;
    Ok(Json(json!({
        "Checked": r.checked,
        "Corrupt": r.corrupt.iter().map(|c| c.to_string()).collect::<Vec<_>>(),
        "Unreadable": r.unreadable.iter().map(|(c, w)| json!([c.to_string(), w])).collect::<Vec<_>>(),
        "BrokenPins": r.broken_pins.iter().map(|(c, w)| json!([c.to_string(), w])).collect::<Vec<_>>(),
    })))
}

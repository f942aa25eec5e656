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
mod files;
mod keys;
mod logs;
mod names;
mod network;
mod pins;
mod pubsub;
mod read;
mod repo;
mod s3;
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
    /// The S3 endpoint, when the daemon serves one (`s3/*` commands).
    pub s3: Option<crate::s3::S3Endpoint>,
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
        | NodeError::DagInput(_)
        | NodeError::NotPinned { .. }
        | NodeError::PinnedRecursively { .. }
        | NodeError::HeldBy { .. }
        | NodeError::Config(_) => bad_request(e),
        NodeError::Key(ref k) if k.is_bad_request() => bad_request(e),
        NodeError::Ipns(ref i) if i.is_bad_request() => bad_request(e),
        NodeError::Mfs(ref m) if m.is_bad_request() => bad_request(e),
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

    /// The one value of option `key`: Kubo refuses an option given twice.
    fn single(&self, key: &str) -> Result<Option<&str>, ApiError> {
        match self.all(key).as_slice() {
            [] => Ok(None),
            [v] => Ok(Some(v)),
            many => Err(bad_request(format!(
                "expected key {key} to have only a single value, received {many:?}"
            ))),
        }
    }

    /// A boolean option as Kubo parses it: `true`/`false`, `t`/`f`, `1`/`0`
    /// in any case, and an empty value (`?pin`) is true.
    fn bool(&self, key: &str, default: bool) -> Result<bool, ApiError> {
        let Some(v) = self.single(key)? else {
            return Ok(default);
        };
        match v.to_ascii_lowercase().as_str() {
            "" | "true" | "t" | "1" => Ok(true),
            "false" | "f" | "0" => Ok(false),
            _ => Err(not_convertible(key, v, "bool")),
        }
    }

    /// A numeric option as Kubo parses it ([`parse_go_int`]: decimal, or
    /// `0x`/`0o`/`0b`/leading-`0` prefixed, `_` between digits), refused
    /// when out of `T`'s range.
    fn num<T: TryFrom<i128>>(&self, key: &str) -> Result<Option<T>, ApiError> {
        let kind = if std::mem::size_of::<T>() > 4 {
            "int64"
        } else {
            "int"
        };
        self.single(key)?
            .map(|v| {
                parse_go_int(v)
                    .and_then(|n| T::try_from(n).ok())
                    .ok_or_else(|| not_convertible(key, v, kind))
            })
            .transpose()
    }
}

/// Kubo's words for an option value of the wrong type.
fn not_convertible(key: &str, v: &str, kind: &str) -> ApiError {
    let value = if v.is_empty() {
        "empty value".to_string()
    } else {
        format!("value {v:?}")
    };
    bad_request(format!(
        "could not convert {value} to type {kind:?} (for option \"-{key}\")"
    ))
}

/// An integer written as Go's `strconv.ParseInt(v, 0, _)` reads it (how
/// Kubo parses numeric options): an optional sign, then decimal digits, or
/// a `0x`, `0o` or `0b` prefix, or a leading `0` for octal; a single `_`
/// may stand between digits or after a prefix. `None` if it is not one.
fn parse_go_int(v: &str) -> Option<i128> {
    let (negative, body) = match v.as_bytes().first()? {
        b'-' => (true, &v[1..]),
        b'+' => (false, &v[1..]),
        _ => (false, v),
    };
    let lower = body.to_ascii_lowercase();
    let (radix, digits, prefixed) = if let Some(d) = lower.strip_prefix("0x") {
        (16, d, true)
    } else if let Some(d) = lower.strip_prefix("0o") {
        (8, d, true)
    } else if let Some(d) = lower.strip_prefix("0b") {
        (2, d, true)
    } else if lower.len() > 1 && lower.starts_with('0') {
        (8, &lower[1..], true)
    } else {
        (10, lower.as_str(), false)
    };
    if digits.contains('_')
        && ((!prefixed && digits.starts_with('_'))
            || digits.ends_with('_')
            || digits.contains("__"))
    {
        return None;
    }
    let digits: String = digits.chars().filter(|c| *c != '_').collect();
    if digits.is_empty() || !digits.chars().all(|c| c.is_digit(radix)) {
        return None;
    }
    let n = i128::from_str_radix(&digits, radix).ok()?;
    Some(if negative { -n } else { n })
}

/// The routes, for `axum::serve`.
pub fn router(state: ApiState) -> Router {
    Router::new()
        .route("/api/v0/id", post(network::id))
        .route("/api/v0/version", post(network::version))
        .route("/api/v0/swarm/peers", post(network::swarm_peers))
        .route("/api/v0/swarm/connect", post(network::swarm_connect))
        .route("/api/v0/routing/findprovs", post(network::findprovs))
        .route("/api/v0/routing/findpeer", post(network::findpeer))
        .route("/api/v0/dht/findprovs", post(network::findprovs))
        .route("/api/v0/dht/findpeer", post(network::findpeer))
        .route("/api/v0/routing/reprovide", post(network::reprovide))
        .route("/api/v0/stats/bw", post(network::stats_bw))
        .route("/api/v0/stats/dht", post(network::stats_dht))
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
        .route("/api/v0/dag/get", post(dag::dag_get))
        .route("/api/v0/dag/put", post(dag::dag_put))
        .route("/api/v0/dag/resolve", post(dag::dag_resolve))
        .route("/api/v0/resolve", post(dag::resolve))
        .route("/api/v0/object/stat", post(dag::object_stat))
        .route("/api/v0/config", post(repo::config_get))
        .route("/api/v0/config/show", post(repo::config_show))
        .route("/api/v0/key/gen", post(keys::key_gen))
        .route("/api/v0/key/list", post(keys::key_list))
        .route("/api/v0/key/rm", post(keys::key_rm))
        .route("/api/v0/key/rename", post(keys::key_rename))
        .route("/api/v0/key/export", post(keys::key_export))
        .route("/api/v0/key/import", post(keys::key_import))
        .route("/api/v0/name/publish", post(names::name_publish))
        .route("/api/v0/name/resolve", post(names::name_resolve))
        .route("/api/v0/name/pubsub/state", post(names::name_pubsub_state))
        .route("/api/v0/name/pubsub/subs", post(names::name_pubsub_subs))
        .route("/api/v0/files/mkdir", post(files::mkdir))
        .route("/api/v0/files/write", post(files::write))
        .route("/api/v0/files/read", post(files::read))
        .route("/api/v0/files/ls", post(files::ls))
        .route("/api/v0/files/stat", post(files::stat))
        .route("/api/v0/files/cp", post(files::cp))
        .route("/api/v0/files/mv", post(files::mv))
        .route("/api/v0/files/rm", post(files::rm))
        .route("/api/v0/files/flush", post(files::flush))
        .route("/api/v0/files/chcid", post(files::chcid))
        .route("/api/v0/pubsub/pub", post(pubsub::publish))
        .route("/api/v0/pubsub/sub", post(pubsub::subscribe))
        .route("/api/v0/pubsub/ls", post(pubsub::ls))
        .route("/api/v0/pubsub/peers", post(pubsub::peers))
        .route("/api/v0/log/create", post(logs::create))
        .route("/api/v0/log/follow", post(logs::follow))
        .route("/api/v0/log/append", post(logs::append))
        .route("/api/v0/log/read", post(logs::read))
        .route("/api/v0/log/commit", post(logs::commit))
        .route("/api/v0/log/ls", post(logs::ls))
        .route("/api/v0/repo/gc", post(repo::repo_gc))
        .route("/api/v0/s3/ls", post(s3::ls))
        .route("/api/v0/s3/bucket/create", post(s3::bucket_create))
        .route(
            "/api/v0/s3/bucket/public-read",
            post(s3::bucket_public_read),
        )
        .route("/api/v0/s3/bucket/publish", post(s3::bucket_publish))
        .route("/api/v0/s3/bucket/mount", post(s3::bucket_mount))
        .route("/api/v0/repo/stat", post(repo::repo_stat))
        .route("/api/v0/repo/verify", post(repo::repo_verify))
        .route("/metrics", axum::routing::get(metrics))
        .route("/debug/metrics/prometheus", axum::routing::get(metrics))
        .fallback(no_such_endpoint)
        .method_not_allowed_fallback(no_such_endpoint)
        // Uploads are streamed, never buffered whole: no body size limit.
        .layer(axum::extract::DefaultBodyLimit::disable())
        .layer(axum::middleware::from_fn_with_state(
            state.guard.clone(),
            super::guard::authorize,
        ))
        .layer(axum::middleware::from_fn_with_state(
            (
                state.online.request_counter(),
                crate::http::Surface {
                    name: "api",
                    route_of: read_route,
                },
            ),
            crate::http::count_requests,
        ))
        .with_state(state)
}

/// The read route of an API request, for its latency histogram: the
/// endpoints that read content, each by its own name (`cat`, `get`, `ls`,
/// `block_get`, …); the others none.
fn read_route(request: &axum::extract::Request) -> Option<&'static str> {
    Some(match request.uri().path() {
        "/api/v0/cat" => "cat",
        "/api/v0/get" => "get",
        "/api/v0/ls" => "ls",
        "/api/v0/block/get" => "block_get",
        "/api/v0/block/stat" => "block_stat",
        "/api/v0/dag/get" => "dag_get",
        "/api/v0/dag/export" => "dag_export",
        "/api/v0/dag/resolve" => "dag_resolve",
        "/api/v0/resolve" => "resolve",
        "/api/v0/files/read" => "files_read",
        "/api/v0/files/ls" => "files_ls",
        _ => return None,
    })
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

/// What Kubo answers outside its routes: a method other than POST on
/// `/api/v0/...` is 405 (with `Allow: POST`), anything else unknown 404;
/// both with Kubo's words, in its JSON error shape.
async fn no_such_endpoint(method: axum::http::Method, uri: axum::http::Uri) -> Response {
    if uri.path().starts_with("/api/v0/") && method != axum::http::Method::POST {
        let mut answer = ApiError(
            StatusCode::METHOD_NOT_ALLOWED,
            "405 - Method Not Allowed".into(),
        )
        .into_response();
        answer
            .headers_mut()
            .insert(header::ALLOW, header::HeaderValue::from_static("POST"));
        return answer;
    }
    ApiError(StatusCode::NOT_FOUND, "404 page not found".into()).into_response()
}

async fn shutdown(State(s): State<ApiState>) -> NoOutput {
    let _ = s.shutdown.send(()).await;
    NoOutput
}

/// The answer of a command that has no output (`files/rm`, `files/mkdir`,
/// `shutdown`...): 200 with an empty body typed `application/json`, as
/// Kubo's command library answers them. Clients decode some of these as
/// JSON (aioipfs's `files.rm`) and refuse an answer of no type.
#[derive(Debug)]
struct NoOutput;

impl IntoResponse for NoOutput {
    fn into_response(self) -> Response {
        ([(header::CONTENT_TYPE, "application/json")], ()).into_response()
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn params(q: &str) -> Params {
        Params::parse(Some(q.to_string()))
    }

    fn message(e: ApiError) -> String {
        assert_eq!(e.0, StatusCode::BAD_REQUEST);
        e.1
    }

    #[test]
    fn no_output_is_an_empty_json_answer() {
        let answer = NoOutput.into_response();
        assert_eq!(answer.status(), StatusCode::OK);
        assert_eq!(
            answer.headers().get(header::CONTENT_TYPE).unwrap(),
            "application/json"
        );
        let body = futures::executor::block_on(axum::body::to_bytes(answer.into_body(), 16));
        assert!(body.unwrap().is_empty());
    }

    #[test]
    fn booleans_parse_as_kubo_parses_them() {
        for (q, want) in [
            ("pin=true", true),
            ("pin=True", true),
            ("pin=TRUE", true),
            ("pin=tRuE", true),
            ("pin=t", true),
            ("pin=T", true),
            ("pin=1", true),
            ("pin=", true),
            ("pin", true),
            ("pin=false", false),
            ("pin=False", false),
            ("pin=F", false),
            ("pin=0", false),
        ] {
            assert_eq!(params(q).bool("pin", !want).unwrap(), want, "{q}");
        }
        assert!(params("other=0").bool("pin", true).unwrap());
        for bad in ["pin=yes", "pin=2", "pin=truth", "pin=%20true"] {
            let m = message(params(bad).bool("pin", true).unwrap_err());
            assert!(m.starts_with("could not convert value"), "{bad}: {m}");
            assert!(m.ends_with(r#"to type "bool" (for option "-pin")"#), "{m}");
        }
        let m = message(params("pin=true&pin=false").bool("pin", true).unwrap_err());
        assert!(m.contains("only a single value"), "{m}");
    }

    #[test]
    fn numbers_parse_as_go_parses_them() {
        for (v, want) in [
            ("7", Some(7)),
            ("+7", Some(7)),
            ("-7", Some(-7)),
            ("0x1F", Some(31)),
            ("0X1f", Some(31)),
            ("0o17", Some(15)),
            ("017", Some(15)),
            ("0b101", Some(5)),
            ("1_000", Some(1000)),
            ("0x_ff", Some(255)),
            ("0", Some(0)),
            ("", None),
            ("_1", None),
            ("1_", None),
            ("1__0", None),
            ("08", None),
            ("0x", None),
            ("1.5", None),
            (" 1", None),
            ("1e3", None),
        ] {
            assert_eq!(parse_go_int(v), want, "{v:?}");
        }
        assert_eq!(params("n=0x10").num::<u64>("n").unwrap(), Some(16));
        assert_eq!(params("x=1").num::<u64>("n").unwrap(), None);
        let m = message(params("n=256").num::<u8>("n").unwrap_err());
        assert_eq!(
            m,
            r#"could not convert value "256" to type "int" (for option "-n")"#
        );
        let m = message(params("n=-1").num::<u64>("n").unwrap_err());
        assert!(m.contains(r#"type "int64""#), "{m}");
        let m = message(params("n=").num::<u64>("n").unwrap_err());
        assert!(m.starts_with("could not convert empty value"), "{m}");
    }
}

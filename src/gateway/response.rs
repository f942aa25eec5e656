//! What every gateway response shares: cache and IPFS headers, `ETag` and
//! 304s, redirects, blocking DAG work within the timeout, and bodies
//! streamed from a blocking producer.

use super::error::GatewayError;
use super::request::ContentPath;
use super::GatewayState;
use crate::block::Cid;
use crate::dag::{BlockSource, DagError};
use crate::http::{
    first_chunk_then_rest, spawn_producer, ChannelWriter, FirstChunk, ProducerError,
};
use axum::body::Body;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;
use std::sync::Arc;

/// `Cache-Control` of content addressed by CID: it never changes.
const IMMUTABLE: &str = "public, max-age=29030400, immutable";

/// Sets `Cache-Control`, `ETag`, `X-Ipfs-Path` and `X-Ipfs-Roots`.
pub(super) fn common_headers(r: &mut Response, content: &ContentPath, roots: &[Cid], etag: &str) {
    let h = r.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static(IMMUTABLE));
    if let Ok(v) = HeaderValue::from_str(etag) {
        h.insert(header::ETAG, v);
    }
    if let Ok(v) = HeaderValue::from_str(&content.display()) {
        h.insert("x-ipfs-path", v);
    }
    let roots: Vec<String> = roots.iter().map(|c| c.to_string()).collect();
    if let Ok(v) = HeaderValue::from_str(&roots.join(",")) {
        h.insert("x-ipfs-roots", v);
    }
}

/// An empty response with `status` and the common headers.
pub(super) fn empty(
    status: StatusCode,
    content: &ContentPath,
    roots: &[Cid],
    etag: &str,
) -> Response {
    let mut r = Response::new(Body::empty());
    *r.status_mut() = status;
    common_headers(&mut r, content, roots, etag);
    r
}

/// A 304 when `If-None-Match` names `etag` (or `*`).
pub(super) fn not_modified(
    headers: &HeaderMap,
    content: &ContentPath,
    roots: &[Cid],
    etag: &str,
) -> Option<Response> {
    let v = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())?;
    let matches = v.split(',').any(|t| {
        let t = t.trim();
        t == "*" || t.trim_start_matches("W/") == etag
    });
    matches.then(|| empty(StatusCode::NOT_MODIFIED, content, roots, etag))
}

/// A redirect to `location`.
pub(super) fn redirect(status: StatusCode, location: &str) -> Response {
    let mut r = Response::new(Body::empty());
    *r.status_mut() = status;
    if let Ok(v) = HeaderValue::from_str(location) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    r
}

/// Runs DAG work on a blocking thread, failing with a 504 naming `what`
/// (e.g. "… could not be resolved") when it takes over the timeout.
pub(super) async fn blocking<T: Send + 'static>(
    s: &GatewayState,
    what: impl FnOnce() -> String,
    work: impl FnOnce() -> Result<T, DagError> + Send + 'static,
) -> Result<T, GatewayError> {
    match tokio::time::timeout(s.timeout, tokio::task::spawn_blocking(work)).await {
        Err(_) => Err(GatewayError::Timeout {
            what: what(),
            timeout: s.timeout,
        }),
        Ok(joined) => Ok(joined??),
    }
}

/// Resolves the content's path within the timeout: the CID it names and
/// the CID of each step (the `X-Ipfs-Roots`).
pub(super) async fn resolve(
    s: &GatewayState,
    content: &ContentPath,
    source: Arc<dyn BlockSource>,
) -> Result<(Cid, Vec<Cid>), GatewayError> {
    let root = content.root;
    let cache = Arc::clone(s.online.node().resolve_cache());
    if let Some(r) = cache.cached(root, &content.segments) {
        return Ok((r.cid, r.roots.to_vec()));
    }
    let segments = content.segments.clone();
    blocking(
        s,
        || format!("{} could not be resolved", content.display()),
        move || {
            let r = cache.resolve(&*source, root, &segments)?;
            Ok((r.cid, r.roots.to_vec()))
        },
    )
    .await
}

/// Sends the body a blocking producer writes, once its first byte is ready
/// (else 504); `on_first` may set headers from the first bytes.
pub(super) async fn streamed(
    s: &GatewayState,
    mut response: Response,
    head: bool,
    on_first: impl FnOnce(&[u8], &mut HeaderMap),
    produce: impl FnOnce(&mut ChannelWriter) -> Result<(), ProducerError> + Send + 'static,
) -> Result<Response, GatewayError> {
    if head {
        return Ok(response);
    }
    let rx = spawn_producer(produce);
    match first_chunk_then_rest(rx, s.timeout).await {
        Ok((body, first)) => {
            on_first(&first, response.headers_mut());
            *response.body_mut() = body;
            Ok(response)
        }
        Err(FirstChunk::Timeout) => Err(GatewayError::Timeout {
            what: "no data".into(),
            timeout: s.timeout,
        }),
        Err(FirstChunk::Failed(e)) => Err(GatewayError::Producer(e)),
    }
}

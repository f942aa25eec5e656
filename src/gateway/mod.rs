//! The HTTP gateway (read-only): `GET`/`HEAD /ipfs/{cid}[/{path}]` as the
//! IPFS path, subdomain and trustless gateway specs describe.
//!
//! - Files stream with a Content-Type from the name or the first bytes;
//!   `Range` (one range, suffix ranges too) gives 206 reading only the
//!   blocks the range needs, an unsatisfiable range 416.
//! - Directories serve their `index.html`, else an HTML listing; a
//!   directory URL without its trailing `/` is redirected to it.
//! - `?format=raw` / `Accept: application/vnd.ipld.raw` gives the block;
//!   `?format=car` / `application/vnd.ipld.car` a CAR v1 stream with
//!   `dag-scope` and `entity-bytes` (see `dag::scope`).
//! - `Host: {cidv1}.ipfs.{domain}` serves the same content from its own
//!   origin; with `[gateway] subdomain_redirect`, path requests on a
//!   `localhost` host are redirected there.
//! - Headers: `ETag` (the CID, per format and range), `Cache-Control:
//!   public, max-age=29030400, immutable`, `X-Ipfs-Path`, `X-Ipfs-Roots`;
//!   `If-None-Match` gives 304.
//! - Content that is not local is fetched from the network; a response
//!   whose first byte is not ready within `[gateway] timeout` is a 504, a
//!   missing name in a directory 404, a malformed CID or path 400, each
//!   with a one-line reason. Requests only ever read the DAG they name.

mod listing;
pub mod mime;

use crate::block::{parse_cid, Cid};
use crate::dag::reader::{self, FileReader, Node, ReadOptions};
use crate::dag::scope::{self, DagScope, EntityBytes};
use crate::dag::{BlockSource, DagError};
use crate::http::{first_chunk_then_rest, spawn_producer, ChannelWriter, FirstChunk};
use crate::node::online::OnlineNode;
use crate::node::NodeError;
use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Router;
use std::sync::Arc;
use std::time::Duration;

/// What the gateway needs.
#[derive(Clone)]
pub struct GatewayState {
    pub online: Arc<OnlineNode>,
    /// A response's first byte must be ready within this.
    pub timeout: Duration,
    /// Redirect path requests on `localhost` to the subdomain form.
    pub subdomain_redirect: bool,
}

/// The gateway's routes, for `axum::serve`.
pub fn router(state: GatewayState) -> Router {
    let counter = state.online.request_counter();
    Router::new()
        .fallback(handle)
        .layer(axum::middleware::from_fn_with_state(
            (counter, "gateway"),
            crate::http::count_requests,
        ))
        .with_state(state)
}

const IMMUTABLE: &str = "public, max-age=29030400, immutable";

/// A response with a one-line plain-text reason.
fn plain(status: StatusCode, reason: impl std::fmt::Display) -> Response {
    let mut r = (status, format!("{reason}\n")).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

/// Maps errors of resolving and reading to statuses.
fn failure(e: NodeError) -> Response {
    match e {
        NodeError::Dag(DagError::NoSuchPath { cid, name }) => plain(
            StatusCode::NOT_FOUND,
            format!("no link named {name:?} under {cid}"),
        ),
        NodeError::Dag(DagError::WrongKind {
            cid,
            expected,
            actual,
        }) => plain(
            StatusCode::NOT_FOUND,
            format!("{cid} is a {actual}, not a {expected}"),
        ),
        NodeError::Dag(DagError::Fetch { cid, reason }) => plain(
            StatusCode::GATEWAY_TIMEOUT,
            format!("could not retrieve {cid}: {reason}"),
        ),
        NodeError::Block(b) => plain(StatusCode::BAD_REQUEST, b),
        other => plain(StatusCode::INTERNAL_SERVER_ERROR, other),
    }
}

/// The requested content: root CID and path segments (decoded).
struct ContentPath {
    root: Cid,
    segments: Vec<String>,
    /// The request path ended with `/`.
    trailing_slash: bool,
    /// Served from `{cid}.ipfs.{domain}`.
    subdomain: Option<String>,
}

impl ContentPath {
    /// `/ipfs/CID/a/b` (segments as requested, percent-encoded).
    fn display(&self) -> String {
        let mut s = format!("/ipfs/{}", self.root);
        for seg in &self.segments {
            s.push('/');
            s.push_str(&listing::encode_segment(seg));
        }
        if self.trailing_slash && !self.segments.is_empty() {
            s.push('/');
        }
        s
    }
}

/// `{label}.ipfs.{rest}` → (label, rest).
fn subdomain_of(host: &str) -> Option<(&str, &str)> {
    let (label, rest) = host.split_once(".ipfs.")?;
    (!label.is_empty() && !label.contains('.')).then_some((label, rest))
}

fn decode_segments(path: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    for raw in path.split('/').filter(|s| !s.is_empty()) {
        let seg = percent_encoding::percent_decode_str(raw)
            .decode_utf8()
            .map_err(|_| format!("path segment {raw:?} is not UTF-8"))?
            .into_owned();
        if seg == "." || seg == ".." || seg.contains('/') || seg.contains('\0') {
            return Err(format!("invalid path segment {seg:?}"));
        }
        out.push(seg);
    }
    Ok(out)
}

fn parse_request(uri: &Uri, host: Option<&str>) -> Result<ContentPath, Response> {
    let path = uri.path();
    let trailing_slash = path.ends_with('/');
    let bad = |m: String| plain(StatusCode::BAD_REQUEST, m);
    if let Some((label, _)) = host.and_then(subdomain_of) {
        let root = parse_cid(label)
            .map_err(|e| bad(format!("invalid CID in subdomain {label:?}: {e}")))?;
        return Ok(ContentPath {
            root,
            segments: decode_segments(path).map_err(bad)?,
            trailing_slash,
            subdomain: host.map(String::from),
        });
    }
    let rest = path.strip_prefix("/ipfs/").ok_or_else(|| {
        plain(
            StatusCode::NOT_FOUND,
            "only /ipfs/{cid}[/{path}] is served here",
        )
    })?;
    let (cid_text, sub) = rest.split_once('/').unwrap_or((rest, ""));
    let root = parse_cid(cid_text).map_err(|e| bad(format!("invalid CID {cid_text:?}: {e}")))?;
    Ok(ContentPath {
        root,
        segments: decode_segments(sub).map_err(bad)?,
        trailing_slash,
        subdomain: None,
    })
}

/// The response format asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Format {
    UnixFs,
    Raw,
    Car,
}

fn query_param<'a>(uri: &'a Uri, key: &str) -> Option<std::borrow::Cow<'a, str>> {
    form_urlencoded::parse(uri.query().unwrap_or("").as_bytes())
        .find(|(k, _)| k == key)
        .map(|(_, v)| v)
}

fn requested_format(uri: &Uri, headers: &HeaderMap) -> Result<Format, String> {
    if let Some(f) = query_param(uri, "format") {
        return match f.as_ref() {
            "raw" => Ok(Format::Raw),
            "car" => Ok(Format::Car),
            other => Err(format!("format {other:?} is not supported (raw or car)")),
        };
    }
    let accept = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    for item in accept.split(',') {
        let media = item.split(';').next().unwrap_or("").trim();
        match media {
            "application/vnd.ipld.raw" => return Ok(Format::Raw),
            "application/vnd.ipld.car" => return Ok(Format::Car),
            _ => {}
        }
    }
    Ok(Format::UnixFs)
}

fn etag_matches(headers: &HeaderMap, etag: &str) -> bool {
    let Some(v) = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    v.split(',').any(|t| {
        let t = t.trim();
        t == "*" || t.trim_start_matches("W/") == etag
    })
}

fn common_headers(r: &mut Response, content: &ContentPath, roots: &[Cid], etag: &str) {
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

/// The URL of `cid` for links on a page served at `content`.
fn cid_url(content: &ContentPath, cid: &Cid) -> String {
    match &content.subdomain {
        Some(host) => {
            let rest = subdomain_of(host).map_or(host.as_str(), |(_, r)| r);
            format!("//{}.ipfs.{rest}/", cid_v1(cid))
        }
        None => format!("/ipfs/{cid}"),
    }
}

/// The CIDv1 (base32, DNS-safe) form of `cid`.
fn cid_v1(cid: &Cid) -> String {
    if cid.version() == cid::Version::V0 {
        Cid::new_v1(cid.codec(), *cid.hash()).to_string()
    } else {
        cid.to_string()
    }
}

async fn handle(
    State(s): State<GatewayState>,
    method: Method,
    headers: HeaderMap,
    uri: Uri,
) -> Response {
    if method != Method::GET && method != Method::HEAD {
        let mut r = plain(StatusCode::METHOD_NOT_ALLOWED, "the gateway is read-only");
        r.headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
        return r;
    }
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
    let content = match parse_request(&uri, host) {
        Ok(c) => c,
        Err(r) => return r,
    };
    if s.subdomain_redirect && content.subdomain.is_none() {
        if let Some(h) = host {
            let (name, port) = h.split_once(':').map_or((h, ""), |(n, p)| (n, p));
            if name == "localhost" {
                // What follows /ipfs/{cid} in the request, as sent.
                let after = uri
                    .path()
                    .strip_prefix("/ipfs/")
                    .and_then(|p| p.split_once('/').map(|(_, r)| format!("/{r}")))
                    .unwrap_or_else(|| "/".to_string());
                let port = if port.is_empty() {
                    String::new()
                } else {
                    format!(":{port}")
                };
                let mut target = format!(
                    "http://{}.ipfs.localhost{port}{after}",
                    cid_v1(&content.root)
                );
                if let Some(q) = uri.query() {
                    target.push('?');
                    target.push_str(q);
                }
                return redirect(StatusCode::MOVED_PERMANENTLY, &target);
            }
        }
    }
    let format = match requested_format(&uri, &headers) {
        Ok(f) => f,
        Err(m) => return plain(StatusCode::BAD_REQUEST, m),
    };
    let head = method == Method::HEAD;
    match format {
        Format::Raw => raw(&s, &content, &headers, head).await,
        Format::Car => car(&s, &content, &uri, &headers, head).await,
        Format::UnixFs => unixfs(&s, &content, &uri, &headers, head).await,
    }
}

fn redirect(status: StatusCode, location: &str) -> Response {
    let mut r = Response::new(Body::empty());
    *r.status_mut() = status;
    if let Ok(v) = HeaderValue::from_str(location) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    r
}

/// Resolves the path within the timeout: the last element and each step.
async fn resolve(
    s: &GatewayState,
    content: &ContentPath,
    source: Arc<dyn BlockSource>,
) -> Result<(Cid, Vec<Cid>), Response> {
    let root = content.root;
    let segments = content.segments.clone();
    let task = tokio::task::spawn_blocking(move || {
        scope::resolve_proving(&*source, root, &segments, &mut |_| Ok(()))
    });
    match tokio::time::timeout(s.timeout, task).await {
        Err(_) => Err(plain(
            StatusCode::GATEWAY_TIMEOUT,
            format!(
                "{} could not be resolved within {} s",
                content.display(),
                s.timeout.as_secs()
            ),
        )),
        Ok(Err(e)) => Err(plain(StatusCode::INTERNAL_SERVER_ERROR, e)),
        Ok(Ok(Err(e))) => Err(failure(e.into())),
        Ok(Ok(Ok(r))) => Ok(r),
    }
}

/// Resolves the path and loads its last element in one blocking step
/// (within the timeout).
async fn resolve_load(
    s: &GatewayState,
    content: &ContentPath,
    source: Arc<dyn BlockSource>,
) -> Result<(Cid, Vec<Cid>, Node), Response> {
    let root = content.root;
    let segments = content.segments.clone();
    let task = tokio::task::spawn_blocking(move || -> Result<_, DagError> {
        let (cid, roots) = scope::resolve_proving(&*source, root, &segments, &mut |_| Ok(()))?;
        let node = reader::load(&*source, &cid)?;
        Ok((cid, roots, node))
    });
    match tokio::time::timeout(s.timeout, task).await {
        Err(_) => Err(plain(
            StatusCode::GATEWAY_TIMEOUT,
            format!(
                "{} could not be retrieved within {} s",
                content.display(),
                s.timeout.as_secs()
            ),
        )),
        Ok(Err(e)) => Err(plain(StatusCode::INTERNAL_SERVER_ERROR, e)),
        Ok(Ok(Err(e))) => Err(failure(e.into())),
        Ok(Ok(Ok(r))) => Ok(r),
    }
}

async fn session(s: &GatewayState, root: Cid) -> Result<Arc<dyn BlockSource>, Response> {
    Ok(s.online.source(Some(root)))
}

/// Sends the body a blocking producer writes, once its first byte is ready
/// (else 504); `on_first` may set headers from the first bytes.
async fn streamed(
    s: &GatewayState,
    mut response: Response,
    head: bool,
    on_first: impl FnOnce(&[u8], &mut HeaderMap),
    produce: impl FnOnce(&mut ChannelWriter) -> Result<(), String> + Send + 'static,
) -> Response {
    if head {
        return response;
    }
    let rx = spawn_producer(produce);
    match first_chunk_then_rest(rx, s.timeout).await {
        Ok((body, first)) => {
            on_first(&first, response.headers_mut());
            *response.body_mut() = body;
            response
        }
        Err(FirstChunk::Timeout) => plain(
            StatusCode::GATEWAY_TIMEOUT,
            format!("no data within {} s", s.timeout.as_secs()),
        ),
        Err(FirstChunk::Failed(m)) => plain(StatusCode::BAD_GATEWAY, m),
    }
}

async fn raw(s: &GatewayState, content: &ContentPath, headers: &HeaderMap, head: bool) -> Response {
    let source = match session(s, content.root).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let (cid, roots) = match resolve(s, content, Arc::clone(&source)).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let etag = format!("\"{cid}.raw\"");
    if etag_matches(headers, &etag) {
        let mut r = Response::new(Body::empty());
        *r.status_mut() = StatusCode::NOT_MODIFIED;
        common_headers(&mut r, content, &roots, &etag);
        return r;
    }
    let src = Arc::clone(&source);
    let task = tokio::task::spawn_blocking(move || src.block(&cid));
    let block = match tokio::time::timeout(s.timeout, task).await {
        Err(_) => {
            return plain(
                StatusCode::GATEWAY_TIMEOUT,
                format!(
                    "{cid} could not be retrieved within {} s",
                    s.timeout.as_secs()
                ),
            )
        }
        Ok(Err(e)) => return plain(StatusCode::INTERNAL_SERVER_ERROR, e),
        Ok(Ok(Err(e))) => return failure(e.into()),
        Ok(Ok(Ok(b))) => b,
    };
    let len = block.data().len();
    let mut r = if head {
        Response::new(Body::empty())
    } else {
        Response::new(Body::from(block.data().clone()))
    };
    common_headers(&mut r, content, &roots, &etag);
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/vnd.ipld.raw"),
    );
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    h.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{cid}.bin\"")) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    r
}

async fn car(
    s: &GatewayState,
    content: &ContentPath,
    uri: &Uri,
    headers: &HeaderMap,
    head: bool,
) -> Response {
    let scope: DagScope = match query_param(uri, "dag-scope").map(|v| v.parse()) {
        None => DagScope::All,
        Some(Ok(x)) => x,
        Some(Err(m)) => return plain(StatusCode::BAD_REQUEST, m),
    };
    let bytes: Option<EntityBytes> = match query_param(uri, "entity-bytes").map(|v| v.parse()) {
        None => None,
        Some(Ok(x)) => Some(x),
        Some(Err(m)) => return plain(StatusCode::BAD_REQUEST, m),
    };
    if let Some(v) = query_param(uri, "car-version") {
        if v != "1" {
            return plain(
                StatusCode::BAD_REQUEST,
                format!("car-version {v} is not supported (1)"),
            );
        }
    }
    let accept = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if accept.contains("version=2") && query_param(uri, "car-version").is_none() {
        return plain(
            StatusCode::BAD_REQUEST,
            "CAR version 2 is not supported (1)",
        );
    }
    let source = match session(s, content.root).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    // The root block must be there (404/504 before any byte is sent).
    let (_, roots) = match resolve(s, content, Arc::clone(&source)).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let scope_name = match scope {
        DagScope::Block => "block",
        DagScope::Entity => "entity",
        DagScope::All => "all",
    };
    let range = bytes.map_or(String::new(), |b| {
        format!(
            ".{}:{}",
            b.from,
            b.to.map_or("*".to_string(), |t| t.to_string())
        )
    });
    let etag = format!(
        "\"{}.car.{}{}\"",
        roots.last().unwrap_or(&content.root),
        scope_name,
        range
    );
    if etag_matches(headers, &etag) {
        let mut r = Response::new(Body::empty());
        *r.status_mut() = StatusCode::NOT_MODIFIED;
        common_headers(&mut r, content, &roots, &etag);
        return r;
    }
    let mut r = Response::new(Body::empty());
    common_headers(&mut r, content, &roots, &etag);
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/vnd.ipld.car; version=1; order=dfs; dups=n"),
    );
    h.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    if let Ok(v) = HeaderValue::from_str(&format!(
        "attachment; filename=\"{}.car\"",
        roots.last().unwrap_or(&content.root)
    )) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    let root = content.root;
    let segments = content.segments.clone();
    streamed(
        s,
        r,
        head,
        |_, _| {},
        move |out| {
            let mut car =
                crate::dag::car::CarWriter::new(out, &[root]).map_err(|e| e.to_string())?;
            scope::scoped_blocks(&*source, root, &segments, scope, bytes, &mut |b| {
                car.write_block(&b).map_err(|e| DagError::Write {
                    path: "CAR response".into(),
                    source: std::io::Error::other(e),
                })
            })
            .map_err(|e| e.to_string())?;
            car.finish().map_err(|e| e.to_string())?;
            Ok(())
        },
    )
    .await
}

/// A parsed `Range` header: first and last byte (inclusive), or a suffix.
enum RangeSpec {
    FromTo(u64, Option<u64>),
    Suffix(u64),
}

/// One `bytes=` range; `Ok(None)` for none (or several, served whole).
fn parse_range(headers: &HeaderMap) -> Result<Option<RangeSpec>, ()> {
    let Some(v) = headers.get(header::RANGE).and_then(|v| v.to_str().ok()) else {
        return Ok(None);
    };
    let Some(spec) = v.trim().strip_prefix("bytes=") else {
        return Err(());
    };
    if spec.contains(',') {
        return Ok(None);
    }
    let (a, b) = spec.split_once('-').ok_or(())?;
    let (a, b) = (a.trim(), b.trim());
    if a.is_empty() {
        return b
            .parse()
            .map(|n| Some(RangeSpec::Suffix(n)))
            .map_err(|_| ());
    }
    let first: u64 = a.parse().map_err(|_| ())?;
    let last = if b.is_empty() {
        None
    } else {
        Some(b.parse::<u64>().map_err(|_| ())?)
    };
    if last.is_some_and(|l| l < first) {
        return Err(());
    }
    Ok(Some(RangeSpec::FromTo(first, last)))
}

async fn unixfs(
    s: &GatewayState,
    content: &ContentPath,
    uri: &Uri,
    headers: &HeaderMap,
    head: bool,
) -> Response {
    let source = match session(s, content.root).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let (cid, mut roots, node) = match resolve_load(s, content, Arc::clone(&source)).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    match node {
        Node::Directory { .. } | Node::HamtShard { .. } => {
            if !content.trailing_slash {
                // Relative links on the page need the trailing slash.
                let mut target = format!("{}/", uri.path());
                if let Some(q) = uri.query() {
                    target.push('?');
                    target.push_str(q);
                }
                return redirect(StatusCode::MOVED_PERMANENTLY, &target);
            }
            // index.html when present.
            let src = Arc::clone(&source);
            let index = tokio::task::spawn_blocking(move || -> Result<_, DagError> {
                let index = reader::resolve_path(&*src, cid, "index.html")?;
                Ok((index, reader::load(&*src, &index)?.file_size()))
            });
            if let Ok(Ok(Ok((index, size)))) = tokio::time::timeout(s.timeout, index).await {
                roots.push(index);
                let target = Target {
                    cid: index,
                    size,
                    name: "index.html",
                };
                return file(s, content, &roots, target, source, headers, head).await;
            }
            listing_page(s, content, &roots, cid, source, headers, head).await
        }
        Node::Symlink { target } => {
            let etag = format!("\"{cid}\"");
            let mut r = if head {
                Response::new(Body::empty())
            } else {
                Response::new(Body::from(target))
            };
            common_headers(&mut r, content, &roots, &etag);
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("inode/symlink"),
            );
            r
        }
        node @ (Node::Raw(_) | Node::File { .. }) => {
            let name = content
                .segments
                .last()
                .cloned()
                .or_else(|| query_param(uri, "filename").map(|f| f.into_owned()))
                .unwrap_or_default();
            let target = Target {
                cid,
                size: node.file_size(),
                name: &name,
            };
            file(s, content, &roots, target, source, headers, head).await
        }
    }
}

/// A file to serve: its CID, size and the name its type comes from.
struct Target<'n> {
    cid: Cid,
    size: u64,
    name: &'n str,
}

async fn file(
    s: &GatewayState,
    content: &ContentPath,
    roots: &[Cid],
    target: Target<'_>,
    source: Arc<dyn BlockSource>,
    headers: &HeaderMap,
    head: bool,
) -> Response {
    let Target { cid, size, name } = target;
    let etag = format!("\"{cid}\"");
    if etag_matches(headers, &etag) {
        let mut r = Response::new(Body::empty());
        *r.status_mut() = StatusCode::NOT_MODIFIED;
        common_headers(&mut r, content, roots, &etag);
        return r;
    }
    let range = match parse_range(headers) {
        Ok(r) => r,
        Err(()) => return unsatisfiable(size),
    };
    let (offset, len, partial) = match range {
        None => (0, size, false),
        Some(RangeSpec::FromTo(first, last)) => {
            if first >= size {
                return unsatisfiable(size);
            }
            let last = last.unwrap_or(size - 1).min(size - 1);
            (first, last - first + 1, true)
        }
        Some(RangeSpec::Suffix(n)) => {
            if n == 0 || size == 0 {
                return unsatisfiable(size);
            }
            let n = n.min(size);
            (size - n, n, true)
        }
    };
    // The type comes from the name, else from the file's first bytes: the
    // response's own first chunk when it starts at byte 0, else a read.
    let by_name = mime::content_type(name, b"\x00");
    let known = by_name != "application/octet-stream";
    let sniffed = if known || offset == 0 {
        None
    } else {
        let src = Arc::clone(&source);
        let sniff = tokio::task::spawn_blocking(move || -> Result<Vec<u8>, DagError> {
            let mut r = FileReader::new(src, cid, 0, Some(512), ReadOptions::default())?;
            let mut buf = Vec::with_capacity(512);
            std::io::Read::read_to_end(&mut r, &mut buf).map_err(DagError::Read)?;
            Ok(buf)
        });
        match tokio::time::timeout(s.timeout, sniff).await {
            Ok(Ok(Ok(b))) => Some(mime::content_type(name, &b)),
            Ok(Ok(Err(e))) => return failure(e.into()),
            Ok(Err(e)) => return plain(StatusCode::INTERNAL_SERVER_ERROR, e),
            Err(_) => {
                return plain(
                    StatusCode::GATEWAY_TIMEOUT,
                    format!("no data within {} s", s.timeout.as_secs()),
                )
            }
        }
    };
    let mut r = Response::new(Body::empty());
    common_headers(&mut r, content, roots, &etag);
    let h = r.headers_mut();
    let ctype = if known {
        by_name
    } else {
        sniffed.unwrap_or_else(|| mime::content_type(name, b""))
    };
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(ctype));
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    if partial {
        *r.status_mut() = StatusCode::PARTIAL_CONTENT;
        if let Ok(v) =
            HeaderValue::from_str(&format!("bytes {}-{}/{}", offset, offset + len - 1, size))
        {
            r.headers_mut().insert(header::CONTENT_RANGE, v);
        }
    }
    if len == 0 || head {
        return r;
    }
    let sniff_first = !known && offset == 0;
    let name = name.to_string();
    streamed(
        s,
        r,
        head,
        move |first, h| {
            if sniff_first {
                h.insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static(mime::content_type(&name, first)),
                );
            }
        },
        move |out| {
            let opts = ReadOptions {
                window: 64,
                ..ReadOptions::default()
            };
            let reader =
                FileReader::new(source, cid, offset, Some(len), opts).map_err(|e| e.to_string())?;
            for chunk in reader {
                let chunk = chunk.map_err(|e| e.to_string())?;
                out.send(chunk).map_err(|e| e.to_string())?;
            }
            Ok(())
        },
    )
    .await
}

fn unsatisfiable(size: u64) -> Response {
    let mut r = plain(StatusCode::RANGE_NOT_SATISFIABLE, "range not satisfiable");
    if let Ok(v) = HeaderValue::from_str(&format!("bytes */{size}")) {
        r.headers_mut().insert(header::CONTENT_RANGE, v);
    }
    r
}

async fn listing_page(
    s: &GatewayState,
    content: &ContentPath,
    roots: &[Cid],
    cid: Cid,
    source: Arc<dyn BlockSource>,
    headers: &HeaderMap,
    head: bool,
) -> Response {
    let etag = format!("\"DirIndex-cairn-{}_CID-{cid}\"", env!("CARGO_PKG_VERSION"));
    if etag_matches(headers, &etag) {
        let mut r = Response::new(Body::empty());
        *r.status_mut() = StatusCode::NOT_MODIFIED;
        common_headers(&mut r, content, roots, &etag);
        return r;
    }
    let task = tokio::task::spawn_blocking(move || reader::list(&*source, &cid));
    let entries = match tokio::time::timeout(s.timeout, task).await {
        Err(_) => {
            return plain(
                StatusCode::GATEWAY_TIMEOUT,
                format!("{cid} could not be listed within {} s", s.timeout.as_secs()),
            )
        }
        Ok(Err(e)) => return plain(StatusCode::INTERNAL_SERVER_ERROR, e),
        Ok(Ok(Err(e))) => return failure(e.into()),
        Ok(Ok(Ok(e))) => e,
    };
    let page = listing::page(&content.display(), &cid, &entries, &|c| cid_url(content, c));
    let mut r = if head {
        Response::new(Body::empty())
    } else {
        Response::new(Body::from(page))
    };
    common_headers(&mut r, content, roots, &etag);
    // A listing is generated: cache it, but not as immutable bytes.
    r.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=604800"),
    );
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    r
}

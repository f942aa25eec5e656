//! Answers made once: the response head of a plain whole-file request
//! (`GET`/`HEAD /ipfs/{cid}`, no path, query, range or condition), kept by
//! its path after the first full answer. While the memory tier holds the
//! file's block, the next such request is answered from that head and the
//! held bytes before the router sees it ([`crate::http::Shortcut`]): no
//! routing, no CID parsing, no resolution, no block source, no type
//! sniffing, no header formatting, no task hand-off. A CID's bytes never
//! change, so a head is never stale; when the block leaves memory the
//! usual path answers.

use super::request::{requested_format, Format};
use super::subdomain::subdomain_of;
use crate::block::{Cid, RAW};
use crate::dag::reader::Node;
use crate::http::RouteTally;
use crate::store::HotCache;
use axum::body::Body;
use axum::http::{header, HeaderMap, Method, Uri};
use axum::response::Response;
use bytes::Bytes;
use std::sync::Arc;

/// Heads remembered (each a few hundred bytes).
const HEADS: u64 = 16_384;

/// The remembered heads: by the request path (`/ipfs/{cid}` as the client
/// wrote it, so that answering needs no CID parsing), the CID and the head.
pub(super) struct Heads(moka::sync::Cache<Box<str>, (Cid, HeaderMap)>);

impl Heads {
    pub(super) fn new() -> Heads {
        Heads(moka::sync::Cache::new(HEADS))
    }

    /// Keeps the head of a full `200` answer of `root` to a plain request
    /// (see [`plain_path`]), when the memory tier holds the whole file in
    /// the root block (so that [`Shortcut::answer`] can use it).
    pub(super) fn remember(
        &self,
        hot: Option<&HotCache>,
        root: &Cid,
        uri: &Uri,
        headers: &HeaderMap,
        answer: &HeaderMap,
    ) {
        let Some(path) = plain_path(uri, headers) else {
            return;
        };
        if hot.is_some_and(|h| h.holds(root)) && !self.0.contains_key(path) {
            self.0.insert(path.into(), (*root, answer.clone()));
        }
    }
}

/// The gateway's [`crate::http::Shortcut`]: answers a plain request for a
/// file whose head is remembered and whose block the memory tier holds.
pub(super) struct Shortcut {
    pub(super) heads: Arc<Heads>,
    pub(super) hot: Option<Arc<HotCache>>,
    pub(super) tally: RouteTally,
}

impl Shortcut {
    /// The answer, or `None` to leave the request to the router.
    pub(super) fn answer(
        &self,
        method: &Method,
        uri: &Uri,
        headers: &HeaderMap,
    ) -> Option<Response> {
        let started = std::time::Instant::now();
        let head = match *method {
            Method::GET => false,
            Method::HEAD => true,
            _ => return None,
        };
        let path = plain_path(uri, headers)?;
        let (root, kept) = self.heads.0.get(path)?;
        let body = whole_file(self.hot.as_deref()?, &root)?;
        let mut r = Response::new(if head {
            Body::empty()
        } else {
            Body::from(body)
        });
        *r.headers_mut() = kept;
        self.tally.record(started);
        Some(r)
    }
}

/// The path of a request whose answer depends on nothing but the CID it
/// names: `/ipfs/{cid}` with no sub-path, trailing slash or query, on a
/// host that is not a subdomain gateway's, asking for the file itself
/// (not a trustless format) whole and unconditionally.
fn plain_path<'a>(uri: &'a Uri, headers: &HeaderMap) -> Option<&'a str> {
    let path = uri.path();
    let cid = path.strip_prefix("/ipfs/")?;
    if cid.is_empty() || cid.contains('/') || uri.query().is_some() {
        return None;
    }
    if [header::RANGE, header::IF_NONE_MATCH, header::IF_RANGE]
        .iter()
        .any(|h| headers.contains_key(h))
    {
        return None;
    }
    if let Some(host) = headers.get(header::HOST) {
        let host = host.to_str().ok()?;
        if subdomain_of(host).is_some() || host.contains(".ipns.") {
            return None;
        }
    }
    (requested_format(uri, headers).ok()? == Format::UnixFs).then_some(path)
}

/// The whole file `cid` names, when the memory tier holds its one block.
fn whole_file(hot: &HotCache, cid: &Cid) -> Option<Bytes> {
    let block = hot.get(cid)?;
    if cid.codec() == RAW {
        return Some(block.data().clone());
    }
    Node::decode(&block).ok()?.whole_file().cloned()
}

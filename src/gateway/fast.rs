//! Answers made once: the response head of a plain whole-file request
//! (`GET`/`HEAD /ipfs/{cid}`, no path, query, range or condition), kept by
//! CID after the first full answer. While the memory tier holds the file's
//! block, the next such request is answered from that head and the held
//! bytes: no resolution, no block source, no type sniffing, no header
//! formatting, no thread hand-off. A CID's bytes never change, so a head
//! is never stale; when the block leaves memory the usual path answers.

use super::request::ContentPath;
use crate::block::{Cid, RAW};
use crate::dag::reader::Node;
use crate::store::HotCache;
use axum::body::Body;
use axum::http::{header, HeaderMap, Uri};
use axum::response::Response;
use bytes::Bytes;

/// Heads remembered (each a few hundred bytes).
const HEADS: u64 = 16_384;

/// The remembered heads, by CID.
pub(super) struct Heads(moka::sync::Cache<Cid, HeaderMap>);

impl Heads {
    pub(super) fn new() -> Heads {
        Heads(moka::sync::Cache::new(HEADS))
    }

    /// The answer to `content` from a remembered head and the memory
    /// tier, when the request is a plain one and both are there.
    pub(super) fn answer(
        &self,
        hot: Option<&HotCache>,
        content: &ContentPath,
        uri: &Uri,
        headers: &HeaderMap,
        head: bool,
    ) -> Option<Response> {
        if !plain(content, uri, headers) {
            return None;
        }
        let kept = self.0.get(&content.root)?;
        let body = whole_file(hot?, &content.root)?;
        let mut r = Response::new(if head {
            Body::empty()
        } else {
            Body::from(body)
        });
        *r.headers_mut() = kept;
        Some(r)
    }

    /// Keeps the head of a full `200` answer to a plain request, when the
    /// memory tier holds the whole file in the root block (so that
    /// [`Heads::answer`] can use it).
    pub(super) fn remember(
        &self,
        hot: Option<&HotCache>,
        content: &ContentPath,
        uri: &Uri,
        headers: &HeaderMap,
        answer: &HeaderMap,
    ) {
        if plain(content, uri, headers)
            && hot.is_some_and(|h| h.holds(&content.root))
            && !self.0.contains_key(&content.root)
        {
            self.0.insert(content.root, answer.clone());
        }
    }
}

/// A request whose answer depends on nothing but its CID.
fn plain(content: &ContentPath, uri: &Uri, headers: &HeaderMap) -> bool {
    content.segments.is_empty()
        && !content.trailing_slash
        && content.subdomain.is_none()
        && uri.query().is_none()
        && !headers.contains_key(header::RANGE)
        && !headers.contains_key(header::IF_NONE_MATCH)
        && !headers.contains_key(header::IF_RANGE)
}

/// The whole file `cid` names, when the memory tier holds its one block.
fn whole_file(hot: &HotCache, cid: &Cid) -> Option<Bytes> {
    let block = hot.get(cid)?;
    if cid.codec() == RAW {
        return Some(block.data().clone());
    }
    Node::decode(&block).ok()?.whole_file().cloned()
}

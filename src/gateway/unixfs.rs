//! UnixFS responses: files (whole or one `Range`, typed by name or first
//! bytes), directories (`index.html`, else a listing page, after a redirect
//! to the trailing-slash URL) and symlinks.

use super::error::GatewayError;
use super::range::{self, Span};
use super::request::{query_param, Request};
use super::response::{blocking, common_headers, redirect, streamed};
use super::{listing, mime, subdomain};
use crate::block::Cid;
use crate::dag::reader::{self, FileReader, Node, ReadOptions, ResolvedPath};
use crate::dag::{BlockSource, DagError};
use crate::http::ProducerError;
use axum::body::Body;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::Response;
use bytes::Bytes;
use std::sync::Arc;

/// Bytes read from a file's start to sniff its type.
const SNIFF_BYTES: u64 = 512;

/// Serves the file, directory or symlink `content` names.
pub(super) async fn unixfs(req: &Request<'_>) -> Result<Response, GatewayError> {
    let (s, content, uri) = (req.s, &req.content, req.uri);
    let source = req.source();
    let cache = Arc::clone(s.online.node().resolve_cache());
    let (cid, mut roots, node) = if let Some((r, node)) = held(req, content.root, &content.segments)
    {
        // The whole answer may come from memory: no blocking hand-off.
        (r.cid, r.roots.to_vec(), node)
    } else {
        let (root, segments, source) = (content.root, content.segments.clone(), source.clone());
        let cache = Arc::clone(&cache);
        blocking(
            s,
            || format!("{} could not be retrieved", content.display()),
            move || {
                // The block the read starts at: a file of one block may
                // be kept in memory whole (up to `hot_cache_file_max`).
                let (r, node) = cache.resolve_node(&*source, root, &segments)?;
                Ok((r.cid, r.roots.to_vec(), node))
            },
        )
        .await?
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
                return Ok(redirect(StatusCode::MOVED_PERMANENTLY, &target));
            }
            // index.html when present.
            if let Some((index, size)) = index_html(req, cid, &source).await {
                roots.push(index);
                let target = Target {
                    cid: index,
                    size,
                    name: "index.html",
                    held: None,
                };
                return file(req, &roots, target, source).await;
            }
            listing_page(req, &roots, cid, source).await
        }
        Node::Symlink { target } => {
            let etag = format!("\"{cid}\"");
            let mut r = if req.head {
                Response::new(Body::empty())
            } else {
                Response::new(Body::from(target))
            };
            common_headers(&mut r, content, &roots, &etag);
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("inode/symlink"),
            );
            Ok(r)
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
                held: held_file(req, &node),
            };
            file(req, &roots, target, source).await
        }
    }
}

/// What `segments` under `root` name and its decoded block, when memory
/// holds both: the resolution remembered, the block in the memory tier
/// (verified when it was admitted). A block that does not decode is left
/// to the usual path, which reports it.
fn held(req: &Request<'_>, root: Cid, segments: &[String]) -> Option<(ResolvedPath, Node)> {
    let node = req.s.online.node();
    let hot = node.hot_cache()?;
    let resolved = node.resolve_cache().cached(root, segments)?;
    let block = hot.get(&resolved.cid)?;
    Some((resolved, Node::decode(&block).ok()?))
}

/// The CID and file size of directory `dir`'s `index.html`, if it has
/// one: from its remembered listing or resolution when there is one,
/// else read.
async fn index_html(
    req: &Request<'_>,
    dir: Cid,
    source: &Arc<dyn BlockSource>,
) -> Option<(Cid, u64)> {
    const INDEX: [&str; 1] = ["index.html"];
    let cache = Arc::clone(req.s.online.node().resolve_cache());
    if let Some(entries) = cache.listing(&dir) {
        let e = entries.iter().find(|e| e.name == INDEX[0])?;
        return Some((e.cid, if e.kind == "file" { e.size } else { 0 }));
    }
    let index = INDEX.map(String::from);
    if let Some((r, node)) = held(req, dir, &index) {
        return Some((r.cid, node.file_size()));
    }
    let src = Arc::clone(source);
    let read = blocking(req.s, String::new, move || -> Result<_, DagError> {
        let (r, node) = cache.resolve_node(&*src, dir, &INDEX)?;
        Ok((r.cid, node.file_size()))
    });
    read.await.ok()
}

/// A file's bytes as shared slices of its blocks, when its root holds them
/// or the memory tier holds every block beneath it: then the response is
/// made at once, with no blocking reader and no copy.
fn held_file(req: &Request<'_>, node: &Node) -> Option<Vec<Bytes>> {
    if let Some(bytes) = node.whole_file() {
        return Some(vec![bytes.clone()]);
    }
    let hot = req.s.online.node().hot_cache()?;
    reader::held_pieces(node, &|cid| hot.get(cid), reader::MAX_HELD_BLOCKS)
}

/// A file to serve: its CID, size and the name its type comes from.
struct Target<'n> {
    cid: Cid,
    size: u64,
    name: &'n str,
    /// All of its bytes, in pieces, when memory holds them
    /// ([`held_file`]).
    held: Option<Vec<Bytes>>,
}

/// Serves a file (or one range of it), streaming its bytes as its blocks
/// arrive.
async fn file(
    req: &Request<'_>,
    roots: &[Cid],
    target: Target<'_>,
    source: Arc<dyn BlockSource>,
) -> Result<Response, GatewayError> {
    let (s, content, head) = (req.s, &req.content, req.head);
    let Target {
        cid,
        size,
        name,
        held,
    } = target;
    let etag = format!("\"{cid}\"");
    if let Some(r) = req.not_modified(roots, &etag) {
        return Ok(r);
    }
    let asked = if range::if_range_holds(req.headers, &etag) {
        range::from_headers(req.headers)
    } else {
        range::RangeSpec::Whole
    };
    let Span {
        offset,
        len,
        partial,
    } = range::span(asked, size)?;
    // The type comes from the name, else from the file's first bytes: the
    // response's own first chunk when a GET sends them, else a read (a HEAD
    // answers the type its GET would).
    let by_name = mime::by_name(name);
    let sniff_first =
        by_name.is_none() && !head && offset == 0 && (len >= SNIFF_BYTES || len == size);
    let ctype = match (by_name, &held) {
        (Some(t), _) => t,
        (None, Some(pieces)) => mime::sniff(&reader::first_bytes(pieces, SNIFF_BYTES as usize)),
        (None, None) if sniff_first || size == 0 => mime::sniff(b""),
        (None, None) => {
            let src = Arc::clone(&source);
            let first = blocking(
                s,
                || "no data".to_string(),
                move || -> Result<Vec<u8>, DagError> {
                    let opts = ReadOptions::default();
                    let mut r = FileReader::new(src, cid, 0, Some(SNIFF_BYTES), opts)?;
                    let mut buf = Vec::with_capacity(SNIFF_BYTES as usize);
                    std::io::Read::read_to_end(&mut r, &mut buf).map_err(DagError::Read)?;
                    Ok(buf)
                },
            )
            .await?;
            mime::sniff(&first)
        }
    };
    let mut r = Response::new(Body::empty());
    common_headers(&mut r, content, roots, &etag);
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, ctype);
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
        return Ok(r);
    }
    if let Some(pieces) = held {
        // span() kept offset + len within size, which the pieces hold.
        if !partial && pieces.len() == 1 {
            let hot = s.online.node().hot_cache().map(|h| &**h);
            req.heads
                .remember(hot, &content.root, req.uri, req.headers, r.headers());
        }
        let mut part = reader::slice_pieces(&pieces, offset, len);
        *r.body_mut() = if part.len() == 1 {
            Body::from(part.remove(0))
        } else {
            Body::from_stream(futures::stream::iter(
                part.into_iter().map(Ok::<_, std::convert::Infallible>),
            ))
        };
        return Ok(r);
    }
    streamed(
        s,
        r,
        head,
        move |first, h| {
            if sniff_first {
                h.insert(header::CONTENT_TYPE, mime::sniff(first));
            }
        },
        move |out| -> Result<(), ProducerError> {
            let opts = ReadOptions::default().fetching_ahead(16 << 20);
            let reader = FileReader::new(source, cid, offset, Some(len), opts)?;
            for chunk in reader {
                out.send(chunk?)?;
            }
            Ok(())
        },
    )
    .await
}

/// The HTML listing of directory `cid`.
async fn listing_page(
    req: &Request<'_>,
    roots: &[Cid],
    cid: Cid,
    source: Arc<dyn BlockSource>,
) -> Result<Response, GatewayError> {
    let (s, content) = (req.s, &req.content);
    let etag = format!("\"DirIndex-cairn-{}_CID-{cid}\"", env!("CARGO_PKG_VERSION"));
    if let Some(r) = req.not_modified(roots, &etag) {
        return Ok(r);
    }
    let cache = Arc::clone(s.online.node().resolve_cache());
    let entries = match cache.listing(&cid) {
        Some(entries) => entries,
        None => {
            blocking(
                s,
                || format!("{cid} could not be listed"),
                move || cache.list(&*source, &cid),
            )
            .await?
        }
    };
    let page = listing::page(&content.display(), &cid, &entries, &|c| {
        subdomain::cid_url(content, c)
    });
    let mut r = if req.head {
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
    Ok(r)
}

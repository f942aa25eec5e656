//! Reading a gateway request: the content it names (root CID and path,
//! from the path or a subdomain host) and the response format it asks
//! for.

use super::error::GatewayError;
use super::subdomain::subdomain_of;
use super::{listing, response, GatewayState};
use crate::block::{parse_cid, Cid};
use crate::dag::BlockSource;
use axum::http::{header, HeaderMap, Uri};
use axum::response::Response;
use std::sync::Arc;

/// One request being answered: the gateway, the content it names, and
/// what it asks of it.
pub(super) struct Request<'a> {
    pub s: &'a GatewayState,
    pub content: ContentPath,
    pub uri: &'a Uri,
    pub headers: &'a HeaderMap,
    /// A HEAD request: headers only.
    pub head: bool,
    /// Cancelled when the response has been sent or dropped: fetches made
    /// for it stop then.
    pub cancel: tokio_util::sync::CancellationToken,
    /// Answers made once (a plain whole-file answer is kept there).
    pub heads: &'a super::fast::Heads,
}

impl Request<'_> {
    /// The blocks of the named DAG: local ones, else fetched from peers.
    pub fn source(&self) -> Arc<dyn BlockSource> {
        self.s
            .online
            .source_until(Some(self.content.root), self.cancel.clone())
    }

    /// A 304 when `If-None-Match` names `etag`.
    pub fn not_modified(&self, roots: &[Cid], etag: &str) -> Option<Response> {
        response::not_modified(self.headers, &self.content, roots, etag)
    }
}

/// The requested content: root CID and path segments (decoded).
pub(super) struct ContentPath {
    pub root: Cid,
    pub segments: Vec<String>,
    /// The request path ended with `/`.
    pub trailing_slash: bool,
    /// Served from `{cid}.ipfs.{domain}` (the whole host).
    pub subdomain: Option<String>,
}

impl ContentPath {
    /// `/ipfs/CID/a/b` (segments as requested, percent-encoded).
    pub fn display(&self) -> String {
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

/// Percent-decodes the segments of `path`, refusing ones that could step
/// outside the DAG or that no UnixFS name holds.
fn decode_segments(path: &str) -> Result<Vec<String>, GatewayError> {
    let mut out = Vec::new();
    for raw in path.split('/').filter(|s| !s.is_empty()) {
        let seg = percent_encoding::percent_decode_str(raw)
            .decode_utf8()
            .map_err(|_| GatewayError::SegmentNotUtf8 {
                raw: raw.to_string(),
            })?
            .into_owned();
        if seg == "." || seg == ".." || seg.contains('/') || seg.contains('\0') {
            return Err(GatewayError::BadSegment { segment: seg });
        }
        out.push(seg);
    }
    Ok(out)
}

/// The content a request names: `/ipfs/CID/path`, or `/path` on a
/// `{cid}.ipfs.{domain}` host.
pub(super) fn parse_request(uri: &Uri, host: Option<&str>) -> Result<ContentPath, GatewayError> {
    let path = uri.path();
    let trailing_slash = path.ends_with('/');
    if let Some((label, _)) = host.and_then(subdomain_of) {
        let root = parse_cid(label).map_err(|source| GatewayError::BadSubdomainCid {
            label: label.to_string(),
            source,
        })?;
        return Ok(ContentPath {
            root,
            segments: decode_segments(path)?,
            trailing_slash,
            subdomain: host.map(String::from),
        });
    }
    let rest = path
        .strip_prefix("/ipfs/")
        .ok_or(GatewayError::NotIpfsPath)?;
    let (cid_text, sub) = rest.split_once('/').unwrap_or((rest, ""));
    let root = parse_cid(cid_text).map_err(|source| GatewayError::BadCid {
        text: cid_text.to_string(),
        source,
    })?;
    Ok(ContentPath {
        root,
        segments: decode_segments(sub)?,
        trailing_slash,
        subdomain: None,
    })
}

/// The response format asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Format {
    /// Files, directories and symlinks as themselves.
    UnixFs,
    /// The one block the path names (trustless).
    Raw,
    /// A CAR of the path's blocks and the DAG below (trustless).
    Car,
}

/// The value of query parameter `key`, if given.
pub(super) fn query_param<'a>(uri: &'a Uri, key: &str) -> Option<std::borrow::Cow<'a, str>> {
    form_urlencoded::parse(uri.query().unwrap_or("").as_bytes())
        .find(|(k, _)| k == key)
        .map(|(_, v)| v)
}

/// `?format=`, else the first trustless type in `Accept`, else UnixFS.
pub(super) fn requested_format(uri: &Uri, headers: &HeaderMap) -> Result<Format, GatewayError> {
    if let Some(f) = query_param(uri, "format") {
        return match f.as_ref() {
            "raw" => Ok(Format::Raw),
            "car" => Ok(Format::Car),
            other => Err(GatewayError::UnsupportedFormat {
                format: other.to_string(),
            }),
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

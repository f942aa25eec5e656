//! IPNS on the gateway: `/ipns/{name}[/path]` and `{name}.ipns.{domain}`
//! hosts are resolved (recursively, through the node's cache) to the
//! `/ipfs/` path they name and served as that, with `Cache-Control` from
//! the record's TTL instead of `immutable` and `X-Ipfs-Path` naming the
//! `/ipns/` path; `?format=ipns-record` (or `Accept:
//! application/vnd.ipfs.ipns-record`) answers the name's best signed record
//! itself, for trustless clients that verify it.
//!
//! DNSLink: `/ipns/example.org[/path]` resolves the domain's
//! `_dnslink.example.org` TXT record (cacheable for its TTL); a subdomain
//! host inlines the domain in one label (`example-org.ipns.{domain}`, `-`
//! written `--`), as the subdomain gateway spec says. A domain without a
//! DNSLink is a 404, a malformed or ambiguous DNSLink or a failed DNS
//! lookup a 502.

use super::error::GatewayError;
use super::request::{parse_request, query_param, ContentPath};
use super::GatewayState;
use crate::names::dnslink::uninline;
use crate::names::ipns::{parse_name, ResolveOptions};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use std::time::Duration;

/// The media type of a serialized IPNS record.
const IPNS_RECORD: &str = "application/vnd.ipfs.ipns-record";

/// `/ipns/NAME/rest` named by a request: its path, or its host
/// `NAME.ipns.{domain}` and its path (a label that is no key's name but
/// has a `-` is an inlined DNSLink domain).
pub(super) fn named(uri: &Uri, host: Option<&str>) -> Option<String> {
    if let Some(label) = host.and_then(|h| h.split_once(".ipns.")).map(|(l, _)| l) {
        if !label.is_empty() && !label.contains('.') {
            let name = if parse_name(label).is_err() && label.contains('-') {
                uninline(label)
            } else {
                label.to_string()
            };
            return Some(format!("/ipns/{name}{}", uri.path()));
        }
    }
    uri.path()
        .starts_with("/ipns/")
        .then(|| uri.path().to_string())
}

/// Whether the request asks for the signed record itself.
pub(super) fn wants_record(uri: &Uri, headers: &HeaderMap) -> bool {
    if let Some(f) = query_param(uri, "format") {
        return f == "ipns-record";
    }
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| {
            a.split(',')
                .any(|m| m.split(';').next().map(str::trim) == Some(IPNS_RECORD))
        })
}

/// The content `/ipns/NAME/rest` names now, and how long that may be
/// cached.
pub(super) async fn resolve(
    s: &GatewayState,
    ipns_path: &str,
) -> Result<(ContentPath, Duration), GatewayError> {
    let resolving = s.online.node().names().resolve_ttl(
        ipns_path,
        ResolveOptions::default(),
        Some(&s.online.net().swarm),
    );
    let (path, ttl) = tokio::time::timeout(s.timeout, resolving)
        .await
        .map_err(|_| GatewayError::Timeout {
            what: format!("{ipns_path} could not be resolved"),
            timeout: s.timeout,
        })?
        .map_err(|e| GatewayError::Node(e.into()))?;
    let uri: Uri = path.parse().map_err(|_| GatewayError::NotIpfsPath)?;
    Ok((parse_request(&uri, None)?, ttl))
}

/// The name's best record, as `application/vnd.ipfs.ipns-record`.
pub(super) async fn record(
    s: &GatewayState,
    ipns_path: &str,
    head: bool,
) -> Result<Response, GatewayError> {
    let (name, _) = parse_name(ipns_path).map_err(|e| GatewayError::Node(e.into()))?;
    let lookup = s
        .online
        .node()
        .names()
        .best_record(&name, Some(&s.online.net().swarm));
    let (bytes, rec) = tokio::time::timeout(s.timeout, lookup)
        .await
        .map_err(|_| GatewayError::Timeout {
            what: format!("the record of {ipns_path} could not be found"),
            timeout: s.timeout,
        })?
        .map_err(|e| GatewayError::Node(e.into()))?;
    let text = crate::names::keystore::ipns_name(&name);
    let mut r = if head {
        StatusCode::OK.into_response()
    } else {
        (StatusCode::OK, bytes).into_response()
    };
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(IPNS_RECORD));
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{text}.ipns-record\"")) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    set_cache(&mut r, rec.ttl, &format!("/ipns/{text}"));
    Ok(r)
}

/// Marks a response to an `/ipns/` request: cacheable for `ttl` (not
/// immutable), `X-Ipfs-Path` the path asked for.
pub(super) fn set_cache(r: &mut Response, ttl: Duration, ipns_path: &str) {
    let h = r.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&format!("public, max-age={}", ttl.as_secs())) {
        h.insert(header::CACHE_CONTROL, v);
    }
    if let Ok(v) = HeaderValue::from_str(ipns_path) {
        h.insert("x-ipfs-path", v);
    }
}

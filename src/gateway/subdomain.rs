//! Subdomain gateways: `{cidv1}.ipfs.{domain}` hosts, links that stay on
//! them, and the redirect of `localhost` path requests to them (each site
//! its own origin).

use super::request::ContentPath;
use crate::block::Cid;
use axum::http::Uri;

/// `{label}.ipfs.{rest}` → (label, rest).
pub(super) fn subdomain_of(host: &str) -> Option<(&str, &str)> {
    let (label, rest) = host.split_once(".ipfs.")?;
    (!label.is_empty() && !label.contains('.')).then_some((label, rest))
}

/// The URL of `cid` for links on a page served at `content`.
pub(super) fn cid_url(content: &ContentPath, cid: &Cid) -> String {
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

/// Where a path request for `content` on `host` moves to when it is a
/// `localhost` host: `http://{cidv1}.ipfs.localhost[:port]/rest?query`.
pub(super) fn localhost_target(uri: &Uri, host: &str, content: &ContentPath) -> Option<String> {
    let (name, port) = host.split_once(':').map_or((host, ""), |(n, p)| (n, p));
    if name != "localhost" {
        return None;
    }
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
    Some(target)
}

//! The HTTP gateway (read-only): `GET`/`HEAD /ipfs/{cid}[/{path}]` as the
//! IPFS path, subdomain and trustless gateway specs describe.
//!
//! - Files stream with a Content-Type from the name or the first bytes
//!   (the same for HEAD); `Range` (one range, suffix ranges too) gives 206
//!   reading only the blocks the range needs, an unsatisfiable range 416;
//!   a malformed range, several ranges, or an `If-Range` that does not
//!   match the `ETag` are ignored (200, the whole file).
//! - Directories serve their `index.html`, else an HTML listing; a
//!   directory URL without its trailing `/` is redirected to it.
//! - `?format=raw` / `Accept: application/vnd.ipld.raw` gives the block;
//!   `?format=car` / `application/vnd.ipld.car` a CAR v1 stream with
//!   `dag-scope` and `entity-bytes` (see `dag::scope`).
//! - `/ipns/{name}[/path]` and `{name}.ipns.{domain}` resolve the IPNS
//!   name and serve what it points at, cacheable for the record's TTL;
//!   `?format=ipns-record` gives the signed record; `/ipns/example.org`
//!   and `example-org.ipns.{domain}` resolve DNSLink (see `ipns.rs`).
//! - `Host: {cidv1}.ipfs.{domain}` serves the same content from its own
//!   origin; with `[gateway] subdomain_redirect`, path requests on a
//!   `localhost` host are redirected there.
//! - Headers: `ETag` (the CID, per format and range), `Cache-Control:
//!   public, max-age=29030400, immutable`, `X-Ipfs-Path`, `X-Ipfs-Roots`;
//!   `If-None-Match` gives 304.
//! - Content that is not local is fetched from the network; a response
//!   whose first byte is not ready within `[gateway] timeout` is a 504, a
//!   missing name in a directory 404, a malformed CID or path 400, each
//!   with a one-line reason ([`GatewayError`]). Requests only ever read the
//!   DAG they name.
//!
//! Where each part lives: `request.rs` reads the request (`range.rs` its
//! `Range`), `subdomain.rs` handles `{cid}.ipfs.{domain}` hosts, `unixfs.rs`
//! serves files, directories and symlinks (`listing.rs` the listing page,
//! `mime.rs` the content types), `trustless.rs` raw blocks and CARs,
//! `response.rs` what every response shares, `error.rs` the error statuses.

mod error;
mod fast;
mod ipns;
mod listing;
pub mod mime;
pub mod range;
mod request;
mod response;
mod subdomain;
mod trustless;
mod unixfs;

pub use error::GatewayError;

use crate::node::online::OnlineNode;
use axum::extract::State;
use axum::http::{header, HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Router;
use request::Format;
use std::sync::Arc;
use std::time::Duration;

/// What the gateway needs.
#[derive(Clone)]
pub struct GatewayState {
    /// The node whose content is served (fetching what is not local).
    pub online: Arc<OnlineNode>,
    /// A response's first byte must be ready within this.
    pub timeout: Duration,
    /// Redirect path requests on `localhost` to the subdomain form.
    pub subdomain_redirect: bool,
}

/// What the router's requests share: the state and the answers made once.
#[derive(Clone)]
struct Served {
    s: GatewayState,
    heads: Arc<fast::Heads>,
}

/// The gateway's routes, for [`crate::http::serve`], with the shortcut
/// that answers cached small files before them (not with
/// `subdomain_redirect`, whose redirects depend on the host).
pub fn router(state: GatewayState) -> crate::http::App {
    let counter = state.online.request_counter();
    let heads = Arc::new(fast::Heads::new());
    let shortcut = (!state.subdomain_redirect).then(|| {
        let fast = fast::Shortcut {
            heads: Arc::clone(&heads),
            hot: state.online.node().hot_cache().cloned(),
            tally: counter.tally("gateway", "ipfs_path"),
        };
        Arc::new(move |method: &Method, uri: &Uri, headers: &HeaderMap| {
            fast.answer(method, uri, headers)
        }) as crate::http::Shortcut
    });
    let router = Router::new()
        .fallback(handle)
        .layer(axum::middleware::from_fn_with_state(
            (
                counter,
                crate::http::Surface {
                    name: "gateway",
                    route_of,
                },
            ),
            crate::http::count_requests,
        ))
        .with_state(Served { s: state, heads });
    crate::http::App { router, shortcut }
}

/// The read route of a gateway request, for its latency histogram:
/// `ipfs_path` (`/ipfs/…`), `ipns_path` (`/ipns/…`), `subdomain`
/// (`{cid}.ipfs.` and `{name}.ipns.` hosts), `trustless_raw`,
/// `trustless_car` (either form, by `?format=` or `Accept`), `ipns_record`;
/// anything else none.
fn route_of(request: &axum::extract::Request) -> Option<&'static str> {
    let (method, uri, headers) = (request.method(), request.uri(), request.headers());
    if method != Method::GET && method != Method::HEAD {
        return None;
    }
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("");
    let ipns_host = host
        .split_once(".ipns.")
        .is_some_and(|(label, _)| !label.is_empty() && !label.contains('.'));
    let subdomain = ipns_host || subdomain::subdomain_of(host).is_some();
    let path = uri.path();
    let ipns = ipns_host || path.starts_with("/ipns/");
    if ipns && ipns::wants_record(uri, headers) {
        return Some("ipns_record");
    }
    match request::requested_format(uri, headers).ok()? {
        Format::Raw => Some("trustless_raw"),
        Format::Car => Some("trustless_car"),
        Format::UnixFs if subdomain => Some("subdomain"),
        Format::UnixFs if ipns => Some("ipns_path"),
        Format::UnixFs => path.starts_with("/ipfs/").then_some("ipfs_path"),
    }
}

/// Every request: method, content, subdomain redirect, then the format.
async fn handle(
    State(served): State<Served>,
    method: Method,
    headers: HeaderMap,
    uri: Uri,
) -> Response {
    respond(&served, method, &headers, &uri)
        .await
        .unwrap_or_else(IntoResponse::into_response)
}

async fn respond(
    served: &Served,
    method: Method,
    headers: &HeaderMap,
    uri: &Uri,
) -> Result<Response, GatewayError> {
    if method != Method::GET && method != Method::HEAD {
        return Err(GatewayError::ReadOnly);
    }
    let s = &served.s;
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
    let named = ipns::named(uri, host);
    let (content, ipns_ttl) = match &named {
        Some(path) if ipns::wants_record(uri, headers) => {
            return ipns::record(s, path, method == Method::HEAD).await;
        }
        Some(path) => {
            let (content, ttl) = ipns::resolve(s, path).await?;
            (content, Some(ttl))
        }
        None => (request::parse_request(uri, host)?, None),
    };
    if s.subdomain_redirect && content.subdomain.is_none() && named.is_none() {
        if let Some(target) = host.and_then(|h| subdomain::localhost_target(uri, h, &content)) {
            return Ok(response::redirect(StatusCode::MOVED_PERMANENTLY, &target));
        }
    }
    let format = request::requested_format(uri, headers)?;
    let head = method == Method::HEAD;
    let turn = tokio::time::timeout(s.timeout, s.online.remote_turn(content.root))
        .await
        .map_err(|_| GatewayError::Timeout {
            what: format!("{} could not be retrieved", content.display()),
            timeout: s.timeout,
        })??;
    let req = request::Request {
        s,
        content,
        uri,
        headers,
        head,
        cancel: turn.cancel_token(),
        heads: &served.heads,
    };
    let mut answered = match format {
        Format::Raw => trustless::raw(&req).await,
        Format::Car => trustless::car(&req).await,
        Format::UnixFs => unixfs::unixfs(&req).await,
    };
    if let (Ok(r), Some(ttl), Some(path)) = (&mut answered, ipns_ttl, &named) {
        ipns::set_cache(r, ttl, path);
    }
    // The request's fetches (and its turn among remote fetches) last as
    // long as its body is being sent, and end when the client goes away
    // (also before an answer: this future is dropped then).
    Ok(crate::http::holding(
        answered.unwrap_or_else(IntoResponse::into_response),
        turn,
    ))
}

#[cfg(test)]
mod tests {
    use super::route_of;

    fn route(uri: &str, headers: &[(&str, &str)]) -> Option<&'static str> {
        let mut request = axum::http::Request::builder().method("GET").uri(uri);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        route_of(&request.body(axum::body::Body::empty()).expect("request"))
    }

    #[test]
    fn each_read_path_has_its_route() {
        let cid = "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku";
        assert_eq!(route(&format!("/ipfs/{cid}/a/b"), &[]), Some("ipfs_path"));
        assert_eq!(route("/ipns/k51abc/x", &[]), Some("ipns_path"));
        let host = format!("{cid}.ipfs.localhost:8080");
        assert_eq!(route("/a", &[("Host", &host)]), Some("subdomain"));
        assert_eq!(
            route("/", &[("Host", "en-wikipedia-org.ipns.localhost")]),
            Some("subdomain")
        );
        assert_eq!(
            route(&format!("/ipfs/{cid}?format=raw"), &[]),
            Some("trustless_raw")
        );
        let car = [("Accept", "application/vnd.ipld.car; version=1")];
        assert_eq!(route(&format!("/ipfs/{cid}"), &car), Some("trustless_car"));
        assert_eq!(
            route("/", &[("Host", &host), car[0]]),
            Some("trustless_car")
        );
        assert_eq!(
            route("/ipns/k51abc?format=ipns-record", &[]),
            Some("ipns_record")
        );
        // Not a read path, or not one the gateway serves: no route label.
        assert_eq!(route("/favicon.ico", &[]), None);
        assert_eq!(route(&format!("/ipfs/{cid}?format=tar"), &[]), None);
        let post = axum::http::Request::builder()
            .method("POST")
            .uri(format!("/ipfs/{cid}"))
            .body(axum::body::Body::empty())
            .expect("request");
        assert_eq!(route_of(&post), None);
    }
}

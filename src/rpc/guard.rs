//! Who may call the RPC API. Every API request passes `authorize` before
//! a handler sees it; it refuses, in this order:
//!
//! 1. a `Host` that is not an address the API listens on (403), so a web
//!    page on a name that an attacker re-points at 127.0.0.1 (DNS
//!    rebinding) is not served;
//! 2. a request sent by a browser for a page of another origin (403): an
//!    `Origin` header (or, without one, the origin of the `Referer`) that
//!    is not in `[api] allowed_origins`, `Origin: null` (sandboxed frames,
//!    `file:` pages), and, with neither header, `Sec-Fetch-Site:
//!    cross-site` or `same-site`. HTML forms and `fetch(.., {mode:
//!    "no-cors"})` send no preflight, so this check is what keeps them from
//!    adding, unpinning or shutting down;
//! 3. two `Authorization` headers (400), and, when `[api] tokens` are set,
//!    a missing or wrong `Bearer` token (401; the scheme is matched without
//!    regard to case, the token in constant time).
//!
//! Tools that are not browsers (the CLI, curl, Kubo's client libraries)
//! send no `Origin`, `Referer` or `Sec-Fetch-Site` and pass step 2.
//! [`ApiGuard::new`] checks the settings at start-up: an empty or short
//! token, an origin that is not `scheme://host[:port]`, or an address
//! beyond loopback without tokens stop the daemon before it serves.

use super::server::ApiError;
use crate::node::config::ApiSettings;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use subtle::ConstantTimeEq;

/// The shortest bearer token accepted in `[api] tokens`, in bytes.
pub const MIN_TOKEN_BYTES: usize = 16;

/// Settings that would leave the API open; the daemon refuses to start.
#[derive(Debug, thiserror::Error)]
pub enum GuardError {
    /// A token is the empty string (it would match a missing header).
    #[error("[api] tokens: token {index} is empty; use a random string of at least {MIN_TOKEN_BYTES} bytes")]
    EmptyToken {
        /// Position of the token in the list (from 0).
        index: usize,
    },
    /// A token is too short to resist guessing.
    #[error("[api] tokens: token {index} is {len} bytes; at least {MIN_TOKEN_BYTES} are needed")]
    ShortToken {
        /// Position of the token in the list (from 0).
        index: usize,
        /// Its length in bytes.
        len: usize,
    },
    /// An allowed origin is not `scheme://host[:port]`.
    #[error("[api] allowed_origins: {origin:?} is not an origin (http[s]://host[:port], nothing after it)")]
    BadOrigin {
        /// The origin as written.
        origin: String,
    },
    /// The API would listen beyond loopback with no token.
    #[error(
        "the API on {addr} would be reachable from other machines without \
         authentication: set [api] tokens in config.toml, or listen on 127.0.0.1"
    )]
    Unauthenticated {
        /// The address the API was to listen on.
        addr: SocketAddr,
    },
}

/// A web origin: scheme, lower-case host (IPv6 in brackets) and port.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Origin {
    scheme: String,
    host: String,
    port: u16,
}

impl Origin {
    /// The origin of an absolute `http`/`https` URL; `None` for anything
    /// else (`null`, `file:`, relative or malformed URLs).
    fn of_url(text: &str) -> Option<Origin> {
        let uri: Uri = text.parse().ok()?;
        let scheme = uri.scheme_str()?.to_ascii_lowercase();
        let default_port = match scheme.as_str() {
            "http" => 80,
            "https" => 443,
            _ => return None,
        };
        let authority = uri.authority()?;
        if authority.as_str().contains('@') || authority.host().is_empty() {
            return None;
        }
        Some(Origin {
            scheme,
            host: authority.host().to_ascii_lowercase(),
            port: authority.port_u16().unwrap_or(default_port),
        })
    }

    /// Parses an `Origin` header or a configured origin: an absolute URL
    /// with nothing after the authority (a trailing `/` is tolerated).
    fn parse(text: &str) -> Option<Origin> {
        let rest = text.split_once("://")?.1;
        let after = rest.find('/').map_or("", |i| &rest[i..]);
        if !(after.is_empty() || after == "/") || rest.contains(['?', '#']) {
            return None;
        }
        Origin::of_url(text)
    }
}

/// Why a request was refused.
#[derive(Debug, PartialEq, Eq)]
enum Refusal {
    /// `Host` is not an address of the API.
    Host(String),
    /// Sent by a browser from a page whose origin is not allowed.
    Origin(String),
    /// More than one `Authorization` header.
    TwoAuthorizations,
    /// Missing or wrong bearer token.
    Token,
}

impl Refusal {
    fn into_error(self) -> ApiError {
        match self {
            Refusal::Host(host) => ApiError(
                StatusCode::FORBIDDEN,
                format!(
                    "Host {host:?} is not an address this API listens on \
                     (use 127.0.0.1, localhost or [::1] with its port)"
                ),
            ),
            Refusal::Origin(what) => ApiError(
                StatusCode::FORBIDDEN,
                format!("{what}: requests from web pages are refused unless their origin is in [api] allowed_origins"),
            ),
            Refusal::TwoAuthorizations => ApiError(
                StatusCode::BAD_REQUEST,
                "more than one Authorization header".into(),
            ),
            Refusal::Token => ApiError(
                StatusCode::UNAUTHORIZED,
                "missing or wrong bearer token (see [api] tokens)".into(),
            ),
        }
    }
}

/// What each API request is checked against, built once at start-up.
#[derive(Debug)]
pub struct ApiGuard {
    tokens: Vec<Vec<u8>>,
    allowed_origins: Vec<Origin>,
    /// Lower-case `host:port` values accepted in `Host`.
    hosts: Vec<String>,
    /// The listening port, when the API listens on every address (then
    /// any IP literal with this port is a valid `Host`).
    any_ip_port: Option<u16>,
}

impl ApiGuard {
    /// Checks `settings` for an API that is to listen on `listen`
    /// (refusing empty or short tokens, malformed origins, and an address
    /// beyond loopback without tokens). The guard accepts no `Host` until
    /// [`ApiGuard::listening_on`] names the bound address.
    pub fn new(settings: &ApiSettings, listen: SocketAddr) -> Result<ApiGuard, GuardError> {
        for (index, token) in settings.tokens.iter().enumerate() {
            match token.len() {
                0 => return Err(GuardError::EmptyToken { index }),
                len if len < MIN_TOKEN_BYTES => return Err(GuardError::ShortToken { index, len }),
                _ => {}
            }
        }
        if !listen.ip().is_loopback() && settings.tokens.is_empty() {
            return Err(GuardError::Unauthenticated { addr: listen });
        }
        let allowed_origins = settings
            .allowed_origins
            .iter()
            .map(|o| Origin::parse(o).ok_or_else(|| GuardError::BadOrigin { origin: o.clone() }))
            .collect::<Result<_, _>>()?;
        Ok(ApiGuard {
            tokens: settings
                .tokens
                .iter()
                .map(|t| t.as_bytes().to_vec())
                .collect(),
            allowed_origins,
            hosts: Vec::new(),
            any_ip_port: None,
        })
    }

    /// The guard for the API bound at `bound`: `Host` may be 127.0.0.1,
    /// localhost or `[::1]` with its port, or the bound address itself (any
    /// IP address of this machine when bound to 0.0.0.0 or `[::]`).
    pub fn listening_on(mut self, bound: SocketAddr) -> ApiGuard {
        let port = bound.port();
        let mut names = vec![
            "127.0.0.1".to_string(),
            "localhost".to_string(),
            "[::1]".to_string(),
        ];
        if bound.ip().is_unspecified() {
            self.any_ip_port = Some(port);
        } else {
            let ip = match bound.ip() {
                IpAddr::V4(ip) => ip.to_string(),
                IpAddr::V6(ip) => format!("[{ip}]"),
            };
            names.push(ip);
        }
        self.hosts = names.iter().map(|n| format!("{n}:{port}")).collect();
        if port == 80 {
            // Clients leave out the scheme's default port.
            self.hosts.extend(names);
        }
        self
    }

    /// Whether `host` (a `Host` header's value) names this API.
    fn host_allowed(&self, host: &str) -> bool {
        let host = host.to_ascii_lowercase();
        if self.hosts.contains(&host) {
            return true;
        }
        let Some(port) = self.any_ip_port else {
            return false;
        };
        let (name, given_port) = match host.rsplit_once(':') {
            Some((name, p)) if !p.contains(']') => (name, p.parse().ok()),
            _ => (host.as_str(), Some(80)),
        };
        let name = name.trim_start_matches('[').trim_end_matches(']');
        given_port == Some(port) && name.parse::<IpAddr>().is_ok()
    }

    /// Whether the request comes from a web page the API must not serve.
    fn check_origin(&self, headers: &HeaderMap) -> Result<(), Refusal> {
        let allowed =
            |o: &Option<Origin>| o.as_ref().is_some_and(|o| self.allowed_origins.contains(o));
        let mut origins = headers.get_all(header::ORIGIN).iter();
        if let Some(origin) = origins.next() {
            let text = String::from_utf8_lossy(origin.as_bytes());
            if origins.next().is_some() {
                return Err(Refusal::Origin("more than one Origin header".into()));
            }
            if !allowed(&Origin::parse(&text)) {
                return Err(Refusal::Origin(format!("Origin {text:?}")));
            }
            return Ok(());
        }
        if let Some(referer) = headers.get(header::REFERER) {
            let text = String::from_utf8_lossy(referer.as_bytes());
            if !allowed(&Origin::of_url(&text)) {
                return Err(Refusal::Origin(format!("Referer {text:?}")));
            }
            return Ok(());
        }
        match headers.get("sec-fetch-site").map(|v| v.as_bytes()) {
            Some(site @ (b"cross-site" | b"same-site")) => Err(Refusal::Origin(format!(
                "Sec-Fetch-Site {:?} without Origin",
                String::from_utf8_lossy(site)
            ))),
            _ => Ok(()),
        }
    }

    /// Whether the request carries one of the tokens (when any are set).
    fn check_token(&self, headers: &HeaderMap) -> Result<(), Refusal> {
        let mut values = headers.get_all(header::AUTHORIZATION).iter();
        let first = values.next();
        if values.next().is_some() {
            return Err(Refusal::TwoAuthorizations);
        }
        if self.tokens.is_empty() {
            return Ok(());
        }
        let given = first
            .and_then(|v| bearer_token(v.as_bytes()))
            .ok_or(Refusal::Token)?;
        let matched = self.tokens.iter().fold(subtle::Choice::from(0), |acc, t| {
            acc | t.as_slice().ct_eq(given)
        });
        if bool::from(matched) {
            Ok(())
        } else {
            Err(Refusal::Token)
        }
    }

    /// All the checks, in the order the module comment gives.
    fn check(&self, headers: &HeaderMap) -> Result<(), Refusal> {
        let host = headers
            .get(header::HOST)
            .map(|h| String::from_utf8_lossy(h.as_bytes()).into_owned())
            .unwrap_or_default();
        if !self.host_allowed(&host) {
            return Err(Refusal::Host(host));
        }
        self.check_origin(headers)?;
        self.check_token(headers)
    }
}

/// The token of an `Authorization: Bearer TOKEN` value, the scheme in any
/// case (RFC 9110 §11.1); `None` for another scheme or no token.
fn bearer_token(value: &[u8]) -> Option<&[u8]> {
    let space = value.iter().position(|&b| b == b' ')?;
    let (scheme, rest) = value.split_at(space);
    if !scheme.eq_ignore_ascii_case(b"bearer") {
        return None;
    }
    let start = rest.iter().position(|&b| b != b' ')?;
    Some(&rest[start..])
}

/// The middleware: runs the request only if [`ApiGuard`] lets it through,
/// otherwise answers with the refusal in Kubo's error shape.
pub(crate) async fn authorize(
    State(guard): State<Arc<ApiGuard>>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    match guard.check(request.headers()) {
        Ok(()) => next.run(request).await,
        Err(refusal) => {
            tracing::debug!(uri = %request.uri(), ?refusal, "API request refused");
            refusal.into_error().into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOKEN: &str = "0123456789abcdef-token";

    fn settings(tokens: &[&str], origins: &[&str]) -> ApiSettings {
        ApiSettings {
            tokens: tokens.iter().map(|t| t.to_string()).collect(),
            allowed_origins: origins.iter().map(|o| o.to_string()).collect(),
            ..ApiSettings::default()
        }
    }

    fn guard(tokens: &[&str], origins: &[&str]) -> ApiGuard {
        let at: SocketAddr = "127.0.0.1:5001".parse().unwrap();
        ApiGuard::new(&settings(tokens, origins), at)
            .unwrap()
            .listening_on(at)
    }

    /// Headers with `Host: 127.0.0.1:5001` plus `extra`.
    fn headers(extra: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::HOST, "127.0.0.1:5001".parse().unwrap());
        for (k, v) in extra {
            let name: header::HeaderName = k.parse().unwrap();
            h.append(name, v.parse().unwrap());
        }
        h
    }

    fn refused_origin(r: Result<(), Refusal>) -> bool {
        matches!(r, Err(Refusal::Origin(_)))
    }

    #[test]
    fn tools_without_browser_headers_pass() {
        let g = guard(&[], &[]);
        assert_eq!(g.check(&headers(&[])), Ok(()));
        assert_eq!(g.check(&headers(&[("sec-fetch-site", "none")])), Ok(()));
        assert_eq!(g.check(&headers(&[("sec-fetch-mode", "cors")])), Ok(()));
    }

    #[test]
    fn pages_of_other_origins_are_refused() {
        let g = guard(&[], &[]);
        for (k, v) in [
            ("origin", "http://evil.example"),
            ("origin", "null"),
            ("origin", "http://127.0.0.1:5001"),
            ("referer", "http://evil.example/page.html"),
            ("referer", "about:blank"),
            ("sec-fetch-site", "cross-site"),
            ("sec-fetch-site", "same-site"),
        ] {
            assert!(refused_origin(g.check(&headers(&[(k, v)]))), "{k}: {v}");
        }
    }

    #[test]
    fn allowed_origins_pass_in_any_spelling() {
        let g = guard(&[], &["http://WebUI.example:8080", "https://app.example/"]);
        for (k, v) in [
            ("origin", "http://webui.example:8080"),
            ("origin", "https://app.example"),
            ("origin", "https://app.example:443"),
            ("referer", "http://webui.example:8080/index.html?x=1"),
        ] {
            let h = headers(&[(k, v), ("sec-fetch-site", "cross-site")]);
            assert_eq!(g.check(&h), Ok(()), "{k}: {v}");
        }
        for (k, v) in [
            ("origin", "http://webui.example"),
            ("origin", "http://app.example"),
            ("origin", "https://app.example.evil.example"),
            ("referer", "http://webui.example:8081/"),
        ] {
            assert!(refused_origin(g.check(&headers(&[(k, v)]))), "{k}: {v}");
        }
        let two = headers(&[
            ("origin", "https://app.example"),
            ("origin", "http://evil.example"),
        ]);
        assert!(refused_origin(g.check(&two)));
    }

    #[test]
    fn host_must_name_the_api() {
        let g = guard(&[], &[]);
        for host in [
            "127.0.0.1:5001",
            "localhost:5001",
            "LOCALHOST:5001",
            "[::1]:5001",
        ] {
            let mut h = headers(&[]);
            h.insert(header::HOST, host.parse().unwrap());
            assert_eq!(g.check(&h), Ok(()), "{host}");
        }
        for host in [
            "evil.example:5001",
            "127.0.0.1:5002",
            "127.0.0.1",
            "10.0.0.1:5001",
        ] {
            let mut h = headers(&[]);
            h.insert(header::HOST, host.parse().unwrap());
            assert_eq!(g.check(&h), Err(Refusal::Host(host.into())), "{host}");
        }
        let mut h = headers(&[]);
        h.remove(header::HOST);
        assert_eq!(g.check(&h), Err(Refusal::Host(String::new())));
    }

    #[test]
    fn host_may_be_the_bound_address_or_any_ip_when_unspecified() {
        let s = settings(&[TOKEN], &[]);
        let at: SocketAddr = "192.0.2.7:80".parse().unwrap();
        let g = ApiGuard::new(&s, at).unwrap().listening_on(at);
        assert!(g.host_allowed("192.0.2.7:80"));
        assert!(g.host_allowed("192.0.2.7"));
        assert!(g.host_allowed("localhost"));
        assert!(!g.host_allowed("192.0.2.8:80"));
        let any: SocketAddr = "[::]:5001".parse().unwrap();
        let g = ApiGuard::new(&s, any).unwrap().listening_on(any);
        assert!(g.host_allowed("192.0.2.8:5001"));
        assert!(g.host_allowed("[2001:db8::1]:5001"));
        assert!(!g.host_allowed("192.0.2.8:5002"));
        assert!(!g.host_allowed("rebound.example:5001"));
    }

    #[test]
    fn tokens_are_checked_with_a_case_blind_bearer_scheme() {
        let g = guard(&[TOKEN, "another-token-of-16+"], &[]);
        for value in [
            format!("Bearer {TOKEN}"),
            format!("bearer {TOKEN}"),
            format!("BEARER   {TOKEN}"),
            "Bearer another-token-of-16+".to_string(),
        ] {
            let h = headers(&[("authorization", &value)]);
            assert_eq!(g.check(&h), Ok(()), "{value}");
        }
        for value in [
            format!("Basic {TOKEN}"),
            format!("Bearer{TOKEN}"),
            format!("Bearer {TOKEN}x"),
            "Bearer ".to_string(),
            "Bearer 0123456789abcdef-toke".to_string(),
        ] {
            let h = headers(&[("authorization", &value)]);
            assert_eq!(g.check(&h), Err(Refusal::Token), "{value}");
        }
        assert_eq!(g.check(&headers(&[])), Err(Refusal::Token));
        let bearer = format!("Bearer {TOKEN}");
        let two = headers(&[("authorization", &bearer), ("authorization", &bearer)]);
        assert_eq!(g.check(&two), Err(Refusal::TwoAuthorizations));
    }

    #[test]
    fn empty_short_or_unneeded_settings_are_refused() {
        let lo: SocketAddr = "127.0.0.1:0".parse().unwrap();
        let err = |t: &[&str], o: &[&str], at| ApiGuard::new(&settings(t, o), at).unwrap_err();
        assert!(matches!(
            err(&[""], &[], lo),
            GuardError::EmptyToken { index: 0 }
        ));
        assert!(matches!(
            err(&[TOKEN, "short"], &[], lo),
            GuardError::ShortToken { index: 1, len: 5 }
        ));
        let anywhere: SocketAddr = "0.0.0.0:0".parse().unwrap();
        assert!(matches!(
            err(&[], &[], anywhere),
            GuardError::Unauthenticated { .. }
        ));
        assert!(matches!(
            err(&[""], &[], anywhere),
            GuardError::EmptyToken { .. }
        ));
        for origin in [
            "*",
            "null",
            "evil.example",
            "http://a.example/path",
            "ftp://a.example",
        ] {
            assert!(
                matches!(err(&[], &[origin], lo), GuardError::BadOrigin { .. }),
                "{origin}"
            );
        }
        assert!(ApiGuard::new(&settings(&[TOKEN], &[]), anywhere).is_ok());
    }
}

//! [`GatewayError`]: why a gateway request gets no content, and the status
//! and one-line plain-text reason each answer carries.

use crate::block::BlockError;
use crate::dag::DagError;
use crate::names::dnslink::DnsLinkError;
use crate::names::ipns::IpnsError;
use crate::node::{BoxedSource, NodeError};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use std::time::Duration;

/// A gateway request that cannot be answered with content.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    /// A method other than GET and HEAD (405).
    #[error("the gateway is read-only")]
    ReadOnly,
    /// A path outside `/ipfs/` and `/ipns/` (404).
    #[error("only /ipfs/{{cid}}[/{{path}}] and /ipns/{{name}}[/{{path}}] are served here")]
    NotIpfsPath,
    /// The CID in the path does not parse (400).
    #[error("invalid CID {text:?}: {source}")]
    BadCid {
        /// The text as given.
        text: String,
        /// The underlying error.
        #[source]
        source: BlockError,
    },
    /// The CID in a `{cid}.ipfs.{domain}` host does not parse (400).
    #[error("invalid CID in subdomain {label:?}: {source}")]
    BadSubdomainCid {
        /// The subdomain label as given.
        label: String,
        /// The underlying error.
        #[source]
        source: BlockError,
    },
    /// A path segment that is not UTF-8 once percent-decoded (400).
    #[error("path segment {raw:?} is not UTF-8")]
    SegmentNotUtf8 {
        /// The segment as sent (percent-encoded).
        raw: String,
    },
    /// A `.`, `..` or otherwise unusable path segment (400).
    #[error("invalid path segment {segment:?}")]
    BadSegment {
        /// The segment, decoded.
        segment: String,
    },
    /// `?format=` other than `raw` or `car` (400).
    #[error("format {format:?} is not supported (raw or car)")]
    UnsupportedFormat {
        /// The format asked for.
        format: String,
    },
    /// A query parameter (`dag-scope`, `entity-bytes`) that does not parse
    /// (400); the source names the value.
    #[error("{source}")]
    BadParameter {
        /// The query parameter.
        param: &'static str,
        /// The underlying error.
        #[source]
        source: BoxedSource,
    },
    /// A CAR version other than 1 asked for (400).
    #[error("car-version {version} is not supported (1)")]
    CarVersion {
        /// The version asked for.
        version: String,
    },
    /// `Accept: ...; version=2` for a CAR (400).
    #[error("CAR version 2 is not supported (1)")]
    CarV2Accepted,
    /// A `Range` that does not fit the file (416, with its size).
    #[error("range not satisfiable")]
    Unsatisfiable {
        /// The file's size in bytes.
        size: u64,
    },
    /// Blocking work did not finish within `[gateway] timeout` (504).
    #[error("{what} within {} s", .timeout.as_secs())]
    Timeout {
        /// What did not happen ("/ipfs/… could not be resolved").
        what: String,
        /// The `[gateway] timeout`.
        timeout: Duration,
    },
    /// Resolving or reading failed (404 for a missing name, 504 for a
    /// block the network did not deliver, 400 for a bad CID, else 500).
    #[error(transparent)]
    Node(#[from] NodeError),
    /// A blocking task panicked (500).
    #[error("worker thread: {0}")]
    Join(#[from] tokio::task::JoinError),
    /// The response producer failed before sending a byte (502).
    #[error("{0}")]
    Producer(#[source] std::io::Error),
}

impl From<DagError> for GatewayError {
    fn from(e: DagError) -> Self {
        GatewayError::Node(e.into())
    }
}

impl GatewayError {
    /// The HTTP status this error answers with.
    pub fn status(&self) -> StatusCode {
        use GatewayError as G;
        match self {
            G::ReadOnly => StatusCode::METHOD_NOT_ALLOWED,
            G::NotIpfsPath => StatusCode::NOT_FOUND,
            G::BadCid { .. }
            | G::BadSubdomainCid { .. }
            | G::SegmentNotUtf8 { .. }
            | G::BadSegment { .. }
            | G::UnsupportedFormat { .. }
            | G::BadParameter { .. }
            | G::CarVersion { .. }
            | G::CarV2Accepted => StatusCode::BAD_REQUEST,
            G::Unsatisfiable { .. } => StatusCode::RANGE_NOT_SATISFIABLE,
            G::Timeout { .. } => StatusCode::GATEWAY_TIMEOUT,
            G::Node(NodeError::Dag(DagError::NoSuchPath { .. } | DagError::WrongKind { .. })) => {
                StatusCode::NOT_FOUND
            }
            G::Node(NodeError::Dag(DagError::Fetch { .. }) | NodeError::RemoteFetch { .. }) => {
                StatusCode::GATEWAY_TIMEOUT
            }
            G::Node(NodeError::Block(_)) => StatusCode::BAD_REQUEST,
            G::Node(NodeError::Ipns(IpnsError::NotFound { .. })) => StatusCode::NOT_FOUND,
            G::Node(NodeError::Ipns(IpnsError::DnsLink(d))) => match d {
                DnsLinkError::NoRecord { .. } => StatusCode::NOT_FOUND,
                DnsLinkError::BadDomain { .. } => StatusCode::BAD_REQUEST,
                DnsLinkError::Malformed { .. }
                | DnsLinkError::Ambiguous { .. }
                | DnsLinkError::Lookup { .. } => StatusCode::BAD_GATEWAY,
            },
            G::Node(NodeError::Ipns(i)) if i.is_bad_request() => StatusCode::BAD_REQUEST,
            G::Node(_) | G::Join(_) => StatusCode::INTERNAL_SERVER_ERROR,
            G::Producer(_) => StatusCode::BAD_GATEWAY,
        }
    }
}

impl IntoResponse for GatewayError {
    fn into_response(self) -> Response {
        let mut r = plain(self.status(), &self);
        match self {
            GatewayError::ReadOnly => {
                r.headers_mut()
                    .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
            }
            GatewayError::Unsatisfiable { size } => {
                if let Ok(v) = HeaderValue::from_str(&format!("bytes */{size}")) {
                    r.headers_mut().insert(header::CONTENT_RANGE, v);
                }
            }
            _ => {}
        }
        r
    }
}

/// A response with a one-line plain-text reason.
fn plain(status: StatusCode, reason: impl std::fmt::Display) -> Response {
    let mut r = (status, format!("{reason}\n")).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

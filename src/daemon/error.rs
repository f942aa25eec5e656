//! What starting or stopping a daemon can fail on, naming the address or
//! file concerned.

use crate::net::NetError;
use crate::node::NodeError;
use std::net::SocketAddr;
use std::path::PathBuf;

/// Errors of [`Daemon::start`](super::Daemon::start) and
/// [`Daemon::shutdown`](super::Daemon::shutdown).
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    /// A bootstrap address is not a multiaddr.
    #[error("bootstrap address {addr:?}: {source}")]
    BootstrapAddr {
        /// The address as given.
        addr: String,
        /// Why it does not parse.
        #[source]
        source: libp2p::multiaddr::Error,
    },
    /// A bootstrap address is empty (`--bootstrap ""`).
    #[error("bootstrap address {addr:?} is empty (expected /ip4/A/tcp/PORT/p2p/ID)")]
    EmptyBootstrapAddr {
        /// The address as given.
        addr: String,
    },
    /// The RPC API address is not `IP:PORT` or `/ip4/IP/tcp/PORT`.
    #[error("API address {text:?} (expected 127.0.0.1:PORT)")]
    ApiAddr {
        /// The address as written.
        text: String,
    },
    /// The gateway address is not `IP:PORT`, `/ip4/IP/tcp/PORT` or "off".
    #[error("gateway address {text:?} (expected IP:PORT)")]
    GatewayAddr {
        /// The address as written.
        text: String,
    },
    /// The S3 endpoint's address is not `IP:PORT`, `/ip4/IP/tcp/PORT`,
    /// "" or "off".
    #[error("[s3] listen address {text:?} (expected IP:PORT, e.g. 127.0.0.1:9000)")]
    S3Addr {
        /// The address as written.
        text: String,
    },
    /// The S3 endpoint's bucket index or keys could not be opened.
    #[error(transparent)]
    S3(#[from] crate::s3::S3Error),
    /// The API's access settings would leave it open (see
    /// [`GuardError`](crate::rpc::guard::GuardError)).
    #[error(transparent)]
    Guard(#[from] crate::rpc::guard::GuardError),
    /// The API or gateway could not listen on its address.
    #[error("{server} listen on {addr}: {source}")]
    Bind {
        /// "API", "gateway" or "S3".
        server: &'static str,
        /// The address.
        addr: SocketAddr,
        /// The socket error.
        #[source]
        source: std::io::Error,
    },
    /// The `api` or `gateway` file could not be written to the repo.
    #[error("writing {}: {source}", .path.display())]
    WriteFile {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The node's network or background tasks failed to start, or its store
    /// to flush on shutdown.
    #[error(transparent)]
    Node(#[from] NodeError),
    /// The task flushing the store on shutdown did not finish.
    #[error("flushing the store: {0}")]
    Flush(#[source] tokio::task::JoinError),
    /// The swarm did not answer (its task ended).
    #[error(transparent)]
    Net(#[from] NetError),
}

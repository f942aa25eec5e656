//! The daemon: a node online with its RPC API, HTTP gateway and (when
//! `[s3] listen` is set) S3 endpoint, started in one call and stopped
//! gracefully. The `cairn daemon` command is a thin
//! layer over [`Daemon`]; a Rust program embeds a node the same way:
//!
//! ```no_run
//! # async fn run() -> Result<(), cairn::daemon::DaemonError> {
//! let node = cairn::node::Node::open(std::path::Path::new("/tmp/repo"))?;
//! let daemon = cairn::daemon::Daemon::start(node, Default::default()).await?;
//! println!("API on {:?}", daemon.api_addr());
//! daemon.shutdown().await
//! # }
//! ```
//!
//! While it runs, a daemon whose node has a repo directory writes the API's
//! multiaddr to `REPO/api` (and the gateway's URL to `REPO/gateway`) so
//! that CLI commands on the same repo go through it; shutdown removes them.

mod error;
pub mod memory;
mod options;

pub use error::DaemonError;
pub use options::{DaemonOptions, GatewayOptions, S3Options};

use crate::net::NetError;
use crate::node::online::OnlineNode;
use crate::node::Node;
use libp2p::{Multiaddr, PeerId};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// A running node with its API, gateway and S3 endpoint. Stop it with
/// [`shutdown`](Daemon::shutdown); dropping it instead stops everything at
/// once, as a crash would (nothing saved, requests cut off).
pub struct Daemon {
    online: Arc<OnlineNode>,
    swarm_addrs: Vec<Multiaddr>,
    reached: Vec<PeerId>,
    unreached: Vec<(Multiaddr, NetError)>,
    api_addr: Option<SocketAddr>,
    gateway_addr: Option<SocketAddr>,
    s3_addr: Option<SocketAddr>,
    /// The S3 endpoint, when one is served.
    s3: Option<crate::s3::S3Endpoint>,
    /// The API, gateway and S3 server tasks; they end when `stop` is cancelled
    /// and their connections have closed.
    servers: Vec<JoinHandle<()>>,
    stop: CancellationToken,
    /// `/api/v0/shutdown` calls. The daemon keeps a sender of its own, so
    /// the channel never reports closed while the daemon lives.
    stop_requests: mpsc::Receiver<()>,
    _stop_sender: mpsc::Sender<()>,
    /// The `api` and `gateway` files written to the repo.
    files: Vec<PathBuf>,
    grace: Duration,
    stopped: bool,
}

impl Daemon {
    /// Starts `node` online: binds the API and gateway, starts libp2p and
    /// the node's background tasks, dials the bootstrap peers (a peer that
    /// cannot be reached is reported by
    /// [`bootstrap_failures`](Self::bootstrap_failures), not an error),
    /// serves, and writes the `api` file. Needs a multi-threaded tokio
    /// runtime (`#[tokio::main]`).
    pub async fn start(
        node: impl Into<Arc<Node>>,
        options: DaemonOptions,
    ) -> Result<Daemon, DaemonError> {
        let node = node.into();
        // Everything that can be refused is checked before anything starts.
        let bootstrap = options.bootstrap_addrs()?;
        let api_listener = match options.api {
            Some(addr) => {
                let guard = crate::rpc::guard::ApiGuard::new(&options.api_access, addr)?;
                let (listener, bound) = bind("API", addr).await?;
                Some((listener, bound, guard.listening_on(bound)))
            }
            None => None,
        };
        let gateway_listener = match &options.gateway {
            Some(g) => Some(bind("gateway", g.listen).await?),
            None => None,
        };
        let s3_listener = match &options.s3 {
            Some(s) => Some(bind("S3", s.listen).await?),
            None => None,
        };
        let online = Arc::new(OnlineNode::start(Arc::clone(&node), &options.net).await?);
        let swarm_addrs = match online.net().swarm.listen_addrs().await {
            Ok(addrs) => addrs,
            Err(e) => {
                online.stop().await;
                return Err(e.into());
            }
        };
        if let Some(hot) = node.hot_cache() {
            // The memory tier and the resolution caches give way before
            // `max_memory_bytes` refuses connections (memory.rs).
            let guard = memory::MemoryGuard::new(
                options.net.max_memory_bytes,
                memory::system_total_bytes(),
            );
            let watch = memory::guard_memory_tier(
                Arc::clone(hot),
                Arc::clone(node.resolve_cache()),
                guard,
                memory::GUARD_INTERVAL,
            );
            online.net().swarm.spawn_task(watch);
        }
        let (reached, unreached) = online.bootstrap(&bootstrap).await;
        let (stop_sender, stop_requests) = mpsc::channel(1);
        let stop = CancellationToken::new();
        let mut daemon = Daemon {
            online: Arc::clone(&online),
            swarm_addrs,
            reached,
            unreached,
            api_addr: None,
            gateway_addr: None,
            s3_addr: None,
            s3: None,
            servers: Vec::new(),
            stop: stop.clone(),
            stop_requests,
            _stop_sender: stop_sender.clone(),
            files: Vec::new(),
            grace: options.shutdown_grace,
            stopped: false,
        };
        // The S3 endpoint opens first: the API answers `cairn s3 ls` and
        // `s3 bucket` from its index.
        let endpoint = match &options.s3 {
            Some(_) => match crate::s3::S3Endpoint::open(Arc::clone(&online)) {
                Ok(e) => Some(e),
                Err(e) => {
                    let _ = daemon.shutdown().await;
                    return Err(e.into());
                }
            },
            // The index of buckets made while `[s3]` was on still names
            // CIDs: `pin rm` must not unpin them.
            None => match crate::s3::hold_pins_offline(online.node()) {
                Ok(()) => None,
                Err(e) => {
                    let _ = daemon.shutdown().await;
                    return Err(e.into());
                }
            },
        };
        if let Some((listener, bound, guard)) = api_listener {
            let state = crate::rpc::server::ApiState {
                online: Arc::clone(&online),
                shutdown: stop_sender,
                guard: Arc::new(guard),
                s3: endpoint.clone(),
            };
            let serve = crate::http::ServeOptions::new(&options.api_access.connections, true);
            daemon.serve(listener, crate::rpc::server::router(state), serve);
            daemon.api_addr = Some(bound);
        }
        if let (Some((listener, bound)), Some(g)) = (gateway_listener, &options.gateway) {
            let state = crate::gateway::GatewayState {
                online: Arc::clone(&online),
                timeout: g.timeout,
                subdomain_redirect: g.subdomain_redirect,
            };
            let serve = crate::http::ServeOptions::new(&g.connections, false);
            daemon.serve(listener, crate::gateway::router(state), serve);
            daemon.gateway_addr = Some(bound);
        }
        if let (Some((listener, bound)), Some(s), Some(endpoint)) =
            (s3_listener, &options.s3, endpoint)
        {
            let serve = crate::http::ServeOptions::new(&s.connections, false);
            daemon.serve(listener, endpoint.router(), serve);
            let expiry = endpoint.clone().expire_uploads(daemon.stop.clone());
            daemon.servers.push(tokio::spawn(expiry));
            daemon.s3_addr = Some(bound);
            daemon.s3 = Some(endpoint);
        }
        if let Err(e) = daemon.write_files(node.repo_path().map(PathBuf::from)) {
            let _ = daemon.shutdown().await;
            return Err(e);
        }
        Ok(daemon)
    }

    /// Serves `app` on `listener` until `stop` is cancelled.
    fn serve(
        &mut self,
        listener: TcpListener,
        app: impl Into<crate::http::App>,
        options: crate::http::ServeOptions,
    ) {
        let stop = self.stop.clone();
        self.servers.push(tokio::spawn(crate::http::serve(
            listener,
            app.into(),
            options,
            stop,
        )));
    }

    /// Writes `REPO/api` (and `REPO/gateway`) when the node has a repo.
    fn write_files(&mut self, repo: Option<PathBuf>) -> Result<(), DaemonError> {
        let Some(repo) = repo else {
            return Ok(());
        };
        let mut files = Vec::new();
        if let Some(addr) = self.api_addr {
            files.push((crate::rpc::api_file(&repo), crate::rpc::to_multiaddr(addr)));
        }
        if let Some(addr) = self.gateway_addr {
            files.push((repo.join("gateway"), format!("http://{addr}")));
        }
        for (path, text) in files {
            std::fs::write(&path, text).map_err(|source| DaemonError::WriteFile {
                path: path.clone(),
                source,
            })?;
            self.files.push(path);
        }
        Ok(())
    }

    /// The node online (fetching, pinning with replication, the swarm).
    pub fn online(&self) -> &Arc<OnlineNode> {
        &self.online
    }

    /// The node (its store and offline operations).
    pub fn node(&self) -> &Arc<Node> {
        self.online.node()
    }

    /// This node's libp2p identity.
    pub fn peer_id(&self) -> PeerId {
        self.online.net().peer_id
    }

    /// The multiaddrs libp2p listens on (ports resolved), without `/p2p/`.
    pub fn swarm_addrs(&self) -> &[Multiaddr] {
        &self.swarm_addrs
    }

    /// The first swarm address with `/p2p/PEER` appended: what another node
    /// bootstraps or connects to.
    pub fn dial_addr(&self) -> Option<Multiaddr> {
        let first = self.swarm_addrs.first()?.clone();
        Some(first.with(libp2p::multiaddr::Protocol::P2p(self.peer_id())))
    }

    /// Bootstrap peers connected to at start.
    pub fn bootstrapped(&self) -> &[PeerId] {
        &self.reached
    }

    /// Bootstrap addresses that could not be reached at start, and why.
    pub fn bootstrap_failures(&self) -> &[(Multiaddr, NetError)] {
        &self.unreached
    }

    /// Where the RPC API listens, if it is served.
    pub fn api_addr(&self) -> Option<SocketAddr> {
        self.api_addr
    }

    /// Where the gateway listens, if it is served.
    pub fn gateway_addr(&self) -> Option<SocketAddr> {
        self.gateway_addr
    }

    /// Where the S3 endpoint listens, if it is served.
    pub fn s3_addr(&self) -> Option<SocketAddr> {
        self.s3_addr
    }

    /// The S3 endpoint's access keys, if it is served (a node without a
    /// repo keeps them in memory: make its keys here).
    pub fn s3_keys(&self) -> Option<&Arc<crate::s3::AccessKeys>> {
        self.s3.as_ref().map(crate::s3::S3Endpoint::keys)
    }

    /// Resolves when a client asked the daemon to stop
    /// (`POST /api/v0/shutdown`); the caller then calls
    /// [`shutdown`](Self::shutdown). Cancel-safe, for `tokio::select!` with
    /// signals.
    pub async fn shutdown_requested(&mut self) {
        // Never `None`: the daemon holds a sender.
        let _ = self.stop_requests.recv().await;
    }

    /// Stops gracefully: the API, gateway and S3 endpoint stop accepting, requests being
    /// answered get the grace period to finish, the routing table is saved,
    /// connections are closed, the node's tasks end, the store is flushed
    /// and the `api` and `gateway` files are removed.
    pub async fn shutdown(mut self) -> Result<(), DaemonError> {
        self.stop.cancel();
        let deadline = tokio::time::Instant::now() + self.grace;
        for mut server in std::mem::take(&mut self.servers) {
            if tokio::time::timeout_at(deadline, &mut server)
                .await
                .is_err()
            {
                tracing::warn!(
                    "requests still running after {:?}; cutting them off",
                    self.grace
                );
                server.abort();
            }
        }
        self.online.stop().await;
        self.stopped = true;
        let node = Arc::clone(self.online.node());
        let flushed = tokio::task::spawn_blocking(move || node.flush()).await;
        self.remove_files();
        Ok(flushed.map_err(DaemonError::Flush)??)
    }

    fn remove_files(&mut self) {
        for path in self.files.drain(..) {
            let _ = std::fs::remove_file(path);
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.stop.cancel();
        for server in &self.servers {
            server.abort();
        }
        if !self.stopped {
            self.online.shutdown();
        }
        self.remove_files();
    }
}

/// Binds `addr` for `server` ("API", "gateway", "S3"); returns the listener and
/// the address it got (port 0 resolved).
async fn bind(
    server: &'static str,
    addr: SocketAddr,
) -> Result<(TcpListener, SocketAddr), DaemonError> {
    let err = |source| DaemonError::Bind {
        server,
        addr,
        source,
    };
    let listener = TcpListener::bind(addr).await.map_err(err)?;
    let bound = listener.local_addr().map_err(err)?;
    Ok((listener, bound))
}

//! The libp2p swarm and the one task that owns it.
//!
//! Transports TCP and QUIC, Noise, Yamux; identify (`/ipfs/id/1.0.0`,
//! agent `cairn/<version>`), ping, Kademlia (protocol name configurable) and
//! `libp2p-stream` for Bitswap's streams. Everything else talks to the swarm
//! task through [`SwarmHandle`]: bounded commands with oneshot replies.

use super::NetError;
use crate::block::Cid;
use futures::StreamExt;
use libp2p::core::muxing::StreamMuxerBox;
use libp2p::core::transport::Boxed;
use libp2p::core::Transport as _;
use libp2p::multiaddr::Protocol;
use libp2p::swarm::behaviour::toggle::Toggle;
use libp2p::swarm::dial_opts::{DialOpts, PeerCondition};
use libp2p::swarm::{ConnectionId, NetworkBehaviour, SwarmEvent};
use libp2p::{
    connection_limits, identify, identity, kad, mdns, memory_connection_limits, noise, ping, tcp,
    yamux, Multiaddr, PeerId, StreamProtocol, Swarm,
};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

/// The IPFS public DHT protocol; private networks pick another name.
pub const DEFAULT_KAD_PROTOCOL: &str = "/ipfs/kad/1.0.0";

/// Limits on connections (see `[net]` in `config.toml`).
#[derive(Clone, Copy, Debug)]
pub struct ConnectionLimits {
    /// Most established connections in all.
    pub max_connections: u32,
    /// Most established connections to one peer.
    pub max_per_peer: u32,
    /// Most connections being set up, per direction.
    pub max_pending: u32,
    /// Refuse new connections while the process uses more memory than
    /// this (0: no limit).
    pub max_memory_bytes: u64,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        ConnectionLimits {
            max_connections: 1024,
            max_per_peer: 4,
            max_pending: 128,
            max_memory_bytes: 0,
        }
    }
}

/// A transport the swarm uses beside TCP and QUIC (netsim's in-memory
/// network with injected faults): built from the node's key, already
/// authenticated and multiplexed.
#[derive(Clone)]
pub struct ExtraTransport(pub Arc<MakeTransport>);

/// Builds an authenticated, multiplexed transport from the node's key.
pub type MakeTransport =
    dyn Fn(&identity::Keypair) -> Boxed<(PeerId, StreamMuxerBox)> + Send + Sync + 'static;

impl std::fmt::Debug for ExtraTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ExtraTransport")
    }
}

impl PartialEq for ExtraTransport {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

/// Network settings.
#[derive(Clone, Debug)]
pub struct NetConfig {
    /// Addresses to listen on (loopback by default: no public exposure).
    pub listen: Vec<Multiaddr>,
    /// Kademlia protocol name.
    pub kad_protocol: String,
    /// How long an idle connection stays open.
    pub idle_timeout: Duration,
    /// Period of the DHT's routing table refresh walks (`None`: never).
    pub dht_refresh: Option<Duration>,
    /// Period of pings on each connection (`None`: answered, never sent on
    /// a timer).
    pub ping_interval: Option<Duration>,
    /// DHT mode: `Some(true)` server, `Some(false)` client, `None` automatic:
    /// loopback and private listen addresses count as reachable (a local
    /// network, like Kubo's LAN DHT), public ones once confirmed.
    pub dht_server: Option<bool>,
    /// Bounds of the DHT record store (our provider keys, other peers'
    /// records).
    pub records: crate::net::records::RecordLimits,
    /// Discover peers on the local network with mDNS.
    pub mdns: bool,
    pub limits: ConnectionLimits,
    /// Another transport beside TCP and QUIC (none by default).
    pub extra_transport: Option<ExtraTransport>,
}

impl Default for NetConfig {
    fn default() -> Self {
        NetConfig {
            listen: vec!["/ip4/127.0.0.1/tcp/0".parse().expect("valid multiaddr")],
            kad_protocol: DEFAULT_KAD_PROTOCOL.into(),
            idle_timeout: Duration::from_secs(60),
            dht_refresh: Some(Duration::from_secs(600)),
            ping_interval: Some(Duration::from_secs(15)),
            dht_server: None,
            records: crate::net::records::RecordLimits::default(),
            mdns: false,
            limits: ConnectionLimits::default(),
            extra_transport: None,
        }
    }
}

/// All protocols the node speaks.
#[derive(NetworkBehaviour)]
pub struct Behaviour {
    /// Connection counts (total, per peer, pending).
    pub limits: connection_limits::Behaviour,
    /// No new connections while the process is over its memory budget.
    pub memory: Toggle<memory_connection_limits::Behaviour>,
    /// Peers banned for misbehaving: connections refused while banned.
    pub blocked: libp2p::allow_block_list::Behaviour<libp2p::allow_block_list::BlockedPeers>,
    pub identify: identify::Behaviour,
    pub ping: ping::Behaviour,
    pub kad: kad::Behaviour<crate::net::records::ProviderStore>,
    pub stream: libp2p_stream::Behaviour,
    /// Local network discovery, off unless configured.
    pub mdns: Toggle<mdns::tokio::Behaviour>,
}

/// Yamux receive window per stream (bytes): how much a peer may send ahead.
/// 16 MiB (go-yamux's maximum too) measured fastest on loopback: 4 MiB gave
/// ≈ 0.85× its Bitswap throughput.
pub const YAMUX_WINDOW_BYTES: u32 = 16 * 1024 * 1024;

/// Streams one peer may keep open on a connection. With the window this
/// bounds what a connection can make us buffer (64 × 16 MiB); cairn's own
/// protocols need a handful (one Bitswap stream each way, short DHT and
/// identify exchanges).
pub const MAX_STREAMS_PER_CONNECTION: usize = 64;

/// The Yamux settings cairn uses (also by the raw-stream benchmark).
///
/// js-libp2p's Yamux (Helia) sends data frames as large as the receive
/// window it is granted, and yamux 0.13 (libp2p's default) drops the whole
/// connection on any frame over 1 MiB while growing its window past that.
/// So cairn runs the yamux 0.12 engine (selected by these settings) with a
/// fixed window and a frame limit that holds any frame the window allows.
#[allow(deprecated)]
pub fn yamux_config() -> yamux::Config {
    let mut c = yamux::Config::default();
    c.set_receive_window_size(YAMUX_WINDOW_BYTES);
    c.set_max_buffer_size(YAMUX_WINDOW_BYTES as usize);
    c.set_max_num_streams(MAX_STREAMS_PER_CONNECTION);
    c
}

/// The node's identity from the repo's 32-byte Ed25519 seed.
pub fn keypair_from_seed(seed: [u8; 32]) -> Result<identity::Keypair, NetError> {
    let mut seed = seed;
    identity::Keypair::ed25519_from_bytes(&mut seed)
        .map_err(|e| NetError::Setup(format!("node key: {e}")))
}

/// Builds the swarm (does not listen yet). Transport byte counts and
/// protocol metrics go to `registry`.
pub fn build(
    key: identity::Keypair,
    config: &NetConfig,
    registry: &mut libp2p::metrics::Registry,
) -> Result<Swarm<Behaviour>, NetError> {
    let refresh = config.dht_refresh;
    // "Never" is a timer longer than any process lives.
    let ping_interval = config
        .ping_interval
        .unwrap_or(Duration::from_secs(100 * 365 * 24 * 3600));
    let kad_protocol = StreamProtocol::try_from_owned(config.kad_protocol.clone())
        .map_err(|e| NetError::Setup(format!("kad protocol {:?}: {e}", config.kad_protocol)))?;
    let dht_mode = config.dht_server.map(|server| {
        if server {
            kad::Mode::Server
        } else {
            kad::Mode::Client
        }
    });
    let record_limits = config.records;
    let limits = config.limits;
    let want_mdns = config.mdns;
    let extra = config.extra_transport.clone();
    let swarm = libp2p::SwarmBuilder::with_existing_identity(key)
        .with_tokio()
        .with_tcp(
            tcp::Config::default().nodelay(true),
            noise::Config::new,
            yamux_config,
        )
        .map_err(|e| NetError::Setup(format!("tcp transport: {e}")))?
        .with_quic()
        .with_other_transport(|key| match &extra {
            Some(make) => (make.0)(key),
            None => libp2p::core::transport::dummy::DummyTransport::new().boxed(),
        })
        .map_err(|e| NetError::Setup(format!("extra transport: {e}")))?
        .with_bandwidth_metrics(registry)
        .with_behaviour(|key| {
            let peer_id = key.public().to_peer_id();
            let identify = identify::Behaviour::new(
                identify::Config::new("ipfs/0.1.0".into(), key.public())
                    .with_agent_version(format!("cairn/{}", env!("CARGO_PKG_VERSION"))),
            );
            // The IPFS DHT spec's values where rust-libp2p differs: record
            // TTL 48 h, query parallelism 10; routing table refresh every
            // 10 min as Kubo (rust-libp2p: 5 min). Republishing our provider
            // records is the node's reprovider's job (paced, persisted,
            // strategy-aware), not kad's all-at-once timer.
            let mut kad_config = kad::Config::new(kad_protocol);
            kad_config
                .set_provider_record_ttl(Some(Duration::from_secs(48 * 3600)))
                .set_record_ttl(Some(Duration::from_secs(48 * 3600)))
                .set_provider_publication_interval(None)
                .set_replication_interval(None)
                .set_publication_interval(None)
                .set_parallelism(std::num::NonZeroUsize::new(10).expect("non-zero"))
                .set_periodic_bootstrap_interval(refresh);
            let mut kad = kad::Behaviour::with_config(
                peer_id,
                crate::net::records::ProviderStore::new(peer_id, record_limits),
                kad_config,
            );
            kad.set_mode(dht_mode);
            let mdns = if want_mdns {
                Some(mdns::tokio::Behaviour::new(
                    mdns::Config::default(),
                    peer_id,
                )?)
            } else {
                None
            };
            let connection_limits = connection_limits::ConnectionLimits::default()
                .with_max_established(Some(limits.max_connections))
                .with_max_established_per_peer(Some(limits.max_per_peer))
                .with_max_pending_incoming(Some(limits.max_pending))
                .with_max_pending_outgoing(Some(limits.max_pending));
            let memory = (limits.max_memory_bytes > 0).then(|| {
                memory_connection_limits::Behaviour::with_max_bytes(
                    usize::try_from(limits.max_memory_bytes).unwrap_or(usize::MAX),
                )
            });
            Ok::<_, Box<dyn std::error::Error + Send + Sync>>(Behaviour {
                limits: connection_limits::Behaviour::new(connection_limits),
                memory: memory.into(),
                blocked: Default::default(),
                identify,
                ping: ping::Behaviour::new(ping::Config::new().with_interval(ping_interval)),
                kad,
                stream: libp2p_stream::Behaviour::new(),
                mdns: mdns.into(),
            })
        })
        .map_err(|e| NetError::Setup(format!("behaviour: {e}")))?
        .with_swarm_config(|c| c.with_idle_connection_timeout(config.idle_timeout))
        .build();
    Ok(swarm)
}

enum Command {
    Dial(Multiaddr, oneshot::Sender<Result<PeerId, NetError>>),
    RoutingTable(oneshot::Sender<Vec<(PeerId, Vec<Multiaddr>)>>),
    FindPeer(PeerId, oneshot::Sender<Result<(), NetError>>),
    AddRoutes(Vec<(PeerId, Vec<Multiaddr>)>),
    Bootstrap,
    Provide(Cid, oneshot::Sender<Result<(), NetError>>),
    FindProviders(Cid, usize, oneshot::Sender<Result<Vec<PeerId>, NetError>>),
    ListenAddrs(oneshot::Sender<Vec<Multiaddr>>),
    Peers(oneshot::Sender<Vec<(PeerId, Multiaddr)>>),
    Ban(PeerId, Duration),
    Unban(PeerId),
    /// The multihashes we provide (our DHT record store's keys).
    Provided(oneshot::Sender<Vec<Vec<u8>>>),
    /// Stop answering as provider of these multihashes.
    StopProviding(Vec<Vec<u8>>),
    /// Close every connection (gracefully, within a deadline), then end.
    Close(oneshot::Sender<()>),
}

/// How long a clean shutdown waits for connections to close.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(3);

/// How often expired DHT records of other peers are dropped.
const RECORD_SWEEP_INTERVAL: Duration = Duration::from_secs(300);

/// A peer connecting or leaving (first connection up, last one down).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PeerEvent {
    Connected(PeerId),
    Disconnected(PeerId),
}

/// Peer events buffered per subscriber; a subscriber that falls further
/// behind skips the oldest (it can re-read the peer list).
const PEER_EVENTS_DEPTH: usize = 256;

/// A cloneable handle to the swarm task.
#[derive(Clone)]
pub struct SwarmHandle {
    commands: mpsc::Sender<Command>,
    events: tokio::sync::broadcast::Sender<PeerEvent>,
    /// Cancelled to stop the node: the swarm task and every long-lived
    /// task started through [`SwarmHandle::spawn_task`] end.
    shutdown: CancellationToken,
}

impl SwarmHandle {
    async fn ask<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<T>) -> Command,
    ) -> Result<T, NetError> {
        let (tx, rx) = oneshot::channel();
        self.commands
            .send(make(tx))
            .await
            .map_err(|_| NetError::Stopped)?;
        rx.await.map_err(|_| NetError::Stopped)
    }

    /// Peers connecting and leaving from now on.
    /// Runs `task` on the runtime until it ends or the node shuts down.
    pub fn spawn_task<F>(&self, task: F) -> tokio::task::JoinHandle<()>
    where
        F: std::future::Future<Output = ()> + Send + 'static,
    {
        let token = self.shutdown.clone();
        tokio::spawn(async move {
            tokio::select! {
                _ = token.cancelled() => {}
                _ = task => {}
            }
        })
    }

    /// Stops the node's networking at once, as a crash would: the swarm
    /// (and with it every connection) and the tasks started with
    /// [`spawn_task`](Self::spawn_task) end.
    pub fn shutdown(&self) {
        self.shutdown.cancel();
    }

    /// Stops the node's networking cleanly: every connection is closed
    /// (peers see the connection end, not a reset), waiting at most a few
    /// seconds, then the swarm and the spawned tasks end.
    pub async fn close(&self) {
        let (tx, rx) = oneshot::channel();
        if self.commands.send(Command::Close(tx)).await.is_ok() {
            let _ = tokio::time::timeout(CLOSE_TIMEOUT + Duration::from_secs(1), rx).await;
        }
        self.shutdown();
    }

    /// Whether [`shutdown`](Self::shutdown) was called.
    pub fn is_shut_down(&self) -> bool {
        self.shutdown.is_cancelled()
    }

    pub fn subscribe(&self) -> tokio::sync::broadcast::Receiver<PeerEvent> {
        self.events.subscribe()
    }

    /// Connects to `addr`; returns the peer once the connection is up.
    pub async fn dial(&self, addr: Multiaddr) -> Result<PeerId, NetError> {
        self.ask(|tx| Command::Dial(addr, tx)).await?
    }

    /// Addresses the swarm listens on.
    pub async fn listen_addrs(&self) -> Result<Vec<Multiaddr>, NetError> {
        self.ask(Command::ListenAddrs).await
    }

    /// Peers with an open connection.
    pub async fn peers(&self) -> Result<Vec<PeerId>, NetError> {
        Ok(self
            .peer_addrs()
            .await?
            .into_iter()
            .map(|(p, _)| p)
            .collect())
    }

    /// Connected peers with the address of a connection to each.
    pub async fn peer_addrs(&self) -> Result<Vec<(PeerId, Multiaddr)>, NetError> {
        self.ask(Command::Peers).await
    }

    /// Looks `peer` up on the DHT (its current addresses, e.g. after it
    /// restarted on another port) and dials it; `Ok` once a dial started.
    pub async fn find_peer(&self, peer: PeerId) -> Result<(), NetError> {
        self.ask(|tx| Command::FindPeer(peer, tx)).await?
    }

    /// Every peer in the DHT routing table with its addresses (to persist).
    pub async fn routing_table(&self) -> Result<Vec<(PeerId, Vec<Multiaddr>)>, NetError> {
        self.ask(Command::RoutingTable).await
    }

    /// Adds peers to the DHT routing table (e.g. read back from the repo)
    /// and starts a bootstrap walk.
    pub async fn add_routes(&self, routes: Vec<(PeerId, Vec<Multiaddr>)>) -> Result<(), NetError> {
        self.commands
            .send(Command::AddRoutes(routes))
            .await
            .map_err(|_| NetError::Stopped)
    }

    /// Starts a DHT bootstrap walk (fills the routing table).
    pub async fn bootstrap(&self) -> Result<(), NetError> {
        self.commands
            .send(Command::Bootstrap)
            .await
            .map_err(|_| NetError::Stopped)
    }

    /// Announces this node as a provider of `cid` on the DHT (the record
    /// key is the multihash, as in IPFS); returns once the record was sent
    /// to the closest peers found (ADD_PROVIDER has no reply), or an error
    /// when no peer could be reached.
    pub async fn provide(&self, cid: Cid) -> Result<(), NetError> {
        self.ask(|tx| Command::Provide(cid, tx)).await?
    }

    /// The multihashes (bytes) this node answers as provider of.
    pub async fn provided_keys(&self) -> Result<Vec<Vec<u8>>, NetError> {
        self.ask(Command::Provided).await
    }

    /// Stops answering as provider of these multihashes (records already
    /// placed with other peers expire on their own).
    pub async fn stop_providing(&self, keys: Vec<Vec<u8>>) -> Result<(), NetError> {
        self.commands
            .send(Command::StopProviding(keys))
            .await
            .map_err(|_| NetError::Stopped)
    }

    /// Peers the DHT knows as providers of `cid` (at most `limit`).
    pub async fn find_providers(&self, cid: Cid, limit: usize) -> Result<Vec<PeerId>, NetError> {
        self.ask(|tx| Command::FindProviders(cid, limit, tx))
            .await?
    }

    /// Closes every connection to `peer` and refuses new ones (either way)
    /// for `duration`: for peers that misbehaved.
    pub async fn ban(&self, peer: PeerId, duration: Duration) -> Result<(), NetError> {
        self.commands
            .send(Command::Ban(peer, duration))
            .await
            .map_err(|_| NetError::Stopped)
    }
}

/// A DHT query a caller waits on.
enum Query {
    Provide(oneshot::Sender<Result<(), NetError>>),
    /// Looking for a peer's current addresses (to dial it).
    FindPeer(PeerId, oneshot::Sender<Result<(), NetError>>),
    Providers {
        found: Vec<PeerId>,
        limit: usize,
        reply: oneshot::Sender<Result<Vec<PeerId>, NetError>>,
    },
}

/// Addresses kept in the routing table for one peer.
pub const MAX_ADDRS_PER_PEER: usize = 16;

/// A peer told us (identify) where it listens: those addresses, at most
/// [`MAX_ADDRS_PER_PEER`] and none absurdly long, replace the ones it no
/// longer lists. Kademlia's own list only ever grows, so a peer pushing new
/// addresses again and again would otherwise grow it without bound.
fn learn_addresses(swarm: &mut Swarm<Behaviour>, peer: PeerId, listed: Vec<Multiaddr>) {
    let fresh: Vec<Multiaddr> = listed
        .into_iter()
        .filter(|a| a.as_ref().len() <= crate::net::records::MAX_ADDR_BYTES)
        .take(MAX_ADDRS_PER_PEER)
        .collect();
    if fresh.is_empty() {
        return;
    }
    let kad = &mut swarm.behaviour_mut().kad;
    for a in &fresh {
        kad.add_address(&peer, a.clone());
    }
    // Kademlia keeps addresses with a /p2p suffix.
    let fresh: Vec<Multiaddr> = fresh
        .into_iter()
        .filter_map(|a| a.with_p2p(peer).ok())
        .collect();
    let stale: Vec<Multiaddr> = kad
        .kbucket(peer)
        .and_then(|bucket| {
            bucket
                .iter()
                .find(|e| e.node.key.preimage() == &peer)
                .map(|e| {
                    e.node
                        .value
                        .iter()
                        .filter(|a| !fresh.contains(a))
                        .cloned()
                        .collect()
                })
        })
        .unwrap_or_default();
    for a in stale {
        kad.remove_address(&peer, &a);
    }
}

/// Whether a finished provide reached anyone: kad reports success once
/// its walk ends, even when no peer was there to take the record.
fn reached_anyone(stats: &kad::QueryStats) -> bool {
    stats.num_successes() > 0
}

fn on_query_progress(
    queries: &mut HashMap<kad::QueryId, Query>,
    swarm: &mut Swarm<Behaviour>,
    id: kad::QueryId,
    result: kad::QueryResult,
    last: bool,
    stats: &kad::QueryStats,
) {
    match result {
        kad::QueryResult::StartProviding(r) => {
            if let Some(Query::Provide(reply)) = queries.remove(&id) {
                let r = match r {
                    Ok(_) if !reached_anyone(stats) => Err(NetError::Dht(
                        "no DHT peer took the provider record (none reachable)".into(),
                    )),
                    Ok(_) => Ok(()),
                    Err(e) => Err(NetError::Dht(e.to_string())),
                };
                let _ = reply.send(r);
            }
        }
        kad::QueryResult::GetClosestPeers(r) => {
            let Some(Query::FindPeer(peer, _)) = queries.get(&id) else {
                return;
            };
            let peer = *peer;
            let found = match &r {
                Ok(ok) => ok.peers.iter().find(|p| p.peer_id == peer).cloned(),
                Err(_) => None,
            };
            if let Some(info) = found {
                for a in &info.addrs {
                    swarm.behaviour_mut().kad.add_address(&peer, a.clone());
                }
                let opts = DialOpts::peer_id(peer)
                    .addresses(info.addrs.clone())
                    .condition(PeerCondition::DisconnectedAndNotDialing)
                    .build();
                let dialed = swarm.dial(opts).map_err(|e| NetError::Dial(e.to_string()));
                if let Some(Query::FindPeer(_, reply)) = queries.remove(&id) {
                    let _ = reply.send(dialed.or_else(|e| {
                        // Already connected or dialing is fine.
                        if swarm.is_connected(&peer) {
                            Ok(())
                        } else {
                            Err(e)
                        }
                    }));
                }
                if !last {
                    if let Some(mut q) = swarm.behaviour_mut().kad.query_mut(&id) {
                        q.finish();
                    }
                }
            } else if last {
                if let Some(Query::FindPeer(_, reply)) = queries.remove(&id) {
                    let _ = reply.send(Err(NetError::Dht(format!("{peer} not found on the DHT"))));
                }
            }
        }
        kad::QueryResult::GetProviders(r) => {
            let Some(Query::Providers { found, limit, .. }) = queries.get_mut(&id) else {
                return;
            };
            if let Ok(kad::GetProvidersOk::FoundProviders { providers, .. }) = r {
                let me = *swarm.local_peer_id();
                for p in providers {
                    if !found.contains(&p) && p != me {
                        found.push(p);
                        // Dial now: the providers' addresses live only as
                        // long as this query does (kad keeps them nowhere
                        // else), and it is still alive while we handle its
                        // event.
                        let opts = DialOpts::peer_id(p)
                            .condition(PeerCondition::DisconnectedAndNotDialing)
                            .build();
                        if let Err(e) = swarm.dial(opts) {
                            tracing::debug!(peer = %p, "dialing provider: {e}");
                        }
                    }
                }
            }
            let enough = found.len() >= *limit;
            if enough || last {
                if let Some(Query::Providers {
                    mut found,
                    limit,
                    reply,
                }) = queries.remove(&id)
                {
                    found.truncate(limit);
                    let _ = reply.send(Ok(found));
                }
                if enough && !last {
                    if let Some(mut q) = swarm.behaviour_mut().kad.query_mut(&id) {
                        q.finish();
                    }
                }
            }
        }
        _ => {}
    }
}

/// Starts listening and spawns the task that owns the swarm.
pub async fn spawn(
    mut swarm: Swarm<Behaviour>,
    config: &NetConfig,
    metrics: libp2p::metrics::Metrics,
) -> Result<SwarmHandle, NetError> {
    for addr in &config.listen {
        swarm
            .listen_on(addr.clone())
            .map_err(|e| NetError::Setup(format!("listen on {addr}: {e}")))?;
    }
    // Wait for the listeners so callers can read real addresses at once.
    let mut listening = Vec::new();
    while listening.len() < config.listen.len() {
        match tokio::time::timeout(Duration::from_secs(10), swarm.select_next_some()).await {
            Ok(SwarmEvent::NewListenAddr { address, .. }) => listening.push(address),
            Ok(SwarmEvent::ListenerError { error, .. }) => {
                return Err(NetError::Setup(format!("listener: {error}")))
            }
            Ok(_) => {}
            Err(_) => {
                return Err(NetError::Setup(
                    "listeners did not start within 10 s".into(),
                ))
            }
        }
    }
    let auto_mode = config.dht_server.is_none();
    // A node told to be a DHT server is reachable at what it listens on, by
    // the operator's word: those become its external addresses, which its
    // provider records carry. (Without addresses, a peer answering a
    // provider lookup drops the record unless the provider happens to be
    // in its own routing table; netsim measured 13 % of lookups failing.)
    let server_mode = config.dht_server == Some(true);
    for addr in &listening {
        if server_mode {
            swarm.add_external_address(addr.clone());
        } else if auto_mode {
            confirm_if_local(&mut swarm, addr);
        }
    }
    let kad_protocol_name = config.kad_protocol.clone();
    // Bounded: callers wait when the swarm task is busy.
    let (tx, mut rx) = mpsc::channel::<Command>(64);
    // The task sends itself Unban commands when bans expire. Holding this
    // sender does not keep the task alive: it stops when `rx` returns None,
    // which needs every sender gone, so it is weak.
    let self_tx = tx.downgrade();
    let (events, _) = tokio::sync::broadcast::channel(PEER_EVENTS_DEPTH);
    let peer_events = events.clone();
    let shutdown = CancellationToken::new();
    let stop = shutdown.clone();
    tokio::spawn(async move {
        let mut dials: HashMap<ConnectionId, oneshot::Sender<Result<PeerId, NetError>>> =
            HashMap::new();
        let mut queries: HashMap<kad::QueryId, Query> = HashMap::new();
        // One address per connected peer, for `swarm peers`.
        let mut connected: HashMap<PeerId, Multiaddr> = HashMap::new();
        // Other peers' provider records are dropped when they expire (kad
        // itself only does so when someone asks for that key).
        let mut sweep = tokio::time::interval(RECORD_SWEEP_INTERVAL);
        sweep.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // Set by `Close`: who waits, and until when connections may take
        // to close.
        let mut closing: Option<(oneshot::Sender<()>, tokio::time::Instant)> = None;
        loop {
            if let Some((_, deadline)) = &closing {
                if swarm.connected_peers().next().is_none()
                    || tokio::time::Instant::now() >= *deadline
                {
                    if let Some((reply, _)) = closing.take() {
                        let _ = reply.send(());
                    }
                    break;
                }
            }
            let close_deadline = closing.as_ref().map(|(_, d)| *d);
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = async {
                    match close_deadline {
                        Some(d) => tokio::time::sleep_until(d).await,
                        None => std::future::pending().await,
                    }
                } => {}
                _ = sweep.tick() => {
                    let store = swarm.behaviour_mut().kad.store_mut();
                    let removed = store.remove_expired(std::time::Instant::now());
                    let (ours, theirs, bytes) = store.counts();
                    tracing::debug!(removed, ours, theirs, bytes, "DHT record sweep");
                }
                cmd = rx.recv() => match cmd {
                    None => break,
                    Some(Command::Dial(addr, reply)) => {
                        let opts = DialOpts::unknown_peer_id().address(addr.clone()).build();
                        let id = opts.connection_id();
                        match swarm.dial(opts) {
                            Ok(()) => { dials.insert(id, reply); }
                            Err(e) => { let _ = reply.send(Err(NetError::Dial(format!("{addr}: {e}")))); }
                        }
                    }
                    Some(Command::Provide(cid, reply)) => {
                        let key = kad::RecordKey::new(&cid.hash().to_bytes());
                        match swarm.behaviour_mut().kad.start_providing(key) {
                            Ok(id) => { queries.insert(id, Query::Provide(reply)); }
                            Err(e) => { let _ = reply.send(Err(NetError::Dht(format!("provide {cid}: {e}")))); }
                        }
                    }
                    Some(Command::FindProviders(cid, limit, reply)) => {
                        let key = kad::RecordKey::new(&cid.hash().to_bytes());
                        let id = swarm.behaviour_mut().kad.get_providers(key);
                        queries.insert(id, Query::Providers { found: Vec::new(), limit, reply });
                    }
                    Some(Command::RoutingTable(reply)) => {
                        let mut table = Vec::new();
                        for bucket in swarm.behaviour_mut().kad.kbuckets() {
                            for e in bucket.iter() {
                                let addrs: Vec<Multiaddr> = e.node.value.iter().cloned().collect();
                                table.push((*e.node.key.preimage(), addrs));
                            }
                        }
                        let _ = reply.send(table);
                    }
                    Some(Command::FindPeer(peer, reply)) => {
                        let id = swarm.behaviour_mut().kad.get_closest_peers(peer);
                        queries.insert(id, Query::FindPeer(peer, reply));
                    }
                    Some(Command::AddRoutes(routes)) => {
                        for (peer, addrs) in routes {
                            for a in addrs {
                                swarm.behaviour_mut().kad.add_address(&peer, a);
                            }
                        }
                        if let Err(e) = swarm.behaviour_mut().kad.bootstrap() {
                            tracing::debug!("DHT bootstrap: {e}");
                        }
                    }
                    Some(Command::Bootstrap) => {
                        if let Err(e) = swarm.behaviour_mut().kad.bootstrap() {
                            tracing::debug!("DHT bootstrap: {e}");
                        }
                    }
                    Some(Command::ListenAddrs(reply)) => {
                        let _ = reply.send(listening.clone());
                    }
                    Some(Command::Peers(reply)) => {
                        let _ = reply.send(connected.iter().map(|(p, a)| (*p, a.clone())).collect());
                    }
                    Some(Command::Ban(peer, duration)) => {
                        tracing::info!(%peer, ?duration, "banning peer");
                        swarm.behaviour_mut().blocked.block_peer(peer);
                        let unban = self_tx.clone();
                        tokio::spawn(async move {
                            tokio::time::sleep(duration).await;
                            if let Some(tx) = unban.upgrade() {
                                let _ = tx.send(Command::Unban(peer)).await;
                            }
                        });
                    }
                    Some(Command::Unban(peer)) => {
                        swarm.behaviour_mut().blocked.unblock_peer(peer);
                    }
                    Some(Command::Close(reply)) => {
                        let peers: Vec<PeerId> = swarm.connected_peers().copied().collect();
                        for p in peers {
                            let _ = swarm.disconnect_peer_id(p);
                        }
                        closing = Some((reply, tokio::time::Instant::now() + CLOSE_TIMEOUT));
                    }
                    Some(Command::Provided(reply)) => {
                        use libp2p::kad::store::RecordStore;
                        let keys = swarm
                            .behaviour_mut()
                            .kad
                            .store_mut()
                            .provided()
                            .map(|r| r.key.to_vec())
                            .collect();
                        let _ = reply.send(keys);
                    }
                    Some(Command::StopProviding(keys)) => {
                        for k in keys {
                            swarm.behaviour_mut().kad.stop_providing(&kad::RecordKey::from(k));
                        }
                    }
                },
                event = swarm.select_next_some() => {
                    {
                        use libp2p::metrics::Recorder;
                        metrics.record(&event);
                        match &event {
                            SwarmEvent::Behaviour(BehaviourEvent::Kad(e)) => metrics.record(e),
                            SwarmEvent::Behaviour(BehaviourEvent::Identify(e)) => metrics.record(e),
                            SwarmEvent::Behaviour(BehaviourEvent::Ping(e)) => metrics.record(e),
                            _ => {}
                        }
                    }
                    match event {
                    SwarmEvent::ConnectionEstablished { peer_id, connection_id, endpoint, num_established, .. } => {
                        tracing::debug!(%peer_id, addr = %endpoint.get_remote_address(), "connected");
                        if num_established.get() == 1 {
                            let _ = peer_events.send(PeerEvent::Connected(peer_id));
                        }
                        let mut addr = endpoint.get_remote_address().clone();
                        if matches!(addr.iter().last(), Some(Protocol::P2p(_))) {
                            addr.pop();
                        }
                        connected.insert(peer_id, addr);
                        if endpoint.is_dialer() {
                            // A peer we dialed: a routing table entry at once,
                            // before identify says more.
                            swarm.behaviour_mut().kad.add_address(&peer_id, endpoint.get_remote_address().clone());
                        } else if auto_mode {
                            if let libp2p::core::ConnectedPoint::Listener { local_addr, .. } = &endpoint {
                                if let Some(reached) = reached_from_outside(local_addr) {
                                    if !swarm.external_addresses().any(|a| a == &reached) {
                                        tracing::info!(%reached, "dialled from outside: reachable, serving the DHT");
                                        swarm.add_external_address(reached);
                                    }
                                }
                            }
                        }
                        if let Some(reply) = dials.remove(&connection_id) {
                            let _ = reply.send(Ok(peer_id));
                        }
                    }
                    SwarmEvent::ConnectionClosed { peer_id, num_established: 0, .. } => {
                        connected.remove(&peer_id);
                        let _ = peer_events.send(PeerEvent::Disconnected(peer_id));
                    }
                    SwarmEvent::OutgoingConnectionError { connection_id, error, .. } => {
                        if let Some(reply) = dials.remove(&connection_id) {
                            let _ = reply.send(Err(NetError::Dial(error.to_string())));
                        }
                    }
                    SwarmEvent::NewListenAddr { address, .. } => {
                        if server_mode {
                            swarm.add_external_address(address.clone());
                        } else if auto_mode {
                            confirm_if_local(&mut swarm, &address);
                        }
                        listening.push(address);
                    }
                    SwarmEvent::ExpiredListenAddr { address, .. } => {
                        listening.retain(|a| a != &address);
                    }
                    SwarmEvent::Behaviour(BehaviourEvent::Mdns(mdns::Event::Discovered(found))) => {
                        for (peer, addr) in found {
                            swarm.behaviour_mut().kad.add_address(&peer, addr);
                            let opts = DialOpts::peer_id(peer)
                                .condition(PeerCondition::DisconnectedAndNotDialing)
                                .build();
                            let _ = swarm.dial(opts);
                        }
                    }
                    SwarmEvent::Behaviour(BehaviourEvent::Identify(identify::Event::Received { peer_id, info, .. })) => {
                        let speaks_kad = info.protocols.iter().any(|p| p.as_ref() == kad_protocol_name);
                        if speaks_kad {
                            learn_addresses(&mut swarm, peer_id, info.listen_addrs);
                        }
                    }
                    SwarmEvent::Behaviour(BehaviourEvent::Kad(kad::Event::OutboundQueryProgressed { id, result, step, stats })) => {
                        on_query_progress(&mut queries, &mut swarm, id, result, step.last, &stats);
                    }
                    _ => {}
                    }
                },
            }
        }
    });
    Ok(SwarmHandle {
        commands: tx,
        events,
        shutdown,
    })
}

/// In automatic DHT mode, a public address counts as reachable once a peer
/// has dialled us at it (an inbound connection arrived there): the address
/// an inbound connection came in on, when it is a public one. Kubo asks
/// peers to dial back (AutoNAT); an inbound connection is the same proof,
/// made by whoever connects first.
fn reached_from_outside(local_addr: &Multiaddr) -> Option<Multiaddr> {
    let public = local_addr.iter().any(|p| match p {
        Protocol::Ip4(ip) => {
            !(ip.is_loopback()
                || ip.is_private()
                || ip.is_link_local()
                || ip.is_unspecified()
                || ip.is_broadcast()
                || ip.is_documentation()
                || ip.is_multicast())
        }
        Protocol::Ip6(ip) => {
            let s = ip.segments()[0];
            !(ip.is_loopback()
                || ip.is_unspecified()
                || ip.is_multicast()
                || (s & 0xfe00) == 0xfc00
                || (s & 0xffc0) == 0xfe80)
        }
        _ => false,
    });
    public.then(|| local_addr.clone())
}

/// In automatic DHT mode, a loopback or private listen address counts as
/// reachable: peers on this machine or local network can dial it, so the
/// node serves the DHT there (as Kubo's LAN DHT does). Public addresses wait
/// for a confirmation this node does not make on its own.
fn confirm_if_local(swarm: &mut Swarm<Behaviour>, addr: &Multiaddr) {
    let local = addr.iter().any(|p| match p {
        Protocol::Ip4(ip) => ip.is_loopback() || ip.is_private() || ip.is_link_local(),
        Protocol::Ip6(ip) => ip.is_loopback() || (ip.segments()[0] & 0xfe00) == 0xfc00,
        _ => false,
    });
    if local {
        swarm.add_external_address(addr.clone());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_an_inbound_connection_on_a_public_address_confirms_reachability() {
        let reached = |a: &str| reached_from_outside(&a.parse().unwrap());
        assert!(reached("/ip4/8.8.4.4/tcp/4001").is_some());
        assert!(reached("/ip6/2001:4860::1/udp/4001/quic-v1").is_some());
        for local in [
            "/ip4/127.0.0.1/tcp/4001",
            "/ip4/10.1.2.3/tcp/4001",
            "/ip4/192.168.1.5/tcp/4001",
            "/ip4/169.254.3.4/tcp/4001",
            "/ip4/0.0.0.0/tcp/4001",
            "/ip4/192.0.2.1/tcp/4001",
            "/ip6/::1/tcp/4001",
            "/ip6/fd00::1/tcp/4001",
            "/ip6/fe80::1/tcp/4001",
        ] {
            assert!(reached(local).is_none(), "{local}");
        }
    }
}

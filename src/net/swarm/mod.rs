//! The libp2p swarm and the one task that owns it.
//!
//! Transports TCP and QUIC, Noise, Yamux; identify (`/ipfs/id/1.0.0`,
//! agent `cairn/<version>`), ping, Kademlia (protocol name configurable) and
//! `libp2p-stream` for Bitswap's streams. Everything else talks to the swarm
//! task through [`SwarmHandle`]: bounded commands with oneshot replies.
//!
//! - `build.rs`: the transports and protocols, from a [`NetConfig`].
//! - `task.rs`: the task that owns the swarm and carries out commands.
//! - `dht.rs`: Kademlia queries callers wait on, and peers' addresses.
//! - `reach.rs`: whether this node counts as reachable (the DHT mode),
//!   from AutoNAT's answers when it runs.
//! - `pubsub.rs`: gossipsub commands and events, local subscribers.
//! - `relays.rs`: the relay client's reservations (which relays, when).
//! - `connmgr.rs`: which connections close when too many are open.
//! - `traversal.rs`: which NAT traversal protocols run (AutoNAT, relay,
//!   DCUtR, UPnP), and the relay service's limits.

mod build;
mod connmgr;
mod dht;
mod ports;
mod pubsub;
mod reach;
mod relays;
mod task;
mod traversal;

pub use build::{
    build, keypair_from_seed, yamux_config, Behaviour, MAX_STREAMS_PER_CONNECTION,
    YAMUX_WINDOW_BYTES,
};
pub use connmgr::{ConnManagerConfig, PeerActivity, ACTIVE_WINDOW};
pub use dht::{ValueAnswer, MAX_ADDRS_PER_PEER};
pub use reach::{ReachInfo, Reachability};
pub use task::spawn;
pub use traversal::{RelayLimits, RelayService, Traversal};

use super::NetError;
use crate::block::Cid;
use crate::net::pubsub::{PubsubError, Subscription};
use bytes::Bytes;
use libp2p::core::muxing::StreamMuxerBox;
use libp2p::core::transport::Boxed;
use libp2p::{identity, Multiaddr, PeerId};
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
    /// DHT mode: `Some(true)` server, `Some(false)` client, `None` automatic
    /// (server while reachable): with AutoNAT off, loopback and private
    /// listen addresses count as reachable (a local network, like Kubo's
    /// LAN DHT), public ones once dialled at; with AutoNAT on, only the
    /// addresses it confirmed.
    pub dht_server: Option<bool>,
    /// Bounds of the DHT record store (our provider keys, other peers'
    /// records).
    pub records: crate::net::records::RecordLimits,
    /// Discover peers on the local network with mDNS.
    pub mdns: bool,
    /// Connection limits.
    pub limits: ConnectionLimits,
    /// When idle connections are closed for being too many.
    pub conn_manager: ConnManagerConfig,
    /// Another transport beside TCP and QUIC (none by default).
    pub extra_transport: Option<ExtraTransport>,
    /// What checks value records (IPNS) before the DHT stores them; none:
    /// value records are refused.
    pub value_validator: Option<Arc<dyn crate::net::records::ValueValidator>>,
    /// Gossipsub settings; `None`: pub/sub is off.
    pub pubsub: Option<crate::net::pubsub::PubsubConfig>,
    /// NAT traversal protocols (all off by default).
    pub traversal: Traversal,
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
            conn_manager: ConnManagerConfig::default(),
            extra_transport: None,
            value_validator: None,
            pubsub: Some(crate::net::pubsub::PubsubConfig::default()),
            traversal: Traversal::default(),
        }
    }
}

pub(super) enum Command {
    Dial(Multiaddr, oneshot::Sender<Result<PeerId, NetError>>),
    RoutingTable(oneshot::Sender<Vec<(PeerId, Vec<Multiaddr>)>>),
    FindPeer(PeerId, oneshot::Sender<Result<Vec<Multiaddr>, NetError>>),
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
    /// Store a value record on the DHT (here and at the closest peers).
    PutValue(Vec<u8>, Vec<u8>, oneshot::Sender<Result<(), NetError>>),
    /// Collect the distinct values of a DHT key (ours first) until this
    /// many answers came.
    GetValues(
        Vec<u8>,
        usize,
        oneshot::Sender<Result<Vec<ValueAnswer>, NetError>>,
    ),
    /// Store a value record at these peers only (no answer awaited).
    PutValueTo(Vec<u8>, Vec<u8>, Vec<PeerId>),
    /// Close every connection (gracefully, within a deadline), then end.
    Close(oneshot::Sender<()>),
    /// Publish, subscribe, list (`pubsub.rs`).
    Pubsub(pubsub::PubsubCommand),
}

/// How long a clean shutdown waits for connections to close.
pub(super) const CLOSE_TIMEOUT: Duration = Duration::from_secs(3);

/// How often expired DHT records of other peers are dropped.
pub(super) const RECORD_SWEEP_INTERVAL: Duration = Duration::from_secs(300);

/// A peer connecting or leaving (first connection up, last one down).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PeerEvent {
    /// The peer's first connection is up.
    Connected(PeerId),
    /// The peer's last connection closed.
    Disconnected(PeerId),
}

/// Peer events buffered per subscriber; a subscriber that falls further
/// behind skips the oldest (it can re-read the peer list).
pub(super) const PEER_EVENTS_DEPTH: usize = 256;

/// What a command to a swarm task that has ended fails with.
const SWARM_STOPPED: NetError = NetError::Stopped { task: "swarm task" };

/// A cloneable handle to the swarm task.
#[derive(Clone)]
pub struct SwarmHandle {
    commands: mpsc::Sender<Command>,
    events: tokio::sync::broadcast::Sender<PeerEvent>,
    /// Cancelled to stop the node: the swarm task and every long-lived
    /// task started through [`SwarmHandle::spawn_task`] end.
    shutdown: CancellationToken,
    /// Reachability and DHT mode, as the swarm task last saw them.
    reach: tokio::sync::watch::Receiver<ReachInfo>,
    /// Peers in use, which the connection manager keeps.
    activity: Arc<PeerActivity>,
}

impl std::fmt::Debug for SwarmHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SwarmHandle")
    }
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
            .map_err(|_| SWARM_STOPPED)?;
        rx.await.map_err(|_| SWARM_STOPPED)
    }

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

    /// Whether peers can dial this node (AutoNAT's verdict), at which
    /// addresses, and whether the DHT runs as a server.
    pub fn reachability(&self) -> ReachInfo {
        self.reach.borrow().clone()
    }

    /// Where Bitswap and replication say which peers they use (the
    /// connection manager keeps those connections).
    pub fn activity(&self) -> &Arc<PeerActivity> {
        &self.activity
    }

    /// Peers connecting and leaving from now on.
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
    /// restarted on another port) and dials it; once a dial started (or
    /// the peer was already connected), the addresses found.
    pub async fn find_peer(&self, peer: PeerId) -> Result<Vec<Multiaddr>, NetError> {
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
            .map_err(|_| SWARM_STOPPED)
    }

    /// Starts a DHT bootstrap walk (fills the routing table).
    pub async fn bootstrap(&self) -> Result<(), NetError> {
        self.commands
            .send(Command::Bootstrap)
            .await
            .map_err(|_| SWARM_STOPPED)
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
            .map_err(|_| SWARM_STOPPED)
    }

    /// Peers the DHT knows as providers of `cid` (at most `limit`).
    pub async fn find_providers(&self, cid: Cid, limit: usize) -> Result<Vec<PeerId>, NetError> {
        self.ask(|tx| Command::FindProviders(cid, limit, tx))
            .await?
    }

    /// Stores `value` under `key` on the DHT: in our record store (which
    /// validates it first) and at the closest peers found; `Ok` once one
    /// peer took it.
    pub async fn put_value(&self, key: Vec<u8>, value: Vec<u8>) -> Result<(), NetError> {
        self.ask(|tx| Command::PutValue(key, value, tx)).await?
    }

    /// The distinct values stored under `key`: ours (if we hold one) and
    /// those the closest peers answer, in arrival order, once `limit`
    /// answers came or the walk ended; empty when it found none. The caller picks among them (the store only
    /// keeps valid values, peers may send anything).
    pub async fn get_values(
        &self,
        key: Vec<u8>,
        limit: usize,
    ) -> Result<Vec<ValueAnswer>, NetError> {
        self.ask(|tx| Command::GetValues(key, limit, tx)).await?
    }

    /// Sends `value` under `key` to `peers` (kad PUT_VALUE), without
    /// waiting for them: for peers a lookup found holding an outdated
    /// value. Each checks it as any record it is sent.
    pub async fn put_value_to(
        &self,
        key: Vec<u8>,
        value: Vec<u8>,
        peers: Vec<PeerId>,
    ) -> Result<(), NetError> {
        self.commands
            .send(Command::PutValueTo(key, value, peers))
            .await
            .map_err(|_| SWARM_STOPPED)
    }

    /// Closes every connection to `peer` and refuses new ones (either way)
    /// for `duration`: for peers that misbehaved.
    pub async fn ban(&self, peer: PeerId, duration: Duration) -> Result<(), NetError> {
        self.commands
            .send(Command::Ban(peer, duration))
            .await
            .map_err(|_| SWARM_STOPPED)
    }

    async fn ask_pubsub<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<T>) -> pubsub::PubsubCommand,
    ) -> Result<T, PubsubError> {
        self.ask(|tx| Command::Pubsub(make(tx)))
            .await
            .map_err(|_| PubsubError::Stopped)
    }

    /// Publishes `data` on `topic` (signed, to every peer subscribed to
    /// it, and to this node's own subscribers). Succeeds with no peer
    /// listening, as Kubo does.
    pub async fn pubsub_publish(&self, topic: String, data: Bytes) -> Result<(), PubsubError> {
        self.ask_pubsub(|tx| pubsub::PubsubCommand::Publish(topic, data, tx))
            .await?
    }

    /// Subscribes to `topic`: messages arrive on the [`Subscription`]
    /// until it is dropped.
    pub async fn pubsub_subscribe(&self, topic: String) -> Result<Subscription, PubsubError> {
        self.ask_pubsub(|tx| pubsub::PubsubCommand::Subscribe(topic, tx))
            .await?
    }

    /// The topics this node is subscribed to, sorted.
    pub async fn pubsub_topics(&self) -> Result<Vec<String>, PubsubError> {
        self.ask_pubsub(pubsub::PubsubCommand::Topics).await?
    }

    /// Connected peers that speak gossipsub (subscribed to `topic`, if
    /// given), sorted by their text form.
    pub async fn pubsub_peers(&self, topic: Option<String>) -> Result<Vec<PeerId>, PubsubError> {
        self.ask_pubsub(|tx| pubsub::PubsubCommand::Peers(topic, tx))
            .await?
    }

    /// `peer`'s gossipsub score (`None`: scoring or pub/sub is off).
    pub async fn pubsub_score(&self, peer: PeerId) -> Result<Option<f64>, PubsubError> {
        self.ask_pubsub(|tx| pubsub::PubsubCommand::Score(peer, tx))
            .await
    }
}

//! The network layer: libp2p swarm, Kademlia DHT, Bitswap. Protocol logic
//! is written as plain codecs and state machines (no I/O, time passed in)
//! so tests and netsim drive it directly; the async code here only carries
//! their actions out, with store work on blocking threads.
//!
//! - [`swarm`]: transports, identify, ping, Kademlia, and the swarm task.
//! - [`bitswap`]: Bitswap wire messages, server ledger, fetch sessions and
//!   the engine that runs them over libp2p streams.
//! - [`records`]: the DHT's record store (our provider keys, other peers'
//!   records), bounded.
//! - [`pubsub`]: gossipsub as Kubo speaks it, and local subscriptions.
//! - [`metrics`]: Prometheus metrics of the layer.

pub mod bitswap;
pub mod metrics;
pub mod pubsub;
pub mod records;
pub mod swarm;

use crate::block::Cid;
use crate::store::{Store, StoreError};
use libp2p::{Multiaddr, PeerId};
use std::sync::Arc;
use std::time::Duration;

/// Errors of the network layer.
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    /// The node's key could not be made from its seed.
    #[error("node key: {source}")]
    Key {
        /// Why the key was refused.
        #[source]
        source: libp2p::identity::DecodingError,
    },
    /// A protocol name libp2p refuses (the configured Kademlia protocol).
    #[error("protocol name {name:?}: {source}")]
    ProtocolName {
        /// The name.
        name: String,
        /// Why libp2p refused it.
        #[source]
        source: libp2p::swarm::InvalidProtocol,
    },
    /// A transport or the protocols could not be set up.
    #[error("setting up the {what}: {source}")]
    Build {
        /// What was being set up.
        what: &'static str,
        /// libp2p's error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// Listening on an address failed.
    #[error("listening on {addr}: {source}")]
    Listen {
        /// The address.
        addr: Multiaddr,
        /// The transport's error.
        #[source]
        source: libp2p::TransportError<std::io::Error>,
    },
    /// A listener failed while starting.
    #[error("a listener failed: {source}")]
    Listener {
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// Another handler already accepts this protocol's streams.
    #[error("accepting {protocol} streams: {source}")]
    Accept {
        /// The protocol.
        protocol: &'static str,
        /// Why it was refused.
        #[source]
        source: libp2p_stream::AlreadyRegistered,
    },
    /// Dialing an address failed.
    #[error("dialing {addr}: {source}")]
    DialAddr {
        /// The address.
        addr: Multiaddr,
        /// Why the dial failed.
        #[source]
        source: libp2p::swarm::DialError,
    },
    /// Dialing a peer (at the addresses the DHT gave) failed.
    #[error("dialing {peer}: {source}")]
    DialPeer {
        /// The peer.
        peer: PeerId,
        /// Why the dial failed.
        #[source]
        source: libp2p::swarm::DialError,
    },
    /// A peer broke the Bitswap wire protocol (a bad frame or message).
    #[error("{peer} broke the Bitswap protocol: {source}")]
    Protocol {
        /// The peer.
        peer: PeerId,
        /// What was wrong with the frame or message.
        #[source]
        source: bitswap::message::MessageError,
    },
    /// Reading a peer's stream failed.
    #[error("reading from {peer}: {source}")]
    Read {
        /// The peer.
        peer: PeerId,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The DHT's record store refused to announce a key.
    #[error("providing {cid}: {source}")]
    ProvideRefused {
        /// The CID announced (its multihash is the DHT key).
        cid: Cid,
        /// The record store's error.
        #[source]
        source: libp2p::kad::store::Error,
    },
    /// Announcing a key on the DHT failed.
    #[error("providing {cid}: {source}")]
    ProvideFailed {
        /// The CID announced (its multihash is the DHT key).
        cid: Cid,
        /// Kademlia's error.
        #[source]
        source: libp2p::kad::AddProviderError,
    },
    /// No DHT peer could be reached to take a provider record.
    #[error("no DHT peer took the provider record of {cid} (none reachable)")]
    NoDhtPeers {
        /// The CID announced (its multihash is the DHT key).
        cid: Cid,
    },
    /// Our own DHT record store refused a value record.
    #[error("the DHT record store refused the value record: {source}")]
    ValueRefused {
        /// The store's error.
        #[source]
        source: libp2p::kad::store::Error,
    },
    /// No DHT peer could be reached to take a value record.
    #[error("no DHT peer took the value record (none reachable)")]
    NoValuePeers,
    /// Storing a value record at the closest peers failed.
    #[error("storing the value record on the DHT: {source}")]
    PutValueFailed {
        /// Kademlia's error.
        #[source]
        source: libp2p::kad::PutRecordError,
    },
    /// A DHT lookup for a peer ended without finding it.
    #[error("{peer} not found on the DHT")]
    PeerNotFound {
        /// The peer.
        peer: PeerId,
    },
    /// Something took longer than allowed.
    #[error("{what} did not finish within {} s", .after.as_secs())]
    Timeout {
        /// What did not finish.
        what: &'static str,
        /// How long was waited.
        after: Duration,
    },
    /// No peer provided a wanted block before the fetch's stall timeout.
    #[error("no peer provided {} within {} s ({peers} peers asked)", wanted(.cid), .after.as_secs())]
    Stalled {
        /// The block waited for (or the fetch's root), if known.
        cid: Option<Cid>,
        /// How long was waited.
        after: Duration,
        /// Peers that were asked.
        peers: usize,
    },
    /// A task of the network layer has stopped (the node shuts down, or
    /// every handle to a fetch was dropped).
    #[error("the {task} has stopped")]
    Stopped {
        /// Which task.
        task: &'static str,
    },
    /// Storing fetched blocks failed; the fetch's later requests fail too.
    #[error("storing fetched blocks: {source}")]
    StoreFetched {
        /// The store's error (shared by every request it fails).
        #[source]
        source: Arc<StoreError>,
    },
    /// A task of the network layer panicked or was cancelled.
    #[error("the {task} failed: {source}")]
    TaskFailed {
        /// Which task.
        task: &'static str,
        /// How the task ended.
        #[source]
        source: Arc<tokio::task::JoinError>,
    },
    /// The block store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A fetched block that does not decode as its place in the DAG needs.
    #[error(transparent)]
    Dag(#[from] crate::dag::DagError),
}

/// What a stalled fetch waited for, for its error message.
fn wanted(cid: &Option<Cid>) -> String {
    cid.map_or_else(|| "the wanted blocks".to_string(), |c| c.to_string())
}

/// A running network: the swarm task and the Bitswap engine.
pub struct Network {
    /// This node's peer id.
    pub peer_id: PeerId,
    /// The handle to the swarm task.
    pub swarm: swarm::SwarmHandle,
    /// The handle to the Bitswap engine.
    pub bitswap: bitswap::driver::Bitswap,
    control: libp2p_stream::Control,
    /// libp2p's metrics (transport bytes among them); the node adds its own.
    pub metrics: Arc<std::sync::Mutex<libp2p::metrics::Registry>>,
}

/// Bytes through the transport since start (streams' payload, after
/// Noise and Yamux framing are taken off).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Bandwidth {
    /// Bytes received.
    pub total_in: u64,
    /// Bytes sent.
    pub total_out: u64,
}

impl Network {
    /// Starts the node's networking with the identity from `key_seed`,
    /// serving and storing blocks through `store`. Needs a tokio runtime.
    pub async fn start(
        key_seed: [u8; 32],
        store: Arc<dyn Store>,
        config: &swarm::NetConfig,
    ) -> Result<Network, NetError> {
        let key = swarm::keypair_from_seed(key_seed)?;
        let peer_id = key.public().to_peer_id();
        let mut registry = libp2p::metrics::Registry::default();
        let built = swarm::build(key, config, &mut registry)?;
        let libp2p_metrics = libp2p::metrics::Metrics::new(&mut registry);
        let control = built.behaviour().stream.new_control();
        let swarm = swarm::spawn(built, config, libp2p_metrics).await?;
        let latency = metrics::fetch_latency_histogram();
        let ours = registry.sub_registry_with_prefix("cairn");
        ours.register(
            "fetch_block_seconds",
            "Time from wanting a block to receiving it from a peer",
            latency.clone(),
        );
        let bitswap = bitswap::driver::Bitswap::spawn(
            control.clone(),
            store,
            swarm.clone(),
            latency,
            config.idle_timeout,
        )?;
        ours.register_collector(Box::new(metrics::BitswapCollector(bitswap.clone())));
        ours.register_collector(Box::new(metrics::ReachCollector(swarm.clone())));
        Ok(Network {
            peer_id,
            swarm,
            bitswap,
            control,
            metrics: Arc::new(std::sync::Mutex::new(registry)),
        })
    }

    /// Transport bytes in and out so far. Bytes of a relayed connection
    /// count twice: once on the circuit, once on the connection to the
    /// relay that carries it (both are transports the meter wraps).
    pub fn bandwidth(&self) -> Bandwidth {
        let mut text = String::new();
        {
            let registry = self.metrics.lock().unwrap_or_else(|e| e.into_inner());
            if prometheus_client::encoding::text::encode(&mut text, &registry).is_err() {
                return Bandwidth::default();
            }
        }
        let mut bw = Bandwidth::default();
        for line in text.lines() {
            if !line.starts_with("libp2p_bandwidth_bytes_total") {
                continue;
            }
            let Some(value) = line.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok()) else {
                continue;
            };
            if line.contains("direction=\"Inbound\"") {
                bw.total_in += value as u64;
            } else if line.contains("direction=\"Outbound\"") {
                bw.total_out += value as u64;
            }
        }
        bw
    }

    /// A raw stream control on this node's swarm (tests speak protocols
    /// by hand with it, e.g. to play a misbehaving peer).
    pub fn stream_control(&self) -> libp2p_stream::Control {
        self.control.clone()
    }
}

//! The network layer (issue 3, being built): libp2p swarm, Kademlia DHT,
//! Bitswap. Protocol logic is written as plain codecs and state machines
//! (no I/O, time passed in) so tests and netsim drive it directly; the
//! async code here only carries their actions out.
//!
//! - [`swarm`]: transports, identify, ping, Kademlia, and the swarm task.
//! - [`bitswap`]: Bitswap wire messages, server ledger, fetch sessions and
//!   the engine that runs them over libp2p streams.

pub mod bitswap;
pub mod metrics;
pub mod records;
pub mod swarm;

use crate::store::{Store, StoreError};
use libp2p::PeerId;
use std::sync::Arc;

/// Errors of the network layer.
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    #[error("network setup: {0}")]
    Setup(String),
    #[error("dial failed: {0}")]
    Dial(String),
    #[error("protocol error: {0}")]
    Protocol(String),
    #[error("DHT: {0}")]
    Dht(String),
    #[error("timed out: {0}")]
    Timeout(String),
    #[error("the network task has stopped")]
    Stopped,
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A fetched block that does not decode as its place in the DAG needs.
    #[error(transparent)]
    Dag(#[from] crate::dag::DagError),
}

/// A running network: the swarm task and the Bitswap engine.
pub struct Network {
    pub peer_id: PeerId,
    pub swarm: swarm::SwarmHandle,
    pub bitswap: bitswap::driver::Bitswap,
    control: libp2p_stream::Control,
    /// libp2p's metrics (transport bytes among them); the node adds its own.
    pub metrics: Arc<std::sync::Mutex<libp2p::metrics::Registry>>,
}

/// Bytes through the transport since start (streams' payload, after
/// Noise and Yamux framing are taken off).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Bandwidth {
    pub total_in: u64,
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
        Ok(Network {
            peer_id,
            swarm,
            bitswap,
            control,
            metrics: Arc::new(std::sync::Mutex::new(registry)),
        })
    }

    /// Transport bytes in and out so far.
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

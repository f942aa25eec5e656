//! The network layer (issue 3, being built): libp2p swarm, Kademlia DHT,
//! Bitswap. Protocol logic is written as plain codecs and state machines
//! (no I/O, time passed in) so tests and netsim drive it directly; the
//! async code here only carries their actions out.
//!
//! - [`swarm`]: transports, identify, ping, Kademlia, and the swarm task.
//! - [`bitswap`]: Bitswap wire messages, server ledger, fetch sessions and
//!   the engine that runs them over libp2p streams.

pub mod bitswap;
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
}

/// A running network: the swarm task and the Bitswap engine.
pub struct Network {
    pub peer_id: PeerId,
    pub swarm: swarm::SwarmHandle,
    pub bitswap: bitswap::driver::Bitswap,
    control: libp2p_stream::Control,
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
        let built = swarm::build(key, config)?;
        let control = built.behaviour().stream.new_control();
        let swarm = swarm::spawn(built, config).await?;
        let bitswap = bitswap::driver::Bitswap::spawn(control.clone(), store, swarm.clone())?;
        Ok(Network {
            peer_id,
            swarm,
            bitswap,
            control,
        })
    }

    /// A raw stream control on this node's swarm (tests speak protocols
    /// by hand with it, e.g. to play a misbehaving peer).
    pub fn stream_control(&self) -> libp2p_stream::Control {
        self.control.clone()
    }
}

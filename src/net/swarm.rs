//! The libp2p swarm and the one task that owns it.
//!
//! Transports TCP and QUIC, Noise, Yamux; identify (`/ipfs/id/1.0.0`,
//! agent `cairn/<version>`), ping, Kademlia (protocol name configurable) and
//! `libp2p-stream` for Bitswap's streams. Everything else talks to the swarm
//! task through [`SwarmHandle`]: bounded commands with oneshot replies.

use super::NetError;
use futures::StreamExt;
use libp2p::swarm::{dial_opts::DialOpts, ConnectionId, NetworkBehaviour, SwarmEvent};
use libp2p::{
    identify, identity, kad, noise, ping, tcp, yamux, Multiaddr, PeerId, StreamProtocol, Swarm,
};
use std::collections::HashMap;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

/// The IPFS public DHT protocol; private networks pick another name.
pub const DEFAULT_KAD_PROTOCOL: &str = "/ipfs/kad/1.0.0";

/// Network settings.
#[derive(Clone, Debug)]
pub struct NetConfig {
    /// Addresses to listen on (loopback by default: no public exposure).
    pub listen: Vec<Multiaddr>,
    /// Kademlia protocol name.
    pub kad_protocol: String,
    /// How long an idle connection stays open.
    pub idle_timeout: Duration,
}

impl Default for NetConfig {
    fn default() -> Self {
        NetConfig {
            listen: vec!["/ip4/127.0.0.1/tcp/0".parse().expect("valid multiaddr")],
            kad_protocol: DEFAULT_KAD_PROTOCOL.into(),
            idle_timeout: Duration::from_secs(60),
        }
    }
}

/// All protocols the node speaks.
#[derive(NetworkBehaviour)]
pub struct Behaviour {
    pub identify: identify::Behaviour,
    pub ping: ping::Behaviour,
    pub kad: kad::Behaviour<kad::store::MemoryStore>,
    pub stream: libp2p_stream::Behaviour,
}

/// The node's identity from the repo's 32-byte Ed25519 seed.
pub fn keypair_from_seed(seed: [u8; 32]) -> Result<identity::Keypair, NetError> {
    let mut seed = seed;
    identity::Keypair::ed25519_from_bytes(&mut seed)
        .map_err(|e| NetError::Setup(format!("node key: {e}")))
}

/// Builds the swarm (does not listen yet).
pub fn build(key: identity::Keypair, config: &NetConfig) -> Result<Swarm<Behaviour>, NetError> {
    let kad_protocol = StreamProtocol::try_from_owned(config.kad_protocol.clone())
        .map_err(|e| NetError::Setup(format!("kad protocol {:?}: {e}", config.kad_protocol)))?;
    let swarm = libp2p::SwarmBuilder::with_existing_identity(key)
        .with_tokio()
        .with_tcp(
            tcp::Config::default().nodelay(true),
            noise::Config::new,
            yamux::Config::default,
        )
        .map_err(|e| NetError::Setup(format!("tcp transport: {e}")))?
        .with_quic()
        .with_behaviour(|key| {
            let peer_id = key.public().to_peer_id();
            let identify = identify::Behaviour::new(
                identify::Config::new("ipfs/0.1.0".into(), key.public())
                    .with_agent_version(format!("cairn/{}", env!("CARGO_PKG_VERSION"))),
            );
            let kad = kad::Behaviour::with_config(
                peer_id,
                kad::store::MemoryStore::new(peer_id),
                kad::Config::new(kad_protocol),
            );
            Behaviour {
                identify,
                ping: ping::Behaviour::default(),
                kad,
                stream: libp2p_stream::Behaviour::new(),
            }
        })
        .map_err(|e| NetError::Setup(format!("behaviour: {e}")))?
        .with_swarm_config(|c| c.with_idle_connection_timeout(config.idle_timeout))
        .build();
    Ok(swarm)
}

enum Command {
    Dial(Multiaddr, oneshot::Sender<Result<PeerId, NetError>>),
    ListenAddrs(oneshot::Sender<Vec<Multiaddr>>),
    Peers(oneshot::Sender<Vec<PeerId>>),
    Disconnect(PeerId),
}

/// A cloneable handle to the swarm task.
#[derive(Clone)]
pub struct SwarmHandle {
    commands: mpsc::Sender<Command>,
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
        self.ask(Command::Peers).await
    }

    /// Closes every connection to `peer` (e.g. it misbehaved).
    pub async fn disconnect(&self, peer: PeerId) -> Result<(), NetError> {
        self.commands
            .send(Command::Disconnect(peer))
            .await
            .map_err(|_| NetError::Stopped)
    }
}

/// Starts listening and spawns the task that owns the swarm.
pub async fn spawn(
    mut swarm: Swarm<Behaviour>,
    config: &NetConfig,
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
    // Bounded: callers wait when the swarm task is busy.
    let (tx, mut rx) = mpsc::channel::<Command>(64);
    tokio::spawn(async move {
        let mut dials: HashMap<ConnectionId, oneshot::Sender<Result<PeerId, NetError>>> =
            HashMap::new();
        loop {
            tokio::select! {
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
                    Some(Command::ListenAddrs(reply)) => {
                        let _ = reply.send(listening.clone());
                    }
                    Some(Command::Peers(reply)) => {
                        let _ = reply.send(swarm.connected_peers().copied().collect());
                    }
                    Some(Command::Disconnect(peer)) => {
                        let _ = swarm.disconnect_peer_id(peer);
                    }
                },
                event = swarm.select_next_some() => match event {
                    SwarmEvent::ConnectionEstablished { peer_id, connection_id, endpoint, .. } => {
                        tracing::debug!(%peer_id, addr = %endpoint.get_remote_address(), "connected");
                        if let Some(reply) = dials.remove(&connection_id) {
                            let _ = reply.send(Ok(peer_id));
                        }
                    }
                    SwarmEvent::OutgoingConnectionError { connection_id, error, .. } => {
                        if let Some(reply) = dials.remove(&connection_id) {
                            let _ = reply.send(Err(NetError::Dial(error.to_string())));
                        }
                    }
                    SwarmEvent::NewListenAddr { address, .. } => listening.push(address),
                    SwarmEvent::Behaviour(BehaviourEvent::Identify(identify::Event::Received { peer_id, info, .. })) => {
                        for addr in info.listen_addrs {
                            swarm.behaviour_mut().kad.add_address(&peer_id, addr);
                        }
                    }
                    _ => {}
                },
            }
        }
    });
    Ok(SwarmHandle { commands: tx })
}

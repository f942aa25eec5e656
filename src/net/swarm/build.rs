//! Building the swarm: transports (TCP, QUIC, an optional extra one),
//! Noise, Yamux, and the protocols of [`Behaviour`].

use super::NetConfig;
use crate::net::NetError;
use libp2p::core::Transport as _;
use libp2p::swarm::behaviour::toggle::Toggle;
use libp2p::swarm::NetworkBehaviour;
use libp2p::{
    autonat, connection_limits, dcutr, identify, identity, kad, mdns, memory_connection_limits,
    noise, ping, relay, tcp, upnp, yamux, StreamProtocol, Swarm,
};
use std::time::Duration;

/// All protocols the node speaks.
#[derive(NetworkBehaviour)]
pub struct Behaviour {
    /// Connection counts (total, per peer, pending).
    pub limits: connection_limits::Behaviour,
    /// No new connections while the process is over its memory budget.
    pub memory: Toggle<memory_connection_limits::Behaviour>,
    /// Peers banned for misbehaving: connections refused while banned.
    pub blocked: libp2p::allow_block_list::Behaviour<libp2p::allow_block_list::BlockedPeers>,
    /// `/ipfs/id/1.0.0`: our agent, addresses and protocols.
    pub identify: identify::Behaviour,
    /// Liveness pings.
    pub ping: ping::Behaviour,
    /// The Kademlia DHT, over our record store.
    pub kad: kad::Behaviour<crate::net::records::ProviderStore>,
    /// Raw streams (Bitswap's).
    pub stream: libp2p_stream::Behaviour,
    /// Local network discovery, off unless configured.
    pub mdns: Toggle<mdns::tokio::Behaviour>,
    /// Gossipsub (`[pubsub] enabled`, on by default).
    pub pubsub: Toggle<crate::net::pubsub::PubsubBehaviour>,
    /// Circuit relay v2 client (NAT traversal: see `traversal.rs`; this
    /// and the toggles below are off in the local profile).
    pub relay_client: Toggle<relay::client::Behaviour>,
    /// AutoNAT v1, client and server.
    pub autonat_v1: Toggle<autonat::v1::Behaviour>,
    /// AutoNAT v2 client: has peers dial back our address candidates.
    pub autonat_v2_client: Toggle<autonat::v2::client::Behaviour>,
    /// AutoNAT v2 server: dials back peers that ask.
    pub autonat_v2_server: Toggle<autonat::v2::server::Behaviour>,
    /// Circuit relay v2 service for other peers.
    pub relay: Toggle<super::traversal::RelayService>,
    /// DCUtR: hole punching over relayed connections.
    pub dcutr: Toggle<dcutr::Behaviour>,
    /// UPnP IGD port mapping.
    pub upnp: Toggle<upnp::tokio::Behaviour>,
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
    identity::Keypair::ed25519_from_bytes(&mut seed).map_err(|source| NetError::Key { source })
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
    let kad_protocol =
        StreamProtocol::try_from_owned(config.kad_protocol.clone()).map_err(|source| {
            NetError::ProtocolName {
                name: config.kad_protocol.clone(),
                source,
            }
        })?;
    let dht_mode = config.dht_server.map(|server| {
        if server {
            kad::Mode::Server
        } else {
            kad::Mode::Client
        }
    });
    let record_limits = config.records;
    let validator = config.value_validator.clone();
    let limits = config.limits;
    let want_mdns = config.mdns;
    let extra = config.extra_transport.clone();
    let traversal = config.traversal.clone();
    let pubsub = match &config.pubsub {
        Some(c) => Some(
            crate::net::pubsub::behaviour(&key, c, registry).map_err(|source| NetError::Build {
                what: "gossipsub",
                source,
            })?,
        ),
        None => None,
    };
    let swarm = libp2p::SwarmBuilder::with_existing_identity(key)
        .with_tokio()
        .with_quic()
        // TCP as `with_tcp` builds it, but dials that cannot bind the
        // listening port are made from a fresh one (see `ports.rs`).
        .with_other_transport(
            |key| -> Result<_, Box<dyn std::error::Error + Send + Sync>> {
                Ok(super::ports::tcp(tcp::Config::default().nodelay(true))
                    .upgrade(libp2p::core::upgrade::Version::V1Lazy)
                    .authenticate(noise::Config::new(key)?)
                    .multiplex(yamux_config())
                    .map(|(p, c), _| (p, libp2p::core::muxing::StreamMuxerBox::new(c))))
            },
        )
        .map_err(|e| build_error("TCP transport", e))?
        .with_other_transport(|key| match &extra {
            Some(make) => (make.0)(key),
            None => libp2p::core::transport::dummy::DummyTransport::new().boxed(),
        })
        .map_err(|e| build_error("extra transport", e))?
        // In front of the other transports: `/p2p-circuit` addresses go
        // through a relay (only while the relay client is on).
        .with_relay_client(noise::Config::new, yamux_config)
        .map_err(|e| build_error("relay transport", e))?
        .with_bandwidth_metrics(registry)
        .with_behaviour(|key, relay_client| {
            let peer_id = key.public().to_peer_id();
            let nat = traversal.behaviours(peer_id, relay_client);
            let identify = identify::Behaviour::new(
                identify::Config::new("ipfs/0.1.0".into(), key.public())
                    .with_agent_version(format!("cairn/{}", env!("CARGO_PKG_VERSION")))
                    // New listen addresses reach connected peers at once
                    // (confirmed external ones are pushed by the task).
                    .with_push_listen_addr_updates(true),
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
                crate::net::records::ProviderStore::new(peer_id, record_limits)
                    .with_validator(validator),
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
                pubsub: pubsub.into(),
                relay_client: nat.relay_client,
                autonat_v1: nat.autonat_v1,
                autonat_v2_client: nat.autonat_v2_client,
                autonat_v2_server: nat.autonat_v2_server,
                relay: nat.relay,
                dcutr: nat.dcutr,
                upnp: nat.upnp,
            })
        })
        .map_err(|e| build_error("protocols", e))?
        .with_swarm_config(|c| c.with_idle_connection_timeout(config.idle_timeout))
        .build();
    Ok(swarm)
}

/// A failure of libp2p's swarm builder, for [`NetError::Build`].
fn build_error(what: &'static str, e: impl std::error::Error + Send + Sync + 'static) -> NetError {
    NetError::Build {
        what,
        source: Box::new(e),
    }
}

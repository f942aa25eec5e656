//! Bodies of the node and network commands: `id`, `version`, `swarm/*`,
//! `routing/*`, `stats/bw`, `stats/dht`, `bitswap/stat`.

use crate::node::{Node, NodeError};
use serde::{Deserialize, Serialize};

/// `id`: the node's identity (Kubo's `ipfs id`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct IdResponse {
    /// Listen addresses, each ending in `/p2p/<ID>`.
    pub addresses: Vec<String>,
    /// `cairn/<version>`.
    pub agent_version: String,
    /// The peer ID.
    #[serde(rename = "ID")]
    pub id: String,
    /// Protocols spoken, sorted.
    pub protocols: Vec<String>,
    /// The public key, protobuf-encoded, in base64.
    pub public_key: String,
    /// cairn's addition (a running daemon only): whether peers can dial
    /// this node and the DHT mode that follows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reachability: Option<IdReachability>,
}

/// `id`'s `Reachability`: AutoNAT's verdict and the DHT mode.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct IdReachability {
    /// "public" (a peer dialled us back), "private" (peers could not) or
    /// "unknown" (AutoNAT off, as in the local profile, or no answer yet).
    pub status: String,
    /// The addresses peers dialled us back at.
    pub confirmed_addresses: Vec<String>,
    /// "server" (answers DHT queries, listed in peers' routing tables) or
    /// "client".
    pub dht_mode: String,
    /// Our addresses through the relays we hold a reservation on.
    #[serde(default)]
    pub relay_addresses: Vec<String>,
}

impl From<crate::net::swarm::ReachInfo> for IdReachability {
    fn from(r: crate::net::swarm::ReachInfo) -> Self {
        IdReachability {
            status: r.status.as_str().into(),
            confirmed_addresses: r.confirmed.iter().map(|a| a.to_string()).collect(),
            dht_mode: if r.dht_server { "server" } else { "client" }.into(),
            relay_addresses: r.relay_addrs.iter().map(|a| a.to_string()).collect(),
        }
    }
}

/// `stats/dht`: the DHT's mode and routing table (Kubo lists the table by
/// bucket; cairn lists its peers).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DhtStats {
    /// "server" or "client".
    pub mode: String,
    /// The routing table's peers.
    pub peers: Vec<DhtPeer>,
}

/// A peer in the DHT routing table.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DhtPeer {
    /// The peer ID.
    #[serde(rename = "ID")]
    pub id: String,
    /// Its addresses in the table.
    pub addrs: Vec<String>,
}

impl IdResponse {
    /// `node`'s identity, listening on `addrs` (without `/p2p/`).
    pub fn for_node(node: &Node, addrs: &[String]) -> Result<IdResponse, NodeError> {
        use base64::Engine as _;
        let key = crate::net::swarm::keypair_from_seed(node.key_seed())?;
        let peer = key.public().to_peer_id();
        let mut protocols: Vec<String> = crate::net::bitswap::driver::PROTOCOLS
            .iter()
            .map(|s| s.to_string())
            .collect();
        protocols.push(node.config().net.kad_protocol.clone());
        protocols.extend(
            [
                "/ipfs/id/1.0.0",
                "/ipfs/id/push/1.0.0",
                "/ipfs/ping/1.0.0",
                crate::replicate::protocol::PROTOCOL,
            ]
            .map(String::from),
        );
        if node.config().pubsub.enabled {
            protocols
                .extend(["/meshsub/1.0.0", "/meshsub/1.1.0", "/meshsub/1.2.0"].map(String::from));
        }
        protocols.sort();
        Ok(IdResponse {
            addresses: addrs.iter().map(|a| format!("{a}/p2p/{peer}")).collect(),
            agent_version: format!("cairn/{}", env!("CARGO_PKG_VERSION")),
            id: peer.to_string(),
            protocols,
            public_key: base64::engine::general_purpose::STANDARD
                .encode(key.public().encode_protobuf()),
            reachability: None,
        })
    }
}

/// `version`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct VersionResponse {
    /// Source commit (empty: not recorded).
    pub commit: String,
    /// Go version in Kubo; empty here.
    pub golang: String,
    /// Repository format.
    pub repo: String,
    /// `<arch>/<os>`.
    pub system: String,
    /// cairn's version.
    pub version: String,
}

impl VersionResponse {
    /// This build's version answer.
    pub fn current() -> VersionResponse {
        VersionResponse {
            commit: String::new(),
            golang: String::new(),
            repo: "cairn-1".into(),
            system: format!("{}/{}", std::env::consts::ARCH, std::env::consts::OS),
            version: env!("CARGO_PKG_VERSION").into(),
        }
    }
}

/// `swarm/peers`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct SwarmPeers {
    /// Each connected peer.
    pub peers: Vec<SwarmPeer>,
}

/// One connected peer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct SwarmPeer {
    /// The connection's remote address.
    pub addr: String,
    /// The peer ID.
    pub peer: String,
}

/// A list of lines (`swarm/connect`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Strings {
    /// The lines.
    pub strings: Vec<String>,
}

/// One line of `routing/findprovs`: a routing event.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct RoutingEvent {
    /// Unused (empty).
    pub extra: String,
    /// Unused (empty).
    #[serde(rename = "ID")]
    pub id: String,
    /// The peers the event is about.
    pub responses: Vec<PeerInfo>,
    /// The event kind; [`RoutingEvent::PROVIDER`] names a provider.
    pub r#type: u8,
}

impl RoutingEvent {
    /// Kubo's event type for "found a provider".
    pub const PROVIDER: u8 = 4;

    /// Kubo's event type for "found the peer asked for".
    pub const FINAL_PEER: u8 = 2;

    /// The peer asked for, with its addresses.
    pub fn final_peer(peer: String, addrs: Vec<String>) -> RoutingEvent {
        RoutingEvent {
            extra: String::new(),
            id: String::new(),
            responses: vec![PeerInfo { addrs, id: peer }],
            r#type: Self::FINAL_PEER,
        }
    }

    /// A provider found.
    pub fn provider(peer: String) -> RoutingEvent {
        RoutingEvent {
            extra: String::new(),
            id: String::new(),
            responses: vec![PeerInfo {
                addrs: Vec::new(),
                id: peer,
            }],
            r#type: Self::PROVIDER,
        }
    }
}

/// A peer and the addresses known for it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct PeerInfo {
    /// Its addresses (may be empty).
    pub addrs: Vec<String>,
    /// The peer ID.
    #[serde(rename = "ID")]
    pub id: String,
}

/// `routing/reprovide`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ReprovideResponse {
    /// Announcements that failed since the node started.
    pub failed: u64,
    /// Keys announced by this call.
    pub keys: u64,
    /// Announcements made since the node started.
    pub provided: u64,
}

/// `stats/bw`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct BandwidthStats {
    /// Bytes a second in, recently.
    pub rate_in: f64,
    /// Bytes a second out, recently.
    pub rate_out: f64,
    /// Bytes in since start.
    pub total_in: u64,
    /// Bytes out since start.
    pub total_out: u64,
}

/// `bitswap/stat`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct BitswapStat {
    /// Fetch sessions running.
    pub active_sessions: u64,
    /// Blocks received (verified).
    pub blocks_received: u64,
    /// Blocks served.
    pub blocks_sent: u64,
    /// Bytes received.
    pub data_received: u64,
    /// Bytes served.
    pub data_sent: u64,
    /// Connected peers.
    pub peers: Vec<String>,
    /// Most peers any running session may ask.
    pub session_peers: u64,
    /// cairn's: each running fetch, for progress bars.
    pub sessions: Vec<SessionStat>,
}

/// One running fetch in [`BitswapStat`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct SessionStat {
    /// Blocks it received.
    pub blocks: u64,
    /// Their bytes.
    pub bytes: u64,
    /// Peers it may ask.
    pub peers: u64,
    /// What it fetches, when it was given a root.
    pub root: Option<String>,
    /// Peers that sent it a wanted block.
    pub senders: u64,
}

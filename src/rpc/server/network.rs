//! The node and its network: `id`, `version`, `swarm/*`, `routing/*`,
//! `stats/bw`, `stats/dht` and `bitswap/stat`.

use super::{bad_request, internal, ApiError, ApiState, Params};
use crate::block::parse_cid;
use crate::rpc::types::{
    BandwidthStats, BitswapStat, DhtPeer, DhtStats, IdResponse, ReprovideResponse, RoutingEvent,
    SessionStat, Strings, SwarmPeer, SwarmPeers, VersionResponse,
};
use axum::extract::{RawQuery, State};
use axum::Json;

pub(super) async fn id(State(s): State<ApiState>) -> Result<Json<IdResponse>, ApiError> {
    let addrs = s
        .online
        .net()
        .swarm
        .listen_addrs()
        .await
        .map_err(internal)?;
    let addrs: Vec<String> = addrs.iter().map(|a| a.to_string()).collect();
    let mut id = IdResponse::for_node(s.online.node(), &addrs).map_err(internal)?;
    id.reachability = Some(s.online.net().swarm.reachability().into());
    Ok(Json(id))
}

pub(super) async fn stats_dht(State(s): State<ApiState>) -> Result<Json<DhtStats>, ApiError> {
    let swarm = &s.online.net().swarm;
    let table = swarm.routing_table().await.map_err(internal)?;
    let server = swarm.reachability().dht_server;
    Ok(Json(DhtStats {
        mode: if server { "server" } else { "client" }.into(),
        peers: table
            .into_iter()
            .map(|(p, addrs)| DhtPeer {
                id: p.to_string(),
                addrs: addrs.iter().map(|a| a.to_string()).collect(),
            })
            .collect(),
    }))
}

pub(super) async fn version() -> Json<VersionResponse> {
    Json(VersionResponse::current())
}

pub(super) async fn swarm_peers(State(s): State<ApiState>) -> Result<Json<SwarmPeers>, ApiError> {
    let peers = s.online.net().swarm.peer_addrs().await.map_err(internal)?;
    let peers = peers
        .into_iter()
        .map(|(p, a)| SwarmPeer {
            addr: a.to_string(),
            peer: p.to_string(),
        })
        .collect();
    Ok(Json(SwarmPeers { peers }))
}

pub(super) async fn swarm_connect(
    State(s): State<ApiState>,
    RawQuery(q): RawQuery,
) -> Result<Json<Strings>, ApiError> {
    let q = Params::parse(q);
    let mut lines = Vec::new();
    for a in q.all("arg") {
        let addr: libp2p::Multiaddr = a
            .parse()
            .map_err(|e| bad_request(format!("invalid multiaddr {a:?}: {e}")))?;
        let peer = s.online.net().swarm.dial(addr).await.map_err(internal)?;
        lines.push(format!("connect {peer} success"));
    }
    if lines.is_empty() {
        return Err(bad_request("argument \"arg\" is required"));
    }
    Ok(Json(Strings { strings: lines }))
}

pub(super) async fn findprovs(
    State(s): State<ApiState>,
    RawQuery(q): RawQuery,
) -> Result<String, ApiError> {
    let q = Params::parse(q);
    let cid = parse_cid(q.arg()?).map_err(bad_request)?;
    let limit = q
        .num::<usize>("num-providers")?
        .unwrap_or(20)
        .clamp(1, 1000);
    let providers = s
        .online
        .net()
        .swarm
        .find_providers(cid, limit)
        .await
        .map_err(internal)?;
    // Kubo streams routing events, one JSON object a line.
    let mut out = String::new();
    for p in providers {
        let event = RoutingEvent::provider(p.to_string());
        out.push_str(&serde_json::to_string(&event).map_err(internal)?);
        out.push('\n');
    }
    Ok(out)
}

/// `routing/findpeer` (and `dht/findpeer`): a connected peer's addresses,
/// or those the DHT knows (the peer is dialed), as Kubo's final-peer event.
pub(super) async fn findpeer(
    State(s): State<ApiState>,
    RawQuery(q): RawQuery,
) -> Result<String, ApiError> {
    let q = Params::parse(q);
    let arg = q.arg()?;
    let peer: libp2p::PeerId = arg
        .parse()
        .map_err(|e| bad_request(format!("invalid peer ID {arg:?}: {e}")))?;
    let swarm = &s.online.net().swarm;
    let mut addrs: Vec<String> = swarm
        .peer_addrs()
        .await
        .map_err(internal)?
        .into_iter()
        .filter(|(p, _)| *p == peer)
        .map(|(_, a)| a.to_string())
        .collect();
    if addrs.is_empty() {
        addrs = swarm
            .find_peer(peer)
            .await
            .map_err(|e| match e {
                // Kubo's words.
                crate::net::NetError::PeerNotFound { .. } => internal("routing: not found"),
                other => internal(other),
            })?
            .iter()
            .map(|a| a.to_string())
            .collect();
    }
    let event = RoutingEvent::final_peer(peer.to_string(), addrs);
    let mut out = serde_json::to_string(&event).map_err(internal)?;
    out.push('\n');
    Ok(out)
}

pub(super) async fn reprovide(
    State(s): State<ApiState>,
) -> Result<Json<ReprovideResponse>, ApiError> {
    let keys = s
        .online
        .provider()
        .reprovide()
        .await
        .ok_or_else(|| internal("the provider has stopped"))?;
    let st = &s.online.provider().stats;
    use std::sync::atomic::Ordering::Relaxed;
    Ok(Json(ReprovideResponse {
        failed: st.failed.load(Relaxed),
        keys,
        provided: st.provided.load(Relaxed),
    }))
}

pub(super) async fn stats_bw(State(s): State<ApiState>) -> Json<BandwidthStats> {
    let bw = s.online.net().bandwidth();
    let (rate_in, rate_out) = s.online.bandwidth_rates();
    Json(BandwidthStats {
        rate_in,
        rate_out,
        total_in: bw.total_in,
        total_out: bw.total_out,
    })
}

pub(super) async fn bitswap_stat(State(s): State<ApiState>) -> Result<Json<BitswapStat>, ApiError> {
    let st = s.online.net().bitswap.stats();
    let peers = s.online.net().swarm.peers().await.map_err(internal)?;
    Ok(Json(BitswapStat {
        active_sessions: st.active_sessions as u64,
        blocks_received: st.blocks_received,
        blocks_sent: st.blocks_sent,
        data_received: st.bytes_received,
        data_sent: st.bytes_sent,
        peers: peers.iter().map(|p| p.to_string()).collect(),
        session_peers: st.session_peers as u64,
        sessions: st
            .sessions
            .iter()
            .map(|x| SessionStat {
                blocks: x.blocks,
                bytes: x.bytes,
                peers: x.peers as u64,
                root: x.root.map(|c| c.to_string()),
                senders: x.senders as u64,
            })
            .collect(),
    }))
}

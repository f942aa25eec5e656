//! The task that owns the swarm: carries out [`SwarmHandle`]'s commands,
//! follows connections and answers DHT queries' callers.

use super::build::{Behaviour, BehaviourEvent};
use super::connmgr::{self, ConnManager, PeerActivity};
use super::dht::{learn_addresses, on_query_progress, Query};
use super::pubsub::{self as ps, PubsubState};
use super::reach::{confirm_if_local, is_global, reached_from_outside, Reach, ReachInfo};
use super::relays::{self, is_relayed, Relays};
use super::{Command, NetConfig, PeerEvent, SwarmHandle};
use super::{CLOSE_TIMEOUT, PEER_EVENTS_DEPTH, RECORD_SWEEP_INTERVAL};
use crate::net::NetError;
use futures::StreamExt;
use libp2p::multiaddr::Protocol;
use libp2p::swarm::dial_opts::{DialOpts, PeerCondition};
use libp2p::swarm::{ConnectionId, SwarmEvent};
use libp2p::{autonat, identify, kad, mdns, relay, Multiaddr, PeerId, Swarm};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot, watch};
use tokio_util::sync::CancellationToken;

/// How long the listeners may take to start.
const LISTEN_TIMEOUT: Duration = Duration::from_secs(10);

/// The reply to a dial: the peer reached, or why not.
type DialReply = oneshot::Sender<Result<PeerId, NetError>>;

/// Starts listening and spawns the task that owns the swarm.
pub async fn spawn(
    mut swarm: Swarm<Behaviour>,
    config: &NetConfig,
    metrics: libp2p::metrics::Metrics,
) -> Result<SwarmHandle, NetError> {
    for addr in &config.listen {
        swarm
            .listen_on(addr.clone())
            .map_err(|source| NetError::Listen {
                addr: addr.clone(),
                source,
            })?;
    }
    // Wait for the listeners so callers can read real addresses at once.
    let mut listening = Vec::new();
    while listening.len() < config.listen.len() {
        match tokio::time::timeout(LISTEN_TIMEOUT, swarm.select_next_some()).await {
            Ok(SwarmEvent::NewListenAddr { address, .. }) => listening.push(address),
            Ok(SwarmEvent::ListenerError { error, .. }) => {
                return Err(NetError::Listener { source: error })
            }
            Ok(_) => {}
            Err(_) => {
                return Err(NetError::Timeout {
                    what: "starting the listeners",
                    after: LISTEN_TIMEOUT,
                })
            }
        }
    }
    let auto_mode = config.dht_server.is_none();
    // With AutoNAT on, only addresses peers dialled back count: a node
    // behind NAT listens on a private address too, and must not serve the
    // DHT from it. Without it, local addresses count at once.
    let self_confirm = auto_mode && !config.traversal.autonat;
    // AutoNAT's answers count for global addresses only (a peer on the same
    // LAN can dial us back at a private one), unless told otherwise.
    let private_ok = config.traversal.autonat_private_addrs;
    // A node told to be a DHT server is reachable at what it listens on, by
    // the operator's word: those become its external addresses, which its
    // provider records carry. (Without addresses, a peer answering a
    // provider lookup drops the record unless the provider happens to be
    // in its own routing table; netsim measured 13 % of lookups failing.)
    let server_mode = config.dht_server == Some(true);
    for addr in &listening {
        if server_mode {
            swarm.add_external_address(addr.clone());
        } else if self_confirm {
            confirm_if_local(&mut swarm, addr);
        }
    }
    // The relay client confirms its circuit addresses as external ones,
    // which would make Kademlia's automatic mode serve the DHT from
    // behind NAT: with it on, the task sets the mode from the direct
    // external addresses instead.
    let mut relays = Relays::new(
        config.traversal.relay_client,
        &config.traversal.static_relays,
    );
    let manual_dht = auto_mode && config.traversal.relay_client;
    if manual_dht {
        follow_direct_addrs(&mut swarm);
    }
    let (reach_tx, reach_rx) = watch::channel(ReachInfo {
        dht_server: server_mode,
        ..ReachInfo::default()
    });
    let mut reach = Reach::default();
    let kad_protocol_name = config.kad_protocol.clone();
    // Bounded: callers wait when the swarm task is busy.
    let (tx, mut rx) = mpsc::channel::<Command>(64);
    // The task sends itself Unban commands when bans expire. Holding this
    // sender does not keep the task alive: it stops when `rx` returns None,
    // which needs every sender gone, so it is weak.
    let self_tx = tx.downgrade();
    let (events, _) = tokio::sync::broadcast::channel(PEER_EVENTS_DEPTH);
    let peer_events = events.clone();
    let mut pubsub = PubsubState::new(*swarm.local_peer_id(), config.pubsub.clone());
    let shutdown = CancellationToken::new();
    let stop = shutdown.clone();
    let activity = Arc::new(PeerActivity::default());
    let mut connmgr = ConnManager::new(config.conn_manager, Arc::clone(&activity));
    tokio::spawn(async move {
        // Dials callers wait on: the address asked for, the reply, and
        // whether this is already the retry from a new local port.
        let mut dials: HashMap<ConnectionId, (Multiaddr, DialReply, bool)> = HashMap::new();
        let mut queries: HashMap<kad::QueryId, Query> = HashMap::new();
        // Each connected peer's connections and their remote addresses.
        let mut connected: HashMap<PeerId, Vec<(ConnectionId, Multiaddr)>> = HashMap::new();
        let mut relay_tick = tokio::time::interval(relays::TICK);
        relay_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // Other peers' provider records are dropped when they expire (kad
        // itself only does so when someone asks for that key).
        let mut sweep = tokio::time::interval(RECORD_SWEEP_INTERVAL);
        sweep.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut trim_tick = tokio::time::interval(connmgr::TICK);
        trim_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
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
                _ = relay_tick.tick() => relays.tick(&mut swarm, reach.status()),
                _ = trim_tick.tick() => trim(&mut swarm, &mut connmgr, &relays),
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
                            Ok(()) => { dials.insert(id, (addr, reply, false)); }
                            Err(source) => { let _ = reply.send(Err(NetError::DialAddr { addr, source })); }
                        }
                    }
                    Some(Command::Provide(cid, reply)) => {
                        let key = kad::RecordKey::new(&cid.hash().to_bytes());
                        match swarm.behaviour_mut().kad.start_providing(key) {
                            Ok(id) => { queries.insert(id, Query::Provide(cid, reply)); }
                            Err(source) => { let _ = reply.send(Err(NetError::ProvideRefused { cid, source })); }
                        }
                    }
                    Some(Command::FindProviders(cid, limit, reply)) => {
                        let key = kad::RecordKey::new(&cid.hash().to_bytes());
                        let id = swarm.behaviour_mut().kad.get_providers(key);
                        queries.insert(id, Query::Providers { found: Vec::new(), limit, reply });
                    }
                    Some(Command::PutValue(key, value, reply)) => {
                        let record = kad::Record::new(key, value);
                        match swarm.behaviour_mut().kad.put_record(record, kad::Quorum::One) {
                            Ok(id) => { queries.insert(id, Query::PutValue(reply)); }
                            Err(source) => { let _ = reply.send(Err(NetError::ValueRefused { source })); }
                        }
                    }
                    Some(Command::PutValueTo(key, value, peers)) => {
                        // Nobody waits on this query: its result finds no
                        // entry in `queries` and is dropped.
                        let record = kad::Record::new(key, value);
                        swarm.behaviour_mut().kad.put_record_to(record, peers.into_iter(), kad::Quorum::One);
                    }
                    Some(Command::GetValues(key, limit, reply)) => {
                        let id = swarm.behaviour_mut().kad.get_record(kad::RecordKey::from(key));
                        queries.insert(id, Query::Values { found: Vec::new(), answers: 0, limit: limit.max(1), reply });
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
                        let _ = reply.send(connected.iter().filter_map(|(p, cs)| Some((*p, preferred(cs)?.clone()))).collect());
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
                    Some(Command::Pubsub(cmd)) => ps::on_command(&mut swarm, &mut pubsub, cmd, &self_tx),
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
                            SwarmEvent::Behaviour(BehaviourEvent::Pubsub(e)) => metrics.record(e),
                            SwarmEvent::Behaviour(BehaviourEvent::Relay(e)) => metrics.record(e),
                            SwarmEvent::Behaviour(BehaviourEvent::Dcutr(e)) => metrics.record(e),
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
                        let conns = connected.entry(peer_id).or_default();
                        conns.push((connection_id, addr));
                        connmgr.opened(connection_id, peer_id, tokio::time::Instant::now());
                        // Bitswap and replication open their streams on any
                        // connection to the peer: once a direct one is up
                        // (hole punched, or dialled), relayed ones go, so
                        // that traffic never stays on a relay.
                        for c in relayed_beside_direct(conns) {
                            tracing::info!(%peer_id, "direct connection up: closing the relayed one");
                            swarm.close_connection(c);
                        }
                        if endpoint.is_dialer() && !endpoint.is_relayed() {
                            // A peer we dialed: a routing table entry at once,
                            // before identify says more.
                            swarm.behaviour_mut().kad.add_address(&peer_id, endpoint.get_remote_address().clone());
                        } else if self_confirm {
                            if let libp2p::core::ConnectedPoint::Listener { local_addr, .. } = &endpoint {
                                if let Some(reached) = reached_from_outside(local_addr) {
                                    if !swarm.external_addresses().any(|a| a == &reached) {
                                        tracing::info!(%reached, "dialled from outside: reachable, serving the DHT");
                                        swarm.add_external_address(reached);
                                    }
                                }
                            }
                        }
                        if let Some((_, reply, _)) = dials.remove(&connection_id) {
                            let _ = reply.send(Ok(peer_id));
                        }
                        if connmgr.due(tokio::time::Instant::now()) {
                            trim(&mut swarm, &mut connmgr, &relays);
                        }
                    }
                    SwarmEvent::ConnectionClosed { peer_id, connection_id, num_established, .. } => {
                        if let Some(cs) = connected.get_mut(&peer_id) {
                            cs.retain(|(c, _)| *c != connection_id);
                        }
                        connmgr.closed(connection_id, peer_id, num_established == 0);
                        if num_established == 0 {
                            connected.remove(&peer_id);
                            let _ = peer_events.send(PeerEvent::Disconnected(peer_id));
                        }
                    }
                    SwarmEvent::OutgoingConnectionError { connection_id, error, .. } => {
                        if let Some((addr, reply, retried)) = dials.remove(&connection_id) {
                            // A dial goes out from the listening port (so
                            // that NATs map it as the listener's); the kernel
                            // refuses that when the port is taken towards the
                            // same address, e.g. as another process's
                            // ephemeral port. Once more from a fresh port,
                            // then the caller hears of it.
                            if !retried && local_port_clash(&error) {
                                tracing::debug!(%addr, "dial refused for its local port; retrying from a new one");
                                let opts = DialOpts::unknown_peer_id()
                                    .address(addr.clone())
                                    .allocate_new_port()
                                    .build();
                                let id = opts.connection_id();
                                match swarm.dial(opts) {
                                    Ok(()) => { dials.insert(id, (addr, reply, true)); }
                                    Err(source) => { let _ = reply.send(Err(NetError::DialAddr { addr, source })); }
                                }
                            } else {
                                let _ = reply.send(Err(NetError::DialAddr { addr, source: error }));
                            }
                        }
                    }
                    SwarmEvent::NewListenAddr { address, .. } => {
                        if server_mode {
                            swarm.add_external_address(address.clone());
                        } else if self_confirm {
                            confirm_if_local(&mut swarm, &address);
                        }
                        listening.push(address);
                    }
                    SwarmEvent::ExpiredListenAddr { address, .. } => {
                        listening.retain(|a| a != &address);
                    }
                    SwarmEvent::ListenerClosed { listener_id, addresses, reason } => {
                        listening.retain(|a| !addresses.contains(a));
                        let why = match &reason { Ok(()) => "closed".to_string(), Err(e) => e.to_string() };
                        if relays.listener_closed(listener_id, &why) {
                            relays.tick(&mut swarm, reach.status());
                        }
                    }
                    SwarmEvent::Behaviour(BehaviourEvent::RelayClient(relay::client::Event::ReservationReqAccepted { relay_peer_id, renewal, .. })) => {
                        if !renewal {
                            tracing::info!(relay = %relay_peer_id, "relay reservation accepted");
                        }
                        relays.accepted(relay_peer_id);
                    }
                    SwarmEvent::Behaviour(BehaviourEvent::Relay(e)) => match e {
                        relay::Event::ReservationReqAccepted { src_peer_id, .. } => connmgr.reservation(src_peer_id, true),
                        relay::Event::ReservationClosed { src_peer_id } | relay::Event::ReservationTimedOut { src_peer_id } => connmgr.reservation(src_peer_id, false),
                        relay::Event::CircuitReqAccepted { src_peer_id, dst_peer_id } => connmgr.circuit(src_peer_id, dst_peer_id, true),
                        relay::Event::CircuitClosed { src_peer_id, dst_peer_id, .. } => connmgr.circuit(src_peer_id, dst_peer_id, false),
                        _ => {}
                    },
                    SwarmEvent::Behaviour(BehaviourEvent::Mdns(mdns::Event::Discovered(found))) => {
                        for (peer, addr) in found {
                            swarm.behaviour_mut().kad.add_address(&peer, addr);
                            let opts = DialOpts::peer_id(peer)
                                .condition(PeerCondition::DisconnectedAndNotDialing)
                                .build();
                            let _ = swarm.dial(opts);
                        }
                    }
                    SwarmEvent::Behaviour(BehaviourEvent::Identify(identify::Event::Received { peer_id, connection_id, info })) => {
                        let addr = connected.get(&peer_id).and_then(|cs| cs.iter().find(|(c, _)| *c == connection_id)).map(|(_, a)| a);
                        let direct = addr.is_some_and(|a| !is_relayed(a));
                        relays.identified(peer_id, addr, direct, &info);
                        let speaks_kad = info.protocols.iter().any(|p| p.as_ref() == kad_protocol_name);
                        if speaks_kad {
                            learn_addresses(&mut swarm, peer_id, info.listen_addrs);
                        }
                    }
                    SwarmEvent::Behaviour(BehaviourEvent::Pubsub(e)) => ps::on_event(&mut swarm, &mut pubsub, e),
                    SwarmEvent::ExternalAddrConfirmed { address } => {
                        tracing::info!(%address, "external address confirmed");
                        push_addresses(&mut swarm);
                        if manual_dht {
                            follow_direct_addrs(&mut swarm);
                        }
                        publish_reach(&reach_tx, &reach, &swarm);
                    }
                    SwarmEvent::ExternalAddrExpired { address } => {
                        tracing::info!(%address, "external address no longer confirmed");
                        push_addresses(&mut swarm);
                        if manual_dht {
                            follow_direct_addrs(&mut swarm);
                        }
                        publish_reach(&reach_tx, &reach, &swarm);
                    }
                    SwarmEvent::Behaviour(BehaviourEvent::Kad(kad::Event::ModeChanged { new_mode })) => {
                        tracing::info!(%new_mode, "DHT mode");
                        publish_reach(&reach_tx, &reach, &swarm);
                    }
                    SwarmEvent::Behaviour(BehaviourEvent::AutonatV1(autonat::v1::Event::StatusChanged { old, new })) => {
                        tracing::info!(?old, ?new, "AutoNAT v1 status");
                        let new = match new {
                            autonat::v1::NatStatus::Public(a) if !private_ok && !is_global(&a) => {
                                // v1 confirmed it on its own: undo that.
                                if auto_mode {
                                    swarm.remove_external_address(&a);
                                }
                                autonat::v1::NatStatus::Unknown
                            }
                            n => n,
                        };
                        let before = reach.confirmed();
                        reach.v1_status(new);
                        on_reach_change(&mut swarm, &reach, &before, auto_mode);
                        publish_reach(&reach_tx, &reach, &swarm);
                        relays.tick(&mut swarm, reach.status());
                    }
                    SwarmEvent::Behaviour(BehaviourEvent::AutonatV2Client(e)) => {
                        match &e.result {
                            Ok(()) => tracing::debug!(addr = %e.tested_addr, server = %e.server, "AutoNAT v2: reachable"),
                            Err(err) => tracing::debug!(addr = %e.tested_addr, server = %e.server, "AutoNAT v2: not reachable: {err}"),
                        }
                        if !private_ok && !is_global(&e.tested_addr) {
                            // Not counted; v2 confirmed it on its own.
                            if e.result.is_ok() && auto_mode {
                                swarm.remove_external_address(&e.tested_addr);
                            }
                        } else {
                            let before = reach.confirmed();
                            reach.v2_tested(&e.tested_addr, e.result.is_ok());
                            on_reach_change(&mut swarm, &reach, &before, auto_mode);
                            publish_reach(&reach_tx, &reach, &swarm);
                            relays.tick(&mut swarm, reach.status());
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
        reach: reach_rx,
        activity,
    })
}

/// Closes the connections the connection manager picks, when a trim is
/// due: over the high water mark, at most once per silence period.
fn trim(swarm: &mut Swarm<Behaviour>, connmgr: &mut ConnManager, relays: &Relays) {
    let now = tokio::time::Instant::now();
    if !connmgr.due(now) {
        return;
    }
    let mut kept: HashSet<PeerId> = relays.relays_in_use().collect();
    if let Some(g) = swarm.behaviour().pubsub.as_ref() {
        kept.extend(g.all_mesh_peers().copied());
    }
    let closing = connmgr.trim(now, &kept);
    if !closing.is_empty() {
        tracing::debug!(
            peers = closing.len(),
            "connection manager: over the high water mark, closing idle peers"
        );
    }
    for peer in closing {
        let _ = swarm.disconnect_peer_id(peer);
    }
}

/// Tells every connected peer our addresses again (identify push): an
/// external address was confirmed or dropped, which peers' routing tables
/// and address books should learn now rather than at the next identify.
fn push_addresses(swarm: &mut Swarm<Behaviour>) {
    let peers: Vec<PeerId> = swarm.connected_peers().copied().collect();
    swarm.behaviour_mut().identify.push(peers);
}

/// After AutoNAT's verdict changed: in automatic DHT mode, addresses that
/// were confirmed and no longer are stop being external addresses (when
/// none is left, Kademlia goes back to client mode).
fn on_reach_change(
    swarm: &mut Swarm<Behaviour>,
    reach: &Reach,
    before: &[Multiaddr],
    auto_mode: bool,
) {
    if !auto_mode {
        return;
    }
    let now = reach.confirmed();
    for addr in before.iter().filter(|a| !now.contains(a)) {
        swarm.remove_external_address(addr);
    }
}

/// Kademlia's mode set by hand: server while this node has a direct
/// external address (its relayed ones do not make it reachable).
fn follow_direct_addrs(swarm: &mut Swarm<Behaviour>) {
    let mode = if swarm.external_addresses().any(|a| !is_relayed(a)) {
        kad::Mode::Server
    } else {
        kad::Mode::Client
    };
    swarm.behaviour_mut().kad.set_mode(Some(mode));
}

/// A peer's relayed connections, when it also has a direct one.
fn relayed_beside_direct(connections: &[(ConnectionId, Multiaddr)]) -> Vec<ConnectionId> {
    if !connections.iter().any(|(_, a)| !is_relayed(a)) {
        return Vec::new();
    }
    connections
        .iter()
        .filter(|(_, a)| is_relayed(a))
        .map(|(c, _)| *c)
        .collect()
}

/// The connection `swarm peers` shows: a direct one when there is one.
fn preferred(connections: &[(ConnectionId, Multiaddr)]) -> Option<&Multiaddr> {
    connections
        .iter()
        .map(|(_, a)| a)
        .find(|a| !is_relayed(a))
        .or_else(|| connections.first().map(|(_, a)| a))
}

/// Publishes the reachability and DHT mode for
/// [`SwarmHandle::reachability`] and the metrics.
fn publish_reach(tx: &watch::Sender<ReachInfo>, reach: &Reach, swarm: &Swarm<Behaviour>) {
    tx.send_replace(ReachInfo {
        status: reach.status(),
        confirmed: reach.confirmed(),
        dht_server: swarm.behaviour().kad.mode() == kad::Mode::Server,
        relay_addrs: swarm
            .external_addresses()
            .filter(|a| is_relayed(a))
            .cloned()
            .collect(),
    });
}

/// Whether a dial failed because its local port could not be used towards
/// that address (`EADDRINUSE`/`EADDRNOTAVAIL` anywhere in the error chain).
fn local_port_clash(error: &libp2p::swarm::DialError) -> bool {
    let libp2p::swarm::DialError::Transport(attempts) = error else {
        return false;
    };
    attempts.iter().any(|(_, e)| match e {
        libp2p::TransportError::Other(io) => io_chain_has_port_clash(io),
        libp2p::TransportError::MultiaddrNotSupported(_) => false,
    })
}

/// Walks an I/O error and what it wraps (transport upgrades box the TCP
/// error in their own) looking for a local address clash.
fn io_chain_has_port_clash(error: &std::io::Error) -> bool {
    use std::error::Error;
    use std::io::ErrorKind;
    let mut next: Option<&(dyn Error + 'static)> = Some(error);
    // Bounded: a cyclic chain cannot hold the swarm task.
    for _ in 0..16 {
        let Some(e) = next else { return false };
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            if matches!(
                io.kind(),
                ErrorKind::AddrInUse | ErrorKind::AddrNotAvailable
            ) {
                return true;
            }
            // `source()` of a custom io::Error skips the error it wraps.
            if let Some(inner) = io.get_ref() {
                next = Some(inner);
                continue;
            }
        }
        next = e.source();
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use libp2p::swarm::DialError;
    use libp2p::TransportError;
    use std::io::{Error, ErrorKind};

    /// An upgrade's error that wraps the TCP one, as transports do.
    #[derive(Debug)]
    struct Upgrade(Error);

    impl std::fmt::Display for Upgrade {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "upgrade: {}", self.0)
        }
    }

    impl std::error::Error for Upgrade {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&self.0)
        }
    }

    fn dial_error(e: Error) -> DialError {
        let addr: Multiaddr = "/ip4/127.0.0.1/tcp/1".parse().unwrap();
        DialError::Transport(vec![(addr, TransportError::Other(e))])
    }

    #[test]
    fn a_local_address_clash_is_found_however_deep_it_is_wrapped() {
        for kind in [ErrorKind::AddrInUse, ErrorKind::AddrNotAvailable] {
            assert!(local_port_clash(&dial_error(Error::from(kind))));
            let boxed = Error::other(Error::from(kind));
            assert!(local_port_clash(&dial_error(boxed)));
            let upgraded = Error::other(Upgrade(Error::other(Error::from(kind))));
            assert!(local_port_clash(&dial_error(upgraded)));
        }
    }

    #[test]
    fn a_direct_connection_is_preferred_and_relayed_ones_beside_it_are_closed() {
        let direct: Multiaddr = "/ip4/10.0.0.2/tcp/4001".parse().unwrap();
        let relayed: Multiaddr = format!(
            "/ip4/10.0.0.1/tcp/4001/p2p/{}/p2p-circuit",
            PeerId::random()
        )
        .parse()
        .unwrap();
        let (a, b) = (
            ConnectionId::new_unchecked(1),
            ConnectionId::new_unchecked(2),
        );
        let only_relayed = [(a, relayed.clone())];
        assert!(relayed_beside_direct(&only_relayed).is_empty());
        assert_eq!(preferred(&only_relayed), Some(&relayed));
        let both = [(a, relayed), (b, direct.clone())];
        assert_eq!(relayed_beside_direct(&both), vec![a]);
        assert_eq!(preferred(&both), Some(&direct));
        assert_eq!(preferred(&[]), None);
    }

    #[test]
    fn other_dial_failures_are_not_retried() {
        let refused = Error::other(Upgrade(Error::from(ErrorKind::ConnectionRefused)));
        assert!(!local_port_clash(&dial_error(refused)));
        assert!(!local_port_clash(&dial_error(Error::other(
            "handshake failed"
        ))));
        assert!(!local_port_clash(&DialError::Aborted));
    }
}

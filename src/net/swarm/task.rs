//! The task that owns the swarm: carries out [`SwarmHandle`]'s commands,
//! follows connections and answers DHT queries' callers.

use super::build::{Behaviour, BehaviourEvent};
use super::dht::{learn_addresses, on_query_progress, Query};
use super::reach::{confirm_if_local, reached_from_outside};
use super::{Command, NetConfig, PeerEvent, SwarmHandle};
use super::{CLOSE_TIMEOUT, PEER_EVENTS_DEPTH, RECORD_SWEEP_INTERVAL};
use crate::net::NetError;
use futures::StreamExt;
use libp2p::multiaddr::Protocol;
use libp2p::swarm::dial_opts::{DialOpts, PeerCondition};
use libp2p::swarm::{ConnectionId, SwarmEvent};
use libp2p::{identify, kad, mdns, Multiaddr, PeerId, Swarm};
use std::collections::HashMap;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
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
        // Dials callers wait on: the address asked for, and the reply.
        let mut dials: HashMap<ConnectionId, (Multiaddr, DialReply)> = HashMap::new();
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
                            Ok(()) => { dials.insert(id, (addr, reply)); }
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
                        if let Some((_, reply)) = dials.remove(&connection_id) {
                            let _ = reply.send(Ok(peer_id));
                        }
                    }
                    SwarmEvent::ConnectionClosed { peer_id, num_established: 0, .. } => {
                        connected.remove(&peer_id);
                        let _ = peer_events.send(PeerEvent::Disconnected(peer_id));
                    }
                    SwarmEvent::OutgoingConnectionError { connection_id, error, .. } => {
                        if let Some((addr, reply)) = dials.remove(&connection_id) {
                            let _ = reply.send(Err(NetError::DialAddr { addr, source: error }));
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

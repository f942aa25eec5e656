//! Kademlia queries a caller waits on (provide, find providers, find a
//! peer, put and get value records), and the addresses peers tell us they
//! listen on.

use super::build::Behaviour;
use crate::block::Cid;
use crate::net::NetError;
use libp2p::swarm::dial_opts::{DialOpts, PeerCondition};
use libp2p::{kad, Multiaddr, PeerId, Swarm};
use std::collections::HashMap;
use tokio::sync::oneshot;

/// A DHT query a caller waits on.
pub(super) enum Query {
    /// Announcing `cid` as provided by us.
    Provide(Cid, oneshot::Sender<Result<(), NetError>>),
    /// Looking for a peer's current addresses (to dial it).
    FindPeer(PeerId, oneshot::Sender<Result<Vec<Multiaddr>, NetError>>),
    Providers {
        found: Vec<PeerId>,
        limit: usize,
        reply: oneshot::Sender<Result<Vec<PeerId>, NetError>>,
    },
    /// Storing a value record at the closest peers.
    PutValue(oneshot::Sender<Result<(), NetError>>),
    /// Collecting the distinct values of a key, until `limit` answers.
    Values {
        found: Vec<ValueAnswer>,
        answers: usize,
        limit: usize,
        reply: oneshot::Sender<Result<Vec<ValueAnswer>, NetError>>,
    },
}

/// One distinct value a DHT lookup found under a key, and who sent it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ValueAnswer {
    /// The value.
    pub value: Vec<u8>,
    /// The peers that answered it (none when only our own store holds it).
    pub peers: Vec<PeerId>,
}

/// Addresses kept in the routing table for one peer.
pub const MAX_ADDRS_PER_PEER: usize = 16;

/// A peer told us (identify) where it listens: those addresses, at most
/// [`MAX_ADDRS_PER_PEER`] and none absurdly long, replace the ones it no
/// longer lists. Kademlia's own list only ever grows, so a peer pushing new
/// addresses again and again would otherwise grow it without bound.
pub(super) fn learn_addresses(swarm: &mut Swarm<Behaviour>, peer: PeerId, listed: Vec<Multiaddr>) {
    let fresh: Vec<Multiaddr> = listed
        .into_iter()
        .filter(|a| a.as_ref().len() <= crate::net::records::MAX_ADDR_BYTES)
        .take(MAX_ADDRS_PER_PEER)
        .collect();
    if fresh.is_empty() {
        return;
    }
    let kad = &mut swarm.behaviour_mut().kad;
    for a in &fresh {
        kad.add_address(&peer, a.clone());
    }
    // Kademlia keeps addresses with a /p2p suffix.
    let fresh: Vec<Multiaddr> = fresh
        .into_iter()
        .filter_map(|a| a.with_p2p(peer).ok())
        .collect();
    let stale: Vec<Multiaddr> = kad
        .kbucket(peer)
        .and_then(|bucket| {
            bucket
                .iter()
                .find(|e| e.node.key.preimage() == &peer)
                .map(|e| {
                    e.node
                        .value
                        .iter()
                        .filter(|a| !fresh.contains(a))
                        .cloned()
                        .collect()
                })
        })
        .unwrap_or_default();
    for a in stale {
        kad.remove_address(&peer, &a);
    }
}

/// Whether a finished provide reached anyone: kad reports success once
/// its walk ends, even when no peer was there to take the record.
fn reached_anyone(stats: &kad::QueryStats) -> bool {
    stats.num_successes() > 0
}

pub(super) fn on_query_progress(
    queries: &mut HashMap<kad::QueryId, Query>,
    swarm: &mut Swarm<Behaviour>,
    id: kad::QueryId,
    result: kad::QueryResult,
    last: bool,
    stats: &kad::QueryStats,
) {
    match result {
        kad::QueryResult::StartProviding(r) => {
            if let Some(Query::Provide(cid, reply)) = queries.remove(&id) {
                let r = match r {
                    Ok(_) if !reached_anyone(stats) => Err(NetError::NoDhtPeers { cid }),
                    Ok(_) => Ok(()),
                    Err(source) => Err(NetError::ProvideFailed { cid, source }),
                };
                let _ = reply.send(r);
            }
        }
        kad::QueryResult::GetClosestPeers(r) => {
            let Some(Query::FindPeer(peer, _)) = queries.get(&id) else {
                return;
            };
            let peer = *peer;
            let found = match &r {
                Ok(ok) => ok.peers.iter().find(|p| p.peer_id == peer).cloned(),
                Err(_) => None,
            };
            if let Some(info) = found {
                for a in &info.addrs {
                    swarm.behaviour_mut().kad.add_address(&peer, a.clone());
                }
                let opts = DialOpts::peer_id(peer)
                    .addresses(info.addrs.clone())
                    .condition(PeerCondition::DisconnectedAndNotDialing)
                    .build();
                let dialed = swarm
                    .dial(opts)
                    .map_err(|source| NetError::DialPeer { peer, source });
                if let Some(Query::FindPeer(_, reply)) = queries.remove(&id) {
                    let dialed = dialed.or_else(|e| {
                        // Already connected or dialing is fine.
                        if swarm.is_connected(&peer) {
                            Ok(())
                        } else {
                            Err(e)
                        }
                    });
                    let _ = reply.send(dialed.map(|()| info.addrs));
                }
                if !last {
                    if let Some(mut q) = swarm.behaviour_mut().kad.query_mut(&id) {
                        q.finish();
                    }
                }
            } else if last {
                if let Some(Query::FindPeer(_, reply)) = queries.remove(&id) {
                    let _ = reply.send(Err(NetError::PeerNotFound { peer }));
                }
            }
        }
        kad::QueryResult::PutRecord(r) => {
            if let Some(Query::PutValue(reply)) = queries.remove(&id) {
                let _ = reply.send(r.map(|_| ()).map_err(|e| match e {
                    kad::PutRecordError::QuorumFailed { success, .. } if success.is_empty() => {
                        NetError::NoValuePeers
                    }
                    source => NetError::PutValueFailed { source },
                }));
            }
        }
        kad::QueryResult::GetRecord(r) => {
            let Some(Query::Values {
                found,
                answers,
                limit,
                ..
            }) = queries.get_mut(&id)
            else {
                return;
            };
            if let Ok(kad::GetRecordOk::FoundRecord(pr)) = r {
                *answers += 1;
                let i = match found.iter().position(|a| a.value == pr.record.value) {
                    Some(i) => i,
                    None => {
                        found.push(ValueAnswer {
                            value: pr.record.value,
                            peers: Vec::new(),
                        });
                        found.len() - 1
                    }
                };
                if let Some(peer) = pr.peer {
                    if !found[i].peers.contains(&peer) {
                        found[i].peers.push(peer);
                    }
                }
            }
            let enough = *answers >= *limit;
            if enough || last {
                if let Some(Query::Values { found, reply, .. }) = queries.remove(&id) {
                    let _ = reply.send(Ok(found));
                }
                if enough && !last {
                    if let Some(mut q) = swarm.behaviour_mut().kad.query_mut(&id) {
                        q.finish();
                    }
                }
            }
        }
        kad::QueryResult::GetProviders(r) => {
            let Some(Query::Providers { found, limit, .. }) = queries.get_mut(&id) else {
                return;
            };
            if let Ok(kad::GetProvidersOk::FoundProviders { providers, .. }) = r {
                let me = *swarm.local_peer_id();
                for p in providers {
                    if !found.contains(&p) && p != me {
                        found.push(p);
                        // Dial now: the providers' addresses live only as
                        // long as this query does (kad keeps them nowhere
                        // else), and it is still alive while we handle its
                        // event.
                        let opts = DialOpts::peer_id(p)
                            .condition(PeerCondition::DisconnectedAndNotDialing)
                            .build();
                        if let Err(e) = swarm.dial(opts) {
                            tracing::debug!(peer = %p, "dialing provider: {e}");
                        }
                    }
                }
            }
            let enough = found.len() >= *limit;
            if enough || last {
                if let Some(Query::Providers {
                    mut found,
                    limit,
                    reply,
                }) = queries.remove(&id)
                {
                    found.truncate(limit);
                    let _ = reply.send(Ok(found));
                }
                if enough && !last {
                    if let Some(mut q) = swarm.behaviour_mut().kad.query_mut(&id) {
                        q.finish();
                    }
                }
            }
        }
        _ => {}
    }
}

//! Joining the network through the bootstrap peers, and rejoining it: as
//! Kubo does, a node with fewer than [`MIN_PEERS`] connections dials its
//! bootstrap peers again, so a node whose bootstrap peer was down (or whose
//! first dial failed) when it started still joins once that peer is up.

use super::online::OnlineNode;
use crate::net::swarm::SwarmHandle;
use crate::net::NetError;
use libp2p::multiaddr::Protocol;
use libp2p::{Multiaddr, PeerId};
use std::time::Duration;

/// Below this many connected peers, bootstrap peers not connected are
/// dialed again (Kubo's `MinPeerThreshold`).
const MIN_PEERS: usize = 4;

/// The first re-check after start; each next one waits twice as long, up
/// to [`RECHECK_MAX`].
const RECHECK_FIRST: Duration = Duration::from_secs(1);

/// The longest wait between re-checks (Kubo's bootstrap period).
const RECHECK_MAX: Duration = Duration::from_secs(30);

impl OnlineNode {
    /// Dials each bootstrap address; returns the peers reached and the
    /// failures (address, reason). A DHT walk follows. From then on, while
    /// the node has fewer than 4 connections, the bootstrap
    /// peers it is not connected to are dialed again, after 1, 2, 4 … s and
    /// then every 30 s.
    pub async fn bootstrap(
        &self,
        addrs: &[Multiaddr],
    ) -> (Vec<PeerId>, Vec<(Multiaddr, NetError)>) {
        let swarm = &self.net().swarm;
        let mut ok = Vec::new();
        let mut failed = Vec::new();
        // Each address with the peer known to be behind it.
        let mut known: Vec<(Multiaddr, Option<PeerId>)> = Vec::with_capacity(addrs.len());
        for addr in addrs {
            match swarm.dial(addr.clone()).await {
                Ok(p) => {
                    ok.push(p);
                    known.push((addr.clone(), Some(p)));
                }
                Err(e) => {
                    failed.push((addr.clone(), e));
                    known.push((addr.clone(), peer_in(addr)));
                }
            }
        }
        if !ok.is_empty() {
            let _ = swarm.bootstrap().await;
        }
        if !known.is_empty() {
            let handle = swarm.clone();
            swarm.spawn_task(keep_bootstrapped(handle, known));
        }
        (ok, failed)
    }
}

/// The peer an address names with a trailing `/p2p/…`, if any.
fn peer_in(addr: &Multiaddr) -> Option<PeerId> {
    match addr.iter().last() {
        Some(Protocol::P2p(peer)) => Some(peer),
        _ => None,
    }
}

/// The bootstrap addresses to dial again: those whose peer is unknown or
/// not among `connected`.
fn to_redial<'a>(
    known: &'a [(Multiaddr, Option<PeerId>)],
    connected: &'a [PeerId],
) -> impl Iterator<Item = usize> + 'a {
    known
        .iter()
        .enumerate()
        .filter(|(_, (_, peer))| peer.is_none_or(|p| !connected.contains(&p)))
        .map(|(i, _)| i)
}

/// Runs for the swarm's life (it is a swarm task): dials the bootstrap
/// peers not connected again whenever the node has fewer than
/// [`MIN_PEERS`] connections.
async fn keep_bootstrapped(swarm: SwarmHandle, mut known: Vec<(Multiaddr, Option<PeerId>)>) {
    let mut wait = RECHECK_FIRST;
    loop {
        tokio::time::sleep(wait).await;
        wait = (wait * 2).min(RECHECK_MAX);
        let Ok(connected) = swarm.peers().await else {
            return;
        };
        if connected.len() >= MIN_PEERS {
            continue;
        }
        let redial: Vec<usize> = to_redial(&known, &connected).collect();
        let mut reached = false;
        for i in redial {
            let addr = known[i].0.clone();
            match swarm.dial(addr.clone()).await {
                Ok(peer) => {
                    tracing::info!(%addr, %peer, "bootstrap peer reached again");
                    known[i].1 = Some(peer);
                    reached = true;
                }
                Err(NetError::Stopped { .. }) => return,
                Err(e) => tracing::debug!(%addr, "bootstrap peer still unreachable: {e}"),
            }
        }
        if reached {
            let _ = swarm.bootstrap().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_bootstrap_peers_not_connected_are_dialed_again() {
        let (a, b) = (PeerId::random(), PeerId::random());
        let addr =
            |port: u16| -> Multiaddr { format!("/ip4/127.0.0.1/tcp/{port}").parse().unwrap() };
        let known = vec![
            (addr(1), Some(a)),
            (addr(2), Some(b)),
            (addr(3), None),
            (
                addr(4).with(Protocol::P2p(a)),
                peer_in(&addr(4).with(Protocol::P2p(a))),
            ),
        ];
        assert_eq!(known[3].1, Some(a));
        assert_eq!(to_redial(&known, &[a]).collect::<Vec<_>>(), vec![1, 2]);
        assert_eq!(to_redial(&known, &[]).collect::<Vec<_>>(), vec![0, 1, 2, 3]);
        assert_eq!(to_redial(&known, &[a, b]).collect::<Vec<_>>(), vec![2]);
    }
}

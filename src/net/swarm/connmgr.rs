//! The connection manager: Kubo's basic one (`Swarm.ConnMgr`) in spirit.
//!
//! When more than `high_water` connections are open, the swarm task closes
//! connections, a peer at a time, until `low_water` are left, at most once
//! per [`SILENCE`] (and checked every [`TICK`]). It never closes:
//!
//! - a peer whose first connection is younger than the grace period (a
//!   new peer gets the time to prove useful: DHT queries, identify);
//! - a peer in use: one that exchanged Bitswap messages or replication
//!   requests with us in the last [`ACTIVE_WINDOW`] ([`PeerActivity`]
//!   is told by those protocols), a gossipsub mesh peer, a relay we hold
//!   a reservation on, and a peer that holds a reservation on our relay
//!   service or has a circuit through it.
//!
//! Of the others, the peers idle longest go first (never active before
//! the oldest activity), then the oldest connections. The idle timeout
//! (`[net] idle_timeout`) still closes connections nobody uses whatever
//! their number; the manager bounds how many stay open when they are used
//! now and then (DHT routing, which keeps peers connected on a busy node).

use libp2p::swarm::ConnectionId;
use libp2p::PeerId;
use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::Duration;
use tokio::time::Instant;

/// `[net] conn_low_water`, `conn_high_water`, `conn_grace_period`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConnManagerConfig {
    /// Connections left open after a trim (Kubo: 32).
    pub low_water: usize,
    /// A trim starts when more connections than this are open (Kubo: 96);
    /// 0 turns the manager off.
    pub high_water: usize,
    /// A peer connected for less than this is never closed (Kubo: 20 s).
    pub grace: Duration,
}

impl Default for ConnManagerConfig {
    fn default() -> Self {
        ConnManagerConfig {
            low_water: 32,
            high_water: 96,
            grace: Duration::from_secs(20),
        }
    }
}

/// A peer that exchanged Bitswap or replication messages with us within
/// this is kept open (a Bitswap writer holds its stream 30 s idle too).
pub const ACTIVE_WINDOW: Duration = Duration::from_secs(30);

/// Least time between two trims (Kubo's silence period).
pub(super) const SILENCE: Duration = Duration::from_secs(10);

/// How often the swarm task checks whether a trim is due.
pub(super) const TICK: Duration = Duration::from_secs(5);

/// Peers remembered as active, at most; beyond it the entries older than
/// [`ACTIVE_WINDOW`] go (and, should every one be recent, the oldest).
const MAX_ACTIVE: usize = 65_536;

/// When each peer last exchanged Bitswap or replication messages with us:
/// shared by those protocols (which [`touch`](Self::touch)) and the swarm
/// task's connection manager (which keeps recently active peers).
#[derive(Debug, Default)]
pub struct PeerActivity {
    last: Mutex<HashMap<PeerId, Instant>>,
}

impl PeerActivity {
    /// `peer` is in use now.
    pub fn touch(&self, peer: PeerId) {
        let now = Instant::now();
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        if last.len() >= MAX_ACTIVE && !last.contains_key(&peer) {
            last.retain(|_, t| now.saturating_duration_since(*t) < ACTIVE_WINDOW);
            if last.len() >= MAX_ACTIVE {
                if let Some(oldest) = last.iter().min_by_key(|(_, t)| **t).map(|(p, _)| *p) {
                    last.remove(&oldest);
                }
            }
        }
        last.insert(peer, now);
    }

    /// When `peer` was last in use, if it is remembered.
    pub fn last(&self, peer: &PeerId) -> Option<Instant> {
        let last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        last.get(peer).copied()
    }
}

/// What the relay service holds for a peer.
#[derive(Debug, Default)]
struct Served {
    reservation: bool,
    circuits: u32,
}

/// The connection manager's state, kept by the swarm task.
#[derive(Debug)]
pub(super) struct ConnManager {
    config: ConnManagerConfig,
    activity: std::sync::Arc<PeerActivity>,
    /// Open connections: whose, and since when.
    conns: HashMap<ConnectionId, (PeerId, Instant)>,
    /// Peers our relay service serves.
    served: HashMap<PeerId, Served>,
    last_trim: Option<Instant>,
}

impl ConnManager {
    pub(super) fn new(
        config: ConnManagerConfig,
        activity: std::sync::Arc<PeerActivity>,
    ) -> ConnManager {
        ConnManager {
            config,
            activity,
            conns: HashMap::new(),
            served: HashMap::new(),
            last_trim: None,
        }
    }

    /// A connection is up (at `now`).
    pub(super) fn opened(&mut self, id: ConnectionId, peer: PeerId, now: Instant) {
        self.conns.insert(id, (peer, now));
    }

    /// A connection closed; `last` when it was the peer's last one (what
    /// the relay service held for it went with it).
    pub(super) fn closed(&mut self, id: ConnectionId, peer: PeerId, last: bool) {
        self.conns.remove(&id);
        if last {
            self.served.remove(&peer);
        }
    }

    /// Our relay service accepted (`true`) or dropped a reservation of `peer`.
    pub(super) fn reservation(&mut self, peer: PeerId, held: bool) {
        if held {
            self.served.entry(peer).or_default().reservation = true;
        } else if let Some(s) = self.served.get_mut(&peer) {
            s.reservation = false;
        }
    }

    /// A circuit between `a` and `b` through our relay service opened
    /// (`true`) or closed.
    pub(super) fn circuit(&mut self, a: PeerId, b: PeerId, open: bool) {
        for p in [a, b] {
            let s = self.served.entry(p).or_default();
            s.circuits = if open {
                s.circuits.saturating_add(1)
            } else {
                s.circuits.saturating_sub(1)
            };
        }
        self.served.retain(|_, s| s.reservation || s.circuits > 0);
    }

    /// Whether a trim should run now: over the high water mark, and the
    /// last trim at least [`SILENCE`] ago.
    pub(super) fn due(&self, now: Instant) -> bool {
        self.config.high_water > 0
            && self.conns.len() > self.config.high_water
            && self
                .last_trim
                .is_none_or(|t| now.saturating_duration_since(t) >= SILENCE)
    }

    /// The peers to disconnect so that about `low_water` connections stay:
    /// `kept` says which peers are in use for reasons the task knows
    /// (mesh peers, our relays); recent activity and the relay service's
    /// peers are known here.
    pub(super) fn trim(&mut self, now: Instant, kept: &HashSet<PeerId>) -> Vec<PeerId> {
        self.last_trim = Some(now);
        let total = self.conns.len();
        let low = self.config.low_water;
        if total <= low {
            return Vec::new();
        }
        // Each peer's connection count and first connection.
        let mut peers: HashMap<PeerId, (usize, Instant)> = HashMap::new();
        for (peer, opened) in self.conns.values() {
            let e = peers.entry(*peer).or_insert((0, *opened));
            e.0 += 1;
            e.1 = e.1.min(*opened);
        }
        let mut candidates: Vec<(Option<Instant>, Instant, PeerId, usize)> = peers
            .into_iter()
            .filter(|(peer, (_, first))| {
                now.saturating_duration_since(*first) >= self.config.grace
                    && !kept.contains(peer)
                    && !self.served.contains_key(peer)
            })
            .filter_map(|(peer, (n, first))| {
                let last = self.activity.last(&peer);
                let active = last.is_some_and(|t| now.saturating_duration_since(t) < ACTIVE_WINDOW);
                (!active).then_some((last, first, peer, n))
            })
            .collect();
        // Idle longest first (never active sorts before any activity),
        // then the oldest connection.
        candidates.sort();
        let mut excess = total - low;
        let mut closing = Vec::new();
        for (_, _, peer, n) in candidates {
            if excess == 0 {
                break;
            }
            closing.push(peer);
            excess = excess.saturating_sub(n);
        }
        closing
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn manager(low: usize, high: usize) -> (ConnManager, Arc<PeerActivity>) {
        let activity = Arc::new(PeerActivity::default());
        let config = ConnManagerConfig {
            low_water: low,
            high_water: high,
            grace: Duration::from_secs(20),
        };
        (ConnManager::new(config, Arc::clone(&activity)), activity)
    }

    fn conn(i: usize) -> ConnectionId {
        ConnectionId::new_unchecked(i)
    }

    #[test]
    fn a_trim_keeps_new_active_and_protected_peers_and_stops_at_low_water() {
        let (mut m, activity) = manager(2, 4);
        let peers: Vec<PeerId> = (0..8).map(|_| PeerId::random()).collect();
        let t0 = Instant::now();
        for (i, p) in peers.iter().enumerate().take(7) {
            m.opened(conn(i), *p, t0);
        }
        assert!(m.due(t0), "7 connections, high water 4");
        // All are new: none may go.
        assert!(m.trim(t0, &HashSet::new()).is_empty());
        assert!(!m.due(t0), "a trim just ran");
        let t1 = t0 + Duration::from_secs(25);
        // A late peer is within its grace period.
        m.opened(conn(7), peers[7], t1);
        activity.touch(peers[0]); // Bitswap with peer 0 (at t0, 25 s ago)
        m.reservation(peers[1], true); // peer 1 reserved on our relay
        m.circuit(peers[2], peers[3], true); // a circuit between 2 and 3
        let kept: HashSet<PeerId> = [peers[4]].into(); // a mesh peer
        assert!(m.due(t1), "the last trim was 25 s ago");
        let closing: HashSet<PeerId> = m.trim(t1, &kept).into_iter().collect();
        // 8 connections, low water 2: 6 to close, but only 5 and 6 may go.
        assert_eq!(closing, [peers[5], peers[6]].into());
        for i in [5, 6] {
            m.closed(conn(i), peers[i], true);
        }
        // The circuit closed and the activity is old: they may go now.
        m.circuit(peers[2], peers[3], false);
        let t2 = t1 + ACTIVE_WINDOW;
        let closing = m.trim(t2, &kept);
        // 6 open, low 2: peers 0, 2, 3 and 7 (its grace is over) go; 1
        // (reservation) and 4 (mesh) stay. 0, active once, goes last.
        assert_eq!(closing.len(), 4, "{closing:?}");
        assert_eq!(closing[3], peers[0]);
        assert!(!closing.contains(&peers[1]) && !closing.contains(&peers[4]));
        // A peer with two connections counts twice.
        let (mut m, _) = manager(1, 2);
        let (a, b) = (PeerId::random(), PeerId::random());
        m.opened(conn(0), a, t0);
        m.opened(conn(1), a, t0);
        m.opened(conn(2), b, t1);
        assert_eq!(m.trim(t2, &HashSet::new()), vec![a]);
    }

    #[test]
    fn a_trim_is_due_over_high_water_once_per_silence_period() {
        let (mut m, _) = manager(1, 2);
        let a = PeerId::random();
        let t0 = Instant::now();
        for i in 0..3 {
            m.opened(conn(i), a, t0);
        }
        assert!(m.due(t0));
        m.trim(t0, &HashSet::new());
        assert!(!m.due(t0 + SILENCE / 2));
        assert!(m.due(t0 + SILENCE));
        // Off with high water 0.
        let (mut off, _) = manager(0, 0);
        for i in 0..3 {
            off.opened(conn(i), a, t0);
        }
        assert!(!off.due(t0 + SILENCE));
    }

    #[test]
    fn activity_is_bounded() {
        let activity = PeerActivity::default();
        for _ in 0..MAX_ACTIVE + 10 {
            activity.touch(PeerId::random());
        }
        assert!(activity.last.lock().unwrap().len() <= MAX_ACTIVE);
    }
}

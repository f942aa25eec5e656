//! The fabric's NAT model (described in the fabric's header): which
//! nodes sit behind which kind of NAT, the mappings their dials open, and
//! the meeting of the two dials of a hole punch.

use super::SimConn;
use std::collections::HashMap;
use std::time::Duration;
use tokio::sync::oneshot;
use tokio::time::Instant;

/// What stands between a node and the rest of the network.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Nat {
    /// No NAT: every dial reaches it.
    #[default]
    Open,
    /// Endpoint-independent mapping with port-restricted filtering (the
    /// common home router): a dial gets in only from an address and port
    /// the node itself dialed from its listening port, recently.
    Cone,
    /// Endpoint-dependent mapping: each destination sees another public
    /// port, so no dial from outside ever gets in.
    Symmetric,
}

/// A dial that arrived and waits for the other side's dial of the same
/// hole punch.
pub(super) struct Waiter {
    /// Tells the waiting dial what became of it.
    tx: oneshot::Sender<SimConn>,
    /// This dial plays the listener (DCUtR's role override).
    listener_role: bool,
    /// Tells this waiter from a later one for the same pair.
    id: u64,
}

/// The NAT state of the whole fabric.
#[derive(Default)]
pub(super) struct NatTable {
    kinds: Vec<Nat>,
    /// (node behind a NAT, peer) → when the node last dialed the peer from
    /// its listening port: the mapping the peer may dial back through.
    mappings: HashMap<(usize, usize), Instant>,
    /// How long a mapping stays open after the dial that made it.
    pub(super) mapping_ttl: Duration,
    /// Listener-role dials (hole punches) still on their way, by
    /// (from, to).
    punching: HashMap<(usize, usize), usize>,
    /// Dials that arrived and wait for their other half, by (from, to).
    waiting: HashMap<(usize, usize), Waiter>,
    next_id: u64,
}

impl NatTable {
    /// Every node reachable; mappings last `mapping_ttl`.
    pub(super) fn new(mapping_ttl: Duration) -> NatTable {
        NatTable {
            mapping_ttl,
            ..NatTable::default()
        }
    }

    /// Node `n`'s NAT.
    pub(super) fn kind(&self, n: usize) -> Nat {
        self.kinds.get(n).copied().unwrap_or_default()
    }

    /// Puts node `n` behind `nat`.
    pub(super) fn set(&mut self, n: usize, nat: Nat) {
        if self.kinds.len() <= n {
            self.kinds.resize(n + 1, Nat::Open);
        }
        self.kinds[n] = nat;
    }

    /// A dial from `from` to `to` leaves now: from the listening port
    /// unless `fresh_port`, it opens a mapping on `from`'s NAT.
    pub(super) fn dialing(&mut self, from: usize, to: usize, fresh_port: bool, punch: bool) {
        let now = Instant::now();
        if self.kind(from) != Nat::Open && !fresh_port {
            // Drop expired mappings now and then: a run dials a lot.
            if self.mappings.len() >= 8192 && self.mappings.len().is_power_of_two() {
                let ttl = self.mapping_ttl;
                self.mappings.retain(|_, at| now.duration_since(*at) < ttl);
            }
            self.mappings.insert((from, to), now);
        }
        if punch {
            *self.punching.entry((from, to)).or_default() += 1;
        }
    }

    /// A hole-punch dial from `from` to `to` reached the other end.
    pub(super) fn punch_arrived(&mut self, from: usize, to: usize) {
        if let Some(n) = self.punching.get_mut(&(from, to)) {
            *n -= 1;
            if *n == 0 {
                self.punching.remove(&(from, to));
            }
        }
    }

    /// Whether `to`'s NAT lets in a dial from `from` (made from a fresh
    /// port when `fresh_port`).
    pub(super) fn admits(&self, to: usize, from: usize, fresh_port: bool) -> bool {
        match self.kind(to) {
            Nat::Open => true,
            Nat::Symmetric => false,
            Nat::Cone => {
                // The dial must come from where `to` sent its own: the
                // dialer's listening port, which a symmetric NAT does not
                // keep towards a new destination.
                !fresh_port
                    && self.kind(from) != Nat::Symmetric
                    && self
                        .mappings
                        .get(&(to, from))
                        .is_some_and(|at| at.elapsed() < self.mapping_ttl)
            }
        }
    }

    /// The dial from `peer` to `me` waiting for ours, when it plays the
    /// other role: it is ours to pair with.
    pub(super) fn take_partner(
        &mut self,
        peer: usize,
        me: usize,
        listener_role: bool,
    ) -> Option<oneshot::Sender<SimConn>> {
        match self.waiting.get(&(peer, me)) {
            Some(w) if w.listener_role != listener_role => {
                self.waiting.remove(&(peer, me)).map(|w| w.tx)
            }
            _ => None,
        }
    }

    /// Whether a dial from `from` to `to` should wait for its other half:
    /// it is a hole punch, or `to` is punching towards `from` right now.
    pub(super) fn should_wait(&self, from: usize, to: usize, listener_role: bool) -> bool {
        !self.waiting.contains_key(&(from, to))
            && (listener_role || self.punching.contains_key(&(to, from)))
    }

    /// Makes the dial from `from` to `to` wait; returns its receiver and
    /// id.
    pub(super) fn wait(
        &mut self,
        from: usize,
        to: usize,
        listener_role: bool,
    ) -> (oneshot::Receiver<SimConn>, u64) {
        let (tx, rx) = oneshot::channel();
        self.next_id += 1;
        let id = self.next_id;
        self.waiting.insert(
            (from, to),
            Waiter {
                tx,
                listener_role,
                id,
            },
        );
        (rx, id)
    }

    /// Stops waiting (the window passed): true when the waiter was still
    /// there, false when a partner took it meanwhile.
    pub(super) fn give_up(&mut self, from: usize, to: usize, id: u64) -> bool {
        if self.waiting.get(&(from, to)).is_some_and(|w| w.id == id) {
            self.waiting.remove(&(from, to));
            true
        } else {
            false
        }
    }

    /// A dial from `from` to `to` failed: the other side's dial waiting
    /// for it stops waiting (dropping its sender tells it).
    pub(super) fn release(&mut self, from: usize, to: usize) {
        self.waiting.remove(&(to, from));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn only_a_cone_nat_that_dialed_from_its_port_lets_a_peer_in() {
        let mut t = NatTable::new(Duration::from_secs(30));
        t.set(1, Nat::Cone);
        t.set(2, Nat::Symmetric);
        assert!(t.admits(0, 1, false) && t.admits(0, 2, true), "open");
        assert!(!t.admits(1, 0, false), "no mapping yet");
        t.dialing(1, 0, false, false);
        assert!(t.admits(1, 0, false));
        assert!(!t.admits(1, 0, true), "AutoNAT's dial-back from a new port");
        t.dialing(1, 2, false, false);
        assert!(
            !t.admits(1, 2, false),
            "a symmetric peer comes from another port"
        );
        t.dialing(2, 0, false, false);
        assert!(!t.admits(2, 0, false), "symmetric: never");
        t.dialing(1, 3, true, false);
        assert!(
            !t.admits(1, 3, false),
            "a fresh-port dial maps another port"
        );
    }

    #[tokio::test]
    async fn mappings_expire() {
        let mut t = NatTable::new(Duration::from_millis(20));
        t.set(1, Nat::Cone);
        t.dialing(1, 0, false, false);
        assert!(t.admits(1, 0, false));
        tokio::time::sleep(Duration::from_millis(30)).await;
        assert!(!t.admits(1, 0, false));
    }
}

//! The relay client's reservations: which relays this node holds a slot
//! on, so that peers that cannot dial it reach it through them.
//!
//! With the relay client on, a node reserves when it has static relays
//! (`[net] static_relays`, always) or once AutoNAT found it not reachable
//! (then on relays it met: peers whose identify lists the relay's hop
//! protocol, over a direct connection). A reservation is a listener on
//! `<relay>/p2p-circuit`: libp2p's relay client renews it before it
//! expires and confirms the circuit address as an external address
//! (identify and provider records carry it). When the relay goes away the
//! listener closes and [`Relays`] takes another (the same one after a
//! pause). Reservations made on found relays are dropped when the node
//! becomes reachable.

use super::build::Behaviour;
use super::reach::Reachability;
use libp2p::core::transport::ListenerId;
use libp2p::multiaddr::Protocol;
use libp2p::{Multiaddr, PeerId, Swarm};
use std::collections::{BTreeMap, HashMap};
use std::time::Duration;
use tokio::time::Instant;

/// The circuit relay v2 protocol a relay speaks (listed in identify).
pub(super) const HOP_PROTOCOL: &str = "/libp2p/circuit/relay/0.2.0/hop";

/// Reservations held at once (Kubo's autorelay keeps 2; every static
/// relay counts when there are more).
const WANTED: usize = 2;

/// Relays met and remembered, at most.
const MAX_FOUND: usize = 64;

/// How long a relay whose reservation failed or ended is left alone.
const PAUSE: Duration = Duration::from_secs(10);

/// How often [`Relays::tick`] runs (besides after each change).
pub(super) const TICK: Duration = Duration::from_secs(2);

/// One reservation, pending or held.
#[derive(Debug)]
struct Slot {
    relay: PeerId,
    /// The relay accepted (the circuit address is ours).
    accepted: bool,
}

/// The relay client's state, kept by the swarm task.
#[derive(Debug)]
pub(super) struct Relays {
    /// The relay client runs.
    enabled: bool,
    /// Configured relays, in order.
    fixed: Vec<(PeerId, Multiaddr)>,
    /// Relays met over a direct connection, with the address we reached
    /// them at.
    found: BTreeMap<PeerId, Multiaddr>,
    /// Our listeners on relays.
    slots: HashMap<ListenerId, Slot>,
    /// Relays left alone until then.
    paused: HashMap<PeerId, Instant>,
}

impl Relays {
    /// The relay client's state: `static_relays` end in `/p2p/<ID>`
    /// (checked when the config is read; others are skipped).
    pub(super) fn new(enabled: bool, static_relays: &[Multiaddr]) -> Relays {
        let fixed = static_relays
            .iter()
            .filter_map(|a| match a.iter().last() {
                Some(Protocol::P2p(id)) => Some((id, a.clone())),
                _ => None,
            })
            .collect();
        Relays {
            enabled,
            fixed,
            found: BTreeMap::new(),
            slots: HashMap::new(),
            paused: HashMap::new(),
        }
    }

    /// Identify from `peer` (`listen` its listen addresses), over a
    /// connection to `addr` (direct when `direct`): a relay when it speaks
    /// the hop protocol. It is reserved on at the address we reached it
    /// at when it listens there, else at its first routable listen
    /// address (a peer that dialled us came from another port).
    pub(super) fn identified(
        &mut self,
        peer: PeerId,
        addr: Option<&Multiaddr>,
        direct: bool,
        info: &libp2p::identify::Info,
    ) {
        if !self.enabled {
            return;
        }
        let relays = info.protocols.iter().any(|p| p.as_ref() == HOP_PROTOCOL);
        if !relays {
            self.found.remove(&peer);
            return;
        }
        if !direct || (self.found.len() >= MAX_FOUND && !self.found.contains_key(&peer)) {
            return;
        }
        let bare = |a: &Multiaddr| {
            let mut a = a.clone();
            if matches!(a.iter().last(), Some(Protocol::P2p(_))) {
                a.pop();
            }
            a
        };
        let listen: Vec<Multiaddr> = info
            .listen_addrs
            .iter()
            .map(bare)
            .filter(|a| !is_relayed(a))
            .collect();
        let pick = addr
            .map(bare)
            .filter(|a| listen.contains(a))
            .or_else(|| listen.iter().find(|a| !is_loopback(a)).cloned())
            .or_else(|| addr.map(bare));
        if let Some(a) = pick {
            self.found.insert(peer, a);
        }
    }

    /// The relay `relay` accepted our reservation (or renewed it).
    pub(super) fn accepted(&mut self, relay: PeerId) {
        for slot in self.slots.values_mut().filter(|s| s.relay == relay) {
            slot.accepted = true;
        }
    }

    /// The relays we hold or ask a reservation on (the connection manager
    /// keeps them).
    pub(super) fn relays_in_use(&self) -> impl Iterator<Item = PeerId> + '_ {
        self.slots.values().map(|s| s.relay)
    }

    /// A listener closed: when it was a reservation, its relay is left
    /// alone for a while and another is taken at the next tick.
    pub(super) fn listener_closed(&mut self, id: ListenerId, why: &str) -> bool {
        let Some(slot) = self.slots.remove(&id) else {
            return false;
        };
        tracing::info!(relay = %slot.relay, accepted = slot.accepted, "relay reservation ended: {why}");
        self.paused.insert(slot.relay, Instant::now() + PAUSE);
        true
    }

    /// Whether this node should hold reservations now.
    fn wanted(&self, reach: Reachability) -> bool {
        self.enabled && (!self.fixed.is_empty() || reach == Reachability::Private)
    }

    /// Reserves on more relays when fewer than wanted are held, and drops
    /// reservations on found relays once the node is reachable.
    pub(super) fn tick(&mut self, swarm: &mut Swarm<Behaviour>, reach: Reachability) {
        if !self.enabled {
            return;
        }
        let now = Instant::now();
        self.paused.retain(|_, until| *until > now);
        if reach == Reachability::Public {
            // Reachable: relays met are not needed (static ones are kept).
            let drop: Vec<ListenerId> = self
                .slots
                .iter()
                .filter(|(_, s)| !self.fixed.iter().any(|(p, _)| p == &s.relay))
                .map(|(id, _)| *id)
                .collect();
            for id in drop {
                self.slots.remove(&id);
                swarm.remove_listener(id);
            }
        }
        if !self.wanted(reach) {
            return;
        }
        let want = WANTED.max(self.fixed.len());
        while self.slots.len() < want {
            let Some((relay, addr)) = self.next_candidate(reach) else {
                break;
            };
            let circuit = addr.with(Protocol::P2pCircuit);
            match swarm.listen_on(circuit.clone()) {
                Ok(id) => {
                    tracing::info!(%relay, %circuit, "reserving a relay slot");
                    self.slots.insert(
                        id,
                        Slot {
                            relay,
                            accepted: false,
                        },
                    );
                }
                Err(e) => {
                    tracing::debug!(%relay, %circuit, "relay listen refused: {e}");
                    self.paused.insert(relay, now + PAUSE);
                }
            }
        }
    }

    /// The next relay to reserve on: a static one first, then one met
    /// (only while not reachable), neither held nor paused.
    fn next_candidate(&self, reach: Reachability) -> Option<(PeerId, Multiaddr)> {
        let free = |p: &PeerId| {
            !self.paused.contains_key(p) && !self.slots.values().any(|s| &s.relay == p)
        };
        if let Some((p, a)) = self.fixed.iter().find(|(p, _)| free(p)) {
            return Some((*p, a.clone()));
        }
        if reach != Reachability::Private {
            return None;
        }
        self.found.iter().find(|(p, _)| free(p)).map(|(p, a)| {
            let mut a = a.clone();
            if !matches!(a.iter().last(), Some(Protocol::P2p(_))) {
                a.push(Protocol::P2p(*p));
            }
            (*p, a)
        })
    }
}

/// Whether `addr` is on a loopback interface.
fn is_loopback(addr: &Multiaddr) -> bool {
    addr.iter().any(|p| match p {
        Protocol::Ip4(ip) => ip.is_loopback(),
        Protocol::Ip6(ip) => ip.is_loopback(),
        _ => false,
    })
}

/// Whether `addr` goes through a relay.
pub(super) fn is_relayed(addr: &Multiaddr) -> bool {
    addr.iter().any(|p| p == Protocol::P2pCircuit)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn relay_addr(port: u16) -> (PeerId, Multiaddr) {
        let id = PeerId::random();
        let a: Multiaddr = format!("/ip4/10.0.0.1/tcp/{port}/p2p/{id}")
            .parse()
            .unwrap();
        (id, a)
    }

    /// Identify info listing `listen`, speaking hop when `hop`.
    fn info(hop: bool, listen: &[&Multiaddr]) -> libp2p::identify::Info {
        libp2p::identify::Info {
            public_key: libp2p::identity::Keypair::generate_ed25519().public(),
            protocol_version: "ipfs/0.1.0".into(),
            agent_version: "test".into(),
            listen_addrs: listen.iter().map(|a| (*a).clone()).collect(),
            protocols: if hop {
                vec![libp2p::StreamProtocol::new(HOP_PROTOCOL)]
            } else {
                Vec::new()
            },
            observed_addr: Multiaddr::empty(),
            signed_peer_record: None,
        }
    }

    #[test]
    fn static_relays_come_first_and_found_ones_only_behind_nat() {
        let (s, sa) = relay_addr(1);
        let mut r = Relays::new(true, std::slice::from_ref(&sa));
        let (f, fa) = relay_addr(2);
        let bare: Multiaddr = fa.iter().take(2).collect();
        r.identified(f, Some(&bare), true, &info(true, &[&bare]));
        assert_eq!(r.next_candidate(Reachability::Private), Some((s, sa)));
        r.slots.insert(
            ListenerId::next(),
            Slot {
                relay: s,
                accepted: false,
            },
        );
        // The found relay's address gains its /p2p/ID.
        assert_eq!(r.next_candidate(Reachability::Private), Some((f, fa)));
        assert_eq!(r.next_candidate(Reachability::Public), None);
        assert_eq!(r.next_candidate(Reachability::Unknown), None);
        assert!(r.wanted(Reachability::Unknown));
        let plain = Relays::new(true, &[]);
        assert!(!plain.wanted(Reachability::Unknown));
        assert!(plain.wanted(Reachability::Private));
        assert!(!Relays::new(false, &[sa_of(&r)]).wanted(Reachability::Private));
    }

    fn sa_of(r: &Relays) -> Multiaddr {
        r.fixed[0].1.clone()
    }

    #[test]
    fn only_direct_hop_speakers_count_and_a_closed_reservation_pauses_its_relay() {
        let mut r = Relays::new(true, &[]);
        let (a, aa) = relay_addr(1);
        let (b, ba) = relay_addr(2);
        r.identified(a, Some(&aa), false, &info(true, &[&aa]));
        r.identified(b, Some(&ba), true, &info(false, &[&ba]));
        assert!(r.found.is_empty());
        // Reached from another port (it dialled us): its listen address,
        // loopback skipped.
        let from: Multiaddr = "/ip4/10.0.0.1/tcp/50000".parse().unwrap();
        let lo: Multiaddr = "/ip4/127.0.0.1/tcp/1".parse().unwrap();
        r.identified(a, Some(&from), true, &info(true, &[&lo, &aa]));
        assert_eq!(
            r.next_candidate(Reachability::Private),
            Some((a, aa.clone()))
        );
        // A relay that stops speaking hop is forgotten.
        r.identified(a, Some(&aa), true, &info(false, &[&aa]));
        assert!(r.found.is_empty());
        r.identified(a, Some(&aa), true, &info(true, &[&aa]));
        let id = ListenerId::next();
        r.slots.insert(
            id,
            Slot {
                relay: a,
                accepted: false,
            },
        );
        r.accepted(a);
        assert!(r.slots[&id].accepted);
        assert!(r.listener_closed(id, "relay gone"));
        assert!(!r.listener_closed(id, "again"));
        assert_eq!(r.next_candidate(Reachability::Private), None);
        // Bounded: a flood of relays is not all kept.
        for _ in 0..(MAX_FOUND * 2) {
            let (p, pa) = relay_addr(3);
            r.identified(p, Some(&pa), true, &info(true, &[&pa]));
        }
        assert_eq!(r.found.len(), MAX_FOUND);
    }
}

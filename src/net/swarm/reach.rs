//! Whether this node counts as reachable, which decides the DHT mode in
//! automatic mode. Without AutoNAT (the local profile): local addresses at
//! once, public ones once dialled at. With AutoNAT: only the addresses
//! peers dialled back ([`Reach`] follows its answers).

use super::build::Behaviour;
use libp2p::multiaddr::Protocol;
use libp2p::{autonat, Multiaddr, Swarm};
use std::collections::BTreeSet;

/// Whether peers can dial this node, as AutoNAT found.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Reachability {
    /// AutoNAT is off, or no peer has answered yet.
    #[default]
    Unknown,
    /// A peer dialled us back at one of our addresses.
    Public,
    /// Peers tried to dial us back and could not (behind NAT or a
    /// firewall).
    Private,
}

impl Reachability {
    /// "unknown", "public" or "private" (`cairn id`).
    pub fn as_str(self) -> &'static str {
        match self {
            Reachability::Unknown => "unknown",
            Reachability::Public => "public",
            Reachability::Private => "private",
        }
    }
}

/// What the node knows of its reachability, kept current by the swarm
/// task ([`SwarmHandle::reachability`](super::SwarmHandle::reachability)).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReachInfo {
    /// AutoNAT's verdict.
    pub status: Reachability,
    /// Addresses AutoNAT confirmed (peers dialled us back there).
    pub confirmed: Vec<Multiaddr>,
    /// Whether the DHT runs as a server (answers queries, is in others'
    /// routing tables) rather than as a client.
    pub dht_server: bool,
    /// Our addresses through relays we hold a reservation on (ending in
    /// `/p2p-circuit/p2p/<our ID>`).
    pub relay_addrs: Vec<Multiaddr>,
}

/// AutoNAT's answers so far, v2 (per address) before v1 (one status).
#[derive(Debug, Default)]
pub(super) struct Reach {
    /// Addresses v2 confirmed, not failed since.
    v2_confirmed: BTreeSet<Multiaddr>,
    /// A v2 test failed since the last success.
    v2_failed: bool,
    /// v1's status.
    v1: Option<autonat::v1::NatStatus>,
}

impl Reach {
    /// A v2 test of `addr` ended: confirmed or not.
    pub(super) fn v2_tested(&mut self, addr: &Multiaddr, reachable: bool) {
        if reachable {
            self.v2_confirmed.insert(addr.clone());
            self.v2_failed = false;
        } else {
            self.v2_confirmed.remove(addr);
            self.v2_failed = true;
        }
    }

    /// v1's status changed.
    pub(super) fn v1_status(&mut self, status: autonat::v1::NatStatus) {
        self.v1 = Some(status);
    }

    /// The verdict: public while any address is confirmed (by v2, or v1's
    /// public address), private once a test failed and none is.
    pub(super) fn status(&self) -> Reachability {
        use autonat::v1::NatStatus;
        if !self.v2_confirmed.is_empty() || matches!(self.v1, Some(NatStatus::Public(_))) {
            Reachability::Public
        } else if self.v2_failed || matches!(self.v1, Some(NatStatus::Private)) {
            Reachability::Private
        } else {
            Reachability::Unknown
        }
    }

    /// The confirmed addresses (v2's, and v1's public one).
    pub(super) fn confirmed(&self) -> Vec<Multiaddr> {
        let mut all = self.v2_confirmed.clone();
        if let Some(autonat::v1::NatStatus::Public(a)) = &self.v1 {
            all.insert(a.clone());
        }
        all.into_iter().collect()
    }
}

/// In automatic DHT mode, a public address counts as reachable once a peer
/// has dialled us at it (an inbound connection arrived there): the address
/// an inbound connection came in on, when it is a public one. Kubo asks
/// peers to dial back (AutoNAT); an inbound connection is the same proof,
/// made by whoever connects first.
pub(super) fn reached_from_outside(local_addr: &Multiaddr) -> Option<Multiaddr> {
    // Through a relay: the relay was reached, not us.
    let relayed = local_addr.iter().any(|p| p == Protocol::P2pCircuit);
    (is_global(local_addr) && !relayed).then(|| local_addr.clone())
}

/// Whether `addr` is at a global IP address (not loopback, private,
/// link-local, shared, documentation or multicast): the only addresses
/// AutoNAT's answers count for, unless `autonat_private_addrs` is set.
pub(super) fn is_global(addr: &Multiaddr) -> bool {
    addr.iter().any(|p| match p {
        Protocol::Ip4(ip) => {
            !(ip.is_loopback()
                || ip.is_private()
                || ip.is_link_local()
                || ip.is_unspecified()
                || ip.is_broadcast()
                || ip.is_documentation()
                || ip.is_multicast()
                // Shared address space (carrier-grade NAT), 100.64/10.
                || (ip.octets()[0] == 100 && (ip.octets()[1] & 0xc0) == 64))
        }
        Protocol::Ip6(ip) => {
            let s = ip.segments()[0];
            !(ip.is_loopback()
                || ip.is_unspecified()
                || ip.is_multicast()
                || (s & 0xfe00) == 0xfc00
                || (s & 0xffc0) == 0xfe80)
        }
        _ => false,
    })
}

/// In automatic DHT mode, a loopback or private listen address counts as
/// reachable: peers on this machine or local network can dial it, so the
/// node serves the DHT there (as Kubo's LAN DHT does). Public addresses wait
/// for a confirmation this node does not make on its own.
pub(super) fn confirm_if_local(swarm: &mut Swarm<Behaviour>, addr: &Multiaddr) {
    let local = addr.iter().any(|p| match p {
        Protocol::Ip4(ip) => ip.is_loopback() || ip.is_private() || ip.is_link_local(),
        Protocol::Ip6(ip) => ip.is_loopback() || (ip.segments()[0] & 0xfe00) == 0xfc00,
        _ => false,
    });
    if local {
        swarm.add_external_address(addr.clone());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use libp2p::autonat::v1::NatStatus;

    /// Two nodes with AutoNAT on (private addresses allowed) on loopback:
    /// each dials the other back, so each learns it is reachable at its
    /// listen address and turns DHT server.
    #[tokio::test]
    async fn autonat_confirms_a_dialable_address_and_the_dht_turns_server() {
        use crate::net::swarm::{build, spawn, NetConfig, Traversal};
        let config = NetConfig {
            traversal: Traversal {
                autonat: true,
                autonat_private_addrs: true,
                ..Traversal::default()
            },
            ..NetConfig::default()
        };
        let start = || async {
            let mut registry = libp2p::metrics::Registry::default();
            let key = libp2p::identity::Keypair::generate_ed25519();
            let swarm = build(key, &config, &mut registry).unwrap();
            let metrics = libp2p::metrics::Metrics::new(&mut registry);
            spawn(swarm, &config, metrics).await.unwrap()
        };
        let (a, b) = (start().await, start().await);
        // Neither serves the DHT before AutoNAT answered, loopback or not.
        assert_eq!(a.reachability(), ReachInfo::default());
        let addr_a = a.listen_addrs().await.unwrap()[0].clone();
        b.dial(addr_a.clone()).await.unwrap();
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            let (ra, rb) = (a.reachability(), b.reachability());
            if ra.status == Reachability::Public
                && rb.status == Reachability::Public
                && ra.dht_server
                && rb.dht_server
            {
                assert!(ra.confirmed.contains(&addr_a), "{ra:?}");
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "not both public DHT servers within 30 s: {ra:?} {rb:?}"
            );
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
    }

    #[test]
    fn a_confirmed_address_makes_the_node_public_and_failures_alone_private() {
        let a: Multiaddr = "/ip4/10.1.0.1/tcp/4001".parse().unwrap();
        let b: Multiaddr = "/ip4/10.1.0.1/udp/4001/quic-v1".parse().unwrap();
        let mut r = Reach::default();
        assert_eq!(r.status(), Reachability::Unknown);
        r.v2_tested(&a, false);
        assert_eq!(r.status(), Reachability::Private);
        r.v2_tested(&b, true);
        assert_eq!(r.status(), Reachability::Public);
        assert_eq!(r.confirmed(), vec![b.clone()]);
        // v1's private verdict does not outweigh an address v2 confirmed.
        r.v1_status(NatStatus::Private);
        assert_eq!(r.status(), Reachability::Public);
        r.v2_tested(&b, false);
        assert_eq!(r.status(), Reachability::Private);
        assert!(r.confirmed().is_empty());
        r.v1_status(NatStatus::Public(a.clone()));
        assert_eq!(r.status(), Reachability::Public);
        assert_eq!(r.confirmed(), vec![a]);
        let mut v1_only = Reach::default();
        v1_only.v1_status(NatStatus::Private);
        assert_eq!(v1_only.status(), Reachability::Private);
        v1_only.v1_status(NatStatus::Unknown);
        assert_eq!(v1_only.status(), Reachability::Unknown);
    }

    #[test]
    fn only_an_inbound_connection_on_a_public_address_confirms_reachability() {
        let reached = |a: &str| reached_from_outside(&a.parse().unwrap());
        assert!(reached("/ip4/8.8.4.4/tcp/4001").is_some());
        assert!(reached("/ip4/100.128.0.1/tcp/4001").is_some());
        assert!(reached("/ip6/2001:4860::1/udp/4001/quic-v1").is_some());
        assert!(reached(
            "/ip4/8.8.4.4/tcp/4001/p2p/12D3KooWDpJ7As7BWAwRMfu1VU2WCqNjvq387JEYKDBj4kx6nXTN/p2p-circuit"
        )
        .is_none());
        for local in [
            "/ip4/127.0.0.1/tcp/4001",
            "/ip4/10.1.2.3/tcp/4001",
            "/ip4/192.168.1.5/tcp/4001",
            "/ip4/169.254.3.4/tcp/4001",
            "/ip4/0.0.0.0/tcp/4001",
            "/ip4/192.0.2.1/tcp/4001",
            "/ip4/100.64.0.1/tcp/4001",
            "/ip4/100.127.255.1/tcp/4001",
            "/ip6/::1/tcp/4001",
            "/ip6/fd00::1/tcp/4001",
            "/ip6/fe80::1/tcp/4001",
        ] {
            assert!(reached(local).is_none(), "{local}");
        }
    }
}

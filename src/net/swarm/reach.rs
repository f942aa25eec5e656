//! Whether this node counts as reachable, which decides the DHT mode in
//! automatic mode: local addresses at once, public ones once dialled at.

use super::build::Behaviour;
use libp2p::multiaddr::Protocol;
use libp2p::{Multiaddr, Swarm};

/// In automatic DHT mode, a public address counts as reachable once a peer
/// has dialled us at it (an inbound connection arrived there): the address
/// an inbound connection came in on, when it is a public one. Kubo asks
/// peers to dial back (AutoNAT); an inbound connection is the same proof,
/// made by whoever connects first.
pub(super) fn reached_from_outside(local_addr: &Multiaddr) -> Option<Multiaddr> {
    let public = local_addr.iter().any(|p| match p {
        Protocol::Ip4(ip) => {
            !(ip.is_loopback()
                || ip.is_private()
                || ip.is_link_local()
                || ip.is_unspecified()
                || ip.is_broadcast()
                || ip.is_documentation()
                || ip.is_multicast())
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
    });
    public.then(|| local_addr.clone())
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

    #[test]
    fn only_an_inbound_connection_on_a_public_address_confirms_reachability() {
        let reached = |a: &str| reached_from_outside(&a.parse().unwrap());
        assert!(reached("/ip4/8.8.4.4/tcp/4001").is_some());
        assert!(reached("/ip6/2001:4860::1/udp/4001/quic-v1").is_some());
        for local in [
            "/ip4/127.0.0.1/tcp/4001",
            "/ip4/10.1.2.3/tcp/4001",
            "/ip4/192.168.1.5/tcp/4001",
            "/ip4/169.254.3.4/tcp/4001",
            "/ip4/0.0.0.0/tcp/4001",
            "/ip4/192.0.2.1/tcp/4001",
            "/ip6/::1/tcp/4001",
            "/ip6/fd00::1/tcp/4001",
            "/ip6/fe80::1/tcp/4001",
        ] {
            assert!(reached(local).is_none(), "{local}");
        }
    }
}

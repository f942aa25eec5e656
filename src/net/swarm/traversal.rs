//! NAT traversal protocols: which of AutoNAT (v1 and v2), the circuit
//! relay (client and service), DCUtR hole punching and UPnP the swarm
//! runs, and the relay service's limits.
//!
//! All are off by default (`[net] profile = "local"`): the swarm then
//! speaks exactly the protocols it spoke before they existed, and peers
//! see none of them in identify. Each is a [`Toggle`] in the
//! [`Behaviour`](super::Behaviour), built once from [`Traversal`].

use libp2p::core::transport::PortUse;
use libp2p::core::Endpoint;
use libp2p::swarm::behaviour::toggle::Toggle;
use libp2p::swarm::{
    ConnectionDenied, ConnectionId, ExternalAddresses, FromSwarm, NetworkBehaviour, THandler,
    THandlerInEvent, THandlerOutEvent, ToSwarm,
};
use libp2p::{autonat, dcutr, relay, upnp, Multiaddr, PeerId};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

/// Which NAT traversal protocols the swarm runs.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Traversal {
    /// AutoNAT v1 and v2, as client (ask peers to dial us back, to learn
    /// whether and where we are reachable) and as server (dial back peers
    /// that ask).
    pub autonat: bool,
    /// AutoNAT also trusts and serves peers at private or shared
    /// (100.64/10) addresses (v1's `only_global_ips` off; v2 has no such
    /// filter). For test networks only.
    pub autonat_private_addrs: bool,
    /// Circuit relay v2 client: dial and accept connections through relays.
    pub relay_client: bool,
    /// Serve as a circuit relay v2 for others, within these limits.
    pub relay_service: Option<RelayLimits>,
    /// DCUtR: upgrade relayed connections to direct ones by hole punching.
    pub hole_punching: bool,
    /// Ask the gateway (UPnP IGD) to forward our listening ports. The
    /// gateway search (SSDP multicast on the local network) starts when
    /// the swarm is built.
    pub upnp: bool,
    /// Relays the relay client reserves on whether or not this node is
    /// reachable, before any it finds (each ends in `/p2p/<ID>`).
    pub static_relays: Vec<libp2p::Multiaddr>,
}

/// Limits of the relay service. The defaults are Kubo's
/// (`Swarm.RelayService`) where rust-libp2p has the same knob.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RelayLimits {
    /// Most reservations held at once, all peers together.
    pub max_reservations: usize,
    /// Most reservations one peer holds.
    pub max_reservations_per_peer: usize,
    /// How long a reservation lasts before the peer must renew it.
    pub reservation_ttl: Duration,
    /// Most circuits relayed at once, all peers together.
    pub max_circuits: usize,
    /// Most circuits one peer has relayed at once.
    pub max_circuits_per_peer: usize,
    /// A circuit is closed after this long.
    pub circuit_duration: Duration,
    /// A circuit is closed after carrying this many bytes, both directions
    /// together (Kubo counts each direction; 0: no limit).
    pub circuit_bytes: u64,
    /// Rate-limit reservations and circuits per peer and per IP address
    /// (rust-libp2p's limiters: about one every 2 minutes, 30 an hour).
    pub rate_limits: bool,
}

impl Default for RelayLimits {
    /// Kubo's relay service defaults: 128 reservations (4 per peer) of
    /// 1 h, 16 circuits (4 per peer) of 2 min and 128 KiB.
    fn default() -> Self {
        RelayLimits {
            max_reservations: 128,
            max_reservations_per_peer: 4,
            reservation_ttl: Duration::from_secs(3600),
            max_circuits: 16,
            max_circuits_per_peer: 4,
            circuit_duration: Duration::from_secs(120),
            circuit_bytes: 128 * 1024,
            rate_limits: true,
        }
    }
}

impl RelayLimits {
    /// The relay server's configuration with these limits.
    pub fn relay_config(&self) -> relay::Config {
        let mut c = relay::Config {
            max_reservations: self.max_reservations,
            max_reservations_per_peer: self.max_reservations_per_peer,
            reservation_duration: self.reservation_ttl,
            max_circuits: self.max_circuits,
            max_circuits_per_peer: self.max_circuits_per_peer,
            max_circuit_duration: self.circuit_duration,
            max_circuit_bytes: self.circuit_bytes,
            ..relay::Config::default()
        };
        if !self.rate_limits {
            c.reservation_rate_limiters.clear();
            c.circuit_src_rate_limiters.clear();
        }
        c
    }
}

/// The traversal behaviours of a swarm, each on or off as [`Traversal`]
/// says (the relay client comes from the swarm builder, with its
/// transport).
pub(super) struct TraversalBehaviours {
    pub(super) relay_client: Toggle<relay::client::Behaviour>,
    pub(super) autonat_v1: Toggle<autonat::v1::Behaviour>,
    pub(super) autonat_v2_client: Toggle<autonat::v2::client::Behaviour>,
    pub(super) autonat_v2_server: Toggle<autonat::v2::server::Behaviour>,
    pub(super) relay: Toggle<RelayService>,
    pub(super) dcutr: Toggle<dcutr::Behaviour>,
    pub(super) upnp: Toggle<upnp::tokio::Behaviour>,
}

impl Traversal {
    /// Builds the behaviours this selects for the node `peer_id`; the
    /// relay client is dropped when off (its transport then refuses
    /// `/p2p-circuit` dials and listens).
    pub(super) fn behaviours(
        &self,
        peer_id: PeerId,
        relay_client: relay::client::Behaviour,
    ) -> TraversalBehaviours {
        let autonat_v1 = self.autonat.then(|| {
            autonat::v1::Behaviour::new(
                peer_id,
                autonat::v1::Config {
                    only_global_ips: !self.autonat_private_addrs,
                    ..autonat::v1::Config::default()
                },
            )
        });
        TraversalBehaviours {
            relay_client: self.relay_client.then_some(relay_client).into(),
            autonat_v1: autonat_v1.into(),
            autonat_v2_client: self
                .autonat
                .then(autonat::v2::client::Behaviour::default)
                .into(),
            autonat_v2_server: self
                .autonat
                .then(autonat::v2::server::Behaviour::default)
                .into(),
            relay: self
                .relay_service
                .as_ref()
                .map(|limits| RelayService::new(peer_id, limits))
                .into(),
            dcutr: self
                .hole_punching
                .then(|| dcutr::Behaviour::new(peer_id))
                .into(),
            upnp: self.upnp.then(upnp::tokio::Behaviour::default).into(),
        }
    }
}

/// The circuit relay v2 service, accepting reservations only while this
/// node has a confirmed external address.
///
/// libp2p-relay 0.21 accepts a reservation without one: it records the
/// reservation against the client's connection, while the client refuses
/// an answer that lists no address (`NoAddressesInReservation`) and
/// forgets it. The relay then forwards circuits for that client over
/// that connection; the client denies them (`NO_RESERVATION`), which the
/// relay reports to the dialer as `UNEXPECTED_MESSAGE` — whenever the
/// client holds a later, good reservation on another connection too,
/// since the relay picks either. A relay starts without a confirmed
/// address (AutoNAT confirms it seconds later), so clients reserving at
/// once met this. Refused instead (`RESOURCE_LIMIT_EXCEEDED`), the relay
/// records nothing and the client tries again later.
pub struct RelayService {
    inner: relay::Behaviour,
    /// This node's confirmed external addresses, as the relay sees them.
    external: ExternalAddresses,
    /// Whether `external` is not empty (read by the reservation gate).
    addressed: Arc<AtomicBool>,
}

impl RelayService {
    /// The relay service of `peer_id` within `limits`.
    pub fn new(peer_id: PeerId, limits: &RelayLimits) -> RelayService {
        let addressed = Arc::new(AtomicBool::new(false));
        let mut config = limits.relay_config();
        let gate = addressed.clone();
        // First: a refusal here spends none of the rate limiters' budget.
        config.reservation_rate_limiters.insert(
            0,
            Box::new(move |_: PeerId, _: &Multiaddr, _: std::time::Instant| {
                gate.load(Ordering::Relaxed)
            }),
        );
        RelayService {
            inner: relay::Behaviour::new(peer_id, config),
            external: ExternalAddresses::default(),
            addressed,
        }
    }
}

impl NetworkBehaviour for RelayService {
    type ConnectionHandler = <relay::Behaviour as NetworkBehaviour>::ConnectionHandler;
    type ToSwarm = relay::Event;

    fn handle_pending_inbound_connection(
        &mut self,
        id: ConnectionId,
        local: &Multiaddr,
        remote: &Multiaddr,
    ) -> Result<(), ConnectionDenied> {
        self.inner
            .handle_pending_inbound_connection(id, local, remote)
    }

    fn handle_established_inbound_connection(
        &mut self,
        id: ConnectionId,
        peer: PeerId,
        local: &Multiaddr,
        remote: &Multiaddr,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        self.inner
            .handle_established_inbound_connection(id, peer, local, remote)
    }

    fn handle_pending_outbound_connection(
        &mut self,
        id: ConnectionId,
        peer: Option<PeerId>,
        addrs: &[Multiaddr],
        role: Endpoint,
    ) -> Result<Vec<Multiaddr>, ConnectionDenied> {
        self.inner
            .handle_pending_outbound_connection(id, peer, addrs, role)
    }

    fn handle_established_outbound_connection(
        &mut self,
        id: ConnectionId,
        peer: PeerId,
        addr: &Multiaddr,
        role: Endpoint,
        port_use: PortUse,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        self.inner
            .handle_established_outbound_connection(id, peer, addr, role, port_use)
    }

    fn on_swarm_event(&mut self, event: FromSwarm) {
        if self.external.on_swarm_event(&event) {
            self.addressed
                .store(self.external.iter().len() > 0, Ordering::Relaxed);
        }
        self.inner.on_swarm_event(event);
    }

    fn on_connection_handler_event(
        &mut self,
        peer: PeerId,
        id: ConnectionId,
        event: THandlerOutEvent<Self>,
    ) {
        self.inner.on_connection_handler_event(peer, id, event);
    }

    fn poll(&mut self, cx: &mut Context<'_>) -> Poll<ToSwarm<relay::Event, THandlerInEvent<Self>>> {
        self.inner.poll(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::swarm::{build, NetConfig};
    use futures::StreamExt;
    use libp2p::identify;
    use libp2p::swarm::SwarmEvent;
    use std::collections::BTreeSet;

    /// Everything on but UPnP, whose gateway search (multicast on the
    /// host's network) starts as soon as it is built: tests stay on
    /// loopback.
    fn all_but_upnp() -> Traversal {
        Traversal {
            autonat: true,
            autonat_private_addrs: true,
            relay_client: true,
            relay_service: Some(RelayLimits::default()),
            hole_punching: true,
            upnp: false,
            static_relays: Vec::new(),
        }
    }

    /// The protocols a swarm built with `traversal` lists in identify, as
    /// another swarm with everything on learns them over loopback TCP.
    async fn advertised(traversal: Traversal) -> BTreeSet<String> {
        let make = |traversal: Traversal| {
            let config = NetConfig {
                listen: vec!["/ip4/127.0.0.1/tcp/0".parse().unwrap()],
                traversal,
                ..NetConfig::default()
            };
            let key = libp2p::identity::Keypair::generate_ed25519();
            build(key, &config, &mut libp2p::metrics::Registry::default()).unwrap()
        };
        let mut asked = make(traversal);
        let mut asker = make(all_but_upnp());
        asked
            .listen_on("/ip4/127.0.0.1/tcp/0".parse().unwrap())
            .unwrap();
        let addr = loop {
            if let SwarmEvent::NewListenAddr { address, .. } = asked.select_next_some().await {
                break address;
            }
        };
        asker.dial(addr).unwrap();
        let asked_id = *asked.local_peer_id();
        let deadline = tokio::time::sleep(Duration::from_secs(20));
        tokio::pin!(deadline);
        loop {
            tokio::select! {
                _ = &mut deadline => panic!("no identify from the peer within 20 s"),
                _ = asked.select_next_some() => {}
                e = asker.select_next_some() => {
                    if let SwarmEvent::Behaviour(super::super::build::BehaviourEvent::Identify(
                        identify::Event::Received { peer_id, info, .. },
                    )) = e
                    {
                        if peer_id == asked_id {
                            return info.protocols.iter().map(|p| p.to_string()).collect();
                        }
                    }
                }
            }
        }
    }

    const TRAVERSAL_PROTOCOLS: [&str; 5] = [
        "/libp2p/autonat/1.0.0",
        "/libp2p/autonat/2/dial-request",
        "/libp2p/autonat/2/dial-back",
        "/libp2p/circuit/relay/0.2.0/hop",
        "/libp2p/circuit/relay/0.2.0/stop",
    ];

    #[tokio::test]
    async fn the_local_profile_speaks_no_traversal_protocol_and_all_on_speaks_each() {
        let off = advertised(Traversal::default()).await;
        // Identify's own protocol: the peer's list did arrive.
        assert!(off.contains("/ipfs/id/1.0.0"), "{off:?}");
        for p in TRAVERSAL_PROTOCOLS {
            assert!(!off.contains(p), "{p} advertised while off: {off:?}");
        }
        let on = advertised(all_but_upnp()).await;
        for p in TRAVERSAL_PROTOCOLS {
            // dial-back is dialled by the server, never listened for.
            if p != "/libp2p/autonat/2/dial-back" {
                assert!(on.contains(p), "{p} missing while on: {on:?}");
            }
        }
        assert_eq!(
            on.difference(&off).cloned().collect::<BTreeSet<_>>(),
            on.iter()
                .filter(|p| TRAVERSAL_PROTOCOLS.contains(&p.as_str()))
                .cloned()
                .collect::<BTreeSet<_>>(),
            "only traversal protocols are added"
        );
    }

    #[test]
    fn relay_limits_are_kubos_and_rate_limits_can_be_dropped() {
        let c = RelayLimits::default().relay_config();
        assert_eq!(c.max_reservations, 128);
        assert_eq!(c.max_reservations_per_peer, 4);
        assert_eq!(c.reservation_duration, Duration::from_secs(3600));
        assert_eq!(c.max_circuits, 16);
        assert_eq!(c.max_circuits_per_peer, 4);
        assert_eq!(c.max_circuit_duration, Duration::from_secs(120));
        assert_eq!(c.max_circuit_bytes, 131072);
        assert!(!c.reservation_rate_limiters.is_empty());
        assert!(!c.circuit_src_rate_limiters.is_empty());
        let open = RelayLimits {
            rate_limits: false,
            circuit_bytes: 0,
            ..RelayLimits::default()
        }
        .relay_config();
        assert!(open.reservation_rate_limiters.is_empty());
        assert!(open.circuit_src_rate_limiters.is_empty());
        assert_eq!(open.max_circuit_bytes, 0);
    }

    /// A relay without a confirmed external address refuses reservations
    /// (libp2p-relay would accept and record one its client then drops),
    /// and accepts them once it has one.
    #[tokio::test]
    async fn a_relay_reserves_only_once_it_has_an_address_to_give() {
        use crate::net::swarm::build::BehaviourEvent;
        use libp2p::core::transport::ListenerId;
        let make = |traversal: Traversal| {
            let config = NetConfig {
                traversal,
                ..NetConfig::default()
            };
            let key = libp2p::identity::Keypair::generate_ed25519();
            build(key, &config, &mut libp2p::metrics::Registry::default()).unwrap()
        };
        let mut relay = make(Traversal {
            relay_service: Some(RelayLimits {
                rate_limits: false,
                ..RelayLimits::default()
            }),
            ..Traversal::default()
        });
        let mut client = make(Traversal {
            relay_client: true,
            ..Traversal::default()
        });
        relay
            .listen_on("/ip4/127.0.0.1/tcp/0".parse().unwrap())
            .unwrap();
        let addr = loop {
            if let SwarmEvent::NewListenAddr { address, .. } = relay.select_next_some().await {
                break address;
            }
        };
        let circuit = addr
            .clone()
            .with(libp2p::multiaddr::Protocol::P2p(*relay.local_peer_id()))
            .with(libp2p::multiaddr::Protocol::P2pCircuit);
        // What becomes of one reservation: (relay accepted it, the client
        // got a circuit address).
        async fn reserve(
            relay: &mut libp2p::Swarm<crate::net::swarm::Behaviour>,
            client: &mut libp2p::Swarm<crate::net::swarm::Behaviour>,
            circuit: &Multiaddr,
        ) -> (bool, bool) {
            let id: ListenerId = client.listen_on(circuit.clone()).unwrap();
            let (mut relay_said, mut client_got) = (None, None);
            let deadline = tokio::time::sleep(Duration::from_secs(20));
            tokio::pin!(deadline);
            while relay_said.is_none() || client_got.is_none() {
                tokio::select! {
                    _ = &mut deadline => panic!("no answer: relay {relay_said:?}, client {client_got:?}"),
                    e = relay.select_next_some() => match e {
                        SwarmEvent::Behaviour(BehaviourEvent::Relay(
                            relay::Event::ReservationReqAccepted { .. },
                        )) => relay_said = Some(true),
                        SwarmEvent::Behaviour(BehaviourEvent::Relay(
                            relay::Event::ReservationReqDenied { .. },
                        )) => relay_said = Some(false),
                        _ => {}
                    },
                    e = client.select_next_some() => match e {
                        SwarmEvent::NewListenAddr { listener_id, .. } if listener_id == id => {
                            client_got = Some(true)
                        }
                        SwarmEvent::ListenerClosed { listener_id, .. } if listener_id == id => {
                            client_got = Some(false)
                        }
                        _ => {}
                    },
                }
            }
            (relay_said.unwrap(), client_got.unwrap())
        }
        assert_eq!(
            reserve(&mut relay, &mut client, &circuit).await,
            (false, false),
            "no address yet: refused, nothing recorded"
        );
        relay.add_external_address(addr);
        assert_eq!(
            reserve(&mut relay, &mut client, &circuit).await,
            (true, true)
        );
    }

    #[tokio::test]
    async fn every_toggle_builds_on_and_off() {
        let key = libp2p::identity::Keypair::generate_ed25519();
        for traversal in [Traversal::default(), all_but_upnp()] {
            let on = traversal.autonat;
            let config = NetConfig {
                traversal,
                ..NetConfig::default()
            };
            let swarm = build(
                key.clone(),
                &config,
                &mut libp2p::metrics::Registry::default(),
            )
            .unwrap();
            let b = swarm.behaviour();
            for (name, enabled) in [
                ("relay_client", b.relay_client.is_enabled()),
                ("autonat_v1", b.autonat_v1.is_enabled()),
                ("autonat_v2_client", b.autonat_v2_client.is_enabled()),
                ("autonat_v2_server", b.autonat_v2_server.is_enabled()),
                ("relay", b.relay.is_enabled()),
                ("dcutr", b.dcutr.is_enabled()),
            ] {
                assert_eq!(enabled, on, "{name}");
            }
            assert!(!b.upnp.is_enabled());
        }
    }
}

//! [`NetSettings`]: `[net]` in `config.toml`, where the daemon listens,
//! whom it knows, and the network profile: "local" (a private network,
//! the default) or "public" (NAT traversal on, for the Internet).

use super::{ByteSize, ConfigError};
use crate::net::swarm::{ConnManagerConfig, ConnectionLimits, NetConfig, RelayLimits, Traversal};
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// The public IPFS bootstrap peers (Kubo 0.36's default list, run by the
/// IPFS and libp2p teams). Written only by `cairn init --profile public`:
/// no default and no test uses it. The `/dnsaddr` entries need DNS, which
/// cairn does not resolve yet; the two `/ip4` ones are dialled directly.
pub const PUBLIC_BOOTSTRAP: [&str; 7] = [
    "/dnsaddr/bootstrap.libp2p.io/p2p/QmNnooDu7bfjPFoTZYxMNLWUQJyrVwtbZg5gBMjTezGAJN",
    "/dnsaddr/bootstrap.libp2p.io/p2p/QmQCU2EcMqAqQPR2i9bChDtGNJchTbq5TbXJJ16u19uLTa",
    "/dnsaddr/bootstrap.libp2p.io/p2p/QmbLHAnMoJPWSCR5Zhtx6BHJX9KiKNN6tpvbUcqanj75Nb",
    "/dnsaddr/bootstrap.libp2p.io/p2p/QmcZf59bWwK5XFi76CZX8cbJ4BhTzzA3gU1ZjYZcYW3dwt",
    "/dnsaddr/va1.bootstrap.libp2p.io/p2p/12D3KooWKnDdG3iXw9eTFijk3EWSunZcFi54Zka4wmtqtt6rPxc8",
    "/ip4/104.131.131.82/tcp/4001/p2p/QmaCpDMGvV2BGHeYERUEnRQAwe3N8SzbUtfsmvsqQLuvuJ",
    "/ip4/104.131.131.82/udp/4001/quic-v1/p2p/QmaCpDMGvV2BGHeYERUEnRQAwe3N8SzbUtfsmvsqQLuvuJ",
];

/// `[net] profile`: which network the node is set up for.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Profile {
    /// A private network (today's defaults): no NAT traversal protocol
    /// runs, the DHT serves on loopback and private addresses.
    #[default]
    Local,
    /// The Internet: AutoNAT, relay client and service, hole punching.
    Public,
}

impl std::str::FromStr for Profile {
    type Err = String;

    /// "local" or "public", as in `config.toml`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "local" => Ok(Profile::Local),
            "public" => Ok(Profile::Public),
            _ => Err(format!(
                "unknown profile {s:?}: expected \"local\" or \"public\""
            )),
        }
    }
}

/// `[net]`: where the daemon listens and whom it knows.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NetSettings {
    /// "local" (the default: a private network, no NAT traversal) or
    /// "public" (AutoNAT, relay client and service, hole punching on).
    /// The keys below that say "default: the profile's" override it one
    /// at a time.
    pub profile: Profile,
    /// Multiaddrs to listen on. Loopback by default: opt in to 0.0.0.0
    /// (`cairn init --profile public` writes all interfaces, port 4001).
    pub listen: Vec<String>,
    /// Multiaddrs (with /p2p/ID) to connect to at start. None by default.
    pub bootstrap: Vec<String>,
    /// Kademlia protocol name (another name makes a private DHT).
    pub kad_protocol: String,
    /// DHT mode: "server", "client", or "auto" (see [`DhtMode`]).
    pub dht_mode: DhtMode,
    /// Discover peers on the local network with mDNS (off unless set).
    pub mdns: bool,
    /// Most open connections in all.
    pub max_connections: u32,
    /// Most open connections to one peer.
    pub max_connections_per_peer: u32,
    /// Most connections being set up at once (each direction).
    pub max_pending_connections: u32,
    /// Refuse new connections while the process uses more memory than
    /// this (bytes; 0 = no limit).
    pub max_memory_bytes: u64,
    /// How long an idle connection stays open.
    #[serde(with = "humantime_serde")]
    pub idle_timeout: Duration,
    /// The connection manager (Kubo's `Swarm.ConnMgr.LowWater`): a trim
    /// closes idle peers' connections until this many are left.
    pub conn_low_water: usize,
    /// A trim starts when more connections than this are open (Kubo's
    /// `HighWater`, 96); 0 turns the connection manager off. Peers in use
    /// (Bitswap or replication in the last 30 s, pub/sub mesh peers,
    /// relays and the peers our relay service serves) are never closed.
    pub conn_high_water: usize,
    /// A peer connected for less than this is never closed by a trim
    /// (Kubo's `GracePeriod`, 20 s).
    #[serde(with = "humantime_serde")]
    pub conn_grace_period: Duration,
    /// A fetch fails when no wanted block arrived for this long.
    #[serde(with = "humantime_serde")]
    pub fetch_timeout: Duration,
    /// Most fetches of content that is not local that requests (gateway,
    /// `cat`) run at once; more wait for a turn. Each holds a thread while
    /// it reads, so this keeps local reads from waiting behind them.
    pub max_remote_fetches: usize,
    /// How often the DHT routing table is refreshed by a walk (a lookup of
    /// our own key and one per bucket). Kubo's period, 10 min, by default;
    /// "0s" turns periodic refreshes off.
    #[serde(with = "humantime_serde")]
    pub dht_refresh: Duration,
    /// How often each connection is pinged (`/ipfs/ping/1.0.0`) to measure
    /// its round trip; rust-libp2p's 15 s by default. "0s": never on a
    /// timer (pings from peers are still answered). Kubo does not ping on
    /// a timer; each ping costs a little CPU per open connection.
    #[serde(with = "humantime_serde")]
    pub ping_interval: Duration,
    /// Most keys this node announces itself as provider of (each costs
    /// about 100 bytes of memory); announcing more fails with a clear error.
    pub dht_max_provided_keys: usize,
    /// Bytes of provider records kept for other peers (as a DHT server);
    /// when full, new records from others are ignored until old ones
    /// expire (48 h after their last refresh).
    pub dht_store_bytes: u64,
    /// AutoNAT v1 and v2, client and server: ask peers to dial us back to
    /// learn whether we are reachable, and dial back those that ask.
    /// Default: the profile's (local off, public on).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub autonat: Option<bool>,
    /// Circuit relay v2 client: reach and be reached through relays.
    /// Default: the profile's (local off, public on).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub relay_client: Option<bool>,
    /// DCUtR hole punching: turn relayed connections into direct ones.
    /// Default: the profile's (local off, public on).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hole_punching: Option<bool>,
    /// Serve as a circuit relay v2 for other peers, within
    /// `[net.relay_limits]`. Default: the profile's (local off, public on).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub relay_service: Option<bool>,
    /// Ask the router to forward our ports (UPnP IGD; no NAT-PMP/PCP).
    /// Off in both profiles.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub upnp: Option<bool>,
    /// Relays to reserve a slot on (multiaddrs ending in `/p2p/<ID>`), as
    /// Kubo's `Swarm.RelayClient.StaticRelays`: with the relay client on,
    /// the node keeps reservations on them whether or not it is reachable,
    /// and takes no other relay while one of them serves. None by default.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub static_relays: Vec<String>,
    /// The relay service's limits (Kubo's `Swarm.RelayService` defaults).
    pub relay_limits: RelayLimitSettings,
    /// AutoNAT also trusts and serves peers at private and shared
    /// addresses (test networks in namespaces; never on the Internet).
    /// Not written to new configs.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub autonat_private_addrs: bool,
    /// A transport beside TCP and QUIC, set by programs embedding nodes
    /// (netsim's simulated network); never read from `config.toml`.
    #[serde(skip)]
    pub extra_transport: Option<crate::net::swarm::ExtraTransport>,
}

impl Default for NetSettings {
    fn default() -> Self {
        NetSettings {
            profile: Profile::Local,
            listen: vec![
                "/ip4/127.0.0.1/tcp/4001".into(),
                "/ip4/127.0.0.1/udp/4001/quic-v1".into(),
            ],
            bootstrap: Vec::new(),
            kad_protocol: crate::net::swarm::DEFAULT_KAD_PROTOCOL.into(),
            dht_mode: DhtMode::Auto,
            mdns: false,
            max_connections: 1024,
            max_connections_per_peer: 4,
            max_pending_connections: 128,
            max_memory_bytes: 0,
            idle_timeout: Duration::from_secs(120),
            conn_low_water: ConnManagerConfig::default().low_water,
            conn_high_water: ConnManagerConfig::default().high_water,
            conn_grace_period: ConnManagerConfig::default().grace,
            fetch_timeout: Duration::from_secs(60),
            max_remote_fetches: 64,
            dht_refresh: Duration::from_secs(600),
            ping_interval: Duration::from_secs(15),
            dht_max_provided_keys: crate::net::records::RecordLimits::default().max_local_keys,
            dht_store_bytes: crate::net::records::RecordLimits::default().max_remote_bytes as u64,
            autonat: None,
            relay_client: None,
            hole_punching: None,
            relay_service: None,
            upnp: None,
            static_relays: Vec::new(),
            relay_limits: RelayLimitSettings::default(),
            autonat_private_addrs: false,
            extra_transport: None,
        }
    }
}

/// Whether the node answers DHT queries (`[net] dht_mode`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DhtMode {
    /// Server while reachable. Without AutoNAT (the local profile): when
    /// listening on loopback or private addresses (a local network, as
    /// Kubo's LAN DHT), else once a peer has connected to us at a public
    /// address (which shows it is reachable from outside). With AutoNAT
    /// (the public profile): once a peer dialled us back at one of our
    /// addresses, and client again when no address is confirmed any more;
    /// a node behind NAT stays a client, out of others' routing tables.
    #[default]
    Auto,
    /// Always answer queries and store records for others.
    Server,
    /// Only ask.
    Client,
}

impl NetSettings {
    /// Parsed settings for the network layer (pub/sub off: the node sets
    /// it from `[pubsub]`).
    pub fn to_net_config(&self) -> Result<NetConfig, ConfigError> {
        let listen = self
            .listen
            .iter()
            .map(|a| {
                a.parse().map_err(|e| ConfigError::ListenAddr {
                    addr: a.clone(),
                    source: e,
                })
            })
            .collect::<Result<Vec<_>, ConfigError>>()?;
        if self.conn_high_water > 0 && self.conn_low_water > self.conn_high_water {
            return Err(ConfigError::ConnWaterMarks {
                low: self.conn_low_water,
                high: self.conn_high_water,
            });
        }
        Ok(NetConfig {
            listen,
            kad_protocol: self.kad_protocol.clone(),
            dht_server: match self.dht_mode {
                DhtMode::Auto => None,
                DhtMode::Server => Some(true),
                DhtMode::Client => Some(false),
            },
            mdns: self.mdns,
            idle_timeout: self.idle_timeout,
            dht_refresh: (!self.dht_refresh.is_zero()).then_some(self.dht_refresh),
            ping_interval: (!self.ping_interval.is_zero()).then_some(self.ping_interval),
            limits: ConnectionLimits {
                max_connections: self.max_connections,
                max_per_peer: self.max_connections_per_peer,
                max_pending: self.max_pending_connections,
                max_memory_bytes: self.max_memory_bytes,
            },
            conn_manager: ConnManagerConfig {
                low_water: self.conn_low_water,
                high_water: self.conn_high_water,
                grace: self.conn_grace_period,
            },
            records: crate::net::records::RecordLimits {
                max_local_keys: self.dht_max_provided_keys,
                max_remote_bytes: usize::try_from(self.dht_store_bytes).unwrap_or(usize::MAX),
                ..crate::net::records::RecordLimits::default()
            },
            extra_transport: self.extra_transport.clone(),
            value_validator: None,
            pubsub: None,
            traversal: Traversal {
                static_relays: self.parsed_static_relays()?,
                ..self.traversal()
            },
        })
    }

    /// The settings `cairn init --profile public` writes: the public
    /// profile, all interfaces on port 4001 (TCP and QUIC, IPv4 and IPv6)
    /// and the public IPFS bootstrap peers.
    pub fn public() -> NetSettings {
        NetSettings {
            profile: Profile::Public,
            listen: vec![
                "/ip4/0.0.0.0/tcp/4001".into(),
                "/ip4/0.0.0.0/udp/4001/quic-v1".into(),
                "/ip6/::/tcp/4001".into(),
                "/ip6/::/udp/4001/quic-v1".into(),
            ],
            bootstrap: PUBLIC_BOOTSTRAP.iter().map(|a| a.to_string()).collect(),
            ..NetSettings::default()
        }
    }

    /// `static_relays`, parsed; each must name its relay (`/p2p/<ID>`).
    pub fn parsed_static_relays(&self) -> Result<Vec<libp2p::Multiaddr>, ConfigError> {
        use libp2p::multiaddr::Protocol;
        self.static_relays
            .iter()
            .map(|a| {
                let bad = |why: String| ConfigError::RelayAddr {
                    addr: a.clone(),
                    why,
                };
                let addr: libp2p::Multiaddr = a.parse().map_err(|e| bad(format!("{e}")))?;
                if !matches!(addr.iter().last(), Some(Protocol::P2p(_))) {
                    return Err(bad("must end in /p2p/<relay's peer ID>".into()));
                }
                if addr.iter().any(|p| p == Protocol::P2pCircuit) {
                    return Err(bad("a relay's own address, not a /p2p-circuit one".into()));
                }
                Ok(addr)
            })
            .collect()
    }

    /// Which NAT traversal protocols run: the profile's choice, with each
    /// key that is set overriding it (`static_relays` left empty: see
    /// [`to_net_config`](Self::to_net_config)).
    pub fn traversal(&self) -> Traversal {
        let public = self.profile == Profile::Public;
        let pick = |key: Option<bool>, profile_default: bool| key.unwrap_or(profile_default);
        Traversal {
            autonat: pick(self.autonat, public),
            autonat_private_addrs: self.autonat_private_addrs,
            relay_client: pick(self.relay_client, public),
            relay_service: pick(self.relay_service, public).then(|| self.relay_limits.limits()),
            hole_punching: pick(self.hole_punching, public),
            upnp: pick(self.upnp, false),
            static_relays: Vec::new(),
        }
    }
}

/// `[net.relay_limits]`: what the relay service grants (see
/// [`RelayLimits`]; the defaults are Kubo's).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RelayLimitSettings {
    /// Most reservations held at once (Kubo: 128).
    pub max_reservations: usize,
    /// Most reservations one peer holds (Kubo before 0.32: 4).
    pub max_reservations_per_peer: usize,
    /// How long a reservation lasts before it must be renewed (Kubo: 1h).
    #[serde(with = "humantime_serde")]
    pub reservation_ttl: Duration,
    /// Most circuits relayed at once (Kubo: 16).
    pub max_circuits: usize,
    /// Most circuits one peer has relayed at once (4).
    pub max_circuits_per_peer: usize,
    /// A circuit closes after this long (Kubo: 2m).
    #[serde(with = "humantime_serde")]
    pub circuit_duration: Duration,
    /// A circuit closes after carrying this much, both directions
    /// together (Kubo counts 128 KiB in each direction); "0": no limit.
    pub circuit_bytes: ByteSize,
    /// Rate-limit reservations and circuits per peer and per IP address
    /// (about one every 2 minutes, up to 30 an hour).
    pub rate_limits: bool,
}

impl Default for RelayLimitSettings {
    fn default() -> Self {
        let d = RelayLimits::default();
        RelayLimitSettings {
            max_reservations: d.max_reservations,
            max_reservations_per_peer: d.max_reservations_per_peer,
            reservation_ttl: d.reservation_ttl,
            max_circuits: d.max_circuits,
            max_circuits_per_peer: d.max_circuits_per_peer,
            circuit_duration: d.circuit_duration,
            circuit_bytes: ByteSize(d.circuit_bytes),
            rate_limits: d.rate_limits,
        }
    }
}

impl RelayLimitSettings {
    /// The network layer's relay limits.
    pub fn limits(&self) -> RelayLimits {
        RelayLimits {
            max_reservations: self.max_reservations,
            max_reservations_per_peer: self.max_reservations_per_peer,
            reservation_ttl: self.reservation_ttl,
            max_circuits: self.max_circuits,
            max_circuits_per_peer: self.max_circuits_per_peer,
            circuit_duration: self.circuit_duration,
            circuit_bytes: self.circuit_bytes.bytes(),
            rate_limits: self.rate_limits,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::node::Config;

    #[test]
    fn the_local_profile_runs_no_traversal_protocol_and_writes_no_new_switch() {
        let c = Config::default();
        assert_eq!(c.net.profile, Profile::Local);
        assert_eq!(
            c.net.to_net_config().unwrap().traversal,
            Traversal::default()
        );
        let explicit: Config = toml::from_str("[net]\nprofile = \"local\"\n").unwrap();
        assert_eq!(explicit, c);
        // `config show` and a new config.toml name the profile and the
        // relay limits, and none of the per-protocol switches.
        let net = c.redacted_json().unwrap()["net"].clone();
        assert_eq!(net["profile"], "local");
        for unset in [
            "autonat",
            "relay_client",
            "hole_punching",
            "relay_service",
            "upnp",
        ] {
            assert!(net.get(unset).is_none(), "{unset}: {net}");
        }
        assert!(net.get("autonat_private_addrs").is_none(), "{net}");
        let written = toml::to_string_pretty(&c).unwrap();
        assert!(written.contains("profile = \"local\""), "{written}");
        assert!(!written.contains("autonat"), "{written}");
        assert!(
            !written.contains("/dnsaddr") && !written.contains("104.131"),
            "{written}"
        );
    }

    #[test]
    fn the_public_profile_turns_traversal_on_and_keys_override_it() {
        let c: Config = toml::from_str("[net]\nprofile = \"public\"\n").unwrap();
        let t = c.net.traversal();
        assert!(t.autonat && t.relay_client && t.hole_punching);
        assert_eq!(t.relay_service, Some(RelayLimits::default()));
        assert!(!t.upnp && !t.autonat_private_addrs);
        // The profile sets only the traversal switches: listen and
        // bootstrap stay as written (still loopback and empty here).
        assert_eq!(c.net.listen, NetSettings::default().listen);
        assert!(c.net.bootstrap.is_empty());
        let c: Config = toml::from_str(
            "[net]\nprofile = \"public\"\nrelay_service = false\nupnp = true\n\
             autonat_private_addrs = true\n",
        )
        .unwrap();
        let t = c.net.traversal();
        assert!(t.autonat && t.upnp && t.autonat_private_addrs);
        assert_eq!(t.relay_service, None);
        let c: Config =
            toml::from_str("[net]\nhole_punching = true\nrelay_client = true\n").unwrap();
        let t = c.net.traversal();
        assert!(t.hole_punching && t.relay_client && !t.autonat);
    }

    #[test]
    fn static_relays_are_read_and_must_name_their_relay() {
        let id = "12D3KooWDpJ7As7BWAwRMfu1VU2WCqNjvq387JEYKDBj4kx6nXTN";
        let c: Config = toml::from_str(&format!(
            "[net]\nprofile = \"public\"\nstatic_relays = [\"/ip4/10.0.0.1/tcp/4001/p2p/{id}\"]\n"
        ))
        .unwrap();
        let t = c.net.to_net_config().unwrap().traversal;
        assert_eq!(
            t.static_relays,
            vec![format!("/ip4/10.0.0.1/tcp/4001/p2p/{id}").parse().unwrap()]
        );
        assert!(t.relay_client);
        for bad in [
            "not an address".to_string(),
            "/ip4/10.0.0.1/tcp/4001".to_string(),
            format!("/ip4/10.0.0.1/tcp/4001/p2p/{id}/p2p-circuit/p2p/{id}"),
        ] {
            let net = NetSettings {
                static_relays: vec![bad.clone()],
                ..NetSettings::default()
            };
            let err = net.to_net_config().unwrap_err().to_string();
            assert!(err.starts_with("[net] static_relays"), "{bad}: {err}");
        }
        // Not written to new configs while empty.
        let written = toml::to_string_pretty(&Config::default()).unwrap();
        assert!(!written.contains("static_relays"), "{written}");
    }

    #[test]
    fn relay_limits_default_to_kubos_and_are_read() {
        assert_eq!(
            RelayLimitSettings::default().limits(),
            RelayLimits::default()
        );
        let c: Config = toml::from_str(
            "[net]\nrelay_service = true\n[net.relay_limits]\nmax_reservations = 2\n\
             circuit_duration = \"1s\"\ncircuit_bytes = \"0\"\nrate_limits = false\n",
        )
        .unwrap();
        let limits = c.net.traversal().relay_service.unwrap();
        assert_eq!(limits.max_reservations, 2);
        assert_eq!(limits.circuit_duration, Duration::from_secs(1));
        assert_eq!(limits.circuit_bytes, 0);
        assert!(!limits.rate_limits);
        assert_eq!(limits.max_circuits, 16);
        for bad in [
            "[net]\nprofile = \"lan\"\n",
            "[net]\nautonat = \"yes\"\n",
            "[net.relay_limits]\ncircuit_bytes = \"lots\"\n",
            "[net.relay_limits]\nmax_relays = 1\n",
        ] {
            assert!(toml::from_str::<Config>(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_readme_states_the_relay_limits_and_the_public_profile() {
        let readme = include_str!("../../../README.md");
        let block = |start: &str| {
            readme
                .split(start)
                .nth(1)
                .and_then(|rest| rest.split("```").next())
                .unwrap_or_else(|| panic!("README shows {start}"))
                .to_string()
        };
        let limits: Config = toml::from_str(&format!(
            "[net.relay_limits]{}",
            block("```toml\n[net.relay_limits]")
        ))
        .expect("README's [net.relay_limits] loads");
        assert_eq!(limits.net.relay_limits, RelayLimitSettings::default());
        let rest = block("```toml\n[net]\nprofile = \"public\"");
        let public: Config = toml::from_str(&format!("[net]\nprofile = \"public\"{rest}"))
            .expect("README's public [net] loads");
        assert_eq!(public.net, NetSettings::public());
    }

    #[test]
    fn the_public_settings_listen_everywhere_and_list_the_public_bootstrap_peers() {
        let n = NetSettings::public();
        assert_eq!(n.profile, Profile::Public);
        let config = n.to_net_config().unwrap();
        assert_eq!(config.listen.len(), 4);
        assert!(n.listen.iter().all(|a| a.contains("/4001")));
        assert_eq!(n.bootstrap, PUBLIC_BOOTSTRAP.to_vec());
        for addr in PUBLIC_BOOTSTRAP {
            let parsed: libp2p::Multiaddr = addr.parse().unwrap();
            assert!(
                matches!(
                    parsed.iter().last(),
                    Some(libp2p::multiaddr::Protocol::P2p(_))
                ),
                "{addr}"
            );
        }
    }
}

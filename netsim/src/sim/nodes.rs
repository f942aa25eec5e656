//! The simulated nodes: their keys and cairn config, the transport each
//! runs over the fabric, and starting and stopping them (crashes, restarts,
//! departures).

use super::{Sim, SimError};
use crate::fabric::{node_addr, Fabric, LatencyModel, NoLatency};
use crate::lock;
use crate::rng::Rng;
use crate::scenario::{ByteSize, Scenario};
use cairn::block::Cid;
use cairn::net::swarm::ExtraTransport;
use cairn::node::config::DhtMode;
use cairn::node::online::OnlineNode;
use cairn::node::{Config, Node};
use cairn::store::{FaultyStore, MemoryStore, PinKind, Store};
use libp2p::core::muxing::StreamMuxerBox;
use libp2p::core::transport::Boxed;
use libp2p::core::Transport;
use libp2p::PeerId;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// Link delays from the scenario: a log-normal draw per pair of nodes.
pub(super) struct PairLatency {
    pub(super) seed: u64,
    pub(super) median: Duration,
    pub(super) sigma: f64,
    pub(super) min: Duration,
    pub(super) max: Duration,
    pub(super) speed: f64,
}

impl LatencyModel for PairLatency {
    fn one_way(&self, a: usize, b: usize) -> Duration {
        let (lo, hi) = (a.min(b) as u64, a.max(b) as u64);
        let mut r = Rng::derive(self.seed, "latency", lo << 32 | hi);
        let d = r
            .lognormal(self.median, self.sigma)
            .clamp(self.min, self.max);
        Duration::from_secs_f64(d.as_secs_f64() / self.speed)
    }
}

/// One place in the network: a node that may be up, down or gone.
pub(super) struct Slot {
    pub(super) node: Option<Arc<Node>>,
    /// The node's store, through which its disk faults are injected.
    pub(super) disk: Arc<FaultyStore>,
    pub(super) online: Option<Arc<OnlineNode>>,
    pub(super) peer: PeerId,
    pub(super) departed: bool,
}

impl Slot {
    /// Whether this slot's store holds `cid` pinned (recursively: complete).
    pub(super) fn holds(&self, cid: &Cid) -> bool {
        self.node
            .as_ref()
            .is_some_and(|n| matches!(n.store().pin_of(cid), Ok(Some(PinKind::Recursive))))
    }
}

/// The 32-byte key seed of slot `n`.
fn key_seed(seed: u64, n: usize) -> [u8; 32] {
    let mut r = Rng::derive(seed, "key", n as u64);
    let mut k = [0u8; 32];
    r.fill(&mut k);
    k
}

/// Node `slot`'s transport on `fabric`: the fabric's connections upgraded
/// with Noise (or plaintext identities) and Yamux, as TCP is.
fn upgraded(
    fabric: &Fabric,
    slot: usize,
    key: &libp2p::identity::Keypair,
    plaintext: bool,
) -> Boxed<(PeerId, StreamMuxerBox)> {
    let base = fabric
        .transport(slot)
        .upgrade(libp2p::core::upgrade::Version::V1Lazy);
    if plaintext {
        return base
            .authenticate(libp2p::plaintext::Config::new(key))
            .multiplex(cairn::net::swarm::yamux_config())
            .map(|(peer, muxer), _| (peer, StreamMuxerBox::new(muxer)))
            .boxed();
    }
    let noise = match libp2p::noise::Config::new(key) {
        Ok(n) => n,
        Err(e) => {
            tracing::error!("noise keys: {e}");
            return libp2p::core::transport::dummy::DummyTransport::new().boxed();
        }
    };
    base.authenticate(noise)
        .multiplex(cairn::net::swarm::yamux_config())
        .map(|(peer, muxer), _| (peer, StreamMuxerBox::new(muxer)))
        .boxed()
}

impl Sim {
    /// The fabric with the scenario's latency and uplink cap.
    pub(super) fn fabric(sc: &Scenario, seed: u64) -> Fabric {
        let lat = &sc.network.latency;
        let latency: Arc<dyn LatencyModel> = if lat.median.is_zero() {
            Arc::new(NoLatency)
        } else {
            Arc::new(PairLatency {
                seed,
                median: lat.median,
                sigma: lat.sigma,
                min: lat.min,
                max: if lat.max.is_zero() {
                    Duration::from_secs(3600)
                } else {
                    lat.max
                },
                speed: sc.speed,
            })
        };
        let uplink = sc.network.uplink.unwrap_or_default().0;
        // Bytes per wall-clock second: a simulated second is 1/speed wall.
        let uplink_wall = (uplink as f64 * sc.speed) as u64;
        Fabric::new(latency, uplink_wall)
    }

    pub(super) fn slots(&self) -> std::sync::MutexGuard<'_, Vec<Slot>> {
        lock(&self.slots)
    }

    /// The cairn config of slot `slot`: the defaults a user gets, with the
    /// scenario's settings (durations and rates on the wall clock) and,
    /// with NATs, the slot's traversal settings.
    fn node_config(&self, slot: usize) -> Config {
        let n = &self.sc.node;
        let wall = |d: Duration| self.sc.wall(d);
        // Timers that must not reach zero at any speed: whole milliseconds,
        // at least one.
        let wall_ms = |d: Duration| Duration::from_millis(wall(d).as_millis().max(1) as u64);
        let mut config = Config::default();
        config.net.listen = Vec::new();
        config.net.dht_mode = DhtMode::Server;
        config.net.idle_timeout = wall(n.idle_timeout);
        config.net.dht_refresh = wall(n.dht_refresh);
        if let Some(ping) = n.ping_interval {
            config.net.ping_interval = wall(ping);
        }
        config.net.fetch_timeout = wall_ms(n.fetch_timeout);
        config.provide.strategy = n.provide_strategy;
        config.provide.interval = wall(n.reprovide_interval);
        let replication = &mut config.replication;
        replication.factor = n.replication_factor;
        replication.max = n.replication_max.max(n.replication_factor);
        replication.repair_interval = wall_ms(n.repair_interval);
        replication.grace = wall_ms(n.grace);
        replication.repair_bandwidth =
            ByteSize((n.repair_bandwidth.0 as f64 * self.sc.speed) as u64);
        // Unless asked for, no scrub pass (a re-hash of every stored block)
        // within a run.
        replication.scrub_interval = if n.scrub_interval.is_zero() {
            Duration::from_secs(1000 * 3600)
        } else {
            wall_ms(n.scrub_interval)
        };
        self.nat_config(slot, &mut config);
        config
    }

    /// Starts the node of `slot` (creating it on first start) and dials its
    /// bootstrap links. With `wait` it returns once those dials and the
    /// walk's start are done (the initial start paces itself by that);
    /// otherwise the dialing runs on its own, so a restart never holds up
    /// the scenario's clock.
    pub(super) async fn start_slot(
        self: &Arc<Self>,
        slot: usize,
        wait: bool,
    ) -> Result<(), SimError> {
        let node = {
            let mut slots = self.slots();
            while slots.len() <= slot {
                let n = slots.len();
                let key = key_seed(self.seed, n);
                let disk = Arc::new(FaultyStore::new(Arc::new(MemoryStore::new())));
                let store: Arc<dyn Store> = disk.clone();
                let node = Node::with_store(store, self.node_config(n), key);
                let peer = node
                    .peer_id()
                    .map_err(|source| SimError::NodeStart { slot: n, source })?;
                slots.push(Slot {
                    node: Some(Arc::new(node)),
                    disk,
                    online: None,
                    peer,
                    departed: false,
                });
            }
            match &slots[slot].node {
                Some(n) => Arc::clone(n),
                None => return Ok(()),
            }
        };
        self.fabric.set_up(slot, true);
        let mut settings = node.config().net.clone();
        settings.listen = vec![node_addr(slot).to_string()];
        let fabric = self.fabric.clone();
        let plaintext = self.sc.network.plaintext;
        settings.extra_transport = Some(ExtraTransport(Arc::new(move |key| {
            upgraded(&fabric, slot, key, plaintext)
        })));
        let online = OnlineNode::start(node, &settings)
            .await
            .map_err(|source| SimError::NodeStart { slot, source })?;
        let online = Arc::new(online);
        self.slots()[slot].online = Some(Arc::clone(&online));
        // Bootstrap links: nodes up (reachable ones: a node behind NAT
        // cannot be dialed), chosen from the seed.
        let targets = {
            let slots = self.slots();
            let up: Vec<usize> = (0..slots.len())
                .filter(|&i| i != slot && slots[i].online.is_some())
                .filter(|&i| self.nat.kind(i) == crate::fabric::Nat::Open)
                .collect();
            let mut r = Rng::derive(self.seed, "bootstrap", slot as u64);
            r.sample(up.len(), self.sc.topology.bootstrap_links)
                .into_iter()
                .map(|i| node_addr(up[i]).with(libp2p::multiaddr::Protocol::P2p(slots[up[i]].peer)))
                .collect::<Vec<_>>()
        };
        if !targets.is_empty() {
            // A dial that cannot finish must not hold up the start.
            let dial = async move {
                let _ =
                    tokio::time::timeout(Duration::from_secs(30), online.bootstrap(&targets)).await;
            };
            if wait {
                dial.await;
            } else {
                tokio::spawn(dial);
            }
        }
        Ok(())
    }

    /// Stops the node of `slot` as a crash would; `forever` also drops its
    /// store.
    pub(super) fn stop_slot(&self, slot: usize, forever: bool) {
        let online = {
            let mut slots = self.slots();
            let Some(s) = slots.get_mut(slot) else { return };
            if forever {
                s.departed = true;
                s.node = None;
            }
            s.online.take()
        };
        self.fabric.set_up(slot, false);
        if let Some(o) = online {
            use std::sync::atomic::Ordering::Relaxed;
            let stats = o.replicator().stats();
            let mut t = lock(&self.stopped_repairs);
            t.0 += stats.repairs.load(Relaxed);
            t.1 += stats.repair_bytes.load(Relaxed);
            o.shutdown();
        }
    }

    /// Whether `slot` has a running node.
    pub(super) fn is_up(&self, slot: usize) -> bool {
        self.slots().get(slot).is_some_and(|s| s.online.is_some())
    }

    /// The running nodes and their slots.
    pub(super) fn up_slots(&self) -> Vec<(usize, Arc<OnlineNode>)> {
        self.slots()
            .iter()
            .enumerate()
            .filter_map(|(i, s)| s.online.as_ref().map(|o| (i, Arc::clone(o))))
            .collect()
    }

    /// With `quiet_rate` set: waits (at most `limit` of wall clock) until
    /// connections are opened at less than that rate, measured over 2 s.
    pub(super) async fn wait_quiet(&self, limit: Duration) {
        let rate = self.sc.topology.quiet_rate;
        if rate == 0 {
            return;
        }
        let give_up = Instant::now() + limit;
        let mut said = Instant::now();
        loop {
            let before = self.fabric.opened();
            tokio::time::sleep(Duration::from_secs(2)).await;
            let now = (self.fabric.opened() - before) / 2;
            if now < rate {
                return;
            }
            if Instant::now() >= give_up {
                self.say(format!(
                    "still {now} connections opened per second after {} s; going on",
                    limit.as_secs()
                ));
                return;
            }
            if said.elapsed() >= Duration::from_secs(10) {
                said = Instant::now();
                self.say(format!(
                    "waiting for quiet: {now} connections opened per second (limit {rate}), {:.0} MiB resident",
                    crate::report::rss_bytes() as f64 / (1 << 20) as f64
                ));
            }
        }
    }
}

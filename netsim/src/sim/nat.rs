//! NATs in a run: which slots sit behind which NAT and which run a relay
//! (drawn from the seed), the cairn settings that follow, and what the
//! nodes' NAT traversal did by the end (their reachability, DHT mode,
//! relay addresses, and DCUtR's and the relays' counters).

use super::Sim;
use crate::fabric::Nat;
use crate::report::NatReport;
use crate::rng::Rng;
use crate::scenario::Scenario;
use cairn::node::config::DhtMode;
use cairn::node::Config;

/// Each planned slot's NAT and whether it serves as a relay.
pub(super) struct NatPlan {
    kinds: Vec<Nat>,
    relay: Vec<bool>,
}

impl NatPlan {
    /// The plan of `sc` with `seed`: `share` of the nodes behind a NAT
    /// (never the first), `symmetric` of those symmetric, `relays` of
    /// the reachable ones relays. Slots added later (churn's new nodes)
    /// are reachable and relay nothing.
    pub(super) fn new(sc: &Scenario, seed: u64) -> NatPlan {
        let n = sc.nodes;
        let mut kinds = vec![Nat::Open; n];
        let mut relay = vec![false; n];
        if !sc.nat.on() || n < 2 {
            return NatPlan { kinds, relay };
        }
        let natted = ((n as f64 * sc.nat.share).round() as usize).min(n - 1);
        let symmetric = (natted as f64 * sc.nat.symmetric).round() as usize;
        let mut r = Rng::derive(seed, "nat", 0);
        for (i, pick) in r.sample(n - 1, natted).into_iter().enumerate() {
            kinds[pick + 1] = if i < symmetric {
                Nat::Symmetric
            } else {
                Nat::Cone
            };
        }
        let open: Vec<usize> = (0..n).filter(|&i| kinds[i] == Nat::Open).collect();
        for i in r.sample(open.len(), sc.nat.relays.min(open.len())) {
            relay[open[i]] = true;
        }
        NatPlan { kinds, relay }
    }

    /// Slot `slot`'s NAT.
    pub(super) fn kind(&self, slot: usize) -> Nat {
        self.kinds.get(slot).copied().unwrap_or_default()
    }

    /// Whether slot `slot` runs the relay service.
    pub(super) fn relays(&self, slot: usize) -> bool {
        self.relay.get(slot).copied().unwrap_or(false)
    }
}

impl Sim {
    /// With NATs in the scenario: the traversal settings of slot `slot`
    /// (the public profile's protocols; AutoNAT trusts the fabric's
    /// addresses, which are not IP ones).
    pub(super) fn nat_config(&self, slot: usize, config: &mut Config) {
        if !self.sc.nat.on() {
            return;
        }
        let net = &mut config.net;
        net.autonat = Some(true);
        net.autonat_private_addrs = true;
        net.relay_client = Some(true);
        net.hole_punching = Some(true);
        net.relay_service = Some(self.nat.relays(slot));
        let limits = &mut net.relay_limits;
        limits.reservation_ttl = self.sc.wall(limits.reservation_ttl);
        limits.circuit_duration = self.sc.wall(limits.circuit_duration);
        if self.nat.kind(slot) != Nat::Open {
            // Behind a NAT: AutoNAT decides, as on a real network.
            net.dht_mode = DhtMode::Auto;
        }
    }

    /// What the NAT traversal of the nodes up did by now.
    pub(super) fn nat_report(&self) -> Option<NatReport> {
        if !self.sc.nat.on() {
            return None;
        }
        use std::sync::atomic::Ordering::Relaxed;
        let stats = &self.fabric.stats;
        let mut r = NatReport {
            punches: stats.punches.load(Relaxed),
            punched: stats.punched.load(Relaxed),
            nat_refused: stats.nat_refused.load(Relaxed),
            ..NatReport::default()
        };
        for (slot, online) in self.up_slots() {
            let reach = online.net().swarm.reachability();
            let metrics = online.metrics_text();
            r.dcutr_succeeded += metric(&metrics, "libp2p_dcutr_events_total", "succeeded");
            r.dcutr_failed += metric(&metrics, "libp2p_dcutr_events_total", "failed");
            r.circuits_accepted +=
                metric(&metrics, "libp2p_relay_events_total", "circuitreqaccepted");
            r.circuits_denied += metric(&metrics, "libp2p_relay_events_total", "circuitreqdenied");
            match self.nat.kind(slot) {
                Nat::Open => {
                    r.reachable += 1;
                    r.reachable_dht_servers += reach.dht_server as usize;
                    r.relays += self.nat.relays(slot) as usize;
                }
                kind => {
                    if kind == Nat::Symmetric {
                        r.symmetric += 1;
                    } else {
                        r.cone += 1;
                    }
                    r.natted_dht_clients += !reach.dht_server as usize;
                    r.natted_private +=
                        (reach.status == cairn::net::swarm::Reachability::Private) as usize;
                    r.natted_with_relay_addrs += !reach.relay_addrs.is_empty() as usize;
                }
            }
        }
        Some(r)
    }
}

/// The sum of the samples of counter `name` whose labels contain `label`
/// (case and `_` ignored), in Prometheus text.
fn metric(text: &str, name: &str, label: &str) -> u64 {
    text.lines()
        .filter(|l| l.starts_with(name))
        .filter(|l| {
            let labels = l
                .split('}')
                .next()
                .unwrap_or("")
                .to_lowercase()
                .replace('_', "");
            labels.contains(label)
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_plan_draws_the_shares_and_keeps_the_first_node_reachable() {
        let sc = Scenario::parse(
            "name = \"x\"\nnodes = 100\nduration = \"1m\"\n[nat]\nshare = 0.6\nsymmetric = 0.25\nrelays = 5\n",
        )
        .unwrap();
        let plan = NatPlan::new(&sc, 7);
        let count = |k| (0..100).filter(|&i| plan.kind(i) == k).count();
        assert_eq!(count(Nat::Cone) + count(Nat::Symmetric), 60);
        assert_eq!(count(Nat::Symmetric), 15);
        assert_eq!(plan.kind(0), Nat::Open);
        let relays: Vec<usize> = (0..100).filter(|&i| plan.relays(i)).collect();
        assert_eq!(relays.len(), 5);
        assert!(relays.iter().all(|&i| plan.kind(i) == Nat::Open));
        assert_eq!(plan.kind(100), Nat::Open, "a later slot");
    }

    #[test]
    fn counters_are_summed_from_the_metrics_text() {
        let text = "# TYPE libp2p_dcutr_events counter\n\
                    libp2p_dcutr_events_total{event=\"DirectConnectionUpgradeSucceeded\"} 3\n\
                    libp2p_dcutr_events_total{event=\"DirectConnectionUpgradeFailed\"} 1\n";
        assert_eq!(metric(text, "libp2p_dcutr_events_total", "succeeded"), 3);
        assert_eq!(metric(text, "libp2p_dcutr_events_total", "failed"), 1);
        assert_eq!(metric(text, "libp2p_relay_events_total", "failed"), 0);
    }
}

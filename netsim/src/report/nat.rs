//! What NAT traversal did in a run with NATs, and the lookups and gets
//! split by whether the nodes involved were reachable.

use super::{quantile, OpSample};
use crate::fabric::Nat;
use serde::Serialize;

/// NAT traversal at the end of a run (nodes up then), and the fabric's
/// counters over the whole run.
#[derive(Clone, Debug, Default, Serialize)]
pub struct NatReport {
    /// Reachable nodes.
    pub reachable: usize,
    /// Of those, DHT servers.
    pub reachable_dht_servers: usize,
    /// Reachable nodes running the relay service.
    pub relays: usize,
    /// Nodes behind a cone NAT.
    pub cone: usize,
    /// Nodes behind a symmetric NAT.
    pub symmetric: usize,
    /// Nodes behind a NAT that are DHT clients.
    pub natted_dht_clients: usize,
    /// Nodes behind a NAT that AutoNAT found private.
    pub natted_private: usize,
    /// Nodes behind a NAT with an address through a relay.
    pub natted_with_relay_addrs: usize,
    /// Hole-punch dials (with the listener role) the fabric saw.
    pub punches: u64,
    /// Of those, punches that met the peer's dial: direct connections.
    pub punched: u64,
    /// Dials a NAT kept out.
    pub nat_refused: u64,
    /// DCUtR's successful upgrades, summed over the nodes up at the end.
    pub dcutr_succeeded: u64,
    /// DCUtR's failed upgrades (after its three attempts), same nodes.
    pub dcutr_failed: u64,
    /// Circuits the relays accepted.
    pub circuits_accepted: u64,
    /// Circuits the relays denied (limits).
    pub circuits_denied: u64,
}

/// Count, success share and p50/p99 of the successful ones, as text.
fn figures<'a>(ops: impl Iterator<Item = &'a OpSample>) -> String {
    let ops: Vec<&OpSample> = ops.collect();
    if ops.is_empty() {
        return "none run".into();
    }
    let ok = ops.iter().filter(|o| o.ok).count();
    let mut ms: Vec<f64> = ops.iter().filter(|o| o.ok).map(|o| o.ms).collect();
    ms.sort_by(f64::total_cmp);
    let q = |p| quantile(&ms, p).map_or("-".into(), |v| format!("{v:.0} ms"));
    format!(
        "{ok}/{} ({:.2} %), p50 {} p99 {}",
        ops.len(),
        ok as f64 * 100.0 / ops.len() as f64,
        q(0.5),
        q(0.99)
    )
}

fn natted(n: Nat) -> bool {
    n != Nat::Open
}

impl NatReport {
    /// The summary's NAT lines.
    pub fn summary(&self, lookups: &[OpSample], gets: &[OpSample]) -> String {
        let mut out = String::new();
        let mut line = |s: String| {
            out.push_str(&s);
            out.push('\n');
        };
        let behind = self.cone + self.symmetric;
        line(format!(
            "NAT: {behind} of {} nodes up behind NAT ({} cone, {} symmetric), {} relays; at the end {}/{behind} of them DHT clients, {} found private by AutoNAT, {} with relay addresses; {}/{} reachable nodes DHT servers",
            behind + self.reachable,
            self.cone,
            self.symmetric,
            self.relays,
            self.natted_dht_clients,
            self.natted_private,
            self.natted_with_relay_addrs,
            self.reachable_dht_servers,
            self.reachable,
        ));
        line(format!(
            "hole punching: {} punch dials, {} met the peer's dial (direct connections); DCUtR (nodes up at the end) {} upgrades, {} failures; relays accepted {} circuits, denied {}; NATs kept out {} dials",
            self.punches,
            self.punched,
            self.dcutr_succeeded,
            self.dcutr_failed,
            self.circuits_accepted,
            self.circuits_denied,
            self.nat_refused,
        ));
        for (who, behind) in [("reachable nodes", false), ("nodes behind NAT", true)] {
            line(format!(
                "lookups from {who}: {}",
                figures(lookups.iter().filter(|o| natted(o.nat) == behind))
            ));
        }
        for (whose, behind) in [("reachable nodes", false), ("nodes behind NAT", true)] {
            for (who, by) in [("reachable nodes", false), ("nodes behind NAT", true)] {
                line(format!(
                    "gets by {who} of files added on {whose}: {}",
                    figures(
                        gets.iter()
                            .filter(|o| natted(o.origin_nat) == behind && natted(o.nat) == by)
                    )
                ));
            }
        }
        for (whose, kind) in [("cone", Nat::Cone), ("symmetric", Nat::Symmetric)] {
            let of: Vec<&OpSample> = gets.iter().filter(|o| o.origin_nat == kind).collect();
            let via = |v: Option<&str>| of.iter().filter(|o| o.ok && o.via == v).count();
            line(format!(
                "gets of files on nodes behind {whose} NAT: {}; connected to the file's node just after: directly {}, through a relay {}, not {}",
                figures(of.iter().copied()),
                via(Some("direct")),
                via(Some("relayed")),
                via(None),
            ));
        }
        out
    }
}

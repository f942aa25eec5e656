//! The end of a run: every added file fetched and checked from a node
//! that does not hold it, the live copies of each replicated file counted,
//! and the hops of each lookup over the routing tables the nodes hold.

use super::nodes::Slot;
use super::operations::fetch_and_check;
use super::{Sim, SimError};
use crate::lock;
use crate::rng::Rng;
use cairn::block::Cid;
use cairn::node::online::OnlineNode;
use libp2p::PeerId;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

/// What the final checks found.
pub(super) struct FinalChecks {
    /// Files fetched with the right bytes.
    pub(super) retrievable: usize,
    /// Files a fetch was tried for.
    pub(super) checked: usize,
    /// Every replicated file has at least its factor of live holders.
    pub(super) restored: bool,
    /// Replicated files with more live holders than `max`.
    pub(super) above_max: usize,
}

impl Sim {
    /// Fetches every added file from an up node that does not hold it and
    /// checks the bytes, then counts each replicated file's live holders.
    /// With a partition, the node is taken from the other side of the
    /// split than the file's holders where possible.
    pub(super) async fn final_checks(self: &Arc<Self>, groups: Option<&[u32]>) -> FinalChecks {
        let (retrievable, checked) = self.check_retrievable(groups).await;
        let (restored, above_max) = self.count_live_copies();
        FinalChecks {
            retrievable,
            checked,
            restored,
            above_max,
        }
    }

    /// An up node not holding `cid` to fetch it from: on the other side of
    /// the partition `groups` than its holders where possible.
    fn fetcher_for(
        &self,
        cid: &Cid,
        groups: Option<&[u32]>,
        r: &mut Rng,
    ) -> Option<Arc<OnlineNode>> {
        let slots = self.slots();
        let side = |i: usize| groups.and_then(|g| g.get(i).copied()).unwrap_or(0);
        let sides: HashSet<u32> = slots
            .iter()
            .enumerate()
            .filter(|(_, s)| s.holds(cid))
            .map(|(i, _)| side(i))
            .collect();
        let c = slots
            .iter()
            .enumerate()
            .filter(|(_, s)| !s.holds(cid))
            .filter_map(|(i, s)| s.online.as_ref().map(|o| (i, Arc::clone(o))))
            .collect::<Vec<_>>();
        let other: Vec<Arc<OnlineNode>> = c
            .iter()
            .filter(|(i, _)| !sides.contains(&side(*i)))
            .map(|(_, o)| Arc::clone(o))
            .collect();
        let candidates = if other.is_empty() {
            c.into_iter().map(|(_, o)| o).collect::<Vec<_>>()
        } else {
            other
        };
        if candidates.is_empty() {
            return None;
        }
        Some(Arc::clone(&candidates[r.below(candidates.len())]))
    }

    /// Fetches and checks every added file, 16 at a time; returns
    /// (retrievable, checked).
    async fn check_retrievable(self: &Arc<Self>, groups: Option<&[u32]>) -> (usize, usize) {
        let files = self.added_files();
        let mut r = Rng::derive(self.seed, "final", 0);
        let mut tasks = Vec::new();
        let limit = Arc::new(tokio::sync::Semaphore::new(16));
        for (_, f) in &files {
            let Some(online) = self.fetcher_for(&f.cid, groups, &mut r) else {
                continue;
            };
            let f = f.clone();
            let limit = Arc::clone(&limit);
            let timeout = self.sc.wall(self.sc.node.fetch_timeout * 2);
            tasks.push(tokio::spawn(async move {
                let _permit = limit.acquire().await;
                let started = std::time::Instant::now();
                let r = tokio::time::timeout(timeout, fetch_and_check(&online, &f))
                    .await
                    .unwrap_or(Err(SimError::TimedOut { cid: f.cid }));
                (r, started.elapsed())
            }));
        }
        let checked = tasks.len();
        let mut ok = 0;
        let mut wall = Vec::new();
        let started = std::time::Instant::now();
        for (n, t) in tasks.into_iter().enumerate() {
            if let Ok((r, took)) = t.await {
                wall.push(took.as_secs_f64());
                match r {
                    Ok(()) => ok += 1,
                    Err(e) => self.say(format!("final check failed: {e}")),
                }
            }
            if (n + 1) % 100 == 0 {
                wall.sort_by(f64::total_cmp);
                self.say(format!(
                    "final checks: {} of {checked} done, {ok} retrievable, {:.0} s wall so far; one fetch p50 {:.2} s max {:.2} s wall",
                    n + 1,
                    started.elapsed().as_secs_f64(),
                    wall[wall.len() / 2],
                    wall[wall.len() - 1]
                ));
            }
        }
        (ok, checked)
    }

    /// Live holders of each replicated file: returns (every file has at
    /// least its factor, files above max), and says the histogram.
    fn count_live_copies(&self) -> (bool, usize) {
        let files = self.added_files();
        let slots = self.slots();
        let max = self
            .sc
            .node
            .replication_max
            .max(self.sc.node.replication_factor) as usize;
        let mut histogram: std::collections::BTreeMap<usize, usize> = Default::default();
        let mut restored = true;
        let mut above_max = 0;
        for (_, f) in files.iter().filter(|(_, f)| f.factor > 0) {
            let live = slots
                .iter()
                .filter(|s| s.online.is_some() && s.holds(&f.cid))
                .count();
            *histogram.entry(live).or_default() += 1;
            restored &= live >= f.factor as usize;
            if live > max.max(f.factor as usize) {
                above_max += 1;
                if std::env::var_os("NETSIM_DEBUG").is_some() {
                    self.debug_holders(&slots, &f.cid);
                }
            }
        }
        drop(slots);
        if !histogram.is_empty() {
            self.say(format!(
                "live copies per replicated file (copies: files): {histogram:?}"
            ));
        }
        (restored, above_max)
    }

    /// NETSIM_DEBUG: what each live holder of `cid` records about it.
    fn debug_holders(&self, slots: &[Slot], cid: &Cid) {
        for (i, s) in slots.iter().enumerate() {
            if let (Some(o), true) = (&s.online, s.holds(cid)) {
                let r = o.replicator().record(cid);
                let o2 = Arc::clone(o);
                let cid = *cid;
                let st = tokio::task::block_in_place(|| {
                    tokio::runtime::Handle::current().block_on(async move {
                        o2.replicator().status(&cid).await.ok().map(|st| {
                            st.holders
                                .iter()
                                .map(|h| h.state.as_str())
                                .collect::<Vec<_>>()
                        })
                    })
                });
                self.say(format!("    status: {st:?}"));
                self.say(format!(
                    "  {} holder {i}: {:?}",
                    cid,
                    r.map(|r| (
                        r.version,
                        r.removed,
                        r.holders.len(),
                        r.holders.contains(&s.peer)
                    ))
                ));
            }
        }
    }

    /// Hops of a greedy walk (one peer at a time, always to the closest
    /// known peer) from each lookup's node to one of the 20 live nodes
    /// closest to the key, over the routing tables the nodes hold at the
    /// end of the run. libp2p does not report the path a query took, so
    /// this is the routing-table view of the same lookups.
    pub(super) async fn hop_counts(&self) -> Vec<u32> {
        let lookups = lock(&self.lookups).clone();
        if lookups.is_empty() {
            return Vec::new();
        }
        let up = self.up_slots();
        let mut tables: HashMap<PeerId, Vec<PeerId>> = HashMap::new();
        let mut slot_peer: HashMap<usize, PeerId> = HashMap::new();
        for (i, o) in &up {
            let peers = o
                .net()
                .swarm
                .routing_table()
                .await
                .unwrap_or_default()
                .into_iter()
                .map(|(p, _)| p)
                .collect();
            tables.insert(o.net().peer_id, peers);
            slot_peer.insert(*i, o.net().peer_id);
        }
        let kad_key = |bytes: &[u8]| -> [u8; 32] {
            use sha2::Digest;
            sha2::Sha256::digest(bytes).into()
        };
        let distance = |a: &[u8; 32], b: &[u8; 32]| -> [u8; 32] {
            let mut d = [0u8; 32];
            for i in 0..32 {
                d[i] = a[i] ^ b[i];
            }
            d
        };
        let peer_keys: HashMap<PeerId, [u8; 32]> = tables
            .keys()
            .map(|p| (*p, kad_key(&p.to_bytes())))
            .collect();
        let mut hops = Vec::new();
        for l in lookups.iter().filter(|l| l.ok) {
            let Ok(cid) = l.key.parse::<Cid>() else {
                continue;
            };
            let Some(start) = slot_peer.get(&l.node) else {
                continue;
            };
            let target = kad_key(&cid.hash().to_bytes());
            let mut by_distance: Vec<(&PeerId, [u8; 32])> = peer_keys
                .iter()
                .map(|(p, k)| (p, distance(k, &target)))
                .collect();
            by_distance.sort_by_key(|a| a.1);
            let closest: HashSet<PeerId> = by_distance.iter().take(20).map(|(p, _)| **p).collect();
            let mut current = *start;
            let mut count = 0u32;
            while !closest.contains(&current) && count < 64 {
                let here = distance(&peer_keys[&current], &target);
                let next = tables[&current]
                    .iter()
                    .filter_map(|p| peer_keys.get(p).map(|k| (*p, distance(k, &target))))
                    .min_by(|a, b| a.1.cmp(&b.1));
                match next {
                    Some((p, d)) if d < here => {
                        current = p;
                        count += 1;
                    }
                    _ => break,
                }
            }
            if closest.contains(&current) {
                hops.push(count);
            }
        }
        hops
    }
}

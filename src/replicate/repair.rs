//! The repair round: for every root this node holds, probe the holders,
//! plan (see [`super::plan`]) and, when this node is the one to act, ask
//! the closest willing peers for copies and trim the surplus.

use super::plan::{self, Observed, RepairPlan, RootState};
use super::protocol::Request;
use super::record::Record;
use super::Replicator;
use crate::block::Cid;
use futures::StreamExt;
use libp2p::PeerId;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::Ordering;
use std::time::Instant;

/// Roots repaired at once in a round.
const REPAIR_CONCURRENCY: usize = 8;

impl Replicator {
    /// Runs one repair round over every record now (the loop does it every
    /// interval).
    pub async fn repair_all(&self) {
        let ttl = self.inner.config.tombstone_ttl;
        match self
            .blocking(move |this| this.inner.records.expire(ttl, super::unix_now()))
            .await
        {
            Ok(gone) if !gone.is_empty() => {
                tracing::info!("forgot {} tombstones older than {ttl:?}", gone.len());
                let mut st = self.state();
                for root in &gone {
                    st.observed.remove(root);
                    st.samples.remove(root);
                }
            }
            Ok(_) => {}
            Err(e) => tracing::warn!("expiring tombstones: {e}"),
        }
        let roots: Vec<Cid> = self.inner.records.roots();
        let mut under = 0;
        // Peers that could take a copy, read once per round.
        let candidates = if roots.is_empty() {
            Vec::new()
        } else {
            self.candidates().await
        };
        // Several roots at once: a root whose holder is down waits for a
        // DHT lookup of that peer (up to FIND_PEER_TIMEOUT); one at a time,
        // a node with many roots would take longer than its repair interval.
        let candidates = &candidates;
        let mut rounds = futures::stream::iter(roots)
            .map(|root| self.repair(root, candidates))
            .buffer_unordered(REPAIR_CONCURRENCY);
        while let Some(state) = rounds.next().await {
            if state.is_some_and(|s| s != RootState::Ok) {
                under += 1;
            }
        }
        self.inner
            .stats
            .under_replicated
            .store(under, Ordering::Relaxed);
    }

    /// Peers that could take a copy: those connected and those in the
    /// DHT routing table.
    pub(super) async fn candidates(&self) -> Vec<PeerId> {
        let mut candidates = self.inner.swarm.peers().await.unwrap_or_default();
        if let Ok(table) = self.inner.swarm.routing_table().await {
            candidates.extend(table.into_iter().map(|(p, _)| p));
        }
        candidates
    }

    /// What this node has seen of `root`'s holders (a copy: planning runs
    /// without the state lock).
    pub(super) fn observed_of(&self, root: &Cid) -> HashMap<PeerId, Observed> {
        self.state().observed.get(root).cloned().unwrap_or_default()
    }

    /// The round's view of `rec` without candidates (for its state): no
    /// placement is planned, so refusals do not matter.
    pub(super) fn plan(&self, rec: &Record) -> RepairPlan {
        let observed = self.observed_of(&rec.root);
        plan::plan(
            rec,
            &self.inner.me,
            &observed,
            &[],
            &HashSet::new(),
            Instant::now(),
            self.inner.config.grace,
        )
    }

    /// One round for one root; returns its state when this node holds it
    /// (`None` too when a repair of it is already running).
    pub(super) async fn repair(&self, root: Cid, candidates: &[PeerId]) -> Option<RootState> {
        if !self.state().repairing.insert(root) {
            return None;
        }
        struct Running<'a>(&'a Replicator, Cid);
        impl Drop for Running<'_> {
            fn drop(&mut self) {
                self.0.state().repairing.remove(&self.1);
            }
        }
        let _running = Running(self, root);
        self.repair_root(root, candidates).await
    }

    async fn repair_root(&self, root: Cid, candidates: &[PeerId]) -> Option<RootState> {
        let rec = self.record(&root)?;
        if rec.removed {
            self.unpin_replica(root).await;
            // Spread the tombstone to holders that may not know it yet.
            let me = self.inner.me;
            for p in rec.holders.iter().copied().filter(|p| *p != me) {
                let _ = self
                    .exchange(
                        p,
                        Request::Unpin {
                            record: rec.clone(),
                        },
                    )
                    .await;
            }
            return None;
        }
        if !rec.holders.contains(&self.inner.me) {
            return None;
        }
        let rec = self.probe_all(rec).await;
        if rec.removed {
            // Learned a tombstone.
            self.unpin_replica(root).await;
            return None;
        }
        let rec = self.claim_off_runtime(rec).await;
        if !rec.holders.contains(&self.inner.me) {
            return None;
        }
        let refused: HashSet<PeerId> = {
            let mut st = self.state();
            // A refusal (or no answer) is remembered for a round.
            let memory = self.inner.config.repair_interval;
            st.refused.retain(|_, t| t.elapsed() < memory);
            st.refused.keys().copied().collect()
        };
        let observed = self.observed_of(&root);
        let p = plan::plan(
            &rec,
            &self.inner.me,
            &observed,
            candidates,
            &refused,
            Instant::now(),
            self.inner.config.grace,
        );
        if !p.acting {
            return Some(p.state(rec.factor));
        }
        let mut rec = rec;
        let mut placed = 0;
        for peer in p.place.iter().chain(&p.spares) {
            if placed == p.place.len() {
                break;
            }
            let mut proposed = rec.clone();
            proposed.holders.insert(*peer);
            proposed.bump();
            // No DHT lookup of a candidate that cannot be reached: the next
            // one is asked instead.
            match self
                .exchange_once(
                    *peer,
                    &Request::Pin {
                        record: proposed.clone(),
                    },
                )
                .await
            {
                Ok(resp) if resp.accepted => {
                    placed += 1;
                    tracing::info!(%root, %peer, "replica placed");
                    self.inner.stats.repairs.fetch_add(1, Ordering::Relaxed);
                    rec = self
                        .merge_record(proposed.clone(), true)
                        .await
                        .unwrap_or(proposed);
                    self.state().observed.entry(root).or_default().insert(
                        *peer,
                        Observed::Pinning {
                            since: Instant::now(),
                            seen: Instant::now(),
                        },
                    );
                }
                Ok(resp) => {
                    tracing::info!(%root, %peer, reason = %resp.reason, "replica refused");
                    self.state().refused.insert(*peer, Instant::now());
                    if let Some(theirs) = resp.record {
                        if let Some(merged) = self.merge_record(theirs, true).await {
                            rec = merged;
                        }
                        if rec.removed {
                            self.unpin_replica(root).await;
                            return None;
                        }
                    }
                }
                Err(e) => {
                    tracing::debug!(%root, %peer, "asking for a replica: {e}");
                    self.state().refused.insert(*peer, Instant::now());
                }
            }
        }
        if !p.forget.is_empty() || !p.trim.is_empty() {
            // One new version without the forgotten and the trimmed.
            for h in p.forget.iter().chain(&p.trim) {
                rec.holders.remove(h);
            }
            rec.bump();
            rec = self.merge_record(rec.clone(), true).await.unwrap_or(rec);
            if let Some(obs) = self.state().observed.get_mut(&root) {
                for f in &p.forget {
                    obs.remove(f);
                }
            }
            for t in &p.trim {
                tracing::info!(%root, peer = %t, "trimming a surplus replica");
                let _ = self
                    .exchange(
                        *t,
                        Request::Unpin {
                            record: rec.clone(),
                        },
                    )
                    .await;
            }
        }
        let after = self.plan(&rec);
        Some(after.state(rec.factor))
    }
}

//! Probing a root's holders: each is asked whether it pins the root and
//! has a few sampled blocks of its DAG; what they answer (or that they do
//! not) becomes their [`Observed`] state, and the records they answer with
//! are merged into ours.

use super::plan::Observed;
use super::protocol::Request;
use super::record::Record;
use super::Replicator;
use crate::block::Cid;
use crate::store::PinKind;
use futures::StreamExt;
use libp2p::PeerId;
use std::time::Instant;

/// Blocks of a DAG sampled by each probe (besides the root).
const SAMPLE_BLOCKS: usize = 4;

/// Blocks walked to choose the sample from: the first ones of a large DAG
/// (its top levels and first leaves), so choosing costs the same for a
/// bucket of a million objects as for one file. A holder that lost the
/// rest is found by repair's own checks, not by the probe.
const SAMPLE_WALK: usize = 4096;

/// What one probe saw.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Seen {
    Live,
    Pinning,
    Failing,
}

impl Replicator {
    /// Probes every other holder (and checks this node), merging the
    /// records they answer with; returns the merged record.
    pub(super) async fn probe_all(&self, rec: Record) -> Record {
        let root = rec.root;
        let sample = self.sample(&root).await;
        let me = self.inner.me;
        let mut rec = rec;
        // This node.
        let local = {
            let sample = sample.clone();
            self.blocking(move |this| this.check_local(&root, &sample))
                .await
                .unwrap_or(Seen::Failing)
        };
        self.observe(&root, me, local);
        let others: Vec<PeerId> = rec.holders.iter().copied().filter(|p| *p != me).collect();
        let mut probes = futures::stream::FuturesUnordered::new();
        for p in others {
            let req = Request::Probe {
                record: rec.clone(),
                sample: sample.clone(),
            };
            let this = self.clone();
            probes.push(async move { (p, this.exchange(p, req).await) });
        }
        while let Some((peer, result)) = probes.next().await {
            let seen = match result {
                Ok(resp) => {
                    if let Some(theirs) = &resp.record {
                        rec.merge(theirs);
                    }
                    if resp.pinned && resp.has {
                        Seen::Live
                    } else if resp.pinning {
                        Seen::Pinning
                    } else {
                        Seen::Failing
                    }
                }
                Err(_) => Seen::Failing,
            };
            self.observe(&root, peer, seen);
        }
        self.merge_record(rec.clone(), true).await.unwrap_or(rec)
    }

    fn observe(&self, root: &Cid, peer: PeerId, seen: Seen) {
        let now = Instant::now();
        let mut st = self.state();
        let obs = st.observed.entry(*root).or_default();
        let next = match (seen, obs.get(&peer)) {
            (Seen::Live, _) => Observed::Live { at: now },
            (Seen::Pinning, Some(Observed::Pinning { since, .. })) => Observed::Pinning {
                since: *since,
                seen: now,
            },
            (Seen::Pinning, _) => Observed::Pinning {
                since: now,
                seen: now,
            },
            (Seen::Failing, Some(Observed::Failing { since })) => {
                Observed::Failing { since: *since }
            }
            (Seen::Failing, _) => Observed::Failing { since: now },
        };
        obs.insert(peer, next);
    }

    /// This node's own probe (store reads: on a blocking thread).
    fn check_local(&self, root: &Cid, sample: &[Cid]) -> Seen {
        if self.state().pinning.contains(root) {
            return Seen::Pinning;
        }
        if self.pinned_here(root) && self.has_all(sample) {
            Seen::Live
        } else {
            Seen::Failing
        }
    }

    /// Whether `root` is pinned recursively here (false when the store
    /// cannot tell).
    pub(super) fn pinned_here(&self, root: &Cid) -> bool {
        self.inner.store.pin_of(root).ok().flatten() == Some(PinKind::Recursive)
    }

    /// Whether every block of `sample` is stored here.
    pub(super) fn has_all(&self, sample: &[Cid]) -> bool {
        sample
            .iter()
            .all(|c| self.inner.store.has(c).unwrap_or(false))
    }

    /// The root and a few blocks of its DAG (spread over its first
    /// [`SAMPLE_WALK`] blocks), when local.
    async fn sample(&self, root: &Cid) -> Vec<Cid> {
        if let Some(s) = self.state().samples.get(root) {
            return s.clone();
        }
        let r = *root;
        let all = self
            .blocking(move |this| {
                let source = crate::dag::StoreBlocks(&*this.inner.store);
                crate::dag::walk::reach_first(&source, &r, SAMPLE_WALK).unwrap_or_default()
            })
            .await
            .unwrap_or_default();
        if all.is_empty() {
            return vec![*root];
        }
        let step = (all.len() / (SAMPLE_BLOCKS + 1)).max(1);
        let mut s: Vec<Cid> = all
            .iter()
            .step_by(step)
            .take(SAMPLE_BLOCKS + 1)
            .copied()
            .collect();
        if let Some(last) = all.last() {
            if !s.contains(last) {
                s.push(*last);
            }
        }
        self.state().samples.insert(*root, s.clone());
        s
    }
}

//! What users ask of the replicator: replicate a root pinned here at a
//! factor (`pin add --replication`), remove it everywhere (`pin rm`), and
//! report its holders (`pin status`).

use super::owned_pins::own_pin;
use super::plan::{self, HolderState, Observed, RepairPlan, RootState};
use super::protocol::Request;
use super::record::{self, Record};
use super::{unix_now, ReplicateError, Replicator};
use crate::block::Cid;
use crate::store::{PinKind, Store};
use libp2p::PeerId;
use std::collections::HashSet;
use std::time::{Duration, Instant};

/// How long after a pin its first placement is retried while it is short
/// of holders (then the repair loop takes over).
const PLACE_RETRY_SPAN: Duration = Duration::from_secs(63);

/// Most roots whose first placement is retried at once.
const PLACE_RETRIES_MAX: usize = 64;

/// One holder as `pin status` shows it.
#[derive(Clone, Debug)]
pub struct HolderStatus {
    /// The holder.
    pub peer: PeerId,
    /// What the last probe saw of it.
    pub state: HolderState,
    /// Since when (unix seconds) the holder is in this state, when known.
    pub since: Option<u64>,
}

/// `pin status` of a root.
#[derive(Clone, Debug)]
pub struct RootStatus {
    /// This node's record of the root after probing its holders.
    pub record: Record,
    /// The root's overall state.
    pub state: RootState,
    /// Every holder, closest to the root first.
    pub holders: Vec<HolderStatus>,
}

impl Replicator {
    /// Starts replicating `root` (already pinned here, recursively) at
    /// `factor` copies (`None`: the configured factor), and places copies
    /// right away.
    pub async fn pin(&self, root: Cid, factor: Option<u8>) -> Result<Record, ReplicateError> {
        self.replicate(root, factor, None).await
    }

    /// As [`pin`](Self::pin), for a root whose local pin another part of
    /// the node holds (an S3 bucket's object or tree root): the pin stays
    /// its holder's, so no trim or tombstone removes it here; the holder
    /// removes it, and the replication with [`unpin`](Self::unpin).
    /// `size`: the DAG's bytes when the holder knows them (a bucket's
    /// root, whose DAG reaches every object: measuring it would read them
    /// all); none: measured here.
    pub async fn keep_held(
        &self,
        root: Cid,
        factor: Option<u8>,
        size: Option<u64>,
    ) -> Result<Record, ReplicateError> {
        self.replicate(root, factor, Some(size)).await
    }

    /// [`pin`](Self::pin) (`held` none: the local pin becomes the
    /// replicator's) or [`keep_held`](Self::keep_held) (with the size it
    /// was given, if any).
    async fn replicate(
        &self,
        root: Cid,
        factor: Option<u8>,
        held: Option<Option<u64>>,
    ) -> Result<Record, ReplicateError> {
        let factor = factor.unwrap_or(self.inner.config.factor);
        if factor == 0 || factor as usize > record::MAX_HOLDERS {
            return Err(ReplicateError::Factor {
                factor: factor as u32,
                max: record::MAX_HOLDERS as u32,
            });
        }
        let max = self.inner.config.max.max(factor);
        let rec = self
            .blocking(move |this| this.record_replicated(root, (factor, max), held))
            .await??;
        // Place the copies now rather than at the next round: until then
        // this node holds the only one, and a round over many roots can
        // take a while when holders are down.
        let this = self.clone();
        self.inner
            .swarm
            .spawn_task(async move { this.place_soon(root).await });
        Ok(rec)
    }

    /// Places `root`'s copies now, and again after 1, 2, 4 … s (up to
    /// [`PLACE_RETRY_SPAN`] in all) while it has fewer holders than its
    /// factor: a node that pins just after it started may not be connected
    /// to its peers yet (it found none, and the next repair round is a
    /// `repair_interval` away, 10 min by default).
    /// At most [`PLACE_RETRIES_MAX`] roots are retried at once, each by one
    /// task: a burst of pins beyond that gets its one placement now and
    /// the repair loop's.
    async fn place_soon(&self, root: Cid) {
        let candidates = self.candidates().await;
        self.repair(root, &candidates).await;
        if !self.short_of_holders(&root) {
            return;
        }
        {
            let mut st = self.state();
            if st.retrying.len() >= PLACE_RETRIES_MAX || !st.retrying.insert(root) {
                return;
            }
        }
        struct Retrying<'a>(&'a Replicator, Cid);
        impl Drop for Retrying<'_> {
            fn drop(&mut self) {
                self.0.state().retrying.remove(&self.1);
            }
        }
        let _retrying = Retrying(self, root);
        let mut wait = Duration::from_secs(1);
        let mut waited = Duration::ZERO;
        while waited + wait <= PLACE_RETRY_SPAN {
            tokio::time::sleep(wait).await;
            waited += wait;
            wait *= 2;
            let candidates = self.candidates().await;
            self.repair(root, &candidates).await;
            if !self.short_of_holders(&root) {
                return;
            }
        }
    }

    /// Whether `root` is replicated here with fewer holders than its factor.
    fn short_of_holders(&self, root: &Cid) -> bool {
        self.record(root)
            .is_some_and(|r| !r.removed && r.holders.len() < usize::from(r.factor))
    }

    /// The store work of [`pin`](Self::pin), on a blocking thread: checks
    /// the pin, measures the DAG (unless `held` gives its size), makes the
    /// pin the replicator's (unless `held`) and records the root at
    /// `factor` with this node as a holder.
    fn record_replicated(
        &self,
        root: Cid,
        (factor, max): (u8, u8),
        held: Option<Option<u64>>,
    ) -> Result<Record, ReplicateError> {
        let store = &*self.inner.store;
        let store_error = |source| ReplicateError::Store { cid: root, source };
        if store.pin_of(&root).map_err(store_error)? != Some(PinKind::Recursive) {
            return Err(ReplicateError::NotPinned { root });
        }
        let size = match held.flatten() {
            Some(size) => size,
            None => dag_size(store, &root)?,
        };
        // A replicated pin is the cluster's: removed everywhere by a `pin
        // rm` on any holder.
        if held.is_none() {
            own_pin(store, &root).map_err(store_error)?;
        }
        let me = self.inner.me;
        self.inner
            .records
            .update(&root, |old| {
                Some(match old {
                    Some(old) => {
                        let mut rec = old.clone();
                        rec.factor = factor;
                        rec.max = max;
                        rec.removed = false;
                        rec.size = size;
                        rec.holders.insert(me);
                        rec.bump();
                        rec
                    }
                    None => Record::started(root, factor, max, size, me, unix_now()),
                })
            })
            .ok_or(ReplicateError::Unknown { root })
    }

    /// `pin rm` of a replicated root: a tombstone every holder learns (the
    /// caller removes the local pin). False when the root is not replicated.
    pub async fn unpin(&self, root: &Cid) -> bool {
        match self.record(root) {
            None => return false,
            Some(rec) if rec.removed => return true,
            Some(_) => {}
        }
        let root = *root;
        let tombstone = self
            .blocking(move |this| {
                this.inner.records.update(&root, |current| {
                    let mut rec = current.filter(|r| !r.removed)?.clone();
                    rec.removed = true;
                    rec.bump();
                    Some(rec)
                })
            })
            .await;
        let rec = match tombstone {
            Ok(Some(rec)) => rec,
            Ok(None) => return false,
            Err(e) => {
                tracing::warn!(%root, "recording the removal: {e}");
                return true;
            }
        };
        let me = self.inner.me;
        let targets: Vec<PeerId> = rec.holders.iter().copied().filter(|p| *p != me).collect();
        for p in targets {
            let this = self.clone();
            let rec = rec.clone();
            tokio::spawn(async move {
                let _ = this.exchange(p, Request::Unpin { record: rec }).await;
            });
        }
        true
    }

    /// Probes every holder of `root` now and reports their states.
    pub async fn status(&self, root: &Cid) -> Result<RootStatus, ReplicateError> {
        let rec = self
            .record(root)
            .ok_or(ReplicateError::Unknown { root: *root })?;
        let rec = self.probe_all(rec).await;
        let plan = self.plan(&rec);
        Ok(self.status_of(&rec, &plan))
    }

    fn status_of(&self, rec: &Record, plan: &RepairPlan) -> RootStatus {
        let observed = self.observed_of(&rec.root);
        let now = Instant::now();
        let ago =
            |t: Instant| unix_now().saturating_sub(now.saturating_duration_since(t).as_secs());
        let mut holders = Vec::new();
        for p in plan::by_distance(&rec.root, rec.holders.iter().copied()) {
            let (state, since) = match observed.get(&p) {
                Some(Observed::Live { at }) => (HolderState::Pinned, Some(ago(*at))),
                Some(Observed::Pinning { since, .. }) => (HolderState::Pinning, Some(ago(*since))),
                Some(Observed::Failing { since }) => {
                    if plan.lost.contains(&p) {
                        (HolderState::Lost, Some(ago(*since)))
                    } else {
                        (HolderState::Unreachable, Some(ago(*since)))
                    }
                }
                None => (HolderState::Unreachable, None),
            };
            holders.push(HolderStatus {
                peer: p,
                state,
                since,
            });
        }
        RootStatus {
            record: rec.clone(),
            state: if rec.removed {
                RootState::Ok
            } else {
                plan.state(rec.factor)
            },
            holders,
        }
    }
}

/// Bytes of every block under `root` (local).
fn dag_size(store: &dyn Store, root: &Cid) -> Result<u64, ReplicateError> {
    let mut total = 0u64;
    crate::dag::walk::walk(
        &crate::dag::StoreBlocks(store),
        root,
        &mut HashSet::new(),
        &mut |b| {
            total += b.data().len() as u64;
            Ok(())
        },
    )
    .map_err(|source| ReplicateError::Walk {
        root: *root,
        source,
    })?;
    Ok(total)
}

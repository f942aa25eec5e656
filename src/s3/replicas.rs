//! Buckets kept at a replication factor (`cairn s3 bucket create NAME
//! --replication N`): every object and every tree root such a bucket
//! commits is handed to the node's replicator at factor N, whose repair
//! loop places and keeps the copies; each CID whose last name goes (its
//! endpoint pin removed: an object overwritten or deleted, a root moved
//! past) is removed from the network as `pin rm` removes a replicated root
//! (a tombstone the holders learn, which they forget after the
//! replicator's `tombstone_ttl`).
//!
//! The index's writer reports both as [`ReplicaEvent`]s through a bounded
//! queue; one task takes them in order and calls the replicator. It waits
//! [`COALESCE`] after the first event of a burst and applies only the last
//! event of each CID in it, so a run of writes replicates the roots it
//! ends with, not every root in between. The local pin stays the
//! endpoint's: [`Replicator::keep_held`] records the factor without making
//! it the replicator's, so no trim or tombstone removes a copy a bucket
//! still names. A root is recorded with the size the index counts for its
//! bucket (its objects' bytes), not by walking its DAG, which reaches
//! every object: a write costs the same in a bucket of 10 or 10 million.
//!
//! Which replications the endpoint started is kept in the index's
//! database (tree `replicated`: CID → nothing), written (and flushed)
//! before the replicator is asked and cleared after the tombstone, so a
//! restart or crash never makes the endpoint forget one: a CID is
//! tombstoned only if it is there, and once nothing in the index names it.
//! When the task starts, and after the queue was found full (an event
//! lost), it recovers: every CID there that nothing names any more is
//! released, every replicated bucket's root and objects handed over again.

use super::index::BucketIndex;
use super::S3Error;
use crate::block::Cid;
use crate::node::online::OnlineNode;
use crate::replicate::Replicator;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

/// Events queued for the replicator before writers find the queue full.
const QUEUE: usize = 16 * 1024;

/// How long the task waits after a burst's first event before applying it.
const COALESCE: Duration = Duration::from_millis(300);

/// The tree of the CIDs whose replication the endpoint started.
const REPLICATED: &str = "replicated";

/// What a committed change of the index asks of the replicator.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReplicaEvent {
    /// A replicated bucket names `cid` (an object or its new root): keep
    /// it at `factor`.
    Keep {
        /// The object's or root's CID.
        cid: Cid,
        /// Copies wanted.
        factor: u8,
        /// The DAG's bytes, when the index knows them (a root); none:
        /// the replicator measures the DAG (an object's).
        size: Option<u64>,
    },
    /// The endpoint removed its pin of `cid`: nothing names it now.
    Released(Cid),
}

impl ReplicaEvent {
    fn cid(&self) -> Cid {
        match self {
            ReplicaEvent::Keep { cid, .. } | ReplicaEvent::Released(cid) => *cid,
        }
    }
}

/// Where the index's writer reports [`ReplicaEvent`]s.
pub type ReplicaHook = Arc<dyn Fn(ReplicaEvent) + Send + Sync>;

impl BucketIndex {
    /// Reports changes to `hook` from now on.
    pub(super) fn set_replica_hook(&self, hook: ReplicaHook) {
        *self.replicas.lock().unwrap_or_else(|p| p.into_inner()) = Some(hook);
    }

    /// Reports `event`, if anything listens.
    pub(super) fn report(&self, event: ReplicaEvent) {
        let hook = self
            .replicas
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        if let Some(hook) = hook {
            hook(event);
        }
    }

    fn replicated_tree(&self) -> Result<sled::Tree, S3Error> {
        self.db()
            .open_tree(REPLICATED)
            .map_err(super::index::failed("opening the replicated CIDs"))
    }

    /// The CIDs whose replication the endpoint started.
    pub(super) fn started_replications(&self) -> Result<HashSet<Cid>, S3Error> {
        self.replicated_tree()?
            .iter()
            .keys()
            .map(|k| {
                let k = k.map_err(super::index::failed("reading the replicated CIDs"))?;
                crate::block::cid_from_bytes(&k).map_err(|e| S3Error::BadEntry {
                    what: "replicated CID",
                    why: e.to_string(),
                })
            })
            .collect()
    }

    /// Records (`on`) or forgets that the endpoint started replicating
    /// `cids`, durably.
    pub(super) fn mark_replications(&self, cids: &[Cid], on: bool) -> Result<(), S3Error> {
        if cids.is_empty() {
            return Ok(());
        }
        let tree = self.replicated_tree()?;
        let mut batch = sled::Batch::default();
        for cid in cids {
            if on {
                batch.insert(cid.to_bytes(), &[][..]);
            } else {
                batch.remove(cid.to_bytes());
            }
        }
        tree.apply_batch(batch)
            .map_err(super::index::failed("recording replicated CIDs"))?;
        self.flush()
    }

    /// Which of `cids` nothing in the index names (no object, version,
    /// part or bucket root).
    pub(super) fn unnamed(&self, cids: &[Cid]) -> Result<Vec<Cid>, S3Error> {
        let mut out = Vec::new();
        for cid in cids {
            if self.refs_of(cid)?.is_none() {
                out.push(*cid);
            }
        }
        Ok(out)
    }
}

/// Connects `index` to `online`'s replicator: starts the task that applies
/// the events, which first recovers (see the module's comment).
pub(super) fn start(online: &Arc<OnlineNode>, index: &Arc<BucketIndex>) {
    let (tx, rx) = mpsc::channel(QUEUE);
    let queue = tx.clone();
    let lost = Arc::new(AtomicBool::new(false));
    let lost_here = Arc::clone(&lost);
    index.set_replica_hook(Arc::new(move |event| {
        if let Err(e) = queue.try_send(event) {
            lost_here.store(true, Ordering::Relaxed);
            tracing::warn!(
                "S3 replication queue: {e}; {} is recovered from the index",
                event.cid()
            );
        }
    }));
    let task = Task {
        replicator: online.replicator().clone(),
        index: Arc::clone(index),
        tx,
        lost,
        kept: HashSet::new(),
    };
    online.net().swarm.spawn_task(task.run(rx));
}

/// The task's state.
struct Task {
    replicator: Replicator,
    index: Arc<BucketIndex>,
    /// The queue, for recovery's events.
    tx: mpsc::Sender<ReplicaEvent>,
    /// Set when an event did not fit in the queue.
    lost: Arc<AtomicBool>,
    /// The CIDs whose replication the endpoint started (as stored).
    kept: HashSet<Cid>,
}

/// Runs `f` with the index on a blocking thread.
async fn with_index<T: Send + 'static>(
    index: &Arc<BucketIndex>,
    f: impl FnOnce(&BucketIndex) -> Result<T, S3Error> + Send + 'static,
) -> Result<T, S3Error> {
    let index = Arc::clone(index);
    super::share::blocking(move || f(&index)).await
}

impl Task {
    /// Applies the events in order, a burst at a time, recovering first
    /// and after any lost event.
    async fn run(mut self, mut rx: mpsc::Receiver<ReplicaEvent>) {
        match with_index(&self.index, |i| i.started_replications()).await {
            Ok(kept) => self.kept = kept,
            Err(e) => tracing::warn!("S3: reading the replications started: {e}"),
        }
        self.recover();
        while let Some(first) = rx.recv().await {
            tokio::time::sleep(COALESCE).await;
            let mut burst = vec![first];
            while let Ok(e) = rx.try_recv() {
                burst.push(e);
            }
            self.apply(last_of_each(burst)).await;
            if self.lost.swap(false, Ordering::Relaxed) {
                self.recover();
            }
        }
    }

    /// Queues `Released` for each started replication nothing names, and
    /// `Keep` for each replicated local bucket's root and objects (on a
    /// blocking thread, waiting for room in the queue).
    fn recover(&self) {
        let (index, tx) = (Arc::clone(&self.index), self.tx.clone());
        let kept: Vec<Cid> = self.kept.iter().copied().collect();
        tokio::task::spawn_blocking(move || {
            if let Err(e) = recover(&index, &tx, &kept) {
                tracing::warn!("S3: recovering replicated buckets: {e}");
            }
        });
    }

    /// Applies one burst: the replications to start are recorded (and
    /// flushed) first, then started; the released ones are tombstoned,
    /// then forgotten.
    async fn apply(&mut self, events: Vec<ReplicaEvent>) {
        let mut keep = Vec::new();
        let mut release = Vec::new();
        for event in events {
            match event {
                ReplicaEvent::Keep { cid, factor, size } => {
                    let record = self.replicator.record(&cid).filter(|r| !r.removed);
                    if record.as_ref().is_some_and(|r| {
                        // Someone else's replication, or ours already at
                        // the factor.
                        !self.kept.contains(&cid) || r.factor == factor
                    }) {
                        continue;
                    }
                    keep.push((cid, factor, size));
                }
                ReplicaEvent::Released(cid) if self.kept.contains(&cid) => release.push(cid),
                ReplicaEvent::Released(_) => {}
            }
        }
        let mut failed = Vec::new();
        if !keep.is_empty() {
            let new: Vec<Cid> = keep
                .iter()
                .map(|k| k.0)
                .filter(|c| !self.kept.contains(c))
                .collect();
            if let Err(e) = with_index(&self.index, move |i| i.mark_replications(&new, true)).await
            {
                tracing::warn!("S3: recording replications: {e}");
                return;
            }
            for (cid, factor, size) in keep {
                self.kept.insert(cid);
                if let Err(e) = self.replicator.keep_held(cid, Some(factor), size).await {
                    tracing::warn!(%cid, "S3: replicating at factor {factor}: {e}");
                    self.kept.remove(&cid);
                    failed.push(cid);
                }
            }
        }
        // Released only once nothing names it (a write may have named it
        // again since, or recovery found it while a write was under way).
        let unnamed = match with_index(&self.index, move |i| i.unnamed(&release)).await {
            Ok(unnamed) => unnamed,
            Err(e) => {
                tracing::warn!("S3: reading released CIDs' names: {e}");
                Vec::new()
            }
        };
        for cid in &unnamed {
            if self.replicator.record(cid).is_some_and(|r| !r.removed) {
                self.replicator.unpin(cid).await;
            }
            self.kept.remove(cid);
        }
        failed.extend(unnamed);
        if let Err(e) = with_index(&self.index, move |i| i.mark_replications(&failed, false)).await
        {
            tracing::warn!("S3: forgetting replications: {e}");
        }
    }
}

/// See [`Task::recover`] (blocking: reads the index, waits for room in the
/// queue).
fn recover(
    index: &BucketIndex,
    tx: &mpsc::Sender<ReplicaEvent>,
    kept: &[Cid],
) -> Result<(), S3Error> {
    for cid in index.unnamed(kept)? {
        if tx.blocking_send(ReplicaEvent::Released(cid)).is_err() {
            return Ok(());
        }
    }
    for (bucket, settings) in index.all_settings()? {
        let Some(factor) = settings.replication else {
            continue;
        };
        if index.is_mounted(&bucket)? || index.bucket(&bucket)?.is_none() {
            continue;
        }
        let send = |cid, size| tx.blocking_send(ReplicaEvent::Keep { cid, factor, size });
        if let Some(cid) = index.root(&bucket)? {
            if send(cid, Some(index.bucket_bytes(&bucket)?)).is_err() {
                return Ok(());
            }
        }
        let objects = index.objects_of(&bucket)?;
        let mut from = Vec::new();
        while let Some((key, entry)) = objects.first_from(&from)? {
            if send(entry.cid()?, None).is_err() {
                return Ok(());
            }
            from = key;
            from.push(0);
        }
    }
    Ok(())
}

/// The last event of each CID in `events`, in the order of those last
/// events.
fn last_of_each(events: Vec<ReplicaEvent>) -> Vec<ReplicaEvent> {
    let mut last: HashMap<Cid, usize> = HashMap::new();
    for (i, e) in events.iter().enumerate() {
        last.insert(e.cid(), i);
    }
    events
        .into_iter()
        .enumerate()
        .filter(|(i, e)| last.get(&e.cid()) == Some(i))
        .map(|(_, e)| e)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::s3::index::tests::entry;
    use crate::s3::BucketSettings;
    use crate::store::MemoryStore;
    use std::sync::Mutex;

    /// A replicated bucket's writes report each new root with the size the
    /// index counts (the bytes of its objects, changed by every write), and
    /// each object to be measured; no DAG is walked for the root.
    #[test]
    fn roots_are_reported_with_the_bytes_the_index_counts() {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn crate::store::Store> = Arc::new(MemoryStore::new());
        let index = BucketIndex::open(Some(dir.path()), Arc::clone(&store)).unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let into = Arc::clone(&seen);
        index.set_replica_hook(Arc::new(move |e| into.lock().unwrap().push(e)));
        let kept = BucketSettings {
            replication: Some(2),
            public_read: false,
        };
        let w = index.writer();
        w.create_bucket_with("kept", &kept).unwrap();
        let (a, b) = (entry(b"aaaa"), entry(b"bbbbbbbb"));
        w.put("kept", "a", &a, true).unwrap();
        w.put("kept", "b", &b, true).unwrap();
        w.put("kept", "b2", &b, true).unwrap();
        w.put("kept", "a", &b, true).unwrap();
        w.delete("kept", "b2").unwrap();
        assert_eq!(index.bucket_bytes("kept").unwrap(), 16);
        let root = index.root("kept").unwrap().unwrap();
        let events = seen.lock().unwrap().clone();
        assert!(events.contains(&ReplicaEvent::Keep {
            cid: root,
            factor: 2,
            size: Some(16)
        }));
        let object = ReplicaEvent::Keep {
            cid: a.cid().unwrap(),
            factor: 2,
            size: None,
        };
        assert!(events.contains(&object));
        // Versions count only the current one; the count survives reopening
        // and is made for a bucket that had none.
        w.set_versioning("kept", super::super::index::Versioning::Enabled)
            .unwrap();
        let always = &crate::s3::conditions::WriteIf::Always;
        w.write(("kept", "a"), &a, true, always).unwrap();
        assert_eq!(index.bucket_bytes("kept").unwrap(), 12);
        w.delete_object("kept", "a", None).unwrap();
        assert_eq!(index.bucket_bytes("kept").unwrap(), 8);
        drop(w);
        index.bytes.clear().unwrap();
        drop(index);
        let index = BucketIndex::open(Some(dir.path()), store).unwrap();
        assert_eq!(index.bucket_bytes("kept").unwrap(), 8);
    }

    /// The replications the endpoint started are kept across a reopen;
    /// recovery releases those nothing names any more (their events lost)
    /// and hands every replicated bucket's root and objects over again.
    #[test]
    fn recovery_releases_what_nothing_names_and_keeps_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn crate::store::Store> = Arc::new(MemoryStore::new());
        let (a, gone) = (entry(b"a"), entry(b"gone"));
        let (ca, cgone) = (a.cid().unwrap(), gone.cid().unwrap());
        {
            let index = BucketIndex::open(Some(dir.path()), Arc::clone(&store)).unwrap();
            let w = index.writer();
            let kept = BucketSettings {
                replication: Some(3),
                public_read: false,
            };
            w.create_bucket_with("kept", &kept).unwrap();
            w.put("kept", "a", &a, true).unwrap();
            w.put("kept", "gone", &gone, true).unwrap();
            let root = index.root("kept").unwrap().unwrap();
            index.mark_replications(&[ca, cgone, root], true).unwrap();
            // Deleted while the queue was full: no event reached the task.
            w.delete("kept", "gone").unwrap();
        }
        let index = BucketIndex::open(Some(dir.path()), store).unwrap();
        let started = index.started_replications().unwrap();
        assert_eq!(started.len(), 3);
        let started: Vec<Cid> = started.into_iter().collect();
        let (tx, mut rx) = mpsc::channel(64);
        recover(&index, &tx, &started).unwrap();
        drop(tx);
        let mut events = Vec::new();
        while let Ok(e) = rx.try_recv() {
            events.push(e);
        }
        let old_root = started
            .iter()
            .find(|c| **c != ca && **c != cgone)
            .copied()
            .unwrap();
        let root = index.root("kept").unwrap().unwrap();
        let mut released: Vec<Cid> = events
            .iter()
            .filter_map(|e| match e {
                ReplicaEvent::Released(c) => Some(*c),
                _ => None,
            })
            .collect();
        released.sort();
        let mut want = vec![cgone, old_root];
        want.sort();
        assert_eq!(released, want);
        assert!(events.contains(&ReplicaEvent::Keep {
            cid: root,
            factor: 3,
            size: Some(1)
        }));
        assert!(events.contains(&ReplicaEvent::Keep {
            cid: ca,
            factor: 3,
            size: None
        }));
        index.mark_replications(&released, false).unwrap();
        assert_eq!(index.started_replications().unwrap().len(), 1);
    }

    #[test]
    fn a_burst_keeps_the_last_event_of_each_cid_in_order() {
        let cid = |n: u8| crate::block::CidFormat::V1_SHA2_256.cid(crate::block::RAW, &[n]);
        let keep = |n| ReplicaEvent::Keep {
            cid: cid(n),
            factor: 2,
            size: None,
        };
        let events = vec![
            keep(1),
            keep(2),
            ReplicaEvent::Released(cid(1)),
            keep(3),
            ReplicaEvent::Released(cid(2)),
            keep(1),
        ];
        assert_eq!(
            last_of_each(events),
            vec![keep(3), ReplicaEvent::Released(cid(2)), keep(1)]
        );
    }
}

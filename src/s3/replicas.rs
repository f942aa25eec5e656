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
//! lost) or a burst could not be recorded, it recovers: every CID there
//! that nothing names any more is released, every replicated bucket's root
//! and objects handed over again. One recovery runs at a time (one more
//! after it if an event was lost meanwhile), through a queue of its own
//! and a bounded share of each burst, so it never crowds out the writes'
//! events. A CID is released only when nothing names it, whichever event
//! of it a burst ends with; one whose pin someone else made the
//! replicator's meanwhile (`pin add --replication`) is forgotten instead,
//! its replication theirs. A `Keep` never lowers a factor: one the user
//! set higher since (`pin add --replication`) stays.

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

/// Events a recovery queues before it waits for the task (its own queue,
/// so it never fills the writers'); also its share of a burst.
const RECOVERY_QUEUE: usize = 1024;

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
    /// The endpoint removed its pin of `cid`, but the pin had become the
    /// replicator's (`pin add --replication`, a copy held for another
    /// node): someone else replicates `cid` now, so the endpoint forgets it
    /// without removing it from the network.
    Claimed(Cid),
}

impl ReplicaEvent {
    fn cid(&self) -> Cid {
        match self {
            ReplicaEvent::Keep { cid, .. }
            | ReplicaEvent::Released(cid)
            | ReplicaEvent::Claimed(cid) => *cid,
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
    let lost = Arc::new(AtomicBool::new(false));
    index.set_replica_hook(hook(tx, Arc::clone(&lost)));
    let recovering = Arc::clone(index);
    let intake = Intake {
        rx,
        lost: Arc::clone(&lost),
        recovery: None,
        again: false,
        start: Box::new(move || spawn_recovery(Arc::clone(&recovering))),
        coalesce: COALESCE,
    };
    let task = Task {
        replicator: online.replicator().clone(),
        index: Arc::clone(index),
        lost,
        kept: HashSet::new(),
    };
    online.net().swarm.spawn_task(task.run(intake));
}

/// The write hook: queues each event, or sets `lost` when the queue is
/// full (recovery then finds what it missed).
fn hook(queue: mpsc::Sender<ReplicaEvent>, lost: Arc<AtomicBool>) -> ReplicaHook {
    Arc::new(move |event| {
        if let Err(e) = queue.try_send(event) {
            lost.store(true, Ordering::Relaxed);
            tracing::warn!(
                "S3 replication queue: {e}; {} is recovered from the index",
                event.cid()
            );
        }
    })
}

/// Starts a recovery on a blocking thread; its events come through the
/// returned queue (its own, so it never fills the write hook's), which
/// closes when it is done.
fn spawn_recovery(index: Arc<BucketIndex>) -> mpsc::Receiver<ReplicaEvent> {
    let (tx, rx) = mpsc::channel(RECOVERY_QUEUE);
    tokio::task::spawn_blocking(move || {
        if let Err(e) = recover(&index, &tx) {
            tracing::warn!("S3: recovering replicated buckets: {e}");
        }
    });
    rx
}

/// Where the task's events come from: the write hook's queue and the
/// recovery under way, if any (at most one at a time).
struct Intake {
    /// The write hook's events.
    rx: mpsc::Receiver<ReplicaEvent>,
    /// Set when an event did not fit in the hook's queue (or a burst could
    /// not be applied): a recovery is due.
    lost: Arc<AtomicBool>,
    /// The events of the recovery under way.
    recovery: Option<mpsc::Receiver<ReplicaEvent>>,
    /// Recovery was asked for while one ran: another runs after it, as
    /// what it had read may be stale.
    again: bool,
    /// Starts a recovery.
    start: Box<dyn Fn() -> mpsc::Receiver<ReplicaEvent> + Send>,
    /// How long a burst waits after its first event.
    coalesce: Duration,
}

/// Where a burst's first event came from.
enum First {
    Write(Option<ReplicaEvent>),
    Recovery(Option<ReplicaEvent>),
}

/// The next event of `recovery`, never if none runs.
async fn next_of(recovery: &mut Option<mpsc::Receiver<ReplicaEvent>>) -> Option<ReplicaEvent> {
    match recovery {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

impl Intake {
    /// Starts a recovery unless one runs; then one more runs after it.
    fn recover(&mut self) {
        if self.recovery.is_some() {
            self.again = true;
        } else {
            self.recovery = Some((self.start)());
        }
    }

    /// The next burst: waits for an event, then `coalesce`, then takes
    /// what is queued, recovery's first (at most [`RECOVERY_QUEUE`]: its
    /// share of a burst) and the writes' after them, so that a write's
    /// event is the last of its CID. Starts a recovery first if one is due.
    /// None once the hook's queue is closed.
    async fn next_burst(&mut self) -> Option<Vec<ReplicaEvent>> {
        let (mut burst, mut writes) = (Vec::new(), Vec::new());
        loop {
            if self.lost.swap(false, Ordering::Relaxed) {
                self.recover();
            }
            let first = tokio::select! {
                biased;
                e = self.rx.recv() => First::Write(e),
                e = next_of(&mut self.recovery) => First::Recovery(e),
            };
            match first {
                First::Write(e) => {
                    writes.push(e?);
                    break;
                }
                First::Recovery(Some(e)) => {
                    burst.push(e);
                    break;
                }
                First::Recovery(None) => {
                    self.recovery = None;
                    if std::mem::take(&mut self.again) {
                        self.recover();
                    }
                }
            }
        }
        tokio::time::sleep(self.coalesce).await;
        if let Some(rx) = &mut self.recovery {
            while burst.len() < RECOVERY_QUEUE {
                match rx.try_recv() {
                    Ok(e) => burst.push(e),
                    Err(_) => break,
                }
            }
        }
        while writes.len() < QUEUE {
            match self.rx.try_recv() {
                Ok(e) => writes.push(e),
                Err(_) => break,
            }
        }
        burst.extend(writes);
        Some(burst)
    }
}

/// The task's state.
struct Task {
    replicator: Replicator,
    index: Arc<BucketIndex>,
    /// Shared with [`Intake`]: set when a burst could not be applied.
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
    async fn run(mut self, mut intake: Intake) {
        match with_index(&self.index, |i| i.started_replications()).await {
            Ok(kept) => self.kept = kept,
            Err(e) => tracing::warn!("S3: reading the replications started: {e}"),
        }
        intake.recover();
        while let Some(burst) = intake.next_burst().await {
            self.apply(last_of_each(burst)).await;
        }
    }

    /// Applies one burst: the replications to start are recorded (and
    /// flushed) first, then started; the released ones are tombstoned,
    /// then forgotten, as are those someone else claimed (not tombstoned).
    /// A burst that cannot be read or recorded asks for a recovery.
    async fn apply(&mut self, events: Vec<ReplicaEvent>) {
        // A CID is released only once nothing names it: a write may have
        // named it again since, or recovery read it (a `Keep`) just before
        // a delete whose `Released` the burst's last event hides.
        let cids: Vec<Cid> = events.iter().map(ReplicaEvent::cid).collect();
        let unnamed: HashSet<Cid> = match with_index(&self.index, move |i| i.unnamed(&cids)).await {
            Ok(unnamed) => unnamed.into_iter().collect(),
            Err(e) => {
                tracing::warn!("S3: reading the names of a burst's CIDs: {e}");
                self.lost.store(true, Ordering::Relaxed);
                return;
            }
        };
        let (keep, release, claimed) = sort_burst(events, &self.kept, &unnamed, |cid| {
            self.replicator.record(cid).filter(|r| !r.removed)
        });
        let mut forget = claimed;
        if !keep.is_empty() {
            let new: Vec<Cid> = keep
                .iter()
                .map(|k| k.0)
                .filter(|c| !self.kept.contains(c))
                .collect();
            if let Err(e) = with_index(&self.index, move |i| i.mark_replications(&new, true)).await
            {
                tracing::warn!("S3: recording replications: {e}");
                self.lost.store(true, Ordering::Relaxed);
                return;
            }
            for (cid, factor, size) in keep {
                self.kept.insert(cid);
                if let Err(e) = self.replicator.keep_held(cid, Some(factor), size).await {
                    tracing::warn!(%cid, "S3: replicating at factor {factor}: {e}");
                    forget.push(cid);
                }
            }
        }
        for cid in &release {
            if self.replicator.record(cid).is_some_and(|r| !r.removed) {
                self.replicator.unpin(cid).await;
            }
        }
        forget.extend(release);
        for cid in &forget {
            self.kept.remove(cid);
        }
        if let Err(e) = with_index(&self.index, move |i| i.mark_replications(&forget, false)).await
        {
            tracing::warn!("S3: forgetting replications: {e}");
        }
    }
}

/// A burst's replications to start (CID, factor, size), to release, and
/// to forget without a release (someone else claimed them), given the
/// CIDs the endpoint keeps, those nothing names, and a live record's
/// lookup.
type Sorted = (Vec<(Cid, u8, Option<u64>)>, Vec<Cid>, Vec<Cid>);

/// Sorts a burst (see [`Sorted`]).
fn sort_burst(
    events: Vec<ReplicaEvent>,
    kept: &HashSet<Cid>,
    unnamed: &HashSet<Cid>,
    record: impl Fn(&Cid) -> Option<crate::replicate::record::Record>,
) -> Sorted {
    let (mut keep, mut release, mut claimed) = (Vec::new(), Vec::new(), Vec::new());
    for event in events {
        match event {
            // Kept but named by nothing: its release was lost (or hidden
            // behind recovery's read of it).
            ReplicaEvent::Keep { cid, .. } | ReplicaEvent::Released(cid)
                if unnamed.contains(&cid) =>
            {
                if kept.contains(&cid) {
                    release.push(cid);
                }
            }
            ReplicaEvent::Keep { cid, factor, size } => {
                if record(&cid).is_some_and(|r| {
                    // Someone else's replication, or ours at the factor
                    // already or above it: a factor the user set since
                    // (`pin add --replication`), or another bucket's
                    // naming the same CID, is never lowered.
                    !kept.contains(&cid) || r.factor >= factor
                }) {
                    continue;
                }
                keep.push((cid, factor, size));
            }
            ReplicaEvent::Released(_) => {}
            ReplicaEvent::Claimed(cid) if kept.contains(&cid) => claimed.push(cid),
            ReplicaEvent::Claimed(_) => {}
        }
    }
    (keep, release, claimed)
}

/// See [`spawn_recovery`]: queues `Released` for each started
/// replication nothing names, and `Keep` for each replicated local
/// bucket's root and objects (blocking: reads the index, waits for room
/// in `tx`).
fn recover(index: &BucketIndex, tx: &mpsc::Sender<ReplicaEvent>) -> Result<(), S3Error> {
    for key in index.replicated_tree()?.iter().keys() {
        let key = key.map_err(super::index::failed("reading the replicated CIDs"))?;
        let cid = crate::block::cid_from_bytes(&key).map_err(|e| S3Error::BadEntry {
            what: "replicated CID",
            why: e.to_string(),
        })?;
        if index.refs_of(&cid)?.is_none() && tx.blocking_send(ReplicaEvent::Released(cid)).is_err()
        {
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
        recover(&index, &tx).unwrap();
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

    /// One recovery at a time, on its own queue: the writes' queue stays
    /// free while it runs (before, recovery filled it, every write then
    /// found it full and each burst started another full recovery), an
    /// event lost meanwhile runs one more after it, not one per burst.
    #[tokio::test]
    async fn one_recovery_runs_at_a_time_and_leaves_the_writes_queue_free() {
        let cid = |n: u8| crate::block::CidFormat::V1_SHA2_256.cid(crate::block::RAW, &[n]);
        let (tx, rx) = mpsc::channel(2);
        let lost = Arc::new(AtomicBool::new(false));
        let write = hook(tx, Arc::clone(&lost));
        let runs: Arc<Mutex<Vec<mpsc::Sender<ReplicaEvent>>>> = Arc::default();
        let started = Arc::clone(&runs);
        let mut intake = Intake {
            rx,
            lost: Arc::clone(&lost),
            recovery: None,
            again: false,
            start: Box::new(move || {
                let (tx, rx) = mpsc::channel(4);
                tx.try_send(ReplicaEvent::Released(cid(0))).unwrap();
                started.lock().unwrap().push(tx);
                rx
            }),
            coalesce: Duration::from_millis(1),
        };
        intake.recover();
        let recovery = runs.lock().unwrap()[0].clone();
        for n in 1..4 {
            recovery.try_send(ReplicaEvent::Released(cid(n))).unwrap();
        }
        // Recovery's queue is full; the writes' takes events.
        write(ReplicaEvent::Released(cid(9)));
        assert!(!lost.load(Ordering::Relaxed));
        let burst = intake.next_burst().await.unwrap();
        let want: Vec<ReplicaEvent> = [0, 1, 2, 3, 9]
            .into_iter()
            .map(|n| ReplicaEvent::Released(cid(n)))
            .collect();
        assert_eq!(burst, want, "recovery's first, the write's last");
        // Events lost while it runs: no second recovery beside it.
        for _ in 0..3 {
            write(ReplicaEvent::Released(cid(8)));
        }
        assert!(lost.load(Ordering::Relaxed));
        for _ in 0..2 {
            assert!(intake.next_burst().await.is_some());
            recovery.try_send(ReplicaEvent::Released(cid(7))).unwrap();
            lost.store(true, Ordering::Relaxed);
        }
        assert_eq!(runs.lock().unwrap().len(), 1);
        // Once it is done, one more runs (its first event is the burst).
        drop(recovery);
        runs.lock().unwrap().clear();
        while intake.next_burst().await.unwrap() != vec![ReplicaEvent::Released(cid(0))] {}
        assert_eq!(runs.lock().unwrap().len(), 1);
        assert!(intake.recovery.is_some() && !intake.again);
    }

    /// Recovery read X (`Keep`) before the user deleted it (`Released`),
    /// and the burst's last event of X is the `Keep`: X is released all
    /// the same, since nothing names it. A claimed CID is forgotten, not
    /// released; a named one is kept, at the bucket's factor or the one it
    /// has if higher.
    #[test]
    fn a_keep_of_a_kept_cid_nothing_names_is_a_release() {
        let cid = |n: u8| crate::block::CidFormat::V1_SHA2_256.cid(crate::block::RAW, &[n]);
        let keep = |n| ReplicaEvent::Keep {
            cid: cid(n),
            factor: 2,
            size: None,
        };
        let burst = last_of_each(vec![
            ReplicaEvent::Released(cid(1)),
            keep(1),
            keep(2),
            keep(3),
            ReplicaEvent::Claimed(cid(4)),
            ReplicaEvent::Claimed(cid(5)),
            keep(6),
        ]);
        let kept: HashSet<Cid> = [1, 3, 4, 6].into_iter().map(cid).collect();
        let unnamed: HashSet<Cid> = [1, 2].into_iter().map(cid).collect();
        let me = libp2p::PeerId::random();
        // 3 is below the bucket's factor; 6 above it (`pin add
        // --replication 3` since): it stays at 3.
        let record = |c: &Cid| match c {
            c if *c == cid(3) => Some(crate::replicate::record::Record::new(*c, 1, 3, 1, me)),
            c if *c == cid(6) => Some(crate::replicate::record::Record::new(*c, 3, 3, 1, me)),
            _ => None,
        };
        let (keep, release, claimed) = sort_burst(burst, &kept, &unnamed, record);
        assert_eq!(keep, vec![(cid(3), 2, None)], "named: kept at its factor");
        assert_eq!(release, vec![cid(1)]);
        assert_eq!(claimed, vec![cid(4)]);
    }
}

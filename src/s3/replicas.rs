//! Buckets kept at a replication factor (`cairn s3 bucket create NAME
//! --replication N`): every object and every tree root such a bucket
//! commits is handed to the node's replicator at factor N, whose repair
//! loop places and keeps the copies; each CID whose last name goes (its
//! endpoint pin removed: an object overwritten or deleted, a root moved
//! past) is removed from the network as `pin rm` removes a replicated root
//! (a tombstone the holders learn).
//!
//! The index's writer reports both as [`ReplicaEvent`]s through a bounded
//! queue; one task takes them in order and calls the replicator. It waits
//! [`COALESCE`] after the first event of a burst and applies only the last
//! event of each CID in it, so a run of writes replicates the roots it
//! ends with, not every root in between. The local pin stays the
//! endpoint's: [`Replicator::keep_held`] records the factor without making
//! it the replicator's, so no trim or tombstone removes a copy a bucket
//! still names. When the endpoint starts, every replicated bucket's root and
//! objects are handed over again (what a crash or a full queue lost).

use super::index::BucketIndex;
use crate::block::Cid;
use crate::node::online::OnlineNode;
use crate::replicate::Replicator;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

/// Events queued for the replicator before writers find the queue full.
const QUEUE: usize = 16 * 1024;

/// How long the task waits after a burst's first event before applying it.
const COALESCE: Duration = Duration::from_millis(300);

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
}

/// Connects `index` to `online`'s replicator: starts the task that applies
/// the events, and hands it every replicated bucket's root and objects.
pub(super) fn start(online: &Arc<OnlineNode>, index: &Arc<BucketIndex>) {
    let (tx, rx) = mpsc::channel(QUEUE);
    let queue = tx.clone();
    index.set_replica_hook(Arc::new(move |event| {
        if let Err(e) = queue.try_send(event) {
            tracing::warn!(
                "S3 replication queue: {e}; {} is handed over again when the endpoint starts",
                event.cid()
            );
        }
    }));
    let replicator = online.replicator().clone();
    online.net().swarm.spawn_task(run(replicator, rx));
    let index = Arc::clone(index);
    tokio::task::spawn_blocking(move || {
        if let Err(e) = hand_over(&index, &tx) {
            tracing::warn!("S3: handing replicated buckets to the replicator: {e}");
        }
    });
}

/// Sends `Keep` for each replicated local bucket's root and objects
/// (blocking: reads the index, waits for room in the queue).
fn hand_over(index: &BucketIndex, tx: &mpsc::Sender<ReplicaEvent>) -> Result<(), super::S3Error> {
    for (bucket, settings) in index.all_settings()? {
        let Some(factor) = settings.replication else {
            continue;
        };
        if index.is_mounted(&bucket)? || index.bucket(&bucket)?.is_none() {
            continue;
        }
        let mut cids = Vec::new();
        cids.extend(index.root(&bucket)?);
        let objects = index.objects_of(&bucket)?;
        let mut from = Vec::new();
        while let Some((key, entry)) = objects.first_from(&from)? {
            cids.push(entry.cid()?);
            from = key;
            from.push(0);
        }
        for cid in cids {
            if tx
                .blocking_send(ReplicaEvent::Keep { cid, factor })
                .is_err()
            {
                return Ok(());
            }
        }
    }
    Ok(())
}

/// Applies the events in order, a burst at a time. Only a replication
/// this endpoint started (`kept`) is removed from the network when its
/// CID is released: a CID that was replicated already (a user's `pin add
/// --replication`, a copy held for another node) is left as it is, its
/// factor unchanged.
async fn run(replicator: Replicator, mut rx: mpsc::Receiver<ReplicaEvent>) {
    let mut kept: HashSet<Cid> = HashSet::new();
    while let Some(first) = rx.recv().await {
        tokio::time::sleep(COALESCE).await;
        let mut burst = vec![first];
        while let Ok(e) = rx.try_recv() {
            burst.push(e);
        }
        for event in last_of_each(burst) {
            apply(&replicator, &mut kept, event).await;
        }
    }
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

async fn apply(replicator: &Replicator, kept: &mut HashSet<Cid>, event: ReplicaEvent) {
    match event {
        ReplicaEvent::Keep { cid, factor } => {
            let live = replicator.record(&cid).is_some_and(|r| !r.removed);
            if live && !kept.contains(&cid) {
                // Someone else's replication (or this endpoint's from
                // before a restart): not this bucket's to change.
                return;
            }
            let same = replicator.record(&cid).is_some_and(|r| r.factor == factor);
            if live && same {
                return;
            }
            match replicator.keep_held(cid, Some(factor)).await {
                Ok(_) => {
                    kept.insert(cid);
                }
                Err(e) => tracing::warn!(%cid, "S3: replicating at factor {factor}: {e}"),
            }
        }
        ReplicaEvent::Released(cid) => {
            if kept.remove(&cid) && replicator.record(&cid).is_some_and(|r| !r.removed) {
                replicator.unpin(&cid).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_keeps_the_last_event_of_each_cid_in_order() {
        let cid = |n: u8| crate::block::CidFormat::V1_SHA2_256.cid(crate::block::RAW, &[n]);
        let keep = |n| ReplicaEvent::Keep {
            cid: cid(n),
            factor: 2,
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

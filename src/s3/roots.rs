//! Bucket roots: each committed change of the index moves its bucket's
//! tree (`tree.rs`) from one root to the next. [`Writer`] stages a move
//! (stores the new nodes, records the new root as a pending pin, pins it,
//! flushes the store), the index's transaction commits it beside the entry
//! (clearing the record, and recording the previous root as pending if
//! nothing names it any more), and [`Writer::finish_move`] unpins the
//! previous root. [`BucketIndex::reconcile`] settles what a crash left
//! between those steps, as it does for object pins. A replicated bucket's
//! committed root and object are reported to `replicas.rs`, as is every
//! pin the endpoint removes.
//!
//! Stored nodes are unpinned until their root's pin: the caller holds the
//! daemon's GC lock (read) across a change, as a PUT does for its blocks.

use super::index::{
    abort, decode_cid, failed, release, store_err, transaction_error, Abort, BucketIndex,
    ObjectEntry, Writer,
};
use super::replicas::ReplicaEvent;
use super::S3Error;
use crate::block::{Block, Cid};
use crate::store::PinKind;
use sled::transaction::{ConflictableTransactionError, Transactional, TransactionalTree};

/// A bucket root moving from `old` to `new`: the new nodes are stored and
/// `new` is pinned (`pinned`: by this change), not yet committed.
pub(super) struct RootMove {
    /// The bucket whose root moves.
    pub(super) bucket: String,
    pub(super) old: Option<Cid>,
    pub(super) new: Cid,
    pub(super) pinned: bool,
    /// The bucket's replication factor, if it is replicated: the new root
    /// and `named` are kept at it once the move commits (`replicas.rs`).
    pub(super) factor: Option<u8>,
    /// The object the change names, if any.
    pub(super) named: Option<Cid>,
}

/// Commits `m` as `bucket`'s root in a transaction over `roots`, `refs`
/// and `pending`; returns the old root when its last name is gone and the
/// endpoint pinned it (recorded as pending: the caller unpins it).
pub(super) fn move_root(
    roots: &TransactionalTree,
    refs: &TransactionalTree,
    pending: &TransactionalTree,
    bucket: &str,
    m: &RootMove,
) -> Result<Option<Cid>, ConflictableTransactionError<Abort>> {
    let now = match roots.get(bucket.as_bytes())? {
        Some(v) => Some(decode_cid(&v).map_err(abort)?),
        None => None,
    };
    if now != m.old {
        return Err(abort(S3Error::BadEntry {
            what: "bucket root",
            why: format!("the root of {bucket:?} changed during a write"),
        }));
    }
    if m.old == Some(m.new) {
        return Ok(None);
    }
    let new = m.new.to_bytes();
    roots.insert(bucket.as_bytes(), &new[..])?;
    super::index::bump(refs, &new, 1, m.pinned)?;
    pending.remove(&new[..])?;
    match m.old {
        Some(old) => release(refs, pending, &old),
        None => Ok(None),
    }
}

impl BucketIndex {
    /// Builds the tree of every bucket without one (made before trees
    /// were).
    pub(super) fn recover(&self) -> Result<(), S3Error> {
        let w = self.writer();
        let local: Vec<String> = self
            .buckets
            .iter()
            .keys()
            .map(|k| k.map(|k| String::from_utf8_lossy(&k).into_owned()))
            .collect::<Result<_, _>>()
            .map_err(failed("listing buckets"))?;
        for bucket in local {
            w.root_of(&bucket)?;
        }
        Ok(())
    }
}

impl Writer<'_> {
    /// Stores `blocks` and pins `new` unless something holds it already
    /// (recording the pin as pending first); flushes the store.
    pub(super) fn stage(
        &self,
        bucket: &str,
        old: Option<Cid>,
        new: Cid,
        blocks: Vec<Block>,
    ) -> Result<RootMove, S3Error> {
        let store = &self.index.store;
        let changed = old != Some(new);
        if !blocks.is_empty() {
            store.put_many(&mut blocks.into_iter()).map_err(store_err)?;
        }
        // A copy the replicator holds for another node is not ours to
        // count on: its tombstone would remove the pin.
        let pinned = changed
            && self.refs_of(&new)?.is_none()
            && (store.pin_of(&new).map_err(store_err)? != Some(PinKind::Recursive)
                || crate::replicate::owns_pin(&**store, &new));
        if pinned {
            self.intend_pin(&new)?;
            let pinning = store
                .pin(&new, PinKind::Recursive)
                .and_then(|()| crate::replicate::disown_pin(&**store, &new));
            if let Err(e) = pinning {
                self.drop_pin(&new);
                return Err(store_err(e));
            }
        }
        if changed {
            store.flush().map_err(store_err)?;
        }
        Ok(RootMove {
            bucket: bucket.to_string(),
            old,
            new,
            pinned,
            factor: None,
            named: None,
        })
    }

    /// Removes the endpoint's pin of `cid` (a root or an object nothing
    /// names) and its pending record; if the unpin fails, the record stays
    /// for the next open to settle.
    pub(super) fn drop_pin(&self, cid: &Cid) {
        self.drop_pins(std::slice::from_ref(cid));
    }

    /// [`drop_pin`](Self::drop_pin) of each of `cids`, the unpins in one
    /// journal write.
    pub(super) fn drop_pins(&self, cids: &[Cid]) {
        let store = &*self.index.store;
        // A CID this node also keeps for the network (a replica held for
        // another node, a `pin add --replication` root, a replicated
        // bucket's object): the pin goes back to the replicator, whose
        // record decides when it goes (a tombstone, a trim). A pin that is
        // the replicator's already was claimed since the endpoint pinned
        // it (`pin add --replication`): its replication is not the
        // endpoint's to end.
        // A CID the user pinned too since the endpoint did (`pin add`,
        // `add` of the same bytes: one pin a CID) keeps its pin, as it was
        // (the user's, or the replicator's if they replicate it): it was
        // not the endpoint's alone to remove. The mark stays: it only
        // keeps the endpoint from removing a pin, and `pin rm` clears it.
        let mut unpin = Vec::new();
        let mut released = Vec::new();
        for cid in cids {
            if crate::node::user_claimed(store, cid) {
                released.push((*cid, crate::replicate::owns_pin(store, cid)));
                continue;
            }
            if !crate::replicate::replicated_here(store, cid) {
                unpin.push(*cid);
                continue;
            }
            let claimed = crate::replicate::owns_pin(store, cid);
            match crate::replicate::own_pin(store, cid) {
                Ok(()) => released.push((*cid, claimed)),
                Err(e) => tracing::warn!("S3: unpinning {cid}: {e}"),
            }
        }
        match store.unpin_many(&unpin) {
            // Not pinned: the crash or failure came before the pin.
            Ok(_) => released.extend(unpin.iter().map(|c| (*c, false))),
            Err(e) => tracing::warn!("S3: unpinning {} CIDs: {e}", unpin.len()),
        }
        for (cid, claimed) in released {
            self.index.report(if claimed {
                ReplicaEvent::Claimed(cid)
            } else {
                ReplicaEvent::Released(cid)
            });
            if let Err(e) = self.settle(&cid) {
                tracing::warn!("S3: settling the pin of {cid}: {e}");
            }
        }
    }

    /// After the transaction of `m`: `outcome` is none when it did not
    /// commit (the new root's pin, if this move made it, is undone), else
    /// the old root to unpin, if any. Returns whether the commit is on
    /// disk (flushed before the old root's unpin): the caller need not
    /// flush it again.
    pub(super) fn finish_move(&self, m: &RootMove, outcome: Option<Option<Cid>>) -> bool {
        let mut durable = false;
        match outcome {
            None if m.pinned => self.drop_pin(&m.new),
            None => {}
            Some(released) => {
                // The commit must be on disk before the old root loses its
                // pin: else a crash could leave the index naming a root
                // whose pin is gone. A failed flush keeps the pin (its
                // pending record lets the next open settle it).
                if let Some(old) = released {
                    match self.index.flush() {
                        Ok(()) => {
                            durable = true;
                            self.drop_pin(&old);
                        }
                        Err(e) => tracing::warn!("S3: keeping the pin of {old}: {e}"),
                    }
                }
                if m.old != Some(m.new) {
                    self.index.changed.send_modify(|n| *n += 1);
                }
                self.report_move(m);
            }
        }
        durable
    }

    /// A replicated bucket's committed move `m`: its new root (and the
    /// object it names) kept at the bucket's factor (`replicas.rs`).
    pub(super) fn report_move(&self, m: &RootMove) {
        let Some(factor) = m.factor else {
            return;
        };
        // The root's size from the index's count (the bytes of the
        // bucket's objects): measuring its DAG would read every object of
        // the bucket at each write.
        match self.index.bucket_bytes(&m.bucket) {
            Ok(size) => self.index.report(ReplicaEvent::Keep {
                cid: m.new,
                factor,
                size: Some(size),
            }),
            Err(e) => tracing::warn!("S3: the size of {:?}: {e}", m.bucket),
        }
        if let Some(cid) = m.named {
            let size = None;
            self.index.report(ReplicaEvent::Keep { cid, factor, size });
        }
    }

    /// The root of `bucket`'s tree, built from its entries (and committed)
    /// when it has none yet.
    pub(super) fn root_of(&self, bucket: &str) -> Result<Cid, S3Error> {
        let i = self.index;
        if let Some(root) = i.root(bucket)? {
            return Ok(root);
        }
        let objects = i.objects(bucket)?;
        let mut tree = i.local_tree();
        let root = tree.build(objects.iter().map(|kv| {
            let (k, v) = kv.map_err(failed("listing objects"))?;
            Ok((k.to_vec(), ObjectEntry::decode(&v)?))
        }))?;
        let mut m = self.stage(bucket, None, root, tree.take_fresh(&root))?;
        m.factor = i.settings(bucket)?.replication;
        let result = (&i.roots, &i.refs, &i.pending)
            .transaction(|(roots, refs, pending)| move_root(roots, refs, pending, bucket, &m))
            .map_err(|e| transaction_error(e, bucket, ""));
        self.finish_move(&m, result.as_ref().ok().copied());
        result?;
        i.flush()?;
        Ok(root)
    }

    /// `bucket`'s tree with `key` set to `entry` (none: removed), staged.
    pub(super) fn change(
        &self,
        bucket: &str,
        key: &str,
        entry: Option<&ObjectEntry>,
    ) -> Result<RootMove, S3Error> {
        super::index::check_key(key)?;
        let old = self.root_of(bucket)?;
        let (new, fresh) = self.with_tree(|tree| {
            let new = tree.apply(&old, key.as_bytes(), entry)?;
            Ok::<_, S3Error>((new, tree.take_fresh(&new)))
        })?;
        let mut m = self.stage(bucket, Some(old), new, fresh)?;
        m.factor = self.index.settings(bucket)?.replication;
        m.named = entry.map(ObjectEntry::cid).transpose()?;
        Ok(m)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::s3::index::tests::entry;
    use crate::s3::index::DeleteBucket;
    use crate::s3::tree::Tree;
    use crate::store::MemoryStore;
    use crate::store::Store;
    use std::collections::BTreeMap;
    use std::sync::Arc;

    fn built(store: &Arc<dyn Store>, entries: &[(&str, &ObjectEntry)]) -> Cid {
        let mut tree = Tree::new(Arc::new(crate::dag::SharedStore(Arc::clone(store))));
        let sorted: BTreeMap<Vec<u8>, ObjectEntry> = entries
            .iter()
            .map(|(k, e)| (k.as_bytes().to_vec(), (*e).clone()))
            .collect();
        tree.build(sorted.into_iter().map(Ok)).unwrap()
    }

    #[test]
    fn roots_move_with_each_change_and_stay_pinned_while_named() {
        let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
        let index = BucketIndex::open(None, Arc::clone(&store)).unwrap();
        let mut changes = index.subscribe();
        let w = index.writer();
        assert!(w.create_bucket("one").unwrap());
        assert!(w.create_bucket("two").unwrap());
        let empty = index.root("one").unwrap().unwrap();
        assert_eq!(
            index.root("two").unwrap(),
            Some(empty),
            "the same empty tree"
        );
        assert_eq!(store.pin_of(&empty).unwrap(), Some(PinKind::Recursive));
        assert_eq!(w.refs_of(&empty).unwrap().unwrap().count, 2);

        let (a, b) = (entry(b"a"), entry(b"b"));
        w.put("one", "k/a", &a, true).unwrap();
        w.put("one", "k/b", &b, true).unwrap();
        let root = index.root("one").unwrap().unwrap();
        assert_eq!(root, built(&store, &[("k/a", &a), ("k/b", &b)]));
        assert_eq!(store.pin_of(&root).unwrap(), Some(PinKind::Recursive));
        assert_eq!(
            store.pin_of(&empty).unwrap(),
            Some(PinKind::Recursive),
            "two's"
        );
        assert!(changes.has_changed().unwrap());
        changes.mark_unchanged();
        // Every node the root reaches is stored: the tree reads back.
        let mut tree = index.local_tree();
        assert_eq!(tree.get(&root, b"k/b").unwrap(), Some(b.clone()));

        // Deleting a missing key moves nothing.
        assert_eq!(w.delete("one", "nope").unwrap(), None);
        assert_eq!(index.root("one").unwrap(), Some(root));
        assert!(!changes.has_changed().unwrap());
        w.delete("one", "k/b").unwrap();
        let one_key = index.root("one").unwrap().unwrap();
        assert_eq!(one_key, built(&store, &[("k/a", &a)]));
        assert_eq!(
            store.pin_of(&root).unwrap(),
            None,
            "the old root's pin went"
        );
        w.delete("one", "k/a").unwrap();
        assert_eq!(index.root("one").unwrap(), Some(empty));
        assert_eq!(w.delete_bucket("two").unwrap(), DeleteBucket::Deleted);
        assert_eq!(
            store.pin_of(&empty).unwrap(),
            Some(PinKind::Recursive),
            "one's"
        );
        assert_eq!(w.delete_bucket("one").unwrap(), DeleteBucket::Deleted);
        assert_eq!(store.pin_of(&empty).unwrap(), None);
        assert_eq!(index.root("one").unwrap(), None);
    }

    #[test]
    fn opening_undoes_an_uncommitted_root_and_gives_old_buckets_a_tree() {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
        let a = entry(b"a");
        let stray = {
            let index = BucketIndex::open(Some(dir.path()), Arc::clone(&store)).unwrap();
            let w = index.writer();
            w.create_bucket("old").unwrap();
            w.put("old", "x", &a, true).unwrap();
            // A bucket from before trees: no root recorded.
            index.roots.clear().unwrap();
            // A change staged (nodes stored, root pinned) but never
            // committed, as a crash would leave it.
            let mut tree = index.local_tree();
            let root = index.root("old").unwrap();
            assert_eq!(root, None);
            let built = tree.build([Ok((b"y".to_vec(), a.clone()))]).unwrap();
            let m = w
                .stage("old", None, built, tree.take_fresh(&built))
                .unwrap();
            assert!(m.pinned);
            built
        };
        assert_eq!(store.pin_of(&stray).unwrap(), Some(PinKind::Recursive));
        let index = BucketIndex::open(Some(dir.path()), Arc::clone(&store)).unwrap();
        let unpinned = index
            .reconcile(&mut |cid| store.unpin(cid).map(|_| ()).map_err(store_err))
            .unwrap();
        assert_eq!(unpinned, vec![stray]);
        assert_eq!(store.pin_of(&stray).unwrap(), None, "unpinned on open");
        assert_eq!(
            index.root("old").unwrap(),
            Some(built(&store, &[("x", &a)]))
        );
    }
}

//! The replication records this node keeps: in memory for reads, and in
//! the store's metadata (under [`record::KEY_PREFIX`]) for restarts.
//!
//! A tombstone (a removed root's record) is kept until `tombstone_ttl`
//! after this node learned it, then forgotten ([`RecordBook::expire`], run
//! by each repair round): when it was learned is kept beside it, under
//! `repltomb/{root}` (unix seconds, 8 bytes big-endian). A tombstone stored
//! by an earlier version, without that time, counts from when it was
//! loaded, and is given one by the next expiry pass.
//!
//! The trade-off, as any grace period's: a holder that was away for longer
//! than the TTL comes back with the live record and places the root again,
//! since nobody remembers it was removed. A new pin of a root whose
//! tombstone this node forgot wins over the tombstone others may still
//! keep: its record's version starts from the clock
//! ([`Record::started`]).

use super::record::{self, Record};
use crate::block::Cid;
use crate::store::{Store, StoreError};
use libp2p::PeerId;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Metadata key prefix of the times tombstones were learned.
const TOMBSTONE_PREFIX: &str = "repltomb/";

fn tombstone_key(root: &Cid) -> String {
    format!("{TOMBSTONE_PREFIX}{root}")
}

/// When a tombstone was learned (unix seconds), and whether that time is
/// stored.
#[derive(Clone, Copy)]
struct Learned {
    at: u64,
    stored: bool,
}

/// Every replication record this node knows, by root.
pub(crate) struct RecordBook {
    store: Arc<dyn Store>,
    /// Read without waiting for a write's flush.
    records: Mutex<HashMap<Cid, Record>>,
    /// Held by a change from reading the current record until the new one
    /// is stored and listed (see [`RecordBook::update`]).
    writing: Mutex<()>,
    /// When each tombstone was learned.
    removed_at: Mutex<HashMap<Cid, Learned>>,
}

impl RecordBook {
    /// Reads the records kept in `store`; one that does not decode is
    /// skipped with a warning.
    pub(crate) fn load(store: Arc<dyn Store>) -> Result<RecordBook, StoreError> {
        let mut records = HashMap::new();
        for (_, bytes) in store.meta_scan(record::KEY_PREFIX)? {
            match Record::decode(&bytes) {
                Ok(r) => {
                    records.insert(r.root, r);
                }
                Err(e) => tracing::warn!("ignoring a stored replication record: {e}"),
            }
        }
        let mut removed_at = HashMap::new();
        for (key, bytes) in store.meta_scan(TOMBSTONE_PREFIX)? {
            let root = key.strip_prefix(TOMBSTONE_PREFIX).unwrap_or_default();
            if let (Ok(root), Ok(at)) = (
                crate::block::cid_from_text(root),
                <[u8; 8]>::try_from(bytes.as_slice()),
            ) {
                let at = u64::from_be_bytes(at);
                removed_at.insert(root, Learned { at, stored: true });
            }
        }
        let now = super::unix_now();
        for r in records.values().filter(|r| r.removed) {
            removed_at.entry(r.root).or_insert(Learned {
                at: now,
                stored: false,
            });
        }
        Ok(RecordBook {
            store,
            records: Mutex::new(records),
            writing: Mutex::new(()),
            removed_at: Mutex::new(removed_at),
        })
    }

    fn records(&self) -> std::sync::MutexGuard<'_, HashMap<Cid, Record>> {
        self.records.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The record of `root`, if any.
    pub(crate) fn get(&self, root: &Cid) -> Option<Record> {
        self.records().get(root).cloned()
    }

    /// Every root with a record.
    pub(crate) fn roots(&self) -> Vec<Cid> {
        self.records().keys().copied().collect()
    }

    /// Every holder of any root but `me`.
    pub(crate) fn holders_besides(&self, me: &PeerId) -> Vec<PeerId> {
        self.records()
            .values()
            .flat_map(|r| r.holders.iter().copied())
            .filter(|p| p != me)
            .collect()
    }

    /// Replaces the record of `root` with what `change` makes of the
    /// current one (`None`: there is none yet); `change` returning `None`
    /// leaves it as it is. Returns the record after the change.
    ///
    /// Atomic against every other change: the current record is read, the
    /// new one stored and listed under one lock, so two changes made at
    /// once (a peer's record merged while a repair lists a new holder)
    /// both survive. The store write flushes: call this from a blocking
    /// thread. A record the store fails to keep is still listed (and
    /// stored again with its next change); the failure is logged.
    pub(crate) fn update(
        &self,
        root: &Cid,
        change: impl FnOnce(Option<&Record>) -> Option<Record>,
    ) -> Option<Record> {
        let _writing = self.writing.lock().unwrap_or_else(|e| e.into_inner());
        let current = self.get(root);
        let Some(next) = change(current.as_ref()) else {
            return current;
        };
        let was_removed = current.as_ref().is_some_and(|r| r.removed);
        if next.removed && !was_removed {
            // Learned before it is stored: a crash between leaves a time
            // for a live record, which nothing reads.
            self.learned(root, Some(super::unix_now()));
        }
        if let Err(e) = self
            .store
            .meta_put(&Record::key(root), Some(&next.encode()))
        {
            tracing::warn!(%root, "saving the replication record: {e}");
        }
        if was_removed && !next.removed {
            self.learned(root, None);
        }
        self.records().insert(*root, next.clone());
        Some(next)
    }

    /// Stores (or, with none, drops) when the tombstone of `root` was
    /// learned.
    fn learned(&self, root: &Cid, at: Option<u64>) {
        let bytes = at.map(u64::to_be_bytes);
        let stored = self
            .store
            .meta_put(&tombstone_key(root), bytes.as_ref().map(|b| &b[..]))
            .map_err(|e| tracing::warn!(%root, "saving when a tombstone was learned: {e}"))
            .is_ok();
        let mut removed_at = self.removed_at.lock().unwrap_or_else(|e| e.into_inner());
        match at {
            Some(at) => {
                removed_at.insert(*root, Learned { at, stored });
            }
            None => {
                removed_at.remove(root);
            }
        }
    }

    /// Forgets every tombstone learned `ttl` or more before `now` (unix
    /// seconds), and gives a stored time to those that had none; returns
    /// the roots forgotten. Writes to the store: call this from a blocking
    /// thread. Record changes wait only while one root is checked and
    /// dropped, not for the whole pass (storing the missing times of many
    /// tombstones after an upgrade is a sync each).
    pub(crate) fn expire(&self, ttl: Duration, now: u64) -> Vec<Cid> {
        let learned: Vec<(Cid, Learned)> = self
            .removed_at
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|(c, l)| (*c, *l))
            .collect();
        let mut forgotten = Vec::new();
        for (root, l) in learned {
            let young = now.saturating_sub(l.at) < ttl.as_secs();
            if young && !l.stored {
                // Unlocked: should the root come back meanwhile, the time
                // stays beside a live record until the next pass drops it.
                if self.get(&root).is_some_and(|r| r.removed) {
                    self.learned(&root, Some(l.at));
                    continue;
                }
            }
            let _writing = self.writing.lock().unwrap_or_else(|e| e.into_inner());
            if !self.get(&root).is_some_and(|r| r.removed) {
                self.learned(&root, None);
                continue;
            }
            if young {
                continue;
            }
            if let Err(e) = self.store.meta_put(&Record::key(&root), None) {
                tracing::warn!(%root, "forgetting a tombstone: {e}");
                continue;
            }
            self.records().remove(&root);
            self.learned(&root, None);
            forgotten.push(root);
        }
        forgotten
    }

    /// Merges a record from elsewhere (a peer, or one this node sent a
    /// peer) into ours: for roots we know, or any when `adopt`ing. Returns
    /// ours after the merge (atomic, see [`update`](Self::update)).
    pub(crate) fn merge(&self, theirs: &Record, adopt: bool) -> Option<Record> {
        self.update(&theirs.root, |mine| match mine {
            Some(mine) => {
                let mut merged = mine.clone();
                merged.merge(theirs).then_some(merged)
            }
            None => adopt.then(|| theirs.clone()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::block::{HashAlg, RAW};
    use crate::store::{DiskStore, DiskStoreOptions};

    /// A tombstone is kept for the TTL after it was learned (across a
    /// reload), then forgotten in memory and in the store; a live record
    /// never expires, and one that is removed again later starts anew.
    #[test]
    fn tombstones_are_forgotten_after_their_ttl() {
        const TTL: Duration = Duration::from_secs(3600);
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn Store> =
            Arc::new(DiskStore::open(dir.path(), DiskStoreOptions::default()).unwrap());
        let root = |n: u8| Cid::new_v1(RAW, HashAlg::Sha2_256.digest(&[n]));
        let me = PeerId::random();
        let book = RecordBook::load(Arc::clone(&store)).unwrap();
        let remove = |book: &RecordBook, r: Cid| {
            book.update(&r, |now| {
                let mut rec = now.cloned().unwrap_or_else(|| Record::new(r, 2, 2, 1, me));
                rec.removed = true;
                rec.bump();
                Some(rec)
            })
        };
        book.merge(&Record::new(root(1), 2, 2, 1, me), true);
        book.merge(&Record::new(root(2), 2, 2, 1, me), true);
        remove(&book, root(2));
        let learned = super::super::unix_now();
        drop(book);
        let book = RecordBook::load(Arc::clone(&store)).unwrap();
        assert!(book.expire(TTL, learned + 60).is_empty(), "too young");
        assert_eq!(book.expire(TTL, learned + TTL.as_secs()), vec![root(2)]);
        assert!(book.get(&root(2)).is_none());
        assert!(book.get(&root(1)).is_some(), "live records stay");
        assert_eq!(store.meta_get(&Record::key(&root(2))).unwrap(), None);
        assert_eq!(store.meta_get(&tombstone_key(&root(2))).unwrap(), None);
        let book = RecordBook::load(Arc::clone(&store)).unwrap();
        assert!(book.get(&root(2)).is_none(), "gone from the store too");
        // A tombstone stored without a time counts from the load.
        let mut old = Record::new(root(3), 2, 2, 1, me);
        old.removed = true;
        store
            .meta_put(&Record::key(&root(3)), Some(&old.encode()))
            .unwrap();
        let book = RecordBook::load(Arc::clone(&store)).unwrap();
        let loaded = super::super::unix_now();
        assert!(book.expire(TTL, loaded + 60).is_empty());
        assert!(store.meta_get(&tombstone_key(&root(3))).unwrap().is_some());
        assert_eq!(book.expire(TTL, loaded + TTL.as_secs() + 1), vec![root(3)]);
        // Removed long ago (its time stored so), pinned again, removed
        // again: the TTL counts from the second removal.
        remove(&book, root(4));
        let long_ago = super::super::unix_now() - 2 * TTL.as_secs();
        store
            .meta_put(&tombstone_key(&root(4)), Some(&long_ago.to_be_bytes()))
            .unwrap();
        let book = RecordBook::load(Arc::clone(&store)).unwrap();
        book.update(&root(4), |now| {
            let mut rec = now.cloned()?;
            rec.removed = false;
            rec.bump();
            Some(rec)
        });
        assert!(!book.get(&root(4)).unwrap().removed);
        remove(&book, root(4));
        let again = super::super::unix_now();
        assert!(book.expire(TTL, again + 60).is_empty(), "counted anew");
        assert!(book.get(&root(4)).unwrap().removed);
        assert_eq!(book.expire(TTL, again + TTL.as_secs()), vec![root(4)]);
    }

    /// Two peers' records of one root arrive at once: neither update may be
    /// lost, in memory or in the store. Every other round the two are of
    /// one version with different holders (the holders unite), else of two
    /// versions (the newer wins). A disk store flushes on every write,
    /// which leaves a merge time to interleave with another.
    #[test]
    fn concurrent_merges_of_one_root_lose_no_update() {
        const ROUNDS: u32 = 200;
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn Store> =
            Arc::new(DiskStore::open(dir.path(), DiskStoreOptions::default()).unwrap());
        let book = Arc::new(RecordBook::load(Arc::clone(&store)).unwrap());
        let (a, b, c) = (PeerId::random(), PeerId::random(), PeerId::random());
        let mut lost = 0;
        for round in 0..ROUNDS {
            let root = Cid::new_v1(RAW, HashAlg::Sha2_256.digest(&round.to_be_bytes()));
            let base = Record::new(root, 3, 4, 10, a);
            book.merge(&base, true);
            let mut with_b = base.clone();
            with_b.holders.insert(b);
            with_b.bump();
            let mut with_c = base.clone();
            with_c.holders.insert(c);
            with_c.bump();
            let expected = if round % 2 == 0 {
                let mut both = with_b.clone();
                both.holders.insert(c);
                both
            } else {
                with_c.bump();
                with_c.clone()
            };
            let start = Arc::new(std::sync::Barrier::new(2));
            let merges: Vec<_> = [with_b, with_c]
                .into_iter()
                .map(|theirs| {
                    let (book, start) = (Arc::clone(&book), Arc::clone(&start));
                    std::thread::spawn(move || {
                        start.wait();
                        book.merge(&theirs, false);
                    })
                })
                .collect();
            for m in merges {
                m.join().unwrap();
            }
            let kept = book.get(&root);
            let stored = store
                .meta_get(&Record::key(&root))
                .unwrap()
                .map(|bytes| Record::decode(&bytes).unwrap());
            if kept.as_ref() != Some(&expected) || stored.as_ref() != Some(&expected) {
                lost += 1;
            }
        }
        assert_eq!(lost, 0, "{lost} of {ROUNDS} rounds lost an update");
    }
}

//! The replication records this node keeps: in memory for reads, and in
//! the store's metadata (under [`record::KEY_PREFIX`]) for restarts.

use super::record::{self, Record};
use crate::block::Cid;
use crate::store::{Store, StoreError};
use libp2p::PeerId;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Every replication record this node knows, by root.
pub(crate) struct RecordBook {
    store: Arc<dyn Store>,
    /// Read without waiting for a write's flush.
    records: Mutex<HashMap<Cid, Record>>,
    /// Held by a change from reading the current record until the new one
    /// is stored and listed (see [`RecordBook::update`]).
    writing: Mutex<()>,
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
        Ok(RecordBook {
            store,
            records: Mutex::new(records),
            writing: Mutex::new(()),
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
        if let Err(e) = self
            .store
            .meta_put(&Record::key(root), Some(&next.encode()))
        {
            tracing::warn!(%root, "saving the replication record: {e}");
        }
        self.records().insert(*root, next.clone());
        Some(next)
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

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
    records: Mutex<HashMap<Cid, Record>>,
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

    /// Stores `rec` as its root's record.
    pub(crate) fn save(&self, rec: &Record) {
        if let Err(e) = self
            .store
            .meta_put(&Record::key(&rec.root), Some(&rec.encode()))
        {
            tracing::warn!(root = %rec.root, "saving the replication record: {e}");
        }
        self.records().insert(rec.root, rec.clone());
    }

    /// Merges a record a peer sent into ours (for roots we know, or when
    /// `adopt`ing one we do not); returns ours after the merge.
    pub(crate) fn merge(&self, theirs: &Record, adopt: bool) -> Option<Record> {
        let st = self.records();
        let merged = match st.get(&theirs.root) {
            Some(mine) => {
                let mut m = mine.clone();
                if !m.merge(theirs) {
                    return Some(m);
                }
                m
            }
            None if adopt => theirs.clone(),
            None => return None,
        };
        drop(st);
        self.save(&merged);
        Some(merged)
    }
}

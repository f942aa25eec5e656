//! In-memory [`Store`]: blocks and pins in maps behind a lock. Used by unit
//! tests and netsim; passes the same conformance suite as the disk store.

use super::{verified, PinKind, Result, Store, StoreError, StoreStat, StoredBlock, SweepReport};
use crate::block::{verify, Block, Cid, Multihash};
use bytes::Bytes;
use std::collections::{BTreeMap, HashSet};
use std::ops::Bound;
use std::sync::RwLock;

#[derive(Default)]
struct Inner {
    blocks: BTreeMap<Vec<u8>, Bytes>,
    pins: BTreeMap<Vec<u8>, (Cid, PinKind)>,
    meta: BTreeMap<String, Vec<u8>>,
}

/// A [`Store`] that keeps everything in RAM.
#[derive(Default)]
pub struct MemoryStore {
    inner: RwLock<Inner>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Inner> {
        self.inner.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Inner> {
        self.inner.write().unwrap_or_else(|e| e.into_inner())
    }

    /// Replaces the stored bytes of a block without any check: lets tests
    /// simulate corruption.
    #[cfg(test)]
    pub(crate) fn corrupt_for_test(&self, cid: &Cid, data: Bytes) {
        self.write().blocks.insert(cid.hash().to_bytes(), data);
    }
}

impl Store for MemoryStore {
    fn put_many(&self, blocks: &mut dyn Iterator<Item = Block>) -> Result<u64> {
        let mut new_bytes = 0;
        for block in blocks {
            block.check_size()?;
            let key = block.cid().hash().to_bytes();
            let mut inner = self.write();
            if let std::collections::btree_map::Entry::Vacant(slot) = inner.blocks.entry(key) {
                new_bytes += block.data().len() as u64;
                slot.insert(block.data().clone());
            }
        }
        Ok(new_bytes)
    }

    fn get(&self, cid: &Cid) -> Result<Option<Block>> {
        let data = self.read().blocks.get(&cid.hash().to_bytes()).cloned();
        data.map(|data| verified(cid, data)).transpose()
    }

    fn has(&self, cid: &Cid) -> Result<bool> {
        Ok(self.read().blocks.contains_key(&cid.hash().to_bytes()))
    }

    fn size_of(&self, cid: &Cid) -> Result<Option<u64>> {
        Ok(self
            .read()
            .blocks
            .get(&cid.hash().to_bytes())
            .map(|d| d.len() as u64))
    }

    fn for_each_block(&self, f: &mut dyn FnMut(StoredBlock) -> Result<()>) -> Result<()> {
        for entry in self.blocks_after(None, usize::MAX)? {
            f(entry)?;
        }
        Ok(())
    }

    fn blocks_after(&self, after: Option<&Multihash>, limit: usize) -> Result<Vec<StoredBlock>> {
        let start = match after {
            Some(mh) => Bound::Excluded(mh.to_bytes()),
            None => Bound::Unbounded,
        };
        let inner = self.read();
        inner
            .blocks
            .range((start, Bound::Unbounded))
            .take(limit)
            .map(|(key, data)| {
                let multihash =
                    Multihash::from_bytes(key).map_err(|_| StoreError::BadIndexEntry {
                        what: "block key",
                        key: key.clone(),
                    })?;
                Ok(StoredBlock {
                    multihash,
                    len: data.len() as u64,
                })
            })
            .collect()
    }

    fn read_raw(&self, mh: &Multihash) -> Result<Option<Bytes>> {
        Ok(self.read().blocks.get(&mh.to_bytes()).cloned())
    }

    fn pin(&self, cid: &Cid, kind: PinKind) -> Result<()> {
        self.write().pins.insert(cid.to_bytes(), (*cid, kind));
        Ok(())
    }

    fn unpin(&self, cid: &Cid) -> Result<PinKind> {
        self.write()
            .pins
            .remove(&cid.to_bytes())
            .map(|(_, k)| k)
            .ok_or(StoreError::NotPinned { cid: *cid })
    }

    fn pins(&self) -> Result<Vec<(Cid, PinKind)>> {
        Ok(self.read().pins.values().cloned().collect())
    }

    fn meta_get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        Ok(self.read().meta.get(key).cloned())
    }

    fn remove(&self, mh: &Multihash) -> Result<bool> {
        Ok(self.write().blocks.remove(&mh.to_bytes()).is_some())
    }

    fn replace(&self, block: &Block) -> Result<()> {
        block.check_size()?;
        verify(block.cid(), block.data())?;
        self.write()
            .blocks
            .insert(block.cid().hash().to_bytes(), block.data().clone());
        Ok(())
    }

    fn used_bytes(&self) -> u64 {
        self.read().blocks.values().map(|b| b.len() as u64).sum()
    }

    fn meta_scan(&self, prefix: &str) -> Result<Vec<(String, Vec<u8>)>> {
        Ok(self
            .read()
            .meta
            .range(prefix.to_string()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect())
    }

    fn meta_put(&self, key: &str, value: Option<&[u8]>) -> Result<()> {
        let mut inner = self.write();
        match value {
            Some(v) => inner.meta.insert(key.to_string(), v.to_vec()),
            None => inner.meta.remove(key),
        };
        Ok(())
    }

    fn pin_of(&self, cid: &Cid) -> Result<Option<PinKind>> {
        Ok(self.read().pins.get(&cid.to_bytes()).map(|(_, k)| *k))
    }

    fn sweep(&self, live: &HashSet<Multihash>) -> Result<SweepReport> {
        let mut inner = self.write();
        let mut report = SweepReport::default();
        inner.blocks.retain(|key, data| {
            let keep = Multihash::from_bytes(key)
                .map(|mh| live.contains(&mh))
                .unwrap_or(false);
            if !keep {
                report.removed_blocks += 1;
                report.removed_bytes += data.len() as u64;
            }
            keep
        });
        report.reclaimed_bytes = report.removed_bytes;
        Ok(report)
    }

    fn stat(&self) -> Result<StoreStat> {
        let inner = self.read();
        let block_bytes: u64 = inner.blocks.values().map(|d| d.len() as u64).sum();
        Ok(StoreStat {
            blocks: inner.blocks.len() as u64,
            block_bytes,
            pins: inner.pins.len() as u64,
            stored_bytes: block_bytes,
            segments: 0,
        })
    }

    fn flush(&self) -> Result<()> {
        Ok(())
    }
}

//! A store that fails on purpose: [`FaultyStore`] wraps another [`Store`]
//! and makes reads of chosen blocks fail as a bad disk does, with EIO or
//! with a flipped bit. Tests and netsim inject storage faults through it;
//! everything else passes through to the wrapped store unchanged.
//!
//! A fault belongs to the stored copy, not to the block: a copy written
//! again ([`Store::replace`]) or forgotten ([`Store::remove`]) is healthy.

use super::{verified, PinKind, Result, Store, StoreError, StoredBlock, SweepReport};
use crate::block::{Block, Cid, Multihash};
use bytes::Bytes;
use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, RwLock};

/// How a stored copy has gone bad.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum StorageFault {
    /// Every read of it fails with EIO (a bad sector); its bytes are intact.
    Unreadable,
    /// One bit of its bytes is flipped (bit rot): reads return the wrong
    /// bytes, which verification proves corrupt.
    FlippedBit,
}

/// A [`Store`] whose reads of chosen blocks fail (see [`StorageFault`]).
pub struct FaultyStore {
    inner: Arc<dyn Store>,
    faults: RwLock<HashMap<Multihash, StorageFault>>,
}

/// The bytes of a copy with one bit flipped (a byte added to an empty one,
/// which has no bit to flip).
fn flipped(data: &Bytes) -> Bytes {
    let mut v = data.to_vec();
    match v.get_mut(data.len() / 2) {
        Some(b) => *b ^= 0x10,
        None => v.push(0),
    }
    Bytes::from(v)
}

impl FaultyStore {
    /// `inner`, with no fault yet.
    pub fn new(inner: Arc<dyn Store>) -> FaultyStore {
        FaultyStore {
            inner,
            faults: RwLock::new(HashMap::new()),
        }
    }

    /// The wrapped store.
    pub fn inner(&self) -> &Arc<dyn Store> {
        &self.inner
    }

    /// From now on, reads of the stored copy of `mh` go wrong as `fault`
    /// says.
    pub fn inject(&self, mh: Multihash, fault: StorageFault) {
        self.faults
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(mh, fault);
    }

    /// The copy of `mh` reads well again (an EIO that went away); returns
    /// the fault it had.
    pub fn heal(&self, mh: &Multihash) -> Option<StorageFault> {
        self.faults
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(mh)
    }

    /// The faults in effect, by block.
    pub fn faults(&self) -> HashMap<Multihash, StorageFault> {
        self.faults
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The fault in effect on the copy of `mh`, if any.
    pub fn fault(&self, mh: &Multihash) -> Option<StorageFault> {
        self.faults
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(mh)
            .copied()
    }

    /// What a read of an unreadable copy fails with.
    fn eio(cid: Cid) -> StoreError {
        StoreError::Io {
            path: PathBuf::from("<faulty store>"),
            cid: Some(cid),
            source: std::io::Error::from_raw_os_error(libc::EIO),
        }
    }

    /// The copy of `cid`'s multihash as a read finds it, unverified.
    fn read(&self, cid: &Cid) -> Result<Option<Bytes>> {
        let mh = cid.hash();
        match self.fault(mh) {
            None => self.inner.read_raw(mh),
            Some(StorageFault::Unreadable) => Err(Self::eio(*cid)),
            Some(StorageFault::FlippedBit) => Ok(self.inner.read_raw(mh)?.map(|d| flipped(&d))),
        }
    }
}

impl Store for FaultyStore {
    super::pass_through_store_methods!(inner);

    fn put_many(&self, blocks: &mut dyn Iterator<Item = Block>) -> Result<u64> {
        self.inner.put_many(blocks)
    }

    fn put_many_uncached(&self, blocks: &mut dyn Iterator<Item = Block>) -> Result<u64> {
        self.inner.put_many_uncached(blocks)
    }

    fn get(&self, cid: &Cid) -> Result<Option<Block>> {
        if self.fault(cid.hash()).is_none() {
            return self.inner.get(cid);
        }
        self.read(cid)?.map(|d| verified(cid, d)).transpose()
    }

    fn has(&self, cid: &Cid) -> Result<bool> {
        self.inner.has(cid)
    }

    fn size_of(&self, cid: &Cid) -> Result<Option<u64>> {
        self.inner.size_of(cid)
    }

    fn for_each_block(&self, f: &mut dyn FnMut(StoredBlock) -> Result<()>) -> Result<()> {
        self.inner.for_each_block(f)
    }

    fn blocks_after(&self, after: Option<&Multihash>, limit: usize) -> Result<Vec<StoredBlock>> {
        self.inner.blocks_after(after, limit)
    }

    fn read_raw(&self, mh: &Multihash) -> Result<Option<Bytes>> {
        self.read(&Cid::new_v1(crate::block::RAW, *mh))
    }

    fn sweep(&self, live: &HashSet<Multihash>) -> Result<SweepReport> {
        let report = self.inner.sweep(live)?;
        self.faults
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|mh, _| live.contains(mh));
        Ok(report)
    }

    fn remove(&self, mh: &Multihash) -> Result<bool> {
        let removed = self.inner.remove(mh)?;
        self.heal(mh);
        Ok(removed)
    }

    fn replace(&self, block: &Block) -> Result<()> {
        self.inner.replace(block)?;
        self.heal(block.cid().hash());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::block::RAW;
    use crate::store::conformance::block;
    use crate::store::{Corruption, MemoryStore};

    fn store_with(blocks: &[Block]) -> FaultyStore {
        let s = FaultyStore::new(Arc::new(MemoryStore::new()));
        s.put_many(&mut blocks.iter().cloned()).unwrap();
        s
    }

    #[test]
    fn an_unreadable_copy_fails_with_eio_and_keeps_its_bytes() {
        let (a, b) = (block(1, 4000, RAW), block(2, 4000, RAW));
        let s = store_with(&[a.clone(), b.clone()]);
        s.inject(*a.cid().hash(), StorageFault::Unreadable);
        for r in [
            s.get(a.cid()).map(|_| ()),
            s.read_raw(a.cid().hash()).map(|_| ()),
        ] {
            match r {
                Err(StoreError::Io { cid, source, .. }) => {
                    assert_eq!(cid.map(|c| *c.hash()), Some(*a.cid().hash()));
                    assert_eq!(source.raw_os_error(), Some(libc::EIO));
                }
                other => panic!("expected EIO, got {other:?}"),
            }
        }
        // Listed, counted and present all the same; other blocks read.
        assert!(s.has(a.cid()).unwrap());
        assert_eq!(s.get(b.cid()).unwrap().as_ref(), Some(&b));
        assert_eq!(s.heal(a.cid().hash()), Some(StorageFault::Unreadable));
        assert_eq!(s.get(a.cid()).unwrap().as_ref(), Some(&a));
    }

    #[test]
    fn a_flipped_bit_is_proven_corrupt_until_the_copy_is_replaced() {
        let a = block(3, 5000, RAW);
        let s = store_with(std::slice::from_ref(&a));
        s.inject(*a.cid().hash(), StorageFault::FlippedBit);
        assert!(matches!(
            s.get(a.cid()),
            Err(StoreError::Corrupt {
                reason: Corruption::HashMismatch,
                ..
            })
        ));
        let raw = s.read_raw(a.cid().hash()).unwrap().unwrap();
        assert_eq!(raw.len(), a.data().len());
        assert_ne!(&raw, a.data());
        s.replace(&a).unwrap();
        assert!(s.faults().is_empty());
        assert_eq!(s.get(a.cid()).unwrap().as_ref(), Some(&a));
    }
}

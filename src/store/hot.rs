//! The memory tier: verified blocks kept in memory for the reads that come
//! back to them ([`HotStore`], `[store] hot_cache` in `config.toml`).
//!
//! Content addressing makes this cache trivially correct: the bytes under a
//! multihash never change, so an entry is never stale. It is filled only by
//! reads (`get`) of blocks the store beneath has just verified, so a corrupt
//! copy on disk is never admitted, and emptied of a block when the store
//! forgets or replaces it. A block is admitted at its second read within a
//! recent window (`Doorkeeper`), so a scan that reads each block once
//! passes by without evicting anything; among admitted blocks, admission
//! and eviction are W-TinyLFU (`moka`).
//! Only blocks up to [`HotCache::block_max`] are admitted (small files and
//! the top of large ones), so that streaming a large file costs no memory
//! here; a larger block up to [`HotCache::file_max`] only when it is a
//! whole file by itself, read as the root of a read
//! ([`Store::offer_whole_file`]), never as a leaf of a larger file. The
//! whole cache is bounded by its byte weight, and counts against the
//! process's memory: the daemon's memory guard
//! (`daemon::memory::MemoryGuard`) lowers [`HotCache::allow`] as the
//! process nears its limit and empties it ([`HotCache::shed`]) before the
//! limit refuses connections.

use super::{
    Block, Cid, Multihash, PinKind, Result, SegmentUsage, Store, StoreStat, StoredBlock,
    SweepReport,
};
use bytes::Bytes;
use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

/// What the memory tier has done, for metrics.
#[derive(Debug, Default)]
pub struct HotStats {
    /// Reads answered from memory.
    pub hits: AtomicU64,
    /// Reads that went to the store beneath.
    pub misses: AtomicU64,
    /// Bytes answered from memory.
    pub hit_bytes: AtomicU64,
    /// Times the cache was emptied because memory ran short.
    pub pressure_sheds: AtomicU64,
    /// Bytes dropped by those (the cache's weight each time).
    pub pressure_dropped_bytes: AtomicU64,
}

/// The cache itself, shared by the store that fills it and whoever reports
/// on it (the node's metrics).
pub struct HotCache {
    blocks: moka::sync::Cache<Multihash, Bytes>,
    seen: Doorkeeper,
    capacity: u64,
    block_max: u64,
    file_max: u64,
    /// What the cache may grow to now (at most `capacity`): lowered while
    /// the process is short of memory, 0 while it sheds.
    allowed: AtomicU64,
    stats: HotStats,
}

/// The blocks read once lately: the fingerprints (64-bit hashes) of the
/// blocks read in this window and the one before, a window being as many
/// blocks as the cache could hold of 4 KiB ones (1,024 to 1,048,576). A
/// block is admitted when it is found there: a second read within one to
/// two windows. Exact up to 64-bit collisions, so a scan of any length
/// that reads each block once admits nothing.
struct Doorkeeper {
    windows: std::sync::Mutex<[HashSet<u64>; 2]>,
    window: usize,
}

impl Doorkeeper {
    fn new(capacity_bytes: u64) -> Doorkeeper {
        let window =
            usize::try_from((capacity_bytes / 4096).clamp(1024, 1 << 20)).unwrap_or(1 << 20);
        Doorkeeper {
            windows: std::sync::Mutex::new([HashSet::new(), HashSet::new()]),
            window,
        }
    }

    /// Whether `mh` was seen lately; records it if not.
    fn seen_before(&self, mh: &Multihash) -> bool {
        use std::hash::{BuildHasher, BuildHasherDefault, DefaultHasher};
        let print = BuildHasherDefault::<DefaultHasher>::default().hash_one(mh);
        let mut w = self.windows.lock().unwrap_or_else(|e| e.into_inner());
        if w[0].contains(&print) || w[1].contains(&print) {
            return true;
        }
        if w[0].len() >= self.window {
            // The older window goes; this one becomes the older.
            w.swap(0, 1);
            w[0].clear();
        }
        w[0].insert(print);
        false
    }
}

impl std::fmt::Debug for HotCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HotCache")
            .field("bytes", &self.blocks.weighted_size())
            .field("capacity", &self.capacity)
            .field("allowed", &self.allowed.load(Relaxed))
            .field("block_max", &self.block_max)
            .field("file_max", &self.file_max)
            .finish()
    }
}

impl HotCache {
    /// A cache of at most `capacity_bytes` of blocks, each at most
    /// `block_max` bytes, or `file_max` for a whole file in one block
    /// ([`Store::offer_whole_file`]; `file_max` below `block_max` counts
    /// as `block_max`).
    pub fn new(capacity_bytes: u64, block_max: u64, file_max: u64) -> HotCache {
        let blocks = moka::sync::Cache::builder()
            .max_capacity(capacity_bytes)
            // Weighs the bytes and a little for the key and bookkeeping, so
            // that many empty blocks are bounded too.
            .weigher(|_: &Multihash, v: &Bytes| {
                u32::try_from(weight(v.len() as u64)).unwrap_or(u32::MAX)
            })
            .build();
        HotCache {
            blocks,
            seen: Doorkeeper::new(capacity_bytes),
            capacity: capacity_bytes,
            block_max,
            file_max: file_max.max(block_max),
            allowed: AtomicU64::new(capacity_bytes),
            stats: HotStats::default(),
        }
    }

    /// The largest block admitted.
    pub fn block_max(&self) -> u64 {
        self.block_max
    }

    /// The largest whole file in one block admitted.
    pub fn file_max(&self) -> u64 {
        self.file_max
    }

    /// The most bytes the cache holds (`[store] hot_cache`).
    pub fn capacity(&self) -> u64 {
        self.capacity
    }

    /// What the cache may grow to now: its capacity, or less while memory
    /// is short ([`HotCache::allow`]).
    pub fn allowed(&self) -> u64 {
        self.allowed.load(Relaxed)
    }

    /// Lets the cache grow to `bytes` (at most its capacity) from now on:
    /// a block that would take it past that is not admitted. Entries
    /// already held stay; [`HotCache::shed`] drops them.
    pub fn allow(&self, bytes: u64) {
        self.allowed.store(bytes.min(self.capacity), Relaxed);
    }

    /// Empties the cache because memory is short, and admits nothing until
    /// [`HotCache::allow`] lets it grow again. Returns the bytes dropped
    /// (counted in [`HotStats::pressure_dropped_bytes`]).
    pub fn shed(&self) -> u64 {
        self.allowed.store(0, Relaxed);
        let dropped = self.weighted_bytes();
        self.blocks.invalidate_all();
        self.blocks.run_pending_tasks();
        if dropped > 0 {
            self.stats.pressure_sheds.fetch_add(1, Relaxed);
            self.stats
                .pressure_dropped_bytes
                .fetch_add(dropped, Relaxed);
        }
        dropped
    }

    /// Counters of hits and misses.
    pub fn stats(&self) -> &HotStats {
        &self.stats
    }

    /// Bytes held now (the weigher's count; pending evictions may hold it
    /// briefly above the capacity).
    pub fn weighted_bytes(&self) -> u64 {
        self.blocks.run_pending_tasks();
        self.blocks.weighted_size()
    }

    /// Blocks held now.
    pub fn entries(&self) -> u64 {
        self.blocks.run_pending_tasks();
        self.blocks.entry_count()
    }

    /// The block `cid` names, when it is held: never touches the store, so
    /// an async task may ask (the gateway's fast path). Counts a hit only.
    pub fn get(&self, cid: &Cid) -> Option<Block> {
        let data = self.blocks.get(cid.hash())?;
        self.stats.hits.fetch_add(1, Relaxed);
        self.stats.hit_bytes.fetch_add(data.len() as u64, Relaxed);
        Some(Block::new_unchecked(*cid, data))
    }

    /// Whether the block `cid` names is held (counts nothing).
    pub fn holds(&self, cid: &Cid) -> bool {
        self.blocks.contains_key(cid.hash())
    }

    /// Offers a block the store beneath has just verified: kept when it
    /// is small enough, there is room and it was read before, lately.
    fn admit(&self, block: &Block) {
        let len = block.data().len() as u64;
        if len <= self.block_max && self.seen.seen_before(block.cid().hash()) && self.room_for(len)
        {
            self.blocks
                .insert(*block.cid().hash(), block.data().clone());
        }
    }

    /// Offers a verified block that is a whole file by itself: kept as
    /// [`HotCache::admit`] does, up to `file_max` bytes. Blocks up to
    /// `block_max` were offered already by the read that gave them.
    fn admit_whole_file(&self, block: &Block) {
        let len = block.data().len() as u64;
        if len > self.block_max
            && len <= self.file_max
            && !self.blocks.contains_key(block.cid().hash())
            && self.seen.seen_before(block.cid().hash())
            && self.room_for(len)
        {
            self.blocks
                .insert(*block.cid().hash(), block.data().clone());
        }
    }

    /// Whether a block of `len` bytes fits in what the cache may hold now
    /// (beyond that, moka would evict others to make room; while memory
    /// is short the cache must not grow instead).
    fn room_for(&self, len: u64) -> bool {
        let allowed = self.allowed.load(Relaxed);
        if allowed >= self.capacity {
            return true;
        }
        // The weight counts pending inserts only once they are applied:
        // only here, while memory is short and for a block otherwise
        // admitted.
        self.blocks.run_pending_tasks();
        self.blocks.weighted_size().saturating_add(weight(len)) <= allowed
    }

    fn forget(&self, mh: &Multihash) {
        self.blocks.invalidate(mh);
    }

    /// Drops every entry (the store was swept; memory is needed).
    pub fn clear(&self) {
        self.blocks.invalidate_all();
    }
}

/// What an entry of `len` bytes weighs: the bytes and a little for the
/// key and bookkeeping.
fn weight(len: u64) -> u64 {
    len.saturating_add(128)
}

/// A store with the memory tier in front of its reads. Every [`Store`]
/// call goes to `inner`; `get` is answered from the cache when it can.
pub struct HotStore<S: Store + ?Sized = dyn Store> {
    inner: Arc<S>,
    cache: Arc<HotCache>,
}

impl<S: Store + ?Sized> HotStore<S> {
    /// `inner` with `cache` in front of it.
    pub fn new(inner: Arc<S>, cache: Arc<HotCache>) -> Self {
        HotStore { inner, cache }
    }

    /// The store beneath.
    pub fn inner(&self) -> &Arc<S> {
        &self.inner
    }

    /// The cache, for metrics and the fast path.
    pub fn cache(&self) -> &Arc<HotCache> {
        &self.cache
    }
}

impl<S: Store + ?Sized> Store for HotStore<S> {
    fn put_many(&self, blocks: &mut dyn Iterator<Item = Block>) -> Result<u64> {
        // Writes do not fill the cache: only blocks read back are hot.
        self.inner.put_many(blocks)
    }

    fn put_many_uncached(&self, blocks: &mut dyn Iterator<Item = Block>) -> Result<u64> {
        self.inner.put_many_uncached(blocks)
    }

    fn get(&self, cid: &Cid) -> Result<Option<Block>> {
        if let Some(block) = self.cache.get(cid) {
            return Ok(Some(block));
        }
        self.cache.stats.misses.fetch_add(1, Relaxed);
        let got = self.inner.get(cid)?;
        if let Some(block) = &got {
            // `inner.get` verified it against `cid`.
            self.cache.admit(block);
        }
        Ok(got)
    }

    fn offer_whole_file(&self, block: &Block) {
        // The block came from `get` (verified), as the root of a read.
        self.cache.admit_whole_file(block);
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
        // What is on the medium, as `repo verify` needs: never the cache.
        self.inner.read_raw(mh)
    }

    fn pin(&self, cid: &Cid, kind: PinKind) -> Result<()> {
        self.inner.pin(cid, kind)
    }

    fn unpin(&self, cid: &Cid) -> Result<PinKind> {
        self.inner.unpin(cid)
    }

    fn pin_many(&self, cids: &[Cid], kind: PinKind) -> Result<()> {
        self.inner.pin_many(cids, kind)
    }

    fn unpin_many(&self, cids: &[Cid]) -> Result<Vec<Option<PinKind>>> {
        self.inner.unpin_many(cids)
    }

    fn pins(&self) -> Result<Vec<(Cid, PinKind)>> {
        self.inner.pins()
    }

    fn pin_of(&self, cid: &Cid) -> Result<Option<PinKind>> {
        self.inner.pin_of(cid)
    }

    fn sweep(&self, live: &HashSet<Multihash>) -> Result<SweepReport> {
        let report = self.inner.sweep(live);
        // Entries of swept blocks must not outlive them (a later `get`
        // would answer for a block the store no longer has).
        self.cache.clear();
        report
    }

    fn stat(&self) -> Result<StoreStat> {
        self.inner.stat()
    }

    fn flush(&self) -> Result<()> {
        self.inner.flush()
    }

    fn meta_get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        self.inner.meta_get(key)
    }

    fn meta_put(&self, key: &str, value: Option<&[u8]>) -> Result<()> {
        self.inner.meta_put(key, value)
    }

    fn meta_scan(&self, prefix: &str) -> Result<Vec<(String, Vec<u8>)>> {
        self.inner.meta_scan(prefix)
    }

    fn remove(&self, mh: &Multihash) -> Result<bool> {
        let removed = self.inner.remove(mh);
        self.cache.forget(mh);
        removed
    }

    fn replace(&self, block: &Block) -> Result<()> {
        let replaced = self.inner.replace(block);
        self.cache.forget(block.cid().hash());
        replaced
    }

    fn used_bytes(&self) -> u64 {
        self.inner.used_bytes()
    }

    fn segment_usage(&self) -> Result<Vec<SegmentUsage>> {
        self.inner.segment_usage()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::block::RAW;
    use crate::store::conformance::{block, Damage};
    use crate::store::{MemoryStore, StoreError};

    fn hot(capacity: u64, block_max: u64) -> HotStore<MemoryStore> {
        HotStore::new(
            Arc::new(MemoryStore::new()),
            Arc::new(HotCache::new(capacity, block_max, 1 << 20)),
        )
    }

    #[test]
    fn a_block_read_twice_comes_from_memory_byte_identical() {
        let s = hot(1 << 20, 64 << 10);
        let b = block(1, 1120, RAW);
        s.put(b.clone()).unwrap();
        assert!(s.cache().get(b.cid()).is_none(), "a write is not a read");
        assert_eq!(s.get(b.cid()).unwrap().as_ref(), Some(&b));
        assert!(
            s.cache().get(b.cid()).is_none(),
            "admitted at a second read"
        );
        assert_eq!(s.get(b.cid()).unwrap().as_ref(), Some(&b));
        let stats = s.cache().stats();
        assert_eq!(
            (stats.hits.load(Relaxed), stats.misses.load(Relaxed)),
            (0, 2)
        );
        // Gone from the store beneath: only memory can answer now.
        s.inner().remove(b.cid().hash()).unwrap();
        assert_eq!(s.get(b.cid()).unwrap().as_ref(), Some(&b));
        assert_eq!(s.cache().get(b.cid()).as_ref(), Some(&b));
        assert_eq!(stats.hits.load(Relaxed), 2);
        assert_eq!(stats.hit_bytes.load(Relaxed), 2 * 1120);
    }

    #[test]
    fn a_corrupt_block_is_never_admitted() {
        let s = hot(1 << 20, 64 << 10);
        let b = block(2, 5000, RAW);
        s.put(b.clone()).unwrap();
        s.flip_a_stored_bit(b.cid());
        for _ in 0..3 {
            assert!(matches!(s.get(b.cid()), Err(StoreError::Corrupt { .. })));
        }
        assert!(s.cache().get(b.cid()).is_none());
        assert_eq!(s.cache().entries(), 0);
        // A verified copy replaces it; then it is admitted as it is read.
        s.replace(&b).unwrap();
        for _ in 0..2 {
            assert_eq!(s.get(b.cid()).unwrap().as_ref(), Some(&b));
        }
        assert_eq!(s.cache().get(b.cid()).as_ref(), Some(&b));
    }

    #[test]
    fn forgotten_swept_and_large_blocks_are_not_answered_from_memory() {
        let s = hot(1 << 20, 64 << 10);
        let (a, b, large) = (
            block(3, 100, RAW),
            block(4, 200, RAW),
            block(5, 100_000, RAW),
        );
        s.put_many(&mut vec![a.clone(), b.clone(), large.clone()].into_iter())
            .unwrap();
        for x in [&a, &b, &large, &a, &b, &large] {
            s.get(x.cid()).unwrap().unwrap();
        }
        assert!(s.cache().get(large.cid()).is_none(), "over block_max");
        assert!(s.remove(a.cid().hash()).unwrap());
        assert!(s.get(a.cid()).unwrap().is_none());
        assert!(s.cache().get(b.cid()).is_some());
        s.sweep(&HashSet::new()).unwrap();
        assert!(s.get(b.cid()).unwrap().is_none());
        assert_eq!(s.cache().entries(), 0);
    }

    #[test]
    fn the_cache_stays_within_its_bytes() {
        let capacity = 256 << 10;
        let s = hot(capacity, 64 << 10);
        let blocks: Vec<Block> = (0..64).map(|i| block(100 + i, 16 << 10, RAW)).collect();
        s.put_many(&mut blocks.clone().into_iter()).unwrap();
        for _ in 0..3 {
            for b in &blocks {
                assert_eq!(s.get(b.cid()).unwrap().as_ref(), Some(b));
            }
        }
        let held = s.cache().weighted_bytes();
        assert!(held <= capacity, "{held} > {capacity}");
        assert!(held >= capacity / 2, "holds {held} of {capacity}");
    }

    #[test]
    fn a_long_scan_does_not_evict_the_hot_set() {
        // 32 hot blocks of 4 KiB in a 256 KiB cache, read often; then 2,000
        // blocks (30x the cache) read once each, with hot reads among them.
        let s = hot(256 << 10, 64 << 10);
        let hot_set: Vec<Block> = (0..32).map(|i| block(1000 + i, 4096, RAW)).collect();
        let cold: Vec<Block> = (0..2000).map(|i| block(5000 + i, 4096, RAW)).collect();
        s.put_many(&mut hot_set.iter().cloned().chain(cold.iter().cloned()))
            .unwrap();
        for _ in 0..8 {
            for b in &hot_set {
                s.get(b.cid()).unwrap().unwrap();
            }
        }
        let (mut hot_reads, mut hot_hits) = (0u32, 0u32);
        for (i, c) in cold.iter().enumerate() {
            s.get(c.cid()).unwrap().unwrap();
            if i % 10 == 0 {
                let b = &hot_set[(i / 10) % hot_set.len()];
                hot_reads += 1;
                hot_hits += u32::from(s.cache().get(b.cid()).is_some());
                s.get(b.cid()).unwrap().unwrap();
            }
        }
        assert!(
            hot_hits * 100 >= hot_reads * 95,
            "hot set hit {hot_hits} of {hot_reads} during the scan"
        );
    }

    #[test]
    fn a_scan_through_a_mostly_empty_cache_leaves_a_small_hot_set() {
        // 16 hot blocks (64 KiB) in a 4 MiB cache, then a scan of 64 MiB
        // (8 of the doorkeeper's windows) with no hot reads among it: each
        // scanned block is read once.
        let s = hot(4 << 20, 256 << 10);
        let hot_set: Vec<Block> = (0..16).map(|i| block(20_000 + i, 4096, RAW)).collect();
        for b in &hot_set {
            s.put(b.clone()).unwrap();
        }
        for _ in 0..20 {
            for b in &hot_set {
                s.get(b.cid()).unwrap().unwrap();
            }
        }
        for i in 0..8192u32 {
            let c = block(30_000 + i, 8 << 10, RAW);
            s.put(c.clone()).unwrap();
            s.get(c.cid()).unwrap().unwrap();
            s.inner().remove(c.cid().hash()).unwrap();
        }
        let held = hot_set
            .iter()
            .filter(|b| s.cache().get(b.cid()).is_some())
            .count();
        assert_eq!(held, hot_set.len(), "the scan evicted hot blocks");
        // A block read twice in the scan's place is admitted.
        let again = block(40_000, 64 << 10, RAW);
        s.put(again.clone()).unwrap();
        s.get(again.cid()).unwrap().unwrap();
        s.get(again.cid()).unwrap().unwrap();
        assert!(s.cache().get(again.cid()).is_some());
    }

    /// Reads `b` as the root of a read does: a `get`, then the offer of a
    /// whole file.
    fn read_as_root(s: &HotStore<MemoryStore>, b: &Block) -> Block {
        let got = s.get(b.cid()).unwrap().expect("stored");
        s.offer_whole_file(&got);
        got
    }

    #[test]
    fn a_large_block_is_kept_only_as_a_whole_file() {
        let s = hot(8 << 20, 256 << 10);
        let (leaf, file, huge) = (
            block(50, 1 << 20, RAW),
            block(51, 1 << 20, RAW),
            block(52, (1 << 20) + 1, RAW),
        );
        s.put_many(&mut vec![leaf.clone(), file.clone(), huge.clone()].into_iter())
            .unwrap();
        // Read as a leaf of a larger file, however often: never kept.
        for _ in 0..4 {
            assert_eq!(s.get(leaf.cid()).unwrap().as_ref(), Some(&leaf));
        }
        assert!(!s.cache().holds(leaf.cid()));
        // Read as a whole file: kept at its second read, served as it was.
        assert_eq!(read_as_root(&s, &file), file);
        assert!(!s.cache().holds(file.cid()), "admitted at a second read");
        assert_eq!(read_as_root(&s, &file), file);
        assert_eq!(s.cache().get(file.cid()).as_ref(), Some(&file));
        // Over file_max (1 MiB here): never.
        for _ in 0..4 {
            assert_eq!(read_as_root(&s, &huge), huge);
        }
        assert!(!s.cache().holds(huge.cid()));
        assert_eq!(s.cache().entries(), 1);
        // Offering a small block again admits nothing early: its `get`
        // already counted the read.
        let small = block(53, 1000, RAW);
        s.put(small.clone()).unwrap();
        read_as_root(&s, &small);
        assert!(!s.cache().holds(small.cid()));
    }

    #[test]
    fn a_corrupt_whole_file_is_never_admitted() {
        let s = hot(8 << 20, 256 << 10);
        let b = block(54, 900 << 10, RAW);
        s.put(b.clone()).unwrap();
        s.flip_a_stored_bit(b.cid());
        for _ in 0..3 {
            // A reader has nothing to offer: the read failed.
            assert!(matches!(s.get(b.cid()), Err(StoreError::Corrupt { .. })));
        }
        assert_eq!(s.cache().entries(), 0);
        s.replace(&b).unwrap();
        for _ in 0..2 {
            assert_eq!(read_as_root(&s, &b), b);
        }
        let held = s.cache().get(b.cid()).expect("kept once verified");
        assert_eq!(held.data(), b.data(), "byte-identical");
    }

    #[test]
    fn shedding_empties_the_cache_and_stops_it_growing_until_allowed() {
        let s = hot(4 << 20, 256 << 10);
        let blocks: Vec<Block> = (0..8).map(|i| block(60 + i, 100 << 10, RAW)).collect();
        s.put_many(&mut blocks.clone().into_iter()).unwrap();
        for _ in 0..2 {
            for b in &blocks {
                s.get(b.cid()).unwrap().unwrap();
            }
        }
        let held = s.cache().weighted_bytes();
        assert_eq!(held, 8 * weight(100 << 10));
        assert_eq!(s.cache().shed(), held);
        assert_eq!(s.cache().entries(), 0);
        let stats = s.cache().stats();
        assert_eq!(stats.pressure_sheds.load(Relaxed), 1);
        assert_eq!(stats.pressure_dropped_bytes.load(Relaxed), held);
        assert_eq!(s.cache().shed(), 0, "nothing more to drop");
        assert_eq!(stats.pressure_sheds.load(Relaxed), 1);
        // Reads still answer, byte-identical, from the store beneath, and
        // admit nothing while shed.
        for b in &blocks {
            assert_eq!(s.get(b.cid()).unwrap().as_ref(), Some(b));
        }
        assert_eq!(s.cache().entries(), 0);
        // Room for three: three are admitted, the rest read from beneath.
        s.cache().allow(3 * weight(100 << 10));
        for b in &blocks {
            assert_eq!(s.get(b.cid()).unwrap().as_ref(), Some(b));
        }
        assert_eq!(s.cache().entries(), 3);
        s.cache().allow(u64::MAX);
        assert_eq!(s.cache().allowed(), 4 << 20);
        for b in &blocks {
            s.get(b.cid()).unwrap().unwrap();
        }
        assert_eq!(s.cache().entries(), 8);
    }

    #[test]
    fn the_weight_never_exceeds_the_capacity_whatever_the_sizes() {
        // Sizes from empty to file_max, read as leaves and as whole files,
        // each twice: after every read the weight is within the capacity.
        let capacity = 3 << 20;
        let s = hot(capacity, 256 << 10);
        let mut x = 0x2545_f491_4f6c_dd1du64;
        for i in 0..300u32 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let len = (x % ((1 << 20) + 1)) as usize;
            let len = if i % 3 == 0 { len } else { len / 16 };
            let b = block(70_000 + i, len, RAW);
            s.put(b.clone()).unwrap();
            for _ in 0..2 {
                let got = if i % 2 == 0 {
                    read_as_root(&s, &b)
                } else {
                    s.get(b.cid()).unwrap().unwrap()
                };
                assert_eq!(got, b);
                let held = s.cache().weighted_bytes();
                assert!(held <= capacity, "{held} > {capacity} after block {i}");
            }
            if let Some(kept) = s.cache().get(b.cid()) {
                assert_eq!(kept.data(), b.data());
            }
        }
        assert!(s.cache().entries() > 0);
    }
}

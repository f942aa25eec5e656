//! Disk store: block bodies appended to segment files, a sled index.
//!
//! Layout under the store directory:
//!
//! ```text
//! store.lock            exclusive OS lock held while the store is open
//! segments/FORMAT       the segment format's number  (format.rs)
//! segments/NNNNNNNN.seg block records, appended      (segment.rs, direct_io.rs)
//! index/                sled database: block locations, segment lengths (index.rs)
//! journal               pins and node metadata       (journal.rs)
//! reserve               space freed for gc on a full disk (space.rs)
//! ```
//!
//! Write order (the crash-safety contract, kept here in [`DiskStore::commit`]):
//! records are appended, the segment is fsynced, then ONE sled batch
//! records the new entries together with the segment's committed length,
//! then sled is flushed. Concurrent puts share that commit: a put's
//! records wait in the writer until the next commit, whoever makes it, and
//! the put returns once one has covered them. Pins are written to the
//! journal only after the blocks they reach were committed (callers do
//! that).
//!
//! What a crash can leave half-done is swept on open (`recovery.rs`); an
//! index that cannot be opened or read is rebuilt from the segments
//! (`rebuild.rs`); garbage collection and segment compaction are in
//! `compaction.rs`, and what keeps them working on a full disk in
//! `space.rs`.

mod compaction;
mod direct_io;
mod format;
mod index;
pub(crate) use index::open_sled;
mod journal;
mod rebuild;
mod recovery;
mod segment;
mod space;

use super::{
    verified, PinKind, RebuildReport, Result, SegmentUsage, Store, StoreError, StoreStat,
    StoredBlock, SweepReport,
};
use crate::block::{Block, Cid, Multihash, RAW};
use bytes::Bytes;
use direct_io::Direct;
use index::{Index, Location};
use journal::Journal;
use segment::{record_bytes, Segments, Writer};
use std::collections::{HashMap, HashSet};
use std::fs::{File, OpenOptions};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};

/// Tuning of the disk store (see `config.toml` `[store]`).
#[derive(Clone, Debug)]
pub struct DiskStoreOptions {
    /// Start a new segment file past this many bytes.
    pub segment_max_bytes: u64,
    /// `put_many` commits (fsync + index) every this many new bytes.
    pub commit_bytes: u64,
    /// `sweep` compacts a segment whose live share falls below this.
    pub compact_live_ratio: f64,
    /// sled page cache size in bytes.
    pub cache_bytes: u64,
    /// Most bytes of block data stored (0: no limit); a write that would
    /// pass it fails with `QuotaExceeded` and stores nothing of that block.
    pub max_bytes: u64,
    /// Bytes kept in the `reserve` file, released on a full disk so that
    /// opening, unpinning and garbage collection can still write (0: none).
    pub reserve_bytes: u64,
    /// Write blocks that are not read back soon (`put_many_uncached`: those
    /// fetched from peers) around the page cache with `O_DIRECT`, where the
    /// file system supports it (not tmpfs).
    pub direct_io: bool,
}

impl Default for DiskStoreOptions {
    fn default() -> Self {
        DiskStoreOptions {
            segment_max_bytes: 256 << 20,
            commit_bytes: 64 << 20,
            compact_live_ratio: 0.5,
            max_bytes: 0,
            cache_bytes: 16 << 20,
            reserve_bytes: 4 << 20,
            direct_io: true,
        }
    }
}

/// A block store on disk.
pub struct DiskStore {
    opts: DiskStoreOptions,
    index: Index,
    journal: Journal,
    segments: Segments,
    reserve: space::Reserve,
    writer: Mutex<Writer>,
    /// Held shared by every put for its whole call and exclusively by a
    /// sweep: a put releases the writer between records, and its records
    /// not yet committed (in the active segment, in no index entry) must
    /// not be punched out, truncated or left behind in a segment that
    /// compaction deletes.
    puts: RwLock<()>,
    _lock: File,
    /// Bytes of indexed block data (counted at open, kept up to date).
    used: AtomicU64,
    /// What rebuilding the index found, when opening rebuilt it.
    rebuilt: Option<RebuildReport>,
}

/// Opens the index at `index_dir` and reads it whole; returns it and the
/// bytes of block data it indexes, or (inner `Err`) why it must be
/// rebuilt. An error the environment causes (a full disk, no permission)
/// is returned as such: rebuilding would not help.
fn check_index(
    index_dir: &Path,
    seg_dir: &Path,
    cache_bytes: u64,
) -> Result<std::result::Result<(Index, u64), String>> {
    let index = match Index::open(index_dir, cache_bytes) {
        Ok(index) => index,
        Err(e) if caused_by_environment(&e) => return Err(e),
        Err(e) => return Ok(Err(e.to_string())),
    };
    let mut used = 0u64;
    for entry in index.blocks() {
        match entry.and_then(|e| e.location()) {
            Ok(loc) => used += loc.len as u64,
            Err(e) => return Ok(Err(e.to_string())),
        }
    }
    let listed = match index.segments() {
        Ok(listed) => listed,
        Err(e) => return Ok(Err(e.to_string())),
    };
    if listed.is_empty() {
        for (_, path) in rebuild::segment_files(seg_dir)? {
            if std::fs::metadata(&path).map_err(io_err(&path))?.len() > 0 {
                return Ok(Err(
                    "the index lists no segments, but segment files hold records".into(),
                ));
            }
        }
    }
    Ok(Ok((index, used)))
}

/// Whether opening the index failed for a reason outside it.
fn caused_by_environment(e: &StoreError) -> bool {
    use std::io::ErrorKind::*;
    match e {
        StoreError::IndexOpen {
            source: sled::Error::Io(io),
            ..
        } => matches!(
            io.kind(),
            StorageFull | PermissionDenied | ReadOnlyFilesystem | QuotaExceeded | OutOfMemory
        ),
        StoreError::Io { .. } => true,
        _ => false,
    }
}

/// Maps an I/O error on `path` (no block concerned) to [`StoreError::Io`].
fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> StoreError + '_ {
    move |source| StoreError::Io {
        path: path.to_path_buf(),
        cid: None,
        source,
    }
}

/// Blocks located in the active segment but not yet committed.
type Pending = Vec<(Multihash, Location)>;

impl DiskStore {
    /// The file in the store's directory locked (exclusively) by the
    /// process that has the store open.
    pub const LOCK_FILE: &'static str = "store.lock";

    /// Opens (creating if needed) the store in `dir`, recovering from any
    /// interrupted write. An index that cannot be opened or read is rebuilt
    /// from the segments (logged; see [`DiskStore::rebuilt_index`]); one the
    /// environment keeps from opening (a full disk, no permission) is an
    /// error.
    pub fn open(dir: &Path, opts: DiskStoreOptions) -> Result<DiskStore> {
        Self::open_with(dir, opts, false)
    }

    /// Opens the store after rebuilding its index from the segments,
    /// whatever state the index is in.
    pub fn open_rebuilding_index(dir: &Path, opts: DiskStoreOptions) -> Result<DiskStore> {
        Self::open_with(dir, opts, true)
    }

    /// What rebuilding the index found, when opening this store rebuilt it.
    pub fn rebuilt_index(&self) -> Option<&RebuildReport> {
        self.rebuilt.as_ref()
    }

    fn open_with(dir: &Path, opts: DiskStoreOptions, rebuild: bool) -> Result<DiskStore> {
        let seg_dir = dir.join("segments");
        std::fs::create_dir_all(&seg_dir).map_err(io_err(dir))?;
        let lock_path = dir.join(Self::LOCK_FILE);
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(io_err(&lock_path))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(StoreError::Locked {
                    path: dir.to_path_buf(),
                })
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(io_err(&lock_path)(e)),
        }
        format::check(&seg_dir)?;
        let journal = Journal::open(&dir.join("journal"))?;
        let index_dir = dir.join("index");
        let reserve = space::Reserve::new(dir, opts.reserve_bytes);
        let checked = match rebuild {
            true => Err(None),
            false => match check_index(&index_dir, &seg_dir, opts.cache_bytes) {
                // Opening writes a snapshot: on a full disk, make room.
                Err(e) if space::is_disk_full(&e) && reserve.release() => {
                    check_index(&index_dir, &seg_dir, opts.cache_bytes)?
                }
                checked => checked?,
            }
            .map_err(Some),
        };
        let (index, used, rebuilt) = match checked {
            Ok((index, used)) => (index, used, None),
            Err(reason) => {
                if let Some(why) = &reason {
                    tracing::warn!(index = %index_dir.display(), "rebuilding the index from the segments: {why}");
                }
                let mut report = rebuild::rebuild(&index_dir, &seg_dir, opts.cache_bytes)?;
                report.reason = reason;
                tracing::info!(?report, "index rebuilt");
                let index = Index::open(&index_dir, opts.cache_bytes)?;
                (index, report.block_bytes, Some(report))
            }
        };
        let segments = Segments::new(seg_dir);
        let active = recovery::recover(&segments, &index)?;
        let mut writer = segments.open_writer(active.unwrap_or(0), false)?;
        if opts.direct_io {
            writer.direct = Direct::if_supported(&writer.path);
        }
        let store = DiskStore {
            opts,
            index,
            journal,
            segments,
            reserve,
            writer: Mutex::new(writer),
            puts: RwLock::new(()),
            _lock: lock,
            used: AtomicU64::new(used),
            rebuilt,
        };
        if active.is_none() {
            // Record the first segment so recovery keeps it.
            let mut w = store.lock_writer();
            store.commit(&mut w, &mut Vec::new())?;
        }
        store.reserve.restore();
        Ok(store)
    }

    fn lock_writer(&self) -> MutexGuard<'_, Writer> {
        self.writer.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Keeps sweeps out while a put runs (puts run side by side).
    fn put_gate(&self) -> RwLockReadGuard<'_, ()> {
        self.puts.read().unwrap_or_else(|e| e.into_inner())
    }

    /// Waits for the puts in flight to end and keeps new ones out.
    fn sweep_gate(&self) -> RwLockWriteGuard<'_, ()> {
        self.puts.write().unwrap_or_else(|e| e.into_inner())
    }

    /// Makes the active segment durable, then indexes `pending` and every
    /// record other puts appended uncommitted ([`Writer::uncommitted`])
    /// with its committed length (the write order). Concurrent puts thus
    /// share one fsync and one index flush: each appends, and the first to
    /// commit commits what all appended; the others find it done
    /// ([`DiskStore::commit_covering`]).
    fn commit(&self, w: &mut Writer, pending: &mut Pending) -> Result<()> {
        w.make_durable()?;
        // Copied, not moved: a failed commit leaves them for the next one,
        // and their puts do not return before one succeeds.
        pending.extend_from_slice(&w.uncommitted);
        self.index.commit(pending, (w.id, w.len), None)?;
        w.uncommitted.clear();
        w.committed = w.appended;
        w.committed_at = Some((w.id, w.len));
        Ok(())
    }

    /// Commits unless a commit since has covered the record a put counted
    /// as `mine` ([`Writer::appended`] after its last append; 0: it
    /// appended none of its own).
    fn commit_covering(&self, w: &mut Writer, pending: &mut Pending, mine: u64) -> Result<()> {
        if pending.is_empty() && w.committed >= mine {
            return Ok(());
        }
        self.commit(w, pending)
    }

    /// Starts a new segment after committing the current one.
    fn roll(&self, w: &mut Writer, pending: &mut Pending) -> Result<()> {
        self.commit(w, pending)?;
        let id = w.id.checked_add(1).ok_or(StoreError::SegmentIdsExhausted)?;
        let mut next = self.segments.open_writer(id, true)?;
        next.direct = w.direct.take();
        (next.appended, next.committed) = (w.appended, w.committed);
        *w = next;
        // Make the new segment known, so recovery keeps it even if empty.
        self.commit(w, pending)
    }

    /// Appends one record (staged for a direct write when `direct`),
    /// rolling to a new segment first if it would pass the size limit;
    /// returns where its body went.
    fn append(
        &self,
        w: &mut Writer,
        pending: &mut Pending,
        mh: &[u8],
        body: &[u8],
        direct: bool,
    ) -> Result<Location> {
        if w.len > 0 && w.len + record_bytes(mh.len(), body.len()) > self.opts.segment_max_bytes {
            self.roll(w, pending)?;
        }
        w.append(mh, body, direct)
    }

    /// `put_many`, with records staged for direct writes when `direct`
    /// and the store has them.
    fn put_blocks(&self, blocks: &mut dyn Iterator<Item = Block>, direct: bool) -> Result<u64> {
        let _gate = self.put_gate();
        // Staged records sit in the writer's buffer until it fills or the
        // call commits, so a direct call holds the writer throughout: what
        // is staged is this call's alone, and a failed write costs no other
        // caller anything (`abandon_staged`).
        let mut held = if direct {
            let w = self.lock_writer();
            w.direct.is_some().then_some(w)
        } else {
            None
        };
        let r = self.put_blocks_with(&mut held, blocks);
        if let (Err(_), Some(w)) = (&r, held.as_deref_mut()) {
            w.abandon_staged();
        }
        r
    }

    fn put_blocks_with(
        &self,
        held: &mut Option<MutexGuard<'_, Writer>>,
        blocks: &mut dyn Iterator<Item = Block>,
    ) -> Result<u64> {
        // The held writer, or the lock taken for the moment.
        macro_rules! writer {
            ($slot:ident) => {
                match held.as_deref_mut() {
                    Some(w) => w,
                    None => {
                        $slot = self.lock_writer();
                        &mut *$slot
                    }
                }
            };
        }
        let direct = held.is_some();
        // A held writer's records are this call's own until it commits
        // them; the others join the writer's uncommitted ones, and `mine`
        // counts to the last of them (0: none yet).
        let mut pending: Pending = Vec::new();
        let mut mine = 0u64;
        let mut in_batch: HashSet<Multihash> = HashSet::new();
        let mut new_bytes = 0u64;
        let mut since_commit = 0u64;
        for block in blocks {
            block.check_size()?;
            let mh = *block.cid().hash();
            if in_batch.contains(&mh) || self.index.has_block(&mh)? {
                continue;
            }
            if self.opts.max_bytes > 0 {
                let used = self.used.load(Ordering::Relaxed) + new_bytes;
                let adding = block.data().len() as u64;
                if used + adding > self.opts.max_bytes {
                    // What was written before stays consistent: commit it.
                    if !pending.is_empty() || mine > 0 {
                        let mut slot;
                        let w = writer!(slot);
                        self.commit_covering(w, &mut pending, mine)?;
                        self.used.fetch_add(new_bytes, Ordering::Relaxed);
                    }
                    return Err(StoreError::QuotaExceeded {
                        used,
                        adding,
                        max: self.opts.max_bytes,
                    });
                }
            }
            let mut slot;
            let w = writer!(slot);
            let loc = self.append(w, &mut pending, &mh.to_bytes(), block.data(), direct)?;
            if direct {
                pending.push((mh, loc));
            } else {
                w.uncommitted.push((mh, loc));
                w.appended += 1;
                mine = w.appended;
            }
            in_batch.insert(mh);
            new_bytes += block.data().len() as u64;
            since_commit += block.data().len() as u64;
            if since_commit >= self.opts.commit_bytes {
                self.commit_covering(w, &mut pending, mine)?;
                in_batch.clear();
                since_commit = 0;
            }
        }
        if !pending.is_empty() || mine > 0 {
            let mut slot;
            let w = writer!(slot);
            self.commit_covering(w, &mut pending, mine)?;
        }
        self.used.fetch_add(new_bytes, Ordering::Relaxed);
        Ok(new_bytes)
    }

    /// Reads the body of the block `cid` names, unverified, if indexed.
    fn read_body(&self, cid: &Cid) -> Result<Option<Bytes>> {
        match self.index.location(cid.hash())? {
            None => Ok(None),
            Some(loc) => self.segments.read(loc, cid).map(Some),
        }
    }
}

impl Store for DiskStore {
    fn put_many(&self, blocks: &mut dyn Iterator<Item = Block>) -> Result<u64> {
        self.put_blocks(blocks, false)
    }

    fn put_many_uncached(&self, blocks: &mut dyn Iterator<Item = Block>) -> Result<u64> {
        self.put_blocks(blocks, true)
    }

    fn remove(&self, mh: &Multihash) -> Result<bool> {
        // Not while a sweep moves blocks (it would index this one again).
        let _gate = self.put_gate();
        let Some(len) = self.index.remove_block(mh)? else {
            return Ok(false);
        };
        self.used
            .fetch_sub(len.min(self.used_bytes()), Ordering::Relaxed);
        Ok(true)
    }

    fn replace(&self, block: &Block) -> Result<()> {
        block.check_size()?;
        crate::block::verify(block.cid(), block.data())?;
        let mh = *block.cid().hash();
        let mut w = self.lock_writer();
        // Read under the writer: no other replace or compaction moves it.
        let old_len = self
            .index
            .location(&mh)
            .ok()
            .flatten()
            .map(|l| l.len as u64);
        let adding = block.data().len() as u64;
        let used = self.used_bytes();
        if old_len.is_none() && self.opts.max_bytes > 0 && used + adding > self.opts.max_bytes {
            return Err(StoreError::QuotaExceeded {
                used,
                adding,
                max: self.opts.max_bytes,
            });
        }
        let mut pending = Vec::new();
        let loc = self.append(&mut w, &mut pending, &mh.to_bytes(), block.data(), false)?;
        pending.push((mh, loc));
        self.commit(&mut w, &mut pending)?;
        drop(w);
        self.used.fetch_add(adding, Ordering::Relaxed);
        if let Some(old) = old_len {
            self.used
                .fetch_sub(old.min(self.used_bytes()), Ordering::Relaxed);
        }
        Ok(())
    }

    fn used_bytes(&self) -> u64 {
        self.used.load(Ordering::Relaxed)
    }

    fn get(&self, cid: &Cid) -> Result<Option<Block>> {
        self.read_body(cid)?
            .map(|data| verified(cid, data))
            .transpose()
    }

    fn has(&self, cid: &Cid) -> Result<bool> {
        self.index.has_block(cid.hash())
    }

    fn size_of(&self, cid: &Cid) -> Result<Option<u64>> {
        Ok(self.index.location(cid.hash())?.map(|l| l.len as u64))
    }

    fn for_each_block(&self, f: &mut dyn FnMut(StoredBlock) -> Result<()>) -> Result<()> {
        for entry in self.index.blocks() {
            f(entry?.stored()?)?;
        }
        Ok(())
    }

    fn blocks_after(&self, after: Option<&Multihash>, limit: usize) -> Result<Vec<StoredBlock>> {
        let entries = self.index.blocks_after(after, limit)?;
        entries.into_iter().map(|e| e.stored()).collect()
    }

    fn read_raw(&self, mh: &Multihash) -> Result<Option<Bytes>> {
        self.read_body(&Cid::new_v1(RAW, *mh))
    }

    fn meta_get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        Ok(self.journal.meta_get(key))
    }

    fn meta_scan(&self, prefix: &str) -> Result<Vec<(String, Vec<u8>)>> {
        Ok(self.journal.meta_scan(prefix))
    }

    fn meta_put(&self, key: &str, value: Option<&[u8]>) -> Result<()> {
        self.journal.meta_put(key, value)
    }

    fn pin(&self, cid: &Cid, kind: PinKind) -> Result<()> {
        self.journal.pin(cid, kind)
    }

    fn unpin(&self, cid: &Cid) -> Result<PinKind> {
        // Unpinning is how space is freed: on a full disk, make room.
        let unpinned = match self.journal.unpin(cid) {
            Err(e) if space::is_disk_full(&e) && self.reserve.release() => self.journal.unpin(cid),
            r => r,
        };
        unpinned?.ok_or(StoreError::NotPinned { cid: *cid })
    }

    fn pins(&self) -> Result<Vec<(Cid, PinKind)>> {
        Ok(self.journal.pins())
    }

    fn pin_of(&self, cid: &Cid) -> Result<Option<PinKind>> {
        Ok(self.journal.pin_of(cid))
    }

    fn sweep(&self, live: &HashSet<Multihash>) -> Result<SweepReport> {
        self.sweep_and_compact(live)
    }

    fn stat(&self) -> Result<StoreStat> {
        let mut s = StoreStat::default();
        for entry in self.index.blocks() {
            s.blocks += 1;
            s.block_bytes += entry?.location().map_or(0, |l| l.len as u64);
        }
        s.pins = self.journal.pin_count();
        for id in self.index.segments()? {
            s.segments += 1;
            s.stored_bytes += self.segments.data_bytes(id);
        }
        Ok(s)
    }

    fn segment_usage(&self) -> Result<Vec<SegmentUsage>> {
        let mut live: HashMap<u32, u64> = HashMap::new();
        for entry in self.index.blocks() {
            if let Ok(loc) = entry?.location() {
                *live.entry(loc.segment).or_default() += loc.len as u64;
            }
        }
        Ok(self
            .index
            .segments()?
            .into_iter()
            .map(|id| SegmentUsage {
                id,
                live_bytes: live.get(&id).copied().unwrap_or(0),
                file_bytes: self.segments.file_bytes(id),
                data_bytes: self.segments.data_bytes(id),
            })
            .collect())
    }

    fn flush(&self) -> Result<()> {
        let mut w = self.lock_writer();
        // Nothing appended since the index last recorded this segment's
        // length: everything is durable already (a writer holding staged
        // records holds the lock until it commits them).
        if w.uncommitted.is_empty() && w.committed_at == Some((w.id, w.len)) {
            return Ok(());
        }
        self.commit(&mut w, &mut Vec::new())
    }

    fn pin_many(&self, cids: &[Cid], kind: PinKind) -> Result<()> {
        self.journal.pin_many(cids, kind)
    }

    fn unpin_many(&self, cids: &[Cid]) -> Result<Vec<Option<PinKind>>> {
        match self.journal.unpin_many(cids) {
            Err(e) if space::is_disk_full(&e) && self.reserve.release() => {
                self.journal.unpin_many(cids)
            }
            r => r,
        }
    }
}
#[cfg(test)]
mod tests {
    use super::*;
    use crate::block::MAX_BLOCK_BYTES;
    use crate::store::Corruption;
    use std::io::Write;

    fn block(i: u32, len: usize) -> Block {
        crate::store::conformance::block(i, len, RAW)
    }

    impl crate::store::conformance::Damage for DiskStore {
        fn flip_a_stored_bit(&self, cid: &Cid) {
            let loc = self.index.location(cid.hash()).unwrap().unwrap();
            let path = self.segments.path(loc.segment);
            let mut bytes = std::fs::read(&path).unwrap();
            bytes[loc.offset as usize] ^= 1;
            std::fs::write(&path, bytes).unwrap();
            self.segments.readers.write().unwrap().clear();
        }
    }

    fn small() -> DiskStoreOptions {
        DiskStoreOptions {
            segment_max_bytes: 64 * 1024,
            commit_bytes: 16 * 1024,
            ..DiskStoreOptions::default()
        }
    }

    #[test]
    fn reopen_keeps_blocks_and_pins_and_locks_out_others() {
        let dir = tempfile::tempdir().unwrap();
        let blocks: Vec<Block> = (0..50).map(|i| block(i, 5000)).collect();
        {
            let s = DiskStore::open(dir.path(), small()).unwrap();
            s.put_many(&mut blocks.clone().into_iter()).unwrap();
            s.pin(blocks[0].cid(), PinKind::Recursive).unwrap();
            assert!(matches!(
                DiskStore::open(dir.path(), small()),
                Err(StoreError::Locked { .. })
            ));
            assert!(s.stat().unwrap().segments > 1);
        }
        let s = DiskStore::open(dir.path(), small()).unwrap();
        for b in &blocks {
            assert_eq!(s.get(b.cid()).unwrap().as_ref(), Some(b));
        }
        assert_eq!(
            s.pins().unwrap(),
            vec![(*blocks[0].cid(), PinKind::Recursive)]
        );
    }

    #[test]
    fn direct_writes_survive_reopen_and_a_failed_call() {
        let dir = tempfile::tempdir().unwrap();
        let ok: Vec<Block> = (0..20).map(|i| block(i, 70_001 + i as usize)).collect();
        // Under `small()`'s 16 KiB commit size, so none is committed.
        let lost: Vec<Block> = (20..23).map(|i| block(i, 4_000)).collect();
        let too_big = Block::new_unchecked(
            *block(99, 1).cid(),
            Bytes::from(vec![0u8; MAX_BLOCK_BYTES + 1]),
        );
        {
            let s = DiskStore::open(dir.path(), small()).unwrap();
            let direct = s.lock_writer().direct.is_some();
            eprintln!("direct writes in {}: {direct}", dir.path().display());
            s.put_many_uncached(&mut ok[..10].iter().cloned()).unwrap();
            // A call that fails after staging records: they are not
            // indexed, and the segment is cut back so later writes land
            // where the index says.
            let mut failing = lost.iter().cloned().chain([too_big]);
            assert!(s.put_many_uncached(&mut failing).is_err());
            s.put(ok[10].clone()).unwrap();
            s.put_many_uncached(&mut ok[11..].iter().cloned()).unwrap();
            for b in &ok {
                assert_eq!(s.get(b.cid()).unwrap().as_ref(), Some(b));
            }
            for b in &lost {
                assert!(!s.has(b.cid()).unwrap());
            }
        }
        // Every segment ends at its committed length: nothing was left for
        // recovery to cut, no padding, no torn record.
        let s = DiskStore::open(dir.path(), small()).unwrap();
        for id in s.index.segments().unwrap() {
            let committed = s.index.committed_length(id).unwrap();
            assert_eq!(Some(s.segments.file_bytes(id)), committed, "segment {id}");
        }
        for b in &ok {
            assert_eq!(s.get(b.cid()).unwrap().as_ref(), Some(b));
        }
        s.put_many_uncached(&mut lost.iter().cloned()).unwrap();
        for b in ok.iter().chain(&lost) {
            assert_eq!(s.get(b.cid()).unwrap().as_ref(), Some(b));
        }
    }

    #[test]
    fn torn_tail_and_orphan_segments_are_cleaned_on_open() {
        let dir = tempfile::tempdir().unwrap();
        let b = block(1, 1000);
        {
            let s = DiskStore::open(dir.path(), small()).unwrap();
            s.put(b.clone()).unwrap();
        }
        let seg = dir.path().join("segments/00000000.seg");
        let len = std::fs::metadata(&seg).unwrap().len();
        let mut f = OpenOptions::new().append(true).open(&seg).unwrap();
        f.write_all(b"torn half record").unwrap();
        std::fs::write(dir.path().join("segments/00000007.seg"), b"orphan").unwrap();
        let s = DiskStore::open(dir.path(), small()).unwrap();
        assert_eq!(std::fs::metadata(&seg).unwrap().len(), len);
        assert!(!dir.path().join("segments/00000007.seg").exists());
        assert_eq!(s.get(b.cid()).unwrap().unwrap(), b);
    }

    /// A store holding one block, and its segment file.
    fn one_block_store(dir: &Path) -> (DiskStore, Block, std::path::PathBuf) {
        let b = block(3, 3000);
        let s = DiskStore::open(dir, small()).unwrap();
        s.put(b.clone()).unwrap();
        let seg = s.segments.path(0);
        (s, b, seg)
    }

    #[test]
    fn flipped_byte_reads_as_corrupt() {
        let dir = tempfile::tempdir().unwrap();
        let (s, b, seg) = one_block_store(dir.path());
        let mut bytes = std::fs::read(&seg).unwrap();
        let n = bytes.len();
        bytes[n - 10] ^= 1;
        std::fs::write(&seg, bytes).unwrap();
        s.segments.readers.write().unwrap().clear();
        match s.get(b.cid()) {
            Err(StoreError::Corrupt { cid, reason }) => {
                assert_eq!(&cid, b.cid());
                assert_eq!(reason, Corruption::HashMismatch);
            }
            other => panic!("expected corruption, got {other:?}"),
        }
        // Unverified reads hand the bytes over for the caller to judge.
        assert_eq!(s.read_raw(b.cid().hash()).unwrap().unwrap().len(), 3000);
    }

    #[test]
    fn a_damaged_record_header_reads_as_corrupt() {
        let dir = tempfile::tempdir().unwrap();
        let (s, b, seg) = one_block_store(dir.path());
        let clean = std::fs::read(&seg).unwrap();
        // Every header byte: magic, lengths, multihash, checksum.
        let header = segment::header_bytes(b.cid().hash().encoded_len()) as usize;
        for at in 0..header {
            let mut bytes = clean.clone();
            bytes[at] ^= 0x10;
            std::fs::write(&seg, bytes).unwrap();
            s.segments.readers.write().unwrap().clear();
            for r in [
                s.get(b.cid()).map(|_| ()),
                s.read_raw(b.cid().hash()).map(|_| ()),
            ] {
                match r {
                    Err(StoreError::Corrupt { cid, reason }) => {
                        assert_eq!(cid.hash(), b.cid().hash());
                        assert_eq!(reason, Corruption::BadRecordHeader, "byte {at}");
                    }
                    other => panic!("byte {at}: expected corruption, got {other:?}"),
                }
            }
        }
        std::fs::write(&seg, clean).unwrap();
        s.segments.readers.write().unwrap().clear();
        assert_eq!(s.get(b.cid()).unwrap().unwrap(), b);
    }

    #[test]
    fn a_failed_read_is_io_never_corrupt() {
        let dir = tempfile::tempdir().unwrap();
        let (s, b, seg) = one_block_store(dir.path());
        let expect_io = |r: Result<()>, kind: std::io::ErrorKind| match r {
            Err(StoreError::Io { path, cid, source }) => {
                assert_eq!(path, seg);
                assert_eq!(cid.map(|c| *c.hash()), Some(*b.cid().hash()));
                assert_eq!(source.kind(), kind);
            }
            other => panic!("expected an I/O error, got {other:?}"),
        };
        // A short read: the file lost its tail under the store.
        let len = std::fs::metadata(&seg).unwrap().len();
        File::options()
            .write(true)
            .open(&seg)
            .unwrap()
            .set_len(len - 1)
            .unwrap();
        let eof = std::io::ErrorKind::UnexpectedEof;
        expect_io(s.get(b.cid()).map(|_| ()), eof);
        expect_io(s.read_raw(b.cid().hash()).map(|_| ()), eof);
        // A file that cannot be opened: removed under the store.
        std::fs::remove_file(&seg).unwrap();
        s.segments.readers.write().unwrap().clear();
        let gone = std::io::ErrorKind::NotFound;
        expect_io(s.get(b.cid()).map(|_| ()), gone);
        expect_io(s.read_raw(b.cid().hash()).map(|_| ()), gone);
    }

    #[test]
    fn an_impossible_length_in_the_index_is_corrupt() {
        let dir = tempfile::tempdir().unwrap();
        let (s, b, _) = one_block_store(dir.path());
        let len = MAX_BLOCK_BYTES as u32 + 1;
        let mut w = s.lock_writer();
        let bad = Location {
            segment: 0,
            offset: 0,
            len,
        };
        let mut entry = vec![(*b.cid().hash(), bad)];
        s.index.commit(&mut entry, (w.id, w.len), None).unwrap();
        w.make_durable().unwrap();
        drop(w);
        match s.get(b.cid()) {
            Err(StoreError::Corrupt { cid, reason }) => {
                assert_eq!(&cid, b.cid());
                assert!(matches!(reason, Corruption::ImpossibleLength { .. }));
            }
            other => panic!("expected corruption, got {other:?}"),
        }
    }

    #[test]
    fn a_rebuilt_index_holds_every_intact_block_and_the_pins() {
        let dir = tempfile::tempdir().unwrap();
        let blocks: Vec<Block> = (0..50).map(|i| block(i, 5000)).collect();
        let (header_hit, body_hit) = (&blocks[10], &blocks[20]);
        {
            let s = DiskStore::open(dir.path(), small()).unwrap();
            s.put_many(&mut blocks.clone().into_iter()).unwrap();
            s.pin(blocks[0].cid(), PinKind::Recursive).unwrap();
            s.pin(blocks[1].cid(), PinKind::Direct).unwrap();
            s.meta_put("k", Some(b"v")).unwrap();
            for (b, back) in [(header_hit, 8u64), (body_hit, 0)] {
                let loc = s.index.location(b.cid().hash()).unwrap().unwrap();
                let path = s.segments.path(loc.segment);
                let mut bytes = std::fs::read(&path).unwrap();
                bytes[(loc.offset - back) as usize] ^= 1;
                std::fs::write(&path, bytes).unwrap();
            }
        }
        let s = DiskStore::open_rebuilding_index(dir.path(), small()).unwrap();
        let r = s.rebuilt_index().unwrap();
        assert_eq!((r.blocks, r.corrupt, r.reason.as_deref()), (48, 1, None));
        assert!(r.skipped_bytes >= 5000, "{r:?}");
        for b in &blocks {
            let hit = b == header_hit || b == body_hit;
            assert_eq!(s.has(b.cid()).unwrap(), !hit);
            if !hit {
                assert_eq!(s.get(b.cid()).unwrap().as_ref(), Some(b));
            }
        }
        assert_eq!(s.pins().unwrap().len(), 2);
        assert_eq!(s.meta_get("k").unwrap(), Some(b"v".to_vec()));
        assert_eq!(s.used_bytes(), 48 * 5000);
        drop(s);
        // The index left behind opens as it is.
        let s = DiskStore::open(dir.path(), small()).unwrap();
        assert!(s.rebuilt_index().is_none());
        assert!(s.has(blocks[49].cid()).unwrap());
    }

    #[test]
    fn compaction_frees_space_and_keeps_live_blocks() {
        let dir = tempfile::tempdir().unwrap();
        let s = DiskStore::open(dir.path(), small()).unwrap();
        let blocks: Vec<Block> = (0..100).map(|i| block(i, 4000)).collect();
        s.put_many(&mut blocks.clone().into_iter()).unwrap();
        let before = s.stat().unwrap();
        let live: HashSet<Multihash> = blocks.iter().step_by(10).map(|b| *b.cid().hash()).collect();
        let r = s.sweep(&live).unwrap();
        assert_eq!(r.removed_blocks, 90);
        assert!(r.compacted_segments > 0);
        let after = s.stat().unwrap();
        assert!(
            after.stored_bytes < before.stored_bytes / 3,
            "{before:?} -> {after:?}"
        );
        for (i, b) in blocks.iter().enumerate() {
            assert_eq!(s.get(b.cid()).unwrap().is_some(), i % 10 == 0);
        }
        drop(s);
        let s = DiskStore::open(dir.path(), small()).unwrap();
        for b in blocks.iter().step_by(10) {
            assert_eq!(s.get(b.cid()).unwrap().as_ref(), Some(b));
        }
    }
}

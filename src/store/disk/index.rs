//! The disk store's sled index: where each block body lives and each
//! segment's committed length. Everything in it can be rebuilt from the
//! segments (`rebuild.rs`); pins and metadata live in the journal.
//!
//! One sled tree with one-byte key prefixes, so one `apply_batch` is atomic
//! across both:
//!
//! ```text
//! b + multihash          → segment u32 LE, body offset u64 LE, body length u32 LE
//! s + segment id u32 BE  → committed length u64 LE
//! ```
//!
//! sled is opened without periodic flushes: every change is flushed before
//! the call that made it returns, so what a caller was told is durable is.

use crate::block::Multihash;
use crate::store::{Result, StoreError, StoredBlock};
use std::ops::Bound;
use std::path::Path;
use std::time::{Duration, Instant};

const BLOCK: u8 = b'b';
const SEGMENT: u8 = b's';

/// Longest wait for an index this process closed to let go of its file.
const RELEASE_WAIT: Duration = Duration::from_secs(10);

/// Where a block body lives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Location {
    /// The segment file.
    pub segment: u32,
    /// Offset of the body (past the record header) in it.
    pub offset: u64,
    /// Length of the body.
    pub len: u32,
}

impl Location {
    fn encode(&self) -> [u8; 16] {
        let mut v = [0u8; 16];
        v[..4].copy_from_slice(&self.segment.to_le_bytes());
        v[4..12].copy_from_slice(&self.offset.to_le_bytes());
        v[12..].copy_from_slice(&self.len.to_le_bytes());
        v
    }

    fn decode(v: &[u8]) -> Option<Location> {
        if v.len() != 16 {
            return None;
        }
        Some(Location {
            segment: u32::from_le_bytes(v[..4].try_into().ok()?),
            offset: u64::from_le_bytes(v[4..12].try_into().ok()?),
            len: u32::from_le_bytes(v[12..].try_into().ok()?),
        })
    }
}

/// One block entry of the index, decoded on demand.
pub(super) struct BlockEntry {
    key: sled::IVec,
    value: sled::IVec,
}

impl BlockEntry {
    /// The multihash, as stored (encoded).
    pub fn multihash_bytes(&self) -> &[u8] {
        &self.key[1..]
    }

    /// The multihash, decoded.
    pub fn multihash(&self) -> Result<Multihash> {
        Multihash::from_bytes(self.multihash_bytes()).map_err(|_| self.bad("block key"))
    }

    /// Where the body lives.
    pub fn location(&self) -> Result<Location> {
        Location::decode(&self.value).ok_or_else(|| self.bad("block location"))
    }

    /// The entry as the store lists it.
    pub fn stored(&self) -> Result<StoredBlock> {
        Ok(StoredBlock {
            multihash: self.multihash()?,
            len: self.location()?.len as u64,
        })
    }

    fn bad(&self, what: &'static str) -> StoreError {
        StoreError::BadIndexEntry {
            what,
            key: self.key.to_vec(),
        }
    }
}

/// The index database.
pub(super) struct Index {
    db: sled::Db,
}

/// Maps a sled error to [`StoreError::Index`] saying what was being done.
fn failed(doing: &'static str) -> impl FnOnce(sled::Error) -> StoreError {
    move |source| StoreError::Index { doing, source }
}

fn block_key(mh: &Multihash) -> Vec<u8> {
    let mut k = Vec::with_capacity(40);
    k.push(BLOCK);
    k.extend_from_slice(&mh.to_bytes());
    k
}

fn segment_key(id: u32) -> [u8; 5] {
    let mut k = [SEGMENT; 5];
    k[1..].copy_from_slice(&id.to_be_bytes());
    k
}

/// Deletes sled's unfinished snapshot files in `dir` (if it exists).
fn remove_unfinished_snapshots(dir: &Path) -> Result<()> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Ok(());
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with("snap.") && name.ends_with(".generating") {
            tracing::warn!(file = %entry.path().display(), "removing an unfinished index snapshot");
            let path = entry.path();
            std::fs::remove_file(&path).map_err(|source| StoreError::Io {
                path,
                cid: None,
                source,
            })?;
        }
    }
    Ok(())
}

/// Waits (at most [`RELEASE_WAIT`]) until no one holds the lock sled takes
/// on `dir/db`. sled fails at once when the lock is held, and a handle this
/// process dropped keeps it a moment longer: sled's background threads
/// hold the file until their last write returns. Other processes are kept
/// out by the store's own lock, so whoever holds it here lets go soon.
fn wait_for_release(dir: &Path) {
    let Ok(file) = std::fs::File::open(dir.join("db")) else {
        return;
    };
    let start = Instant::now();
    loop {
        match file.try_lock() {
            Ok(()) => {
                let _ = file.unlock();
                return;
            }
            Err(std::fs::TryLockError::WouldBlock) if start.elapsed() < RELEASE_WAIT => {
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(_) => return,
        }
    }
}

/// Opens (creating if needed) the sled database in directory `path`,
/// flushed only when asked (the store and the S3 bucket index use sled).
///
/// A snapshot sled left half-written (`snap.*.generating`, e.g. on a
/// full disk) is deleted first: sled 0.34 would take it for its latest
/// snapshot and refuse to open as corrupt. Opening writes a snapshot
/// when the log moved on since the last one; if that fails (a full
/// disk), its unfinished file is deleted again before returning. An
/// index this process just closed is waited for ([`wait_for_release`]).
pub(crate) fn open_sled(path: &Path, cache_bytes: u64) -> Result<sled::Db> {
    remove_unfinished_snapshots(path)?;
    wait_for_release(path);
    let opened = sled::Config::new()
        .path(path)
        .cache_capacity(cache_bytes)
        .flush_every_ms(None)
        .open();
    opened.map_err(|source| {
        // A failed first snapshot leaves its unfinished file: not kept.
        if let Err(e) = remove_unfinished_snapshots(path) {
            return e;
        }
        StoreError::IndexOpen {
            path: path.to_path_buf(),
            source,
        }
    })
}

impl Index {
    /// Opens (creating if needed) the index in directory `path`
    /// ([`open_sled`]).
    pub fn open(path: &Path, cache_bytes: u64) -> Result<Index> {
        Ok(Index {
            db: open_sled(path, cache_bytes)?,
        })
    }

    fn flush(&self, doing: &'static str) -> Result<()> {
        self.db.flush().map(|_| ()).map_err(failed(doing))
    }

    /// Where the body of the block with multihash `mh` lives.
    pub fn location(&self, mh: &Multihash) -> Result<Option<Location>> {
        let key = block_key(mh);
        match self.db.get(&key).map_err(failed("looking up a block"))? {
            None => Ok(None),
            Some(v) => Location::decode(&v)
                .map(Some)
                .ok_or(StoreError::BadIndexEntry {
                    what: "block location",
                    key,
                }),
        }
    }

    /// Whether a block with multihash `mh` is indexed.
    pub fn has_block(&self, mh: &Multihash) -> Result<bool> {
        self.db
            .contains_key(block_key(mh))
            .map_err(failed("looking up a block"))
    }

    /// Forgets a block, durably; returns its body length if it was indexed
    /// (0 for an entry that does not decode).
    pub fn remove_block(&self, mh: &Multihash) -> Result<Option<u64>> {
        let old = self
            .db
            .remove(block_key(mh))
            .map_err(failed("removing a block"))?;
        self.flush("removing a block")?;
        Ok(old.map(|v| Location::decode(&v).map_or(0, |l| l.len as u64)))
    }

    /// Every block entry, in key order.
    pub fn blocks(&self) -> impl Iterator<Item = Result<BlockEntry>> + '_ {
        self.db.scan_prefix([BLOCK]).map(|item| {
            item.map(|(key, value)| BlockEntry { key, value })
                .map_err(failed("listing blocks"))
        })
    }

    /// Up to `limit` block entries in key order, after the block `after`
    /// (from the first with `None`).
    pub fn blocks_after(&self, after: Option<&Multihash>, limit: usize) -> Result<Vec<BlockEntry>> {
        let start = match after {
            Some(mh) => Bound::Excluded(block_key(mh)),
            None => Bound::Included(vec![BLOCK]),
        };
        self.db
            .range((start, Bound::Excluded(vec![BLOCK + 1])))
            .take(limit)
            .map(|item| {
                item.map(|(key, value)| BlockEntry { key, value })
                    .map_err(failed("listing blocks"))
            })
            .collect()
    }

    /// Forgets the given blocks (in batches, each atomic), then flushes.
    pub fn remove_blocks(&self, dead: &[BlockEntry]) -> Result<()> {
        for chunk in dead.chunks(10_000) {
            let mut batch = sled::Batch::default();
            for entry in chunk {
                batch.remove(entry.key.clone());
            }
            self.db
                .apply_batch(batch)
                .map_err(failed("removing swept blocks"))?;
        }
        self.flush("removing swept blocks")
    }

    /// Records, in ONE atomic batch then a flush: the new block locations,
    /// segment `active`'s committed length, and (compaction) segment
    /// `retired` gone. The segment bytes must be durable already.
    pub fn commit(
        &self,
        located: &mut Vec<(Multihash, Location)>,
        active: (u32, u64),
        retired: Option<u32>,
    ) -> Result<()> {
        let mut batch = sled::Batch::default();
        for (mh, loc) in located.drain(..) {
            batch.insert(block_key(&mh), &loc.encode()[..]);
        }
        batch.insert(&segment_key(active.0)[..], &active.1.to_le_bytes()[..]);
        if let Some(id) = retired {
            batch.remove(&segment_key(id)[..]);
        }
        self.db
            .apply_batch(batch)
            .map_err(failed("committing a batch"))?;
        self.flush("committing a batch")
    }

    /// The committed length of segment `id`, or `None` if it was never
    /// committed (or was compacted away).
    pub fn committed_length(&self, id: u32) -> Result<Option<u64>> {
        let key = segment_key(id);
        let Some(v) = self
            .db
            .get(key)
            .map_err(failed("reading a segment's length"))?
        else {
            return Ok(None);
        };
        v.as_ref()
            .try_into()
            .map(|b| Some(u64::from_le_bytes(b)))
            .map_err(|_| StoreError::BadIndexEntry {
                what: "committed segment length",
                key: key.to_vec(),
            })
    }

    /// The ids of every committed segment, in order.
    pub fn segments(&self) -> Result<Vec<u32>> {
        let mut ids = vec![];
        for item in self.db.scan_prefix([SEGMENT]) {
            let (k, _) = item.map_err(failed("listing segments"))?;
            let id = k[1..].try_into().map(u32::from_be_bytes).map_err(|_| {
                StoreError::BadIndexEntry {
                    what: "segment key",
                    key: k.to_vec(),
                }
            })?;
            ids.push(id);
        }
        Ok(ids)
    }
}

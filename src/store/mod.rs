//! Block storage: one [`Store`] API, two implementations, and a memory
//! tier in front of either.
//!
//! - [`MemoryStore`]: everything in RAM, for tests and netsim.
//! - [`DiskStore`]: block bodies appended to large segment files in
//!   self-describing records, a sled index mapping multihash → (segment,
//!   offset, length) that can be rebuilt from them, and a journal holding
//!   the pin set and node metadata. `disk/mod.rs` gives the layout and
//!   write order; each part describes the format it implements.
//! - [`HotStore`]: verified blocks that reads come back to, kept in memory
//!   ([`HotCache`], bounded, scan-resistant); `hot.rs` says what it admits.
//!
//! Blocks are keyed by multihash, so the same bytes named under two codecs
//! are stored once. Every read verifies the bytes against the CID asked for;
//! a mismatch is [`StoreError::Corrupt`], never data. A read that fails is
//! [`StoreError::Io`]: only proof makes a block corrupt.
//!
//! Pins live here too (recursive and direct); which blocks a recursive pin
//! reaches is the DAG layer's knowledge, so garbage collection takes the
//! set of live multihashes from its caller (see `crate::dag::gc`).

use crate::block::{verify, Block, BlockError, Cid, Multihash};
use std::collections::HashSet;
use std::path::PathBuf;

mod disk;
mod faulty;
mod hot;
mod memory;

pub(crate) use disk::open_sled;
pub use disk::{DiskStore, DiskStoreOptions};
pub use faulty::{FaultyStore, StorageFault};
pub use hot::{HotCache, HotStats, HotStore};
pub use memory::MemoryStore;

#[cfg(test)]
mod conformance;

/// Errors of the storage layer.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A file operation failed (disk full, EIO, a file that cannot be
    /// opened, too many open files, a read that came back short): says
    /// nothing about whether the stored bytes are right.
    #[error(
        "storage I/O error on {path}{}: {source}",
        .cid.as_ref().map(|c| format!(" (block {c})")).unwrap_or_default()
    )]
    Io {
        /// The file concerned.
        path: PathBuf,
        /// The block being read or written, where known.
        cid: Option<Cid>,
        /// What the operating system said.
        #[source]
        source: std::io::Error,
    },
    /// The sled index failed.
    #[error("index error while {doing}: {source}")]
    Index {
        /// What the store was doing ("committing a batch", ...).
        doing: &'static str,
        /// What sled said.
        #[source]
        source: sled::Error,
    },
    /// The sled index could not be opened (damaged, or not an index).
    #[error("cannot open the index at {path}: {source}")]
    IndexOpen {
        /// The index directory.
        path: PathBuf,
        /// What sled said.
        #[source]
        source: sled::Error,
    },
    /// An index entry that does not decode: the index is damaged.
    #[error("damaged index entry ({what}) under key {key:02x?}")]
    BadIndexEntry {
        /// Which kind of entry ("block location", "pin key", ...).
        what: &'static str,
        /// Its key, prefix included.
        key: Vec<u8>,
    },
    /// Stored bytes proven wrong: never reported for a failed read.
    #[error("block {cid} is corrupt in storage: {reason}")]
    Corrupt {
        /// The block.
        cid: Cid,
        /// The proof.
        reason: Corruption,
    },
    /// Another process holds the repository.
    #[error("repository {path} is in use by another process (is a cairn daemon running?)")]
    Locked {
        /// The store directory.
        path: PathBuf,
    },
    /// A block refused for its content (too large, bad CID).
    #[error(transparent)]
    Block(#[from] BlockError),
    /// A pin that does not exist was asked to be removed.
    #[error("{cid} is not pinned")]
    NotPinned {
        /// The CID asked for.
        cid: Cid,
    },
    /// Storing more would pass the configured limit (`[storage] max`).
    #[error("storage quota exceeded: {used} bytes stored, {adding} more would pass the {max}-byte limit")]
    QuotaExceeded {
        /// Bytes of block data stored.
        used: u64,
        /// Bytes of the block refused.
        adding: u64,
        /// The limit.
        max: u64,
    },
    /// The pin and metadata journal is damaged where no entry can be
    /// recovered from (its header).
    #[error("the pin journal {path} is damaged at byte {offset}")]
    JournalDamaged {
        /// The journal file.
        path: PathBuf,
        /// Where the damage starts.
        offset: u64,
    },
    /// The store holds segments in a format this build does not read.
    #[error("the store at {path} holds segments in format {found}; this cairn reads only format 2 (records with checksummed headers): add the content again into a new repository")]
    UnsupportedFormat {
        /// The segments directory.
        path: PathBuf,
        /// The format found ("1": segments from before format numbers).
        found: String,
    },
    /// Every segment id has been used: no new segment file can start.
    #[error("segment ids exhausted: the store cannot start another segment file")]
    SegmentIdsExhausted,
}

/// What proves a stored block corrupt.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Corruption {
    /// Its bytes hash to another digest than its CID names.
    #[error("its bytes hash to a different digest")]
    HashMismatch,
    /// Its record header in the segment is damaged, or names another
    /// block or length than the index does.
    #[error("its record header in the segment does not match (damaged header or index)")]
    BadRecordHeader,
    /// The index records a body length no block can have.
    #[error("the index records {len} bytes for it, over the {max}-byte block limit")]
    ImpossibleLength {
        /// The recorded length.
        len: u64,
        /// The block size limit.
        max: usize,
    },
}

/// The [`Store`] methods a wrapper store hands to the store in its field
/// `$inner` unchanged (pins, metadata, counts, flush), written once for
/// every wrapper that changes only how blocks are read or written
/// ([`FaultyStore`], test stores). Use it inside the wrapper's `impl Store`.
macro_rules! pass_through_store_methods {
    ($inner:ident) => {
        fn offer_whole_file(&self, block: &Block) {
            self.$inner.offer_whole_file(block)
        }
        fn pin(&self, cid: &Cid, kind: PinKind) -> $crate::store::Result<()> {
            self.$inner.pin(cid, kind)
        }
        fn unpin(&self, cid: &Cid) -> $crate::store::Result<PinKind> {
            self.$inner.unpin(cid)
        }
        fn pin_many(&self, cids: &[Cid], kind: PinKind) -> $crate::store::Result<()> {
            self.$inner.pin_many(cids, kind)
        }
        fn unpin_many(&self, cids: &[Cid]) -> $crate::store::Result<Vec<Option<PinKind>>> {
            self.$inner.unpin_many(cids)
        }
        fn pins(&self) -> $crate::store::Result<Vec<(Cid, PinKind)>> {
            self.$inner.pins()
        }
        fn pin_of(&self, cid: &Cid) -> $crate::store::Result<Option<PinKind>> {
            self.$inner.pin_of(cid)
        }
        fn stat(&self) -> $crate::store::Result<$crate::store::StoreStat> {
            self.$inner.stat()
        }
        fn flush(&self) -> $crate::store::Result<()> {
            self.$inner.flush()
        }
        fn meta_get(&self, key: &str) -> $crate::store::Result<Option<Vec<u8>>> {
            self.$inner.meta_get(key)
        }
        fn meta_put(&self, key: &str, value: Option<&[u8]>) -> $crate::store::Result<()> {
            self.$inner.meta_put(key, value)
        }
        fn meta_scan(&self, prefix: &str) -> $crate::store::Result<Vec<(String, Vec<u8>)>> {
            self.$inner.meta_scan(prefix)
        }
        fn used_bytes(&self) -> u64 {
            self.$inner.used_bytes()
        }
        fn segment_usage(&self) -> $crate::store::Result<Vec<$crate::store::SegmentUsage>> {
            self.$inner.segment_usage()
        }
    };
}
pub(crate) use pass_through_store_methods;

/// Results of the storage layer.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// `data` as the block `cid` names, after checking its hash: a mismatch is
/// [`StoreError::Corrupt`].
fn verified(cid: &Cid, data: bytes::Bytes) -> Result<Block> {
    match verify(cid, &data) {
        Ok(()) => Ok(Block::new_unchecked(*cid, data)),
        Err(BlockError::HashMismatch { .. }) => Err(StoreError::Corrupt {
            cid: *cid,
            reason: Corruption::HashMismatch,
        }),
        Err(e) => Err(e.into()),
    }
}

/// How a root is pinned.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PinKind {
    /// The block and everything it links to, transitively.
    Recursive,
    /// Only this block.
    Direct,
}

impl PinKind {
    /// The kind's name as Kubo prints it.
    pub fn as_str(self) -> &'static str {
        match self {
            PinKind::Recursive => "recursive",
            PinKind::Direct => "direct",
        }
    }
}

/// What a store holds, for `repo stat`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StoreStat {
    /// Number of distinct blocks (multihashes) indexed.
    pub blocks: u64,
    /// Sum of their lengths.
    pub block_bytes: u64,
    /// Number of pins (both kinds).
    pub pins: u64,
    /// Bytes of data the store holds on its medium, garbage included
    /// (holes punched by garbage collection not counted).
    pub stored_bytes: u64,
    /// Number of segment files (0 for the memory store).
    pub segments: u64,
}

/// What a sweep freed, for `repo gc`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SweepReport {
    /// Blocks removed from the index.
    pub removed_blocks: u64,
    /// Their total length.
    pub removed_bytes: u64,
    /// Bytes given back to the file system (holes punched where dead
    /// records were, segments compacted).
    pub reclaimed_bytes: u64,
    /// Segments rewritten or deleted.
    pub compacted_segments: u64,
}

/// What rebuilding the index from the segments found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RebuildReport {
    /// Why the index was rebuilt (what opening it failed with), when it
    /// was not asked for.
    pub reason: Option<String>,
    /// Segment files read.
    pub segments: u64,
    /// Blocks indexed.
    pub blocks: u64,
    /// Their total length.
    pub block_bytes: u64,
    /// Records left out because their body does not hash to the multihash
    /// their header names.
    pub corrupt: u64,
    /// Bytes passed over where no record header checked (garbage, holes
    /// left by garbage collection, damage).
    pub skipped_bytes: u64,
}

/// How full one segment file is, for `repo stat`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SegmentUsage {
    /// The segment's number (its file name).
    pub id: u32,
    /// Bytes of indexed block bodies in it.
    pub live_bytes: u64,
    /// Size of the file.
    pub file_bytes: u64,
    /// Bytes of the file that hold data (its size less the holes garbage
    /// collection punched).
    pub data_bytes: u64,
}

/// One stored block as an index entry, for enumeration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredBlock {
    /// The key it is stored under.
    pub multihash: Multihash,
    /// Its length in bytes.
    pub len: u64,
}

/// The block store API every implementation provides.
///
/// Write order contract: `put_many` makes block bytes durable before it
/// records them in the index; callers pin only after `put_many` returned,
/// so a crash never leaves a pin pointing at a missing block.
pub trait Store: Send + Sync {
    /// Stores every block the iterator yields, durably, and returns how many
    /// bytes were new. Blocks already present are skipped. Implementations
    /// commit in bounded batches, so memory does not grow with the input.
    fn put_many(&self, blocks: &mut dyn Iterator<Item = Block>) -> Result<u64>;

    /// `put_many` for blocks not expected to be read back soon (fetched from
    /// peers): a store may write them around the OS page cache.
    fn put_many_uncached(&self, blocks: &mut dyn Iterator<Item = Block>) -> Result<u64> {
        self.put_many(blocks)
    }

    /// Stores one block durably.
    fn put(&self, block: Block) -> Result<u64> {
        self.put_many(&mut std::iter::once(block))
    }

    /// Reads and verifies the block named by `cid` (any codec with the same
    /// multihash). `Ok(None)` when it is not stored; [`StoreError::Corrupt`]
    /// when its bytes do not hash to `cid`; [`StoreError::Io`] when they
    /// cannot be read.
    fn get(&self, cid: &Cid) -> Result<Option<Block>>;

    /// Tells the store that `block`, which a `get` has just given, holds a
    /// whole file by itself and was read as the root of a read (a raw
    /// block or a UnixFS file of one block asked for by its own CID or
    /// path, not a leaf of a larger file): a memory tier may keep it even
    /// when it is larger than the blocks it keeps otherwise
    /// (`[store] hot_cache_file_max`). Nothing by default.
    fn offer_whole_file(&self, _block: &Block) {}

    /// Whether a block with this multihash is stored.
    fn has(&self, cid: &Cid) -> Result<bool>;

    /// The stored length of the block, without reading it.
    fn size_of(&self, cid: &Cid) -> Result<Option<u64>>;

    /// Calls `f` for each stored block (multihash and length), in key order.
    fn for_each_block(&self, f: &mut dyn FnMut(StoredBlock) -> Result<()>) -> Result<()>;

    /// Up to `limit` stored blocks in key order, starting after the block
    /// `after` (from the first with `None`): a long pass over the store (the
    /// scrub) pages through it instead of holding every entry at once.
    fn blocks_after(&self, after: Option<&Multihash>, limit: usize) -> Result<Vec<StoredBlock>>;

    /// Reads a block by multihash without verifying it (for `repo verify`,
    /// which re-hashes itself and reports instead of failing). A failed
    /// read is [`StoreError::Io`].
    fn read_raw(&self, mh: &Multihash) -> Result<Option<bytes::Bytes>>;

    /// Adds or replaces a pin. The pinned blocks must already be stored.
    fn pin(&self, cid: &Cid, kind: PinKind) -> Result<()>;

    /// Removes a pin.
    fn unpin(&self, cid: &Cid) -> Result<PinKind>;

    /// Adds or replaces a pin of each of `cids`, as [`pin`](Store::pin)
    /// does, with one durable write where the store can (a crash may keep
    /// some of them).
    fn pin_many(&self, cids: &[Cid], kind: PinKind) -> Result<()> {
        cids.iter().try_for_each(|cid| self.pin(cid, kind))
    }

    /// Removes the pins of `cids`, as [`unpin`](Store::unpin) does, with
    /// one durable write where the store can (a crash may remove some of
    /// them); returns the kind each had (none: it was not pinned).
    fn unpin_many(&self, cids: &[Cid]) -> Result<Vec<Option<PinKind>>> {
        cids.iter()
            .map(|cid| match self.unpin(cid) {
                Ok(kind) => Ok(Some(kind)),
                Err(StoreError::NotPinned { .. }) => Ok(None),
                Err(e) => Err(e),
            })
            .collect()
    }

    /// All pins.
    fn pins(&self) -> Result<Vec<(Cid, PinKind)>>;

    /// The pin on `cid` itself, if any.
    fn pin_of(&self, cid: &Cid) -> Result<Option<PinKind>>;

    /// Removes every block whose multihash is not in `live`, then compacts
    /// storage whose live share fell below the store's threshold.
    fn sweep(&self, live: &HashSet<Multihash>) -> Result<SweepReport>;

    /// Counts blocks, bytes and pins.
    fn stat(&self) -> Result<StoreStat>;

    /// Makes everything written so far durable.
    fn flush(&self) -> Result<()>;

    /// Node metadata (routing table, provider state, ...) under `key`.
    fn meta_get(&self, key: &str) -> Result<Option<Vec<u8>>>;

    /// Sets (durably) or, with `None`, removes node metadata under `key`.
    fn meta_put(&self, key: &str, value: Option<&[u8]>) -> Result<()>;

    /// Every metadata entry whose key starts with `prefix`, in key order.
    fn meta_scan(&self, prefix: &str) -> Result<Vec<(String, Vec<u8>)>>;

    /// Forgets the block with this multihash; its space is reclaimed by
    /// compaction. Returns whether it was stored.
    fn remove(&self, mh: &Multihash) -> Result<bool>;

    /// Stores `block` in place of the copy kept under its multihash (one
    /// proven corrupt), or as a new block if there is none. Its bytes are
    /// checked against its CID first (a mismatch is refused as
    /// [`BlockError::HashMismatch`] and changes nothing), and are durable
    /// before the index points at them: the old copy is never dropped
    /// before the new one is safe.
    fn replace(&self, block: &Block) -> Result<()>;

    /// Bytes of block data stored now (what the quota counts).
    fn used_bytes(&self) -> u64;

    /// Per storage file: (segment id, live bytes, file bytes). Empty for
    /// stores without segments.
    fn segment_usage(&self) -> Result<Vec<SegmentUsage>> {
        Ok(Vec::new())
    }
}

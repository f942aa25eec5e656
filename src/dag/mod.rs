//! UnixFS over dag-pb: chunking, building, reading, walking and CAR files.
//!
//! - [`chunker`]: streaming fixed-size and content-defined chunkers.
//! - [`builder`]: balanced and trickle file DAGs, directories, symlinks —
//!   CIDs identical to Kubo's for the same options.
//! - [`reader`]: streaming reads of files and byte ranges (only the blocks a
//!   range needs), directory listings, path resolution, tree export.
//! - `leaves`: leaf blocks of a file import, hashed on every core, in
//!   file order.
//! - [`hamt`]: HAMT-sharded directories (Kubo's large directories).
//! - [`ipld`]: blocks as IPLD data (DAG-CBOR, DAG-JSON, dag-pb, raw) and
//!   paths through them.
//! - [`batch`]: the DAG-CBOR batches durable logs are chains of.
//! - [`walk`]: every block a root reaches (pinning, GC marking, export).
//! - [`car`]: CAR v1 import/export (CARv2 read).
//! - [`scope`]: the blocks a trustless gateway response carries
//!   (`dag-scope`, `entity-bytes`).
//! - [`pb`]: the dag-pb and UnixFS wire formats.
//!
//! The layer reads blocks through [`BlockSource`], which every store
//! implements and which the network layer can implement to fetch on demand.

pub mod batch;
pub mod builder;
pub mod car;
pub mod chunker;
pub mod fetch;
pub mod hamt;
pub mod ipld;
mod leaves;
pub mod pb;
pub mod reader;
pub mod scope;
pub mod walk;

use crate::block::{Block, BlockError, Cid};
use crate::proto::DecodeError;
use crate::store::{Store, StoreError};

/// The cores this process may use, if known. Asked once per process:
/// `available_parallelism` reads the cgroup files under /proc and /sys on
/// every call (11 % of a gateway's CPU when each small read asked it).
pub(crate) fn available_cores() -> Option<usize> {
    static CORES: std::sync::OnceLock<Option<usize>> = std::sync::OnceLock::new();
    *CORES.get_or_init(|| std::thread::available_parallelism().ok().map(|n| n.get()))
}

/// Errors of the DAG layer.
#[derive(Debug, thiserror::Error)]
pub enum DagError {
    /// Reading the input failed.
    #[error("reading input: {0}")]
    Read(#[source] std::io::Error),
    /// Writing output failed.
    #[error("writing {path}: {source}")]
    Write {
        /// What was being written (a file system path, or a stream's name).
        path: String,
        /// The writer's error.
        #[source]
        source: std::io::Error,
    },
    /// Import options that cannot be honoured.
    #[error("invalid options: {0}")]
    Options(#[from] builder::OptionsError),
    /// Directory entry names whose 64-bit hashes are equal: a HAMT cannot
    /// hold both.
    #[error("invalid options: HAMT: names collide on all 64 hash bits ({name:?})")]
    HamtCollision {
        /// The name that could not be placed.
        name: String,
    },
    /// A block the DAG needs is not available.
    #[error("block {cid} not found")]
    NotFound {
        /// The missing block.
        cid: Cid,
    },
    /// A block whose dag-pb or UnixFS encoding does not decode.
    #[error("block {cid} is not valid UnixFS: {source}")]
    Undecodable {
        /// The block.
        cid: Cid,
        /// What the decoder refused.
        #[source]
        source: DecodeError,
    },
    /// A block that does not decode under its CID's codec.
    #[error("block {cid} does not decode: {source}")]
    Codec {
        /// The block.
        cid: Cid,
        /// What the codec refused.
        #[source]
        source: ipld::CodecError,
    },
    /// A block that decodes but is not what its place in the DAG requires.
    #[error("block {cid} is not valid UnixFS: {reason}")]
    Malformed {
        /// The block.
        cid: Cid,
        /// What is wrong with it.
        reason: String,
    },
    /// A path that does not exist inside a directory.
    #[error("no link named {name:?} under {cid}")]
    NoSuchPath {
        /// The directory.
        cid: Cid,
        /// The name it lacks.
        name: String,
    },
    /// Asked to read a directory as a file, or the like.
    #[error("{cid} is a {actual}, not a {expected}")]
    WrongKind {
        /// The node.
        cid: Cid,
        /// The kind the operation needs.
        expected: &'static str,
        /// The kind the node is.
        actual: &'static str,
    },
    /// A name in a directory that cannot be written to a file system safely.
    #[error("refusing unsafe entry name {name:?} in {cid}")]
    UnsafeName {
        /// The directory.
        cid: Cid,
        /// The entry name.
        name: String,
    },
    /// A block that failed verification or a CID that cannot be used.
    #[error(transparent)]
    Block(#[from] BlockError),
    /// The store failed (I/O or corruption: see [`StoreError`]).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Fetching a block from elsewhere (the network) failed.
    #[error("fetching block {cid}: {reason}")]
    Fetch {
        /// The block being fetched.
        cid: Cid,
        /// Why the fetch failed.
        reason: String,
    },
    /// A bug: an invariant of this module broke.
    #[error("internal error: {0}")]
    Internal(&'static str),
}

/// Where the DAG layer gets blocks from.
pub trait BlockSource: Send + Sync {
    /// The verified block, or [`DagError::NotFound`].
    fn block(&self, cid: &Cid) -> Result<Block, DagError>;

    /// A hint that these blocks will be asked for soon, in this order
    /// (a network source starts fetching them; a store ignores it).
    fn prefetch(&self, _cids: &[Cid]) {}

    /// Whether blocks are being fetched from elsewhere (peers) rather than
    /// read from a local store: readers then ask further ahead, to cover
    /// the latency.
    fn fetching(&self) -> bool {
        false
    }

    /// Hears that `block`, which this source has just given, is a whole
    /// file by itself read as the root of a read (see
    /// [`Store::offer_whole_file`]): a store may keep it in memory.
    /// Nothing by default.
    fn whole_file_root(&self, _block: &Block) {}

    /// Whether the block is there, without reading it where the source can
    /// tell (a store's index); by default, by reading it.
    fn has_block(&self, cid: &Cid) -> Result<bool, DagError> {
        match self.block(cid) {
            Ok(_) => Ok(true),
            Err(DagError::NotFound { .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }
}

impl<S: Store + ?Sized> BlockSource for S {
    fn block(&self, cid: &Cid) -> Result<Block, DagError> {
        if let Some(b) = crate::block::identity_block(cid) {
            return Ok(b);
        }
        self.get(cid)?.ok_or(DagError::NotFound { cid: *cid })
    }

    fn whole_file_root(&self, block: &Block) {
        self.offer_whole_file(block);
    }

    fn has_block(&self, cid: &Cid) -> Result<bool, DagError> {
        if crate::block::identity_block(cid).is_some() {
            return Ok(true);
        }
        Ok(self.has(cid)?)
    }
}

/// A shared store seen as a `dyn BlockSource` (what readers that outlive
/// a borrow hold).
pub struct SharedStore(pub std::sync::Arc<dyn Store>);

impl BlockSource for SharedStore {
    fn block(&self, cid: &Cid) -> Result<Block, DagError> {
        self.0.block(cid)
    }

    fn whole_file_root(&self, block: &Block) {
        self.0.offer_whole_file(block);
    }

    fn has_block(&self, cid: &Cid) -> Result<bool, DagError> {
        self.0.has_block(cid)
    }
}

/// A `&dyn Store` seen as a `dyn BlockSource` (a trait object cannot be
/// turned into another directly).
pub struct StoreBlocks<'a>(pub &'a dyn Store);

impl BlockSource for StoreBlocks<'_> {
    fn block(&self, cid: &Cid) -> Result<Block, DagError> {
        self.0.block(cid)
    }

    fn whole_file_root(&self, block: &Block) {
        self.0.offer_whole_file(block);
    }

    fn has_block(&self, cid: &Cid) -> Result<bool, DagError> {
        self.0.has_block(cid)
    }
}

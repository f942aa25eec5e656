//! Reading UnixFS: what a block is, files and byte ranges, directories and
//! paths, whole trees.
//!
//! - this file: [`Node`], a block classified by what it is in UnixFS, and
//!   [`load`].
//! - `file.rs`: [`FileReader`], streaming a file or a byte range of it,
//!   with blocks fetched and verified ahead of the walk.
//! - `directory.rs`: directory entries and listings, and path resolution
//!   ([`resolve_path`], and [`lookup`], the one step every resolver takes).
//! - `cache.rs`: [`ResolveCache`], resolved paths and listings
//!   remembered (content addressed, so never stale).
//! - `export.rs`: writing a tree to the file system ([`export`]) or to a
//!   tar stream ([`export_tar`]).

mod cache;
mod directory;
mod export;
mod file;
mod held;

pub use cache::{CacheCounters, ResolveCache, ResolvedPath};
pub(crate) use directory::no_such_path;
pub use directory::{directory_entries, list, lookup, resolve_path, resolve_steps, DirEntry};
pub use export::{export, export_tar, safe_name, ExportStats};
pub use file::{FileReader, ReadOptions};
pub use held::{first_bytes, held_pieces, slice_pieces, MAX_HELD_BLOCKS};

use super::pb::{DataType, PbLink, PbNode, UnixFs};
use super::{BlockSource, DagError};
use crate::block::{Block, Cid, DAG_PB, RAW};
use bytes::Bytes;

/// Deepest file tree the reader follows (Kubo's trees of 4 GiB are depth 3).
pub const MAX_DEPTH: usize = 64;

/// A decoded block, classified by what it is in UnixFS.
#[derive(Debug)]
pub enum Node {
    /// A raw leaf: all of its bytes are file data.
    Raw(Bytes),
    /// A UnixFS file node (or a dag-pb leaf of type Raw).
    File {
        /// File bytes held in the node itself (before its children's).
        data: Bytes,
        /// The children, in file order.
        links: Vec<PbLink>,
        /// File bytes under each child.
        blocksizes: Vec<u64>,
        /// The file size the node claims.
        filesize: Option<u64>,
    },
    /// A plain UnixFS directory.
    Directory {
        /// The entries, named.
        links: Vec<PbLink>,
    },
    /// A UnixFS symbolic link.
    Symlink {
        /// Where it points.
        target: Vec<u8>,
    },
    /// A HAMT-sharded directory (large directories made by Kubo).
    HamtShard {
        /// Entries and child shards, names prefixed by their slot.
        links: Vec<PbLink>,
    },
}

impl Node {
    /// Decodes a block under its CID's codec.
    pub fn decode(block: &Block) -> Result<Node, DagError> {
        let cid = *block.cid();
        let malformed = |reason: String| DagError::Malformed { cid, reason };
        match cid.codec() {
            RAW => Ok(Node::Raw(block.data().clone())),
            DAG_PB => {
                let undecodable = |source| DagError::Undecodable { cid, source };
                let pb = PbNode::decode(block.data()).map_err(undecodable)?;
                let data = pb
                    .data
                    .ok_or_else(|| malformed("dag-pb node without UnixFS data".into()))?;
                let u = UnixFs::decode(&data).map_err(undecodable)?;
                match u.kind {
                    DataType::File | DataType::Raw => {
                        if u.blocksizes.len() != pb.links.len() {
                            return Err(malformed(format!(
                                "{} links but {} blocksizes",
                                pb.links.len(),
                                u.blocksizes.len()
                            )));
                        }
                        Ok(Node::File {
                            data: Bytes::from(u.data.unwrap_or_default()),
                            links: pb.links,
                            blocksizes: u.blocksizes,
                            filesize: u.filesize,
                        })
                    }
                    DataType::Directory => Ok(Node::Directory { links: pb.links }),
                    DataType::Symlink => Ok(Node::Symlink {
                        target: u.data.unwrap_or_default(),
                    }),
                    DataType::HamtShard => Ok(Node::HamtShard { links: pb.links }),
                    DataType::Metadata => {
                        Err(malformed("UnixFS metadata nodes are not supported".into()))
                    }
                }
            }
            other => Err(DagError::Malformed {
                cid,
                reason: format!("codec 0x{other:x} is not UnixFS"),
            }),
        }
    }

    /// A short name of the kind, for messages and listings.
    pub fn kind(&self) -> &'static str {
        match self {
            Node::Raw(_) | Node::File { .. } => "file",
            Node::Directory { .. } => "directory",
            Node::Symlink { .. } => "symlink",
            Node::HamtShard { .. } => "sharded directory",
        }
    }

    /// File size this node claims (files and raw leaves), else 0.
    pub fn file_size(&self) -> u64 {
        match self {
            Node::Raw(d) => d.len() as u64,
            Node::File {
                data,
                blocksizes,
                filesize,
                ..
            } => filesize.unwrap_or_else(|| {
                blocksizes
                    .iter()
                    .fold(data.len() as u64, |a, b| a.saturating_add(*b))
            }),
            _ => 0,
        }
    }

    /// All of the file's bytes, when this one block holds them (a raw leaf,
    /// or a file node without children whose size claim its data meets):
    /// a reader can answer from it without asking for another block.
    pub fn whole_file(&self) -> Option<&Bytes> {
        match self {
            Node::Raw(d) => Some(d),
            Node::File { data, links, .. }
                if links.is_empty() && self.file_size() == data.len() as u64 =>
            {
                Some(data)
            }
            _ => None,
        }
    }
}

/// Fetches and decodes one block.
pub fn load(source: &dyn BlockSource, cid: &Cid) -> Result<Node, DagError> {
    Node::decode(&source.block(cid)?)
}

/// Fetches and decodes the block a read starts at (the file or directory
/// asked for). When it holds a whole file by itself, the source hears of
/// it ([`BlockSource::whole_file_root`]), so that a memory tier may keep
/// a file of one block larger than the leaves it keeps.
pub fn load_root(source: &dyn BlockSource, cid: &Cid) -> Result<Node, DagError> {
    let block = source.block(cid)?;
    let node = Node::decode(&block)?;
    if node.whole_file().is_some() {
        source.whole_file_root(&block);
    }
    Ok(node)
}

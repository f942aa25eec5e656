//! Builds UnixFS file DAGs from a stream of chunks, exactly as Kubo does.
//!
//! Balanced layout (Kubo's default): leaves are grouped `max_links` at a
//! time into parent nodes, level by level, until one node is left; a
//! single-chunk file is its own root. Every parent — even one with a single
//! child — is written, as go-unixfs's `fillNodeRec` does, which keeps our
//! CIDs equal to Kubo's.
//!
//! Trickle layout (`--layout trickle`): go-unixfs's `fillTrickleRec`: a node
//! first takes up to `max_links` leaves (UnixFS type Raw when leaves are
//! dag-pb), then, for depth = 1, 2, ..., up to [`TRICKLE_DEPTH_REPEAT`]
//! subtrees of that depth, each built the same way with its depth limit.
//!
//! Leaves are hashed on every core (`dag::leaves`) and come back in
//! file order; blocks go to a sink as soon as they exist, so memory holds a
//! few chunks per core and the pending links of each open tree level,
//! whatever the file size.

use super::chunker::ChunkerSpec;
use super::leaves::{leaf_workers, Leaves};
use super::pb::{DataType, PbLink, PbNode, UnixFs};
use super::DagError;
use crate::block::{Block, Cid, CidFormat, HashAlg, DAG_PB, RAW};
use bytes::Bytes;
use std::fmt;
use std::io::Read;
use std::str::FromStr;

/// Kubo's classic number of links per node (`unixfs-v0-2015`).
pub const DEFAULT_MAX_LINKS: usize = 174;
/// Upper bound on links per node: keeps interior nodes under the block limit.
pub const MAX_MAX_LINKS: usize = 8192;
/// Subtrees of each depth a trickle node holds (go-unixfs `depthRepeat`).
pub const TRICKLE_DEPTH_REPEAT: usize = 4;

/// How leaves are arranged into a tree.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Layout {
    /// Full levels of `max_links` children (Kubo's default).
    #[default]
    Balanced,
    /// go-unixfs's trickle DAG, for streaming and appending.
    Trickle,
}

/// Import options that cannot be honoured.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum OptionsError {
    /// A layout name other than `balanced` or `trickle`.
    #[error("unknown layout {input:?} (expected balanced or trickle)")]
    UnknownLayout {
        /// The name given.
        input: String,
    },
    /// Links per node out of `2..=MAX_MAX_LINKS`.
    #[error("max-links must be between 2 and {MAX_MAX_LINKS}, not {max_links}")]
    MaxLinks {
        /// The number given.
        max_links: usize,
    },
    /// A CID version other than 0 or 1.
    #[error("unknown CID version {version}")]
    CidVersion {
        /// The version given.
        version: u8,
    },
    /// CIDv0 with a hash other than SHA2-256.
    #[error("CIDv0 only supports sha2-256")]
    V0Hash {
        /// The hash given.
        hash: HashAlg,
    },
    /// A profile name not in [`ImportOptions::PROFILES`].
    #[error("unknown profile {input:?} (expected one of: {})", ImportOptions::PROFILES.join(", "))]
    UnknownProfile {
        /// The name given.
        input: String,
    },
}

impl FromStr for Layout {
    type Err = OptionsError;
    fn from_str(s: &str) -> Result<Self, OptionsError> {
        match s {
            "balanced" => Ok(Layout::Balanced),
            "trickle" => Ok(Layout::Trickle),
            _ => Err(OptionsError::UnknownLayout {
                input: s.to_string(),
            }),
        }
    }
}

impl fmt::Display for Layout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Layout::Balanced => "balanced",
            Layout::Trickle => "trickle",
        })
    }
}

/// Everything that decides the CIDs of an import.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ImportOptions {
    /// CID version and hash of every block.
    pub format: CidFormat,
    /// How the input is cut into leaves.
    pub chunker: ChunkerSpec,
    /// Leaves as raw blocks (codec 0x55) instead of dag-pb UnixFS nodes.
    pub raw_leaves: bool,
    /// Most links per interior node.
    pub max_links: usize,
    /// How leaves are arranged into a tree.
    pub layout: Layout,
    /// When directories become HAMT shards.
    pub sharding: super::hamt::Sharding,
}

impl Default for ImportOptions {
    /// cairn's defaults: Kubo's `unixfs-v1-2025` profile.
    fn default() -> Self {
        Self::unixfs_v1_2025()
    }
}

impl ImportOptions {
    /// The profile names [`ImportOptions::profile`] knows.
    pub const PROFILES: &'static [&'static str] = &[
        "unixfs-v1-2025",
        "unixfs-v0-2015",
        "legacy-cid-v0",
        "cairn-blake3",
    ];

    /// Kubo's `unixfs-v1-2025` import profile, cairn's default: CIDv1,
    /// SHA2-256, raw leaves, 1 MiB chunks, 1024 links per node, directories
    /// sharded by their encoded block size.
    pub fn unixfs_v1_2025() -> Self {
        ImportOptions {
            format: CidFormat::V1_SHA2_256,
            chunker: ChunkerSpec::Fixed { size: 1024 * 1024 },
            raw_leaves: true,
            max_links: 1024,
            layout: Layout::Balanced,
            sharding: super::hamt::Sharding {
                estimate: super::hamt::SizeEstimate::Block,
                ..super::hamt::Sharding::default()
            },
        }
    }

    /// Kubo's `ipfs add` defaults (its `unixfs-v0-2015` profile, alias
    /// `legacy-cid-v0`): CIDv0, SHA2-256, dag-pb leaves, 256 KiB chunks,
    /// 174 links, directories sharded by the size of their links.
    pub fn kubo() -> Self {
        ImportOptions {
            format: CidFormat::V0,
            chunker: ChunkerSpec::default(),
            raw_leaves: false,
            max_links: DEFAULT_MAX_LINKS,
            layout: Layout::Balanced,
            sharding: super::hamt::Sharding::default(),
        }
    }

    /// `cairn-blake3`: cairn's defaults before it took Kubo's
    /// `unixfs-v1-2025` (CIDv1, BLAKE3, raw leaves, 256 KiB chunks, 174
    /// links): the same CIDs as content added with them.
    pub fn cairn_blake3() -> Self {
        ImportOptions {
            format: CidFormat::V1_BLAKE3,
            raw_leaves: true,
            ..Self::kubo()
        }
    }

    /// The options of a named profile (see [`ImportOptions::PROFILES`]).
    pub fn profile(name: &str) -> Result<Self, OptionsError> {
        match name {
            "unixfs-v1-2025" => Ok(Self::unixfs_v1_2025()),
            "unixfs-v0-2015" | "legacy-cid-v0" => Ok(Self::kubo()),
            "cairn-blake3" => Ok(Self::cairn_blake3()),
            _ => Err(OptionsError::UnknownProfile {
                input: name.to_string(),
            }),
        }
    }

    /// Applies Kubo's `--cid-version` and `--hash` the way `ipfs add` does:
    /// a CID version given without a hash means SHA2-256; CIDv0 allows
    /// nothing else and has dag-pb leaves, CIDv1 raw leaves; a hash other
    /// than SHA2-256 moves CIDv0 to CIDv1.
    pub fn set_cid_version_and_hash(
        &mut self,
        version: Option<u8>,
        hash: Option<HashAlg>,
    ) -> Result<(), OptionsError> {
        if let Some(version) = version {
            if version > 1 {
                return Err(OptionsError::CidVersion { version });
            }
            if let Some(hash) = hash.filter(|h| version == 0 && *h != HashAlg::Sha2_256) {
                return Err(OptionsError::V0Hash { hash });
            }
            self.format = CidFormat {
                version,
                hash: HashAlg::Sha2_256,
            };
            self.raw_leaves = version == 1;
        }
        if let Some(hash) = hash {
            self.format.hash = hash;
            if hash != HashAlg::Sha2_256 && self.format.version == 0 {
                self.format.version = 1;
                self.raw_leaves = true;
            }
        }
        Ok(())
    }

    /// Checks limits that would otherwise produce blocks over the size limit.
    pub fn validate(&self) -> Result<(), OptionsError> {
        if !(2..=MAX_MAX_LINKS).contains(&self.max_links) {
            return Err(OptionsError::MaxLinks {
                max_links: self.max_links,
            });
        }
        if self.format.version > 1 {
            return Err(OptionsError::CidVersion {
                version: self.format.version,
            });
        }
        if self.format.version == 0 && self.format.hash != HashAlg::Sha2_256 {
            return Err(OptionsError::V0Hash {
                hash: self.format.hash,
            });
        }
        Ok(())
    }
}

/// A finished child: what its parent needs to link to it.
#[derive(Clone, Debug)]
pub struct Built {
    /// The node's CID.
    pub cid: Cid,
    /// File bytes below this node (UnixFS `blocksizes` entry).
    pub file_size: u64,
    /// Cumulative size: encoded block plus every block below (link Tsize).
    pub tsize: u64,
}

/// Links and file sizes of a UnixFS file node under construction.
#[derive(Default)]
struct FileNode {
    links: Vec<PbLink>,
    blocksizes: Vec<u64>,
}

impl FileNode {
    /// The UnixFS file node linking these children.
    fn encode(self, format: CidFormat) -> (Block, Built) {
        let mut u = UnixFs::new(DataType::File);
        let file_size: u64 = self.blocksizes.iter().sum();
        u.filesize = Some(file_size);
        u.blocksizes = self.blocksizes;
        unixfs_node(format, self.links, &u, file_size)
    }

    fn add(&mut self, child: Built) {
        self.blocksizes.push(child.file_size);
        self.links.push(PbLink {
            cid: child.cid,
            name: String::new(),
            tsize: child.tsize,
        });
    }

    fn len(&self) -> usize {
        self.links.len()
    }

    /// Takes the only child back (a level holding exactly one node).
    fn pop(&mut self) -> Option<Built> {
        let link = self.links.pop()?;
        Some(Built {
            cid: link.cid,
            file_size: self.blocksizes.pop().unwrap_or(0),
            tsize: link.tsize,
        })
    }
}

/// Streams one file into UnixFS blocks.
struct FileBuilder<'s, L: Iterator> {
    opts: ImportOptions,
    leaves: std::iter::Peekable<L>,
    sink: &'s mut dyn FnMut(Block) -> Result<(), DagError>,
    /// Told of each leaf, in file order, once it went to `sink`.
    on_leaf: &'s mut dyn FnMut(&Built),
}

impl<L> FileBuilder<'_, L>
where
    L: Iterator<Item = Result<(Block, Built), DagError>>,
{
    fn more(&mut self) -> Result<bool, DagError> {
        match self.leaves.peek() {
            None => Ok(false),
            Some(Ok(_)) => Ok(true),
            Some(Err(_)) => match self.leaves.next() {
                Some(Err(e)) => Err(e),
                _ => Ok(false),
            },
        }
    }

    /// Stores the next leaf (of the kind the leaves were made with).
    fn next_leaf(&mut self) -> Result<Option<Built>, DagError> {
        let Some((block, built)) = self.leaves.next().transpose()? else {
            return Ok(None);
        };
        self.emit(block)?;
        (self.on_leaf)(&built);
        Ok(Some(built))
    }

    fn emit(&mut self, block: Block) -> Result<(), DagError> {
        (self.sink)(block)
    }

    fn file_node(&mut self, node: FileNode) -> Result<Built, DagError> {
        let (block, built) = node.encode(self.opts.format);
        self.emit(block)?;
        Ok(built)
    }

    fn balanced(&mut self) -> Result<Built, DagError> {
        let Some(first) = self.next_leaf()? else {
            // Empty file: one empty leaf (a raw empty block with raw leaves).
            let (block, built) = leaf_block(&self.opts, Bytes::new(), DataType::File);
            self.emit(block)?;
            (self.on_leaf)(&built);
            return Ok(built);
        };
        let mut tree = BalancedTree::new(&self.opts);
        tree.push(0, first, self.sink)?;
        while let Some(leaf) = self.next_leaf()? {
            tree.push(0, leaf, self.sink)?;
        }
        tree.finish(self.sink)?
            .ok_or(DagError::Internal("balanced tree without leaves"))
    }

    fn trickle(&mut self, max_depth: Option<usize>) -> Result<Built, DagError> {
        let mut node = FileNode::default();
        while node.len() < self.opts.max_links {
            let Some(leaf) = self.next_leaf()? else {
                break;
            };
            node.add(leaf);
        }
        let mut depth = 1;
        while max_depth.is_none_or(|m| depth < m) && self.more()? {
            for _ in 0..TRICKLE_DEPTH_REPEAT {
                if !self.more()? {
                    break;
                }
                let child = self.trickle(Some(depth))?;
                node.add(child);
            }
            depth += 1;
        }
        self.file_node(node)
    }
}

/// A leaf holding `chunk`: a raw block with raw leaves, else a dag-pb node
/// of UnixFS type `kind` (balanced files: `File`; trickle: `Raw`).
pub fn leaf_block(opts: &ImportOptions, chunk: Bytes, kind: DataType) -> (Block, Built) {
    let file_size = chunk.len() as u64;
    if opts.raw_leaves {
        let block = Block::new(opts.format, RAW, chunk);
        let built = Built {
            cid: *block.cid(),
            file_size,
            tsize: file_size,
        };
        (block, built)
    } else {
        let mut u = UnixFs::new(kind);
        if !chunk.is_empty() {
            u.data = Some(chunk.to_vec());
        }
        u.filesize = Some(file_size);
        unixfs_node(opts.format, vec![], &u, file_size)
    }
}

/// The interior levels of a balanced file tree under construction, fed
/// finished subtrees left to right: leaves (height 0), or whole subtrees of
/// height `h` covering `max_links^h` leaves (what an edit of a file reuses
/// from its old tree), each placed where every lower level is empty.
pub struct BalancedTree {
    format: CidFormat,
    max_links: usize,
    /// levels[i] holds finished nodes of height i waiting for a parent.
    levels: Vec<FileNode>,
    /// Subtrees pushed, and the height of the first.
    pushed: u64,
    first_height: usize,
}

impl BalancedTree {
    /// An empty tree with `opts`'s CID format and links per node.
    pub fn new(opts: &ImportOptions) -> BalancedTree {
        BalancedTree {
            format: opts.format,
            max_links: opts.max_links,
            levels: vec![FileNode::default()],
            pushed: 0,
            first_height: 0,
        }
    }

    /// Adds the next subtree, of height `height`; interior nodes that fill
    /// up go to `sink`. Every level below `height` must be empty.
    pub fn push(
        &mut self,
        height: usize,
        child: Built,
        sink: &mut dyn FnMut(Block) -> Result<(), DagError>,
    ) -> Result<(), DagError> {
        if self.levels.iter().take(height).any(|l| l.len() > 0) {
            return Err(DagError::Internal("subtree pushed over a partial level"));
        }
        if self.pushed == 0 {
            self.first_height = height;
        }
        self.pushed += 1;
        while self.levels.len() <= height {
            self.levels.push(FileNode::default());
        }
        self.levels[height].add(child);
        let mut h = height;
        while self.levels[h].len() == self.max_links {
            let full = std::mem::take(&mut self.levels[h]);
            let (block, parent) = full.encode(self.format);
            sink(block)?;
            if self.levels.len() == h + 1 {
                self.levels.push(FileNode::default());
            }
            self.levels[h + 1].add(parent);
            h += 1;
        }
        Ok(())
    }

    /// Closes every level bottom-up (children before parents to `sink`);
    /// the root, or `None` if nothing was pushed. A lone leaf is its own
    /// root, as Kubo's single-chunk files are.
    pub fn finish(
        mut self,
        sink: &mut dyn FnMut(Block) -> Result<(), DagError>,
    ) -> Result<Option<Built>, DagError> {
        if self.pushed == 0 {
            return Ok(None);
        }
        if self.pushed == 1 && self.first_height == 0 {
            return Ok(self.levels[0].pop());
        }
        let mut h = 0;
        loop {
            if self.levels.len() == h + 1 {
                self.levels.push(FileNode::default());
            }
            let above_empty = self.levels[h + 1..].iter().all(|l| l.len() == 0);
            if above_empty && self.levels[h].len() == 1 && h > 0 {
                return Ok(self.levels[h].pop());
            }
            if self.levels[h].len() > 0 {
                let pending = std::mem::take(&mut self.levels[h]);
                let (block, parent) = pending.encode(self.format);
                sink(block)?;
                self.levels[h + 1].add(parent);
            }
            h += 1;
        }
    }
}

/// Chunks `reader` and builds its UnixFS file DAG, handing every block to
/// `sink` (children before parents). Returns the root.
pub fn build_file(
    reader: impl Read,
    opts: &ImportOptions,
    sink: &mut dyn FnMut(Block) -> Result<(), DagError>,
) -> Result<Built, DagError> {
    build_file_leaves(reader, opts, sink, &mut |_| {})
}

/// [`build_file`], telling `on_leaf` of every leaf in file order: what a
/// tree built later over the same leaves (a multipart object over its
/// parts) links.
pub fn build_file_leaves(
    reader: impl Read,
    opts: &ImportOptions,
    sink: &mut dyn FnMut(Block) -> Result<(), DagError>,
    on_leaf: &mut dyn FnMut(&Built),
) -> Result<Built, DagError> {
    opts.validate()?;
    build_file_chunks(opts.chunker.chunks(reader), opts, sink, on_leaf)
}

/// [`build_file_leaves`] over chunks already cut by `opts.chunker` (of a
/// body in memory: [`ChunkerSpec::chunks_of`]): the same DAG.
pub fn build_file_chunks(
    chunks: impl Iterator<Item = std::io::Result<Bytes>>,
    opts: &ImportOptions,
    sink: &mut dyn FnMut(Block) -> Result<(), DagError>,
    on_leaf: &mut dyn FnMut(&Built),
) -> Result<Built, DagError> {
    opts.validate()?;
    // Trickle leaves are UnixFS `Raw` when they are dag-pb, as go-unixfs's.
    let kind = match opts.layout {
        Layout::Balanced => DataType::File,
        Layout::Trickle => DataType::Raw,
    };
    std::thread::scope(|scope| {
        let leaves = Leaves::new(scope, chunks, opts, kind, leaf_workers());
        let mut builder = FileBuilder {
            opts: *opts,
            leaves: leaves.peekable(),
            sink,
            on_leaf,
        };
        match opts.layout {
            Layout::Balanced => builder.balanced(),
            Layout::Trickle => builder.trickle(None),
        }
    })
}

/// Builds a UnixFS directory node from named children. Links are sorted by
/// name bytes, as dag-pb requires and Kubo writes them.
pub fn directory_block(format: CidFormat, mut entries: Vec<(String, Built)>) -> (Block, Built) {
    entries.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
    let links = entries
        .into_iter()
        .map(|(name, b)| PbLink {
            cid: b.cid,
            name,
            tsize: b.tsize,
        })
        .collect();
    unixfs_node(format, links, &UnixFs::new(DataType::Directory), 0)
}

/// Builds a UnixFS symlink node pointing at `target`.
pub fn symlink_block(format: CidFormat, target: &[u8]) -> (Block, Built) {
    let mut u = UnixFs::new(DataType::Symlink);
    u.data = Some(target.to_vec());
    unixfs_node(format, vec![], &u, 0)
}

/// Encodes `unixfs` with `links` as a dag-pb node named with `format`: the
/// block, and what a parent needs to link to it (`file_size` bytes of file
/// below it; its cumulative size counts the links' sizes).
pub(crate) fn unixfs_node(
    format: CidFormat,
    links: Vec<PbLink>,
    unixfs: &UnixFs,
    file_size: u64,
) -> (Block, Built) {
    let child_tsize: u64 = links.iter().map(|l| l.tsize).sum();
    let bytes = PbNode {
        links,
        data: Some(unixfs.encode()),
    }
    .encode();
    let block = Block::new(format, DAG_PB, bytes);
    let built = Built {
        cid: *block.cid(),
        file_size,
        tsize: block.data().len() as u64 + child_tsize,
    };
    (block, built)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pattern(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i % 251) as u8).collect()
    }

    fn build(data: &[u8], opts: &ImportOptions) -> (Built, Vec<Block>) {
        let mut blocks = vec![];
        let root = build_file(data, opts, &mut |b| {
            blocks.push(b);
            Ok(())
        })
        .unwrap();
        (root, blocks)
    }

    #[test]
    fn kubo_reference_cids() {
        let (root, _) = build(b"", &ImportOptions::kubo());
        assert_eq!(
            root.cid.to_string(),
            "QmbFMke1KXqnYyBBWxB74N4c5SBnJMVAiMNRcGu6x1AwQH"
        );
        let (root, _) = build(b"hello world\n", &ImportOptions::kubo());
        assert_eq!(
            root.cid.to_string(),
            "QmT78zSuBmuS4z925WZfrqQ1qHaJ56DQaTfyMUF7F8ff5o"
        );
    }

    #[test]
    fn balanced_tree_shape() {
        let opts = ImportOptions {
            chunker: ChunkerSpec::Fixed { size: 10 },
            max_links: 3,
            ..ImportOptions::default()
        };
        // 10 chunks, 3 links: 4 parents at height 1, 2 at height 2, 1 root.
        let data = pattern(100);
        let (root, blocks) = build(&data, &opts);
        assert_eq!(blocks.len(), 10 + 4 + 2 + 1);
        assert_eq!(root.file_size, 100);
        assert_eq!(blocks.last().unwrap().cid(), &root.cid);
        // One chunk: the leaf is the root.
        let (root, blocks) = build(&data[..10], &opts);
        assert_eq!(blocks.len(), 1);
        assert_eq!(root.cid.codec(), RAW);
        // Exactly max_links chunks: one parent.
        let (_, blocks) = build(&data[..30], &opts);
        assert_eq!(blocks.len(), 4);
        // max_links + 1 chunks: a parent over a full node and a one-leaf node.
        let (_, blocks) = build(&data[..31], &opts);
        assert_eq!(blocks.len(), 4 + 1 + 1 + 1);
    }

    #[test]
    fn trickle_tree_shape() {
        let opts = ImportOptions {
            chunker: ChunkerSpec::Fixed { size: 1 },
            max_links: 2,
            layout: Layout::Trickle,
            ..ImportOptions::default()
        };
        // root: 2 leaves, then 4 depth-1 subtrees of 2 leaves each = 10 leaves.
        let (root, blocks) = build(&pattern(10), &opts);
        assert_eq!(root.file_size, 10);
        assert_eq!(blocks.len(), 10 + 4 + 1);
    }
}

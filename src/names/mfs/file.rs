//! Writing into a file: the new file DAG after bytes are written at an
//! offset, with the CID `add` gives the same bytes.
//!
//! With a fixed-size chunker and the balanced layout, the shape of a file
//! tree depends only on its length: leaf `i` holds bytes
//! `[i*C, (i+1)*C)`, and the node of height `h` at leaf `a` (a multiple of
//! `L^h`, `L` links per node) is the same block in every file whose leaves
//! `[a, a + L^h)` are the same. So when the old file's tree has exactly
//! that shape ([`OldTree::load`] checks every interior node), an edit keeps
//! each whole subtree before the first changed leaf and after the last,
//! makes new leaves only where bytes changed (reading an old leaf only
//! where the write covers part of it), and rebuilds the nodes above them:
//! a 1-byte write makes one leaf and one node per level. An append keeps
//! everything but the last partial leaf and the right edge of the tree.
//!
//! Any other file (another chunker or layout, or a tree not built with
//! these options) is rebuilt whole from its bytes spliced with the write.

use crate::block::{Cid, CidFormat, HashAlg, RAW};
use crate::dag::builder::{build_file, leaf_block, BalancedTree, Built, ImportOptions, Layout};
use crate::dag::chunker::ChunkerSpec;
use crate::dag::pb::DataType;
use crate::dag::reader::{load, FileReader, Node, ReadOptions};
use crate::dag::{BlockSource, DagError};
use bytes::Bytes;
use std::io::{self, Read};
use std::sync::Arc;

/// Where blocks go (children before parents).
pub(super) type Sink<'a> = dyn FnMut(crate::block::Block) -> Result<(), DagError> + 'a;

/// The CID format (version and hash) a CID was made with, if this node can
/// make blocks with its hash.
pub(super) fn format_of(cid: &Cid) -> Option<CidFormat> {
    Some(CidFormat {
        version: cid.version() as u8,
        hash: HashAlg::from_code(cid.hash().code())?,
    })
}

/// What a write does: `data` at `offset` (past the end: the gap reads as
/// zeros), the file first emptied with `truncate`.
pub(super) struct WriteSpec<'a> {
    /// The bytes to write.
    pub data: &'a mut dyn Read,
    /// Where they go in the file.
    pub offset: u64,
}

/// Writes into the file `old` (a new empty file when `None`): the new
/// file's root.
pub(super) fn write(
    source: &Arc<dyn BlockSource>,
    opts: &ImportOptions,
    old: Option<Cid>,
    spec: WriteSpec<'_>,
    sink: &mut Sink<'_>,
) -> Result<Built, DagError> {
    let old_size = match old {
        Some(cid) => load(&**source, &cid)?.file_size(),
        None => 0,
    };
    if let (ChunkerSpec::Fixed { size }, Layout::Balanced) = (opts.chunker, opts.layout) {
        let shape = Shape {
            chunk: size as u64,
            links: opts.max_links as u64,
        };
        let tree = match old {
            Some(cid) => OldTree::load(&**source, opts, shape, cid, old_size)?,
            None => Some(OldTree::empty()),
        };
        if let Some(tree) = tree {
            return Edit {
                source: &**source,
                opts,
                shape,
                old: tree,
                old_size,
            }
            .run(spec, sink);
        }
    }
    rebuild(source, opts, old, old_size, spec, sink)
}

/// Chunk size and links per node of a balanced fixed-size tree.
#[derive(Clone, Copy)]
struct Shape {
    chunk: u64,
    links: u64,
}

impl Shape {
    /// Leaves of a file of `size` bytes (an empty file has one, empty).
    fn leaves(self, size: u64) -> u64 {
        size.div_ceil(self.chunk).max(1)
    }

    /// Height of the tree over `n` leaves (0: the leaf is the root).
    fn height(self, n: u64) -> usize {
        let (mut h, mut span) = (0, 1u64);
        while span < n {
            span = span.saturating_mul(self.links);
            h += 1;
        }
        h
    }

    /// Leaves under a full node of height `h`.
    fn span(self, h: usize) -> u64 {
        self.links.saturating_pow(h as u32)
    }
}

/// An old file tree of the balanced shape, as its nodes level by level:
/// `levels[h][j]` is the node of height `h` over leaves from `j * L^h`.
struct OldTree {
    levels: Vec<Vec<Built>>,
}

impl OldTree {
    fn empty() -> OldTree {
        OldTree { levels: Vec::new() }
    }

    /// Reads the interior nodes of the file at `root` (never its leaves)
    /// and checks each is what `add` with `opts` makes for `size` bytes;
    /// `None` when one is not.
    fn load(
        source: &dyn BlockSource,
        opts: &ImportOptions,
        shape: Shape,
        root: Cid,
        size: u64,
    ) -> Result<Option<OldTree>, DagError> {
        let n = shape.leaves(size);
        let height = shape.height(n);
        let leaf_codec_ok = |cid: &Cid| (cid.codec() == RAW) == opts.raw_leaves;
        if format_of(&root) != Some(opts.format) {
            return Ok(None);
        }
        let root_node = load(source, &root)?;
        let root_built = Built {
            cid: root,
            file_size: size,
            tsize: match &root_node {
                Node::Raw(d) => d.len() as u64,
                _ => source.block(&root)?.data().len() as u64 + link_tsizes(&root_node),
            },
        };
        let mut levels = vec![Vec::new(); height + 1];
        levels[height].push(root_built);
        if height == 0 {
            let leaf_ok = match &root_node {
                Node::Raw(_) => opts.raw_leaves,
                Node::File { links, .. } => links.is_empty() && !opts.raw_leaves,
                _ => false,
            };
            return Ok(leaf_ok.then_some(OldTree { levels }));
        }
        let mut pending = Some(root_node);
        for h in (1..=height).rev() {
            let child_span = shape.span(h - 1) * shape.chunk;
            for j in 0..levels[h].len() {
                let node = match pending.take() {
                    Some(node) => node,
                    None => load(source, &levels[h][j].cid)?,
                };
                let Node::File {
                    data,
                    links,
                    blocksizes,
                    ..
                } = node
                else {
                    return Ok(None);
                };
                let start = j as u64 * shape.span(h) * shape.chunk;
                let end = (start + shape.span(h) * shape.chunk).min(size);
                let want = (end - start).div_ceil(child_span);
                if !data.is_empty() || links.len() as u64 != want {
                    return Ok(None);
                }
                for (i, (link, bs)) in links.into_iter().zip(blocksizes).enumerate() {
                    let child_start = start + i as u64 * child_span;
                    let want_size = (end - child_start).min(child_span);
                    let format_ok = format_of(&link.cid) == Some(opts.format);
                    let kind_ok = if h == 1 {
                        leaf_codec_ok(&link.cid)
                    } else {
                        link.cid.codec() != RAW
                    };
                    if bs != want_size || !format_ok || !kind_ok {
                        return Ok(None);
                    }
                    levels[h - 1].push(Built {
                        cid: link.cid,
                        file_size: bs,
                        tsize: link.tsize,
                    });
                }
            }
        }
        Ok(Some(OldTree { levels }))
    }

    /// Old leaves.
    fn leaves(&self) -> u64 {
        self.levels.first().map_or(0, |l| l.len() as u64)
    }
}

fn link_tsizes(node: &Node) -> u64 {
    match node {
        Node::File { links, .. } => links.iter().map(|l| l.tsize).sum(),
        _ => 0,
    }
}

/// An edit of a balanced file tree (see the module comment).
struct Edit<'a> {
    source: &'a dyn BlockSource,
    opts: &'a ImportOptions,
    shape: Shape,
    old: OldTree,
    old_size: u64,
}

impl Edit<'_> {
    fn run(self, spec: WriteSpec<'_>, sink: &mut Sink<'_>) -> Result<Built, DagError> {
        let c = self.shape.chunk;
        let mut tree = BalancedTree::new(self.opts);
        // Leaves before the first changed one are kept as they are.
        let first_dirty = spec.offset.min(self.old_size) / c;
        self.push_old(&mut tree, 0, first_dirty, sink)?;
        // Changed leaves, until the write's bytes end.
        let mut data_end = None;
        let mut leaf = first_dirty;
        let mut pushed_any = first_dirty > 0;
        loop {
            let start = leaf * c;
            if data_end.is_some_and(|e: u64| start >= e.max(spec.offset)) {
                break;
            }
            let mut buf = vec![0u8; c as usize];
            let mut filled = 0usize;
            // Old bytes (or the zero gap) before the write.
            let before = spec.offset.saturating_sub(start).min(c) as usize;
            let mut old_leaf: Option<Bytes> = None;
            let mut old_bytes =
                |from: usize, to: usize, buf: &mut [u8]| -> Result<usize, DagError> {
                    let have = self.old_size.saturating_sub(start).min(c) as usize;
                    let to = to.min(have);
                    if from >= to {
                        return Ok(from);
                    }
                    if old_leaf.is_none() {
                        old_leaf = Some(self.old_leaf(leaf)?);
                    }
                    let bytes = old_leaf.as_deref().unwrap_or_default();
                    let to = to.min(bytes.len());
                    buf[from..to].copy_from_slice(&bytes[from..to]);
                    Ok(to)
                };
            if before > 0 {
                old_bytes(0, before, &mut buf)?;
                filled = before;
            }
            // The write's bytes.
            if data_end.is_none() && filled < buf.len() {
                let got = read_full(spec.data, &mut buf[filled..]).map_err(DagError::Read)?;
                filled += got;
                if filled < buf.len() {
                    data_end = Some(start + filled as u64);
                }
            }
            // Old bytes after the write (when it ended inside this leaf).
            if filled < buf.len() {
                let written_to = filled.max(before);
                let to = old_bytes(written_to, buf.len(), &mut buf)?;
                filled = filled.max(to);
            }
            if filled == 0 && pushed_any {
                break;
            }
            buf.truncate(filled);
            let (block, built) = leaf_block(self.opts, Bytes::from(buf), DataType::File);
            sink(block)?;
            tree.push(0, built, sink)?;
            pushed_any = true;
            leaf += 1;
            if filled < c as usize {
                break;
            }
        }
        // Leaves after the last changed one, when the write ended inside
        // the old file.
        if leaf < self.old.leaves() && leaf * c < self.old_size {
            self.push_old(&mut tree, leaf, self.old.leaves(), sink)?;
        }
        match tree.finish(sink)? {
            Some(root) => Ok(root),
            None => {
                let (block, built) = leaf_block(self.opts, Bytes::new(), DataType::File);
                sink(block)?;
                Ok(built)
            }
        }
    }

    /// Pushes the old leaves `[from, to)`, as whole subtrees where aligned.
    fn push_old(
        &self,
        tree: &mut BalancedTree,
        from: u64,
        to: u64,
        sink: &mut Sink<'_>,
    ) -> Result<(), DagError> {
        let mut a = from;
        while a < to {
            let mut h = self.old.levels.len().saturating_sub(1);
            loop {
                let span = self.shape.span(h);
                let full_in_old = a + span <= self.old.leaves();
                if h == 0 || (a.is_multiple_of(span) && a + span <= to && full_in_old) {
                    break;
                }
                h -= 1;
            }
            let span = self.shape.span(h);
            let node = self.old.levels[h]
                .get((a / span) as usize)
                .cloned()
                .ok_or(DagError::Internal("old subtree out of range"))?;
            tree.push(h, node, sink)?;
            a += span;
        }
        Ok(())
    }

    /// The bytes of old leaf `i`.
    fn old_leaf(&self, i: u64) -> Result<Bytes, DagError> {
        let Some(leaf) = self.old.levels.first().and_then(|l| l.get(i as usize)) else {
            return Ok(Bytes::new());
        };
        match load(self.source, &leaf.cid)? {
            Node::Raw(data) => Ok(data),
            Node::File { data, .. } => Ok(data),
            other => Err(DagError::Malformed {
                cid: leaf.cid,
                reason: format!("a {} as a file leaf", other.kind()),
            }),
        }
    }
}

/// Reads until `buf` is full or the input ends; the bytes read.
fn read_full(r: &mut dyn Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// Rebuilds the whole file from its old bytes spliced with the write.
fn rebuild(
    source: &Arc<dyn BlockSource>,
    opts: &ImportOptions,
    old: Option<Cid>,
    old_size: u64,
    spec: WriteSpec<'_>,
    sink: &mut Sink<'_>,
) -> Result<Built, DagError> {
    let head = match old {
        Some(cid) => Some(FileReader::new(
            Arc::clone(source),
            cid,
            0,
            Some(spec.offset.min(old_size)),
            ReadOptions::default(),
        )?),
        None => None,
    };
    let spliced = Spliced {
        source,
        old,
        old_size,
        head,
        gap: spec.offset.saturating_sub(old_size),
        data: spec.data,
        pos: 0,
        tail: None,
        data_done: false,
    };
    build_file(spliced, opts, sink)
}

/// The old file's bytes before the write, a zero gap, the write, then the
/// old bytes after it.
struct Spliced<'a> {
    source: &'a Arc<dyn BlockSource>,
    old: Option<Cid>,
    old_size: u64,
    head: Option<FileReader>,
    gap: u64,
    data: &'a mut dyn Read,
    /// Bytes produced so far.
    pos: u64,
    tail: Option<FileReader>,
    data_done: bool,
}

impl Read for Spliced<'_> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if let Some(head) = &mut self.head {
            let n = head.read(out)?;
            if n > 0 {
                self.pos += n as u64;
                return Ok(n);
            }
            self.head = None;
        }
        if self.gap > 0 {
            let n = (self.gap.min(out.len() as u64)) as usize;
            out[..n].fill(0);
            self.gap -= n as u64;
            self.pos += n as u64;
            return Ok(n);
        }
        if !self.data_done {
            let n = self.data.read(out)?;
            if n > 0 {
                self.pos += n as u64;
                return Ok(n);
            }
            self.data_done = true;
            if let (Some(cid), true) = (self.old, self.pos < self.old_size) {
                let tail = FileReader::new(
                    Arc::clone(self.source),
                    cid,
                    self.pos,
                    None,
                    ReadOptions::default(),
                )
                .map_err(io::Error::other)?;
                self.tail = Some(tail);
            }
        }
        match &mut self.tail {
            Some(tail) => tail.read(out),
            None => Ok(0),
        }
    }
}

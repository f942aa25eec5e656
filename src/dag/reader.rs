//! Reading UnixFS: files and byte ranges, directories, paths, whole trees.
//!
//! [`FileReader`] walks a file DAG depth-first and yields its bytes in
//! order. It descends only into children whose byte span (from the parent's
//! `blocksizes`) overlaps the requested range, so a range read touches only
//! the blocks it needs. Blocks the walk will need next are fetched and
//! verified by a small worker pool ahead of the walk (a bounded window), so
//! hashing runs on several cores while bytes stream out in order.

use super::pb::{DataType, PbLink, PbNode, UnixFs};
use super::{BlockSource, DagError};
use crate::block::{Block, Cid, DAG_PB, RAW};
use bytes::Bytes;
use std::collections::VecDeque;
use std::io;
use std::path::Path;
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::sync::{Arc, Mutex};

/// Deepest file tree the reader follows (Kubo's trees of 4 GiB are depth 3).
pub const MAX_DEPTH: usize = 64;

/// A decoded block, classified by what it is in UnixFS.
#[derive(Debug)]
pub enum Node {
    /// A raw leaf: all of its bytes are file data.
    Raw(Bytes),
    /// A UnixFS file node (or a dag-pb leaf of type Raw).
    File {
        data: Bytes,
        links: Vec<PbLink>,
        blocksizes: Vec<u64>,
        filesize: Option<u64>,
    },
    Directory {
        links: Vec<PbLink>,
    },
    Symlink {
        target: Vec<u8>,
    },
    /// A HAMT-sharded directory (large directories made by Kubo).
    HamtShard {
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
                let pb = PbNode::decode(block.data()).map_err(|e| malformed(e.to_string()))?;
                let data = pb
                    .data
                    .ok_or_else(|| malformed("dag-pb node without UnixFS data".into()))?;
                let u = UnixFs::decode(&data).map_err(|e| malformed(e.to_string()))?;
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
}

/// Fetches and decodes one block.
pub fn load(source: &dyn BlockSource, cid: &Cid) -> Result<Node, DagError> {
    Node::decode(&source.block(cid)?)
}

/// Follows `path` (slash-separated names) from `root` through directories.
pub fn resolve_path(source: &dyn BlockSource, root: Cid, path: &str) -> Result<Cid, DagError> {
    let mut cid = root;
    for name in path.split('/').filter(|s| !s.is_empty()) {
        let node = load(source, &cid)?;
        let found = match node {
            Node::Directory { links } => links.into_iter().find(|l| l.name == name).map(|l| l.cid),
            Node::HamtShard { links } => super::hamt::lookup(source, &cid, links, name)?,
            other => {
                return Err(DagError::WrongKind {
                    cid,
                    expected: "directory",
                    actual: other.kind(),
                })
            }
        };
        cid = found.ok_or_else(|| DagError::NoSuchPath {
            cid,
            name: name.to_string(),
        })?;
    }
    Ok(cid)
}

/// The entries of a plain or HAMT-sharded directory, names unprefixed.
pub fn directory_entries(
    source: &dyn BlockSource,
    cid: &Cid,
    node: Node,
) -> Result<Vec<PbLink>, DagError> {
    match node {
        Node::Directory { links } => Ok(links),
        Node::HamtShard { links } => super::hamt::entries(source, cid, links),
        other => Err(DagError::WrongKind {
            cid: *cid,
            expected: "directory",
            actual: other.kind(),
        }),
    }
}

/// One entry of a directory listing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DirEntry {
    pub name: String,
    pub cid: Cid,
    /// For files, the file size; for others, the cumulative DAG size.
    pub size: u64,
    pub kind: &'static str,
}

/// Lists a directory's entries (or, for a file, its single entry as Kubo's
/// `ls` shows the chunks — here: none).
pub fn list(source: &dyn BlockSource, cid: &Cid) -> Result<Vec<DirEntry>, DagError> {
    let links = match load(source, cid)? {
        Node::Directory { links } => links,
        Node::File { links, .. } => links,
        Node::Raw(_) | Node::Symlink { .. } => return Ok(vec![]),
        node @ Node::HamtShard { .. } => directory_entries(source, cid, node)?,
    };
    let mut out = Vec::with_capacity(links.len());
    for link in links {
        let node = load(source, &link.cid)?;
        let size = match node {
            Node::Raw(_) | Node::File { .. } => node.file_size(),
            _ => link.tsize,
        };
        out.push(DirEntry {
            name: link.name,
            cid: link.cid,
            size,
            kind: node.kind(),
        });
    }
    Ok(out)
}

type Job = (Cid, SyncSender<Result<Block, DagError>>);

/// A part of the file still to be produced.
enum Item {
    Inline(Bytes),
    Child {
        cid: Cid,
        skip: u64,
        take: u64,
        pending: Option<Receiver<Result<Block, DagError>>>,
    },
    /// A child whose block arrived before the walk reached it, decoded
    /// ahead so that its own children are fetched in time (else the window
    /// drains at the end of every internal node).
    Expanded(VecDeque<Item>),
    /// A child that could not be fetched or decoded ahead; the error
    /// surfaces when the walk reaches it.
    Failed(DagError),
}

/// Walks `items` in read order: children whose blocks have arrived are
/// decoded in place, and the cids of children not yet asked for are
/// collected, up to `room`. `depth` is the nesting below the reader's root.
fn scan(
    items: &mut VecDeque<Item>,
    depth: usize,
    room: usize,
    inflight: &mut usize,
    upcoming: &mut Vec<Cid>,
) {
    for item in items.iter_mut() {
        if upcoming.len() >= room {
            return;
        }
        match item {
            Item::Child {
                cid, pending: None, ..
            } => upcoming.push(*cid),
            Item::Child {
                cid,
                skip,
                take,
                pending: Some(rx),
            } if depth < MAX_DEPTH => {
                let result = match rx.try_recv() {
                    Ok(result) => result,
                    Err(mpsc::TryRecvError::Empty) => continue,
                    Err(mpsc::TryRecvError::Disconnected) => {
                        Err(DagError::Internal("block worker vanished"))
                    }
                };
                *inflight -= 1;
                let (cid, skip, take) = (*cid, *skip, *take);
                let expanded = result.and_then(|block| {
                    if take == 0 {
                        return Ok(VecDeque::new());
                    }
                    FileReader::expand(cid, Node::decode(&block)?, skip, take)
                });
                *item = match expanded {
                    Ok(children) => Item::Expanded(children),
                    Err(e) => Item::Failed(e),
                };
                if let Item::Expanded(children) = item {
                    scan(children, depth + 1, room, inflight, upcoming);
                }
            }
            Item::Expanded(children) if depth < MAX_DEPTH => {
                scan(children, depth + 1, room, inflight, upcoming)
            }
            _ => {}
        }
    }
}

/// Hands the first `count` children not yet asked for (in read order) to
/// the workers.
fn assign(
    items: &mut VecDeque<Item>,
    depth: usize,
    jobs: &SyncSender<Job>,
    count: &mut usize,
    inflight: &mut usize,
) -> bool {
    for item in items.iter_mut() {
        if *count == 0 {
            return true;
        }
        match item {
            Item::Child {
                cid,
                pending: pending @ None,
                ..
            } => {
                let (tx, rx) = mpsc::sync_channel(1);
                if jobs.send((*cid, tx)).is_err() {
                    return false;
                }
                *pending = Some(rx);
                *inflight += 1;
                *count -= 1;
            }
            Item::Expanded(children) if depth < MAX_DEPTH => {
                let sent = assign(children, depth + 1, jobs, count, inflight);
                if !sent {
                    return false;
                }
            }
            _ => {}
        }
    }
    true
}

/// Tuning of [`FileReader`].
#[derive(Clone, Copy, Debug)]
pub struct ReadOptions {
    /// Blocks fetched ahead of the walk (memory: this many blocks).
    pub window: usize,
    /// Worker threads fetching and verifying blocks (0: fetch inline).
    pub workers: usize,
}

impl Default for ReadOptions {
    fn default() -> Self {
        ReadOptions {
            window: 16,
            workers: std::thread::available_parallelism().map_or(2, |n| n.get().min(4)),
        }
    }
}

/// Streams the bytes of a file (or a range of it) in order.
pub struct FileReader {
    source: Arc<dyn BlockSource>,
    stack: Vec<VecDeque<Item>>,
    jobs: Option<SyncSender<Job>>,
    inflight: usize,
    opts: ReadOptions,
    /// Bytes the walk must still produce.
    remaining: u64,
    root: Cid,
    size: u64,
    buf: Bytes,
    failed: bool,
}

impl FileReader {
    /// Opens `root` (a UnixFS file or raw block) for reading `length` bytes
    /// (to the end when `None`) from `offset`.
    pub fn new(
        source: Arc<dyn BlockSource>,
        root: Cid,
        offset: u64,
        length: Option<u64>,
        opts: ReadOptions,
    ) -> Result<Self, DagError> {
        let node = load(&*source, &root)?;
        let size = match &node {
            Node::Raw(_) | Node::File { .. } => node.file_size(),
            other => {
                return Err(DagError::WrongKind {
                    cid: root,
                    expected: "file",
                    actual: other.kind(),
                })
            }
        };
        let offset = offset.min(size);
        let take = length.map_or(size - offset, |l| l.min(size - offset));
        let mut reader = FileReader {
            source,
            stack: Vec::new(),
            jobs: None,
            inflight: 0,
            opts,
            remaining: take,
            root,
            size,
            buf: Bytes::new(),
            failed: false,
        };
        if take > 0 {
            let first = Self::expand(root, node, offset, take)?;
            reader.stack.push(first);
        }
        Ok(reader)
    }

    /// Size of the whole file.
    pub fn file_size(&self) -> u64 {
        self.size
    }

    /// Bytes this reader will still produce.
    pub fn remaining(&self) -> u64 {
        self.remaining + self.buf.len() as u64
    }

    /// Turns a decoded node into the items covering `[skip, skip + take)`.
    fn expand(cid: Cid, node: Node, skip: u64, take: u64) -> Result<VecDeque<Item>, DagError> {
        let malformed = |reason: &str| DagError::Malformed {
            cid,
            reason: reason.to_string(),
        };
        let end = skip
            .checked_add(take)
            .ok_or_else(|| malformed("range overflows"))?;
        let mut items = VecDeque::new();
        match node {
            Node::Raw(data) => {
                if (data.len() as u64) < end {
                    return Err(malformed("raw leaf shorter than its parent says"));
                }
                items.push_back(Item::Inline(data.slice(skip as usize..end as usize)));
            }
            Node::File {
                data,
                links,
                blocksizes,
                ..
            } => {
                let mut pos: u64 = 0;
                let dlen = data.len() as u64;
                if skip < dlen {
                    let e = end.min(dlen);
                    items.push_back(Item::Inline(data.slice(skip as usize..e as usize)));
                }
                pos += dlen;
                for (link, bs) in links.into_iter().zip(blocksizes) {
                    let child_end = pos
                        .checked_add(bs)
                        .ok_or_else(|| malformed("blocksizes overflow"))?;
                    if child_end > skip && pos < end {
                        let s = skip.max(pos) - pos;
                        let e = end.min(child_end) - pos;
                        items.push_back(Item::Child {
                            cid: link.cid,
                            skip: s,
                            take: e - s,
                            pending: None,
                        });
                    }
                    pos = child_end;
                    if pos >= end {
                        break;
                    }
                }
                if pos < end {
                    return Err(malformed("file node holds fewer bytes than asked"));
                }
            }
            other => {
                return Err(DagError::WrongKind {
                    cid,
                    expected: "file chunk",
                    actual: other.kind(),
                })
            }
        }
        Ok(items)
    }

    fn start_workers(&mut self) -> Option<&SyncSender<Job>> {
        if self.jobs.is_none() && self.opts.workers > 0 {
            let (tx, rx) = mpsc::sync_channel::<Job>(self.opts.window.max(1));
            let rx = Arc::new(Mutex::new(rx));
            for _ in 0..self.opts.workers {
                let rx = Arc::clone(&rx);
                let source = Arc::clone(&self.source);
                std::thread::spawn(move || loop {
                    let job = match rx.lock() {
                        Ok(guard) => guard.recv(),
                        Err(_) => return,
                    };
                    let Ok((cid, reply)) = job else { return };
                    // The reader may have been dropped: nobody to tell then.
                    let _ = reply.send(source.block(&cid));
                });
            }
            self.jobs = Some(tx);
        }
        self.jobs.as_ref()
    }

    /// Asks the workers for the next blocks in walk order, up to the window.
    /// Children that arrived early are decoded on the way, so the leaves of
    /// the next internal node are asked for before the walk gets there.
    fn prefetch(&mut self) {
        if self.opts.workers == 0 || self.inflight >= self.opts.window {
            return;
        }
        let room = self.opts.window - self.inflight;
        let mut upcoming = Vec::new();
        for (depth, frame) in self.stack.iter_mut().enumerate().rev() {
            if upcoming.len() >= room {
                break;
            }
            scan(frame, depth, room, &mut self.inflight, &mut upcoming);
        }
        if upcoming.is_empty() {
            return;
        }
        let Some(jobs) = self.start_workers().cloned() else {
            return;
        };
        // Tell the source what comes next, in order, before the workers ask
        // one block each (a network source fetches them all at once).
        self.source.prefetch(&upcoming);
        let mut count = upcoming.len();
        for (depth, frame) in self.stack.iter_mut().enumerate().rev() {
            if count == 0 || !assign(frame, depth, &jobs, &mut count, &mut self.inflight) {
                break;
            }
        }
    }

    fn next_chunk(&mut self) -> Result<Option<Bytes>, DagError> {
        loop {
            self.prefetch();
            let Some(frame) = self.stack.last_mut() else {
                if self.remaining != 0 {
                    return Err(DagError::Malformed {
                        cid: self.root,
                        reason: "file DAG ended early".into(),
                    });
                }
                return Ok(None);
            };
            let Some(item) = frame.pop_front() else {
                self.stack.pop();
                continue;
            };
            match item {
                Item::Inline(bytes) => {
                    if bytes.is_empty() {
                        continue;
                    }
                    let n = bytes.len() as u64;
                    self.remaining = self.remaining.checked_sub(n).ok_or(DagError::Malformed {
                        cid: self.root,
                        reason: "file DAG yields more bytes than its sizes say".into(),
                    })?;
                    return Ok(Some(bytes));
                }
                Item::Child {
                    cid,
                    skip,
                    take,
                    pending,
                } => {
                    let block = match pending {
                        Some(rx) => {
                            self.inflight -= 1;
                            rx.recv()
                                .map_err(|_| DagError::Internal("block worker vanished"))??
                        }
                        None => self.source.block(&cid)?,
                    };
                    if take == 0 {
                        continue;
                    }
                    if self.stack.len() >= MAX_DEPTH {
                        return Err(DagError::Malformed {
                            cid,
                            reason: format!("file DAG deeper than {MAX_DEPTH}"),
                        });
                    }
                    let node = Node::decode(&block)?;
                    let items = Self::expand(cid, node, skip, take)?;
                    self.stack.push(items);
                }
                Item::Expanded(items) => {
                    if self.stack.len() >= MAX_DEPTH {
                        return Err(DagError::Malformed {
                            cid: self.root,
                            reason: format!("file DAG deeper than {MAX_DEPTH}"),
                        });
                    }
                    self.stack.push(items);
                }
                Item::Failed(e) => return Err(e),
            }
        }
    }
}

impl Iterator for FileReader {
    type Item = Result<Bytes, DagError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        if !self.buf.is_empty() {
            return Some(Ok(std::mem::take(&mut self.buf)));
        }
        match self.next_chunk() {
            Ok(Some(b)) => Some(Ok(b)),
            Ok(None) => None,
            Err(e) => {
                self.failed = true;
                Some(Err(e))
            }
        }
    }
}

impl io::Read for FileReader {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while self.buf.is_empty() {
            match self.next_chunk() {
                Ok(Some(b)) => self.buf = b,
                Ok(None) => return Ok(0),
                Err(e) => return Err(io::Error::other(e)),
            }
        }
        let n = out.len().min(self.buf.len());
        out[..n].copy_from_slice(&self.buf[..n]);
        let _ = self.buf.split_to(n);
        Ok(n)
    }
}

/// Checks that a directory entry name is safe to create on a file system.
pub fn safe_name(dir: &Cid, name: &str) -> Result<(), DagError> {
    let bad = name.is_empty()
        || name == "."
        || name == ".."
        || name.contains('/')
        || name.contains('\\')
        || name.contains('\0');
    if bad {
        Err(DagError::UnsafeName {
            cid: *dir,
            name: name.to_string(),
        })
    } else {
        Ok(())
    }
}

/// Totals of an export, for progress and messages.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ExportStats {
    pub files: u64,
    pub directories: u64,
    pub symlinks: u64,
    pub bytes: u64,
}

/// Writes the file, directory tree or symlink at `cid` to `out`, which must
/// not exist yet. Entry names are checked, so nothing is written outside
/// `out`. `progress` is called with the bytes written so far.
pub fn export(
    source: Arc<dyn BlockSource>,
    cid: Cid,
    out: &Path,
    opts: ReadOptions,
    progress: &mut dyn FnMut(u64),
) -> Result<ExportStats, DagError> {
    let write_err = |e: io::Error| DagError::Write {
        path: out.display().to_string(),
        source: e,
    };
    if out.symlink_metadata().is_ok() {
        return Err(write_err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            "already exists; refusing to overwrite",
        )));
    }
    // Everything goes to a hidden sibling first and is renamed into place
    // only when complete: a failure leaves nothing half-written.
    let name = out.file_name().and_then(|n| n.to_str()).unwrap_or("out");
    let tmp = out.with_file_name(format!(".{name}.cairn-partial-{}", std::process::id()));
    if tmp.symlink_metadata().is_ok() {
        return Err(write_err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            format!("{} exists (left by an earlier run?)", tmp.display()),
        )));
    }
    let mut stats = ExportStats::default();
    let result = export_rec(&source, cid, &tmp, opts, progress, &mut stats, 0)
        .and_then(|()| std::fs::rename(&tmp, out).map_err(write_err));
    if result.is_err() {
        let _ = if tmp.is_dir() && !tmp.is_symlink() {
            std::fs::remove_dir_all(&tmp)
        } else {
            std::fs::remove_file(&tmp)
        };
    }
    result.map(|()| stats)
}

/// Writes the file or tree under `cid` as a tar stream (ustar with GNU long
/// names) to `out`, its top entry named `name`, as Kubo's `get` API does.
/// Names are checked as [`export`] checks them.
pub fn export_tar(
    source: &Arc<dyn BlockSource>,
    cid: Cid,
    name: &str,
    opts: ReadOptions,
    out: impl io::Write,
) -> Result<ExportStats, DagError> {
    let mut tar = tar::Builder::new(out);
    let mut stats = ExportStats::default();
    tar_rec(source, cid, name, opts, &mut tar, &mut stats, 0)?;
    tar.into_inner().map_err(|e| DagError::Write {
        path: "tar output".into(),
        source: e,
    })?;
    Ok(stats)
}

fn tar_rec<W: io::Write>(
    source: &Arc<dyn BlockSource>,
    cid: Cid,
    path: &str,
    opts: ReadOptions,
    tar: &mut tar::Builder<W>,
    stats: &mut ExportStats,
    depth: usize,
) -> Result<(), DagError> {
    let write_err = |e: io::Error| DagError::Write {
        path: path.to_string(),
        source: e,
    };
    if depth > 256 {
        return Err(DagError::Malformed {
            cid,
            reason: "directory tree deeper than 256".into(),
        });
    }
    let mut header = tar::Header::new_gnu();
    header.set_mtime(0);
    let node = load(&**source, &cid)?;
    match node {
        node @ (Node::Raw(_) | Node::File { .. }) => {
            let size = node.file_size();
            header.set_entry_type(tar::EntryType::Regular);
            header.set_size(size);
            header.set_mode(0o644);
            let reader = FileReader::new(Arc::clone(source), cid, 0, None, opts)?;
            tar.append_data(&mut header, path, reader)
                .map_err(write_err)?;
            stats.files += 1;
            stats.bytes += size;
        }
        node @ (Node::Directory { .. } | Node::HamtShard { .. }) => {
            let links = directory_entries(&**source, &cid, node)?;
            header.set_entry_type(tar::EntryType::Directory);
            header.set_size(0);
            header.set_mode(0o755);
            tar.append_data(&mut header, format!("{path}/"), io::empty())
                .map_err(write_err)?;
            stats.directories += 1;
            for link in links {
                safe_name(&cid, &link.name)?;
                let child = format!("{path}/{}", link.name);
                tar_rec(source, link.cid, &child, opts, tar, stats, depth + 1)?;
            }
        }
        Node::Symlink { target } => {
            let target = String::from_utf8(target).map_err(|_| DagError::Malformed {
                cid,
                reason: "symlink target is not UTF-8".into(),
            })?;
            header.set_entry_type(tar::EntryType::Symlink);
            header.set_size(0);
            header.set_mode(0o777);
            tar.append_link(&mut header, path, &target)
                .map_err(write_err)?;
            stats.symlinks += 1;
        }
    }
    Ok(())
}

fn export_rec(
    source: &Arc<dyn BlockSource>,
    cid: Cid,
    out: &Path,
    opts: ReadOptions,
    progress: &mut dyn FnMut(u64),
    stats: &mut ExportStats,
    depth: usize,
) -> Result<(), DagError> {
    let write_err = |e: io::Error| DagError::Write {
        path: out.display().to_string(),
        source: e,
    };
    if depth > 256 {
        return Err(DagError::Malformed {
            cid,
            reason: "directory tree deeper than 256".into(),
        });
    }
    if out.symlink_metadata().is_ok() {
        return Err(write_err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            "already exists; refusing to overwrite",
        )));
    }
    let node = load(&**source, &cid)?;
    match node {
        Node::Raw(_) | Node::File { .. } => {
            let reader = FileReader::new(Arc::clone(source), cid, 0, None, opts)?;
            let mut f = std::fs::File::create(out).map_err(write_err)?;
            for chunk in reader {
                let chunk = chunk?;
                io::Write::write_all(&mut f, &chunk).map_err(write_err)?;
                stats.bytes += chunk.len() as u64;
                progress(stats.bytes);
            }
            stats.files += 1;
        }
        node @ (Node::Directory { .. } | Node::HamtShard { .. }) => {
            let links = directory_entries(&**source, &cid, node)?;
            std::fs::create_dir(out).map_err(write_err)?;
            stats.directories += 1;
            for link in links {
                safe_name(&cid, &link.name)?;
                export_rec(
                    source,
                    link.cid,
                    &out.join(&link.name),
                    opts,
                    progress,
                    stats,
                    depth + 1,
                )?;
            }
        }
        Node::Symlink { target } => {
            let target = String::from_utf8(target).map_err(|_| DagError::Malformed {
                cid,
                reason: "symlink target is not UTF-8".into(),
            })?;
            std::os::unix::fs::symlink(&target, out).map_err(write_err)?;
            stats.symlinks += 1;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dag::builder::{build_file, ImportOptions, Layout};
    use crate::dag::chunker::ChunkerSpec;
    use crate::store::{MemoryStore, Store};
    use std::io::Read;

    fn pattern(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 7 % 251) as u8).collect()
    }

    fn add(store: &MemoryStore, data: &[u8], opts: &ImportOptions) -> Cid {
        let root = build_file(data, opts, &mut |b| {
            store.put(b)?;
            Ok(())
        })
        .unwrap();
        root.cid
    }

    fn read_all(
        store: Arc<MemoryStore>,
        root: Cid,
        off: u64,
        len: Option<u64>,
        workers: usize,
    ) -> Vec<u8> {
        let mut r =
            FileReader::new(store, root, off, len, ReadOptions { window: 4, workers }).unwrap();
        let mut out = vec![];
        r.read_to_end(&mut out).unwrap();
        out
    }

    #[test]
    fn ranges_match_the_source_in_every_layout() {
        let data = pattern(10_007);
        for raw_leaves in [true, false] {
            for layout in [Layout::Balanced, Layout::Trickle] {
                let store = Arc::new(MemoryStore::new());
                let opts = ImportOptions {
                    chunker: ChunkerSpec::Fixed { size: 100 },
                    max_links: 3,
                    raw_leaves,
                    layout,
                    ..ImportOptions::default()
                };
                let root = add(&store, &data, &opts);
                for workers in [0, 2] {
                    assert_eq!(read_all(store.clone(), root, 0, None, workers), data);
                }
                for (off, len) in [
                    (0, 1),
                    (99, 2),
                    (5000, 3000),
                    (10_006, 10),
                    (20_000, 5),
                    (0, 0),
                ] {
                    let end = (off + len).min(data.len());
                    let off_c = off.min(data.len());
                    assert_eq!(
                        read_all(store.clone(), root, off as u64, Some(len as u64), 2),
                        &data[off_c..end],
                        "{layout} raw={raw_leaves} off={off} len={len}"
                    );
                }
            }
        }
    }

    /// A store that counts reads, to show ranges touch only what they need.
    struct Counting(MemoryStore, std::sync::atomic::AtomicUsize);
    impl BlockSource for Counting {
        fn block(&self, cid: &Cid) -> Result<Block, DagError> {
            self.1.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            self.0.block(cid)
        }
    }

    #[test]
    fn range_reads_only_needed_blocks() {
        let store = MemoryStore::new();
        let opts = ImportOptions {
            chunker: ChunkerSpec::Fixed { size: 100 },
            max_links: 10,
            ..ImportOptions::default()
        };
        let data = pattern(100_000); // 1000 leaves, depth 3
        let root = add(&store, &data, &opts);
        let counting = Arc::new(Counting(store, Default::default()));
        let mut r = FileReader::new(
            counting.clone(),
            root,
            55_550,
            Some(100),
            ReadOptions {
                window: 4,
                workers: 0,
            },
        )
        .unwrap();
        let mut out = vec![];
        r.read_to_end(&mut out).unwrap();
        assert_eq!(out, &data[55_550..55_650]);
        // root + one node per level + two leaves.
        assert!(counting.1.load(std::sync::atomic::Ordering::SeqCst) <= 6);
    }

    #[test]
    fn corrupt_leaf_is_an_error_not_data() {
        let store = Arc::new(MemoryStore::new());
        let opts = ImportOptions {
            chunker: ChunkerSpec::Fixed { size: 100 },
            ..ImportOptions::default()
        };
        let mut leaves = vec![];
        let root = build_file(&pattern(1000)[..], &opts, &mut |b| {
            if b.cid().codec() == RAW {
                leaves.push(*b.cid());
            }
            store.put(b)?;
            Ok(())
        })
        .unwrap();
        store.corrupt_for_test(&leaves[3], Bytes::from_static(b"evil"));
        let mut r = FileReader::new(store, root.cid, 0, None, ReadOptions::default()).unwrap();
        let mut out = vec![];
        let err = r.read_to_end(&mut out).unwrap_err();
        assert!(err.to_string().contains(&leaves[3].to_string()), "{err}");
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]
        #[test]
        fn any_options_round_trip(
            data in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..6000),
            chunk in 1usize..700,
            max_links in 2usize..6,
            trickle in proptest::prelude::any::<bool>(),
            raw_leaves in proptest::prelude::any::<bool>(),
            v0 in proptest::prelude::any::<bool>(),
            off in 0u64..7000,
            len in 0u64..7000,
        ) {
            let store = Arc::new(MemoryStore::new());
            let mut opts = if v0 { ImportOptions::kubo() } else { ImportOptions::default() };
            opts.chunker = ChunkerSpec::Fixed { size: chunk };
            opts.max_links = max_links;
            opts.raw_leaves = raw_leaves;
            opts.layout = if trickle { Layout::Trickle } else { Layout::Balanced };
            let root = add(&store, &data, &opts);
            proptest::prop_assert_eq!(read_all(store.clone(), root, 0, None, 2), data.clone());
            let s = (off as usize).min(data.len());
            let e = (s + len as usize).min(data.len());
            proptest::prop_assert_eq!(read_all(store, root, off, Some(len), 1), data[s..e].to_vec());
        }
    }
}

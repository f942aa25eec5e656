//! [`FileReader`] walks a file DAG depth-first and yields its bytes in
//! order. It descends only into children whose byte span (from the parent's
//! `blocksizes`) overlaps the requested range, so a range read touches only
//! the blocks it needs. Blocks the walk will need next are fetched and
//! verified by a small worker pool ahead of the walk (a bounded window), so
//! hashing runs on several cores while bytes stream out in order.

use super::{load_root, Node, MAX_DEPTH};
use crate::block::{Block, Cid, MAX_BLOCK_BYTES};
use crate::dag::{BlockSource, DagError};
use bytes::Bytes;
use std::collections::VecDeque;
use std::io;
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::sync::{Arc, Mutex};

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
    leaf_bytes: &mut LeafBytes,
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
                    let node = Node::decode(&block)?;
                    leaf_bytes.saw(&node, block.data().len());
                    FileReader::expand(cid, node, skip, take)
                });
                *item = match expanded {
                    Ok(children) => Item::Expanded(children),
                    Err(e) => Item::Failed(e),
                };
                if let Item::Expanded(children) = item {
                    scan(children, depth + 1, room, inflight, upcoming, leaf_bytes);
                }
            }
            Item::Expanded(children) if depth < MAX_DEPTH => {
                scan(children, depth + 1, room, inflight, upcoming, leaf_bytes)
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

/// Tuning of [`FileReader`]. Windows are in bytes of the file's leaves, so
/// a reader holds as much memory ahead of its walk whether the file was cut
/// into 256 KiB or 1 MiB chunks (always at least one block).
#[derive(Clone, Copy, Debug)]
pub struct ReadOptions {
    /// Leaf bytes read ahead of the walk while they come from the source's
    /// own store (memory held per reader).
    pub window_bytes: u64,
    /// Leaf bytes asked for ahead of the walk once the source fetches from
    /// elsewhere ([`BlockSource::fetching`]): enough to cover the network's
    /// latency (memory held per reader).
    pub fetch_window_bytes: u64,
    /// Worker threads fetching and verifying blocks (0: fetch inline).
    pub workers: usize,
}

impl ReadOptions {
    /// These options with `bytes` as the window for blocks fetched from
    /// elsewhere.
    pub fn fetching_ahead(self, bytes: u64) -> Self {
        ReadOptions {
            fetch_window_bytes: bytes,
            ..self
        }
    }
}

impl Default for ReadOptions {
    fn default() -> Self {
        ReadOptions {
            window_bytes: 2 << 20,
            fetch_window_bytes: 4 << 20,
            workers: default_workers(),
        }
    }
}

/// One worker per core, at most 4 (2 when the core count is unknown).
fn default_workers() -> usize {
    crate::dag::available_cores().map_or(2, |n| n.min(4))
}

/// The size of the file's leaves, as far as the walk has seen them: the
/// unit its windows are counted in. Until a leaf has arrived it is the
/// root's first `blocksizes` entry (exact for a one-level tree; deeper
/// trees start from the block limit, the safe side).
#[derive(Clone, Copy, Debug)]
struct LeafBytes {
    bytes: u64,
    seen: bool,
}

impl LeafBytes {
    fn guess(node: &Node) -> Self {
        let first = match node {
            Node::File { blocksizes, .. } => blocksizes.first().copied().unwrap_or(1),
            _ => 1,
        };
        LeafBytes {
            bytes: first.clamp(1, MAX_BLOCK_BYTES as u64),
            seen: false,
        }
    }

    /// Notes a block the walk decoded: leaves set the size (the largest
    /// seen once one has).
    fn saw(&mut self, node: &Node, len: usize) {
        let leaf = match node {
            Node::Raw(_) => true,
            Node::File { links, .. } => links.is_empty(),
            _ => false,
        };
        if leaf {
            let len = (len as u64).max(1);
            self.bytes = if self.seen { self.bytes.max(len) } else { len };
            self.seen = true;
        }
    }

    /// How many blocks of this size `window_bytes` holds (at least one).
    fn blocks_in(self, window_bytes: u64) -> usize {
        (window_bytes / self.bytes).max(1) as usize
    }
}

/// Streams the bytes of a file (or a range of it) in order.
pub struct FileReader {
    source: Arc<dyn BlockSource>,
    stack: Vec<VecDeque<Item>>,
    jobs: Option<SyncSender<Job>>,
    inflight: usize,
    opts: ReadOptions,
    leaf_bytes: LeafBytes,
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
        let node = load_root(&*source, &root)?;
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
            leaf_bytes: LeafBytes::guess(&node),
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
            let most = self
                .leaf_bytes
                .blocks_in(self.opts.window_bytes.max(self.opts.fetch_window_bytes));
            let (tx, rx) = mpsc::sync_channel::<Job>(most);
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
        let window = self.leaf_bytes.blocks_in(match self.source.fetching() {
            true => self.opts.fetch_window_bytes,
            false => self.opts.window_bytes,
        });
        if self.opts.workers == 0 || self.inflight >= window {
            return;
        }
        let room = window - self.inflight;
        let mut upcoming = Vec::new();
        for (depth, frame) in self.stack.iter_mut().enumerate().rev() {
            if upcoming.len() >= room {
                break;
            }
            scan(
                frame,
                depth,
                room,
                &mut self.inflight,
                &mut upcoming,
                &mut self.leaf_bytes,
            );
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
                    self.leaf_bytes.saw(&node, block.data().len());
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::block::RAW;
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
        let mut r = FileReader::new(
            store,
            root,
            off,
            len,
            ReadOptions {
                window_bytes: 400,
                fetch_window_bytes: 400,
                workers,
            },
        )
        .unwrap();
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
                window_bytes: 400,
                fetch_window_bytes: 400,
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

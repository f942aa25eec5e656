//! A bucket's committed state as a content-addressed DAG: a prolly tree of
//! DAG-CBOR nodes over the bucket's keys, stored as blocks in the node's
//! store, so a bucket has a root CID at every moment, any peer can list and
//! read it by that CID, and the same set of objects always has the same
//! root, whatever the order of the writes that made it.
//!
//! Wire format (DAG-CBOR, CIDv1 sha2-256): a node is
//! `[level, [[key, value], ...]]`, keys (bytes) strictly ascending. At
//! level 0 a value is the object's entry, a map of the fields of
//! [`ObjectEntry`] whose `cid` is a link to the object's UnixFS root (so
//! walking a bucket root reaches every object; a multipart object's
//! `parts` holds its part sizes as `[size, count]` runs); above, a value is a link
//! to a child one level down and the key is the greatest key under it.
//!
//! Node boundaries are content-defined: at level `l` a node ends after an
//! item whose key hashes to a level above `l` (the top bits of its
//! SHA2-256 are zero in more than `l` groups of [`LEVEL_BITS`], so about
//! one key in 32 closes a leaf), or once the node holds [`MAX_ITEMS`]
//! items or [`MAX_NODE_BYTES`] bytes (a bound on block size whatever the
//! keys; counted from the node's start, so it too depends only on the
//! entries). The levels are chunked until one node is left: the root.
//!
//! A write re-chunks the nodes on one path: from the start of the node the
//! key falls in, until a new boundary meets an old one, then the same one
//! level up, so it rewrites O(log n) nodes. A listing seeks the first key
//! at or after a point by one descent; a [`Tree`] caches the nodes it read,
//! so a page of objects costs O(log n + page) node reads. A common prefix
//! (a delimiter listing) is skipped by seeking past every key under it: a
//! new descent below the cached root, up to one node per level each.

mod node;

use super::index::{Found, ObjectEntry};
use super::S3Error;
use crate::block::{Block, Cid, CidFormat, RAW};
use crate::dag::ipld::Ipld;
use crate::dag::{BlockSource, DagError};
pub use node::TreeNode;
use node::{value_entry, Item};
use std::collections::HashMap;
use std::sync::Arc;

/// Bits of a key's hash per level: a key closes a node at level `l` with
/// probability 2^-(5(l+1)), so nodes hold about 32 items.
pub const LEVEL_BITS: u32 = 5;

/// Most items in one node.
pub const MAX_ITEMS: usize = 1024;

/// A node is closed once its items weigh this much (keys and encoded
/// values), which keeps blocks far below the block size limit.
pub const MAX_NODE_BYTES: usize = 128 * 1024;

/// The highest level a node may claim (64-bit hash prefix / 5 bits, with
/// room for the forced cuts above it).
const MAX_LEVEL: u64 = 64;

/// Nodes a [`Tree`] caches: two generations of half as many; when the
/// newer is full the older is forgotten, and a node of the older that is
/// used again moves to the newer (so a writer's tree, kept from change to
/// change, keeps the nodes its changes go through and lets the replaced
/// ones go).
const CACHED_NODES: usize = 4096;

/// Cuts one level's items into nodes.
struct Chunker {
    level: u32,
    pending: Vec<Item>,
    bytes: usize,
    /// Links to the nodes made so far, as items of the level above.
    out: Vec<Item>,
}

impl Chunker {
    fn new(level: u32) -> Chunker {
        Chunker {
            level,
            pending: Vec::new(),
            bytes: 0,
            out: Vec::new(),
        }
    }

    fn push(&mut self, tree: &mut Tree, item: Item) -> Result<(), S3Error> {
        let boundary = item.rank > self.level;
        self.bytes += item.weight;
        self.pending.push(item);
        if boundary || self.pending.len() >= MAX_ITEMS || self.bytes >= MAX_NODE_BYTES {
            self.cut(tree)?;
        }
        Ok(())
    }

    /// Closes the node being filled, if it holds anything.
    fn cut(&mut self, tree: &mut Tree) -> Result<(), S3Error> {
        let items = std::mem::take(&mut self.pending);
        self.bytes = 0;
        let Some(last) = items.last() else {
            return Ok(());
        };
        let (key, rank) = (last.key.clone(), last.rank);
        let cid = tree.emit(self.level, items)?;
        self.out.push(Item::link(key, rank, cid));
        Ok(())
    }

    /// Whether the last item pushed closed a node (so what follows is cut
    /// as it was before).
    fn aligned(&self) -> bool {
        self.pending.is_empty()
    }
}

/// The old nodes of one level after a path's node, in key order.
struct Cursor {
    /// The path's ancestors of the level, with the child index taken.
    stack: Vec<(Arc<TreeNode>, usize)>,
    /// The level walked.
    level: u32,
}

impl Cursor {
    fn next(&mut self, tree: &mut Tree) -> Result<Option<Arc<TreeNode>>, S3Error> {
        loop {
            let Some((node, i)) = self.stack.last_mut() else {
                return Ok(None);
            };
            if *i + 1 < node.items.len() {
                *i += 1;
                break;
            }
            self.stack.pop();
        }
        loop {
            let Some((node, i)) = self.stack.last() else {
                return Ok(None);
            };
            let (node, i) = (Arc::clone(node), *i);
            let child = tree.child(&node, i)?;
            if child.level <= self.level {
                return Ok(Some(child));
            }
            self.stack.push((child, 0));
        }
    }
}

/// Reads and writes bucket trees over a block source, caching the nodes
/// it reads; nodes a write makes stay in the tree until
/// [`take_fresh`](Tree::take_fresh) hands them over to be stored.
pub struct Tree {
    source: Arc<dyn BlockSource>,
    nodes: HashMap<Cid, Arc<TreeNode>>,
    /// The older generation of the cache.
    older: HashMap<Cid, Arc<TreeNode>>,
    fresh: HashMap<Cid, Block>,
    /// Nodes [`apply_all`](Tree::apply_all) made, under provisional CIDs,
    /// until it encodes those its last root reaches.
    provisional: HashMap<Cid, Arc<TreeNode>>,
    /// Provisional CIDs given so far.
    made: u64,
    /// Whether [`emit`](Tree::emit) defers the encoding (in `apply_all`).
    lazy: bool,
    reads: u64,
}

impl Tree {
    /// A tree reader and writer over `source`.
    pub fn new(source: Arc<dyn BlockSource>) -> Tree {
        Tree {
            source,
            nodes: HashMap::new(),
            older: HashMap::new(),
            fresh: HashMap::new(),
            provisional: HashMap::new(),
            made: 0,
            lazy: false,
            reads: 0,
        }
    }

    /// Nodes read from the source so far.
    pub fn reads(&self) -> u64 {
        self.reads
    }

    /// The node `cid`: made by this tree, cached, or read and checked.
    fn load(&mut self, cid: &Cid) -> Result<Arc<TreeNode>, S3Error> {
        if let Some(n) = self.provisional.get(cid) {
            return Ok(Arc::clone(n));
        }
        if let Some(n) = self.nodes.get(cid) {
            return Ok(Arc::clone(n));
        }
        if let Some(n) = self.older.remove(cid) {
            self.cache(*cid, Arc::clone(&n));
            return Ok(n);
        }
        let block = match self.fresh.get(cid) {
            Some(b) => b.clone(),
            None => {
                self.reads += 1;
                self.source.block(cid).map_err(|e| match e {
                    DagError::NotFound { .. } => S3Error::TreeNodeMissing { cid: *cid },
                    other => S3Error::TreeNodeUnreadable {
                        cid: *cid,
                        why: other.to_string(),
                    },
                })?
            }
        };
        let node = Arc::new(TreeNode::decode(cid, block.data())?);
        self.cache(*cid, Arc::clone(&node));
        Ok(node)
    }

    /// Caches `node` in the newer generation (see [`CACHED_NODES`]).
    fn cache(&mut self, cid: Cid, node: Arc<TreeNode>) {
        if self.nodes.len() >= CACHED_NODES / 2 {
            self.older = std::mem::take(&mut self.nodes);
        }
        self.nodes.insert(cid, node);
    }

    /// Forgets `cid`'s node.
    fn uncache(&mut self, cid: &Cid) {
        self.nodes.remove(cid);
        self.older.remove(cid);
    }

    /// The child at `i` of `node`, checked to be one level down.
    fn child(&mut self, node: &TreeNode, i: usize) -> Result<Arc<TreeNode>, S3Error> {
        let cid = node.child(i).ok_or_else(|| S3Error::BadEntry {
            what: "bucket tree node",
            why: format!("no child {i} at level {}", node.level),
        })?;
        let child = self.load(&cid)?;
        if child.level + 1 != node.level {
            return Err(S3Error::TreeNodeCorrupt {
                cid,
                why: format!("level {} under a level {} node", child.level, node.level),
            });
        }
        Ok(child)
    }

    /// Encodes a new node; it is kept until taken to be stored. In
    /// [`apply_all`](Tree::apply_all), only kept, under a provisional CID
    /// (a RAW codec one, which no tree node links to).
    fn emit(&mut self, level: u32, items: Vec<Item>) -> Result<Cid, S3Error> {
        if self.lazy {
            self.made += 1;
            let cid = CidFormat::V1_SHA2_256.cid(RAW, &self.made.to_be_bytes());
            self.provisional
                .insert(cid, Arc::new(TreeNode { level, items }));
            return Ok(cid);
        }
        let block = TreeNode::encode(level, &items)?;
        let cid = *block.cid();
        self.cache(cid, Arc::new(TreeNode { level, items }));
        self.fresh.insert(cid, block);
        Ok(cid)
    }

    /// The root of a bucket without objects.
    pub fn empty(&mut self) -> Result<Cid, S3Error> {
        self.emit(0, Vec::new())
    }

    /// The new nodes `root` reaches, to store before `root` is committed;
    /// the other nodes made on the way are dropped.
    pub fn take_fresh(&mut self, root: &Cid) -> Vec<Block> {
        let mut out = Vec::new();
        let mut stack = vec![*root];
        while let Some(cid) = stack.pop() {
            let Some(block) = self.fresh.remove(&cid) else {
                continue;
            };
            let node = match self.nodes.get(&cid).or_else(|| self.older.get(&cid)) {
                Some(n) => Some(Arc::clone(n)),
                // Made here, so it decodes; the cache may have forgotten it.
                None => TreeNode::decode(&cid, block.data()).ok().map(Arc::new),
            };
            if let Some(node) = node {
                stack.extend((0..node.items.len()).filter_map(|i| node.child(i)));
            }
            out.push(block);
        }
        // The nodes made on the way and replaced since leave the cache too:
        // a tree kept across writes would fill it with them.
        for cid in std::mem::take(&mut self.fresh).into_keys() {
            self.uncache(&cid);
        }
        out
    }

    /// Sets each key of `changes` to its entry (none: removes it), in
    /// order, in the tree at `root`; returns the new root, as that many
    /// [`apply`](Self::apply) calls would. The nodes made on the way are
    /// encoded and hashed only if the last root reaches them: a group of
    /// writes encodes each node it changes once, not once a write.
    pub fn apply_all<'a>(
        &mut self,
        root: &Cid,
        changes: impl IntoIterator<Item = (&'a [u8], Option<&'a ObjectEntry>)>,
    ) -> Result<Cid, S3Error> {
        self.lazy = true;
        let mut new = *root;
        let applied = changes.into_iter().try_for_each(|(key, entry)| {
            new = self.apply(&new, key, entry)?;
            Ok(())
        });
        self.lazy = false;
        let done = applied.and_then(|()| self.encode_provisional(&new));
        self.provisional.clear();
        done
    }

    /// The CID `cid` has once encoded: itself, unless it is provisional;
    /// then its node is emitted, its provisional children first.
    fn encode_provisional(&mut self, cid: &Cid) -> Result<Cid, S3Error> {
        let Some(node) = self.provisional.get(cid).cloned() else {
            return Ok(*cid);
        };
        let mut items = Vec::with_capacity(node.items.len());
        for item in &node.items {
            match (node.level > 0, &*item.value) {
                (true, Ipld::Link(child)) if self.provisional.contains_key(child) => {
                    let child = *child;
                    let real = self.encode_provisional(&child)?;
                    items.push(Item::link(item.key.clone(), item.rank, real));
                }
                _ => items.push(item.clone()),
            }
        }
        self.emit(node.level, items)
    }

    /// Drops the new nodes of a change that was not committed (and so not
    /// taken), before the next one: the cache of nodes read stays.
    pub fn discard_fresh(&mut self) {
        self.provisional.clear();
        for cid in std::mem::take(&mut self.fresh).into_keys() {
            self.uncache(&cid);
        }
    }

    /// The tree of `entries` (ascending keys), built level by level.
    pub fn build(
        &mut self,
        entries: impl IntoIterator<Item = Result<(Vec<u8>, ObjectEntry), S3Error>>,
    ) -> Result<Cid, S3Error> {
        let mut leaves = Chunker::new(0);
        let mut last: Option<Vec<u8>> = None;
        for entry in entries {
            let (key, entry) = entry?;
            if last.as_ref().is_some_and(|l| *l >= key) {
                return Err(S3Error::BadEntry {
                    what: "bucket tree input",
                    why: "keys are not in ascending order".into(),
                });
            }
            let item = Item::entry(&key, &entry)?;
            leaves.push(self, item)?;
            last = Some(key);
        }
        leaves.cut(self)?;
        self.top(leaves.out, 0)
    }

    /// The root over `items`, links to the new nodes of `level` (the old
    /// root's level): chunked further up while there are several, the
    /// empty leaf when none, single-child roots collapsed.
    fn top(&mut self, mut items: Vec<Item>, mut level: u32) -> Result<Cid, S3Error> {
        loop {
            match items.as_slice() {
                [] => return self.empty(),
                [only] => {
                    let Ipld::Link(mut cid) = *only.value else {
                        return Err(S3Error::BadEntry {
                            what: "bucket tree node",
                            why: "a root item that is not a link".into(),
                        });
                    };
                    loop {
                        let node = self.load(&cid)?;
                        match (node.level, node.child(0)) {
                            (l, Some(child)) if l > 0 && node.items.len() == 1 => cid = child,
                            _ => return Ok(cid),
                        }
                    }
                }
                _ => {
                    level += 1;
                    let mut up = Chunker::new(level);
                    for item in items {
                        up.push(self, item)?;
                    }
                    up.cut(self)?;
                    items = up.out;
                }
            }
        }
    }

    /// Sets `key` to `entry` (none: removes it) in the tree at `root`;
    /// returns the new root (the same when nothing changed).
    pub fn apply(
        &mut self,
        root: &Cid,
        key: &[u8],
        entry: Option<&ObjectEntry>,
    ) -> Result<Cid, S3Error> {
        let mut path: Vec<(Arc<TreeNode>, usize)> = Vec::new();
        let mut node = self.load(root)?;
        while node.level > 0 {
            let i = node
                .items
                .partition_point(|it| &*it.key < key)
                .min(node.items.len() - 1);
            let child = self.child(&node, i)?;
            path.push((node, i));
            node = child;
        }
        let found = node.items.binary_search_by(|it| (*it.key).cmp(key));
        let (i, drop, insert) = match (found, entry) {
            (Ok(i), Some(e)) => (i, 1, vec![Item::entry(key, e)?]),
            (Ok(i), None) => (i, 1, Vec::new()),
            (Err(i), Some(e)) => (i, 0, vec![Item::entry(key, e)?]),
            (Err(_), None) => return Ok(*root),
        };
        path.push((node, i));
        let (mut i, mut drop, mut insert) = (i, drop, insert);
        let mut depth = path.len() - 1;
        loop {
            let (made, consumed) = self.rechunk(&path, depth, i, drop, insert)?;
            if depth == 0 {
                return self.top(made, path[0].0.level);
            }
            depth -= 1;
            (i, drop, insert) = (path[depth].1, consumed, made);
        }
    }

    /// Re-chunks one level: the node at `path[depth]` with `drop` old items
    /// from index `i` on (spilling into the next nodes of the level)
    /// replaced by `insert`, and the next old nodes until a new boundary
    /// meets an old one. Returns links to the new nodes and how many old
    /// nodes, from the path's on, they replace.
    fn rechunk(
        &mut self,
        path: &[(Arc<TreeNode>, usize)],
        depth: usize,
        i: usize,
        drop: usize,
        insert: Vec<Item>,
    ) -> Result<(Vec<Item>, usize), S3Error> {
        let mut node = Arc::clone(&path[depth].0);
        let mut chunker = Chunker::new(node.level);
        let mut cursor = Cursor {
            stack: path[..depth].to_vec(),
            level: node.level,
        };
        let mut consumed = 1;
        for item in &node.items[..i] {
            chunker.push(self, item.clone())?;
        }
        for item in insert {
            chunker.push(self, item)?;
        }
        let (mut at, mut left) = (i, drop);
        while left > 0 {
            if at < node.items.len() {
                at += 1;
                left -= 1;
                continue;
            }
            node = cursor.next(self)?.ok_or_else(|| S3Error::BadEntry {
                what: "bucket tree node",
                why: "a change runs past the last node".into(),
            })?;
            consumed += 1;
            at = 0;
        }
        for item in &node.items[at..] {
            chunker.push(self, item.clone())?;
        }
        while !chunker.aligned() {
            match cursor.next(self)? {
                Some(next) => {
                    consumed += 1;
                    for item in &next.items {
                        chunker.push(self, item.clone())?;
                    }
                }
                None => chunker.cut(self)?,
            }
        }
        Ok((chunker.out, consumed))
    }

    /// The first entry whose key is at least `from`, by one descent.
    pub fn first_from(&mut self, root: &Cid, from: &[u8]) -> Result<Found, S3Error> {
        let mut node = self.load(root)?;
        let mut cid = *root;
        loop {
            let i = node.items.partition_point(|it| &*it.key < from);
            let Some(item) = node.items.get(i) else {
                if cid != *root {
                    return Err(S3Error::TreeNodeCorrupt {
                        cid,
                        why: "its keys end before its parent says".into(),
                    });
                }
                return Ok(None);
            };
            if node.level == 0 {
                let entry = value_entry(&item.value)
                    .map_err(|why| S3Error::TreeNodeCorrupt { cid, why })?;
                return Ok(Some((item.key.to_vec(), entry)));
            }
            let child = self.child(&node, i)?;
            cid = node.child(i).unwrap_or(cid);
            node = child;
        }
    }

    /// The entry at `key`, if any.
    pub fn get(&mut self, root: &Cid, key: &[u8]) -> Result<Option<ObjectEntry>, S3Error> {
        Ok(self
            .first_from(root, key)?
            .filter(|(k, _)| k == key)
            .map(|(_, e)| e))
    }
}

#[cfg(test)]
mod tests {
    use super::node::key_level;
    use super::*;
    use crate::block::{CidFormat, DAG_CBOR};
    use crate::dag::ipld;
    use crate::s3::list::{self, ListQuery};
    use crate::store::MemoryStore;
    use crate::store::Store;
    use std::collections::BTreeMap;

    fn entry(n: u64, meta_bytes: usize) -> ObjectEntry {
        let cid = CidFormat::V1_SHA2_256.cid(crate::block::RAW, &n.to_be_bytes());
        let mut metadata = BTreeMap::new();
        if meta_bytes > 0 {
            metadata.insert("pad".into(), "x".repeat(meta_bytes));
        }
        ObjectEntry {
            cid: cid.to_string(),
            size: n,
            etag: format!("{n:032x}"),
            content_type: n.is_multiple_of(2).then(|| "text/plain".into()),
            metadata,
            mtime_ms: 1_700_000_000_000 + n,
            ..Default::default()
        }
    }

    fn key(n: u64) -> Vec<u8> {
        format!("dir{:02}/sub{}/file-{n}", n % 37, n % 5).into_bytes()
    }

    /// A fixed shuffle (xorshift), so failures replay.
    fn shuffled(mut v: Vec<u64>, seed: u64) -> Vec<u64> {
        let mut s = seed | 1;
        for i in (1..v.len()).rev() {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            v.swap(i, (s % (i as u64 + 1)) as usize);
        }
        v
    }

    fn built(tree: &mut Tree, map: &BTreeMap<Vec<u8>, ObjectEntry>) -> Cid {
        tree.build(map.iter().map(|(k, e)| Ok((k.clone(), e.clone()))))
            .unwrap()
    }

    #[test]
    fn nodes_encode_as_their_ipld_lists_do() {
        for (level, n) in [(0u32, 0u64), (0, 1), (0, 40), (3, 7), (1, 300)] {
            let items: Vec<Item> = (0..n)
                .map(|i| match level {
                    0 => Item::entry(&key(i), &entry(i, (i as usize * 37) % 300)).unwrap(),
                    _ => {
                        let cid = CidFormat::V1_SHA2_256.cid(DAG_CBOR, &key(i));
                        Item::link(key(i).into(), key_level(&key(i)), cid)
                    }
                })
                .collect();
            let list = items
                .iter()
                .map(|i| Ipld::List(vec![Ipld::Bytes(i.key.to_vec()), (*i.value).clone()]))
                .collect();
            let value = Ipld::List(vec![Ipld::Integer(level.into()), Ipld::List(list)]);
            let want = ipld::encode(DAG_CBOR, &value).unwrap();
            let block = TreeNode::encode(level, &items).unwrap();
            assert_eq!(block.data()[..], want[..], "level {level}, {n} items");
        }
    }

    fn depth(tree: &mut Tree, root: &Cid) -> u32 {
        tree.load(root).unwrap().level + 1
    }

    #[test]
    fn the_same_entries_in_any_order_give_the_same_root() {
        // Light entries (natural cuts only) and heavy ones (byte cuts too).
        for meta_bytes in [0, 9000] {
            let n = if meta_bytes == 0 { 3000 } else { 400 };
            let store = Arc::new(MemoryStore::new());
            let mut tree = Tree::new(store.clone());
            let map: BTreeMap<_, _> = (0..n).map(|i| (key(i), entry(i, meta_bytes))).collect();
            let want = built(&mut tree, &map);
            assert!(depth(&mut tree, &want) >= 2, "a tree of several levels");
            let ascending: Vec<u64> = (0..n).collect();
            let descending: Vec<u64> = (0..n).rev().collect();
            for order in [ascending, descending, shuffled((0..n).collect(), 7)] {
                let mut root = tree.empty().unwrap();
                for i in order {
                    root = tree
                        .apply(&root, &key(i), Some(&entry(i, meta_bytes)))
                        .unwrap();
                }
                assert_eq!(root, want, "meta {meta_bytes}");
            }
            // Removing half, in any order, gives the tree of the other half.
            let mut root = want;
            let mut left = map.clone();
            for i in shuffled((0..n).filter(|i| i % 2 == 1).collect(), 3) {
                root = tree.apply(&root, &key(i), None).unwrap();
                left.remove(&key(i));
            }
            assert_eq!(root, built(&mut tree, &left));
            assert_eq!(tree.apply(&root, b"absent", None).unwrap(), root);
            for i in (0..n).filter(|i| i % 2 == 0) {
                root = tree.apply(&root, &key(i), None).unwrap();
            }
            assert_eq!(root, tree.empty().unwrap());
        }
    }

    /// 100,000 keys in a sled tree and in a bucket tree built from it,
    /// with the tree's blocks in `store`.
    fn hundred_thousand(store: &Arc<MemoryStore>) -> (sled::Tree, Cid) {
        let db = sled::Config::new().temporary(true).open().unwrap();
        let objects = db.open_tree("o/big").unwrap();
        for i in 0..100_000 {
            let v = serde_json::to_vec(&entry(i, 0)).unwrap();
            objects.insert(key(i), v).unwrap();
        }
        let mut tree = Tree::new(store.clone());
        let root = tree
            .build(objects.iter().map(|kv| {
                let (k, v) = kv.unwrap();
                Ok((k.to_vec(), serde_json::from_slice(&v).unwrap()))
            }))
            .unwrap();
        store
            .put_many(&mut tree.take_fresh(&root).into_iter())
            .unwrap();
        (objects, root)
    }

    fn sled_first(objects: &sled::Tree, from: &[u8]) -> Found {
        objects.range(from.to_vec()..).next().map(|kv| {
            let (k, v) = kv.unwrap();
            (k.to_vec(), serde_json::from_slice(&v).unwrap())
        })
    }

    #[test]
    fn pages_of_100k_keys_from_the_tree_agree_with_sled() {
        let store = Arc::new(MemoryStore::new());
        let (objects, root) = hundred_thousand(&store);
        let queries = [
            ("", None, 1000, None),
            ("dir07/", None, 1000, None),
            ("dir07/", Some("/"), 1000, None),
            ("", Some("/"), 10, None),
            ("dir3", Some("/"), 1000, Some("dir31/")),
            ("dir12/sub3/", None, 250, Some("dir12/sub3/file-5")),
            ("nothing/", Some("/"), 1000, None),
        ];
        for (prefix, delimiter, max_keys, start_after) in queries {
            let start = list::start_of(prefix, None, start_after).unwrap();
            let mut query = ListQuery {
                prefix: prefix.into(),
                delimiter: delimiter.map(Into::into),
                max_keys,
                start,
            };
            for _ in 0..3 {
                let mut tree = Tree::new(store.clone());
                let from_tree = list::page(&query, &mut |f| tree.first_from(&root, f)).unwrap();
                let from_sled = list::page(&query, &mut |f| Ok(sled_first(&objects, f))).unwrap();
                assert_eq!(from_tree, from_sled, "{prefix:?} {delimiter:?}");
                // O(log n + page): the path down; then, reading on from
                // an object, one leaf per ~32 keys (3/8 a key is slack for
                // short leaves); but each common prefix seeks past every
                // key under it, a new descent below the cached root: a
                // rolled-up prefix can cost a node per level.
                let depth = u64::from(tree.load(&root).unwrap().level) + 1;
                let (objects, prefixes) = (
                    from_tree.objects.len() as u64,
                    from_tree.prefixes.len() as u64,
                );
                let bound = depth + prefixes * (depth - 1) + (3 * objects).div_ceil(8);
                assert!(
                    tree.reads() <= bound,
                    "{} node reads for {objects} objects and {prefixes} prefixes (bound {bound})",
                    tree.reads()
                );
                match from_tree.next {
                    Some(next) => query.start = next,
                    None => break,
                }
            }
        }
    }

    /// The writer keeps one tree from change to change and applies a
    /// group's changes at once: its roots are the ones built from scratch
    /// (and the ones single changes give), it reads (almost) no node
    /// again, its cache stays bounded, and a change given up leaves none
    /// of its nodes.
    #[test]
    fn a_tree_kept_across_groups_of_changes_gives_the_built_roots() {
        let store = Arc::new(MemoryStore::new());
        let mut tree = Tree::new(store.clone());
        let mut one_by_one = Tree::new(store.clone());
        let mut root = tree.empty().unwrap();
        store
            .put_many(&mut tree.take_fresh(&root).into_iter())
            .unwrap();
        let mut single = root;
        let mut want = BTreeMap::new();
        let order = shuffled((0..2000).collect(), 5);
        for (g, group) in order.chunks(16).enumerate() {
            // Some keys twice in a group (the last entry wins), some removed.
            let mut changes: Vec<(Vec<u8>, Option<ObjectEntry>)> =
                group.iter().map(|&i| (key(i), Some(entry(i, 0)))).collect();
            changes.push((key(group[0]), Some(entry(group[0] + 7, 0))));
            if g % 3 == 0 {
                changes.push((key(group[1]), None));
            }
            for (k, e) in &changes {
                match e {
                    Some(e) => want.insert(k.clone(), e.clone()),
                    None => want.remove(k),
                };
                single = one_by_one.apply(&single, k, e.as_ref()).unwrap();
            }
            let all = changes.iter().map(|(k, e)| (k.as_slice(), e.as_ref()));
            root = tree.apply_all(&root, all).unwrap();
            assert_eq!(root, single, "group {g}");
            store
                .put_many(&mut tree.take_fresh(&root).into_iter())
                .unwrap();
            if g % 10 == 5 {
                // A change given up: its nodes leave the cache.
                let given_up = tree.apply(&root, b"never", Some(&entry(0, 0))).unwrap();
                tree.discard_fresh();
                assert!(!tree.nodes.contains_key(&given_up));
            }
        }
        let cached = tree.nodes.len() + tree.older.len();
        assert!(cached <= CACHED_NODES, "{cached} nodes cached");
        assert!(tree.reads() <= 8, "{} nodes read again", tree.reads());
        assert!(tree.provisional.is_empty());
        let mut fresh = Tree::new(store.clone());
        assert_eq!(root, built(&mut fresh, &want));
        for i in [0, 999, 1999] {
            assert_eq!(
                fresh.get(&root, &key(i)).unwrap(),
                want.get(&key(i)).cloned()
            );
        }
    }

    #[test]
    fn one_put_rewrites_and_reads_o_log_n_nodes() {
        let store = Arc::new(MemoryStore::new());
        let (objects, mut root) = hundred_thousand(&store);
        let mut want: BTreeMap<Vec<u8>, ObjectEntry> = objects
            .iter()
            .map(|kv| {
                let (k, v) = kv.unwrap();
                (k.to_vec(), serde_json::from_slice(&v).unwrap())
            })
            .collect();
        let depth = {
            let mut tree = Tree::new(store.clone());
            depth(&mut tree, &root) as usize
        };
        assert!((3..=6).contains(&depth), "depth {depth} for 100,000 keys");
        let mut most = (0, 0);
        for (n, i) in [5u64, 50_000, 99_999, 100_000, 123_456, 7]
            .into_iter()
            .enumerate()
        {
            let mut tree = Tree::new(store.clone());
            let next = if n % 3 == 2 {
                want.remove(&key(i));
                tree.apply(&root, &key(i), None).unwrap()
            } else {
                want.insert(key(i), entry(i + 1, 0));
                tree.apply(&root, &key(i), Some(&entry(i + 1, 0))).unwrap()
            };
            let fresh = tree.take_fresh(&next);
            most = (most.0.max(fresh.len()), most.1.max(tree.reads()));
            store.put_many(&mut fresh.into_iter()).unwrap();
            root = next;
        }
        // A boundary key can merge or split a node on each level.
        assert!(most.0 <= 2 * depth + 1, "{} nodes written", most.0);
        assert!(most.1 <= 3 * depth as u64 + 2, "{} nodes read", most.1);
        // Replaced (50,000), added (123,456: a put, n = 4) and removed
        // (99,999 and 7: n = 2 and 5) keys read back as the writes left
        // them, and the tree is the one built from scratch.
        let mut tree = Tree::new(store.clone());
        assert_eq!(
            tree.get(&root, &key(50_000)).unwrap(),
            Some(entry(50_001, 0))
        );
        assert_eq!(
            tree.get(&root, &key(123_456)).unwrap(),
            Some(entry(123_457, 0))
        );
        assert_eq!(tree.get(&root, &key(99_999)).unwrap(), None);
        assert_eq!(tree.get(&root, &key(7)).unwrap(), None);
        assert_eq!(root, built(&mut tree, &want));
    }

    #[test]
    fn every_field_of_an_entry_round_trips_through_a_node() {
        use crate::s3::checksum::{Algorithm, ObjectChecksum};
        let store = Arc::new(MemoryStore::new());
        let mut tree = Tree::new(store.clone());
        let mut full = entry(8, 40);
        full.checksum = Some(ObjectChecksum {
            algorithm: Algorithm::Crc64Nvme,
            value: "AAAAAAAAAAE=".into(),
            composite: false,
        });
        // A multipart object's part sizes, as runs.
        full.parts = vec![[5 << 20, 3], [1234, 1]];
        let root = tree.empty().unwrap();
        let root = tree.apply(&root, b"k", Some(&full)).unwrap();
        store
            .put_many(&mut tree.take_fresh(&root).into_iter())
            .unwrap();
        let got = Tree::new(store.clone()).get(&root, b"k").unwrap();
        assert_eq!(got, Some(full));
    }

    #[test]
    fn a_missing_or_damaged_node_is_a_clear_error() {
        let store = Arc::new(MemoryStore::new());
        let mut tree = Tree::new(store.clone());
        let map: BTreeMap<_, _> = (0..500).map(|i| (key(i), entry(i, 0))).collect();
        let root = built(&mut tree, &map);
        let mut blocks = tree.take_fresh(&root);
        // Keep back the leaf holding the last key.
        let mut reader = Tree::new(store.clone());
        store.put_many(&mut blocks.clone().into_iter()).unwrap();
        let mut node = reader.load(&root).unwrap();
        let (mut leaf, mut first) = (root, root);
        while node.level > 0 {
            first = node.child(0).unwrap();
            leaf = node.child(node.items.len() - 1).unwrap();
            node = reader.load(&leaf).unwrap();
        }
        let partial = Arc::new(MemoryStore::new());
        blocks.retain(|b| *b.cid() != leaf);
        partial.put_many(&mut blocks.into_iter()).unwrap();
        let last = map.keys().last().unwrap();
        match Tree::new(partial.clone()).first_from(&root, last) {
            Err(S3Error::TreeNodeMissing { cid }) => assert_eq!(cid, leaf),
            other => panic!("expected a missing node, got {other:?}"),
        }
        let damaged = |value: Ipld| {
            let data = ipld::encode(DAG_CBOR, &value).unwrap();
            let block = Block::new(CidFormat::V1_SHA2_256, DAG_CBOR, data);
            partial.put(block.clone()).unwrap();
            Tree::new(partial.clone()).first_from(block.cid(), b"j")
        };
        let inner = |key: &[u8], child: Cid| {
            Ipld::List(vec![
                Ipld::Integer(1),
                Ipld::List(vec![Ipld::List(vec![
                    Ipld::Bytes(key.to_vec()),
                    Ipld::Link(child),
                ])]),
            ])
        };
        let bad = [
            Ipld::String("not a node".into()),
            Ipld::List(vec![Ipld::Integer(1), Ipld::List(vec![])]),
            Ipld::List(vec![Ipld::Integer(0), Ipld::List(vec![Ipld::Integer(5)])]),
            Ipld::List(vec![Ipld::Integer(1_000), Ipld::List(vec![])]),
            // A child a level too high, and one whose keys end before "k".
            inner(b"k", root),
            inner(b"k", first),
        ];
        for value in bad {
            let e = damaged(value.clone()).unwrap_err();
            assert!(
                matches!(e, S3Error::TreeNodeCorrupt { .. }),
                "{value:?}: {e}"
            );
            assert!(e.to_string().contains("bucket tree node"), "{e}");
        }
    }
}

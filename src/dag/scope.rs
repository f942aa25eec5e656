//! Which blocks a trustless gateway response carries (the IPFS trustless
//! gateway spec's `dag-scope` and `entity-bytes`), in the order a client can
//! verify them: first the blocks that prove the path from the root CID to
//! its last element (directories, and the HAMT shard nodes a lookup crosses),
//! then the last element's blocks:
//!
//! - `block`: its own block only;
//! - `entity`: a file's whole DAG (or only the blocks covering
//!   `entity-bytes`), a directory's block with every HAMT shard node of it
//!   (enough to list it), otherwise the block alone;
//! - `all`: every block it reaches.
//!
//! Depth-first, link order, each block once (`order=dfs; dups=n`); identity
//! CIDs are never emitted (their data is inline in the parent).

use super::reader::{self, Node};
use super::{BlockSource, DagError};
use crate::block::{Block, Cid, Multihash, IDENTITY};
use std::collections::HashSet;
use std::sync::Mutex;

/// `dag-scope`: how much of the last path element a response carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DagScope {
    /// Its own block only.
    Block,
    /// What it takes to read it: a file's DAG, a directory's shards.
    Entity,
    /// Every block it reaches.
    All,
}

/// A `dag-scope` or `entity-bytes` parameter that does not parse.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ScopeParamError {
    /// `dag-scope` other than `block`, `entity` or `all`.
    #[error("dag-scope {input:?}: expected block, entity or all")]
    DagScope {
        /// The parameter as given.
        input: String,
    },
    /// `entity-bytes` other than `from:to`.
    #[error("entity-bytes {input:?}: expected from:to (integers, or * for the end)")]
    EntityBytes {
        /// The parameter as given.
        input: String,
    },
}

impl std::str::FromStr for DagScope {
    type Err = ScopeParamError;
    fn from_str(s: &str) -> Result<Self, ScopeParamError> {
        match s {
            "block" => Ok(DagScope::Block),
            "entity" => Ok(DagScope::Entity),
            "all" => Ok(DagScope::All),
            other => Err(ScopeParamError::DagScope {
                input: other.to_string(),
            }),
        }
    }
}

/// `entity-bytes=from:to`: inclusive offsets; negative ones count from the
/// end of the entity; `to = None` is `*` (the end).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EntityBytes {
    /// First byte (negative: from the end).
    pub from: i64,
    /// Last byte, inclusive (negative: from the end; `None`: the end).
    pub to: Option<i64>,
}

impl std::str::FromStr for EntityBytes {
    type Err = ScopeParamError;
    fn from_str(s: &str) -> Result<Self, ScopeParamError> {
        let bad = || ScopeParamError::EntityBytes {
            input: s.to_string(),
        };
        let (from, to) = s.split_once(':').ok_or_else(bad)?;
        let from: i64 = from.parse().map_err(|_| bad())?;
        let to = match to {
            "*" => None,
            t => Some(t.parse::<i64>().map_err(|_| bad())?),
        };
        Ok(EntityBytes { from, to })
    }
}

impl EntityBytes {
    /// The inclusive byte span `[first, last]` within a `size`-byte entity,
    /// or `None` when it is empty or falls outside.
    pub fn resolve(&self, size: u64) -> Option<(u64, u64)> {
        let size = size as i64;
        let abs = |v: i64| if v < 0 { size + v } else { v };
        let first = abs(self.from).max(0);
        let last = self.to.map_or(size - 1, abs).min(size - 1);
        (size > 0 && first <= last && first < size).then_some((first as u64, last as u64))
    }
}

/// A source that remembers the blocks read through it, in order.
struct Recording<'a> {
    inner: &'a dyn BlockSource,
    read: Mutex<Vec<Block>>,
}

impl BlockSource for Recording<'_> {
    fn block(&self, cid: &Cid) -> Result<Block, DagError> {
        let b = self.inner.block(cid)?;
        self.read
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(b.clone());
        Ok(b)
    }
}

struct Emitter<'e> {
    seen: HashSet<Multihash>,
    emit: &'e mut dyn FnMut(Block) -> Result<(), DagError>,
}

impl Emitter<'_> {
    fn send(&mut self, block: Block) -> Result<(), DagError> {
        if block.cid().hash().code() == IDENTITY || !self.seen.insert(*block.cid().hash()) {
            return Ok(());
        }
        (self.emit)(block)
    }

    /// Runs `f` on a view of `source` that records the blocks read through
    /// it, then sends those blocks in the order they were read.
    fn send_what_is_read<T>(
        &mut self,
        source: &dyn BlockSource,
        f: impl FnOnce(&dyn BlockSource) -> Result<T, DagError>,
    ) -> Result<T, DagError> {
        let rec = Recording {
            inner: source,
            read: Mutex::new(Vec::new()),
        };
        let value = f(&rec)?;
        for b in rec.read.into_inner().unwrap_or_else(|e| e.into_inner()) {
            self.send(b)?;
        }
        Ok(value)
    }
}

/// Resolves `path` (names) under `root`, calling `emit` with the blocks
/// that prove each step; returns the last element's CID and the CIDs of
/// every step (`X-Ipfs-Roots`), root first.
pub fn resolve_proving(
    source: &dyn BlockSource,
    root: Cid,
    path: &[String],
    emit: &mut dyn FnMut(Block) -> Result<(), DagError>,
) -> Result<(Cid, Vec<Cid>), DagError> {
    let mut out = Emitter {
        seen: HashSet::new(),
        emit,
    };
    resolve_into(source, root, &[], path, &mut out)
}

/// Follows `path` from `root`, emitting the block of every step and, in a
/// HAMT-sharded directory, the shard nodes the lookup crosses; returns the
/// CID the path names and every step's. `known` is what a resolution
/// already found (`dag::reader::ResolveCache`'s steps: the root, then the
/// CID of each name; empty when none): a plain directory's next step is
/// taken from it rather than searched for. A sharded one is looked up all
/// the same, since the shards on the way go into the response.
fn resolve_into(
    source: &dyn BlockSource,
    root: Cid,
    known: &[Cid],
    path: &[String],
    out: &mut Emitter<'_>,
) -> Result<(Cid, Vec<Cid>), DagError> {
    let known = if known.first() == Some(&root) && known.len() == path.len() + 1 {
        known
    } else {
        &[]
    };
    let mut cid = root;
    let mut roots = vec![root];
    for (i, name) in path.iter().enumerate() {
        let block = source.block(&cid)?;
        out.send(block.clone())?;
        let node = Node::decode(&block)?;
        cid = match (known.get(i + 1), &node) {
            (Some(&next), Node::Directory { .. }) => next,
            _ => out
                .send_what_is_read(source, |rec| reader::lookup(rec, cid, node, name))?
                .ok_or_else(|| reader::no_such_path(cid, name))?,
        };
        roots.push(cid);
    }
    Ok((cid, roots))
}

/// Emits every block a trustless CAR response for `root/path` with `scope`
/// (and `bytes`, which implies `entity`) carries, in order, each once.
pub fn scoped_blocks(
    source: &dyn BlockSource,
    root: Cid,
    path: &[String],
    scope: DagScope,
    bytes: Option<EntityBytes>,
    emit: &mut dyn FnMut(Block) -> Result<(), DagError>,
) -> Result<(), DagError> {
    scoped_blocks_resolved(source, &[root], path, scope, bytes, emit)
}

/// [`scoped_blocks`] of a path already resolved: `steps` holds the root
/// and the CID of each name of `path` (`ResolvedPath::roots`, e.g. from
/// the node's `ResolveCache`), so plain directories on the way are not
/// searched again. Steps that do not fit the path (another root, another
/// length) are not used.
pub fn scoped_blocks_resolved(
    source: &dyn BlockSource,
    steps: &[Cid],
    path: &[String],
    scope: DagScope,
    bytes: Option<EntityBytes>,
    emit: &mut dyn FnMut(Block) -> Result<(), DagError>,
) -> Result<(), DagError> {
    let Some(&root) = steps.first() else {
        return Ok(());
    };
    let mut out = Emitter {
        seen: HashSet::new(),
        emit,
    };
    let (cid, _) = resolve_into(source, root, steps, path, &mut out)?;
    let block = source.block(&cid)?;
    out.send(block.clone())?;
    let scope = if bytes.is_some() {
        DagScope::Entity
    } else {
        scope
    };
    match scope {
        DagScope::Block => Ok(()),
        DagScope::All => {
            let mut visit = |b: &Block| out.send(b.clone());
            let mut seen = HashSet::new();
            super::walk::walk(source, &cid, &mut seen, &mut visit)
        }
        DagScope::Entity => match Node::decode(&block)? {
            node @ (Node::File { .. } | Node::Raw(_)) => {
                let size = node.file_size();
                let span = match bytes {
                    None => (size > 0).then(|| (0, size - 1)),
                    Some(b) => b.resolve(size),
                };
                match span {
                    Some((first, last)) => {
                        file_blocks(source, &cid, node, first, last, &mut out, 0)
                    }
                    // Empty or outside the entity: the block alone lets the
                    // client see why.
                    None => Ok(()),
                }
            }
            node @ Node::HamtShard { .. } => out
                .send_what_is_read(source, |rec| reader::directory_entries(rec, &cid, node))
                .map(drop),
            Node::Directory { .. } | Node::Symlink { .. } => Ok(()),
        },
    }
}

/// The blocks under a file node that hold bytes `[first, last]` of it
/// (the node itself already emitted), depth-first in link order.
fn file_blocks(
    source: &dyn BlockSource,
    cid: &Cid,
    node: Node,
    first: u64,
    last: u64,
    out: &mut Emitter<'_>,
    depth: usize,
) -> Result<(), DagError> {
    if depth > reader::MAX_DEPTH {
        return Err(DagError::Malformed {
            cid: *cid,
            reason: format!("file DAG deeper than {}", reader::MAX_DEPTH),
        });
    }
    let Node::File {
        data,
        links,
        blocksizes,
        ..
    } = node
    else {
        return Ok(());
    };
    let mut pos = data.len() as u64;
    for (link, size) in links.into_iter().zip(blocksizes) {
        let end = pos.saturating_add(size);
        if end > first && pos <= last {
            let child = source.block(&link.cid)?;
            out.send(child.clone())?;
            let node = Node::decode(&child)?;
            let (f, l) = (first.max(pos) - pos, last.min(end - 1) - pos);
            file_blocks(source, &link.cid, node, f, l, out, depth + 1)?;
        }
        pos = end;
        if pos > last {
            break;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dag::builder::{build_file, ImportOptions};
    use crate::dag::chunker::ChunkerSpec;
    use crate::store::{MemoryStore, Store};

    fn file(store: &MemoryStore, len: usize) -> Cid {
        let data: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
        let opts = ImportOptions {
            chunker: ChunkerSpec::Fixed { size: 100 },
            max_links: 4,
            ..ImportOptions::default()
        };
        build_file(&data[..], &opts, &mut |b| {
            store.put(b)?;
            Ok(())
        })
        .unwrap()
        .cid
    }

    fn collect(store: &MemoryStore, root: Cid, scope: DagScope, bytes: Option<&str>) -> Vec<Cid> {
        let mut got = Vec::new();
        scoped_blocks(
            store,
            root,
            &[],
            scope,
            bytes.map(|b| b.parse().unwrap()),
            &mut |b| {
                got.push(*b.cid());
                Ok(())
            },
        )
        .unwrap();
        got
    }

    #[test]
    fn a_resolved_path_gives_the_same_car_blocks() {
        use crate::block::{CidFormat, HashAlg, RAW};
        use crate::dag::builder::{directory_block, Built};
        let format = CidFormat {
            version: 1,
            hash: HashAlg::Sha2_256,
        };
        let store = MemoryStore::new();
        let put = |text: String| {
            let b = Block::new(format, RAW, text.into_bytes());
            let built = Built {
                cid: *b.cid(),
                file_size: b.data().len() as u64,
                tsize: b.data().len() as u64,
            };
            store.put(b).unwrap();
            built
        };
        let shard: Vec<(String, Built)> = (0..300)
            .map(|i| (format!("f-{i:03}"), put(format!("file {i}"))))
            .collect();
        let a = put("a".into());
        let big = crate::dag::hamt::build_sharded(format, shard, &mut |b| {
            store.put(b)?;
            Ok(())
        })
        .unwrap();
        let (plain, plain_built) = directory_block(format, vec![("a.txt".into(), a)]);
        store.put(plain).unwrap();
        let (root, root_built) = directory_block(
            format,
            vec![("plain".into(), plain_built), ("big".into(), big)],
        );
        store.put(root).unwrap();
        let root = root_built.cid;
        let cache = crate::dag::reader::ResolveCache::new(1 << 20, 0);
        for path in [vec!["plain", "a.txt"], vec!["big", "f-217"], vec!["plain"]] {
            let path: Vec<String> = path.into_iter().map(String::from).collect();
            let steps = cache.resolve(&store, root, &path).unwrap().roots;
            let mut fresh = Vec::new();
            let mut again = Vec::new();
            for (steps, got) in [(&[root][..], &mut fresh), (&steps[..], &mut again)] {
                scoped_blocks_resolved(&store, steps, &path, DagScope::All, None, &mut |b| {
                    got.push(*b.cid());
                    Ok(())
                })
                .unwrap();
            }
            assert_eq!(fresh, again, "{path:?}");
            assert_eq!(fresh.first(), Some(&root));
            let last = steps.last().expect("steps");
            assert!(fresh.contains(last), "{path:?}");
        }
        // The shards a lookup crosses are in the CAR (more than the steps).
        let path = vec!["big".to_string(), "f-217".to_string()];
        let mut got = 0;
        scoped_blocks(&store, root, &path, DagScope::Block, None, &mut |_| {
            got += 1;
            Ok(())
        })
        .unwrap();
        assert!(got > 3, "{got} blocks");
    }

    #[test]
    fn scopes_pick_the_blocks_they_promise() {
        let store = MemoryStore::new();
        // 1,000 bytes in 100-byte leaves, 4 links per node: 10 leaves.
        let root = file(&store, 1000);
        let all = collect(&store, root, DagScope::All, None);
        let entity = collect(&store, root, DagScope::Entity, None);
        assert_eq!(all, entity, "a file's entity is all of it");
        assert_eq!(collect(&store, root, DagScope::Block, None), vec![root]);
        let leaves = all
            .iter()
            .filter(|c| c.codec() == crate::block::RAW)
            .count();
        assert_eq!(leaves, 10);
        // The first byte: root, the first interior node, the first leaf.
        let first = collect(&store, root, DagScope::All, Some("0:0"));
        assert_eq!(first.len(), 3, "{first:?}");
        // The last 150 bytes cover the last two leaves.
        let tail = collect(&store, root, DagScope::Block, Some("-150:*"));
        assert_eq!(
            tail.iter()
                .filter(|c| c.codec() == crate::block::RAW)
                .count(),
            2
        );
        // Outside the file: the root alone.
        assert_eq!(
            collect(&store, root, DagScope::All, Some("5000:6000")),
            vec![root]
        );
        assert_eq!(
            "7:-1".parse::<EntityBytes>().unwrap().resolve(10),
            Some((7, 9))
        );
        assert!("x:1".parse::<EntityBytes>().is_err());
    }
}

//! Walking every block a root reaches: pin checks, GC marking, CAR export.
//!
//! Links are read from dag-pb nodes of any UnixFS type and from DAG-CBOR
//! and DAG-JSON blocks (raw blocks have none). The walk is depth-first in
//! link order — the order CAR files list blocks in — and visits each
//! distinct block once.

use super::pb::PbNode;
use super::{BlockSource, DagError};
use crate::block::{Block, Cid, Multihash, DAG_CBOR, DAG_JSON, DAG_PB, RAW};
use std::collections::HashSet;

/// The CIDs a block links to.
pub fn links_of(block: &Block) -> Result<Vec<Cid>, DagError> {
    match block.cid().codec() {
        RAW => Ok(vec![]),
        DAG_PB => PbNode::decode(block.data())
            .map(|n| n.links.into_iter().map(|l| l.cid).collect())
            .map_err(|source| DagError::Undecodable {
                cid: *block.cid(),
                source,
            }),
        DAG_CBOR | DAG_JSON => super::ipld::decode(block.cid().codec(), block.data())
            .map(|v| super::ipld::links(&v))
            .map_err(|source| DagError::Codec {
                cid: *block.cid(),
                source,
            }),
        other => Err(DagError::Malformed {
            cid: *block.cid(),
            reason: format!("cannot follow links of codec 0x{other:x}"),
        }),
    }
}

/// Visits every distinct block reachable from `root` depth-first, calling
/// `visit` with each (parents before children). `seen` is shared across
/// calls so several roots can be walked without revisiting blocks.
pub fn walk(
    source: &dyn BlockSource,
    root: &Cid,
    seen: &mut HashSet<Multihash>,
    visit: &mut dyn FnMut(&Block) -> Result<(), DagError>,
) -> Result<(), DagError> {
    traverse(
        source,
        root,
        seen,
        true,
        usize::MAX,
        &mut |_, block| match block {
            Some(b) => visit(b),
            None => Ok(()),
        },
    )
}

/// Like [`walk`], for callers that need only the CIDs: blocks that cannot
/// link anywhere (raw leaves, identity CIDs) are checked to be present
/// without being read, so a file's data is not read and re-hashed just to
/// list, count or mark it. A missing block is [`DagError::NotFound`].
pub fn reach(
    source: &dyn BlockSource,
    root: &Cid,
    seen: &mut HashSet<Multihash>,
    visit: &mut dyn FnMut(&Cid) -> Result<(), DagError>,
) -> Result<(), DagError> {
    traverse(source, root, seen, false, usize::MAX, &mut |cid, _| {
        visit(cid)
    })
}

/// The first `max` distinct CIDs [`reach`] would visit from `root`, in its
/// order, and no more: the walk stops there, so its cost does not grow
/// with the DAG (a sample of a large DAG's top).
pub fn reach_first(source: &dyn BlockSource, root: &Cid, max: usize) -> Result<Vec<Cid>, DagError> {
    let mut found = Vec::new();
    traverse(
        source,
        root,
        &mut HashSet::new(),
        false,
        max,
        &mut |cid, _| {
            found.push(*cid);
            Ok(())
        },
    )?;
    Ok(found)
}

/// What [`traverse`] calls for each block: its CID, and the block when it
/// was read.
type Visit<'a> = dyn FnMut(&Cid, Option<&Block>) -> Result<(), DagError> + 'a;

/// The depth-first traversal behind [`walk`] and [`reach`]: raw blocks are
/// read (and handed to `visit`) only when `read_leaves`; it ends after
/// `max` blocks were visited.
fn traverse(
    source: &dyn BlockSource,
    root: &Cid,
    seen: &mut HashSet<Multihash>,
    read_leaves: bool,
    max: usize,
    visit: &mut Visit<'_>,
) -> Result<(), DagError> {
    // Explicit stack: a hostile DAG cannot overflow the thread's stack.
    let mut stack = vec![*root];
    let mut visited = 0usize;
    while let Some(cid) = stack.pop() {
        if visited >= max {
            break;
        }
        if !seen.insert(*cid.hash()) {
            continue;
        }
        visited += 1;
        if !read_leaves && cid.codec() == RAW {
            if !source.has_block(&cid)? {
                return Err(DagError::NotFound { cid });
            }
            visit(&cid, None)?;
            continue;
        }
        let block = source.block(&cid)?;
        visit(&cid, Some(&block))?;
        stack.extend(links_of(&block)?.into_iter().rev());
    }
    Ok(())
}

/// The multihashes of every block reachable from `roots` (recursive) and
/// `direct` (the block alone): the live set GC keeps.
pub fn live_set(
    source: &dyn BlockSource,
    recursive: &[Cid],
    direct: &[Cid],
) -> Result<HashSet<Multihash>, DagError> {
    let mut seen = HashSet::new();
    for root in recursive {
        reach(source, root, &mut seen, &mut |_| Ok(()))?;
    }
    for cid in direct {
        seen.insert(*cid.hash());
    }
    Ok(seen)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dag::builder::{build_file, ImportOptions};
    use crate::dag::chunker::ChunkerSpec;
    use crate::store::{MemoryStore, Store};

    /// A 200-byte file in 10-byte leaves, 3 links a node, stored in
    /// `store`: its root, and how many blocks it has.
    fn stored_file(store: &MemoryStore) -> (Cid, usize) {
        let opts = ImportOptions {
            chunker: ChunkerSpec::Fixed { size: 10 },
            max_links: 3,
            ..ImportOptions::default()
        };
        let data: Vec<u8> = (0..200u8).collect();
        let mut n = 0;
        let root = build_file(&data[..], &opts, &mut |b| {
            n += 1;
            store.put(b)?;
            Ok(())
        })
        .unwrap();
        (root.cid, n)
    }

    /// The CIDs [`walk`] visits from `root`, in order.
    fn walked(store: &MemoryStore, root: &Cid) -> Vec<Cid> {
        let mut order = vec![];
        walk(store, root, &mut HashSet::new(), &mut |b| {
            order.push(*b.cid());
            Ok(())
        })
        .unwrap();
        order
    }

    #[test]
    fn walk_visits_every_block_once_parents_first() {
        let store = MemoryStore::new();
        let (root, n) = stored_file(&store);
        let order = walked(&store, &root);
        assert_eq!(order.len(), n);
        assert_eq!(order[0], root);
        // A missing block is an error naming it.
        let live = live_set(&store, &[root], &[]).unwrap();
        assert_eq!(live.len(), n);
    }

    #[test]
    fn reach_first_stops_after_max_blocks_in_reach_order() {
        let store = MemoryStore::new();
        let (root, n) = stored_file(&store);
        let all = walked(&store, &root);
        assert_eq!(reach_first(&store, &root, 7).unwrap(), all[..7]);
        assert_eq!(reach_first(&store, &root, n + 5).unwrap(), all);
        assert!(reach_first(&store, &root, 0).unwrap().is_empty());
    }

    #[test]
    fn reach_lists_what_walk_visits_without_reading_raw_leaves() {
        let store = MemoryStore::new();
        let (root, _) = stored_file(&store);
        let walked = walked(&store, &root);
        let mut reached = vec![];
        reach(&store, &root, &mut HashSet::new(), &mut |c| {
            reached.push(*c);
            Ok(())
        })
        .unwrap();
        assert_eq!(reached, walked);
        let leaf = *walked.iter().find(|c| c.codec() == RAW).unwrap();
        // A damaged leaf is present: reach does not read it (walk does).
        store.corrupt_for_test(&leaf, bytes::Bytes::from_static(b"rot"));
        assert!(reach(&store, &root, &mut HashSet::new(), &mut |_| Ok(())).is_ok());
        assert!(walk(&store, &root, &mut HashSet::new(), &mut |_| Ok(())).is_err());
        // A missing one is named.
        store.remove(leaf.hash()).unwrap();
        match reach(&store, &root, &mut HashSet::new(), &mut |_| Ok(())) {
            Err(DagError::NotFound { cid }) => assert_eq!(cid, leaf),
            other => panic!("expected NotFound, got {other:?}"),
        }
    }
}

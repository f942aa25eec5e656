//! A file read from blocks already in memory: the pieces of its bytes, as
//! shared slices of the blocks that hold them, so that a small or hot file
//! is answered with no store read, no thread hand-off and no copy.

use super::Node;
use crate::block::{Block, Cid};
use bytes::Bytes;

/// Most blocks under a file that readers answer from the memory tier
/// alone (64 of the default 256 KiB leaves: 16 MiB); larger files take
/// the usual reader.
pub const MAX_HELD_BLOCKS: usize = 64;

/// The deepest file tree walked here; deeper trees take the usual reader.
const MAX_DEPTH: usize = 16;

/// The file bytes under `node`, in order, as the blocks beneath it hold
/// them, when `held` gives every one of those blocks (at most
/// `max_blocks`, the root not counted) and every size they claim agrees.
/// `None` otherwise: a block not held, a node that is not a file, sizes
/// that disagree or a tree too deep; the usual reader then reads the file
/// and reports what is wrong.
pub fn held_pieces(
    node: &Node,
    held: &dyn Fn(&Cid) -> Option<Block>,
    max_blocks: usize,
) -> Option<Vec<Bytes>> {
    let mut walk = Walk {
        held,
        budget: max_blocks,
        pieces: Vec::new(),
    };
    let total = walk.node(node, 0)?;
    (total == node.file_size()).then_some(walk.pieces)
}

struct Walk<'h> {
    held: &'h dyn Fn(&Cid) -> Option<Block>,
    budget: usize,
    pieces: Vec<Bytes>,
}

impl Walk<'_> {
    /// Appends `node`'s bytes; returns how many.
    fn node(&mut self, node: &Node, depth: usize) -> Option<u64> {
        match node {
            Node::Raw(data) => Some(self.piece(data)),
            Node::File {
                data,
                links,
                blocksizes,
                ..
            } => {
                if depth >= MAX_DEPTH || links.len() != blocksizes.len() {
                    return None;
                }
                let mut total = self.piece(data);
                for (link, size) in links.iter().zip(blocksizes) {
                    self.budget = self.budget.checked_sub(1)?;
                    let child = Node::decode(&(self.held)(&link.cid)?).ok()?;
                    if self.node(&child, depth + 1)? != *size {
                        return None;
                    }
                    total = total.checked_add(*size)?;
                }
                Some(total)
            }
            _ => None,
        }
    }

    fn piece(&mut self, data: &Bytes) -> u64 {
        if !data.is_empty() {
            self.pieces.push(data.clone());
        }
        data.len() as u64
    }
}

/// The part `[offset, offset + len)` of the bytes `pieces` hold in order,
/// as slices of them (no copy).
pub fn slice_pieces(pieces: &[Bytes], offset: u64, len: u64) -> Vec<Bytes> {
    let mut out = Vec::new();
    let (mut skip, mut take) = (offset, len);
    for p in pieces {
        if take == 0 {
            break;
        }
        let plen = p.len() as u64;
        if skip >= plen {
            skip -= plen;
            continue;
        }
        let end = plen.min(skip + take);
        out.push(p.slice(skip as usize..end as usize));
        take -= end - skip;
        skip = 0;
    }
    out
}

/// The first `n` bytes of what `pieces` hold (fewer if they hold less).
pub fn first_bytes(pieces: &[Bytes], n: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(n);
    for p in pieces {
        let want = n - out.len();
        if want == 0 {
            break;
        }
        out.extend_from_slice(&p[..p.len().min(want)]);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dag::builder::{build_file, ImportOptions};
    use crate::dag::chunker::ChunkerSpec;
    use std::collections::HashMap;

    fn random(len: usize, seed: u64) -> Vec<u8> {
        let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect()
    }

    /// A file of `len` bytes in `chunk`-byte leaves: its root and blocks.
    fn file(len: usize, chunk: usize) -> (Vec<u8>, Cid, HashMap<Cid, Block>) {
        let data = random(len, len as u64);
        let mut blocks = HashMap::new();
        let opts = ImportOptions {
            chunker: ChunkerSpec::Fixed { size: chunk },
            max_links: 4,
            ..ImportOptions::default()
        };
        let root = build_file(&data[..], &opts, &mut |b: Block| {
            blocks.insert(*b.cid(), b);
            Ok(())
        })
        .expect("build")
        .cid;
        (data, root, blocks)
    }

    fn joined(pieces: &[Bytes]) -> Vec<u8> {
        pieces.iter().flat_map(|p| p.iter().copied()).collect()
    }

    #[test]
    fn a_file_whose_blocks_are_all_held_reads_whole_and_in_ranges() {
        // Two levels: 40 leaves of 1000 bytes under a width-4 tree.
        let (data, root, blocks) = file(39_500, 1000);
        let node = Node::decode(&blocks[&root]).expect("root");
        let held = |c: &Cid| blocks.get(c).cloned();
        let pieces = held_pieces(&node, &held, 1000).expect("all held");
        assert_eq!(joined(&pieces), data);
        for (off, len) in [
            (0, 1),
            (999, 2),
            (1000, 1000),
            (12_345, 20_000),
            (39_499, 1),
        ] {
            let part = slice_pieces(&pieces, off, len);
            assert_eq!(joined(&part), &data[off as usize..(off + len) as usize]);
        }
        assert_eq!(first_bytes(&pieces, 512), &data[..512]);
        assert_eq!(first_bytes(&pieces, 1 << 20), data);
    }

    #[test]
    fn a_missing_block_a_small_budget_or_a_wrong_size_gives_none() {
        let (_, root, blocks) = file(10_000, 1000);
        let node = Node::decode(&blocks[&root]).expect("root");
        let leaf = blocks.keys().copied().find(|c| *c != root).expect("leaf");
        let missing = |c: &Cid| (*c != leaf).then(|| blocks[c].clone());
        assert!(held_pieces(&node, &missing, 1000).is_none());
        let all = |c: &Cid| blocks.get(c).cloned();
        assert!(held_pieces(&node, &all, 3).is_none());
        // A root claiming other sizes than its leaves hold.
        if let Node::File {
            data,
            links,
            mut blocksizes,
            filesize,
        } = node
        {
            blocksizes[0] += 1;
            let lying = Node::File {
                data,
                links,
                blocksizes,
                filesize,
            };
            assert!(held_pieces(&lying, &all, 1000).is_none());
        } else {
            panic!("a file of many leaves has a File root");
        }
    }
}

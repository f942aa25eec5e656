//! HAMT-sharded UnixFS directories, as Kubo builds large directories.
//!
//! Kubo turns a directory into a HAMT when its estimated size is strictly
//! greater than 256 KiB. The default estimate ("links") sums
//! `len(name) + len(cid bytes)` over the entries; the `unixfs-v1-2025`
//! profile ("block") uses the encoded size of the plain directory node.
//!
//! Wire format (boxo `ipld/unixfs/hamt`): each shard node is dag-pb with
//! UnixFS `Type = HAMTShard`, `Data` = the occupancy bitfield as a minimal
//! big-endian integer (bit i set ⇔ slot i used), `hashType = 0x22`
//! (murmur3) and `fanout = 256`. Links come in slot order; an entry's link
//! is named by its slot as two upper-case hex digits followed by the entry
//! name, a child shard's link by the two digits alone. The slot at depth d
//! is byte d of the first 64 bits of murmur3-x64-128 of the name, big-endian.
//! Two names meeting in one slot move into a child shard one level down.

use super::builder::{unixfs_node, Built};
use super::pb::{DataType, PbLink, UnixFs};
use super::reader::{load, Node};
use super::{BlockSource, DagError};
use crate::block::{Block, Cid, CidFormat};
use std::collections::BTreeMap;

/// Kubo's `HAMTShardingSize`.
pub const DEFAULT_SHARD_THRESHOLD_BYTES: u64 = 256 * 1024;
/// Slots per shard (Kubo's default fanout).
pub const FANOUT: u64 = 256;
/// UnixFS `hashType` of murmur3-x64-64.
pub const HASH_MURMUR3: u64 = 0x22;
/// Hex digits in a slot prefix for a fanout of 256.
const PAD: usize = 2;
/// One byte of hash per level, 8 bytes of hash.
const MAX_LEVELS: usize = 8;

/// How a directory's size is estimated for the sharding decision.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SizeEstimate {
    /// `len(name) + len(cid)` per entry (Kubo's default).
    #[default]
    Links,
    /// The encoded plain directory block (`unixfs-v1-2025`).
    Block,
}

/// When directories become HAMTs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sharding {
    /// Shard when the estimate is strictly greater than this.
    pub threshold_bytes: u64,
    /// How the directory's size is estimated.
    pub estimate: SizeEstimate,
}

impl Default for Sharding {
    fn default() -> Self {
        Sharding {
            threshold_bytes: DEFAULT_SHARD_THRESHOLD_BYTES,
            estimate: SizeEstimate::Links,
        }
    }
}

impl Sharding {
    /// Whether a directory with these entries (and this plain encoding
    /// size, for the block estimate) must be a HAMT.
    pub fn should_shard(&self, entries: &[(String, Built)], plain_block_len: usize) -> bool {
        let estimate = match self.estimate {
            SizeEstimate::Links => entries
                .iter()
                .map(|(n, b)| (n.len() + b.cid.encoded_len()) as u64)
                .sum(),
            SizeEstimate::Block => plain_block_len as u64,
        };
        estimate > self.threshold_bytes
    }
}

fn fmix64(mut k: u64) -> u64 {
    k ^= k >> 33;
    k = k.wrapping_mul(0xff51_afd7_ed55_8ccd);
    k ^= k >> 33;
    k = k.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    k ^ (k >> 33)
}

/// MurmurHash3 x64 128-bit with seed 0, as (h1, h2). Written here (pinned
/// by the reference vector and by Kubo's HAMT CIDs) because the `murmur3`
/// crate hashes through `io::Read` into an `io::Result<u128>`.
pub fn murmur3_x64_128(data: &[u8]) -> (u64, u64) {
    const C1: u64 = 0x87c3_7b91_1142_53d5;
    const C2: u64 = 0x4cf5_ad43_2745_937f;
    // Each 8-byte lane is mixed before it enters h1 (`mix1`) or h2 (`mix2`).
    let mix1 = |k: u64| k.wrapping_mul(C1).rotate_left(31).wrapping_mul(C2);
    let mix2 = |k: u64| k.wrapping_mul(C2).rotate_left(33).wrapping_mul(C1);
    let round = |h: u64, rot: u32, other: u64, add: u64| {
        h.rotate_left(rot)
            .wrapping_add(other)
            .wrapping_mul(5)
            .wrapping_add(add)
    };
    let lane = |b: &[u8]| u64::from_le_bytes(b.try_into().unwrap_or([0; 8]));
    let (mut h1, mut h2) = (0u64, 0u64);
    let mut blocks = data.chunks_exact(16);
    for block in &mut blocks {
        h1 ^= mix1(lane(&block[..8]));
        h1 = round(h1, 27, h2, 0x52dc_e729);
        h2 ^= mix2(lane(&block[8..]));
        h2 = round(h2, 31, h1, 0x3849_5ab5);
    }
    let tail = blocks.remainder();
    let mut padded = [0u8; 16];
    padded[..tail.len()].copy_from_slice(tail);
    if tail.len() > 8 {
        h2 ^= mix2(lane(&padded[8..]));
    }
    if !tail.is_empty() {
        h1 ^= mix1(lane(&padded[..8]));
    }
    let len = data.len() as u64;
    h1 ^= len;
    h2 ^= len;
    h1 = h1.wrapping_add(h2);
    h2 = h2.wrapping_add(h1);
    h1 = fmix64(h1);
    h2 = fmix64(h2);
    h1 = h1.wrapping_add(h2);
    h2 = h2.wrapping_add(h1);
    (h1, h2)
}

/// The 8 hash bytes whose byte `d` picks the slot at depth `d`.
fn name_hash(name: &str) -> [u8; 8] {
    murmur3_x64_128(name.as_bytes()).0.to_be_bytes()
}

enum Slot {
    Entry(String, Built),
    Shard(Box<Shard>),
}

#[derive(Default)]
struct Shard {
    slots: BTreeMap<u8, Slot>,
}

impl Shard {
    fn insert(
        &mut self,
        name: String,
        built: Built,
        hash: [u8; 8],
        depth: usize,
    ) -> Result<(), DagError> {
        if depth >= MAX_LEVELS {
            return Err(DagError::HamtCollision { name });
        }
        let idx = hash[depth];
        match self.slots.remove(&idx) {
            None => {
                self.slots.insert(idx, Slot::Entry(name, built));
            }
            Some(Slot::Shard(mut child)) => {
                child.insert(name, built, hash, depth + 1)?;
                self.slots.insert(idx, Slot::Shard(child));
            }
            Some(Slot::Entry(other, other_built)) => {
                let mut child = Box::<Shard>::default();
                let other_hash = name_hash(&other);
                child.insert(other, other_built, other_hash, depth + 1)?;
                child.insert(name, built, hash, depth + 1)?;
                self.slots.insert(idx, Slot::Shard(child));
            }
        }
        Ok(())
    }

    /// Encodes this shard (children first, through `sink`).
    fn build(
        self,
        format: CidFormat,
        sink: &mut dyn FnMut(Block) -> Result<(), DagError>,
    ) -> Result<Built, DagError> {
        let mut bitfield = [0u8; (FANOUT / 8) as usize];
        let mut links = Vec::with_capacity(self.slots.len());
        for (idx, slot) in self.slots {
            bitfield[bitfield.len() - 1 - (idx as usize / 8)] |= 1 << (idx % 8);
            match slot {
                Slot::Entry(name, built) => links.push(PbLink {
                    cid: built.cid,
                    name: format!("{idx:02X}{name}"),
                    tsize: built.tsize,
                }),
                Slot::Shard(child) => {
                    let built = child.build(format, sink)?;
                    links.push(PbLink {
                        cid: built.cid,
                        name: format!("{idx:02X}"),
                        tsize: built.tsize,
                    });
                }
            }
        }
        let first = bitfield
            .iter()
            .position(|&b| b != 0)
            .unwrap_or(bitfield.len());
        let mut u = UnixFs::new(DataType::HamtShard);
        u.data = Some(bitfield[first..].to_vec());
        u.hash_type = Some(HASH_MURMUR3);
        u.fanout = Some(FANOUT);
        let (block, built) = unixfs_node(format, links, &u, 0);
        sink(block)?;
        Ok(built)
    }
}

/// Builds a sharded directory from its entries; blocks go to `sink`
/// children first, the root last.
pub fn build_sharded(
    format: CidFormat,
    entries: Vec<(String, Built)>,
    sink: &mut dyn FnMut(Block) -> Result<(), DagError>,
) -> Result<Built, DagError> {
    let mut root = Shard::default();
    for (name, built) in entries {
        let hash = name_hash(&name);
        root.insert(name, built, hash, 0)?;
    }
    root.build(format, sink)
}

/// Builds a directory of `children`: one plain directory block, or a HAMT
/// when `sharding` says it is too large for one (as `add` decides); blocks
/// go to `sink`, the root last.
pub fn build_directory(
    format: CidFormat,
    sharding: Sharding,
    children: Vec<(String, Built)>,
    sink: &mut dyn FnMut(Block) -> Result<(), DagError>,
) -> Result<Built, DagError> {
    let (block, built) = super::builder::directory_block(format, children.clone());
    if sharding.should_shard(&children, block.data().len()) {
        build_sharded(format, children, sink)
    } else {
        sink(block)?;
        Ok(built)
    }
}

fn shard_links(cid: &Cid, node: Node) -> Result<Vec<PbLink>, DagError> {
    match node {
        Node::HamtShard { links } => Ok(links),
        other => Err(DagError::Malformed {
            cid: *cid,
            reason: format!("expected a HAMT shard, found a {}", other.kind()),
        }),
    }
}

/// Finds `name` in the sharded directory at `root`, reading only the
/// shards on its hash path.
pub fn lookup(
    source: &dyn BlockSource,
    root: &Cid,
    links: Vec<PbLink>,
    name: &str,
) -> Result<Option<Cid>, DagError> {
    let hash = name_hash(name);
    let mut links = links;
    let mut shard = *root;
    for &idx in hash.iter() {
        let prefix = format!("{idx:02X}");
        let Some(link) = links.iter().find(|l| l.name.starts_with(&prefix)) else {
            return Ok(None);
        };
        if link.name.len() == PAD {
            shard = link.cid;
            links = shard_links(&shard, load(source, &shard)?)?;
            continue;
        }
        return Ok((link.name[PAD..] == *name).then_some(link.cid));
    }
    Err(DagError::Malformed {
        cid: shard,
        reason: "HAMT deeper than its 64-bit hash".into(),
    })
}

/// Every entry of the sharded directory, in link order, as (name, link).
pub fn entries(
    source: &dyn BlockSource,
    root: &Cid,
    links: Vec<PbLink>,
) -> Result<Vec<PbLink>, DagError> {
    let mut out = Vec::new();
    let mut stack: Vec<(Cid, std::vec::IntoIter<PbLink>, usize)> =
        vec![(*root, links.into_iter(), 0)];
    while let Some((cid, mut iter, depth)) = stack.pop() {
        let Some(link) = iter.next() else {
            continue;
        };
        stack.push((cid, iter, depth));
        if link.name.len() < PAD || !link.name.is_char_boundary(PAD) {
            return Err(DagError::Malformed {
                cid,
                reason: format!("HAMT link name {:?} lacks its slot prefix", link.name),
            });
        }
        if link.name.len() == PAD {
            if depth + 1 >= MAX_LEVELS {
                return Err(DagError::Malformed {
                    cid,
                    reason: "HAMT deeper than its 64-bit hash".into(),
                });
            }
            let child = shard_links(&link.cid, load(source, &link.cid)?)?;
            stack.push((link.cid, child.into_iter(), depth + 1));
        } else {
            out.push(PbLink {
                cid: link.cid,
                name: link.name[PAD..].to_string(),
                tsize: link.tsize,
            });
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::block::{HashAlg, DAG_PB, RAW};
    use crate::store::{MemoryStore, Store};

    #[test]
    fn murmur3_reference_vectors() {
        assert_eq!(murmur3_x64_128(b""), (0, 0));
        let (h1, h2) = murmur3_x64_128(b"The quick brown fox jumps over the lazy dog");
        // The canonical digest prints h1 and h2 as little-endian bytes.
        let mut bytes = h1.to_le_bytes().to_vec();
        bytes.extend_from_slice(&h2.to_le_bytes());
        let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(hex, "6c1b07bc7bbc4be347939ac4a93c437a");
    }

    #[test]
    fn lookup_and_list_round_trip() {
        let store = MemoryStore::new();
        let format = CidFormat {
            version: 1,
            hash: HashAlg::Sha2_256,
        };
        let mut entries_in = vec![];
        for i in 0..3000 {
            let block = Block::new(format, RAW, format!("content {i}").into_bytes());
            entries_in.push((
                format!("file-{i:05}"),
                Built {
                    cid: *block.cid(),
                    file_size: block.data().len() as u64,
                    tsize: block.data().len() as u64,
                },
            ));
            store.put(block).unwrap();
        }
        let root = build_sharded(format, entries_in.clone(), &mut |b| {
            store.put(b)?;
            Ok(())
        })
        .unwrap();
        let links = shard_links(&root.cid, load(&store, &root.cid).unwrap()).unwrap();
        for (name, built) in entries_in.iter().step_by(97) {
            assert_eq!(
                lookup(&store, &root.cid, links.clone(), name).unwrap(),
                Some(built.cid)
            );
        }
        assert_eq!(
            lookup(&store, &root.cid, links.clone(), "absent").unwrap(),
            None
        );
        let mut listed: Vec<String> = entries(&store, &root.cid, links)
            .unwrap()
            .into_iter()
            .map(|l| l.name)
            .collect();
        listed.sort();
        let mut want: Vec<String> = entries_in.into_iter().map(|e| e.0).collect();
        want.sort();
        assert_eq!(listed, want);
    }

    #[test]
    fn links_estimate_decides_like_kubo() {
        let cid = CidFormat::default_for_tests();
        let entry = |n: usize| {
            (
                format!("{n:0>200}"),
                Built {
                    cid,
                    file_size: 0,
                    tsize: 0,
                },
            )
        };
        let per = 200 + cid.encoded_len();
        let fits = DEFAULT_SHARD_THRESHOLD_BYTES as usize / per;
        let s = Sharding::default();
        assert!(!s.should_shard(&(0..fits).map(entry).collect::<Vec<_>>(), 0));
        assert!(s.should_shard(&(0..fits + 1).map(entry).collect::<Vec<_>>(), 0));
    }

    impl CidFormat {
        fn default_for_tests() -> Cid {
            CidFormat {
                version: 0,
                hash: HashAlg::Sha2_256,
            }
            .cid(DAG_PB, b"x")
        }
    }
}

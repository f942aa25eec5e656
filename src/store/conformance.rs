//! One conformance suite, run against every [`Store`] implementation at the
//! sizes that hit each storage path: empty, one byte, a chunk, a 1 MiB
//! chunk, the 2 MiB block limit, and many small blocks across segments.
//! A store joins the suite with one `conformance!` line and a [`Damage`]
//! impl (how its medium goes bad).

use super::*;
use crate::block::{CidFormat, HashAlg, DAG_PB, MAX_BLOCK_BYTES, RAW};

pub(super) fn block(seed: u32, len: usize, codec: u64) -> Block {
    let mut x = seed.wrapping_mul(2_654_435_761) | 1;
    let data: Vec<u8> = (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect();
    Block::new(
        CidFormat {
            version: 1,
            hash: HashAlg::Blake3,
        },
        codec,
        data,
    )
}

/// Damages a stored block in place, as a failing medium would.
pub(super) trait Damage {
    /// Flips one bit of the stored bytes of the block `cid` names.
    fn flip_a_stored_bit(&self, cid: &Cid);
}

impl Damage for MemoryStore {
    fn flip_a_stored_bit(&self, cid: &Cid) {
        let mut data = self.read_raw(cid.hash()).unwrap().unwrap().to_vec();
        data[0] ^= 1;
        self.corrupt_for_test(cid, data.into());
    }
}

impl Damage for FaultyStore {
    fn flip_a_stored_bit(&self, cid: &Cid) {
        self.inject(*cid.hash(), StorageFault::FlippedBit);
    }
}

impl<S: Damage + Store> Damage for HotStore<S> {
    fn flip_a_stored_bit(&self, cid: &Cid) {
        self.inner().flip_a_stored_bit(cid);
    }
}

const SIZES: [usize; 6] = [0, 1, 262_144, 1 << 20, MAX_BLOCK_BYTES, 4097];

fn round_trip_at_boundary_sizes(s: &dyn Store) {
    let blocks: Vec<Block> = SIZES
        .iter()
        .enumerate()
        .map(|(i, &n)| block(i as u32, n, RAW))
        .collect();
    let total: u64 = SIZES.iter().map(|&n| n as u64).sum();
    assert_eq!(s.put_many(&mut blocks.clone().into_iter()).unwrap(), total);
    for b in &blocks {
        assert_eq!(s.get(b.cid()).unwrap().as_ref(), Some(b));
        assert!(s.has(b.cid()).unwrap());
        assert_eq!(s.size_of(b.cid()).unwrap(), Some(b.data().len() as u64));
    }
    // Storing again adds nothing.
    assert_eq!(s.put_many(&mut blocks.clone().into_iter()).unwrap(), 0);
    let st = s.stat().unwrap();
    assert_eq!(st.blocks, SIZES.len() as u64);
    assert_eq!(st.block_bytes, total);
    let mut listed = 0;
    s.for_each_block(&mut |e| {
        listed += 1;
        assert!(blocks
            .iter()
            .any(|b| b.cid().hash() == &e.multihash && b.data().len() as u64 == e.len));
        Ok(())
    })
    .unwrap();
    assert_eq!(listed, SIZES.len());
}

/// Uncached puts (direct writes on disk) interleaved with cached ones, at
/// sizes around the 4 KiB alignment and the staging buffer, each batch read
/// back right away: a record's bytes never depend on which path wrote it or
/// its neighbours.
fn uncached_and_cached_puts_interleave(s: &dyn Store) {
    // Rounds of three, uncached first; the first passes the 4 MiB buffer.
    let sizes = [
        4095usize,
        MAX_BLOCK_BYTES,
        MAX_BLOCK_BYTES - 100,
        1,
        4096,
        4097,
        3,
        262_144,
        0,
        65_537,
        MAX_BLOCK_BYTES,
        1,
    ];
    let mut all = vec![];
    for (round, chunk) in sizes.chunks(3).enumerate() {
        let batch: Vec<Block> = chunk
            .iter()
            .enumerate()
            .map(|(i, &n)| block((100 + round * 10 + i) as u32, n, RAW))
            .collect();
        let total: u64 = chunk.iter().map(|&n| n as u64).sum();
        let stored = if round % 2 == 0 {
            s.put_many_uncached(&mut batch.clone().into_iter())
        } else {
            s.put_many(&mut batch.clone().into_iter())
        };
        assert_eq!(stored.unwrap(), total, "round {round}");
        // A one-byte cached put between rounds leaves an unaligned end.
        let odd = block(200 + round as u32, 1, RAW);
        s.put(odd.clone()).unwrap();
        all.extend(batch);
        all.push(odd);
        for b in &all {
            assert_eq!(s.get(b.cid()).unwrap().as_ref(), Some(b), "round {round}");
        }
    }
    assert_eq!(
        s.put_many_uncached(&mut all.clone().into_iter()).unwrap(),
        0
    );
    s.flush().unwrap();
    for b in &all {
        assert_eq!(s.get(b.cid()).unwrap().as_ref(), Some(b));
    }
}

fn same_bytes_two_codecs_stored_once(s: &dyn Store) {
    let raw = block(7, 1000, RAW);
    let pb = Block::new_unchecked(Cid::new_v1(DAG_PB, *raw.cid().hash()), raw.data().clone());
    assert_eq!(s.put(raw.clone()).unwrap(), 1000);
    assert_eq!(s.put(pb.clone()).unwrap(), 0);
    assert_eq!(s.get(pb.cid()).unwrap().unwrap().data(), raw.data());
    assert_eq!(s.stat().unwrap().blocks, 1);
}

fn unknown_is_none(s: &dyn Store) {
    let b = block(9, 10, RAW);
    assert_eq!(s.get(b.cid()).unwrap(), None);
    assert!(!s.has(b.cid()).unwrap());
    assert_eq!(s.size_of(b.cid()).unwrap(), None);
    assert_eq!(s.read_raw(b.cid().hash()).unwrap(), None);
}

fn pins(s: &dyn Store) {
    let a = block(1, 10, RAW);
    let b = block(2, 10, RAW);
    s.put_many(&mut vec![a.clone(), b.clone()].into_iter())
        .unwrap();
    s.pin(a.cid(), PinKind::Recursive).unwrap();
    s.pin(b.cid(), PinKind::Direct).unwrap();
    assert_eq!(s.pin_of(a.cid()).unwrap(), Some(PinKind::Recursive));
    s.pin(b.cid(), PinKind::Recursive).unwrap();
    let mut all = s.pins().unwrap();
    all.sort_by_key(|p| p.0.to_bytes());
    let mut want = vec![
        (*a.cid(), PinKind::Recursive),
        (*b.cid(), PinKind::Recursive),
    ];
    want.sort_by_key(|p| p.0.to_bytes());
    assert_eq!(all, want);
    assert_eq!(s.unpin(a.cid()).unwrap(), PinKind::Recursive);
    assert!(matches!(
        s.unpin(a.cid()),
        Err(StoreError::NotPinned { .. })
    ));
    assert_eq!(s.stat().unwrap().pins, 1);
}

fn sweep_removes_exactly_the_dead(s: &dyn Store) {
    let blocks: Vec<Block> = (0..300).map(|i| block(i, 3000 + i as usize, RAW)).collect();
    s.put_many(&mut blocks.clone().into_iter()).unwrap();
    let live: HashSet<Multihash> = blocks.iter().step_by(3).map(|b| *b.cid().hash()).collect();
    let r = s.sweep(&live).unwrap();
    assert_eq!(r.removed_blocks, 200);
    for (i, b) in blocks.iter().enumerate() {
        if i % 3 == 0 {
            assert_eq!(s.get(b.cid()).unwrap().as_ref(), Some(b));
        } else {
            assert!(!s.has(b.cid()).unwrap());
        }
    }
    assert_eq!(s.stat().unwrap().blocks, 100);
    // Sweeping again with the same live set removes nothing.
    assert_eq!(s.sweep(&live).unwrap().removed_blocks, 0);
}

fn oversized_block_is_refused(s: &dyn Store) {
    let b = block(5, MAX_BLOCK_BYTES + 1, RAW);
    assert!(s.put(b.clone()).is_err());
    assert!(!s.has(b.cid()).unwrap());
}

fn metadata_round_trips(s: &dyn Store) {
    assert_eq!(s.meta_get("routing").unwrap(), None);
    s.meta_put("routing", Some(b"peers")).unwrap();
    s.meta_put("other", Some(b"")).unwrap();
    assert_eq!(
        s.meta_get("routing").unwrap().as_deref(),
        Some(&b"peers"[..])
    );
    assert_eq!(s.meta_get("other").unwrap().as_deref(), Some(&b""[..]));
    s.meta_put("routing", None).unwrap();
    assert_eq!(s.meta_get("routing").unwrap(), None);
    s.meta_put("repl/b", Some(b"2")).unwrap();
    s.meta_put("repl/a", Some(b"1")).unwrap();
    s.meta_put("replx", Some(b"no")).unwrap();
    let scanned = s.meta_scan("repl/").unwrap();
    assert_eq!(
        scanned,
        vec![
            ("repl/a".to_string(), b"1".to_vec()),
            ("repl/b".to_string(), b"2".to_vec())
        ]
    );
    // Metadata is not a block or a pin.
    assert_eq!(s.stat().unwrap().pins, 0);
}

/// A block whose bytes changed reads as `Corrupt` (never as data), while
/// `read_raw` still hands the bytes over; other blocks are unaffected.
fn damaged_block_reads_as_corrupt(s: &(impl Store + Damage)) {
    let a = block(11, 5000, RAW);
    let b = block(12, 5000, RAW);
    s.put_many(&mut vec![a.clone(), b.clone()].into_iter())
        .unwrap();
    s.flip_a_stored_bit(a.cid());
    match s.get(a.cid()) {
        Err(StoreError::Corrupt { cid, reason }) => {
            assert_eq!(&cid, a.cid());
            assert_eq!(reason, Corruption::HashMismatch);
        }
        other => panic!("expected Corrupt, got {other:?}"),
    }
    let raw = s.read_raw(a.cid().hash()).unwrap().unwrap();
    assert_eq!(raw.len(), a.data().len());
    assert_ne!(&raw, a.data());
    assert_eq!(s.get(b.cid()).unwrap().as_ref(), Some(&b));
}

fn remove_forgets_a_block_and_its_bytes(s: &dyn Store) {
    let a = block(13, 3000, RAW);
    let b = block(14, 2000, RAW);
    s.put_many(&mut vec![a.clone(), b.clone()].into_iter())
        .unwrap();
    assert_eq!(s.used_bytes(), 5000);
    assert!(s.remove(a.cid().hash()).unwrap());
    assert!(!s.remove(a.cid().hash()).unwrap());
    assert_eq!(s.get(a.cid()).unwrap(), None);
    assert_eq!(s.used_bytes(), 2000);
    assert_eq!(s.get(b.cid()).unwrap().as_ref(), Some(&b));
    // Stored again, it is new again.
    assert_eq!(s.put(a.clone()).unwrap(), 3000);
    assert_eq!(s.get(a.cid()).unwrap().as_ref(), Some(&a));
}

/// A corrupt copy is replaced by a verified one (never by bytes that do
/// not match), and a replacement of a block not stored stores it.
fn replace_takes_only_a_verified_copy(s: &(impl Store + Damage)) {
    let a = block(15, 6000, RAW);
    let b = block(16, 3000, RAW);
    s.put_many(&mut vec![a.clone(), b.clone()].into_iter())
        .unwrap();
    s.flip_a_stored_bit(a.cid());
    let forged = Block::new_unchecked(*a.cid(), b.data().clone());
    assert!(matches!(
        s.replace(&forged),
        Err(StoreError::Block(BlockError::HashMismatch { .. }))
    ));
    // The refused copy changed nothing: still there, still corrupt.
    assert!(s.has(a.cid()).unwrap());
    assert!(matches!(s.get(a.cid()), Err(StoreError::Corrupt { .. })));
    s.replace(&a).unwrap();
    assert_eq!(s.get(a.cid()).unwrap().as_ref(), Some(&a));
    assert_eq!(s.used_bytes(), 9000);
    assert_eq!(s.stat().unwrap().blocks, 2);
    let c = block(17, 100, RAW);
    s.replace(&c).unwrap();
    assert_eq!(s.get(c.cid()).unwrap().as_ref(), Some(&c));
    assert_eq!(s.used_bytes(), 9100);
    assert_eq!(s.get(b.cid()).unwrap().as_ref(), Some(&b));
}

/// Paging with `blocks_after` lists every block once, in the order
/// `for_each_block` does.
fn pages_list_every_block_once(s: &dyn Store) {
    let blocks: Vec<Block> = (0..50).map(|i| block(100 + i, 300, RAW)).collect();
    s.put_many(&mut blocks.clone().into_iter()).unwrap();
    let mut all = Vec::new();
    s.for_each_block(&mut |e| {
        all.push(e);
        Ok(())
    })
    .unwrap();
    let mut paged = Vec::new();
    loop {
        let page = s
            .blocks_after(paged.last().map(|e: &StoredBlock| &e.multihash), 7)
            .unwrap();
        assert!(page.len() <= 7);
        if page.is_empty() {
            break;
        }
        paged.extend(page);
    }
    assert_eq!(paged.len(), blocks.len());
    assert_eq!(paged, all);
    assert!(s.blocks_after(None, 0).unwrap().is_empty());
}

macro_rules! conformance {
    ($name:ident, $make:expr) => {
        mod $name {
            use super::*;
            #[allow(unused_imports)]
            use crate::store::{DiskStore, DiskStoreOptions, MemoryStore};

            fn with_store<S: Store>(make: impl Fn(&std::path::Path) -> S, f: impl Fn(&S)) {
                let dir = tempfile::tempdir().unwrap();
                f(&make(dir.path()));
            }

            #[test]
            fn round_trip_at_boundary_sizes() {
                with_store($make, |s| super::round_trip_at_boundary_sizes(s));
            }
            #[test]
            fn uncached_and_cached_puts_interleave() {
                with_store($make, |s| super::uncached_and_cached_puts_interleave(s));
            }
            #[test]
            fn same_bytes_two_codecs_stored_once() {
                with_store($make, |s| super::same_bytes_two_codecs_stored_once(s));
            }
            #[test]
            fn unknown_is_none() {
                with_store($make, |s| super::unknown_is_none(s));
            }
            #[test]
            fn pins() {
                with_store($make, |s| super::pins(s));
            }
            #[test]
            fn sweep_removes_exactly_the_dead() {
                with_store($make, |s| super::sweep_removes_exactly_the_dead(s));
            }
            #[test]
            fn metadata_round_trips() {
                with_store($make, |s| super::metadata_round_trips(s));
            }
            #[test]
            fn oversized_block_is_refused() {
                with_store($make, |s| super::oversized_block_is_refused(s));
            }
            #[test]
            fn damaged_block_reads_as_corrupt() {
                with_store($make, |s| super::damaged_block_reads_as_corrupt(s));
            }
            #[test]
            fn replace_takes_only_a_verified_copy() {
                with_store($make, |s| super::replace_takes_only_a_verified_copy(s));
            }
            #[test]
            fn pages_list_every_block_once() {
                with_store($make, |s| super::pages_list_every_block_once(s));
            }
            #[test]
            fn remove_forgets_a_block_and_its_bytes() {
                with_store($make, |s| super::remove_forgets_a_block_and_its_bytes(s));
            }
        }
    };
}

conformance!(memory, |_| MemoryStore::new());
conformance!(faulty, |_| FaultyStore::new(std::sync::Arc::new(
    MemoryStore::new()
)));
conformance!(hot_memory, |_| HotStore::new(
    std::sync::Arc::new(MemoryStore::new()),
    std::sync::Arc::new(HotCache::new(8 << 20, 4 << 20, 4 << 20)),
));
conformance!(hot_disk, |dir| HotStore::new(
    std::sync::Arc::new(DiskStore::open(dir, DiskStoreOptions::default()).unwrap()),
    std::sync::Arc::new(HotCache::new(8 << 20, 4 << 20, 4 << 20)),
));
conformance!(disk, |dir| DiskStore::open(
    dir,
    DiskStoreOptions::default()
)
.unwrap());
// Tiny segments and commits: every operation crosses segment boundaries.
conformance!(disk_small_segments, |dir| DiskStore::open(
    dir,
    DiskStoreOptions {
        segment_max_bytes: 100_000,
        commit_bytes: 20_000,
        ..DiskStoreOptions::default()
    }
)
.unwrap());

//! Garbage collection on disk: the sweep drops dead blocks from the index,
//! punches holes where dead records lie (their space goes back to the file
//! system at once without needing any: this is what frees a full disk),
//! then compaction rewrites segments whose live share fell below
//! `compact_live_ratio`, the active one included, when there is room to
//! copy their live records. On a full disk the space reserve
//! (`space.rs`) is released first, so the index writes have room, and
//! allocated again at the end when space allows.
//!
//! Compaction copies a sparse segment's live records to the active segment
//! (a new one, when the sparse segment is the active one), makes them
//! durable, then commits in ONE index batch their new locations, the
//! active segment's length and the removal of the old segment's length
//! key; only then is the old file deleted. A crash before the batch leaves
//! the old locations valid (recovery cuts the copies off the active
//! segment); a crash after it leaves an uncommitted file that recovery
//! deletes. Holes are punched only below a segment's committed length and
//! only where no indexed record lies.

use super::index::Location;
use super::segment::{header_bytes, Writer};
use super::space;
use super::DiskStore;
use crate::block::{Cid, Multihash, RAW};
use crate::store::{Result, Store, SweepReport};
use std::collections::{HashMap, HashSet};
use std::sync::atomic::Ordering;

impl DiskStore {
    /// Removes every block whose multihash is not in `live`, gives the
    /// space of dead records back, then compacts sparse segments.
    pub(super) fn sweep_and_compact(&self, live: &HashSet<Multihash>) -> Result<SweepReport> {
        // No put is between two records (its uncommitted ones in the
        // active segment) while this runs, and the writer is held
        // throughout: nothing else writes while records move.
        let _gate = self.sweep_gate();
        let mut w = self.lock_writer();
        // Records a put left uncommitted now are a failed put's (every
        // other put returned after a commit covered its records): garbage,
        // never to be indexed once records move.
        w.uncommitted.clear();
        w.committed = w.appended;
        self.reserve.release_if_short(space::COMPACT_MARGIN_BYTES);
        let ids = self.index.segments()?;
        let data =
            |ids: &[u32]| -> u64 { ids.iter().map(|&id| self.segments.data_bytes(id)).sum() };
        let data_before = data(&ids);
        let mut report = SweepReport::default();
        let mut dead = vec![];
        let mut live_records: HashMap<u32, Vec<(u64, u64)>> = HashMap::new();
        for entry in self.index.blocks() {
            let entry = entry?;
            let loc = entry.location()?;
            if entry.multihash().is_ok_and(|mh| live.contains(&mh)) {
                let head = header_bytes(entry.multihash_bytes().len());
                let start = loc.offset.saturating_sub(head);
                let end = loc.offset + loc.len as u64;
                live_records
                    .entry(loc.segment)
                    .or_default()
                    .push((start, end));
            } else {
                report.removed_blocks += 1;
                report.removed_bytes += loc.len as u64;
                dead.push(entry);
            }
        }
        self.index.remove_blocks(&dead)?;
        drop(dead);
        let freed = report.removed_bytes.min(self.used_bytes());
        self.used.fetch_sub(freed, Ordering::Relaxed);

        // Dead records give their space back in place.
        let mut live_bytes: HashMap<u32, u64> = HashMap::new();
        for &id in &ids {
            let records = live_records.remove(&id).unwrap_or_default();
            let committed = self.index.committed_length(id)?.unwrap_or(0);
            self.segments.punch_dead(id, committed, &records)?;
            live_bytes.insert(id, records.iter().map(|(s, e)| e - s).sum());
        }

        // Segments worth compacting: sparse ones, the active one included.
        let mut candidates: Vec<u32> = vec![];
        for &id in &ids {
            let size = self.segments.file_bytes(id);
            let l = live_bytes.get(&id).copied().unwrap_or(0);
            if size > 0 && (l as f64) < self.opts.compact_live_ratio * size as f64 {
                candidates.push(id);
            }
        }
        // The active segment first: restarted empty, or rolled over so the
        // others' live records go to a new one with it.
        let active = w.id;
        candidates.sort_by_key(|&id| (id != active, id));
        let wanted: HashSet<u32> = candidates.iter().copied().collect();
        let mut entries: HashMap<u32, Vec<(Multihash, Location)>> = HashMap::new();
        for entry in self.index.blocks() {
            let entry = entry?;
            if let Ok(loc) = entry.location() {
                if wanted.contains(&loc.segment) {
                    let mh = entry.multihash()?;
                    entries.entry(loc.segment).or_default().push((mh, loc));
                }
            }
        }
        for id in candidates {
            let list = entries.remove(&id).unwrap_or_default();
            if id == w.id && list.is_empty() {
                w.restart_empty()?;
                self.commit(&mut w, &mut Vec::new())?;
            } else {
                let moving = live_bytes.get(&id).copied().unwrap_or(0);
                let free = space::free_bytes(self.segments.dir()).unwrap_or(0);
                if free < moving + space::COMPACT_MARGIN_BYTES {
                    tracing::info!(
                        segment = id,
                        moving,
                        free,
                        "not compacting: too little free space"
                    );
                    continue;
                }
                self.compact_segment(&mut w, id, list)?;
            }
            report.compacted_segments += 1;
        }
        report.reclaimed_bytes = data_before.saturating_sub(data(&self.index.segments()?));
        self.reserve.restore();
        Ok(report)
    }

    /// Moves the live records of segment `id` into the active segment (a
    /// new one if `id` is the active one) and deletes it.
    fn compact_segment(
        &self,
        w: &mut Writer,
        id: u32,
        entries: Vec<(Multihash, Location)>,
    ) -> Result<()> {
        if w.id == id {
            self.roll(w, &mut Vec::new())?;
        }
        let mut moved = Vec::with_capacity(entries.len());
        for (mh, loc) in entries {
            let body = self.segments.read(loc, &Cid::new_v1(RAW, mh))?;
            let new_loc = self.append(w, &mut moved, &mh.to_bytes(), &body, false)?;
            moved.push((mh, new_loc));
        }
        w.make_durable()?;
        self.index.commit(&mut moved, (w.id, w.len), Some(id))?;
        self.segments.delete(id)
    }
}

#[cfg(test)]
mod tests {
    use super::super::DiskStoreOptions;
    use super::*;
    use crate::block::Block;

    #[test]
    fn the_active_segment_is_compacted_too() {
        let dir = tempfile::tempdir().unwrap();
        let s = DiskStore::open(dir.path(), DiskStoreOptions::default()).unwrap();
        let blocks: Vec<Block> = (0..6)
            .map(|i| crate::store::conformance::block(i, 200_000, RAW))
            .collect();
        s.put_many(&mut blocks.clone().into_iter()).unwrap();
        assert_eq!(s.stat().unwrap().segments, 1);
        let before = s.segments.data_bytes(0);
        let live: HashSet<Multihash> = blocks[4..].iter().map(|b| *b.cid().hash()).collect();
        let r = s.sweep(&live).unwrap();
        assert_eq!((r.removed_blocks, r.compacted_segments), (4, 1));
        assert!(r.reclaimed_bytes >= 4 * 200_000 - 8192, "{r:?} of {before}");
        let usage = s.segment_usage().unwrap();
        assert_eq!(usage.len(), 1, "{usage:?}");
        assert!(
            usage[0].live_bytes * 10 > usage[0].file_bytes * 9,
            "{usage:?}"
        );
        for (i, b) in blocks.iter().enumerate() {
            assert_eq!(s.get(b.cid()).unwrap().as_ref(), (i >= 4).then_some(b));
        }
        drop(s);
        let s = DiskStore::open(dir.path(), DiskStoreOptions::default()).unwrap();
        for b in &blocks[4..] {
            assert_eq!(s.get(b.cid()).unwrap().as_ref(), Some(b));
        }
        s.put(blocks[0].clone()).unwrap();
        assert_eq!(s.get(blocks[0].cid()).unwrap().as_ref(), Some(&blocks[0]));
    }

    /// A put between two of its records (the first written to the active
    /// segment, not yet committed) while a sweep finds the active segment
    /// empty of indexed records: the sweep waits for the put instead of
    /// restarting the segment under it, and every block put reads back.
    #[test]
    fn a_sweep_waits_for_a_put_between_records() {
        use std::sync::mpsc;
        use std::time::Duration;
        let dir = tempfile::tempdir().unwrap();
        let s = DiskStore::open(dir.path(), DiskStoreOptions::default()).unwrap();
        let blocks: Vec<Block> = (0..2)
            .map(|i| crate::store::conformance::block(i, 100_000, RAW))
            .collect();
        let live: HashSet<Multihash> = blocks.iter().map(|b| *b.cid().hash()).collect();
        let (first_taken, put_paused) = mpsc::channel::<()>();
        let (resume, resumed) = mpsc::channel::<()>();
        let (swept, sweep_done) = mpsc::channel::<()>();
        let (s, blocks, live) = (&s, &blocks, &live);
        std::thread::scope(|scope| {
            let putter = scope.spawn(move || {
                let mut n = 0;
                let mut paced = std::iter::from_fn(|| {
                    if n == 1 {
                        // The first record is in the segment, uncommitted.
                        first_taken.send(()).unwrap();
                        resumed.recv().unwrap();
                    }
                    n += 1;
                    blocks.get(n - 1).cloned()
                });
                s.put_many(&mut paced)
            });
            put_paused.recv().unwrap();
            let sweeper = scope.spawn(move || {
                let r = s.sweep(live);
                swept.send(()).unwrap();
                r
            });
            // The sweep must not finish while the put is paused.
            let finished_early = sweep_done.recv_timeout(Duration::from_millis(300)).is_ok();
            resume.send(()).unwrap();
            assert_eq!(putter.join().unwrap().unwrap(), 200_000);
            sweeper.join().unwrap().unwrap();
            assert!(
                !finished_early,
                "the sweep ran while a put was between records"
            );
        });
        for b in blocks {
            assert_eq!(s.get(b.cid()).unwrap().as_ref(), Some(b));
        }
    }
}

//! Garbage collection on disk: the sweep drops dead blocks from the index,
//! then compaction rewrites segments whose live share fell below
//! `compact_live_ratio`.
//!
//! Compaction copies a sparse segment's live records to the active segment,
//! makes them durable, then commits in ONE index batch their new locations,
//! the active segment's length and the removal of the old segment's length
//! key; only then is the old file deleted. A crash before the batch leaves
//! the old locations valid (recovery cuts the copies off the active
//! segment); a crash after it leaves an uncommitted file that recovery
//! deletes.

use super::index::Location;
use super::segment::{record_bytes, Writer};
use super::DiskStore;
use crate::block::{Cid, Multihash, RAW};
use crate::store::{Result, Store, SweepReport};
use std::collections::{HashMap, HashSet};
use std::sync::atomic::Ordering;

impl DiskStore {
    /// Removes every block whose multihash is not in `live`, then compacts
    /// sparse segments.
    pub(super) fn sweep_and_compact(&self, live: &HashSet<Multihash>) -> Result<SweepReport> {
        // Holding the writer keeps puts out while blocks move.
        let mut w = self.lock_writer();
        let mut report = SweepReport::default();
        let mut dead = vec![];
        let mut live_bytes: HashMap<u32, u64> = HashMap::new();
        for entry in self.index.blocks() {
            let entry = entry?;
            let loc = entry.location()?;
            if entry.multihash().is_ok_and(|mh| live.contains(&mh)) {
                *live_bytes.entry(loc.segment).or_default() += loc.len as u64;
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

        // Segments worth compacting: sparse ones (the active one only when
        // it holds nothing live, else it would be copied into itself).
        let mut candidates: Vec<u32> = vec![];
        for id in self.index.segments()? {
            let size = self.segments.file_bytes(id);
            let l = live_bytes.get(&id).copied().unwrap_or(0);
            let sparse = size > 0 && (l as f64) < self.opts.compact_live_ratio * size as f64;
            if sparse && (id != w.id || l == 0) {
                candidates.push(id);
            }
        }
        if candidates.is_empty() {
            return Ok(report);
        }
        // An empty active segment is restarted first: compacting the others
        // appends their live records to it.
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
            if id == w.id {
                // Nothing live in the active segment: restart it empty.
                report.reclaimed_bytes += w.restart_empty()?;
                self.commit(&mut w, &mut Vec::new())?;
            } else {
                let size = self.segments.file_bytes(id);
                let moved: u64 = list
                    .iter()
                    .map(|(mh, l)| record_bytes(mh.encoded_len(), l.len as usize))
                    .sum();
                self.compact_segment(&mut w, id, list)?;
                report.reclaimed_bytes += size.saturating_sub(moved);
            }
            report.compacted_segments += 1;
        }
        Ok(report)
    }

    /// Moves the live records of segment `id` into the active segment and
    /// deletes it.
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

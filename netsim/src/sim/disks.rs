//! Storage faults: disks that go bad under running nodes (blocks that read
//! EIO, bits flipped at rest), injected through each node's
//! [`FaultyStore`](cairn::store::FaultyStore), and what became of them at
//! the end: whether every replicated file still has its factor of intact
//! copies, whether a corrupt block reached a node whose disk was sound, and
//! whether every block that read EIO was kept.

use super::nodes::Slot;
use super::Sim;
use crate::lock;
use crate::report::DiskReport;
use crate::rng::Rng;
use crate::scenario::Fault;
use cairn::block::{verify, BlockError, Cid, Multihash, RAW};
use cairn::store::{StorageFault, Store, StoreError};
use std::collections::BTreeSet;
use std::sync::atomic::Ordering::Relaxed;

/// The storage faults injected so far.
#[derive(Default)]
pub(super) struct DiskLog {
    /// Slots whose disk went bad.
    faulted: BTreeSet<usize>,
    /// Blocks given a flipped bit.
    flipped: usize,
    /// Blocks made to read EIO, with their slot.
    unreadable: Vec<(usize, Multihash)>,
}

/// Whether the copy of the DAG under `root` on `slot` reads back whole and
/// verified.
fn intact_copy(slot: &Slot, root: &Cid) -> bool {
    let Some(node) = &slot.node else {
        return false;
    };
    let Ok(cids) = node.dag_cids(root) else {
        return false;
    };
    cids.iter()
        .all(|c| matches!(node.store().get(c), Ok(Some(_))))
}

/// The blocks of `store` that are corrupt, and those that cannot be read.
fn scan(store: &dyn Store) -> (usize, usize) {
    let mut blocks = Vec::new();
    let _ = store.for_each_block(&mut |b| {
        blocks.push(b.multihash);
        Ok(())
    });
    let (mut corrupt, mut unreadable) = (0, 0);
    for mh in blocks {
        match store.read_raw(&mh) {
            Ok(Some(data)) => {
                if let Err(BlockError::HashMismatch { .. }) = verify(&Cid::new_v1(RAW, mh), &data) {
                    corrupt += 1;
                }
            }
            Ok(None) => {}
            Err(StoreError::Corrupt { .. }) => corrupt += 1,
            Err(_) => unreadable += 1,
        }
    }
    (corrupt, unreadable)
}

impl Sim {
    /// The disks of `nodes` up nodes holding replicated files (drawn from
    /// `pick`) go bad: each stored block gets a flipped bit with
    /// probability `flipped`, or reads EIO with probability `unreadable`.
    pub(super) fn break_disks(&self, nodes: usize, unreadable: f64, flipped: f64, pick: u64) {
        let mut r = Rng::new(pick);
        let replicated: Vec<Cid> = self
            .added_files()
            .into_iter()
            .filter(|(_, f)| f.factor > 0)
            .map(|(_, f)| f.cid)
            .collect();
        let slots = self.slots();
        let candidates: Vec<usize> = slots
            .iter()
            .enumerate()
            .filter(|(_, s)| s.online.is_some() && replicated.iter().any(|c| s.holds(c)))
            .map(|(i, _)| i)
            .collect();
        let chosen: Vec<usize> = r
            .sample(candidates.len(), nodes)
            .into_iter()
            .map(|i| candidates[i])
            .collect();
        let mut log = lock(&self.disks);
        let (mut n_flipped, mut n_unreadable) = (0, 0);
        for &slot in &chosen {
            let disk = &slots[slot].disk;
            let mut blocks = Vec::new();
            let _ = disk.for_each_block(&mut |b| {
                blocks.push(b.multihash);
                Ok(())
            });
            for mh in blocks {
                let x = r.unit();
                if x < flipped {
                    disk.inject(mh, StorageFault::FlippedBit);
                    n_flipped += 1;
                } else if x < flipped + unreadable {
                    disk.inject(mh, StorageFault::Unreadable);
                    log.unreadable.push((slot, mh));
                    n_unreadable += 1;
                }
            }
            log.faulted.insert(slot);
        }
        log.flipped += n_flipped;
        drop((log, slots));
        self.say(format!(
            "disks of nodes {chosen:?} went bad: {n_flipped} blocks with a flipped bit, {n_unreadable} reading EIO"
        ));
    }

    /// Every block that read EIO reads well again.
    pub(super) fn heal_disks(&self) {
        let unreadable = lock(&self.disks).unreadable.clone();
        let slots = self.slots();
        let mut healed = 0;
        for (slot, mh) in unreadable {
            let Some(disk) = slots.get(slot).map(|s| &s.disk) else {
                continue;
            };
            if disk.fault(&mh) == Some(StorageFault::Unreadable) {
                disk.heal(&mh);
                healed += 1;
            }
        }
        drop(slots);
        self.say(format!("disks recovered: {healed} blocks read again"));
    }

    /// What became of the storage faults, with the nodes up at the end
    /// (`None` when the scenario has none and expects nothing of them).
    pub(super) fn disk_checks(&self) -> Option<DiskReport> {
        let e = &self.sc.expect;
        let any = self
            .sc
            .faults
            .iter()
            .any(|f| matches!(f, Fault::Disk { .. }));
        if !any && !e.intact_copies && !e.no_corrupt_spread && !e.unreadable_kept {
            return None;
        }
        let files = self.added_files();
        let log = lock(&self.disks);
        let slots = self.slots();
        let mut report = DiskReport {
            nodes: log.faulted.len(),
            flipped: log.flipped,
            unreadable: log.unreadable.len(),
            ..DiskReport::default()
        };
        let up = || slots.iter().enumerate().filter(|(_, s)| s.online.is_some());
        for (i, s) in up() {
            if let Some(o) = &s.online {
                let st = o.replicator().stats();
                report.scrub_corrupt += st.scrub_corrupt.load(Relaxed);
                report.scrub_repaired += st.scrub_repaired.load(Relaxed);
                report.scrub_unreadable += st.scrub_unreadable.load(Relaxed);
            }
            let (corrupt, unreadable) = scan(&*s.disk);
            if log.faulted.contains(&i) {
                report.corrupt_on_faulted += corrupt;
            } else {
                report.corrupt_elsewhere += corrupt;
            }
            report.unreadable_at_end += unreadable;
        }
        for (_, f) in files.iter().filter(|(_, f)| f.factor > 0) {
            report.replicated += 1;
            let intact = up()
                .filter(|(_, s)| s.holds(&f.cid) && intact_copy(s, &f.cid))
                .count();
            if intact >= f.factor as usize {
                report.intact_at_factor += 1;
            }
        }
        for (slot, mh) in &log.unreadable {
            if let Some(s) = slots.get(*slot).filter(|s| s.online.is_some()) {
                if !s.disk.has(&Cid::new_v1(RAW, *mh)).unwrap_or(false) {
                    report.unreadable_lost += 1;
                }
            }
        }
        Some(report)
    }
}

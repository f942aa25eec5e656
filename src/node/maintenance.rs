//! Looking after the repo: garbage collection, figures (`repo stat`),
//! re-hashing every block (`repo verify`) and flushing to disk.

use super::{Node, NodeError};
use crate::block::{Cid, RAW};
use crate::dag::walk;
use crate::store::{PinKind, SegmentUsage, StoreError, StoreStat, SweepReport};
use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::Arc;

/// Problems `repo verify` found.
#[derive(Clone, Debug, Default)]
pub struct VerifyReport {
    /// Blocks re-hashed.
    pub checked: u64,
    /// Blocks whose bytes do not hash to their multihash, as raw CIDv1s.
    pub corrupt: Vec<Cid>,
    /// Blocks that could not be read at all, with the reason.
    pub unreadable: Vec<(Cid, String)>,
    /// Pinned roots with missing or corrupt blocks below them.
    pub broken_pins: Vec<(Cid, String)>,
}

/// `repo stat` figures.
#[derive(Clone, Debug, Default)]
pub struct RepoStat {
    /// The store's totals (blocks, bytes, quota).
    pub store: StoreStat,
    /// Each segment file's size and live share (disk stores).
    pub segments: Vec<SegmentUsage>,
    /// The repo directory (none for an in-memory node).
    pub path: Option<PathBuf>,
}

impl Node {
    /// Removes every block no pin, no log head and no MFS root reaches and compacts
    /// storage. MFS changes wait meanwhile (its lock is held throughout),
    /// so a write cannot add blocks the live set missed.
    pub fn gc(&self) -> Result<SweepReport, NodeError> {
        self.mfs.with_root(|mfs_root| {
            let pins = self.store.pins()?;
            let of_kind = |kind: PinKind| -> Vec<Cid> {
                pins.iter().filter(|p| p.1 == kind).map(|p| p.0).collect()
            };
            let (mut recursive, mut direct) =
                (of_kind(PinKind::Recursive), of_kind(PinKind::Direct));
            recursive.extend(mfs_root);
            // Logs' heads (their kept batches, for logs with a retention),
            // even if their pins were lost.
            let (log_recursive, log_direct) = self.logs.gc_roots()?;
            recursive.extend(log_recursive);
            direct.extend(log_direct);
            let live = walk::live_set(&*self.source(), &recursive, &direct)?;
            Ok(self.store.sweep(&live)?)
        })?
    }

    /// The store's figures and where the repo is.
    pub fn stat(&self) -> Result<RepoStat, NodeError> {
        Ok(RepoStat {
            store: self.store.stat()?,
            segments: self.store.segment_usage()?,
            path: self.path.clone(),
        })
    }

    /// Re-hashes every stored block and checks every pin is complete.
    pub fn verify(&self, progress: &mut dyn FnMut(u64)) -> Result<VerifyReport, NodeError> {
        let mut report = VerifyReport::default();
        let store = Arc::clone(&self.store);
        store.for_each_block(&mut |entry| {
            let cid = Cid::new_v1(RAW, entry.multihash);
            report.checked += 1;
            progress(report.checked);
            match store.read_raw(&entry.multihash) {
                Ok(Some(data)) => {
                    if !crate::block::multihash_matches(&entry.multihash, &data) {
                        report.corrupt.push(cid);
                    }
                }
                Ok(None) => report.unreadable.push((cid, "indexed but missing".into())),
                Err(StoreError::Corrupt { .. }) => report.corrupt.push(cid),
                Err(e) => report.unreadable.push((cid, e.to_string())),
            }
            Ok(())
        })?;
        let mut seen = HashSet::new();
        for (root, kind) in self.store.pins()? {
            let result = match kind {
                PinKind::Recursive => {
                    walk::walk(&*self.source(), &root, &mut seen, &mut |_| Ok(()))
                }
                PinKind::Direct => self.source().block(&root).map(|_| ()),
            };
            if let Err(e) = result {
                report.broken_pins.push((root, e.to_string()));
            }
        }
        Ok(report)
    }

    /// Makes everything written so far durable.
    pub fn flush(&self) -> Result<(), NodeError> {
        Ok(self.store.flush()?)
    }
}

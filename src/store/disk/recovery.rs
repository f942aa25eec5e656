//! Recovery on open: sweeps what a crash left half-done in the segments
//! directory before the store takes writes.
//!
//! - A segment longer than its committed length lost a race between append
//!   and commit: its tail is truncated to the committed length (nothing in
//!   the index points past it).
//! - A segment with no committed length at all was created, or compacted
//!   away, without its index batch: it is deleted.
//! - `*.tmp` files are deleted.
//! - A segment shorter than its committed length lost bytes that were
//!   durable: that is logged, and reads of the blocks in the missing part
//!   fail as [`StoreError::Io`](crate::store::StoreError::Io) (a short
//!   read), not as corruption.
//!
//! New appends continue in the highest committed segment.

use super::index::Index;
use super::io_err;
use super::segment::Segments;
use crate::store::Result;
use std::fs::OpenOptions;

/// Truncates torn tails and deletes uncommitted segments; returns the
/// highest committed segment.
pub(super) fn recover(segments: &Segments, index: &Index) -> Result<Option<u32>> {
    let seg_dir = segments.dir();
    let mut highest = None;
    let mut changed = false;
    for entry in std::fs::read_dir(seg_dir).map_err(io_err(seg_dir))? {
        let entry = entry.map_err(io_err(seg_dir))?;
        let path = entry.path();
        let name = entry.file_name();
        let name = name.to_string_lossy();
        let Some(id) = name
            .strip_suffix(".seg")
            .and_then(|n| n.parse::<u32>().ok())
        else {
            if name.ends_with(".tmp") {
                std::fs::remove_file(&path).map_err(io_err(&path))?;
                changed = true;
            }
            continue;
        };
        let Some(committed) = index.committed_length(id)? else {
            tracing::info!(segment = id, "removing uncommitted segment");
            std::fs::remove_file(&path).map_err(io_err(&path))?;
            changed = true;
            continue;
        };
        let len = entry.metadata().map_err(io_err(&path))?.len();
        if len > committed {
            tracing::info!(segment = id, len, committed, "truncating torn segment tail");
            let f = OpenOptions::new()
                .write(true)
                .open(&path)
                .map_err(io_err(&path))?;
            f.set_len(committed).map_err(io_err(&path))?;
            f.sync_all().map_err(io_err(&path))?;
        } else if len < committed {
            tracing::error!(
                segment = id,
                len,
                committed,
                "segment shorter than committed: blocks in the missing part cannot be read"
            );
        }
        highest = highest.max(Some(id));
    }
    if changed {
        segments.sync_dir()?;
    }
    Ok(highest)
}

//! Rebuilding the index from the segments alone, when it cannot be opened
//! or on request (`cairn repo rebuild-index`).
//!
//! Every segment is read front to back. Each record whose header checks
//! (`segment.rs`) and whose body hashes to the multihash it names is
//! indexed where it lies (the first copy found, when compaction left two);
//! a body that does not hash is left out and counted as corrupt. Where no
//! header checks (a damaged header, a hole punched by garbage collection,
//! a torn tail) the scan looks for the next one. A segment's committed
//! length becomes the end of its last record, so recovery then cuts off
//! whatever follows it.
//!
//! The new index is built in `index.rebuilding/` and renamed to `index/`
//! when complete, with the damaged one deleted first (its space may be
//! what the rebuild needs). A crash in between leaves no `index/`, and the
//! next open rebuilds again. Pins and metadata are in the journal, which
//! the rebuild does not touch. Blocks removed by an earlier garbage
//! collection but still in a segment come back unpinned, for the next one.

use super::index::{Index, Location};
use super::io_err;
use super::segment::{header_bytes, parse_header, MAX_MULTIHASH_BYTES};
use crate::block::{multihash_matches, Multihash};
use crate::store::{RebuildReport, Result};
use std::collections::HashSet;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// Index entries written per batch.
const BATCH: usize = 10_000;

/// Bytes read at a time while looking for the next header.
const SCAN_CHUNK: usize = 1 << 20;

/// The segment files in `seg_dir` by id, in order.
pub(super) fn segment_files(seg_dir: &Path) -> Result<Vec<(u32, PathBuf)>> {
    let mut out = vec![];
    for entry in std::fs::read_dir(seg_dir).map_err(io_err(seg_dir))? {
        let entry = entry.map_err(io_err(seg_dir))?;
        let name = entry.file_name();
        if let Some(id) = name
            .to_string_lossy()
            .strip_suffix(".seg")
            .and_then(|n| n.parse::<u32>().ok())
        {
            out.push((id, entry.path()));
        }
    }
    out.sort();
    Ok(out)
}

/// Builds a new index at `index_dir` from the segments in `seg_dir`.
pub(super) fn rebuild(index_dir: &Path, seg_dir: &Path, cache_bytes: u64) -> Result<RebuildReport> {
    let building = index_dir.with_extension("rebuilding");
    for dir in [index_dir, building.as_path()] {
        match std::fs::remove_dir_all(dir) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(io_err(dir)(e)),
            _ => {}
        }
    }
    let index = Index::open(&building, cache_bytes)?;
    let mut report = RebuildReport::default();
    for (id, path) in segment_files(seg_dir)? {
        report.segments += 1;
        let mut batch = vec![];
        let mut in_batch = HashSet::new();
        let end = scan(&path, &mut |mh, offset, body| {
            let indexed = Multihash::from_bytes(mh)
                .ok()
                .filter(|mh| multihash_matches(mh, body));
            let Some(mh) = indexed else {
                report.corrupt += 1;
                return Ok(());
            };
            if in_batch.contains(&mh) || index.has_block(&mh)? {
                return Ok(());
            }
            in_batch.insert(mh);
            report.blocks += 1;
            report.block_bytes += body.len() as u64;
            let len = body.len() as u32;
            batch.push((
                mh,
                Location {
                    segment: id,
                    offset,
                    len,
                },
            ));
            if batch.len() >= BATCH {
                index.commit(&mut batch, (id, offset + len as u64), None)?;
                in_batch.clear();
            }
            Ok(())
        })?;
        report.skipped_bytes += end.skipped;
        index.commit(&mut batch, (id, end.last_record_end), None)?;
    }
    drop(index);
    std::fs::rename(&building, index_dir).map_err(io_err(index_dir))?;
    if let Some(parent) = index_dir.parent() {
        File::open(parent)
            .and_then(|d| d.sync_all())
            .map_err(io_err(parent))?;
    }
    Ok(report)
}

/// Where a segment scan ended.
pub(super) struct ScanEnd {
    /// Offset just past the last record whose header checked.
    pub last_record_end: u64,
    /// Bytes passed over looking for a header.
    pub skipped: u64,
}

/// What a scan is told of each record: multihash bytes, body offset, body.
type OnRecord<'a> = dyn FnMut(&[u8], u64, &[u8]) -> Result<()> + 'a;

/// Calls `f(multihash bytes, body offset, body)` for every record of the
/// segment at `path` whose header checks, in file order.
pub(super) fn scan(path: &Path, f: &mut OnRecord<'_>) -> Result<ScanEnd> {
    let file = File::open(path).map_err(io_err(path))?;
    let size = file.metadata().map_err(io_err(path))?.len();
    let read = |at: u64, len: usize| -> Result<Vec<u8>> {
        let mut buf = vec![0u8; len];
        file.read_exact_at(&mut buf, at).map_err(io_err(path))?;
        Ok(buf)
    };
    let mut end = ScanEnd {
        last_record_end: 0,
        skipped: 0,
    };
    let mut pos = 0u64;
    while pos < size {
        let head_max = header_bytes(MAX_MULTIHASH_BYTES).min(size - pos) as usize;
        let head = read(pos, head_max)?;
        if let Some((h, mh)) = parse_header(&head) {
            let body_at = pos + header_bytes(h.mh_len);
            if body_at + h.body_len as u64 <= size {
                let body = read(body_at, h.body_len as usize)?;
                f(mh, body_at, &body)?;
                pos = body_at + h.body_len as u64;
                end.last_record_end = pos;
                continue;
            }
        }
        let next = next_magic(&file, path, pos + 1, size)?;
        end.skipped += next - pos;
        pos = next;
    }
    Ok(end)
}

/// The offset of the next record magic at or after `from` (`size` when
/// there is none), passing over holes.
fn next_magic(file: &File, path: &Path, mut from: u64, size: u64) -> Result<u64> {
    use std::os::fd::AsRawFd;
    let magic = super::segment::RECORD_MAGIC;
    let mut buf = vec![0u8; SCAN_CHUNK];
    while from < size {
        // SAFETY: plain syscall on a descriptor we own.
        let data = unsafe { libc::lseek(file.as_raw_fd(), from as libc::off_t, libc::SEEK_DATA) };
        if data < 0 {
            // ENXIO: only a hole is left. Other errors: scan byte by byte.
            if std::io::Error::last_os_error().raw_os_error() == Some(libc::ENXIO) {
                return Ok(size);
            }
        } else {
            from = from.max(data as u64);
        }
        let n = (size - from).min(SCAN_CHUNK as u64) as usize;
        let chunk = &mut buf[..n];
        file.read_exact_at(chunk, from).map_err(io_err(path))?;
        if let Some(i) = chunk.windows(magic.len()).position(|w| w == magic) {
            return Ok(from + i as u64);
        }
        if from + n as u64 >= size {
            return Ok(size);
        }
        // The magic may straddle two chunks.
        from += (n - (magic.len() - 1)) as u64;
    }
    Ok(size)
}

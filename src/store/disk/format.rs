//! The version of the segment format a store directory holds, kept in
//! `segments/FORMAT` (one line: the number).
//!
//! Format 2 records carry a checksummed header (`segment.rs`). Format 1
//! (records with a bare length/multihash/length header, before `FORMAT`
//! existed) cannot be told apart record by record, so a store holding such
//! segments is refused with [`StoreError::UnsupportedFormat`] instead of
//! being misread.

use super::io_err;
use crate::store::{Result, StoreError};
use std::fs::File;
use std::io::Write;
use std::path::Path;

/// The segment format this build writes and reads.
pub(super) const SEGMENT_FORMAT: u32 = 2;

/// Checks the format of the segments in `seg_dir`, recording the current
/// one if the directory holds no data yet.
pub(super) fn check(seg_dir: &Path) -> Result<()> {
    let path = seg_dir.join("FORMAT");
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            let found = text.trim();
            if found == SEGMENT_FORMAT.to_string() {
                return Ok(());
            }
            return Err(StoreError::UnsupportedFormat {
                path: seg_dir.to_path_buf(),
                found: found.chars().take(20).collect(),
            });
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io_err(&path)(e)),
    }
    for entry in std::fs::read_dir(seg_dir).map_err(io_err(seg_dir))? {
        let entry = entry.map_err(io_err(seg_dir))?;
        let is_segment = entry.file_name().to_string_lossy().ends_with(".seg");
        if is_segment && entry.metadata().map_err(io_err(&entry.path()))?.len() > 0 {
            return Err(StoreError::UnsupportedFormat {
                path: seg_dir.to_path_buf(),
                found: "1".into(),
            });
        }
    }
    let tmp = seg_dir.join("FORMAT.tmp");
    let write = || -> std::io::Result<()> {
        let mut f = File::create(&tmp)?;
        writeln!(f, "{SEGMENT_FORMAT}")?;
        f.sync_all()?;
        std::fs::rename(&tmp, &path)?;
        File::open(seg_dir)?.sync_all()
    };
    write().map_err(io_err(&path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_dirs_get_the_format_and_old_segments_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        check(dir.path()).unwrap();
        check(dir.path()).unwrap();
        assert_eq!(
            std::fs::read_to_string(dir.path().join("FORMAT")).unwrap(),
            "2\n"
        );

        let old = tempfile::tempdir().unwrap();
        std::fs::write(old.path().join("00000000.seg"), b"\x22\0\0\0old").unwrap();
        let err = check(old.path()).unwrap_err();
        assert!(
            matches!(&err, StoreError::UnsupportedFormat { found, .. } if found == "1"),
            "{err}"
        );
        assert!(err.to_string().contains("format 1"), "{err}");
    }
}

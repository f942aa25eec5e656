//! Free space: what lets garbage collection work on a full disk.
//!
//! - Dead records give their space back in place ([`punch_hole`]): no
//!   free space is needed for that, unlike copying live records away.
//! - `reserve` in the store directory is a file of `reserve_bytes`
//!   allocated while space is plentiful. When the disk is full, work that
//!   frees space (opening the index, removing a pin, garbage collection)
//!   deletes it, so that work has room for its index and journal writes
//!   and for compaction's copies; it is allocated again once twice its size
//!   is free.

use crate::store::StoreError;
use std::fs::File;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};

/// Free bytes compaction leaves beyond the records it copies.
pub(super) const COMPACT_MARGIN_BYTES: u64 = 1 << 20;

/// Bytes free for an unprivileged writer on the file system holding `path`.
pub(super) fn free_bytes(path: &Path) -> std::io::Result<u64> {
    use std::os::unix::ffi::OsStrExt;
    let cpath = std::ffi::CString::new(path.as_os_str().as_bytes())
        .map_err(|_| std::io::Error::from(ErrorKind::InvalidInput))?;
    // SAFETY: statvfs fills a struct we own from a valid NUL-terminated path.
    unsafe {
        let mut st: libc::statvfs = std::mem::zeroed();
        if libc::statvfs(cpath.as_ptr(), &mut st) != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(st.f_bavail as u64 * st.f_frsize as u64)
    }
}

/// Whether `e` says the disk is full.
pub(super) fn is_disk_full(e: &StoreError) -> bool {
    let io = match e {
        StoreError::Io { source, .. } => source,
        StoreError::IndexOpen {
            source: sled::Error::Io(io),
            ..
        }
        | StoreError::Index {
            source: sled::Error::Io(io),
            ..
        } => io,
        _ => return false,
    };
    io.kind() == ErrorKind::StorageFull
}

/// Bytes of `path` that hold data: its length less its holes, as
/// `SEEK_DATA`/`SEEK_HOLE` see them. Unlike the blocks the device counts,
/// this does not depend on preallocation past the end or on when delayed
/// allocation happens, so two stores given the same writes and the same
/// punches report the same figure. A file system without `SEEK_DATA`
/// reports the whole length.
pub(super) fn data_bytes(path: &Path) -> u64 {
    use std::os::fd::AsRawFd;
    let Ok(file) = File::open(path) else {
        return 0;
    };
    let len = file.metadata().map_or(0, |m| m.len());
    let fd = file.as_raw_fd();
    let mut at: libc::off_t = 0;
    let mut data = 0u64;
    loop {
        // SAFETY: plain syscalls on a descriptor we own.
        let start = unsafe { libc::lseek(fd, at, libc::SEEK_DATA) };
        if start < 0 {
            let e = std::io::Error::last_os_error();
            return if e.raw_os_error() == Some(libc::ENXIO) {
                data
            } else {
                len
            };
        }
        // SAFETY: as above.
        let end = unsafe { libc::lseek(fd, start, libc::SEEK_HOLE) };
        if end <= start {
            return data + len.saturating_sub(start as u64);
        }
        data += (end - start) as u64;
        at = end;
    }
}

/// Gives the space of `file`'s bytes `from..to` back to the file system
/// (a hole: reads return zeros); the file keeps its length.
pub(super) fn punch_hole(file: &File, from: u64, to: u64) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    if to <= from {
        return Ok(());
    }
    let (Ok(at), Ok(len)) = (
        libc::off_t::try_from(from),
        libc::off_t::try_from(to - from),
    ) else {
        return Err(ErrorKind::InvalidInput.into());
    };
    // SAFETY: plain syscall on a descriptor we own.
    let r = unsafe {
        libc::fallocate(
            file.as_raw_fd(),
            libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE,
            at,
            len,
        )
    };
    if r != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// The reserve file of a store.
pub(super) struct Reserve {
    path: PathBuf,
    bytes: u64,
}

impl Reserve {
    /// The reserve of `bytes` (0: none) in the store directory `dir`.
    pub fn new(dir: &Path, bytes: u64) -> Reserve {
        Reserve {
            path: dir.join("reserve"),
            bytes,
        }
    }

    fn dir(&self) -> &Path {
        self.path.parent().unwrap_or(Path::new("."))
    }

    /// Allocates the reserve if it is missing and twice its size is free.
    pub fn restore(&self) {
        if self.bytes == 0 || self.path.exists() {
            return;
        }
        if free_bytes(self.dir()).map_or(true, |free| free < 2 * self.bytes) {
            return;
        }
        let tmp = self.path.with_extension("tmp");
        let made = (|| {
            let f = File::create(&tmp)?;
            allocate(&f, self.bytes)?;
            f.sync_all()?;
            std::fs::rename(&tmp, &self.path)?;
            File::open(self.dir())?.sync_all()
        })();
        if let Err(e) = made {
            let _ = std::fs::remove_file(&tmp);
            tracing::info!(reserve = %self.path.display(), "cannot allocate the space reserve: {e}");
        }
    }

    /// Deletes the reserve, so work that frees space can write on a full
    /// disk; returns whether there was one.
    pub fn release(&self) -> bool {
        if std::fs::remove_file(&self.path).is_err() {
            return false;
        }
        tracing::info!(reserve = %self.path.display(), "disk full: released the space reserve");
        if let Err(e) = File::open(self.dir()).and_then(|d| d.sync_all()) {
            tracing::info!("syncing {}: {e}", self.dir().display());
        }
        true
    }

    /// Releases the reserve if less than its size (or `needed`) is free.
    pub fn release_if_short(&self, needed: u64) {
        let want = self.bytes.max(needed);
        if free_bytes(self.dir()).is_ok_and(|free| free < want) {
            self.release();
        }
    }
}

/// Allocates `bytes` for `f`: `fallocate`, or zeros written where the file
/// system does not offer it.
fn allocate(f: &File, bytes: u64) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::fd::AsRawFd;
    let len =
        libc::off_t::try_from(bytes).map_err(|_| std::io::Error::from(ErrorKind::InvalidInput))?;
    // SAFETY: plain syscall on a descriptor we own.
    if unsafe { libc::fallocate(f.as_raw_fd(), 0, 0, len) } == 0 {
        return Ok(());
    }
    let e = std::io::Error::last_os_error();
    if e.raw_os_error() != Some(libc::EOPNOTSUPP) {
        return Err(e);
    }
    let zeros = vec![0u8; 1 << 20];
    let mut left = bytes;
    let mut w = f;
    while left > 0 {
        let n = left.min(zeros.len() as u64) as usize;
        w.write_all(&zeros[..n])?;
        left -= n as u64;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Bytes of `path` the device has allocated (what these tests check).
    fn allocated_bytes(path: &Path) -> u64 {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata(path).map_or(0, |m| m.blocks() * 512)
    }

    #[test]
    fn the_reserve_is_allocated_released_and_restored() {
        let dir = tempfile::tempdir().unwrap();
        let r = Reserve::new(dir.path(), 1 << 20);
        r.restore();
        let path = dir.path().join("reserve");
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 1 << 20);
        assert!(allocated_bytes(&path) >= 1 << 20);
        assert!(r.release());
        assert!(!path.exists());
        assert!(!r.release());
        r.restore();
        assert!(path.exists());
    }

    #[test]
    fn a_punched_hole_gives_space_back_and_keeps_the_length() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, vec![7u8; 1 << 20]).unwrap();
        let f = File::options().write(true).open(&path).unwrap();
        f.sync_all().unwrap();
        let before = allocated_bytes(&path);
        match punch_hole(&f, 4096, 1 << 20) {
            Err(e) if e.raw_os_error() == Some(libc::EOPNOTSUPP) => return,
            r => r.unwrap(),
        }
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 1 << 20);
        assert!(allocated_bytes(&path) < before / 2, "{before}");
        let bytes = std::fs::read(&path).unwrap();
        assert!(bytes[..4096].iter().all(|&b| b == 7));
        assert!(bytes[4096..].iter().all(|&b| b == 0));
    }
}

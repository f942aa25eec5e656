//! `O_DIRECT` writes for `put_many_uncached`: records staged in an aligned
//! buffer and written around the page cache.
//!
//! Why: a receiving node writes what it fetched and rarely reads it back
//! soon. Through the page cache each byte is copied into freshly allocated
//! cache pages, the largest single cost of a receiver (a quarter of its
//! CPU in a 1 GiB fetch, more on VMs that back guest memory lazily); a
//! direct write moves the bytes from one reused buffer to the device.
//!
//! How: `O_DIRECT` wants aligned offsets and lengths, records are not
//! aligned. Staging starts at the aligned offset at or before the end of
//! the segment, with the bytes already there read back into the buffer's
//! head; records are copied in behind them, and the buffer goes out whole
//! each time it fills. [`Writer::drain`] writes the last partial block
//! padded with zeros and truncates the padding off, so outside staging the
//! file ends exactly at `len`, as the buffered path expects.

use super::segment::Writer;
use std::fs::{File, OpenOptions};
use std::path::Path;

/// Offset, length and memory alignment of direct writes (a multiple of
/// every logical block size Linux file systems report).
const DIRECT_ALIGN: usize = 4096;

/// Size of the staging buffer, written out whole each time it fills.
const DIRECT_BUF_BYTES: usize = 4 << 20;

/// Records staged for `O_DIRECT` writes.
pub(super) struct Direct {
    /// Backing memory of `buf`, over-allocated to align it.
    mem: Vec<u8>,
    /// Offset of the aligned [`DIRECT_BUF_BYTES`] window in `mem`.
    at: usize,
    /// `O_RDWR | O_DIRECT` handle on segment `.0`, opened on first use.
    file: Option<(u32, File)>,
    /// Whether records are staged (then `start + filled == Writer::len`).
    staging: bool,
    /// File offset of the buffer's first byte (aligned).
    start: u64,
    /// Bytes of the buffer in use.
    filled: usize,
    /// `Writer::len` when staging began: bytes before it are another's.
    began_at: u64,
}

impl Direct {
    /// Direct writes for segment files like `segment`, if its file system
    /// takes them.
    pub fn if_supported(segment: &Path) -> Option<Direct> {
        direct_io_works(segment).then(|| Direct {
            mem: Vec::new(),
            at: 0,
            file: None,
            staging: false,
            start: 0,
            filled: 0,
            began_at: 0,
        })
    }

    fn buf(&mut self) -> &mut [u8] {
        if self.mem.is_empty() {
            self.mem = vec![0; DIRECT_BUF_BYTES + DIRECT_ALIGN];
            self.at = self.mem.as_ptr().align_offset(DIRECT_ALIGN);
        }
        &mut self.mem[self.at..self.at + DIRECT_BUF_BYTES]
    }
}

/// Whether `file` takes direct writes with [`DIRECT_ALIGN`]: its file
/// system reports its direct I/O alignment (statx) and is not tmpfs, where
/// `O_DIRECT` is accepted but still copies into memory.
fn direct_io_works(file: &Path) -> bool {
    use std::os::unix::ffi::OsStrExt;
    let Ok(cpath) = std::ffi::CString::new(file.as_os_str().as_bytes()) else {
        return false;
    };
    // SAFETY: plain syscalls filling structs we own; the path is a valid
    // NUL-terminated string that outlives the calls.
    unsafe {
        let mut fs: libc::statfs = std::mem::zeroed();
        if libc::statfs(cpath.as_ptr(), &mut fs) != 0 || fs.f_type == libc::TMPFS_MAGIC {
            return false;
        }
        let mut stx: libc::statx = std::mem::zeroed();
        if libc::statx(
            libc::AT_FDCWD,
            cpath.as_ptr(),
            0,
            libc::STATX_DIOALIGN,
            &mut stx,
        ) != 0
            || stx.stx_mask & libc::STATX_DIOALIGN == 0
        {
            return false;
        }
        let fits = |a: u32| a != 0 && DIRECT_ALIGN.is_multiple_of(a as usize);
        fits(stx.stx_dio_offset_align) && fits(stx.stx_dio_mem_align)
    }
}

/// `pwrite` of all of `buf` at `offset`, retried on interruption.
fn pwrite_all(file: &File, mut buf: &[u8], mut offset: u64) -> std::io::Result<()> {
    use std::os::unix::fs::FileExt;
    while !buf.is_empty() {
        match file.write_at(buf, offset) {
            Ok(0) => return Err(std::io::ErrorKind::WriteZero.into()),
            Ok(n) => {
                buf = &buf[n..];
                offset += n as u64;
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

impl Writer {
    /// Copies `parts` (one record) into the staging buffer, starting
    /// staging first if needed, and writes the buffer out each time it
    /// fills. The caller advances `len`.
    pub(super) fn stage(&mut self, parts: [&[u8]; 2]) -> std::io::Result<()> {
        let (id, len) = (self.id, self.len);
        let Some(d) = self.direct.as_mut() else {
            return Err(std::io::Error::other("direct writes are off"));
        };
        if d.file.as_ref().map(|(f, _)| *f) != Some(id) {
            use std::os::unix::fs::OpenOptionsExt;
            let f = OpenOptions::new()
                .read(true)
                .write(true)
                .custom_flags(libc::O_DIRECT)
                .open(&self.path)?;
            d.file = Some((id, f));
        }
        if !d.staging {
            let start = len - len % DIRECT_ALIGN as u64;
            let head = (len - start) as usize;
            if head > 0 {
                // The partial block at the end is rewritten with what
                // follows it: read it back (a direct read of the whole
                // aligned block, which ends early at the end of the file).
                d.buf();
                let Some((_, file)) = &d.file else {
                    return Err(std::io::Error::other("direct handle missing"));
                };
                let block = &mut d.mem[d.at..d.at + DIRECT_ALIGN];
                let n = loop {
                    use std::os::unix::fs::FileExt;
                    match file.read_at(block, start) {
                        Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                        other => break other?,
                    }
                };
                if n < head {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::UnexpectedEof,
                        format!("segment shorter than {len} bytes"),
                    ));
                }
            }
            d.start = start;
            d.filled = head;
            d.began_at = len;
            d.staging = true;
        }
        for part in parts {
            let mut rest = part;
            while !rest.is_empty() {
                let filled = d.filled;
                let buf = d.buf();
                let n = (buf.len() - filled).min(rest.len());
                buf[filled..filled + n].copy_from_slice(&rest[..n]);
                d.filled += n;
                rest = &rest[n..];
                if d.filled == DIRECT_BUF_BYTES {
                    let start = d.start;
                    let buf = &d.mem[d.at..d.at + DIRECT_BUF_BYTES];
                    let Some((_, file)) = &d.file else {
                        return Err(std::io::Error::other("direct handle missing"));
                    };
                    pwrite_all(file, buf, start)?;
                    d.start += DIRECT_BUF_BYTES as u64;
                    d.filled = 0;
                }
            }
        }
        Ok(())
    }

    /// Writes out what is staged (the last block padded with zeros, the
    /// padding then truncated away) and ends staging. No-op when nothing is
    /// staged. Durability still needs the caller's `sync_data`.
    pub(super) fn drain(&mut self) -> std::io::Result<()> {
        let Some(d) = self.direct.as_mut().filter(|d| d.staging) else {
            return Ok(());
        };
        let (start, filled) = (d.start, d.filled);
        let padded = filled.div_ceil(DIRECT_ALIGN) * DIRECT_ALIGN;
        if padded > 0 {
            let buf = d.buf();
            buf[filled..padded].fill(0);
            let buf = &d.mem[d.at..d.at + padded];
            let Some((_, file)) = &d.file else {
                return Err(std::io::Error::other("direct handle missing"));
            };
            pwrite_all(file, buf, start)?;
        }
        if padded != filled {
            self.out.set_len(start + filled as u64)?;
        }
        if let Some(d) = self.direct.as_mut() {
            d.staging = false;
        }
        self.writeback_from = self.len;
        Ok(())
    }

    /// After a failed staged write: forgets what was staged and cuts the
    /// file back to what is certainly written, so the next append starts
    /// on solid ground. Only the failing call's records are lost (it holds
    /// the writer throughout), and it never indexed them.
    pub(super) fn abandon_staged(&mut self) {
        let Some(d) = self.direct.as_mut().filter(|d| d.staging) else {
            return;
        };
        d.staging = false;
        let keep = d.began_at.max(d.start);
        self.len = keep;
        self.writeback_from = keep;
        if let Err(e) = self.out.set_len(keep) {
            tracing::warn!("cutting back segment {} after a failed write: {e}", self.id);
        }
    }
}

//! Segment files: block bodies appended back to back, and read back by
//! location.
//!
//! A segment is `segments/NNNNNNNN.seg` (its id, eight decimal digits), a
//! run of records, each a checksummed header and the block body:
//!
//! ```text
//! magic "CRB2" (4) | multihash length u16 LE | body length u32 LE | multihash
//!   | CRC-32 (IEEE) u32 LE of everything before it in the header | body
//! ```
//!
//! The header names each body, so a segment describes itself without the
//! index: the index can be rebuilt from the segments alone (`rebuild.rs`),
//! and a damaged header is detected, not trusted. The index points straight
//! at the body; a read fetches header and body in one `pread` and checks
//! the header against the multihash and length asked for.
//!
//! Appending ([`Writer`]): one `writev` per record (header + body, no
//! user-space copy); every [`WRITEBACK_BYTES`] the kernel is asked to start
//! writing back, so the disk stays busy and a commit's fsync waits only for
//! the tail. Records of `put_many_uncached` go around the page cache
//! instead (`direct_io.rs`). Nothing is durable until [`Writer::make_durable`].
//!
//! Reading ([`Segments::read`]): one `pread` of the body into a buffer that
//! is not zero-filled first, through a cached read-only handle per segment.

use super::direct_io::Direct;
use super::index::Location;
use super::io_err;
use crate::block::{Cid, MAX_BLOCK_BYTES};
use crate::store::{Corruption, Result, StoreError};
use bytes::Bytes;
use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

/// Dead stretches shorter than this are left for compaction (a hole frees
/// whole pages only).
const PUNCH_MIN_BYTES: u64 = 8192;

/// How many appended bytes trigger an asynchronous writeback request.
const WRITEBACK_BYTES: u64 = 8 << 20;

/// First bytes of every record header (format 2 of the segment files).
pub(super) const RECORD_MAGIC: [u8; 4] = *b"CRB2";

/// Header bytes before the multihash: magic, multihash length, body length.
const HEADER_FIXED: usize = 10;

/// Longest multihash a header may name (the store's `Multihash<64>`, with
/// its code and length varints).
pub(super) const MAX_MULTIHASH_BYTES: usize = 64 + 2 * 9;

/// Bytes of a record header naming a multihash of `mh_len` bytes.
pub(super) fn header_bytes(mh_len: usize) -> u64 {
    (HEADER_FIXED + mh_len + 4) as u64
}

/// Bytes a record takes: header and body.
pub(super) fn record_bytes(mh_len: usize, body_len: usize) -> u64 {
    header_bytes(mh_len) + body_len as u64
}

/// The header of a record holding `body_len` bytes of the block `mh`.
fn encode_header(mh: &[u8], body_len: u32) -> Vec<u8> {
    let mut h = Vec::with_capacity(header_bytes(mh.len()) as usize);
    h.extend_from_slice(&RECORD_MAGIC);
    h.extend_from_slice(&(mh.len() as u16).to_le_bytes());
    h.extend_from_slice(&body_len.to_le_bytes());
    h.extend_from_slice(mh);
    let crc = crc32fast::hash(&h);
    h.extend_from_slice(&crc.to_le_bytes());
    h
}

/// What a valid record header says: the multihash length and body length.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Header {
    /// Bytes of the multihash (which follows the fixed part).
    pub mh_len: usize,
    /// Bytes of the body (which follows the header).
    pub body_len: u32,
}

/// Parses the fixed part of a header (`buf` holds at least
/// [`HEADER_FIXED`] bytes): `None` when the magic or a length is wrong.
pub(super) fn parse_fixed(buf: &[u8]) -> Option<Header> {
    if buf.len() < HEADER_FIXED || buf[..4] != RECORD_MAGIC {
        return None;
    }
    let mh_len = u16::from_le_bytes([buf[4], buf[5]]) as usize;
    let body_len = u32::from_le_bytes([buf[6], buf[7], buf[8], buf[9]]);
    (mh_len > 0 && mh_len <= MAX_MULTIHASH_BYTES && body_len as usize <= MAX_BLOCK_BYTES)
        .then_some(Header { mh_len, body_len })
}

/// Checks a whole header in `buf` (which starts with it): its fixed part
/// and its checksum. Returns it and the multihash bytes it names.
pub(super) fn parse_header(buf: &[u8]) -> Option<(Header, &[u8])> {
    let h = parse_fixed(buf)?;
    let crc_at = HEADER_FIXED + h.mh_len;
    let stored = buf.get(crc_at..crc_at + 4)?;
    let crc = u32::from_le_bytes(stored.try_into().ok()?);
    (crc32fast::hash(&buf[..crc_at]) == crc).then(|| (h, &buf[HEADER_FIXED..crc_at]))
}

/// The segment files of one store, with a read handle cached per segment.
pub(super) struct Segments {
    dir: PathBuf,
    pub(super) readers: RwLock<HashMap<u32, Arc<File>>>,
}

impl Segments {
    /// The segments in directory `dir` (which must exist).
    pub fn new(dir: PathBuf) -> Segments {
        Segments {
            dir,
            readers: RwLock::new(HashMap::new()),
        }
    }

    /// The segments directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The file of segment `id`.
    pub fn path(&self, id: u32) -> PathBuf {
        self.dir.join(format!("{id:08}.seg"))
    }

    /// The size of segment `id`'s file (0 when it cannot be read).
    pub fn file_bytes(&self, id: u32) -> u64 {
        std::fs::metadata(self.path(id)).map_or(0, |m| m.len())
    }

    /// Opens segment `id` for appending, creating it; `fresh` empties it.
    /// Direct writes are off until the caller hands the writer a [`Direct`].
    pub fn open_writer(&self, id: u32, fresh: bool) -> Result<Writer> {
        let path = self.path(id);
        // Append mode: the position follows the end even after `set_len`.
        let out = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(io_err(&path))?;
        if fresh {
            out.set_len(0).map_err(io_err(&path))?;
        }
        let len = out.metadata().map_err(io_err(&path))?.len();
        Ok(Writer {
            id,
            path,
            out,
            len,
            writeback_from: len,
            direct: None,
            uncommitted: Vec::new(),
            appended: 0,
            committed: 0,
            committed_at: None,
        })
    }

    fn reader(&self, id: u32, cid: &Cid) -> Result<Arc<File>> {
        if let Some(f) = self
            .readers
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&id)
        {
            return Ok(Arc::clone(f));
        }
        let path = self.path(id);
        let f = Arc::new(File::open(&path).map_err(|source| StoreError::Io {
            path,
            cid: Some(*cid),
            source,
        })?);
        self.readers
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id, Arc::clone(&f));
        Ok(f)
    }

    /// Reads the body at `loc` with its record header, and checks the
    /// header names `cid`'s multihash and `loc`'s length; the body itself is
    /// unverified. A length no block can have or a header that does not
    /// match is [`StoreError::Corrupt`]; a read that fails or comes back
    /// short is [`StoreError::Io`].
    ///
    /// The bytes are read (`pread`) into one buffer that becomes the
    /// returned [`Bytes`] as it is: the hash is verified over it, and the
    /// gateway, RPC and S3 hand it (or slices of it) to the socket without
    /// another copy. Segments are deliberately not memory-mapped, though a
    /// mapping would save the copy out of the page cache: the store changes
    /// its files in place under readers. The sweep punches holes over dead
    /// records (a mapped page there reads as zeros: bytes verified once
    /// would change while being sent), compaction empties the active
    /// segment with `set_len(0)` and a failed append or a direct write's
    /// padding is cut off with `set_len` (a mapped page past the new end
    /// raises SIGBUS, killing the daemon). A `pread` sees either the whole
    /// record or an error.
    pub fn read(&self, loc: Location, cid: &Cid) -> Result<Bytes> {
        if loc.len as usize > MAX_BLOCK_BYTES {
            return Err(StoreError::Corrupt {
                cid: *cid,
                reason: Corruption::ImpossibleLength {
                    len: loc.len as u64,
                    max: MAX_BLOCK_BYTES,
                },
            });
        }
        let mh = cid.hash().to_bytes();
        let head = header_bytes(mh.len());
        let bad_header = StoreError::Corrupt {
            cid: *cid,
            reason: Corruption::BadRecordHeader,
        };
        let Some(start) = loc.offset.checked_sub(head) else {
            return Err(bad_header);
        };
        let file = self.reader(loc.segment, cid)?;
        let buf =
            pread_exact(&file, head as usize + loc.len as usize, start).map_err(|source| {
                StoreError::Io {
                    path: self.path(loc.segment),
                    cid: Some(*cid),
                    source,
                }
            })?;
        match parse_header(&buf) {
            Some((h, named)) if named == mh && h.body_len == loc.len => {
                Ok(Bytes::from(buf).slice(head as usize..))
            }
            _ => Err(bad_header),
        }
    }

    /// Bytes of segment `id`'s file that hold data (holes not counted;
    /// see [`super::space::data_bytes`]).
    pub fn data_bytes(&self, id: u32) -> u64 {
        super::space::data_bytes(&self.path(id))
    }

    /// Punches holes where segment `id`'s first `size` bytes hold none of
    /// the `live` records (start, end): dead records give their space back
    /// in place. A file system without holes leaves them to compaction.
    pub fn punch_dead(&self, id: u32, size: u64, live: &[(u64, u64)]) -> Result<()> {
        let mut live = live.to_vec();
        live.sort_unstable();
        let mut gaps = vec![];
        let mut at = 0;
        for &(start, end) in &live {
            if start > at {
                gaps.push((at, start.min(size)));
            }
            at = at.max(end);
        }
        if size > at {
            gaps.push((at, size));
        }
        gaps.retain(|(start, end)| end.saturating_sub(*start) >= PUNCH_MIN_BYTES);
        if gaps.is_empty() {
            return Ok(());
        }
        let path = self.path(id);
        let file = OpenOptions::new()
            .write(true)
            .open(&path)
            .map_err(io_err(&path))?;
        for (start, end) in gaps {
            match super::space::punch_hole(&file, start, end) {
                Ok(()) => {}
                Err(e) if e.raw_os_error() == Some(libc::EOPNOTSUPP) => return Ok(()),
                Err(e) => return Err(io_err(&path)(e)),
            }
        }
        Ok(())
    }

    /// Deletes segment `id`'s file, durably.
    pub fn delete(&self, id: u32) -> Result<()> {
        self.readers
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&id);
        let path = self.path(id);
        std::fs::remove_file(&path).map_err(io_err(&path))?;
        self.sync_dir()
    }

    /// Makes file creations and deletions in the directory durable.
    pub fn sync_dir(&self) -> Result<()> {
        File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .map_err(io_err(&self.dir))
    }
}

/// The segment being appended to.
pub(super) struct Writer {
    /// Which segment.
    pub(super) id: u32,
    /// Its file.
    pub(super) path: PathBuf,
    /// Append-mode handle.
    pub(super) out: File,
    /// Bytes in the segment, staged ones included.
    pub(super) len: u64,
    /// Offset up to which asynchronous writeback was requested.
    pub(super) writeback_from: u64,
    /// `None` when direct writes are off or the file system refuses them.
    pub(super) direct: Option<Direct>,
    /// Records appended by puts that do not hold the writer between
    /// records, not indexed yet: the next commit, whoever makes it,
    /// indexes them (a group commit: concurrent puts share its fsync).
    pub(super) uncommitted: Vec<(crate::block::Multihash, Location)>,
    /// Records appended to [`uncommitted`](Self::uncommitted) so far (a
    /// put's last one tells it whether a commit has covered it yet).
    pub(super) appended: u64,
    /// [`appended`](Self::appended) as of the last commit.
    pub(super) committed: u64,
    /// The segment and length the index last recorded, if it did since
    /// this writer was opened: a flush with nothing appended after it has
    /// nothing to do.
    pub(super) committed_at: Option<(u32, u64)>,
}

impl Writer {
    /// Appends one record (staged for a direct write when `direct` and the
    /// writer has them); returns where its body went.
    pub fn append(&mut self, mh: &[u8], body: &[u8], direct: bool) -> Result<Location> {
        let header = encode_header(mh, body.len() as u32);
        let written = if direct && self.direct.is_some() {
            self.stage([&header, body])
        } else {
            self.drain().and_then(|()| {
                write_all_vectored(&mut self.out, &header, body).inspect_err(|_| {
                    // A record half written (a full disk) is cut off, so
                    // the next one lands where its location says.
                    if let Err(e) = self.out.set_len(self.len) {
                        tracing::warn!("cutting a failed record off segment {}: {e}", self.id);
                    }
                })
            })
        };
        written.map_err(io_err(&self.path))?;
        let loc = Location {
            segment: self.id,
            offset: self.len + header.len() as u64,
            len: body.len() as u32,
        };
        self.len += record_bytes(mh.len(), body.len());
        if !direct && self.len - self.writeback_from >= WRITEBACK_BYTES {
            self.start_writeback();
        }
        Ok(loc)
    }

    /// Writes out anything staged and fsyncs the segment's data.
    pub fn make_durable(&mut self) -> Result<()> {
        self.drain().map_err(io_err(&self.path))?;
        self.out.sync_data().map_err(io_err(&self.path))?;
        self.writeback_from = self.len;
        Ok(())
    }

    /// Empties the segment, durably; returns how many bytes it held.
    pub fn restart_empty(&mut self) -> Result<u64> {
        let before = self.len;
        self.drain().map_err(io_err(&self.path))?;
        self.out.set_len(0).map_err(io_err(&self.path))?;
        self.out.sync_all().map_err(io_err(&self.path))?;
        self.len = 0;
        self.writeback_from = 0;
        Ok(before)
    }

    /// Starts writeback of what was appended since the last request
    /// (`sync_file_range(SYNC_FILE_RANGE_WRITE)`: asynchronous, a hint).
    fn start_writeback(&mut self) {
        use std::os::fd::AsRawFd;
        let n = self.len - self.writeback_from;
        if n == 0 {
            return;
        }
        // SAFETY: plain syscall on a file descriptor we own; a failure only
        // means the hint is ignored, durability comes from the fsync.
        unsafe {
            libc::sync_file_range(
                self.out.as_raw_fd(),
                self.writeback_from as libc::off64_t,
                n as libc::off64_t,
                libc::SYNC_FILE_RANGE_WRITE,
            );
        }
        self.writeback_from = self.len;
    }
}

/// Writes `a` then `b` with as few `writev` calls as the kernel allows.
fn write_all_vectored(out: &mut File, a: &[u8], b: &[u8]) -> std::io::Result<()> {
    use std::io::IoSlice;
    let (mut a, mut b) = (a, b);
    while !a.is_empty() || !b.is_empty() {
        let n = match out.write_vectored(&[IoSlice::new(a), IoSlice::new(b)]) {
            Ok(0) => return Err(std::io::ErrorKind::WriteZero.into()),
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        let from_a = n.min(a.len());
        a = &a[from_a..];
        b = &b[n - from_a..];
    }
    Ok(())
}

/// Reads exactly `len` bytes at `offset` into a fresh buffer without
/// zero-filling it first (profiling showed the memset at 5% of `cat`).
fn pread_exact(file: &File, len: usize, offset: u64) -> std::io::Result<Vec<u8>> {
    use std::os::fd::AsRawFd;
    let mut buf: Vec<u8> = Vec::with_capacity(len);
    let mut done = 0;
    while done < len {
        let at = offset
            .checked_add(done as u64)
            .and_then(|o| libc::off_t::try_from(o).ok())
            .ok_or_else(|| std::io::Error::other("offset out of range"))?;
        // SAFETY: pread writes at most `len - done` bytes into the spare
        // capacity starting at `done`, which the Vec owns.
        let n = unsafe {
            libc::pread(
                file.as_raw_fd(),
                buf.as_mut_ptr().add(done).cast(),
                len - done,
                at,
            )
        };
        if n < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        done += n as usize;
    }
    // SAFETY: the loop above initialised all `len` bytes.
    unsafe { buf.set_len(len) };
    Ok(buf)
}

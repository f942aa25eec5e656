//! Disk store: block bodies appended to segment files, a sled index.
//!
//! Layout under the store directory:
//!
//! ```text
//! store.lock            exclusive OS lock held while the store is open
//! segments/NNNNNNNN.seg block records, appended
//! index/                sled database (one tree, prefixed keys)
//! ```
//!
//! Segment record: `[u32 LE multihash length][multihash][u32 LE body length][body]`.
//! The header lets a segment be read without the index (for a future
//! rebuild); the index points straight at the body.
//!
//! Index keys (one tree, so one `apply_batch` is atomic across them):
//! - `b` + multihash → segment u32 LE, body offset u64 LE, body length u32 LE
//! - `p` + CID bytes → pin kind (1 recursive, 2 direct)
//! - `s` + segment id u32 BE → committed length u64 LE
//!
//! Write order (the crash-safety contract): records are appended, the
//! segment is fsynced, then ONE sled batch records the new entries together
//! with the segment's committed length, then sled is flushed. Pins are
//! written only after the blocks they reach were committed (callers do that).
//!
//! Recovery on open: a segment longer than its committed length is
//! truncated to it (a crash between append and commit); a segment with no
//! committed length at all (created or compacted-away but not committed) is
//! deleted. New appends continue in the highest committed segment.
//!
//! Compaction (in `sweep`) copies the live records of a sparse segment to
//! the active one, commits the new locations and drops the old segment's
//! length key in one batch, and only then deletes the old file.

use super::{
    PinKind, Result, SegmentUsage, Store, StoreError, StoreStat, StoredBlock, SweepReport,
};
use crate::block::{verify, Block, Cid, Multihash, MAX_BLOCK_BYTES};
use bytes::Bytes;
use std::collections::{HashMap, HashSet};
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};

const BLOCK: u8 = b'b';
const PIN: u8 = b'p';
const META: u8 = b'm';
const SEGMENT: u8 = b's';

/// Tuning of the disk store (see `config.toml` `[store]`).
#[derive(Clone, Debug)]
pub struct DiskStoreOptions {
    /// Start a new segment file past this many bytes.
    pub segment_max_bytes: u64,
    /// `put_many` commits (fsync + index) every this many new bytes.
    pub commit_bytes: u64,
    /// `sweep` compacts a segment whose live share falls below this.
    pub compact_live_ratio: f64,
    /// sled page cache size in bytes.
    pub cache_bytes: u64,
    /// Most bytes of block data stored (0: no limit); a write that would
    /// pass it fails with `QuotaExceeded` and stores nothing of that block.
    pub max_bytes: u64,
    /// Write blocks that are not read back soon (`put_many_uncached`: those
    /// fetched from peers) around the page cache with `O_DIRECT`, where the
    /// file system supports it (not tmpfs).
    pub direct_io: bool,
}

impl Default for DiskStoreOptions {
    fn default() -> Self {
        DiskStoreOptions {
            segment_max_bytes: 256 << 20,
            commit_bytes: 64 << 20,
            compact_live_ratio: 0.5,
            max_bytes: 0,
            cache_bytes: 16 << 20,
            direct_io: true,
        }
    }
}

/// Where a block body lives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Location {
    segment: u32,
    offset: u64,
    len: u32,
}

impl Location {
    fn encode(&self) -> [u8; 16] {
        let mut v = [0u8; 16];
        v[..4].copy_from_slice(&self.segment.to_le_bytes());
        v[4..12].copy_from_slice(&self.offset.to_le_bytes());
        v[12..].copy_from_slice(&self.len.to_le_bytes());
        v
    }

    fn decode(v: &[u8]) -> Option<Location> {
        if v.len() != 16 {
            return None;
        }
        Some(Location {
            segment: u32::from_le_bytes(v[..4].try_into().ok()?),
            offset: u64::from_le_bytes(v[4..12].try_into().ok()?),
            len: u32::from_le_bytes(v[12..].try_into().ok()?),
        })
    }
}

fn block_key(mh: &Multihash) -> Vec<u8> {
    let mut k = Vec::with_capacity(40);
    k.push(BLOCK);
    k.extend_from_slice(&mh.to_bytes());
    k
}

fn segment_key(id: u32) -> [u8; 5] {
    let mut k = [SEGMENT; 5];
    k[1..].copy_from_slice(&id.to_be_bytes());
    k
}

fn pin_key(cid: &Cid) -> Vec<u8> {
    let mut k = vec![PIN];
    k.extend_from_slice(&cid.to_bytes());
    k
}

/// Called with (key without prefix, value) for each index entry.
type EntryVisitor<'a> = dyn FnMut(&[u8], &[u8]) -> Result<()> + 'a;

/// The segment being appended to. Records go out with one `writev` each
/// (header + body, no user-space copy); every [`WRITEBACK_BYTES`] the
/// kernel is asked to start writing them back, so the disk stays busy and a
/// commit's fsync waits only for the tail. Records of `put_many_uncached`
/// are staged in [`Direct`] instead and written around the page cache.
struct Writer {
    id: u32,
    out: File,
    /// Bytes in the segment, staged ones included.
    len: u64,
    /// Offset up to which asynchronous writeback was requested.
    writeback_from: u64,
    /// `None` when direct writes are off or the file system refuses them.
    direct: Option<Direct>,
}

/// How many appended bytes trigger an asynchronous writeback request.
const WRITEBACK_BYTES: u64 = 8 << 20;

/// Offset, length and memory alignment of direct writes (a multiple of
/// every logical block size Linux file systems report).
const DIRECT_ALIGN: usize = 4096;

/// Size of the staging buffer, written out whole each time it fills.
const DIRECT_BUF_BYTES: usize = 4 << 20;

/// Records staged for `O_DIRECT` writes.
///
/// Why: a receiving node writes what it fetched and rarely reads it back
/// soon. Through the page cache each byte is copied into freshly allocated
/// cache pages, the largest single cost of a receiver (a quarter of its
/// CPU in a 1 GiB fetch, more on VMs that back guest memory lazily); a
/// direct write moves the bytes from one reused buffer to the device.
///
/// How: `O_DIRECT` wants aligned offsets and lengths, records are not
/// aligned. Staging starts at the aligned offset at or before the end of
/// the segment, with the bytes already there read back into the buffer's
/// head; records are copied in behind them, and the buffer goes out whole
/// each time it fills. [`Writer::drain`] writes the last partial block
/// padded with zeros and truncates the padding off, so outside staging the
/// file ends exactly at `len`, as the buffered path expects.
struct Direct {
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
    fn new() -> Direct {
        Direct {
            mem: Vec::new(),
            at: 0,
            file: None,
            staging: false,
            start: 0,
            filled: 0,
            began_at: 0,
        }
    }

    fn buf(&mut self) -> &mut [u8] {
        if self.mem.is_empty() {
            self.mem = vec![0; DIRECT_BUF_BYTES + DIRECT_ALIGN];
            self.at = self.mem.as_ptr().align_offset(DIRECT_ALIGN);
        }
        &mut self.mem[self.at..self.at + DIRECT_BUF_BYTES]
    }
}

/// Whether files in `dir` take direct writes with [`DIRECT_ALIGN`]: the file
/// system reports its direct I/O alignment (statx) and is not tmpfs, where
/// `O_DIRECT` is accepted but still copies into memory.
fn direct_io_works(dir: &Path) -> bool {
    use std::os::unix::ffi::OsStrExt;
    let Ok(cpath) = std::ffi::CString::new(dir.as_os_str().as_bytes()) else {
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
    fn new(id: u32, out: File, len: u64, direct: Option<Direct>) -> Self {
        Writer {
            id,
            out,
            len,
            writeback_from: len,
            direct,
        }
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

    /// Copies `parts` (one record) into the staging buffer, starting
    /// staging first if needed, and writes the buffer out each time it
    /// fills. The caller advances `len`.
    fn stage(&mut self, path: &Path, parts: [&[u8]; 2]) -> std::io::Result<()> {
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
                .open(path)?;
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
    fn drain(&mut self) -> std::io::Result<()> {
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
    fn abandon_staged(&mut self) {
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

/// A block store on disk.
pub struct DiskStore {
    dir: PathBuf,
    opts: DiskStoreOptions,
    db: sled::Db,
    writer: Mutex<Writer>,
    readers: RwLock<HashMap<u32, Arc<File>>>,
    _lock: File,
    /// Bytes of indexed block data (counted at open, kept up to date).
    used: std::sync::atomic::AtomicU64,
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> StoreError + '_ {
    move |source| StoreError::Io {
        path: path.to_path_buf(),
        source,
    }
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

fn idx_err(e: sled::Error) -> StoreError {
    StoreError::Index(e.to_string())
}

impl DiskStore {
    /// Opens (creating if needed) the store in `dir`, recovering from any
    /// interrupted write.
    pub fn open(dir: &Path, opts: DiskStoreOptions) -> Result<DiskStore> {
        std::fs::create_dir_all(dir.join("segments")).map_err(io_err(dir))?;
        let lock_path = dir.join("store.lock");
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(io_err(&lock_path))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(StoreError::Locked {
                    path: dir.to_path_buf(),
                })
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(io_err(&lock_path)(e)),
        }
        let db = sled::Config::new()
            .path(dir.join("index"))
            .cache_capacity(opts.cache_bytes)
            .flush_every_ms(None)
            .open()
            .map_err(|e| {
                StoreError::Index(format!("opening {}: {e}", dir.join("index").display()))
            })?;
        let active = Self::recover(dir, &db)?;
        let id = active.unwrap_or(0);
        let path = Self::segment_path_in(dir, id);
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(io_err(&path))?;
        let len = file.metadata().map_err(io_err(&path))?.len();
        let direct = (opts.direct_io && direct_io_works(&path)).then(Direct::new);
        let store = DiskStore {
            dir: dir.to_path_buf(),
            opts,
            db,
            writer: Mutex::new(Writer::new(id, file, len, direct)),
            readers: RwLock::new(HashMap::new()),
            _lock: lock,
            used: std::sync::atomic::AtomicU64::new(0),
        };
        let mut used = 0u64;
        store.scan(BLOCK, &mut |_, v| {
            used += Location::decode(v).map_or(0, |l| l.len as u64);
            Ok(())
        })?;
        store.used.store(used, std::sync::atomic::Ordering::Relaxed);
        if active.is_none() {
            // Record the first segment so recovery keeps it.
            let mut w = store.lock_writer();
            store.commit(&mut w, &mut Vec::new())?;
        }
        Ok(store)
    }

    fn segment_path_in(dir: &Path, id: u32) -> PathBuf {
        dir.join("segments").join(format!("{id:08}.seg"))
    }

    fn segment_path(&self, id: u32) -> PathBuf {
        Self::segment_path_in(&self.dir, id)
    }

    /// Truncates torn tails and deletes uncommitted segments; returns the
    /// highest committed segment.
    fn recover(dir: &Path, db: &sled::Db) -> Result<Option<u32>> {
        let seg_dir = dir.join("segments");
        let mut highest = None;
        let mut changed = false;
        for entry in std::fs::read_dir(&seg_dir).map_err(io_err(&seg_dir))? {
            let entry = entry.map_err(io_err(&seg_dir))?;
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
            match db.get(segment_key(id)).map_err(idx_err)? {
                None => {
                    tracing::info!(segment = id, "removing uncommitted segment");
                    std::fs::remove_file(&path).map_err(io_err(&path))?;
                    changed = true;
                }
                Some(v) => {
                    let committed =
                        v.as_ref().try_into().map(u64::from_le_bytes).map_err(|_| {
                            StoreError::Index(format!("bad committed length for segment {id}"))
                        })?;
                    let len = entry.metadata().map_err(io_err(&path))?.len();
                    if len > committed {
                        tracing::info!(
                            segment = id,
                            len,
                            committed,
                            "truncating torn segment tail"
                        );
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
                            "segment shorter than committed: blocks in it will read as corrupt"
                        );
                    }
                    highest = highest.max(Some(id));
                }
            }
        }
        if changed {
            File::open(&seg_dir)
                .and_then(|d| d.sync_all())
                .map_err(io_err(&seg_dir))?;
        }
        Ok(highest)
    }

    fn lock_writer(&self) -> MutexGuard<'_, Writer> {
        self.writer.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Makes the active segment durable and indexes `pending` with it.
    fn commit(&self, w: &mut Writer, pending: &mut Vec<(Vec<u8>, Location)>) -> Result<()> {
        let path = self.segment_path(w.id);
        w.drain().map_err(io_err(&path))?;
        w.out.sync_data().map_err(io_err(&path))?;
        w.writeback_from = w.len;
        let mut batch = sled::Batch::default();
        for (key, loc) in pending.drain(..) {
            batch.insert(key, &loc.encode()[..]);
        }
        batch.insert(&segment_key(w.id)[..], &w.len.to_le_bytes()[..]);
        self.db.apply_batch(batch).map_err(idx_err)?;
        self.db.flush().map_err(idx_err)?;
        Ok(())
    }

    /// Starts a new segment after committing the current one.
    fn roll(&self, w: &mut Writer, pending: &mut Vec<(Vec<u8>, Location)>) -> Result<()> {
        self.commit(w, pending)?;
        let id =
            w.id.checked_add(1)
                .ok_or_else(|| StoreError::Index("segment ids exhausted".into()))?;
        let path = self.segment_path(id);
        // Append mode: the position follows the end even after `set_len`.
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(io_err(&path))?;
        file.set_len(0).map_err(io_err(&path))?;
        let direct = w.direct.take();
        *w = Writer::new(id, file, 0, direct);
        // Make the new segment known, so recovery keeps it even if empty.
        self.commit(w, pending)
    }

    /// Appends one record (staged for a direct write when `direct`);
    /// returns where its body went.
    fn append(
        &self,
        w: &mut Writer,
        pending: &mut Vec<(Vec<u8>, Location)>,
        mh: &[u8],
        body: &[u8],
        direct: bool,
    ) -> Result<Location> {
        let record = 8 + mh.len() as u64 + body.len() as u64;
        if w.len > 0 && w.len + record > self.opts.segment_max_bytes {
            self.roll(w, pending)?;
        }
        let path = self.segment_path(w.id);
        let mut header = Vec::with_capacity(8 + mh.len());
        header.extend_from_slice(&(mh.len() as u32).to_le_bytes());
        header.extend_from_slice(mh);
        header.extend_from_slice(&(body.len() as u32).to_le_bytes());
        if direct && w.direct.is_some() {
            w.stage(&path, [&header, body]).map_err(io_err(&path))?;
        } else {
            w.drain().map_err(io_err(&path))?;
            write_all_vectored(&mut w.out, &header, body).map_err(io_err(&path))?;
        }
        let loc = Location {
            segment: w.id,
            offset: w.len + 8 + mh.len() as u64,
            len: body.len() as u32,
        };
        w.len += record;
        if !direct && w.len - w.writeback_from >= WRITEBACK_BYTES {
            w.start_writeback();
        }
        Ok(loc)
    }

    fn reader(&self, id: u32) -> Result<Arc<File>> {
        if let Some(f) = self
            .readers
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&id)
        {
            return Ok(Arc::clone(f));
        }
        let path = self.segment_path(id);
        let f = Arc::new(File::open(&path).map_err(io_err(&path))?);
        self.readers
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id, Arc::clone(&f));
        Ok(f)
    }

    fn location(&self, mh: &Multihash) -> Result<Option<Location>> {
        match self.db.get(block_key(mh)).map_err(idx_err)? {
            None => Ok(None),
            Some(v) => Location::decode(&v)
                .map(Some)
                .ok_or_else(|| StoreError::Index(format!("bad index entry for multihash {mh:?}"))),
        }
    }

    fn read_at(&self, loc: Location) -> std::result::Result<Bytes, String> {
        if loc.len as usize > MAX_BLOCK_BYTES {
            return Err(format!(
                "index says {} bytes, over the block limit",
                loc.len
            ));
        }
        let file = self.reader(loc.segment).map_err(|e| e.to_string())?;
        let buf = pread_exact(&file, loc.len as usize, loc.offset).map_err(|e| {
            format!(
                "segment {} offset {} length {}: {e}",
                loc.segment, loc.offset, loc.len
            )
        })?;
        Ok(Bytes::from(buf))
    }

    fn scan(&self, prefix: u8, f: &mut EntryVisitor<'_>) -> Result<()> {
        for item in self.db.scan_prefix([prefix]) {
            let (k, v) = item.map_err(idx_err)?;
            f(&k[1..], &v)?;
        }
        Ok(())
    }

    fn usage(&self) -> Result<Vec<SegmentUsage>> {
        let mut live: HashMap<u32, u64> = HashMap::new();
        self.scan(BLOCK, &mut |_, v| {
            if let Some(loc) = Location::decode(v) {
                *live.entry(loc.segment).or_default() += loc.len as u64;
            }
            Ok(())
        })?;
        let mut out = vec![];
        self.scan(SEGMENT, &mut |k, _| {
            let id = u32::from_be_bytes(
                k.try_into()
                    .map_err(|_| StoreError::Index("bad segment key".into()))?,
            );
            let path = self.segment_path(id);
            let size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
            out.push(SegmentUsage {
                id,
                live_bytes: live.get(&id).copied().unwrap_or(0),
                file_bytes: size,
            });
            Ok(())
        })?;
        Ok(out)
    }

    /// `put_many`, with records staged for direct writes when `direct`
    /// and the store has them.
    fn put_blocks(&self, blocks: &mut dyn Iterator<Item = Block>, direct: bool) -> Result<u64> {
        // Staged records sit in the writer's buffer until it fills or the
        // call commits, so a direct call holds the writer throughout: what
        // is staged is this call's alone, and a failed write costs no other
        // caller anything (`abandon_staged`).
        let mut held = if direct {
            let w = self.lock_writer();
            w.direct.is_some().then_some(w)
        } else {
            None
        };
        let r = self.put_blocks_with(&mut held, blocks);
        if let (Err(_), Some(w)) = (&r, held.as_deref_mut()) {
            w.abandon_staged();
        }
        r
    }

    fn put_blocks_with(
        &self,
        held: &mut Option<MutexGuard<'_, Writer>>,
        blocks: &mut dyn Iterator<Item = Block>,
    ) -> Result<u64> {
        // The held writer, or the lock taken for the moment.
        macro_rules! writer {
            ($slot:ident) => {
                match held.as_deref_mut() {
                    Some(w) => w,
                    None => {
                        $slot = self.lock_writer();
                        &mut *$slot
                    }
                }
            };
        }
        let direct = held.is_some();
        let mut pending: Vec<(Vec<u8>, Location)> = Vec::new();
        let mut in_batch: HashSet<Vec<u8>> = HashSet::new();
        let mut new_bytes = 0u64;
        let mut since_commit = 0u64;
        for block in blocks {
            block.check_size()?;
            let key = block_key(block.cid().hash());
            if in_batch.contains(&key) || self.db.contains_key(&key).map_err(idx_err)? {
                continue;
            }
            if self.opts.max_bytes > 0 {
                let used = self.used.load(std::sync::atomic::Ordering::Relaxed) + new_bytes;
                let adding = block.data().len() as u64;
                if used + adding > self.opts.max_bytes {
                    // What was written before stays consistent: commit it.
                    if !pending.is_empty() {
                        let mut slot;
                        let w = writer!(slot);
                        self.commit(w, &mut pending)?;
                        self.used
                            .fetch_add(new_bytes, std::sync::atomic::Ordering::Relaxed);
                    }
                    return Err(StoreError::QuotaExceeded {
                        used,
                        adding,
                        max: self.opts.max_bytes,
                    });
                }
            }
            let mut slot;
            let w = writer!(slot);
            let loc = self.append(w, &mut pending, &key[1..], block.data(), direct)?;
            pending.push((key.clone(), loc));
            in_batch.insert(key);
            new_bytes += block.data().len() as u64;
            since_commit += block.data().len() as u64;
            if since_commit >= self.opts.commit_bytes {
                self.commit(w, &mut pending)?;
                in_batch.clear();
                since_commit = 0;
            }
        }
        if !pending.is_empty() {
            let mut slot;
            let w = writer!(slot);
            self.commit(w, &mut pending)?;
        }
        self.used
            .fetch_add(new_bytes, std::sync::atomic::Ordering::Relaxed);
        Ok(new_bytes)
    }

    /// Moves the live records of segment `id` into the active segment and
    /// deletes it. Returns bytes freed.
    fn compact_segment(
        &self,
        w: &mut Writer,
        id: u32,
        entries: Vec<(Vec<u8>, Location)>,
    ) -> Result<u64> {
        if w.id == id {
            let mut none = Vec::new();
            self.roll(w, &mut none)?;
        }
        let mut pending = Vec::with_capacity(entries.len());
        for (key, loc) in entries {
            let body = self.read_at(loc).map_err(|reason| {
                StoreError::Index(format!("compacting segment {id}: {reason}"))
            })?;
            let new_loc = self.append(w, &mut pending, &key[1..], &body, false)?;
            pending.push((key, new_loc));
        }
        // One batch: new locations, the active segment's length, and the
        // old segment's length key gone.
        let path = self.segment_path(w.id);
        w.drain().map_err(io_err(&path))?;
        w.out.sync_data().map_err(io_err(&path))?;
        w.writeback_from = w.len;
        let mut batch = sled::Batch::default();
        for (key, loc) in pending.drain(..) {
            batch.insert(key, &loc.encode()[..]);
        }
        batch.insert(&segment_key(w.id)[..], &w.len.to_le_bytes()[..]);
        batch.remove(&segment_key(id)[..]);
        self.db.apply_batch(batch).map_err(idx_err)?;
        self.db.flush().map_err(idx_err)?;
        let old = self.segment_path(id);
        let size = std::fs::metadata(&old).map(|m| m.len()).unwrap_or(0);
        self.readers
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&id);
        std::fs::remove_file(&old).map_err(io_err(&old))?;
        let seg_dir = self.dir.join("segments");
        File::open(&seg_dir)
            .and_then(|d| d.sync_all())
            .map_err(io_err(&seg_dir))?;
        Ok(size)
    }
}

impl Store for DiskStore {
    fn put_many(&self, blocks: &mut dyn Iterator<Item = Block>) -> Result<u64> {
        self.put_blocks(blocks, false)
    }

    fn put_many_uncached(&self, blocks: &mut dyn Iterator<Item = Block>) -> Result<u64> {
        self.put_blocks(blocks, true)
    }

    fn remove(&self, mh: &Multihash) -> Result<bool> {
        let old = self.db.remove(block_key(mh)).map_err(idx_err)?;
        self.db.flush().map_err(idx_err)?;
        if let Some(v) = old {
            let len = Location::decode(&v).map_or(0, |l| l.len as u64);
            self.used.fetch_sub(
                len.min(self.used_bytes()),
                std::sync::atomic::Ordering::Relaxed,
            );
            return Ok(true);
        }
        Ok(false)
    }

    fn used_bytes(&self) -> u64 {
        self.used.load(std::sync::atomic::Ordering::Relaxed)
    }

    fn get(&self, cid: &Cid) -> Result<Option<Block>> {
        let Some(loc) = self.location(cid.hash())? else {
            return Ok(None);
        };
        let data = self
            .read_at(loc)
            .map_err(|reason| StoreError::Corrupt { cid: *cid, reason })?;
        verify(cid, &data).map_err(|e| StoreError::Corrupt {
            cid: *cid,
            reason: e.to_string(),
        })?;
        Ok(Some(Block::new_unchecked(*cid, data)))
    }

    fn has(&self, cid: &Cid) -> Result<bool> {
        self.db.contains_key(block_key(cid.hash())).map_err(idx_err)
    }

    fn size_of(&self, cid: &Cid) -> Result<Option<u64>> {
        Ok(self.location(cid.hash())?.map(|l| l.len as u64))
    }

    fn for_each_block(&self, f: &mut dyn FnMut(StoredBlock) -> Result<()>) -> Result<()> {
        self.scan(BLOCK, &mut |k, v| {
            let multihash = Multihash::from_bytes(k)
                .map_err(|e| StoreError::Index(format!("bad block key: {e}")))?;
            let loc =
                Location::decode(v).ok_or_else(|| StoreError::Index("bad block entry".into()))?;
            f(StoredBlock {
                multihash,
                len: loc.len as u64,
            })
        })
    }

    fn read_raw(&self, mh: &Multihash) -> Result<Option<Bytes>> {
        let Some(loc) = self.location(mh)? else {
            return Ok(None);
        };
        self.read_at(loc)
            .map(Some)
            .map_err(|reason| StoreError::Corrupt {
                cid: Cid::new_v1(crate::block::RAW, *mh),
                reason,
            })
    }

    fn meta_get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        let mut k = vec![META];
        k.extend_from_slice(key.as_bytes());
        Ok(self.db.get(k).map_err(idx_err)?.map(|v| v.to_vec()))
    }

    fn meta_scan(&self, prefix: &str) -> Result<Vec<(String, Vec<u8>)>> {
        let mut p = vec![META];
        p.extend_from_slice(prefix.as_bytes());
        let mut out = Vec::new();
        for item in self.db.scan_prefix(p) {
            let (k, v) = item.map_err(idx_err)?;
            let key = String::from_utf8_lossy(&k[1..]).into_owned();
            out.push((key, v.to_vec()));
        }
        Ok(out)
    }

    fn meta_put(&self, key: &str, value: Option<&[u8]>) -> Result<()> {
        let mut k = vec![META];
        k.extend_from_slice(key.as_bytes());
        match value {
            Some(v) => self.db.insert(k, v).map(|_| ()),
            None => self.db.remove(k).map(|_| ()),
        }
        .map_err(idx_err)?;
        self.db.flush().map_err(idx_err)?;
        Ok(())
    }

    fn pin(&self, cid: &Cid, kind: PinKind) -> Result<()> {
        let v = match kind {
            PinKind::Recursive => 1u8,
            PinKind::Direct => 2u8,
        };
        self.db.insert(pin_key(cid), &[v]).map_err(idx_err)?;
        self.db.flush().map_err(idx_err)?;
        Ok(())
    }

    fn unpin(&self, cid: &Cid) -> Result<PinKind> {
        let old = self.db.remove(pin_key(cid)).map_err(idx_err)?;
        self.db.flush().map_err(idx_err)?;
        match old.as_deref() {
            None => Err(StoreError::NotPinned { cid: *cid }),
            Some([2]) => Ok(PinKind::Direct),
            Some(_) => Ok(PinKind::Recursive),
        }
    }

    fn pins(&self) -> Result<Vec<(Cid, PinKind)>> {
        let mut out = vec![];
        self.scan(PIN, &mut |k, v| {
            let cid =
                Cid::try_from(k).map_err(|e| StoreError::Index(format!("bad pin key: {e}")))?;
            let kind = if v == [2] {
                PinKind::Direct
            } else {
                PinKind::Recursive
            };
            out.push((cid, kind));
            Ok(())
        })?;
        Ok(out)
    }

    fn pin_of(&self, cid: &Cid) -> Result<Option<PinKind>> {
        Ok(self.db.get(pin_key(cid)).map_err(idx_err)?.map(|v| {
            if v.as_ref() == [2] {
                PinKind::Direct
            } else {
                PinKind::Recursive
            }
        }))
    }

    fn sweep(&self, live: &HashSet<Multihash>) -> Result<SweepReport> {
        // Holding the writer keeps puts out while blocks move.
        let mut w = self.lock_writer();
        let mut report = SweepReport::default();
        let mut dead: Vec<Vec<u8>> = vec![];
        let mut live_bytes: HashMap<u32, u64> = HashMap::new();
        self.scan(BLOCK, &mut |k, v| {
            let loc =
                Location::decode(v).ok_or_else(|| StoreError::Index("bad block entry".into()))?;
            let keep = Multihash::from_bytes(k)
                .map(|mh| live.contains(&mh))
                .unwrap_or(false);
            if keep {
                *live_bytes.entry(loc.segment).or_default() += loc.len as u64;
            } else {
                let mut key = vec![BLOCK];
                key.extend_from_slice(k);
                dead.push(key);
                report.removed_blocks += 1;
                report.removed_bytes += loc.len as u64;
            }
            Ok(())
        })?;
        for chunk in dead.chunks(10_000) {
            let mut batch = sled::Batch::default();
            for key in chunk {
                batch.remove(key.as_slice());
            }
            self.db.apply_batch(batch).map_err(idx_err)?;
        }
        self.db.flush().map_err(idx_err)?;
        drop(dead);
        let freed = report.removed_bytes.min(self.used_bytes());
        self.used
            .fetch_sub(freed, std::sync::atomic::Ordering::Relaxed);

        // Segments worth compacting: sparse ones (the active one only when
        // it holds nothing live, else it would be copied into itself).
        let mut candidates: Vec<u32> = vec![];
        self.scan(SEGMENT, &mut |k, _| {
            let id = u32::from_be_bytes(
                k.try_into()
                    .map_err(|_| StoreError::Index("bad segment key".into()))?,
            );
            let size = std::fs::metadata(self.segment_path(id))
                .map(|m| m.len())
                .unwrap_or(0);
            let l = live_bytes.get(&id).copied().unwrap_or(0);
            let sparse = size > 0 && (l as f64) < self.opts.compact_live_ratio * size as f64;
            if sparse && (id != w.id || l == 0) {
                candidates.push(id);
            }
            Ok(())
        })?;
        if candidates.is_empty() {
            return Ok(report);
        }
        // An empty active segment is restarted first: compacting the others
        // appends their live records to it.
        let active = w.id;
        candidates.sort_by_key(|&id| (id != active, id));
        let wanted: HashSet<u32> = candidates.iter().copied().collect();
        let mut entries: HashMap<u32, Vec<(Vec<u8>, Location)>> = HashMap::new();
        self.scan(BLOCK, &mut |k, v| {
            if let Some(loc) = Location::decode(v) {
                if wanted.contains(&loc.segment) {
                    let mut key = vec![BLOCK];
                    key.extend_from_slice(k);
                    entries.entry(loc.segment).or_default().push((key, loc));
                }
            }
            Ok(())
        })?;
        for id in candidates {
            let list = entries.remove(&id).unwrap_or_default();
            if id == w.id {
                // Nothing live in the active segment: restart it empty.
                let path = self.segment_path(id);
                let before = w.len;
                w.drain().map_err(io_err(&path))?;
                w.out.set_len(0).map_err(io_err(&path))?;
                w.out.sync_all().map_err(io_err(&path))?;
                w.len = 0;
                w.writeback_from = 0;
                self.commit(&mut w, &mut Vec::new())?;
                report.reclaimed_bytes += before;
            } else {
                let size = std::fs::metadata(self.segment_path(id))
                    .map(|m| m.len())
                    .unwrap_or(0);
                let moved: u64 = list
                    .iter()
                    .map(|(k, l)| 8 + (k.len() - 1) as u64 + l.len as u64)
                    .sum();
                self.compact_segment(&mut w, id, list)?;
                report.reclaimed_bytes += size.saturating_sub(moved);
            }
            report.compacted_segments += 1;
        }
        Ok(report)
    }

    fn stat(&self) -> Result<StoreStat> {
        let mut s = StoreStat::default();
        self.scan(BLOCK, &mut |_, v| {
            s.blocks += 1;
            s.block_bytes += Location::decode(v).map_or(0, |l| l.len as u64);
            Ok(())
        })?;
        self.scan(PIN, &mut |_, _| {
            s.pins += 1;
            Ok(())
        })?;
        self.scan(SEGMENT, &mut |k, _| {
            let id = u32::from_be_bytes(
                k.try_into()
                    .map_err(|_| StoreError::Index("bad segment key".into()))?,
            );
            s.segments += 1;
            s.stored_bytes += std::fs::metadata(self.segment_path(id))
                .map(|m| m.len())
                .unwrap_or(0);
            Ok(())
        })?;
        Ok(s)
    }

    fn segment_usage(&self) -> Result<Vec<SegmentUsage>> {
        self.usage()
    }

    fn flush(&self) -> Result<()> {
        let mut w = self.lock_writer();
        self.commit(&mut w, &mut Vec::new())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::block::{CidFormat, HashAlg, RAW};

    fn block(i: u32, len: usize) -> Block {
        let data: Vec<u8> = (0..len)
            .map(|j| (j as u32 ^ i) as u8)
            .chain(i.to_le_bytes())
            .collect();
        Block::new(
            CidFormat {
                version: 1,
                hash: HashAlg::Blake3,
            },
            RAW,
            data,
        )
    }

    fn small() -> DiskStoreOptions {
        DiskStoreOptions {
            segment_max_bytes: 64 * 1024,
            commit_bytes: 16 * 1024,
            ..DiskStoreOptions::default()
        }
    }

    #[test]
    fn reopen_keeps_blocks_and_pins_and_locks_out_others() {
        let dir = tempfile::tempdir().unwrap();
        let blocks: Vec<Block> = (0..50).map(|i| block(i, 5000)).collect();
        {
            let s = DiskStore::open(dir.path(), small()).unwrap();
            s.put_many(&mut blocks.clone().into_iter()).unwrap();
            s.pin(blocks[0].cid(), PinKind::Recursive).unwrap();
            assert!(matches!(
                DiskStore::open(dir.path(), small()),
                Err(StoreError::Locked { .. })
            ));
            assert!(s.stat().unwrap().segments > 1);
        }
        let s = DiskStore::open(dir.path(), small()).unwrap();
        for b in &blocks {
            assert_eq!(s.get(b.cid()).unwrap().as_ref(), Some(b));
        }
        assert_eq!(
            s.pins().unwrap(),
            vec![(*blocks[0].cid(), PinKind::Recursive)]
        );
    }

    #[test]
    fn direct_writes_survive_reopen_and_a_failed_call() {
        let dir = tempfile::tempdir().unwrap();
        let ok: Vec<Block> = (0..20).map(|i| block(i, 70_001 + i as usize)).collect();
        // Under `small()`'s 16 KiB commit size, so none is committed.
        let lost: Vec<Block> = (20..23).map(|i| block(i, 4_000)).collect();
        let too_big = Block::new_unchecked(
            *block(99, 1).cid(),
            Bytes::from(vec![0u8; MAX_BLOCK_BYTES + 1]),
        );
        {
            let s = DiskStore::open(dir.path(), small()).unwrap();
            let direct = s.lock_writer().direct.is_some();
            eprintln!("direct writes in {}: {direct}", dir.path().display());
            s.put_many_uncached(&mut ok[..10].iter().cloned()).unwrap();
            // A call that fails after staging records: they are not
            // indexed, and the segment is cut back so later writes land
            // where the index says.
            let mut failing = lost.iter().cloned().chain([too_big]);
            assert!(s.put_many_uncached(&mut failing).is_err());
            s.put(ok[10].clone()).unwrap();
            s.put_many_uncached(&mut ok[11..].iter().cloned()).unwrap();
            for b in &ok {
                assert_eq!(s.get(b.cid()).unwrap().as_ref(), Some(b));
            }
            for b in &lost {
                assert!(!s.has(b.cid()).unwrap());
            }
        }
        // Every segment ends at its committed length: nothing was left for
        // recovery to cut, no padding, no torn record.
        let s = DiskStore::open(dir.path(), small()).unwrap();
        s.scan(SEGMENT, &mut |k, v| {
            let id = u32::from_be_bytes(k.try_into().unwrap());
            let committed = u64::from_le_bytes(v.try_into().unwrap());
            let len = std::fs::metadata(s.segment_path(id)).unwrap().len();
            assert_eq!(len, committed, "segment {id}");
            Ok(())
        })
        .unwrap();
        for b in &ok {
            assert_eq!(s.get(b.cid()).unwrap().as_ref(), Some(b));
        }
        s.put_many_uncached(&mut lost.iter().cloned()).unwrap();
        for b in ok.iter().chain(&lost) {
            assert_eq!(s.get(b.cid()).unwrap().as_ref(), Some(b));
        }
    }

    #[test]
    fn torn_tail_and_orphan_segments_are_cleaned_on_open() {
        let dir = tempfile::tempdir().unwrap();
        let b = block(1, 1000);
        {
            let s = DiskStore::open(dir.path(), small()).unwrap();
            s.put(b.clone()).unwrap();
        }
        let seg = dir.path().join("segments/00000000.seg");
        let len = std::fs::metadata(&seg).unwrap().len();
        let mut f = OpenOptions::new().append(true).open(&seg).unwrap();
        f.write_all(b"torn half record").unwrap();
        std::fs::write(dir.path().join("segments/00000007.seg"), b"orphan").unwrap();
        let s = DiskStore::open(dir.path(), small()).unwrap();
        assert_eq!(std::fs::metadata(&seg).unwrap().len(), len);
        assert!(!dir.path().join("segments/00000007.seg").exists());
        assert_eq!(s.get(b.cid()).unwrap().unwrap(), b);
    }

    #[test]
    fn flipped_byte_reads_as_corrupt() {
        let dir = tempfile::tempdir().unwrap();
        let b = block(3, 3000);
        let s = DiskStore::open(dir.path(), small()).unwrap();
        s.put(b.clone()).unwrap();
        let seg = dir.path().join("segments/00000000.seg");
        let mut bytes = std::fs::read(&seg).unwrap();
        let n = bytes.len();
        bytes[n - 10] ^= 1;
        std::fs::write(&seg, bytes).unwrap();
        s.readers.write().unwrap().clear();
        match s.get(b.cid()) {
            Err(StoreError::Corrupt { cid, .. }) => assert_eq!(&cid, b.cid()),
            other => panic!("expected corruption, got {other:?}"),
        }
    }

    #[test]
    fn compaction_frees_space_and_keeps_live_blocks() {
        let dir = tempfile::tempdir().unwrap();
        let s = DiskStore::open(dir.path(), small()).unwrap();
        let blocks: Vec<Block> = (0..100).map(|i| block(i, 4000)).collect();
        s.put_many(&mut blocks.clone().into_iter()).unwrap();
        let before = s.stat().unwrap();
        let live: HashSet<Multihash> = blocks.iter().step_by(10).map(|b| *b.cid().hash()).collect();
        let r = s.sweep(&live).unwrap();
        assert_eq!(r.removed_blocks, 90);
        assert!(r.compacted_segments > 0);
        let after = s.stat().unwrap();
        assert!(
            after.stored_bytes < before.stored_bytes / 3,
            "{before:?} -> {after:?}"
        );
        for (i, b) in blocks.iter().enumerate() {
            assert_eq!(s.get(b.cid()).unwrap().is_some(), i % 10 == 0);
        }
        drop(s);
        let s = DiskStore::open(dir.path(), small()).unwrap();
        for b in blocks.iter().step_by(10) {
            assert_eq!(s.get(b.cid()).unwrap().as_ref(), Some(b));
        }
    }
}

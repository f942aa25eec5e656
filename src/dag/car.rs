//! CAR (Content Addressable aRchive) files: reading and writing the CARv1
//! wire format, and reading the CARv1 payload of a CARv2.
//!
//! # CARv1 layout
//!
//! ```text
//! varint(H) header[H]   varint(S) cid block   varint(S) cid block   ...
//! ```
//!
//! * Every `varint` is an unsigned LEB128 integer (7 bits a byte, low bits
//!   first, high bit set on every byte but the last). We write and accept
//!   only the minimal encoding, at most 64 bits.
//! * The header is a DAG-CBOR map `{"roots": [CID, ...], "version": 1}`.
//!   Each root is CBOR tag 42 around a byte string holding `0x00` followed
//!   by the binary CID. We write the canonical DAG-CBOR form (map keys sorted
//!   by length, then bytewise, so `roots` precedes `version`; minimal integer
//!   heads), which is byte-for-byte what go-car and js `@ipld/car` write. A
//!   reader accepts the keys in any order and skips unknown keys.
//! * Each section is `varint(S)` followed by `S` bytes: the binary CID, then
//!   the block bytes. A CIDv0 is a bare SHA2-256 multihash, 34 bytes starting
//!   `0x12 0x20`; a CIDv1 is `varint(1) varint(codec) varint(hash code)
//!   varint(digest length) digest`.
//!
//! # CARv2
//!
//! A CARv2 starts with the fixed 11-byte pragma [`CARV2_PRAGMA`] (a CARv1
//! header that says `{"version": 2}`), then a 40-byte header: a 16-byte
//! characteristics bitfield and three little-endian `u64`s: data offset,
//! data size and index offset. The data payload is a complete CARv1.
//! [`CarReader`] detects the pragma, skips to the data offset and reads
//! exactly `data size` bytes of the payload as a CARv1; the index is ignored,
//! since the reader streams every block anyway. We never write CARv2.
//!
//! # Limits
//!
//! Nothing is allocated from a length before the length is checked: headers
//! are capped at [`MAX_HEADER_BYTES`] and sections at [`MAX_SECTION_BYTES`],
//! and even within those caps buffers grow only as bytes actually arrive.
//! Every block read is checked against its CID with [`Block::verified`].

use crate::block::{Block, BlockError, Cid, Multihash, MAX_BLOCK_BYTES};
use bytes::Bytes;
use std::io::{self, Read, Write};

/// The largest CARv1 header accepted or written (about 29,000 roots).
pub const MAX_HEADER_BYTES: usize = 1024 * 1024;

/// The largest section accepted: a maximal block plus room for its CID.
pub const MAX_SECTION_BYTES: usize = MAX_BLOCK_BYTES + 1024;

/// The first 11 bytes of every CARv2: `varint(10)` and the DAG-CBOR map
/// `{"version": 2}`.
pub const CARV2_PRAGMA: [u8; 11] = [
    0x0a, 0xa1, 0x67, b'v', b'e', b'r', b's', b'i', b'o', b'n', 0x02,
];

/// Length of the fixed CARv2 header that follows the pragma.
const CARV2_HEADER_BYTES: usize = 40;

/// Largest digest a CID in a CAR may carry (what [`Multihash`] holds).
const MAX_DIGEST_BYTES: u64 = 64;

/// Deepest CBOR nesting skipped inside an unknown header field.
const MAX_CBOR_DEPTH: u32 = 32;

/// CBOR tag that marks a CID in DAG-CBOR.
const CBOR_TAG_CID: u64 = 42;

/// What went wrong reading or writing a CAR. Every variant carries the byte
/// offset in the stream (counted from its first byte, CARv2 prefix
/// included) where the problem was found.
#[derive(Debug, thiserror::Error)]
pub enum CarError {
    /// The underlying reader or writer failed.
    #[error("I/O error at byte {offset} of the CAR: {source}")]
    Io {
        offset: u64,
        #[source]
        source: io::Error,
    },
    /// The input ended inside the header or a section (`offset` is where
    /// it ended). A clean end between sections is not an error.
    #[error("CAR is truncated: input ends at byte {offset} inside {what}")]
    Truncated { offset: u64, what: &'static str },
    /// The header (or the CARv2 prefix) is malformed or over the size limit.
    #[error("bad CAR header at byte {offset}: {reason}")]
    BadHeader { offset: u64, reason: String },
    /// The header names a CAR version this reader does not know.
    #[error("unsupported CAR version {version} at byte {offset} (only 1 and 2 can be read)")]
    UnsupportedVersion { offset: u64, version: u64 },
    /// A section is malformed: bad length, bad CID, over the size limit.
    /// `offset` is where the section starts.
    #[error("bad CAR section at byte {offset}: {reason}")]
    BadSection { offset: u64, reason: String },
    /// A section's bytes are not the block its CID names (corruption), or
    /// the block is too large or uses an unsupported hash. `offset` is where
    /// the section starts.
    #[error("CAR section at byte {offset} holds a rejected block: {source}")]
    Block {
        offset: u64,
        #[source]
        source: BlockError,
    },
}

// ---------------------------------------------------------------------------
// Varints

/// Appends the unsigned LEB128 encoding of `n`.
fn put_varint(out: &mut Vec<u8>, mut n: u64) {
    while n >= 0x80 {
        out.push((n as u8 & 0x7f) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

/// Incremental LEB128 decoder: feed bytes until it yields a value.
#[derive(Default)]
struct VarintDecoder {
    value: u64,
    shift: u32,
}

impl VarintDecoder {
    /// Takes the next byte; `Ok(Some(v))` once the varint is complete.
    fn push(&mut self, byte: u8) -> Result<Option<u64>, &'static str> {
        // At shift 63 only one more bit fits, and no continuation.
        if self.shift == 63 && byte > 1 {
            return Err("varint overflows 64 bits");
        }
        self.value |= u64::from(byte & 0x7f) << self.shift;
        if byte & 0x80 == 0 {
            if byte == 0 && self.shift > 0 {
                return Err("varint is not minimally encoded");
            }
            return Ok(Some(self.value));
        }
        self.shift += 7;
        Ok(None)
    }
}

/// Decodes a varint from the front of `bytes`: the value and its length.
fn take_varint(bytes: &[u8]) -> Result<(u64, usize), &'static str> {
    let mut dec = VarintDecoder::default();
    for (i, &b) in bytes.iter().enumerate() {
        if let Some(v) = dec.push(b)? {
            return Ok((v, i + 1));
        }
    }
    Err("varint runs past the end of its data")
}

// ---------------------------------------------------------------------------
// Binary CIDs

/// Parses the binary CID at the front of `bytes`: the CID and its length.
fn take_cid(bytes: &[u8]) -> Result<(Cid, usize), String> {
    if bytes.len() >= 2 && bytes[0] == 0x12 && bytes[1] == 0x20 {
        let digest = bytes.get(2..34).ok_or("CIDv0 is shorter than 34 bytes")?;
        let mh = Multihash::wrap(0x12, digest).map_err(|e| e.to_string())?;
        let cid = Cid::new_v0(mh).map_err(|e| e.to_string())?;
        return Ok((cid, 34));
    }
    let mut at = 0;
    let mut next = |what: &str| -> Result<u64, String> {
        let (v, n) = take_varint(&bytes[at..]).map_err(|e| format!("CID {what}: {e}"))?;
        at += n;
        Ok(v)
    };
    let version = next("version")?;
    if version != 1 {
        return Err(format!(
            "CID version {version} is not supported (CIDv0 must be a bare sha2-256 multihash)"
        ));
    }
    let codec = next("codec")?;
    let hash_code = next("hash code")?;
    let digest_len = next("digest length")?;
    if digest_len > MAX_DIGEST_BYTES {
        return Err(format!(
            "CID digest is {digest_len} bytes, over the {MAX_DIGEST_BYTES} byte limit"
        ));
    }
    let end = at + digest_len as usize;
    let digest = bytes
        .get(at..end)
        .ok_or("CID digest runs past the end of its data")?;
    let mh = Multihash::wrap(hash_code, digest).map_err(|e| e.to_string())?;
    Ok((Cid::new_v1(codec, mh), end))
}

// ---------------------------------------------------------------------------
// The DAG-CBOR header

/// Appends a CBOR head (major type and argument) in its shortest form.
fn put_cbor_head(out: &mut Vec<u8>, major: u8, arg: u64) {
    let m = major << 5;
    if arg < 24 {
        out.push(m | arg as u8);
    } else if arg <= 0xff {
        out.extend_from_slice(&[m | 24, arg as u8]);
    } else if arg <= 0xffff {
        out.push(m | 25);
        out.extend_from_slice(&(arg as u16).to_be_bytes());
    } else if arg <= 0xffff_ffff {
        out.push(m | 26);
        out.extend_from_slice(&(arg as u32).to_be_bytes());
    } else {
        out.push(m | 27);
        out.extend_from_slice(&arg.to_be_bytes());
    }
}

/// The canonical DAG-CBOR header `{"roots": [...], "version": 1}`, without
/// its length prefix.
fn encode_header(roots: &[Cid]) -> Vec<u8> {
    let mut out = Vec::with_capacity(16 + roots.len() * 40);
    put_cbor_head(&mut out, 5, 2);
    put_cbor_head(&mut out, 3, 5);
    out.extend_from_slice(b"roots");
    put_cbor_head(&mut out, 4, roots.len() as u64);
    for root in roots {
        let cid = root.to_bytes();
        put_cbor_head(&mut out, 6, CBOR_TAG_CID);
        put_cbor_head(&mut out, 2, cid.len() as u64 + 1);
        out.push(0x00);
        out.extend_from_slice(&cid);
    }
    put_cbor_head(&mut out, 3, 7);
    out.extend_from_slice(b"version");
    put_cbor_head(&mut out, 0, 1);
    out
}

/// A decoded header: the version, and the roots if the header had them.
struct Header {
    version: u64,
    roots: Option<Vec<Cid>>,
}

/// Cursor over header bytes. Errors are a reason plus the offset within
/// the header, which the caller turns into a stream offset.
struct CborCursor<'a> {
    bytes: &'a [u8],
    at: usize,
}

type CborResult<T> = Result<T, (usize, String)>;

impl<'a> CborCursor<'a> {
    fn fail<T>(&self, reason: impl Into<String>) -> CborResult<T> {
        Err((self.at, reason.into()))
    }

    fn take(&mut self, n: u64) -> CborResult<&'a [u8]> {
        let end = usize::try_from(n)
            .ok()
            .and_then(|n| self.at.checked_add(n))
            .filter(|&end| end <= self.bytes.len());
        match end {
            Some(end) => {
                let s = &self.bytes[self.at..end];
                self.at = end;
                Ok(s)
            }
            None => self.fail(format!("{n} bytes of CBOR run past the end of the header")),
        }
    }

    /// Reads a head: major type and argument. Indefinite lengths and
    /// reserved values are rejected, as DAG-CBOR forbids them.
    fn head(&mut self) -> CborResult<(u8, u64)> {
        let first = self.take(1)?[0];
        let major = first >> 5;
        let info = first & 0x1f;
        let arg = match info {
            0..=23 => u64::from(info),
            24 => u64::from(self.take(1)?[0]),
            25 => self.take(2)?.iter().fold(0, |a, &b| a << 8 | u64::from(b)),
            26 => self.take(4)?.iter().fold(0, |a, &b| a << 8 | u64::from(b)),
            27 => self.take(8)?.iter().fold(0, |a, &b| a << 8 | u64::from(b)),
            31 => return self.fail("indefinite-length CBOR is not DAG-CBOR"),
            _ => return self.fail(format!("reserved CBOR additional info {info}")),
        };
        Ok((major, arg))
    }

    /// Skips one data item of any type.
    fn skip(&mut self, depth: u32) -> CborResult<()> {
        if depth > MAX_CBOR_DEPTH {
            return self.fail("CBOR nested too deeply");
        }
        let (major, arg) = self.head()?;
        match major {
            2 | 3 => {
                self.take(arg)?;
            }
            // Each item takes at least one byte, so these loops end when
            // the bytes do, whatever the count claims.
            4 => {
                for _ in 0..arg {
                    self.skip(depth + 1)?;
                }
            }
            5 => {
                for _ in 0..arg {
                    self.skip(depth + 1)?;
                    self.skip(depth + 1)?;
                }
            }
            6 => self.skip(depth + 1)?,
            // 0, 1: integers; 7: simple values and floats, whose bytes the
            // head already consumed.
            _ => {}
        }
        Ok(())
    }

    fn roots(&mut self) -> CborResult<Vec<Cid>> {
        let (major, count) = self.head()?;
        if major != 4 {
            return self.fail("\"roots\" is not a list");
        }
        // A root takes at least 2 bytes; never reserve more than could fit.
        let remaining = (self.bytes.len() - self.at) as u64;
        if count > remaining / 2 {
            return self.fail(format!("\"roots\" claims {count} entries, more than fit"));
        }
        let mut roots = Vec::with_capacity(count as usize);
        for _ in 0..count {
            let (major, tag) = self.head()?;
            if major != 6 || tag != CBOR_TAG_CID {
                return self.fail("a root is not a CID (CBOR tag 42)");
            }
            let (major, len) = self.head()?;
            if major != 2 {
                return self.fail("a root CID is not a byte string");
            }
            let start = self.at;
            let bytes = self.take(len)?;
            let Some((&0x00, cid_bytes)) = bytes.split_first() else {
                return Err((start, "a root CID lacks the 0x00 multibase prefix".into()));
            };
            let (cid, used) = take_cid(cid_bytes).map_err(|e| (start, e))?;
            if used != cid_bytes.len() {
                return Err((start, "a root CID has trailing bytes".into()));
            }
            roots.push(cid);
        }
        Ok(roots)
    }

    fn header(&mut self) -> CborResult<Header> {
        let (major, entries) = self.head()?;
        if major != 5 {
            return self.fail("header is not a CBOR map");
        }
        let mut version = None;
        let mut roots = None;
        for _ in 0..entries {
            let (major, len) = self.head()?;
            if major != 3 {
                return self.fail("header map key is not a string");
            }
            let key_at = self.at;
            match self.take(len)? {
                b"version" => {
                    if version.is_some() {
                        return Err((key_at, "duplicate \"version\" key".into()));
                    }
                    let (major, v) = self.head()?;
                    if major != 0 {
                        return self.fail("\"version\" is not an unsigned integer");
                    }
                    version = Some(v);
                }
                b"roots" => {
                    if roots.is_some() {
                        return Err((key_at, "duplicate \"roots\" key".into()));
                    }
                    roots = Some(self.roots()?);
                }
                _ => self.skip(0)?,
            }
        }
        if self.at != self.bytes.len() {
            return self.fail("trailing bytes after the header map");
        }
        let Some(version) = version else {
            return self.fail("header has no \"version\"");
        };
        Ok(Header { version, roots })
    }
}

// ---------------------------------------------------------------------------
// Reading

/// A byte source that counts what it has consumed and stops at a limit (the
/// end of a CARv2 data payload).
struct Source<R> {
    inner: io::Take<R>,
    pos: u64,
}

impl<R: Read> Source<R> {
    fn io_error(&self, source: io::Error) -> CarError {
        CarError::Io {
            offset: self.pos,
            source,
        }
    }

    /// One byte, or `None` at the end of input.
    fn byte(&mut self) -> Result<Option<u8>, CarError> {
        let mut b = [0u8; 1];
        loop {
            match self.inner.read(&mut b) {
                Ok(0) => return Ok(None),
                Ok(_) => {
                    self.pos += 1;
                    return Ok(Some(b[0]));
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(self.io_error(e)),
            }
        }
    }

    /// A varint; `Ok(None)` only on a clean end of input before its first
    /// byte. A malformed varint becomes `malformed(start offset, reason)`.
    fn varint(
        &mut self,
        what: &'static str,
        malformed: fn(u64, String) -> CarError,
    ) -> Result<Option<u64>, CarError> {
        let start = self.pos;
        let mut dec = VarintDecoder::default();
        loop {
            let Some(b) = self.byte()? else {
                if self.pos == start {
                    return Ok(None);
                }
                return Err(CarError::Truncated {
                    offset: self.pos,
                    what,
                });
            };
            match dec.push(b) {
                Ok(Some(v)) => return Ok(Some(v)),
                Ok(None) => {}
                Err(reason) => return Err(malformed(start, format!("{what}: {reason}"))),
            }
        }
    }

    /// Exactly `len` bytes (already checked against a limit). The buffer
    /// grows as bytes arrive, so a short input costs no more than its size.
    fn bytes(&mut self, len: usize, what: &'static str) -> Result<Vec<u8>, CarError> {
        let mut buf = Vec::new();
        let got = (&mut self.inner)
            .take(len as u64)
            .read_to_end(&mut buf)
            .map_err(|e| CarError::Io {
                offset: self.pos + buf.len() as u64,
                source: e,
            })?;
        self.pos += got as u64;
        if got < len {
            return Err(CarError::Truncated {
                offset: self.pos,
                what,
            });
        }
        Ok(buf)
    }

    /// Discards `len` bytes.
    fn skip(&mut self, len: u64, what: &'static str) -> Result<(), CarError> {
        let got = io::copy(&mut (&mut self.inner).take(len), &mut io::sink())
            .map_err(|e| self.io_error(e))?;
        self.pos += got;
        if got < len {
            return Err(CarError::Truncated {
                offset: self.pos,
                what,
            });
        }
        Ok(())
    }
}

/// Streams the blocks out of a CARv1 (or the CARv1 payload of a CARv2),
/// verifying each against its CID.
///
/// ```
/// # use cairn::block::{Block, CidFormat, HashAlg, RAW};
/// # use cairn::dag::car::{CarReader, CarWriter};
/// let block = Block::new(CidFormat { version: 1, hash: HashAlg::Blake3 }, RAW, &b"hi"[..]);
/// let mut w = CarWriter::new(Vec::new(), &[*block.cid()])?;
/// w.write_block(&block)?;
/// let car = w.finish()?;
///
/// let mut r = CarReader::new(&car[..])?;
/// assert_eq!(r.roots(), &[*block.cid()]);
/// assert_eq!(r.next_block()?, Some(block));
/// assert_eq!(r.next_block()?, None);
/// # Ok::<(), cairn::dag::car::CarError>(())
/// ```
pub struct CarReader<R> {
    src: Source<R>,
    roots: Vec<Cid>,
    version: u64,
    /// Where an earlier error left the stream; reading stops there.
    failed_at: Option<u64>,
}

impl<R: Read> CarReader<R> {
    /// Reads and validates the header (and, for a CARv2, the prefix that
    /// locates the CARv1 payload). Varints are read a byte at a time, so
    /// wrap a file or socket in a [`std::io::BufReader`].
    pub fn new(r: R) -> Result<Self, CarError> {
        let mut src = Source {
            inner: r.take(u64::MAX),
            pos: 0,
        };
        let (raw, header) = read_header(&mut src)?;
        let (version, roots) = match header.version {
            1 => (1, header.roots),
            2 => {
                if raw != CARV2_PRAGMA[1..] {
                    return Err(CarError::BadHeader {
                        offset: 0,
                        reason: "version 2 header is not the fixed CARv2 pragma".into(),
                    });
                }
                enter_carv2_payload(&mut src)?;
                let inner_at = src.pos;
                let (_, inner) = read_header(&mut src)?;
                if inner.version != 1 {
                    return Err(CarError::UnsupportedVersion {
                        offset: inner_at,
                        version: inner.version,
                    });
                }
                (2, inner.roots)
            }
            version => return Err(CarError::UnsupportedVersion { offset: 0, version }),
        };
        let roots = roots.ok_or(CarError::BadHeader {
            offset: 0,
            reason: "header has no \"roots\"".into(),
        })?;
        Ok(CarReader {
            src,
            roots,
            version,
            failed_at: None,
        })
    }

    /// The root CIDs the header names (possibly none).
    pub fn roots(&self) -> &[Cid] {
        &self.roots
    }

    /// The container version: 1, or 2 for a CARv2 whose payload is being read.
    pub fn version(&self) -> u64 {
        self.version
    }

    /// Bytes consumed so far, counted from the start of the stream.
    pub fn offset(&self) -> u64 {
        self.src.pos
    }

    /// The next block, verified against its CID; `Ok(None)` at a clean end
    /// of input between sections. After an error the reader stays failed.
    pub fn next_block(&mut self) -> Result<Option<Block>, CarError> {
        if let Some(offset) = self.failed_at {
            return Err(CarError::BadSection {
                offset,
                reason: "reading stopped at an earlier error".into(),
            });
        }
        let result = self.read_section();
        if result.is_err() {
            self.failed_at = Some(self.src.pos);
        }
        result
    }

    fn read_section(&mut self) -> Result<Option<Block>, CarError> {
        let start = self.src.pos;
        let malformed = |offset, reason| CarError::BadSection { offset, reason };
        let Some(len) = self.src.varint("section length", malformed)? else {
            return Ok(None);
        };
        let bad = |reason: String| CarError::BadSection {
            offset: start,
            reason,
        };
        if len == 0 {
            return Err(bad("zero-length section".into()));
        }
        if len > MAX_SECTION_BYTES as u64 {
            return Err(bad(format!(
                "section claims {len} bytes, over the {MAX_SECTION_BYTES} byte limit"
            )));
        }
        let section = Bytes::from(self.src.bytes(len as usize, "a section")?);
        let (cid, cid_len) = take_cid(&section).map_err(bad)?;
        Block::verified(cid, section.slice(cid_len..))
            .map(Some)
            .map_err(|source| CarError::Block {
                offset: start,
                source,
            })
    }
}

impl<R: Read> Iterator for CarReader<R> {
    type Item = Result<Block, CarError>;

    /// Yields blocks until a clean end, or one error and then nothing.
    fn next(&mut self) -> Option<Self::Item> {
        if self.failed_at.is_some() {
            return None;
        }
        self.next_block().transpose()
    }
}

/// Reads `varint(len) header` and decodes the header; returns its raw bytes too.
fn read_header<R: Read>(src: &mut Source<R>) -> Result<(Vec<u8>, Header), CarError> {
    let start = src.pos;
    let malformed = |offset, reason| CarError::BadHeader { offset, reason };
    let Some(len) = src.varint("header length", malformed)? else {
        return Err(CarError::Truncated {
            offset: start,
            what: "the header length",
        });
    };
    if len == 0 || len > MAX_HEADER_BYTES as u64 {
        return Err(CarError::BadHeader {
            offset: start,
            reason: format!("header claims {len} bytes (allowed: 1 to {MAX_HEADER_BYTES})"),
        });
    }
    let body_at = src.pos;
    let raw = src.bytes(len as usize, "the header")?;
    let header = CborCursor { bytes: &raw, at: 0 }
        .header()
        .map_err(|(at, reason)| CarError::BadHeader {
            offset: body_at + at as u64,
            reason,
        })?;
    Ok((raw, header))
}

/// Having read the CARv2 pragma, reads the fixed CARv2 header, skips to the
/// data payload and limits the source to the payload's length.
fn enter_carv2_payload<R: Read>(src: &mut Source<R>) -> Result<(), CarError> {
    let header_at = src.pos;
    let h = src.bytes(CARV2_HEADER_BYTES, "the CARv2 header")?;
    let u64_at = |i: usize| {
        let mut b = [0u8; 8];
        b.copy_from_slice(&h[i..i + 8]);
        u64::from_le_bytes(b)
    };
    let (data_offset, data_size) = (u64_at(16), u64_at(24));
    if data_offset < src.pos {
        return Err(CarError::BadHeader {
            offset: header_at,
            reason: format!(
                "CARv2 data offset {data_offset} points inside the CARv2 prefix ({} bytes)",
                src.pos
            ),
        });
    }
    src.skip(data_offset - src.pos, "the padding before the CARv2 data")?;
    src.inner.set_limit(data_size);
    Ok(())
}

// ---------------------------------------------------------------------------
// Writing

/// Writes a CARv1: the header on creation, then one section per block.
pub struct CarWriter<W> {
    w: W,
    pos: u64,
}

impl<W: Write> CarWriter<W> {
    /// Writes the header naming `roots` (which may be empty, as go-car and
    /// js `@ipld/car` accept).
    pub fn new(w: W, roots: &[Cid]) -> Result<Self, CarError> {
        let header = encode_header(roots);
        if header.len() > MAX_HEADER_BYTES {
            return Err(CarError::BadHeader {
                offset: 0,
                reason: format!(
                    "{} roots make a {} byte header, over the {MAX_HEADER_BYTES} byte limit",
                    roots.len(),
                    header.len()
                ),
            });
        }
        let mut out = Vec::with_capacity(header.len() + 4);
        put_varint(&mut out, header.len() as u64);
        out.extend_from_slice(&header);
        let mut writer = CarWriter { w, pos: 0 };
        writer.put(&out)?;
        Ok(writer)
    }

    /// Appends one section. Blocks over [`MAX_BLOCK_BYTES`] are refused, so
    /// we never write a CAR that we (or Bitswap peers) would reject.
    pub fn write_block(&mut self, block: &Block) -> Result<(), CarError> {
        let data = block.data();
        if data.len() > MAX_BLOCK_BYTES {
            return Err(CarError::Block {
                offset: self.pos,
                source: BlockError::TooLarge {
                    cid: *block.cid(),
                    len: data.len(),
                    max: MAX_BLOCK_BYTES,
                },
            });
        }
        let cid = block.cid().to_bytes();
        let mut head = Vec::with_capacity(cid.len() + 10);
        put_varint(&mut head, (cid.len() + data.len()) as u64);
        head.extend_from_slice(&cid);
        self.put(&head)?;
        self.put(data)
    }

    /// Bytes written so far.
    pub fn offset(&self) -> u64 {
        self.pos
    }

    /// Flushes and hands back the underlying writer.
    pub fn finish(mut self) -> Result<W, CarError> {
        self.w.flush().map_err(|source| CarError::Io {
            offset: self.pos,
            source,
        })?;
        Ok(self.w)
    }

    fn put(&mut self, bytes: &[u8]) -> Result<(), CarError> {
        self.w.write_all(bytes).map_err(|source| CarError::Io {
            offset: self.pos,
            source,
        })?;
        self.pos += bytes.len() as u64;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::block::{CidFormat, HashAlg, DAG_PB, RAW};
    use proptest::prelude::*;

    const V0: CidFormat = CidFormat {
        version: 0,
        hash: HashAlg::Sha2_256,
    };
    const V1_SHA2: CidFormat = CidFormat {
        version: 1,
        hash: HashAlg::Sha2_256,
    };
    const V1_BLAKE3: CidFormat = CidFormat {
        version: 1,
        hash: HashAlg::Blake3,
    };

    /// An empty UnixFS directory: the smallest real dag-pb node.
    const EMPTY_DIR_PB: &[u8] = b"\x0a\x04\x08\x02\x18\x00";

    fn sample_blocks() -> Vec<Block> {
        vec![
            Block::new(V0, DAG_PB, EMPTY_DIR_PB),
            Block::new(V1_SHA2, RAW, &b"hello"[..]),
            Block::new(V1_BLAKE3, RAW, &b"world"[..]),
            Block::new(V1_BLAKE3, DAG_PB, EMPTY_DIR_PB),
            Block::new(V1_SHA2, RAW, &b""[..]),
            Block::new(V1_SHA2, RAW, vec![7u8; 300_000]),
        ]
    }

    fn write_car(roots: &[Cid], blocks: &[Block]) -> Vec<u8> {
        let mut w = CarWriter::new(Vec::new(), roots).unwrap();
        for b in blocks {
            w.write_block(b).unwrap();
        }
        let offset = w.offset();
        let out = w.finish().unwrap();
        assert_eq!(offset, out.len() as u64);
        out
    }

    fn read_car(bytes: &[u8]) -> Result<(Vec<Cid>, Vec<Block>), CarError> {
        let mut r = CarReader::new(bytes)?;
        let roots = r.roots().to_vec();
        let mut blocks = Vec::new();
        while let Some(b) = r.next_block()? {
            blocks.push(b);
        }
        Ok((roots, blocks))
    }

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    /// Byte offsets where each section starts, and the end of the CAR.
    fn section_starts(roots: &[Cid], blocks: &[Block]) -> Vec<usize> {
        let mut starts = vec![write_car(roots, &[]).len()];
        for i in 0..blocks.len() {
            starts.push(write_car(roots, &blocks[..=i]).len());
        }
        starts
    }

    #[test]
    fn round_trips_mixed_blocks_with_one_and_two_roots() {
        let blocks = sample_blocks();
        for roots in [
            vec![*blocks[0].cid()],
            vec![*blocks[0].cid(), *blocks[2].cid()],
        ] {
            let car = write_car(&roots, &blocks);
            let (got_roots, got_blocks) = read_car(&car).unwrap();
            assert_eq!(got_roots, roots);
            assert_eq!(got_blocks, blocks);
        }
        assert_eq!(blocks[0].cid().version(), cid::Version::V0);
    }

    #[test]
    fn empty_roots_and_no_blocks_round_trip() {
        let car = write_car(&[], &[]);
        assert_eq!(read_car(&car).unwrap(), (vec![], vec![]));
    }

    #[test]
    fn header_matches_the_spec_byte_for_byte() {
        // sha2-256 of the empty string.
        let digest = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        let root = Block::new(V1_SHA2, RAW, &b""[..]);
        assert_eq!(
            root.cid().to_string(),
            "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku"
        );
        // varint(58), map(2), text(5) "roots", array(1), tag(42),
        // bytes(37) [0x00, CIDv1: 0x01 raw=0x55 sha2-256=0x12 len=0x20 digest],
        // text(7) "version", uint(1).
        let expected = hex(&format!(
            "3a a2 65 726f6f7473 81 d8 2a 58 25 00 01 55 12 20 {digest} 67 76657273696f6e 01"
        )
        .replace(' ', ""));
        assert_eq!(write_car(&[*root.cid()], &[]), expected);

        // The same for a CIDv0 root (the empty UnixFS directory,
        // QmbFMke1...): bytes(35) [0x00, bare multihash 0x12 0x20 digest].
        let digest = "bfccda787baba32b59c78450ac3d20b633360b43992c77289f9ed46d843561e6";
        let root = Block::new(V0, DAG_PB, EMPTY_DIR_PB);
        assert_eq!(
            root.cid().to_string(),
            "QmbFMke1KXqnYyBBWxB74N4c5SBnJMVAiMNRcGu6x1AwQH"
        );
        let expected = hex(&format!(
            "38 a2 65 726f6f7473 81 d8 2a 58 23 00 12 20 {digest} 67 76657273696f6e 01"
        )
        .replace(' ', ""));
        assert_eq!(write_car(&[*root.cid()], &[]), expected);
    }

    #[test]
    fn corrupt_block_is_rejected_with_hash_mismatch() {
        let blocks = sample_blocks();
        let mut car = write_car(&[*blocks[1].cid()], &blocks[1..2]);
        let last = car.len() - 1;
        car[last] ^= 1;
        let header_len = write_car(&[*blocks[1].cid()], &[]).len() as u64;
        match read_car(&car) {
            Err(CarError::Block {
                offset,
                source: BlockError::HashMismatch { cid },
            }) => {
                assert_eq!(cid, *blocks[1].cid());
                assert_eq!(offset, header_len);
            }
            other => panic!("expected a hash mismatch, got {other:?}"),
        }
    }

    #[test]
    fn every_truncation_is_an_error_unless_at_a_section_boundary() {
        let blocks = sample_blocks()[..5].to_vec();
        let roots = [*blocks[0].cid()];
        let car = write_car(&roots, &blocks);
        let starts = section_starts(&roots, &blocks);
        for cut in 0..car.len() {
            let result = read_car(&car[..cut]);
            match starts.iter().position(|&s| s == cut) {
                Some(n) => assert_eq!(result.unwrap().1, blocks[..n], "cut at {cut}"),
                None => assert!(
                    matches!(result, Err(CarError::Truncated { offset, .. }) if offset == cut as u64),
                    "cut at {cut}: {result:?}"
                ),
            }
        }
    }

    #[test]
    fn huge_lengths_are_refused_before_allocating() {
        // Header length u64::MAX.
        let mut car = Vec::new();
        put_varint(&mut car, u64::MAX);
        assert!(matches!(
            read_car(&car),
            Err(CarError::BadHeader { offset: 0, .. })
        ));
        // Header length just over the limit, with no bytes behind it.
        let mut car = Vec::new();
        put_varint(&mut car, MAX_HEADER_BYTES as u64 + 1);
        assert!(matches!(read_car(&car), Err(CarError::BadHeader { .. })));
        // A header length within the limit but no header: truncated, and
        // nothing is reserved for the claimed size.
        let mut car = Vec::new();
        put_varint(&mut car, MAX_HEADER_BYTES as u64);
        assert!(matches!(read_car(&car), Err(CarError::Truncated { .. })));

        // Section lengths: 2^62, and just over the section limit.
        for len in [1u64 << 62, MAX_SECTION_BYTES as u64 + 1] {
            let mut car = write_car(&[], &[]);
            let at = car.len() as u64;
            put_varint(&mut car, len);
            match read_car(&car) {
                Err(CarError::BadSection { offset, .. }) => assert_eq!(offset, at),
                other => panic!("expected a bad section, got {other:?}"),
            }
        }
    }

    #[test]
    fn malformed_varints_are_refused() {
        // 64 bits overflowed: ten continuation bytes, then one more.
        let car = [0xffu8; 11];
        assert!(matches!(read_car(&car), Err(CarError::BadHeader { .. })));
        let mut car = vec![0xffu8; 9];
        car.push(0x02);
        assert!(matches!(read_car(&car), Err(CarError::BadHeader { .. })));
        // Non-minimal: 0x80 0x00 means 0 in two bytes.
        let mut car = write_car(&[], &[]);
        car.extend_from_slice(&[0x85, 0x00]);
        assert!(matches!(read_car(&car), Err(CarError::BadSection { .. })));

        assert_eq!(take_varint(&[0x80, 0x01]), Ok((128, 2)));
        let mut max = Vec::new();
        put_varint(&mut max, u64::MAX);
        assert_eq!(take_varint(&max), Ok((u64::MAX, 10)));
    }

    #[test]
    fn zero_length_section_is_an_error() {
        let mut car = write_car(&[], &[]);
        car.push(0);
        assert!(matches!(read_car(&car), Err(CarError::BadSection { .. })));
    }

    #[test]
    fn header_problems_are_reported() {
        let framed = |body: &[u8]| {
            let mut car = Vec::new();
            put_varint(&mut car, body.len() as u64);
            car.extend_from_slice(body);
            car
        };
        let root = Block::new(V1_BLAKE3, RAW, &b"r"[..]);
        let good = encode_header(&[*root.cid()]);

        // Keys in the other order, plus an unknown key, are accepted.
        let mut body = vec![0xa3];
        body.extend_from_slice(&hex("6776657273696f6e01"));
        body.extend_from_slice(&hex("63666f6f")); // "foo"
        body.extend_from_slice(&hex("82a1616101f6")); // [{"a": 1}, null]
        body.extend_from_slice(&good[1..good.len() - 9]); // "roots": [...]
        assert_eq!(read_car(&framed(&body)).unwrap().0, vec![*root.cid()]);

        // Version 3.
        let mut body = good.clone();
        *body.last_mut().unwrap() = 0x03;
        assert!(matches!(
            read_car(&framed(&body)),
            Err(CarError::UnsupportedVersion { version: 3, .. })
        ));
        // No roots.
        assert!(matches!(
            read_car(&framed(&hex("a16776657273696f6e01"))),
            Err(CarError::BadHeader { .. })
        ));
        // Not a map, trailing bytes, indefinite length, missing 0x00 prefix.
        for body in [
            hex("8101"),
            [good.clone(), vec![0]].concat(),
            hex("bf6776657273696f6e01ff"),
        ] {
            assert!(
                matches!(read_car(&framed(&body)), Err(CarError::BadHeader { .. })),
                "{body:02x?}"
            );
        }
        let mut body = good.clone();
        let prefix_at = body.iter().position(|&b| b == 0x00).unwrap();
        body[prefix_at] = 0x01;
        assert!(matches!(
            read_car(&framed(&body)),
            Err(CarError::BadHeader { .. })
        ));
        // Roots count far beyond the bytes present.
        let body = hex("a265726f6f74739bffffffffffffffff6776657273696f6e01");
        assert!(matches!(
            read_car(&framed(&body)),
            Err(CarError::BadHeader { .. })
        ));
        // Deep nesting in an unknown key stops at the depth limit.
        let mut body = hex("a2636b6579");
        body.extend(std::iter::repeat_n(0x81, 1000));
        body.push(0x00);
        body.extend_from_slice(&hex("6776657273696f6e01"));
        assert!(matches!(
            read_car(&framed(&body)),
            Err(CarError::BadHeader { .. })
        ));
    }

    /// Wraps a CARv1 in a CARv2 with `pad` bytes before the payload and an
    /// unread tail standing in for the index.
    fn wrap_v2(v1: &[u8], pad: usize, data_size: u64) -> Vec<u8> {
        let data_offset = (CARV2_PRAGMA.len() + CARV2_HEADER_BYTES + pad) as u64;
        let mut car = CARV2_PRAGMA.to_vec();
        car.extend_from_slice(&[0u8; 16]);
        car.extend_from_slice(&data_offset.to_le_bytes());
        car.extend_from_slice(&data_size.to_le_bytes());
        car.extend_from_slice(&(data_offset + v1.len() as u64).to_le_bytes());
        car.extend(std::iter::repeat_n(0u8, pad));
        car.extend_from_slice(v1);
        car.extend_from_slice(b"\x80\x08 index bytes that are not a CARv1 section");
        car
    }

    #[test]
    fn reads_the_payload_of_a_carv2() {
        let blocks = sample_blocks();
        let roots = [*blocks[1].cid()];
        let v1 = write_car(&roots, &blocks);
        for pad in [0, 13] {
            let car = wrap_v2(&v1, pad, v1.len() as u64);
            let mut r = CarReader::new(&car[..]).unwrap();
            assert_eq!(r.version(), 2);
            assert_eq!(r.roots(), roots);
            let got: Result<Vec<_>, _> = r.by_ref().collect();
            assert_eq!(got.unwrap(), blocks);
        }
        // A data size that ends inside a section.
        let car = wrap_v2(&v1, 0, v1.len() as u64 - 1);
        assert!(matches!(read_car(&car), Err(CarError::Truncated { .. })));
        // A data offset pointing back into the prefix.
        let mut car = wrap_v2(&v1, 0, v1.len() as u64);
        car[27..35].copy_from_slice(&3u64.to_le_bytes());
        assert!(matches!(read_car(&car), Err(CarError::BadHeader { .. })));
        // A CARv2 inside a CARv2.
        let car = wrap_v2(&wrap_v2(&v1, 0, v1.len() as u64), 0, 1000);
        assert!(matches!(
            read_car(&car),
            Err(CarError::UnsupportedVersion { version: 2, .. })
        ));
        // Only the pragma.
        assert!(matches!(
            read_car(&CARV2_PRAGMA),
            Err(CarError::Truncated { .. })
        ));
    }

    #[test]
    fn iteration_stops_after_the_first_error() {
        let blocks = sample_blocks();
        let mut car = write_car(&[], &blocks[1..3]);
        car.push(0x05);
        let mut r = CarReader::new(&car[..]).unwrap();
        let items: Vec<_> = r.by_ref().collect();
        assert_eq!(items.len(), 3);
        assert!(items[2].is_err());
        assert!(r.next_block().is_err());
        assert!(r.next().is_none());
    }

    #[test]
    fn writer_refuses_blocks_over_the_limit() {
        let big = Block::new(V1_BLAKE3, RAW, vec![0u8; MAX_BLOCK_BYTES + 1]);
        let mut w = CarWriter::new(Vec::new(), &[]).unwrap();
        assert!(matches!(
            w.write_block(&big),
            Err(CarError::Block {
                source: BlockError::TooLarge { .. },
                ..
            })
        ));
        let max = Block::new(V1_BLAKE3, RAW, vec![0u8; MAX_BLOCK_BYTES]);
        w.write_block(&max).unwrap();
        let car = w.finish().unwrap();
        assert_eq!(read_car(&car).unwrap().1, vec![max]);
    }

    #[test]
    fn unsupported_hash_is_a_block_error() {
        // CIDv1 raw with an identity multihash of "hi".
        let mut car = write_car(&[], &[]);
        let section = hex("01550002 6869".replace(' ', "").as_str());
        put_varint(&mut car, section.len() as u64);
        car.extend_from_slice(&section);
        assert!(matches!(
            read_car(&car),
            Err(CarError::Block {
                source: BlockError::UnsupportedHash { .. },
                ..
            })
        ));
    }

    fn arb_block() -> impl Strategy<Value = Block> {
        (
            prop::collection::vec(any::<u8>(), 0..2048),
            prop_oneof![Just(V0), Just(V1_SHA2), Just(V1_BLAKE3)],
            prop_oneof![Just(RAW), Just(DAG_PB), Just(0x71u64)],
        )
            .prop_map(|(data, format, codec)| Block::new(format, codec, data))
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
            let _ = read_car(&bytes);
        }

        #[test]
        fn arbitrary_sections_after_a_good_header_never_panic(
            tail in prop::collection::vec(any::<u8>(), 0..512),
        ) {
            let mut car = write_car(&[], &[]);
            car.extend_from_slice(&tail);
            let _ = read_car(&car);
            let _ = read_car(&wrap_v2(&car, 0, car.len() as u64));
        }

        #[test]
        fn damaged_cars_never_panic(
            blocks in prop::collection::vec(arb_block(), 1..4),
            flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
            cut in any::<prop::sample::Index>(),
        ) {
            let mut car = write_car(&[*blocks[0].cid()], &blocks);
            for (at, byte) in flips {
                let i = at.index(car.len());
                car[i] = byte;
            }
            let _ = read_car(&car);
            let _ = read_car(&car[..cut.index(car.len())]);
        }

        #[test]
        fn arbitrary_block_lists_round_trip(
            blocks in prop::collection::vec(arb_block(), 0..8),
            root_picks in prop::collection::vec(any::<prop::sample::Index>(), 0..3),
        ) {
            let roots: Vec<Cid> = if blocks.is_empty() {
                vec![]
            } else {
                root_picks.iter().map(|i| *blocks[i.index(blocks.len())].cid()).collect()
            };
            let car = write_car(&roots, &blocks);
            let (got_roots, got_blocks) = read_car(&car).unwrap();
            prop_assert_eq!(got_roots, roots);
            prop_assert_eq!(got_blocks, blocks);
        }
    }
}

//! [`CarReader`]: streams verified blocks out of a CARv1, or out of the
//! CARv1 payload of a CARv2.
//!
//! Hand-written because it reads a blocking `std::io::Read` without an async
//! runtime (the CAR crates read async streams), one section at a time, and
//! checks every length against its limit before allocating for it.

use super::header::{CarHeader, Carv2Header, CARV2_HEADER_BYTES};
use super::{
    CarError, HeaderProblem, SectionProblem, CARV2_PRAGMA, MAX_HEADER_BYTES, MAX_SECTION_BYTES,
};
use crate::block::{Block, Cid};
use bytes::Bytes;
use std::io::{self, Read};
use unsigned_varint::{decode, encode};

/// Decodes a complete varint (its last byte has the high bit clear) with
/// `unsigned_varint`, which drops the bits of a tenth byte past the 64th:
/// such a varint is refused here as an overflow.
pub(super) fn decode_varint(bytes: &[u8]) -> Result<u64, decode::Error> {
    let max = encode::u64_buffer().len();
    if bytes.len() == max && bytes[max - 1] > 1 {
        return Err(decode::Error::Overflow);
    }
    decode::u64(bytes).map(|(v, _)| v)
}

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

    fn truncated(&self, what: &'static str) -> CarError {
        CarError::Truncated {
            offset: self.pos,
            what,
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
    /// byte. A malformed varint becomes `malformed(start offset, error)`.
    fn varint(
        &mut self,
        what: &'static str,
        malformed: fn(u64, decode::Error) -> CarError,
    ) -> Result<Option<u64>, CarError> {
        let start = self.pos;
        let mut buf = encode::u64_buffer();
        for i in 0..buf.len() {
            let Some(b) = self.byte()? else {
                if i == 0 {
                    return Ok(None);
                }
                return Err(self.truncated(what));
            };
            buf[i] = b;
            if decode::is_last(b) {
                return decode_varint(&buf[..=i])
                    .map(Some)
                    .map_err(|e| malformed(start, e));
            }
        }
        Err(malformed(start, decode::Error::Overflow))
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
            return Err(self.truncated(what));
        }
        Ok(buf)
    }

    /// Discards `len` bytes.
    fn skip(&mut self, len: u64, what: &'static str) -> Result<(), CarError> {
        let got = io::copy(&mut (&mut self.inner).take(len), &mut io::sink())
            .map_err(|e| self.io_error(e))?;
        self.pos += got;
        if got < len {
            return Err(self.truncated(what));
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
        let bad_header = |offset, problem| CarError::BadHeader { offset, problem };
        let (version, roots) = match header.version {
            1 => (1, header.roots),
            2 => {
                if raw != CARV2_PRAGMA[1..] {
                    return Err(bad_header(0, HeaderProblem::NotCarv2Pragma));
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
        let roots = roots.ok_or_else(|| bad_header(0, HeaderProblem::NoRoots))?;
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
                problem: SectionProblem::AfterError,
            });
        }
        let result = self.read_section();
        if result.is_err() {
            self.failed_at = Some(self.src.pos);
        }
        result
    }

    fn read_section(&mut self) -> Result<Option<Block>, CarError> {
        let offset = self.src.pos;
        let malformed = |offset, e| CarError::BadSection {
            offset,
            problem: SectionProblem::LengthVarint(e),
        };
        let Some(len) = self.src.varint("section length", malformed)? else {
            return Ok(None);
        };
        let bad = |problem| CarError::BadSection { offset, problem };
        if len == 0 {
            return Err(bad(SectionProblem::Empty));
        }
        if len > MAX_SECTION_BYTES as u64 {
            return Err(bad(SectionProblem::TooLarge { len }));
        }
        let section = Bytes::from(self.src.bytes(len as usize, "a section")?);
        let mut rest = &section[..];
        let cid = Cid::read_bytes(&mut rest).map_err(|e| bad(SectionProblem::Cid(e)))?;
        let data = section.slice(section.len() - rest.len()..);
        Block::verified(cid, data)
            .map(Some)
            .map_err(|source| CarError::Block { offset, source })
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
fn read_header<R: Read>(src: &mut Source<R>) -> Result<(Vec<u8>, CarHeader), CarError> {
    let start = src.pos;
    let malformed = |offset, e| CarError::BadHeader {
        offset,
        problem: HeaderProblem::LengthVarint(e),
    };
    let Some(len) = src.varint("header length", malformed)? else {
        return Err(src.truncated("the header length"));
    };
    if len == 0 || len > MAX_HEADER_BYTES as u64 {
        return Err(CarError::BadHeader {
            offset: start,
            problem: HeaderProblem::Length { len },
        });
    }
    let body_at = src.pos;
    let raw = src.bytes(len as usize, "the header")?;
    let header = CarHeader::decode(&raw).map_err(|problem| CarError::BadHeader {
        offset: body_at,
        problem,
    })?;
    Ok((raw, header))
}

/// Having read the CARv2 pragma, reads the fixed CARv2 header, skips to the
/// data payload and limits the source to the payload's length.
fn enter_carv2_payload<R: Read>(src: &mut Source<R>) -> Result<(), CarError> {
    let header_at = src.pos;
    let mut fixed = [0u8; CARV2_HEADER_BYTES];
    fixed.copy_from_slice(&src.bytes(CARV2_HEADER_BYTES, "the CARv2 header")?);
    let Carv2Header {
        data_offset,
        data_size,
    } = Carv2Header::parse(&fixed);
    if data_offset < src.pos {
        return Err(CarError::BadHeader {
            offset: header_at,
            problem: HeaderProblem::DataOffset {
                data_offset,
                prefix_bytes: src.pos,
            },
        });
    }
    src.skip(data_offset - src.pos, "the padding before the CARv2 data")?;
    src.inner.set_limit(data_size);
    Ok(())
}

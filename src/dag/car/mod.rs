//! CAR (Content Addressable aRchive) files: reading and writing the CARv1
//! wire format, and reading the CARv1 payload of a CARv2.
//!
//! - `header.rs`: the DAG-CBOR header and the fixed CARv2 prefix.
//! - `reader.rs`: [`CarReader`], streaming verified blocks out of a CAR.
//! - `writer.rs`: [`CarWriter`], writing a CARv1 one block at a time.
//!
//! # CARv1 layout
//!
//! ```text
//! varint(H) header[H]   varint(S) cid block   varint(S) cid block   ...
//! ```
//!
//! * Every `varint` is a multiformats unsigned varint (LEB128: 7 bits a
//!   byte, low bits first, high bit set on every byte but the last). We
//!   write and accept only the minimal encoding, at most 64 bits.
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
//!
//! [`Block::verified`]: crate::block::Block::verified

mod header;
mod reader;
mod writer;

pub use reader::CarReader;
pub use writer::CarWriter;

use crate::block::{BlockError, MAX_BLOCK_BYTES};
use std::collections::TryReserveError;
use std::convert::Infallible;
use std::io;
use unsigned_varint::decode;

/// The largest CARv1 header accepted or written (about 29,000 roots).
pub const MAX_HEADER_BYTES: usize = 1024 * 1024;

/// The largest section accepted: a maximal block plus room for its CID.
pub const MAX_SECTION_BYTES: usize = MAX_BLOCK_BYTES + 1024;

/// The first 11 bytes of every CARv2: `varint(10)` and the DAG-CBOR map
/// `{"version": 2}`.
pub const CARV2_PRAGMA: [u8; 11] = [
    0x0a, 0xa1, 0x67, b'v', b'e', b'r', b's', b'i', b'o', b'n', 0x02,
];

/// What went wrong reading or writing a CAR. Every variant carries the byte
/// offset in the stream (counted from its first byte, CARv2 prefix
/// included) where the problem was found.
#[derive(Debug, thiserror::Error)]
pub enum CarError {
    /// The underlying reader or writer failed.
    #[error("I/O error at byte {offset} of the CAR: {source}")]
    Io {
        /// Where in the stream the I/O call failed.
        offset: u64,
        /// The reader's or writer's error.
        #[source]
        source: io::Error,
    },
    /// The input ended inside the header or a section (`offset` is where
    /// it ended). A clean end between sections is not an error.
    #[error("CAR is truncated: input ends at byte {offset} inside {what}")]
    Truncated {
        /// Where the input ended.
        offset: u64,
        /// The part of the CAR the input ended in.
        what: &'static str,
    },
    /// The header (or the CARv2 prefix) is malformed or over the size limit.
    #[error("bad CAR header at byte {offset}: {problem}")]
    BadHeader {
        /// Where the malformed part starts (the header body for CBOR errors).
        offset: u64,
        /// What is wrong with it.
        #[source]
        problem: HeaderProblem,
    },
    /// The header names a CAR version this reader does not know.
    #[error("unsupported CAR version {version} at byte {offset} (only 1 and 2 can be read)")]
    UnsupportedVersion {
        /// Where the header naming the version starts.
        offset: u64,
        /// The version the header names.
        version: u64,
    },
    /// A section is malformed: bad length, bad CID, over the size limit.
    #[error("bad CAR section at byte {offset}: {problem}")]
    BadSection {
        /// Where the section starts.
        offset: u64,
        /// What is wrong with it.
        #[source]
        problem: SectionProblem,
    },
    /// A section's bytes are not the block its CID names (corruption), or
    /// the block is too large or uses an unsupported hash. The CID is in
    /// the source error.
    #[error("CAR section at byte {offset} holds a rejected block: {source}")]
    Block {
        /// Where the section starts.
        offset: u64,
        /// Why the block was rejected (it names the CID).
        #[source]
        source: BlockError,
    },
}

/// Why a CAR header (or the CARv2 prefix) was refused.
#[derive(Debug, thiserror::Error)]
pub enum HeaderProblem {
    /// The length prefix is not a minimal 64-bit varint.
    #[error("header length: {0}")]
    LengthVarint(#[source] decode::Error),
    /// The length prefix is zero or over [`MAX_HEADER_BYTES`].
    #[error("header claims {len} bytes (allowed: 1 to {MAX_HEADER_BYTES})")]
    Length {
        /// The length the prefix claims.
        len: u64,
    },
    /// The header is not a DAG-CBOR map with a valid `version` and `roots`.
    #[error("not a DAG-CBOR {{roots, version}} map: {0}")]
    Cbor(#[source] serde_ipld_dagcbor::DecodeError<Infallible>),
    /// A version 1 header without `roots`.
    #[error("header has no \"roots\"")]
    NoRoots,
    /// A version 2 header that is not byte-for-byte [`CARV2_PRAGMA`].
    #[error("version 2 header is not the fixed CARv2 pragma")]
    NotCarv2Pragma,
    /// The CARv2 data offset points back into the prefix.
    #[error(
        "CARv2 data offset {data_offset} points inside the CARv2 prefix ({prefix_bytes} bytes)"
    )]
    DataOffset {
        /// The data offset the CARv2 header gives.
        data_offset: u64,
        /// Bytes of prefix already read.
        prefix_bytes: u64,
    },
    /// The roots to write do not fit in [`MAX_HEADER_BYTES`].
    #[error("{roots} roots make a {len} byte header, over the {MAX_HEADER_BYTES} byte limit")]
    TooManyRoots {
        /// How many roots were given.
        roots: usize,
        /// The encoded header's length.
        len: usize,
    },
    /// The header could not be encoded (memory could not be reserved).
    #[error("encoding the header: {0}")]
    Encode(#[source] serde_ipld_dagcbor::EncodeError<TryReserveError>),
}

/// Why a CAR section was refused.
#[derive(Debug, thiserror::Error)]
pub enum SectionProblem {
    /// The length prefix is not a minimal 64-bit varint.
    #[error("section length: {0}")]
    LengthVarint(#[source] decode::Error),
    /// A section of length zero (it cannot hold a CID).
    #[error("zero-length section")]
    Empty,
    /// The length prefix is over [`MAX_SECTION_BYTES`].
    #[error("section claims {len} bytes, over the {MAX_SECTION_BYTES} byte limit")]
    TooLarge {
        /// The length the prefix claims.
        len: u64,
    },
    /// The section does not start with a valid binary CID.
    #[error("bad CID: {0}")]
    Cid(#[source] cid::Error),
    /// An earlier error stopped the reader; `offset` is where.
    #[error("reading stopped at an earlier error")]
    AfterError,
}

#[cfg(test)]
mod tests;

//! [`CarWriter`]: writes a CARv1, the header first, then one section per
//! block.

use super::header::CarHeader;
use super::CarError;
use crate::block::{Block, Cid};
use std::io::Write;
use unsigned_varint::encode;

/// Writes a CARv1: the header on creation, then one section per block.
pub struct CarWriter<W> {
    w: W,
    pos: u64,
}

impl<W: Write> CarWriter<W> {
    /// Writes the header naming `roots` (which may be empty, as go-car and
    /// js `@ipld/car` accept).
    pub fn new(w: W, roots: &[Cid]) -> Result<Self, CarError> {
        let header = CarHeader::encode(roots)
            .map_err(|problem| CarError::BadHeader { offset: 0, problem })?;
        let mut out = Vec::with_capacity(header.len() + 10);
        out.extend_from_slice(encode::u64(header.len() as u64, &mut encode::u64_buffer()));
        out.extend_from_slice(&header);
        let mut writer = CarWriter { w, pos: 0 };
        writer.put(&out)?;
        Ok(writer)
    }

    /// Appends one section. Blocks over
    /// [`MAX_BLOCK_BYTES`](crate::block::MAX_BLOCK_BYTES) are refused, so
    /// we never write a CAR that we (or Bitswap peers) would reject.
    pub fn write_block(&mut self, block: &Block) -> Result<(), CarError> {
        block.check_size().map_err(|source| CarError::Block {
            offset: self.pos,
            source,
        })?;
        let data = block.data();
        let cid = block.cid().to_bytes();
        let mut head = Vec::with_capacity(cid.len() + 10);
        let len = (cid.len() + data.len()) as u64;
        head.extend_from_slice(encode::u64(len, &mut encode::u64_buffer()));
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

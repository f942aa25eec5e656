//! Protobuf wire primitives shared by the hand-written codecs (dag-pb and
//! UnixFS in `dag::pb`, Bitswap messages in `net::bitswap::message`):
//! field writers, and a bounds-checked [`Reader`].
//!
//! Varints are written with `unsigned_varint`. [`Reader::varint`] stays
//! hand-written because protobuf decoders accept non-minimal varints (as
//! Kubo's and js-dag-pb's do) and `unsigned_varint` refuses them.

use unsigned_varint::encode;

/// Why bytes failed to decode.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("malformed {what}: {reason}")]
pub struct DecodeError {
    /// The message being decoded (`"dag-pb node"`, `"Bitswap message"`...).
    pub what: &'static str,
    /// What is wrong with it.
    pub reason: String,
}

fn err(what: &'static str, reason: impl Into<String>) -> DecodeError {
    DecodeError {
        what,
        reason: reason.into(),
    }
}

/// Appends `v` as a (minimal) varint.
pub fn put_varint(out: &mut Vec<u8>, v: u64) {
    out.extend_from_slice(encode::u64(v, &mut encode::u64_buffer()));
}

/// Appends a length-delimited field.
pub fn put_bytes_field(out: &mut Vec<u8>, field: u32, bytes: &[u8]) {
    put_varint(out, ((field as u64) << 3) | 2);
    put_varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

/// Appends a varint field.
pub fn put_varint_field(out: &mut Vec<u8>, field: u32, v: u64) {
    put_varint(out, (field as u64) << 3);
    put_varint(out, v);
}

/// A cursor over protobuf bytes; every read is bounds-checked.
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    what: &'static str,
}

impl<'a> Reader<'a> {
    /// A reader over `buf`, whose errors name the message `what`.
    pub fn new(buf: &'a [u8], what: &'static str) -> Self {
        Reader { buf, pos: 0, what }
    }

    /// Whether every byte has been read.
    pub fn done(&self) -> bool {
        self.pos >= self.buf.len()
    }

    /// A varint of at most 64 bits (non-minimal encodings accepted).
    pub fn varint(&mut self) -> Result<u64, DecodeError> {
        let mut v: u64 = 0;
        for i in 0..10 {
            let b = *self
                .buf
                .get(self.pos)
                .ok_or_else(|| err(self.what, "truncated varint"))?;
            self.pos += 1;
            if i == 9 && b > 1 {
                return Err(err(self.what, "varint overflows 64 bits"));
            }
            v |= ((b & 0x7f) as u64) << (7 * i);
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(err(self.what, "varint too long"))
    }

    /// A field key: the field number and the wire type.
    pub fn key(&mut self) -> Result<(u64, u8), DecodeError> {
        let k = self.varint()?;
        Ok((k >> 3, (k & 7) as u8))
    }

    /// Skips a field of an unknown number (forward compatibility).
    pub fn skip(&mut self, wire: u8) -> Result<(), DecodeError> {
        let n = match wire {
            0 => return self.varint().map(|_| ()),
            1 => 8,
            2 => return self.bytes().map(|_| ()),
            5 => 4,
            w => return Err(err(self.what, format!("unsupported wire type {w}"))),
        };
        if self.buf.len() - self.pos < n {
            return Err(err(self.what, "truncated fixed-width field"));
        }
        self.pos += n;
        Ok(())
    }

    /// A length-delimited field's bytes, borrowed from the input.
    pub fn bytes(&mut self) -> Result<&'a [u8], DecodeError> {
        let len = self.varint()?;
        let end = (self.pos as u64)
            .checked_add(len)
            .filter(|&e| e <= self.buf.len() as u64)
            .ok_or_else(|| err(self.what, "length runs past the end"))? as usize;
        let s = &self.buf[self.pos..end];
        self.pos = end;
        Ok(s)
    }
}

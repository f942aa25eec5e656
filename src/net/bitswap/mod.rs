//! Bitswap: exchanging blocks by CID with peers.
//!
//! - [`message`]: the wire format, bounded as the spec requires.
//! - [`ledger`]: what a peer wants from us and the replies (server side).
//! - [`session`]: fetching many blocks from many peers (client side).
//! - [`driver`]: runs the above over libp2p streams ([`inbound`] reads
//!   the frames peers send).
//! - [`fetch`]: the task behind each fetch session, and its handle.

pub mod driver;
mod engine;
pub mod fetch;
pub mod inbound;
pub mod ledger;
pub mod message;
pub mod outbox;
pub mod session;
pub mod solicited;
mod writer;

/// A distinct block of `len` bytes (at least 4) for tests.
#[cfg(test)]
pub(crate) fn test_block(i: u32, len: usize) -> crate::block::Block {
    let mut data = vec![0u8; len.max(4)];
    data[..4].copy_from_slice(&i.to_le_bytes());
    let format = crate::block::CidFormat {
        version: 1,
        hash: crate::block::HashAlg::Blake3,
    };
    crate::block::Block::new(format, crate::block::RAW, data)
}

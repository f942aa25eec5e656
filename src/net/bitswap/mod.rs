//! Bitswap: exchanging blocks by CID with peers.
//!
//! - [`message`]: the wire format, bounded as the spec requires.

pub mod message;

//! Bitswap: exchanging blocks by CID with peers.
//!
//! - [`message`]: the wire format, bounded as the spec requires.
//! - [`ledger`]: what a peer wants from us and the replies (server side).
//! - [`session`]: fetching many blocks from many peers (client side).
//! - [`driver`]: runs the above over libp2p streams.
//! - [`fetch`]: the task behind each fetch session, and its handle.

pub mod driver;
pub mod fetch;
pub mod ledger;
pub mod message;
pub mod outbox;
pub mod session;

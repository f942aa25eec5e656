//! cairn: a peer-to-peer, content-addressed storage network.
//!
//! Layers, lowest first (a module never imports a higher one):
//! [`block`] ← [`store`] / [`dag`] ← [`node`]. The `cairn` binary is a thin
//! CLI over [`node`].

// Errors carry the CID they concern (STYLE.md), and a CID with room for a
// 64-byte digest is ~80 bytes; errors are the cold path, so we accept large
// `Err` variants rather than box every CID.
#![allow(clippy::result_large_err)]

pub mod block;
pub mod dag;
pub mod gateway;
pub mod http;
pub mod net;
pub mod node;
pub mod proto;
pub mod replicate;
pub mod rpc;
pub mod store;

//! cairn: a peer-to-peer, content-addressed storage network.
//!
//! Layers, lowest first (a module never imports a higher one):
//! [`block`] ← [`store`] / [`dag`] ← [`node`]. The `cairn` binary is a thin
//! CLI over [`node`].

pub mod block;
pub mod dag;
pub mod node;
pub mod store;

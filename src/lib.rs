//! cairn: a peer-to-peer, content-addressed storage network.
//!
//! Layers, lowest first; a module never imports a higher one:
//!
//! 1. [`block`]: blocks, CIDs and hashing, the base every layer shares;
//!    [`proto`]: the protobuf wire primitives of the hand-written codecs.
//! 2. [`store`]: the block store (segments on disk, or memory), pins, GC;
//!    [`dag`]: UnixFS over dag-pb (chunking, building, reading, CAR).
//! 3. [`net`]: libp2p (TCP, QUIC, Noise, Yamux), Kademlia, Bitswap.
//! 4. [`replicate`]: keeps pinned roots at their replication factor;
//!    [`names`]: what names content and can move: the keystore, IPNS,
//!    DNSLink, and [`names::mfs`], the mutable file tree (Kubo's `files`);
//!    [`log`]: durable logs, chains of message batches with dense offsets.
//! 5. [`node`]: builds all of the above from a `config.toml`, runs their
//!    tasks and offers every capability as a Rust API.
//! 6. [`rpc`] (the Kubo-style RPC API, server and client), [`gateway`]
//!    (the HTTP gateway) and [`s3`] (the S3-compatible endpoint), over
//!    [`http`]'s shared plumbing; [`daemon`] starts a node with them and
//!    stops it gracefully.
//!
//! The `cairn` binary is a thin CLI over these; netsim runs many nodes in
//! one process through [`node`].

// Errors carry the CID they concern (STYLE.md), and a CID with room for a
// 64-byte digest is ~80 bytes; errors are the cold path, so we accept large
// `Err` variants rather than box every CID.
#![allow(clippy::result_large_err)]

pub mod block;
pub mod daemon;
pub mod dag;
pub mod gateway;
pub mod http;
pub mod log;
pub mod names;
pub mod net;
pub mod node;
pub mod proto;
pub mod replicate;
pub mod rpc;
pub mod s3;
pub mod store;

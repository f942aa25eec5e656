//! The network layer (issue 3, being built): libp2p swarm, Kademlia DHT,
//! Bitswap. Protocol logic is written as plain codecs and state machines
//! (no I/O, time passed in) so tests and netsim drive it directly.
//!
//! - [`bitswap`]: Bitswap 1.0.0/1.1.0/1.2.0 wire messages.

pub mod bitswap;

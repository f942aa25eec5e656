//! Names that point at content and can move: the keystore of named keys
//! ([`keystore`]) that IPNS names are made from, and IPNS itself
//! ([`ipns`]: records, publishing, resolving, republishing).

pub mod ipns;
pub mod keystore;

pub use keystore::{KeyError, KeyFormat, KeyInfo, Keystore};

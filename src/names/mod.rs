//! Names that point at content and can move: the keystore of named keys
//! ([`keystore`]) that IPNS names are made from, and IPNS itself
//! ([`ipns`]: records, publishing, resolving, republishing), DNSLink
//! domains ([`dnslink`]), the bounded cache both resolve through
//! ([`cache`]), and MFS ([`mfs`]: a mutable UnixFS tree whose every state
//! is a CID, kept crash-safely in the repo).

pub mod cache;
pub mod dnslink;
pub mod ipns;
pub mod keystore;
pub mod mfs;

pub use keystore::{KeyError, KeyFormat, KeyInfo, Keystore};

//! Names that point at content and can move: the keystore of named keys
//! ([`keystore`]) that IPNS names are made from, and IPNS itself
//! ([`ipns`]: records, publishing, resolving, republishing), DNSLink
//! domains ([`dnslink`]), and the bounded cache both resolve through
//! ([`cache`]).

pub mod cache;
pub mod dnslink;
pub mod ipns;
pub mod keystore;

pub use keystore::{KeyError, KeyFormat, KeyInfo, Keystore};

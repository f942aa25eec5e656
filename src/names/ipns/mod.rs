//! IPNS: names made from keys that point at content and can be moved.
//!
//! - [`record`]: the signed record (create, encode, decode, validate,
//!   choose the best of several).
//! - this file: IPNS names (text and DHT keys) and the validator the DHT's
//!   record store runs on every record before it keeps it.
//! - [`service`]: publishing, resolving (cached for the record's TTL) and
//!   republishing a node's names over the DHT.
//! - [`pubsub`]: IPNS over pub/sub (`/record/` topics, as Kubo's
//!   `--enable-namesys-pubsub`): records published there too, and names
//!   followed so updates arrive at once.
//!
//! A name is the peer ID of its key; as text Kubo writes it as a CIDv1 with
//! the libp2p-key codec in base36 (`k51...`), and older tools as the base58
//! peer ID (`12D3Koo...`); both are read. On the DHT a name's record lives
//! under `/ipns/` followed by the peer ID's binary multihash.

pub mod pubsub;
pub mod record;
pub mod service;

pub use record::{IpnsEntry, IpnsRecord, MAX_RECORD_BYTES};
pub use service::{IpnsSettings, Names, PublishOptions, ResolveOptions};

use libp2p::PeerId;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::SystemTime;

/// The prefix of IPNS keys on the DHT (and of IPNS paths).
pub const IPNS_PREFIX: &str = "/ipns/";

/// The multicodec of a CID naming a key (`libp2p-key`).
const LIBP2P_KEY: u64 = 0x72;

/// Why an IPNS record or name was refused, or a publish or resolve failed.
#[derive(Debug, thiserror::Error)]
pub enum IpnsError {
    /// The record is over the spec's size limit.
    #[error("IPNS record of {bytes} bytes is over the {MAX_RECORD_BYTES}-byte limit")]
    TooLarge {
        /// Its size.
        bytes: usize,
    },
    /// The record's protobuf is malformed.
    #[error(transparent)]
    Malformed(#[from] crate::proto::DecodeError),
    /// A field the record must have is missing or empty.
    #[error("IPNS record has no {field}")]
    Missing {
        /// The field.
        field: &'static str,
    },
    /// The signed data is not the DAG-CBOR map the spec describes.
    #[error("IPNS record data: {reason}")]
    BadData {
        /// What is wrong.
        reason: String,
    },
    /// The name's key is not inlined and the record carries none.
    #[error("IPNS record of {name} carries no public key and the name does not inline one")]
    NoPublicKey {
        /// The name.
        name: PeerId,
    },
    /// The public key does not decode.
    #[error("IPNS record of {name}: bad public key: {reason}")]
    BadPublicKey {
        /// The name.
        name: PeerId,
        /// Why it does not decode.
        reason: String,
    },
    /// The record's public key is not the name's.
    #[error("IPNS record for {name} carries another name's key")]
    KeyMismatch {
        /// The name.
        name: PeerId,
    },
    /// The V2 signature does not verify with the name's key.
    #[error("IPNS record of {name}: the signature does not verify")]
    BadSignature {
        /// The name.
        name: PeerId,
    },
    /// A V1 copy disagrees with the signed data.
    #[error("IPNS record: the unsigned {field} differs from the signed one")]
    Inconsistent {
        /// The V1 field.
        field: &'static str,
    },
    /// A validity type other than EOL.
    #[error("IPNS record: unsupported validity type {kind}")]
    UnsupportedValidity {
        /// The type.
        kind: u64,
    },
    /// The validity is not an RFC 3339 UTC time.
    #[error("IPNS record: validity {validity:?} is not an RFC 3339 time")]
    BadValidity {
        /// The validity as sent.
        validity: String,
    },
    /// The record's end of life has passed.
    #[error("IPNS record of {name} expired at {eol}")]
    Expired {
        /// The name.
        name: PeerId,
        /// Its end of life.
        eol: String,
    },
    /// Signing failed.
    #[error("signing the IPNS record: {0}")]
    Sign(String),
    /// Text that is not an IPNS name.
    #[error("{input:?} is not an IPNS name: {reason}")]
    BadName {
        /// The text given.
        input: String,
        /// Why.
        reason: String,
    },
    /// A value that is not a path (`/ipfs/CID[/path]` or `/ipns/NAME[/path]`).
    #[error("{value:?} is not an /ipfs/ or /ipns/ path")]
    BadValue {
        /// The value given.
        value: String,
    },
    /// No valid record of the name was found.
    #[error("no valid IPNS record of {name} found")]
    NotFound {
        /// The name.
        name: PeerId,
    },
    /// Publishing needs the network and the node is offline.
    #[error("this node is offline: publish with --allow-offline to keep the record locally")]
    Offline,
    /// `/ipns/` names pointing at each other deeper than allowed.
    #[error("resolving {name}: more than {depth} names in a chain")]
    TooDeep {
        /// The name first asked for.
        name: String,
        /// The limit.
        depth: usize,
    },
    /// A DNSLink domain did not resolve.
    #[error(transparent)]
    DnsLink(#[from] crate::names::dnslink::DnsLinkError),
    /// The DHT failed.
    #[error(transparent)]
    Net(#[from] crate::net::NetError),
    /// The key does not exist or the keystore failed.
    #[error(transparent)]
    Key(#[from] crate::names::KeyError),
    /// The repo's metadata (where records are kept) failed.
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
}

impl IpnsError {
    /// Whether the request was at fault (a bad name, value or key name),
    /// not the node.
    pub fn is_bad_request(&self) -> bool {
        match self {
            IpnsError::BadName { .. } | IpnsError::BadValue { .. } | IpnsError::Offline => true,
            IpnsError::Key(k) => k.is_bad_request(),
            IpnsError::DnsLink(d) => {
                matches!(d, crate::names::dnslink::DnsLinkError::BadDomain { .. })
            }
            _ => false,
        }
    }
}

/// A name's peer ID and the path after it, from `NAME`, `/ipns/NAME` or
/// `/ipns/NAME/some/path` (NAME a libp2p-key CID in any base, or a peer
/// ID).
pub fn parse_name(input: &str) -> Result<(PeerId, String), IpnsError> {
    let bad = |reason: &str| IpnsError::BadName {
        input: input.to_string(),
        reason: reason.to_string(),
    };
    let s = input.trim();
    let s = s.strip_prefix(IPNS_PREFIX).unwrap_or(s);
    let (name, rest) = match s.find('/') {
        Some(i) => (&s[..i], &s[i..]),
        None => (s, ""),
    };
    if name.is_empty() {
        return Err(bad("empty"));
    }
    let peer = if let Ok(peer) = name.parse::<PeerId>() {
        peer
    } else {
        let cid = crate::block::cid_from_text(name).map_err(|e| bad(&e.to_string()))?;
        if cid.codec() != LIBP2P_KEY {
            return Err(bad("a CID that names no key (codec is not libp2p-key)"));
        }
        PeerId::from_bytes(&cid.hash().to_bytes()).map_err(|e| bad(&e.to_string()))?
    };
    Ok((peer, rest.trim_end_matches('/').to_string()))
}

/// The DHT key of `name`'s records: `/ipns/` and its binary multihash.
pub fn routing_key(name: &PeerId) -> Vec<u8> {
    [IPNS_PREFIX.as_bytes(), &name.to_bytes()].concat()
}

/// The name a DHT key is for, if it is an IPNS key.
pub fn name_of_key(key: &[u8]) -> Option<PeerId> {
    let id = key.strip_prefix(IPNS_PREFIX.as_bytes())?;
    PeerId::from_bytes(id).ok()
}

/// Checks value records for the DHT's record store: only valid IPNS
/// records are kept, and a record replaces the one held only if better.
/// Refusals are counted (`cairn_ipns_records_refused`).
#[derive(Debug, Default)]
pub struct IpnsValidator {
    refused: AtomicU64,
}

impl IpnsValidator {
    /// Records refused so far.
    pub fn refused(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }
}

impl crate::net::records::ValueValidator for IpnsValidator {
    fn validate(&self, key: &[u8], value: &[u8]) -> Result<SystemTime, String> {
        let checked = match name_of_key(key) {
            Some(name) => record::validate(&name, value, SystemTime::now())
                .map(|r| r.eol)
                .map_err(|e| e.to_string()),
            None => Err("not an /ipns/ key".to_string()),
        };
        if checked.is_err() {
            self.refused.fetch_add(1, Ordering::Relaxed);
        }
        checked
    }

    fn replaces(&self, key: &[u8], held: &[u8], new: &[u8]) -> bool {
        let Some(name) = name_of_key(key) else {
            return false;
        };
        let now = SystemTime::now();
        match (
            record::validate(&name, held, now),
            record::validate(&name, new, now),
        ) {
            (Ok(h), Ok(n)) => record::compare(&n, &h) != std::cmp::Ordering::Less,
            (Err(_), Ok(_)) => true,
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use libp2p::identity::Keypair;

    #[test]
    fn names_read_in_every_form() {
        let key = Keypair::generate_ed25519();
        let peer = key.public().to_peer_id();
        let k51 = crate::names::keystore::ipns_name(&peer);
        assert!(k51.starts_with("k51"), "{k51}");
        for text in [
            k51.clone(),
            format!("/ipns/{k51}"),
            peer.to_string(),
            format!("/ipns/{peer}/"),
        ] {
            assert_eq!(parse_name(&text).unwrap(), (peer, String::new()), "{text}");
        }
        assert_eq!(
            parse_name(&format!("/ipns/{k51}/a/b")).unwrap(),
            (peer, "/a/b".to_string())
        );
        for bad in ["", "/ipns/", "example.org", "bafkqaaa"] {
            assert!(
                matches!(parse_name(bad), Err(IpnsError::BadName { .. })),
                "{bad}"
            );
        }
        let key = routing_key(&peer);
        assert!(key.starts_with(b"/ipns/"));
        assert_eq!(name_of_key(&key), Some(peer));
        assert_eq!(name_of_key(b"/pk/abc"), None);
    }
}

//! Heads announced on a log's pub/sub topic.
//!
//! Wire format: the topic of log `ID` is `/cairn/log/1/ID`; a message is
//! JSON `{"id": ID, "head": CID, "next": N, "floor": F, "sig": BASE64}`
//! where `floor` (left out when 0) is the first offset the log keeps (its
//! retention dropped the older batches: followers fetch nothing below it)
//! and `sig` is the log key's signature (the key whose peer ID is `ID`)
//! over `cairn-log-head` 0x00 ID 0x00 CID-bytes N (8 bytes big-endian),
//! followed by F (8 bytes big-endian) when F is not 0. Only the log's key
//! makes a valid one, so a peer cannot move a follower to a forged chain
//! or floor; the chain itself is checked again batch by batch.

use crate::block::Cid;
use base64::Engine as _;
use libp2p::identity::{Keypair, PublicKey};
use libp2p::PeerId;
use serde::{Deserialize, Serialize};

/// The prefix of logs' topics.
pub const TOPIC_PREFIX: &str = "/cairn/log/1/";

/// Largest announcement read.
pub const MAX_ANNOUNCE_BYTES: usize = 4096;

/// The pub/sub topic of log `id`.
pub fn topic(id: &str) -> String {
    format!("{TOPIC_PREFIX}{id}")
}

/// A log's head as its key announced it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HeadAnnounce {
    /// The log's id.
    pub id: String,
    /// Its newest batch.
    pub head: Cid,
    /// The offset after that batch's last message.
    pub next: u64,
    /// The first offset the log keeps (0: all).
    pub floor: u64,
}

#[derive(Serialize, Deserialize)]
struct Wire {
    id: String,
    head: String,
    next: u64,
    #[serde(default, skip_serializing_if = "is_zero")]
    floor: u64,
    sig: String,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// Why an announcement was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AnnounceError {
    /// Not the JSON shape, too large, or a field that does not parse.
    #[error("malformed head announcement: {0}")]
    Malformed(String),
    /// Signed by another key than the log's.
    #[error("head announcement for log {id} not signed by its key")]
    BadSignature {
        /// The log.
        id: String,
    },
}

fn signed_bytes(id: &str, head: &Cid, next: u64, floor: u64) -> Vec<u8> {
    let mut out = b"cairn-log-head\0".to_vec();
    out.extend_from_slice(id.as_bytes());
    out.push(0);
    out.extend_from_slice(&head.to_bytes());
    out.extend_from_slice(&next.to_be_bytes());
    if floor != 0 {
        out.extend_from_slice(&floor.to_be_bytes());
    }
    out
}

impl HeadAnnounce {
    /// The message, signed with `key` (the log's).
    pub fn encode(&self, key: &Keypair) -> Result<Vec<u8>, AnnounceError> {
        let sig = key
            .sign(&signed_bytes(&self.id, &self.head, self.next, self.floor))
            .map_err(|e| AnnounceError::Malformed(e.to_string()))?;
        let wire = Wire {
            id: self.id.clone(),
            head: self.head.to_string(),
            next: self.next,
            floor: self.floor,
            sig: base64::engine::general_purpose::STANDARD.encode(sig),
        };
        serde_json::to_vec(&wire).map_err(|e| AnnounceError::Malformed(e.to_string()))
    }

    /// The announcement in `data`, for log `id`, if its key signed it.
    pub fn decode(id: &str, data: &[u8]) -> Result<HeadAnnounce, AnnounceError> {
        let bad = |why: &str| AnnounceError::Malformed(why.to_string());
        if data.len() > MAX_ANNOUNCE_BYTES {
            return Err(bad("too large"));
        }
        let wire: Wire = serde_json::from_slice(data).map_err(|e| bad(&e.to_string()))?;
        if wire.id != id {
            return Err(bad("for another log"));
        }
        let head = crate::block::parse_cid(&wire.head).map_err(|e| bad(&e.to_string()))?;
        let sig = base64::engine::general_purpose::STANDARD
            .decode(&wire.sig)
            .map_err(|e| bad(&e.to_string()))?;
        let key = public_key(id).ok_or_else(|| AnnounceError::BadSignature { id: id.into() })?;
        if !key.verify(&signed_bytes(id, &head, wire.next, wire.floor), &sig) {
            return Err(AnnounceError::BadSignature { id: id.into() });
        }
        if wire.floor > wire.next {
            return Err(bad("a floor past the log's end"));
        }
        Ok(HeadAnnounce {
            id: wire.id,
            head,
            next: wire.next,
            floor: wire.floor,
        })
    }
}

/// The public key inlined in peer ID `id` (Ed25519 keys are).
fn public_key(id: &str) -> Option<PublicKey> {
    let peer: PeerId = id.parse().ok()?;
    let mh: &libp2p::multihash::Multihash<64> = peer.as_ref();
    if mh.code() != crate::block::IDENTITY {
        return None;
    }
    PublicKey::try_decode_protobuf(mh.digest()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_logs_key_makes_a_valid_announcement() {
        let key = Keypair::generate_ed25519();
        let id = key.public().to_peer_id().to_string();
        let head = crate::block::CidFormat::V1_SHA2_256.cid(crate::block::DAG_CBOR, b"x");
        let a = HeadAnnounce {
            id: id.clone(),
            head,
            next: 42,
            floor: 0,
        };
        let bytes = a.encode(&key).unwrap();
        assert_eq!(HeadAnnounce::decode(&id, &bytes).unwrap(), a);
        // Another key, claiming the log.
        let other = Keypair::generate_ed25519();
        let forged = a.encode(&other).unwrap();
        assert!(matches!(
            HeadAnnounce::decode(&id, &forged),
            Err(AnnounceError::BadSignature { .. })
        ));
        // A changed offset breaks the signature.
        let text = String::from_utf8(bytes).unwrap().replace("42", "43");
        assert!(HeadAnnounce::decode(&id, text.as_bytes()).is_err());
        // Another log's topic, junk, oversize.
        let other_id = other.public().to_peer_id().to_string();
        assert!(HeadAnnounce::decode(&other_id, &a.encode(&key).unwrap()).is_err());
        assert!(HeadAnnounce::decode(&id, b"{").is_err());
        assert!(HeadAnnounce::decode(&id, &vec![b' '; MAX_ANNOUNCE_BYTES + 1]).is_err());
        assert_eq!(topic(&id), format!("/cairn/log/1/{id}"));
        // A floor is signed too: raised by someone else, refused.
        let floored = HeadAnnounce {
            floor: 40,
            ..a.clone()
        };
        let bytes = floored.encode(&key).unwrap();
        assert_eq!(HeadAnnounce::decode(&id, &bytes).unwrap(), floored);
        let text = String::from_utf8(bytes)
            .unwrap()
            .replace("\"floor\":40", "\"floor\":41");
        assert!(matches!(
            HeadAnnounce::decode(&id, text.as_bytes()),
            Err(AnnounceError::BadSignature { .. })
        ));
        // Without a floor, the message is as before (no field).
        assert!(!String::from_utf8(a.encode(&key).unwrap())
            .unwrap()
            .contains("floor"));
    }
}

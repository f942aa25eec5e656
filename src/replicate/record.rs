//! The replication record of a root: how many copies it should have, who
//! holds them, and whether it was removed — kept by every holder, so repair
//! survives the loss of the node that pinned first.
//!
//! Records merge by version (a counter every change increments): the
//! higher version wins; at equal versions a removal wins, else the holder
//! sets are united (two holders that acted at once both keep their
//! placements). A removal is a tombstone: it stays, so a holder that was
//! offline during `pin rm` learns it when it returns instead of
//! resurrecting the pin.
//!
//! As JSON (in protocol messages, and in the repo's metadata under
//! `repl/{root}`): `{"factor", "holders", "max", "removed", "root", "size",
//! "version"}`, the CID and peer IDs as strings.

use crate::block::{cid_from_text, Cid, CidBytesError};
use libp2p::PeerId;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::str::FromStr;

/// Metadata key prefix of replication records.
pub const KEY_PREFIX: &str = "repl/";

/// Most holders a record lists (bounds what a peer can make us store).
pub const MAX_HOLDERS: usize = 64;

/// A record that does not parse or breaks a bound; it may come from a peer.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    /// Not JSON of a record's shape.
    #[error("malformed replication record: {0}")]
    Json(#[source] serde_json::Error),
    /// The root is not a CID.
    #[error("bad record root {root:?}: {source}")]
    Root {
        /// The root as written.
        root: String,
        /// Why it is not a CID.
        #[source]
        source: CidBytesError,
    },
    /// A holder is not a peer ID.
    #[error("bad holder {holder:?} in the record of {root}: {source}")]
    Holder {
        /// The record's root.
        root: Cid,
        /// The holder as written.
        holder: String,
        /// Why it is not a peer ID.
        #[source]
        source: libp2p::identity::ParseError,
    },
    /// More holders than [`MAX_HOLDERS`].
    #[error("the record of {root} lists {count} holders (max {MAX_HOLDERS})")]
    TooManyHolders {
        /// The record's root.
        root: Cid,
        /// How many it lists.
        count: usize,
    },
    /// A factor of 0, or a maximum below the factor.
    #[error("bad factor {factor} / max {max} in the record of {root}")]
    Factor {
        /// The record's root.
        root: Cid,
        /// The factor written.
        factor: u8,
        /// The maximum written.
        max: u8,
    },
}

/// A root's replication record.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(into = "Wire", try_from = "Wire")]
pub struct Record {
    /// The root of the replicated DAG.
    pub root: Cid,
    /// Copies wanted on live nodes.
    pub factor: u8,
    /// Copies tolerated before trimming (≥ factor).
    pub max: u8,
    /// Incremented by every change; the higher version wins a merge.
    pub version: u64,
    /// A tombstone: `pin rm` ran somewhere.
    pub removed: bool,
    /// Bytes of the DAG (for quota checks before fetching).
    pub size: u64,
    /// The peers holding (or fetching) a copy.
    pub holders: BTreeSet<PeerId>,
}

/// The JSON form. Fields in alphabetical order: the order earlier versions
/// wrote in protocol messages (built through a `serde_json::Value`, whose
/// keys sort), so a record is sent as the same bytes.
#[derive(Serialize, Deserialize)]
struct Wire {
    factor: u8,
    #[serde(default)]
    holders: Vec<String>,
    max: u8,
    #[serde(default)]
    removed: bool,
    root: String,
    #[serde(default)]
    size: u64,
    version: u64,
}

impl From<Record> for Wire {
    fn from(r: Record) -> Wire {
        Wire {
            factor: r.factor,
            holders: r.holders.iter().map(|p| p.to_string()).collect(),
            max: r.max,
            removed: r.removed,
            root: r.root.to_string(),
            size: r.size,
            version: r.version,
        }
    }
}

impl TryFrom<Wire> for Record {
    type Error = RecordError;

    /// Checks every field: a record may come from a peer.
    fn try_from(w: Wire) -> Result<Record, RecordError> {
        let root = cid_from_text(&w.root).map_err(|source| RecordError::Root {
            root: w.root.clone(),
            source,
        })?;
        if w.holders.len() > MAX_HOLDERS {
            return Err(RecordError::TooManyHolders {
                root,
                count: w.holders.len(),
            });
        }
        let holders = w
            .holders
            .into_iter()
            .map(|holder| {
                PeerId::from_str(&holder).map_err(|source| RecordError::Holder {
                    root,
                    holder,
                    source,
                })
            })
            .collect::<Result<BTreeSet<_>, _>>()?;
        if w.factor == 0 || w.max < w.factor {
            return Err(RecordError::Factor {
                root,
                factor: w.factor,
                max: w.max,
            });
        }
        Ok(Record {
            root,
            factor: w.factor,
            max: w.max,
            version: w.version,
            removed: w.removed,
            size: w.size,
            holders,
        })
    }
}

impl Record {
    /// A first record: version 1, held by `first` (the factor at least 1,
    /// the maximum at least the factor).
    pub fn new(root: Cid, factor: u8, max: u8, size: u64, first: PeerId) -> Record {
        Record {
            root,
            factor: factor.max(1),
            max: max.max(factor.max(1)),
            version: 1,
            removed: false,
            size,
            holders: BTreeSet::from([first]),
        }
    }

    /// A record a pin starts here, where this node keeps none of `root`:
    /// as [`new`](Self::new), its version the clock's seconds (`now`, at
    /// least 1). A tombstone of `root` this node forgot after
    /// `tombstone_ttl` may still be kept by a holder that learned it later;
    /// counted from 1, the new pin would lose to it, and its holders would
    /// unpin what the user just pinned. From the clock, the later intent
    /// wins over any removal made before it (a removal bumps the version of
    /// a record made at most as late, once per change).
    pub fn started(root: Cid, factor: u8, max: u8, size: u64, first: PeerId, now: u64) -> Record {
        Record {
            version: now.max(1),
            ..Record::new(root, factor, max, size, first)
        }
    }

    /// The metadata key `root`'s record is stored under.
    pub fn key(root: &Cid) -> String {
        format!("{KEY_PREFIX}{root}")
    }

    /// The record as stored (JSON).
    pub fn encode(&self) -> Vec<u8> {
        // Strings and integers only: serializing cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// Parses a stored record, checking every field.
    pub fn decode(bytes: &[u8]) -> Result<Record, RecordError> {
        let w: Wire = serde_json::from_slice(bytes).map_err(RecordError::Json)?;
        Record::try_from(w)
    }

    /// Merges `other` (same root) into `self`; true when `self` changed.
    pub fn merge(&mut self, other: &Record) -> bool {
        if other.root != self.root {
            return false;
        }
        if other.version > self.version {
            *self = other.clone();
            return true;
        }
        if other.version < self.version {
            return false;
        }
        if other.removed && !self.removed {
            *self = other.clone();
            return true;
        }
        if self.removed {
            return false;
        }
        let before = self.holders.len();
        for h in &other.holders {
            if self.holders.len() < MAX_HOLDERS {
                self.holders.insert(*h);
            }
        }
        self.holders.len() != before
    }

    /// A change made here: the next version.
    pub fn bump(&mut self) {
        self.version += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cid() -> Cid {
        Cid::from_str("bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku").unwrap()
    }

    #[test]
    fn records_round_trip_and_merge_by_version_then_tombstone() {
        let (a, b) = (PeerId::random(), PeerId::random());
        let mut r = Record::new(cid(), 3, 4, 100, a);
        assert_eq!(Record::decode(&r.encode()).unwrap(), r);
        let mut newer = r.clone();
        newer.holders.insert(b);
        newer.bump();
        assert!(r.merge(&newer));
        assert_eq!(r.holders.len(), 2);
        assert!(!r.merge(&Record::new(cid(), 3, 4, 100, a)), "older loses");
        // Equal versions: a removal wins, else holders are united.
        let mut gone = r.clone();
        gone.removed = true;
        let mut other = r.clone();
        other.holders.insert(PeerId::random());
        assert!(r.merge(&other));
        assert_eq!(r.holders.len(), 3);
        assert!(r.merge(&gone));
        assert!(r.removed);
        assert!(
            !r.merge(&other),
            "nothing resurrects a tombstone at its version"
        );
        assert!(matches!(
            Record::decode(b"{\"root\":\"x\"}"),
            Err(RecordError::Json(_))
        ));
        assert!(matches!(
            Record::decode(br#"{"root":"x","factor":3,"max":3,"version":1}"#),
            Err(RecordError::Root { .. })
        ));
        assert!(matches!(
            Record::decode(br#"{"root":"bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku","factor":3,"max":2,"version":1}"#),
            Err(RecordError::Factor { factor: 3, max: 2, .. })
        ));
        assert!(matches!(
            Record::decode(br#"{"root":"bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku","factor":3,"max":3,"version":1,"holders":["nope"]}"#),
            Err(RecordError::Holder { .. })
        ));
    }

    /// A pin made after this node forgot the root's tombstone beats the
    /// tombstone a holder still keeps, however many changes it counted.
    #[test]
    fn a_pin_started_after_a_forgotten_removal_wins_over_it() {
        let a = PeerId::random();
        let made = 1_780_000_000;
        let mut tombstone = Record::started(cid(), 2, 2, 9, a, made);
        for _ in 0..1000 {
            tombstone.bump();
        }
        tombstone.removed = true;
        tombstone.bump();
        let later = made + 7 * 24 * 3600;
        let mut pin = Record::started(cid(), 2, 2, 9, a, later);
        assert!(!pin.merge(&tombstone), "the tombstone is older");
        assert!(!pin.removed);
        let mut held = tombstone.clone();
        assert!(held.merge(&pin));
        assert!(!held.removed, "the holder takes the new pin");
        assert_eq!(Record::started(cid(), 2, 2, 9, a, 0).version, 1);
    }

    /// A record as the previous version stored it (fields in declaration
    /// order) and as it sent it (sorted): both decode; it is sent as the
    /// same bytes.
    #[test]
    fn records_of_the_previous_version_decode() {
        let stored = br#"{"root":"bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku","factor":3,"max":4,"version":1,"removed":false,"size":9,"holders":["12D3KooWK99VoVxNE7XzyBwXEzW7xhK7Gpv85r9F3V3fyKSUKPH5"]}"#;
        let sent = r#"{"factor":3,"holders":["12D3KooWK99VoVxNE7XzyBwXEzW7xhK7Gpv85r9F3V3fyKSUKPH5"],"max":4,"removed":false,"root":"bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku","size":9,"version":1}"#;
        let peer =
            PeerId::from_str("12D3KooWK99VoVxNE7XzyBwXEzW7xhK7Gpv85r9F3V3fyKSUKPH5").unwrap();
        let expected = Record::new(cid(), 3, 4, 9, peer);
        assert_eq!(Record::decode(stored).unwrap(), expected);
        assert_eq!(Record::decode(sent.as_bytes()).unwrap(), expected);
        assert_eq!(String::from_utf8(expected.encode()).unwrap(), sent);
        // Fields an early record may lack take their defaults.
        let bare = br#"{"root":"bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku","factor":1,"max":1,"version":2}"#;
        let r = Record::decode(bare).unwrap();
        assert!(!r.removed && r.size == 0 && r.holders.is_empty());
    }
}

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
//! Stored in the repo's metadata under `repl/{root}` as JSON:
//! `{"root", "factor", "max", "version", "removed", "size", "holders"}`.

use crate::block::Cid;
use libp2p::PeerId;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::str::FromStr;

/// Metadata key prefix of replication records.
pub const KEY_PREFIX: &str = "repl/";

/// Most holders a record lists (bounds what a peer can make us store).
pub const MAX_HOLDERS: usize = 64;

/// A root's replication record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    pub root: Cid,
    /// Copies wanted on live nodes.
    pub factor: u8,
    /// Copies tolerated before trimming (≥ factor).
    pub max: u8,
    pub version: u64,
    /// A tombstone: `pin rm` ran somewhere.
    pub removed: bool,
    /// Bytes of the DAG (for quota checks before fetching).
    pub size: u64,
    pub holders: BTreeSet<PeerId>,
}

#[derive(Serialize, Deserialize)]
struct Wire {
    root: String,
    factor: u8,
    max: u8,
    version: u64,
    #[serde(default)]
    removed: bool,
    #[serde(default)]
    size: u64,
    #[serde(default)]
    holders: Vec<String>,
}

impl Record {
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

    pub fn key(root: &Cid) -> String {
        format!("{KEY_PREFIX}{root}")
    }

    pub fn encode(&self) -> Vec<u8> {
        let w = Wire {
            root: self.root.to_string(),
            factor: self.factor,
            max: self.max,
            version: self.version,
            removed: self.removed,
            size: self.size,
            holders: self.holders.iter().map(|p| p.to_string()).collect(),
        };
        serde_json::to_vec(&w).unwrap_or_default()
    }

    pub fn to_json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.encode()).unwrap_or_default()
    }

    /// Parses a record, checking every field (it may come from a peer).
    pub fn decode(bytes: &[u8]) -> Result<Record, String> {
        let w: Wire = serde_json::from_slice(bytes).map_err(|e| format!("bad record: {e}"))?;
        Self::from_wire(w)
    }

    pub fn from_json(v: &serde_json::Value) -> Result<Record, String> {
        let w: Wire = serde_json::from_value(v.clone()).map_err(|e| format!("bad record: {e}"))?;
        Self::from_wire(w)
    }

    fn from_wire(w: Wire) -> Result<Record, String> {
        let root = Cid::from_str(&w.root).map_err(|e| format!("bad record root: {e}"))?;
        if w.holders.len() > MAX_HOLDERS {
            return Err(format!(
                "record lists {} holders (max {MAX_HOLDERS})",
                w.holders.len()
            ));
        }
        let holders = w
            .holders
            .iter()
            .map(|h| PeerId::from_str(h).map_err(|e| format!("bad holder {h:?}: {e}")))
            .collect::<Result<BTreeSet<_>, _>>()?;
        if w.factor == 0 || w.max < w.factor {
            return Err(format!("bad factor {} / max {}", w.factor, w.max));
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
        assert!(Record::decode(b"{\"root\":\"x\"}").is_err());
        assert!(Record::decode(br#"{"root":"bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku","factor":3,"max":2,"version":1}"#).is_err());
    }
}

//! What the repo keeps of a log: its [`LogState`] (id, head, next offset,
//! replication, retention) under `log/meta/NAME`, and each consumer
//! group's committed offset under `log/group/NAME/GROUP`, both in the
//! store's metadata journal (each write appended and fsynced: a crash
//! leaves the old value or the new one).

use super::LogError;
use crate::block::Cid;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// Prefix of the keys logs are kept under.
pub const META_PREFIX: &str = "log/meta/";

/// Prefix of the keys committed group offsets are kept under.
pub const GROUP_PREFIX: &str = "log/group/";

/// Longest log or group name.
pub const MAX_NAME_BYTES: usize = 64;

/// How much of a log is kept: older batches are dropped (see
/// `retain.rs`), always keeping the head.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Retention {
    /// Batches younger than this.
    Age(#[serde(with = "humantime_serde")] Duration),
    /// The newest batches up to this many message bytes.
    Bytes(u64),
}

/// Where a log's batches come from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Origin {
    /// Created here: appended to here, its key in the keystore.
    Local,
    /// Followed: batches fetched from the network as heads are announced.
    Follow,
}

/// One log as the repo keeps it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogState {
    /// The log's id: the peer ID of its key (its IPNS name's key).
    pub id: String,
    /// Copies the network keeps of its live chain.
    pub replication: u8,
    /// How much is kept.
    pub retention: Option<Retention>,
    /// The newest batch (`None`: nothing appended yet).
    pub head: Option<String>,
    /// The offset the next message gets.
    pub next: u64,
    /// The first offset kept: retention dropped the messages before it,
    /// and the batch starting there is the oldest one the log keeps (0:
    /// the whole chain).
    #[serde(default)]
    pub floor: u64,
    /// Batches kept (from the floor to the head).
    pub batches: u64,
    /// Message bytes kept.
    pub bytes: u64,
    /// Where its batches come from.
    pub origin: Origin,
}

impl LogState {
    /// The head as a CID.
    pub fn head_cid(&self, name: &str) -> Result<Option<Cid>, LogError> {
        self.head
            .as_deref()
            .map(|h| {
                crate::block::parse_cid(h).map_err(|e| LogError::Damaged {
                    name: name.to_string(),
                    reason: format!("its head {h:?}: {e}"),
                })
            })
            .transpose()
    }

    /// Whether the log keeps only part of its chain (a retention, or a
    /// floor above 0): its head is then pinned directly and its kept
    /// batches are roots of garbage collection one by one, down to the
    /// floor, rather than through a recursive pin reaching the whole chain.
    pub fn bounded(&self) -> bool {
        self.floor > 0 || self.retention.is_some()
    }

    /// How the log's head is pinned: recursively (keeping the whole
    /// chain), or directly when [`bounded`](Self::bounded).
    pub fn head_pin_kind(&self) -> crate::store::PinKind {
        if self.bounded() {
            crate::store::PinKind::Direct
        } else {
            crate::store::PinKind::Recursive
        }
    }

    /// The bytes kept for it.
    pub fn encode(&self) -> Vec<u8> {
        // A struct of strings and numbers always serializes.
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// The state from its kept bytes.
    pub fn decode(name: &str, bytes: &[u8]) -> Result<LogState, LogError> {
        serde_json::from_slice(bytes).map_err(|e| LogError::Damaged {
            name: name.to_string(),
            reason: e.to_string(),
        })
    }
}

/// Checks a log or group name: 1 to [`MAX_NAME_BYTES`] of ASCII letters,
/// digits, `.`, `_` and `-`, not starting with `.`.
pub fn check_name(kind: &'static str, name: &str) -> Result<(), LogError> {
    let ok = !name.is_empty()
        && name.len() <= MAX_NAME_BYTES
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(LogError::BadName {
            kind,
            name: name.chars().take(MAX_NAME_BYTES * 2).collect(),
        })
    }
}

/// The key a log's state is kept under.
pub fn meta_key(name: &str) -> String {
    format!("{META_PREFIX}{name}")
}

/// The key a group's committed offset is kept under.
pub fn group_key(name: &str, group: &str) -> String {
    format!("{GROUP_PREFIX}{name}/{group}")
}

/// `7d`, `12h` (an age) or `10GiB`, `500MB` (message bytes), as the CLI's
/// `--retention` takes it.
pub fn parse_retention(text: &str) -> Result<Retention, LogError> {
    let t = text.trim();
    let bad = || LogError::BadRetention {
        text: t.chars().take(64).collect(),
    };
    if let Ok(d) = humantime::parse_duration(t) {
        if d.is_zero() {
            return Err(bad());
        }
        return Ok(Retention::Age(d));
    }
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num.parse().map_err(|_| bad())?;
    let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kb" => 1_000,
        "mb" => 1_000_000,
        "gb" => 1_000_000_000,
        "tb" => 1_000_000_000_000,
        "kib" => 1 << 10,
        "mib" => 1 << 20,
        "gib" => 1 << 30,
        "tib" => 1 << 40,
        _ => return Err(bad()),
    };
    match n.checked_mul(mult) {
        Some(0) | None => Err(bad()),
        Some(b) => Ok(Retention::Bytes(b)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retention_is_an_age_or_a_size() {
        assert_eq!(
            parse_retention("7d").unwrap(),
            Retention::Age(Duration::from_secs(7 * 86400))
        );
        assert_eq!(
            parse_retention("10GiB").unwrap(),
            Retention::Bytes(10 << 30)
        );
        assert_eq!(
            parse_retention("500MB").unwrap(),
            Retention::Bytes(500_000_000)
        );
        for bad in ["", "0", "0s", "7 parsecs", "99999999999999999999TiB", "-1d"] {
            assert!(parse_retention(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn names_are_short_and_plain() {
        check_name("log", "orders-2026.eu_1").unwrap();
        for bad in ["", ".hidden", "a/b", "a b", "é", &"x".repeat(65)] {
            assert!(check_name("log", bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_state_reads_back() {
        let s = LogState {
            id: "12D3KooW".into(),
            replication: 2,
            retention: Some(Retention::Age(Duration::from_secs(60))),
            head: None,
            next: 7,
            floor: 3,
            batches: 2,
            bytes: 30,
            origin: Origin::Local,
        };
        assert_eq!(LogState::decode("l", &s.encode()).unwrap(), s);
        assert!(matches!(
            LogState::decode("l", b"{"),
            Err(LogError::Damaged { .. })
        ));
    }
}

//! Batches of a durable log: the blocks a log is a chain of.
//!
//! Wire format: one DAG-CBOR block (codec 0x71, CIDv1 sha2-256) per
//! batch, a map of
//!
//! | key        | value                                                   |
//! |------------|---------------------------------------------------------|
//! | `log`      | the log's id (text, at most [`MAX_LOG_ID_BYTES`])        |
//! | `first`    | the offset of its first message (unsigned integer)       |
//! | `messages` | the messages (a list of byte strings, 1 to [`MAX_BATCH_MESSAGES`], each at most [`MAX_MESSAGE_BYTES`], at most [`MAX_BATCH_BYTES`] in all) |
//! | `prev`     | a link to the previous batch, or null for the first one  |
//! | `time`     | when it was appended (unix milliseconds)                 |
//!
//! Offsets are dense per log: a batch whose `first` is 0 has no `prev`,
//! and every other batch's `first` is its predecessor's `first` plus the
//! predecessor's message count. Since offsets strictly fall along `prev`
//! links and end at 0, a chain that passes [`check_link`] at every step
//! cannot have a cycle or a gap, and is walked in at most `first` steps.
//! A block's bytes are checked against its CID where it enters the node
//! (the store and Bitswap verify every block); [`LogBatch::decode`] then
//! refuses anything that is not a batch of this shape and bound.

use super::ipld::{self, Ipld};
use crate::block::{Block, Cid, CidFormat, DAG_CBOR};
use bytes::Bytes;
use std::collections::BTreeMap;

/// Most messages in one batch.
pub const MAX_BATCH_MESSAGES: usize = 4096;

/// Largest message.
pub const MAX_MESSAGE_BYTES: usize = 1024 * 1024;

/// Most message bytes in one batch (the block stays under the 2 MiB a
/// block may have).
pub const MAX_BATCH_BYTES: usize = MAX_MESSAGE_BYTES + 256 * 1024;

/// Longest log id.
pub const MAX_LOG_ID_BYTES: usize = 256;

/// Why a block is not a valid batch, or two batches are not a valid link
/// of a chain.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BatchError {
    /// The block is not DAG-CBOR.
    #[error("batch {cid}: not a DAG-CBOR block")]
    Codec {
        /// The block.
        cid: Cid,
    },
    /// It does not decode, or decodes to something else than a batch.
    #[error("batch {cid}: {reason}")]
    Malformed {
        /// The block.
        cid: Cid,
        /// What is wrong.
        reason: String,
    },
    /// Past a bound (messages, bytes, id length).
    #[error("batch {cid}: {what} is {got}, over the limit of {max}")]
    TooLarge {
        /// The block (or, for a batch being made, its log's first offset
        /// as no CID exists yet: see the message).
        cid: Cid,
        /// What is too large.
        what: &'static str,
        /// Its size.
        got: usize,
        /// The limit.
        max: usize,
    },
    /// A batch of another log in the chain.
    #[error("batch {cid} belongs to log {found:?}, not {expected:?}")]
    OtherLog {
        /// The block.
        cid: Cid,
        /// The log it names.
        found: String,
        /// The log being read.
        expected: String,
    },
    /// Offsets that are not contiguous along the chain (a gap, an
    /// overlap, or a loop back).
    #[error("batch {cid} starts at offset {first}, but its predecessor {prev} ends at {expected}")]
    Gap {
        /// The newer batch.
        cid: Cid,
        /// Its first offset.
        first: u64,
        /// Its predecessor.
        prev: Cid,
        /// Where the predecessor's messages end.
        expected: u64,
    },
    /// A first batch (offset 0) with a predecessor, or a later one
    /// without.
    #[error("batch {cid} starts at offset {first}; links a predecessor: {has_prev} (only the batch at offset 0 links none)")]
    BadStart {
        /// The block.
        cid: Cid,
        /// Its first offset.
        first: u64,
        /// Whether it links one.
        has_prev: bool,
    },
}

/// One batch of a log's messages.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogBatch {
    /// The log's id.
    pub log: String,
    /// The offset of `messages[0]`.
    pub first: u64,
    /// The messages, in order.
    pub messages: Vec<Bytes>,
    /// The previous batch (`None` for the first).
    pub prev: Option<Cid>,
    /// When it was appended (unix milliseconds).
    pub time_ms: u64,
}

impl LogBatch {
    /// The offset after its last message.
    pub fn end(&self) -> u64 {
        self.first + self.messages.len() as u64
    }

    /// Its message bytes in all.
    pub fn message_bytes(&self) -> usize {
        self.messages.iter().map(Bytes::len).sum()
    }

    /// Checks the bounds and the start rule on a batch (made here or
    /// decoded), `cid` naming it in errors.
    fn check(&self, cid: Cid) -> Result<(), BatchError> {
        let too_large = |what, got, max| BatchError::TooLarge {
            cid,
            what,
            got,
            max,
        };
        if self.log.len() > MAX_LOG_ID_BYTES || self.log.is_empty() {
            return Err(too_large(
                "the log id's length",
                self.log.len(),
                MAX_LOG_ID_BYTES,
            ));
        }
        if self.messages.is_empty() || self.messages.len() > MAX_BATCH_MESSAGES {
            return Err(too_large(
                "the message count",
                self.messages.len(),
                MAX_BATCH_MESSAGES,
            ));
        }
        if let Some(m) = self.messages.iter().find(|m| m.len() > MAX_MESSAGE_BYTES) {
            return Err(too_large("a message", m.len(), MAX_MESSAGE_BYTES));
        }
        if self.message_bytes() > MAX_BATCH_BYTES {
            return Err(too_large(
                "the message bytes",
                self.message_bytes(),
                MAX_BATCH_BYTES,
            ));
        }
        if self.first.checked_add(self.messages.len() as u64).is_none() {
            return Err(too_large("the last offset", usize::MAX, u64::MAX as usize));
        }
        if (self.first == 0) == self.prev.is_some() {
            return Err(BatchError::BadStart {
                cid,
                first: self.first,
                has_prev: self.prev.is_some(),
            });
        }
        Ok(())
    }

    /// The batch as a block (DAG-CBOR, CIDv1 sha2-256), after checking its
    /// bounds.
    pub fn encode(&self) -> Result<Block, BatchError> {
        let placeholder = CidFormat::V1_SHA2_256.cid(DAG_CBOR, b"");
        self.check(placeholder)?;
        let mut map = BTreeMap::new();
        map.insert("log".to_string(), Ipld::String(self.log.clone()));
        map.insert("first".to_string(), Ipld::Integer(self.first.into()));
        map.insert(
            "messages".to_string(),
            Ipld::List(
                self.messages
                    .iter()
                    .map(|m| Ipld::Bytes(m.to_vec()))
                    .collect(),
            ),
        );
        map.insert("prev".to_string(), self.prev.map_or(Ipld::Null, Ipld::Link));
        map.insert("time".to_string(), Ipld::Integer(self.time_ms.into()));
        let data = ipld::encode(DAG_CBOR, &Ipld::Map(map)).map_err(|e| BatchError::Malformed {
            cid: placeholder,
            reason: e.to_string(),
        })?;
        Ok(Block::new(CidFormat::V1_SHA2_256, DAG_CBOR, data))
    }

    /// The batch in `block` (whose bytes were checked against its CID),
    /// refused unless it has the shape and bounds of one.
    pub fn decode(block: &Block) -> Result<LogBatch, BatchError> {
        let cid = *block.cid();
        if cid.codec() != DAG_CBOR {
            return Err(BatchError::Codec { cid });
        }
        let malformed = |reason: &str| BatchError::Malformed {
            cid,
            reason: reason.to_string(),
        };
        let value = ipld::decode(DAG_CBOR, block.data()).map_err(|e| BatchError::Malformed {
            cid,
            reason: e.to_string(),
        })?;
        let Ipld::Map(mut map) = value else {
            return Err(malformed("not a map"));
        };
        let log = match map.remove("log") {
            Some(Ipld::String(s)) => s,
            _ => return Err(malformed("`log` is not text")),
        };
        let int = |v: Option<Ipld>, key: &str| match v {
            Some(Ipld::Integer(n)) => {
                u64::try_from(n).map_err(|_| malformed(&format!("`{key}` is out of range")))
            }
            _ => Err(malformed(&format!("`{key}` is not an integer"))),
        };
        let first = int(map.remove("first"), "first")?;
        let time_ms = int(map.remove("time"), "time")?;
        let prev = match map.remove("prev") {
            Some(Ipld::Null) => None,
            Some(Ipld::Link(c)) => Some(c),
            _ => return Err(malformed("`prev` is neither a link nor null")),
        };
        let messages = match map.remove("messages") {
            Some(Ipld::List(items)) => items
                .into_iter()
                .map(|m| match m {
                    Ipld::Bytes(b) => Ok(Bytes::from(b)),
                    _ => Err(malformed("a message is not bytes")),
                })
                .collect::<Result<Vec<_>, _>>()?,
            _ => return Err(malformed("`messages` is not a list")),
        };
        if let Some(key) = map.keys().next() {
            return Err(malformed(&format!("unknown key {key:?}")));
        }
        let batch = LogBatch {
            log,
            first,
            messages,
            prev,
            time_ms,
        };
        batch.check(cid)?;
        Ok(batch)
    }
}

/// Checks that `older` (the block `older_cid`) is the predecessor a chain
/// of log `log` may have under `newer` (the block `newer_cid`): `newer`
/// links it, both are of `log`, and `newer` starts where `older` ends.
pub fn check_link(
    log: &str,
    newer_cid: Cid,
    newer: &LogBatch,
    older_cid: Cid,
    older: &LogBatch,
) -> Result<(), BatchError> {
    for (cid, b) in [(newer_cid, newer), (older_cid, older)] {
        if b.log != log {
            return Err(BatchError::OtherLog {
                cid,
                found: b.log.clone(),
                expected: log.to_string(),
            });
        }
    }
    if newer.prev != Some(older_cid) || newer.first != older.end() {
        return Err(BatchError::Gap {
            cid: newer_cid,
            first: newer.first,
            prev: older_cid,
            expected: older.end(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(first: u64, n: usize, prev: Option<Cid>) -> LogBatch {
        LogBatch {
            log: "k51test".into(),
            first,
            messages: (0..n)
                .map(|i| Bytes::from(format!("m{}", first + i as u64)))
                .collect(),
            prev,
            time_ms: 1_700_000_000_000,
        }
    }

    #[test]
    fn a_batch_round_trips_through_its_block() {
        let b0 = batch(0, 3, None);
        let block = b0.encode().unwrap();
        assert_eq!(block.cid().codec(), DAG_CBOR);
        assert_eq!(LogBatch::decode(&block).unwrap(), b0);
        let b1 = batch(3, 2, Some(*block.cid()));
        let block1 = b1.encode().unwrap();
        let back = LogBatch::decode(&block1).unwrap();
        assert_eq!(back.end(), 5);
        // The walk and GC follow `prev`.
        assert_eq!(
            crate::dag::walk::links_of(&block1).unwrap(),
            vec![*block.cid()]
        );
        check_link("k51test", *block1.cid(), &back, *block.cid(), &b0).unwrap();
    }

    #[test]
    fn bounds_and_the_start_rule_are_refused_when_made() {
        assert!(matches!(
            batch(0, 0, None).encode(),
            Err(BatchError::TooLarge {
                what: "the message count",
                ..
            })
        ));
        assert!(matches!(
            batch(0, MAX_BATCH_MESSAGES + 1, None).encode(),
            Err(BatchError::TooLarge { .. })
        ));
        let mut big = batch(0, 1, None);
        big.messages = vec![Bytes::from(vec![0u8; MAX_MESSAGE_BYTES + 1])];
        assert!(matches!(
            big.encode(),
            Err(BatchError::TooLarge {
                what: "a message",
                ..
            })
        ));
        big.messages = vec![Bytes::from(vec![0u8; MAX_MESSAGE_BYTES]); 2];
        assert!(matches!(
            big.encode(),
            Err(BatchError::TooLarge {
                what: "the message bytes",
                ..
            })
        ));
        let some = *batch(0, 1, None).encode().unwrap().cid();
        assert!(matches!(
            batch(0, 1, Some(some)).encode(),
            Err(BatchError::BadStart { has_prev: true, .. })
        ));
        assert!(matches!(
            batch(5, 1, None).encode(),
            Err(BatchError::BadStart {
                has_prev: false,
                ..
            })
        ));
        assert!(batch(u64::MAX, 2, Some(some)).encode().is_err());
    }

    /// A block of `value` (DAG-CBOR), as a peer could send one.
    fn forged(value: Ipld) -> Block {
        Block::new(
            CidFormat::V1_SHA2_256,
            DAG_CBOR,
            ipld::encode(DAG_CBOR, &value).unwrap(),
        )
    }

    fn map(entries: Vec<(&str, Ipld)>) -> Ipld {
        Ipld::Map(
            entries
                .into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect(),
        )
    }

    #[test]
    fn blocks_that_are_not_batches_are_refused() {
        let raw = Block::new(CidFormat::V1_SHA2_256, crate::block::RAW, &b"x"[..]);
        assert!(matches!(
            LogBatch::decode(&raw),
            Err(BatchError::Codec { .. })
        ));
        let garbage = Block::new(CidFormat::V1_SHA2_256, DAG_CBOR, &b"\xff\x00"[..]);
        assert!(matches!(
            LogBatch::decode(&garbage),
            Err(BatchError::Malformed { .. })
        ));
        assert!(matches!(
            LogBatch::decode(&forged(Ipld::List(vec![]))),
            Err(BatchError::Malformed { .. })
        ));
        let good = || {
            vec![
                ("log", Ipld::String("l".into())),
                ("first", Ipld::Integer(0)),
                ("messages", Ipld::List(vec![Ipld::Bytes(b"a".to_vec())])),
                ("prev", Ipld::Null),
                ("time", Ipld::Integer(1)),
            ]
        };
        LogBatch::decode(&forged(map(good()))).unwrap();
        let cases: Vec<(usize, Ipld)> = vec![
            (0, Ipld::Integer(1)),
            (1, Ipld::Integer(-1)),
            (1, Ipld::String("0".into())),
            (2, Ipld::List(vec![Ipld::String("a".into())])),
            (2, Ipld::Bytes(vec![])),
            (3, Ipld::Integer(7)),
        ];
        for (field, value) in cases {
            let mut entries = good();
            entries[field].1 = value;
            let e = LogBatch::decode(&forged(map(entries))).unwrap_err();
            assert!(matches!(e, BatchError::Malformed { .. }), "{e}");
        }
        let mut extra = good();
        extra.push(("more", Ipld::Null));
        assert!(LogBatch::decode(&forged(map(extra))).is_err());
        let mut many = good();
        many[2].1 = Ipld::List(vec![Ipld::Bytes(vec![1]); MAX_BATCH_MESSAGES + 1]);
        assert!(matches!(
            LogBatch::decode(&forged(map(many))),
            Err(BatchError::TooLarge { .. })
        ));
    }

    #[test]
    fn links_with_a_gap_an_overlap_or_another_log_are_refused() {
        let b0 = batch(0, 3, None);
        let c0 = *b0.encode().unwrap().cid();
        let gap = batch(4, 1, Some(c0));
        let overlap = batch(2, 1, Some(c0));
        for b in [&gap, &overlap] {
            let c = *b.encode().unwrap().cid();
            assert!(matches!(
                check_link("k51test", c, b, c0, &b0),
                Err(BatchError::Gap { .. })
            ));
        }
        let next = batch(3, 1, Some(c0));
        let c = *next.encode().unwrap().cid();
        assert!(matches!(
            check_link("other", c, &next, c0, &b0),
            Err(BatchError::OtherLog { .. })
        ));
        // Linking something else than the claimed predecessor.
        let elsewhere = batch(3, 1, Some(c));
        assert!(check_link("k51test", c, &elsewhere, c0, &b0).is_err());
    }
}

//! A bucket tree's nodes: their items, and their DAG-CBOR form
//! `[level, [[key, value], ...]]`, decoded with every check. Each item
//! keeps its value's DAG-CBOR bytes, encoded once when it is made or
//! read, so encoding a node writes the CBOR heads around keys and those
//! bytes: a write re-encodes a node per level, not every entry in it.

use super::{LEVEL_BITS, MAX_LEVEL};
use crate::block::{Block, Cid, CidFormat, DAG_CBOR};
use crate::dag::ipld::{self, Ipld};
use crate::s3::index::ObjectEntry;
use crate::s3::S3Error;
use sha2::{Digest, Sha256};
use std::sync::Arc;

/// The weight of a link value in [`super::MAX_NODE_BYTES`].
const LINK_WEIGHT: usize = 40;

/// One `[key, value]` of a node. Key and value are shared: a write
/// re-chunks the items of a few nodes into new ones, which costs a count
/// each, not a copy of every key and entry.
#[derive(Clone, Debug)]
pub(super) struct Item {
    /// The key: an object's, or the greatest key under a child.
    pub(super) key: Arc<[u8]>,
    /// An entry (level 0) or a link to a child.
    pub(super) value: Arc<Ipld>,
    /// `value` in DAG-CBOR.
    bytes: Arc<[u8]>,
    /// Its share of [`super::MAX_NODE_BYTES`].
    pub(super) weight: usize,
    /// The key's level ([`key_level`]), hashed once.
    pub(super) rank: u32,
}

impl Item {
    /// A link to a node whose greatest key is `key`, of level `rank`.
    pub(super) fn link(key: Arc<[u8]>, rank: u32, cid: Cid) -> Item {
        let weight = key.len() + LINK_WEIGHT;
        let value = Ipld::Link(cid);
        Item {
            key,
            bytes: cbor(&value).into(),
            value: Arc::new(value),
            weight,
            rank,
        }
    }

    pub(super) fn entry(key: &[u8], entry: &ObjectEntry) -> Result<Item, S3Error> {
        let value = entry_value(entry)?;
        let bytes = cbor(&value);
        Ok(Item {
            key: key.into(),
            weight: key.len() + bytes.len(),
            bytes: bytes.into(),
            value: Arc::new(value),
            rank: key_level(key),
        })
    }
}

/// `value` in DAG-CBOR (an Ipld value made or decoded here always
/// encodes: no float is ever in one).
fn cbor(value: &Ipld) -> Vec<u8> {
    ipld::encode(DAG_CBOR, value).unwrap_or_default()
}

/// Appends a CBOR head: major type `major`, argument `n`, in the
/// shortest form (as DAG-CBOR requires).
fn head(out: &mut Vec<u8>, major: u8, n: u64) {
    let m = major << 5;
    match n {
        0..=23 => out.push(m | n as u8),
        24..=0xff => out.extend_from_slice(&[m | 24, n as u8]),
        0x100..=0xffff => {
            out.push(m | 25);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        0x1_0000..=0xffff_ffff => {
            out.push(m | 26);
            out.extend_from_slice(&(n as u32).to_be_bytes());
        }
        _ => {
            out.push(m | 27);
            out.extend_from_slice(&n.to_be_bytes());
        }
    }
}

/// `entry` as a tree value: its fields, with `cid` as a link.
fn entry_value(entry: &ObjectEntry) -> Result<Ipld, S3Error> {
    let cid = entry.cid()?;
    let bad = |e: &dyn std::fmt::Display| S3Error::BadEntry {
        what: "object",
        why: e.to_string(),
    };
    let bytes = serde_ipld_dagcbor::to_vec(entry).map_err(|e| bad(&e))?;
    let mut value: Ipld = serde_ipld_dagcbor::from_slice(&bytes).map_err(|e| bad(&e))?;
    if let Ipld::Map(fields) = &mut value {
        fields.insert("cid".into(), Ipld::Link(cid));
    }
    Ok(value)
}

/// A tree value back as an [`ObjectEntry`].
pub(super) fn value_entry(value: &Ipld) -> Result<ObjectEntry, String> {
    let Ipld::Map(fields) = value else {
        return Err("an entry is not a map".into());
    };
    let mut fields = fields.clone();
    match fields.get("cid") {
        Some(Ipld::Link(cid)) => {
            let text = cid.to_string();
            fields.insert("cid".into(), Ipld::String(text));
        }
        _ => return Err("an entry has no object link".into()),
    }
    let bytes = serde_ipld_dagcbor::to_vec(&Ipld::Map(fields)).map_err(|e| e.to_string())?;
    serde_ipld_dagcbor::from_slice(&bytes).map_err(|e| format!("an entry: {e}"))
}

/// The level of `key`: how many leading groups of [`LEVEL_BITS`] zero
/// bits the SHA2-256 of the key starts with.
pub(super) fn key_level(key: &[u8]) -> u32 {
    let digest = Sha256::digest(key);
    let mut top = [0u8; 8];
    top.copy_from_slice(&digest[..8]);
    u64::from_be_bytes(top).leading_zeros() / LEVEL_BITS
}

/// A decoded node.
#[derive(Debug)]
pub struct TreeNode {
    pub(super) level: u32,
    pub(super) items: Vec<Item>,
}

impl TreeNode {
    pub(super) fn decode(cid: &Cid, data: &[u8]) -> Result<TreeNode, S3Error> {
        let bad = |why: String| S3Error::TreeNodeCorrupt { cid: *cid, why };
        if cid.codec() != DAG_CBOR {
            return Err(bad(format!("codec 0x{:x}, not DAG-CBOR", cid.codec())));
        }
        let value = ipld::decode(DAG_CBOR, data).map_err(|e| bad(e.to_string()))?;
        let Ipld::List(parts) = value else {
            return Err(bad("not a [level, items] list".into()));
        };
        let Ok::<[Ipld; 2], _>([Ipld::Integer(level), Ipld::List(raw)]) = parts.try_into() else {
            return Err(bad("not a [level, items] list".into()));
        };
        let level = u64::try_from(level)
            .ok()
            .filter(|l| *l <= MAX_LEVEL)
            .and_then(|l| u32::try_from(l).ok())
            .ok_or_else(|| bad(format!("level {level} out of range")))?;
        let mut items: Vec<Item> = Vec::with_capacity(raw.len());
        for item in raw {
            let Ipld::List(pair) = item else {
                return Err(bad("an item is not a [key, value] pair".into()));
            };
            let Ok::<[Ipld; 2], _>([Ipld::Bytes(key), value]) = pair.try_into() else {
                return Err(bad("an item is not a [key, value] pair".into()));
            };
            if items.last().is_some_and(|last| *last.key >= *key) {
                return Err(bad("keys are not in ascending order".into()));
            }
            let bytes = cbor(&value);
            let weight = match (level, &value) {
                (0, Ipld::Map(_)) => key.len() + bytes.len(),
                (0, _) => return Err(bad("a leaf value is not an entry".into())),
                (_, Ipld::Link(_)) => key.len() + LINK_WEIGHT,
                (_, _) => return Err(bad("an inner value is not a link".into())),
            };
            items.push(Item {
                rank: key_level(&key),
                key: key.into(),
                bytes: bytes.into(),
                value: Arc::new(value),
                weight,
            });
        }
        if level > 0 && items.is_empty() {
            return Err(bad("an inner node without children".into()));
        }
        Ok(TreeNode { level, items })
    }

    pub(super) fn encode(level: u32, items: &[Item]) -> Result<Block, S3Error> {
        // `[level, [[key, value], ...]]`: arrays (major type 4), the level
        // (0), each key as bytes (2) and its value's own encoding.
        let size: usize = items.iter().map(|i| i.key.len() + i.bytes.len() + 12).sum();
        let mut data = Vec::with_capacity(size + 16);
        head(&mut data, 4, 2);
        head(&mut data, 0, level.into());
        head(&mut data, 4, items.len() as u64);
        for item in items {
            head(&mut data, 4, 2);
            head(&mut data, 2, item.key.len() as u64);
            data.extend_from_slice(&item.key);
            data.extend_from_slice(&item.bytes);
        }
        let block = Block::new(CidFormat::V1_SHA2_256, DAG_CBOR, data);
        block.check_size().map_err(|e| S3Error::BadEntry {
            what: "bucket tree node",
            why: e.to_string(),
        })?;
        Ok(block)
    }

    /// The child `i` links to (inner nodes).
    pub(super) fn child(&self, i: usize) -> Option<Cid> {
        match self.items.get(i).map(|i| &*i.value) {
            Some(Ipld::Link(cid)) if self.level > 0 => Some(*cid),
            _ => None,
        }
    }
}

//! dag-pb and UnixFS wire formats: [`PbNode`], [`PbLink`], [`UnixFs`].
//!
//! Hand-written because dag-pb writes `Links` (field 2) before `Data`
//! (field 1), as the spec and Kubo do; a derived prost message would write
//! them in field order and give different CIDs.
//!
//! `PBLink`: 1 `Hash` (CID bytes), 2 `Name` (string, always written, empty
//! for file chunks, as Kubo writes it), 3 `Tsize` (cumulative size).
//!
//! UnixFS `Data` (inside `PBNode.Data`): 1 `Type`, 2 `Data`, 3 `filesize`,
//! 4 `blocksizes` (repeated, not packed), 5 `hashType`, 6 `fanout`,
//! 7 `mode`, 8 `mtime`. Fields are written in number order.
//!
//! Decoding accepts only what the specs allow and bounds every length by
//! the input, so a hostile block cannot make it allocate or panic.

use crate::block::{cid_from_bytes, Cid};

pub use crate::proto::DecodeError;
use crate::proto::{put_bytes_field, put_varint_field, Reader};

fn err(what: &'static str, reason: impl Into<String>) -> DecodeError {
    DecodeError {
        what,
        reason: reason.into(),
    }
}

// ---------- dag-pb ----------

/// A link in a dag-pb node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PbLink {
    /// The child's CID.
    pub cid: Cid,
    /// Entry name in a directory; empty for file chunks.
    pub name: String,
    /// Cumulative size: the child's block plus everything below it.
    pub tsize: u64,
}

/// A dag-pb node.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PbNode {
    /// Links to children, in the order they are written.
    pub links: Vec<PbLink>,
    /// The `Data` field (UnixFS nodes carry an encoded [`UnixFs`] here).
    pub data: Option<Vec<u8>>,
}

impl PbNode {
    /// Encodes as dag-pb: links (in the order given) before data.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(
            self.data.as_ref().map_or(0, |d| d.len() + 8) + self.links.len() * 48,
        );
        let mut link_buf = Vec::with_capacity(64);
        for link in &self.links {
            link_buf.clear();
            put_bytes_field(&mut link_buf, 1, &link.cid.to_bytes());
            put_bytes_field(&mut link_buf, 2, link.name.as_bytes());
            put_varint_field(&mut link_buf, 3, link.tsize);
            put_bytes_field(&mut out, 2, &link_buf);
        }
        if let Some(data) = &self.data {
            put_bytes_field(&mut out, 1, data);
        }
        out
    }

    /// Decodes dag-pb, rejecting unknown fields and links after data.
    pub fn decode(buf: &[u8]) -> Result<Self, DecodeError> {
        const W: &str = "dag-pb node";
        let mut r = Reader::new(buf, W);
        let mut node = PbNode::default();
        while !r.done() {
            match r.key()? {
                (2, 2) => {
                    if node.data.is_some() {
                        return Err(err(W, "link after data"));
                    }
                    node.links.push(decode_link(r.bytes()?)?);
                }
                (1, 2) => {
                    if node.data.is_some() {
                        return Err(err(W, "duplicate data field"));
                    }
                    node.data = Some(r.bytes()?.to_vec());
                }
                (f, w) => return Err(err(W, format!("unexpected field {f} wire type {w}"))),
            }
        }
        Ok(node)
    }
}

fn decode_link(buf: &[u8]) -> Result<PbLink, DecodeError> {
    const W: &str = "dag-pb link";
    let mut r = Reader::new(buf, W);
    let mut cid = None;
    let mut name = None;
    let mut tsize = None;
    let mut last = 0;
    while !r.done() {
        let (field, wire) = r.key()?;
        if field <= last {
            return Err(err(W, "fields out of order or repeated"));
        }
        last = field;
        match (field, wire) {
            (1, 2) => {
                let bytes = r.bytes()?;
                cid =
                    Some(cid_from_bytes(bytes).map_err(|e| err(W, format!("bad link CID: {e}")))?);
            }
            (2, 2) => {
                let bytes = r.bytes()?;
                name = Some(
                    String::from_utf8(bytes.to_vec())
                        .map_err(|_| err(W, "link name is not UTF-8"))?,
                );
            }
            (3, 0) => tsize = Some(r.varint()?),
            (f, w) => return Err(err(W, format!("unexpected field {f} wire type {w}"))),
        }
    }
    Ok(PbLink {
        cid: cid.ok_or_else(|| err(W, "link without hash"))?,
        name: name.unwrap_or_default(),
        tsize: tsize.unwrap_or(0),
    })
}

// ---------- UnixFS ----------

/// UnixFS node types.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DataType {
    /// File bytes with no links (dag-pb leaves, trickle leaves).
    Raw = 0,
    /// A plain directory: named links.
    Directory = 1,
    /// A file node: data and/or links with `blocksizes`.
    File = 2,
    /// Metadata node (not supported by the reader).
    Metadata = 3,
    /// A symbolic link: the target in `Data`.
    Symlink = 4,
    /// A HAMT-sharded directory node.
    HamtShard = 5,
}

impl DataType {
    fn from_u64(v: u64) -> Option<Self> {
        Some(match v {
            0 => DataType::Raw,
            1 => DataType::Directory,
            2 => DataType::File,
            3 => DataType::Metadata,
            4 => DataType::Symlink,
            5 => DataType::HamtShard,
            _ => return None,
        })
    }
}

/// The UnixFS `Data` message carried in a dag-pb node's data field.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnixFs {
    /// `Type`: what the node is.
    pub kind: DataType,
    /// `Data`: file bytes, a symlink target or a HAMT bitfield.
    pub data: Option<Vec<u8>>,
    /// `filesize`: file bytes under this node.
    pub filesize: Option<u64>,
    /// `blocksizes`: file bytes under each link.
    pub blocksizes: Vec<u64>,
    /// `hashType`: the HAMT hash function.
    pub hash_type: Option<u64>,
    /// `fanout`: slots per HAMT shard.
    pub fanout: Option<u64>,
    /// `mode`: Unix permission bits.
    pub mode: Option<u32>,
}

impl UnixFs {
    /// A node of `kind` with every other field empty.
    pub fn new(kind: DataType) -> Self {
        UnixFs {
            kind,
            data: None,
            filesize: None,
            blocksizes: Vec::new(),
            hash_type: None,
            fanout: None,
            mode: None,
        }
    }

    /// Encodes the fields in number order (`mtime` is never written).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(
            16 + self.data.as_ref().map_or(0, |d| d.len()) + 4 * self.blocksizes.len(),
        );
        put_varint_field(&mut out, 1, self.kind as u64);
        if let Some(d) = &self.data {
            put_bytes_field(&mut out, 2, d);
        }
        if let Some(s) = self.filesize {
            put_varint_field(&mut out, 3, s);
        }
        for b in &self.blocksizes {
            put_varint_field(&mut out, 4, *b);
        }
        if let Some(h) = self.hash_type {
            put_varint_field(&mut out, 5, h);
        }
        if let Some(f) = self.fanout {
            put_varint_field(&mut out, 6, f);
        }
        if let Some(m) = self.mode {
            put_varint_field(&mut out, 7, m as u64);
        }
        out
    }

    /// Decodes UnixFS data, accepting packed `blocksizes` and skipping `mtime`.
    pub fn decode(buf: &[u8]) -> Result<Self, DecodeError> {
        const W: &str = "UnixFS data";
        let mut r = Reader::new(buf, W);
        let mut kind = None;
        let mut u = UnixFs::new(DataType::Raw);
        while !r.done() {
            match r.key()? {
                (1, 0) => {
                    let v = r.varint()?;
                    kind = Some(
                        DataType::from_u64(v).ok_or_else(|| err(W, format!("unknown type {v}")))?,
                    );
                }
                (2, 2) => u.data = Some(r.bytes()?.to_vec()),
                (3, 0) => u.filesize = Some(r.varint()?),
                (4, 0) => u.blocksizes.push(r.varint()?),
                (4, 2) => {
                    // Packed encoding: accepted on input though never written.
                    let mut inner = Reader::new(r.bytes()?, W);
                    while !inner.done() {
                        u.blocksizes.push(inner.varint()?);
                    }
                }
                (5, 0) => u.hash_type = Some(r.varint()?),
                (6, 0) => u.fanout = Some(r.varint()?),
                (7, 0) => u.mode = Some(r.varint()? as u32),
                (8, 2) => {
                    r.bytes()?; // mtime: kept out of our model, skipped.
                }
                (f, w) => return Err(err(W, format!("unexpected field {f} wire type {w}"))),
            }
        }
        u.kind = kind.ok_or_else(|| err(W, "missing type"))?;
        Ok(u)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::block::{CidFormat, HashAlg, DAG_PB};
    use proptest::prelude::*;

    #[test]
    fn empty_file_matches_kubo() {
        let mut u = UnixFs::new(DataType::File);
        u.filesize = Some(0);
        let node = PbNode {
            links: vec![],
            data: Some(u.encode()),
        };
        let bytes = node.encode();
        assert_eq!(bytes, b"\x0a\x04\x08\x02\x18\x00");
        let cid = CidFormat {
            version: 0,
            hash: HashAlg::Sha2_256,
        }
        .cid(DAG_PB, &bytes);
        assert_eq!(
            cid.to_string(),
            "QmbFMke1KXqnYyBBWxB74N4c5SBnJMVAiMNRcGu6x1AwQH"
        );
        assert_eq!(PbNode::decode(&bytes).unwrap(), node);
    }

    #[test]
    fn links_are_written_before_data() {
        let child = CidFormat {
            version: 1,
            hash: HashAlg::Blake3,
        }
        .cid(DAG_PB, b"x");
        let node = PbNode {
            links: vec![PbLink {
                cid: child,
                name: String::new(),
                tsize: 7,
            }],
            data: Some(vec![8, 1]),
        };
        let bytes = node.encode();
        assert_eq!(bytes[0], 0x12);
        assert_eq!(PbNode::decode(&bytes).unwrap(), node);
        // Data then links is not dag-pb.
        let mut swapped = vec![0x0a, 2, 8, 1];
        swapped.extend_from_slice(&bytes[..bytes.len() - 4]);
        assert!(PbNode::decode(&swapped).is_err());
    }

    proptest! {
        #[test]
        fn decoders_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = PbNode::decode(&bytes);
            let _ = UnixFs::decode(&bytes);
        }

        #[test]
        fn unixfs_round_trips(
            data in proptest::option::of(proptest::collection::vec(any::<u8>(), 0..64)),
            filesize in proptest::option::of(any::<u64>()),
            blocksizes in proptest::collection::vec(any::<u64>(), 0..8),
        ) {
            let mut u = UnixFs::new(DataType::File);
            u.data = data;
            u.filesize = filesize;
            u.blocksizes = blocksizes;
            prop_assert_eq!(UnixFs::decode(&u.encode()).unwrap(), u);
        }
    }
}

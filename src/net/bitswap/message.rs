//! Bitswap 1.0.0 / 1.1.0 / 1.2.0 messages, encoded and decoded by hand.
//!
//! Hand-written, not generated: block data stays a slice of the frame (no
//! copy, in and out) and every limit is checked while decoding.
//!
//! Wire format (github.com/ipfs/specs, `BITSWAP.md`), each message framed
//! on the stream by an unsigned-varint length:
//!
//! ```text
//! Message {
//!   1 Wantlist wantlist { 1 repeated Entry entries; 2 bool full }
//!       Entry { 1 bytes block (CID); 2 int32 priority; 3 bool cancel;
//!               4 WantType wantType (0 Block, 1 Have); 5 bool sendDontHave }
//!   2 repeated bytes blocks          (1.0.0: data only, CIDv0 implied)
//!   3 repeated Block payload         (1.1.0+) { 1 bytes prefix; 2 bytes data }
//!   4 repeated BlockPresence blockPresences { 1 bytes cid; 2 Type (0 Have, 1 DontHave) }
//!   5 int32 pendingBytes
//! }
//! ```
//!
//! A payload block carries a CID *prefix* (version, codec, hash code, hash
//! length), not the CID: the receiver hashes the data to rebuild the CID, so
//! a block can only ever be stored under the hash of its own bytes; whether
//! anyone asked for it is the session's business.
//!
//! Limits: messages over [`MAX_MESSAGE_BYTES`] are refused before decoding,
//! want-lists over [`MAX_WANTLIST_ENTRIES`] entries, more than
//! [`MAX_BLOCKS_PER_MESSAGE`] blocks, more than twice
//! [`MAX_WANTLIST_ENTRIES`] presences and blocks over [`MAX_BLOCK_BYTES`]
//! are refused while decoding. Block data is not copied (it points into the
//! frame), so what a message costs beyond its own bytes is bounded by those
//! counts: about 150 bytes per entry, well under a megabyte per message.

use crate::block::{
    cid_from_bytes, Block, BlockError, Cid, CidFormat, HashAlg, MAX_BLOCK_BYTES, SHA2_256,
};
use crate::proto::{put_bytes_field, put_varint, put_varint_field, DecodeError, Reader};

/// Largest message accepted or sent (the spec's and Helia's 4 MiB).
pub const MAX_MESSAGE_BYTES: usize = 4 * 1024 * 1024;
/// Most want-list entries accepted in one message (Helia's limit).
pub const MAX_WANTLIST_ENTRIES: usize = 1024;
/// Most blocks accepted in one message: a 4 MiB message of empty blocks
/// would otherwise decode into two million CIDs.
pub const MAX_BLOCKS_PER_MESSAGE: usize = 8192;

/// The Bitswap protocol versions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Version {
    /// `/ipfs/bitswap/1.0.0`: bare block data, no presences.
    V1_0,
    /// `/ipfs/bitswap/1.1.0`: blocks with CID prefixes.
    V1_1,
    /// `/ipfs/bitswap/1.2.0`: want-have and presences too.
    V1_2,
}

impl Version {
    /// The version a negotiated protocol name stands for.
    pub fn from_protocol(name: &str) -> Option<Version> {
        match name {
            "/ipfs/bitswap/1.2.0" => Some(Version::V1_2),
            "/ipfs/bitswap/1.1.0" => Some(Version::V1_1),
            "/ipfs/bitswap/1.0.0" | "/ipfs/bitswap" => Some(Version::V1_0),
            _ => None,
        }
    }
}

/// What a want-list entry asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WantType {
    /// Send the block.
    Block,
    /// Say whether you have it.
    Have,
}

/// One want-list entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WantEntry {
    /// The block wanted.
    pub cid: Cid,
    /// Higher first (cairn sends 1 and serves in the order asked).
    pub priority: i32,
    /// Stop wanting it.
    pub cancel: bool,
    /// The block itself, or whether it is held.
    pub want_type: WantType,
    /// Answer DontHave when it is not held.
    pub send_dont_have: bool,
}

/// A Have / DontHave answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Presence {
    /// The sender holds the block.
    Have,
    /// The sender does not hold it.
    DontHave,
}

/// A decoded Bitswap message.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Message {
    /// Want-list entries (wants and cancels).
    pub wantlist: Vec<WantEntry>,
    /// The want-list replaces the previous one (else it is a delta).
    pub full: bool,
    /// Blocks, each named by the hash of its own data.
    pub blocks: Vec<Block>,
    /// Have / DontHave answers.
    pub presences: Vec<(Cid, Presence)>,
    /// Bytes the sender still has queued for us (informational).
    pub pending_bytes: i32,
}

/// Why a message was refused.
#[derive(Debug, thiserror::Error)]
pub enum MessageError {
    /// The protobuf does not decode, or breaks a limit.
    #[error(transparent)]
    Decode(#[from] DecodeError),
    /// A message over the size limit.
    #[error("bitswap message of {len} bytes is over the {max} byte limit")]
    TooLarge {
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A block whose data does not fit its CID prefix.
    #[error(transparent)]
    Block(#[from] BlockError),
    /// The stream ended inside a frame's length prefix.
    #[error("the stream ended inside a length prefix")]
    TruncatedLength,
    /// A frame's length prefix over 64 bits.
    #[error("a length prefix overflows 64 bits")]
    LengthOverflow,
}

fn bad(reason: impl Into<String>) -> DecodeError {
    DecodeError {
        what: "bitswap message",
        reason: reason.into(),
    }
}

/// The CID prefix of a payload block: version, codec, hash code, length.
fn prefix_of(cid: &Cid) -> Vec<u8> {
    let mut out = Vec::with_capacity(8);
    put_varint(&mut out, cid.version() as u64);
    put_varint(&mut out, cid.codec());
    put_varint(&mut out, cid.hash().code());
    put_varint(&mut out, cid.hash().size() as u64);
    out
}

/// Rebuilds a block's CID from its prefix by hashing its data.
fn block_from_prefix(prefix: &[u8], data: bytes::Bytes) -> Result<Block, MessageError> {
    let mut r = Reader::new(prefix, "bitswap block prefix");
    let version = r.varint()?;
    let codec = r.varint()?;
    let code = r.varint()?;
    let len = r.varint()?;
    let hash = HashAlg::from_code(code)
        .ok_or_else(|| bad(format!("unsupported hash 0x{code:x} in block prefix")))?;
    if len != 32 {
        return Err(bad(format!("digest length {len} in block prefix")).into());
    }
    if version > 1 || (version == 0 && (code != SHA2_256 || codec != crate::block::DAG_PB)) {
        return Err(bad(format!("impossible CID version {version} in block prefix")).into());
    }
    if data.len() > MAX_BLOCK_BYTES {
        return Err(bad(format!("block of {} bytes over the limit", data.len())).into());
    }
    let format = CidFormat {
        version: version as u8,
        hash,
    };
    Ok(Block::new(format, codec, data))
}

/// The bytes of `part` (a sub-slice of `whole`'s buffer when `whole` is
/// given: no copy) as an owned buffer.
fn owned(whole: Option<&bytes::Bytes>, part: &[u8]) -> bytes::Bytes {
    match whole {
        Some(w) => w.slice_ref(part),
        None => bytes::Bytes::copy_from_slice(part),
    }
}

impl Message {
    /// Whether there is nothing to send.
    pub fn is_empty(&self) -> bool {
        self.wantlist.is_empty()
            && !self.full
            && self.blocks.is_empty()
            && self.presences.is_empty()
    }

    /// Encodes as Bitswap 1.1.0+ (payload blocks with prefixes).
    pub fn encode(&self) -> Vec<u8> {
        self.encode_for(Version::V1_2)
    }

    /// Encodes for a peer speaking `version`. Bitswap 1.0.0 has no CID
    /// prefixes, no presences and no want types: blocks go as bare data
    /// (only CIDv0 blocks are expressible, others are left out), want-haves
    /// become want-blocks, wants for CIDs not hashed with SHA2-256 are left
    /// out, and presences are dropped.
    pub fn encode_for(&self, version: Version) -> Vec<u8> {
        let v100 = version == Version::V1_0;
        let mut out = Vec::new();
        if !self.wantlist.is_empty() || self.full {
            let mut wl = Vec::new();
            // A 1.0.0 peer answers with bare data, which the receiver
            // hashes as SHA2-256: wants under another hash could only be
            // answered with blocks that look unsolicited.
            let expressible = |e: &&WantEntry| !v100 || e.cid.hash().code() == SHA2_256;
            for e in self.wantlist.iter().filter(expressible) {
                let mut entry = Vec::with_capacity(48);
                put_bytes_field(&mut entry, 1, &e.cid.to_bytes());
                if e.priority != 0 {
                    // int32: negative values take ten bytes, as protobuf says.
                    put_varint_field(&mut entry, 2, e.priority as i64 as u64);
                }
                if e.cancel {
                    put_varint_field(&mut entry, 3, 1);
                }
                if e.want_type == WantType::Have && !v100 {
                    put_varint_field(&mut entry, 4, 1);
                }
                if e.send_dont_have && !v100 {
                    put_varint_field(&mut entry, 5, 1);
                }
                put_bytes_field(&mut wl, 1, &entry);
            }
            if self.full {
                put_varint_field(&mut wl, 2, 1);
            }
            put_bytes_field(&mut out, 1, &wl);
        }
        for b in &self.blocks {
            if v100 {
                if b.cid().version() == cid::Version::V0 {
                    put_bytes_field(&mut out, 2, b.data());
                }
                continue;
            }
            let mut payload = Vec::with_capacity(b.data().len() + 16);
            put_bytes_field(&mut payload, 1, &prefix_of(b.cid()));
            put_bytes_field(&mut payload, 2, b.data());
            put_bytes_field(&mut out, 3, &payload);
        }
        for (cid, presence) in self.presences.iter().filter(|_| !v100) {
            let mut p = Vec::with_capacity(48);
            put_bytes_field(&mut p, 1, &cid.to_bytes());
            if *presence == Presence::DontHave {
                put_varint_field(&mut p, 2, 1);
            }
            put_bytes_field(&mut out, 4, &p);
        }
        if self.pending_bytes != 0 {
            put_varint_field(&mut out, 5, self.pending_bytes as i64 as u64);
        }
        out
    }

    /// Decodes any Bitswap version's message, checking every limit.
    pub fn decode(buf: &[u8]) -> Result<Message, MessageError> {
        Self::decode_in(buf, None)
    }

    /// [`decode`](Self::decode) from a shared buffer: block data points
    /// into it instead of being copied.
    pub fn decode_bytes(buf: &bytes::Bytes) -> Result<Message, MessageError> {
        Self::decode_in(buf, Some(buf))
    }

    fn decode_in(buf: &[u8], whole: Option<&bytes::Bytes>) -> Result<Message, MessageError> {
        if buf.len() > MAX_MESSAGE_BYTES {
            return Err(MessageError::TooLarge {
                len: buf.len(),
                max: MAX_MESSAGE_BYTES,
            });
        }
        let mut r = Reader::new(buf, "bitswap message");
        let mut msg = Message::default();
        while !r.done() {
            match r.key()? {
                (1, 2) => decode_wantlist(r.bytes()?, &mut msg)?,
                (2, 2) => {
                    // Bitswap 1.0.0: bare data, CIDv0 implied.
                    let data = r.bytes()?;
                    let format = CidFormat {
                        version: 0,
                        hash: HashAlg::Sha2_256,
                    };
                    if data.len() > MAX_BLOCK_BYTES {
                        return Err(bad("1.0.0 block over the size limit").into());
                    }
                    msg.blocks
                        .push(Block::new(format, crate::block::DAG_PB, owned(whole, data)));
                    too_many_blocks(&msg)?;
                }
                (3, 2) => {
                    let mut p = Reader::new(r.bytes()?, "bitswap payload");
                    let (mut prefix, mut data) = (None, None);
                    while !p.done() {
                        match p.key()? {
                            (1, 2) => prefix = Some(p.bytes()?),
                            (2, 2) => data = Some(p.bytes()?),
                            (_, w) => p.skip(w)?,
                        }
                    }
                    let prefix = prefix.ok_or_else(|| bad("payload block without prefix"))?;
                    msg.blocks.push(block_from_prefix(
                        prefix,
                        owned(whole, data.unwrap_or_default()),
                    )?);
                    too_many_blocks(&msg)?;
                }
                (4, 2) => {
                    let mut p = Reader::new(r.bytes()?, "bitswap presence");
                    let (mut cid, mut kind) = (None, Presence::Have);
                    while !p.done() {
                        match p.key()? {
                            (1, 2) => {
                                cid = Some(
                                    cid_from_bytes(p.bytes()?)
                                        .map_err(|e| bad(format!("presence CID: {e}")))?,
                                )
                            }
                            (2, 0) => {
                                kind = match p.varint()? {
                                    0 => Presence::Have,
                                    1 => Presence::DontHave,
                                    v => return Err(bad(format!("presence type {v}")).into()),
                                }
                            }
                            (_, w) => p.skip(w)?,
                        }
                    }
                    msg.presences
                        .push((cid.ok_or_else(|| bad("presence without CID"))?, kind));
                    if msg.presences.len() > MAX_WANTLIST_ENTRIES * 2 {
                        return Err(bad("too many block presences").into());
                    }
                }
                (5, 0) => msg.pending_bytes = r.varint()? as i32,
                (_, w) => r.skip(w)?,
            }
        }
        Ok(msg)
    }
}

fn too_many_blocks(msg: &Message) -> Result<(), MessageError> {
    if msg.blocks.len() > MAX_BLOCKS_PER_MESSAGE {
        return Err(bad(format!(
            "more than {MAX_BLOCKS_PER_MESSAGE} blocks in one message"
        ))
        .into());
    }
    Ok(())
}

fn decode_wantlist(buf: &[u8], msg: &mut Message) -> Result<(), MessageError> {
    let mut r = Reader::new(buf, "bitswap wantlist");
    while !r.done() {
        match r.key()? {
            (1, 2) => {
                if msg.wantlist.len() >= MAX_WANTLIST_ENTRIES {
                    return Err(
                        bad(format!("want-list over {MAX_WANTLIST_ENTRIES} entries")).into(),
                    );
                }
                let mut e = Reader::new(r.bytes()?, "bitswap want entry");
                let mut entry = WantEntry {
                    cid: Cid::default(),
                    priority: 0,
                    cancel: false,
                    want_type: WantType::Block,
                    send_dont_have: false,
                };
                let mut has_cid = false;
                while !e.done() {
                    match e.key()? {
                        (1, 2) => {
                            entry.cid = cid_from_bytes(e.bytes()?)
                                .map_err(|err| bad(format!("want CID: {err}")))?;
                            has_cid = true;
                        }
                        (2, 0) => entry.priority = e.varint()? as i32,
                        (3, 0) => entry.cancel = e.varint()? != 0,
                        (4, 0) => {
                            entry.want_type = match e.varint()? {
                                0 => WantType::Block,
                                1 => WantType::Have,
                                v => return Err(bad(format!("want type {v}")).into()),
                            }
                        }
                        (5, 0) => entry.send_dont_have = e.varint()? != 0,
                        (_, w) => e.skip(w)?,
                    }
                }
                if !has_cid {
                    return Err(bad("want entry without CID").into());
                }
                msg.wantlist.push(entry);
            }
            (2, 0) => msg.full = r.varint()? != 0,
            (_, w) => r.skip(w)?,
        }
    }
    Ok(())
}

/// A framed message as segments to write in order: small encoded parts and
/// block data shared with the blocks (not copied).
pub struct Framed {
    /// The parts, in order.
    pub segments: Vec<bytes::Bytes>,
    /// Their total length.
    pub len: usize,
}

/// Frames a message for the stream (varint length, then the message) without
/// copying block data: the message [`frame`] writes, of the same length,
/// with the blocks moved after the other fields.
pub fn frame_segments(msg: &Message, version: Version) -> Result<Framed, MessageError> {
    use bytes::Bytes;
    let v100 = version == Version::V1_0;
    // Everything but the blocks, encoded as usual.
    let rest = Message {
        blocks: Vec::new(),
        ..msg.clone_without_blocks()
    };
    let head = rest.encode_for(version);
    let mut parts: Vec<Bytes> = Vec::new();
    let mut scratch = Vec::new();
    let mut body_len = head.len();
    for b in &msg.blocks {
        let data = b.data();
        if v100 {
            if b.cid().version() != cid::Version::V0 {
                continue;
            }
            scratch.clear();
            put_varint(&mut scratch, (2 << 3) | 2);
            put_varint(&mut scratch, data.len() as u64);
        } else {
            let prefix = prefix_of(b.cid());
            let mut buf = unsigned_varint::encode::u64_buffer();
            let payload_len = 1
                + unsigned_varint::encode::u64(prefix.len() as u64, &mut buf).len()
                + prefix.len()
                + 1
                + unsigned_varint::encode::u64(data.len() as u64, &mut buf).len()
                + data.len();
            scratch.clear();
            put_varint(&mut scratch, (3 << 3) | 2);
            put_varint(&mut scratch, payload_len as u64);
            put_bytes_field(&mut scratch, 1, &prefix);
            put_varint(&mut scratch, (2 << 3) | 2);
            put_varint(&mut scratch, data.len() as u64);
        }
        body_len += scratch.len() + data.len();
        parts.push(Bytes::copy_from_slice(&scratch));
        parts.push(data.clone());
    }
    if body_len > MAX_MESSAGE_BYTES {
        return Err(MessageError::TooLarge {
            len: body_len,
            max: MAX_MESSAGE_BYTES,
        });
    }
    let mut prefix = Vec::with_capacity(5 + head.len());
    put_varint(&mut prefix, body_len as u64);
    let prefix_len = prefix.len();
    // Field order does not matter to decoders, but the blocks go last so the
    // small parts can share one segment with the length.
    prefix.extend_from_slice(&head);
    let mut segments = Vec::with_capacity(parts.len() + 1);
    segments.push(Bytes::from(prefix));
    segments.extend(parts);
    Ok(Framed {
        segments,
        len: prefix_len + body_len,
    })
}

impl Message {
    fn clone_without_blocks(&self) -> Message {
        Message {
            wantlist: self.wantlist.clone(),
            full: self.full,
            blocks: Vec::new(),
            presences: self.presences.clone(),
            pending_bytes: self.pending_bytes,
        }
    }
}

/// Frames a message for the stream: varint length, then the bytes.
pub fn frame(msg: &Message, version: Version) -> Result<Vec<u8>, MessageError> {
    let body = msg.encode_for(version);
    if body.len() > MAX_MESSAGE_BYTES {
        return Err(MessageError::TooLarge {
            len: body.len(),
            max: MAX_MESSAGE_BYTES,
        });
    }
    let mut out = Vec::with_capacity(body.len() + 5);
    put_varint(&mut out, body.len() as u64);
    out.extend_from_slice(&body);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segmented_frames_decode_like_whole_ones() {
        let blocks: Vec<Block> = (0..3u8)
            .map(|i| {
                Block::new(
                    CidFormat {
                        version: 1,
                        hash: HashAlg::Blake3,
                    },
                    crate::block::RAW,
                    vec![i; 1000 * (i as usize + 1)],
                )
            })
            .collect();
        let v0 = Block::new(
            CidFormat {
                version: 0,
                hash: HashAlg::Sha2_256,
            },
            crate::block::DAG_PB,
            vec![8u8, 2],
        );
        let msg = Message {
            wantlist: vec![WantEntry {
                cid: *blocks[0].cid(),
                priority: 3,
                cancel: false,
                want_type: WantType::Have,
                send_dont_have: true,
            }],
            blocks: [blocks.clone(), vec![v0]].concat(),
            presences: vec![(*blocks[1].cid(), Presence::DontHave)],
            ..Message::default()
        };
        for version in [Version::V1_2, Version::V1_0] {
            let framed = frame_segments(&msg, version).unwrap();
            let joined: Vec<u8> = framed.segments.concat();
            assert_eq!(joined.len(), framed.len);
            let whole = frame(&msg, version).unwrap();
            let skip = |f: &[u8]| {
                let mut i = 0;
                while f[i] & 0x80 != 0 {
                    i += 1;
                }
                i + 1
            };
            assert_eq!(joined.len(), whole.len());
            let got = Message::decode_bytes(&bytes::Bytes::from(joined[skip(&joined)..].to_vec()))
                .unwrap();
            let want = Message::decode(&whole[skip(&whole)..]).unwrap();
            assert_eq!(got, want);
        }
    }
    use crate::block::{DAG_PB, RAW};
    use proptest::prelude::*;

    fn sample() -> Message {
        let v1 = CidFormat {
            version: 1,
            hash: HashAlg::Blake3,
        };
        let v0 = CidFormat {
            version: 0,
            hash: HashAlg::Sha2_256,
        };
        let a = Block::new(v1, RAW, b"alpha".to_vec());
        let b = Block::new(v0, DAG_PB, b"\x0a\x02\x08\x01".to_vec());
        Message {
            wantlist: vec![
                WantEntry {
                    cid: *a.cid(),
                    priority: 5,
                    cancel: false,
                    want_type: WantType::Have,
                    send_dont_have: true,
                },
                WantEntry {
                    cid: *b.cid(),
                    priority: -1,
                    cancel: true,
                    want_type: WantType::Block,
                    send_dont_have: false,
                },
            ],
            full: true,
            blocks: vec![a.clone(), b],
            presences: vec![(*a.cid(), Presence::DontHave), (*a.cid(), Presence::Have)],
            pending_bytes: 1234,
        }
    }

    #[test]
    fn round_trip() {
        let msg = sample();
        assert_eq!(Message::decode(&msg.encode()).unwrap(), msg);
        let framed = frame(&msg, Version::V1_2).unwrap();
        assert_eq!(&framed[2..], &msg.encode()[..]);
    }

    #[test]
    fn version_1_0_0_carries_only_what_it_can_express() {
        let msg = sample();
        let old = Message::decode(&msg.encode_for(Version::V1_0)).unwrap();
        assert!(old.presences.is_empty());
        assert_eq!(old.blocks.len(), 1, "only the CIDv0 block");
        assert_eq!(old.blocks[0], msg.blocks[1]);
        assert!(old
            .wantlist
            .iter()
            .all(|e| e.want_type == WantType::Block && !e.send_dont_have));
        // The BLAKE3 want could only be answered with a block the receiver
        // hashes as SHA2-256: left out.
        assert_eq!(old.wantlist.len(), 1);
        assert_eq!(old.wantlist[0].cid, msg.wantlist[1].cid);
    }

    #[test]
    fn payload_cid_comes_from_the_data() {
        let msg = sample();
        let mut bytes = msg.encode();
        // Flip a byte of "alpha": the block now hashes to another CID.
        let at = bytes.windows(5).position(|w| w == b"alpha").unwrap();
        bytes[at] = b'A';
        let got = Message::decode(&bytes).unwrap();
        assert_ne!(got.blocks[0].cid(), msg.blocks[0].cid());
        crate::block::verify(got.blocks[0].cid(), got.blocks[0].data()).unwrap();
    }

    #[test]
    fn limits_are_enforced() {
        let big = vec![0u8; MAX_MESSAGE_BYTES + 1];
        assert!(matches!(
            Message::decode(&big),
            Err(MessageError::TooLarge { .. })
        ));
        let a = *sample().blocks[0].cid();
        let many = Message {
            wantlist: (0..=MAX_WANTLIST_ENTRIES)
                .map(|i| WantEntry {
                    cid: a,
                    priority: i as i32,
                    cancel: false,
                    want_type: WantType::Block,
                    send_dont_have: false,
                })
                .collect(),
            ..Message::default()
        };
        assert!(Message::decode(&many.encode()).is_err());
        // Empty blocks, one more than allowed: refused (1.0.0 and 1.2.0).
        let empty = Block::new(
            CidFormat {
                version: 0,
                hash: HashAlg::Sha2_256,
            },
            crate::block::DAG_PB,
            Vec::new(),
        );
        let flood = Message {
            blocks: vec![empty; MAX_BLOCKS_PER_MESSAGE + 1],
            ..Message::default()
        };
        for version in [Version::V1_0, Version::V1_2] {
            let bytes = flood.encode_for(version);
            assert!(bytes.len() < MAX_MESSAGE_BYTES);
            assert!(Message::decode(&bytes).is_err(), "{version:?}");
        }
        let mut allowed = flood.clone();
        allowed.blocks.pop();
        assert_eq!(
            Message::decode(&allowed.encode()).unwrap().blocks.len(),
            MAX_BLOCKS_PER_MESSAGE
        );
    }

    proptest! {
        #[test]
        fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
            let _ = Message::decode(&bytes);
        }

        #[test]
        fn mutated_messages_never_panic(flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..8)) {
            let mut bytes = sample().encode();
            for (at, v) in flips {
                let n = bytes.len();
                bytes[at % n] = v;
            }
            let _ = Message::decode(&bytes);
        }
    }
}

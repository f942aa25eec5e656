//! Blocks and CIDs: the base every other layer shares.
//!
//! A [`Block`] is a CID plus the bytes it names. This module creates CIDs
//! (BLAKE3 by default, SHA2-256 for IPFS compatibility), parses them from any
//! multibase, prints them the way IPFS does (base58btc for CIDv0, base32 for
//! CIDv1) and verifies that bytes match the CID that names them. Every block
//! that enters the node from outside, or is read back from disk, goes
//! through [`Block::verified`] or [`verify`].

use bytes::Bytes;
use cid::multibase;
pub use cid::Cid;
use std::fmt;
use std::str::FromStr;

/// Multihash code of SHA2-256.
pub const SHA2_256: u64 = 0x12;
/// Multihash code of BLAKE3 (32-byte digest).
pub const BLAKE3: u64 = 0x1e;
/// Multicodec of raw binary blocks.
pub const RAW: u64 = 0x55;
/// Multicodec of dag-pb (protobuf) nodes, the codec UnixFS uses.
pub const DAG_PB: u64 = 0x70;

/// The largest block the node accepts from anywhere (the Bitswap limit).
pub const MAX_BLOCK_BYTES: usize = 2 * 1024 * 1024;

/// A multihash with room for any digest this node produces or accepts.
pub type Multihash = multihash::Multihash<64>;

/// Errors about CIDs and block contents.
#[derive(Debug, thiserror::Error)]
pub enum BlockError {
    /// A CID string that does not parse.
    #[error("invalid CID {input:?}: {source}")]
    InvalidCid {
        /// The text given.
        input: String,
        /// Why its bytes are not a CID.
        #[source]
        source: CidBytesError,
    },
    /// A CID whose hash function this node cannot compute.
    #[error("unsupported hash function 0x{code:x} in {cid}")]
    UnsupportedHash {
        /// The CID naming it.
        cid: Cid,
        /// The multihash code.
        code: u64,
    },
    /// A CID whose codec this node does not understand.
    #[error("unsupported codec 0x{codec:x} in {cid}")]
    UnsupportedCodec {
        /// The CID naming it.
        cid: Cid,
        /// The multicodec code.
        codec: u64,
    },
    /// Bytes whose hash is not the one their CID names.
    #[error("block {cid} is corrupt: its bytes hash to a different digest")]
    HashMismatch {
        /// The CID the bytes should match.
        cid: Cid,
    },
    /// A block over [`MAX_BLOCK_BYTES`].
    #[error("block {cid} is {len} bytes, over the {max} byte limit")]
    TooLarge {
        /// The block's CID.
        cid: Cid,
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A hash function name other than `blake3` or `sha2-256`.
    #[error("unknown hash function {name:?} (expected blake3 or sha2-256)")]
    UnknownHashName {
        /// The name given.
        name: String,
    },
}

/// Why bytes (given alone, or decoded from a CID string) are not exactly
/// one binary CID.
#[derive(Debug, thiserror::Error)]
pub enum CidBytesError {
    /// The bytes do not start with a valid CID (or the multibase text
    /// does not decode).
    #[error(transparent)]
    Malformed(#[from] cid::Error),
    /// CID text longer than any CID's ([`MAX_CID_TEXT`]): refused before
    /// decoding (base58 decoding takes time quadratic in the length).
    #[error("{len} characters, longer than any CID's text")]
    TooLong {
        /// The text's length in bytes.
        len: usize,
    },
    /// Bytes that read as a CID but are not its encoding (a varint past
    /// 64 bits whose excess bits were dropped).
    #[error("not the binary form of CID {cid} (a varint overflows 64 bits)")]
    NotCanonical {
        /// The CID the bytes read as.
        cid: Cid,
    },
    /// A valid CID followed by bytes that belong to no CID: refused, so that
    /// one CID has one binary form (as go-cid and js `multiformats` do).
    #[error("CID {cid} is followed by {extra} stray bytes")]
    Trailing {
        /// The CID the bytes start with.
        cid: Cid,
        /// How many bytes follow it.
        extra: usize,
    },
}

/// Hash functions the node can name blocks with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum HashAlg {
    /// BLAKE3, 32-byte digest: cairn's default.
    #[default]
    Blake3,
    /// SHA2-256: IPFS's default and the only hash CIDv0 allows.
    Sha2_256,
}

impl HashAlg {
    /// The multihash code of this function.
    pub fn code(self) -> u64 {
        match self {
            HashAlg::Blake3 => BLAKE3,
            HashAlg::Sha2_256 => SHA2_256,
        }
    }

    /// The function with this multihash code, if supported.
    pub fn from_code(code: u64) -> Option<Self> {
        match code {
            BLAKE3 => Some(HashAlg::Blake3),
            SHA2_256 => Some(HashAlg::Sha2_256),
            _ => None,
        }
    }

    /// Hashes `data` into a multihash.
    pub fn digest(self, data: &[u8]) -> Multihash {
        let digest: [u8; 32] = match self {
            HashAlg::Blake3 => *blake3::hash(data).as_bytes(),
            HashAlg::Sha2_256 => {
                use sha2::Digest;
                sha2::Sha256::digest(data).into()
            }
        };
        Multihash::wrap(self.code(), &digest).expect("32-byte digest fits in 64")
    }
}

impl FromStr for HashAlg {
    type Err = BlockError;
    fn from_str(s: &str) -> Result<Self, BlockError> {
        match s {
            "blake3" => Ok(HashAlg::Blake3),
            "sha2-256" => Ok(HashAlg::Sha2_256),
            other => Err(BlockError::UnknownHashName {
                name: other.to_string(),
            }),
        }
    }
}

impl fmt::Display for HashAlg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            HashAlg::Blake3 => "blake3",
            HashAlg::Sha2_256 => "sha2-256",
        })
    }
}

/// CID version and hash together: how new blocks get named.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CidFormat {
    /// 0 or 1. Version 0 implies SHA2-256 and dag-pb.
    pub version: u8,
    /// Hash function for new blocks.
    pub hash: HashAlg,
}

impl CidFormat {
    /// CIDv0: SHA2-256 and dag-pb only (Kubo's `ipfs add` default).
    pub const V0: CidFormat = CidFormat {
        version: 0,
        hash: HashAlg::Sha2_256,
    };
    /// CIDv1 with SHA2-256 (Kubo's `unixfs-v1-2025` profile).
    pub const V1_SHA2_256: CidFormat = CidFormat {
        version: 1,
        hash: HashAlg::Sha2_256,
    };
    /// CIDv1 with BLAKE3.
    pub const V1_BLAKE3: CidFormat = CidFormat {
        version: 1,
        hash: HashAlg::Blake3,
    };

    /// Names `data` under `codec`: CIDv0 only for dag-pb with SHA2-256, else CIDv1.
    pub fn cid(self, codec: u64, data: &[u8]) -> Cid {
        let mh = self.hash.digest(data);
        cid_for(self.version, codec, mh)
    }
}

/// Builds a CID from a multihash, falling back to v1 when v0 cannot express it.
pub fn cid_for(version: u8, codec: u64, mh: Multihash) -> Cid {
    if version == 0 && codec == DAG_PB && mh.code() == SHA2_256 {
        Cid::new_v0(mh).expect("sha2-256 dag-pb is a valid CIDv0")
    } else {
        Cid::new_v1(codec, mh)
    }
}

/// Longest CID text accepted: the longest binary CID this node can hold
/// (86 bytes: a 64-byte digest behind four varints) in base2, the least
/// dense multibase, is 689 characters.
pub const MAX_CID_TEXT: usize = 1024;

/// Parses a CID from text in any multibase (or base58btc for CIDv0), with a
/// clear error. Surrounding whitespace, a leading `/ipfs/` and a path after
/// the CID are accepted; the CID itself goes through [`cid_from_text`].
pub fn parse_cid(input: &str) -> Result<Cid, BlockError> {
    let s = input.trim();
    let s = s.strip_prefix("/ipfs/").unwrap_or(s);
    let s = s.split('/').next().unwrap_or(s);
    let cid = cid_from_text(s).map_err(|source| BlockError::InvalidCid {
        input: input.to_string(),
        source,
    })?;
    check_verifiable(&cid)?;
    Ok(cid)
}

/// Multicodec of dag-cbor nodes (stored and passed through, not decoded).
pub const DAG_CBOR: u64 = 0x71;

/// Multicodec of dag-json nodes (stored and passed through, not decoded).
pub const DAG_JSON: u64 = 0x0129;

/// Refuses a CID no block could ever be verified against: a hash function
/// cairn cannot compute (or a digest of another length than 32 bytes), an
/// identity digest over [`MAX_IDENTITY_BYTES`], or a codec cairn does not
/// know. Checked where a CID comes from outside, before any fetch: a fetch
/// of such a CID could only end in a timeout.
pub fn check_verifiable(cid: &Cid) -> Result<(), BlockError> {
    let code = cid.hash().code();
    let size = cid.hash().size() as usize;
    let hash_ok = match code {
        IDENTITY => size <= MAX_IDENTITY_BYTES,
        _ => HashAlg::from_code(code).is_some() && size == 32,
    };
    if !hash_ok {
        return Err(BlockError::UnsupportedHash { cid: *cid, code });
    }
    match cid.codec() {
        RAW | DAG_PB | DAG_CBOR | DAG_JSON => Ok(()),
        codec => Err(BlockError::UnsupportedCodec { cid: *cid, codec }),
    }
}

/// Reads a CID's text and nothing else: multibase (or bare base58btc for a
/// CIDv0) whose bytes are exactly one CID (see [`cid_from_bytes`]). For
/// CIDs that peers send as text (replication messages and records).
pub fn cid_from_text(s: &str) -> Result<Cid, CidBytesError> {
    if s.len() < 2 {
        return Err(cid::Error::InputTooShort.into());
    }
    if s.len() > MAX_CID_TEXT {
        return Err(CidBytesError::TooLong { len: s.len() });
    }
    // The `cid` crate's rule: 46 characters starting `Qm` are a bare
    // base58btc CIDv0; anything else carries a multibase prefix.
    let bytes = if s.len() == 46 && s.starts_with("Qm") {
        multibase::Base::Base58Btc.decode(s)
    } else {
        multibase::decode(s).map(|(_, bytes)| bytes)
    }
    .map_err(cid::Error::from)?;
    cid_from_bytes(&bytes)
}

/// Reads a binary CID that must fill `bytes` exactly. `Cid::try_from`
/// would ignore whatever follows the CID, so two byte strings (and two
/// texts) would name one CID; every CID that arrives as bytes from outside
/// (links, want-lists, CAR roots) goes through here instead.
pub fn cid_from_bytes(bytes: &[u8]) -> Result<Cid, CidBytesError> {
    let mut rest = bytes;
    let cid = Cid::read_bytes(&mut rest)?;
    if !rest.is_empty() {
        return Err(CidBytesError::Trailing {
            cid,
            extra: rest.len(),
        });
    }
    // The varint decoder drops bits past the 64th of a tenth byte, so a
    // code written in ten bytes can read as another (0x55 0x80.. 0x02 as
    // identity): only the CID's own encoding is accepted.
    if cid.to_bytes() != bytes {
        return Err(CidBytesError::NotCanonical { cid });
    }
    Ok(cid)
}

/// Multihash code of the identity "hash": the digest is the data itself.
pub const IDENTITY: u64 = 0x00;

/// Most bytes an identity CID may inline (Kubo's default limit).
pub const MAX_IDENTITY_BYTES: usize = 128;

/// The block an identity CID carries inline (its digest is its data), or
/// `None` for every other CID. Such blocks are never stored or fetched.
pub fn identity_block(cid: &Cid) -> Option<Block> {
    (cid.hash().code() == IDENTITY && cid.hash().size() as usize <= MAX_IDENTITY_BYTES)
        .then(|| Block::new_unchecked(*cid, Bytes::copy_from_slice(cid.hash().digest())))
}

/// Text form of a CID: base58btc for v0, base32 for v1 (what `Cid`'s Display does).
pub fn cid_string(cid: &Cid) -> String {
    cid.to_string()
}

/// Whether `data` hashes to `mh` (false for hash functions cairn lacks).
pub fn multihash_matches(mh: &Multihash, data: &[u8]) -> bool {
    HashAlg::from_code(mh.code())
        .map(|alg| alg.digest(data).digest() == mh.digest())
        .unwrap_or(false)
}

/// Checks that `data` hashes to the digest `cid` names.
pub fn verify(cid: &Cid, data: &[u8]) -> Result<(), BlockError> {
    let code = cid.hash().code();
    let alg = HashAlg::from_code(code).ok_or(BlockError::UnsupportedHash { cid: *cid, code })?;
    if cid.hash().size() != 32 {
        return Err(BlockError::UnsupportedHash { cid: *cid, code });
    }
    let mh = alg.digest(data);
    if mh.digest() == cid.hash().digest() {
        Ok(())
    } else {
        Err(BlockError::HashMismatch { cid: *cid })
    }
}

/// A CID and the bytes it names.
#[derive(Clone, PartialEq, Eq)]
pub struct Block {
    cid: Cid,
    data: Bytes,
}

impl fmt::Debug for Block {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Block")
            .field("cid", &self.cid.to_string())
            .field("len", &self.data.len())
            .finish()
    }
}

impl Block {
    /// Hashes `data` and names it under `codec` with `format`.
    pub fn new(format: CidFormat, codec: u64, data: impl Into<Bytes>) -> Self {
        let data = data.into();
        let cid = format.cid(codec, &data);
        Block { cid, data }
    }

    /// Pairs `data` with `cid` after checking the hash and the size limit.
    pub fn verified(cid: Cid, data: impl Into<Bytes>) -> Result<Self, BlockError> {
        let block = Block {
            cid,
            data: data.into(),
        };
        block.check_size()?;
        verify(&block.cid, &block.data)?;
        Ok(block)
    }

    /// Pairs `data` with `cid` without hashing: only for bytes this process
    /// has just hashed itself.
    pub fn new_unchecked(cid: Cid, data: Bytes) -> Self {
        Block { cid, data }
    }

    /// The CID naming the bytes.
    pub fn cid(&self) -> &Cid {
        &self.cid
    }

    /// Refuses blocks over [`MAX_BLOCK_BYTES`].
    pub fn check_size(&self) -> Result<(), BlockError> {
        if self.data.len() > MAX_BLOCK_BYTES {
            return Err(BlockError::TooLarge {
                cid: self.cid,
                len: self.data.len(),
                max: MAX_BLOCK_BYTES,
            });
        }
        Ok(())
    }

    /// The block's bytes.
    pub fn data(&self) -> &Bytes {
        &self.data
    }

    /// The CID and the bytes, taken apart.
    pub fn into_parts(self) -> (Cid, Bytes) {
        (self.cid, self.data)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const V0: CidFormat = CidFormat::V0;
    const V1_SHA2: CidFormat = CidFormat::V1_SHA2_256;
    const V1_BLAKE3: CidFormat = CidFormat::V1_BLAKE3;

    #[test]
    fn cids_that_cannot_be_verified_are_refused_at_parse() {
        let sha1 = Cid::new_v1(RAW, Multihash::wrap(0x11, &[7; 20]).unwrap());
        let short_sha2 = Cid::new_v1(RAW, Multihash::wrap(SHA2_256, &[7; 20]).unwrap());
        let odd_codec = Cid::new_v1(0x99, HashAlg::Blake3.digest(b"x"));
        for bad in [sha1, short_sha2] {
            let err = parse_cid(&bad.to_string()).unwrap_err();
            assert!(matches!(err, BlockError::UnsupportedHash { .. }), "{err}");
        }
        let err = parse_cid(&odd_codec.to_string()).unwrap_err();
        assert!(
            matches!(err, BlockError::UnsupportedCodec { codec: 0x99, .. }),
            "{err}"
        );
        for good in [
            V0.cid(DAG_PB, b"x"),
            V1_BLAKE3.cid(RAW, b"x"),
            Cid::new_v1(DAG_CBOR, HashAlg::Sha2_256.digest(b"x")),
            Cid::new_v1(RAW, Multihash::wrap(IDENTITY, b"hi").unwrap()),
        ] {
            assert_eq!(parse_cid(&good.to_string()).unwrap(), good);
        }
    }

    #[test]
    fn v0_and_v1_print_as_ipfs_does() {
        let cid = V0.cid(DAG_PB, b"\x0a\x04\x08\x02\x18\x00");
        assert_eq!(
            cid.to_string(),
            "QmbFMke1KXqnYyBBWxB74N4c5SBnJMVAiMNRcGu6x1AwQH"
        );
        let raw = V1_SHA2.cid(RAW, b"");
        assert_eq!(
            raw.to_string(),
            "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku"
        );
    }

    #[test]
    fn parses_any_multibase() {
        let cid = parse_cid("bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku").unwrap();
        let b58 = cid.to_string_of_base(multibase::Base::Base58Btc).unwrap();
        assert_eq!(parse_cid(&b58).unwrap(), cid);
        let b36 = cid.to_string_of_base(multibase::Base::Base36Lower).unwrap();
        assert_eq!(parse_cid(&b36).unwrap(), cid);
        assert_eq!(parse_cid(&format!("/ipfs/{b36}/a/b")).unwrap(), cid);
        assert!(matches!(
            parse_cid("not-a-cid"),
            Err(BlockError::InvalidCid { .. })
        ));
    }

    #[test]
    fn a_cid_has_one_binary_form() {
        let cid = V1_SHA2.cid(RAW, b"");
        let bytes = cid.to_bytes();
        assert_eq!(cid_from_bytes(&bytes).unwrap(), cid);
        // Bytes after the CID: `Cid::try_from` ignores them.
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(matches!(
            cid_from_bytes(&longer),
            Err(CidBytesError::Trailing { extra: 1, .. })
        ));
        // Found by fuzzing: a ten-byte hash code whose bits past the 64th
        // are dropped read as identity (0).
        let mut overflow = vec![0x01, 0x55];
        overflow.extend_from_slice(&[0x80; 9]);
        overflow.extend_from_slice(&[0x02, 0x20]);
        overflow.extend_from_slice(&[0; 32]);
        assert!(matches!(
            cid_from_bytes(&overflow),
            Err(CidBytesError::NotCanonical { .. })
        ));
        // The same holds for text.
        let text = multibase::encode(multibase::Base::Base32Lower, &longer);
        assert!(matches!(
            parse_cid(&text),
            Err(BlockError::InvalidCid {
                source: CidBytesError::Trailing { .. },
                ..
            })
        ));
        let long = format!("b{}", "a".repeat(MAX_CID_TEXT));
        assert!(matches!(
            cid_from_text(&long),
            Err(CidBytesError::TooLong { .. })
        ));
    }

    #[test]
    fn verification_catches_corruption() {
        let b = Block::new(V1_BLAKE3, RAW, &b"hello"[..]);
        assert!(Block::verified(*b.cid(), &b"hello"[..]).is_ok());
        assert!(matches!(
            Block::verified(*b.cid(), &b"hellp"[..]),
            Err(BlockError::HashMismatch { .. })
        ));
        let big = vec![0u8; MAX_BLOCK_BYTES + 1];
        assert!(matches!(
            Block::verified(*b.cid(), big),
            Err(BlockError::TooLarge { .. })
        ));
    }

    #[test]
    fn same_bytes_two_codecs_share_multihash() {
        let a = V1_BLAKE3.cid(RAW, b"x");
        let b = V1_BLAKE3.cid(DAG_PB, b"x");
        assert_ne!(a, b);
        assert_eq!(a.hash(), b.hash());
    }
}

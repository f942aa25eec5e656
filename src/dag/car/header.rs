//! The CARv1 header (`{"roots": [...], "version": N}` in DAG-CBOR, through
//! `serde_ipld_dagcbor`) and the fixed 40-byte CARv2 header.

use super::{HeaderProblem, MAX_HEADER_BYTES};
use crate::block::{cid_from_bytes, Cid};
use serde::{de, Deserialize, Deserializer, Serialize};
use std::fmt;

/// Length of the fixed CARv2 header that follows the pragma.
pub(super) const CARV2_HEADER_BYTES: usize = 40;

/// A CARv1 header. Serialized, it is canonical DAG-CBOR (`roots` before
/// `version`), byte-for-byte what go-car and js `@ipld/car` write.
#[derive(Debug, Serialize, Deserialize)]
pub(super) struct CarHeader {
    /// The root CIDs; absent only in the CARv2 pragma `{"version": 2}`.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "exact_cids"
    )]
    pub roots: Option<Vec<Cid>>,
    /// 1, or 2 in the CARv2 pragma.
    pub version: u64,
}

impl CarHeader {
    /// The header naming `roots`, without its length prefix; refused over
    /// [`MAX_HEADER_BYTES`].
    pub fn encode(roots: &[Cid]) -> Result<Vec<u8>, HeaderProblem> {
        let header = CarHeader {
            roots: Some(roots.to_vec()),
            version: 1,
        };
        let bytes = serde_ipld_dagcbor::to_vec(&header).map_err(HeaderProblem::Encode)?;
        if bytes.len() > MAX_HEADER_BYTES {
            return Err(HeaderProblem::TooManyRoots {
                roots: roots.len(),
                len: bytes.len(),
            });
        }
        Ok(bytes)
    }

    /// Decodes header bytes (already checked against [`MAX_HEADER_BYTES`]):
    /// keys in any order, unknown keys skipped, duplicates and trailing
    /// bytes refused.
    pub fn decode(bytes: &[u8]) -> Result<Self, HeaderProblem> {
        serde_ipld_dagcbor::from_slice(bytes).map_err(HeaderProblem::Cbor)
    }
}

/// Reads `roots` through [`cid_from_bytes`], refusing a root whose byte
/// string holds more than one CID (as go-cid and js `multiformats` do; the
/// `Cid` deserializer alone would ignore the excess).
fn exact_cids<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<Cid>>, D::Error> {
    /// One root: a CID whose bytes are read exactly.
    struct ExactCid(Cid);

    impl<'de> Deserialize<'de> for ExactCid {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            d.deserialize_newtype_struct(cid::serde::CID_SERDE_PRIVATE_IDENTIFIER, CidVisitor)
        }
    }

    struct CidVisitor;

    impl<'de> de::Visitor<'de> for CidVisitor {
        type Value = ExactCid;

        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a CID (CBOR tag 42)")
        }

        fn visit_newtype_struct<D: Deserializer<'de>>(self, d: D) -> Result<ExactCid, D::Error> {
            d.deserialize_bytes(self)
        }

        fn visit_bytes<E: de::Error>(self, bytes: &[u8]) -> Result<ExactCid, E> {
            cid_from_bytes(bytes)
                .map(ExactCid)
                .map_err(|e| E::custom(format!("root: {e}")))
        }
    }

    /// The roots array, grown as roots are read: `Vec`'s own deserializer
    /// reserves room for the count the array's head declares (up to a
    /// megabyte) before a single root has arrived.
    struct RootsVisitor;

    impl<'de> de::Visitor<'de> for RootsVisitor {
        type Value = Vec<Cid>;

        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("an array of CIDs")
        }

        fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<Cid>, A::Error> {
            let mut roots = Vec::new();
            while let Some(ExactCid(cid)) = seq.next_element()? {
                roots.push(cid);
            }
            Ok(roots)
        }
    }

    d.deserialize_seq(RootsVisitor).map(Some)
}

/// The fixed CARv2 header after the pragma: where the CARv1 payload lies.
pub(super) struct Carv2Header {
    /// Offset of the payload from the start of the stream.
    pub data_offset: u64,
    /// Length of the payload.
    pub data_size: u64,
}

impl Carv2Header {
    /// Reads the little-endian offsets out of the 40 header bytes (the
    /// 16-byte characteristics bitfield and the index offset are ignored).
    pub fn parse(bytes: &[u8; CARV2_HEADER_BYTES]) -> Self {
        let u64_at = |i: usize| {
            let mut b = [0u8; 8];
            b.copy_from_slice(&bytes[i..i + 8]);
            u64::from_le_bytes(b)
        };
        Carv2Header {
            data_offset: u64_at(16),
            data_size: u64_at(24),
        }
    }
}

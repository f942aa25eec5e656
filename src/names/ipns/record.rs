//! IPNS records as the IPNS record spec defines them: creating, encoding,
//! decoding, validating and choosing among them.
//!
//! On the wire a record is the protobuf `IpnsEntry` (at most
//! [`MAX_RECORD_BYTES`]):
//!
//! ```text
//! 1 value         bytes   V1 copy of data[Value]
//! 2 signatureV1   bytes   legacy signature (value ‖ validity ‖ "EOL"), never checked
//! 3 validityType  enum    V1 copy of data[ValidityType] (0: EOL)
//! 4 validity      bytes   V1 copy of data[Validity]
//! 5 sequence      uint64  V1 copy of data[Sequence]
//! 6 ttl           uint64  V1 copy of data[TTL] (nanoseconds)
//! 7 pubKey        bytes   the signer's public key when the name cannot inline it
//! 8 signatureV2   bytes   signature of "ipns-signature:" ‖ data
//! 9 data          bytes   DAG-CBOR map {TTL, Value, Sequence, Validity, ValidityType}
//! ```
//!
//! The signed fields live in `data`; cairn also fills the V1 copies (as
//! Kubo does) so older resolvers read its records, and refuses a record
//! whose V1 copies disagree with `data`. `Validity` is an RFC 3339 time
//! (UTC, nanosecond precision, trailing zeros dropped as Go writes it)
//! after which the record is invalid.

use super::IpnsError;
use crate::proto::{put_bytes_field, put_varint_field, Reader};
use libp2p::identity::{Keypair, PublicKey};
use libp2p::PeerId;
use std::cmp::Ordering;
use std::time::{Duration, SystemTime};

/// The largest serialized record accepted or created (the spec's limit).
pub const MAX_RECORD_BYTES: usize = 10 * 1024;

/// What `signatureV2` signs: this prefix, then the `data` bytes.
const SIGNATURE_PREFIX: &[u8] = b"ipns-signature:";

/// The only validity type: `validity` is an end of life.
const VALIDITY_EOL: u64 = 0;

/// The multihash code of an identity hash (a key inlined in the name).
const IDENTITY: u64 = 0x00;

/// The protobuf `IpnsEntry`, field by field, as it was on the wire (no
/// field checked: see [`validate`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct IpnsEntry {
    /// V1 copy of the value.
    pub value: Option<Vec<u8>>,
    /// Legacy V1 signature (never used to verify).
    pub signature_v1: Option<Vec<u8>>,
    /// V1 copy of the validity type.
    pub validity_type: Option<u64>,
    /// V1 copy of the validity.
    pub validity: Option<Vec<u8>>,
    /// V1 copy of the sequence number.
    pub sequence: Option<u64>,
    /// V1 copy of the TTL (nanoseconds).
    pub ttl: Option<u64>,
    /// The signer's public key (protobuf), when not inlined in the name.
    pub pub_key: Option<Vec<u8>>,
    /// The V2 signature.
    pub signature_v2: Option<Vec<u8>>,
    /// The signed DAG-CBOR data.
    pub data: Option<Vec<u8>>,
}

impl IpnsEntry {
    /// Reads an `IpnsEntry`; refuses more than [`MAX_RECORD_BYTES`] before
    /// parsing anything.
    pub fn decode(bytes: &[u8]) -> Result<IpnsEntry, IpnsError> {
        if bytes.len() > MAX_RECORD_BYTES {
            return Err(IpnsError::TooLarge { bytes: bytes.len() });
        }
        let mut e = IpnsEntry::default();
        let mut r = Reader::new(bytes, "IPNS record");
        while !r.done() {
            let (field, wire) = r.key()?;
            match (field, wire) {
                (1, 2) => e.value = Some(r.bytes()?.to_vec()),
                (2, 2) => e.signature_v1 = Some(r.bytes()?.to_vec()),
                (3, 0) => e.validity_type = Some(r.varint()?),
                (4, 2) => e.validity = Some(r.bytes()?.to_vec()),
                (5, 0) => e.sequence = Some(r.varint()?),
                (6, 0) => e.ttl = Some(r.varint()?),
                (7, 2) => e.pub_key = Some(r.bytes()?.to_vec()),
                (8, 2) => e.signature_v2 = Some(r.bytes()?.to_vec()),
                (9, 2) => e.data = Some(r.bytes()?.to_vec()),
                (_, w) => r.skip(w)?,
            }
        }
        Ok(e)
    }

    /// The protobuf bytes (fields in number order, absent ones left out).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        let bytes = |out: &mut Vec<u8>, n, v: &Option<Vec<u8>>| {
            if let Some(v) = v {
                put_bytes_field(out, n, v);
            }
        };
        let varint = |out: &mut Vec<u8>, n, v: Option<u64>| {
            if let Some(v) = v {
                put_varint_field(out, n, v);
            }
        };
        bytes(&mut out, 1, &self.value);
        bytes(&mut out, 2, &self.signature_v1);
        varint(&mut out, 3, self.validity_type);
        bytes(&mut out, 4, &self.validity);
        varint(&mut out, 5, self.sequence);
        varint(&mut out, 6, self.ttl);
        bytes(&mut out, 7, &self.pub_key);
        bytes(&mut out, 8, &self.signature_v2);
        bytes(&mut out, 9, &self.data);
        out
    }
}

/// A record's signed contents, once validated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IpnsRecord {
    /// What the name points at (a path such as `/ipfs/CID`), as signed.
    pub value: Vec<u8>,
    /// The record's version: a newer record has a higher one.
    pub sequence: u64,
    /// When the record stops being valid.
    pub eol: SystemTime,
    /// How long a resolver may cache it.
    pub ttl: Duration,
}

impl IpnsRecord {
    /// The value as text (paths are UTF-8; other bytes are replaced).
    pub fn value_text(&self) -> String {
        String::from_utf8_lossy(&self.value).into_owned()
    }
}

/// A new record for `key`'s name pointing at `value`, signed with V2 and
/// carrying the V1 copies; valid until `eol`, cacheable for `ttl`.
pub fn create(
    key: &Keypair,
    value: &[u8],
    sequence: u64,
    eol: SystemTime,
    ttl: Duration,
) -> Result<Vec<u8>, IpnsError> {
    let validity = format_rfc3339(eol).into_bytes();
    let ttl_ns = u64::try_from(ttl.as_nanos()).unwrap_or(u64::MAX);
    let data = encode_data(value, &validity, sequence, ttl_ns);
    let sign = |msg: &[u8]| key.sign(msg).map_err(|e| IpnsError::Sign(e.to_string()));
    let signature_v2 = sign(&[SIGNATURE_PREFIX, data.as_slice()].concat())?;
    let signature_v1 = sign(&[value, validity.as_slice(), b"EOL".as_slice()].concat())?;
    // An Ed25519 key is inlined in the name; any other needs its key here.
    let public = key.public();
    let inlined = PeerId::from_public_key(&public).as_ref().code() == IDENTITY;
    let entry = IpnsEntry {
        value: Some(value.to_vec()),
        signature_v1: Some(signature_v1),
        validity_type: Some(VALIDITY_EOL),
        validity: Some(validity),
        sequence: Some(sequence),
        ttl: Some(ttl_ns),
        pub_key: (!inlined).then(|| public.encode_protobuf()),
        signature_v2: Some(signature_v2),
        data: Some(data),
    };
    let bytes = entry.encode();
    if bytes.len() > MAX_RECORD_BYTES {
        return Err(IpnsError::TooLarge { bytes: bytes.len() });
    }
    Ok(bytes)
}

/// Checks `bytes` as a record of `name` at time `now`, as the spec's
/// verification says (size, V2 signature by the name's key, V1 copies
/// consistent with the signed data, not expired); returns its contents.
pub fn validate(name: &PeerId, bytes: &[u8], now: SystemTime) -> Result<IpnsRecord, IpnsError> {
    let entry = IpnsEntry::decode(bytes)?;
    let signature = entry
        .signature_v2
        .as_deref()
        .filter(|s| !s.is_empty())
        .ok_or(IpnsError::Missing {
            field: "signatureV2",
        })?;
    let data = entry
        .data
        .as_deref()
        .filter(|d| !d.is_empty())
        .ok_or(IpnsError::Missing { field: "data" })?;
    let key = public_key(name, entry.pub_key.as_deref())?;
    let fields = decode_data(data)?;
    if !key.verify(&[SIGNATURE_PREFIX, data].concat(), signature) {
        return Err(IpnsError::BadSignature { name: *name });
    }
    if entry.value.is_some() || entry.signature_v1.is_some() {
        check_v1_copies(&entry, &fields)?;
    }
    if fields.validity_type != VALIDITY_EOL {
        return Err(IpnsError::UnsupportedValidity {
            kind: fields.validity_type,
        });
    }
    let validity = fields.validity.clone();
    let rec = fields.into_record()?;
    if rec.eol <= now {
        return Err(IpnsError::Expired {
            name: *name,
            eol: String::from_utf8_lossy(&validity).into_owned(),
        });
    }
    Ok(rec)
}

/// A record's signed fields read without checking its signature or end of
/// life: for records this node signed itself (kept in its repo).
pub fn fields(bytes: &[u8]) -> Result<IpnsRecord, IpnsError> {
    let entry = IpnsEntry::decode(bytes)?;
    let data = entry
        .data
        .as_deref()
        .ok_or(IpnsError::Missing { field: "data" })?;
    decode_data(data)?.into_record()
}

/// How two valid records of one name rank: the higher sequence wins, then
/// the later end of life. `Greater` means `a` is the better.
pub fn compare(a: &IpnsRecord, b: &IpnsRecord) -> Ordering {
    a.sequence.cmp(&b.sequence).then(a.eol.cmp(&b.eol))
}

/// The best valid record of `name` among `candidates` (invalid ones are
/// skipped; ties keep the first): its index and contents.
pub fn select<'a>(
    name: &PeerId,
    candidates: impl IntoIterator<Item = &'a [u8]>,
    now: SystemTime,
) -> Option<(usize, IpnsRecord)> {
    let mut best: Option<(usize, IpnsRecord)> = None;
    for (i, bytes) in candidates.into_iter().enumerate() {
        let Ok(record) = validate(name, bytes, now) else {
            continue;
        };
        if best
            .as_ref()
            .is_none_or(|(_, b)| compare(&record, b) == Ordering::Greater)
        {
            best = Some((i, record));
        }
    }
    best
}

/// The key that signs `name`'s records: the record's `pubKey` if it has
/// one (it must make the name), else the key inlined in the name.
fn public_key(name: &PeerId, embedded: Option<&[u8]>) -> Result<PublicKey, IpnsError> {
    if let Some(bytes) = embedded {
        let key = PublicKey::try_decode_protobuf(bytes).map_err(|e| IpnsError::BadPublicKey {
            name: *name,
            reason: e.to_string(),
        })?;
        if PeerId::from_public_key(&key) != *name {
            return Err(IpnsError::KeyMismatch { name: *name });
        }
        return Ok(key);
    }
    let mh: &libp2p::multihash::Multihash<64> = name.as_ref();
    if mh.code() != IDENTITY {
        return Err(IpnsError::NoPublicKey { name: *name });
    }
    PublicKey::try_decode_protobuf(mh.digest()).map_err(|e| IpnsError::BadPublicKey {
        name: *name,
        reason: e.to_string(),
    })
}

/// The signed fields of `IpnsEntry.data`.
#[derive(Debug, PartialEq, Eq)]
struct DataFields {
    value: Vec<u8>,
    validity: Vec<u8>,
    validity_type: u64,
    sequence: u64,
    ttl: u64,
}

impl DataFields {
    fn into_record(self) -> Result<IpnsRecord, IpnsError> {
        Ok(IpnsRecord {
            eol: parse_rfc3339(&self.validity)?,
            value: self.value,
            sequence: self.sequence,
            ttl: Duration::from_nanos(self.ttl),
        })
    }
}

/// The V1 copies must say what the signed data says (absent ones read as
/// empty or zero, as protobuf defaults).
fn check_v1_copies(e: &IpnsEntry, d: &DataFields) -> Result<(), IpnsError> {
    let mismatch = |field| Err(IpnsError::Inconsistent { field });
    if e.value.as_deref().unwrap_or_default() != d.value {
        return mismatch("value");
    }
    if e.validity.as_deref().unwrap_or_default() != d.validity {
        return mismatch("validity");
    }
    if e.validity_type.unwrap_or(0) != d.validity_type {
        return mismatch("validityType");
    }
    if e.sequence.unwrap_or(0) != d.sequence {
        return mismatch("sequence");
    }
    if e.ttl.unwrap_or(0) != d.ttl {
        return mismatch("ttl");
    }
    Ok(())
}

/// The DAG-CBOR map of the signed fields, keys in DAG-CBOR order (shorter
/// first, then bytewise): TTL, Value, Sequence, Validity, ValidityType.
fn encode_data(value: &[u8], validity: &[u8], sequence: u64, ttl_ns: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(64 + value.len() + validity.len());
    cbor_head(&mut out, 5, 5);
    cbor_text(&mut out, "TTL");
    cbor_head(&mut out, 0, ttl_ns);
    cbor_text(&mut out, "Value");
    cbor_head(&mut out, 2, value.len() as u64);
    out.extend_from_slice(value);
    cbor_text(&mut out, "Sequence");
    cbor_head(&mut out, 0, sequence);
    cbor_text(&mut out, "Validity");
    cbor_head(&mut out, 2, validity.len() as u64);
    out.extend_from_slice(validity);
    cbor_text(&mut out, "ValidityType");
    cbor_head(&mut out, 0, VALIDITY_EOL);
    out
}

/// A CBOR item head: major type and argument, in the shortest form.
fn cbor_head(out: &mut Vec<u8>, major: u8, arg: u64) {
    let m = major << 5;
    match arg {
        0..=23 => out.push(m | arg as u8),
        24..=0xff => out.extend_from_slice(&[m | 24, arg as u8]),
        0x100..=0xffff => {
            out.push(m | 25);
            out.extend_from_slice(&(arg as u16).to_be_bytes());
        }
        0x1_0000..=0xffff_ffff => {
            out.push(m | 26);
            out.extend_from_slice(&(arg as u32).to_be_bytes());
        }
        _ => {
            out.push(m | 27);
            out.extend_from_slice(&arg.to_be_bytes());
        }
    }
}

fn cbor_text(out: &mut Vec<u8>, s: &str) {
    cbor_head(out, 3, s.len() as u64);
    out.extend_from_slice(s.as_bytes());
}

/// Reads the signed fields from `data` (other keys are ignored, as the
/// spec asks, without building them: a generic document would reserve room
/// for whatever length an array declares).
fn decode_data(data: &[u8]) -> Result<DataFields, IpnsError> {
    let doc: DataDoc = serde_ipld_dagcbor::from_slice(data).map_err(|e| IpnsError::BadData {
        reason: e.to_string(),
    })?;
    Ok(DataFields {
        value: doc.value.0,
        validity: doc.validity.0,
        validity_type: doc.validity_type,
        sequence: doc.sequence,
        ttl: doc.ttl,
    })
}

/// The DAG-CBOR document of `IpnsEntry.data`, as serde reads it.
#[derive(serde::Deserialize)]
struct DataDoc {
    #[serde(rename = "Value")]
    value: CborBytes,
    #[serde(rename = "Validity")]
    validity: CborBytes,
    #[serde(rename = "ValidityType")]
    validity_type: u64,
    #[serde(rename = "Sequence")]
    sequence: u64,
    #[serde(rename = "TTL")]
    ttl: u64,
}

/// A CBOR byte string (serde reads `Vec<u8>` as a list of numbers).
struct CborBytes(Vec<u8>);

impl<'de> serde::Deserialize<'de> for CborBytes {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = CborBytes;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a byte string")
            }
            fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<CborBytes, E> {
                Ok(CborBytes(v.to_vec()))
            }
            fn visit_byte_buf<E: serde::de::Error>(self, v: Vec<u8>) -> Result<CborBytes, E> {
                Ok(CborBytes(v))
            }
        }
        d.deserialize_byte_buf(Visitor)
    }
}

/// `t` in RFC 3339 as Go writes it (UTC, nanoseconds without trailing
/// zeros).
pub fn format_rfc3339(t: SystemTime) -> String {
    let full = humantime::format_rfc3339_nanos(t).to_string();
    // "YYYY-MM-DDTHH:MM:SS.nnnnnnnnnZ"
    match full.split_once('.') {
        Some((secs, frac)) => {
            let digits = frac.trim_end_matches('Z').trim_end_matches('0');
            if digits.is_empty() {
                format!("{secs}Z")
            } else {
                format!("{secs}.{digits}Z")
            }
        }
        None => full,
    }
}

/// A validity time: RFC 3339 in UTC (`Z` or `+00:00`), any fraction.
fn parse_rfc3339(validity: &[u8]) -> Result<SystemTime, IpnsError> {
    let bad = || IpnsError::BadValidity {
        validity: String::from_utf8_lossy(validity).into_owned(),
    };
    let text = std::str::from_utf8(validity).map_err(|_| bad())?;
    humantime::parse_rfc3339(text).map_err(|_| bad())
}

#[cfg(test)]
#[path = "record_tests.rs"]
mod tests;

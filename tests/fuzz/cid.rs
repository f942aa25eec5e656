//! CIDs from bytes (links, want-lists, CAR roots) and from text (URLs, RPC
//! arguments, replication messages).

use crate::harness::{any_bytes, check, check_alloc, mutate, mutations, peak_alloc, Failure};
use cairn::block::{check_verifiable, cid_from_bytes, cid_from_text, parse_cid, Cid, Multihash};
use cid::multibase::Base;
use proptest::collection::vec;
use proptest::prelude::*;

/// Multicodec and multihash codes: the common ones, small ones and any.
fn any_code() -> impl Strategy<Value = u64> {
    prop_oneof![
        Just(0x55u64),
        Just(0x70),
        Just(0x12),
        Just(0x1e),
        Just(0),
        0u64..0x400,
        any::<u64>(),
    ]
}

/// Any CID this node can hold: v0, or v1 with any codec, hash code and a
/// digest of up to 64 bytes.
pub fn any_cid() -> impl Strategy<Value = Cid> {
    prop_oneof![
        any::<[u8; 32]>().prop_map(|d| {
            let mh = Multihash::wrap(0x12, &d).expect("32 bytes fit");
            Cid::new_v0(mh).expect("sha2-256 is a CIDv0")
        }),
        (any_code(), any_code(), vec(any::<u8>(), 0..=64)).prop_map(|(codec, code, digest)| {
            Cid::new_v1(codec, Multihash::wrap(code, &digest).expect("64 bytes fit"))
        }),
    ]
}

/// Every multibase a CIDv1 can be written in.
fn any_base() -> impl Strategy<Value = Base> {
    prop::sample::select(vec![
        Base::Base2,
        Base::Base8,
        Base::Base10,
        Base::Base16Lower,
        Base::Base16Upper,
        Base::Base32Lower,
        Base::Base32Upper,
        Base::Base32PadLower,
        Base::Base32PadUpper,
        Base::Base32HexLower,
        Base::Base32HexUpper,
        Base::Base32HexPadLower,
        Base::Base32HexPadUpper,
        Base::Base32Z,
        Base::Base36Lower,
        Base::Base36Upper,
        Base::Base58Flickr,
        Base::Base58Btc,
        Base::Base64,
        Base::Base64Pad,
        Base::Base64Url,
        Base::Base64UrlPad,
    ])
}

/// CID bytes: arbitrary, or a valid CID's mutated.
fn cid_bytes_input() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        any_bytes(100),
        (any_cid(), mutations()).prop_map(|(c, m)| mutate(c.to_bytes(), &m)),
    ]
}

/// CID text: arbitrary, multibase-shaped, or a valid CID's mutated.
fn cid_text_input() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "[a-zA-Z0-9+/=_-]{0,120}",
        "Qm[1-9A-HJ-NP-Za-km-z]{44}",
        (any_cid(), any_base(), mutations()).prop_map(|(c, base, m)| {
            let text = text_of(&c, base);
            String::from_utf8_lossy(&mutate(text.into_bytes(), &m)).into_owned()
        }),
    ]
}

/// `cid` in `base` (CIDv0 has only base58btc, without a prefix).
fn text_of(cid: &Cid, base: Base) -> String {
    cid.to_string_of_base(base)
        .unwrap_or_else(|_| cid.to_string())
}

/// Arbitrary bytes: no panic, and a CID read is exactly its input.
pub fn cid_bytes(cases: u32) -> Result<(), Failure> {
    check("cid_bytes", cases, cid_bytes_input(), |bytes| {
        let (read, peak) = peak_alloc(|| cid_from_bytes(&bytes));
        check_alloc("cid_from_bytes", bytes.len(), peak)?;
        if let Ok(cid) = read {
            prop_assert_eq!(cid.to_bytes(), bytes, "{} read from other bytes", cid);
        }
        Ok(())
    })
}

/// `cid` if a block could be verified against it: what `parse_cid`
/// accepts of what `cid_from_text` reads.
fn verifiable(cid: Cid) -> Option<Cid> {
    check_verifiable(&cid).is_ok().then_some(cid)
}

/// Arbitrary text: no panic, and a CID read prints as text that reads back
/// as itself.
pub fn cid_text(cases: u32) -> Result<(), Failure> {
    check("cid_text", cases, cid_text_input(), |text| {
        let (parsed, peak) = peak_alloc(|| parse_cid(&text).ok());
        check_alloc("parse_cid", text.len(), peak)?;
        if let Some(cid) = parsed {
            prop_assert_eq!(cid_from_text(&cid.to_string()).ok(), Some(cid));
        }
        // Base64 text can hold '/', where a path would start. A CID no
        // block could be verified against is refused.
        if let (Ok(cid), false) = (cid_from_text(&text), text.contains('/')) {
            prop_assert_eq!(parse_cid(&text).ok(), verifiable(cid));
        }
        Ok(())
    })
}

/// Every CID reads back from its bytes and from its text in every base.
pub fn cid_round_trip(cases: u32) -> Result<(), Failure> {
    check(
        "cid_round_trip",
        cases,
        (any_cid(), any_base()),
        |(cid, base)| {
            prop_assert_eq!(cid_from_bytes(&cid.to_bytes()).ok(), Some(cid));
            prop_assert_eq!(cid_from_text(&cid.to_string()).ok(), Some(cid));
            let text = text_of(&cid, base);
            prop_assert_eq!(cid_from_text(&text).ok(), Some(cid), "{}", text);
            // Base64 text can hold '/', where a path would start.
            if !text.contains('/') {
                let path = format!("/ipfs/{text}/a/b");
                prop_assert_eq!(parse_cid(&path).ok(), verifiable(cid));
            }
            Ok(())
        },
    )
}

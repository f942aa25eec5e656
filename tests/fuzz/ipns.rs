//! IPNS records (what peers PUT on the DHT and send in answers).

use crate::harness::{any_bytes, check, check_alloc, mutate, mutations, peak_alloc, Failure};
use cairn::names::ipns::record::{create, validate, IpnsEntry};
use libp2p::identity::Keypair;
use libp2p::PeerId;
use proptest::prelude::*;
use std::time::{Duration, SystemTime};

/// The key every generated record is signed with.
fn key() -> (Keypair, PeerId) {
    let k = Keypair::ed25519_from_bytes([3u8; 32]).expect("32-byte seed");
    let p = k.public().to_peer_id();
    (k, p)
}

/// A valid record: any path-like value, sequence and TTL, valid a day.
fn any_record() -> impl Strategy<Value = Vec<u8>> {
    (
        "/ipfs/[a-z0-9]{1,64}(/[a-z]{0,8}){0,3}",
        any::<u64>(),
        any::<u64>(),
    )
        .prop_map(|(value, seq, ttl)| {
            let eol = SystemTime::now() + Duration::from_secs(86_400);
            create(
                &key().0,
                value.as_bytes(),
                seq,
                eol,
                Duration::from_nanos(ttl),
            )
            .expect("small records are created")
        })
}

/// Arbitrary and mutated bytes: decoding never panics or allocates beyond
/// the bound, what decodes re-encodes to the same entry, and a mutated
/// record that still validates says what was signed.
pub fn ipns_bytes(cases: u32) -> Result<(), Failure> {
    let input = prop_oneof![
        any_bytes(512).prop_map(|b| (b, None)),
        (any_record(), mutations()).prop_map(|(r, m)| (mutate(r.clone(), &m), Some(r))),
    ];
    check("ipns_bytes", cases, input, |(bytes, original)| {
        let (entry, peak) = peak_alloc(|| IpnsEntry::decode(&bytes));
        check_alloc("IpnsEntry::decode", bytes.len(), peak)?;
        if let Ok(e) = entry {
            prop_assert_eq!(IpnsEntry::decode(&e.encode()).ok(), Some(e));
        }
        let name = key().1;
        let now = SystemTime::now();
        let (checked, peak) = peak_alloc(|| validate(&name, &bytes, now));
        check_alloc("ipns validate", bytes.len(), peak)?;
        if let (Ok(got), Some(original)) = (checked, original) {
            let signed = validate(&name, &original, now).expect("the original is valid");
            prop_assert_eq!(got, signed);
        }
        Ok(())
    })
}

/// Created records validate with exactly the fields they were made with,
/// and only for their own name.
pub fn ipns_round_trip(cases: u32) -> Result<(), Failure> {
    let input = (any::<Vec<u8>>(), any::<u64>(), any::<u64>(), 1u64..1 << 40);
    check(
        "ipns_round_trip",
        cases,
        input,
        |(value, seq, ttl, secs)| {
            let (k, name) = key();
            let now = SystemTime::now();
            let eol = now + Duration::from_nanos(secs);
            let bytes = create(&k, &value, seq, eol, Duration::from_nanos(ttl))
                .map_err(|e| TestCaseError::fail(e.to_string()))?;
            let r = validate(&name, &bytes, now).map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(&r.value, &value);
            prop_assert_eq!((r.sequence, r.eol), (seq, eol));
            prop_assert_eq!(r.ttl, Duration::from_nanos(ttl));
            prop_assert!(validate(&PeerId::random(), &bytes, now).is_err());
            Ok(())
        },
    )
}

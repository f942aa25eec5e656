use super::*;
use crate::names::ipns::IpnsError;
use libp2p::identity::Keypair;

const HOUR: Duration = Duration::from_secs(3600);

fn key() -> (Keypair, PeerId) {
    let k = Keypair::generate_ed25519();
    let p = k.public().to_peer_id();
    (k, p)
}

fn record(k: &Keypair, value: &str, seq: u64, eol: SystemTime) -> Vec<u8> {
    create(k, value.as_bytes(), seq, eol, HOUR).unwrap()
}

/// Re-signs a changed entry's data with `k` (V2 only), as a forger with
/// the right key would.
fn resign(k: &Keypair, e: &mut IpnsEntry) {
    let data = e.data.clone().unwrap();
    e.signature_v2 = Some(k.sign(&[SIGNATURE_PREFIX, &data[..]].concat()).unwrap());
}

#[test]
fn a_created_record_validates_and_carries_its_fields() {
    let (k, p) = key();
    let now = SystemTime::now();
    let bytes = record(&k, "/ipfs/bafkqaaa", 7, now + HOUR);
    let r = validate(&p, &bytes, now).unwrap();
    assert_eq!(r.value_text(), "/ipfs/bafkqaaa");
    assert_eq!(r.sequence, 7);
    assert_eq!(r.ttl, HOUR);
    // The EOL survives its text form to the nanosecond.
    assert_eq!(r.eol, now + HOUR);
    // V1 copies are filled, no public key for an inlined Ed25519 name.
    let e = IpnsEntry::decode(&bytes).unwrap();
    assert_eq!(e.value.as_deref(), Some(&b"/ipfs/bafkqaaa"[..]));
    assert_eq!(e.sequence, Some(7));
    assert_eq!(e.validity_type, Some(0));
    assert!(e.signature_v1.is_some() && e.pub_key.is_none());
    assert_eq!(IpnsEntry::decode(&e.encode()).unwrap(), e);
}

#[test]
fn the_signed_data_is_dag_cbor_as_a_generic_encoder_writes_it() {
    use ipld_core::ipld::Ipld;
    let data = encode_data(b"/ipfs/x", b"2030-01-01T00:00:00Z", 300, 1 << 40);
    let doc: Ipld = serde_ipld_dagcbor::from_slice(&data).unwrap();
    assert_eq!(serde_ipld_dagcbor::to_vec(&doc).unwrap(), data);
    let fields = decode_data(&data).unwrap();
    assert_eq!(fields.sequence, 300);
    assert_eq!(fields.ttl, 1 << 40);
    assert_eq!(fields.validity, b"2030-01-01T00:00:00Z");
}

#[test]
fn validity_is_written_as_go_writes_it() {
    let t = SystemTime::UNIX_EPOCH + Duration::new(1_700_000_000, 120_000_000);
    assert_eq!(format_rfc3339(t), "2023-11-14T22:13:20.12Z");
    let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    assert_eq!(format_rfc3339(t), "2023-11-14T22:13:20Z");
    assert_eq!(
        parse_rfc3339(b"2023-11-14T22:13:20.12Z").unwrap(),
        SystemTime::UNIX_EPOCH + Duration::new(1_700_000_000, 120_000_000)
    );
    assert!(parse_rfc3339(b"yesterday").is_err());
}

#[test]
fn tampered_records_are_refused() {
    let (k, p) = key();
    let now = SystemTime::now();
    let bytes = record(&k, "/ipfs/bafkqaaa", 1, now + HOUR);
    let good = IpnsEntry::decode(&bytes).unwrap();

    // A flipped byte in the signed data.
    let mut e = good.clone();
    let mut data = e.data.clone().unwrap();
    let at = data.windows(3).position(|w| w == b"aaa").unwrap();
    data[at] = b'b';
    e.data = Some(data);
    e.value = None;
    e.signature_v1 = None;
    assert!(matches!(
        validate(&p, &e.encode(), now),
        Err(IpnsError::BadSignature { .. })
    ));

    // A V1 value that differs from the signed one.
    let mut e = good.clone();
    e.value = Some(b"/ipfs/bafkqabc".to_vec());
    assert!(matches!(
        validate(&p, &e.encode(), now),
        Err(IpnsError::Inconsistent { field: "value" })
    ));
    let mut e = good.clone();
    e.sequence = Some(99);
    assert!(matches!(
        validate(&p, &e.encode(), now),
        Err(IpnsError::Inconsistent { field: "sequence" })
    ));

    // No V2 signature, or no data (a V1-only record).
    let mut e = good.clone();
    e.signature_v2 = None;
    assert!(matches!(
        validate(&p, &e.encode(), now),
        Err(IpnsError::Missing {
            field: "signatureV2"
        })
    ));
    let mut e = good.clone();
    e.data = Some(Vec::new());
    assert!(matches!(
        validate(&p, &e.encode(), now),
        Err(IpnsError::Missing { field: "data" })
    ));

    // A record without V1 fields is fine (V2 only).
    let mut e = good.clone();
    e.value = None;
    e.signature_v1 = None;
    e.validity = None;
    e.validity_type = None;
    e.sequence = None;
    e.ttl = None;
    assert!(validate(&p, &e.encode(), now).is_ok());

    // Truncated bytes are malformed, not a panic.
    assert!(validate(&p, &bytes[..bytes.len() - 5], now).is_err());
}

#[test]
fn a_record_signed_by_another_key_is_refused() {
    let (k, _) = key();
    let (other, other_name) = key();
    let now = SystemTime::now();
    let bytes = record(&other, "/ipfs/bafkqaaa", 1, now + HOUR);
    let name = k.public().to_peer_id();
    assert!(matches!(
        validate(&name, &bytes, now),
        Err(IpnsError::BadSignature { .. })
    ));
    // Embedding the signer's key does not help: it is not the name's.
    let mut e = IpnsEntry::decode(&bytes).unwrap();
    e.pub_key = Some(other.public().encode_protobuf());
    assert!(matches!(
        validate(&name, &e.encode(), now),
        Err(IpnsError::KeyMismatch { .. })
    ));
    // The right key embedded is accepted.
    assert!(validate(&other_name, &e.encode(), now).is_ok());
    // A name that does not inline its key needs one in the record.
    let hashed =
        PeerId::from_multihash(libp2p::multihash::Multihash::wrap(0x12, &[7u8; 32]).unwrap())
            .unwrap();
    assert!(matches!(
        validate(&hashed, &bytes, now),
        Err(IpnsError::NoPublicKey { .. })
    ));
}

#[test]
fn expired_and_oversized_records_are_refused() {
    let (k, p) = key();
    let now = SystemTime::now();
    let old = record(&k, "/ipfs/bafkqaaa", 1, now - Duration::from_secs(1));
    assert!(matches!(
        validate(&p, &old, now),
        Err(IpnsError::Expired { .. })
    ));
    // Creating a record over the limit fails...
    let long = format!("/ipfs/bafkqaaa/{}", "a".repeat(MAX_RECORD_BYTES));
    assert!(matches!(
        create(&k, long.as_bytes(), 1, now + HOUR, HOUR),
        Err(IpnsError::TooLarge { .. })
    ));
    // ...and one made by hand is refused before parsing.
    let mut e = IpnsEntry::decode(&record(&k, "/ipfs/x", 1, now + HOUR)).unwrap();
    e.signature_v1 = Some(vec![0; MAX_RECORD_BYTES]);
    assert!(matches!(
        validate(&p, &e.encode(), now),
        Err(IpnsError::TooLarge { .. })
    ));
    // A validity that is not a time.
    let mut e = IpnsEntry::decode(&record(&k, "/ipfs/x", 1, now + HOUR)).unwrap();
    let data = encode_data(b"/ipfs/x", b"tomorrow", 1, 5);
    e.data = Some(data);
    e.value = None;
    e.signature_v1 = None;
    resign(&k, &mut e);
    assert!(matches!(
        validate(&p, &e.encode(), now),
        Err(IpnsError::BadValidity { .. })
    ));
}

#[test]
fn the_best_record_has_the_highest_sequence_then_the_latest_eol() {
    let (k, p) = key();
    let now = SystemTime::now();
    let a = record(&k, "/ipfs/a", 1, now + 2 * HOUR);
    let b = record(&k, "/ipfs/b", 2, now + HOUR);
    let c = record(&k, "/ipfs/c", 2, now + 3 * HOUR);
    let expired = record(&k, "/ipfs/d", 9, now - HOUR);
    let (other, _) = key();
    let forged = record(&other, "/ipfs/e", 50, now + HOUR);
    let all: Vec<&[u8]> = vec![&a, &forged, &b, &expired, &c, b"junk"];
    let (i, best) = select(&p, all, now).unwrap();
    assert_eq!((i, best.value_text()), (4, "/ipfs/c".to_string()));
    assert_eq!(select(&p, [&a[..], &b[..]], now).map(|(i, _)| i), Some(1));
    assert!(select(&p, [&forged[..], &expired[..]], now).is_none());
}

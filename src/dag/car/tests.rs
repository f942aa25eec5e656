use super::header::{CarHeader, CARV2_HEADER_BYTES};
use super::reader::decode_varint;
use super::*;
use crate::block::{Block, Cid, CidFormat, DAG_PB, MAX_BLOCK_BYTES, RAW};
use proptest::prelude::*;

/// Appends `n` as a varint.
fn put_varint(out: &mut Vec<u8>, n: u64) {
    out.extend_from_slice(unsigned_varint::encode::u64(
        n,
        &mut unsigned_varint::encode::u64_buffer(),
    ));
}

const V0: CidFormat = CidFormat::V0;
const V1_SHA2: CidFormat = CidFormat::V1_SHA2_256;
const V1_BLAKE3: CidFormat = CidFormat::V1_BLAKE3;

/// An empty UnixFS directory: the smallest real dag-pb node.
const EMPTY_DIR_PB: &[u8] = b"\x0a\x04\x08\x02\x18\x00";

fn sample_blocks() -> Vec<Block> {
    vec![
        Block::new(V0, DAG_PB, EMPTY_DIR_PB),
        Block::new(V1_SHA2, RAW, &b"hello"[..]),
        Block::new(V1_BLAKE3, RAW, &b"world"[..]),
        Block::new(V1_BLAKE3, DAG_PB, EMPTY_DIR_PB),
        Block::new(V1_SHA2, RAW, &b""[..]),
        Block::new(V1_SHA2, RAW, vec![7u8; 300_000]),
    ]
}

fn write_car(roots: &[Cid], blocks: &[Block]) -> Vec<u8> {
    let mut w = CarWriter::new(Vec::new(), roots).unwrap();
    for b in blocks {
        w.write_block(b).unwrap();
    }
    let offset = w.offset();
    let out = w.finish().unwrap();
    assert_eq!(offset, out.len() as u64);
    out
}

fn read_car(bytes: &[u8]) -> Result<(Vec<Cid>, Vec<Block>), CarError> {
    let mut r = CarReader::new(bytes)?;
    let roots = r.roots().to_vec();
    let mut blocks = Vec::new();
    while let Some(b) = r.next_block()? {
        blocks.push(b);
    }
    Ok((roots, blocks))
}

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

/// Byte offsets where each section starts, and the end of the CAR.
fn section_starts(roots: &[Cid], blocks: &[Block]) -> Vec<usize> {
    let mut starts = vec![write_car(roots, &[]).len()];
    for i in 0..blocks.len() {
        starts.push(write_car(roots, &blocks[..=i]).len());
    }
    starts
}

#[test]
fn round_trips_mixed_blocks_with_one_and_two_roots() {
    let blocks = sample_blocks();
    for roots in [
        vec![*blocks[0].cid()],
        vec![*blocks[0].cid(), *blocks[2].cid()],
    ] {
        let car = write_car(&roots, &blocks);
        let (got_roots, got_blocks) = read_car(&car).unwrap();
        assert_eq!(got_roots, roots);
        assert_eq!(got_blocks, blocks);
    }
    assert_eq!(blocks[0].cid().version(), cid::Version::V0);
}

#[test]
fn empty_roots_and_no_blocks_round_trip() {
    let car = write_car(&[], &[]);
    assert_eq!(read_car(&car).unwrap(), (vec![], vec![]));
}

#[test]
fn header_matches_the_spec_byte_for_byte() {
    // sha2-256 of the empty string.
    let digest = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
    let root = Block::new(V1_SHA2, RAW, &b""[..]);
    assert_eq!(
        root.cid().to_string(),
        "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku"
    );
    // varint(58), map(2), text(5) "roots", array(1), tag(42),
    // bytes(37) [0x00, CIDv1: 0x01 raw=0x55 sha2-256=0x12 len=0x20 digest],
    // text(7) "version", uint(1).
    let expected = hex(&format!(
        "3a a2 65 726f6f7473 81 d8 2a 58 25 00 01 55 12 20 {digest} 67 76657273696f6e 01"
    )
    .replace(' ', ""));
    assert_eq!(write_car(&[*root.cid()], &[]), expected);

    // The same for a CIDv0 root (the empty UnixFS directory,
    // QmbFMke1...): bytes(35) [0x00, bare multihash 0x12 0x20 digest].
    let digest = "bfccda787baba32b59c78450ac3d20b633360b43992c77289f9ed46d843561e6";
    let root = Block::new(V0, DAG_PB, EMPTY_DIR_PB);
    assert_eq!(
        root.cid().to_string(),
        "QmbFMke1KXqnYyBBWxB74N4c5SBnJMVAiMNRcGu6x1AwQH"
    );
    let expected = hex(&format!(
        "38 a2 65 726f6f7473 81 d8 2a 58 23 00 12 20 {digest} 67 76657273696f6e 01"
    )
    .replace(' ', ""));
    assert_eq!(write_car(&[*root.cid()], &[]), expected);
}

#[test]
fn corrupt_block_is_rejected_with_hash_mismatch() {
    let blocks = sample_blocks();
    let mut car = write_car(&[*blocks[1].cid()], &blocks[1..2]);
    let last = car.len() - 1;
    car[last] ^= 1;
    let header_len = write_car(&[*blocks[1].cid()], &[]).len() as u64;
    match read_car(&car) {
        Err(CarError::Block {
            offset,
            source: BlockError::HashMismatch { cid },
        }) => {
            assert_eq!(cid, *blocks[1].cid());
            assert_eq!(offset, header_len);
        }
        other => panic!("expected a hash mismatch, got {other:?}"),
    }
}

#[test]
fn every_truncation_is_an_error_unless_at_a_section_boundary() {
    let blocks = sample_blocks()[..5].to_vec();
    let roots = [*blocks[0].cid()];
    let car = write_car(&roots, &blocks);
    let starts = section_starts(&roots, &blocks);
    for cut in 0..car.len() {
        let result = read_car(&car[..cut]);
        match starts.iter().position(|&s| s == cut) {
            Some(n) => assert_eq!(result.unwrap().1, blocks[..n], "cut at {cut}"),
            None => assert!(
                matches!(result, Err(CarError::Truncated { offset, .. }) if offset == cut as u64),
                "cut at {cut}: {result:?}"
            ),
        }
    }
}

#[test]
fn huge_lengths_are_refused_before_allocating() {
    // Header length u64::MAX.
    let mut car = Vec::new();
    put_varint(&mut car, u64::MAX);
    assert!(matches!(
        read_car(&car),
        Err(CarError::BadHeader { offset: 0, .. })
    ));
    // Header length just over the limit, with no bytes behind it.
    let mut car = Vec::new();
    put_varint(&mut car, MAX_HEADER_BYTES as u64 + 1);
    assert!(matches!(read_car(&car), Err(CarError::BadHeader { .. })));
    // A header length within the limit but no header: truncated, and
    // nothing is reserved for the claimed size.
    let mut car = Vec::new();
    put_varint(&mut car, MAX_HEADER_BYTES as u64);
    assert!(matches!(read_car(&car), Err(CarError::Truncated { .. })));

    // Section lengths: 2^62, and just over the section limit.
    for len in [1u64 << 62, MAX_SECTION_BYTES as u64 + 1] {
        let mut car = write_car(&[], &[]);
        let at = car.len() as u64;
        put_varint(&mut car, len);
        match read_car(&car) {
            Err(CarError::BadSection { offset, .. }) => assert_eq!(offset, at),
            other => panic!("expected a bad section, got {other:?}"),
        }
    }
}

#[test]
fn malformed_varints_are_refused() {
    // 64 bits overflowed: ten continuation bytes, then one more.
    let car = [0xffu8; 11];
    assert!(matches!(read_car(&car), Err(CarError::BadHeader { .. })));
    let mut car = vec![0xffu8; 9];
    car.push(0x02);
    assert!(matches!(read_car(&car), Err(CarError::BadHeader { .. })));
    // Non-minimal: 0x80 0x00 means 0 in two bytes.
    let mut car = write_car(&[], &[]);
    car.extend_from_slice(&[0x85, 0x00]);
    assert!(matches!(read_car(&car), Err(CarError::BadSection { .. })));

    assert_eq!(decode_varint(&[0x80, 0x01]), Ok(128));
    let mut max = Vec::new();
    put_varint(&mut max, u64::MAX);
    assert_eq!(max.len(), 10);
    assert_eq!(decode_varint(&max), Ok(u64::MAX));
    let mut over = vec![0xffu8; 9];
    over.push(0x02);
    assert_eq!(
        decode_varint(&over),
        Err(unsigned_varint::decode::Error::Overflow)
    );
}

#[test]
fn zero_length_section_is_an_error() {
    let mut car = write_car(&[], &[]);
    car.push(0);
    assert!(matches!(read_car(&car), Err(CarError::BadSection { .. })));
}

#[test]
fn header_problems_are_reported() {
    let framed = |body: &[u8]| {
        let mut car = Vec::new();
        put_varint(&mut car, body.len() as u64);
        car.extend_from_slice(body);
        car
    };
    let root = Block::new(V1_BLAKE3, RAW, &b"r"[..]);
    let good = CarHeader::encode(&[*root.cid()]).unwrap();

    // Keys in the other order, plus an unknown key, are accepted.
    let mut body = vec![0xa3];
    body.extend_from_slice(&hex("6776657273696f6e01"));
    body.extend_from_slice(&hex("63666f6f")); // "foo"
    body.extend_from_slice(&hex("82a1616101f6")); // [{"a": 1}, null]
    body.extend_from_slice(&good[1..good.len() - 9]); // "roots": [...]
    assert_eq!(read_car(&framed(&body)).unwrap().0, vec![*root.cid()]);

    // Version 3.
    let mut body = good.clone();
    *body.last_mut().unwrap() = 0x03;
    assert!(matches!(
        read_car(&framed(&body)),
        Err(CarError::UnsupportedVersion { version: 3, .. })
    ));
    // No roots.
    assert!(matches!(
        read_car(&framed(&hex("a16776657273696f6e01"))),
        Err(CarError::BadHeader { .. })
    ));
    // Not a map, trailing bytes, indefinite length, missing 0x00 prefix.
    for body in [
        hex("8101"),
        [good.clone(), vec![0]].concat(),
        hex("bf6776657273696f6e01ff"),
    ] {
        assert!(
            matches!(read_car(&framed(&body)), Err(CarError::BadHeader { .. })),
            "{body:02x?}"
        );
    }
    let mut body = good.clone();
    let prefix_at = body.iter().position(|&b| b == 0x00).unwrap();
    body[prefix_at] = 0x01;
    assert!(matches!(
        read_car(&framed(&body)),
        Err(CarError::BadHeader { .. })
    ));
    // Roots count far beyond the bytes present.
    let body = hex("a265726f6f74739bffffffffffffffff6776657273696f6e01");
    assert!(matches!(
        read_car(&framed(&body)),
        Err(CarError::BadHeader { .. })
    ));
    // Deep nesting in an unknown key stops at the depth limit.
    let mut body = hex("a2636b6579");
    body.extend(std::iter::repeat_n(0x81, 1000));
    body.push(0x00);
    body.extend_from_slice(&hex("6776657273696f6e01"));
    assert!(matches!(
        read_car(&framed(&body)),
        Err(CarError::BadHeader { .. })
    ));
}

#[test]
fn root_cids_are_read_exactly() {
    let root = Block::new(V1_SHA2, RAW, &b""[..]);
    let cid = root.cid().to_bytes();
    // {"roots": [CID(0x00 cid extra)], "version": 1} with one stray byte.
    let mut body = hex("a265726f6f747381d82a58");
    body.push(cid.len() as u8 + 2);
    body.push(0x00);
    body.extend_from_slice(&cid);
    body.push(0xff);
    body.extend_from_slice(&hex("6776657273696f6e01"));
    let mut car = Vec::new();
    put_varint(&mut car, body.len() as u64);
    car.extend_from_slice(&body);
    assert!(matches!(
        read_car(&car),
        Err(CarError::BadHeader {
            offset: 1,
            problem: HeaderProblem::Cbor(_)
        })
    ));
    // Without the stray byte the same header reads.
    body.remove(body.len() - 10);
    body[11] -= 1;
    let mut car = Vec::new();
    put_varint(&mut car, body.len() as u64);
    car.extend_from_slice(&body);
    assert_eq!(read_car(&car).unwrap().0, vec![*root.cid()]);
}

/// Wraps a CARv1 in a CARv2 with `pad` bytes before the payload and an
/// unread tail standing in for the index.
fn wrap_v2(v1: &[u8], pad: usize, data_size: u64) -> Vec<u8> {
    let data_offset = (CARV2_PRAGMA.len() + CARV2_HEADER_BYTES + pad) as u64;
    let mut car = CARV2_PRAGMA.to_vec();
    car.extend_from_slice(&[0u8; 16]);
    car.extend_from_slice(&data_offset.to_le_bytes());
    car.extend_from_slice(&data_size.to_le_bytes());
    car.extend_from_slice(&(data_offset + v1.len() as u64).to_le_bytes());
    car.extend(std::iter::repeat_n(0u8, pad));
    car.extend_from_slice(v1);
    car.extend_from_slice(b"\x80\x08 index bytes that are not a CARv1 section");
    car
}

#[test]
fn reads_the_payload_of_a_carv2() {
    let blocks = sample_blocks();
    let roots = [*blocks[1].cid()];
    let v1 = write_car(&roots, &blocks);
    for pad in [0, 13] {
        let car = wrap_v2(&v1, pad, v1.len() as u64);
        let mut r = CarReader::new(&car[..]).unwrap();
        assert_eq!(r.version(), 2);
        assert_eq!(r.roots(), roots);
        let got: Result<Vec<_>, _> = r.by_ref().collect();
        assert_eq!(got.unwrap(), blocks);
    }
    // A data size that ends inside a section.
    let car = wrap_v2(&v1, 0, v1.len() as u64 - 1);
    assert!(matches!(read_car(&car), Err(CarError::Truncated { .. })));
    // A data offset pointing back into the prefix.
    let mut car = wrap_v2(&v1, 0, v1.len() as u64);
    car[27..35].copy_from_slice(&3u64.to_le_bytes());
    assert!(matches!(read_car(&car), Err(CarError::BadHeader { .. })));
    // A CARv2 inside a CARv2.
    let car = wrap_v2(&wrap_v2(&v1, 0, v1.len() as u64), 0, 1000);
    assert!(matches!(
        read_car(&car),
        Err(CarError::UnsupportedVersion { version: 2, .. })
    ));
    // Only the pragma.
    assert!(matches!(
        read_car(&CARV2_PRAGMA),
        Err(CarError::Truncated { .. })
    ));
}

#[test]
fn iteration_stops_after_the_first_error() {
    let blocks = sample_blocks();
    let mut car = write_car(&[], &blocks[1..3]);
    car.push(0x05);
    let mut r = CarReader::new(&car[..]).unwrap();
    let items: Vec<_> = r.by_ref().collect();
    assert_eq!(items.len(), 3);
    assert!(items[2].is_err());
    assert!(r.next_block().is_err());
    assert!(r.next().is_none());
}

#[test]
fn writer_refuses_blocks_over_the_limit() {
    let big = Block::new(V1_BLAKE3, RAW, vec![0u8; MAX_BLOCK_BYTES + 1]);
    let mut w = CarWriter::new(Vec::new(), &[]).unwrap();
    assert!(matches!(
        w.write_block(&big),
        Err(CarError::Block {
            source: BlockError::TooLarge { .. },
            ..
        })
    ));
    let max = Block::new(V1_BLAKE3, RAW, vec![0u8; MAX_BLOCK_BYTES]);
    w.write_block(&max).unwrap();
    let car = w.finish().unwrap();
    assert_eq!(read_car(&car).unwrap().1, vec![max]);
}

#[test]
fn unsupported_hash_is_a_block_error() {
    // CIDv1 raw with an identity multihash of "hi".
    let mut car = write_car(&[], &[]);
    let section = hex("01550002 6869".replace(' ', "").as_str());
    put_varint(&mut car, section.len() as u64);
    car.extend_from_slice(&section);
    assert!(matches!(
        read_car(&car),
        Err(CarError::Block {
            source: BlockError::UnsupportedHash { .. },
            ..
        })
    ));
}

fn arb_block() -> impl Strategy<Value = Block> {
    (
        prop::collection::vec(any::<u8>(), 0..2048),
        prop_oneof![Just(V0), Just(V1_SHA2), Just(V1_BLAKE3)],
        prop_oneof![Just(RAW), Just(DAG_PB), Just(0x71u64)],
    )
        .prop_map(|(data, format, codec)| Block::new(format, codec, data))
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let _ = read_car(&bytes);
    }

    #[test]
    fn arbitrary_sections_after_a_good_header_never_panic(
        tail in prop::collection::vec(any::<u8>(), 0..512),
    ) {
        let mut car = write_car(&[], &[]);
        car.extend_from_slice(&tail);
        let _ = read_car(&car);
        let _ = read_car(&wrap_v2(&car, 0, car.len() as u64));
    }

    #[test]
    fn damaged_cars_never_panic(
        blocks in prop::collection::vec(arb_block(), 1..4),
        flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
        cut in any::<prop::sample::Index>(),
    ) {
        let mut car = write_car(&[*blocks[0].cid()], &blocks);
        for (at, byte) in flips {
            let i = at.index(car.len());
            car[i] = byte;
        }
        let _ = read_car(&car);
        let _ = read_car(&car[..cut.index(car.len())]);
    }

    #[test]
    fn arbitrary_block_lists_round_trip(
        blocks in prop::collection::vec(arb_block(), 0..8),
        root_picks in prop::collection::vec(any::<prop::sample::Index>(), 0..3),
    ) {
        let roots: Vec<Cid> = if blocks.is_empty() {
            vec![]
        } else {
            root_picks.iter().map(|i| *blocks[i.index(blocks.len())].cid()).collect()
        };
        let car = write_car(&roots, &blocks);
        let (got_roots, got_blocks) = read_car(&car).unwrap();
        prop_assert_eq!(got_roots, roots);
        prop_assert_eq!(got_blocks, blocks);
    }
}

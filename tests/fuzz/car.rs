//! CAR files (CARv1, and the CARv1 payload of a CARv2).

use crate::cid::any_cid;
use crate::harness::{any_bytes, check, check_alloc, mutate, mutations, peak_alloc, Failure};
use cairn::block::{verify, Block, Cid, CidFormat, DAG_PB, RAW};
use cairn::dag::car::{CarError, CarReader, CarWriter, CARV2_PRAGMA};
use proptest::collection::vec;
use proptest::prelude::*;

/// Blocks in every format cairn writes.
fn any_block() -> impl Strategy<Value = Block> {
    let format = prop::sample::select(vec![
        (CidFormat::V0, DAG_PB),
        (CidFormat::V1_SHA2_256, RAW),
        (CidFormat::V1_BLAKE3, RAW),
        (CidFormat::V1_BLAKE3, DAG_PB),
    ]);
    (format, any_bytes(600)).prop_map(|((format, codec), data)| Block::new(format, codec, data))
}

/// A CAR's roots and blocks.
type Car = (Vec<Cid>, Vec<Block>);

fn any_car() -> impl Strategy<Value = Car> {
    (vec(any_cid(), 0..4), vec(any_block(), 0..6))
}

/// The CARv1 of `roots` and `blocks`.
fn write_car((roots, blocks): &Car) -> Vec<u8> {
    let mut w = CarWriter::new(Vec::new(), roots).expect("a few roots fit");
    for b in blocks {
        w.write_block(b).expect("small blocks fit");
    }
    w.finish().expect("writing to a Vec")
}

/// `v1` as the payload of a CARv2: `padding` bytes before it and `index`
/// bytes after it.
fn carv2(v1: &[u8], padding: usize, index: &[u8]) -> Vec<u8> {
    let data_offset = (CARV2_PRAGMA.len() + 40 + padding) as u64;
    let mut out = CARV2_PRAGMA.to_vec();
    out.extend_from_slice(&[0; 16]);
    out.extend_from_slice(&data_offset.to_le_bytes());
    out.extend_from_slice(&(v1.len() as u64).to_le_bytes());
    let index_offset = if index.is_empty() {
        0
    } else {
        data_offset + v1.len() as u64
    };
    out.extend_from_slice(&index_offset.to_le_bytes());
    out.resize(out.len() + padding, 0);
    out.extend_from_slice(v1);
    out.extend_from_slice(index);
    out
}

/// Reads a whole CAR: roots and blocks, or the first error.
fn read_car(bytes: &[u8]) -> Result<Car, CarError> {
    let mut r = CarReader::new(bytes)?;
    let roots = r.roots().to_vec();
    let blocks = r.by_ref().collect::<Result<Vec<_>, _>>()?;
    Ok((roots, blocks))
}

/// CAR input: arbitrary (bare or behind a CARv2 prefix), or a valid CARv1
/// or CARv2 mutated.
fn car_input() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        any_bytes(512),
        any_bytes(300).prop_map(|b| [&CARV2_PRAGMA[..], &b].concat()),
        (any_car(), mutations()).prop_map(|(car, m)| mutate(write_car(&car), &m)),
        (any_car(), 0usize..16, any_bytes(16), mutations())
            .prop_map(|(car, pad, index, m)| mutate(carv2(&write_car(&car), pad, &index), &m)),
    ]
}

/// Arbitrary and mutated CARs: no panic, bounded allocation, and every
/// block read is the one its CID names.
pub fn car_bytes(cases: u32) -> Result<(), Failure> {
    check("car_bytes", cases, car_input(), |bytes| {
        let (read, peak) = peak_alloc(|| read_car(&bytes));
        check_alloc("CarReader", bytes.len(), peak)?;
        if let Ok((_, blocks)) = read {
            for b in blocks {
                prop_assert!(verify(b.cid(), b.data()).is_ok());
            }
        }
        Ok(())
    })
}

/// Every CAR written reads back as its roots and blocks, as a CARv1 and as
/// the payload of a CARv2.
pub fn car_round_trip(cases: u32) -> Result<(), Failure> {
    let input = (any_car(), 0usize..64, any_bytes(32));
    check("car_round_trip", cases, input, |(car, pad, index)| {
        let v1 = write_car(&car);
        let read = read_car(&v1).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(&read, &car);
        let v2 = carv2(&v1, pad, &index);
        let read = read_car(&v2).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(&read, &car);
        Ok(())
    })
}

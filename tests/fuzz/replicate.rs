//! The replication protocol's messages: framed JSON requests and responses,
//! and the records they carry.

use crate::cid::any_cid;
use crate::harness::{any_bytes, check, check_alloc, mutate, mutations, peak_alloc, Failure};
use cairn::block::Multihash;
use cairn::replicate::protocol::{read_message, write_message, Request, Response};
use cairn::replicate::record::Record;
use libp2p::PeerId;
use proptest::collection::{btree_set, vec};
use proptest::prelude::*;

/// A peer ID (a SHA2-256 multihash of arbitrary bytes).
fn any_peer() -> impl Strategy<Value = PeerId> {
    any::<[u8; 32]>().prop_map(|d| {
        let mh = Multihash::wrap(0x12, &d).expect("32 bytes fit");
        PeerId::from_multihash(mh).expect("a SHA2-256 multihash")
    })
}

/// Any record a node could send.
fn any_record() -> impl Strategy<Value = Record> {
    let holders = btree_set(any_peer(), 0..5);
    let factors = (1u8.., any::<u8>()).prop_map(|(f, m)| (f, f.saturating_add(m)));
    (
        any_cid(),
        factors,
        any::<u64>(),
        any::<bool>(),
        any::<u64>(),
        holders,
    )
        .prop_map(
            |(root, (factor, max), version, removed, size, holders)| Record {
                root,
                factor,
                max,
                version,
                removed,
                size,
                holders,
            },
        )
}

fn any_request() -> impl Strategy<Value = Request> {
    prop_oneof![
        (any_record(), vec(any_cid(), 0..5))
            .prop_map(|(record, sample)| Request::Probe { record, sample }),
        any_record().prop_map(|record| Request::Pin { record }),
        any_record().prop_map(|record| Request::Unpin { record }),
    ]
}

fn any_response() -> impl Strategy<Value = Response> {
    let flags = any::<[bool; 4]>();
    (flags, ".{0,40}", proptest::option::of(any_record())).prop_map(
        |([accepted, has, pinned, pinning], reason, record)| Response {
            accepted,
            has,
            pinned,
            pinning,
            reason,
            record,
        },
    )
}

/// `message` as a stream carries it: a 4-byte length, then JSON.
fn framed<M: serde::Serialize>(message: &M) -> Vec<u8> {
    let mut out = Vec::new();
    futures::executor::block_on(write_message(&mut out, message)).expect("small");
    out
}

/// Reads one framed message of type `M` off `bytes`.
fn read<M: serde::de::DeserializeOwned>(bytes: &[u8]) -> Option<M> {
    let mut stream = futures::io::Cursor::new(bytes);
    futures::executor::block_on(read_message(&mut stream)).ok()
}

/// Stream input: arbitrary bytes, arbitrary JSON behind a true length, and
/// valid requests, responses and records mutated (the length prefix too).
fn message_input() -> impl Strategy<Value = Vec<u8>> {
    let body = |b: Vec<u8>| [&(b.len() as u32).to_be_bytes()[..], &b].concat();
    prop_oneof![
        any_bytes(512),
        any_bytes(512).prop_map(body),
        (any_request(), mutations()).prop_map(|(m, muts)| mutate(framed(&m), &muts)),
        (any_response(), mutations()).prop_map(|(m, muts)| mutate(framed(&m), &muts)),
        (any_record(), mutations()).prop_map(move |(r, muts)| body(mutate(r.encode(), &muts))),
    ]
}

/// Arbitrary and mutated messages: no panic, bounded allocation, and what
/// is read writes back as bytes that read as the same.
pub fn replicate_messages(cases: u32) -> Result<(), Failure> {
    check("replicate_messages", cases, message_input(), |bytes| {
        let (req, peak) = peak_alloc(|| read::<Request>(&bytes));
        check_alloc("read_message::<Request>", bytes.len(), peak)?;
        if let Some(req) = req {
            prop_assert_eq!(read::<Request>(&framed(&req)), Some(req));
        }
        let (resp, peak) = peak_alloc(|| read::<Response>(&bytes));
        check_alloc("read_message::<Response>", bytes.len(), peak)?;
        if let Some(resp) = resp {
            prop_assert_eq!(read::<Response>(&framed(&resp)), Some(resp));
        }
        let json = bytes.get(4..).unwrap_or_default();
        let (record, peak) = peak_alloc(|| Record::decode(json).ok());
        check_alloc("Record::decode", json.len(), peak)?;
        if let Some(record) = record {
            prop_assert_eq!(Record::decode(&record.encode()).ok(), Some(record));
        }
        Ok(())
    })
}

/// Every request, response and record reads back as itself.
pub fn replicate_round_trip(cases: u32) -> Result<(), Failure> {
    let input = (any_request(), any_response());
    check("replicate_round_trip", cases, input, |(req, resp)| {
        prop_assert_eq!(read::<Request>(&framed(&req)), Some(req.clone()));
        prop_assert_eq!(read::<Response>(&framed(&resp)), Some(resp));
        let record = req.record().clone();
        prop_assert_eq!(Record::decode(&record.encode()).ok(), Some(record));
        Ok(())
    })
}

//! Bitswap messages (every version).

use crate::cid::any_cid;
use crate::harness::{any_bytes, check, check_alloc, mutate, mutations, peak_alloc, Failure};
use cairn::block::{Block, CidFormat, DAG_PB, RAW};
use cairn::net::bitswap::message::{
    frame, frame_segments, Message, Presence, Version, WantEntry, WantType,
};
use proptest::collection::vec;
use proptest::prelude::*;

fn any_block() -> impl Strategy<Value = Block> {
    let format = prop::sample::select(vec![
        (CidFormat::V0, DAG_PB),
        (CidFormat::V1_SHA2_256, RAW),
        (CidFormat::V1_BLAKE3, RAW),
    ]);
    (format, any_bytes(300)).prop_map(|((format, codec), data)| Block::new(format, codec, data))
}

/// Any message cairn could send.
fn any_message() -> impl Strategy<Value = Message> {
    let want_type = prop_oneof![Just(WantType::Block), Just(WantType::Have)];
    let entry = (
        any_cid(),
        any::<i32>(),
        any::<bool>(),
        want_type,
        any::<bool>(),
    )
        .prop_map(
            |(cid, priority, cancel, want_type, send_dont_have)| WantEntry {
                cid,
                priority,
                cancel,
                want_type,
                send_dont_have,
            },
        );
    let presence = prop_oneof![Just(Presence::Have), Just(Presence::DontHave)];
    (
        vec(entry, 0..5),
        any::<bool>(),
        vec(any_block(), 0..4),
        vec((any_cid(), presence), 0..4),
        any::<i32>(),
    )
        .prop_map(
            |(wantlist, full, blocks, presences, pending_bytes)| Message {
                wantlist,
                full,
                blocks,
                presences,
                pending_bytes,
            },
        )
}

/// Message input: arbitrary, or a valid message's mutated.
fn message_input() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        any_bytes(512),
        (any_message(), mutations()).prop_map(|(m, muts)| mutate(m.encode(), &muts)),
        (any_message(), mutations())
            .prop_map(|(m, muts)| mutate(m.encode_for(Version::V1_0), &muts)),
    ]
}

/// Arbitrary and mutated messages: no panic, bounded allocation, and what
/// decodes re-encodes to bytes that decode to the same.
pub fn bitswap_bytes(cases: u32) -> Result<(), Failure> {
    check("bitswap_bytes", cases, message_input(), |bytes| {
        let (msg, peak) = peak_alloc(|| Message::decode(&bytes).ok());
        check_alloc("Message::decode", bytes.len(), peak)?;
        if let Some(msg) = msg {
            prop_assert_eq!(Message::decode(&msg.encode()).ok(), Some(msg));
        }
        Ok(())
    })
}

/// Every message decodes from its encoding as itself, and a frame written
/// in segments holds the message the frame written whole holds.
pub fn bitswap_round_trip(cases: u32) -> Result<(), Failure> {
    check("bitswap_round_trip", cases, any_message(), |msg| {
        prop_assert_eq!(Message::decode(&msg.encode()).ok(), Some(msg.clone()));
        for version in [Version::V1_0, Version::V1_2] {
            let whole = frame(&msg, version).map_err(|e| TestCaseError::fail(e.to_string()))?;
            let parts =
                frame_segments(&msg, version).map_err(|e| TestCaseError::fail(e.to_string()))?;
            let joined = parts.segments.concat();
            prop_assert_eq!(joined.len(), whole.len());
            prop_assert_eq!(joined.len(), parts.len);
            // The same message (the blocks written last): the same bytes
            // after the length prefix once decoded.
            let body = |f: &[u8]| {
                let n = f.iter().position(|b| b & 0x80 == 0).map_or(0, |i| i + 1);
                Message::decode(&f[n..]).ok()
            };
            prop_assert_eq!(body(&joined), body(&whole));
        }
        Ok(())
    })
}

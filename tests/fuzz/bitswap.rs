//! Bitswap messages (every version).

use crate::cid::any_cid;
use crate::harness::{any_bytes, check, check_alloc, mutate, mutations, peak_alloc, Failure};
use cairn::block::{Block, CidFormat, DAG_PB, RAW};
use cairn::net::bitswap::inbound::{read_frame, FramePool};
use cairn::net::bitswap::message::{
    frame, frame_segments, Message, Presence, Version, WantEntry, WantType,
};
use libp2p::PeerId;
use proptest::collection::vec;
use proptest::prelude::*;
use std::sync::Arc;

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

/// Reads frames off `bytes` as an inbound stream does: the frames read
/// (their messages, if they decode) until a clean end, or `None` at the
/// first error.
fn read_frames(bytes: &[u8], peer: PeerId) -> Option<Vec<Option<Message>>> {
    let pool = Arc::new(FramePool::default());
    let mut stream = futures::io::Cursor::new(bytes);
    let mut out = Vec::new();
    loop {
        match futures::executor::block_on(read_frame(peer, &mut stream, &pool)) {
            Ok(Some(frame)) => out.push(Message::decode_bytes(&frame).ok()),
            Ok(None) => return Some(out),
            Err(_) => return None,
        }
    }
}

/// Frames of messages, as a stream carries them.
fn framed(msgs: &[Message]) -> Vec<u8> {
    let frames = msgs.iter().map(|m| frame(m, Version::V1_2).expect("small"));
    frames.collect::<Vec<_>>().concat()
}

/// Inbound streams: arbitrary bytes and mutated frames (lengths inflated
/// past what follows) never panic or take memory the bytes did not bring;
/// valid frames read back as their messages.
pub fn bitswap_frames(cases: u32) -> Result<(), Failure> {
    let input = prop_oneof![
        any_bytes(512).prop_map(|b| (b, None)),
        vec(any_message(), 0..4).prop_map(|m| (framed(&m), Some(m))),
        (vec(any_message(), 1..4), mutations())
            .prop_map(|(m, muts)| (mutate(framed(&m), &muts), None)),
    ];
    check("bitswap_frames", cases, input, |(bytes, sent)| {
        let peer = PeerId::random();
        let (read, peak) = peak_alloc(|| read_frames(&bytes, peer));
        check_alloc("inbound::read_frame", bytes.len(), peak)?;
        if let Some(sent) = sent {
            prop_assert_eq!(read, Some(sent.into_iter().map(Some).collect()));
        }
        Ok(())
    })
}

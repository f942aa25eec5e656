//! The fuzz targets, by name: what `tests/fuzz` runs at a modest case count
//! and `benches/fuzz.rs` at scale.

use crate::harness::Failure;
use crate::{bitswap, car, cid, ipns, multipart, pb, range, replicate};

/// A target: its name and the function that runs it for a number of cases.
pub type Target = (&'static str, fn(u32) -> Result<(), Failure>);

/// Every target, grouped by decoder.
pub const TARGETS: &[Target] = &[
    ("cid_bytes", cid::cid_bytes),
    ("cid_text", cid::cid_text),
    ("cid_round_trip", cid::cid_round_trip),
    ("dag_pb_bytes", pb::dag_pb_bytes),
    ("dag_pb_round_trip", pb::dag_pb_round_trip),
    ("car_bytes", car::car_bytes),
    ("car_round_trip", car::car_round_trip),
    ("bitswap_bytes", bitswap::bitswap_bytes),
    ("bitswap_round_trip", bitswap::bitswap_round_trip),
    ("bitswap_frames", bitswap::bitswap_frames),
    ("range_header", range::range_header),
    ("range_span", range::range_span),
    ("replicate_messages", replicate::replicate_messages),
    ("replicate_round_trip", replicate::replicate_round_trip),
    ("multipart_bytes", multipart::multipart_bytes),
    ("multipart_round_trip", multipart::multipart_round_trip),
    ("ipns_bytes", ipns::ipns_bytes),
    ("ipns_round_trip", ipns::ipns_round_trip),
];

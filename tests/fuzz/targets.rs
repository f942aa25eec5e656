//! The fuzz targets, by name: what `tests/fuzz` runs at a modest case count
//! and `benches/fuzz.rs` at scale.

use crate::cid;
use crate::harness::Failure;

/// A target: its name and the function that runs it for a number of cases.
pub type Target = (&'static str, fn(u32) -> Result<(), Failure>);

/// Every target, grouped by decoder.
pub const TARGETS: &[Target] = &[
    ("cid_bytes", cid::cid_bytes),
    ("cid_text", cid::cid_text),
    ("cid_round_trip", cid::cid_round_trip),
];

//! The gateway's `Range` header.

use crate::harness::{any_bytes, check, check_alloc, peak_alloc, Failure};
use cairn::gateway::range::{parse, span, RangeSpec};
use proptest::prelude::*;

/// Range headers: arbitrary text, `bytes=` with range-like characters
/// (signs, spaces, commas), and valid ranges.
fn range_input() -> impl Strategy<Value = String> {
    prop_oneof![
        any_bytes(40).prop_map(|b| String::from_utf8_lossy(&b).into_owned()),
        "[ \t]?bytes=[ \t+\\-0-9,]{0,24}[ \u{3000}]?",
        "bytes=[0-9]{0,21}-[0-9]{0,21}",
        (any::<u64>(), any::<u64>()).prop_map(|(a, b)| format!("bytes={a}-{b}")),
    ]
}

/// File sizes: empty, small and any.
fn any_size() -> impl Strategy<Value = u64> {
    prop_oneof![Just(0u64), 0u64..64, any::<u64>()]
}

/// Arbitrary headers: no panic, nothing allocated; what parses holds only
/// digits and writes back as itself; its span lies inside the file.
pub fn range_header(cases: u32) -> Result<(), Failure> {
    let input = (range_input(), any_size());
    check("range_header", cases, input, |(header, size)| {
        let (range, peak) = peak_alloc(|| parse(&header));
        check_alloc("range::parse", header.len(), peak)?;
        let written = match range {
            RangeSpec::FromTo(a, Some(b)) => Some(format!("bytes={a}-{b}")),
            RangeSpec::FromTo(a, None) => Some(format!("bytes={a}-")),
            RangeSpec::Suffix(n) => Some(format!("bytes=-{n}")),
            RangeSpec::Whole | RangeSpec::Malformed => None,
        };
        if let Some(written) = written {
            let spec = header
                .trim_matches([' ', '\t'])
                .trim_start_matches("bytes=");
            prop_assert!(
                spec.bytes()
                    .all(|b| b.is_ascii_digit() || b"- \t".contains(&b)),
                "{header:?} read as {range:?}"
            );
            prop_assert_eq!(parse(&written), range);
        }
        if let Ok(s) = span(range, size) {
            prop_assert!(s.offset.checked_add(s.len).is_some_and(|end| end <= size));
            prop_assert!(!s.partial || s.len > 0);
        }
        Ok(())
    })
}

/// Any range against any size (not only the parsed ones): a span inside
/// the file or unsatisfiable, never a panic.
pub fn range_span(cases: u32) -> Result<(), Failure> {
    let range = prop_oneof![
        Just(RangeSpec::Whole),
        Just(RangeSpec::Malformed),
        (any::<u64>(), proptest::option::of(any::<u64>()))
            .prop_map(|(a, b)| RangeSpec::FromTo(a, b)),
        any::<u64>().prop_map(RangeSpec::Suffix),
    ];
    check("range_span", cases, (range, any_size()), |(range, size)| {
        if let Ok(s) = span(range, size) {
            prop_assert!(s.offset.checked_add(s.len).is_some_and(|end| end <= size));
            if let RangeSpec::FromTo(a, Some(b)) = range {
                prop_assert_eq!(s.offset, a);
                prop_assert_eq!(s.len, b.min(size - 1) - a + 1);
            }
        }
        Ok(())
    })
}

//! A request's `Range` header (RFC 9110 §14.1.2): the one `bytes=` range
//! the gateway serves, and the span of a file it names.
//!
//! Positions are ASCII digits only (`+0` or `-0` as a first position is
//! malformed, not zero). What the RFC lets a server ignore is ignored, the
//! whole file served with 200: a malformed or invalid `Range` (§14.2),
//! several ranges, a header that is not visible ASCII, and any range when
//! `If-Range` does not match the current `ETag` (§13.1.5).

use super::GatewayError;
use axum::http::{header, HeaderMap};

/// A request's `Range`, as far as the gateway serves it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RangeSpec {
    /// No range (or several, served whole).
    Whole,
    /// First and last byte (inclusive; open-ended without a last).
    FromTo(u64, Option<u64>),
    /// The last this many bytes.
    Suffix(u64),
    /// Not a `bytes=` range we can read (ignored: served whole).
    Malformed,
}

/// The range of `headers`' `Range` ([`RangeSpec::Whole`] without one).
pub fn from_headers(headers: &HeaderMap) -> RangeSpec {
    match headers.get(header::RANGE).map(|v| v.to_str()) {
        Some(Ok(v)) => parse(v),
        _ => RangeSpec::Whole,
    }
}

/// Whether a range may be served for a response whose `ETag` is `etag`:
/// without `If-Range`, or when it names that strong tag. A weak tag or a
/// date (the gateway sends no `Last-Modified`) never matches.
pub fn if_range_holds(headers: &HeaderMap, etag: &str) -> bool {
    match headers.get(header::IF_RANGE) {
        None => true,
        Some(v) => v.to_str().is_ok_and(|v| trim_ows(v) == etag),
    }
}

/// Optional whitespace (RFC 9110 §5.6.3): spaces and tabs.
fn trim_ows(s: &str) -> &str {
    s.trim_matches([' ', '\t'])
}

/// A byte position: ASCII digits only, fitting a `u64`.
fn position(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// Parses a `Range` header's value.
pub fn parse(value: &str) -> RangeSpec {
    // Range unit names are case-insensitive (RFC 9110 §14.1).
    let Some(spec) = trim_ows(value)
        .split_once('=')
        .and_then(|(unit, spec)| unit.eq_ignore_ascii_case("bytes").then_some(spec))
    else {
        return RangeSpec::Malformed;
    };
    if spec.contains(',') {
        return RangeSpec::Whole;
    }
    let Some((a, b)) = spec.split_once('-') else {
        return RangeSpec::Malformed;
    };
    let (a, b) = (trim_ows(a), trim_ows(b));
    if a.is_empty() {
        return position(b).map_or(RangeSpec::Malformed, RangeSpec::Suffix);
    }
    let Some(first) = position(a) else {
        return RangeSpec::Malformed;
    };
    if b.is_empty() {
        return RangeSpec::FromTo(first, None);
    }
    match position(b) {
        Some(last) if last >= first => RangeSpec::FromTo(first, Some(last)),
        _ => RangeSpec::Malformed,
    }
}

/// The part of a file a range asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Span {
    /// The first byte.
    pub offset: u64,
    /// Bytes from `offset` (within the file).
    pub len: u64,
    /// Less than the whole file was asked for (a 206).
    pub partial: bool,
}

/// The span `range` asks of a file of `size` bytes: the whole file when
/// there is no range or it is malformed; unsatisfiable (416) when it starts
/// past the end or is empty.
pub fn span(range: RangeSpec, size: u64) -> Result<Span, GatewayError> {
    let unsatisfiable = GatewayError::Unsatisfiable { size };
    let partial = |offset, len| Span {
        offset,
        len,
        partial: true,
    };
    match range {
        RangeSpec::Whole | RangeSpec::Malformed => Ok(Span {
            offset: 0,
            len: size,
            partial: false,
        }),
        RangeSpec::FromTo(first, last) => {
            if first >= size || last.is_some_and(|l| l < first) {
                return Err(unsatisfiable);
            }
            let last = last.unwrap_or(size - 1).min(size - 1);
            Ok(partial(first, last - first + 1))
        }
        RangeSpec::Suffix(n) => {
            if n == 0 || size == 0 {
                return Err(unsatisfiable);
            }
            let n = n.min(size);
            Ok(partial(size - n, n))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_parse_and_sign_characters_are_malformed() {
        assert_eq!(parse("bytes=0-9"), RangeSpec::FromTo(0, Some(9)));
        assert_eq!(parse(" bytes=5- "), RangeSpec::FromTo(5, None));
        assert_eq!(parse("bytes=-10"), RangeSpec::Suffix(10));
        assert_eq!(parse("Bytes=0-9"), RangeSpec::FromTo(0, Some(9)));
        assert_eq!(parse("BYTES=-10"), RangeSpec::Suffix(10));
        assert_eq!(parse("bytes=0-1,4-5"), RangeSpec::Whole);
        for bad in [
            "bytes=+0-+9",
            "bytes=+0-9",
            "bytes=0-+9",
            "bytes=-+10",
            "bytes=--10",
            "bytes=9-0",
            "bytes=0x1-2",
            "bytes=18446744073709551616-",
            "bytes=",
            "bytes=-",
            "items=0-9",
            "bytes =0-9",
            "bytes0-9",
            "bytes=\u{3000}1-2",
        ] {
            assert_eq!(parse(bad), RangeSpec::Malformed, "{bad}");
        }
    }

    #[test]
    fn spans_stay_inside_the_file() {
        let s = |offset, len| Span {
            offset,
            len,
            partial: true,
        };
        assert_eq!(span(RangeSpec::FromTo(2, Some(5)), 10).unwrap(), s(2, 4));
        assert_eq!(span(RangeSpec::FromTo(2, Some(99)), 10).unwrap(), s(2, 8));
        assert_eq!(span(RangeSpec::FromTo(9, None), 10).unwrap(), s(9, 1));
        assert_eq!(span(RangeSpec::Suffix(99), 10).unwrap(), s(0, 10));
        assert!(span(RangeSpec::FromTo(10, None), 10).is_err());
        assert!(span(RangeSpec::FromTo(5, Some(4)), 10).is_err());
        assert!(span(RangeSpec::Suffix(0), 10).is_err());
        assert!(span(RangeSpec::Suffix(1), 0).is_err());
        assert!(!span(RangeSpec::Whole, 0).unwrap().partial);
        let whole = span(RangeSpec::Malformed, 10).unwrap();
        assert_eq!((whole.offset, whole.len, whole.partial), (0, 10, false));
    }

    #[test]
    fn if_range_needs_the_same_strong_tag() {
        let with = |v: &str| {
            let mut h = HeaderMap::new();
            h.insert(header::IF_RANGE, v.parse().unwrap());
            h
        };
        assert!(if_range_holds(&HeaderMap::new(), "\"c\""));
        assert!(if_range_holds(&with("\"c\""), "\"c\""));
        assert!(if_range_holds(&with(" \"c\" "), "\"c\""));
        assert!(!if_range_holds(&with("\"old\""), "\"c\""));
        assert!(!if_range_holds(&with("W/\"c\""), "\"c\""));
        assert!(!if_range_holds(
            &with("Sun, 06 Nov 1994 08:49:37 GMT"),
            "\"c\""
        ));
    }
}

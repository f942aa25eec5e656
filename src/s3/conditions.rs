//! Conditional requests (RFC 9110 §13 as S3 applies them): GET and HEAD
//! with `If-Match`, `If-None-Match`, `If-Modified-Since` and
//! `If-Unmodified-Since`; CopyObject's `x-amz-copy-source-if-*` on its
//! source; PUT's `If-None-Match: *` and `If-Match`, which the index
//! decides inside the write ([`WriteIf`]).
//!
//! Precedence, as S3 documents it: an `If-Match` that holds overrides a
//! failing `If-Unmodified-Since` (200), and an `If-None-Match` that fails
//! decides even when `If-Modified-Since` holds (304). Dates compare at
//! whole seconds, the precision of `Last-Modified`; a `*-Modified-Since`
//! date later than now is ignored (RFC 9110 §13.1.3).

use s3s::dto::{ETag, ETagCondition, Timestamp};
use s3s::s3_error;

/// The conditions of a read (or of a copy's source).
#[derive(Debug, Default, Clone)]
pub struct ReadIf {
    /// `If-Match`.
    pub if_match: Option<ETagCondition>,
    /// `If-None-Match`.
    pub if_none_match: Option<ETagCondition>,
    /// `If-Modified-Since`.
    pub if_modified_since: Option<Timestamp>,
    /// `If-Unmodified-Since`.
    pub if_unmodified_since: Option<Timestamp>,
}

/// What the conditions of a read say about an object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Serve it.
    Proceed,
    /// 304 Not Modified (a copy answers 412 instead).
    NotModified,
    /// 412 Precondition Failed.
    PreconditionFailed,
}

/// What a PUT (or a copy's destination) requires of the key it writes;
/// the index checks it in the same transaction as the write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriteIf {
    /// Write whatever is there.
    Always,
    /// `If-None-Match: *`: only when the key holds nothing.
    Absent,
    /// `If-Match`: only over an object with this ETag (none: `*`, any).
    Matches(Option<String>),
}

/// Why a write's condition refused it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteRefused {
    /// The condition does not hold (412).
    Precondition,
    /// `If-Match` on a key that holds nothing (404 NoSuchKey, as S3).
    NoSuchKey,
}

impl WriteIf {
    /// Checks the condition against the ETag of the object the key holds
    /// now (none: no object).
    pub fn check(&self, current: Option<&str>) -> Result<(), WriteRefused> {
        match (self, current) {
            (WriteIf::Always, _) | (WriteIf::Absent, None) => Ok(()),
            (WriteIf::Absent, Some(_)) => Err(WriteRefused::Precondition),
            (WriteIf::Matches(_), None) => Err(WriteRefused::NoSuchKey),
            (WriteIf::Matches(None), Some(_)) => Ok(()),
            (WriteIf::Matches(Some(want)), Some(etag)) if want == etag => Ok(()),
            (WriteIf::Matches(Some(_)), Some(_)) => Err(WriteRefused::Precondition),
        }
    }
}

impl WriteRefused {
    /// The refusal of a write of `key` as S3 answers it.
    pub fn to_s3(self, key: &str) -> s3s::S3Error {
        match self {
            WriteRefused::Precondition => s3_error!(
                PreconditionFailed,
                "the condition on {key:?} (If-Match or If-None-Match) does not hold"
            ),
            WriteRefused::NoSuchKey => {
                s3_error!(NoSuchKey, "no object {key:?} for If-Match to match")
            }
        }
    }
}

/// Seconds since the epoch of `t` (whole seconds, as HTTP dates carry).
pub fn seconds(t: &Timestamp) -> i64 {
    time::OffsetDateTime::from(t.clone()).unix_timestamp()
}

fn matches(condition: &ETagCondition, etag: &str) -> bool {
    match condition {
        ETagCondition::Any => true,
        ETagCondition::ETag(e) => e.value() == etag,
    }
}

impl ReadIf {
    /// The verdict on an object with `etag` last modified at `mtime_ms`
    /// (ms since the epoch), at `now_ms`.
    pub fn evaluate(&self, etag: &str, mtime_ms: u64, now_ms: u64) -> Verdict {
        let mtime = i64::try_from(mtime_ms / 1000).unwrap_or(i64::MAX);
        let now = i64::try_from(now_ms / 1000).unwrap_or(i64::MAX);
        match &self.if_match {
            Some(c) if !matches(c, etag) => return Verdict::PreconditionFailed,
            Some(_) => {}
            None => {
                if self
                    .if_unmodified_since
                    .as_ref()
                    .is_some_and(|t| mtime > seconds(t))
                {
                    return Verdict::PreconditionFailed;
                }
            }
        }
        match &self.if_none_match {
            Some(c) if matches(c, etag) => Verdict::NotModified,
            Some(_) => Verdict::Proceed,
            None => match &self.if_modified_since {
                Some(t) if seconds(t) <= now && mtime <= seconds(t) => Verdict::NotModified,
                _ => Verdict::Proceed,
            },
        }
    }
}

/// The ETag a condition names, without quotes (`*`: none).
pub fn etag_of(condition: &ETagCondition) -> Option<String> {
    condition.as_etag().map(|e: &ETag| e.value().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    fn at(secs: u64) -> Timestamp {
        Timestamp::from(UNIX_EPOCH + Duration::from_secs(secs))
    }

    fn tag(s: &str) -> Option<ETagCondition> {
        Some(ETagCondition::ETag(ETag::Strong(s.into())))
    }

    const MTIME_MS: u64 = 1_000_500;
    const NOW_MS: u64 = 5_000_000;

    fn verdict(c: ReadIf) -> Verdict {
        c.evaluate("abc", MTIME_MS, NOW_MS)
    }

    #[test]
    fn each_condition_alone() {
        use Verdict::*;
        assert_eq!(verdict(ReadIf::default()), Proceed);
        let c = |f: fn(&mut ReadIf)| {
            let mut r = ReadIf::default();
            f(&mut r);
            verdict(r)
        };
        assert_eq!(c(|r| r.if_match = tag("abc")), Proceed);
        assert_eq!(c(|r| r.if_match = Some(ETagCondition::Any)), Proceed);
        assert_eq!(c(|r| r.if_match = tag("xyz")), PreconditionFailed);
        assert_eq!(c(|r| r.if_none_match = tag("abc")), NotModified);
        assert_eq!(
            c(|r| r.if_none_match = Some(ETagCondition::Any)),
            NotModified
        );
        assert_eq!(c(|r| r.if_none_match = tag("xyz")), Proceed);
        // Modified at 1000.5 s: the same second is "not modified since".
        assert_eq!(c(|r| r.if_modified_since = Some(at(1000))), NotModified);
        assert_eq!(c(|r| r.if_modified_since = Some(at(999))), Proceed);
        assert_eq!(c(|r| r.if_unmodified_since = Some(at(1000))), Proceed);
        assert_eq!(
            c(|r| r.if_unmodified_since = Some(at(999))),
            PreconditionFailed
        );
        // A date after now is no condition.
        assert_eq!(c(|r| r.if_modified_since = Some(at(9000))), Proceed);
    }

    #[test]
    fn s3_precedence_between_conditions() {
        use Verdict::*;
        // If-Match true + If-Unmodified-Since false: 200.
        let r = ReadIf {
            if_match: tag("abc"),
            if_unmodified_since: Some(at(10)),
            ..Default::default()
        };
        assert_eq!(verdict(r), Proceed);
        // If-None-Match false + If-Modified-Since true: 304.
        let r = ReadIf {
            if_none_match: tag("abc"),
            if_modified_since: Some(at(10)),
            ..Default::default()
        };
        assert_eq!(verdict(r), NotModified);
        // If-None-Match true wins over a failing If-Modified-Since.
        let r = ReadIf {
            if_none_match: tag("xyz"),
            if_modified_since: Some(at(2000)),
            ..Default::default()
        };
        assert_eq!(verdict(r), Proceed);
        // A failing If-Match wins over everything.
        let r = ReadIf {
            if_match: tag("xyz"),
            if_none_match: tag("abc"),
            ..Default::default()
        };
        assert_eq!(verdict(r), PreconditionFailed);
    }

    #[test]
    fn write_conditions() {
        use WriteRefused::*;
        assert_eq!(WriteIf::Always.check(Some("a")), Ok(()));
        assert_eq!(WriteIf::Absent.check(None), Ok(()));
        assert_eq!(WriteIf::Absent.check(Some("a")), Err(Precondition));
        let m = WriteIf::Matches(Some("a".into()));
        assert_eq!(m.check(Some("a")), Ok(()));
        assert_eq!(m.check(Some("b")), Err(Precondition));
        assert_eq!(m.check(None), Err(NoSuchKey));
        assert_eq!(WriteIf::Matches(None).check(Some("b")), Ok(()));
    }
}

//! Object checksums as S3 has them (CRC32, CRC32C, CRC64NVME, SHA-1,
//! SHA-256): which one a write asks for, computed while its body streams
//! in, compared with the client's value, kept in the object's index entry
//! and given back (in PutObject's answer, and on GET and HEAD asked with
//! `x-amz-checksum-mode: ENABLED`).
//!
//! A client names its checksum in one of two ways:
//! - an `x-amz-checksum-ALG` header carrying the base64 value (boto3
//!   1.44.18 sends `x-amz-checksum-crc32` on every plain-HTTP PutObject);
//! - `x-amz-trailer: x-amz-checksum-ALG` with an aws-chunked body whose
//!   trailer carries the value after the last chunk (boto3 over HTTPS:
//!   `STREAMING-UNSIGNED-PAYLOAD-TRAILER`). s3s decodes the chunks and
//!   checks chunk and trailer signatures; the value is read here once the
//!   body has ended.
//!
//! A write that names none gets CRC64NVME, S3's default. Refusals use S3's
//! codes: a value that differs from the body's is `BadDigest`; a value that
//! is not base64 of the algorithm's size, two checksums at once, an unknown
//! algorithm, `x-amz-sdk-checksum-algorithm` with no value to check, or a
//! trailer announced but missing is `InvalidRequest`.

use base64::Engine;
use s3s::checksum::ChecksumHasher;
use s3s::crypto::Checksum as _;
use s3s::{s3_error, S3Result};
use serde::{Deserialize, Serialize};

/// The header naming the algorithm the SDK used.
const SDK_ALGORITHM: &str = "x-amz-sdk-checksum-algorithm";

/// The header announcing trailing headers after an aws-chunked body.
const TRAILER: &str = "x-amz-trailer";

/// A checksum algorithm S3 knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Algorithm {
    /// CRC-32 (IEEE).
    #[serde(rename = "CRC32")]
    Crc32,
    /// CRC-32C (Castagnoli).
    #[serde(rename = "CRC32C")]
    Crc32c,
    /// CRC-64/NVME, S3's default.
    #[serde(rename = "CRC64NVME")]
    Crc64Nvme,
    /// SHA-1.
    #[serde(rename = "SHA1")]
    Sha1,
    /// SHA-256.
    #[serde(rename = "SHA256")]
    Sha256,
}

/// Every algorithm, in the order S3 lists them.
const ALGORITHMS: [Algorithm; 5] = [
    Algorithm::Crc32,
    Algorithm::Crc32c,
    Algorithm::Crc64Nvme,
    Algorithm::Sha1,
    Algorithm::Sha256,
];

impl Algorithm {
    /// The name S3 gives it (`CRC32`).
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::Crc32 => "CRC32",
            Algorithm::Crc32c => "CRC32C",
            Algorithm::Crc64Nvme => "CRC64NVME",
            Algorithm::Sha1 => "SHA1",
            Algorithm::Sha256 => "SHA256",
        }
    }

    /// The header carrying its value (`x-amz-checksum-crc32`).
    pub fn header(self) -> &'static str {
        match self {
            Algorithm::Crc32 => "x-amz-checksum-crc32",
            Algorithm::Crc32c => "x-amz-checksum-crc32c",
            Algorithm::Crc64Nvme => "x-amz-checksum-crc64nvme",
            Algorithm::Sha1 => "x-amz-checksum-sha1",
            Algorithm::Sha256 => "x-amz-checksum-sha256",
        }
    }

    /// Its value among an S3 structure's checksum fields, if set.
    pub fn value_in(self, fields: &s3s::dto::Checksum) -> Option<&str> {
        match self {
            Algorithm::Crc32 => fields.checksum_crc32.as_deref(),
            Algorithm::Crc32c => fields.checksum_crc32c.as_deref(),
            Algorithm::Crc64Nvme => fields.checksum_crc64nvme.as_deref(),
            Algorithm::Sha1 => fields.checksum_sha1.as_deref(),
            Algorithm::Sha256 => fields.checksum_sha256.as_deref(),
        }
    }

    /// Bytes in its digest.
    fn digest_bytes(self) -> usize {
        match self {
            Algorithm::Crc32 | Algorithm::Crc32c => 4,
            Algorithm::Crc64Nvme => 8,
            Algorithm::Sha1 => 20,
            Algorithm::Sha256 => 32,
        }
    }

    /// The algorithm S3 names `name` (any case).
    pub fn parse(name: &str) -> Option<Algorithm> {
        ALGORITHMS
            .into_iter()
            .find(|a| a.name().eq_ignore_ascii_case(name))
    }

    fn of_header(name: &str) -> Option<Algorithm> {
        ALGORITHMS
            .into_iter()
            .find(|a| a.header().eq_ignore_ascii_case(name))
    }
}

/// A checksum being computed over a body.
pub struct Hasher {
    algorithm: Algorithm,
    inner: ChecksumHasher,
}

impl Hasher {
    /// A hasher for `algorithm`.
    pub fn new(algorithm: Algorithm) -> Hasher {
        use s3s::crypto::{Crc32, Crc32c, Crc64Nvme, Sha1, Sha256};
        let mut inner = ChecksumHasher::default();
        match algorithm {
            Algorithm::Crc32 => inner.crc32 = Some(Crc32::new()),
            Algorithm::Crc32c => inner.crc32c = Some(Crc32c::new()),
            Algorithm::Crc64Nvme => inner.crc64nvme = Some(Crc64Nvme::new()),
            Algorithm::Sha1 => inner.sha1 = Some(Sha1::new()),
            Algorithm::Sha256 => inner.sha256 = Some(Sha256::new()),
        }
        Hasher { algorithm, inner }
    }

    /// Adds `data`.
    pub fn update(&mut self, data: &[u8]) {
        self.inner.update(data);
    }

    /// The checksum of everything added, as S3 writes it (base64).
    pub fn finish(self) -> ObjectChecksum {
        let all = self.inner.finalize();
        let value = match self.algorithm {
            Algorithm::Crc32 => all.checksum_crc32,
            Algorithm::Crc32c => all.checksum_crc32c,
            Algorithm::Crc64Nvme => all.checksum_crc64nvme,
            Algorithm::Sha1 => all.checksum_sha1,
            Algorithm::Sha256 => all.checksum_sha256,
        };
        ObjectChecksum {
            algorithm: self.algorithm,
            value: value.unwrap_or_default(),
            composite: false,
        }
    }
}

/// A checksum as an object keeps it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectChecksum {
    /// Its algorithm.
    pub algorithm: Algorithm,
    /// Its value as S3 writes it: base64 (with `-N` after a composite).
    pub value: String,
    /// A checksum of part checksums (multipart, `COMPOSITE`), not of the
    /// whole body (`FULL_OBJECT`).
    #[serde(default)]
    pub composite: bool,
}

impl ObjectChecksum {
    /// As the checksum fields of S3's outputs: only its algorithm's set.
    pub fn fields(&self) -> s3s::dto::Checksum {
        let mut out = s3s::dto::Checksum::default();
        let value = Some(self.value.clone());
        match self.algorithm {
            Algorithm::Crc32 => out.checksum_crc32 = value,
            Algorithm::Crc32c => out.checksum_crc32c = value,
            Algorithm::Crc64Nvme => out.checksum_crc64nvme = value,
            Algorithm::Sha1 => out.checksum_sha1 = value,
            Algorithm::Sha256 => out.checksum_sha256 = value,
        }
        out
    }

    /// S3's checksum of a multipart object (`COMPOSITE`): `algorithm` over
    /// the parts' binary checksums in order, base64, then `-N`. None when a
    /// part has no well-formed checksum of that algorithm.
    pub fn composite(
        algorithm: Algorithm,
        parts: &[Option<&ObjectChecksum>],
    ) -> Option<ObjectChecksum> {
        let mut all = Hasher::new(algorithm);
        for part in parts {
            let part = part.filter(|p| p.algorithm == algorithm && !p.composite)?;
            let binary = base64::engine::general_purpose::STANDARD
                .decode(&part.value)
                .ok()?;
            all.update(&binary);
        }
        let whole = all.finish();
        Some(ObjectChecksum {
            algorithm,
            value: format!("{}-{}", whole.value, parts.len()),
            composite: true,
        })
    }

    /// `FULL_OBJECT` or `COMPOSITE`.
    pub fn checksum_type(&self) -> s3s::dto::ChecksumType {
        s3s::dto::ChecksumType::from_static(if self.composite {
            s3s::dto::ChecksumType::COMPOSITE
        } else {
            s3s::dto::ChecksumType::FULL_OBJECT
        })
    }

    /// A listing's `ChecksumAlgorithm` (a list of one) and
    /// `ChecksumType`, as ListObjects and ListObjectVersions give them.
    pub fn listed(
        checksum: Option<&ObjectChecksum>,
    ) -> (
        Option<Vec<s3s::dto::ChecksumAlgorithm>>,
        Option<s3s::dto::ChecksumType>,
    ) {
        match checksum {
            Some(c) => (
                Some(vec![s3s::dto::ChecksumAlgorithm::from_static(
                    c.algorithm.name(),
                )]),
                Some(c.checksum_type()),
            ),
            None => (None, None),
        }
    }
}

/// Sets the checksum fields of an S3 output (`PutObjectOutput`,
/// `GetObjectOutput`, `HeadObjectOutput`, ...) from an [`ObjectChecksum`].
macro_rules! set_checksum {
    ($output:expr, $checksum:expr) => {{
        let c: &$crate::s3::checksum::ObjectChecksum = $checksum;
        let fields = c.fields();
        $output.checksum_crc32 = fields.checksum_crc32;
        $output.checksum_crc32c = fields.checksum_crc32c;
        $output.checksum_crc64nvme = fields.checksum_crc64nvme;
        $output.checksum_sha1 = fields.checksum_sha1;
        $output.checksum_sha256 = fields.checksum_sha256;
        $output.checksum_type = Some(c.checksum_type());
    }};
}
pub(crate) use set_checksum;

/// Where the client's value is.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Claimed {
    /// In a header, already read.
    Header(String),
    /// In the trailer of the aws-chunked body.
    Trailer,
    /// Nowhere: the client sent no checksum.
    Nothing,
}

/// What a write asked to be checked: the algorithm to compute and where
/// the client's value is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Requested {
    /// The algorithm computed over the body.
    pub algorithm: Algorithm,
    claimed: Claimed,
}

fn invalid(message: String) -> s3s::S3Error {
    s3s::S3Error::with_message(s3s::S3ErrorCode::InvalidRequest, message)
}

/// `value` if it is base64 of `algorithm`'s digest size.
fn well_formed(algorithm: Algorithm, value: &str, place: &str) -> S3Result<String> {
    let decoded = base64::engine::general_purpose::STANDARD.decode(value.trim());
    match decoded {
        Ok(d) if d.len() == algorithm.digest_bytes() => Ok(value.trim().to_string()),
        _ => Err(invalid(format!(
            "Value for {} {place} is invalid.",
            algorithm.header()
        ))),
    }
}

impl Requested {
    /// What the headers of a write (PutObject, UploadPart) ask for.
    pub fn from_headers(headers: &axum::http::HeaderMap) -> S3Result<Requested> {
        let text = |name: &str| -> S3Result<Option<&str>> {
            headers
                .get(name)
                .map(|v| {
                    v.to_str()
                        .map_err(|_| invalid(format!("the {name} header is not text")))
                })
                .transpose()
        };
        let sdk = match text(SDK_ALGORITHM)? {
            None => None,
            Some(name) => Some(Algorithm::parse(name).ok_or_else(|| {
                invalid(format!(
                    "Checksum algorithm {name:?} is unsupported: use one of \
                     CRC32, CRC32C, CRC64NVME, SHA1, SHA256."
                ))
            })?),
        };
        let mut named = Vec::new();
        for algorithm in ALGORITHMS {
            if let Some(value) = text(algorithm.header())? {
                named.push((algorithm, Claimed::Header(value.to_string())));
            }
        }
        if let Some(trailer) = text(TRAILER)? {
            for name in trailer.split(',').map(str::trim) {
                let lower = name.to_ascii_lowercase();
                if !lower.starts_with("x-amz-checksum-") {
                    continue;
                }
                let algorithm = Algorithm::of_header(&lower).ok_or_else(|| {
                    invalid(format!("The trailer {name:?} is not a checksum S3 knows."))
                })?;
                named.push((algorithm, Claimed::Trailer));
            }
        }
        if named.len() > 1 {
            return Err(invalid(
                "Expecting a single x-amz-checksum- header. Multiple checksum Types are not allowed."
                    .into(),
            ));
        }
        let Some((algorithm, claimed)) = named.pop() else {
            if sdk.is_some() {
                return Err(invalid(
                    "x-amz-sdk-checksum-algorithm specified, but no corresponding \
                     x-amz-checksum-* or x-amz-trailer headers were found."
                        .into(),
                ));
            }
            return Ok(Requested {
                algorithm: Algorithm::Crc64Nvme,
                claimed: Claimed::Nothing,
            });
        };
        if sdk.is_some_and(|s| s != algorithm) {
            return Err(invalid(format!(
                "Value for {SDK_ALGORITHM} header is invalid: it names {}, the checksum sent is {}.",
                sdk.map_or("", Algorithm::name),
                algorithm.name()
            )));
        }
        let claimed = match claimed {
            Claimed::Header(v) => Claimed::Header(well_formed(algorithm, &v, "header")?),
            other => other,
        };
        Ok(Requested { algorithm, claimed })
    }

    /// The request, computing `algorithm` if the client named no checksum
    /// (a part of an upload made with that algorithm).
    pub fn or_compute(self, algorithm: Algorithm) -> Requested {
        match self.claimed {
            Claimed::Nothing => Requested {
                algorithm,
                claimed: Claimed::Nothing,
            },
            _ => self,
        }
    }

    /// Checks `computed` (this request's algorithm over the whole body)
    /// against the client's value; `trailers` are the body's trailing
    /// headers, read once it has ended. Returns the checksum to keep.
    pub fn verify(
        &self,
        computed: ObjectChecksum,
        trailers: Option<&axum::http::HeaderMap>,
    ) -> S3Result<ObjectChecksum> {
        let header = self.algorithm.header();
        let claimed = match &self.claimed {
            Claimed::Nothing => return Ok(computed),
            Claimed::Header(v) => v.clone(),
            Claimed::Trailer => {
                let value = trailers
                    .and_then(|t| t.get(header))
                    .ok_or_else(|| {
                        invalid(format!(
                            "x-amz-trailer announced {header}, but the body ended without it."
                        ))
                    })?
                    .to_str()
                    .map_err(|_| invalid(format!("Value for {header} trailer is invalid.")))?;
                well_formed(self.algorithm, value, "trailer")?
            }
        };
        if claimed != computed.value {
            return Err(s3_error!(
                BadDigest,
                "The {} you specified did not match the calculated checksum.",
                self.algorithm.name()
            ));
        }
        Ok(computed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::{HeaderMap, HeaderValue};

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    fn sum(algorithm: Algorithm, data: &[u8]) -> ObjectChecksum {
        let mut h = Hasher::new(algorithm);
        for piece in data.chunks(7) {
            h.update(piece);
        }
        h.finish()
    }

    fn code(e: &s3s::S3Error) -> &str {
        e.code().as_str()
    }

    #[test]
    fn composites_hash_the_parts_checksums() {
        let (a, b) = (sum(Algorithm::Crc32, b"a"), sum(Algorithm::Crc32, b"b"));
        let mut binary = Vec::new();
        for part in [&a, &b] {
            binary.extend(
                base64::engine::general_purpose::STANDARD
                    .decode(&part.value)
                    .unwrap(),
            );
        }
        let both = ObjectChecksum::composite(Algorithm::Crc32, &[Some(&a), Some(&b)]).unwrap();
        assert_eq!(
            both.value,
            format!("{}-2", sum(Algorithm::Crc32, &binary).value)
        );
        assert!(both.composite);
        assert_eq!(both.checksum_type().as_str(), "COMPOSITE");
        assert_eq!(
            ObjectChecksum::composite(Algorithm::Crc32, &[Some(&a), None]),
            None
        );
        let sha = sum(Algorithm::Sha256, b"a");
        assert_eq!(
            ObjectChecksum::composite(Algorithm::Crc32, &[Some(&sha)]),
            None
        );
        let none = Requested::from_headers(&headers(&[])).unwrap();
        assert_eq!(none.or_compute(Algorithm::Sha1).algorithm, Algorithm::Sha1);
        let named = Requested::from_headers(&headers(&[("x-amz-checksum-crc32", &a.value)]));
        assert_eq!(
            named.unwrap().or_compute(Algorithm::Sha1).algorithm,
            Algorithm::Crc32
        );
    }

    #[test]
    fn known_values_of_each_algorithm() {
        // Checksums of "hello world" (base64 of the big-endian digest), as
        // the AWS SDKs compute them.
        let data = b"hello world";
        let want = [
            (Algorithm::Crc32, "DUoRhQ=="),
            (Algorithm::Crc32c, "yZRlqg=="),
            (Algorithm::Crc64Nvme, "jSnVw/bqjr4="),
            (Algorithm::Sha1, "Kq5sNclPz7QV2+lfQIuc6R7oRu0="),
            (
                Algorithm::Sha256,
                "uU0nuZNNPgilLlLX2n2r+sSE7+N6U4DukIj3rOLvzek=",
            ),
        ];
        for (algorithm, value) in want {
            let got = sum(algorithm, data);
            assert_eq!(got.value, value, "{}", algorithm.name());
            assert!(!got.composite);
            assert_eq!(
                Algorithm::parse(&algorithm.name().to_lowercase()),
                Some(algorithm)
            );
        }
    }

    #[test]
    fn a_header_checksum_is_checked() {
        let data = b"hello world";
        let req = Requested::from_headers(&headers(&[
            ("x-amz-checksum-crc32", "DUoRhQ=="),
            ("x-amz-sdk-checksum-algorithm", "CRC32"),
        ]))
        .unwrap();
        assert_eq!(req.algorithm, Algorithm::Crc32);
        assert_eq!(req.claimed, Claimed::Header("DUoRhQ==".into()));
        let kept = req.verify(sum(Algorithm::Crc32, data), None).unwrap();
        assert_eq!(kept.value, "DUoRhQ==");
        let e = req
            .verify(sum(Algorithm::Crc32, b"hello worle"), None)
            .unwrap_err();
        assert_eq!(code(&e), "BadDigest");
    }

    #[test]
    fn a_trailer_checksum_is_read_after_the_body() {
        let req = Requested::from_headers(&headers(&[
            ("x-amz-trailer", "x-amz-checksum-sha256"),
            ("x-amz-sdk-checksum-algorithm", "SHA256"),
        ]))
        .unwrap();
        assert_eq!(req.claimed, Claimed::Trailer);
        let good = sum(Algorithm::Sha256, b"hello world");
        let trailers = headers(&[("x-amz-checksum-sha256", &good.value)]);
        assert_eq!(req.verify(good.clone(), Some(&trailers)).unwrap(), good);
        let e = req.verify(good.clone(), None).unwrap_err();
        assert_eq!(code(&e), "InvalidRequest", "announced but missing");
        let bad = headers(&[("x-amz-checksum-sha256", "not base64!")]);
        let e = req.verify(good.clone(), Some(&bad)).unwrap_err();
        assert_eq!(code(&e), "InvalidRequest");
        let other = sum(Algorithm::Sha256, b"other");
        let wrong = headers(&[("x-amz-checksum-sha256", &other.value)]);
        let e = req.verify(good, Some(&wrong)).unwrap_err();
        assert_eq!(code(&e), "BadDigest");
    }

    #[test]
    fn no_checksum_means_crc64nvme_kept_unchecked() {
        let req = Requested::from_headers(&HeaderMap::new()).unwrap();
        assert_eq!(req.algorithm, Algorithm::Crc64Nvme);
        let computed = sum(Algorithm::Crc64Nvme, b"abc");
        assert_eq!(req.verify(computed.clone(), None).unwrap(), computed);
    }

    #[test]
    fn malformed_requests_are_refused() {
        let refused = [
            // Not base64, and base64 of the wrong size.
            vec![("x-amz-checksum-crc32", "!!!")],
            vec![("x-amz-checksum-crc32", "AAAAAAAA")],
            // Two checksums at once.
            vec![
                ("x-amz-checksum-crc32", "DUoRhQ=="),
                ("x-amz-checksum-crc32c", "yZRlqg=="),
            ],
            vec![
                ("x-amz-checksum-crc32", "DUoRhQ=="),
                ("x-amz-trailer", "x-amz-checksum-crc32c"),
            ],
            // An algorithm S3 does not know.
            vec![("x-amz-sdk-checksum-algorithm", "MD4")],
            vec![("x-amz-trailer", "x-amz-checksum-md4")],
            // An algorithm named with no value to check.
            vec![("x-amz-sdk-checksum-algorithm", "CRC32")],
            // The algorithm named is not the one sent.
            vec![
                ("x-amz-sdk-checksum-algorithm", "SHA256"),
                ("x-amz-checksum-crc32", "DUoRhQ=="),
            ],
        ];
        for pairs in refused {
            let e = Requested::from_headers(&headers(&pairs)).unwrap_err();
            assert_eq!(code(&e), "InvalidRequest", "{pairs:?}");
        }
    }

    #[test]
    fn kept_checksums_read_back_and_fill_outputs() {
        let c = sum(Algorithm::Crc32c, b"hello world");
        let json = serde_json::to_string(&c).unwrap();
        assert!(json.contains("\"CRC32C\""), "{json}");
        assert_eq!(serde_json::from_str::<ObjectChecksum>(&json).unwrap(), c);
        let mut out = s3s::dto::HeadObjectOutput::default();
        set_checksum!(out, &c);
        assert_eq!(out.checksum_crc32c.as_deref(), Some("yZRlqg=="));
        assert_eq!(out.checksum_crc32, None);
        assert_eq!(
            out.checksum_type.as_ref().map(|t| t.as_str()),
            Some("FULL_OBJECT")
        );
    }
}

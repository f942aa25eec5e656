//! What the S3 tests share: the Python clients' virtualenvs (each made
//! once per test binary from its directory's pinned `requirements.txt` by
//! `tests/py-clients/setup.sh`: boto3's in `tests/s3-clients`, the other
//! tools' under `tests/s3-tools`), running a client script from
//! `tests/s3-clients` with one of them, access keys made with
//! `cairn s3 key create`, the endpoint's address from a daemon's start-up
//! lines, and the digests S3 clients compare (MD5 ETags, SHA-256).

use super::process::{root, run_json_script, setup_once};
use super::TestRepo;
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// When a client script that has not finished is killed.
pub const SCRIPT_KILL: Duration = Duration::from_secs(120);

/// `tests/s3-clients`: the client scripts and their requirements.
pub fn clients_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/s3-clients")
}

/// The python of the virtualenv `tests/py-clients/setup.sh DIR` makes
/// from `DIR/requirements.txt` (DIR relative to the crate root), made once
/// per test binary; `what` names the pinned clients for the error when the
/// setup fails. Its scripts and console entry points (`aws`) sit beside it.
pub fn venv_python(dir: &str, what: &str) -> PathBuf {
    setup_once(
        &["tests/py-clients/setup.sh", dir],
        &format!("Python >= 3.11 with venv, and PyPI for the pinned {what}"),
    );
    let python = root().join(dir).join(".venv/bin/python");
    assert!(python.exists(), "{} missing after setup", python.display());
    python
}

/// The boto3 virtualenv's python, made once per test binary.
pub fn python() -> PathBuf {
    venv_python("tests/s3-clients", "boto3")
}

/// Runs `script` (in `tests/s3-clients`) with `python` and `spec` on its
/// standard input; its last line of output, parsed as JSON.
pub fn run_script_with(python: &Path, script: &str, spec: &Value) -> Value {
    run_json_script(
        python,
        &clients_dir(),
        script,
        (&[], &[]),
        spec,
        SCRIPT_KILL,
    )
}

/// Runs `script` (in `tests/s3-clients`) with boto3's python and `spec` on
/// its standard input; its last line of output, parsed as JSON.
pub fn run_script(script: &str, spec: &Value) -> Value {
    run_script_with(&python(), script, spec)
}

/// Runs phase `name` of the boto3 script `script` (in `tests/s3-clients`)
/// with `spec`; its last line of output, parsed as JSON (and logged).
pub fn run_phase(script: &str, name: &str, spec: &Value) -> Value {
    let got = run_json_script(
        &python(),
        &clients_dir(),
        script,
        (&[name], &[]),
        spec,
        SCRIPT_KILL,
    );
    eprintln!("{name}: {got}");
    got
}

/// Asserts that every field of `want` is in `got` with that value.
pub fn assert_fields(got: &Value, want: &Value) {
    for (name, value) in want.as_object().expect("an object") {
        assert_eq!(&got[name], value, "{name}");
    }
}

/// Lower-case hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// SHA-256 of `data` in hex.
pub fn sha256_hex(data: &[u8]) -> String {
    hex(&Sha256::digest(data))
}

/// MD5 of `data` (RFC 1321), for the ETag S3 clients compare.
pub fn md5_of(data: &[u8]) -> [u8; 16] {
    <md5::Md5 as md5::Digest>::digest(data).into()
}

/// The quoted ETag of a single-part object holding `data`.
pub fn etag_of(data: &[u8]) -> String {
    format!("\"{}\"", hex(&md5_of(data)))
}

/// The root CIDs of the repo's buckets, from `cairn s3 ls` (each line
/// `NAME ROOT ...`): pinned beside the objects' CIDs.
pub fn bucket_roots(repo: &TestRepo) -> std::collections::BTreeSet<String> {
    repo.ok(&["s3", "ls"])
        .lines()
        .filter_map(|l| l.split(' ').nth(1))
        .filter(|root| *root != "-")
        .map(str::to_string)
        .collect()
}

/// S3's ETag of an object uploaded in `parts`: the MD5 of their binary
/// MD5s, `-N`, quoted as clients see it.
pub fn multipart_etag(parts: &[&[u8]]) -> String {
    let all: Vec<u8> = parts.iter().flat_map(|p| md5_of(p)).collect();
    format!("\"{}-{}\"", hex(&md5_of(&all)), parts.len())
}

/// `cairn s3 key create ARGS`: the printed ID and secret.
pub fn create_key(repo: &TestRepo, args: &[&str]) -> (String, String) {
    let out = repo.ok(&[&["s3", "key", "create"][..], args].concat());
    let field = |name: &str| {
        out.lines()
            .find_map(|l| l.strip_prefix(name))
            .unwrap_or_else(|| panic!("no {name} in {out:?}"))
            .trim()
            .to_string()
    };
    (field("AccessKeyId:"), field("SecretAccessKey:"))
}

/// What the boto3 scripts read on stdin: the endpoint (from a daemon's
/// start-up lines), a key for every bucket, a key scoped to some, a file.
pub fn client_spec(
    banner: &[String],
    (key, secret): &(String, String),
    (scoped_key, scoped_secret): &(String, String),
    file: &Path,
) -> Value {
    serde_json::json!({
        "endpoint": s3_url(banner),
        "key": key,
        "secret": secret,
        "scoped_key": scoped_key,
        "scoped_secret": scoped_secret,
        "file": file,
    })
}

/// The S3 endpoint (`http://127.0.0.1:PORT`) from a daemon's start-up lines.
pub fn s3_url(banner: &[String]) -> String {
    banner
        .iter()
        .find_map(|l| l.strip_prefix("S3 endpoint listening on "))
        .unwrap_or_else(|| panic!("no S3 endpoint in {banner:?}"))
        .to_string()
}

/// Signs S3 requests with AWS Signature V4 in headers, for the tests and
/// benchmarks that speak HTTP themselves (no SDK): the payload is sent as
/// `UNSIGNED-PAYLOAD`, the region is `us-east-1`.
pub struct Signer {
    key: String,
    secret: String,
}

/// Percent-encodes `s` as SigV4's canonical form wants: every byte but
/// the unreserved ones (and `/` when `keep_slash`).
fn uri_encode(s: &str, keep_slash: bool) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            b'/' if keep_slash => out.push('/'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

fn hmac(key: &[u8], data: &str) -> Vec<u8> {
    use hmac::Mac;
    let mut mac = hmac::Hmac::<Sha256>::new_from_slice(key).expect("any key length");
    mac.update(data.as_bytes());
    mac.finalize().into_bytes().to_vec()
}

impl Signer {
    /// A signer for the access key `key` with secret `secret`.
    pub fn new(key: &str, secret: &str) -> Signer {
        Signer {
            key: key.into(),
            secret: secret.into(),
        }
    }

    /// The URL of `method`'s request to `endpoint` (`http://HOST:PORT`)
    /// for `path` (`/bucket/key`, unencoded) with `query` (unencoded pairs),
    /// and the headers that sign it (`host` is set by the HTTP client from
    /// the URL, so it is signed but not returned).
    pub fn sign(
        &self,
        method: &str,
        endpoint: &str,
        path: &str,
        query: &[(&str, &str)],
    ) -> (String, Vec<(&'static str, String)>) {
        let host = endpoint
            .split_once("://")
            .map_or(endpoint, |(_, rest)| rest)
            .trim_end_matches('/');
        let now = humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string();
        let amz_date: String = now.chars().filter(|c| *c != '-' && *c != ':').collect();
        let day = &amz_date[..8];
        let canonical_path = uri_encode(path, true);
        let mut pairs: Vec<(String, String)> = query
            .iter()
            .map(|(k, v)| (uri_encode(k, false), uri_encode(v, false)))
            .collect();
        pairs.sort();
        let canonical_query = pairs
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("&");
        let payload = "UNSIGNED-PAYLOAD";
        let canonical = format!(
            "{method}\n{canonical_path}\n{canonical_query}\nhost:{host}\n\
             x-amz-content-sha256:{payload}\nx-amz-date:{amz_date}\n\n\
             host;x-amz-content-sha256;x-amz-date\n{payload}"
        );
        let scope = format!("{day}/us-east-1/s3/aws4_request");
        let to_sign = format!(
            "AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{}",
            sha256_hex(canonical.as_bytes())
        );
        let mut k = hmac(format!("AWS4{}", self.secret).as_bytes(), day);
        for part in ["us-east-1", "s3", "aws4_request"] {
            k = hmac(&k, part);
        }
        let signature = hex(&hmac(&k, &to_sign));
        let authorization = format!(
            "AWS4-HMAC-SHA256 Credential={}/{scope}, \
             SignedHeaders=host;x-amz-content-sha256;x-amz-date, Signature={signature}",
            self.key
        );
        let url = if canonical_query.is_empty() {
            format!("{endpoint}{canonical_path}")
        } else {
            format!("{endpoint}{canonical_path}?{canonical_query}")
        };
        let headers = vec![
            ("x-amz-content-sha256", payload.to_string()),
            ("x-amz-date", amz_date),
            ("authorization", authorization),
        ];
        (url, headers)
    }
}

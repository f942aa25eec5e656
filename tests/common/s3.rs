//! What the S3 tests share: the boto3 virtualenv (`tests/s3-clients`,
//! made once per test binary by `tests/py-clients/setup.sh`), running a
//! client script from that directory, access keys made with
//! `cairn s3 key create`, the endpoint's address from a daemon's start-up
//! lines, and the digests S3 clients compare (MD5 ETags, SHA-256).

use super::process::{run_json_script, setup_once};
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

/// The boto3 virtualenv's python, made once per test binary.
pub fn python() -> PathBuf {
    setup_once(
        &["tests/py-clients/setup.sh", "tests/s3-clients"],
        "Python >= 3.11 with venv, and PyPI for the pinned boto3",
    );
    clients_dir().join(".venv/bin/python")
}

/// Runs `script` (in `tests/s3-clients`) with `spec` on its standard
/// input; its last line of output, parsed as JSON.
pub fn run_script(script: &str, spec: &Value) -> Value {
    run_json_script(
        &python(),
        &clients_dir(),
        script,
        (&[], &[]),
        spec,
        SCRIPT_KILL,
    )
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

/// The S3 endpoint (`http://127.0.0.1:PORT`) from a daemon's start-up lines.
pub fn s3_url(banner: &[String]) -> String {
    banner
        .iter()
        .find_map(|l| l.strip_prefix("S3 endpoint listening on "))
        .unwrap_or_else(|| panic!("no S3 endpoint in {banner:?}"))
        .to_string()
}

//! The S3 endpoint, driven by boto3 (installed unchanged from PyPI at the
//! versions `tests/s3-clients/requirements.txt` pins, into a virtualenv
//! `tests/py-clients/setup.sh tests/s3-clients` makes on first run) against
//! a cairn daemon on 127.0.0.1: buckets, objects (whole, ranges, metadata,
//! ETags), ListObjectsV2 with prefixes, delimiters and pages, who may do
//! what (wrong secret, unknown key, scoped key, anonymous, presigned URLs),
//! deleting; then each object's CID is fetched through the gateway and
//! found pinned. A failed setup fails the test with its reason.
//!
//! Needs Python >= 3.11 with its venv module, and PyPI.

// The expected values are one large `json!` literal.
#![recursion_limit = "256"]

mod common;

use common::s3::{client_spec, create_key, etag_of, python, run_script, sha256_hex};
use common::{gateway_url, Daemon, TestRepo};
use serde_json::json;

#[test]
fn keys_are_files_only_their_owner_reads() {
    use std::os::unix::fs::PermissionsExt;
    let repo = TestRepo::new();
    let (id, secret) = create_key(&repo, &["--bucket", "photos"]);
    let file = repo.path().join("s3/keys").join(&id);
    let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let listed = repo.ok(&["s3", "key", "ls"]);
    assert_eq!(listed.trim(), format!("{id} photos"));
    assert!(!listed.contains(&secret), "ls never shows secrets");
    let err = repo.fails(&["s3", "key", "create", "--bucket", "Not_A_Bucket"]);
    assert!(err.contains("invalid bucket name"), "{err}");
    repo.ok(&["s3", "key", "rm", &id]);
    assert_eq!(repo.ok(&["s3", "key", "ls"]).trim(), "");
}

#[test]
fn boto3_stores_lists_and_reads_objects_fetchable_by_cid() {
    let python = python();
    assert!(python.exists(), "{} missing after setup", python.display());
    let repo = TestRepo::new();
    let key = create_key(&repo, &[]);
    let scoped = create_key(&repo, &["--bucket", "photos"]);
    let data = common::random_bytes(3_000_000, 19);
    let file = repo.scratch("big.bin");
    std::fs::write(&file, &data).unwrap();
    // What `cairn add` makes of the same bytes: the object's CID.
    let cid = TestRepo::new().add(&file, &["-n"]);

    let (mut daemon, banner) = Daemon::start(&repo, &["--s3", "127.0.0.1:0"]);
    let spec = client_spec(&banner, &key, &scoped, &file);
    let got = run_script("boto3_run.py", &spec);
    eprintln!("{got}");
    let etag = etag_of(&data);
    let expect = json!({
        "create_again": "BucketAlreadyOwnedByYou",
        "create_bad_name": "InvalidBucketName",
        "buckets": ["other", "photos"],
        "head_missing_bucket": "404",
        "put_etag": etag,
        "put_cid": cid,
        "get_sha256": sha256_hex(&data),
        "get_length": data.len(),
        "get_etag": etag,
        "get_content_type": "application/x-test",
        "get_metadata": {"owner": "alice", "purpose": "testing"},
        "get_cid": cid,
        "range_sha256": sha256_hex(&data[1000..71000]),
        "range_content_range": format!("bytes 1000-70999/{}", data.len()),
        "range_status": 206,
        "suffix_sha256": sha256_hex(&data[data.len() - 100..]),
        "range_past_end": "InvalidRange",
        "head_length": data.len(),
        "head_metadata": {"owner": "alice", "purpose": "testing"},
        "head_cid": cid,
        "head_missing": "404",
        "get_missing": "NoSuchKey",
        "get_missing_bucket": "NoSuchBucket",
        "empty_etag": "\"d41d8cd98f00b204e9800998ecf8427e\"",
        "empty_body": "",
        "list_top_keys": ["a.txt", "empty", "z"],
        "list_top_prefixes": ["docs/"],
        "list_docs_keys": ["docs/a", "docs/big.bin", "docs/e"],
        "list_docs_prefixes": ["docs/b/"],
        "list_pages": [
            ["a.txt", "docs/a", "docs/b/c"],
            ["docs/b/d", "docs/big.bin", "docs/e"],
            ["empty", "z"]
        ],
        "list_start_after": ["docs/big.bin", "docs/e", "empty", "z"],
        "list_big_size": data.len(),
        "wrong_secret": "SignatureDoesNotMatch",
        "unknown_key": "InvalidAccessKeyId",
        "scoped_buckets": ["photos"],
        "scoped_own": "a.txt",
        "scoped_other": "AccessDenied",
        "anonymous": 403,
        "presigned": "docs/e",
        "presigned_expired": 403,
        "presigned_put": 200,
        "presigned_put_body": "sent by a presigned PUT",
        "presigned_put_expired": [403, "AccessDenied"],
        "presigned_late_key": "404",
        "delete_full_bucket": "BucketNotEmpty",
        "after_delete": "404",
        "buckets_after_delete": ["photos"],
        "keys_left": 1,
    });
    for (name, want) in expect.as_object().unwrap() {
        assert_eq!(&got[name], want, "{name}");
    }

    // The object is a UnixFS file: the gateway serves it by its CID.
    let url = format!("{}/ipfs/{cid}", gateway_url(&banner));
    let mut body = Vec::new();
    std::io::Read::read_to_end(
        &mut ureq::get(&url).call().unwrap().into_body().into_reader(),
        &mut body,
    )
    .unwrap();
    assert!(body == data, "the gateway serves the object's bytes");
    daemon.signal(libc::SIGTERM);
    // Pinned: kept by GC.
    assert!(repo.ok(&["pin", "ls"]).contains(&cid));
    repo.ok(&["repo", "gc"]);
    assert_eq!(repo.ok_bytes(&["cat", &cid]), data);
}

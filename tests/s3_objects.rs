//! The S3 endpoint's object operations beyond PUT/GET, driven by boto3
//! (`tests/s3-clients/objects_run.py`, one phase per run) against a cairn
//! daemon on 127.0.0.1: CopyObject (same CID, no bytes added, across
//! buckets, metadata directives, `x-amz-copy-source-if-*`, scoped keys),
//! the pin a copy keeps after its source goes and GC freeing the CID after
//! the last key; conditional GET/HEAD/PUT (a race of creates has one
//! winner); DeleteObjects (quiet, per-key errors, 1,000 keys, malformed
//! XML); ListObjects (v1) with markers, delimiters and URL encoding.
//!
//! Needs Python >= 3.11 with its venv module, and PyPI.

// The expected values are large `json!` literals.
#![recursion_limit = "256"]

mod common;

use common::s3::{assert_fields, client_spec, create_key, etag_of, run_phase, sha256_hex};
use common::{Daemon, TestRepo};
use serde_json::{json, Value};

/// Runs one phase of `objects_run.py` with `spec`.
fn phase(name: &str, spec: &Value) -> Value {
    run_phase("objects_run.py", name, spec)
}

/// A `NAME: NUMBER` line of `cairn repo stat`.
fn stat_field(repo: &TestRepo, name: &str) -> u64 {
    let out = repo.ok(&["repo", "stat"]);
    out.lines()
        .find_map(|l| l.strip_prefix(name))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {name} in {out}"))
}

/// A daemon with an S3 endpoint and the spec its scripts need: a key for
/// everything and one scoped to bucket `dst`.
fn start(repo: &TestRepo, file: &std::path::Path) -> (Daemon, Value) {
    let key = create_key(repo, &[]);
    let scoped = create_key(repo, &["--bucket", "dst"]);
    let (daemon, banner) = Daemon::start(repo, &["--s3", "127.0.0.1:0"]);
    (daemon, client_spec(&banner, &key, &scoped, file))
}

/// What bucket tree nodes may add to or take from the store between two
/// measures: far less than a copy of the 3 MB body.
const TREE_SLACK_BYTES: u64 = 64 * 1024;

#[test]
fn copies_name_the_same_cid_and_keep_its_pin() {
    let repo = TestRepo::new();
    let data = common::random_bytes(3_000_000, 23);
    let file = repo.scratch("big.bin");
    std::fs::write(&file, &data).unwrap();
    let cid = TestRepo::new().add(&file, &["-n"]);
    let (mut daemon, spec) = start(&repo, &file);

    let put = phase("put", &spec);
    assert_eq!(put["cid"], json!(cid));
    let etag = etag_of(&data);
    assert_eq!(put["etag"], json!(etag));
    let bytes_before = stat_field(&repo, "BlockBytes:");
    let blocks_before = stat_field(&repo, "NumObjects:");

    let got = phase("copy", &spec);
    let described = |metadata: Value, content_type: Value| {
        json!({
            "cid": cid,
            "etag": etag,
            "type": content_type,
            "metadata": metadata,
            "length": data.len(),
        })
    };
    assert_fields(
        &got,
        &json!({
            "copy_etag": etag,
            "copy_cid": cid,
            "copy_has_last_modified": true,
            "copy_described": described(json!({"owner": "alice"}), json!("application/x-test")),
            "copy_sha256": sha256_hex(&data),
            "replaced_described": described(json!({"owner": "bob"}), json!("text/plain")),
            "self_copy": "InvalidRequest",
            // REPLACE without a Content-Type stores none, as a PUT without one.
            "self_replaced": described(json!({"owner": "carol"}), Value::Null),
            "copy_missing_key": "NoSuchKey",
            "copy_missing_bucket": "NoSuchBucket",
            "copy_to_missing_bucket": "NoSuchBucket",
            "copy_conditions": {
                "if_match": null,
                "if_match_wrong": "PreconditionFailed",
                "if_none_match": "PreconditionFailed",
                "if_none_match_other": null,
                "if_modified_since_past": null,
                "if_modified_since_mtime": "PreconditionFailed",
                "if_unmodified_since_past": "PreconditionFailed",
                "if_unmodified_since_mtime": null,
                "match_and_unmodified_past": null,
                "none_match_and_modified_past": "PreconditionFailed",
            },
            "scoped_copy_from_other": "AccessDenied",
            "scoped_copy_within": cid,
        }),
    );
    // Eleven keys name one DAG: the store holds what it held before, but
    // for the buckets' tree nodes each write adds (a few hundred bytes).
    let near = |what: &str| {
        let now = stat_field(&repo, "BlockBytes:");
        assert!(
            now.abs_diff(bytes_before) < TREE_SLACK_BYTES,
            "{what}: {bytes_before} -> {now} bytes"
        );
    };
    near("eleven copies");
    let blocks = stat_field(&repo, "NumObjects:");
    assert!(
        blocks - blocks_before < 100,
        "{blocks_before} -> {blocks} blocks"
    );

    // The source and every other copy gone, GC keeps what dst/copy.bin
    // names.
    let got = phase("drop-source", &spec);
    assert_fields(&got, &json!({"src_left": 0, "dst_left": ["copy.bin"]}));
    repo.ok(&["repo", "gc"]);
    assert!(repo.ok(&["pin", "ls"]).contains(&cid), "still pinned");
    let got = phase("read-copy", &spec);
    assert_fields(
        &got,
        &json!({"copy_sha256": sha256_hex(&data), "copy_cid": cid}),
    );
    near("the copy alone, after GC");

    // No key names it: unpinned, and GC frees its blocks.
    let got = phase("drop-copy", &spec);
    assert_eq!(got["dst_left"], json!(0));
    assert!(!repo.ok(&["pin", "ls"]).contains(&cid), "unpinned");
    repo.ok(&["repo", "gc"]);
    let after = stat_field(&repo, "BlockBytes:");
    assert!(
        after + data.len() as u64 <= bytes_before,
        "GC freed the object: {bytes_before} -> {after} bytes"
    );
    daemon.signal(libc::SIGTERM);
    repo.fails(&["block", "stat", &cid]);
}

#[test]
fn conditional_requests_and_batch_deletes_and_v1_listings() {
    let repo = TestRepo::new();
    let file = repo.scratch("unused");
    std::fs::write(&file, b"").unwrap();
    let (_daemon, spec) = start(&repo, &file);

    let got = phase("conditional", &spec);
    let statuses = json!({
        "if_match": 200,
        "if_match_any": 200,
        "if_match_wrong": 412,
        "if_none_match": 304,
        "if_none_match_other": 200,
        "if_modified_since_past": 200,
        "if_modified_since_mtime": 304,
        "if_unmodified_since_past": 412,
        "if_unmodified_since_mtime": 200,
        "match_and_unmodified_past": 200,
        "none_match_and_modified_past": 304,
    });
    let mut race = vec!["None".to_string()];
    race.extend(std::iter::repeat_n("PreconditionFailed".to_string(), 7));
    assert_fields(
        &got,
        &json!({
            "get": statuses,
            "head": statuses,
            "get_412_code": "PreconditionFailed",
            "put_if_none_match_existing": "PreconditionFailed",
            "put_if_none_match_new": null,
            "put_if_match_wrong": "PreconditionFailed",
            "put_if_match_missing": "NoSuchKey",
            "put_if_match_stale": "PreconditionFailed",
            "body_after_if_match": "second",
            "etag_after_if_match": true,
            "race_outcomes": race,
            "race_body_is_winners": true,
        }),
    );

    let got = phase("delete-objects", &spec);
    assert_fields(
        &got,
        &json!({
            "loud_deleted": ["a", "b", "never-there"],
            "loud_errors": [[true, "KeyTooLongError"]],
            "quiet_deleted": [],
            "quiet_errors": ["NoSuchVersion"],
            "left": ["keep"],
            "too_many": "MalformedXML",
            "thousand": 1000,
            "missing_bucket": "NoSuchBucket",
            "malformed": "MalformedXML",
            "left_after_malformed": ["keep"],
        }),
    );

    let got = phase("list-v1", &spec);
    let page = |keys: Value, prefixes: Value, truncated: bool, next: Value| json!({"keys": keys, "prefixes": prefixes, "truncated": truncated, "next_marker": next});
    let all = [
        "a.txt",
        "docs/a",
        "docs/b/c",
        "docs/b/d",
        "docs/e",
        "sp ace/é",
        "z",
    ];
    assert_fields(
        &got,
        &json!({
            "all": page(json!(all), json!([]), false, Value::Null),
            "top": page(json!(["a.txt", "z"]), json!(["docs/", "sp ace/"]), false, Value::Null),
            "docs": page(json!(["docs/a", "docs/e"]), json!(["docs/b/"]), false, Value::Null),
            "after_marker": page(json!(["docs/b/d", "docs/e", "sp ace/é", "z"]), json!([]), false, Value::Null),
            "max_keys_zero": page(json!([]), json!([]), false, Value::Null),
            "pages": [
                page(json!(["a.txt", "docs/a"]), json!([]), true, Value::Null),
                page(json!(["docs/b/c", "docs/b/d"]), json!([]), true, Value::Null),
                page(json!(["docs/e", "sp ace/é"]), json!([]), true, Value::Null),
                page(json!(["z"]), json!([]), false, Value::Null),
            ],
            "pages_delimited": [
                page(json!(["a.txt"]), json!(["docs/"]), true, json!("docs/")),
                page(json!(["z"]), json!(["sp ace/"]), false, Value::Null),
            ],
            "url_keys": ["sp%20ace/%C3%A9"],
            "url_prefix": "sp%20ace/",
            "bad_max_keys": "InvalidArgument",
            "missing_bucket": "NoSuchBucket",
        }),
    );
}

/// Small objects read again and again: once their blocks are in the
/// memory tier, GetObject answers from memory (the hot tier's hits move),
/// and every answer is the first one's: the same bytes, ETag, checksum,
/// ranges and 304s.
#[test]
fn hot_small_objects_read_again_are_byte_identical() {
    let repo = TestRepo::new();
    let key = create_key(&repo, &[]);
    let (_daemon, banner) = Daemon::start(&repo, &["--s3", "127.0.0.1:0"]);
    let api = common::api_url(&banner);
    let hot_hits = || common::metric(&api, "cairn_hot_cache_hits_total").expect("hot hits");
    let before = hot_hits();
    // One block each (the endpoint's 1 MiB leaves), within the memory
    // tier's 256 KiB blocks.
    let spec = json!({
        "endpoint": common::s3::s3_url(&banner),
        "key": key.0,
        "secret": key.1,
        "objects": {"small.bin": 1_120, "larger.bin": 200_000},
    });
    let got = common::s3::run_script("hot_get_run.py", &spec);
    for (name, size) in [("small.bin", 1_120u64), ("larger.bin", 200_000)] {
        let o = &got[name];
        let rounds = o["rounds"].as_array().expect("rounds");
        assert_eq!(rounds.len(), 5, "{got}");
        assert_eq!(rounds[0]["whole"]["sha256"], o["sha256"], "{got}");
        assert_eq!(rounds[0]["whole"]["etag"], o["put_etag"]);
        assert!(rounds[0]["whole"]["checksum"].is_string(), "{got}");
        assert_eq!(rounds[0]["whole"]["length"], json!(size));
        assert_eq!(rounds[0]["range"]["sha256"], o["range_sha256"]);
        assert_eq!(
            rounds[0]["range"]["content_range"],
            json!(format!("bytes 100-1099/{size}"))
        );
        assert_eq!(rounds[0]["suffix"]["sha256"], o["suffix_sha256"]);
        assert_eq!(rounds[0]["suffix"]["length"], json!(10));
        assert_eq!(rounds[0]["not_modified"], json!(304));
        for r in rounds {
            assert_eq!(r, &rounds[0], "a later read differs from the first");
        }
    }
    // Both objects' blocks answered from memory in the later rounds.
    assert!(
        hot_hits() - before >= 2.0 * 3.0 * 3.0,
        "hits {before} → {}",
        hot_hits()
    );
}

//! S3 bucket versioning, driven by boto3 (`tests/s3-clients/versioning_run.py`)
//! against a cairn daemon on 127.0.0.1: three versions of a key (and the
//! null version from before versioning) read back by ID byte for byte,
//! ListObjectVersions in S3's order and paged one version at a time, a
//! delete marker hiding the key while its versions stay pinned through a
//! GC, deleting versions by ID, CopyObject from a version, a suspended
//! bucket's null version, DeleteBucket refused while versions remain, and
//! every version's pin gone with the last version.
//!
//! Needs Python >= 3.11 with its venv module, and PyPI.

mod common;

use common::s3::{assert_fields, client_spec, create_key, run_phase};
use common::{Daemon, TestRepo};
use serde_json::{json, Value};

/// Runs one phase of `versioning_run.py` with `spec`.
fn phase(name: &str, spec: &Value) -> Value {
    run_phase("versioning_run.py", name, spec)
}

#[test]
fn versions_are_kept_listed_read_by_id_and_deleted() {
    let repo = TestRepo::new();
    let data = common::random_bytes(3_000_000, 31);
    let file = repo.scratch("body.bin");
    std::fs::write(&file, &data).unwrap();
    let key = create_key(&repo, &[]);
    let (_daemon, banner) = Daemon::start(&repo, &["--s3", "127.0.0.1:0"]);
    let mut spec = client_spec(&banner, &key, &key, &file);

    let got = phase("write", &spec);
    assert_fields(
        &got,
        &json!({
            "initial_status": null,
            "status": "Enabled",
            "ids_distinct": true,
            "ids_sorted": true,
            "first_marker": true,
        }),
    );
    let cids: Vec<String> = serde_json::from_value(got["cids"].clone()).unwrap();
    // The key is deleted (a marker), its versions pinned through a GC.
    repo.ok(&["repo", "gc"]);
    let pins = repo.ok(&["pin", "ls"]);
    for cid in &cids {
        assert!(pins.contains(cid.as_str()), "{cid} pinned in {pins}");
    }

    spec["ids"] = got["ids"].clone();
    let got = phase("rest", &spec);
    assert_fields(
        &got,
        &json!({
            "first_marker_latest": [true, "m"],
            "get_each": [true, true, true],
            "get_null": "before versioning",
            "latest_version": true,
            "latest_body": true,
            "head_first": [1_000_000, true],
            "unknown_version": "NoSuchVersion",
            "bad_version": "InvalidArgument",
            "listed": [[true, true, "v"], [true, false, "v"], [true, false, "v"], [true, false, "v"]],
            "listed_count": 4,
            "paged_same": true,
            "copy_source_version": true,
            "copy_body": true,
            "marker": [true, true],
            "get_deleted": ["NoSuchKey", 404, "true", got["get_deleted"][3].clone()],
            "get_deleted_marker_matches": true,
            "get_marker_by_id": ["MethodNotAllowed", 405, "true"],
            "list_v2_after_marker": ["copy"],
            "old_still_there": true,
            "after_marker": [[true, "m"], [false, "v"], [false, "v"], [false, "v"], [false, "v"]],
            "delete_marker_by_id": [true, true],
            "restored": true,
            "deleted_version": "NoSuchVersion",
            "now_current": true,
            "left": [[true, true], [true, false]],
            "prefixes": ["dir/"],
            "top_keys": ["copy", "k"],
            "suspended": "Suspended",
            "suspended_ids": ["null", "null"],
            "suspended_list": [["null", true], ["id", false]],
            "null_body": "suspended two",
            "bad_status": "MalformedXML",
            "delete_bucket_with_versions": "BucketNotEmpty",
            "batch_errors": [],
            "left_after_batch": [],
            "bucket_gone": "404",
        }),
    );
    // Every version deleted: no pin of the endpoint's is left.
    let pins = repo.ok(&["pin", "ls"]);
    for cid in &cids {
        assert!(!pins.contains(cid.as_str()), "{cid} still pinned: {pins}");
    }
}

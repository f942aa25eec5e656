//! Multipart uploads through the S3 endpoint, driven by boto3
//! (`tests/s3-clients/multipart_run.py`, in the virtualenv
//! `tests/common/s3.rs` makes): the low-level API with 5 MiB parts and a
//! small last one, `upload_file` forced into multipart, S3's ETag, the CID
//! `cairn add` gives the same bytes, ListParts and ListMultipartUploads,
//! reads by part and across parts, part checksums (boto3's CRC32, checked
//! and answered) and S3's checksum of checksums, and each refusal S3
//! makes; then an aborted upload, one left open past `[s3]
//! multipart_expiry` and one whose bucket is deleted lose their pins and
//! free their blocks at the next `repo gc`; UploadPartCopy of aligned
//! ranges stores nothing again, of unaligned ones imports the bytes.
//!
//! Needs Python >= 3.11 with its venv module, and PyPI.

#![recursion_limit = "256"]

mod common;

use common::s3::{create_key, etag_of, multipart_etag, run_script, s3_url, sha256_hex};
use common::{Daemon, TestRepo};
use serde_json::{json, Value};

const MIB: usize = 1024 * 1024;

/// What a bucket's tree nodes (its empty root at least) may add to the
/// store between two measures: far less than a part.
const TREE_SLACK_BYTES: u64 = 64 * 1024;

/// `BlockBytes` of `repo stat`: the bytes of every block stored.
fn block_bytes(repo: &TestRepo) -> u64 {
    let stat = repo.ok(&["repo", "stat"]);
    stat.lines()
        .find_map(|l| l.strip_prefix("BlockBytes:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no BlockBytes in {stat:?}"))
}

/// The CRC32 S3 gives `data`: base64 of its big-endian bytes.
fn crc32_of(data: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(crc32fast::hash(data).to_be_bytes())
}

/// S3's COMPOSITE CRC32 of `parts`: the CRC32 of their binary CRC32s, `-N`.
fn composite_crc32(parts: &[&[u8]]) -> String {
    let all: Vec<u8> = parts
        .iter()
        .flat_map(|p| crc32fast::hash(p).to_be_bytes())
        .collect();
    format!("{}-{}", crc32_of(&all), parts.len())
}

/// The CIDs `pin ls` lists as recursive pins.
fn recursive_pins(repo: &TestRepo) -> Vec<String> {
    let pins = repo.ok(&["pin", "ls", "--type", "recursive", "-q"]);
    pins.lines().map(str::to_string).collect()
}

#[test]
fn boto3_multipart_uploads_complete_to_the_cid_cairn_add_makes() {
    let repo = TestRepo::new();
    let (key, secret) = create_key(&repo, &[]);
    // Two 5 MiB parts and a small last one: whole 1 MiB chunks each.
    let data = common::random_bytes(10 * MIB + 1_500_000, 7);
    let file = repo.scratch("big.bin");
    std::fs::write(&file, &data).unwrap();
    let cid = TestRepo::new().add(&file, &["-n"]);
    let parts: Vec<&[u8]> = vec![
        &data[..5 * MIB],
        &data[5 * MIB..10 * MIB],
        &data[10 * MIB..],
    ];
    let etag = multipart_etag(&parts);
    // And parts of sizes no multiple of the chunk size.
    let (a, b) = (5 * MIB + 12345, 10 * MIB + 12346);
    let odd: Vec<&[u8]> = vec![&data[..a], &data[a..b], &data[b..b + 777]];

    let (mut daemon, banner) = Daemon::start(&repo, &["--s3", "127.0.0.1:0"]);
    let spec = json!({
        "endpoint": s3_url(&banner),
        "key": key,
        "secret": secret,
        "step": "main",
        "file": file,
    });
    let got = run_script("multipart_run.py", &spec);
    eprintln!("{got}");
    let ids = &got["upload_ids"];
    let lo = 5 * MIB - 1000;
    let expect = json!({
        "part_etags": parts.iter().map(|p| etag_of(p)).collect::<Vec<_>>(),
        "part_crc32s": parts.iter().map(|p| crc32_of(p)).collect::<Vec<_>>(),
        "part_bad_crc32": "BadDigest",
        "big_checksum": [null, null],
        "list_parts": [
            [1, 5 * MIB, etag_of(parts[0])],
            [2, 5 * MIB, etag_of(parts[1])],
            [3, parts[2].len(), etag_of(parts[2])],
        ],
        "list_parts_page": [[1, 2], true, 2],
        "list_parts_rest": [3],
        "uploads": [["big.bin", ids[0]], ["docs/a", ids[1]], ["docs/b", ids[2]]],
        "uploads_rolled": [["big.bin"], ["docs/"]],
        "uploads_paged": [["docs/a"], true, ["docs/b"]],
        "before_complete": "404",
        "invalid_part_etag": "InvalidPart",
        "invalid_part_missing": "InvalidPart",
        "invalid_part_order": "InvalidPartOrder",
        "part_number_0": "InvalidArgument",
        "part_number_10001": "InvalidArgument",
        "malformed_xml": "MalformedXML",
        "complete_etag": etag,
        "odd": [
            multipart_etag(&odd),
            sha256_hex(&data[..b + 777]),
            b + 777,
            sha256_hex(&data[a - 10..b + 10]),
        ],
        "complete_cid": cid,
        "uploads_after": 0,
        "completed_again": "NoSuchUpload",
        "get_sha256": sha256_hex(&data),
        "get_etag": etag,
        "get_content_type": "application/x-test",
        "get_metadata": {"owner": "alice"},
        "get_cid": cid,
        "head_part": [5 * MIB, 3, etag],
        "get_part3": [
            sha256_hex(parts[2]),
            format!("bytes {}-{}/{}", 10 * MIB, data.len() - 1, data.len()),
            3
        ],
        "get_part4": "InvalidPartNumber",
        "range_sha256": sha256_hex(&data[lo..lo + 2000]),
        "range_content_range": format!("bytes {lo}-{}/{}", lo + 1999, data.len()),
        "listed": [
            ["big.bin", data.len(), etag],
        ],
        "entity_too_small": "EntityTooSmall",
        "single_etag": multipart_etag(&[&[b'a'; 1024]]),
        "single_body": "a".repeat(1024),
        "no_such_upload": ["NoSuchUpload", "NoSuchUpload", "NoSuchUpload", "NoSuchUpload"],
        "upload_file_etag": etag,
        "upload_file_cid": cid,
        "upload_file_sha256": sha256_hex(&data),
        "upload_file_checksum": [composite_crc32(&parts), "COMPOSITE"],
        "crc_list_parts": ["CRC32", "COMPOSITE", [crc32_of(&[b'x'; 100])]],
        "crc_wrong_listed": "InvalidPart",
        "crc_other_algorithm": "InvalidRequest",
        "crc_complete": [composite_crc32(&[&[b'x'; 100]]), "COMPOSITE"],
        "sha1_full_object": "InvalidRequest",
    });
    for (name, want) in expect.as_object().unwrap() {
        assert_eq!(&got[name], want, "{name}");
    }
    // Completing moved the bucket's root, as a PUT does: its tree names
    // the object, and the root is pinned.
    let listed = repo.ok(&["s3", "ls", "multipart/big.bin"]);
    assert!(
        listed
            .lines()
            .any(|l| l.starts_with(&format!("{cid} {} ", data.len())) && l.ends_with(" big.bin")),
        "the bucket's tree names the completed object: {listed}"
    );
    let pins = recursive_pins(&repo);
    let roots = common::s3::bucket_roots(&repo);
    assert!(!roots.is_empty() && roots.iter().all(|r| pins.contains(r)));
    // Both objects are the file `cairn add` makes: readable by CID, and
    // every block verifies.
    daemon.signal(libc::SIGTERM);
    assert_eq!(repo.ok_bytes(&["cat", &cid]), data);
    repo.ok(&["repo", "verify"]);
}

/// Runs `step` of the script against the daemon at `endpoint`.
fn step(endpoint: &str, (key, secret): (&str, &str), step: &str, extra: Value) -> Value {
    let mut spec = json!({
        "endpoint": endpoint,
        "key": key,
        "secret": secret,
        "step": step,
    });
    if let (Some(spec), Some(extra)) = (spec.as_object_mut(), extra.as_object()) {
        spec.extend(extra.clone());
    }
    run_script("multipart_run.py", &spec)
}

#[test]
fn aborted_expired_and_bucket_deleted_uploads_free_their_blocks_at_gc() {
    let repo = TestRepo::new();
    let (key, secret) = create_key(&repo, &[]);
    let creds = (key.as_str(), secret.as_str());
    let part = repo.scratch("part.bin");
    std::fs::write(&part, common::random_bytes(6 * MIB, 11)).unwrap();
    let other = repo.scratch("other.bin");
    std::fs::write(&other, common::random_bytes(6 * MIB, 12)).unwrap();
    let doomed = repo.scratch("doomed.bin");
    std::fs::write(&doomed, common::random_bytes(6 * MIB, 13)).unwrap();
    // A part is imported as `cairn add` imports a file: the part's CID.
    let scratch = TestRepo::new();
    let part_cid = scratch.add(&part, &["-n"]);
    let doomed_cid = scratch.add(&doomed, &["-n"]);

    // Aborted: the part's blocks survive GC while the upload is open,
    // and go at the first GC after the abort.
    let (mut daemon, banner) = Daemon::start(&repo, &["--s3", "127.0.0.1:0"]);
    let endpoint = s3_url(&banner);
    let empty = block_bytes(&repo);
    let opened = step(&endpoint, creds, "open", json!({"file": part}));
    let id = opened["upload_id"].as_str().unwrap().to_string();
    repo.ok(&["repo", "gc"]);
    let open = block_bytes(&repo);
    assert!(open >= empty + 6 * MIB as u64, "{empty} -> {open}");
    assert!(
        recursive_pins(&repo).contains(&part_cid),
        "an open part is pinned"
    );
    let aborted = step(&endpoint, creds, "abort", json!({"upload_id": id}));
    assert_eq!(aborted["uploads"], json!([]));
    assert!(!recursive_pins(&repo).contains(&part_cid), "abort unpins");
    repo.ok(&["repo", "gc"]);
    let after = block_bytes(&repo);
    // The bucket stays, its empty tree with it.
    assert!(
        after <= empty + TREE_SLACK_BYTES,
        "abort then gc: {empty} -> {open} -> {after}"
    );
    daemon.signal(libc::SIGTERM);

    // Expired: left open past `multipart_expiry`, swept while the daemon
    // runs.
    common::set_config_at(&repo.path(), "s3", "multipart_expiry", "\"2s\"");
    let (_daemon, banner) = Daemon::start(&repo, &["--s3", "127.0.0.1:0"]);
    let endpoint = s3_url(&banner);
    let opened = step(&endpoint, creds, "open", json!({"file": other}));
    assert!(opened["upload_id"].is_string());
    repo.ok(&["repo", "gc"]);
    assert!(block_bytes(&repo) >= after + 6 * MIB as u64);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let listed = step(&endpoint, creds, "uploads", json!({}));
        if listed["uploads"] == json!([]) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "never expired: {listed}"
        );
        std::thread::sleep(std::time::Duration::from_millis(500));
    }
    repo.ok(&["repo", "gc"]);
    let expired = block_bytes(&repo);
    assert!(expired <= after, "expired then gc");

    // DeleteBucket: refused while the bucket holds an object (its upload
    // stays); a bucket holding only an upload goes, and the upload with it.
    let deleted = step(&endpoint, creds, "delete_buckets", json!({"file": doomed}));
    assert_eq!(
        deleted,
        json!({
            "kept_delete": "BucketNotEmpty",
            "kept_uploads": true,
            "doomed_head": "404",
            "doomed_uploads": "NoSuchBucket",
        })
    );
    assert!(
        !recursive_pins(&repo).contains(&doomed_cid),
        "the deleted bucket's part is unpinned"
    );
    repo.ok(&["repo", "gc"]);
    assert!(
        block_bytes(&repo) <= expired + TREE_SLACK_BYTES,
        "the deleted bucket's part is collected: {expired} -> {}",
        block_bytes(&repo)
    );
}

#[test]
fn boto3_upload_part_copy_reuses_aligned_leaves_and_imports_the_rest() {
    let repo = TestRepo::new();
    let (key, secret) = create_key(&repo, &[]);
    let creds = (key.as_str(), secret.as_str());
    let data = common::random_bytes(12 * MIB + 300_000, 21);
    let file = repo.scratch("source.bin");
    std::fs::write(&file, &data).unwrap();
    let scratch = TestRepo::new();
    let cid = scratch.add(&file, &["-n"]);
    let shifted = repo.scratch("shifted.bin");
    std::fs::write(&shifted, &data[1..]).unwrap();
    let shifted_cid = scratch.add(&shifted, &["-n"]);

    let (_daemon, banner) = Daemon::start(&repo, &["--s3", "127.0.0.1:0"]);
    let endpoint = s3_url(&banner);
    step(&endpoint, creds, "put_source", json!({"file": file}));
    let before = block_bytes(&repo);

    // Parts on chunk boundaries: the object's own leaves, nothing stored
    // again but the new interior nodes; the object has the source's CID.
    let aligned = [
        &data[..5 * MIB],
        &data[5 * MIB..10 * MIB],
        &data[10 * MIB..],
    ];
    let ranges = json!([
        format!("bytes=0-{}", 5 * MIB - 1),
        format!("bytes={}-{}", 5 * MIB, 10 * MIB - 1),
        format!("bytes={}-{}", 10 * MIB, data.len() - 1),
    ]);
    let got = step(
        &endpoint,
        creds,
        "part_copy",
        json!({"dest": "aligned", "ranges": ranges, "refusals": true}),
    );
    assert_eq!(
        got["copied"],
        json!({
            "part_etags": aligned.iter().map(|p| etag_of(p)).collect::<Vec<_>>(),
            "etag": multipart_etag(&aligned),
            "cid": cid,
            "sha256": sha256_hex(&data),
        })
    );
    assert_eq!(
        got["refusals"],
        json!({
            "past_end": "InvalidArgument",
            "malformed": "InvalidArgument",
            "if_match": "PreconditionFailed",
            "no_source": "NoSuchKey",
            "no_upload": "NoSuchUpload",
        })
    );
    let linked = block_bytes(&repo);
    assert!(
        linked - before < 64 * 1024,
        "aligned part copies stored {} bytes",
        linked - before
    );

    // Shifted by one byte: no leaf is the source's, the range is imported.
    let unaligned = [&data[1..5 * MIB + 1], &data[5 * MIB + 1..]];
    let ranges = json!([
        format!("bytes=1-{}", 5 * MIB),
        format!("bytes={}-{}", 5 * MIB + 1, data.len() - 1),
    ]);
    let got = step(
        &endpoint,
        creds,
        "part_copy",
        json!({"dest": "shifted", "ranges": ranges}),
    );
    assert_eq!(
        got["copied"],
        json!({
            "part_etags": unaligned.iter().map(|p| etag_of(p)).collect::<Vec<_>>(),
            "etag": multipart_etag(&unaligned),
            "cid": shifted_cid,
            "sha256": sha256_hex(&data[1..]),
        })
    );
    let imported = block_bytes(&repo);
    assert!(
        imported - linked >= (data.len() - 1) as u64,
        "an unaligned copy stores its bytes: {linked} -> {imported}"
    );

    // A whole object as one part (no range).
    let got = step(
        &endpoint,
        creds,
        "part_copy",
        json!({"dest": "whole", "ranges": [null]}),
    );
    assert_eq!(got["copied"]["etag"], json!(multipart_etag(&[&data])));
    assert_eq!(got["copied"]["cid"], json!(cid));
    assert_eq!(got["copied"]["sha256"], json!(sha256_hex(&data)));
    let whole = block_bytes(&repo);
    assert!(whole - imported < 64 * 1024, "{imported} -> {whole}");
}

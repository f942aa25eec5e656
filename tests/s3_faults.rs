//! Integrity of writes at the S3 endpoint, against a cairn daemon on
//! 127.0.0.1:
//! - checksums as boto3 1.44.18 sends them (a CRC32 header by default over
//!   HTTP; aws-chunked with a trailing checksum over HTTPS, through a TLS
//!   proxy the script runs), kept and given back; a wrong one refused;
//! - kill -9 of the daemon during concurrent PUTs and DELETEs, round after
//!   round (`s3-clients/boto3_crash.py`);
//! - bad input boto3 will not send, as raw signed requests
//!   (`s3-clients/s3_raw.py`): malformed XML, wrong Content-MD5 and
//!   payload hash, a 5 GiB declared body cut off after 1 MiB, refused keys,
//!   aws-chunked bodies with signed chunks and trailers, good and tampered;
//!
//! After each: nothing half-written is visible, every pin the endpoint
//! holds is an object's, and `cairn repo verify` passes.
//!
//! Needs Python >= 3.11 with its venv module, PyPI (boto3, pinned in
//! `tests/s3-clients/requirements.txt`) and the `openssl` command (the TLS
//! proxy's certificate).

mod common;

use common::process::{run_bounded, run_json_script};
use common::s3::{
    bucket_roots, clients_dir, create_key, etag_of, python, run_script, s3_url, Signer, SCRIPT_KILL,
};
use common::{Daemon, TestRepo};
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;
use std::time::Duration;

/// The base64 checksums S3 would give `data`, by algorithm name.
fn checksums_of(data: &[u8]) -> BTreeMap<&'static str, String> {
    use base64::Engine;
    use s3s::crypto::{Checksum, Crc32, Crc32c, Crc64Nvme, Sha256};
    let b64 = |d: &[u8]| base64::engine::general_purpose::STANDARD.encode(d);
    BTreeMap::from([
        ("CRC32", b64(&Crc32::checksum(data))),
        ("CRC32C", b64(&Crc32c::checksum(data))),
        ("CRC64NVME", b64(&Crc64Nvme::checksum(data))),
        ("SHA256", b64(Sha256::checksum(data).as_ref())),
    ])
}

/// The recursive pins of a stopped daemon's repo.
fn recursive_pins(repo: &TestRepo) -> BTreeSet<String> {
    repo.ok(&["pin", "ls", "--type", "recursive", "-q"])
        .lines()
        .map(str::to_string)
        .collect()
}

/// Asserts `repo verify` passes on a stopped daemon's repo.
fn verifies(repo: &TestRepo, after: &str) {
    let out = repo.run(&["repo", "verify"]);
    assert!(
        out.status.success(),
        "repo verify after {after}:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Asserts, on a stopped daemon's repo, that the recursive pins are
/// exactly `cids` (the objects') and the bucket roots, and that `repo
/// verify` passes.
fn pins_are_objects_and_roots(repo: &TestRepo, mut cids: BTreeSet<String>, after: &str) {
    cids.extend(bucket_roots(repo));
    assert_eq!(
        recursive_pins(repo),
        cids,
        "{after}: the pins are exactly the objects' CIDs and the bucket roots"
    );
    verifies(repo, after);
}

/// A self-signed certificate for 127.0.0.1 (PEM files: certificate, key).
fn certificate(repo: &TestRepo) -> (String, String) {
    let cert = repo.scratch("cert.pem");
    let key = repo.scratch("key.pem");
    let mut cmd = Command::new("openssl");
    cmd.args(["req", "-x509", "-newkey", "ec", "-pkeyopt"])
        .arg("ec_paramgen_curve:prime256v1")
        .args(["-nodes", "-days", "1", "-subj", "/CN=127.0.0.1"])
        .args(["-addext", "subjectAltName=IP:127.0.0.1"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert);
    let out = run_bounded(cmd, None, Duration::from_secs(60))
        .unwrap_or_else(|e| panic!("these tests need the openssl command: {e:#}"));
    assert!(
        out.status.success(),
        "openssl: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    (
        cert.to_string_lossy().into_owned(),
        key.to_string_lossy().into_owned(),
    )
}

#[test]
fn boto3_checksums_and_aws_chunked_uploads_are_checked_and_kept() {
    let repo = TestRepo::new();
    let (key, secret) = create_key(&repo, &[]);
    let data = common::random_bytes(3_000_000, 23);
    let file = repo.scratch("object.bin");
    std::fs::write(&file, &data).unwrap();
    let sums = checksums_of(&data);
    let other = checksums_of(b"other bytes");
    let (cert, cert_key) = certificate(&repo);
    let (mut daemon, banner) = Daemon::start(&repo, &["--s3", "127.0.0.1:0"]);
    let mut expect = sums.clone();
    expect.insert("SHA256_OF_OTHER", other["SHA256"].clone());
    expect.insert("CRC32C_OF_OTHER", other["CRC32C"].clone());
    let got = run_script(
        "boto3_checksums.py",
        &json!({
            "endpoint": s3_url(&banner),
            "key": key,
            "secret": secret,
            "file": file,
            "cert": cert,
            "cert_key": cert_key,
            "expect": expect,
        }),
    );
    eprintln!("{got:#}");
    let etag = etag_of(&data);
    let one = |name: &str| json!({ name: sums[name] });
    // What each upload sent, and what came back.
    let cases = [
        ("http_default", "CRC32", false),
        ("http_sha256", "SHA256", false),
        ("http_crc32c", "CRC32C", false),
        ("http_crc64nvme", "CRC64NVME", false),
        ("http_none", "CRC64NVME", false),
        ("https_default", "CRC32", true),
        ("https_sha256", "SHA256", true),
    ];
    for (case, algorithm, chunked) in cases {
        let c = &got[case];
        let header = format!("x-amz-checksum-{}", algorithm.to_lowercase());
        if chunked {
            // Really aws-chunked, its checksum in the trailer.
            assert_eq!(
                c["content_sha256"], "STREAMING-UNSIGNED-PAYLOAD-TRAILER",
                "{case}"
            );
            assert_eq!(c["content_encoding"], "aws-chunked", "{case}");
            assert_eq!(c["trailer"], header, "{case}");
            assert_eq!(c["decoded_length"], data.len().to_string(), "{case}");
            assert_eq!(c["checksum_headers"], json!([]), "{case}");
        } else {
            assert_eq!(c["content_encoding"], Value::Null, "{case}");
            assert_eq!(c["trailer"], Value::Null, "{case}");
            let sent = if case == "http_none" {
                json!([])
            } else {
                json!([header])
            };
            assert_eq!(c["checksum_headers"], sent, "{case}");
        }
        assert_eq!(c["put_checksums"], one(algorithm), "{case}: PutObject");
        assert_eq!(c["put_type"], "FULL_OBJECT", "{case}");
        assert_eq!(c["get_checksums"], one(algorithm), "{case}: GET");
        assert_eq!(c["get_type"], "FULL_OBJECT", "{case}");
        assert_eq!(c["head_checksums"], one(algorithm), "{case}: HEAD");
        assert_eq!(c["etag"], etag, "{case}");
        assert_eq!(c["same_bytes"], true, "{case}");
    }
    // boto3's default over plain HTTP is a CRC32 header it computes.
    assert_eq!(got["http_default"]["sdk_algorithm"], "CRC32");
    assert_ne!(got["http_default"]["content_sha256"], "UNSIGNED-PAYLOAD");
    assert_eq!(got["https_default"]["sdk_algorithm"], "CRC32");
    assert_eq!(got["upload_file"]["content_encoding"], "aws-chunked");
    assert_eq!(
        got["upload_file"]["content_sha256"],
        "STREAMING-UNSIGNED-PAYLOAD-TRAILER"
    );
    assert_eq!(got["upload_file"]["get_checksums"], one("CRC32"));
    assert_eq!(got["upload_file"]["same_bytes"], true);
    assert_eq!(got["range_checksums"], json!({}), "no checksum for a range");
    assert_eq!(got["wrong_sha256"], "BadDigest");
    assert_eq!(got["wrong_crc32c"], "BadDigest");
    assert_eq!(got["wrong_visible"], "404");
    assert_eq!(
        got["listed"],
        json!([
            "bare",
            "chunked",
            "chunked-sha256",
            "crc32c",
            "crc64",
            "default",
            "sha256",
            "uploaded"
        ])
    );
    // ListObjectsV2 and ListObjectVersions name each object's checksum
    // algorithm (a list of one) and its type.
    let full = |a: &str| json!([[a], "FULL_OBJECT"]);
    let want = json!({
        "bare": full("CRC64NVME"),
        "chunked": full("CRC32"),
        "chunked-sha256": full("SHA256"),
        "crc32c": full("CRC32C"),
        "crc64": full("CRC64NVME"),
        "default": full("CRC32"),
        "sha256": full("SHA256"),
        "uploaded": full("CRC32"),
    });
    assert_eq!(got["listed_checksums"], want);
    assert_eq!(got["listed_version_checksums"], want);

    daemon.signal(libc::SIGTERM);
    // Eight objects of the same bytes: one CID, one pin.
    let cid = TestRepo::new().add(&file, &["-n"]);
    let mut want = bucket_roots(&repo);
    want.insert(cid);
    assert_eq!(recursive_pins(&repo), want);
    verifies(&repo, "checksummed uploads");
}

#[test]
fn bad_input_gets_s3_errors_and_leaves_nothing_behind() {
    let repo = TestRepo::new();
    let (key, secret) = create_key(&repo, &[]);
    let (mut daemon, banner) = Daemon::start(&repo, &["--s3", "127.0.0.1:0"]);
    let got = run_script(
        "s3_raw.py",
        &json!({ "endpoint": s3_url(&banner), "key": key, "secret": secret }),
    );
    eprintln!("{got:#}");
    let expect = json!({
        "malformed_xml": "MalformedXML",
        "malformed_xml_bucket": "HTTP 404",
        "create": "ok",
        "wrong_md5": "BadDigest",
        "bad_md5": "InvalidDigest",
        "right_md5": "ok",
        "wrong_sha256": "XAmzContentSHA256Mismatch",
        "wrong_crc32": "BadDigest",
        "bad_crc32": "InvalidRequest",
        "two_checksums": "InvalidRequest",
        "dotdot": "InvalidArgument",
        "dotdot_alone": "InvalidArgument",
        "nul": "InvalidArgument",
        "long_1025": "KeyTooLongError",
        "long_2k": "KeyTooLongError",
        "long_1024": "ok",
        "too_large": "EntityTooLarge",
        "dots_inside": "ok",
        "chunked_signed": "ok",
        "chunked_bad_signature": "SignatureDoesNotMatch",
        "chunked_trailer": "ok",
        "chunked_trailer_wrong": "BadDigest",
        "unsigned_trailer": "ok",
        "unsigned_trailer_wrong": "BadDigest",
        "read_good/md5": true,
        "read_good/chunked": true,
        "read_good/trailer": true,
        "read_good/unsigned": true,
    });
    for (name, want) in expect.as_object().unwrap() {
        assert_eq!(&got[name], want, "{name}");
    }
    // The cut-off body: the connection ends, or S3's error for it.
    let truncated = got["truncated"].as_str().unwrap_or_default();
    assert!(
        ["closed", "IncompleteBody"].contains(&truncated),
        "truncated: {truncated}"
    );
    let long_key = format!("good/{}", "k".repeat(1019));
    let mut listed: Vec<String> = serde_json::from_value(got["listed"].clone()).unwrap();
    listed.sort();
    let mut want = vec![
        "good/a..b/.x".to_string(),
        "good/chunked".into(),
        long_key,
        "good/md5".into(),
        "good/trailer".into(),
        "good/unsigned".into(),
    ];
    want.sort();
    assert_eq!(listed, want, "only the accepted writes are visible");

    daemon.signal(libc::SIGTERM);
    // Pins: the two distinct bodies the accepted writes hold, nothing else.
    let body = repo.scratch("data");
    std::fs::write(
        &body,
        (0..200_000u32)
            .map(|i| ((i * 7 + 3) % 251) as u8)
            .collect::<Vec<_>>(),
    )
    .unwrap();
    std::fs::write(repo.scratch("x"), b"x").unwrap();
    let mut want: BTreeSet<String> = [
        TestRepo::new().add(&body, &["-n"]),
        TestRepo::new().add(&repo.scratch("x"), &["-n"]),
    ]
    .into();
    want.extend(bucket_roots(&repo));
    assert_eq!(recursive_pins(&repo), want);
    verifies(&repo, "bad input");
    // GC takes what the refused writes stored; the objects stay whole.
    repo.ok(&["repo", "gc"]);
    verifies(&repo, "gc");
}

/// Runs `boto3_crash.py MODE` with `spec`.
fn crash_script(mode: &str, spec: &Value) -> Value {
    run_json_script(
        &python(),
        &clients_dir(),
        "boto3_crash.py",
        (&[mode], &[]),
        spec,
        SCRIPT_KILL,
    )
}

/// A tiny xorshift generator: the kill moments, reproducible by seed.
struct Rng(u64);
impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

#[test]
fn kill_9_during_concurrent_puts_leaves_whole_objects_and_no_orphan_pins() {
    let rounds = common::env_u64("CAIRN_S3_CRASH_ROUNDS", 6);
    let repo = TestRepo::new();
    let (key, secret) = create_key(&repo, &[]);
    let mut rng = Rng(0x5eed_cafe ^ rounds);
    // Acknowledged and not deleted since: key -> ETag.
    let mut live: BTreeMap<String, String> = BTreeMap::new();
    let mut gone: BTreeSet<String> = BTreeSet::new();
    let mut uncertain: BTreeSet<String> = BTreeSet::new();
    let mut kills_mid_write = 0;
    for round in 0..rounds {
        let (mut daemon, banner) = Daemon::start(&repo, &["--s3", "127.0.0.1:0"]);
        let spec = json!({
            "endpoint": s3_url(&banner),
            "key": key,
            "secret": secret,
            "bucket": "crash",
            "seed": round,
            "threads": 6,
            "seconds": 20,
        });
        if round == 0 {
            crash_script("create", &spec);
        }
        let pid = daemon.child.id() as libc::pid_t;
        let delay = Duration::from_millis(400 + rng.below(2500));
        let killer = std::thread::spawn(move || {
            std::thread::sleep(delay);
            // SAFETY: SIGKILL to the daemon this test started, by its PID.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        });
        let wrote = crash_script("write", &spec);
        killer.join().unwrap();
        let _ = daemon.child.wait();
        drop(daemon);
        let puts = wrote["puts"].as_object().unwrap();
        for (k, etag) in puts {
            live.insert(k.clone(), etag.as_str().unwrap().to_string());
        }
        for k in wrote["deletes"].as_array().unwrap() {
            let k = k.as_str().unwrap();
            live.remove(k);
            gone.insert(k.to_string());
        }
        let cut = wrote["uncertain"].as_array().unwrap();
        kills_mid_write += usize::from(!cut.is_empty());
        uncertain.extend(cut.iter().map(|k| k.as_str().unwrap().to_string()));
        eprintln!(
            "round {round}: killed after {delay:?}: {} PUTs and {} DELETEs acknowledged, {} in flight",
            puts.len(),
            wrote["deletes"].as_array().unwrap().len(),
            cut.len()
        );

        // Restarted: every acknowledged object whole, nothing else but
        // writes that were in flight.
        let (mut daemon, banner) = Daemon::start(&repo, &["--s3", "127.0.0.1:0"]);
        let spec = json!({
            "endpoint": s3_url(&banner),
            "key": key,
            "secret": secret,
            "bucket": "crash",
        });
        let found = crash_script("check", &spec);
        let found = found.as_object().unwrap();
        let mut cids = BTreeSet::new();
        for (k, o) in found {
            assert_eq!(o["md5"], o["etag"], "{k} reads back whole");
            assert_eq!(o["listed_etag"], o["etag"], "{k}");
            assert_eq!(o["size"], o["listed_size"], "{k}");
            assert!(
                live.contains_key(k) || uncertain.contains(k),
                "{k} was never acknowledged nor in flight"
            );
            cids.insert(o["cid"].as_str().unwrap().to_string());
        }
        for (k, etag) in &live {
            match found.get(k) {
                Some(o) => assert_eq!(o["etag"], *etag, "{k}"),
                // Deleted while the kill came: the DELETE was in flight.
                None => assert!(uncertain.contains(k), "acknowledged {k} is gone"),
            }
        }
        for k in &gone {
            assert!(!found.contains_key(k), "deleted {k} is back");
        }
        // What is visible now is the truth from here on.
        live = found
            .iter()
            .map(|(k, o)| (k.clone(), o["etag"].as_str().unwrap().to_string()))
            .collect();
        uncertain.clear();
        daemon.signal(libc::SIGTERM);
        pins_are_objects_and_roots(&repo, cids, &format!("round {round}"));
    }
    assert!(!live.is_empty(), "some objects were written");
    eprintln!("{kills_mid_write} of {rounds} kills cut writes in flight");
}

/// Signed S3 requests from many threads at once, without an SDK (boto3's
/// threads would measure Python more than the endpoint).
struct RawS3 {
    url: String,
    signer: Signer,
    agent: ureq::Agent,
}

/// What an answer carried: status, ETag, `x-cairn-cid`, body.
struct Answer {
    status: u16,
    etag: String,
    cid: String,
    body: Vec<u8>,
}

impl RawS3 {
    fn new(url: String, key: &str, secret: &str) -> RawS3 {
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .max_idle_connections(256)
            .max_idle_connections_per_host(256)
            .timeout_global(Some(Duration::from_secs(60)))
            .build()
            .into();
        RawS3 {
            url,
            signer: Signer::new(key, secret),
            agent,
        }
    }

    /// `method path?query` with `body` (PUT only); an error when no answer
    /// came (the daemon was killed).
    fn call(
        &self,
        method: &str,
        path: &str,
        query: &[(&str, &str)],
        body: &[u8],
    ) -> Result<Answer, ureq::Error> {
        let (url, headers) = self.signer.sign(method, &self.url, path, query);
        let resp = if method == "PUT" {
            headers
                .into_iter()
                .fold(self.agent.put(url), |r, (n, v)| r.header(n, v))
                .send(body)?
        } else {
            headers
                .into_iter()
                .fold(self.agent.get(url), |r, (n, v)| r.header(n, v))
                .call()?
        };
        let header = |name: &str| {
            resp.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_string()
        };
        let (status, etag, cid) = (
            resp.status().as_u16(),
            header("etag"),
            header("x-cairn-cid"),
        );
        let body = resp
            .into_body()
            .into_with_config()
            .limit(64 << 20)
            .read_to_vec()?;
        Ok(Answer {
            status,
            etag,
            cid,
            body,
        })
    }

    /// Every key of `bucket` and its listed ETag, through ListObjectsV2
    /// pages of 100.
    fn list(&self, bucket: &str) -> BTreeMap<String, String> {
        let mut all = BTreeMap::new();
        let mut token: Option<String> = None;
        loop {
            let mut query = vec![("list-type", "2"), ("max-keys", "100")];
            if let Some(t) = &token {
                query.push(("continuation-token", t));
            }
            let a = self
                .call("GET", &format!("/{bucket}"), &query, b"")
                .expect("list");
            assert_eq!(a.status, 200, "{}", String::from_utf8_lossy(&a.body));
            let xml = String::from_utf8(a.body).expect("XML");
            let keys = xml_values(&xml, "Key");
            let etags = xml_values(&xml, "ETag");
            assert_eq!(keys.len(), etags.len(), "{xml}");
            all.extend(
                keys.into_iter()
                    .zip(etags.into_iter().map(|e| e.replace("&quot;", "\""))),
            );
            token = xml_values(&xml, "NextContinuationToken").into_iter().next();
            if token.is_none() {
                return all;
            }
        }
    }
}

/// The text of every `<tag>` element in `xml` (no nesting, no escapes
/// but `&quot;`, which the caller undoes).
fn xml_values(xml: &str, tag: &str) -> Vec<String> {
    let (open, close) = (format!("<{tag}>"), format!("</{tag}>"));
    xml.split(&open)
        .skip(1)
        .filter_map(|s| s.split_once(&close).map(|(v, _)| v.to_string()))
        .collect()
}

/// A 4 KiB body from `seed` (bodies of the same seed are the same object).
fn small_body(seed: u64) -> Vec<u8> {
    let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
    (0..4096).map(|_| rng.below(256) as u8).collect()
}

/// `threads` writers PUT 4 KiB objects into `bucket` at once, `per_thread`
/// each (unbounded: until a request fails). A quarter of the bodies are
/// shared between threads (one CID, several keys, often in one group).
/// Returns the acknowledged keys (with their ETags) and the keys in
/// flight when a request failed.
fn put_concurrently(
    s3: &std::sync::Arc<RawS3>,
    bucket: &str,
    round: u64,
    threads: u64,
    per_thread: Option<u64>,
) -> (BTreeMap<String, String>, BTreeSet<String>) {
    let workers: Vec<_> = (0..threads)
        .map(|t| {
            let s3 = std::sync::Arc::clone(s3);
            let bucket = bucket.to_string();
            std::thread::spawn(move || {
                let (mut acked, mut cut) = (BTreeMap::new(), BTreeSet::new());
                for i in 0..per_thread.unwrap_or(u64::MAX) {
                    let seed = if i % 4 == 0 {
                        i % 3
                    } else {
                        (round << 40) | (t << 20) | i
                    };
                    let body = small_body(seed);
                    let key = format!("g{round}/t{t}/{i}");
                    match s3.call("PUT", &format!("/{bucket}/{key}"), &[], &body) {
                        Ok(a) => {
                            assert_eq!(
                                a.status,
                                200,
                                "PUT {key}: {}",
                                String::from_utf8_lossy(&a.body)
                            );
                            assert_eq!(a.etag, etag_of(&body), "PUT {key}");
                            acked.insert(key, a.etag);
                        }
                        Err(_) => {
                            cut.insert(key);
                            break;
                        }
                    }
                }
                (acked, cut)
            })
        })
        .collect();
    let (mut acked, mut cut) = (BTreeMap::new(), BTreeSet::new());
    for w in workers {
        let (a, c) = w.join().expect("writer");
        acked.extend(a);
        cut.extend(c);
    }
    (acked, cut)
}

/// Every object of `bucket` read whole: its ETag is its body's MD5 and
/// its listed ETag. Returns the keys with their ETags, and their CIDs.
fn read_all(s3: &RawS3, bucket: &str) -> (BTreeMap<String, String>, BTreeSet<String>) {
    let listed = s3.list(bucket);
    let mut cids = BTreeSet::new();
    for (key, etag) in &listed {
        let a = s3
            .call("GET", &format!("/{bucket}/{key}"), &[], b"")
            .expect("GET");
        assert_eq!(a.status, 200, "GET {key}");
        assert_eq!(etag_of(&a.body), *etag, "{key} reads back whole");
        assert_eq!(a.etag, *etag, "{key}");
        cids.insert(a.cid);
    }
    (listed, cids)
}

#[test]
fn concurrent_puts_all_land_and_an_acknowledged_put_survives_kill_9() {
    let repo = TestRepo::new();
    let (key, secret) = create_key(&repo, &[]);
    let start = || {
        let (daemon, banner) = Daemon::start(&repo, &["--s3", "127.0.0.1:0"]);
        let s3 = std::sync::Arc::new(RawS3::new(s3_url(&banner), &key, &secret));
        (daemon, s3)
    };
    let kill = |daemon: &mut Daemon| {
        // SAFETY: SIGKILL to the daemon this test started, by its PID.
        unsafe { libc::kill(daemon.child.id() as libc::pid_t, libc::SIGKILL) };
        let _ = daemon.child.wait();
    };
    let (mut daemon, s3) = start();
    assert_eq!(s3.call("PUT", "/many", &[], b"").unwrap().status, 200);

    // 64 writers at once, every PUT answered 200; killed right after the
    // last answer, without a chance to flush anything more.
    let (acked, cut) = put_concurrently(&s3, "many", 0, 64, Some(12));
    assert!(cut.is_empty(), "{cut:?}");
    assert_eq!(acked.len(), 64 * 12);
    kill(&mut daemon);
    let (mut daemon, s3) = start();
    let (found, _) = read_all(&s3, "many");
    assert_eq!(
        found, acked,
        "every acknowledged PUT is listed, and nothing else"
    );

    // Killed while 64 writers PUT: every acknowledged object is there
    // whole, nothing is but those and the ones in flight.
    let killer = {
        let pid = daemon.child.id() as libc::pid_t;
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(1500));
            // SAFETY: SIGKILL to the daemon this test started, by its PID.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        })
    };
    let (more, cut) = put_concurrently(&s3, "many", 1, 64, None);
    killer.join().unwrap();
    let _ = daemon.child.wait();
    drop(daemon);
    assert!(!more.is_empty(), "some PUTs were answered before the kill");
    eprintln!(
        "{} PUTs acknowledged before the kill, {} in flight",
        more.len(),
        cut.len()
    );
    let (mut daemon, s3) = start();
    let (found, cids) = read_all(&s3, "many");
    for (k, etag) in acked.iter().chain(&more) {
        assert_eq!(
            found.get(k),
            Some(etag),
            "acknowledged {k} survives kill -9"
        );
    }
    for k in found.keys() {
        assert!(
            acked.contains_key(k) || more.contains_key(k) || cut.contains(k),
            "{k} was never acknowledged nor in flight"
        );
    }
    daemon.signal(libc::SIGTERM);
    pins_are_objects_and_roots(&repo, cids, "kill -9 during concurrent PUTs");
}

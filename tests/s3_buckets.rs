//! Buckets on the network, driven by boto3 against real daemons on
//! 127.0.0.1: node A writes a bucket and publishes its root under its IPNS
//! name; node B (bootstrapped to A) mounts that name and serves the bucket
//! read-only through its own S3 endpoint, fetching tree nodes and bodies
//! from A; A writes more and B follows the republished root. `cairn s3 ls`
//! answers the same through a daemon and offline.
//!
//! Needs Python >= 3.11 with its venv module, and PyPI (boto3, pinned in
//! tests/s3-clients/requirements.txt).

mod common;

use common::s3::{create_key, hex, md5_of, run_script, s3_url, sha256_hex};
use common::{Daemon, TestRepo};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// Calls `f` every 250 ms until it returns something, for `within` at most.
fn poll<T>(within: Duration, what: &str, f: impl FnMut() -> Option<T>) -> T {
    common::poll_every(Duration::from_millis(250), within, what, f)
}

/// `cairn s3 ls` as (bucket → (root, the rest of the line)).
fn buckets(repo: &TestRepo) -> BTreeMap<String, (String, String)> {
    repo.ok(&["s3", "ls"])
        .lines()
        .map(|l| {
            let mut parts = l.splitn(3, ' ');
            let name = parts.next().unwrap_or_default().to_string();
            let root = parts.next().unwrap_or_default().to_string();
            (name, (root, parts.next().unwrap_or_default().to_string()))
        })
        .collect()
}

/// `cairn s3 ls BUCKET` as (key → [cid, size, etag, mtime]).
fn objects(repo: &TestRepo, bucket: &str) -> BTreeMap<String, Vec<String>> {
    repo.ok(&["s3", "ls", bucket])
        .lines()
        .map(|l| {
            let parts: Vec<&str> = l.splitn(5, ' ').collect();
            assert_eq!(parts.len(), 5, "{l:?}");
            let fields = parts[..4].iter().map(|s| s.to_string()).collect();
            (parts[4].to_string(), fields)
        })
        .collect()
}

/// The number after `field:` in `cairn bitswap stat`.
fn bitswap_stat(repo: &TestRepo, field: &str) -> u64 {
    let out = repo.ok(&["bitswap", "stat"]);
    out.lines()
        .find_map(|l| l.trim().strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {field} in {out:?}"))
}

#[test]
fn a_published_bucket_is_served_read_only_where_it_is_mounted_and_follows_writes() {
    let a = TestRepo::new();
    a.ok(&["init"]);
    let (mut daemon_a, banner_a) = Daemon::start(&a, &["--s3", "127.0.0.1:0"]);
    let boot = common::swarm_addr(&banner_a);
    let b = TestRepo::new();
    b.ok(&["init"]);
    let (mut daemon_b, banner_b) =
        Daemon::start(&b, &["--s3", "127.0.0.1:0", "--bootstrap", &boot]);
    let (key_a, secret_a) = create_key(&a, &[]);
    let (key_b, secret_b) = create_key(&b, &[]);
    let step = |endpoint: &str, key: &str, secret: &str, spec: Value| {
        let mut full = json!({
            "endpoint": endpoint, "key": key, "secret": secret, "bucket": "shared",
            "content_type": "text/markdown", "metadata": {"owner": "alice"},
        });
        full.as_object_mut()
            .unwrap()
            .extend(spec.as_object().unwrap().clone());
        run_script("boto3_buckets.py", &full)
    };
    let (url_a, url_b) = (s3_url(&banner_a), s3_url(&banner_b));
    let write = |spec: Value| step(&url_a, &key_a, &secret_a, spec);
    let read = || step(&url_b, &key_b, &secret_b, json!({"step": "read"}));

    let mut texts: BTreeMap<String, String> = [
        ("readme.txt", "read me first"),
        ("docs/a.md", "# a"),
        ("docs/b.md", "# b, longer"),
        ("docs/c/d.md", "# d, deeper"),
        ("photos/1.jpg", "not really a jpeg"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    write(json!({"step": "write", "puts": texts}));

    // A's bucket has a root; its objects are listed with CIDs and ETags.
    let root = buckets(&a)["shared"].0.clone();
    assert!(root.starts_with("bafyrei"), "a DAG-CBOR root: {root}");
    let listed = objects(&a, "shared");
    assert_eq!(
        listed.keys().collect::<Vec<_>>(),
        texts.keys().collect::<Vec<_>>()
    );
    for (key, text) in &texts {
        let fields = &listed[key];
        assert_eq!(fields[1], text.len().to_string(), "{key} size");
        assert_eq!(fields[2], hex(&md5_of(text.as_bytes())), "{key} ETag");
    }

    // Publish on A, mount on B.
    let out = a.ok(&["s3", "bucket", "publish", "shared"]);
    let (name, published) = out
        .trim()
        .strip_prefix("Published shared to ")
        .and_then(|r| r.split_once(": /ipfs/"))
        .unwrap_or_else(|| panic!("unexpected publish output {out:?}"));
    assert_eq!(published, root);
    assert_eq!(buckets(&a)["shared"].1, "published:self");
    b.ok(&["s3", "bucket", "mount", "shared", &format!("/ipns/{name}")]);
    poll(Duration::from_secs(60), "B resolves the mount", || {
        (buckets(&b).get("shared").map(|r| r.0.as_str()) == Some(root.as_str())).then_some(())
    });

    let check =
        |got: &Value, texts: &BTreeMap<String, String>, listed: &BTreeMap<String, Vec<String>>| {
            let keys: Vec<&String> = texts.keys().collect();
            assert_eq!(got["keys"], json!(keys), "{got}");
            assert_eq!(got["buckets"], json!(["shared"]));
            let docs: Vec<&String> = keys
                .iter()
                .copied()
                .filter(|k| k.starts_with("docs/"))
                .collect();
            let pages: Vec<Vec<&String>> = docs.chunks(2).map(|c| c.to_vec()).take(2).collect();
            assert_eq!(got["docs_pages"], json!(pages), "{got}");
            for (key, text) in texts {
                let o = &got["objects"][key];
                let etag = format!("\"{}\"", hex(&md5_of(text.as_bytes())));
                assert_eq!(o["sha256"], json!(sha256_hex(text.as_bytes())), "{key}");
                assert_eq!((&o["etag"], &o["head_etag"]), (&json!(etag), &json!(etag)));
                assert_eq!(o["content_type"], json!("text/markdown"));
                assert_eq!(o["metadata"], json!({"owner": "alice"}));
                assert_eq!(o["cid"], json!(listed[key][0]), "{key}: the CID A lists");
            }
            assert_eq!(got["missing"], json!("NoSuchKey"));
            for refused in ["put", "delete", "delete_bucket"] {
                assert_eq!(got[refused], json!("AccessDenied"), "{refused}: {got}");
            }
        };
    let got = read();
    check(&got, &texts, &listed);
    assert_eq!(
        got["top"],
        json!({"keys": ["readme.txt"], "prefixes": ["docs/", "photos/"]})
    );
    assert_eq!(objects(&b, "shared"), listed, "B lists what A lists");
    // B had none of it: the root, the tree and the bodies came by Bitswap.
    let received = bitswap_stat(&b, "blocks received");
    assert!(received > texts.len() as u64, "{received} blocks received");
    assert!(bitswap_stat(&a, "blocks sent") >= received);

    // A writes more: B follows the republished root.
    texts.insert("docs/e.md".into(), "# e, new".into());
    texts.remove("photos/1.jpg");
    let wrote = Instant::now();
    write(json!({"step": "write", "puts": {"docs/e.md": "# e, new"}, "deletes": ["photos/1.jpg"]}));
    let root2 = buckets(&a)["shared"].0.clone();
    assert_ne!(root2, root);
    poll(Duration::from_secs(60), "B follows A's new root", || {
        (buckets(&b)["shared"].0 == root2).then_some(())
    });
    eprintln!("A's write seen on B after {:?}", wrote.elapsed());
    let listed2 = objects(&a, "shared");
    let got = read();
    check(&got, &texts, &listed2);
    assert_eq!(
        got["top"],
        json!({"keys": ["readme.txt"], "prefixes": ["docs/"]})
    );
    assert_eq!(objects(&b, "shared"), listed2);

    // Offline, the repos answer as their daemons did.
    daemon_a.signal(libc::SIGTERM);
    daemon_b.signal(libc::SIGTERM);
    assert_eq!(buckets(&a)["shared"].0, root2);
    assert_eq!(objects(&a, "shared"), listed2);
    let mounted = buckets(&b);
    assert_eq!(
        mounted["shared"],
        (root2.clone(), format!("mounted:/ipns/{name}"))
    );
    // The root block B fetched is in its own repo now.
    assert!(b.ok(&["block", "stat", &root2]).contains(&root2));
}

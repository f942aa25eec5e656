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

/// Runs boto3_buckets.py against `endpoint` as `key`/`secret` on `bucket`
/// with `spec`'s fields (and plain-text defaults) added.
fn boto3_step(endpoint: &str, (key, secret): (&str, &str), bucket: &str, spec: Value) -> Value {
    let mut full = json!({
        "endpoint": endpoint, "key": key, "secret": secret, "bucket": bucket,
        "content_type": "text/plain", "metadata": {},
    });
    full.as_object_mut()
        .unwrap()
        .extend(spec.as_object().unwrap().clone());
    run_script("boto3_buckets.py", &full)
}

/// Whether `repo`'s daemon pins `cid` recursively.
fn pins(repo: &TestRepo, cid: &str) -> bool {
    repo.ok(&["pin", "ls", "--type", "recursive", "-q"])
        .lines()
        .any(|l| l.trim() == cid)
}

/// A bucket at factor 2: B holds its objects and root, deleting an object
/// releases both copies, and once A is gone the bucket survives on B: a
/// third node mounts it by the name A published and serves it over S3.
#[test]
fn a_replicated_buckets_objects_and_root_are_held_by_another_node_and_released_with_them() {
    let configure = |repo: &TestRepo| {
        repo.ok(&["init"]);
        repo.set_config("replication", "repair_interval", "\"1s\"");
        repo.set_config("replication", "grace", "\"3s\"");
    };
    let a = TestRepo::new();
    configure(&a);
    let (mut daemon_a, banner_a) = Daemon::start(&a, &["--s3", "127.0.0.1:0"]);
    let b = TestRepo::new();
    configure(&b);
    let (_daemon_b, banner_b) = Daemon::start(&b, &["--bootstrap", &common::swarm_addr(&banner_a)]);
    let (key, secret) = create_key(&a, &[]);

    // Made by the CLI (through A's daemon) with a factor; S3's CreateBucket
    // keeps the node's default.
    let made = a.ok(&["s3", "bucket", "create", "kept", "--replication", "2"]);
    assert!(made.starts_with("kept bafyrei"), "{made}");
    assert!(made.trim_end().ends_with(" replication:2"), "{made}");
    let refused = a.fails(&["s3", "bucket", "create", "kept"]);
    assert!(refused.contains("exists already"), "{refused}");
    let refused = a.fails(&["s3", "bucket", "create", "other", "--replication", "0"]);
    assert!(refused.contains("replication"), "{refused}");

    let url = s3_url(&banner_a);
    let write = |spec: Value| boto3_step(&url, (&key, &secret), "kept", spec);
    let text = "kept on two nodes";
    write(json!({"step": "write", "puts": {"kept.txt": text, "brief.txt": "soon gone"}}));
    let listed = objects(&a, "kept");
    let (cid, gone) = (
        listed["kept.txt"][0].clone(),
        listed["brief.txt"][0].clone(),
    );
    let root = buckets(&a)["kept"].0.clone();
    assert_eq!(buckets(&a)["kept"].1, "replication:2");

    // B holds every object and the bucket's root, pinned.
    let held = Instant::now();
    poll(
        Duration::from_secs(60),
        "B pins the objects and the root",
        || (pins(&b, &cid) && pins(&b, &gone) && pins(&b, &root)).then_some(()),
    );
    eprintln!("B held the bucket {:?} after the write", held.elapsed());
    let status = a.ok(&["pin", "status", &cid]);
    assert!(
        status.starts_with(&format!("{cid}: ok (2/2 pinned")),
        "{status}"
    );

    // Deleting an object releases its copies: B's pin goes with A's.
    write(json!({"step": "write", "deletes": ["brief.txt"]}));
    let root2 = buckets(&a)["kept"].0.clone();
    assert_ne!(root2, root);
    // A's pin went back to the replicator, which removes it with the
    // replication (its tombstone) on A and B alike.
    poll(
        Duration::from_secs(60),
        "A and B drop the deleted object, B the old root",
        || {
            (!pins(&a, &gone) && !pins(&b, &gone) && !pins(&b, &root) && pins(&b, &root2))
                .then_some(())
        },
    );

    // Published before A goes: its name resolves from the DHT after.
    let out = a.ok(&["s3", "bucket", "publish", "kept"]);
    let name = out
        .trim()
        .strip_prefix("Published kept to ")
        .and_then(|r| r.split_once(": /ipfs/"))
        .map(|(name, _)| name.to_string())
        .unwrap_or_else(|| panic!("unexpected publish output {out:?}"));

    // A stops: B still serves the object by its CID, and a third node
    // that never met A mounts the bucket by its name and serves it over
    // S3 from B's copies.
    daemon_a.signal(libc::SIGTERM);
    assert_eq!(b.ok(&["cat", &cid]), text);
    assert!(b.ok(&["block", "stat", &root2]).contains(&root2));
    let c = TestRepo::new();
    c.ok(&["init"]);
    let (_daemon_c, banner_c) = Daemon::start(
        &c,
        &[
            "--s3",
            "127.0.0.1:0",
            "--bootstrap",
            &common::swarm_addr(&banner_b),
        ],
    );
    c.ok(&["s3", "bucket", "mount", "kept", &format!("/ipns/{name}")]);
    poll(Duration::from_secs(60), "C resolves the mount", || {
        (buckets(&c).get("kept").map(|r| r.0.as_str()) == Some(root2.as_str())).then_some(())
    });
    let (key_c, secret_c) = create_key(&c, &[]);
    let got = boto3_step(
        &s3_url(&banner_c),
        (&key_c, &secret_c),
        "kept",
        json!({"step": "get"}),
    );
    assert_eq!(
        got["objects"],
        json!({"kept.txt": sha256_hex(text.as_bytes())}),
        "{got}"
    );
    // Offline, A lists the factor and publication as its daemon did.
    assert_eq!(
        buckets(&a)["kept"],
        (root2, "published:self replication:2".to_string())
    );
}

/// The replications a bucket started are the endpoint's to end across a
/// restart: an object written before the daemon restarted and deleted
/// after loses its replication (tombstoned, so its pin goes), as does the
/// root the delete moved past; they were forgotten with the endpoint's
/// memory before, and stayed pinned for good.
#[test]
fn a_replicated_object_written_before_a_restart_is_released_after_it() {
    let a = TestRepo::new();
    a.ok(&["init"]);
    a.set_config("replication", "repair_interval", "\"1s\"");
    let (mut daemon, banner) = Daemon::start(&a, &["--s3", "127.0.0.1:0"]);
    let (key, secret) = create_key(&a, &[]);
    a.ok(&["s3", "bucket", "create", "kept", "--replication", "1"]);
    let url = s3_url(&banner);
    let write = |url: &str, spec: Value| boto3_step(url, (&key, &secret), "kept", spec);
    write(
        &url,
        json!({"step": "write", "puts": {"x.txt": "before the restart"}}),
    );
    let cid = objects(&a, "kept")["x.txt"][0].clone();
    let root = buckets(&a)["kept"].0.clone();
    let replicated = |cid: &str| {
        a.run(&["pin", "status", cid]).status.success()
            && a.ok(&["pin", "status", cid]).contains(": ok (1/1")
    };
    poll(
        Duration::from_secs(30),
        "the object and root replicated",
        || (replicated(&cid) && replicated(&root)).then_some(()),
    );
    daemon.signal(libc::SIGTERM);

    let (_daemon, banner) = Daemon::start(&a, &["--s3", "127.0.0.1:0"]);
    write(
        &s3_url(&banner),
        json!({"step": "write", "deletes": ["x.txt"]}),
    );
    poll(
        Duration::from_secs(30),
        "the deleted object and the old root unpinned",
        || (!pins(&a, &cid) && !pins(&a, &root)).then_some(()),
    );
    let new_root = buckets(&a)["kept"].0.clone();
    assert!(pins(&a, &new_root));
    assert!(replicated(&new_root));
}

/// A CID the user replicates (`pin add --replication`) that is also an
/// object of an ordinary bucket keeps its pin, its blocks and its
/// replication when the object is deleted: the bucket hands the pin back
/// to the replicator instead of removing it (or tombstoning the root on
/// every holder).
#[test]
fn deleting_an_object_keeps_a_replicated_pin_of_the_same_cid() {
    let a = TestRepo::new();
    a.ok(&["init"]);
    let (_daemon, banner) = Daemon::start(&a, &["--s3", "127.0.0.1:0"]);
    let (key, secret) = create_key(&a, &[]);
    a.ok(&["s3", "bucket", "create", "plain"]);
    let url = s3_url(&banner);
    let write = |spec: Value| boto3_step(&url, (&key, &secret), "plain", spec);
    let text = "the user replicates these bytes too";
    write(json!({"step": "write", "puts": {"x.txt": text}}));
    let cid = objects(&a, "plain")["x.txt"][0].clone();
    a.ok(&["pin", "add", "--replication", "1", &cid]);

    write(json!({"step": "write", "deletes": ["x.txt"]}));
    a.ok(&["repo", "gc"]);
    assert!(pins(&a, &cid), "the replicated pin went with the object");
    assert_eq!(a.ok(&["cat", &cid]), text);
    let status = a.ok(&["pin", "status", &cid]);
    assert!(status.starts_with(&format!("{cid}: ok (1/1")), "{status}");
}

/// An object a replicated bucket replicates, which the user then
/// replicates too (`pin add --replication`: the pin becomes the
/// replicator's), is the user's once the object is deleted: its pin and
/// replication stay; the endpoint tombstoned it network-wide before.
#[test]
fn deleting_an_object_the_user_replicates_since_keeps_its_replication() {
    let a = TestRepo::new();
    a.ok(&["init"]);
    a.set_config("replication", "repair_interval", "\"1s\"");
    let (_daemon, banner) = Daemon::start(&a, &["--s3", "127.0.0.1:0"]);
    let (key, secret) = create_key(&a, &[]);
    a.ok(&["s3", "bucket", "create", "kept", "--replication", "1"]);
    let url = s3_url(&banner);
    let write = |spec: Value| boto3_step(&url, (&key, &secret), "kept", spec);
    let text = "the endpoint replicates these, then the user";
    write(json!({"step": "write", "puts": {"x.txt": text}}));
    let cid = objects(&a, "kept")["x.txt"][0].clone();
    let replicated = |cid: &str| {
        a.run(&["pin", "status", cid]).status.success()
            && a.ok(&["pin", "status", cid]).contains(": ok (1/1")
    };
    poll(Duration::from_secs(30), "the object replicated", || {
        replicated(&cid).then_some(())
    });
    a.ok(&["pin", "add", "--replication", "1", &cid]);

    write(json!({"step": "write", "deletes": ["x.txt"]}));
    let root = buckets(&a)["kept"].0.clone();
    poll(Duration::from_secs(30), "the new root replicated", || {
        replicated(&root).then_some(())
    });
    // Repair rounds (1 s) that would act on a tombstone.
    std::thread::sleep(Duration::from_secs(4));
    a.ok(&["repo", "gc"]);
    assert!(
        pins(&a, &cid),
        "the user's replicated pin went with the object"
    );
    assert_eq!(a.ok(&["cat", &cid]), text);
    assert!(replicated(&cid), "{}", a.ok(&["pin", "status", &cid]));
}

/// The user's own plain pins (`pin add`, `add` of the same bytes) of a
/// CID an object or a bucket root also has stay when the bucket lets go
/// of it (the object deleted or overwritten, the root moved past): a CID
/// has one pin, whoever made it first, and the endpoint removed it as its
/// own. Pins only the endpoint made still go, and `pin rm` still removes
/// a claimed one.
#[test]
fn the_users_own_pins_of_a_buckets_cids_stay_when_the_bucket_lets_go() {
    let a = TestRepo::new();
    a.ok(&["init"]);
    let (mut daemon, banner) = Daemon::start(&a, &["--s3", "127.0.0.1:0"]);
    let (key, secret) = create_key(&a, &[]);
    a.ok(&["s3", "bucket", "create", "plain"]);
    let url = s3_url(&banner);
    let write = |url: &str, spec: Value| boto3_step(url, (&key, &secret), "plain", spec);
    let texts = [
        ("pinned.txt", "the user pins these bytes too"),
        ("added.txt", "and adds a file of these"),
        ("over.txt", "overwritten soon, pinned before"),
        ("alone.txt", "only the bucket keeps these"),
    ];
    let puts: serde_json::Map<String, Value> = texts
        .iter()
        .map(|(k, t)| (k.to_string(), json!(t)))
        .collect();
    write(&url, json!({"step": "write", "puts": puts}));
    let listed = objects(&a, "plain");
    let cid = |k: &str| listed[k][0].clone();
    a.ok(&["pin", "add", &cid("pinned.txt")]);
    let file = a.scratch("added.txt");
    std::fs::write(&file, texts[1].1).unwrap();
    assert_eq!(a.add(&file, &[]), cid("added.txt"), "PUT and add: one CID");
    a.ok(&["pin", "add", &cid("over.txt")]);
    let snapshot = buckets(&a)["plain"].0.clone();
    a.ok(&["pin", "add", &snapshot]);

    write(
        &url,
        json!({"step": "write", "puts": {"over.txt": "new bytes"},
               "deletes": ["pinned.txt", "added.txt", "alone.txt"]}),
    );
    assert_ne!(buckets(&a)["plain"].0, snapshot, "the root moved on");
    a.ok(&["repo", "gc"]);
    for (k, text) in &texts[..3] {
        assert!(pins(&a, &cid(k)), "the user's pin of {k} went with it");
        assert_eq!(a.ok(&["cat", &cid(k)]), *text);
    }
    assert!(!pins(&a, &cid("alone.txt")), "the endpoint's own pin stays");
    assert!(pins(&a, &snapshot), "the user's pin of the old root went");
    // The snapshot still reads back whole, and a restart (which settles
    // the endpoint's pending pins) keeps it all.
    assert!(a.run(&["dag", "export", &snapshot]).status.success());
    daemon.signal(libc::SIGTERM);
    let (_daemon, _) = Daemon::start(&a, &["--s3", "127.0.0.1:0"]);
    a.ok(&["repo", "gc"]);
    for (k, _) in &texts[..3] {
        assert!(pins(&a, &cid(k)), "{k} unpinned by the restart");
    }
    assert!(a.run(&["dag", "export", &snapshot]).status.success());
    // `pin rm` removes a claimed pin as any other.
    a.ok(&["pin", "rm", &cid("pinned.txt")]);
    assert!(!pins(&a, &cid("pinned.txt")));
}

/// `pin rm` never unpins what a bucket still names: a noncurrent version
/// or an old root's blocks are kept by nothing else, so GC would free
/// them. The endpoint's own pins are refused (online and offline); a pin
/// the user made (`pin add` of an object's CID, or `add` of the same
/// bytes before the PUT) loses the user's claim and stays the endpoint's,
/// which lets it go with the last version naming it. A direct pin of a
/// CID pinned recursively is refused as Kubo refuses it.
#[test]
fn pin_rm_never_unpins_what_a_bucket_still_names() {
    let a = TestRepo::new();
    a.ok(&["init"]);
    let (mut daemon, banner) = Daemon::start(&a, &["--s3", "127.0.0.1:0"]);
    let (key, secret) = create_key(&a, &[]);
    let url = s3_url(&banner);
    let step = |spec: Value| boto3_step(&url, (&key, &secret), "kept", spec);
    step(json!({"step": "versioning"}));
    let texts = [
        ("own.txt", "only the endpoint pins these bytes"),
        ("added.txt", "added by the user before the bucket had them"),
        ("claimed.txt", "pinned by the user after the PUT"),
    ];
    let file = a.scratch("added.txt");
    std::fs::write(&file, texts[1].1).unwrap();
    let added = a.add(&file, &[]);
    let puts: serde_json::Map<String, Value> = texts
        .iter()
        .map(|(k, t)| (k.to_string(), json!(t)))
        .collect();
    let first = step(json!({"step": "write", "puts": puts}));
    let listed = objects(&a, "kept");
    let cid = |k: &str| listed[k][0].clone();
    assert_eq!(cid("added.txt"), added, "PUT and add: one CID");
    a.ok(&["pin", "add", &cid("claimed.txt")]);
    let old_root = buckets(&a)["kept"].0.clone();
    // Every key overwritten: the first versions are noncurrent, held by
    // their pins alone.
    let news: serde_json::Map<String, Value> = texts
        .iter()
        .map(|(k, _)| (k.to_string(), json!(format!("new bytes of {k}"))))
        .collect();
    step(json!({"step": "write", "puts": news}));
    assert_ne!(buckets(&a)["kept"].0, old_root);

    let refused = a.fails(&["pin", "rm", &cid("own.txt")]);
    assert!(refused.contains("S3 endpoint"), "{refused}");
    let root = buckets(&a)["kept"].0.clone();
    assert!(a.fails(&["pin", "rm", &root]).contains("S3 endpoint"));
    a.ok(&["pin", "rm", &cid("added.txt")]);
    a.ok(&["pin", "rm", &cid("claimed.txt")]);
    a.ok(&["repo", "gc"]);
    let versions: Vec<Value> = texts
        .iter()
        .map(|(k, _)| json!([k, first["versions"][k]]))
        .collect();
    let got = step(json!({"step": "get_versions", "versions": versions}));
    for (i, (k, text)) in texts.iter().enumerate() {
        assert!(pins(&a, &cid(k)), "{k}'s pin went while a version names it");
        let want = sha256_hex(text.as_bytes());
        assert_eq!(got["got"][i], json!(want), "{k}'s first version after gc");
    }
    assert!(a.run(&["dag", "export", &root]).status.success());

    // A direct pin over the endpoint's recursive one is refused.
    let current = objects(&a, "kept")["own.txt"][0].clone();
    let direct = a.fails(&["pin", "add", "--recursive=false", &current]);
    assert!(direct.contains("already pinned recursively"), "{direct}");

    // Without the daemon, `pin rm` asks the bucket index the same.
    daemon.signal(libc::SIGTERM);
    assert!(a
        .fails(&["pin", "rm", &cid("own.txt")])
        .contains("S3 endpoint"));
    assert!(a.fails(&["pin", "rm", &root]).contains("S3 endpoint"));

    // The versions deleted, their pins go: the endpoint's alone now.
    let (_daemon, banner) = Daemon::start(&a, &["--s3", "127.0.0.1:0"]);
    let url = s3_url(&banner);
    boto3_step(
        &url,
        (&key, &secret),
        "kept",
        json!({"step": "write", "delete_versions": versions}),
    );
    for (k, _) in &texts {
        assert!(
            !pins(&a, &cid(k)),
            "{k} still pinned after its version went"
        );
    }
}

/// A factor the user sets on an object a replicated bucket keeps (`pin add
/// --replication`, higher than the bucket's) stays when the bucket
/// hands the object over again (another key of the same bytes, a
/// restart's recovery): it was reset to the bucket's factor.
#[test]
fn a_bucket_never_lowers_the_factor_the_user_set_on_its_object() {
    let a = TestRepo::new();
    a.ok(&["init"]);
    a.set_config("replication", "repair_interval", "\"1s\"");
    let (mut daemon, banner) = Daemon::start(&a, &["--s3", "127.0.0.1:0"]);
    let (key, secret) = create_key(&a, &[]);
    a.ok(&["s3", "bucket", "create", "kept", "--replication", "1"]);
    let write = |url: &str, spec: Value| boto3_step(url, (&key, &secret), "kept", spec);
    let url = s3_url(&banner);
    let text = "replicated by the bucket at 1, by the user at 3";
    write(&url, json!({"step": "write", "puts": {"x.txt": text}}));
    let cid = objects(&a, "kept")["x.txt"][0].clone();
    let status = |cid: &str| {
        let out = a.run(&["pin", "status", cid]);
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    poll(Duration::from_secs(30), "the object replicated", || {
        status(&cid).contains(": ok (1/1").then_some(())
    });
    a.ok(&["pin", "add", "--replication", "3", &cid]);
    assert!(status(&cid).contains("/3 pinned"), "{}", status(&cid));

    // Another key of the same bytes: the bucket keeps the CID again. Its
    // new root replicated means the burst was applied.
    write(&url, json!({"step": "write", "puts": {"y.txt": text}}));
    let root = buckets(&a)["kept"].0.clone();
    poll(Duration::from_secs(30), "the new root replicated", || {
        status(&root).contains(": ok (1/1").then_some(())
    });
    assert!(status(&cid).contains("/3 pinned"), "{}", status(&cid));

    // A restart's recovery hands every object over again.
    daemon.signal(libc::SIGTERM);
    let (_daemon, banner) = Daemon::start(&a, &["--s3", "127.0.0.1:0"]);
    write(
        &s3_url(&banner),
        json!({"step": "write", "puts": {"z.txt": "after the restart"}}),
    );
    let root = buckets(&a)["kept"].0.clone();
    poll(
        Duration::from_secs(30),
        "the newest root replicated",
        || status(&root).contains(": ok (1/1").then_some(()),
    );
    assert!(status(&cid).contains("/3 pinned"), "{}", status(&cid));
}

#[test]
fn public_read_buckets_answer_anonymous_reads_and_nothing_else() {
    let repo = TestRepo::new();
    repo.ok(&["init"]);
    // Made offline, then served.
    let made = repo.ok(&["s3", "bucket", "create", "offline-open", "--public-read"]);
    assert!(made.trim_end().ends_with(" public-read"), "{made}");
    let (_daemon, banner) = Daemon::start(&repo, &["--s3", "127.0.0.1:0"]);
    let (key, secret) = create_key(&repo, &[]);
    let text = "anyone may read this";
    let spec = |step: &str| {
        json!({
            "endpoint": s3_url(&banner), "key": key, "secret": secret, "step": step,
            "public": "open", "private": "closed", "text": text,
        })
    };
    let got = run_script("boto3_public.py", &spec("acl"));
    let owner = "cairn:FULL_CONTROL";
    let all_users = "http://acs.amazonaws.com/groups/global/AllUsers:READ";
    assert_eq!(got["public_acl"], json!([owner, all_users]), "{got}");
    assert_eq!(got["private_acl"], json!([owner]));
    assert_eq!(got["opened_acl"], json!([owner, all_users]));
    assert_eq!(got["closed_acl"], json!([owner]));
    assert_eq!(got["public_read_write"], json!("NotImplemented"));
    let listed = buckets(&repo);
    assert_eq!(listed["open"].1, "public-read");
    assert_eq!(listed["closed"].1, "");

    let sha = sha256_hex(text.as_bytes());
    let check_public = |seen: &Value| {
        for read in ["get", "head", "list_v2", "list_v1", "head_bucket"] {
            assert_eq!(seen[read], Value::Null, "{read}: {seen}");
        }
        assert_eq!(seen["sha256"], json!(sha));
        assert_eq!(seen["size"], json!(text.len()));
        assert_eq!(seen["keys_v2"], json!(["hello.txt"]));
        assert_eq!(seen["keys_v1"], json!(["hello.txt"]));
        assert_eq!(seen["http_get"], json!({"status": 200, "sha256": sha}));
    };
    let check_denied = |seen: &Value, reads: bool| {
        let mut refused = vec!["put", "delete", "put_acl", "get_acl"];
        if !reads {
            refused.extend(["get", "list_v2", "list_v1"]);
            assert_eq!(
                seen["http_get"],
                json!({"status": 403, "code": "AccessDenied"})
            );
            // HEAD answers have no body: botocore names them by status.
            assert_eq!(seen["head"], json!("403"), "{seen}");
            assert_eq!(seen["head_bucket"], json!("403"), "{seen}");
        }
        for op in refused {
            assert_eq!(seen[op], json!("AccessDenied"), "{op}: {seen}");
        }
        assert_eq!(
            seen["http_put"],
            json!({"status": 403, "code": "AccessDenied"})
        );
    };
    let got = run_script("boto3_public.py", &spec("anonymous"));
    check_public(&got["open"]);
    check_denied(&got["open"], true);
    // A version by its ID needs a signature, even in a public bucket.
    for query in ["versionId=null", "x=1&versionId=0000000000000001"] {
        let url = format!("{}/open/hello.txt?{query}", s3_url(&banner));
        let mut answer = common::get_with_host(&url, None);
        assert_eq!(answer.status(), 403, "{query}");
        let body = answer.body_mut().read_to_string().unwrap();
        assert!(body.contains("<Code>AccessDenied</Code>"), "{body}");
    }
    check_denied(&got["closed"], false);
    assert_eq!(got["list_buckets"], json!("AccessDenied"));
    assert_eq!(got["missing_bucket"], json!("AccessDenied"));

    // The CLI turns it on and off; nothing anonymous wrote anything.
    let on = repo.ok(&["s3", "bucket", "public-read", "closed", "on"]);
    assert!(on.trim_end().ends_with(" public-read"), "{on}");
    let got = run_script("boto3_public.py", &spec("anonymous"));
    check_public(&got["closed"]);
    repo.ok(&["s3", "bucket", "public-read", "closed", "off"]);
    repo.ok(&["s3", "bucket", "public-read", "open", "off"]);
    let got = run_script("boto3_public.py", &spec("anonymous"));
    check_denied(&got["open"], false);
    check_denied(&got["closed"], false);
    let keys: Vec<String> = objects(&repo, "open").into_keys().collect();
    assert_eq!(keys, ["hello.txt"]);
    let refused = repo.fails(&["s3", "bucket", "public-read", "nope", "on"]);
    assert!(refused.contains("nope"), "{refused}");
    assert_eq!(buckets(&repo)["offline-open"].1, "public-read");
}

#[test]
fn a_mount_not_resolved_yet_answers_service_unavailable() {
    let repo = TestRepo::new();
    repo.ok(&["init"]);
    // A name nobody publishes: the mount never resolves.
    let name = repo.ok(&["key", "gen", "nobody"]).trim().to_string();
    repo.ok(&["s3", "bucket", "mount", "ghost", &format!("/ipns/{name}")]);
    let (_daemon, banner) = Daemon::start(&repo, &["--s3", "127.0.0.1:0"]);
    let (key, secret) = create_key(&repo, &[]);
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let signer = common::s3::Signer::new(&key, &secret);
    let endpoint = s3_url(&banner);
    for (path, query) in [
        ("/ghost/a.txt", &[][..]),
        ("/ghost", &[("list-type", "2")][..]),
    ] {
        let (url, headers) = signer.sign("GET", &endpoint, path, query);
        let mut req = agent.get(&url);
        for (name, value) in headers {
            req = req.header(name, value);
        }
        let mut resp = req.call().unwrap();
        let status = resp.status().as_u16();
        let body = resp.body_mut().read_to_string().unwrap();
        assert_eq!(status, 503, "{path}: {body}");
        assert!(body.contains("<Code>ServiceUnavailable</Code>"), "{body}");
        assert!(body.contains("has not resolved"), "{body}");
    }
    // The bucket is listed, without a root yet.
    assert_eq!(buckets(&repo)["ghost"].0, "-");
}

//! IPNS across processes: `name publish` / `name resolve` with and without
//! a daemon, a name published on one daemon resolved on another over the
//! DHT (updates and republishing included), Kubo's RPC answers, and forged,
//! tampered and expired records refused by every daemon's DHT store.
#![allow(clippy::result_large_err)]

mod common;

use cairn::names::ipns::record::{create, IpnsEntry};
use cairn::names::ipns::routing_key;
use common::{Daemon, TestRepo};
use libp2p::identity::Keypair;
use libp2p::PeerId;
use std::time::{Duration, Instant, SystemTime};

/// Polls `f` every 200 ms until it gives `Some`, for at most `within`.
fn poll<T>(within: Duration, what: &str, f: impl FnMut() -> Option<T>) -> T {
    common::poll_every(Duration::from_millis(200), within, what, f)
}

/// `name resolve --nocache NAME` on `repo`, once it succeeds with `want`.
fn resolves_to(repo: &TestRepo, name: &str, want: &str) {
    poll(
        Duration::from_secs(30),
        &format!("{name} -> {want}"),
        || {
            let out = repo.run(&["name", "resolve", "--nocache", name]);
            let got = String::from_utf8_lossy(&out.stdout).trim().to_string();
            (out.status.success() && got == want).then_some(())
        },
    )
}

/// A counter from the daemon's `/metrics` (0 when absent).
fn counter(api: &str, name: &str) -> u64 {
    let text = ureq::get(format!("{api}/metrics"))
        .call()
        .expect("metrics")
        .body_mut()
        .read_to_string()
        .unwrap();
    text.lines()
        .find(|l| l.starts_with(&format!("{name}_total ")))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
        .unwrap_or(0)
}

/// POSTs an RPC call; returns the status and the JSON answer.
fn post(api: &str, call: &str) -> (u16, serde_json::Value) {
    let mut answer = ureq::post(format!("{api}/api/v0/{call}"))
        .config()
        .http_status_as_error(false)
        .build()
        .send_empty()
        .expect("call the API");
    let status = answer.status().as_u16();
    let body = answer.body_mut().read_to_vec().unwrap();
    (status, serde_json::from_slice(&body).unwrap_or_default())
}

/// Adds `text` as a file; returns its CID.
fn add_text(repo: &TestRepo, text: &str) -> String {
    let file = repo.scratch(&format!("{}.txt", text.len()));
    std::fs::write(&file, text).unwrap();
    repo.add(&file, &[]).trim().to_string()
}

/// The base36 name from `Published to NAME: VALUE`.
fn published_name(line: &str) -> String {
    let rest = line.strip_prefix("Published to ").expect("Kubo's line");
    rest.split(':').next().unwrap().to_string()
}

#[test]
fn names_answer_the_same_with_and_without_a_daemon() {
    let repo = TestRepo::new();
    repo.ok(&["init"]);
    let cid = add_text(&repo, "first version");
    let err = repo.fails(&["name", "publish", &format!("/ipfs/{cid}")]);
    assert!(err.contains("--allow-offline"), "{err}");
    let offline = repo.ok(&["name", "publish", "--allow-offline", &cid]);
    let name = published_name(&offline);
    assert!(name.starts_with("k51"), "{offline}");
    assert_eq!(offline, format!("Published to {name}: /ipfs/{cid}\n"));
    let resolve = |repo: &TestRepo| repo.ok(&["name", "resolve", &format!("/ipns/{name}/x")]);
    assert_eq!(resolve(&repo), format!("/ipfs/{cid}/x\n"));
    let bad = repo.fails(&["name", "publish", "--allow-offline", "/etc/passwd"]);
    assert!(bad.contains("not an /ipfs/ or /ipns/ path"), "{bad}");

    // A daemon alone has no DHT peer: --allow-offline keeps the record.
    let (mut daemon, banner) = Daemon::start(&repo, &[]);
    assert_eq!(resolve(&repo), format!("/ipfs/{cid}/x\n"));
    let online = repo.ok(&["name", "publish", "--allow-offline", &cid]);
    assert_eq!(online, offline);
    let err = repo.fails(&["name", "publish", &cid]);
    assert!(err.contains("no DHT peer"), "{err}");
    let unknown = "k51qzi5uqu5dlvj2baxnqndepeb86cbk3ng7n3i46uzyxzyqj2xjonzllnv0v8";
    let err = repo.fails(&["name", "resolve", unknown]);
    assert!(err.contains("no valid IPNS record"), "{err}");

    // The gateway serves the name, cacheable for the record's TTL (1 h).
    let gw = common::gateway_url(&banner);
    let get = |path: &str, host: Option<&str>| {
        let mut r = common::get_with_host(&format!("{gw}{path}"), host);
        let header = |n: &str| {
            r.headers()
                .get(n)
                .map(|v| v.to_str().unwrap().to_string())
                .unwrap_or_default()
        };
        let (cache, xpath, ctype) = (
            header("cache-control"),
            header("x-ipfs-path"),
            header("content-type"),
        );
        let status = r.status().as_u16();
        (
            status,
            r.body_mut().read_to_vec().unwrap(),
            cache,
            xpath,
            ctype,
        )
    };
    // What is left of the TTL of the cached answer.
    let max_age = |cache: &str| -> u64 {
        let secs = cache.strip_prefix("public, max-age=").expect("a max-age");
        secs.parse().unwrap()
    };
    let (status, body, cache, xpath, _) = get(&format!("/ipns/{name}"), None);
    assert_eq!((status, body.as_slice()), (200, &b"first version"[..]));
    assert!((3500..=3600).contains(&max_age(&cache)), "{cache}");
    assert_eq!(xpath, format!("/ipns/{name}"));
    let host = format!("{name}.ipns.localhost");
    let (status, body, ..) = get("/", Some(&host));
    assert_eq!((status, body.as_slice()), (200, &b"first version"[..]));
    // The signed record itself, for clients that verify it.
    let (status, record, cache, _, ctype) = get(&format!("/ipns/{name}?format=ipns-record"), None);
    assert_eq!(
        (status, ctype.as_str()),
        (200, "application/vnd.ipfs.ipns-record")
    );
    assert_eq!(max_age(&cache), 3600);
    let (peer, _) = cairn::names::ipns::parse_name(&name).unwrap();
    let r = cairn::names::ipns::record::validate(&peer, &record, SystemTime::now()).unwrap();
    assert_eq!(r.value_text(), format!("/ipfs/{cid}"));
    assert_eq!(get(&format!("/ipns/{unknown}"), None).0, 404);
    assert_eq!(get("/ipns/not-a-name", None).0, 400);
    daemon.signal(libc::SIGTERM);
}

/// Three daemons (repo, process, API URL), B and C bootstrapped to A; A's
/// records live 5 s and are republished every 2 s.
fn three_daemons() -> Vec<(TestRepo, Daemon, String)> {
    let mut nodes: Vec<(TestRepo, Daemon, String)> = Vec::new();
    let mut boot: Option<String> = None;
    for i in 0..3 {
        let repo = TestRepo::new();
        repo.ok(&["init"]);
        if i == 0 {
            repo.set_config("ipns", "republish_interval", "\"2s\"");
            repo.set_config("ipns", "record_lifetime", "\"5s\"");
        }
        let extra: Vec<&str> = boot.iter().flat_map(|b| ["--bootstrap", b]).collect();
        let (daemon, banner) = Daemon::start(&repo, &extra);
        boot.get_or_insert_with(|| common::swarm_addr(&banner));
        nodes.push((repo, daemon, common::api_url(&banner)));
    }
    nodes
}

#[test]
fn a_name_published_on_one_daemon_resolves_on_another_and_follows_updates() {
    let mut nodes = three_daemons();
    let (a, c) = (&nodes[0].0, &nodes[2].0);
    let first = add_text(a, "version one");
    let second = add_text(a, "version two, longer");

    let line = poll(Duration::from_secs(30), "publish reaches a peer", || {
        let out = a.run(&["name", "publish", &first]);
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
    });
    let name = published_name(&line);
    resolves_to(c, &name, &format!("/ipfs/{first}"));

    // An update (the next sequence number) replaces it everywhere.
    let published_at = Instant::now();
    a.ok(&["name", "publish", &format!("/ipfs/{second}")]);
    resolves_to(c, &name, &format!("/ipfs/{second}"));
    // Resolve latency on C through its RPC API: over the DHT (nocache)
    // and from the cache.
    let api_c = nodes[2].2.clone();
    let timed = |nocache: bool| -> Duration {
        let mut took: Vec<Duration> = (0..20)
            .map(|_| {
                let t = Instant::now();
                let call = format!("name/resolve?arg={name}&nocache={nocache}");
                let (status, v) = post(&api_c, &call);
                assert_eq!(status, 200, "{v}");
                t.elapsed()
            })
            .collect();
        took.sort();
        eprintln!(
            "name resolve over 3 loopback daemons, nocache={nocache}: p50 {:?}, max {:?}",
            took[10], took[19]
        );
        took[10]
    };
    let (cold, cached) = (timed(true), timed(false));
    assert!(
        cached <= cold,
        "the cache is not faster: {cached:?} vs {cold:?}"
    );
    // A plain resolve is answered from the cache now.
    assert_eq!(
        c.ok(&["name", "resolve", &name]),
        format!("/ipfs/{second}\n")
    );

    // The record lives 5 s: past that, C still resolves the name because
    // A republished it (same value and sequence, a new end of life).
    let api_a = nodes[0].2.clone();
    poll(Duration::from_secs(30), "two republish rounds", || {
        (counter(&api_a, "cairn_ipns_republished") >= 2).then_some(())
    });
    while published_at.elapsed() < Duration::from_secs(6) {
        std::thread::sleep(Duration::from_millis(200));
    }
    resolves_to(c, &name, &format!("/ipfs/{second}"));

    // Kubo's RPC answers.
    let (status, v) = post(&api_a, &format!("name/publish?arg=/ipfs/{first}&key=self"));
    assert_eq!(status, 200, "{v}");
    assert_eq!(
        v,
        serde_json::json!({"Name": name, "Value": format!("/ipfs/{first}")})
    );
    let (status, v) = post(
        &api_a,
        &format!("name/resolve?arg=/ipns/{name}&nocache=true"),
    );
    assert_eq!(status, 200, "{v}");
    assert_eq!(v, serde_json::json!({"Path": format!("/ipfs/{first}")}));
    let (status, v) = post(&api_a, "name/resolve?arg=not-a-name");
    assert_eq!(
        (status, &v["Type"]),
        (400, &serde_json::json!("error")),
        "{v}"
    );
    for (_, d, _) in &mut nodes {
        d.signal(libc::SIGTERM);
    }
}

/// Accepts every value record: the test's own node stores and sends what
/// the daemons must refuse.
#[derive(Debug)]
struct AcceptAll;

impl cairn::net::records::ValueValidator for AcceptAll {
    fn validate(&self, _: &[u8], _: &[u8]) -> Result<SystemTime, String> {
        Ok(SystemTime::now() + Duration::from_secs(3600))
    }
    fn replaces(&self, _: &[u8], _: &[u8], _: &[u8]) -> bool {
        true
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_tampered_and_expired_records_are_refused() {
    let a = TestRepo::new();
    a.ok(&["init"]);
    let (mut daemon, banner) = Daemon::start(&a, &[]);
    let api = common::api_url(&banner);
    let addr: libp2p::Multiaddr = common::swarm_addr(&banner).parse().unwrap();
    let cid = add_text(&a, "the real content");

    // The name's key, exported so the test can sign as its owner.
    let key_file = a.scratch("site.key");
    let name = a.ok(&["key", "gen", "site"]).trim().to_string();
    a.ok(&["key", "export", "site", "-o", key_file.to_str().unwrap()]);
    let owner = Keypair::from_protobuf_encoding(&std::fs::read(&key_file).unwrap()).unwrap();
    let peer: PeerId = owner.public().to_peer_id();
    assert_eq!(cairn::names::keystore::ipns_name(&peer), name);
    let real = a.ok(&["name", "publish", "--allow-offline", "--key", "site", &cid]);
    assert_eq!(published_name(&real), name);

    // The test's node: dials the daemon, then tries to place bad records.
    let config = cairn::net::swarm::NetConfig {
        dht_server: Some(true),
        value_validator: Some(std::sync::Arc::new(AcceptAll)),
        ..Default::default()
    };
    let store = std::sync::Arc::new(cairn::store::MemoryStore::new());
    let net = cairn::net::Network::start([42; 32], store, &config)
        .await
        .unwrap();
    net.swarm.dial(addr).await.unwrap();
    let hour = Duration::from_secs(3600);
    let now = SystemTime::now();
    let evil = b"/ipfs/bafkqaaa";
    let forged = create(&Keypair::generate_ed25519(), evil, 99, now + hour, hour).unwrap();
    let expired = create(&owner, evil, 99, now - hour, hour).unwrap();
    let mut tampered =
        IpnsEntry::decode(&create(&owner, evil, 99, now + hour, hour).unwrap()).unwrap();
    let mut data = tampered.data.clone().unwrap();
    let at = data.len() / 2;
    data[at] ^= 0x20;
    tampered.data = Some(data);
    let oversized = {
        let mut e = IpnsEntry::decode(&forged).unwrap();
        e.signature_v1 = Some(vec![0; 11 * 1024]);
        e.encode()
    };
    for (what, bytes) in [
        ("forged", forged),
        ("expired", expired),
        ("tampered", tampered.encode()),
        ("oversized", oversized),
    ] {
        let put = net.swarm.put_value(routing_key(&peer), bytes).await;
        assert!(put.is_err(), "the daemon took a {what} record");
    }
    let refused = counter(&api, "cairn_ipns_records_refused");
    assert!(refused >= 3, "{refused} refusals counted");

    // The daemon still resolves the real record (our node offers the
    // forged one to whoever asks, and it is skipped).
    let got = a.ok(&["name", "resolve", "--nocache", &name]);
    assert_eq!(got, format!("/ipfs/{cid}\n"));
    // ... and sends our node, which answered a bad record, the real one
    // (as Kubo's DHT corrects outdated peers).
    assert!(counter(&api, "cairn_ipns_records_corrected") >= 1);
    let start = Instant::now();
    loop {
        // Our own store answers first: one answer is ours.
        let held = net.swarm.get_values(routing_key(&peer), 1).await.unwrap();
        let value = held.first().map(|a| a.value.clone()).unwrap_or_default();
        let fields = cairn::names::ipns::record::fields(&value).ok();
        if fields.is_some_and(|r| r.value_text() == format!("/ipfs/{cid}")) {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "our node never got the real record"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    net.swarm.close().await;
    daemon.signal(libc::SIGTERM);
}

/// Runs `node tests/js-clients/ipns-record.mjs ARGS`; its JSON answer.
fn helia(args: &[&str]) -> serde_json::Value {
    let dir = common::process::npm_ci("tests/js-clients");
    let mut cmd = std::process::Command::new("node");
    cmd.arg(dir.join("ipns-record.mjs"))
        .args(args)
        .current_dir(&dir);
    let out = common::process::run_bounded(cmd, None, Duration::from_secs(60)).unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(stdout.trim()).unwrap_or_else(|_| {
        panic!(
            "ipns-record.mjs {args:?}: {stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

#[test]
fn records_verify_in_helia_and_helias_verify_in_cairn() {
    use cairn::names::ipns::record::{format_rfc3339, validate};
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("record");
    let file_s = file.to_str().unwrap();

    // cairn's record, checked by @helia/ipns's validator.
    let key = Keypair::generate_ed25519();
    let name = cairn::names::keystore::ipns_name(&key.public().to_peer_id());
    let eol = SystemTime::now() + Duration::from_secs(48 * 3600);
    let value = "/ipfs/bafkqaaa/some/path";
    let ttl = Duration::from_secs(3600);
    std::fs::write(&file, create(&key, value.as_bytes(), 42, eol, ttl).unwrap()).unwrap();
    let v = helia(&["verify", &name, file_s]);
    assert_eq!(v["ok"], true, "{v}");
    assert_eq!(v["value"], value);
    assert_eq!(v["sequence"], "42");
    assert_eq!(v["ttl"], ttl.as_nanos().to_string());
    assert_eq!(v["validity"], format_rfc3339(eol));
    // ...and refused under another name.
    let other = cairn::names::keystore::ipns_name(&PeerId::from_public_key(
        &Keypair::generate_ed25519().public(),
    ));
    assert_eq!(helia(&["verify", &other, file_s])["ok"], false);

    // Helia's record, checked by cairn.
    let made = helia(&["create", file_s, "/ipfs/bafkqaaa", "5"]);
    let helia_name = made["name"].as_str().expect("a name").to_string();
    let (peer, _) = cairn::names::ipns::parse_name(&helia_name).unwrap();
    let bytes = std::fs::read(&file).unwrap();
    let r = validate(&peer, &bytes, SystemTime::now()).unwrap();
    assert_eq!((r.value_text().as_str(), r.sequence), ("/ipfs/bafkqaaa", 5));
    assert!(r.eol > SystemTime::now() + Duration::from_secs(3000));
}

/// `GET GATEWAY/ipns/NAME?format=ipns-record`: the signed record's bytes.
fn record_from_gateway(gateway: &str, name: &str) -> Vec<u8> {
    ureq::get(format!("{gateway}/ipns/{name}?format=ipns-record"))
        .call()
        .expect("the record")
        .body_mut()
        .read_to_vec()
        .unwrap()
}

/// IPNS over pub/sub (`[ipns] pubsub = true` on three daemons, B and C
/// bootstrapped to A). B resolves A's name once (a DHT lookup; B then
/// follows the name's `/record/` topic) and caches the answer for the
/// record's TTL, an hour. A publishes a new value: B's plain resolve, still
/// answered from its cache, gives the new value, which only the topic can
/// have brought before the hour is out. Then C sends on the topic garbage,
/// a tampered copy of the record and the older record: B refuses and
/// counts the first two, ignores the third, and keeps answering the new
/// value.
#[test]
fn with_pubsub_a_new_record_reaches_a_follower_before_its_cache_expires() {
    let mut nodes = Vec::new();
    let mut boot: Option<String> = None;
    for _ in 0..3 {
        let repo = TestRepo::new();
        repo.ok(&["init"]);
        repo.set_config("ipns", "pubsub", "true");
        let extra: Vec<&str> = boot.iter().flat_map(|b| ["--bootstrap", b]).collect();
        let (daemon, banner) = Daemon::start(&repo, &extra);
        boot.get_or_insert_with(|| common::swarm_addr(&banner));
        let id = common::peer_id_of(&common::swarm_addr(&banner));
        let urls = (common::api_url(&banner), common::gateway_url(&banner));
        nodes.push((repo, daemon, id, urls));
    }
    let (a, b, c) = (&nodes[0].0, &nodes[1].0, &nodes[2].0);
    let (api_a, gw_a) = nodes[0].3.clone();
    let api_b = nodes[1].3 .0.clone();
    let first = add_text(a, "version one");
    let second = add_text(a, "version two, longer");
    let line = poll(Duration::from_secs(30), "publish reaches a peer", || {
        let out = a.run(&["name", "publish", &first]);
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
    });
    let name = published_name(&line);
    let old_record = record_from_gateway(&gw_a, &name);
    let (peer, _) = cairn::names::ipns::parse_name(&name).unwrap();
    let topic = cairn::names::ipns::pubsub::record_topic(&peer);
    assert!(topic.starts_with("/record/L2lwbnMv"), "{topic}");

    // B and C look the name up (and follow it); A sees both on the topic.
    resolves_to(b, &name, &format!("/ipfs/{first}"));
    resolves_to(c, &name, &format!("/ipfs/{first}"));
    // Kubo's `name/pubsub/state` and `name/pubsub/subs`.
    assert_eq!(
        post(&api_b, "name/pubsub/state"),
        (200, serde_json::json!({"Enabled": true}))
    );
    let (status, subs) = post(&api_b, "name/pubsub/subs");
    assert_eq!(status, 200, "{subs}");
    assert!(
        subs["Strings"]
            .as_array()
            .unwrap()
            .contains(&serde_json::json!(format!("/ipns/{name}"))),
        "{subs}"
    );
    poll(Duration::from_secs(20), "B and C on A's topic", || {
        let peers = a.ok(&["pubsub", "peers", &topic]);
        (peers.contains(&nodes[1].2) && peers.contains(&nodes[2].2)).then_some(())
    });
    assert!(b.ok(&["pubsub", "ls"]).lines().any(|t| t == topic));
    assert_eq!(
        b.ok(&["name", "resolve", &name]),
        format!("/ipfs/{first}\n"),
        "cached"
    );

    a.ok(&["name", "publish", &second]);
    poll(Duration::from_secs(20), "B's cached answer updated", || {
        (b.ok(&["name", "resolve", &name]) == format!("/ipfs/{second}\n")).then_some(())
    });
    assert!(counter(&api_b, "cairn_ipns_pubsub_taken") >= 1);
    assert!(counter(&api_a, "cairn_ipns_pubsub_sent") >= 2);
    assert_eq!(counter(&api_b, "cairn_ipns_pubsub_refused"), 0);

    // Bad records on the topic, sent by C: refused and counted by B.
    let mut tampered = record_from_gateway(&gw_a, &name);
    let at = tampered.len() - 3;
    tampered[at] ^= 1;
    let bad = [b"not an IPNS record".to_vec(), tampered, old_record];
    let file = c.scratch("bad-record");
    poll(Duration::from_secs(20), "B refuses C's bad records", || {
        for bytes in &bad {
            std::fs::write(&file, bytes).unwrap();
            c.ok(&["pubsub", "pub", &topic, file.to_str().unwrap()]);
        }
        (counter(&api_b, "cairn_ipns_pubsub_refused") >= 2).then_some(())
    });
    assert_eq!(
        b.ok(&["name", "resolve", &name]),
        format!("/ipfs/{second}\n"),
        "the older record did not win"
    );
    assert_eq!(
        b.ok(&["name", "resolve", "--nocache", &name]),
        format!("/ipfs/{second}\n")
    );
    for (_, d, _, _) in &mut nodes {
        d.signal(libc::SIGTERM);
    }
}

//! `cairn daemon` as an operator runs it: starts on loopback, reports its
//! peer ID and addresses, connects to a bootstrap peer, and stops cleanly on
//! SIGTERM and SIGINT. `cairn id` prints Kubo's `ipfs id` JSON shape.

mod common;

use common::{Daemon, TestRepo};
use std::path::Path;
use std::time::Duration;

#[test]
fn daemon_starts_connects_and_stops_cleanly() {
    let a = TestRepo::new();
    let b = TestRepo::new();
    let id: serde_json::Value = serde_json::from_str(&a.ok(&["id"])).unwrap();
    let peer = id["ID"].as_str().unwrap().to_string();
    assert!(id["AgentVersion"].as_str().unwrap().starts_with("cairn/"));
    assert!(id["Addresses"]
        .as_array()
        .unwrap()
        .iter()
        .all(|x| x.as_str().unwrap().ends_with(&format!("/p2p/{peer}"))));
    assert!(id["Protocols"]
        .as_array()
        .unwrap()
        .iter()
        .any(|p| p == "/ipfs/bitswap/1.2.0"));
    assert!(!id["PublicKey"].as_str().unwrap().is_empty());

    let (mut da, banner) = Daemon::start(&a, &[]);
    assert!(
        banner.iter().any(|l| l == &format!("PeerID: {peer}")),
        "{banner:?}"
    );
    let addr = banner
        .iter()
        .find_map(|l| l.strip_prefix("Swarm listening on "))
        .expect("a listen address")
        .to_string();
    assert!(
        addr.starts_with("/ip4/127.0.0.1/tcp/") && addr.ends_with(&peer),
        "{addr}"
    );

    // B bootstraps from A.
    let (mut db, banner_b) = Daemon::start(&b, &["--bootstrap", &addr]);
    assert!(
        banner_b
            .iter()
            .any(|l| l == &format!("Connected to {peer}")),
        "{banner_b:?}"
    );
    // Commands go through the running daemon's API.
    let live: serde_json::Value = serde_json::from_str(&a.ok(&["id"])).unwrap();
    assert_eq!(live["ID"], peer.as_str());
    assert_eq!(
        live["Addresses"][0],
        addr.as_str(),
        "the real listen address"
    );
    let peers_b = b.ok(&["swarm", "peers"]);
    assert!(
        peers_b.trim().ends_with(&format!("/p2p/{peer}")),
        "{peers_b}"
    );
    let peers_a = a.ok(&["swarm", "peers"]);
    assert_eq!(peers_a.lines().count(), 1, "{peers_a}");
    let err = a.fails(&["swarm", "connect", "/ip4/127.0.0.1/tcp/1"]);
    assert!(err.contains("dial"), "{err}");
    let err = a.fails(&["swarm", "connect", "not-an-addr"]);
    assert!(err.contains("multiaddr"), "{err}");
    let err = a.fails(&["daemon"]);
    assert!(err.contains("already running"), "{err}");

    assert!(db.signal(libc::SIGINT).success());
    let c = TestRepo::new();
    let (mut dc, _) = Daemon::start(&c, &[]);
    assert!(dc.signal(libc::SIGTERM).success());
    // `cairn shutdown` stops a daemon through its API.
    a.ok(&["shutdown"]);
    for _ in 0..200 {
        if da.child.try_wait().unwrap().is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(da.child.try_wait().unwrap().expect("stopped").success());
    assert!(!a.path().join("api").exists(), "api file removed");
    // Without a daemon, network commands say they need one.
    let err = a.fails(&["swarm", "peers"]);
    assert!(err.contains("needs a running daemon"), "{err}");
    // Stopped cleanly: the repo opens again.
    a.ok(&["repo", "verify"]);
}

#[test]
fn cat_fetches_from_the_network_through_the_daemon() {
    let a = TestRepo::new();
    let b = TestRepo::new();
    let data = common::random_bytes(3 * 1024 * 1024 + 77, 11);
    let file = a.scratch("data.bin");
    std::fs::write(&file, &data).unwrap();
    let cid = a.add(&file, &[]);
    let (_da, banner) = Daemon::start(&a, &[]);
    let addr = banner
        .iter()
        .find_map(|l| l.strip_prefix("Swarm listening on "))
        .expect("a listen address")
        .to_string();
    b.set_config("net", "fetch_timeout", "\"2s\"");
    let (mut db, _) = Daemon::start(&b, &["--bootstrap", &addr]);

    let out = b.run(&["cat", &cid]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.stdout, data);
    let out = b.run(&["cat", "--offset", "1000000", "--length", "5000", &cid]);
    assert_eq!(out.stdout, &data[1_000_000..1_005_000]);
    // Nobody has this one: a clear error once the fetch timeout passes.
    let err = b.fails(&[
        "cat",
        "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku",
    ]);
    assert!(err.contains("bafkrei") && err.contains("no peer"), "{err}");

    // Fetched blocks stay cached (not pinned) after the daemon stops.
    assert!(db.signal(libc::SIGTERM).success());
    assert_eq!(b.run(&["cat", &cid]).stdout, data);
    assert_eq!(b.ok(&["pin", "ls"]), "");
}

/// Runs each command offline on one repo and through a daemon on a copy of
/// it (same identity, same content): the outputs must be the same.
#[test]
fn every_command_goes_through_the_daemon_with_the_offline_output() {
    let offline = TestRepo::new();
    let tree = offline.scratch("tree");
    std::fs::create_dir_all(tree.join("sub")).unwrap();
    std::fs::write(tree.join("big.bin"), common::random_bytes(700_000, 5)).unwrap();
    std::fs::write(tree.join("sub/a.txt"), b"hi\n").unwrap();
    std::fs::write(tree.join(".hidden"), b"h").unwrap();
    std::os::unix::fs::symlink("a.txt", tree.join("sub/link")).unwrap();
    let t = tree.to_str().unwrap();
    offline.ok(&["init"]);
    let online = TestRepo::new();
    // Same repo contents: copy before anything is added.
    copy_dir(&offline.path(), &online.path());
    let (mut daemon, _) = Daemon::start(&online, &[]);

    let both = |args: &[&str]| {
        let a = offline.run(args);
        let b = online.run(args);
        assert!(
            a.status.success() && b.status.success(),
            "cairn {args:?}: {} / {}",
            String::from_utf8_lossy(&a.stderr),
            String::from_utf8_lossy(&b.stderr)
        );
        assert!(
            a.stdout == b.stdout,
            "cairn {args:?} differs offline and through the daemon: {:?} vs {:?}",
            String::from_utf8_lossy(&a.stdout[..a.stdout.len().min(500)]),
            String::from_utf8_lossy(&b.stdout[..b.stdout.len().min(500)])
        );
        String::from_utf8_lossy(&a.stdout).into_owned()
    };
    let added = both(&["add", "-r", t]);
    assert!(added.contains(" tree/sub/link\n"), "{added}");
    both(&["add", "-r", "-H", "--cid-version", "0", t]);
    both(&["add", "-r", "--profile", "unixfs-v1-2025", "-Q", t]);
    both(&[
        "add",
        "--chunker",
        "size-1000",
        "--max-links",
        "3",
        "--trickle",
        "-q",
        &format!("{t}/big.bin"),
    ]);
    let root = both(&["add", "-r", "-Q", t]).trim().to_string();
    both(&["ls", &root]);
    both(&["cat", &format!("{root}/sub/a.txt")]);
    both(&[
        "cat",
        "--offset",
        "1000",
        "--length",
        "70000",
        &format!("{root}/big.bin"),
    ]);
    both(&["pin", "ls"]);
    both(&["pin", "ls", "--type", "indirect", "-q"]);
    both(&["block", "stat", &root]);
    both(&["block", "get", &root]);
    both(&["pin", "rm", &root]);
    both(&["pin", "add", &root]);
    let car_a = offline.run(&["dag", "export", &root]).stdout;
    let car_b = online.run(&["dag", "export", &root]).stdout;
    assert_eq!(car_a, car_b);
    let car = offline.scratch("x.car");
    std::fs::write(&car, &car_a).unwrap();
    both(&["dag", "import", car.to_str().unwrap()]);
    both(&["repo", "verify"]);
    both(&["pin", "rm", &root]);
    both(&["repo", "gc"]);
    both(&["pin", "ls"]);
    // Standard input: block put and add.
    let piped = |repo: &TestRepo, args: &[&str], input: &[u8]| {
        let out = repo
            .cmd(args)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .and_then(|mut c| {
                use std::io::Write;
                c.stdin.take().unwrap().write_all(input)?;
                c.wait_with_output()
            })
            .unwrap();
        assert!(out.status.success(), "cairn {args:?}");
        String::from_utf8(out.stdout).unwrap()
    };
    for args in [
        &["block", "put", "--pin"][..],
        &["add"][..],
        &["add", "-Q", "--cid-version", "0"][..],
    ] {
        let input = common::random_bytes(300_000, 9);
        let a = piped(&offline, args, &input);
        let b = piped(&online, args, &input);
        assert_eq!(a, b, "cairn {args:?} from standard input");
    }
    // get: the same tree on disk either way.
    let ga = offline.scratch("got-offline");
    let gb = online.scratch("got-daemon");
    let added = both(&["add", "-r", "-Q", t]).trim().to_string();
    offline.ok(&["get", "-o", ga.to_str().unwrap(), &added]);
    online.ok(&["get", "-o", gb.to_str().unwrap(), &added]);
    for rel in ["big.bin", "sub/a.txt"] {
        assert_eq!(
            std::fs::read(ga.join(rel)).unwrap(),
            std::fs::read(gb.join(rel)).unwrap()
        );
    }
    assert_eq!(
        std::fs::read_link(gb.join("sub/link")).unwrap(),
        Path::new("a.txt")
    );
    let err = online.fails(&["get", "-o", gb.to_str().unwrap(), &added]);
    assert!(err.contains("already exists"), "{err}");
    // Errors come back as one line.
    let err = online.fails(&["cat", "not-a-cid"]);
    assert!(err.contains("not-a-cid") || err.contains("CID"), "{err}");
    let bw = online.ok(&["stats", "bw"]);
    assert!(bw.starts_with("Bandwidth\nTotalIn: "), "{bw}");
    assert!(daemon.signal(libc::SIGTERM).success());
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// An API reachable from elsewhere needs tokens; with tokens set, requests
/// without one are refused and the CLI sends the configured one.
#[test]
fn api_tokens_guard_the_api() {
    let a = TestRepo::new();
    a.ok(&["init"]);
    let err = a.fails(&["daemon", "--api", "0.0.0.0:0", "--gateway", "off"]);
    assert!(err.contains("[api] tokens"), "{err}");

    a.set_config("api", "tokens", "[\"s3cret-token\"]");
    let (mut d, banner) = Daemon::start(&a, &[]);
    let api = banner
        .iter()
        .find_map(|l| l.strip_prefix("RPC API server listening on "))
        .unwrap()
        .rsplit('/')
        .next()
        .unwrap()
        .to_string();
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let url = format!("http://127.0.0.1:{api}/api/v0/id");
    let r = agent.post(&url).send_empty().unwrap();
    assert_eq!(r.status().as_u16(), 401);
    let r = agent
        .post(&url)
        .header("Authorization", "Bearer wrong-token!")
        .send_empty()
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);
    let r = agent
        .post(&url)
        .header("Authorization", "Bearer s3cret-token")
        .send_empty()
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    // The CLI reads the token from config.toml.
    let id: serde_json::Value = serde_json::from_str(&a.ok(&["id"])).unwrap();
    assert!(id["ID"].as_str().is_some());
    assert!(d.signal(libc::SIGTERM).success());
}

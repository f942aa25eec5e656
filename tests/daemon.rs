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
    let addr = common::swarm_addr(&banner);
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
    // The local profile runs no AutoNAT: reachability unknown, the DHT
    // serves on loopback (B's table holds A, whom it dialled); offline,
    // `id` says nothing of it.
    assert!(id.get("Reachability").is_none(), "{id}");
    assert_eq!(live["Reachability"]["Status"], "unknown", "{live}");
    assert_eq!(live["Reachability"]["DhtMode"], "server", "{live}");
    let api = common::api_url(&banner);
    assert_eq!(common::metric(&api, "cairn_reachability"), Some(0.0));
    assert_eq!(common::metric(&api, "cairn_dht_server"), Some(1.0));
    let dht: serde_json::Value = serde_json::from_str(&b.ok(&["stats", "dht"])).unwrap();
    assert_eq!(dht["Mode"], "server", "{dht}");
    assert!(
        dht["Peers"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["ID"] == peer.as_str()),
        "{dht}"
    );
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
    let addr = common::swarm_addr(&banner);
    b.set_config("net", "fetch_timeout", "\"2s\"");
    let (mut db, _) = Daemon::start(&b, &["--bootstrap", &addr]);

    assert_eq!(b.ok_bytes(&["cat", &cid]), data);
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

    a.set_config("api", "tokens", "[\"s3cret-token-of-16+\"]");
    let (mut d, banner) = Daemon::start(&a, &[]);
    let api = common::api_url(&banner);
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let url = format!("{api}/api/v0/id");
    let r = agent.post(&url).send_empty().unwrap();
    assert_eq!(r.status().as_u16(), 401);
    let r = agent
        .post(&url)
        .header("Authorization", "Bearer wrong-token-of-16+")
        .send_empty()
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);
    let r = agent
        .post(&url)
        .header("Authorization", "Bearer s3cret-token-of-16+")
        .send_empty()
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    // The CLI reads the token from config.toml.
    let id: serde_json::Value = serde_json::from_str(&a.ok(&["id"])).unwrap();
    assert!(id["ID"].as_str().is_some());
    assert!(d.signal(libc::SIGTERM).success());
}

/// The sections of a CAR v1 file: the header, then each block's bytes
/// (length prefix included).
fn car_sections(car: &[u8]) -> (Vec<u8>, Vec<Vec<u8>>) {
    fn varint(buf: &[u8]) -> (usize, usize) {
        let (mut v, mut i) = (0usize, 0usize);
        loop {
            let b = buf[i];
            v |= ((b & 0x7f) as usize) << (7 * i);
            i += 1;
            if b & 0x80 == 0 {
                return (v, i);
            }
        }
    }
    let (len, n) = varint(car);
    let header = car[..n + len].to_vec();
    let mut rest = &car[n + len..];
    let mut sections = Vec::new();
    while !rest.is_empty() {
        let (len, n) = varint(rest);
        sections.push(rest[..n + len].to_vec());
        rest = &rest[n + len..];
    }
    (header, sections)
}

/// On a terminal, a fetch through the daemon shows a progress line with
/// the bytes so far, the rate and the peers of this fetch (how many sent
/// blocks, of how many it may ask). The provider lacks one block, so the
/// fetch stays in progress until the fetch timeout and the line is seen.
#[test]
fn a_fetch_on_a_terminal_shows_bytes_rate_and_peers() {
    if std::process::Command::new("script")
        .arg("--version")
        .output()
        .is_err()
    {
        panic!("this test needs script(1) from util-linux (Debian: bsdutils)");
    }
    let maker = TestRepo::new();
    let data = common::random_bytes(2 * 1024 * 1024, 91);
    let file = maker.scratch("data.bin");
    std::fs::write(&file, &data).unwrap();
    let cid = maker.add(&file, &["--chunker", "size-65536"]);
    let car = maker.scratch("data.car");
    let out = maker.run(&["dag", "export", &cid]);
    assert!(out.status.success());
    // Everything but the last leaf.
    let (header, mut sections) = car_sections(&out.stdout);
    assert!(sections.len() > 10);
    sections.pop();
    let mut partial = header;
    for s in &sections {
        partial.extend_from_slice(s);
    }
    std::fs::write(&car, partial).unwrap();

    let a = TestRepo::new();
    a.ok(&["dag", "import", "--pin-roots=false", car.to_str().unwrap()]);
    let (_da, banner) = Daemon::start(&a, &[]);
    let addr = common::swarm_addr(&banner);
    let b = TestRepo::new();
    b.set_config("net", "fetch_timeout", "\"3s\"");
    let (_db, _) = Daemon::start(&b, &["--bootstrap", &addr]);
    let command = format!(
        "{} --repo {} cat {cid} > /dev/null",
        common::bin(),
        b.path().display()
    );
    let out = std::process::Command::new("timeout")
        .args(["60", "script", "-qfec", &command, "/dev/null"])
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let screen = String::from_utf8_lossy(&out.stdout);
    assert!(screen.contains("fetching (from 1 of 1 peers)"), "{screen}");
    assert!(screen.contains("MiB") && screen.contains("/s"), "{screen}");
    // The missing block: the fetch fails, and so does the command.
    assert!(!out.status.success(), "{screen}");
}

/// Where a daemon listens and whom it bootstraps from come from
/// config.toml and from flags (`--listen A B`, several after one flag);
/// the defaults are private; QUIC works between daemons; `id` lists the
/// protocols the daemon speaks.
#[test]
fn listen_and_bootstrap_come_from_config_and_flags() {
    // Defaults of a new repo: loopback only, no bootstrap peers, no mDNS.
    let fresh = TestRepo::new();
    fresh.ok(&["init"]);
    let text = std::fs::read_to_string(fresh.path().join("config.toml")).unwrap();
    let config: toml::Table = toml::from_str(&text).unwrap();
    let net = config["net"].as_table().unwrap();
    // Pub/sub is on in a new repo's config.toml.
    assert_eq!(config["pubsub"]["enabled"].as_bool(), Some(true), "{text}");
    let listen = net["listen"].as_array().unwrap();
    assert!(!listen.is_empty());
    assert!(listen
        .iter()
        .all(|a| a.as_str().unwrap().starts_with("/ip4/127.0.0.1/")));
    assert!(net["bootstrap"].as_array().unwrap().is_empty());
    assert_eq!(net["mdns"].as_bool(), Some(false));

    // Flags: TCP and QUIC after one --listen.
    let q = TestRepo::new();
    let (_dq, banner) = Daemon::spawn(
        &q,
        &[
            "daemon",
            "--listen",
            "/ip4/127.0.0.1/tcp/0",
            "/ip4/127.0.0.1/udp/0/quic-v1",
            "--api",
            "127.0.0.1:0",
            "--gateway",
            "off",
        ],
    );
    let addrs: Vec<&str> = banner
        .iter()
        .filter_map(|l| l.strip_prefix("Swarm listening on "))
        .collect();
    assert_eq!(addrs.len(), 2, "{banner:?}");
    let tcp = addrs.iter().find(|a| a.contains("/tcp/")).unwrap();
    let quic = addrs.iter().find(|a| a.contains("/quic-v1/")).unwrap();
    let live: serde_json::Value = serde_json::from_str(&q.ok(&["id"])).unwrap();
    let protocols: Vec<&str> = live["Protocols"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_str().unwrap())
        .collect();
    for p in [
        "/ipfs/kad/1.0.0",
        "/ipfs/bitswap/1.2.0",
        "/ipfs/bitswap/1.1.0",
        "/ipfs/bitswap/1.0.0",
        "/ipfs/id/1.0.0",
        "/ipfs/ping/1.0.0",
        "/cairn/replicate/1.0.0",
        "/meshsub/1.1.0",
        "/meshsub/1.0.0",
    ] {
        assert!(protocols.contains(&p), "{p} missing from {protocols:?}");
    }
    assert_eq!(live["Addresses"].as_array().unwrap().len(), 2, "{live}");

    // Config: listen and bootstrap from config.toml, no flags at all.
    let c = TestRepo::new();
    c.set_config("net", "listen", "[\"/ip4/127.0.0.1/tcp/0\"]");
    c.set_config("net", "bootstrap", &format!("[\"{tcp}\"]"));
    let (_dc, banner) = Daemon::spawn(&c, &["daemon", "--api", "127.0.0.1:0", "--gateway", "off"]);
    let q_id = live["ID"].as_str().unwrap();
    assert!(
        banner.iter().any(|l| l == &format!("Connected to {q_id}")),
        "{banner:?}"
    );
    assert!(
        banner
            .iter()
            .filter_map(|l| l.strip_prefix("Swarm listening on "))
            .all(|a| a.starts_with("/ip4/127.0.0.1/tcp/")),
        "{banner:?}"
    );

    // QUIC between daemons: a third one dials q's QUIC address and
    // fetches a file from it over that connection.
    let d = TestRepo::new();
    let (_dd, _) = Daemon::spawn(
        &d,
        &[
            "daemon",
            "--listen",
            "/ip4/127.0.0.1/udp/0/quic-v1",
            "--api",
            "127.0.0.1:0",
            "--gateway",
            "off",
        ],
    );
    d.ok(&["swarm", "connect", quic]);
    let peers = d.ok(&["swarm", "peers"]);
    assert!(
        peers
            .lines()
            .any(|l| l.contains("/quic-v1/") && l.ends_with(q_id)),
        "{peers}"
    );
    let data = common::random_bytes(1_500_000, 93);
    let file = q.scratch("quic.bin");
    std::fs::write(&file, &data).unwrap();
    let cid = q.add(&file, &[]);
    assert_eq!(d.ok_bytes(&["cat", &cid]), data);
}

/// A bootstrap address that is empty or not a multiaddr stops the daemon
/// before it starts, with an error naming the address; no `api` file is
/// left behind.
#[test]
fn a_bad_bootstrap_address_is_refused() {
    let a = TestRepo::new();
    a.ok(&["init"]);
    let err = a.fails(&Daemon::loopback_args(&["--bootstrap", ""]));
    assert!(err.contains("bootstrap address \"\" is empty"), "{err}");
    let err = a.fails(&Daemon::loopback_args(&["--bootstrap", "nowhere"]));
    assert!(err.contains("bootstrap address \"nowhere\""), "{err}");
    assert!(!a.path().join("api").exists());
}

#[test]
fn a_stale_api_file_naming_another_daemon_is_ignored() {
    // A daemon killed with SIGKILL leaves its `api` file; the kernel may give
    // its port to another node's daemon. Commands on the first repo must not
    // go to that daemon.
    let (a, b) = (TestRepo::new(), TestRepo::new());
    a.ok(&["init"]);
    b.ok(&["init"]);
    let a_id = a.ok(&["id"]);
    let (_b_daemon, banner) = Daemon::start(&b, &[]);
    let b_api = common::api_url(&banner);
    let port = b_api.rsplit(':').next().unwrap();
    std::fs::write(a.path().join("api"), format!("/ip4/127.0.0.1/tcp/{port}")).unwrap();
    assert_eq!(a.ok(&["id"]), a_id, "a's id came from b's daemon");
    let file = a.path().join("hello.txt");
    std::fs::write(&file, "only in a").unwrap();
    let cid = a.add(&file, &[]);
    assert!(a.ok(&["pin", "ls", "-q"]).contains(&cid));
    assert!(
        !b.ok(&["pin", "ls", "-q"]).contains(&cid),
        "the add went to b"
    );
}

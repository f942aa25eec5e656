//! Several daemons on 127.0.0.1, as separate processes linked in a line of
//! bootstrap addresses (1 → 2 → 3 → 4 → 5): content added on node 1 is found
//! through the DHT and fetched on node 5 knowing only its CID; and when node 1
//! is gone, node 5 gets it from node 3, which fetched it before.

mod common;

use common::{Daemon, TestRepo};
use std::time::{Duration, Instant};

/// Starts `n` daemons, each bootstrapping to the one before.
fn line(n: usize) -> Vec<(TestRepo, Daemon)> {
    let mut nodes: Vec<(TestRepo, Daemon)> = Vec::new();
    let mut prev_addr: Option<String> = None;
    for _ in 0..n {
        let repo = TestRepo::new();
        repo.set_config("net", "fetch_timeout", "\"20s\"");
        let extra: Vec<&str> = match &prev_addr {
            Some(a) => vec!["--bootstrap", a.as_str()],
            None => vec![],
        };
        let (daemon, banner) = Daemon::start(&repo, &extra);
        let addr = banner
            .iter()
            .find_map(|l| l.strip_prefix("Swarm listening on "))
            .expect("a listen address")
            .to_string();
        prev_addr = Some(addr);
        nodes.push((repo, daemon));
    }
    nodes
}

fn peer_id(repo: &TestRepo) -> String {
    let v: serde_json::Value = serde_json::from_str(&repo.ok(&["id"])).unwrap();
    v["ID"].as_str().unwrap().to_string()
}

/// Polls `routing findprovs` on `repo` until `provider` is listed.
fn wait_for_provider(repo: &TestRepo, cid: &str, provider: &str) -> Duration {
    let start = Instant::now();
    loop {
        let out = repo.run(&["routing", "findprovs", cid]);
        let text = String::from_utf8_lossy(&out.stdout);
        if text.lines().any(|l| l.trim() == provider) {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "{provider} never showed up as a provider of {cid}; last answer: {text:?} {}",
            String::from_utf8_lossy(&out.stderr)
        );
        std::thread::sleep(Duration::from_millis(300));
    }
}

#[test]
fn content_moves_along_a_line_of_five_daemons() {
    let nodes = line(5);
    let (n1, _) = &nodes[0];
    let (n3, _) = &nodes[2];
    let (n5, _) = &nodes[4];
    let id1 = peer_id(n1);
    let id3 = peer_id(n3);
    // Peers print as Kubo prints them: one /p2p suffix.
    let peers5 = n5.ok(&["swarm", "peers"]);
    assert!(
        peers5.lines().all(|l| l.matches("/p2p/").count() == 1),
        "{peers5}"
    );

    let data = common::random_bytes(6 * 1024 * 1024 + 321, 51);
    let file = n1.scratch("first.bin");
    std::fs::write(&file, &data).unwrap();
    let cid = n1.add(&file, &[]);
    wait_for_provider(n5, &cid, &id1);
    let out = n5.run(&["cat", &cid]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.stdout == data, "node 5 got different bytes");

    // A second file: node 3 fetches it, then node 1 leaves for good.
    let data2 = common::random_bytes(3 * 1024 * 1024 + 5, 52);
    let file2 = n1.scratch("second.bin");
    std::fs::write(&file2, &data2).unwrap();
    let cid2 = n1.add(&file2, &["--cid-version", "0"]);
    wait_for_provider(n3, &cid2, &id1);
    let got = n3.scratch("second.out");
    n3.ok(&["get", "-o", got.to_str().unwrap(), &cid2]);
    assert!(std::fs::read(&got).unwrap() == data2);
    // Node 3 announced what it fetched.
    wait_for_provider(n5, &cid2, &id3);
    let mut nodes = nodes;
    let (_, mut d1) = nodes.remove(0);
    assert!(d1.signal(libc::SIGTERM).success());
    let (n3, _) = &nodes[1];
    let (n5, _) = &nodes[3];
    let sent_before = blocks_sent(n3);
    let out = n5.run(&["cat", &cid2]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.stdout == data2,
        "node 5 got different bytes from node 3"
    );
    // Node 3 served them (node 1 is gone, nodes 2 and 4 never had them).
    // (Its leaves: 1 MiB chunks, the default, under CIDv0 too.)
    let blocks = data2.len().div_ceil(1024 * 1024) as u64;
    assert!(
        blocks_sent(n3) >= sent_before + blocks,
        "node 3 sent {} blocks, the file has {blocks}",
        blocks_sent(n3) - sent_before
    );
}

/// `bitswap stat`'s "blocks sent".
fn blocks_sent(repo: &TestRepo) -> u64 {
    repo.ok(&["bitswap", "stat"])
        .lines()
        .find_map(|l| l.trim().strip_prefix("blocks sent: "))
        .expect("a blocks sent line")
        .parse()
        .unwrap()
}

/// A restarted node rejoins through the routing table it saved, without
/// bootstrap addresses; connection limits from config.toml hold; `stats bw`
/// counts real traffic.
#[test]
fn routing_table_persists_and_limits_hold() {
    let a = TestRepo::new();
    let (_da, banner) = Daemon::start(&a, &[]);
    let addr_a = banner
        .iter()
        .find_map(|l| l.strip_prefix("Swarm listening on "))
        .unwrap()
        .to_string();
    let id_a = peer_id(&a);
    let b = TestRepo::new();
    let (mut db, _) = Daemon::start(&b, &["--bootstrap", &addr_a]);
    let data = common::random_bytes(2_000_000, 61);
    let file = a.scratch("f.bin");
    std::fs::write(&file, &data).unwrap();
    let cid = a.add(&file, &[]);
    assert!(b.run(&["cat", &cid]).stdout == data);
    let bw = b.ok(&["stats", "bw"]);
    let total_in: u64 = bw
        .lines()
        .find_map(|l| l.strip_prefix("TotalIn: "))
        .unwrap()
        .parse()
        .unwrap();
    assert!(total_in >= data.len() as u64, "{bw}");
    // Stopped and started again with no bootstrap address at all.
    assert!(db.signal(libc::SIGTERM).success());
    let (_db, _) = Daemon::start(&b, &[]);
    let start = Instant::now();
    while !b.ok(&["swarm", "peers"]).contains(&id_a) {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "the restarted node did not rejoin from its saved routing table"
        );
        std::thread::sleep(Duration::from_millis(200));
    }

    // A node that takes one connection in all refuses a second peer.
    let c = TestRepo::new();
    c.set_config("net", "max_connections", "1");
    let (_dc, banner) = Daemon::start(&c, &["--bootstrap", &addr_a]);
    let addr_c = banner
        .iter()
        .find_map(|l| l.strip_prefix("Swarm listening on "))
        .unwrap()
        .to_string();
    let d = TestRepo::new();
    let (_dd, _) = Daemon::start(&d, &[]);
    let id_d = peer_id(&d);
    // The dial may complete its handshake before c closes it.
    let _ = d.run(&["swarm", "connect", &addr_c]);
    std::thread::sleep(Duration::from_millis(500));
    let peers_c = c.ok(&["swarm", "peers"]);
    assert_eq!(peers_c.lines().count(), 1, "{peers_c}");
    assert!(!peers_c.contains(&id_d), "{peers_c}");
}

/// A node whose bootstrap peer is not up yet when it starts joins it once
/// it is: bootstrap peers are dialed again while a node has few peers.
#[test]
fn a_bootstrap_peer_that_starts_later_is_joined() {
    let a = TestRepo::new();
    a.ok(&["init"]);
    let id_a = peer_id(&a);
    // A port nothing listens on now, for A to take later.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let listen = format!("/ip4/127.0.0.1/tcp/{port}");
    let b = TestRepo::new();
    let (_db, banner) = Daemon::start(&b, &["--bootstrap", &format!("{listen}/p2p/{id_a}")]);
    assert!(
        !banner.iter().any(|l| l.contains(&id_a)),
        "A is not up yet: {banner:?}"
    );
    std::thread::sleep(Duration::from_millis(500));
    let (_da, _) = Daemon::spawn(
        &a,
        &[
            "daemon",
            "--listen",
            &listen,
            "--api",
            "127.0.0.1:0",
            "--gateway",
            "127.0.0.1:0",
        ],
    );
    let start = Instant::now();
    while !b.ok(&["swarm", "peers"]).contains(&id_a) {
        assert!(
            start.elapsed() < Duration::from_secs(45),
            "B never dialed its bootstrap peer again"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    eprintln!("B joined A {:?} after A started", start.elapsed());
}

/// The connection manager: a node over its high water mark closes idle
/// peers down to its low water mark, and keeps the peer it just served
/// over Bitswap though that peer connected first (idle peers go oldest
/// first, so without Bitswap telling the manager it would go first).
#[test]
fn over_its_high_water_mark_a_node_closes_idle_peers_and_keeps_the_busy_one() {
    let a = TestRepo::new();
    a.set_config("net", "conn_low_water", "2");
    a.set_config("net", "conn_high_water", "4");
    a.set_config("net", "conn_grace_period", "\"1s\"");
    let (_da, banner) = Daemon::start(&a, &[]);
    let addr_a = common::swarm_addr(&banner);
    let peers_of_a = || -> Vec<String> {
        let out = a.ok(&["swarm", "peers"]);
        out.lines().map(|l| l.trim().to_string()).collect()
    };

    // The busy peer: connected first, then fetches a file from a.
    let busy = TestRepo::new();
    let (_dbusy, _) = Daemon::start(&busy, &[]);
    busy.ok(&["swarm", "connect", &addr_a]);
    let data = common::random_bytes(1_500_000, 71);
    let file = a.scratch("f.bin");
    std::fs::write(&file, &data).unwrap();
    let cid = a.add(&file, &[]);
    assert!(busy.ok_bytes(&["cat", &cid]) == data);
    let busy_id = peer_id(&busy);

    // Six idle peers connect: seven connections, over the high water mark.
    let mut idle = Vec::new();
    for _ in 0..6 {
        let repo = TestRepo::new();
        let (daemon, _) = Daemon::start(&repo, &[]);
        repo.ok(&["swarm", "connect", &addr_a]);
        idle.push((repo, daemon));
    }
    let start = Instant::now();
    let mut peers = peers_of_a();
    while peers.len() > 2 {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "a kept {} peers over its low water mark of 2: {peers:?}",
            peers.len()
        );
        std::thread::sleep(Duration::from_millis(300));
        peers = peers_of_a();
    }
    assert!(
        peers.iter().any(|p| p.ends_with(&busy_id)),
        "the peer a served over Bitswap was closed: {peers:?}"
    );
    // Closed peers are not refused: one that asks again gets in.
    let (late, _) = &idle[0];
    late.ok(&["swarm", "connect", &addr_a]);
    assert_eq!(late.ok_bytes(&["cat", &cid]), data);
}

//! Reachability behind NAT, in network namespaces this test creates (it
//! needs root and `ip netns`; without them it prints why and passes
//! without running). Private address ranges only, nothing leaves the
//! namespaces:
//!
//! ```text
//!  pub (10.77.0.1)            rtr                     home (192.168.77.2)
//!  daemons A and B  ---- 10.77.0.254 | 192.168.77.1 ----  daemon H
//!                        MASQUERADE out to pub
//! ```
//!
//! A and B are reachable; H is behind the router's NAT (the public side
//! has no route to 192.168.77.0/24). All three run the public profile with
//! `autonat_private_addrs` (AutoNAT would otherwise not trust these
//! addresses). `tests/nat/setup.sh` installs iptables (and curl) when
//! missing.

mod common;

use common::{bin, peer_id_of, poll_every, swarm_addr, Daemon, TestRepo};
use serde_json::Value;
use std::process::Command;
use std::time::Duration;

/// Runs `ip ARGS`; panics with its stderr when it fails.
fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().expect("run ip");
    assert!(
        out.status.success(),
        "ip {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Runs `ARGS` inside namespace `ns`; panics when it fails.
fn in_ns(ns: &str, args: &[&str]) -> String {
    let out = Command::new("ip")
        .args(["netns", "exec", ns])
        .args(args)
        .output()
        .expect("run ip netns exec");
    assert!(
        out.status.success(),
        "in {ns}: {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8 output")
}

/// Why namespaces cannot be made here, if they cannot.
/// Whether namespace tests can run here: if not, says why the test
/// `name` is skipped; if so, installs what they need (tests/nat/setup.sh).
fn namespaces_ready(name: &str) -> bool {
    if let Some(why) = netns_unavailable() {
        eprintln!("SKIPPED {name}: {why} (needs root and `ip netns`)");
        return false;
    }
    let setup = Command::new(common::process::root().join("tests/nat/setup.sh"))
        .output()
        .expect("run tests/nat/setup.sh");
    assert!(
        setup.status.success(),
        "tests/nat/setup.sh: {}",
        String::from_utf8_lossy(&setup.stderr)
    );
    true
}

fn netns_unavailable() -> Option<String> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Some("not root".into());
    }
    // Tests of one binary probe at once: one name each.
    static PROBES: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = PROBES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let probe = format!("cairn-probe-{}-{n}", std::process::id());
    match Command::new("ip").args(["netns", "add", &probe]).output() {
        Ok(out) if out.status.success() => {
            let _ = Command::new("ip").args(["netns", "del", &probe]).status();
            None
        }
        Ok(out) => Some(format!(
            "`ip netns add` failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )),
        Err(e) => Some(format!("no `ip` command: {e}")),
    }
}

/// The namespaces of one run, deleted on drop (the veth pairs go with
/// them), whatever the test's outcome.
struct Topology {
    pub_ns: String,
    rtr_ns: String,
    home_ns: String,
    made: Vec<String>,
}

impl Drop for Topology {
    fn drop(&mut self) {
        for ns in self.made.iter().rev() {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}

impl Topology {
    /// pub — rtr (NAT) — home, named after this process so that runs do
    /// not collide.
    fn new() -> Topology {
        let tag = format!("cn{}", std::process::id() % 100_000);
        let mut t = Topology {
            pub_ns: format!("cairn-{tag}-pub"),
            rtr_ns: format!("cairn-{tag}-rtr"),
            home_ns: format!("cairn-{tag}-home"),
            made: Vec::new(),
        };
        for ns in [t.pub_ns.clone(), t.rtr_ns.clone(), t.home_ns.clone()] {
            ip(&["netns", "add", &ns]);
            t.made.push(ns.clone());
            ip(&["-n", &ns, "link", "set", "lo", "up"]);
        }
        // Interface names: at most 15 bytes.
        let (pub_if, rtr_out, home_if, rtr_in) = (
            format!("{tag}p"),
            format!("{tag}o"),
            format!("{tag}h"),
            format!("{tag}i"),
        );
        let link = |a: &str, ns_a: &str, addr_a: &str, b: &str, ns_b: &str, addr_b: &str| {
            ip(&["link", "add", a, "type", "veth", "peer", "name", b]);
            for (dev, ns, addr) in [(a, ns_a, addr_a), (b, ns_b, addr_b)] {
                ip(&["link", "set", dev, "netns", ns]);
                ip(&["-n", ns, "addr", "add", addr, "dev", dev]);
                ip(&["-n", ns, "link", "set", dev, "up"]);
            }
        };
        link(
            &pub_if,
            &t.pub_ns,
            "10.77.0.1/24",
            &rtr_out,
            &t.rtr_ns,
            "10.77.0.254/24",
        );
        link(
            &home_if,
            &t.home_ns,
            "192.168.77.2/24",
            &rtr_in,
            &t.rtr_ns,
            "192.168.77.1/24",
        );
        ip(&[
            "-n",
            &t.home_ns,
            "route",
            "add",
            "default",
            "via",
            "192.168.77.1",
        ]);
        in_ns(&t.rtr_ns, &["sysctl", "-q", "-w", "net.ipv4.ip_forward=1"]);
        in_ns(
            &t.rtr_ns,
            &[
                "iptables",
                "-t",
                "nat",
                "-A",
                "POSTROUTING",
                "-o",
                &rtr_out,
                "-j",
                "MASQUERADE",
            ],
        );
        t
    }
}

/// A repo with the public profile, AutoNAT trusting private addresses.
fn public_repo() -> TestRepo {
    let r = TestRepo::new();
    r.set_config("net", "profile", "\"public\"");
    r.set_config("net", "autonat_private_addrs", "true");
    r
}

/// Starts a daemon of `repo` inside `ns`, listening on `ip` (any port),
/// API and gateway on the namespace's loopback.
fn daemon_in(ns: &str, repo: &TestRepo, ip: &str, bootstrap: &[&str]) -> (Daemon, Vec<String>) {
    let listen = format!("/ip4/{ip}/tcp/0");
    let repo_path = repo.path();
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "exec", ns, bin(), "--repo"])
        .arg(&repo_path)
        .args([
            "daemon",
            "--listen",
            &listen,
            "--api",
            "127.0.0.1:0",
            "--gateway",
            "127.0.0.1:0",
        ]);
    for b in bootstrap {
        cmd.args(["--bootstrap", b]);
    }
    cmd.stdin(std::process::Stdio::null());
    Daemon::launch(cmd)
}

/// `cairn ARGS` against the daemon of `repo` (inside `ns`), as JSON.
fn cairn_json(ns: &str, repo: &TestRepo, args: &[&str]) -> Value {
    let repo_path = repo.path();
    let mut all = vec![bin(), "--repo", repo_path.to_str().expect("utf-8 path")];
    all.extend_from_slice(args);
    serde_json::from_str(&in_ns(ns, &all)).expect("JSON output")
}

/// The gauge `name` of the daemon whose start-up lines are `banner`.
fn metric_in(ns: &str, banner: &[String], name: &str) -> Option<f64> {
    let text = in_ns(
        ns,
        &[
            "curl",
            "-sf",
            &format!("{}/metrics", common::api_url(banner)),
        ],
    );
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
}

/// The peer IDs in a daemon's DHT routing table.
fn table(ns: &str, repo: &TestRepo) -> Vec<String> {
    cairn_json(ns, repo, &["stats", "dht"])["Peers"]
        .as_array()
        .expect("Peers")
        .iter()
        .map(|p| p["ID"].as_str().expect("ID").to_string())
        .collect()
}

#[test]
fn autonat_finds_who_is_reachable_and_the_dht_follows() {
    if !namespaces_ready("autonat_finds_who_is_reachable_and_the_dht_follows") {
        return;
    }
    // Dropped last: daemons stop before their namespaces go.
    let net = Topology::new();
    let (ra, rb, rh) = (public_repo(), public_repo(), public_repo());
    let (_da, banner_a) = daemon_in(&net.pub_ns, &ra, "10.77.0.1", &[]);
    let addr_a = swarm_addr(&banner_a);
    let (_db, banner_b) = daemon_in(&net.pub_ns, &rb, "10.77.0.1", &[&addr_a]);
    let addr_b = swarm_addr(&banner_b);
    let (_dh, banner_h) = daemon_in(&net.home_ns, &rh, "192.168.77.2", &[&addr_a, &addr_b]);
    let (a, b, h) = (
        peer_id_of(&addr_a),
        peer_id_of(&addr_b),
        peer_id_of(&swarm_addr(&banner_h)),
    );

    // The router hides H: A sees it at the router's address.
    let peers_a = in_ns(
        &net.pub_ns,
        &[
            bin(),
            "--repo",
            ra.path().to_str().unwrap(),
            "swarm",
            "peers",
        ],
    );
    let h_seen = peers_a
        .lines()
        .find(|l| l.ends_with(&h))
        .unwrap_or_else(|| panic!("A is not connected to H: {peers_a}"));
    assert!(h_seen.starts_with("/ip4/10.77.0.254/tcp/"), "{h_seen}");

    // AutoNAT: A and B are dialled back, H is not.
    let reach = |ns: &str, repo: &TestRepo| cairn_json(ns, repo, &["id"])["Reachability"].clone();
    let settled =
        |r: &Value, status: &str, mode: &str| r["Status"] == status && r["DhtMode"] == mode;
    let (ra_now, rb_now, rh_now) = poll_every(
        Duration::from_millis(500),
        Duration::from_secs(50),
        "A and B public DHT servers, H a private DHT client",
        || {
            let (x, y, z) = (
                reach(&net.pub_ns, &ra),
                reach(&net.pub_ns, &rb),
                reach(&net.home_ns, &rh),
            );
            (settled(&x, "public", "server")
                && settled(&y, "public", "server")
                && settled(&z, "private", "client"))
            .then_some((x, y, z))
        },
    );
    let confirmed = |r: &Value| -> Vec<String> {
        r["ConfirmedAddresses"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a.as_str().unwrap().to_string())
            .collect()
    };
    // The address A listens on, as B dialled it back.
    let listen_a = addr_a.split("/p2p/").next().unwrap().to_string();
    assert!(confirmed(&ra_now).contains(&listen_a), "{ra_now}");
    assert!(
        confirmed(&rb_now)
            .iter()
            .all(|x| x.starts_with("/ip4/10.77.0.1/")),
        "{rb_now}"
    );
    assert!(confirmed(&rh_now).is_empty(), "{rh_now}");
    assert_eq!(
        metric_in(&net.pub_ns, &banner_a, "cairn_reachability"),
        Some(2.0)
    );
    assert_eq!(
        metric_in(&net.pub_ns, &banner_a, "cairn_dht_server"),
        Some(1.0)
    );
    assert_eq!(
        metric_in(&net.home_ns, &banner_h, "cairn_reachability"),
        Some(1.0)
    );
    assert_eq!(
        metric_in(&net.home_ns, &banner_h, "cairn_dht_server"),
        Some(0.0)
    );

    // The servers list each other, once each learnt the other serves; H
    // uses them but is in no one's table.
    poll_every(
        Duration::from_millis(500),
        Duration::from_secs(20),
        "A and B in each other's routing table, and in H's",
        || {
            let (ta, tb, th) = (
                table(&net.pub_ns, &ra),
                table(&net.pub_ns, &rb),
                table(&net.home_ns, &rh),
            );
            (ta.contains(&b) && tb.contains(&a) && th.contains(&a) && th.contains(&b)).then_some(())
        },
    );
    for (name, repo) in [("A", &ra), ("B", &rb)] {
        let t = table(&net.pub_ns, repo);
        assert!(
            !t.contains(&h),
            "H, a DHT client, is in {name}'s table: {t:?}"
        );
    }
    assert_eq!(
        cairn_json(&net.home_ns, &rh, &["stats", "dht"])["Mode"],
        "client"
    );
}

/// Two homes, each behind its own NAT router, and a "public" segment (a
/// bridge) holding the relay and a bootstrap node. The routers
/// masquerade their home's 192.168.x.0/24 behind their 10.78.0.x WAN
/// address; nothing routes to the homes from outside.
///
/// ```text
///  h1 (192.168.11.2) - r1 (NAT, 10.78.0.11) -+- pub bridge 10.78.0.1: R, B
///  h2 (192.168.12.2) - r2 (NAT, 10.78.0.12) -+
/// ```
struct TwoHomes {
    pub_ns: String,
    homes: [String; 2],
    made: Vec<String>,
}

impl Drop for TwoHomes {
    fn drop(&mut self) {
        for ns in self.made.iter().rev() {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}

impl TwoHomes {
    /// The namespaces, named with `prefix` (two letters, one per test:
    /// tests of one binary share a PID). With `drop_unsolicited`, the
    /// routers drop what arrives from outside unasked (as home routers
    /// do) rather than answer with a reset.
    fn new(prefix: &str, drop_unsolicited: bool) -> TwoHomes {
        let tag = format!("{prefix}{}", std::process::id() % 100_000);
        let name = |x: &str| format!("cairn-{tag}-{x}");
        let mut t = TwoHomes {
            pub_ns: name("pub"),
            homes: [name("h1"), name("h2")],
            made: Vec::new(),
        };
        for x in ["pub", "r1", "h1", "r2", "h2"] {
            let ns = name(x);
            ip(&["netns", "add", &ns]);
            t.made.push(ns.clone());
            ip(&["-n", &ns, "link", "set", "lo", "up"]);
        }
        let br = format!("{tag}br");
        ip(&["-n", &t.pub_ns, "link", "add", &br, "type", "bridge"]);
        ip(&["-n", &t.pub_ns, "addr", "add", "10.78.0.1/24", "dev", &br]);
        ip(&["-n", &t.pub_ns, "link", "set", &br, "up"]);
        // A veth pair from `ns_a` (`addr_a`) to `ns_b` (`addr_b`, or the
        // bridge when none).
        let link =
            |a: &str, ns_a: &str, addr_a: &str, b: &str, ns_b: &str, addr_b: Option<&str>| {
                ip(&["link", "add", a, "type", "veth", "peer", "name", b]);
                ip(&["link", "set", a, "netns", ns_a]);
                ip(&["-n", ns_a, "addr", "add", addr_a, "dev", a]);
                ip(&["-n", ns_a, "link", "set", a, "up"]);
                ip(&["link", "set", b, "netns", ns_b]);
                match addr_b {
                    Some(addr) => ip(&["-n", ns_b, "addr", "add", addr, "dev", b]),
                    None => ip(&["-n", ns_b, "link", "set", b, "master", &br]),
                }
                ip(&["-n", ns_b, "link", "set", b, "up"]);
            };
        for (i, n) in [(1, 11), (2, 12)] {
            let (rtr, home) = (name(&format!("r{i}")), name(&format!("h{i}")));
            let (wan, lan) = (format!("{tag}w{i}"), format!("{tag}l{i}"));
            link(
                &wan,
                &rtr,
                &format!("10.78.0.{n}/24"),
                &format!("{tag}W{i}"),
                &t.pub_ns,
                None,
            );
            link(
                &lan,
                &rtr,
                &format!("192.168.{n}.1/24"),
                &format!("{tag}L{i}"),
                &home,
                Some(&format!("192.168.{n}.2/24")),
            );
            ip(&[
                "-n",
                &home,
                "route",
                "add",
                "default",
                "via",
                &format!("192.168.{n}.1"),
            ]);
            in_ns(&rtr, &["sysctl", "-q", "-w", "net.ipv4.ip_forward=1"]);
            in_ns(
                &rtr,
                &[
                    "iptables",
                    "-t",
                    "nat",
                    "-A",
                    "POSTROUTING",
                    "-o",
                    &wan,
                    "-j",
                    "MASQUERADE",
                ],
            );
            if drop_unsolicited {
                for chain in ["INPUT", "FORWARD"] {
                    in_ns(
                        &rtr,
                        &[
                            "iptables",
                            "-A",
                            chain,
                            "-i",
                            &wan,
                            "-m",
                            "conntrack",
                            "--ctstate",
                            "NEW,INVALID",
                            "-j",
                            "DROP",
                        ],
                    );
                }
            }
        }
        t
    }
}

/// Runs `ARGS` inside namespace `ns`; its stdout as bytes.
fn in_ns_bytes(ns: &str, args: &[&str]) -> Vec<u8> {
    let out = Command::new("ip")
        .args(["netns", "exec", ns])
        .args(args)
        .output()
        .expect("run ip netns exec");
    assert!(
        out.status.success(),
        "in {ns}: {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// `cairn ARGS` against the daemon of `repo` inside `ns`: its stdout.
fn cairn_in(ns: &str, repo: &TestRepo, args: &[&str]) -> Vec<u8> {
    let repo_path = repo.path();
    let mut all = vec![bin(), "--repo", repo_path.to_str().expect("utf-8 path")];
    all.extend_from_slice(args);
    in_ns_bytes(ns, &all)
}

/// A public-profile repo whose relay service lets a test's files through
/// (Kubo's 128 KiB and 2 min per circuit would cut them off; no rate
/// limits for the reservations all made from a few addresses).
fn relay_repo() -> TestRepo {
    let r = public_repo();
    r.set_config("net.relay_limits", "circuit_bytes", "\"256 MiB\"");
    r.set_config("net.relay_limits", "circuit_duration", "\"10m\"");
    r.set_config("net.relay_limits", "rate_limits", "false");
    r
}

/// `id`'s relay addresses.
fn relay_addrs(id: &Value) -> Vec<String> {
    id["Reachability"]["RelayAddresses"]
        .as_array()
        .expect("RelayAddresses")
        .iter()
        .map(|a| a.as_str().expect("a string").to_string())
        .collect()
}

/// The address `cairn swarm peers` (inside `ns`) shows for `peer`.
fn peer_addr(ns: &str, repo: &TestRepo, peer: &str) -> Option<String> {
    let out = String::from_utf8(cairn_in(ns, repo, &["swarm", "peers"])).expect("utf-8");
    out.lines()
        .find(|l| l.ends_with(peer))
        .map(|l| l.to_string())
}

#[test]
fn nodes_behind_nat_reserve_on_relays_and_reach_each_other_through_them() {
    if !namespaces_ready("nodes_behind_nat_reserve_on_relays_and_reach_each_other_through_them") {
        return;
    }
    let net = TwoHomes::new("cm", false);
    let [ns1, ns2] = [net.homes[0].as_str(), net.homes[1].as_str()];
    let (rr, rb, r1, r2) = (relay_repo(), relay_repo(), relay_repo(), relay_repo());
    let (relay_daemon, banner_r) = daemon_in(&net.pub_ns, &rr, "10.78.0.1", &[]);
    let addr_r = swarm_addr(&banner_r);
    let (_db, banner_b) = daemon_in(&net.pub_ns, &rb, "10.78.0.1", &[&addr_r]);
    let addr_b = swarm_addr(&banner_b);
    // H1 is given R as its relay; H2 finds relays on its own (R and B
    // both serve, as the public profile does).
    r1.set_config("net", "static_relays", &format!("[\"{addr_r}\"]"));
    // Hole punching off here: this test is about the relayed path.
    for r in [&r1, &r2] {
        r.set_config("net", "hole_punching", "false");
    }
    let (_d1, banner_1) = daemon_in(ns1, &r1, "192.168.11.2", &[&addr_r, &addr_b]);
    let (_d2, banner_2) = daemon_in(ns2, &r2, "192.168.12.2", &[&addr_r, &addr_b]);
    let (h1, h2) = (
        peer_id_of(&swarm_addr(&banner_1)),
        peer_id_of(&swarm_addr(&banner_2)),
    );
    let started = std::time::Instant::now();

    // Both learn they are not reachable, stay DHT clients, and hold a
    // reservation: H1 on R (its static relay), H2 on a relay it met.
    let via_r = format!("{addr_r}/p2p-circuit/p2p/");
    let (id1, id2) = poll_every(
        Duration::from_millis(500),
        Duration::from_secs(60),
        "H1 and H2 private DHT clients with relay addresses",
        || {
            let (a, b) = (cairn_json(ns1, &r1, &["id"]), cairn_json(ns2, &r2, &["id"]));
            let ok = |id: &Value| {
                id["Reachability"]["Status"] == "private"
                    && id["Reachability"]["DhtMode"] == "client"
                    && !relay_addrs(id).is_empty()
            };
            (ok(&a) && ok(&b) && relay_addrs(&a).contains(&format!("{via_r}{h1}")))
                .then_some((a, b))
        },
    );
    eprintln!("reserved after {:?}", started.elapsed());
    for (id, me) in [(&id1, &h1), (&id2, &h2)] {
        for a in relay_addrs(id) {
            assert!(
                (a.starts_with(&addr_r) || a.starts_with(&addr_b))
                    && a.ends_with(&format!("/p2p-circuit/p2p/{me}")),
                "{a}"
            );
        }
        // `id` lists them among its addresses too.
        let addrs = id["Addresses"].as_array().expect("Addresses");
        assert!(
            addrs
                .iter()
                .any(|a| a.as_str().unwrap().contains("/p2p-circuit")),
            "{id}"
        );
    }

    // H1 reaches H2 through a relay and fetches a file H2 added.
    let data = common::random_bytes(4 << 20, 21);
    let file = r2.scratch("data");
    std::fs::write(&file, &data).expect("write file");
    let cid = String::from_utf8(cairn_in(ns2, &r2, &["add", "-Q", file.to_str().unwrap()]))
        .unwrap()
        .trim()
        .to_string();
    let to_h2 = relay_addrs(&id2)
        .into_iter()
        .next()
        .expect("H2 relay address");
    cairn_in(ns1, &r1, &["swarm", "connect", &to_h2]);
    let seen = peer_addr(ns1, &r1, &h2).expect("H1 connected to H2");
    assert!(seen.contains("/p2p-circuit"), "{seen}");
    let got = cairn_in(ns1, &r1, &["cat", &cid]);
    assert!(got == data, "H1 read {} bytes, not H2's file", got.len());
    let seen = peer_addr(ns1, &r1, &h2).expect("H1 still connected to H2");
    assert!(seen.contains("/p2p-circuit"), "no direct path, yet: {seen}");

    // R goes away: H1's reservation on it ends, and it holds one on B.
    drop(relay_daemon);
    poll_every(
        Duration::from_millis(500),
        Duration::from_secs(60),
        "H1 reserved on B, not on R any more",
        || {
            let now = relay_addrs(&cairn_json(ns1, &r1, &["id"]));
            (now.iter().all(|a| a.starts_with(&addr_b)) && !now.is_empty()).then_some(())
        },
    );
    eprintln!("whole test {:?}", started.elapsed());
}

#[test]
fn a_relayed_connection_is_hole_punched_to_a_direct_one_and_the_fetch_goes_direct() {
    if !namespaces_ready(
        "a_relayed_connection_is_hole_punched_to_a_direct_one_and_the_fetch_goes_direct",
    ) {
        return;
    }
    let net = TwoHomes::new("cp", true);
    let [ns1, ns2] = [net.homes[0].as_str(), net.homes[1].as_str()];
    let (rr, r1, r2) = (relay_repo(), public_repo(), public_repo());
    // A circuit closes after 1 MiB: the 50 MiB can only come directly.
    rr.set_config("net.relay_limits", "circuit_bytes", "\"1 MiB\"");
    let (_dr, banner_r) = daemon_in(&net.pub_ns, &rr, "10.78.0.1", &[]);
    let addr_r = swarm_addr(&banner_r);
    for r in [&r1, &r2] {
        r.set_config("net", "static_relays", &format!("[\"{addr_r}\"]"));
        // Only R relays: the homes do not reserve on each other.
        r.set_config("net", "relay_service", "false");
    }
    let (_d1, _) = daemon_in(ns1, &r1, "192.168.11.2", &[&addr_r]);
    let (_d2, banner_2) = daemon_in(ns2, &r2, "192.168.12.2", &[&addr_r]);
    let h2 = peer_id_of(&swarm_addr(&banner_2));
    let started = std::time::Instant::now();
    let to_h2 = format!("{addr_r}/p2p-circuit/p2p/{h2}");
    poll_every(
        Duration::from_millis(500),
        Duration::from_secs(60),
        "H1 and H2 private, H2 reserved on R",
        || {
            let (a, b) = (cairn_json(ns1, &r1, &["id"]), cairn_json(ns2, &r2, &["id"]));
            (a["Reachability"]["Status"] == "private"
                && b["Reachability"]["Status"] == "private"
                && relay_addrs(&b).contains(&to_h2))
            .then_some(())
        },
    );
    eprintln!("reserved after {:?}", started.elapsed());

    let data = common::random_bytes(50 << 20, 22);
    let file = r2.scratch("data");
    std::fs::write(&file, &data).expect("write file");
    let cid = String::from_utf8(cairn_in(ns2, &r2, &["add", "-Q", file.to_str().unwrap()]))
        .unwrap()
        .trim()
        .to_string();
    cairn_in(ns1, &r1, &["swarm", "connect", &to_h2]);
    // DCUtR: H2 (behind its router, 10.78.0.12) is reached directly.
    let direct = poll_every(
        Duration::from_millis(200),
        Duration::from_secs(30),
        "H1's connection to H2 direct",
        || peer_addr(ns1, &r1, &h2).filter(|a| !a.contains("/p2p-circuit")),
    );
    eprintln!("direct after {:?}: {direct}", started.elapsed());
    assert!(direct.starts_with("/ip4/10.78.0.12/"), "{direct}");
    let t = std::time::Instant::now();
    let got = cairn_in(ns1, &r1, &["cat", &cid]);
    assert!(got == data, "H1 read {} bytes, not H2's file", got.len());
    eprintln!("50 MiB in {:?}", t.elapsed());
    let end = peer_addr(ns1, &r1, &h2).expect("H1 still connected to H2");
    assert!(end.starts_with("/ip4/10.78.0.12/"), "{end}");
}

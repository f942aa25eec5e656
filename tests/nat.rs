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
fn netns_unavailable() -> Option<String> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Some("not root".into());
    }
    let probe = format!("cairn-probe-{}", std::process::id());
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
    if let Some(why) = netns_unavailable() {
        eprintln!("SKIPPED autonat_finds_who_is_reachable_and_the_dht_follows: {why} (needs root and `ip netns`)");
        return;
    }
    let setup = Command::new(common::process::root().join("tests/nat/setup.sh"))
        .output()
        .expect("run tests/nat/setup.sh");
    assert!(
        setup.status.success(),
        "tests/nat/setup.sh: {}",
        String::from_utf8_lossy(&setup.stderr)
    );
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

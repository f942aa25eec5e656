//! Replication across real daemons on 127.0.0.1 (short intervals from
//! config.toml): a root pinned with factor 3 gets three verified holders,
//! is repaired after holders are killed (the first node too), is trimmed
//! back to `max` when they return, is removed everywhere by `pin rm` even on
//! a holder that was down, moves past a node over its quota, and a corrupt
//! block is found by the scrub and fetched again.

mod common;

use common::{Daemon, TestRepo};
use std::collections::HashMap;
use std::time::{Duration, Instant};

struct Node {
    repo: TestRepo,
    daemon: Option<Daemon>,
    id: String,
}

fn configure(repo: &TestRepo) {
    repo.set_config("replication", "repair_interval", "\"1s\"");
    repo.set_config("replication", "grace", "\"3s\"");
    repo.set_config("replication", "max", "3");
    repo.set_config("replication", "scrub_interval", "\"1h\"");
    repo.set_config("net", "fetch_timeout", "\"10s\"");
}

fn addr(banner: &[String]) -> String {
    banner
        .iter()
        .find_map(|l| l.strip_prefix("Swarm listening on "))
        .expect("a listen address")
        .to_string()
}

/// `n` daemons, each bootstrapping to the first; `tweak` edits a node's
/// config before it starts.
fn cluster(n: usize, tweak: &dyn Fn(usize, &TestRepo)) -> Vec<Node> {
    let mut nodes: Vec<Node> = Vec::new();
    let mut first = None;
    for i in 0..n {
        let repo = TestRepo::new();
        repo.ok(&["init"]);
        configure(&repo);
        tweak(i, &repo);
        let extra: Vec<String> = first
            .iter()
            .flat_map(|a: &String| ["--bootstrap".to_string(), a.clone()])
            .collect();
        let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
        let (daemon, banner) = Daemon::start(&repo, &extra);
        if first.is_none() {
            first = Some(addr(&banner));
        }
        let v: serde_json::Value = serde_json::from_str(&repo.ok(&["id"])).unwrap();
        let id = v["ID"].as_str().unwrap().to_string();
        nodes.push(Node {
            repo,
            daemon: Some(daemon),
            id,
        });
    }
    nodes
}

fn status(node: &Node, cid: &str) -> serde_json::Value {
    let out = node.repo.run(&["pin", "status", "--json", cid]);
    serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null)
}

/// Pinned holders `node` reports for `cid`.
fn pinned_holders(node: &Node, cid: &str) -> Vec<String> {
    status(node, cid)["holders"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|h| h["state"] == "pinned")
        .filter_map(|h| h["peer"].as_str().map(String::from))
        .collect()
}

fn wait_until(what: &str, limit: Duration, mut check: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    while !check() {
        assert!(start.elapsed() < limit, "timed out after {limit:?}: {what}");
        std::thread::sleep(Duration::from_millis(250));
    }
    start.elapsed()
}

/// Whether `node` holds `cid` pinned with every block (its daemon checks).
fn holds(node: &Node, cid: &str) -> bool {
    let pins = node.repo.ok(&["pin", "ls", "--type", "recursive", "-q"]);
    pins.lines().any(|l| l.trim() == cid) && node.repo.run(&["repo", "verify"]).status.success()
}

fn by_id<'a>(nodes: &'a [Node], id: &str) -> &'a Node {
    nodes
        .iter()
        .find(|n| n.id == id)
        .expect("a node of the cluster")
}

#[test]
fn the_factor_holds_while_holders_die_and_returning_ones_are_trimmed() {
    let mut nodes = cluster(7, &|_, _| {});
    let data = common::random_bytes(50 * 1024 * 1024, 91);
    let file = nodes[0].repo.scratch("big.bin");
    std::fs::write(&file, &data).unwrap();
    let cid = nodes[0].repo.add(&file, &["--pin=false"]);
    nodes[0]
        .repo
        .ok(&["pin", "add", "--replication", "3", &cid]);

    // Three holders, each verified.
    wait_until("three pinned holders", Duration::from_secs(90), || {
        pinned_holders(&nodes[0], &cid).len() == 3
    });
    let holders = pinned_holders(&nodes[0], &cid);
    for h in &holders {
        assert!(holds(by_id(&nodes, h), &cid), "{h} lacks blocks");
    }
    let text = nodes[0].repo.ok(&["pin", "status", &cid]);
    assert!(
        text.starts_with(&format!("{cid}: ok (3/3 pinned")),
        "{text}"
    );

    // Kill two holders other than the first node: repaired within two
    // intervals plus the grace period (and the transfer).
    let victims: Vec<String> = holders
        .iter()
        .filter(|h| **h != nodes[0].id)
        .take(2)
        .cloned()
        .collect();
    for v in &victims {
        let node = nodes.iter_mut().find(|n| &n.id == v).unwrap();
        drop(node.daemon.take()); // SIGKILL
    }
    let took = wait_until(
        "repair after two holders died",
        Duration::from_secs(90),
        || {
            let live = pinned_holders(&nodes[0], &cid);
            live.len() == 3 && !live.iter().any(|h| victims.contains(h))
        },
    );
    eprintln!("restored the factor in {took:?} after two holders died");
    for h in pinned_holders(&nodes[0], &cid) {
        assert!(holds(by_id(&nodes, &h), &cid), "{h} lacks blocks");
    }

    // Kill the first node too: another holder takes over.
    let first_id = nodes[0].id.clone();
    drop(nodes[0].daemon.take());
    let watcher = nodes
        .iter()
        .position(|n| n.daemon.is_some() && pinned_holders(n, &cid).len() >= 2)
        .expect("a surviving holder");
    wait_until(
        "repair after the first node died",
        Duration::from_secs(90),
        || {
            let live = pinned_holders(&nodes[watcher], &cid);
            live.len() == 3
                && !live.contains(&first_id)
                && !live.iter().any(|h| victims.contains(h))
        },
    );

    // The dead come back: trimmed to at most max (3) pinned holders.
    let dead: Vec<usize> = nodes
        .iter()
        .enumerate()
        .filter(|(_, n)| n.daemon.is_none())
        .map(|(i, _)| i)
        .collect();
    // Restarted as an operator would: with the node's bootstrap peer.
    let boot = nodes[watcher].repo.ok(&["id"]);
    let boot: serde_json::Value = serde_json::from_str(&boot).unwrap();
    let boot = boot["Addresses"][0].as_str().unwrap().to_string();
    for i in dead {
        let (d, _) = Daemon::start(&nodes[i].repo, &["--bootstrap", &boot]);
        nodes[i].daemon = Some(d);
    }
    wait_until("trimmed back to max", Duration::from_secs(90), || {
        let holding = nodes
            .iter()
            .filter(|n| {
                n.repo
                    .ok(&["pin", "ls", "--type", "recursive", "-q"])
                    .lines()
                    .any(|l| l.trim() == cid)
            })
            .count();
        holding <= 3 && pinned_holders(&nodes[watcher], &cid).len() == 3
    });
    // Nothing lost: every copy still complete.
    let mut checked = HashMap::new();
    for n in &nodes {
        if n.repo
            .ok(&["pin", "ls", "--type", "recursive", "-q"])
            .lines()
            .any(|l| l.trim() == cid)
        {
            checked.insert(n.id.clone(), holds(n, &cid));
        }
    }
    assert!(checked.values().all(|ok| *ok), "{checked:?}");
}

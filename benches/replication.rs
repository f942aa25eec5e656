//! Replication figures: a root pinned at factor 3 on a 5-daemon loopback
//! network; one holder is killed; how long until three live holders again,
//! and how many bytes the repair moved (against the root's size).
//!
//! The settings are the test ones (repair every second, grace 3 s, no
//! repair bandwidth limit) so the figure is detection + transfer, not the
//! production grace period (15 min by default).
//!
//! Run: `cargo bench --bench replication`. Size: `CAIRN_BENCH_MB` (default
//! 1024); repos go to `CAIRN_BENCH_DIR` (default the system temp dir).

#[path = "../tests/common/mod.rs"]
mod common;

use common::{bench_dir, cairn_ok, env_u64, set_config_at, swarm_addr, write_random_file, Daemon};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// `cairn pin status --json CID` on `repo`.
fn pin_status(repo: &Path, cid: &str) -> serde_json::Value {
    serde_json::from_str(&cairn_ok(repo, &["pin", "status", "--json", cid])).unwrap_or_default()
}

/// The peers `pin status` on `repo` lists as holding a pinned copy.
fn pinned_holders(repo: &Path, cid: &str) -> Vec<String> {
    common::pinned_holders(&pin_status(repo, cid))
}

/// The bytes repairs fetched on the daemon of `repo` (its `/metrics`; 0
/// when it does not answer).
fn repair_bytes(repo: &Path) -> u64 {
    let Ok(addr) = std::fs::read_to_string(repo.join("api")) else {
        return 0;
    };
    let port = addr.trim().rsplit('/').next().unwrap_or("0").to_string();
    let Ok(resp) = ureq::get(&format!("http://127.0.0.1:{port}/metrics")).call() else {
        return 0;
    };
    let text = resp.into_body().read_to_string().unwrap_or_default();
    text.lines()
        .find(|l| l.starts_with("cairn_replication_repair_bytes_total"))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse::<f64>().ok())
        .map_or(0, |v| v as u64)
}

fn main() {
    let mb = env_u64("CAIRN_BENCH_MB", 1024);
    let base = bench_dir("cairn-bench-repl");
    let repos: Vec<PathBuf> = (0..5).map(|i| base.join(format!("node-{i}"))).collect();
    for r in &repos {
        cairn_ok(r, &["init"]);
        for (section, key, value) in [
            ("replication", "repair_interval", "\"1s\""),
            ("replication", "grace", "\"3s\""),
            ("replication", "max", "3"),
            ("replication", "repair_bandwidth", "\"0\""),
            ("replication", "scrub_interval", "\"24h\""),
            ("net", "fetch_timeout", "\"30s\""),
        ] {
            set_config_at(r, section, key, value);
        }
    }
    let file = base.join("data.bin");
    write_random_file(&file, mb, 3);
    let cid = cairn_ok(&repos[0], &["add", "-Q", file.to_str().expect("utf-8")])
        .trim()
        .to_string();
    let mut daemons: Vec<Option<Daemon>> = Vec::new();
    let (d0, banner) = Daemon::start_quiet(&repos[0], &[]);
    let a0 = swarm_addr(&banner);
    daemons.push(Some(d0));
    for r in &repos[1..] {
        let (d, _) = Daemon::start_quiet(r, &["--bootstrap", &a0]);
        daemons.push(Some(d));
    }
    let ids: Vec<String> = repos
        .iter()
        .map(|r| {
            let v: serde_json::Value = serde_json::from_str(&cairn_ok(r, &["id"])).expect("id");
            v["ID"].as_str().expect("an ID").to_string()
        })
        .collect();
    let placed = Instant::now();
    cairn_ok(&repos[0], &["pin", "add", "--replication", "3", &cid]);
    while pinned_holders(&repos[0], &cid).len() < 3 {
        assert!(
            placed.elapsed() < Duration::from_secs(1800),
            "placement stalled"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let placement = placed.elapsed();
    // Settle: a copy that was slow to confirm may have been placed a second
    // time; wait until the record lists exactly three pinned holders and
    // nothing else for three repair rounds, so the kill below removes one
    // of exactly three copies.
    let mut stable = 0;
    while stable < 3 {
        let v = pin_status(&repos[0], &cid);
        let all = v["holders"].as_array().map_or(0, |h| h.len());
        let pinned = common::pinned_holders(&v).len();
        stable = if all == 3 && pinned == 3 {
            stable + 1
        } else {
            0
        };
        assert!(
            placed.elapsed() < Duration::from_secs(1800),
            "placement did not settle"
        );
        std::thread::sleep(Duration::from_secs(1));
    }
    let holders = pinned_holders(&repos[0], &cid);
    // Nodes that fetched a copy during placement and were trimmed keep the
    // blocks until GC; collect them so the repair measured below moves a
    // full copy, the worst case.
    for (i, r) in repos.iter().enumerate() {
        if !holders.contains(&ids[i]) {
            cairn_ok(r, &["repo", "gc"]);
        }
    }
    if std::env::var_os("CAIRN_BENCH_DEBUG").is_some() {
        eprintln!("{}", cairn_ok(&repos[0], &["pin", "status", &cid]));
    }
    let victim = ids
        .iter()
        .position(|id| holders.contains(id) && *id != ids[0])
        .expect("a holder besides node 0");
    let before: u64 = repos
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != victim)
        .map(|(_, r)| repair_bytes(r))
        .sum();
    let killed = Instant::now();
    daemons[victim] = None;
    loop {
        let live = pinned_holders(&repos[0], &cid);
        if live.len() == 3 && !live.contains(&ids[victim]) {
            break;
        }
        assert!(
            killed.elapsed() < Duration::from_secs(1800),
            "repair stalled"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let restore = killed.elapsed();
    if std::env::var_os("CAIRN_BENCH_DEBUG").is_some() {
        eprintln!("{}", cairn_ok(&repos[0], &["pin", "status", &cid]));
    }
    let moved: u64 = repos
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != victim)
        .map(|(_, r)| repair_bytes(r))
        .sum::<u64>()
        .saturating_sub(before);
    let size = mb * 1024 * 1024;
    println!("replication benchmark: {mb} MiB root, factor 3, 5 daemons on 127.0.0.1");
    println!(
        "initial placement of 2 copies: {:.1} s",
        placement.as_secs_f64()
    );
    println!(
        "one holder killed → 3 live holders again: {:.1} s (grace 3 s, repair every 1 s)",
        restore.as_secs_f64()
    );
    println!(
        "bytes moved by the repair: {} ({:.2}× the root)",
        moved,
        moved as f64 / size as f64
    );
    drop(daemons);
    let _ = std::fs::remove_dir_all(&base);
}

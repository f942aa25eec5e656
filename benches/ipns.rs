//! IPNS resolve latency in a 20-daemon loopback network: a name published
//! on node 1, resolved on node 20 through its RPC API (`name/resolve`),
//! over the DHT (`nocache=true`: a GET_VALUE walk collecting up to 16
//! answers, each record validated) and from the cache; p50 and p99 of
//! `CAIRN_BENCH_IPNS_RUNS` calls (default 200), and the time from
//! `name publish` of a new value on node 1 to node 20 resolving it.
//!
//! Run: `cargo bench --bench ipns`. Repos go to `CAIRN_BENCH_DIR` (default:
//! the system temp dir).

#[path = "../tests/common/mod.rs"]
mod common;

use common::{api_url, bench_dir, cairn_ok, env_u64, swarm_addr, Daemon};
use std::time::{Duration, Instant};

/// One `name/resolve` call on `api`; its answer's path and how long it took.
fn resolve(api: &str, name: &str, nocache: bool) -> (String, Duration) {
    let t = Instant::now();
    let mut answer = ureq::post(format!(
        "{api}/api/v0/name/resolve?arg={name}&nocache={nocache}"
    ))
    .send_empty()
    .expect("name/resolve");
    let took = t.elapsed();
    let v: serde_json::Value =
        serde_json::from_str(&answer.body_mut().read_to_string().expect("a body")).expect("JSON");
    (v["Path"].as_str().unwrap_or_default().to_string(), took)
}

/// p50 and p99 of `runs` resolves, in ms.
fn percentiles(api: &str, name: &str, nocache: bool, runs: usize) -> (f64, f64) {
    let mut took: Vec<f64> = (0..runs)
        .map(|_| resolve(api, name, nocache).1.as_secs_f64() * 1000.0)
        .collect();
    took.sort_by(f64::total_cmp);
    let at = |q: f64| took[((runs as f64 - 1.0) * q).round() as usize];
    (at(0.5), at(0.99))
}

fn main() {
    let runs = env_u64("CAIRN_BENCH_IPNS_RUNS", 200) as usize;
    let base = bench_dir("cairn-bench-ipns");
    let mut nodes = Vec::new();
    let mut addrs: Vec<String> = Vec::new();
    let mut seed: u64 = 11;
    for i in 0..20 {
        let repo = base.join(format!("node-{i}"));
        let boot: Vec<&str> = if addrs.is_empty() {
            vec![]
        } else {
            seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1);
            vec!["--bootstrap", &addrs[(seed >> 33) as usize % addrs.len()]]
        };
        let (d, banner) = Daemon::start_quiet(&repo, &boot);
        addrs.push(swarm_addr(&banner));
        nodes.push((repo, d, api_url(&banner)));
    }
    std::thread::sleep(Duration::from_secs(3));
    let (first, last_api) = (&nodes[0].0, nodes[19].2.clone());
    let file = base.join("v1.txt");
    std::fs::write(&file, "version 1").expect("write");
    let cid = cairn_ok(first, &["add", "-Q", file.to_str().expect("utf-8")]);
    let out = cairn_ok(first, &["name", "publish", cid.trim()]);
    let name = out
        .strip_prefix("Published to ")
        .and_then(|r| r.split(':').next())
        .expect("Kubo's line")
        .to_string();
    let want = format!("/ipfs/{}", cid.trim());
    assert_eq!(resolve(&last_api, &name, true).0, want);
    let (p50, p99) = percentiles(&last_api, &name, true, runs);
    println!("20-node DHT: name resolve on node 20, over the DHT: p50 {p50:.2} ms, p99 {p99:.2} ms ({runs} runs)");
    let (p50, p99) = percentiles(&last_api, &name, false, runs);
    println!("20-node DHT: name resolve on node 20, cached: p50 {p50:.3} ms, p99 {p99:.3} ms ({runs} runs)");

    // An update: publish a new value, poll node 20 until it sees it.
    let mut update_ms = Vec::new();
    for k in 0..5 {
        let f = base.join(format!("v{k}.txt"));
        std::fs::write(&f, format!("update {k}")).expect("write");
        let c = cairn_ok(first, &["add", "-Q", f.to_str().expect("utf-8")]);
        let want = format!("/ipfs/{}", c.trim());
        let start = Instant::now();
        cairn_ok(first, &["name", "publish", c.trim()]);
        while resolve(&last_api, &name, true).0 != want {
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "update never seen"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        update_ms.push(start.elapsed().as_secs_f64() * 1000.0);
    }
    update_ms.sort_by(f64::total_cmp);
    println!(
        "20-node DHT: name publish on node 1 → node 20 resolves the new value: median {:.0} ms (min {:.0}, max {:.0}, 5 runs; includes the CLI's start)",
        update_ms[2], update_ms[0], update_ms[4]
    );
    drop(nodes);
    let _ = std::fs::remove_dir_all(&base);
}

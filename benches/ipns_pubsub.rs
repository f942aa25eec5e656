//! IPNS over pub/sub: how soon a new record published on daemon A reaches
//! daemon B, which looked the name up once and follows its `/record/`
//! topic (`[ipns] pubsub = true` on both, B bootstrapped to A, loopback).
//! Each round publishes a new value through A's RPC (`name/publish`) and
//! polls B's plain `name/resolve` (answered from B's cache, TTL 1 h, which
//! only the topic updates) until it gives the new value; the time is from
//! the start of the publish call. For scale, the same rounds are timed on
//! a follower-less setup polling `nocache=true` (a DHT walk each call).
//!
//! Run: `cargo bench --bench ipns_pubsub` (`CAIRN_BENCH_IPNS_ROUNDS`,
//! default 30). Repos go to `CAIRN_BENCH_DIR` (default: the temp dir).

#[path = "../tests/common/mod.rs"]
mod common;

use common::{api_url, bench_dir, cairn_ok, env_u64, set_config_at, swarm_addr, Daemon};
use std::path::Path;
use std::time::{Duration, Instant};

/// POST `{api}/api/v0/{call}`: the JSON answer.
fn post(api: &str, call: &str) -> serde_json::Value {
    let mut answer = ureq::post(format!("{api}/api/v0/{call}"))
        .send_empty()
        .unwrap_or_else(|e| panic!("{call}: {e}"));
    serde_json::from_str(&answer.body_mut().read_to_string().expect("a body")).expect("JSON")
}

fn resolve(api: &str, name: &str, nocache: bool) -> String {
    let v = post(api, &format!("name/resolve?arg={name}&nocache={nocache}"));
    v["Path"].as_str().unwrap_or_default().to_string()
}

/// Two daemons, B bootstrapped to A, IPNS over pub/sub on or off.
fn pair(base: &Path, pubsub: bool) -> Vec<(Daemon, String)> {
    let mut nodes: Vec<(Daemon, String)> = Vec::new();
    let mut boot: Option<String> = None;
    for i in 0..2 {
        let repo = base.join(format!("{}-{i}", if pubsub { "on" } else { "off" }));
        cairn_ok(&repo, &["init"]);
        set_config_at(&repo, "ipns", "pubsub", &pubsub.to_string());
        let extra: Vec<&str> = boot.iter().flat_map(|b| ["--bootstrap", b]).collect();
        let (d, banner) = Daemon::start_quiet(&repo, &extra);
        boot.get_or_insert_with(|| swarm_addr(&banner));
        nodes.push((d, api_url(&banner)));
    }
    nodes
}

/// `n` updates published on A (through its RPC); per round, ms from the
/// start of the publish call until B's resolve (`nocache` as given) gives
/// the new value, and ms the publish call took. Both sorted.
fn rounds(a: &str, b: &str, name: &str, n: usize, nocache: bool) -> (Vec<f64>, Vec<f64>) {
    let (mut seen, mut call) = (Vec::new(), Vec::new());
    for k in 0..n {
        let want = format!("/ipfs/bafkqaaa/{nocache}-{k}");
        let start = Instant::now();
        let (api, value) = (a.to_string(), want.clone());
        let publisher = std::thread::spawn(move || {
            post(&api, &format!("name/publish?arg={value}"));
            start.elapsed()
        });
        while resolve(b, name, nocache) != want {
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "update never seen"
            );
            std::thread::sleep(Duration::from_millis(1));
        }
        seen.push(start.elapsed().as_secs_f64() * 1000.0);
        call.push(publisher.join().expect("publish").as_secs_f64() * 1000.0);
    }
    seen.sort_by(f64::total_cmp);
    call.sort_by(f64::total_cmp);
    (seen, call)
}

/// "p50 X ms, p90 Y ms, max Z ms" of sorted `ms`.
fn summary(ms: &[f64]) -> String {
    let at = |q: f64| ms[((ms.len() as f64 - 1.0) * q).round() as usize];
    format!(
        "p50 {:.1} ms, p90 {:.1} ms, max {:.1} ms",
        at(0.5),
        at(0.9),
        at(1.0)
    )
}

fn main() {
    let n = env_u64("CAIRN_BENCH_IPNS_ROUNDS", 30) as usize;
    let base = bench_dir("cairn-bench-ipns-pubsub");
    for pubsub in [true, false] {
        let nodes = pair(&base, pubsub);
        let (a, b) = (nodes[0].1.clone(), nodes[1].1.clone());
        std::thread::sleep(Duration::from_secs(2));
        let name = post(&a, "name/publish?arg=/ipfs/bafkqaaa")["Name"]
            .as_str()
            .expect("a name")
            .to_string();
        assert_eq!(resolve(&b, &name, true), "/ipfs/bafkqaaa");
        if pubsub {
            // B follows the name once A sees it on the topic.
            let (peer, _) = cairn::names::ipns::parse_name(&name).expect("a name");
            let topic = cairn::names::ipns::pubsub::record_topic(&peer);
            let arg = cairn::rpc::types::encode_multibase(topic.as_bytes());
            let start = Instant::now();
            while post(&a, &format!("pubsub/peers?arg={arg}"))["Strings"]
                .as_array()
                .is_none_or(|p| p.is_empty())
            {
                assert!(
                    start.elapsed() < Duration::from_secs(30),
                    "B never followed"
                );
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        let (seen, call) = rounds(&a, &b, &name, n, !pubsub);
        let how = if pubsub {
            "[ipns] pubsub on, B's cached resolve"
        } else {
            "[ipns] pubsub off, B's nocache resolve (DHT walk)"
        };
        println!(
            "2 daemons, {how}: publish on A -> B answers the new value: {} ({n} rounds)",
            summary(&seen)
        );
        println!(
            "  the name/publish call itself (pub/sub, then the DHT put): {}",
            summary(&call)
        );
        drop(nodes);
    }
    let _ = std::fs::remove_dir_all(&base);
}

//! Gateway figures, against the same file read other ways in the same run:
//!
//! - a 1 GiB file over loopback HTTP from the gateway
//!   (`GET /ipfs/{cid}`), vs `cairn cat` of it (offline, and through the
//!   daemon's RPC API);
//! - requests per second and p99 latency for a small file with `wrk`
//!   (Debian's package) at 64 connections.
//!
//! Run: `bash benches/setup.sh && cargo bench --bench gateway`. Size:
//! `CAIRN_BENCH_MB` (default 1024); files go to `CAIRN_BENCH_DIR` (default
//! the system temp dir).

#[path = "../tests/common/mod.rs"]
mod common;

use common::{bench_dir, cairn_ok, drain, env_u64, mbps, timed_cat, write_random_file, Daemon};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

/// Best of three: seconds for `cairn cat` on `repo` to stream `bytes`.
fn cat_secs(repo: &Path, cid: &str, bytes: u64) -> f64 {
    (0..3)
        .map(|_| timed_cat(repo, cid, bytes))
        .fold(f64::MAX, f64::min)
}

/// Best of three: seconds for `GET url` to deliver `bytes`.
fn http_secs(url: &str, bytes: u64) -> f64 {
    let agent: ureq::Agent = ureq::Agent::config_builder().build().into();
    (0..3)
        .map(|_| {
            let start = Instant::now();
            let resp = agent.get(url).call().expect("gateway GET");
            let n = drain(resp.into_body().into_with_config().limit(u64::MAX).reader());
            assert_eq!(n, bytes);
            start.elapsed().as_secs_f64()
        })
        .fold(f64::MAX, f64::min)
}

fn main() {
    let mb = env_u64("CAIRN_BENCH_MB", 1024);
    let bytes = mb * 1024 * 1024;
    let base = bench_dir("cairn-bench-gateway");
    let repo = base.join("repo");
    let file = base.join("data.bin");
    write_random_file(&file, mb, 1);
    let small = base.join("small.txt");
    std::fs::write(&small, "a small cached file for wrk\n".repeat(40)).expect("small");
    let small_len = std::fs::metadata(&small).expect("small").len();
    let cid = cairn_ok(&repo, &["add", "-Q", file.to_str().expect("utf-8")])
        .trim()
        .to_string();
    let small_cid = cairn_ok(&repo, &["add", "-Q", small.to_str().expect("utf-8")])
        .trim()
        .to_string();
    let offline = cat_secs(&repo, &cid, bytes);

    let (daemon, banner) = Daemon::start_quiet(&repo, &[]);
    let gw = common::gateway_url(&banner);
    let through_daemon = cat_secs(&repo, &cid, bytes);
    let gateway = http_secs(&format!("{gw}/ipfs/{cid}"), bytes);
    println!("gateway benchmark: {mb} MiB file, 127.0.0.1");
    println!(
        "cairn cat (offline):        {:.0} MB/s",
        mbps(bytes, offline)
    );
    println!(
        "cairn cat (through daemon): {:.0} MB/s",
        mbps(bytes, through_daemon)
    );
    println!(
        "gateway GET /ipfs/{{cid}}:    {:.0} MB/s ({:.2}× offline cat, {:.2}× cat through the daemon)",
        mbps(bytes, gateway),
        offline / gateway,
        through_daemon / gateway
    );

    // wrk on the small file (cached in memory after the first request).
    let url = format!("{gw}/ipfs/{small_cid}");
    let _ = http_secs(&url, small_len);
    match Command::new("wrk")
        .args(["-t2", "-c64", "-d10s", "--latency", &url])
        .output()
    {
        Err(e) => println!("wrk not run ({e}); `bash benches/setup.sh` installs it"),
        Ok(out) => {
            let text = String::from_utf8_lossy(&out.stdout);
            let rps = text
                .lines()
                .find_map(|l| l.trim().strip_prefix("Requests/sec:"))
                .map(str::trim)
                .unwrap_or("?");
            let p99 = text
                .lines()
                .find_map(|l| l.trim().strip_prefix("99%"))
                .map(str::trim)
                .unwrap_or("?");
            let non2xx = text
                .lines()
                .find(|l| l.contains("Non-2xx"))
                .map_or("0".to_string(), |l| l.trim().to_string());
            println!(
                "wrk -t2 -c64 -d10s, {small_len}-byte file: {rps} requests/s, p99 {p99} (non-2xx: {non2xx})"
            );
        }
    }
    drop(daemon);
    std::thread::sleep(Duration::from_millis(200));
    let _ = std::fs::remove_dir_all(&base);
}

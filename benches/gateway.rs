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

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn cairn() -> &'static str {
    env!("CARGO_BIN_EXE_cairn")
}

fn run_ok(repo: &Path, args: &[&str]) -> String {
    let out = Command::new(cairn())
        .arg("--repo")
        .arg(repo)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run cairn");
    assert!(
        out.status.success(),
        "cairn {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Best of three: seconds for `cairn cat` on `repo` to stream `bytes`.
fn cat_secs(repo: &Path, cid: &str, bytes: u64) -> f64 {
    (0..3)
        .map(|_| {
            let start = Instant::now();
            let mut child = Command::new(cairn())
                .arg("--repo")
                .arg(repo)
                .args(["cat", cid])
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .spawn()
                .expect("cat");
            let n = drain(child.stdout.take().expect("piped"));
            assert!(child.wait().expect("cat").success());
            assert_eq!(n, bytes);
            start.elapsed().as_secs_f64()
        })
        .fold(f64::MAX, f64::min)
}

fn drain(mut r: impl Read) -> u64 {
    let mut buf = vec![0u8; 1 << 20];
    let mut n = 0u64;
    loop {
        match r.read(&mut buf) {
            Ok(0) | Err(_) => return n,
            Ok(k) => n += k as u64,
        }
    }
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

fn mbps(bytes: u64, secs: f64) -> f64 {
    bytes as f64 / 1e6 / secs
}

fn main() {
    let mb: u64 = std::env::var("CAIRN_BENCH_MB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1024);
    let bytes = mb * 1024 * 1024;
    let base = std::env::var_os("CAIRN_BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir)
        .join(format!("cairn-bench-gateway-{}", std::process::id()));
    std::fs::create_dir_all(&base).expect("bench dir");
    let repo = base.join("repo");
    let file = base.join("data.bin");
    {
        let mut f = std::fs::File::create(&file).expect("create data");
        let mut x: u64 = 0x2545_F491_4F6C_DD1D;
        let mut chunk = vec![0u8; 1 << 20];
        for _ in 0..mb {
            for w in chunk.chunks_mut(8) {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                w.copy_from_slice(&x.to_le_bytes());
            }
            std::io::Write::write_all(&mut f, &chunk).expect("write data");
        }
    }
    let small = base.join("small.txt");
    std::fs::write(&small, "a small cached file for wrk\n".repeat(40)).expect("small");
    let small_len = std::fs::metadata(&small).expect("small").len();
    let cid = run_ok(&repo, &["add", "-Q", file.to_str().expect("utf-8")])
        .trim()
        .to_string();
    let small_cid = run_ok(&repo, &["add", "-Q", small.to_str().expect("utf-8")])
        .trim()
        .to_string();
    let offline = cat_secs(&repo, &cid, bytes);

    let mut daemon = Command::new(cairn())
        .arg("--repo")
        .arg(&repo)
        .args([
            "daemon",
            "--listen",
            "/ip4/127.0.0.1/tcp/0",
            "--api",
            "127.0.0.1:0",
            "--gateway",
            "127.0.0.1:0",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start daemon");
    let mut lines = BufReader::new(daemon.stdout.take().expect("piped")).lines();
    let mut port = None;
    for line in lines.by_ref() {
        let line = line.expect("daemon output");
        if let Some(a) = line.strip_prefix("Gateway server listening on ") {
            port = a.rsplit('/').next().map(String::from);
        }
        if line.contains("Daemon is ready") {
            break;
        }
    }
    std::thread::spawn(move || for _ in lines {});
    let port = port.expect("a gateway port");
    let through_daemon = cat_secs(&repo, &cid, bytes);
    let gateway = http_secs(&format!("http://127.0.0.1:{port}/ipfs/{cid}"), bytes);
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
    let url = format!("http://127.0.0.1:{port}/ipfs/{small_cid}");
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
    let _ = daemon.kill();
    let _ = daemon.wait();
    std::thread::sleep(Duration::from_millis(200));
    let _ = std::fs::remove_dir_all(&base);
}

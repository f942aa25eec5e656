//! Hot reads, side by side with nginx and redis in one run: the same
//! 1,120-byte file from nginx (a static file, 2 workers, config written
//! here) and from cairn's gateway (`/ipfs/CID`) under
//! `wrk -t2 -c64 -d10s --latency`, two rounds each, alternating; a 1 MiB
//! file's throughput the same way; cairn's p50/p99 at 1, 8 and 64
//! connections; redis-server `GET` of a 1,120-byte value
//! (`redis-benchmark -c 64`) for scale; and whether a scan of cold content
//! (`CAIRN_BENCH_SCAN_MB`, default 10240, in 64 KiB blocks the memory tier
//! would admit) evicts the hot set: the hot files' hit ratio after it.
//!
//! Run as root (it makes a network namespace, so only the processes of
//! this bench share its loopback; without root it runs on the host's):
//! `bash benches/setup.sh && cargo bench --bench hot`. Files go to
//! `CAIRN_BENCH_DIR` (default the system temp dir).

#[path = "../tests/common/mod.rs"]
mod common;

use common::{bench_dir, cairn_ok, drain, env_u64, write_random_file, Daemon};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Set in the copy of this bench that runs inside the namespace.
const IN_NETNS: &str = "CAIRN_BENCH_IN_NETNS";

/// A child process killed on drop.
struct Guard(Child);

impl Drop for Guard {
    /// SIGTERM first, so that nginx's master stops its workers (a SIGKILL
    /// of the master left them running, orphaned, after the bench); SIGKILL
    /// if it is still up after 5 s.
    fn drop(&mut self) {
        if let Ok(pid) = i32::try_from(self.0.id()) {
            // SAFETY: signals our own child, which is not reaped yet (its
            // PID cannot have been reused).
            unsafe { libc::kill(pid, libc::SIGTERM) };
            let deadline = Instant::now() + Duration::from_secs(5);
            while Instant::now() < deadline {
                if matches!(self.0.try_wait(), Ok(Some(_))) {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

fn wait_listening(port: u16, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "{what} never listened");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// What `wrk --latency` reported.
#[derive(Clone, Copy, Default)]
struct Wrk {
    rps: f64,
    /// Bytes per second.
    bps: f64,
    p50_ms: f64,
    p99_ms: f64,
    errors: u64,
}

/// wrk's latency text (`812.00us`, `1.20ms`, `2.00s`) in milliseconds.
fn ms(text: &str) -> f64 {
    let t = text.trim();
    let (num, scale) = if let Some(n) = t.strip_suffix("us") {
        (n, 1e-3)
    } else if let Some(n) = t.strip_suffix("ms") {
        (n, 1.0)
    } else if let Some(n) = t.strip_suffix('s') {
        (n, 1e3)
    } else {
        (t, 1.0)
    };
    num.parse::<f64>().unwrap_or(f64::NAN) * scale
}

/// wrk's size text (`41.2MB`, `900KB`, `12B`) in bytes.
fn bytes(text: &str) -> f64 {
    let t = text.trim();
    // wrk's units are powers of 1024.
    for (suffix, scale) in [
        ("GB", 1u64 << 30),
        ("MB", 1 << 20),
        ("KB", 1 << 10),
        ("B", 1),
    ] {
        if let Some(n) = t.strip_suffix(suffix) {
            return n.parse::<f64>().unwrap_or(f64::NAN) * scale as f64;
        }
    }
    f64::NAN
}

fn wrk(url: &str, connections: u32, secs: u32) -> Wrk {
    let threads = connections.min(2);
    let out = Command::new("wrk")
        .arg(format!("-t{threads}"))
        .arg(format!("-c{connections}"))
        .arg(format!("-d{secs}s"))
        .args(["--latency", url])
        .output()
        .expect("run wrk (bash benches/setup.sh installs it)");
    let text = String::from_utf8_lossy(&out.stdout);
    let field = |prefix: &str| {
        text.lines()
            .find_map(|l| l.trim().strip_prefix(prefix).map(str::trim))
            .unwrap_or("")
            .to_string()
    };
    let errors = text
        .lines()
        .filter(|l| l.contains("Non-2xx") || l.contains("Socket errors"))
        .filter_map(|l| {
            l.split_whitespace()
                .filter_map(|w| w.trim_matches(',').parse::<u64>().ok())
                .max()
        })
        .sum();
    Wrk {
        rps: field("Requests/sec:").parse().unwrap_or(f64::NAN),
        bps: bytes(&field("Transfer/sec:")),
        p50_ms: ms(&field("50%")),
        p99_ms: ms(&field("99%")),
        errors,
    }
}

/// nginx serving `root` on 127.0.0.1:`port` with 2 workers.
fn start_nginx(dir: &Path, root: &Path, port: u16) -> Guard {
    let conf = dir.join("nginx.conf");
    std::fs::write(
        &conf,
        format!(
            "worker_processes 2;\ndaemon off;\npid {dir}/nginx.pid;\nerror_log {dir}/error.log;\n\
             events {{ worker_connections 1024; }}\n\
             http {{\n  access_log off;\n  sendfile on;\n  tcp_nopush on;\n  keepalive_requests 1000000;\n\
             open_file_cache max=1000;\n  client_body_temp_path {dir}/body;\n  proxy_temp_path {dir}/proxy;\n\
             fastcgi_temp_path {dir}/fastcgi;\n  uwsgi_temp_path {dir}/uwsgi;\n  scgi_temp_path {dir}/scgi;\n\
             server {{\n    listen 127.0.0.1:{port};\n    root {root};\n  }}\n}}\n",
            dir = dir.display(),
            root = root.display(),
        ),
    )
    .expect("nginx.conf");
    let child = Command::new("nginx")
        .args(["-e", &dir.join("error.log").display().to_string()])
        .args(["-p", &dir.display().to_string(), "-c"])
        .arg(&conf)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start nginx (bash benches/setup.sh installs it)");
    let guard = Guard(child);
    wait_listening(port, "nginx");
    guard
}

/// redis-server on `port` holding `value` under `hot`; redis-benchmark's
/// GET at 64 connections: (requests/s, p50 ms, p99 ms).
fn redis(value_len: usize) -> Option<(f64, f64, f64)> {
    let port = free_port();
    let child = Command::new("redis-server")
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
        .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
        .stdout(Stdio::null())
        .spawn()
        .ok()?;
    let _guard = Guard(child);
    wait_listening(port, "redis-server");
    // redis-benchmark's GET reads the key its SET wrote, `-d` bytes long.
    let out = Command::new("redis-benchmark")
        .args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .args(["-c", "64", "-n", "400000", "-d", &value_len.to_string()])
        .args(["-t", "set,get", "--csv"])
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    // "test","rps","avg_latency_ms","min_latency_ms","p50_latency_ms","p95_latency_ms","p99_latency_ms","max_latency_ms"
    let line = text.lines().find(|l| l.starts_with("\"GET\""))?;
    let f: Vec<f64> = line
        .split(',')
        .skip(1)
        .map(|v| v.trim_matches('"').parse().unwrap_or(f64::NAN))
        .collect();
    Some((f[0], f[3], f[5]))
}

/// The value of the metric `name` at the daemon's API.
fn metric(api: &str, name: &str) -> f64 {
    let resp = ureq::get(&format!("{api}/metrics"))
        .call()
        .expect("metrics");
    let text = resp.into_body().read_to_string().expect("metrics text");
    text.lines()
        .find(|l| l.starts_with(name) && l[name.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(f64::NAN)
}

/// Runs the bench in a namespace of its own when root (returns true if it
/// did, the figures printed by the copy inside).
fn in_own_netns() -> bool {
    if std::env::var_os(IN_NETNS).is_some() {
        return false;
    }
    let ns = format!("cairn-hot-{}", std::process::id());
    let ip = |args: &[&str]| {
        Command::new("ip")
            .args(args)
            .status()
            .is_ok_and(|s| s.success())
    };
    if !ip(&["netns", "add", &ns]) {
        println!("(could not make a network namespace; running on the host's loopback)");
        return false;
    }
    let ok = ip(&["-n", &ns, "link", "set", "lo", "up"])
        && Command::new("ip")
            .args(["netns", "exec", &ns])
            .arg(std::env::current_exe().expect("own path"))
            .args(std::env::args_os().skip(1))
            .env(IN_NETNS, &ns)
            .status()
            .is_ok_and(|s| s.success());
    ip(&["netns", "delete", &ns]);
    assert!(ok, "the bench failed inside namespace {ns}");
    true
}

fn main() {
    if in_own_netns() {
        return;
    }
    let secs = env_u64("CAIRN_BENCH_WRK_SECS", 10) as u32;
    let scan_mb = env_u64("CAIRN_BENCH_SCAN_MB", 10240);
    let base = bench_dir("cairn-bench-hot");
    let www = base.join("www");
    std::fs::create_dir_all(&www).expect("www");
    let small = common::random_bytes(1120, 11);
    std::fs::write(www.join("small.bin"), &small).expect("small");
    write_random_file(&www.join("large.bin"), 1, 12);
    let repo = base.join("repo");
    let add = |p: &Path, flags: &[&str]| {
        let mut args = vec!["add", "-Q"];
        args.extend_from_slice(flags);
        args.push(p.to_str().expect("utf-8"));
        cairn_ok(&repo, &args).trim().to_string()
    };
    let small_cid = add(&www.join("small.bin"), &[]);
    let large_cid = add(&www.join("large.bin"), &[]);
    // The hot set: 64 small files; the cold scan: one big file.
    let hot: Vec<String> = (0..64u64)
        .map(|i| {
            let p = base.join(format!("hot-{i}"));
            std::fs::write(&p, common::random_bytes(4096, 100 + i)).expect("hot file");
            add(&p, &[])
        })
        .collect();
    let cold = base.join("cold.bin");
    write_random_file(&cold, scan_mb, 13);
    let cold_cid = add(&cold, &["--chunker", "size-65536"]);
    let _ = std::fs::remove_file(&cold);

    let nginx_port = free_port();
    let nginx = start_nginx(&base, &www, nginx_port);
    let (daemon, banner) = Daemon::start_quiet(&repo, &[]);
    let gw = common::gateway_url(&banner);
    let api = common::api_url(&banner);
    let nginx_small = format!("http://127.0.0.1:{nginx_port}/small.bin");
    let cairn_small = format!("{gw}/ipfs/{small_cid}");
    let nginx_large = format!("http://127.0.0.1:{nginx_port}/large.bin");
    let cairn_large = format!("{gw}/ipfs/{large_cid}");
    for url in [&nginx_small, &cairn_small, &nginx_large, &cairn_large] {
        let resp = ureq::get(url.as_str()).call().expect("warm-up GET");
        drain(resp.into_body().into_with_config().limit(u64::MAX).reader());
    }

    println!("hot reads: nginx, cairn's gateway and redis on one loopback; wrk -t2 -d{secs}s");
    let row = |what: &str, w: &Wrk, base: Option<&Wrk>| {
        let vs = base.map_or(String::new(), |b| {
            format!(
                " — {:.2}× nginx's requests/s, {:.2}× its throughput, p99 {:.2}× nginx's",
                w.rps / b.rps,
                w.bps / b.bps,
                w.p99_ms / b.p99_ms
            )
        });
        println!(
            "{what:<34} {:>9.0} req/s {:>8.1} MB/s  p50 {:>6.2} ms  p99 {:>6.2} ms  errors {}{vs}",
            w.rps,
            w.bps / 1e6,
            w.p50_ms,
            w.p99_ms,
            w.errors
        );
    };
    for round in 1..=2 {
        let n = wrk(&nginx_small, 64, secs);
        let c = wrk(&cairn_small, 64, secs);
        row(&format!("round {round} nginx 1,120 B, 64 conns"), &n, None);
        row(
            &format!("round {round} cairn 1,120 B, 64 conns"),
            &c,
            Some(&n),
        );
    }
    for round in 1..=2 {
        let n = wrk(&nginx_large, 64, secs);
        let c = wrk(&cairn_large, 64, secs);
        row(&format!("round {round} nginx 1 MiB, 64 conns"), &n, None);
        row(
            &format!("round {round} cairn 1 MiB, 64 conns"),
            &c,
            Some(&n),
        );
    }
    for conns in [1, 8, 64] {
        let c = wrk(&cairn_small, conns, secs);
        row(&format!("cairn 1,120 B, {conns} conns"), &c, None);
    }
    drop(nginx);
    match redis(small.len()) {
        Some((rps, p50, p99)) => println!(
            "{:<34} {rps:>9.0} req/s              p50 {p50:>6.2} ms  p99 {p99:>6.2} ms",
            "redis GET 1,120 B, 64 conns"
        ),
        None => println!("redis not measured: `bash benches/setup.sh` installs it"),
    }

    // The hot set becomes hot, then a cold scan goes by; then the hot
    // set is read again and its hits counted.
    let agent: ureq::Agent = ureq::Agent::config_builder().build().into();
    let read_hot = || {
        for cid in &hot {
            let resp = agent
                .get(&format!("{gw}/ipfs/{cid}"))
                .call()
                .expect("hot GET");
            assert_eq!(drain(resp.into_body().into_reader()), 4096);
        }
    };
    for _ in 0..20 {
        read_hot();
    }
    let t = Instant::now();
    let resp = agent
        .get(&format!("{gw}/ipfs/{cold_cid}"))
        .call()
        .expect("cold GET");
    let scanned = drain(resp.into_body().into_with_config().limit(u64::MAX).reader());
    let scan_secs = t.elapsed().as_secs_f64();
    let (hits, misses) = (
        metric(&api, "cairn_hot_cache_hits_total"),
        metric(&api, "cairn_hot_cache_misses_total"),
    );
    read_hot();
    let hot_hits = metric(&api, "cairn_hot_cache_hits_total") - hits;
    let hot_misses = metric(&api, "cairn_hot_cache_misses_total") - misses;
    println!(
        "cold scan of {} MiB in 64 KiB blocks ({:.0} MB/s), then the 64 hot files: \
         hit ratio {:.1} % ({hot_hits} hits, {hot_misses} misses)",
        scanned >> 20,
        scanned as f64 / 1e6 / scan_secs,
        100.0 * hot_hits / (hot_hits + hot_misses)
    );
    drop(daemon);
    let _ = std::fs::remove_dir_all(&base);
}

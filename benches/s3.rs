//! S3 endpoint figures, against `s3s-fs` measured in the same run: the
//! same protocol crate (s3s) over plain files, i.e. the protocol layer's
//! ceiling on this machine. Both are driven by the same client (SigV4 in
//! headers, unsigned payloads, keep-alive connections) over 127.0.0.1:
//!
//! - PUT and GET of one large object (`CAIRN_BENCH_MB`, default 1024 MiB);
//! - 4 KiB PUT, GET and HEAD at 64 concurrent requests
//!   (`CAIRN_BENCH_S3_OPS` requests of each, default 20,000): ops/s, p50 and
//!   p99;
//! - cairn only: ListObjectsV2 of 1,000 keys at random points of a bucket
//!   of `CAIRN_BENCH_S3_KEYS` keys (default 1,000,000; filled with 64
//!   concurrent 1-byte PUTs, which takes a while): p50 and p99.
//!
//! Run: `bash benches/setup.sh && cargo bench --bench s3` (setup builds
//! s3s-fs 0.14.1 from crates.io into benches/.tools). Files go to
//! `CAIRN_BENCH_DIR` (default the system temp dir).

#[path = "../tests/common/mod.rs"]
mod common;

use common::s3::Signer;
use common::{bench_dir, cairn_ok, drain, env_u64, mbps, write_random_file, Daemon};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Concurrent requests in the small-object and listing runs.
const CONCURRENCY: u64 = 64;

/// An S3 endpoint and the key that signs requests to it.
struct Endpoint {
    url: String,
    signer: Signer,
    agent: ureq::Agent,
}

impl Endpoint {
    fn new(url: String, key: &str, secret: &str) -> Endpoint {
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .max_idle_connections(CONCURRENCY as usize * 2)
            .max_idle_connections_per_host(CONCURRENCY as usize * 2)
            .build()
            .into();
        Endpoint {
            url,
            signer: Signer::new(key, secret),
            agent,
        }
    }

    /// A signed PUT of `path` (a body is sent).
    fn put(&self, path: &str) -> ureq::RequestBuilder<ureq::typestate::WithBody> {
        let (url, headers) = self.signer.sign("PUT", &self.url, path, &[]);
        headers
            .into_iter()
            .fold(self.agent.put(url), |r, (name, value)| {
                r.header(name, value)
            })
    }

    /// Sends `method path?query` (`body` only with PUT); the status and
    /// the number of body bytes read back.
    fn call(&self, method: &str, path: &str, query: &[(&str, &str)], body: &[u8]) -> (u16, u64) {
        let resp = if method == "PUT" {
            self.put(path).send(body)
        } else {
            let (url, headers) = self.signer.sign(method, &self.url, path, query);
            let req = match method {
                "GET" => self.agent.get(url),
                "HEAD" => self.agent.head(url),
                "DELETE" => self.agent.delete(url),
                other => panic!("no {other} in this bench"),
            };
            headers
                .into_iter()
                .fold(req, |r, (name, value)| r.header(name, value))
                .call()
        };
        let resp = resp.unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        let status = resp.status().as_u16();
        let n = drain(resp.into_body().into_with_config().limit(u64::MAX).reader());
        (status, n)
    }

    /// Like [`Endpoint::call`], failing unless the status is 2xx.
    fn ok(&self, method: &str, path: &str, query: &[(&str, &str)], body: &[u8]) -> u64 {
        let (status, n) = self.call(method, path, query, body);
        assert!(
            (200..300).contains(&status),
            "{method} {path}: HTTP {status}"
        );
        n
    }
}

/// A free TCP port on 127.0.0.1 (for s3s-fs, which takes a port number).
fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

/// s3s-fs serving `dir` on 127.0.0.1, killed on drop.
struct S3sFs(Child);

impl Drop for S3sFs {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_s3s_fs(dir: &Path, key: &str, secret: &str) -> Option<(S3sFs, String)> {
    let bin = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/.tools/bin/s3s-fs");
    if !bin.exists() {
        println!(
            "s3s-fs not found at {}: run `bash benches/setup.sh`",
            bin.display()
        );
        return None;
    }
    let port = free_port();
    let child = Command::new(bin)
        .args(["--host", "127.0.0.1", "--port", &port.to_string()])
        .args(["--access-key", key, "--secret-key", secret])
        .arg(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start s3s-fs");
    let guard = S3sFs(child);
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "s3s-fs never listened");
        std::thread::sleep(Duration::from_millis(50));
    }
    Some((guard, format!("http://127.0.0.1:{port}")))
}

/// One endpoint's figures.
#[derive(Default)]
struct Figures {
    put_large: f64,
    get_large: f64,
    small: Vec<(&'static str, Latencies)>,
}

/// Requests per second and latency percentiles of one concurrent run.
#[derive(Clone, Copy, Default)]
struct Latencies {
    ops_per_sec: f64,
    p50_ms: f64,
    p99_ms: f64,
}

/// Runs `op(i)` for i in 0..total on [`CONCURRENCY`] threads.
fn concurrent(total: u64, op: impl Fn(u64) + Sync) -> Latencies {
    let next = AtomicU64::new(0);
    let start = Instant::now();
    let mut all: Vec<f64> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..CONCURRENCY)
            .map(|_| {
                s.spawn(|| {
                    let mut mine = Vec::new();
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        if i >= total {
                            return mine;
                        }
                        let t = Instant::now();
                        op(i);
                        mine.push(t.elapsed().as_secs_f64() * 1e3);
                    }
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("worker"))
            .collect()
    });
    let secs = start.elapsed().as_secs_f64();
    all.sort_by(f64::total_cmp);
    let at = |q: f64| all[((all.len() as f64 * q) as usize).min(all.len() - 1)];
    Latencies {
        ops_per_sec: total as f64 / secs,
        p50_ms: at(0.50),
        p99_ms: at(0.99),
    }
}

/// Best of two: seconds to PUT `file` as `/bench/large`, then to GET it.
fn large(e: &Endpoint, file: &Path, bytes: u64) -> (f64, f64) {
    let mut put = f64::MAX;
    let mut get = f64::MAX;
    for _ in 0..2 {
        let f = std::fs::File::open(file).expect("open");
        let t = Instant::now();
        let resp = e
            .put("/bench/large")
            .header("content-length", bytes.to_string())
            .send(ureq::SendBody::from_owned_reader(f))
            .expect("PUT large");
        assert!(resp.status().is_success(), "PUT large: {}", resp.status());
        drain(resp.into_body().into_reader());
        put = put.min(t.elapsed().as_secs_f64());
        let t = Instant::now();
        assert_eq!(e.ok("GET", "/bench/large", &[], &[]), bytes);
        get = get.min(t.elapsed().as_secs_f64());
    }
    (put, get)
}

/// Large-object and 4 KiB figures of the endpoint `e` (bucket `bench`).
fn suite(e: &Endpoint, file: &Path, bytes: u64, ops: u64) -> Figures {
    e.ok("PUT", "/bench", &[], &[]);
    let (put_large, get_large) = large(e, file, bytes);
    let body = common::random_bytes(4096, 7);
    let key = |i: u64| format!("/bench/small/{i:08}");
    let mut small = Vec::new();
    small.push((
        "PUT",
        concurrent(ops, |i| {
            e.ok("PUT", &key(i), &[], &body);
        }),
    ));
    small.push((
        "GET",
        concurrent(ops, |i| {
            assert_eq!(e.ok("GET", &key(i), &[], &[]), 4096);
        }),
    ));
    small.push((
        "HEAD",
        concurrent(ops, |i| {
            e.ok("HEAD", &key(i), &[], &[]);
        }),
    ));
    Figures {
        put_large,
        get_large,
        small,
    }
}

/// Fills bucket `many` with `keys` 1-byte objects, then lists 1,000 keys
/// from random points of it: the fill rate and the listing latencies.
fn listing(e: &Endpoint, keys: u64) -> (Latencies, Latencies) {
    e.ok("PUT", "/many", &[], &[]);
    let fill = concurrent(keys, |i| {
        e.ok("PUT", &format!("/many/k/{i:08}"), &[], b"x");
    });
    let lists = (keys / 1000).clamp(1, 400);
    let seed = Arc::new(AtomicU64::new(0x9e37_79b9_7f4a_7c15));
    let list = concurrent(lists, |_| {
        // xorshift: a different start for every request.
        let mut x = seed.fetch_add(0x9e37_79b9, Ordering::Relaxed);
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let from = format!("k/{:08}", x % keys.saturating_sub(1000).max(1));
        let (status, n) = e.call(
            "GET",
            "/many",
            &[
                ("list-type", "2"),
                ("max-keys", "1000"),
                ("start-after", &from),
            ],
            &[],
        );
        assert_eq!(status, 200, "ListObjectsV2");
        assert!(n > 1000 * 20, "a page of 1,000 keys ({n} bytes)");
    });
    (fill, list)
}

fn main() {
    let mb = env_u64("CAIRN_BENCH_MB", 1024);
    let ops = env_u64("CAIRN_BENCH_S3_OPS", 20_000);
    let keys = env_u64("CAIRN_BENCH_S3_KEYS", 1_000_000);
    let bytes = mb * 1024 * 1024;
    let base = bench_dir("cairn-bench-s3");
    let file = base.join("large.bin");
    write_random_file(&file, mb, 3);

    let (key, secret) = ("AKBENCHS3SFS", "bench-secret-of-s3s-fs");
    let fs_dir = base.join("s3s-fs");
    std::fs::create_dir_all(&fs_dir).expect("s3s-fs dir");
    let fs = start_s3s_fs(&fs_dir, key, secret).map(|(guard, url)| {
        let figures = suite(&Endpoint::new(url, key, secret), &file, bytes, ops);
        drop(guard);
        figures
    });
    let _ = std::fs::remove_dir_all(&fs_dir);

    let repo = base.join("repo");
    cairn_ok(&repo, &["init"]);
    let out = cairn_ok(&repo, &["s3", "key", "create"]);
    let field = |name: &str| {
        out.lines()
            .find_map(|l| l.strip_prefix(name))
            .expect("key field")
            .trim()
            .to_string()
    };
    let (ckey, csecret) = (field("AccessKeyId:"), field("SecretAccessKey:"));
    let (daemon, banner) = Daemon::start_quiet(&repo, &["--s3", "127.0.0.1:0"]);
    let cairn = Endpoint::new(common::s3::s3_url(&banner), &ckey, &csecret);
    let ours = suite(&cairn, &file, bytes, ops);
    let (fill, list) = listing(&cairn, keys);
    drop(daemon);

    println!("S3 benchmark: 127.0.0.1, {CONCURRENCY} concurrent requests for small objects");
    let ratio = |a: f64, b: Option<f64>| b.map_or("-".to_string(), |b| format!("{:.2}×", a / b));
    println!(
        "{mb} MiB PUT: cairn {:.0} MB/s, s3s-fs {} MB/s ({} s3s-fs)",
        mbps(bytes, ours.put_large),
        fs.as_ref()
            .map_or("-".into(), |f| format!("{:.0}", mbps(bytes, f.put_large))),
        ratio(
            fs.as_ref().map_or(0.0, |f| f.put_large),
            fs.as_ref().map(|_| ours.put_large)
        ),
    );
    println!(
        "{mb} MiB GET: cairn {:.0} MB/s, s3s-fs {} MB/s ({} s3s-fs)",
        mbps(bytes, ours.get_large),
        fs.as_ref()
            .map_or("-".into(), |f| format!("{:.0}", mbps(bytes, f.get_large))),
        ratio(
            fs.as_ref().map_or(0.0, |f| f.get_large),
            fs.as_ref().map(|_| ours.get_large)
        ),
    );
    for (i, (op, l)) in ours.small.iter().enumerate() {
        let theirs = fs.as_ref().map(|f| f.small[i].1);
        println!(
            "4 KiB {op:<4}: cairn {:.0} ops/s (p50 {:.2} ms, p99 {:.2} ms); s3s-fs {} ({} s3s-fs)",
            l.ops_per_sec,
            l.p50_ms,
            l.p99_ms,
            theirs.map_or("-".into(), |t| format!(
                "{:.0} ops/s (p50 {:.2} ms, p99 {:.2} ms)",
                t.ops_per_sec, t.p50_ms, t.p99_ms
            )),
            ratio(l.ops_per_sec, theirs.map(|t| t.ops_per_sec)),
        );
    }
    println!(
        "ListObjectsV2, 1,000 keys of {keys}: p50 {:.2} ms, p99 {:.2} ms ({:.0} lists/s); \
         filled at {:.0} PUT/s",
        list.p50_ms, list.p99_ms, list.ops_per_sec, fill.ops_per_sec
    );
    let _ = std::fs::remove_dir_all(&base);
}

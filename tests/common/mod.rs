//! Helpers shared by the tests and the benchmarks (which include this file
//! with `#[path = "../tests/common/mod.rs"] mod common;`): running the
//! `cairn` binary on a repo, daemons and what their start-up lines say,
//! seeded data, DHT and Bitswap helpers for in-process networks, and (in
//! [`process`]) bounded child processes and the JS harnesses' setup.
//!
//! Each test or bench binary uses a part of this, hence `dead_code` off.
#![allow(dead_code)]

pub mod memory;
pub mod process;
pub mod s3;

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// The `cairn` binary under test.
pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_cairn")
}

/// `cairn --repo REPO ARGS...` with stdin closed.
pub fn cairn_at(repo: &Path, args: &[&str]) -> Command {
    let mut c = Command::new(bin());
    c.arg("--repo").arg(repo).args(args);
    c.stdin(Stdio::null());
    c
}

/// Asserts that `cairn ARGS` succeeded; returns its stdout.
fn stdout_of_success(args: &[&str], out: Output) -> Vec<u8> {
    assert!(
        out.status.success(),
        "cairn {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// Runs `cairn --repo REPO ARGS...`, asserts success and returns stdout.
pub fn cairn_ok(repo: &Path, args: &[&str]) -> String {
    let out = cairn_at(repo, args).output().expect("run cairn");
    String::from_utf8(stdout_of_success(args, out)).expect("utf-8 stdout")
}

/// Sets `[section] key = value` (a TOML value, e.g. `"\"3s\""` or
/// `"true"`; `section` may be dotted, `api.connections`) in the
/// config.toml of the initialised repo at `repo`.
pub fn set_config_at(repo: &Path, section: &str, key: &str, value: &str) {
    let path = repo.join("config.toml");
    let text = std::fs::read_to_string(&path).expect("read config");
    let mut doc: toml::Table = toml::from_str(&text).expect("parse config");
    let v: toml::Value =
        toml::from_str::<toml::Table>(&format!("v = {value}")).expect("a TOML value")["v"].clone();
    let mut table = &mut doc;
    for name in section.split('.') {
        table = table
            .entry(name.to_string())
            .or_insert_with(|| toml::Value::Table(Default::default()))
            .as_table_mut()
            .expect("a table");
    }
    table.insert(key.to_string(), v);
    std::fs::write(&path, toml::to_string(&doc).expect("serialise")).expect("write config");
}

/// A repo in a temporary directory, removed on drop.
pub struct TestRepo {
    /// The temporary directory: the repo is `repo` in it, scratch files
    /// beside it.
    pub dir: tempfile::TempDir,
}

impl TestRepo {
    /// A new, empty temporary directory (the repo is created on first use).
    pub fn new() -> Self {
        TestRepo {
            dir: tempfile::tempdir().expect("tempdir"),
        }
    }

    /// The repo's path.
    pub fn path(&self) -> PathBuf {
        self.dir.path().join("repo")
    }

    /// A path for a scratch file beside the repo.
    pub fn scratch(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// `cairn --repo REPO ARGS...`, not started.
    pub fn cmd(&self, args: &[&str]) -> Command {
        cairn_at(&self.path(), args)
    }

    /// Runs and returns the output, whatever the exit status.
    pub fn run(&self, args: &[&str]) -> Output {
        self.cmd(args).output().expect("run cairn")
    }

    /// Runs, asserts success and returns stdout as text.
    pub fn ok(&self, args: &[&str]) -> String {
        String::from_utf8(self.ok_bytes(args)).expect("utf-8 stdout")
    }

    /// Runs, asserts success and returns stdout as bytes (`cat`, `get`).
    pub fn ok_bytes(&self, args: &[&str]) -> Vec<u8> {
        stdout_of_success(args, self.run(args))
    }

    /// Runs, asserts failure with exactly one line on stderr; returns it.
    pub fn fails(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(!out.status.success(), "cairn {args:?} should have failed");
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(
            err.trim_end().lines().count(),
            1,
            "one error line expected, got {err:?}"
        );
        err
    }

    /// Creates the repo if needed and sets `[section] key = value` (a TOML
    /// value, e.g. `"\"3s\""` or `"true"`) in its config.toml.
    pub fn set_config(&self, section: &str, key: &str, value: &str) {
        if !self.path().join("config.toml").exists() {
            self.ok(&["init"]);
        }
        set_config_at(&self.path(), section, key, value);
    }

    /// `add -Q` with extra flags: the root CID.
    pub fn add(&self, path: &Path, flags: &[&str]) -> String {
        let p = path.to_str().expect("utf-8 path");
        let mut args = vec!["add", "-Q"];
        args.extend_from_slice(flags);
        args.push(p);
        self.ok(&args).trim().to_string()
    }
}

/// Fills `buf` from the xorshift generator whose state is `x`, eight bytes
/// a step (a last partial step uses the first bytes of its word).
fn xorshift_fill(x: &mut u64, buf: &mut [u8]) {
    for word in buf.chunks_mut(8) {
        *x ^= *x << 13;
        *x ^= *x >> 7;
        *x ^= *x << 17;
        word.copy_from_slice(&x.to_le_bytes()[..word.len()]);
    }
}

/// Deterministic pseudo-random bytes (xorshift), seeded.
pub fn random_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = vec![0u8; len];
    xorshift_fill(&mut x, &mut out);
    out
}

/// Writes `mib` MiB of seeded pseudo-random bytes (the stream
/// [`random_bytes`] starts) to a new file at `path`, durably: its writeback
/// must not compete with what a benchmark measures next.
pub fn write_random_file(path: &Path, mib: u64, seed: u64) {
    let mut f = std::fs::File::create(path).expect("create data file");
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut chunk = vec![0u8; 1 << 20];
    for _ in 0..mib {
        xorshift_fill(&mut x, &mut chunk);
        f.write_all(&chunk).expect("write data file");
    }
    f.sync_all().expect("sync data file");
}

/// The byte pattern the JS reference harness also generates: `i % 251`.
pub fn pattern_bytes(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8).collect()
}

/// A running daemon, killed on drop if the test did not stop it.
pub struct Daemon {
    /// The daemon process.
    pub child: Child,
    lines: mpsc::Receiver<String>,
}

impl Daemon {
    /// The command line of a daemon on loopback TCP (any port), API and
    /// gateway on any port, plus `extra` flags.
    pub fn loopback_args<'a>(extra: &[&'a str]) -> Vec<&'a str> {
        let mut args = vec![
            "daemon",
            "--listen",
            "/ip4/127.0.0.1/tcp/0",
            "--api",
            "127.0.0.1:0",
            "--gateway",
            "127.0.0.1:0",
        ];
        args.extend_from_slice(extra);
        args
    }

    /// Starts a daemon on loopback TCP (any port), API and gateway on any
    /// port, plus `extra` flags; returns it and its start-up lines.
    pub fn start(repo: &TestRepo, extra: &[&str]) -> (Daemon, Vec<String>) {
        Self::spawn(repo, &Self::loopback_args(extra))
    }

    /// Runs `cairn --repo REPO ARGS...` (a `daemon` command line as given)
    /// until it is ready.
    pub fn spawn(repo: &TestRepo, args: &[&str]) -> (Daemon, Vec<String>) {
        Self::launch(repo.cmd(args))
    }

    /// For benchmarks: [`Daemon::start`] on the repo at `repo`, its stderr
    /// discarded (a benchmark prints only its figures).
    pub fn start_quiet(repo: &Path, extra: &[&str]) -> (Daemon, Vec<String>) {
        let mut cmd = cairn_at(repo, &Self::loopback_args(extra));
        cmd.stderr(Stdio::null());
        Self::launch(cmd)
    }

    /// Starts `cmd` (a daemon) and waits until it says it is ready; its
    /// stdout keeps being read, so it never blocks on a full pipe.
    pub fn launch(mut cmd: Command) -> (Daemon, Vec<String>) {
        let mut child = cmd.stdout(Stdio::piped()).spawn().expect("start daemon");
        let stdout = child.stdout.take().expect("piped");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        let mut d = Daemon { child, lines: rx };
        let banner = d.wait_for("Daemon is ready");
        (d, banner)
    }

    /// Lines up to and including the first containing `needle`.
    pub fn wait_for(&mut self, needle: &str) -> Vec<String> {
        let mut seen = Vec::new();
        loop {
            match self.lines.recv_timeout(Duration::from_secs(20)) {
                Ok(line) => {
                    let done = line.contains(needle);
                    seen.push(line);
                    if done {
                        return seen;
                    }
                }
                Err(_) => panic!("daemon never printed {needle:?}; got {seen:?}"),
            }
        }
    }

    /// Sends `sig` and waits (10 s at most) for the daemon to exit.
    pub fn signal(&mut self, sig: libc::c_int) -> std::process::ExitStatus {
        // SIGTERM and SIGINT both stop it cleanly.
        // SAFETY: signalling our own child by its PID.
        unsafe { libc::kill(self.child.id() as libc::pid_t, sig) };
        for _ in 0..200 {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("daemon did not stop within 10 s");
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What follows `prefix` on the first start-up line that starts with it.
fn banner_value<'a>(banner: &'a [String], prefix: &str) -> &'a str {
    banner
        .iter()
        .find_map(|l| l.strip_prefix(prefix))
        .unwrap_or_else(|| panic!("no line starting {prefix:?} in {banner:?}"))
}

/// The port at the end of a `/ip4/127.0.0.1/tcp/PORT` address.
fn port_of(addr: &str) -> &str {
    addr.rsplit('/').next().expect("a port")
}

/// The daemon's first swarm address (`/ip4/127.0.0.1/tcp/N/p2p/ID`), from
/// its start-up lines.
pub fn swarm_addr(banner: &[String]) -> String {
    banner_value(banner, "Swarm listening on ").to_string()
}

/// The peer ID at the end of `/ip4/../tcp/../p2p/ID`.
pub fn peer_id_of(addr: &str) -> String {
    addr.rsplit_once("/p2p/")
        .unwrap_or_else(|| panic!("no /p2p/ in {addr}"))
        .1
        .to_string()
}

/// The gateway URL (`http://127.0.0.1:PORT`) from a daemon's start-up lines.
pub fn gateway_url(banner: &[String]) -> String {
    let addr = banner_value(banner, "Gateway server listening on ");
    format!("http://127.0.0.1:{}", port_of(addr))
}

/// A GET of `url` that returns whatever status comes, with `Host: host`
/// when given (subdomain gateway requests).
pub fn get_with_host(url: &str, host: Option<&str>) -> ureq::http::Response<ureq::Body> {
    let mut req = ureq::get(url).config().http_status_as_error(false).build();
    if let Some(h) = host {
        req = req.header("Host", h);
    }
    req.call().expect("the server answers")
}

/// The RPC API's URL (`http://127.0.0.1:PORT`) from a daemon's start-up
/// lines.
pub fn api_url(banner: &[String]) -> String {
    let addr = banner_value(banner, "RPC API server listening on ");
    format!("http://127.0.0.1:{}", port_of(addr))
}

/// The value of the counter or gauge `name` (full name, no labels) in the
/// `/metrics` of the daemon whose API is at `api`, if it is there.
pub fn metric(api: &str, name: &str) -> Option<f64> {
    let text = ureq::get(format!("{api}/metrics"))
        .call()
        .expect("metrics")
        .into_body()
        .read_to_string()
        .expect("metrics text");
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
}

/// Reads `r` to its end (or first error); returns how many bytes came.
pub fn drain(mut r: impl Read) -> u64 {
    let mut buf = vec![0u8; 1 << 20];
    let mut n = 0u64;
    loop {
        match r.read(&mut buf) {
            Ok(0) | Err(_) => return n,
            Ok(k) => n += k as u64,
        }
    }
}

/// Seconds for `cairn cat CID` on the repo at `repo` to stream its bytes,
/// checking that `expect` bytes came.
pub fn timed_cat(repo: &Path, cid: &str, expect: u64) -> f64 {
    let start = Instant::now();
    let mut child = cairn_at(repo, &["cat", cid])
        .stdout(Stdio::piped())
        .spawn()
        .expect("cat");
    let n = drain(child.stdout.take().expect("piped"));
    assert!(child.wait().expect("cat").success(), "cat failed");
    assert_eq!(n, expect, "cat returned {n} bytes");
    start.elapsed().as_secs_f64()
}

/// The peers a `pin status --json` answer lists as holding a pinned copy.
pub fn pinned_holders(status: &serde_json::Value) -> Vec<String> {
    status["holders"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|h| h["state"] == "pinned")
        .filter_map(|h| h["peer"].as_str().map(String::from))
        .collect()
}

/// A benchmark's size setting: the number in environment variable `name`,
/// or `default`.
pub fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Where benchmarks put their files: `CAIRN_BENCH_DIR`, or the system
/// temp dir.
pub fn bench_base() -> PathBuf {
    std::env::var_os("CAIRN_BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir)
}

/// A new directory `NAME-PID` for a benchmark's files under
/// [`bench_base`].
pub fn bench_dir(name: &str) -> PathBuf {
    let dir = bench_base().join(format!("{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("bench dir");
    dir
}

/// Megabytes (10^6 bytes) per second.
pub fn mbps(bytes: u64, secs: f64) -> f64 {
    bytes as f64 / 1e6 / secs
}

/// Calls `f` every `every` until it gives `Some`, for `within` at most
/// (then fails the test, naming `what`).
pub fn poll_every<T>(
    every: Duration,
    within: Duration,
    what: &str,
    mut f: impl FnMut() -> Option<T>,
) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(start.elapsed() < within, "{what}: not within {within:?}");
        std::thread::sleep(every);
    }
}

/// Announces `cid` until a peer takes the record (20 s at most): right
/// after a connection, the peer may not be in the routing table yet.
pub async fn provide(net: &cairn::net::Network, cid: cid::Cid) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let r = tokio::time::timeout(Duration::from_secs(20), net.swarm.provide(cid))
            .await
            .expect("provide in time");
        match r {
            Ok(()) => return,
            Err(e) if tokio::time::Instant::now() > deadline => panic!("provide {cid}: {e}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

/// Asks the DHT for providers of `cid` until it names one (20 s at most).
/// ADD_PROVIDER has no reply (DHT spec), so a provide can complete before
/// the peer it went to has stored the record.
pub async fn providers_of(net: &cairn::net::Network, cid: cid::Cid) -> Vec<libp2p::PeerId> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let found = tokio::time::timeout(Duration::from_secs(20), net.swarm.find_providers(cid, 5))
            .await
            .expect("findprovs in time")
            .unwrap();
        if !found.is_empty() || tokio::time::Instant::now() > deadline {
            return found;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Fetches `cids` over Bitswap from `peer` (giving up after 10 s without
/// progress); the blocks, verified.
pub async fn fetch_blocks(
    net: &cairn::net::Network,
    cids: &[cid::Cid],
    peer: libp2p::PeerId,
) -> Vec<cairn::block::Block> {
    let opts = cairn::net::bitswap::fetch::FetchOptions {
        stall_timeout: Duration::from_secs(10),
        ..Default::default()
    };
    net.bitswap.fetch(cids, &[peer], opts).await.unwrap()
}

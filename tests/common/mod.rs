//! Helpers shared by the tests: a temporary repo and a way to run the
//! `cairn` binary against it, and a DHT query for in-process networks.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_cairn")
}

/// A repo in a temporary directory, removed on drop.
pub struct TestRepo {
    pub dir: tempfile::TempDir,
}

impl TestRepo {
    pub fn new() -> Self {
        TestRepo {
            dir: tempfile::tempdir().expect("tempdir"),
        }
    }

    pub fn path(&self) -> PathBuf {
        self.dir.path().join("repo")
    }

    pub fn scratch(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(bin());
        c.arg("--repo").arg(self.path()).args(args);
        c.stdin(Stdio::null());
        c
    }

    /// Runs and returns the output, whatever the exit status.
    pub fn run(&self, args: &[&str]) -> Output {
        self.cmd(args).output().expect("run cairn")
    }

    /// Runs, asserts success and returns stdout as text.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "cairn {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).expect("utf-8 stdout")
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
        let path = self.path().join("config.toml");
        let text = std::fs::read_to_string(&path).expect("read config");
        let mut doc: toml::Table = toml::from_str(&text).expect("parse config");
        let v: toml::Value = toml::from_str::<toml::Table>(&format!("v = {value}"))
            .expect("a TOML value")["v"]
            .clone();
        doc.entry(section.to_string())
            .or_insert_with(|| toml::Value::Table(Default::default()))
            .as_table_mut()
            .expect("a table")
            .insert(key.to_string(), v);
        std::fs::write(&path, toml::to_string(&doc).expect("serialise")).expect("write config");
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

/// Deterministic pseudo-random bytes (xorshift), seeded.
pub fn random_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// The byte pattern the JS reference harness also generates: `i % 251`.
pub fn pattern_bytes(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8).collect()
}

/// A running daemon, killed on drop if the test did not stop it.
pub struct Daemon {
    pub child: Child,
    lines: mpsc::Receiver<String>,
}

impl Daemon {
    /// Starts a daemon on loopback TCP (any port), API and gateway on any
    /// port, plus `extra` flags; returns it and its start-up lines.
    pub fn start(repo: &TestRepo, extra: &[&str]) -> (Daemon, Vec<String>) {
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
        Self::spawn(repo, &args)
    }

    /// Runs `cairn --repo REPO ARGS...` (a `daemon` command line as given)
    /// until it is ready.
    pub fn spawn(repo: &TestRepo, args: &[&str]) -> (Daemon, Vec<String>) {
        let mut child = repo
            .cmd(args)
            .stdout(Stdio::piped())
            .spawn()
            .expect("start daemon");
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

/// The gateway URL (`http://127.0.0.1:PORT`) from a daemon's start-up lines.
pub fn gateway_url(banner: &[String]) -> String {
    let addr = banner
        .iter()
        .find_map(|l| l.strip_prefix("Gateway server listening on "))
        .expect("the daemon serves a gateway");
    let port = addr.rsplit('/').next().expect("a port");
    format!("http://127.0.0.1:{port}")
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

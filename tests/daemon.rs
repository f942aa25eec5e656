//! `cairn daemon` as an operator runs it: starts on loopback, reports its
//! peer ID and addresses, connects to a bootstrap peer, and stops cleanly on
//! SIGTERM and SIGINT. `cairn id` prints Kubo's `ipfs id` JSON shape.

mod common;

use common::TestRepo;
use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// A running daemon, killed on drop if the test did not stop it.
struct Daemon {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Daemon {
    /// Starts a daemon; returns it and its start-up lines.
    fn start(repo: &TestRepo, extra: &[&str]) -> (Daemon, Vec<String>) {
        let mut args = vec!["daemon", "--listen", "/ip4/127.0.0.1/tcp/0"];
        args.extend_from_slice(extra);
        let mut child = repo
            .cmd(&args)
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
    fn wait_for(&mut self, needle: &str) -> Vec<String> {
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

    fn signal(&mut self, sig: libc::c_int) -> std::process::ExitStatus {
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

#[test]
fn daemon_starts_connects_and_stops_cleanly() {
    let a = TestRepo::new();
    let b = TestRepo::new();
    let id: serde_json::Value = serde_json::from_str(&a.ok(&["id"])).unwrap();
    let peer = id["ID"].as_str().unwrap().to_string();
    assert!(id["AgentVersion"].as_str().unwrap().starts_with("cairn/"));
    assert!(id["Addresses"]
        .as_array()
        .unwrap()
        .iter()
        .all(|x| x.as_str().unwrap().ends_with(&format!("/p2p/{peer}"))));
    assert!(id["Protocols"]
        .as_array()
        .unwrap()
        .iter()
        .any(|p| p == "/ipfs/bitswap/1.2.0"));
    assert!(!id["PublicKey"].as_str().unwrap().is_empty());

    let (mut da, banner) = Daemon::start(&a, &[]);
    assert!(
        banner.iter().any(|l| l == &format!("PeerID: {peer}")),
        "{banner:?}"
    );
    let addr = banner
        .iter()
        .find_map(|l| l.strip_prefix("Swarm listening on "))
        .expect("a listen address")
        .to_string();
    assert!(
        addr.starts_with("/ip4/127.0.0.1/tcp/") && addr.ends_with(&peer),
        "{addr}"
    );

    // B bootstraps from A.
    let (mut db, banner_b) = Daemon::start(&b, &["--bootstrap", &addr]);
    assert!(
        banner_b
            .iter()
            .any(|l| l == &format!("Connected to {peer}")),
        "{banner_b:?}"
    );
    // While a daemon runs, offline commands get a clear error.
    let err = a.fails(&["repo", "stat"]);
    assert!(err.contains("daemon"), "{err}");

    assert!(db.signal(libc::SIGINT).success());
    assert!(da.signal(libc::SIGTERM).success());
    // Stopped cleanly: the repo opens again.
    a.ok(&["repo", "verify"]);
}

//! Core throughput and memory, against this machine's own limits measured
//! in the same run:
//!
//! - `cairn add` (defaults: Kubo's unixfs-v1-2025, CIDv1, SHA2-256, raw
//!   leaves, 1 MiB chunks) vs `dd conv=fsync`
//!   (the disk's durable write rate), and `cairn add --hash blake3` vs the
//!   same, alternated in one loop;
//! - `cairn cat` vs `sha256sum` (read + verify at the default hash), and
//!   `cat` of a `--hash blake3` add vs `b3sum --num-threads 1`;
//! - `cairn add --cid-version 0` (SHA2-256) vs `sha256sum`;
//! - peak RSS of `cairn add` and `cairn cat` of a large file.
//!
//! Run: `bash benches/setup.sh && cargo bench --bench core`
//! Sizes: `CAIRN_BENCH_MB` (default 1024) and `CAIRN_BENCH_RSS_MB` (default
//! 4096; 0 skips). Files go to `CAIRN_BENCH_DIR` (default: the system temp
//! dir), which must be on the disk you want to measure.

#[path = "../tests/common/mod.rs"]
mod common;

use common::{bench_base, env_u64, write_random_file};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

/// Runs a command, returns (seconds, peak RSS in KiB, stdout). A command
/// whose stdout was already redirected keeps that redirection.
// The child is reaped with wait4 (for its own rusage), not Child::wait.
#[allow(clippy::zombie_processes)]
fn run(cmd: &mut Command) -> (f64, u64, Vec<u8>) {
    let start = Instant::now();
    let child = cmd
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    let pid = child.id() as libc::pid_t;
    let stdout = child.stdout;
    let reader = std::thread::spawn(move || {
        let Some(mut stdout) = stdout else {
            return Vec::new();
        };
        // Keep only the tail of stdout: `cat` output is counted, not kept.
        let mut buf = vec![0u8; 1 << 20];
        let mut tail = Vec::new();
        loop {
            match std::io::Read::read(&mut stdout, &mut buf) {
                Ok(0) | Err(_) => return tail,
                Ok(n) => {
                    if n < 4096 {
                        tail.extend_from_slice(&buf[..n]);
                    }
                }
            }
        }
    });
    let mut status = 0;
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: pid is our child; status and usage are valid out-pointers.
    let r = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    assert_eq!(r, pid, "wait4 failed");
    let secs = start.elapsed().as_secs_f64();
    let out = reader.join().expect("reader thread");
    assert!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "{cmd:?} failed with status {status}"
    );
    (secs, usage.ru_maxrss as u64, out)
}

/// Whether `tool --version` runs.
fn have(tool: &str) -> bool {
    Command::new(tool)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok()
}

/// `cairn --repo REPO` with stdout piped, arguments still to add.
fn cairn(repo: &Path) -> Command {
    let mut c = common::cairn_at(repo, &[]);
    c.stdout(Stdio::piped());
    c
}

/// Removes a data file if it is there.
fn drop_file(path: &Path) {
    let _ = std::fs::remove_file(path);
}

fn main() {
    // `cargo bench` passes --bench; nothing else to parse.
    let mb = env_u64("CAIRN_BENCH_MB", 1024);
    let rss_mb = env_u64("CAIRN_BENCH_RSS_MB", 4096);
    let dir = tempfile::Builder::new()
        .prefix("cairn-bench")
        .tempdir_in(bench_base())
        .expect("bench dir");
    for tool in ["dd", "b3sum", "sha256sum"] {
        assert!(
            have(tool),
            "{tool} is missing: run `bash benches/setup.sh` first"
        );
    }
    let input = dir.path().join("input");
    let bytes = (mb << 20) as f64;
    write_random_file(&input, mb, 4);
    let mbs = |secs: f64| bytes / secs / 1e6;

    // The disk's durable write rate and add, alternated, best of two each:
    // this machine's disk speed drifts between runs.
    let dd_out = dir.path().join("dd-out");
    let repo = dir.path().join("repo");
    let repo_b3 = dir.path().join("repo-blake3");
    let (mut dd_s, mut add_s, mut add_rss) = (f64::MAX, f64::MAX, 0);
    let mut b3add_s = f64::MAX;
    let (mut cid, mut cid_b3) = (String::new(), String::new());
    for _ in 0..2 {
        let (s, _, _) = run(Command::new("dd")
            .arg(format!("if={}", input.display()))
            .arg(format!("of={}", dd_out.display()))
            .args(["bs=1M", "conv=fsync", "status=none"]));
        dd_s = dd_s.min(s);
        drop_file(&dd_out);
        let _ = std::fs::remove_dir_all(&repo);
        let (s, rss, out) = run(cairn(&repo)
            .args(["add", "-Q", "--no-progress"])
            .arg(&input));
        add_s = add_s.min(s);
        add_rss = add_rss.max(rss);
        cid = String::from_utf8(out).expect("cid").trim().to_string();
        let _ = std::fs::remove_dir_all(&repo_b3);
        let (s, _, out) = run(cairn(&repo_b3)
            .args(["add", "-Q", "--no-progress", "--hash", "blake3"])
            .arg(&input));
        b3add_s = b3add_s.min(s);
        cid_b3 = String::from_utf8(out).expect("cid").trim().to_string();
    }

    // cat (read + verify) against a tool that reads and hashes with the
    // same hash, one thread: sha256sum for the default, b3sum for BLAKE3.
    // Output to /dev/null: the tools write nothing either, and a pipe to
    // this process would measure the pipe.
    let (sha_s, _, _) = run(Command::new("sha256sum").arg(&input));
    let (cat_s, cat_rss, _) = run(cairn(&repo).args(["cat", &cid]).stdout(Stdio::null()));
    let (b3_s, _, _) = run(Command::new("b3sum")
        .args(["--num-threads", "1"])
        .arg(&input));
    let (b3cat_s, _, _) = run(cairn(&repo_b3).args(["cat", &cid_b3]).stdout(Stdio::null()));
    let _ = std::fs::remove_dir_all(&repo_b3);

    // CIDv0 / SHA2-256 add vs sha256sum.
    let repo0 = dir.path().join("repo-v0");
    let (add0_s, _, _) = run(cairn(&repo0)
        .args(["add", "-Q", "--no-progress", "--cid-version", "0"])
        .arg(&input));
    let _ = std::fs::remove_dir_all(&repo0);

    println!(
        "cairn core benchmark: {mb} MiB random file, {} cores",
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    println!("| operation | cairn MB/s | reference | reference MB/s | ratio |");
    println!("|---|---|---|---|---|");
    println!(
        "| add (defaults: CIDv1, SHA2-256, raw leaves, 1 MiB) | {:.0} | dd bs=1M conv=fsync | {:.0} | {:.2} |",
        mbs(add_s),
        mbs(dd_s),
        dd_s / add_s
    );
    println!(
        "| add --hash blake3 (CIDv1, BLAKE3, raw leaves, 1 MiB) | {:.0} | dd bs=1M conv=fsync | {:.0} | {:.2} |",
        mbs(b3add_s),
        mbs(dd_s),
        dd_s / b3add_s
    );
    println!(
        "| cat (read + verify SHA2-256) | {:.0} | sha256sum | {:.0} | {:.2} |",
        mbs(cat_s),
        mbs(sha_s),
        sha_s / cat_s
    );
    println!(
        "| cat of the BLAKE3 add (read + verify) | {:.0} | b3sum --num-threads 1 | {:.0} | {:.2} |",
        mbs(b3cat_s),
        mbs(b3_s),
        b3_s / b3cat_s
    );
    println!(
        "| add --cid-version 0 (SHA2-256) | {:.0} | sha256sum | {:.0} | {:.2} |",
        mbs(add0_s),
        mbs(sha_s),
        sha_s / add0_s
    );
    println!(
        "peak RSS: add {} MiB, cat {} MiB ({mb} MiB file)",
        add_rss / 1024,
        cat_rss / 1024
    );
    drop_file(&input);
    let _ = std::fs::remove_dir_all(&repo);

    if rss_mb > 0 {
        let big = dir.path().join("big");
        write_random_file(&big, rss_mb, 5);
        let repo = dir.path().join("repo-big");
        let (s, add_rss, out) = run(cairn(&repo).args(["add", "-Q", "--no-progress"]).arg(&big));
        let cid = String::from_utf8(out).expect("cid").trim().to_string();
        drop_file(&big);
        let (s2, cat_rss, _) = run(cairn(&repo).args(["cat", &cid]).stdout(Stdio::null()));
        let b = (rss_mb << 20) as f64;
        println!(
            "{rss_mb} MiB file: add {:.0} MB/s peak RSS {} MiB; cat {:.0} MB/s peak RSS {} MiB",
            b / s / 1e6,
            add_rss / 1024,
            b / s2 / 1e6,
            cat_rss / 1024
        );
    }
}

//! A daemon's memory under parallel reads, against the goal: a peak
//! resident set of at most 64 MiB + 4 MiB per request in flight, and back
//! within 16 MiB of idle within 30 s of the last read.
//!
//! For each concurrency (a fresh daemon each, so its peak is that of the
//! run): rounds of N parallel reads of one 20 MB file, half gateway
//! `GET /ipfs/{cid}`, half RPC `cat`. Prints the peak against the goal (as
//! a ratio) and the time back near idle; exits non-zero if either goal
//! fails.
//!
//! Run: `cargo bench --bench memory`. `CAIRN_BENCH_CONCURRENCY` (default
//! `8,16,32`), `CAIRN_BENCH_ROUNDS` (default 8), `CAIRN_BENCH_READ_MB`
//! (file size in MB, default 20); files go to `CAIRN_BENCH_DIR` (default
//! the system temp dir).

#[path = "../tests/common/mod.rs"]
mod common;

use common::memory::{mib, MemoryRun};
use common::{bench_dir, cairn_ok, env_u64, Daemon};

fn main() {
    let levels: Vec<usize> = std::env::var("CAIRN_BENCH_CONCURRENCY")
        .unwrap_or_else(|_| "8,16,32".into())
        .split(',')
        .map(|n| n.trim().parse().expect("CAIRN_BENCH_CONCURRENCY: numbers"))
        .collect();
    let rounds = env_u64("CAIRN_BENCH_ROUNDS", 8) as usize;
    let len = env_u64("CAIRN_BENCH_READ_MB", 20) * 1_000_000;
    let base = bench_dir("cairn-bench-memory");
    let repo = base.join("repo");
    let file = base.join("data.bin");
    std::fs::write(&file, common::random_bytes(len as usize, 22)).expect("write file");
    let cid = cairn_ok(&repo, &["add", "-Q", file.to_str().expect("utf-8")])
        .trim()
        .to_string();

    println!(
        "memory benchmark: {rounds} rounds of N parallel reads of a {} MB file \
         (half gateway, half RPC cat), one fresh daemon per N",
        len / 1_000_000
    );
    println!("| in flight | idle | peak | goal | peak ÷ goal | after the reads | back near idle | read rate |");
    println!("|---|---|---|---|---|---|---|---|");
    let mut failed = vec![];
    for &parallel in &levels {
        let (daemon, banner) = Daemon::start_quiet(&repo, &[]);
        let (gateway, api) = (common::gateway_url(&banner), common::api_url(&banner));
        let run = MemoryRun::measure(
            daemon.child.id(),
            (&gateway, &api),
            (&cid, len),
            rounds,
            parallel,
        );
        drop(daemon);
        let back = match run.back_near_idle() {
            true => format!("{:.1} s", run.waited.as_secs_f64()),
            false => format!("not within 30 s ({})", mib(run.settled)),
        };
        println!(
            "| {parallel} | {} | {} | {} | {:.2} | {} | {back} | {:.0} MB/s |",
            mib(run.idle),
            mib(run.peak),
            mib(run.budget),
            run.peak as f64 / run.budget as f64,
            mib(run.after),
            run.read_bytes as f64 / 1e6 / run.took.as_secs_f64(),
        );
        if !run.peak_within_budget() {
            failed.push(format!("{parallel} in flight: peak over the goal"));
        }
        if !run.back_near_idle() {
            failed.push(format!("{parallel} in flight: not back near idle in 30 s"));
        }
    }
    let _ = std::fs::remove_dir_all(&base);
    if !failed.is_empty() {
        eprintln!("memory goal failed: {}", failed.join("; "));
        std::process::exit(1);
    }
    println!("memory goal met at every concurrency");
}

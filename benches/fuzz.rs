//! The decoders that read bytes from outside, fuzzed at scale: every target
//! of `tests/fuzz` (arbitrary input never panics or allocates beyond a
//! bound, valid encodings round trip, mutated ones are refused cleanly),
//! each for `CAIRN_FUZZ_CASES` cases (default 100,000), printing cases/s.
//! A failing input is shrunk, printed and its seed saved under
//! `tests/fuzz/regressions/` (commit it: `cargo test` replays it).
//!
//! Run: `cargo bench --bench fuzz [-- NAME-FILTER]`

#![allow(clippy::result_large_err)] // the crate's errors carry CIDs: see src/lib.rs

#[path = "../tests/fuzz/bitswap.rs"]
mod bitswap;
#[path = "../tests/fuzz/car.rs"]
mod car;
#[path = "../tests/fuzz/cid.rs"]
mod cid;
#[path = "../tests/fuzz/harness.rs"]
mod harness;
#[path = "../tests/fuzz/ipns.rs"]
mod ipns;
#[path = "../tests/fuzz/multipart.rs"]
mod multipart;
#[path = "../tests/fuzz/pb.rs"]
mod pb;
#[path = "../tests/fuzz/range.rs"]
mod range;
#[path = "../tests/fuzz/replicate.rs"]
mod replicate;
#[path = "../tests/fuzz/targets.rs"]
mod targets;

use std::time::Instant;

#[global_allocator]
static ALLOC: harness::CountingAlloc = harness::CountingAlloc;

fn main() {
    assert!(
        harness::counting(),
        "the counting allocator is not installed"
    );
    let cases: u32 = std::env::var("CAIRN_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let filters: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let mut failed = Vec::new();
    println!(
        "{:<24} {:>10} {:>10} {:>12}",
        "target", "cases", "seconds", "cases/s"
    );
    for (name, run) in targets::TARGETS {
        if !filters.is_empty() && !filters.iter().any(|f| name.contains(f.as_str())) {
            continue;
        }
        let start = Instant::now();
        let result = run(cases);
        let secs = start.elapsed().as_secs_f64();
        let verdict = if result.is_ok() { "" } else { "  FAILED" };
        println!(
            "{name:<24} {cases:>10} {secs:>10.2} {:>12.0}{verdict}",
            cases as f64 / secs
        );
        if let Err(f) = result {
            println!("  {}", f.report.replace('\n', "\n  "));
            failed.push(f.target);
        }
    }
    if !failed.is_empty() {
        eprintln!("failed: {}", failed.join(", "));
        std::process::exit(1);
    }
}

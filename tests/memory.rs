//! A daemon's memory stays within its budget under parallel reads and goes
//! back near where it started once they end.

mod common;

use common::memory::{budget_bytes, mib, peak_rss_bytes, read_rounds, rss_bytes, settle, MIB};
use common::{api_url, gateway_url, Daemon, TestRepo};
use std::time::Duration;

/// Requests in flight at once.
const PARALLEL: usize = 8;

/// What the resident set may keep once the reads are over, above where it
/// was idle before them: the index's page cache warmed by the reads and the
/// allocator's free lists, not the reads' buffers.
const SETTLED_SLACK_BYTES: u64 = 16 * MIB;

/// 8 rounds of 8 parallel reads of a 20 MB file, half through the gateway,
/// half through RPC `cat`: the peak resident set stays within
/// 64 MiB + 4 MiB per request in flight, and within 30 s of the last read
/// the resident set is back within 16 MiB of the idle daemon's.
#[test]
fn parallel_reads_stay_within_the_memory_budget_and_give_it_back() {
    let repo = TestRepo::new();
    let len = 20_000_000u64;
    let file = repo.scratch("data.bin");
    std::fs::write(&file, common::random_bytes(len as usize, 22)).unwrap();
    let cid = repo.add(&file, &[]);
    let (d, banner) = Daemon::start(&repo, &[]);
    let pid = d.child.id();
    let idle = rss_bytes(pid);

    let took = read_rounds(
        &gateway_url(&banner),
        &api_url(&banner),
        &cid,
        len,
        8,
        PARALLEL,
    );
    let after = rss_bytes(pid);
    let peak = peak_rss_bytes(pid);
    let budget = budget_bytes(PARALLEL as u64);
    let target = idle + SETTLED_SLACK_BYTES;
    let (settled, waited) = settle(pid, target, Duration::from_secs(30));
    eprintln!(
        "idle {}, peak {} (budget {}), after the reads {}, {} {waited:.1?} later \
         (target {}); reads took {took:.1?}",
        mib(idle),
        mib(peak),
        mib(budget),
        mib(after),
        mib(settled),
        mib(target)
    );
    assert!(
        peak <= budget,
        "peak RSS {} over the budget {}",
        mib(peak),
        mib(budget)
    );
    assert!(
        settled <= target,
        "RSS still {} after 30 s idle (idle was {})",
        mib(settled),
        mib(idle)
    );
}

//! A daemon's memory stays within its budget under parallel reads and goes
//! back near where it started once they end.

mod common;

use common::memory::{mib, MemoryRun, SETTLED_SLACK_BYTES};
use common::{api_url, gateway_url, Daemon, TestRepo};

/// Requests in flight at once.
const PARALLEL: usize = 8;

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
    let (gateway, api) = (gateway_url(&banner), api_url(&banner));
    let run = MemoryRun::measure(d.child.id(), (&gateway, &api), (&cid, len), 8, PARALLEL);
    eprintln!("{}", run.summary());
    assert!(
        run.peak_within_budget(),
        "peak RSS {} over the budget {}",
        mib(run.peak),
        mib(run.budget)
    );
    assert!(
        run.back_near_idle(),
        "RSS still {} after 30 s idle (idle was {}, slack {})",
        mib(run.settled),
        mib(run.idle),
        mib(SETTLED_SLACK_BYTES)
    );
}

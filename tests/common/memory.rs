//! A daemon's memory under parallel reads: its resident set read from
//! `/proc/PID/status`, the read load (gateway GETs and RPC `cat`s of one
//! file, in rounds of parallel requests), and how long the resident set
//! takes to settle afterwards, allowing for what the memory tier
//! (`[store] hot_cache`) holds by the daemon's own count. Shared by
//! `tests/memory.rs` and `benches/memory.rs`.

use super::drain;
use std::time::{Duration, Instant};

/// Bytes in a mebibyte.
pub const MIB: u64 = 1 << 20;

/// The daemon's memory budget for `concurrent` requests in flight:
/// 64 MiB plus 4 MiB a request.
pub fn budget_bytes(concurrent: u64) -> u64 {
    64 * MIB + 4 * MIB * concurrent
}

/// A `kB` field (`VmRSS`, `VmHWM`) of `/proc/PID/status`, in bytes.
pub fn status_bytes(pid: u32, field: &str) -> u64 {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("read /proc status");
    text.lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"))
        * 1024
}

/// The process's resident set now, in bytes.
pub fn rss_bytes(pid: u32) -> u64 {
    status_bytes(pid, "VmRSS")
}

/// The process's peak resident set so far, in bytes.
pub fn peak_rss_bytes(pid: u32) -> u64 {
    status_bytes(pid, "VmHWM")
}

/// The value of the metric `name` (no labels) on `{api}/metrics`; 0 when
/// the daemon does not report it (a metric of a memory tier that is off).
pub fn metric(api: &str, name: &str) -> u64 {
    let url = format!("{api}/metrics");
    let resp = ureq::get(&url)
        .call()
        .unwrap_or_else(|e| panic!("{url}: {e}"));
    let mut body = resp.into_body();
    let text = body.read_to_string().expect("metrics are text");
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .map_or(0, |v| {
            v.trim().parse::<f64>().expect("a metric's value") as u64
        })
}

/// Bytes the daemon's memory tier holds now, by its own count
/// (`cairn_hot_cache_bytes`: blocks and their bookkeeping).
pub fn hot_cache_bytes(api: &str) -> u64 {
    metric(api, "cairn_hot_cache_bytes")
}

/// One read of the file: `GET {gateway}/ipfs/{cid}`, or
/// `POST {api}/api/v0/cat?arg={cid}`; returns the bytes received.
fn read_once(agent: &ureq::Agent, url: &str, rpc: bool) -> u64 {
    let resp = if rpc {
        agent.post(url).send_empty()
    } else {
        agent.get(url).call()
    }
    .unwrap_or_else(|e| panic!("{url}: {e}"));
    drain(resp.into_body().into_with_config().limit(u64::MAX).reader())
}

/// `rounds` rounds of `parallel` concurrent reads of `cid` (`len` bytes),
/// half through the gateway, half through RPC `cat`, each checked for
/// length. Returns how long it took.
pub fn read_rounds(
    gateway: &str,
    api: &str,
    cid: &str,
    len: u64,
    rounds: usize,
    parallel: usize,
) -> Duration {
    let start = Instant::now();
    let gw_url = format!("{gateway}/ipfs/{cid}");
    let rpc_url = format!("{api}/api/v0/cat?arg={cid}");
    for _ in 0..rounds {
        std::thread::scope(|s| {
            let readers: Vec<_> = (0..parallel)
                .map(|i| {
                    let (url, rpc) = if i % 2 == 0 {
                        (&gw_url, false)
                    } else {
                        (&rpc_url, true)
                    };
                    s.spawn(move || {
                        let agent: ureq::Agent = ureq::Agent::config_builder().build().into();
                        read_once(&agent, url, rpc)
                    })
                })
                .collect();
            for r in readers {
                assert_eq!(r.join().expect("reader thread"), len, "bytes read");
            }
        });
    }
    start.elapsed()
}

/// Polls the resident set of `pid` every 100 ms until it is at most
/// `target` bytes or `within` has passed; returns the last sample and when
/// it was taken (after the start of the wait).
pub fn settle(pid: u32, target: u64, within: Duration) -> (u64, Duration) {
    let start = Instant::now();
    loop {
        let rss = rss_bytes(pid);
        if rss <= target || start.elapsed() >= within {
            return (rss, start.elapsed());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Bytes as MiB with one decimal.
pub fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / MIB as f64)
}

/// What the resident set may keep once the reads are over, above where it
/// was idle before them, besides what the memory tier holds: the index's
/// page cache warmed by the reads and the allocator's free lists, not the
/// reads' buffers.
pub const SETTLED_SLACK_BYTES: u64 = 16 * MIB;

/// How long the resident set has to get back near idle after the reads.
pub const SETTLE_WITHIN: Duration = Duration::from_secs(30);

/// A daemon's memory over rounds of parallel reads.
pub struct MemoryRun {
    /// Requests in flight at once.
    pub parallel: usize,
    /// Resident set before the reads.
    pub idle: u64,
    /// Peak resident set (since the daemon started).
    pub peak: u64,
    /// [`budget_bytes`] for `parallel`.
    pub budget: u64,
    /// Resident set right after the last read.
    pub after: u64,
    /// The last sample while waiting to get back near idle.
    pub settled: u64,
    /// What the memory tier held when `settled` was taken, by the
    /// daemon's count ([`hot_cache_bytes`]): the resident set may keep it
    /// beyond the slack.
    pub hot_cache: u64,
    /// How long after the last read `settled` was taken.
    pub waited: Duration,
    /// Bytes read in all.
    pub read_bytes: u64,
    /// How long the reads took.
    pub took: Duration,
}

impl MemoryRun {
    /// `rounds` rounds of `parallel` reads of `cid` (`len` bytes) from the
    /// daemon `pid` ([`read_rounds`]), then up to [`SETTLE_WITHIN`] for
    /// its resident set to get back within [`SETTLED_SLACK_BYTES`] of idle
    /// (plus what the memory tier holds).
    pub fn measure(
        pid: u32,
        urls: (&str, &str),
        file: (&str, u64),
        rounds: usize,
        parallel: usize,
    ) -> MemoryRun {
        Self::measure_after(pid, urls, file, rounds, parallel, &|| ())
    }

    /// As [`MemoryRun::measure`], with `warm` run between the idle sample
    /// and the reads (reads that fill the memory tier, say): the peak and
    /// the settled resident set may each exceed their bound by what the
    /// memory tier holds after the reads.
    pub fn measure_after(
        pid: u32,
        (gateway, api): (&str, &str),
        (cid, len): (&str, u64),
        rounds: usize,
        parallel: usize,
        warm: &dyn Fn(),
    ) -> MemoryRun {
        let idle = rss_bytes(pid);
        warm();
        let took = read_rounds(gateway, api, cid, len, rounds, parallel);
        let after = rss_bytes(pid);
        let peak = peak_rss_bytes(pid);
        let target = idle + SETTLED_SLACK_BYTES + hot_cache_bytes(api);
        let (settled, waited) = settle(pid, target, SETTLE_WITHIN);
        // Nothing reads while settling: the tier can only have shed since.
        let hot_cache = hot_cache_bytes(api);
        MemoryRun {
            parallel,
            idle,
            peak,
            budget: budget_bytes(parallel as u64),
            after,
            settled,
            hot_cache,
            waited,
            read_bytes: len * (rounds * parallel) as u64,
            took,
        }
    }

    /// Whether the peak stayed within the budget, beyond what the memory
    /// tier holds (its bytes are metered and bounded by `[store]
    /// hot_cache`; the budget is for everything else).
    pub fn peak_within_budget(&self) -> bool {
        self.peak <= self.budget + self.hot_cache
    }

    /// Whether the resident set got back near idle in time: within
    /// [`SETTLED_SLACK_BYTES`] of it beyond what the memory tier holds.
    pub fn back_near_idle(&self) -> bool {
        self.settled <= self.idle + SETTLED_SLACK_BYTES + self.hot_cache
    }

    /// The figures in one line.
    pub fn summary(&self) -> String {
        format!(
            "{} in flight: idle {}, peak {} (budget {}, {:.2}× it), after the reads {}, \
             {} {:.1?} later (target {}, memory tier holding {}); {:.0} MB/s",
            self.parallel,
            mib(self.idle),
            mib(self.peak),
            mib(self.budget),
            self.peak as f64 / self.budget as f64,
            mib(self.after),
            mib(self.settled),
            self.waited,
            mib(self.idle + SETTLED_SLACK_BYTES + self.hot_cache),
            mib(self.hot_cache),
            self.read_bytes as f64 / 1e6 / self.took.as_secs_f64(),
        )
    }
}

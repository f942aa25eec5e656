//! The process's allocator, tuned for a long-running daemon: few malloc
//! arenas, large buffers reused instead of mapped afresh, and the memory a
//! burst of requests freed handed back to the system once the burst is
//! over. Process-wide, so it is the program's choice (`cairn daemon` makes
//! it), not something [`Daemon`](super::Daemon) does to its host.
//!
//! What a daemon's resident set grows with under parallel reads, and what
//! bounds each (the goal, checked by `tests/memory.rs` and
//! `benches/memory.rs`: at most 64 MiB + 4 MiB per request in flight, back
//! near idle within 30 s, both beyond what the memory tier holds by its
//! own count, which `[store] hot_cache` bounds):
//!
//! - The read window: leaf bytes a reader has asked for ahead of the bytes
//!   it has returned, counted in the file's own leaf size (1 MiB at the
//!   defaults, 256 KiB in Kubo's classic DAGs). A read of local blocks holds
//!   at most
//!   [`ReadOptions::window_bytes`](crate::dag::reader::ReadOptions::window_bytes)
//!   (2 MiB, at least one block); only once blocks come from peers does it
//!   widen to its `fetch_window_bytes` (16 MiB for gateway and `get` reads,
//!   32 MiB for RPC `cat`), to cover the network's latency (a window that
//!   wide on every read would hold 16–32 MiB per request).
//! - A fetch session's recent blocks (`net::bitswap::fetch`): blocks that
//!   arrived before their reader asked, at most 64 MiB per session and only
//!   those no waiter took at once. A read of local content starts no
//!   session, so it holds none.
//! - The allocator: with glibc's defaults each of the many threads serving
//!   requests gets an arena of its own (up to 8 per core), each keeping the
//!   buffers freed in it, and with a trim threshold above the buffers' size
//!   (128 MiB) none went back: 225 MiB resident after 8 rounds of 8
//!   parallel 20 MB reads, still so after 30 s idle, against 17 MiB before
//!   them. Bounded here: at most one arena per core (4 at most), each
//!   keeping at most `TRIM_THRESHOLD_BYTES` (8 MiB) at the top of its heap,
//!   and what is freed elsewhere returned every [`TRIM_INTERVAL`].
//! - The memory tier (`[store] hot_cache`, 32 MiB by default): the blocks
//!   and small whole files reads come back to. Its weight is part of the
//!   resident set, so it counts against the same limits; [`MemoryGuard`]
//!   keeps it out of the way of the rest ([`guard_memory_tier`] runs it
//!   while a daemon runs).
//! - The resolution caches (`dag::reader::ResolveCache`: resolved paths and
//!   directory listings, at most 4 + 8 MiB, sized from `hot_cache`):
//!   dropped together with the memory tier.
//!
//! The memory guard samples the process's resident set (the figure
//! `[net] max_memory_bytes` refuses new connections over) and the
//! kernel's `MemAvailable` every [`GUARD_INTERVAL`]:
//!
//! - Near the limit (the resident set at 7/8 of `max_memory_bytes`, or
//!   `MemAvailable` under [`system_reserve_bytes`]) the memory tier is
//!   emptied, and so are the resolution caches, and the freed memory handed
//!   back to the system, before the limit is reached and connections are
//!   refused. Reads then come from disk and resolve paths afresh; the bytes
//!   dropped are counted (`cairn_hot_cache_pressure_dropped_bytes_total`,
//!   `cairn_path_cache_pressure_dropped_bytes_total`,
//!   `cairn_listing_cache_pressure_dropped_bytes_total`). The resolution
//!   caches keep nothing new until the guard next allows growth.
//! - Below that, the tier may grow only into the room left under 3/4 of
//!   the limit (and above twice the system reserve), so that filling it
//!   does not take the process to the limit by itself.
//! - With no limit set and plenty available, it may grow to its capacity.
//!
//! A cgroup's own limit is not read (its usage counts the page cache, which
//! a storage daemon fills and the kernel reclaims first): under one, set
//! `max_memory_bytes` below it.

use crate::dag::reader::ResolveCache;
use crate::store::HotCache;
use std::sync::Arc;
use std::time::Duration;

/// How often memory freed since the last look is returned to the system.
pub const TRIM_INTERVAL: Duration = Duration::from_secs(5);

/// Most malloc arenas (one per core up to this): each can keep up to
/// `TRIM_THRESHOLD_BYTES` of freed memory that no trim reaches.
const MAX_ARENAS: usize = 4;

/// Free memory at the top of an arena's heap beyond which a `free` hands it
/// back to the system. Above a Bitswap message's 4 MiB, so that allocating
/// and freeing one buffer does not map and unmap pages every time. glibc's
/// `malloc_trim` never shrinks a thread arena's heap, so this is also what
/// each of them may keep after a burst.
const TRIM_THRESHOLD_BYTES: libc::c_int = 8 * 1024 * 1024;

/// Caps glibc's malloc arenas at one per core (at most `MAX_ARENAS`)
/// instead of up to 8 per core. Every blocking thread otherwise gets its
/// own, and the buffers freed in one are never reused by another, so a
/// burst of parallel requests leaves several times its working set behind.
/// Call before any other thread starts: glibc fixes the limit when a
/// second thread first allocates.
pub fn limit_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        let arenas = cores.clamp(1, MAX_ARENAS) as libc::c_int;
        // SAFETY: mallopt only changes allocator tuning (under its lock).
        unsafe { libc::mallopt(libc::M_ARENA_MAX, arenas) };
    }
}

/// Tunes glibc's malloc for serving (after the node is open: its start-up
/// allocations keep glibc's defaults, which cost less idle memory).
///
/// - Buffers up to 32 MiB come from the heap: the daemon allocates and
///   frees one per Bitswap message (up to 4 MiB), and glibc served such
///   sizes with a fresh mmap each time, so every message paid page faults
///   and page zeroing (≈ 10 % of a transfer's CPU, measured with perf).
/// - Freed memory at the top of a heap goes back past
///   `TRIM_THRESHOLD_BYTES`; what is freed elsewhere in a heap goes back
///   with [`return_freed_memory`]'s periodic trims.
pub fn tune_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator tuning (under its lock).
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 32 * 1024 * 1024);
        libc::mallopt(libc::M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES);
    }
}

/// Returns freed heap memory to the system every `interval`, for as long
/// as the runtime runs: what a burst of requests freed leaves the resident
/// set within one interval of the burst's end. Under steady load a trim
/// costs the page faults of re-touching what it released, once an
/// interval (a few milliseconds).
pub async fn return_freed_memory(interval: Duration) {
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        // Walks every arena's free lists: off the async workers.
        let _ = tokio::task::spawn_blocking(trim).await;
    }
}

/// Hands the heap's free pages back to the system.
fn trim() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        let start = std::time::Instant::now();
        // SAFETY: malloc_trim only releases free memory; safe at any time.
        let released = unsafe { libc::malloc_trim(0) };
        tracing::trace!(released, took = ?start.elapsed(), "malloc_trim");
    }
}

/// How often the memory guard samples the process's memory (a read of
/// `/proc/self/statm` and `/proc/meminfo`, some 20 µs): parallel reads can
/// add tens of MiB within a few hundred milliseconds.
pub const GUARD_INTERVAL: Duration = Duration::from_millis(50);

/// Where memory stands, sampled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemorySample {
    /// The process's resident set, in bytes.
    pub resident_bytes: u64,
    /// Memory the kernel could give without swapping (`MemAvailable`), in
    /// bytes, when known.
    pub available_bytes: Option<u64>,
}

impl MemorySample {
    /// The process's memory now, from `/proc` (`None` where there is no
    /// `/proc/self/statm`).
    pub fn now() -> Option<MemorySample> {
        let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
        let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
        let meminfo = std::fs::read_to_string("/proc/meminfo").ok();
        Some(MemorySample {
            resident_bytes: pages.saturating_mul(page_bytes()),
            available_bytes: meminfo
                .as_deref()
                .and_then(|m| meminfo_bytes(m, "MemAvailable")),
        })
    }
}

/// The system's memory page size.
fn page_bytes() -> u64 {
    // SAFETY: sysconf only reads a system constant.
    let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    u64::try_from(size).ok().filter(|&s| s > 0).unwrap_or(4096)
}

/// A `kB` field of `/proc/meminfo`'s text, in bytes.
fn meminfo_bytes(text: &str, field: &str) -> Option<u64> {
    let value = text
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))?;
    let kb: u64 = value.trim().trim_end_matches("kB").trim().parse().ok()?;
    Some(kb.saturating_mul(1024))
}

/// The machine's memory (`MemTotal`), when `/proc/meminfo` tells.
pub fn system_total_bytes() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    meminfo_bytes(&text, "MemTotal")
}

/// What the system keeps free before the memory tier gives way: 1/32 of
/// its memory, between 32 MiB and 1 GiB.
pub fn system_reserve_bytes(total_bytes: u64) -> u64 {
    (total_bytes / 32).clamp(32 << 20, 1 << 30)
}

/// What the memory guard tells the memory tier.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GuardAction {
    /// Drop everything now and admit nothing: memory is nearly out.
    Shed,
    /// Grow to at most this many bytes (its capacity caps it).
    Allow(u64),
}

/// The memory guard's policy: from a [`MemorySample`] and the memory
/// tier's weight, whether it sheds or how far it may grow (see the module
/// comment). Pure; [`guard_memory_tier`] drives it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemoryGuard {
    /// `[net] max_memory_bytes` (`None`: no limit).
    limit_bytes: Option<u64>,
    /// [`system_reserve_bytes`] of the machine (`None`: not watched).
    reserve_bytes: Option<u64>,
}

impl MemoryGuard {
    /// A guard for a process limited to `limit_bytes` (0: no limit) on a
    /// machine of `system_total_bytes` (`None`: the system is not watched).
    pub fn new(limit_bytes: u64, system_total_bytes: Option<u64>) -> MemoryGuard {
        MemoryGuard {
            limit_bytes: (limit_bytes > 0).then_some(limit_bytes),
            reserve_bytes: system_total_bytes.map(system_reserve_bytes),
        }
    }

    /// The resident set at which the memory tier is emptied: 7/8 of the
    /// limit.
    pub fn shed_at_bytes(&self) -> Option<u64> {
        self.limit_bytes.map(|l| l - l / 8)
    }

    /// The resident set the memory tier may grow up to: 3/4 of the limit.
    pub fn grow_until_bytes(&self) -> Option<u64> {
        self.limit_bytes.map(|l| l - l / 4)
    }

    /// What the memory tier, holding `cache_bytes`, does at `sample`.
    pub fn decide(&self, sample: MemorySample, cache_bytes: u64) -> GuardAction {
        let mut room = u64::MAX;
        if let (Some(shed_at), Some(grow_until)) = (self.shed_at_bytes(), self.grow_until_bytes()) {
            if sample.resident_bytes >= shed_at {
                return GuardAction::Shed;
            }
            room = room.min(grow_until.saturating_sub(sample.resident_bytes));
        }
        if let (Some(reserve), Some(available)) = (self.reserve_bytes, sample.available_bytes) {
            if available < reserve {
                return GuardAction::Shed;
            }
            room = room.min(available.saturating_sub(reserve.saturating_mul(2)));
        }
        GuardAction::Allow(cache_bytes.saturating_add(room))
    }
}

/// Keeps the memory tier within what `guard` allows, sampling every
/// `interval`, for as long as the runtime runs ([`apply`] each sample's
/// decision): on [`GuardAction::Shed`] the memory tier and the resolution
/// caches are emptied and the memory they held handed back to the system
/// at once (the limit is checked against the resident set, which freeing
/// alone does not lower).
pub async fn guard_memory_tier(
    hot: Arc<HotCache>,
    resolved: Arc<ResolveCache>,
    guard: MemoryGuard,
    interval: Duration,
) {
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(sample) = MemorySample::now() else {
            return;
        };
        let action = guard.decide(sample, hot.weighted_bytes());
        let dropped = apply(action, &hot, &resolved);
        if dropped.blocks + dropped.resolutions > 0 {
            tracing::warn!(
                blocks = dropped.blocks,
                resolutions = dropped.resolutions,
                resident = sample.resident_bytes,
                available = ?sample.available_bytes,
                "memory short: the memory tier (hot_cache) and resolution caches were emptied"
            );
            let _ = tokio::task::spawn_blocking(trim).await;
        }
    }
}

/// Bytes one [`apply`] dropped.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Dropped {
    /// From the memory tier's blocks.
    pub blocks: u64,
    /// From the resolved paths and directory listings.
    pub resolutions: u64,
}

/// Carries out the guard's decision: [`GuardAction::Shed`] empties the
/// memory tier and the resolution caches (what is dropped first when
/// memory is short: all of it can be read again) and stops them keeping
/// anything; [`GuardAction::Allow`] lets the tier grow to that and the
/// resolution caches keep answers again. Each cache counts what it
/// dropped for `/metrics`.
pub fn apply(action: GuardAction, hot: &HotCache, resolved: &ResolveCache) -> Dropped {
    match action {
        GuardAction::Shed => Dropped {
            blocks: hot.shed(),
            resolutions: resolved.shed(),
        },
        GuardAction::Allow(bytes) => {
            hot.allow(bytes);
            resolved.admit_again();
            Dropped::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;

    fn at(resident_mib: u64, available_mib: Option<u64>) -> MemorySample {
        MemorySample {
            resident_bytes: resident_mib * MIB,
            available_bytes: available_mib.map(|a| a * MIB),
        }
    }

    #[test]
    fn near_the_limit_the_tier_sheds_before_connections_are_refused() {
        // 80 MiB limit: shed from 70 MiB, grow until 60 MiB.
        let g = MemoryGuard::new(80 * MIB, None);
        assert_eq!(g.shed_at_bytes(), Some(70 * MIB));
        assert_eq!(g.decide(at(70, None), 30 * MIB), GuardAction::Shed);
        assert_eq!(g.decide(at(79, None), 0), GuardAction::Shed);
        // Between: no growth, nothing dropped.
        assert_eq!(
            g.decide(at(65, None), 30 * MIB),
            GuardAction::Allow(30 * MIB)
        );
        // Below: it may grow into the room under 60 MiB only.
        assert_eq!(
            g.decide(at(40, None), 10 * MIB),
            GuardAction::Allow(30 * MIB)
        );
        let cache = HotCache::new(32 * MIB, 256 << 10, MIB);
        cache.allow(1 << 40);
        assert_eq!(cache.allowed(), 32 * MIB, "capped at the capacity");
    }

    #[test]
    fn without_a_limit_the_system_reserve_rules() {
        let total = 8 << 30;
        let reserve = system_reserve_bytes(total);
        assert_eq!(reserve, 256 * MIB);
        let g = MemoryGuard::new(0, Some(total));
        assert_eq!(g.decide(at(100, Some(200)), 30 * MIB), GuardAction::Shed);
        assert_eq!(
            g.decide(at(100, Some(600)), 0),
            GuardAction::Allow(88 * MIB)
        );
        assert_eq!(g.decide(at(100, None), 5), GuardAction::Allow(u64::MAX));
        // Both: the tighter one.
        let g = MemoryGuard::new(80 * MIB, Some(total));
        assert_eq!(g.decide(at(40, Some(600)), 0), GuardAction::Allow(20 * MIB));
        assert_eq!(system_reserve_bytes(64 << 30), 1 << 30);
        assert_eq!(system_reserve_bytes(256 << 20), 32 * MIB);
    }

    #[test]
    fn a_shed_drops_the_resolution_caches_with_the_tier() {
        use crate::block::{Block, CidFormat, HashAlg, RAW};
        use crate::dag::builder::directory_block;
        use crate::store::{HotStore, MemoryStore, Store};
        let format = CidFormat {
            version: 1,
            hash: HashAlg::Sha2_256,
        };
        let hot = Arc::new(HotCache::new(MIB, 256 << 10, MIB));
        let store = HotStore::new(Arc::new(MemoryStore::new()), Arc::clone(&hot));
        let leaf = Block::new(format, RAW, b"hot bytes".to_vec());
        let file = crate::dag::builder::Built {
            cid: *leaf.cid(),
            file_size: 9,
            tsize: 9,
        };
        let (dir, _) = directory_block(format, vec![("f".into(), file)]);
        let root = *dir.cid();
        for b in [leaf.clone(), dir] {
            let cid = *b.cid();
            store.put(b).expect("put");
            // Admitted at its second read.
            for _ in 0..2 {
                store.get(&cid).expect("get").expect("there");
            }
        }
        let resolved = ResolveCache::new(MIB, MIB);
        resolved.resolve(&store, root, &["f"]).expect("resolve");
        resolved.list(&store, &root).expect("list");
        let (paths, _) = resolved.path_usage();
        let (listings, _) = resolved.listing_usage();
        let held = hot.weighted_bytes();
        assert!(held > 0 && paths > 0 && listings > 0);

        let dropped = apply(GuardAction::Shed, &hot, &resolved);
        assert_eq!(
            dropped,
            Dropped {
                blocks: held,
                resolutions: paths + listings
            }
        );
        assert_eq!((hot.weighted_bytes(), hot.allowed()), (0, 0));
        assert_eq!(
            (resolved.path_usage(), resolved.listing_usage()),
            ((0, 0), (0, 0))
        );
        let counted = |c: &crate::dag::reader::CacheCounters| {
            c.pressure_dropped_bytes
                .load(std::sync::atomic::Ordering::Relaxed)
        };
        assert_eq!(counted(resolved.path_counts()), paths);
        assert_eq!(counted(resolved.listing_counts()), listings);
        // While shed, nothing is kept; once allowed, answers are kept again.
        resolved.resolve(&store, root, &["f"]).expect("resolve");
        assert!(resolved.cached(root, &["f"]).is_none());
        assert_eq!(
            apply(GuardAction::Allow(MIB), &hot, &resolved),
            Dropped::default()
        );
        assert_eq!(hot.allowed(), MIB);
        resolved.resolve(&store, root, &["f"]).expect("resolve");
        assert_eq!(
            resolved.cached(root, &["f"]).map(|r| r.cid),
            Some(*leaf.cid())
        );
    }

    #[test]
    fn meminfo_fields_parse() {
        let text = "MemTotal:       24683520 kB\nMemFree:          215040 kB\nMemAvailable:   20887552 kB\n";
        assert_eq!(meminfo_bytes(text, "MemAvailable"), Some(20_887_552 * 1024));
        assert_eq!(meminfo_bytes(text, "MemTotal"), Some(24_683_520 * 1024));
        assert_eq!(meminfo_bytes(text, "Mem"), None);
        let now = MemorySample::now().expect("linux has /proc/self/statm");
        assert!(now.resident_bytes > MIB, "{now:?}");
    }
}

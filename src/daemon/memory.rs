//! The process's allocator, tuned for a long-running daemon: few malloc
//! arenas, large buffers reused instead of mapped afresh, and the memory a
//! burst of requests freed handed back to the system once the burst is
//! over. Process-wide, so it is the program's choice (`cairn daemon` makes
//! it), not something [`Daemon`](super::Daemon) does to its host.
//!
//! What a daemon's resident set grows with under parallel reads, and what
//! bounds each (the goal, checked by `tests/memory.rs` and
//! `benches/memory.rs`: at most 64 MiB + 4 MiB per request in flight, back
//! near idle within 30 s):
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

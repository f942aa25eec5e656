//! What every fuzz target shares: a proptest runner with a case count and a
//! regression file per target, mutations of valid encodings, and an
//! allocator that measures the most bytes a decode holds at once.
//!
//! A binary using this module installs [`CountingAlloc`] as its global
//! allocator; the counts are per thread, so targets can run in parallel.

use proptest::collection::vec;
use proptest::prelude::*;
use proptest::test_runner::{Config, FileFailurePersistence, TestCaseError, TestRunner};
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::fmt::Debug;

/// The system allocator, counting the bytes live on each thread.
pub struct CountingAlloc;

thread_local! {
    static LIVE: Cell<isize> = const { Cell::new(0) };
    static PEAK: Cell<isize> = const { Cell::new(0) };
}

fn note(delta: isize) {
    let _ = LIVE.try_with(|live| {
        let now = live.get() + delta;
        live.set(now);
        let _ = PEAK.try_with(|peak| peak.set(peak.get().max(now)));
    });
}

// SAFETY: every call is forwarded to `System` unchanged; the counters are
// const-initialised thread-locals without destructors, which never allocate.
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's contract, passed on.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            note(layout.size() as isize);
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's contract, passed on.
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            note(layout.size() as isize);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the caller's contract, passed on.
        unsafe { System.dealloc(ptr, layout) };
        note(-(layout.size() as isize));
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: the caller's contract, passed on.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            note(new_size as isize - layout.size() as isize);
        }
        p
    }
}

/// Runs `f` and returns its result with the most bytes it had allocated at
/// once on this thread (beyond what was live when it started).
pub fn peak_alloc<T>(f: impl FnOnce() -> T) -> (T, usize) {
    LIVE.with(|l| l.set(0));
    PEAK.with(|p| p.set(0));
    let out = f();
    (out, PEAK.with(|p| p.get()).max(0) as usize)
}

/// Whether the running binary counts allocations (it installed
/// [`CountingAlloc`]); without it every peak reads 0.
pub fn counting() -> bool {
    let (_, peak) = peak_alloc(|| std::hint::black_box(vec![0u8; 4096]));
    peak >= 4096
}

/// The most a decoder may allocate for `input_len` bytes of input: a
/// constant factor of the input (decoded structures are larger than their
/// encoding, vectors double) plus a fixed allowance. A decoder that trusts a
/// declared length allocates far beyond it.
pub fn alloc_bound(input_len: usize) -> usize {
    64 * input_len + 64 * 1024
}

/// Fails the case when decoding `input_len` bytes allocated more than
/// [`alloc_bound`].
pub fn check_alloc(what: &str, input_len: usize, peak: usize) -> Result<(), TestCaseError> {
    prop_assert!(
        peak <= alloc_bound(input_len),
        "{what}: {peak} bytes allocated for {input_len} bytes of input"
    );
    Ok(())
}

/// Why a target failed: the target and proptest's report (the minimal
/// failing input after shrinking).
#[derive(Debug)]
pub struct Failure {
    /// The target's name.
    pub target: &'static str,
    /// Proptest's report.
    pub report: String,
}

/// Runs `property` on `cases` inputs drawn from `strategy`. A failing
/// input is shrunk and its seed saved in `tests/fuzz/regressions/NAME.txt`
/// (committed), which every later run replays first.
pub fn check<S>(
    name: &'static str,
    cases: u32,
    strategy: S,
    property: impl Fn(S::Value) -> Result<(), TestCaseError>,
) -> Result<(), Failure>
where
    S: Strategy,
    S::Value: Debug,
{
    let file: &'static str =
        Box::leak(format!("tests/fuzz/regressions/{name}.txt").into_boxed_str());
    let config = Config {
        cases,
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct(file))),
        max_shrink_iters: 4096,
        ..Config::default()
    };
    TestRunner::new(config)
        .run(&strategy, property)
        .map_err(|e| Failure {
            target: name,
            report: e.to_string(),
        })
}

/// One change to a valid encoding.
#[derive(Clone, Debug)]
pub enum Mutation {
    /// Flip one bit of the byte at this position.
    FlipBit(usize, u8),
    /// Overwrite the byte at this position.
    Set(usize, u8),
    /// Cut the input at this position.
    Truncate(usize),
    /// Insert bytes at this position.
    Insert(usize, Vec<u8>),
    /// Replace the byte at this position (a length, sometimes) with a
    /// varint of this value: a length field inflated past the input.
    Inflate(usize, u64),
}

/// Up to six mutations.
pub fn mutations() -> impl Strategy<Value = Vec<Mutation>> {
    let one = prop_oneof![
        3 => (any::<usize>(), 0u8..8).prop_map(|(at, bit)| Mutation::FlipBit(at, bit)),
        2 => (any::<usize>(), any::<u8>()).prop_map(|(at, v)| Mutation::Set(at, v)),
        1 => any::<usize>().prop_map(Mutation::Truncate),
        1 => (any::<usize>(), vec(any::<u8>(), 1..8)).prop_map(|(at, b)| Mutation::Insert(at, b)),
        2 => (any::<usize>(), prop_oneof![Just(u64::MAX), Just(u32::MAX as u64), 128u64..1 << 32])
            .prop_map(|(at, v)| Mutation::Inflate(at, v)),
    ];
    vec(one, 1..6)
}

/// `bytes` with `mutations` applied (positions taken modulo the length).
pub fn mutate(mut bytes: Vec<u8>, mutations: &[Mutation]) -> Vec<u8> {
    for m in mutations {
        let n = bytes.len();
        if n == 0 {
            break;
        }
        match m {
            Mutation::FlipBit(at, bit) => bytes[at % n] ^= 1 << bit,
            Mutation::Set(at, v) => bytes[at % n] = *v,
            Mutation::Truncate(at) => bytes.truncate(at % n),
            Mutation::Insert(at, b) => {
                let at = at % n;
                bytes.splice(at..at, b.iter().copied());
            }
            Mutation::Inflate(at, v) => {
                let at = at % n;
                let mut buf = unsigned_varint::encode::u64_buffer();
                let varint = unsigned_varint::encode::u64(*v, &mut buf).to_vec();
                bytes.splice(at..at + 1, varint);
            }
        }
    }
    bytes
}

/// Arbitrary bytes, up to `max` long.
pub fn any_bytes(max: usize) -> impl Strategy<Value = Vec<u8>> {
    vec(any::<u8>(), 0..max)
}

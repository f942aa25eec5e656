//! Property tests of the decoders that read bytes from outside: arbitrary
//! input never panics or allocates beyond a bound, valid encodings round
//! trip, and mutated ones are refused cleanly. Each target runs a modest
//! number of cases here (`CAIRN_FUZZ_CASES` overrides it);
//! `cargo bench --bench fuzz` runs them at scale.

mod cid;
mod harness;
mod targets;

#[global_allocator]
static ALLOC: harness::CountingAlloc = harness::CountingAlloc;

/// Cases per target when `CAIRN_FUZZ_CASES` is not set.
const DEFAULT_CASES: u32 = 1000;

fn run(name: &str) {
    assert!(
        harness::counting(),
        "the counting allocator is not installed"
    );
    let cases = std::env::var("CAIRN_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(DEFAULT_CASES);
    let (_, run) = targets::TARGETS
        .iter()
        .find(|(n, _)| *n == name)
        .unwrap_or_else(|| panic!("no fuzz target {name}"));
    if let Err(f) = run(cases) {
        panic!("{}: {}", f.target, f.report);
    }
}

macro_rules! fuzz_tests {
    ($($name:ident),* $(,)?) => {
        $(#[test] fn $name() { run(stringify!($name)); })*

        #[test]
        fn every_target_has_a_test() {
            let tested = [$(stringify!($name)),*];
            for (name, _) in targets::TARGETS {
                assert!(tested.contains(name), "{name} is not run by a test");
            }
        }
    };
}

fuzz_tests!(cid_bytes, cid_text, cid_round_trip);

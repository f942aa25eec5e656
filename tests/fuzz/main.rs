//! Property tests of the decoders that read bytes from outside: arbitrary
//! input never panics or allocates beyond a bound, valid encodings round
//! trip, and mutated ones are refused cleanly. Each target runs a modest
//! number of cases here (`CAIRN_FUZZ_CASES` overrides it);
//! `cargo bench --bench fuzz` runs them at scale.

#![allow(clippy::result_large_err)] // the crate's errors carry CIDs: see src/lib.rs

mod bitswap;
mod car;
mod cid;
mod harness;
mod ipns;
mod multipart;
mod pb;
mod range;
mod replicate;
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

fuzz_tests!(
    cid_bytes,
    cid_text,
    cid_round_trip,
    dag_pb_bytes,
    dag_pb_round_trip,
    car_bytes,
    car_round_trip,
    bitswap_bytes,
    bitswap_round_trip,
    bitswap_frames,
    range_header,
    range_span,
    replicate_messages,
    replicate_round_trip,
    multipart_bytes,
    multipart_round_trip,
    ipns_bytes,
    ipns_round_trip,
);

/// Found in an earlier exploration: a 13-byte CAR whose header declares
/// 2^32 roots made the header decoder reserve a megabyte before reading
/// one root.
#[test]
fn car_header_declaring_many_roots_reserves_nothing() {
    let mut car = vec![12u8, 0xa2, 0x65];
    car.extend_from_slice(b"roots");
    car.extend_from_slice(&[0x9a, 0xff, 0xff, 0xff, 0xff]);
    let (read, peak) = harness::peak_alloc(|| cairn::dag::car::CarReader::new(&car[..]).is_ok());
    assert!(!read);
    assert!(
        peak < 16 * 1024,
        "{peak} bytes allocated for {} bytes",
        car.len()
    );
}

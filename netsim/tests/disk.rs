//! The `disk` scenario as a test: 12 nodes keeping files at factor 3 while
//! two nodes' disks return EIO for some blocks and flip bits in others.
//! Every file keeps its factor of intact (verified) copies, no corrupt
//! block reaches a node whose disk was sound, and no block that read EIO
//! is dropped. About half a minute of wall clock in a release build.

#[test]
#[cfg_attr(
    debug_assertions,
    ignore = "needs an optimised build: cargo test --workspace --release"
)]
fn disk_faults_neither_spread_nor_lose_copies() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/scenarios/disk.toml");
    let text = std::fs::read_to_string(path).expect("disk.toml");
    let scenario = netsim::scenario::Scenario::parse(&text).expect("disk.toml parses");
    let started = std::time::Instant::now();
    let report = netsim::run(&scenario, scenario.seed, None, true).expect("the run");
    print!("{}", report.summary());
    let failures = report.failures(&scenario.expect);
    assert!(
        failures.is_empty(),
        "disk expectations missed: {failures:#?}"
    );
    let disks = report.disks.as_ref().expect("disk faults are reported");
    // The faults did happen, and the scrubs did the repairs.
    assert_eq!(disks.nodes, 2);
    assert!(disks.flipped > 0 && disks.unreadable > 0, "{disks:?}");
    assert!(disks.scrub_repaired > 0, "{disks:?}");
    assert_eq!(disks.corrupt_on_faulted, 0, "{disks:?}");
    assert!(started.elapsed() < std::time::Duration::from_secs(60));
}

//! The `smoke` scenario as a test: 50 real nodes with adds, lookups, gets,
//! link drops, crashes and departures; every expectation in the scenario
//! file must hold. Simulated time runs ten times faster than the wall
//! clock, which an unoptimised build cannot keep up with, hence `--release`
//! (the test command in the README).

#[test]
#[cfg_attr(
    debug_assertions,
    ignore = "needs an optimised build: cargo test --workspace --release"
)]
fn smoke_scenario_meets_its_expectations() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/scenarios/smoke.toml");
    let text = std::fs::read_to_string(path).expect("smoke.toml");
    let scenario = netsim::scenario::Scenario::parse(&text).expect("smoke.toml parses");
    let out = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("netsim-smoke");
    let report = netsim::run(&scenario, scenario.seed, Some(&out), true).expect("the run");
    print!("{}", report.summary());
    let failures = report.failures(&scenario.expect);
    assert!(
        failures.is_empty(),
        "smoke expectations missed: {failures:#?}"
    );
    // The run measured what it claims to.
    assert_eq!(report.files_added, 40);
    assert!(report.lookups.len() >= 190 && report.gets.len() >= 50);
    assert!(out.join("report.json").exists() && out.join("replication.svg").exists());
}

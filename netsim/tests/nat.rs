//! The `nat-smoke` scenario as a test: 24 real nodes, 60 % of them behind
//! NAT (a quarter of those symmetric), 3 relays, real time. Nodes behind
//! NAT must find out they are not reachable and stay DHT clients, and the
//! files they added must be fetched by reachable nodes (through a relay or
//! a punched hole). Real time with many nodes needs an optimised build,
//! hence `--release` as for the smoke test.

use netsim::fabric::Nat;

#[test]
#[cfg_attr(
    debug_assertions,
    ignore = "needs an optimised build: cargo test --workspace --release"
)]
fn nodes_behind_nat_are_dht_clients_and_their_files_are_fetched() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/scenarios/nat-smoke.toml");
    let text = std::fs::read_to_string(path).expect("nat-smoke.toml");
    let scenario = netsim::scenario::Scenario::parse(&text).expect("nat-smoke.toml parses");
    let out = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("netsim-nat-smoke");
    let report = netsim::run(&scenario, scenario.seed, Some(&out), true).expect("the run");
    print!("{}", report.summary());
    let failures = report.failures(&scenario.expect);
    assert!(failures.is_empty(), "expectations missed: {failures:#?}");
    let nat = report.nat.as_ref().expect("a NAT report");
    let behind = nat.cone + nat.symmetric;
    assert_eq!(behind, 14, "60 % of 24 nodes");
    assert_eq!(nat.natted_dht_clients, behind, "{nat:#?}");
    assert_eq!(nat.natted_private, behind, "AutoNAT found them: {nat:#?}");
    assert_eq!(nat.reachable_dht_servers, nat.reachable);
    assert!(nat.natted_with_relay_addrs >= behind - 1, "{nat:#?}");
    // Files added behind NAT, fetched by reachable nodes.
    let fetched: Vec<_> = report
        .gets
        .iter()
        .filter(|g| g.nat == Nat::Open && g.origin_nat != Nat::Open)
        .collect();
    assert!(fetched.len() >= 5, "only {} such gets", fetched.len());
    assert!(
        fetched.iter().all(|g| g.ok),
        "a reachable node failed to fetch a file behind NAT: {fetched:#?}"
    );
    // Every file is retrievable at the end, and a hole was punched.
    assert_eq!(report.files_retrievable, report.files_checked);
    assert!(nat.punched > 0, "{nat:#?}");
}

//! netsim: many real cairn nodes in one process, over a simulated network
//! with injected faults. The project README's "netsim" section says how to
//! run it; [`scenario`] is the scenario format, [`sim`] runs one,
//! [`fabric`] is the network, [`report`] and [`plot`] are what comes out.

pub mod fabric;
pub mod plot;
pub mod report;
pub mod rng;
pub mod scenario;
pub mod sim;

use anyhow::{Context, Result};
use std::path::Path;

/// Runs `scenario` with `seed` on a fresh runtime; writes `report.json`
/// and the plots into `out` (when given). Returns the report.
pub fn run(
    scenario: &scenario::Scenario,
    seed: u64,
    out: Option<&Path>,
    quiet: bool,
) -> Result<report::Report> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("tokio runtime")?;
    let sim = sim::Sim::new(scenario.clone(), seed, quiet);
    let report = runtime.block_on(async move { sim.run().await })?;
    // Nodes' tasks end with the runtime.
    runtime.shutdown_timeout(std::time::Duration::from_secs(5));
    if let Some(dir) = out {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let json = serde_json::to_vec_pretty(&serde_json::json!({
            "headline": report.headline(),
            "report": report,
        }))?;
        std::fs::write(dir.join("report.json"), json)?;
        for (name, svg) in plot::plots(&report)? {
            std::fs::write(dir.join(&name), svg)?;
        }
        std::fs::write(dir.join("summary.txt"), report.summary())?;
    }
    Ok(report)
}

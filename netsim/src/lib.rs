//! netsim: many real cairn nodes in one process, over a simulated network
//! with injected faults. The project README's "netsim" section says how to
//! run it; [`scenario`] is the scenario format, [`sim`] runs one,
//! [`fabric`] is the network, [`report`] and [`plot`] are what comes out.

// A run's errors carry cairn's (which carry the CID they concern, ~80
// bytes): errors are the cold path, so large `Err` variants are accepted,
// as in cairn itself.
#![allow(clippy::result_large_err)]

pub mod fabric;
pub mod plot;
pub mod report;
pub mod rng;
pub mod scenario;
pub mod sim;

use sim::SimError;
use std::path::Path;
use std::sync::{Mutex, MutexGuard};

/// Locks `m`, whether or not a thread panicked holding it: what was
/// recorded stays readable, and a run always reaches its report.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Runs `scenario` with `seed` on a fresh runtime; writes `report.json`,
/// `summary.txt` and the plots into `out` (when given). Returns the report.
pub fn run(
    scenario: &scenario::Scenario,
    seed: u64,
    out: Option<&Path>,
    quiet: bool,
) -> Result<report::Report, SimError> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(SimError::Runtime)?;
    let sim = sim::Sim::new(scenario.clone(), seed, quiet);
    let report = runtime.block_on(async move { sim.run().await })?;
    // Nodes' tasks end with the runtime.
    runtime.shutdown_timeout(std::time::Duration::from_secs(5));
    if let Some(dir) = out {
        write_output(dir, &report)?;
    }
    Ok(report)
}

/// Writes `report.json`, the plots and `summary.txt` into `dir`.
fn write_output(dir: &Path, report: &report::Report) -> Result<(), SimError> {
    let write = |path: std::path::PathBuf, bytes: &[u8]| {
        std::fs::write(&path, bytes).map_err(|source| SimError::Write { path, source })
    };
    std::fs::create_dir_all(dir).map_err(|source| SimError::Write {
        path: dir.to_path_buf(),
        source,
    })?;
    let json = serde_json::to_vec_pretty(&serde_json::json!({
        "headline": report.headline(),
        "report": report,
    }))
    .map_err(SimError::Json)?;
    write(dir.join("report.json"), &json)?;
    for (name, svg) in plot::plots(report)? {
        write(dir.join(name), svg.as_bytes())?;
    }
    write(dir.join("summary.txt"), report.summary().as_bytes())
}

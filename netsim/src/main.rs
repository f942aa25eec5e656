//! netsim: many real cairn nodes in one process.
//!
//! - `netsim run SCENARIO.toml [--seed N | --seeds 1,2,3] [--out DIR] [--quiet]`
//!   runs a scenario (see `netsim/scenarios/`): real nodes over a simulated
//!   network with latency, bandwidth caps, drops, partitions and churn;
//!   prints a summary, writes `report.json`, `summary.txt` and SVG plots to
//!   DIR (default `target/netsim/NAME-seedN`), and exits with an error when
//!   the scenario's expectations are missed. `--nodes N` changes the
//!   network's size; `--no-nat` runs a scenario with NATs as if every node
//!   were reachable (its all-reachable figures).
//! - `netsim local [NODES] [FILES_PER_NODE] [FILE_KIB] [SEED]`: N in-memory
//!   nodes without a network add and read back a seeded workload through
//!   the real import and read paths.

use anyhow::{bail, Context, Result};
use cairn::node::{AddOptions, Config, Node};
use netsim::rng::Rng;
use netsim::scenario::Scenario;
use std::io::Read;
use std::path::PathBuf;
use std::time::Instant;

/// Hundreds of nodes allocate and free from many threads at once: glibc's
/// allocator spent an eighth of the CPU of a 400-node run in `malloc` and its
/// arena locks, and kept freed memory resident.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Positional argument `i` as a number; `default` when it is absent.
fn arg(args: &[String], i: usize, default: u64) -> Result<u64> {
    match args.get(i) {
        None => Ok(default),
        Some(s) => s
            .parse()
            .with_context(|| format!("argument {i}: {s:?} is not a number")),
    }
}

/// `len` bytes drawn from `seed`.
fn seeded_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut v = vec![0u8; len];
    Rng::new(seed).fill(&mut v);
    v
}

const USAGE: &str = "usage: netsim run SCENARIO.toml [--seed N | --seeds N,N,...] [--out DIR] [--nodes N] [--no-nat] [--quiet]\n       netsim local [NODES] [FILES_PER_NODE] [FILE_KIB] [SEED]";

/// Errors end the process with their causes (no backtrace, whatever
/// RUST_BACKTRACE says) and exit status 1.
fn main() -> std::process::ExitCode {
    match real_main() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            // cairn's and netsim's errors print their source inline: a
            // cause whose text is already said is not said again.
            let mut said = String::new();
            for cause in e.chain().map(ToString::to_string) {
                if !said.contains(&cause) {
                    said = if said.is_empty() {
                        cause
                    } else {
                        format!("{said}: {cause}")
                    };
                }
            }
            eprintln!("netsim: {said}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// Sets up logging (`NETSIM_LOG`, an env-filter) and runs the command.
fn real_main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let Ok(filter) = std::env::var("NETSIM_LOG") {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
            .with_writer(std::io::stderr)
            .try_init();
    }
    match args.first().map(String::as_str) {
        Some("local") => local(&args),
        Some("run") => run(&args[1..]),
        _ => bail!("{USAGE}"),
    }
}

/// `netsim run`: the scenario with each seed, then the spread over seeds.
fn run(args: &[String]) -> Result<()> {
    let mut path = None;
    let mut seeds: Option<Vec<u64>> = None;
    let mut out: Option<PathBuf> = None;
    let mut quiet = false;
    let mut nodes: Option<usize> = None;
    let mut no_nat = false;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut value = |flag: &str| {
            it.next()
                .cloned()
                .with_context(|| format!("{flag} needs a value\n{USAGE}"))
        };
        match a.as_str() {
            "--seed" | "--seeds" => {
                let v = value(a)?;
                let list = v
                    .split(',')
                    .map(|s| {
                        s.trim()
                            .parse::<u64>()
                            .with_context(|| format!("{a}: {s:?} is not a number"))
                    })
                    .collect::<Result<Vec<_>>>()?;
                seeds = Some(list);
            }
            "--out" => out = Some(PathBuf::from(value(a)?)),
            "--nodes" => {
                let v = value(a)?;
                nodes = Some(
                    v.parse::<usize>()
                        .with_context(|| format!("--nodes: {v:?} is not a number"))?,
                );
            }
            "--quiet" => quiet = true,
            "--no-nat" => no_nat = true,
            other if other.starts_with('-') => bail!("unknown flag {other}\n{USAGE}"),
            other => {
                if path.replace(PathBuf::from(other)).is_some() {
                    bail!("one scenario at a time\n{USAGE}");
                }
            }
        }
    }
    let path = path.with_context(|| format!("which scenario?\n{USAGE}"))?;
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let mut scenario = Scenario::parse(&text).with_context(|| path.display().to_string())?;
    if let Some(n) = nodes {
        if n < 2 {
            bail!("--nodes: at least 2");
        }
        scenario.nodes = n;
    }
    if no_nat {
        scenario.nat = netsim::scenario::NatModel::default();
        scenario.name.push_str("-no-nat");
    }
    let seeds = seeds.unwrap_or_else(|| vec![scenario.seed]);
    let mut reports = Vec::new();
    let mut failed = Vec::new();
    for seed in &seeds {
        let dir = match &out {
            Some(o) if seeds.len() == 1 => o.clone(),
            Some(o) => o.join(format!("seed{seed}")),
            None => PathBuf::from("target/netsim").join(format!("{}-seed{seed}", scenario.name)),
        };
        let report = netsim::run(&scenario, *seed, Some(&dir), quiet)?;
        print!("{}", report.summary());
        println!("wrote {}", dir.display());
        for f in report.failures(&scenario.expect) {
            failed.push(format!("seed {seed}: {f}"));
        }
        reports.push(report);
    }
    if reports.len() > 1 {
        print!("{}", netsim::report::spread(&reports));
    }
    if !failed.is_empty() {
        bail!("expectations missed:\n  {}", failed.join("\n  "));
    }
    Ok(())
}

/// `netsim local`: nodes without a network add and read back files.
fn local(args: &[String]) -> Result<()> {
    let nodes = arg(args, 1, 50)? as usize;
    let files = arg(args, 2, 20)? as usize;
    let kib = arg(args, 3, 512)? as usize;
    let seed = arg(args, 4, 1)?;
    let start = Instant::now();
    // Node keys come from the seed, so a run is reproducible.
    let fleet: Vec<Node> = (0..nodes)
        .map(|n| {
            let mut key = [0u8; 32];
            key[..8].copy_from_slice(&seed.to_le_bytes());
            key[8..16].copy_from_slice(&(n as u64).to_le_bytes());
            Node::in_memory(Config::default(), key)
        })
        .collect();
    let opts = AddOptions {
        import: Config::default().import.options()?,
        ..AddOptions::default()
    };
    let mut added = Vec::with_capacity(nodes * files);
    for (n, node) in fleet.iter().enumerate() {
        for f in 0..files {
            let data = seeded_bytes(kib * 1024, seed ^ ((n * files + f) as u64) << 1);
            let entry = node.add_reader(&data[..], &opts, &mut |_| {})?;
            added.push((n, entry.cid, data));
        }
    }
    let add_secs = start.elapsed().as_secs_f64();
    let mut checked = 0;
    for (n, cid, data) in &added {
        let mut out = Vec::with_capacity(data.len());
        fleet[*n]
            .cat(&cid.to_string(), 0, None)?
            .read_to_end(&mut out)?;
        if &out != data {
            bail!("node {n}: {cid} read back different bytes");
        }
        checked += 1;
    }
    let total_mib = (nodes * files * kib) as f64 / 1024.0;
    println!(
        "local: {nodes} nodes, {checked} files ({total_mib:.0} MiB) added in {add_secs:.2}s and all read back intact in {:.2}s total",
        start.elapsed().as_secs_f64()
    );
    Ok(())
}

//! netsim: many real cairn nodes in one process.
//!
//! Today the nodes have no network yet (that arrives with the daemon), so
//! the one scenario is `local`: N in-memory nodes each add a seeded workload
//! of files with cairn's real import path, then read every file back
//! through the real reader and check it, reporting throughput and memory.
//!
//! Run: `cargo run -p netsim --release -- local [NODES] [FILES_PER_NODE] [FILE_KIB] [SEED]`

use anyhow::{bail, Context, Result};
use cairn::node::{AddOptions, Config, Node};
use std::io::Read;
use std::time::Instant;

fn arg(args: &[String], i: usize, default: u64) -> Result<u64> {
    match args.get(i) {
        None => Ok(default),
        Some(s) => s
            .parse()
            .with_context(|| format!("argument {i}: {s:?} is not a number")),
    }
}

fn seeded_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("local") => {}
        _ => bail!("usage: netsim local [NODES] [FILES_PER_NODE] [FILE_KIB] [SEED]"),
    }
    let nodes = arg(&args, 1, 50)? as usize;
    let files = arg(&args, 2, 20)? as usize;
    let kib = arg(&args, 3, 512)? as usize;
    let seed = arg(&args, 4, 1)?;
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
        import: Config::default()
            .import
            .options()
            .map_err(anyhow::Error::msg)?,
        pin: true,
        only_hash: false,
        hidden: false,
        wrap: false,
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

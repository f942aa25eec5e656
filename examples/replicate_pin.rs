//! Three embedded nodes on 127.0.0.1: node A adds a file and pins it with
//! replication factor 3; the replicator places copies on B and C, which
//! then hold the whole file locally, pinned.
//!
//! `cargo run --release --example replicate_pin`

use anyhow::{bail, ensure, Context, Result};
use cairn::daemon::{Daemon, DaemonOptions};
use cairn::node::{AddOptions, Node};
use std::io::Read;
use std::time::{Duration, Instant};

#[tokio::main]
async fn main() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let data: Vec<u8> = (0..2_000_000u32).map(|i| (i % 253) as u8).collect();

    let a = Daemon::start(Node::open(&dir.path().join("a"))?, DaemonOptions::default()).await?;
    let mut options = DaemonOptions::default();
    options.net.bootstrap = vec![a.dial_addr().context("A listens nowhere")?.to_string()];
    let b = Daemon::start(Node::open(&dir.path().join("b"))?, options.clone()).await?;
    let c = Daemon::start(Node::open(&dir.path().join("c"))?, options).await?;

    let node = a.node().clone();
    let bytes = data.clone();
    let cid = tokio::task::spawn_blocking(move || {
        let options = AddOptions::from_config(node.config())?;
        anyhow::Ok(node.add_reader(&bytes[..], &options, &mut |_| {})?.cid)
    })
    .await??;
    a.online().replicator().pin(cid, Some(3)).await?;
    println!("A pinned {cid} with replication factor 3");

    // Within the 30 s that tests/examples.rs gives the whole program.
    let deadline = Instant::now() + Duration::from_secs(25);
    for holder in [&b, &c] {
        while holder.online().pinned(&cid)?.is_none() {
            if Instant::now() > deadline {
                let peers = a.online().net().swarm.peers().await.unwrap_or_default();
                bail!(
                    "{} holds no copy of {cid} after 25 s (its bootstrap failures: {:?}; \
                     A is connected to {peers:?})",
                    holder.peer_id(),
                    holder.bootstrap_failures(),
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        // The copy is local: read it without the network and compare.
        let mut copy = Vec::new();
        holder
            .node()
            .cat(&cid.to_string(), 0, None)?
            .read_to_end(&mut copy)?;
        ensure!(copy == data, "{} holds other bytes", holder.peer_id());
        println!("{} holds a pinned copy", holder.peer_id());
    }

    for daemon in [c, b, a] {
        daemon.shutdown().await?;
    }
    Ok(())
}

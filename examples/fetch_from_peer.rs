//! Two embedded nodes on 127.0.0.1: node A adds a file, node B (which knows
//! only A's address) fetches it by CID over Bitswap and checks the bytes.
//!
//! `cargo run --release --example fetch_from_peer`

use anyhow::{ensure, Context, Result};
use cairn::daemon::{Daemon, DaemonOptions};
use cairn::node::{AddOptions, Node};
use std::io::Read;

#[tokio::main]
async fn main() -> Result<()> {
    let dir = tempfile::tempdir()?;
    // 3 MB: several blocks, so B walks a DAG, not a single block.
    let data: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();

    let a = Daemon::start(Node::open(&dir.path().join("a"))?, DaemonOptions::default()).await?;
    let node = a.node().clone();
    let bytes = data.clone();
    let cid = tokio::task::spawn_blocking(move || {
        let options = AddOptions::from_config(node.config())?;
        anyhow::Ok(node.add_reader(&bytes[..], &options, &mut |_| {})?.cid)
    })
    .await??;
    println!("A ({}) added {cid}", a.peer_id());

    let mut options = DaemonOptions::default();
    let a_addr = a.dial_addr().context("A listens on no address")?;
    options.net.bootstrap = vec![a_addr.to_string()];
    let b = Daemon::start(Node::open(&dir.path().join("b"))?, options).await?;
    // The reader fetches blocks as it reaches them: read it on a blocking thread.
    let (mut reader, _) = b.online().cat(&cid.to_string(), 0, None).await?;
    let fetched = tokio::task::spawn_blocking(move || {
        let mut out = Vec::new();
        reader.read_to_end(&mut out).map(|_| out)
    })
    .await??;
    ensure!(fetched == data, "B read other bytes than A added");
    println!(
        "B ({}) fetched {} bytes of {cid} from A",
        b.peer_id(),
        fetched.len()
    );

    b.shutdown().await?;
    a.shutdown().await?;
    Ok(())
}

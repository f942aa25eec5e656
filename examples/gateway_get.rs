//! An embedded node serving the HTTP gateway on 127.0.0.1: adds a file,
//! then GETs `/ipfs/CID` from the gateway and checks the bytes.
//!
//! `cargo run --release --example gateway_get`

use anyhow::{ensure, Context, Result};
use cairn::daemon::{Daemon, DaemonOptions, GatewayOptions};
use cairn::node::{AddOptions, Node};
use std::io::Read;

#[tokio::main]
async fn main() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let data = b"<h1>served by an embedded cairn gateway</h1>\n".repeat(1000);

    let options = DaemonOptions {
        gateway: Some(GatewayOptions::default()),
        ..DaemonOptions::default()
    };
    let daemon = Daemon::start(Node::open(&dir.path().join("repo"))?, options).await?;
    let node = daemon.node().clone();
    let bytes = data.clone();
    let cid = tokio::task::spawn_blocking(move || {
        let options = AddOptions::from_config(node.config())?;
        anyhow::Ok(node.add_reader(&bytes[..], &options, &mut |_| {})?.cid)
    })
    .await??;

    let gateway = daemon.gateway_addr().context("no gateway")?;
    let url = format!("http://{gateway}/ipfs/{cid}");
    // ureq blocks: call it from a blocking thread.
    let get = url.clone();
    let body = tokio::task::spawn_blocking(move || {
        let mut response = ureq::get(&get).call()?;
        let mut body = Vec::new();
        response.body_mut().as_reader().read_to_end(&mut body)?;
        anyhow::Ok(body)
    })
    .await??;
    ensure!(body == data, "the gateway served other bytes");
    println!("GET {url}: {} bytes, as added", body.len());

    daemon.shutdown().await?;
    Ok(())
}

//! Embeds a cairn node without a network: opens a repo in a temporary
//! directory, adds a file, prints its CID and reads the bytes back.
//!
//! `cargo run --release --example add_file`

use anyhow::{ensure, Result};
use cairn::node::{AddOptions, Node};
use std::io::Read;

fn main() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let file = dir.path().join("hello.txt");
    std::fs::write(&file, "hello from an embedded cairn node\n")?;

    let node = Node::open(&dir.path().join("repo"))?;
    let options = AddOptions::from_config(node.config())?;
    let added = node.add_path(&file, false, &options, &mut |_| {}, &mut |_| {})?;
    println!("added {} {}", added.cid, added.name);

    let mut back = Vec::new();
    node.cat(&added.cid.to_string(), 0, None)?
        .read_to_end(&mut back)?;
    ensure!(back == std::fs::read(&file)?, "read back other bytes");
    node.flush()?;
    Ok(())
}

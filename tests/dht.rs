//! Three nodes in one process on loopback, in a line A — B — C: A announces
//! a block on the DHT, C finds A through B knowing only the CID, then
//! fetches the block from A over Bitswap.
#![allow(clippy::result_large_err)]

mod common;

use cairn::block::{Block, CidFormat, HashAlg, RAW};
use cairn::net::bitswap::fetch::FetchOptions;
use cairn::net::swarm::NetConfig;
use cairn::net::Network;
use cairn::store::{MemoryStore, Store};
use std::sync::Arc;
use std::time::Duration;

async fn node(seed: u8) -> (Network, Arc<MemoryStore>) {
    let store = Arc::new(MemoryStore::new());
    let config = NetConfig {
        dht_server: Some(true),
        ..NetConfig::default()
    };
    let net = Network::start([seed; 32], store.clone(), &config)
        .await
        .unwrap();
    (net, store)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn providers_are_found_through_the_dht() {
    let (a, store_a) = node(1).await;
    let (b, _) = node(2).await;
    let (c, store_c) = node(3).await;
    let b_addr = b.swarm.listen_addrs().await.unwrap()[0].clone();
    a.swarm.dial(b_addr.clone()).await.unwrap();
    c.swarm.dial(b_addr).await.unwrap();

    let block = Block::new(
        CidFormat {
            version: 1,
            hash: HashAlg::Blake3,
        },
        RAW,
        b"found through the DHT".to_vec(),
    );
    store_a.put(block.clone()).unwrap();
    tokio::time::timeout(Duration::from_secs(20), a.swarm.provide(*block.cid()))
        .await
        .expect("provide in time")
        .unwrap();

    let providers = common::providers_of(&c, *block.cid()).await;
    assert_eq!(providers, vec![a.peer_id]);

    let got = c
        .bitswap
        .fetch(
            &[*block.cid()],
            &providers,
            FetchOptions {
                stall_timeout: Duration::from_secs(20),
                ..FetchOptions::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(got, vec![block]);

    // A whole file, found by its root CID alone and fetched DAG-wide.
    let data: Vec<u8> = (0..3_000_000u32).map(|i| (i * 31 % 251) as u8).collect();
    let opts = cairn::dag::builder::ImportOptions {
        chunker: cairn::dag::chunker::ChunkerSpec::Fixed { size: 32768 },
        max_links: 8,
        ..Default::default()
    };
    let root = cairn::dag::builder::build_file(&data[..], &opts, &mut |b| {
        store_a.put(b)?;
        Ok(())
    })
    .unwrap()
    .cid;
    a.swarm.provide(root).await.unwrap();
    let providers = common::providers_of(&c, root).await;
    let mut last = Default::default();
    let stats = c
        .bitswap
        .fetch_dag(root, &providers, FetchOptions::default(), &mut |s| last = s)
        .await
        .unwrap();
    assert_eq!(stats, last);
    assert!(stats.blocks > 92, "{stats:?}");
    let mut out = Vec::new();
    use std::io::Read;
    cairn::dag::reader::FileReader::new(store_c, root, 0, None, Default::default())
        .unwrap()
        .read_to_end(&mut out)
        .unwrap();
    assert_eq!(out, data);
}

//! Three nodes in one process on loopback, in a line A — B — C: A announces
//! a block on the DHT, C finds A through B knowing only the CID, then
//! fetches the block from A over Bitswap.
#![allow(clippy::result_large_err)]

use cairn::block::{Block, CidFormat, HashAlg, RAW};
use cairn::net::bitswap::session::SessionConfig;
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
    let (c, _) = node(3).await;
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

    let providers = tokio::time::timeout(
        Duration::from_secs(20),
        c.swarm.find_providers(*block.cid(), 5),
    )
    .await
    .expect("findprovs in time")
    .unwrap();
    assert_eq!(providers, vec![a.peer_id]);

    let got = c
        .bitswap
        .fetch(
            &[*block.cid()],
            &providers,
            SessionConfig::default(),
            Duration::from_secs(20),
        )
        .await
        .unwrap();
    assert_eq!(got, vec![block]);
}

//! The provider announces every stored block (Kubo's `all` strategy) in a
//! paced sweep, and another node then finds this one as provider of any of
//! them; `roots` announces only pinned roots.
#![allow(clippy::result_large_err)]

use cairn::block::{Block, CidFormat, HashAlg, RAW};
use cairn::net::swarm::NetConfig;
use cairn::net::Network;
use cairn::node::config::{ProvideSettings, ProvideStrategy};
use cairn::node::provide::Provider;
use cairn::store::{MemoryStore, PinKind, Store};
use std::sync::Arc;
use std::time::Duration;

async fn node(seed: u8, store: Arc<MemoryStore>) -> Network {
    Network::start([seed; 32], store, &NetConfig::default())
        .await
        .unwrap()
}

fn block(i: u32) -> Block {
    Block::new(
        CidFormat {
            version: 1,
            hash: HashAlg::Sha2_256,
        },
        RAW,
        format!("provided block {i}").into_bytes(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sweep_announces_every_block() {
    sweep(2000).await;
}

/// The scale: 100,000 blocks in one sweep, timed (`cargo test
/// --release --test provide -- --ignored --nocapture`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore]
async fn a_sweep_of_100_000_blocks() {
    sweep(100_000).await;
}

async fn sweep(n: u32) {
    let store_a = Arc::new(MemoryStore::new());
    let blocks: Vec<Block> = (0..n).map(block).collect();
    store_a.put_many(&mut blocks.clone().into_iter()).unwrap();
    store_a.pin(blocks[7].cid(), PinKind::Direct).unwrap();
    let a = node(21, store_a.clone()).await;
    let b = node(22, Arc::new(MemoryStore::new())).await;
    let c = node(23, Arc::new(MemoryStore::new())).await;
    let b_addr = b.swarm.listen_addrs().await.unwrap()[0].clone();
    a.swarm.dial(b_addr.clone()).await.unwrap();
    c.swarm.dial(b_addr).await.unwrap();

    let settings = ProvideSettings {
        strategy: ProvideStrategy::All,
        concurrency: 32,
        ..ProvideSettings::default()
    };
    let provider = Provider::spawn(settings, store_a.clone(), a.swarm.clone());
    let start = std::time::Instant::now();
    let keys = tokio::time::timeout(Duration::from_secs(3600), provider.reprovide())
        .await
        .expect("the sweep ends")
        .unwrap();
    let took = start.elapsed();
    assert_eq!(keys, n as u64);
    let done = provider
        .stats
        .provided
        .load(std::sync::atomic::Ordering::Relaxed);
    assert_eq!(done, n as u64, "every announcement reached a peer");
    println!(
        "sweep of {n} keys: {:.1} s ({:.0} keys/s)",
        took.as_secs_f64(),
        n as f64 / took.as_secs_f64()
    );
    // The sweep is recorded in the repo, so a restart resumes the schedule.
    assert!(store_a.meta_get("provide.last_sweep").unwrap().is_some());
    for i in (0..n as usize).step_by(n as usize / 20) {
        let found = c.swarm.find_providers(*blocks[i].cid(), 1).await.unwrap();
        assert_eq!(found, vec![a.peer_id], "block {i}");
    }

    // Roots only: the sweep covers the one pin.
    let roots = Provider::spawn(
        ProvideSettings {
            strategy: ProvideStrategy::Roots,
            ..ProvideSettings::default()
        },
        store_a.clone(),
        a.swarm.clone(),
    );
    assert_eq!(roots.reprovide().await, Some(1));
}

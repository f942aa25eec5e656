//! The provider announces every stored block (Kubo's `all` strategy) in a
//! paced sweep, and another node then finds this one as provider of any of
//! them; `roots` announces only pinned roots.
#![allow(clippy::result_large_err)]

mod common;

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

/// A DAG of many small blocks in `store`; its root and every CID in it.
fn small_file(store: &MemoryStore, seed: u8) -> (cairn::block::Cid, Vec<cairn::block::Cid>) {
    use cairn::dag::builder::{build_file, ImportOptions};
    let data = common::random_bytes(40_000, seed as u64);
    let opts = ImportOptions {
        chunker: cairn::dag::chunker::ChunkerSpec::Fixed { size: 2048 },
        max_links: 8,
        ..ImportOptions::default()
    };
    let mut cids = Vec::new();
    let root = build_file(&data[..], &opts, &mut |b| {
        cids.push(*b.cid());
        store.put(b)?;
        Ok(())
    })
    .unwrap()
    .cid;
    (root, cids)
}

/// New content is announced at once as the strategy says: `all`, every
/// block of pinned and unpinned content; `pinned`, every block of a pin
/// and nothing of unpinned content; `roots`, the pin's root alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_content_is_announced_as_the_strategy_says() {
    let b = node(41, Arc::new(MemoryStore::new())).await;
    let c = node(42, Arc::new(MemoryStore::new())).await;
    let b_addr = b.swarm.listen_addrs().await.unwrap()[0].clone();
    c.swarm.dial(b_addr.clone()).await.unwrap();
    for (seed, strategy) in [
        (43u8, ProvideStrategy::All),
        (44, ProvideStrategy::Pinned),
        (45, ProvideStrategy::Roots),
    ] {
        let store = Arc::new(MemoryStore::new());
        let (pinned, pinned_cids) = small_file(&store, seed);
        let (loose, loose_cids) = small_file(&store, seed.wrapping_add(100));
        assert!(pinned_cids.len() > 20);
        store.pin(&pinned, PinKind::Recursive).unwrap();
        let a = node(seed, store.clone()).await;
        a.swarm.dial(b_addr.clone()).await.unwrap();
        let provider = Provider::spawn(
            ProvideSettings {
                strategy,
                ..ProvideSettings::default()
            },
            store.clone(),
            a.swarm.clone(),
        );
        provider
            .announce_dag(pinned, Some(PinKind::Recursive))
            .await;
        provider.announce_dag(loose, None).await;
        let (announced, quiet): (Vec<_>, Vec<_>) = match strategy {
            ProvideStrategy::All => (
                pinned_cids.iter().chain(&loose_cids).copied().collect(),
                vec![],
            ),
            ProvideStrategy::Pinned => (pinned_cids.clone(), loose_cids.clone()),
            ProvideStrategy::Roots => (
                vec![pinned],
                pinned_cids
                    .iter()
                    .chain(&loose_cids)
                    .filter(|c| **c != pinned)
                    .copied()
                    .collect(),
            ),
        };
        let provided = || {
            provider
                .stats
                .provided
                .load(std::sync::atomic::Ordering::Relaxed)
        };
        let start = std::time::Instant::now();
        while provided() < announced.len() as u64 {
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "{strategy:?}: {} of {} announced",
                provided(),
                announced.len()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(provided(), announced.len() as u64, "{strategy:?}");
        for cid in announced.iter().step_by(7).chain([&announced[0]]) {
            let found = c.swarm.find_providers(*cid, 1).await.unwrap();
            assert_eq!(found, vec![a.peer_id], "{strategy:?}: {cid}");
        }
        for cid in quiet.iter().step_by(7) {
            let found = c.swarm.find_providers(*cid, 1).await.unwrap();
            assert!(!found.contains(&a.peer_id), "{strategy:?}: {cid}");
        }
    }
}

/// A sweep that reaches no peer (a node alone) is not recorded as done, so
/// it is tried again soon instead of a whole interval later.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sweep_that_reaches_nobody_does_not_count() {
    let store = Arc::new(MemoryStore::new());
    let blocks: Vec<Block> = (0..5).map(block).collect();
    store.put_many(&mut blocks.into_iter()).unwrap();
    let a = node(51, store.clone()).await;
    let provider = Provider::spawn(ProvideSettings::default(), store.clone(), a.swarm.clone());
    assert_eq!(provider.reprovide().await, Some(5));
    let stats = &provider.stats;
    assert_eq!(stats.provided.load(std::sync::atomic::Ordering::Relaxed), 0);
    assert_eq!(stats.failed.load(std::sync::atomic::Ordering::Relaxed), 5);
    assert_eq!(stats.sweeps.load(std::sync::atomic::Ordering::Relaxed), 0);
    assert!(store.meta_get("provide.last_sweep").unwrap().is_none());
}

/// Blocks that are gone (garbage-collected) are no longer answered for:
/// the provider withdraws what the strategy does not cover any more.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removed_blocks_are_withdrawn() {
    let store = Arc::new(MemoryStore::new());
    let blocks: Vec<Block> = (0..10).map(block).collect();
    store.put_many(&mut blocks.clone().into_iter()).unwrap();
    let a = node(61, store.clone()).await;
    let b = node(62, Arc::new(MemoryStore::new())).await;
    a.swarm
        .dial(b.swarm.listen_addrs().await.unwrap()[0].clone())
        .await
        .unwrap();
    let provider = Provider::spawn(ProvideSettings::default(), store.clone(), a.swarm.clone());
    assert_eq!(provider.reprovide().await, Some(10));
    assert_eq!(a.swarm.provided_keys().await.unwrap().len(), 10);
    for b in &blocks[..4] {
        assert!(store.remove(b.cid().hash()).unwrap());
    }
    provider.withdraw_stale().await;
    let start = std::time::Instant::now();
    loop {
        let keys = a.swarm.provided_keys().await.unwrap();
        if keys.len() == 6 {
            for b in &blocks[4..] {
                assert!(keys.contains(&b.cid().hash().to_bytes()));
            }
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "{} keys",
            keys.len()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

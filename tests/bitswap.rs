//! Two nodes in one process, on loopback TCP with Noise and Yamux: a file
//! added on one is fetched block by block over Bitswap by the other, level by
//! level down its DAG, verified and byte-identical.
#![allow(clippy::result_large_err)]

mod common;

use cairn::block::Cid;
use cairn::dag::builder::{build_file, ImportOptions};
use cairn::dag::reader::{FileReader, ReadOptions};
use cairn::dag::walk::links_of;
use cairn::net::bitswap::fetch::FetchOptions;
use cairn::net::swarm::NetConfig;
use cairn::net::Network;
use cairn::store::{MemoryStore, Store};
use std::io::Read;
use std::sync::Arc;
use std::time::Duration;

/// `data` imported into a new memory store; the store and the root.
fn stored_file(data: &[u8], opts: &ImportOptions) -> (Arc<MemoryStore>, Cid) {
    let store = Arc::new(MemoryStore::new());
    let root = build_file(data, opts, &mut |b| {
        store.put(b)?;
        Ok(())
    })
    .unwrap()
    .cid;
    (store, root)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_moves_between_two_nodes() {
    let data = common::random_bytes(5 * 1024 * 1024 + 123, 77);
    let opts = ImportOptions {
        chunker: cairn::dag::chunker::ChunkerSpec::Fixed { size: 65536 },
        max_links: 16,
        ..ImportOptions::default()
    };
    let (store_a, root) = stored_file(&data, &opts);

    let config = NetConfig::default();
    let a = Network::start([1; 32], store_a.clone(), &config)
        .await
        .unwrap();
    let store_b = Arc::new(MemoryStore::new());
    let b = Network::start([2; 32], store_b.clone(), &config)
        .await
        .unwrap();
    let addr = a.swarm.listen_addrs().await.unwrap()[0].clone();
    assert!(
        addr.to_string().starts_with("/ip4/127.0.0.1/tcp/"),
        "{addr}"
    );
    let peer = b.swarm.dial(addr).await.unwrap();
    assert_eq!(peer, a.peer_id);

    // Walk the DAG level by level, each level one Bitswap session.
    let mut level = vec![root];
    let mut fetched = 0;
    while !level.is_empty() {
        let blocks = b
            .bitswap
            .fetch(
                &level,
                &[peer],
                FetchOptions {
                    stall_timeout: Duration::from_secs(30),
                    ..FetchOptions::default()
                },
            )
            .await
            .unwrap();
        fetched += blocks.len();
        level = blocks.iter().flat_map(|b| links_of(b).unwrap()).collect();
    }
    assert!(fetched > 80, "{fetched} blocks");
    let mut out = Vec::new();
    FileReader::new(store_b, root, 0, None, ReadOptions::default())
        .unwrap()
        .read_to_end(&mut out)
        .unwrap();
    assert_eq!(out, data);
}

/// The same exchange over QUIC (the daemon listens on TCP and QUIC).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocks_move_over_quic() {
    let data = common::random_bytes(1024 * 1024 + 7, 78);
    let (store_a, root) = stored_file(&data, &ImportOptions::default());
    let config = NetConfig {
        listen: vec!["/ip4/127.0.0.1/udp/0/quic-v1".parse().unwrap()],
        ..NetConfig::default()
    };
    let a = Network::start([3; 32], store_a, &config).await.unwrap();
    let store_b = Arc::new(MemoryStore::new());
    let b = Network::start([4; 32], store_b.clone(), &config)
        .await
        .unwrap();
    let addr = a.swarm.listen_addrs().await.unwrap()[0].clone();
    assert!(addr.to_string().contains("/quic-v1"), "{addr}");
    assert_eq!(b.swarm.dial(addr).await.unwrap(), a.peer_id);
    b.bitswap
        .fetch_dag(root, &[a.peer_id], Default::default(), &mut |_| {})
        .await
        .unwrap();
    let mut out = Vec::new();
    FileReader::new(store_b, root, 0, None, ReadOptions::default())
        .unwrap()
        .read_to_end(&mut out)
        .unwrap();
    assert_eq!(out, data);
}

/// Bitswap streams do not hold connections open for good: once a fetch is
/// over and nothing is sent for the idle timeout, the streams close and the
/// connection idles out (a node that once asked every peer it met kept all
/// those connections forever).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_idle_out_after_a_fetch() {
    let data = common::random_bytes(300 * 1024, 79);
    let (store_a, root) = stored_file(&data, &ImportOptions::default());
    let config = NetConfig {
        listen: vec!["/ip4/127.0.0.1/tcp/0".parse().unwrap()],
        idle_timeout: Duration::from_secs(1),
        ..NetConfig::default()
    };
    let a = Network::start([5; 32], store_a, &config).await.unwrap();
    let b = Network::start([6; 32], Arc::new(MemoryStore::new()), &config)
        .await
        .unwrap();
    let addr = a.swarm.listen_addrs().await.unwrap()[0].clone();
    assert_eq!(b.swarm.dial(addr).await.unwrap(), a.peer_id);
    b.bitswap
        .fetch_dag(root, &[a.peer_id], Default::default(), &mut |_| {})
        .await
        .unwrap();
    assert_eq!(b.swarm.peers().await.unwrap(), vec![a.peer_id]);
    // Writers close after 1 s without traffic, the connection 1 s later.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while !b.swarm.peers().await.unwrap().is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "the connection stayed open"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(a.swarm.peers().await.unwrap().is_empty());
}

/// A peer that restarts in the middle of a fetch is not sent, once back,
/// the blocks its old self had asked for: wants end with the connection
/// (the restarted node, which never asked for them, would take them for
/// forgeries and ban the provider).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_peer_is_not_sent_what_its_old_self_wanted() {
    let data = common::random_bytes(96 << 20, 79);
    let (store_a, root) = stored_file(&data, &ImportOptions::default());
    let later = cairn::block::Block::new(
        cairn::block::CidFormat {
            version: 1,
            hash: cairn::block::HashAlg::Blake3,
        },
        cairn::block::RAW,
        b"asked for after the restart".to_vec(),
    );
    store_a.put(later.clone()).unwrap();
    let config = NetConfig::default();
    let a = Network::start([20; 32], store_a, &config).await.unwrap();
    let addr = a.swarm.listen_addrs().await.unwrap()[0].clone();

    let store_b = Arc::new(MemoryStore::new());
    let b = Network::start([21; 32], store_b.clone(), &config)
        .await
        .unwrap();
    b.swarm.dial(addr.clone()).await.unwrap();
    let bitswap = b.bitswap.clone();
    let a_id = a.peer_id;
    let fetch = tokio::spawn(async move {
        bitswap
            .fetch_dag(root, &[a_id], Default::default(), &mut |_| {})
            .await
    });
    // Stop it with the transfer under way.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while store_b.stat().unwrap().blocks < 8 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the fetch never started"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    b.swarm.shutdown();
    fetch.abort();
    drop(b);
    tokio::time::sleep(Duration::from_millis(300)).await;

    // The same identity again, with an empty store.
    let b = Network::start([21; 32], Arc::new(MemoryStore::new()), &config)
        .await
        .unwrap();
    b.swarm.dial(addr).await.unwrap();
    let got = b
        .bitswap
        .fetch(
            &[*later.cid()],
            &[a.peer_id],
            FetchOptions {
                stall_timeout: Duration::from_secs(10),
                ..FetchOptions::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(got, vec![later]);
    // Anything stale would arrive within the provider's write retries.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        b.swarm.peers().await.unwrap().contains(&a.peer_id),
        "the restarted node banned its provider"
    );
}

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

/// The whole file under `root`, read from `store`.
fn read_file(store: Arc<MemoryStore>, root: Cid) -> Vec<u8> {
    let mut out = Vec::new();
    FileReader::new(store, root, 0, None, ReadOptions::default())
        .unwrap()
        .read_to_end(&mut out)
        .unwrap();
    out
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
    assert_eq!(read_file(store_b, root), data);
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
    assert_eq!(read_file(store_b, root), data);
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
    let got = common::fetch_blocks(&b, &[*later.cid()], a.peer_id).await;
    assert_eq!(got, vec![later]);
    // Anything stale would arrive within the provider's write retries.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        b.swarm.peers().await.unwrap().contains(&a.peer_id),
        "the restarted node banned its provider"
    );
}

/// A peer that speaks only an older Bitswap (`version`), written by hand on
/// a bare libp2p swarm: it answers each want with the block, on a stream
/// of its own, as go-bitswap did. Returns its address and peer id; it runs
/// until the test's runtime ends.
async fn old_bitswap_peer(
    store: Arc<MemoryStore>,
    version: cairn::net::bitswap::message::Version,
    proto: &'static str,
) -> (libp2p::Multiaddr, libp2p::PeerId) {
    use cairn::net::bitswap::message::{frame, Message};
    use futures::{AsyncReadExt, AsyncWriteExt, StreamExt};
    let mut swarm = libp2p::SwarmBuilder::with_new_identity()
        .with_tokio()
        .with_tcp(
            libp2p::tcp::Config::default(),
            libp2p::noise::Config::new,
            cairn::net::swarm::yamux_config,
        )
        .unwrap()
        .with_behaviour(|_| libp2p_stream::Behaviour::new())
        .unwrap()
        .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(30)))
        .build();
    swarm
        .listen_on("/ip4/127.0.0.1/tcp/0".parse().unwrap())
        .unwrap();
    let addr = loop {
        if let libp2p::swarm::SwarmEvent::NewListenAddr { address, .. } =
            swarm.select_next_some().await
        {
            break address;
        }
    };
    let peer = *swarm.local_peer_id();
    let mut control = swarm.behaviour().new_control();
    let mut incoming = control.accept(libp2p::StreamProtocol::new(proto)).unwrap();
    tokio::spawn(async move {
        loop {
            swarm.select_next_some().await;
        }
    });
    tokio::spawn(async move {
        while let Some((from, mut stream)) = incoming.next().await {
            let store = Arc::clone(&store);
            let mut control = control.clone();
            tokio::spawn(async move {
                let mut out: Option<libp2p::Stream> = None;
                loop {
                    // Varint length, then the message.
                    let mut len = 0usize;
                    for i in 0..5 {
                        let mut b = [0u8; 1];
                        if stream.read_exact(&mut b).await.is_err() {
                            return;
                        }
                        len |= ((b[0] & 0x7f) as usize) << (7 * i);
                        if b[0] & 0x80 == 0 {
                            break;
                        }
                    }
                    let mut buf = vec![0u8; len];
                    if stream.read_exact(&mut buf).await.is_err() {
                        return;
                    }
                    let msg = Message::decode(&buf).unwrap();
                    let blocks: Vec<_> = msg
                        .wantlist
                        .iter()
                        .filter(|w| !w.cancel)
                        .filter_map(|w| store.get(&w.cid).unwrap())
                        .collect();
                    if blocks.is_empty() {
                        continue;
                    }
                    if out.is_none() {
                        out = Some(
                            control
                                .open_stream(from, libp2p::StreamProtocol::new(proto))
                                .await
                                .unwrap(),
                        );
                    }
                    let s = out.as_mut().unwrap();
                    for chunk in blocks.chunks(8) {
                        let reply = Message {
                            blocks: chunk.to_vec(),
                            ..Message::default()
                        };
                        s.write_all(&frame(&reply, version).unwrap()).await.unwrap();
                    }
                    s.flush().await.unwrap();
                }
            });
        }
    });
    (addr, peer)
}

/// cairn fetches from peers that speak only Bitswap 1.1.0 or only 1.0.0:
/// its writer falls back from 1.2.0, and blocks arrive in the old formats
/// (1.0.0: bare data, CIDv0).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn older_bitswap_peers_serve_cairn() {
    use cairn::net::bitswap::message::Version;
    let data = common::random_bytes(700 * 1024 + 3, 80);
    for (version, proto) in [
        (Version::V1_1, "/ipfs/bitswap/1.1.0"),
        (Version::V1_0, "/ipfs/bitswap/1.0.0"),
    ] {
        // Kubo's CIDv0 DAG: expressible in 1.0.0.
        let opts = ImportOptions {
            chunker: cairn::dag::chunker::ChunkerSpec::Fixed { size: 65536 },
            ..ImportOptions::kubo()
        };
        let (store_old, root) = stored_file(&data, &opts);
        assert_eq!(root.version(), cid::Version::V0);
        let (addr, old) = old_bitswap_peer(store_old, version, proto).await;
        let store_b = Arc::new(MemoryStore::new());
        let b = Network::start(
            [30 + version as u8; 32],
            store_b.clone(),
            &NetConfig::default(),
        )
        .await
        .unwrap();
        assert_eq!(b.swarm.dial(addr).await.unwrap(), old);
        let stats = tokio::time::timeout(
            Duration::from_secs(30),
            b.bitswap.fetch_dag(
                root,
                &[old],
                FetchOptions {
                    stall_timeout: Duration::from_secs(10),
                    ..FetchOptions::default()
                },
                &mut |_| {},
            ),
        )
        .await
        .expect("in time")
        .unwrap_or_else(|e| panic!("{proto}: {e}"));
        assert!(stats.blocks > 10, "{proto}: {stats:?}");
        assert!(read_file(store_b, root) == data, "{proto}: different bytes");
    }
}

/// Three providers of one file: the blocks come from more than one of
/// them, and when one stops mid-transfer the others finish the file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fetch_spreads_over_providers_and_survives_losing_one() {
    let data = common::random_bytes(24 * 1024 * 1024 + 5, 81);
    let opts = ImportOptions {
        chunker: cairn::dag::chunker::ChunkerSpec::Fixed { size: 65536 },
        ..ImportOptions::default()
    };
    let config = NetConfig::default();
    let mut providers = Vec::new();
    for seed in 40..43u8 {
        let (store, root) = stored_file(&data, &opts);
        let net = Network::start([seed; 32], store, &config).await.unwrap();
        providers.push((net, root));
    }
    let root = providers[0].1;
    let store_r = Arc::new(MemoryStore::new());
    let r = Network::start([44; 32], store_r.clone(), &config)
        .await
        .unwrap();
    for (p, _) in &providers {
        r.swarm
            .dial(p.swarm.listen_addrs().await.unwrap()[0].clone())
            .await
            .unwrap();
    }
    let ids: Vec<libp2p::PeerId> = providers.iter().map(|(p, _)| p.peer_id).collect();
    let session = r
        .bitswap
        .session(
            Some(root),
            FetchOptions {
                stall_timeout: Duration::from_secs(20),
                ..FetchOptions::default()
            },
        )
        .await
        .unwrap();
    session.add_peers(ids).await.unwrap();
    let progress = Arc::clone(session.progress());
    let fetch = {
        let bitswap = r.bitswap.clone();
        let session = session.clone();
        tokio::spawn(async move { bitswap.fetch_dag_in(&session, root, &mut |_| {}).await })
    };
    // Stop one provider once a sixth of the file has arrived.
    let start = std::time::Instant::now();
    while progress.bytes.load(std::sync::atomic::Ordering::Relaxed) < data.len() as u64 / 6 {
        assert!(start.elapsed() < Duration::from_secs(30), "no progress");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    // The busiest provider goes, with blocks of ours still in flight.
    let busiest = (0..providers.len())
        .max_by_key(|i| providers[*i].0.bitswap.stats().blocks_sent)
        .unwrap();
    assert!(providers[busiest].0.bitswap.stats().blocks_sent > 0);
    providers[busiest].0.swarm.shutdown();
    let stats = tokio::time::timeout(Duration::from_secs(60), fetch)
        .await
        .expect("the fetch ends")
        .unwrap()
        .unwrap();
    assert!(stats.blocks > 300, "{stats:?}");
    let sent: Vec<u64> = providers
        .iter()
        .map(|(p, _)| p.bitswap.stats().blocks_sent)
        .collect();
    assert!(
        progress.senders.load(std::sync::atomic::Ordering::Relaxed) >= 2,
        "blocks from one provider only: {sent:?}"
    );
    assert!(read_file(store_r, root) == data, "different bytes");
}

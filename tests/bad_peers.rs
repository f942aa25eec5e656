//! A peer that sends garbage bytes, an oversized length prefix or a forged
//! block on Bitswap neither crashes nor stalls the node: an honest peer is
//! served right after, and a fetching node drops a peer that forges blocks.
#![allow(clippy::result_large_err)]

mod common;

use cairn::block::{Block, CidFormat, HashAlg, RAW};
use cairn::net::bitswap::fetch::FetchOptions;
use cairn::net::bitswap::message::{frame, Message, Version, WantEntry, WantType};
use cairn::net::swarm::NetConfig;
use cairn::net::Network;
use cairn::store::{MemoryStore, Store};
use futures::{AsyncReadExt, AsyncWriteExt};
use libp2p::StreamProtocol;
use std::sync::Arc;
use std::time::Duration;

async fn node(seed: u8) -> (Network, Arc<MemoryStore>) {
    let store = Arc::new(MemoryStore::new());
    let net = Network::start([seed; 32], store.clone(), &NetConfig::default())
        .await
        .unwrap();
    (net, store)
}

fn block(text: &str) -> Block {
    Block::new(
        CidFormat {
            version: 1,
            hash: HashAlg::Blake3,
        },
        RAW,
        text.as_bytes().to_vec(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_does_not_stop_the_node() {
    let (a, store_a) = node(1).await;
    let (evil, _) = node(2).await;
    let (honest, _) = node(3).await;
    let good = block("still served");
    store_a.put(good.clone()).unwrap();
    let addr = a.swarm.listen_addrs().await.unwrap()[0].clone();
    evil.swarm.dial(addr.clone()).await.unwrap();

    let proto = StreamProtocol::new("/ipfs/bitswap/1.2.0");
    let mut control = evil.stream_control();
    // 1. Random bytes.
    let mut s = control.open_stream(a.peer_id, proto.clone()).await.unwrap();
    let junk: Vec<u8> = (0..100_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let _ = s.write_all(&junk).await;
    let _ = s.close().await;
    // 2. A length prefix of 2^62 bytes, then nothing.
    let mut s = control.open_stream(a.peer_id, proto.clone()).await.unwrap();
    let _ = s
        .write_all(&[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x3f])
        .await;
    let _ = s.flush().await;
    // 3. A well-formed message carrying a block nobody asked for, and a
    //    want-list over the limit.
    let mut s = control.open_stream(a.peer_id, proto.clone()).await.unwrap();
    let forged = Message {
        blocks: vec![block("unsolicited")],
        ..Message::default()
    };
    let _ = s.write_all(&frame(&forged, Version::V1_2).unwrap()).await;
    let flood = Message {
        wantlist: (0..1100)
            .map(|i| WantEntry {
                cid: *block(&format!("w{i}")).cid(),
                priority: 1,
                cancel: false,
                want_type: WantType::Block,
                send_dont_have: true,
            })
            .collect(),
        ..Message::default()
    };
    let _ = s.write_all(&frame(&flood, Version::V1_2).unwrap()).await;
    let _ = s.flush().await;
    let mut sink = [0u8; 1];
    let _ = tokio::time::timeout(Duration::from_millis(300), s.read(&mut sink)).await;

    // The node still answers an honest peer promptly.
    honest.swarm.dial(addr).await.unwrap();
    let got = honest
        .bitswap
        .fetch(
            &[*good.cid()],
            &[a.peer_id],
            FetchOptions {
                stall_timeout: Duration::from_secs(10),
                ..FetchOptions::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(got, vec![good]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forging_peer_is_disconnected() {
    let (victim, _) = node(4).await;
    let (forger, _) = node(5).await;
    let addr = victim.swarm.listen_addrs().await.unwrap()[0].clone();
    forger.swarm.dial(addr).await.unwrap();
    let wanted = block("the real one");
    // The forger answers the victim's want with other bytes, pushed on its
    // own stream as soon as the victim starts asking.
    let mut control = forger.stream_control();
    let victim_id = victim.peer_id;
    let push = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let mut s = control
            .open_stream(victim_id, StreamProtocol::new("/ipfs/bitswap/1.2.0"))
            .await
            .unwrap();
        let forged = Message {
            blocks: vec![block("a forgery")],
            ..Message::default()
        };
        let _ = s.write_all(&frame(&forged, Version::V1_2).unwrap()).await;
        let _ = s.flush().await;
        tokio::time::sleep(Duration::from_secs(1)).await;
    });
    let result = victim
        .bitswap
        .fetch(
            &[*wanted.cid()],
            &[forger.peer_id],
            FetchOptions {
                stall_timeout: Duration::from_secs(2),
                ..FetchOptions::default()
            },
        )
        .await;
    assert!(result.is_err(), "nobody has the real block");
    push.await.unwrap();
    assert!(
        !victim
            .swarm
            .peers()
            .await
            .unwrap()
            .contains(&forger.peer_id),
        "the forger is still connected"
    );
}

/// Garbage and absurd length prefixes on every protocol the node speaks
/// (DHT, identify, identify push, ping, each Bitswap version): the node
/// keeps serving the DHT and Bitswap to an honest peer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_on_every_protocol_is_survived() {
    let (a, store_a) = node(11).await;
    let (evil, _) = node(12).await;
    let (honest, _) = node(13).await;
    let good = block("served after the abuse");
    store_a.put(good.clone()).unwrap();
    let addr = a.swarm.listen_addrs().await.unwrap()[0].clone();
    evil.swarm.dial(addr.clone()).await.unwrap();
    let junk: Vec<u8> = (0..200_000u32)
        .map(|i| (i.wrapping_mul(2_246_822_519) >> 11) as u8)
        .collect();
    let huge_prefix = [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x3f];
    let mut control = evil.stream_control();
    for proto in [
        "/ipfs/kad/1.0.0",
        "/ipfs/id/1.0.0",
        "/ipfs/id/push/1.0.0",
        "/ipfs/ping/1.0.0",
        "/ipfs/bitswap/1.2.0",
        "/ipfs/bitswap/1.1.0",
        "/ipfs/bitswap/1.0.0",
    ] {
        for payload in [&junk[..], &huge_prefix[..]] {
            let opened = tokio::time::timeout(
                Duration::from_secs(5),
                control.open_stream(a.peer_id, StreamProtocol::new(proto)),
            )
            .await;
            let Ok(Ok(mut s)) = opened else {
                // Refusing the stream is a fine answer too.
                continue;
            };
            let _ = tokio::time::timeout(Duration::from_secs(2), s.write_all(payload)).await;
            let _ = s.flush().await;
            let mut sink = [0u8; 256];
            let _ = tokio::time::timeout(Duration::from_millis(200), s.read(&mut sink)).await;
        }
    }
    // Still a working node: an honest peer finds it on the DHT and fetches.
    honest.swarm.dial(addr).await.unwrap();
    common::provide(&a, *good.cid()).await;
    let providers = common::providers_of(&honest, *good.cid()).await;
    assert!(providers.contains(&a.peer_id), "{providers:?}");
    let got = honest
        .bitswap
        .fetch(
            &[*good.cid()],
            &[a.peer_id],
            FetchOptions {
                stall_timeout: Duration::from_secs(10),
                ..FetchOptions::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(got, vec![good]);
    assert!(a.swarm.peers().await.unwrap().contains(&honest.peer_id));
}

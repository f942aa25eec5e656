//! A peer that sends garbage bytes, an oversized length prefix or message,
//! or a forged block neither crashes nor stalls the node: an honest peer is
//! served right after (and while abusive streams stay open), and a
//! fetching node drops a peer that forges blocks and does not ask it again.
//! In-process nodes for the protocol details; a daemon (a separate
//! process) for every layer it speaks: raw TCP, multistream-select, the
//! Noise handshake, Yamux, and each protocol on top, replication included.
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

/// Three nodes: `a` serving the block `good` (holding `text`), `evil`
/// connected to it at `addr`, and `honest`, not connected yet; their keys
/// come from `seed`, `seed + 1` and `seed + 2`. Returns (a, evil, honest,
/// good, addr).
async fn abused(seed: u8, text: &str) -> (Network, Network, Network, Block, libp2p::Multiaddr) {
    let (a, store_a) = node(seed).await;
    let (evil, _) = node(seed + 1).await;
    let (honest, _) = node(seed + 2).await;
    let good = block(text);
    store_a.put(good.clone()).unwrap();
    let addr = a.swarm.listen_addrs().await.unwrap()[0].clone();
    evil.swarm.dial(addr.clone()).await.unwrap();
    (a, evil, honest, good, addr)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_does_not_stop_the_node() {
    let (a, evil, honest, good, addr) = abused(1, "still served").await;

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
    let got = common::fetch_blocks(&honest, &[*good.cid()], a.peer_id).await;
    assert_eq!(got, vec![good]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forging_peer_is_disconnected_and_not_asked_again() {
    let (victim, victim_store) = node(4).await;
    let (forger, _) = node(5).await;
    let (honest, honest_store) = node(6).await;
    let addr = victim.swarm.listen_addrs().await.unwrap()[0].clone();
    forger.swarm.dial(addr.clone()).await.unwrap();
    let wanted = block("the real one");
    honest_store.put(wanted.clone()).unwrap();
    let forgery = block("a forgery");
    // The forger answers the victim's want with other bytes, pushed on its
    // own stream as soon as the victim starts asking.
    let mut control = forger.stream_control();
    let victim_id = victim.peer_id;
    let sent = forgery.clone();
    let push = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let mut s = control
            .open_stream(victim_id, StreamProtocol::new("/ipfs/bitswap/1.2.0"))
            .await
            .unwrap();
        let forged = Message {
            blocks: vec![sent],
            ..Message::default()
        };
        let _ = s.write_all(&frame(&forged, Version::V1_2).unwrap()).await;
        let _ = s.flush().await;
        tokio::time::sleep(Duration::from_secs(1)).await;
    });
    // The session knows only the forger at first; the honest peer
    // connects while it runs.
    let session = victim
        .bitswap
        .session(
            Some(*wanted.cid()),
            FetchOptions {
                stall_timeout: Duration::from_secs(15),
                ..FetchOptions::default()
            },
        )
        .await
        .unwrap();
    session.add_peers(vec![forger.peer_id]).await.unwrap();
    let getter = {
        let session = session.clone();
        let cid = *wanted.cid();
        tokio::spawn(async move { session.get(cid).await })
    };
    push.await.unwrap();
    // Disconnected, and refused when it comes back.
    let start = std::time::Instant::now();
    while victim
        .swarm
        .peers()
        .await
        .unwrap()
        .contains(&forger.peer_id)
    {
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "the forger is still connected"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let back = forger.swarm.dial(addr.clone()).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        back.is_err()
            || !victim
                .swarm
                .peers()
                .await
                .unwrap()
                .contains(&forger.peer_id),
        "the banned forger got back in"
    );
    // The block comes from the honest peer; the forgery was never stored.
    honest.swarm.dial(addr).await.unwrap();
    let got = tokio::time::timeout(Duration::from_secs(20), getter)
        .await
        .expect("the fetch ends")
        .unwrap()
        .unwrap();
    assert_eq!(got, wanted);
    session.flush().await.unwrap();
    assert!(
        !victim_store.has(forgery.cid()).unwrap(),
        "the forgery was stored"
    );
    assert!(victim_store.has(wanted.cid()).unwrap());
    assert!(
        !victim
            .swarm
            .peers()
            .await
            .unwrap()
            .contains(&forger.peer_id),
        "the forger was asked again"
    );
}

/// Garbage and absurd length prefixes on every protocol the node speaks
/// (DHT, identify, identify push, ping, each Bitswap version): the node
/// keeps serving the DHT and Bitswap to an honest peer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_on_every_protocol_is_survived() {
    let (a, evil, honest, good, addr) = abused(11, "served after the abuse").await;
    let junk: Vec<u8> = (0..200_000u32)
        .map(|i| (i.wrapping_mul(2_246_822_519) >> 11) as u8)
        .collect();
    let huge_prefix = [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x3f];
    let over = oversized_frame(5 * 1024 * 1024);
    let mut control = evil.stream_control();
    let mut abused = 0;
    for proto in [
        "/ipfs/kad/1.0.0",
        "/ipfs/id/1.0.0",
        "/ipfs/id/push/1.0.0",
        "/ipfs/ping/1.0.0",
        "/ipfs/bitswap/1.2.0",
        "/ipfs/bitswap/1.1.0",
        "/ipfs/bitswap/1.0.0",
        // One gossipsub version: after garbage, gossipsub stops taking
        // streams on that connection (its handler disables itself).
        "/meshsub/1.1.0",
    ] {
        for payload in [&junk[..], &huge_prefix[..], &over[..]] {
            // Garbage may cost the abuser its connection, never the node.
            if !evil.swarm.peers().await.unwrap().contains(&a.peer_id) {
                evil.swarm.dial(addr.clone()).await.unwrap();
            }
            let opened = tokio::time::timeout(
                Duration::from_secs(5),
                control.open_stream(a.peer_id, StreamProtocol::new(proto)),
            )
            .await;
            let Ok(Ok(mut s)) = opened else {
                panic!("{proto}: the node did not take the stream: {opened:?}");
            };
            abused += 1;
            let _ = tokio::time::timeout(Duration::from_secs(2), s.write_all(payload)).await;
            let _ = s.flush().await;
            let mut sink = [0u8; 256];
            let _ = tokio::time::timeout(Duration::from_millis(200), s.read(&mut sink)).await;
        }
    }
    assert_eq!(abused, 8 * 3, "every protocol got every payload");
    // Still a working node: an honest peer finds it on the DHT and fetches.
    honest.swarm.dial(addr).await.unwrap();
    common::provide(&a, *good.cid()).await;
    let providers = common::providers_of(&honest, *good.cid()).await;
    assert!(providers.contains(&a.peer_id), "{providers:?}");
    let got = common::fetch_blocks(&honest, &[*good.cid()], a.peer_id).await;
    assert_eq!(got, vec![good]);
    assert!(a.swarm.peers().await.unwrap().contains(&honest.peer_id));
}

/// A frame whose length prefix is honest and over every protocol's limit
/// (Bitswap's 4 MiB, the DHT's 16 KiB), followed by that many bytes.
fn oversized_frame(len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len + 10);
    let mut n = len;
    while n >= 0x80 {
        out.push((n as u8) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
    out.extend(std::iter::repeat_n(0x0a, len));
    out
}

/// A "muxer" upgrade that negotiates Yamux over a real Noise session and
/// then writes junk instead of Yamux frames.
#[derive(Clone)]
struct JunkMuxer(Vec<u8>);

impl libp2p::core::UpgradeInfo for JunkMuxer {
    type Info = &'static str;
    type InfoIter = std::iter::Once<&'static str>;
    fn protocol_info(&self) -> Self::InfoIter {
        std::iter::once("/yamux/1.0.0")
    }
}

impl<C> libp2p::core::upgrade::OutboundConnectionUpgrade<C> for JunkMuxer
where
    C: futures::AsyncRead + futures::AsyncWrite + Unpin + Send + 'static,
{
    type Output = libp2p::yamux::Muxer<C>;
    type Error = std::io::Error;
    type Future = futures::future::BoxFuture<'static, Result<Self::Output, std::io::Error>>;
    fn upgrade_outbound(self, mut socket: C, _: Self::Info) -> Self::Future {
        Box::pin(async move {
            socket.write_all(&self.0).await?;
            socket.flush().await?;
            let mut sink = [0u8; 64];
            let _ = tokio::time::timeout(Duration::from_millis(300), socket.read(&mut sink)).await;
            Err(std::io::Error::other("junk sent"))
        })
    }
}

impl<C> libp2p::core::upgrade::InboundConnectionUpgrade<C> for JunkMuxer
where
    C: futures::AsyncRead + futures::AsyncWrite + Unpin + Send + 'static,
{
    type Output = libp2p::yamux::Muxer<C>;
    type Error = std::io::Error;
    type Future = futures::future::BoxFuture<'static, Result<Self::Output, std::io::Error>>;
    fn upgrade_inbound(self, _: C, _: Self::Info) -> Self::Future {
        Box::pin(async { Err(std::io::Error::other("not used")) })
    }
}

/// Length-prefixed multistream-select lines (`/multistream/1.0.0`, then
/// `proto`), as a dialer sends them.
fn multistream(proto: &str) -> Vec<u8> {
    let mut out = Vec::new();
    for line in ["/multistream/1.0.0\n".to_string(), format!("{proto}\n")] {
        out.push(line.len() as u8);
        out.extend_from_slice(line.as_bytes());
    }
    out
}

/// Writes `bytes` on a fresh TCP connection to `port` and reads for a
/// moment; returns whether the connection could be made.
fn raw_tcp(port: u16, bytes: &[u8]) -> bool {
    use std::io::{Read, Write};
    let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_millis(300)));
    let _ = s.write_all(bytes);
    let mut sink = [0u8; 256];
    let _ = s.read(&mut sink);
    true
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_daemon_survives_garbage_at_every_layer() {
    use common::{Daemon, TestRepo};
    let d = TestRepo::new();
    let data = common::random_bytes(3_000_000, 71);
    let file = d.scratch("served.bin");
    std::fs::write(&file, &data).unwrap();
    let cid = d.add(&file, &[]);
    let (mut dd, banner) = Daemon::start(&d, &[]);
    let addr: libp2p::Multiaddr = banner
        .iter()
        .find_map(|l| l.strip_prefix("Swarm listening on "))
        .expect("a listen address")
        .parse()
        .unwrap();
    let port = addr
        .iter()
        .find_map(|p| match p {
            libp2p::multiaddr::Protocol::Tcp(port) => Some(port),
            _ => None,
        })
        .unwrap();
    let d_id: libp2p::PeerId = serde_json::from_str::<serde_json::Value>(&d.ok(&["id"])).unwrap()
        ["ID"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();

    let junk: Vec<u8> = (0..300_000u32)
        .map(|i| (i.wrapping_mul(2_246_822_519) >> 9) as u8)
        .collect();
    // Below libp2p: raw bytes, a multistream header and junk, the Noise
    // protocol negotiated and a junk handshake, an absurd length.
    let mut layers = 0;
    for bytes in [
        junk.clone(),
        [multistream("/garbage/1.0.0"), junk.clone()].concat(),
        [multistream("/noise"), junk.clone()].concat(),
        [
            multistream("/noise"),
            vec![0xff, 0xff],
            junk[..1000].to_vec(),
        ]
        .concat(),
        vec![0x7f; 5],
    ] {
        assert!(
            raw_tcp(port, &bytes),
            "the daemon stopped taking connections"
        );
        layers += 1;
    }
    // A real Noise session, then junk where Yamux frames belong.
    {
        use libp2p::core::transport::{DialOpts, PortUse, Transport};
        let key = libp2p::identity::Keypair::generate_ed25519();
        let mut transport = libp2p::tcp::tokio::Transport::new(Default::default())
            .upgrade(libp2p::core::upgrade::Version::V1)
            .authenticate(libp2p::noise::Config::new(&key).unwrap())
            .multiplex(JunkMuxer(junk.clone()))
            .boxed();
        let dial = transport
            .dial(
                addr.clone(),
                DialOpts {
                    role: libp2p::core::Endpoint::Dialer,
                    port_use: PortUse::New,
                },
            )
            .unwrap();
        let r = tokio::time::timeout(Duration::from_secs(10), dial).await;
        let err = match r {
            Ok(Err(e)) => format!("{e:?}"),
            _ => panic!("the junk muxer never completes"),
        };
        // It got as far as our Yamux stand-in (the second upgrade, after
        // Noise completed with the daemon), which either finished sending
        // or was reset by the daemon on the junk.
        assert!(err.contains("Right(Apply("), "{err}");
        layers += 1;
    }
    assert_eq!(layers, 6);

    // Over a real connection: junk, an absurd length prefix and a real
    // frame over every size limit, on every protocol the daemon speaks.
    let (evil, _) = node(31).await;
    let over = oversized_frame(5 * 1024 * 1024);
    let huge_prefix = vec![0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x3f];
    let protocols = [
        "/ipfs/kad/1.0.0",
        "/ipfs/id/1.0.0",
        "/ipfs/id/push/1.0.0",
        "/ipfs/ping/1.0.0",
        "/ipfs/bitswap/1.2.0",
        "/ipfs/bitswap/1.1.0",
        "/ipfs/bitswap/1.0.0",
        "/cairn/replicate/1.0.0",
    ];
    let mut control = evil.stream_control();
    let mut held = Vec::new();
    let mut abused = 0;
    for proto in protocols {
        for payload in [&junk, &huge_prefix, &over] {
            if !evil.swarm.peers().await.unwrap().contains(&d_id) {
                evil.swarm.dial(addr.clone()).await.unwrap();
            }
            let mut s = tokio::time::timeout(
                Duration::from_secs(5),
                control.open_stream(d_id, StreamProtocol::new(proto)),
            )
            .await
            .unwrap_or_else(|_| panic!("{proto}: opening timed out"))
            .unwrap_or_else(|e| panic!("{proto}: {e}"));
            let _ = tokio::time::timeout(Duration::from_secs(5), s.write_all(payload)).await;
            let _ = tokio::time::timeout(Duration::from_secs(1), s.flush()).await;
            abused += 1;
            // Kept open (not closed, not read): a peer holding streams
            // must not stall the node either.
            if held.len() < 16 {
                held.push(s);
            }
        }
    }
    assert_eq!(abused, protocols.len() * 3);

    // Still a working node, for another daemon, with the streams open.
    let h = TestRepo::new();
    h.set_config("net", "fetch_timeout", "\"20s\"");
    let (_dh, _) = Daemon::start(&h, &["--bootstrap", &addr.to_string()]);
    let out = h.run(&["cat", &cid]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.stdout == data, "different bytes");
    // Its DHT still works: new content is announced and found.
    let file2 = d.scratch("new.bin");
    std::fs::write(&file2, b"added after the abuse").unwrap();
    let cid2 = d.add(&file2, &[]);
    let start = std::time::Instant::now();
    loop {
        let found = h.ok(&["routing", "findprovs", &cid2]);
        if found.contains(&d_id.to_string()) {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(20), "{found:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    drop(held);
    // And it still stops cleanly.
    assert!(dd.signal(libc::SIGTERM).success());
}

//! Replication records merge by version; a merge must never delete a copy.
//! A node holding a root answers a probe carrying a newer record that does
//! not list it (another holder that had not heard of this copy) by listing
//! itself again, and keeps its pin; an explicit trim (Unpin with a newer
//! record without it) does drop the copy.

use cairn::net::swarm::NetConfig;
use cairn::net::Network;
use cairn::node::config::Config;
use cairn::node::online::OnlineNode;
use cairn::node::{AddOptions, Node};
use cairn::replicate::protocol::{read_message, write_message, Request, Response, PROTOCOL};
use cairn::replicate::record::Record;
use cairn::store::{MemoryStore, PinKind};
use libp2p::StreamProtocol;
use std::sync::Arc;

async fn ask(net: &Network, peer: libp2p::PeerId, req: Request) -> Response {
    let mut stream = net
        .stream_control()
        .open_stream(peer, StreamProtocol::new(PROTOCOL))
        .await
        .unwrap();
    write_message(&mut stream, &req).await.unwrap();
    read_message(&mut stream).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_newer_record_without_a_holder_does_not_delete_its_copy() {
    let mut config = Config::default();
    // No round of its own during the test: only the requests below act.
    config.replication.repair_interval = std::time::Duration::from_secs(3600);
    let node = Arc::new(Node::in_memory(config, [7; 32]));
    let settings = node.config().net.clone();
    let online = OnlineNode::start(Arc::clone(&node), &settings)
        .await
        .unwrap();
    let me = node.peer_id().unwrap();
    let opts = AddOptions {
        import: node.config().import.options().unwrap(),
        ..AddOptions::default()
    };
    let data = vec![42u8; 100_000];
    let root = node.add_reader(&data[..], &opts, &mut |_| {}).unwrap().cid;
    let pinned = online.replicator().pin(root, Some(1)).await.unwrap();

    let other = Network::start([9; 32], Arc::new(MemoryStore::new()), &NetConfig::default())
        .await
        .unwrap();
    let addr = online.net().swarm.listen_addrs().await.unwrap()[0].clone();
    other.swarm.dial(addr).await.unwrap();

    // A newer version that lists only the other peer.
    let mut newer = Record::new(root, 1, 1, data.len() as u64, other.peer_id);
    newer.version = pinned.version + 10;
    let resp = ask(
        &other,
        me,
        Request::Probe {
            record: newer.clone(),
            sample: vec![root],
        },
    )
    .await;
    assert!(resp.pinned && resp.has, "{resp:?}");
    let rec = resp.record.expect("the node answers with its record");
    assert!(rec.holders.contains(&me), "lists itself again: {rec:?}");
    assert!(rec.holders.contains(&other.peer_id), "{rec:?}");
    assert!(rec.version > newer.version, "{rec:?}");
    assert_eq!(
        node.store().pin_of(&root).unwrap(),
        Some(PinKind::Recursive)
    );

    // An explicit trim: a newer record without it, sent as Unpin.
    let mut trimmed = rec.clone();
    trimmed.holders.remove(&me);
    trimmed.bump();
    ask(&other, me, Request::Unpin { record: trimmed }).await;
    assert_eq!(node.store().pin_of(&root).unwrap(), None);

    online.shutdown();
}

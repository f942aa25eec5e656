//! Pub/sub (gossipsub): nodes in one process exchanging messages through
//! the swarm handle, and daemons driven through the CLI and the RPC API
//! (Kubo's `pubsub/*` shapes, multibase arguments, size limits).
#![allow(clippy::result_large_err)]

mod common;

use cairn::net::pubsub::{PubsubError, Received, Subscription};
use cairn::net::swarm::NetConfig;
use cairn::net::Network;
use cairn::store::MemoryStore;
use std::sync::Arc;
use std::time::Duration;

async fn node(seed: u8) -> Network {
    Network::start(
        [seed; 32],
        Arc::new(MemoryStore::new()),
        &NetConfig::default(),
    )
    .await
    .unwrap()
}

async fn next(sub: &mut Subscription) -> Arc<Received> {
    tokio::time::timeout(Duration::from_secs(10), sub.next())
        .await
        .expect("a message in time")
        .expect("subscription open")
}

/// Waits until `net` sees each of `peers` subscribed to `topic`.
async fn wait_peers(net: &Network, topic: &str, peers: &[libp2p::PeerId]) {
    for _ in 0..200 {
        let seen = net.swarm.pubsub_peers(Some(topic.into())).await.unwrap();
        if peers.iter().all(|p| seen.contains(p)) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!(
        "{peers:?} never subscribed to {topic} as {} sees it",
        net.peer_id
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_cross_a_line_of_nodes_and_reach_the_publisher_too() {
    let (a, b, c) = (node(1).await, node(2).await, node(3).await);
    let b_addr = b.swarm.listen_addrs().await.unwrap()[0].clone();
    a.swarm.dial(b_addr.clone()).await.unwrap();
    c.swarm.dial(b_addr).await.unwrap();
    let topic = "line".to_string();
    let mut sa = a.swarm.pubsub_subscribe(topic.clone()).await.unwrap();
    let mut sb = b.swarm.pubsub_subscribe(topic.clone()).await.unwrap();
    let mut sc = c.swarm.pubsub_subscribe(topic.clone()).await.unwrap();
    wait_peers(&a, &topic, &[b.peer_id]).await;
    wait_peers(&c, &topic, &[b.peer_id]).await;
    wait_peers(&b, &topic, &[a.peer_id, c.peer_id]).await;
    // A and C are not connected: C hears A once B has C in its mesh
    // (grafted at a heartbeat). Warm up until it does.
    let mut warm = 0u32;
    'warm: loop {
        warm += 1;
        assert!(warm < 50, "C never heard A through B");
        let data = format!("warm-up {warm}");
        a.swarm
            .pubsub_publish(topic.clone(), data.clone().into())
            .await
            .unwrap();
        let deadline = tokio::time::Instant::now() + Duration::from_millis(300);
        while let Ok(Some(m)) = tokio::time::timeout_at(deadline, sc.next()).await {
            if m.data == data.as_bytes() {
                break 'warm;
            }
        }
    }
    while sa.try_next().is_some() || sb.try_next().is_some() {}

    a.swarm
        .pubsub_publish(topic.clone(), "hello".into())
        .await
        .unwrap();
    let mine = next(&mut sa).await;
    assert_eq!(
        (mine.from, mine.via, &mine.data[..]),
        (a.peer_id, None, &b"hello"[..])
    );
    let at_b = next(&mut sb).await;
    assert_eq!((at_b.from, at_b.via), (a.peer_id, Some(a.peer_id)));
    assert_eq!((at_b.seqno, &at_b.topic), (mine.seqno, &topic));
    let at_c = next(&mut sc).await;
    assert_eq!(&at_c.data[..], b"hello");
    assert_eq!(
        (at_c.from, at_c.via, at_c.seqno),
        (a.peer_id, Some(b.peer_id), mine.seqno)
    );
    // Seqnos grow per publisher.
    a.swarm
        .pubsub_publish(topic.clone(), "again".into())
        .await
        .unwrap();
    assert!(next(&mut sc).await.seqno > mine.seqno);

    // Too large: refused before anything is sent, with the limit named.
    let big = vec![0u8; 1 << 20];
    match a.swarm.pubsub_publish(topic.clone(), big.into()).await {
        Err(PubsubError::TooLarge { bytes, max, .. }) => {
            assert_eq!(bytes, 1 << 20);
            assert!(max < bytes && max > (1 << 20) - 1024, "{max}");
        }
        other => panic!("expected TooLarge, got {other:?}"),
    }
    // Nobody else on a topic: still a success, and our subscriber sees it.
    let mut alone = a.swarm.pubsub_subscribe("alone".into()).await.unwrap();
    a.swarm
        .pubsub_publish("alone".into(), "echo".into())
        .await
        .unwrap();
    assert_eq!(&next(&mut alone).await.data[..], b"echo");
    assert_eq!(
        a.swarm.pubsub_topics().await.unwrap(),
        vec!["alone".to_string(), topic.clone()]
    );
    // Dropping the last subscriber leaves the topic.
    drop(alone);
    for _ in 0..100 {
        if a.swarm.pubsub_topics().await.unwrap() == vec![topic.clone()] {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(a.swarm.pubsub_topics().await.unwrap(), vec![topic.clone()]);
    // Peers are scored; honest ones are not below zero.
    assert!(b.swarm.pubsub_score(a.peer_id).await.unwrap().unwrap() >= 0.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pubsub_off_answers_disabled() {
    let config = NetConfig {
        pubsub: None,
        ..NetConfig::default()
    };
    let net = Network::start([9; 32], Arc::new(MemoryStore::new()), &config)
        .await
        .unwrap();
    let e = net.swarm.pubsub_subscribe("t".into()).await.unwrap_err();
    assert!(matches!(e, PubsubError::Disabled), "{e}");
    assert_eq!(
        e.to_string(),
        "pubsub is disabled ([pubsub] enabled = false)"
    );
    assert!(matches!(
        net.swarm.pubsub_publish("t".into(), "x".into()).await,
        Err(PubsubError::Disabled)
    ));
    assert!(matches!(
        net.swarm.pubsub_subscribe(String::new()).await,
        Err(PubsubError::Topic { .. })
    ));
}

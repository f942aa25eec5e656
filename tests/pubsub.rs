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

/// Gossipsub's streams stay open for the life of a connection, yet they do
/// not keep it open: only a shared topic mesh does. Two nodes with a 1 s
/// idle timeout stay connected while both are in a topic, and the
/// connection closes once one leaves.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_topic_mesh_keeps_a_connection_open_and_leaving_lets_it_close() {
    let config = NetConfig {
        idle_timeout: Duration::from_secs(1),
        ..NetConfig::default()
    };
    let start = |seed: u8| Network::start([seed; 32], Arc::new(MemoryStore::new()), &config);
    let (a, b) = (start(11).await.unwrap(), start(12).await.unwrap());
    let topic = "kept".to_string();
    let mut sa = a.swarm.pubsub_subscribe(topic.clone()).await.unwrap();
    let sb = b.swarm.pubsub_subscribe(topic.clone()).await.unwrap();
    let a_addr = a.swarm.listen_addrs().await.unwrap()[0].clone();
    b.swarm.dial(a_addr).await.unwrap();
    wait_peers(&a, &topic, &[b.peer_id]).await;
    wait_peers(&b, &topic, &[a.peer_id]).await;

    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(b.swarm.peers().await.unwrap(), vec![a.peer_id]);
    b.swarm
        .pubsub_publish(topic.clone(), "still here".into())
        .await
        .unwrap();
    assert_eq!(&next(&mut sa).await.data[..], b"still here");

    drop(sb);
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while !b.swarm.peers().await.unwrap().is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "the connection stayed open after B left the topic"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
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

// ----- daemons, the CLI and the RPC API -----

use common::process::KillOnDrop;
use common::{api_url, peer_id_of, swarm_addr, Daemon, TestRepo};
use std::io::{BufRead, BufReader, Read};
use std::process::Stdio;
use std::sync::mpsc;

/// `u` + base64url, as Kubo's RPC wants topics.
fn mb(bytes: &[u8]) -> String {
    cairn::rpc::types::encode_multibase(bytes)
}

/// Lines of `reader`, as they come, on a channel.
fn lines_of(reader: impl Read + Send + 'static) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(reader).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    rx
}

/// The next line within 10 s.
fn line(rx: &mpsc::Receiver<String>) -> String {
    rx.recv_timeout(Duration::from_secs(10))
        .expect("a message line in time")
}

/// `cairn pubsub sub TOPIC ARGS` on `repo`, its output lines.
fn cli_sub(repo: &TestRepo, topic: &str, args: &[&str]) -> (KillOnDrop, mpsc::Receiver<String>) {
    let mut all = vec!["pubsub", "sub", topic];
    all.extend_from_slice(args);
    let mut child = repo.cmd(&all).stdout(Stdio::piped()).spawn().unwrap();
    let out = child.stdout.take().unwrap();
    (KillOnDrop(child), lines_of(out))
}

/// POST `{api}/api/v0/{path}` with a body (multipart when `data` is some):
/// status and body text.
fn rpc(api: &str, path: &str, query: &str, data: Option<&[u8]>) -> (u16, String) {
    let url = format!("{api}/api/v0/{path}?{query}");
    let req = ureq::post(&url)
        .config()
        .http_status_as_error(false)
        .build();
    let resp = match data {
        None => req.send_empty(),
        Some(d) => {
            let mut body = b"--XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"data\"\r\nContent-Type: application/octet-stream\r\n\r\n".to_vec();
            body.extend_from_slice(d);
            body.extend_from_slice(b"\r\n--XyZ--\r\n");
            req.header("Content-Type", "multipart/form-data; boundary=XyZ")
                .send(&body[..])
        }
    }
    .unwrap();
    let status = resp.status().as_u16();
    let text = resp
        .into_body()
        .with_config()
        .limit(1 << 20)
        .read_to_string()
        .unwrap();
    (status, text)
}

/// Three daemons in a line A — B — C on loopback. Messages published on
/// A through the CLI reach B's RPC stream and C's `pubsub sub --enc json`
/// with Kubo's JSON shape; C publishes through the RPC (multipart) and A's
/// text `sub` prints it; `ls`, `peers`, Kubo's multibase errors, the
/// pre-0.11 `pub` form and the size limit (a clear error one byte over).
#[test]
fn daemons_exchange_messages_through_the_cli_and_the_rpc() {
    let (ra, rb, rc) = (TestRepo::new(), TestRepo::new(), TestRepo::new());
    let (_da, banner_a) = Daemon::start(&ra, &[]);
    let a_addr = swarm_addr(&banner_a);
    let (_db, banner_b) = Daemon::start(&rb, &["--bootstrap", &a_addr]);
    let b_addr = swarm_addr(&banner_b);
    let (_dc, banner_c) = Daemon::start(&rc, &["--bootstrap", &b_addr]);
    let (a_id, b_id, c_id) = (
        peer_id_of(&a_addr),
        peer_id_of(&b_addr),
        peer_id_of(&swarm_addr(&banner_c)),
    );
    let (api_a, api_b, api_c) = (api_url(&banner_a), api_url(&banner_b), api_url(&banner_c));
    let topic = "news";

    // B: the raw RPC stream; C: the CLI, JSON; A: the CLI, text.
    let resp = ureq::post(format!(
        "{api_b}/api/v0/pubsub/sub?arg={}",
        mb(topic.as_bytes())
    ))
    .send_empty()
    .unwrap();
    assert_eq!(resp.headers()["content-type"], "application/json");
    let at_b = lines_of(resp.into_body().into_with_config().limit(u64::MAX).reader());
    let (_sc, at_c) = cli_sub(&rc, topic, &["--enc", "json"]);
    let (_sa, at_a) = cli_sub(&ra, topic, &[]);
    common::poll_every(
        Duration::from_millis(100),
        Duration::from_secs(20),
        "B sees A and C on the topic",
        || {
            let peers = rb.ok(&["pubsub", "peers", topic]);
            (peers.contains(&a_id) && peers.contains(&c_id)).then_some(())
        },
    );
    assert_eq!(ra.ok(&["pubsub", "ls"]), format!("{topic}\n"));
    let (status, ls) = rpc(&api_a, "pubsub/ls", "", None);
    assert_eq!(
        (status, ls.trim()),
        (
            200,
            format!(r#"{{"Strings":["{}"]}}"#, mb(b"news")).as_str()
        )
    );
    let all_peers = ra.ok(&["pubsub", "peers"]);
    assert!(all_peers.lines().any(|p| p == b_id), "{all_peers}");

    // C hears A through B once B has C in its mesh: warm up until it does.
    let file = ra.scratch("msg");
    let mut warm = 0;
    loop {
        warm += 1;
        assert!(warm < 40, "C never heard A");
        std::fs::write(&file, format!("warm-up {warm}")).unwrap();
        ra.ok(&["pubsub", "pub", topic, file.to_str().unwrap()]);
        if let Ok(l) = at_c.recv_timeout(Duration::from_millis(300)) {
            if l.contains(&mb(format!("warm-up {warm}").as_bytes())) {
                break;
            }
        }
    }
    for rx in [&at_a, &at_b, &at_c] {
        while rx.recv_timeout(Duration::from_millis(300)).is_ok() {}
    }

    std::fs::write(&file, "hello from A").unwrap();
    ra.ok(&["pubsub", "pub", topic, file.to_str().unwrap()]);
    let json: serde_json::Value = serde_json::from_str(&line(&at_c)).unwrap();
    assert_eq!(json["from"], a_id.as_str());
    assert_eq!(json["data"], mb(b"hello from A"));
    assert_eq!(json["topicIDs"], serde_json::json!([mb(b"news")]));
    let seqno = cairn::rpc::types::decode_multibase(json["seqno"].as_str().unwrap()).unwrap();
    assert_eq!(seqno.len(), 8);
    let from_b: serde_json::Value = serde_json::from_str(&line(&at_b)).unwrap();
    assert_eq!(from_b, json, "B's raw stream carries the same line");
    // The publisher's own subscriber sees it (text: the data, a newline).
    assert_eq!(line(&at_a), "hello from A");

    // C publishes through the RPC: multipart data, multibase topic.
    let (status, body) = rpc(
        &api_c,
        "pubsub/pub",
        &format!("arg={}", mb(b"news")),
        Some(&b"from C"[..]),
    );
    assert_eq!((status, body.as_str()), (200, ""));
    assert_eq!(line(&at_a), "from C");
    // The pre-0.11 form: raw topic and data as two arguments.
    let (status, _) = rpc(&api_c, "pubsub/pub", "arg=news&arg=legacy", None);
    assert_eq!(status, 200);
    assert_eq!(line(&at_a), "legacy");
    // C's own subscriber saw both (a node's messages reach its own subscribers).
    for want in ["from C", "legacy"] {
        let json: serde_json::Value = serde_json::from_str(&line(&at_c)).unwrap();
        assert_eq!(
            (&json["from"], &json["data"]),
            (
                &serde_json::json!(c_id),
                &serde_json::json!(mb(want.as_bytes()))
            )
        );
    }

    // Kubo's words for a topic that is not multibase base64url.
    let (status, body) = rpc(&api_a, "pubsub/pub", "arg=foobar", Some(&b"x"[..]));
    assert_eq!(status, 400);
    assert!(body.contains("URL arg must be multibase encoded"), "{body}");
    let (status, body) = rpc(&api_a, "pubsub/sub", "arg=mZm9vYmFyCg", None);
    assert_eq!(status, 400);
    assert!(body.contains("URL arg must be base64url encoded"), "{body}");

    // The largest message fits; one byte more is refused, clearly.
    let max = cairn::net::pubsub::PubsubConfig::default().max_data_bytes(topic);
    let big = common::random_bytes(max, 7);
    std::fs::write(&file, &big).unwrap();
    ra.ok(&["pubsub", "pub", topic, file.to_str().unwrap()]);
    let json: serde_json::Value = serde_json::from_str(&line(&at_c)).unwrap();
    assert_eq!(json["data"], mb(&big));
    let mut over = big.clone();
    over.push(0);
    std::fs::write(&file, &over).unwrap();
    let err = ra.fails(&["pubsub", "pub", topic, file.to_str().unwrap()]);
    assert!(
        err.contains("too large") && err.contains(&max.to_string()),
        "{err}"
    );
    // Nothing more arrived at C.
    assert!(at_c.recv_timeout(Duration::from_millis(500)).is_err());
}

/// `[pubsub] enabled = false`: the commands fail with a clear error, and
/// `id` lists no gossipsub protocol.
#[test]
fn a_daemon_with_pubsub_off_says_so() {
    let r = TestRepo::new();
    r.ok(&["init"]);
    r.set_config("pubsub", "enabled", "false");
    let (_d, _) = Daemon::start(&r, &[]);
    let err = r.fails(&["pubsub", "ls"]);
    assert!(
        err.contains("pubsub is disabled ([pubsub] enabled = false)"),
        "{err}"
    );
    assert!(!r.ok(&["id"]).contains("/meshsub/"));
    let off = TestRepo::new();
    let err = off.fails(&["pubsub", "ls"]);
    assert!(err.contains("needs a running daemon"), "{err}");
}

//! A disk that fails: nodes in one process on loopback, their stores
//! wrapped in a `FaultyStore` that makes chosen blocks read EIO or come back
//! with a flipped bit. A read error is not corruption: the scrub leaves an
//! unreadable block alone; a corrupt block is replaced only by a verified
//! copy from a peer, never removed first; an online read of a corrupt or
//! unreadable local block fetches a good copy instead of failing midway.

mod common;

use cairn::block::Cid;
use cairn::node::config::Config;
use cairn::node::online::OnlineNode;
use cairn::node::{AddOptions, Node};
use cairn::store::{FaultyStore, MemoryStore, StorageFault, Store, StoreError};
use std::io::Read;
use std::sync::Arc;
use std::time::Duration;

/// A node on a faulty memory store, its network running.
struct Peer {
    node: Arc<Node>,
    online: OnlineNode,
    disk: Arc<FaultyStore>,
}

impl Peer {
    async fn start(seed: u8) -> Peer {
        let mut config = Config::default();
        // Only what the tests do acts: no repair round, no scrub of its own.
        config.replication.repair_interval = Duration::from_secs(3600);
        config.replication.scrub_interval = Duration::from_secs(3600);
        // A fetch nobody can serve gives up soon.
        config.net.fetch_timeout = Duration::from_secs(3);
        let disk = Arc::new(FaultyStore::new(Arc::new(MemoryStore::new())));
        let store: Arc<dyn Store> = disk.clone();
        let node = Arc::new(Node::with_store(store, config, [seed; 32]));
        let mut settings = node.config().net.clone();
        settings.listen = vec!["/ip4/127.0.0.1/tcp/0".into()];
        let online = OnlineNode::start(Arc::clone(&node), &settings)
            .await
            .unwrap();
        Peer { node, online, disk }
    }

    /// Dials `other`.
    async fn connect(&self, other: &Peer) {
        let addr = other.online.net().swarm.listen_addrs().await.unwrap()[0].clone();
        self.online.net().swarm.dial(addr).await.unwrap();
    }

    /// Adds `data` as a pinned file; its root.
    fn add(&self, data: &[u8]) -> Cid {
        let opts = AddOptions {
            import: self.node.config().import.options().unwrap(),
            pin: true,
            only_hash: false,
            hidden: false,
            wrap: false,
        };
        self.node.add_reader(data, &opts, &mut |_| {}).unwrap().cid
    }

    /// The leaves of the file under `root` (every block but the root).
    fn leaves(&self, root: &Cid) -> Vec<Cid> {
        let cids = self.node.dag_cids(root).unwrap();
        assert!(cids.len() >= 3, "a file of several blocks");
        cids[1..].to_vec()
    }

    /// The file at `root` read from the store alone.
    fn read_offline(&self, root: &Cid) -> std::io::Result<Vec<u8>> {
        let mut out = Vec::new();
        self.node
            .cat(&root.to_string(), 0, None)
            .map_err(std::io::Error::other)?
            .read_to_end(&mut out)?;
        Ok(out)
    }

    /// The file at `root` read as `cat` and the gateway do while online.
    async fn read_online(&self, root: &Cid) -> Vec<u8> {
        let (mut reader, _) = self.online.cat(&root.to_string(), 0, None).await.unwrap();
        tokio::task::spawn_blocking(move || {
            let mut out = Vec::new();
            reader.read_to_end(&mut out).map(|_| out)
        })
        .await
        .unwrap()
        .unwrap()
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        self.online.shutdown();
    }
}

/// Two connected peers: A adds `data`, B fetches and pins it; the root.
async fn both_hold(data: &[u8]) -> (Peer, Peer, Cid) {
    let (a, b) = (Peer::start(1).await, Peer::start(2).await);
    b.connect(&a).await;
    let root = a.add(data);
    b.online.pin_add(root, true, &mut |_| {}).await.unwrap();
    (a, b, root)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreadable_block_survives_the_scrub() {
    let a = Peer::start(1).await;
    let data = common::random_bytes(3 << 20, 1);
    let root = a.add(&data);
    let leaf = a.leaves(&root)[0];
    a.disk.inject(*leaf.hash(), StorageFault::Unreadable);

    let report = a.online.replicator().scrub_pass().await;
    assert_eq!(report.unreadable, 1, "{report:?}");
    assert_eq!((report.corrupt, report.repaired), (0, 0), "{report:?}");
    assert!(report.checked >= 4, "{report:?}");
    // The block is still there: when the disk recovers, nothing is lost.
    assert!(a.node.store().has(&leaf).unwrap());
    assert_eq!(a.disk.heal(leaf.hash()), Some(StorageFault::Unreadable));
    assert_eq!(a.read_offline(&root).unwrap(), data);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupt_block_is_replaced_only_by_a_verified_copy() {
    let shared = common::random_bytes(3 << 20, 2);
    let (a, b, root) = both_hold(&shared).await;
    let fixable = b.leaves(&root)[1];
    // A file nobody else has: no good copy of its blocks anywhere.
    let own = b.add(&common::random_bytes(3 << 20, 3));
    let lone = b.leaves(&own)[0];
    b.disk.inject(*fixable.hash(), StorageFault::FlippedBit);
    b.disk.inject(*lone.hash(), StorageFault::FlippedBit);

    let report = b.online.replicator().scrub_pass().await;
    assert_eq!((report.corrupt, report.repaired), (2, 1), "{report:?}");
    assert_eq!(report.unreadable, 0, "{report:?}");
    // The copy from A, verified, took the corrupt one's place.
    let good = a.node.store().get(&fixable).unwrap().unwrap();
    assert_eq!(b.node.store().get(&fixable).unwrap(), Some(good));
    assert_eq!(b.read_offline(&root).unwrap(), shared);
    // No good copy came for the other: it is kept as it is, not removed.
    assert!(b.node.store().has(&lone).unwrap());
    assert!(matches!(
        b.node.store().get(&lone),
        Err(StoreError::Corrupt { .. })
    ));
    assert_eq!(b.disk.faults().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_online_read_of_a_bad_local_copy_fetches_a_good_one() {
    let data = common::random_bytes(4 << 20, 4);
    let (_a, b, root) = both_hold(&data).await;
    let leaves = b.leaves(&root);
    let (rotten, unreadable) = (leaves[1], leaves[2]);
    b.disk.inject(*rotten.hash(), StorageFault::FlippedBit);
    b.disk.inject(*unreadable.hash(), StorageFault::Unreadable);
    // From the store alone the read fails partway.
    assert!(b.read_offline(&root).is_err());

    assert_eq!(b.read_online(&root).await, data);
    // The session that fetched the good copies has stored them by the time
    // it ends: poll rather than guess how long that takes.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while b.disk.faults().contains_key(rotten.hash()) && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The corrupt copy was replaced by the verified one; the unreadable
    // one, which proves nothing, was left alone.
    let faults = b.disk.faults();
    assert_eq!(faults.len(), 1, "{faults:?}");
    assert_eq!(
        faults.get(unreadable.hash()),
        Some(&StorageFault::Unreadable)
    );
    assert!(b.node.store().get(&rotten).unwrap().is_some());
    b.disk.heal(unreadable.hash());
    assert_eq!(b.read_offline(&root).unwrap(), data);
}

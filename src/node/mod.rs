//! The node: wires the store and the DAG layer together from a [`Config`]
//! and exposes every capability as a plain Rust API that the CLI, the RPC
//! server, the gateway and netsim call.
//!
//! [`Node`] itself (this file) holds the offline operations, one file per
//! concern: [`add`](Node::add_path) in `add.rs`, reading (cat, get, ls,
//! resolve) in `read.rs`, pins and replication records in `pins.rs`, raw
//! blocks in `blocks.rs`, CAR import/export in `car.rs`, IPNS publish and
//! resolve in `names.rs`, durable logs' network side in `logs.rs`, and
//! GC, stat, verify and flush in `maintenance.rs`. [`online::OnlineNode`] adds the network, [`provide`]
//! announces content on the DHT, [`repo`] is the directory a node lives in
//! and [`config`] its `config.toml`.

mod add;
mod blocks;
mod bootstrap;
mod car;
pub mod config;
mod dag;
mod error;
mod logs;
mod maintenance;
mod mfs;
mod names;
pub mod online;
mod pins;
pub mod provide;
mod read;
mod remote;
pub mod repo;

pub use add::{AddInput, AddOptions, AddedEntry};
pub use car::CarImport;
pub use config::Config;
pub use dag::{split_path, DagPutOptions, ObjectStat, MAX_DAG_PUT_INPUT};
pub use error::{BoxedSource, NodeError, UnsupportedInput};
pub use maintenance::{RepoStat, VerifyReport};
pub use mfs::CopySource;
pub(crate) use pins::user_claimed;
pub use pins::{Hold, PinEntry, PinHolder, Unpinned};
pub use repo::Repo;

use crate::dag::reader::ReadOptions;
use crate::dag::BlockSource;
use crate::names::ipns::Names;
use crate::names::Keystore;
use crate::store::{HotCache, HotStore, MemoryStore, RebuildReport, Store};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A cairn node without its network: a store, its config and identity.
pub struct Node {
    store: Arc<dyn Store>,
    config: Config,
    path: Option<PathBuf>,
    read_opts: ReadOptions,
    key_seed: [u8; 32],
    keys: Arc<Keystore>,
    names: Arc<Names>,
    mfs: Arc<crate::names::mfs::Mfs>,
    logs: Arc<crate::log::Logs>,
    index_rebuilt: Option<RebuildReport>,
    /// The memory tier in front of `store`, when `[store] hot_cache` is on.
    hot: Option<Arc<HotCache>>,
    /// Resolved paths and listings remembered (sized from `hot_cache`).
    resolved: Arc<crate::dag::reader::ResolveCache>,
    /// Who else keeps pins (`pins.rs`): asked by `pin rm`.
    pin_holders: std::sync::RwLock<Vec<Arc<dyn PinHolder>>>,
}

impl Node {
    /// Opens the repo at `path` (creating it on first use). An index that
    /// cannot be used is rebuilt from the segments: see
    /// [`Node::index_rebuilt`].
    pub fn open(path: &Path) -> Result<Node, NodeError> {
        Self::from_repo(Repo::open(path, false)?)
    }

    /// Opens the repo at `path` after rebuilding its block index from the
    /// segments (`cairn repo rebuild-index`); the report is
    /// [`Node::index_rebuilt`].
    pub fn open_rebuilding_index(path: &Path) -> Result<Node, NodeError> {
        Self::from_repo(Repo::open(path, true)?)
    }

    fn from_repo(repo: Repo) -> Result<Node, NodeError> {
        let key_seed = *repo.key_seed();
        let keys = Arc::new(Keystore::open(repo.path.join("keystore"), key_seed));
        let index_rebuilt = repo.store.rebuilt_index().cloned();
        let disk: Arc<dyn Store> = Arc::new(repo.store);
        let hot_bytes = repo.config.store.hot_cache.bytes();
        let (store, hot): (Arc<dyn Store>, _) = match hot_bytes {
            0 => (disk, None),
            _ => {
                let block_max = repo.config.store.hot_cache_block_max.bytes();
                let file_max = repo.config.store.hot_cache_file_max.bytes();
                let cache = Arc::new(HotCache::new(hot_bytes, block_max, file_max));
                let store = Arc::new(HotStore::new(disk, Arc::clone(&cache)));
                (store, Some(cache))
            }
        };
        let names = Names::new(
            Arc::clone(&keys),
            Arc::clone(&store),
            repo.config.ipns.clone(),
        );
        let node = Node {
            logs: Arc::new(crate::log::Logs::open(
                Arc::clone(&store),
                Arc::clone(&keys),
            )),
            keys,
            names: Arc::new(names),
            mfs: mfs::open(&store, &repo.config),
            index_rebuilt,
            store,
            hot,
            resolved: read::resolve_cache_for(hot_bytes),
            config: repo.config,
            path: Some(repo.path),
            read_opts: ReadOptions::default(),
            key_seed,
            pin_holders: Default::default(),
        };
        node.hold_log_heads();
        Ok(node)
    }

    /// The memory tier in front of the store (`[store] hot_cache`): its
    /// blocks can be read without touching the disk, from async code too.
    pub fn hot_cache(&self) -> Option<&Arc<HotCache>> {
        self.hot.as_ref()
    }

    /// What rebuilding the index found, when opening the repo rebuilt it.
    pub fn index_rebuilt(&self) -> Option<&RebuildReport> {
        self.index_rebuilt.as_ref()
    }

    /// A node whose blocks live in memory (tests, netsim).
    pub fn in_memory(config: Config, key_seed: [u8; 32]) -> Node {
        Node::with_store(Arc::new(MemoryStore::new()), config, key_seed)
    }

    /// A node on `store` (tests and netsim hand it one that fails on
    /// purpose: [`FaultyStore`](crate::store::FaultyStore)).
    pub fn with_store(store: Arc<dyn Store>, config: Config, key_seed: [u8; 32]) -> Node {
        let keys = Arc::new(Keystore::in_memory(key_seed));
        let names = Names::new(Arc::clone(&keys), Arc::clone(&store), config.ipns.clone());
        let resolved = read::resolve_cache_for(config.store.hot_cache.bytes());
        let node = Node {
            mfs: mfs::open(&store, &config),
            logs: Arc::new(crate::log::Logs::open(
                Arc::clone(&store),
                Arc::clone(&keys),
            )),
            store,
            config,
            path: None,
            read_opts: ReadOptions::default(),
            key_seed,
            keys,
            names: Arc::new(names),
            index_rebuilt: None,
            hot: None,
            resolved,
            pin_holders: Default::default(),
        };
        node.hold_log_heads();
        node
    }

    /// Makes the logs a [`PinHolder`]: `pin rm` of a log's head is refused
    /// (or, pinned by the user too, takes only the user's claim), online
    /// and offline alike.
    fn hold_log_heads(&self) {
        self.add_pin_holder(Arc::clone(&self.logs) as Arc<dyn PinHolder>);
    }

    /// The node's Ed25519 secret seed (its libp2p identity).
    pub fn key_seed(&self) -> [u8; 32] {
        self.key_seed
    }

    /// The node's named keys (`self` is its own).
    pub fn keys(&self) -> &Arc<Keystore> {
        &self.keys
    }

    /// The node's IPNS names: publish, resolve, republish.
    pub fn names(&self) -> &Arc<Names> {
        &self.names
    }

    /// The node's durable logs.
    pub fn logs(&self) -> &Arc<crate::log::Logs> {
        &self.logs
    }

    /// The libp2p peer ID this node has.
    pub fn peer_id(&self) -> Result<libp2p::PeerId, NodeError> {
        let key = crate::net::swarm::keypair_from_seed(self.key_seed)?;
        Ok(key.public().to_peer_id())
    }

    /// Starts networking on this node's store with its identity and `net`
    /// (usually `config().net`, with flags applied). Needs a tokio runtime.
    pub async fn start_network(
        &self,
        net: &config::NetSettings,
    ) -> Result<crate::net::Network, NodeError> {
        let mut config = net.to_net_config()?;
        config.value_validator = Some(self.names.validator());
        config.pubsub = self.config.pubsub.to_pubsub_config()?;
        Ok(crate::net::Network::start(self.key_seed, Arc::clone(&self.store), &config).await?)
    }

    /// The repo directory the node was opened from (`None` in memory).
    pub fn repo_path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// The settings this node was opened with.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The block store (disk or memory).
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// The store as the DAG layer reads it.
    fn source(&self) -> Arc<dyn BlockSource> {
        Arc::new(crate::dag::SharedStore(Arc::clone(&self.store)))
    }
}

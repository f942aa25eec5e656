//! The node online: the store and DAG layer joined to the network.
//!
//! [`OnlineNode`] starts the network for a [`Node`] (its identity, store and
//! `[net]` settings), reconnects to the peers its DHT routing table held
//! when it last ran, runs the provider (announce and reprovide), and offers
//! the operations that need peers: reading a file while its blocks arrive,
//! making a whole DAG local, pinning content that is not local yet. The RPC
//! server, the gateway and netsim call this.

use super::config::NetSettings;
use super::provide::Provider;
pub use super::remote::RemoteTurn;
use super::{Node, NodeError};
use crate::block::Cid;
use crate::dag::fetch::DagFetch;
use crate::dag::reader::{FileReader, ReadOptions};
use crate::dag::BlockSource;
use crate::net::bitswap::fetch::{FetchOptions, FetchSession};
use crate::net::Network;
use crate::store::PinKind;
use libp2p::{Multiaddr, PeerId};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Metadata key of the persisted DHT routing table.
const ROUTING_TABLE_KEY: &str = "net.routing_table";

/// How often the routing table is written to the repo (a node killed
/// without a clean shutdown rejoins from the last save).
const ROUTING_SAVE_INTERVAL: Duration = Duration::from_secs(60);

/// The first save, once the node has had time to meet its peers.
const ROUTING_FIRST_SAVE: Duration = Duration::from_secs(5);

/// Most routing-table peers persisted.
const MAX_SAVED_ROUTES: usize = 2000;

/// Leaf bytes a read fetches ahead of the bytes it returns while they come
/// from peers (local blocks: the default window): 128 blocks of 256 KiB.
const NET_READ_WINDOW_BYTES: u64 = 32 << 20;

/// A node with its network running.
pub struct OnlineNode {
    node: Arc<Node>,
    net: Arc<Network>,
    provider: Provider,
    fetch: FetchOptions,
    /// Held shared by adds, pins and imports (their blocks are stored before
    /// they are pinned), exclusively by GC.
    gc_lock: Arc<tokio::sync::RwLock<()>>,
    /// Transport rates (in, out) and the reading they were computed from.
    rates: std::sync::Mutex<RateState>,
    /// HTTP responses by surface and status (`/metrics`).
    requests: crate::http::RequestMetrics,
    /// Replication: records, repair, scrub.
    replicator: crate::replicate::Replicator,
    /// Requests' fetches of content that is not local.
    remote: super::remote::RemoteFetches,
    /// Followed logs whose follow task runs (`logs.rs`).
    pub(super) log_following: super::logs::Following,
}

/// Transport rates and the reading they came from.
struct RateState {
    at: std::time::Instant,
    last: crate::net::Bandwidth,
    rates: (f64, f64),
}

/// Exposes replication's counters.
#[derive(Debug)]
struct ReplicateCollector(Arc<crate::replicate::ReplicateStats>);

impl prometheus_client::collector::Collector for ReplicateCollector {
    fn encode(
        &self,
        mut encoder: prometheus_client::encoding::DescriptorEncoder,
    ) -> Result<(), std::fmt::Error> {
        use crate::net::metrics::encode_counter;
        use prometheus_client::encoding::EncodeMetric;
        use std::sync::atomic::Ordering::Relaxed;
        let under = prometheus_client::metrics::gauge::ConstGauge::new(
            self.0.under_replicated.load(Relaxed) as i64,
        );
        let m = encoder.encode_descriptor(
            "replication_under_replicated_roots",
            "Replicated roots below their factor at the last repair round",
            None,
            under.metric_type(),
        )?;
        under.encode(m)?;
        encode_counter(
            &mut encoder,
            "replication_repairs",
            "Replicas placed on peers",
            self.0.repairs.load(Relaxed),
        )?;
        encode_counter(
            &mut encoder,
            "replication_repair_bytes",
            "Bytes fetched to hold replicas asked of this node",
            self.0.repair_bytes.load(Relaxed),
        )?;
        encode_counter(
            &mut encoder,
            "scrub_checked_blocks",
            "Blocks re-hashed by the scrub",
            self.0.scrub_checked.load(Relaxed),
        )?;
        encode_counter(
            &mut encoder,
            "scrub_corrupt_blocks",
            "Corrupt blocks the scrub found",
            self.0.scrub_corrupt.load(Relaxed),
        )?;
        encode_counter(
            &mut encoder,
            "scrub_repaired_blocks",
            "Corrupt blocks replaced by verified copies from peers",
            self.0.scrub_repaired.load(Relaxed),
        )?;
        encode_counter(
            &mut encoder,
            "scrub_unreadable_blocks",
            "Blocks the scrub could not read (I/O errors; left as they are)",
            self.0.scrub_unreadable.load(Relaxed),
        )
    }
}

/// Exposes the provider's counters.
#[derive(Debug)]
struct ProvideCollector(Arc<super::provide::ProvideStats>);

impl prometheus_client::collector::Collector for ProvideCollector {
    fn encode(
        &self,
        mut encoder: prometheus_client::encoding::DescriptorEncoder,
    ) -> Result<(), std::fmt::Error> {
        use crate::net::metrics::encode_counter;
        use std::sync::atomic::Ordering::Relaxed;
        encode_counter(
            &mut encoder,
            "provide_announced",
            "Provider records placed on the DHT",
            self.0.provided.load(Relaxed),
        )?;
        encode_counter(
            &mut encoder,
            "provide_failed",
            "Provider announcements that reached no peer",
            self.0.failed.load(Relaxed),
        )?;
        encode_counter(
            &mut encoder,
            "provide_sweeps",
            "Complete reprovide sweeps",
            self.0.sweeps.load(Relaxed),
        )?;
        crate::net::metrics::encode_gauge(
            &mut encoder,
            "provide_pending",
            "Keys of new content waiting to be announced",
            self.0.pending.load(Relaxed) as i64,
        )
    }
}

impl OnlineNode {
    /// Starts networking with `settings` (usually `node.config().net` with
    /// flags applied): listens, restores the routing table saved by the last
    /// run, dials `settings.bootstrap`, starts the provider. Needs a tokio
    /// runtime.
    pub async fn start(node: Arc<Node>, settings: &NetSettings) -> Result<OnlineNode, NodeError> {
        let net = Arc::new(node.start_network(settings).await?);
        let provider = Provider::spawn(
            node.config().provide.clone(),
            Arc::clone(node.store()),
            net.swarm.clone(),
        );
        let fetch = FetchOptions {
            stall_timeout: settings.fetch_timeout,
            ..FetchOptions::default()
        };
        let gc_lock = Arc::new(tokio::sync::RwLock::new(()));
        let repl = &node.config().replication;
        let replicate_config = crate::replicate::ReplicateConfig {
            factor: repl.factor.max(1),
            max: repl.max.max(repl.factor.max(1)),
            repair_interval: repl.repair_interval,
            grace: repl.grace,
            repair_bytes_per_sec: repl.repair_bandwidth.bytes(),
            scrub_interval: repl.scrub_interval,
            scrub_bytes_per_sec: repl.scrub_bandwidth.bytes(),
            storage_max: node.config().storage.max.bytes(),
            fetch_stall: settings.fetch_timeout,
            tombstone_ttl: repl.tombstone_ttl,
        };
        let replicator = crate::replicate::Replicator::start(
            net.peer_id,
            Arc::clone(node.store()),
            net.bitswap.clone(),
            net.swarm.clone(),
            net.stream_control(),
            replicate_config,
            Arc::clone(&gc_lock),
        )
        .await?;
        let online = OnlineNode {
            node,
            net,
            provider,
            fetch,
            gc_lock,
            rates: std::sync::Mutex::new(RateState {
                at: std::time::Instant::now(),
                last: crate::net::Bandwidth::default(),
                rates: (0.0, 0.0),
            }),
            requests: Default::default(),
            replicator,
            remote: super::remote::RemoteFetches::new(settings.max_remote_fetches),
            log_following: Default::default(),
        };
        {
            let mut registry = online.net.metrics.lock().unwrap_or_else(|e| e.into_inner());
            let ours = registry.sub_registry_with_prefix("cairn");
            ours.register(
                "http_requests",
                "HTTP responses by surface (api, gateway, s3) and status",
                online.requests.counts.clone(),
            );
            ours.register(
                "http_request_seconds",
                "Time to answer an HTTP request (to the response's head), by surface",
                online.requests.latency.clone(),
            );
            ours.register(
                "http_route_seconds",
                "Time to answer an HTTP read request (to the response's head), by surface and read route",
                online.requests.routes.clone(),
            );
            ours.register_collector(Box::new(ProvideCollector(Arc::clone(
                &online.provider.stats,
            ))));
            ours.register_collector(Box::new(ReplicateCollector(Arc::clone(
                online.replicator.stats(),
            ))));
            ours.register_collector(Box::new(online.remote.collector()));
            if let Some(hot) = online.node.hot_cache() {
                ours.register_collector(Box::new(super::blocks::HotCollector(Arc::clone(hot))));
            }
            ours.register_collector(Box::new(super::read::ResolveCollector(Arc::clone(
                online.node.resolve_cache(),
            ))));
        }
        online.restore_routes().await;
        online.start_names();
        online.start_mfs_autopublish();
        online.start_logs();
        {
            let net = Arc::clone(&online.net);
            let node = Arc::clone(&online.node);
            online.net.swarm.spawn_task(async move {
                tokio::time::sleep(ROUTING_FIRST_SAVE).await;
                save_routes(&net, &node).await;
                let mut tick = tokio::time::interval(ROUTING_SAVE_INTERVAL);
                tick.tick().await;
                loop {
                    tick.tick().await;
                    save_routes(&net, &node).await;
                }
            })
        };
        Ok(online)
    }

    async fn restore_routes(&self) {
        let Ok(Some(bytes)) = self.node.store().meta_get(ROUTING_TABLE_KEY) else {
            return;
        };
        let Ok(saved) = serde_json::from_slice::<Vec<(String, Vec<String>)>>(&bytes) else {
            tracing::warn!("the saved routing table does not parse; starting without it");
            return;
        };
        let routes: Vec<(PeerId, Vec<Multiaddr>)> = saved
            .into_iter()
            .filter_map(|(p, addrs)| {
                let peer: PeerId = p.parse().ok()?;
                let addrs: Vec<Multiaddr> = addrs.iter().filter_map(|a| a.parse().ok()).collect();
                (!addrs.is_empty()).then_some((peer, addrs))
            })
            .collect();
        if routes.is_empty() {
            return;
        }
        tracing::info!(peers = routes.len(), "restoring the DHT routing table");
        let _ = self.net.swarm.add_routes(routes).await;
    }

    /// Writes the routing table to the repo now (also done every minute
    /// and by [`stop`](Self::stop)).
    pub async fn save_routes(&self) {
        save_routes(&self.net, &self.node).await
    }

    /// The offline node under the network.
    pub fn node(&self) -> &Arc<Node> {
        &self.node
    }

    /// The running network (swarm handle, Bitswap, metrics).
    pub fn net(&self) -> &Arc<Network> {
        &self.net
    }

    /// Replication of pinned roots.
    pub fn replicator(&self) -> &crate::replicate::Replicator {
        &self.replicator
    }

    /// The HTTP response counter the API and gateway routers feed.
    pub fn request_counter(&self) -> crate::http::RequestMetrics {
        self.requests.clone()
    }

    /// Every metric, in the Prometheus/OpenMetrics text format.
    pub fn metrics_text(&self) -> String {
        let mut text = String::new();
        let registry = self.net.metrics.lock().unwrap_or_else(|e| e.into_inner());
        let _ = prometheus_client::encoding::text::encode(&mut text, &registry);
        text
    }

    /// The lock that keeps GC from running while content is being added.
    pub fn gc_lock(&self) -> &Arc<tokio::sync::RwLock<()>> {
        &self.gc_lock
    }

    /// Transport bytes per second (in, out).
    ///
    /// Computed when asked (reading the metrics costs more than a timer
    /// should spend every second on each of hundreds of netsim nodes): the
    /// rate between this reading and the previous one, readings at least a
    /// second apart (the first covers the time since start).
    pub fn bandwidth_rates(&self) -> (f64, f64) {
        let mut st = self.rates.lock().unwrap_or_else(|e| e.into_inner());
        let elapsed = st.at.elapsed().as_secs_f64();
        if elapsed >= 1.0 {
            let now = self.net.bandwidth();
            st.rates = (
                now.total_in.saturating_sub(st.last.total_in) as f64 / elapsed,
                now.total_out.saturating_sub(st.last.total_out) as f64 / elapsed,
            );
            st.last = now;
            st.at = std::time::Instant::now();
        }
        st.rates
    }

    /// The DHT provider (announcing and reproviding content).
    pub fn provider(&self) -> &Provider {
        &self.provider
    }

    /// Fetch tuning from the config.
    pub fn fetch_options(&self) -> FetchOptions {
        self.fetch
    }

    /// A fetch session for content under `root`.
    pub async fn session(&self, root: Option<Cid>) -> Result<FetchSession, NodeError> {
        Ok(self.net.bitswap.session(root, self.fetch).await?)
    }

    /// A block source for content under `root`: the store, and the network
    /// only once a block is missing. Call inside the runtime; use from
    /// blocking threads.
    pub fn source(&self, root: Option<Cid>) -> Arc<crate::net::bitswap::fetch::LazySource> {
        self.source_until(root, Default::default())
    }

    /// [`source`](Self::source) whose waits for peers end when `cancel`
    /// is cancelled (the request it serves ended).
    pub fn source_until(
        &self,
        root: Option<Cid>,
        cancel: CancellationToken,
    ) -> Arc<crate::net::bitswap::fetch::LazySource> {
        Arc::new(
            crate::net::bitswap::fetch::LazySource::new(
                self.net.bitswap.clone(),
                Arc::clone(self.node.store()),
                root,
                self.fetch,
            )
            .until(cancel),
        )
    }

    /// Makes the block `root` local before a request reads the DAG under
    /// it: at once when it is local (local reads never wait for a turn),
    /// else once the block is stored, with a turn among the remote fetches
    /// (one fetch shared by every request for `root`). Hold the turn while
    /// answering, passing its token to the request's sources; drop the
    /// future to give up waiting.
    pub async fn remote_turn(&self, root: Cid) -> Result<RemoteTurn, NodeError> {
        let cancel = tokio_util::sync::CancellationToken::new();
        if root.hash().code() == crate::block::IDENTITY || self.node.store().has(&root)? {
            return Ok(RemoteTurn::new(None, cancel));
        }
        let (bitswap, opts) = (self.net.bitswap.clone(), self.fetch);
        let start = move || {
            futures::FutureExt::boxed(async move { bitswap.session(Some(root), opts).await })
        };
        let turn = self.remote.root(root, start).await?;
        Ok(RemoteTurn::new(Some(turn), cancel))
    }

    /// A reader of the file at `path` (`CID[/path]`), fetching missing
    /// blocks as the reader reaches them (several ahead) and caching them.
    /// Returns the session too, for progress figures. Blocking work runs on
    /// a blocking thread; reading the returned reader blocks too.
    pub async fn cat(
        &self,
        path: &str,
        offset: u64,
        length: Option<u64>,
    ) -> Result<(FileReader, Arc<crate::net::bitswap::fetch::LazySource>), NodeError> {
        self.cat_until(path, offset, length, CancellationToken::new())
            .await
    }

    /// [`cat`](Self::cat) for a request: its waits for peers end when
    /// `cancel` is cancelled (see [`RemoteTurn`]).
    pub async fn cat_until(
        &self,
        path: &str,
        offset: u64,
        length: Option<u64>,
        cancel: CancellationToken,
    ) -> Result<(FileReader, Arc<crate::net::bitswap::fetch::LazySource>), NodeError> {
        let root = crate::block::parse_cid(path)?;
        let lazy = self.source_until(Some(root), cancel);
        let source: Arc<dyn BlockSource> = lazy.clone();
        let node = Arc::clone(&self.node);
        let path = path.to_string();
        let opts = ReadOptions::default().fetching_ahead(NET_READ_WINDOW_BYTES);
        let reader =
            tokio::task::spawn_blocking(move || node.cat_from(source, &path, offset, length, opts))
                .await
                .map_err(|source| NodeError::Join {
                    task: "reader",
                    source,
                })??;
        Ok((reader, lazy))
    }

    /// Resolves `path` (`CID[/path]`), fetching the directory blocks on the
    /// way if needed (until `cancel` is cancelled).
    pub async fn resolve(&self, path: &str, cancel: CancellationToken) -> Result<Cid, NodeError> {
        if let Some(cid) = self.node.resolved(path) {
            return Ok(cid);
        }
        let root = crate::block::parse_cid(path)?;
        let source = self.source_until(Some(root), cancel);
        let node = Arc::clone(&self.node);
        let path = path.to_string();
        tokio::task::spawn_blocking(move || node.resolve_in(&*source, &path))
            .await
            .map_err(|source| NodeError::Join {
                task: "resolver",
                source,
            })?
    }

    /// Makes every block of the DAG under `root` local (fetching what is
    /// missing; cached, not pinned), calling `progress` as blocks come.
    pub async fn fetch_dag(
        &self,
        root: Cid,
        session: Option<&FetchSession>,
        progress: &mut (dyn FnMut(DagFetch) + Send),
    ) -> Result<DagFetch, NodeError> {
        let own;
        let session = match session {
            Some(s) => s,
            None => {
                own = self.session(Some(root)).await?;
                &own
            }
        };
        let before = session
            .progress()
            .blocks
            .load(std::sync::atomic::Ordering::Relaxed);
        let stats = self
            .net
            .bitswap
            .fetch_dag_in(session, root, progress)
            .await?;
        let fetched = session
            .progress()
            .blocks
            .load(std::sync::atomic::Ordering::Relaxed)
            - before;
        if fetched > 0 {
            self.provider.announce_cached(root).await;
        }
        Ok(stats)
    }

    /// `pin add`: fetches what is missing, pins, announces.
    pub async fn pin_add(
        &self,
        root: Cid,
        recursive: bool,
        progress: &mut (dyn FnMut(DagFetch) + Send),
    ) -> Result<(), NodeError> {
        if recursive {
            // Every block is local and verified when this returns (the
            // caller holds the GC lock), so the pin needs no second walk.
            self.fetch_dag(root, None, progress).await?;
        } else {
            let session = self.session(Some(root)).await?;
            session.get(root).await?;
            session.flush().await?;
        }
        let node = Arc::clone(&self.node);
        tokio::task::spawn_blocking(move || {
            if recursive {
                node.pin_complete(&root)
            } else {
                node.pin_add(&root, false)
            }
        })
        .await
        .map_err(|source| NodeError::Join {
            task: "pin",
            source,
        })??;
        let kind = if recursive {
            PinKind::Recursive
        } else {
            PinKind::Direct
        };
        self.provider.announce_dag(root, Some(kind)).await;
        Ok(())
    }

    /// Announces newly added or imported content under `root`, as the
    /// provide strategy says for content pinned as `pin`.
    pub async fn announce_added(&self, root: Cid, pin: Option<PinKind>) {
        self.provider.announce_dag(root, pin).await;
    }

    /// Content was removed or unpinned: the DHT no longer hears us claim
    /// what the provide strategy does not cover now.
    pub async fn withdraw_stale(&self) {
        self.provider.withdraw_stale().await;
    }

    /// Announces one stored block (`block put`).
    pub async fn announce_block(&self, cid: Cid, pinned: bool) {
        self.provider.announce_block(cid, pinned).await;
    }

    /// Saves the routing table, then stops the network and every
    /// background task.
    pub async fn stop(&self) {
        self.save_routes().await;
        self.net.swarm.close().await;
    }

    /// Stops the network and every background task at once, saving
    /// nothing (what a crash does; the store stays as it is). netsim
    /// crashes nodes with this.
    pub fn shutdown(&self) {
        self.net.swarm.shutdown();
    }

    /// Whether `root` is pinned here.
    pub fn pinned(&self, root: &Cid) -> Result<Option<PinKind>, NodeError> {
        Ok(self.node.store().pin_of(root)?)
    }
}

async fn save_routes(net: &Network, node: &Node) {
    let Ok(table) = net.swarm.routing_table().await else {
        return;
    };
    let saved: Vec<(String, Vec<String>)> = table
        .into_iter()
        .take(MAX_SAVED_ROUTES)
        .map(|(p, addrs)| {
            let addrs = addrs
                .iter()
                .take(crate::net::swarm::MAX_ADDRS_PER_PEER)
                .map(|a| a.to_string())
                .collect();
            (p.to_string(), addrs)
        })
        .collect();
    if saved.is_empty() {
        return;
    }
    let Ok(bytes) = serde_json::to_vec(&saved) else {
        return;
    };
    let store = Arc::clone(node.store());
    let _ = tokio::task::spawn_blocking(move || {
        if let Err(e) = store.meta_put(ROUTING_TABLE_KEY, Some(&bytes)) {
            tracing::warn!("saving the routing table: {e}");
        }
    })
    .await;
}

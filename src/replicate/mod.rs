//! Replication: every root pinned with a replication factor stays stored on
//! that many live nodes, while nodes crash, leave and come back.
//!
//! - [`record`]: the replication record every holder keeps (factor,
//!   holders, version, tombstone) and how records merge.
//! - [`plan`]: the pure repair decision (who acts, who is lost, whom to
//!   ask, whom to trim).
//! - [`protocol`]: `/cairn/replicate/1.0.0` messages.
//! - `records`: the records this node keeps, each change atomic.
//! - `commands`: what users ask: replicate a pinned root, remove it
//!   everywhere, report its holders.
//! - `server`: answers to peers' requests.
//! - `exchange`: one request to a peer, looking it up on the DHT if need be.
//! - `repair`: the repair loop, every `[replication] repair_interval`:
//!   probe the holders, plan, place and trim.
//! - `probe`: probing a root's holders and this node.
//! - `replica`: this node's own copies: fetching one asked of it, listing
//!   itself in a record, dropping one.
//! - `scrub`: re-hashing stored blocks, replacing corrupt ones with
//!   verified copies from other holders.
//! - `owned_pins`: which local pins are the replicator's to remove.
//! - this module: the [`Replicator`] handle, its settings, counters and
//!   shared state.
//!
//! Placement is by XOR distance from the root, so any node can compute who
//! should hold a root; a node over its storage quota refuses and the next
//! closest is asked. Repair fetches stay under `[replication]
//! repair_bandwidth`. Store work (reads, writes that flush) runs on
//! blocking threads, a few jobs at once, never on the async runtime.

mod commands;
mod error;
mod exchange;
mod owned_pins;
pub mod plan;
mod probe;
pub mod protocol;
pub mod record;
mod records;
mod repair;
mod replica;
mod scrub;
mod server;

pub use commands::{HolderStatus, RootStatus};
pub use error::ReplicateError;
pub(crate) use owned_pins::{disown_pin, own_pin, owns_pin, replicated_here};
pub use scrub::ScrubReport;

use crate::block::Cid;
use crate::net::bitswap::driver::Bitswap;
use crate::net::swarm::SwarmHandle;
use crate::store::Store;
use libp2p::{PeerId, StreamProtocol};
use plan::Observed;
use record::Record;
use records::RecordBook;
use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Settings, parsed from `[replication]` and `[storage]`.
#[derive(Clone, Debug)]
pub struct ReplicateConfig {
    /// Copies a root gets when `pin add --replication` names no factor.
    pub factor: u8,
    /// Copies tolerated before the surplus is trimmed (at least the factor).
    pub max: u8,
    /// How often the repair loop runs a round over every record.
    pub repair_interval: Duration,
    /// How long a holder may fail probes before it is replaced.
    pub grace: Duration,
    /// Bytes per second for repair fetches (0: unlimited).
    pub repair_bytes_per_sec: u64,
    /// How often the scrub re-hashes every stored block.
    pub scrub_interval: Duration,
    /// Bytes per second the scrub reads (0: unlimited).
    pub scrub_bytes_per_sec: u64,
    /// The store's quota (0: none).
    pub storage_max: u64,
    /// A repair fetch gives up when nothing arrives for this long.
    pub fetch_stall: Duration,
    /// How long after this node learned a tombstone it forgets it.
    pub tombstone_ttl: Duration,
}

/// How long one protocol exchange may take.
const EXCHANGE_TIMEOUT: Duration = Duration::from_secs(10);

/// Shortest period of the repair and scrub loops.
const MIN_INTERVAL: Duration = Duration::from_millis(200);

/// Store jobs run at once on blocking threads (see [`Replicator::blocking`]).
const BLOCKING_JOBS: usize = 4;

/// Counters for metrics.
#[derive(Debug, Default)]
pub struct ReplicateStats {
    /// Copies placed (accepted by a peer).
    pub repairs: AtomicU64,
    /// Bytes fetched to hold copies asked of this node.
    pub repair_bytes: AtomicU64,
    /// Roots below their factor at the last round.
    pub under_replicated: AtomicU64,
    /// Corrupt blocks the scrub found.
    pub scrub_corrupt: AtomicU64,
    /// Corrupt blocks replaced by verified copies from peers.
    pub scrub_repaired: AtomicU64,
    /// Blocks the scrub checked.
    pub scrub_checked: AtomicU64,
    /// Blocks the scrub could not read (I/O errors; left as they are).
    pub scrub_unreadable: AtomicU64,
}

/// What the tasks share besides the records.
#[derive(Default)]
struct State {
    /// What probes saw of each root's holders.
    observed: HashMap<Cid, HashMap<PeerId, Observed>>,
    /// Peers that refused a copy (or did not answer), and when.
    refused: HashMap<PeerId, Instant>,
    /// Peers a DHT lookup did not find, and when.
    not_found: HashMap<PeerId, Instant>,
    /// Roots this node is fetching to hold.
    pinning: HashSet<Cid>,
    /// Sampled CIDs of each root's DAG.
    samples: HashMap<Cid, Vec<Cid>>,
    /// Roots a repair is running for (a round, or a new pin's placement):
    /// one at a time per root, or both would place copies.
    repairing: HashSet<Cid>,
    /// Roots whose first placement is being retried (at most
    /// `commands::PLACE_RETRIES_MAX` at once).
    retrying: HashSet<Cid>,
}

struct Inner {
    me: PeerId,
    store: Arc<dyn Store>,
    bitswap: Bitswap,
    swarm: SwarmHandle,
    control: Mutex<libp2p_stream::Control>,
    config: ReplicateConfig,
    /// Shared with adds and GC: no GC while a repair copy is fetched.
    gc_lock: Arc<tokio::sync::RwLock<()>>,
    state: Mutex<State>,
    records: RecordBook,
    stats: Arc<ReplicateStats>,
    /// Bounds the store jobs on blocking threads.
    blocking: Arc<tokio::sync::Semaphore>,
}

/// A cloneable handle to the replication service.
#[derive(Clone)]
pub struct Replicator {
    inner: Arc<Inner>,
}

/// The clock in unix seconds (0 before 1970).
pub(crate) fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl Replicator {
    /// Loads the records kept in the store and starts serving, repairing
    /// and scrubbing. Needs a tokio runtime.
    #[allow(clippy::too_many_arguments)]
    pub async fn start(
        me: PeerId,
        store: Arc<dyn Store>,
        bitswap: Bitswap,
        swarm: SwarmHandle,
        mut control: libp2p_stream::Control,
        config: ReplicateConfig,
        gc_lock: Arc<tokio::sync::RwLock<()>>,
    ) -> Result<Replicator, ReplicateError> {
        let stored = Arc::clone(&store);
        let records = tokio::task::spawn_blocking(move || RecordBook::load(stored))
            .await
            .map_err(ReplicateError::Blocking)?
            .map_err(ReplicateError::Load)?;
        let incoming = control
            .accept(StreamProtocol::new(protocol::PROTOCOL))
            .map_err(|source| ReplicateError::Listen {
                protocol: protocol::PROTOCOL,
                source,
            })?;
        let r = Replicator {
            inner: Arc::new(Inner {
                me,
                store,
                bitswap,
                swarm,
                control: Mutex::new(control),
                config,
                gc_lock,
                state: Mutex::default(),
                records,
                stats: Arc::default(),
                blocking: Arc::new(tokio::sync::Semaphore::new(BLOCKING_JOBS)),
            }),
        };
        let server = r.clone();
        r.inner
            .swarm
            .spawn_task(async move { server.serve(incoming).await });
        r.every(r.inner.config.repair_interval, |r| async move {
            r.repair_all().await
        });
        r.every(r.inner.config.scrub_interval, |r| async move {
            r.scrub_pass().await;
        });
        Ok(r)
    }

    /// Runs `job` every `interval` (at least [`MIN_INTERVAL`]), the first
    /// time one interval from now, until the swarm shuts down.
    fn every<F, Fut>(&self, interval: Duration, job: F)
    where
        F: Fn(Replicator) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let this = self.clone();
        let interval = interval.max(MIN_INTERVAL);
        self.inner.swarm.spawn_task(async move {
            loop {
                tokio::time::sleep(interval).await;
                job(this.clone()).await;
            }
        });
    }

    /// The counters, for metrics.
    pub fn stats(&self) -> &Arc<ReplicateStats> {
        &self.inner.stats
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.inner.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The local record of `root`, if any.
    pub fn record(&self, root: &Cid) -> Option<Record> {
        self.inner.records.get(root)
    }

    /// Runs `job` (store reads, and writes that flush) on a blocking
    /// thread, at most [`BLOCKING_JOBS`] at once: the async runtime's
    /// workers never wait on the disk, and a burst of peers' requests does
    /// not take every blocking thread.
    async fn blocking<T, F>(&self, job: F) -> Result<T, ReplicateError>
    where
        T: Send + 'static,
        F: FnOnce(&Replicator) -> T + Send + 'static,
    {
        // The semaphore is never closed: a permit always comes. The job
        // holds it, so a caller that stops waiting (a timeout) does not let
        // more jobs run than the bound.
        let permit = Arc::clone(&self.inner.blocking).acquire_owned().await.ok();
        let this = self.clone();
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            job(&this)
        })
        .await
        .map_err(ReplicateError::Blocking)
    }

    /// Merges `theirs` into the record book on a blocking thread (see
    /// [`RecordBook::merge`]); ours after the merge.
    async fn merge_record(&self, theirs: Record, adopt: bool) -> Option<Record> {
        let root = theirs.root;
        match self
            .blocking(move |this| this.inner.records.merge(&theirs, adopt))
            .await
        {
            Ok(merged) => merged,
            Err(e) => {
                tracing::warn!(%root, "merging a replication record: {e}");
                None
            }
        }
    }
}

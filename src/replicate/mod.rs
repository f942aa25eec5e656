//! Replication: every root pinned with a replication factor stays stored on
//! that many live nodes, while nodes crash, leave and come back.
//!
//! - [`record`]: the replication record every holder keeps (factor,
//!   holders, version, tombstone) and how records merge.
//! - [`plan`]: the pure repair decision (who acts, who is lost, whom to
//!   ask, whom to trim).
//! - [`protocol`]: `/cairn/replicate/1.0.0` messages.
//! - this module: the [`Replicator`] task that serves the protocol, runs
//!   the repair loop every `[replication] repair_interval` (probe holders,
//!   plan, place and trim), and the scrub that re-hashes stored blocks and
//!   fetches corrupt ones again from other holders.
//!
//! Placement is by XOR distance from the root, so any node can compute who
//! should hold a root; a node over its storage quota refuses and the next
//! closest is asked. Repair fetches stay under `[replication]
//! repair_bandwidth`.

pub mod plan;
pub mod protocol;
pub mod record;
mod records;

use crate::block::{Cid, RAW};
use crate::net::bitswap::driver::Bitswap;
use crate::net::bitswap::fetch::{FetchOptions, ProviderSearch};
use crate::net::swarm::SwarmHandle;
use crate::store::{PinKind, Store};
use futures::StreamExt;
use libp2p::{PeerId, StreamProtocol};
use plan::{HolderState, Observed, RepairPlan, RootState};
use protocol::{read_message, write_message, Request, Response};
use record::Record;
use records::RecordBook;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Store metadata marking a local pin as the replicator's: made to hold a
/// copy for the network, or by `pin add --replication`. Only such pins are
/// removed when a copy is trimmed or the root's record becomes a
/// tombstone; a pin the user made here without replication is theirs.
const OWNED_PIN_PREFIX: &str = "replpin/";

fn owned_pin_key(root: &Cid) -> String {
    format!("{OWNED_PIN_PREFIX}{root}")
}

/// Marks `root`'s local pin as the replicator's.
pub(crate) fn own_pin(store: &dyn Store, root: &Cid) -> Result<(), crate::store::StoreError> {
    store.meta_put(&owned_pin_key(root), Some(b"1"))
}

/// The user pinned (or unpinned) `root` here: the pin is no longer the
/// replicator's to remove. Writes (and flushes) only when there is a mark,
/// so an ordinary pin costs one index lookup more.
pub(crate) fn disown_pin(store: &dyn Store, root: &Cid) -> Result<(), crate::store::StoreError> {
    let key = owned_pin_key(root);
    if store.meta_get(&key)?.is_some() {
        store.meta_put(&key, None)?;
    }
    Ok(())
}

fn owns_pin(store: &dyn Store, root: &Cid) -> bool {
    matches!(store.meta_get(&owned_pin_key(root)), Ok(Some(_)))
}

/// Errors of replication commands.
#[derive(Debug, thiserror::Error)]
pub enum ReplicateError {
    #[error("{root} is not pinned here: pin it (recursively) before replicating it")]
    NotPinned { root: Cid },
    #[error("{root} has no replication record here")]
    Unknown { root: Cid },
    #[error("replication factor must be between 1 and {max}, not {factor}")]
    Factor { factor: u32, max: u32 },
    #[error("storage: {0}")]
    Store(#[from] crate::store::StoreError),
    #[error("{0}")]
    Other(String),
}

/// Settings, parsed from `[replication]` and `[storage]`.
#[derive(Clone, Debug)]
pub struct ReplicateConfig {
    pub factor: u8,
    pub max: u8,
    pub repair_interval: Duration,
    pub grace: Duration,
    /// Bytes per second for repair fetches (0: unlimited).
    pub repair_bytes_per_sec: u64,
    pub scrub_interval: Duration,
    /// Bytes per second the scrub reads (0: unlimited).
    pub scrub_bytes_per_sec: u64,
    /// The store's quota (0: none).
    pub storage_max: u64,
    /// A repair fetch gives up when nothing arrives for this long.
    pub fetch_stall: Duration,
}

/// Blocks of a DAG sampled by each probe (besides the root).
const SAMPLE_BLOCKS: usize = 4;

/// How long looking a peer up on the DHT may take.
const FIND_PEER_TIMEOUT: Duration = Duration::from_secs(5);

/// How long one protocol exchange may take.
const EXCHANGE_TIMEOUT: Duration = Duration::from_secs(10);

/// Roots repaired at once in a round.
const REPAIR_CONCURRENCY: usize = 8;

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
    /// Corrupt blocks fetched again from peers.
    pub scrub_repaired: AtomicU64,
    /// Blocks the scrub checked.
    pub scrub_checked: AtomicU64,
}

/// One holder as `pin status` shows it.
#[derive(Clone, Debug)]
pub struct HolderStatus {
    pub peer: PeerId,
    pub state: HolderState,
    /// Since when (unix seconds) the holder is in this state, when known.
    pub since: Option<u64>,
}

/// `pin status` of a root.
#[derive(Clone, Debug)]
pub struct RootStatus {
    pub record: Record,
    pub state: RootState,
    pub holders: Vec<HolderStatus>,
}

#[derive(Default)]
struct State {
    observed: HashMap<Cid, HashMap<PeerId, Observed>>,
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
    pub stats: Arc<ReplicateStats>,
}

/// A cloneable handle to the replication service.
#[derive(Clone)]
pub struct Replicator {
    inner: Arc<Inner>,
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl Replicator {
    /// Loads the records kept in the store and starts serving, repairing
    /// and scrubbing. Needs a tokio runtime.
    #[allow(clippy::too_many_arguments)]
    pub fn start(
        me: PeerId,
        store: Arc<dyn Store>,
        bitswap: Bitswap,
        swarm: SwarmHandle,
        mut control: libp2p_stream::Control,
        config: ReplicateConfig,
        gc_lock: Arc<tokio::sync::RwLock<()>>,
    ) -> Result<Replicator, ReplicateError> {
        let records = RecordBook::load(Arc::clone(&store))?;
        let incoming = control
            .accept(StreamProtocol::new(protocol::PROTOCOL))
            .map_err(|e| ReplicateError::Other(format!("{}: {e}", protocol::PROTOCOL)))?;
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
            }),
        };
        let tasks = &r.inner.swarm;
        let server = r.clone();
        tasks.spawn_task(async move { server.serve(incoming).await });
        let repairer = r.clone();
        tasks.spawn_task(async move { repairer.repair_loop().await });
        let scrubber = r.clone();
        tasks.spawn_task(async move { scrubber.scrub_loop().await });
        Ok(r)
    }

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

    /// Starts replicating `root` (already pinned here, recursively) at
    /// `factor` copies (`None`: the configured factor), and places copies
    /// right away.
    pub async fn pin(&self, root: Cid, factor: Option<u8>) -> Result<Record, ReplicateError> {
        let factor = factor.unwrap_or(self.inner.config.factor);
        if factor == 0 || factor as usize > record::MAX_HOLDERS {
            return Err(ReplicateError::Factor {
                factor: factor as u32,
                max: record::MAX_HOLDERS as u32,
            });
        }
        if self.inner.store.pin_of(&root)? != Some(PinKind::Recursive) {
            return Err(ReplicateError::NotPinned { root });
        }
        let store = Arc::clone(&self.inner.store);
        let size = tokio::task::spawn_blocking(move || dag_size(&*store, &root))
            .await
            .map_err(|e| ReplicateError::Other(e.to_string()))??;
        let max = self.inner.config.max.max(factor);
        let me = self.inner.me;
        // A replicated pin is the cluster's: removed everywhere by a `pin
        // rm` on any holder.
        own_pin(&*self.inner.store, &root)?;
        let rec = self
            .inner
            .records
            .update(&root, |old| {
                Some(match old {
                    Some(old) => {
                        let mut rec = old.clone();
                        rec.factor = factor;
                        rec.max = max;
                        rec.removed = false;
                        rec.size = size;
                        rec.holders.insert(me);
                        rec.bump();
                        rec
                    }
                    None => Record::new(root, factor, max, size, me),
                })
            })
            .ok_or(ReplicateError::Unknown { root })?;
        // Place the copies now rather than at the next round: until then
        // this node holds the only one, and a round over many roots can
        // take a while when holders are down.
        let this = self.clone();
        self.inner.swarm.spawn_task(async move {
            let candidates = this.candidates().await;
            this.repair(root, &candidates).await;
        });
        Ok(rec)
    }

    /// `pin rm` of a replicated root: a tombstone every holder learns (the
    /// caller removes the local pin). False when the root is not replicated.
    pub async fn unpin(&self, root: &Cid) -> bool {
        match self.record(root) {
            None => return false,
            Some(rec) if rec.removed => return true,
            Some(_) => {}
        }
        let Some(rec) = self.inner.records.update(root, |current| {
            let mut rec = current.filter(|r| !r.removed)?.clone();
            rec.removed = true;
            rec.bump();
            Some(rec)
        }) else {
            return false;
        };
        let me = self.inner.me;
        let targets: Vec<PeerId> = rec.holders.iter().copied().filter(|p| *p != me).collect();
        for p in targets {
            let this = self.clone();
            let rec = rec.clone();
            tokio::spawn(async move {
                let _ = this.exchange(p, Request::Unpin { record: rec }).await;
            });
        }
        true
    }

    /// Probes every holder of `root` now and reports their states.
    pub async fn status(&self, root: &Cid) -> Result<RootStatus, ReplicateError> {
        let rec = self
            .record(root)
            .ok_or(ReplicateError::Unknown { root: *root })?;
        let rec = self.probe_all(rec).await;
        let plan = self.plan(&rec);
        Ok(self.status_of(&rec, &plan))
    }

    fn status_of(&self, rec: &Record, plan: &RepairPlan) -> RootStatus {
        let observed = self.observed_of(&rec.root);
        let now = Instant::now();
        let ago =
            |t: Instant| unix_now().saturating_sub(now.saturating_duration_since(t).as_secs());
        let mut holders = Vec::new();
        for p in plan::by_distance(&rec.root, rec.holders.iter().copied()) {
            let (state, since) = match observed.get(&p) {
                Some(Observed::Live { at }) => (HolderState::Pinned, Some(ago(*at))),
                Some(Observed::Pinning { since, .. }) => (HolderState::Pinning, Some(ago(*since))),
                Some(Observed::Failing { since }) => {
                    if plan.lost.contains(&p) {
                        (HolderState::Lost, Some(ago(*since)))
                    } else {
                        (HolderState::Unreachable, Some(ago(*since)))
                    }
                }
                None => (HolderState::Unreachable, None),
            };
            holders.push(HolderStatus {
                peer: p,
                state,
                since,
            });
        }
        RootStatus {
            record: rec.clone(),
            state: if rec.removed {
                RootState::Ok
            } else {
                plan.state(rec.factor)
            },
            holders,
        }
    }

    /// Runs one repair round over every record now (the loop does it every
    /// interval).
    pub async fn repair_all(&self) {
        let roots: Vec<Cid> = self.inner.records.roots();
        let mut under = 0;
        // Peers that could take a copy, read once per round.
        let candidates = if roots.is_empty() {
            Vec::new()
        } else {
            self.candidates().await
        };
        // Several roots at once: a root whose holder is down waits for a
        // DHT lookup of that peer (up to FIND_PEER_TIMEOUT), and one at a
        // time a node with many roots took longer than its repair interval.
        let candidates = &candidates;
        let mut rounds = futures::stream::iter(roots)
            .map(|root| self.repair(root, candidates))
            .buffer_unordered(REPAIR_CONCURRENCY);
        while let Some(state) = rounds.next().await {
            if state.is_some_and(|s| s != RootState::Ok) {
                under += 1;
            }
        }
        self.inner
            .stats
            .under_replicated
            .store(under, Ordering::Relaxed);
    }

    /// Peers that could take a copy: those connected and those in the
    /// DHT routing table.
    async fn candidates(&self) -> Vec<PeerId> {
        let mut candidates = self.inner.swarm.peers().await.unwrap_or_default();
        if let Ok(table) = self.inner.swarm.routing_table().await {
            candidates.extend(table.into_iter().map(|(p, _)| p));
        }
        candidates
    }

    async fn repair_loop(self) {
        let interval = self
            .inner
            .config
            .repair_interval
            .max(Duration::from_millis(200));
        loop {
            tokio::time::sleep(interval).await;
            self.repair_all().await;
        }
    }

    /// What this node has seen of `root`'s holders (a copy: planning runs
    /// without the state lock).
    fn observed_of(&self, root: &Cid) -> HashMap<PeerId, Observed> {
        self.state().observed.get(root).cloned().unwrap_or_default()
    }

    /// The round's view of `rec` without candidates (for its state): no
    /// placement is planned, so refusals do not matter.
    fn plan(&self, rec: &Record) -> RepairPlan {
        let observed = self.observed_of(&rec.root);
        plan::plan(
            rec,
            &self.inner.me,
            &observed,
            &[],
            &HashSet::new(),
            Instant::now(),
            self.inner.config.grace,
        )
    }

    /// One round for one root; returns its state when this node holds it
    /// (`None` too when a repair of it is already running).
    async fn repair(&self, root: Cid, candidates: &[PeerId]) -> Option<RootState> {
        if !self.state().repairing.insert(root) {
            return None;
        }
        struct Running<'a>(&'a Replicator, Cid);
        impl Drop for Running<'_> {
            fn drop(&mut self) {
                self.0.state().repairing.remove(&self.1);
            }
        }
        let _running = Running(self, root);
        self.repair_root(root, candidates).await
    }

    async fn repair_root(&self, root: Cid, candidates: &[PeerId]) -> Option<RootState> {
        let rec = self.record(&root)?;
        if rec.removed {
            self.drop_local_pin(&root).await;
            // Spread the tombstone to holders that may not know it yet.
            let me = self.inner.me;
            for p in rec.holders.iter().copied().filter(|p| *p != me) {
                let _ = self
                    .exchange(
                        p,
                        Request::Unpin {
                            record: rec.clone(),
                        },
                    )
                    .await;
            }
            return None;
        }
        if !rec.holders.contains(&self.inner.me) {
            return None;
        }
        let rec = self.probe_all(rec).await;
        if rec.removed {
            // Learned a tombstone.
            self.drop_local_pin(&root).await;
            return None;
        }
        let rec = self.claim(rec);
        if !rec.holders.contains(&self.inner.me) {
            return None;
        }
        let refused: HashSet<PeerId> = {
            let mut st = self.state();
            // A refusal (or no answer) is remembered for a round.
            let memory = self.inner.config.repair_interval;
            st.refused.retain(|_, t| t.elapsed() < memory);
            st.refused.keys().copied().collect()
        };
        let observed = self.observed_of(&root);
        let p = plan::plan(
            &rec,
            &self.inner.me,
            &observed,
            candidates,
            &refused,
            Instant::now(),
            self.inner.config.grace,
        );
        if !p.acting {
            return Some(p.state(rec.factor));
        }
        let mut rec = rec;
        let mut placed = 0;
        for peer in p.place.iter().chain(&p.spares) {
            if placed == p.place.len() {
                break;
            }
            let mut proposed = rec.clone();
            proposed.holders.insert(*peer);
            proposed.bump();
            // No DHT lookup of a candidate that cannot be reached: the next
            // one is asked instead.
            match self
                .exchange_once(
                    *peer,
                    &Request::Pin {
                        record: proposed.clone(),
                    },
                )
                .await
            {
                Ok(resp) if resp.accepted => {
                    placed += 1;
                    tracing::info!(%root, %peer, "replica placed");
                    self.inner.stats.repairs.fetch_add(1, Ordering::Relaxed);
                    rec = self.inner.records.merge(&proposed, true).unwrap_or(proposed);
                    self.state().observed.entry(root).or_default().insert(
                        *peer,
                        Observed::Pinning {
                            since: Instant::now(),
                            seen: Instant::now(),
                        },
                    );
                }
                Ok(resp) => {
                    tracing::info!(%root, %peer, reason = %resp.reason, "replica refused");
                    self.state().refused.insert(*peer, Instant::now());
                    if let Some(theirs) = resp.record {
                        if let Some(merged) = self.inner.records.merge(&theirs, true) {
                            rec = merged;
                        }
                        if rec.removed {
                            self.drop_local_pin(&root).await;
                            return None;
                        }
                    }
                }
                Err(e) => {
                    tracing::debug!(%root, %peer, "asking for a replica: {e}");
                    self.state().refused.insert(*peer, Instant::now());
                }
            }
        }
        if !p.forget.is_empty() || !p.trim.is_empty() {
            // One new version without the forgotten and the trimmed.
            for h in p.forget.iter().chain(&p.trim) {
                rec.holders.remove(h);
            }
            rec.bump();
            rec = self.inner.records.merge(&rec, true).unwrap_or(rec);
            if let Some(obs) = self.state().observed.get_mut(&root) {
                for f in &p.forget {
                    obs.remove(f);
                }
            }
            for t in &p.trim {
                tracing::info!(%root, peer = %t, "trimming a surplus replica");
                let _ = self
                    .exchange(
                        *t,
                        Request::Unpin {
                            record: rec.clone(),
                        },
                    )
                    .await;
            }
        }
        let after = self.plan(&rec);
        Some(after.state(rec.factor))
    }

    /// Probes every other holder (and checks this node), merging the
    /// records they answer with; returns the merged record.
    async fn probe_all(&self, rec: Record) -> Record {
        let root = rec.root;
        let sample = self.sample(&root).await;
        let me = self.inner.me;
        let mut rec = rec;
        // This node.
        let local = self.check_local(&root, &sample);
        self.observe(&root, me, local);
        let others: Vec<PeerId> = rec.holders.iter().copied().filter(|p| *p != me).collect();
        let mut probes = futures::stream::FuturesUnordered::new();
        for p in others {
            let req = Request::Probe {
                record: rec.clone(),
                sample: sample.clone(),
            };
            let this = self.clone();
            probes.push(async move { (p, this.exchange(p, req).await) });
        }
        while let Some((peer, result)) = probes.next().await {
            let seen = match result {
                Ok(resp) => {
                    if let Some(theirs) = &resp.record {
                        rec.merge(theirs);
                    }
                    if resp.pinned && resp.has {
                        Seen::Live
                    } else if resp.pinning {
                        Seen::Pinning
                    } else {
                        Seen::Failing
                    }
                }
                Err(_) => Seen::Failing,
            };
            self.observe(&root, peer, seen);
        }
        self.inner.records.merge(&rec, true).unwrap_or(rec)
    }

    fn observe(&self, root: &Cid, peer: PeerId, seen: Seen) {
        let now = Instant::now();
        let mut st = self.state();
        let obs = st.observed.entry(*root).or_default();
        let next = match (seen, obs.get(&peer)) {
            (Seen::Live, _) => Observed::Live { at: now },
            (Seen::Pinning, Some(Observed::Pinning { since, .. })) => Observed::Pinning {
                since: *since,
                seen: now,
            },
            (Seen::Pinning, _) => Observed::Pinning {
                since: now,
                seen: now,
            },
            (Seen::Failing, Some(Observed::Failing { since })) => {
                Observed::Failing { since: *since }
            }
            (Seen::Failing, _) => Observed::Failing { since: now },
        };
        obs.insert(peer, next);
    }

    fn check_local(&self, root: &Cid, sample: &[Cid]) -> Seen {
        if self.state().pinning.contains(root) {
            return Seen::Pinning;
        }
        let pinned = self.inner.store.pin_of(root).ok().flatten() == Some(PinKind::Recursive);
        let has = sample
            .iter()
            .all(|c| self.inner.store.has(c).unwrap_or(false));
        if pinned && has {
            Seen::Live
        } else {
            Seen::Failing
        }
    }

    /// The root and a few blocks of its DAG (spread over it), when local.
    async fn sample(&self, root: &Cid) -> Vec<Cid> {
        if let Some(s) = self.state().samples.get(root) {
            return s.clone();
        }
        let store = Arc::clone(&self.inner.store);
        let r = *root;
        let all = tokio::task::spawn_blocking(move || {
            let mut v = Vec::new();
            let _ = crate::dag::walk::reach(
                &crate::dag::StoreBlocks(&*store),
                &r,
                &mut HashSet::new(),
                &mut |c| {
                    v.push(*c);
                    Ok(())
                },
            );
            v
        })
        .await
        .unwrap_or_default();
        if all.is_empty() {
            return vec![*root];
        }
        let step = (all.len() / (SAMPLE_BLOCKS + 1)).max(1);
        let mut s: Vec<Cid> = all
            .iter()
            .step_by(step)
            .take(SAMPLE_BLOCKS + 1)
            .copied()
            .collect();
        if let Some(last) = all.last() {
            if !s.contains(last) {
                s.push(*last);
            }
        }
        self.state().samples.insert(*root, s.clone());
        s
    }

    /// A record that does not list this node although it holds the root
    /// (a newer version from a holder that had not heard of this copy:
    /// records merge by version) lists it again, as a new version. Only an
    /// explicit trim or a tombstone removes a copy; a merge never does, or
    /// two holders acting at once would delete each other's placements.
    fn claim(&self, rec: Record) -> Record {
        let me = self.inner.me;
        if rec.removed || rec.holders.contains(&me) || rec.holders.len() >= record::MAX_HOLDERS {
            return rec;
        }
        let holds = self.state().pinning.contains(&rec.root)
            || self.inner.store.pin_of(&rec.root).ok().flatten() == Some(PinKind::Recursive);
        if !holds {
            return rec;
        }
        self.inner
            .records
            .update(&rec.root, |current| {
                let mut claimed = current?.clone();
                if claimed.removed
                    || claimed.holders.contains(&me)
                    || claimed.holders.len() >= record::MAX_HOLDERS
                {
                    return None;
                }
                claimed.holders.insert(me);
                claimed.bump();
                Some(claimed)
            })
            .unwrap_or(rec)
    }

    /// Removes the local pin of `root` if the replicator made it (see
    /// [`OWNED_PIN_PREFIX`]); a pin of the user's own stays.
    async fn drop_local_pin(&self, root: &Cid) {
        let store = &*self.inner.store;
        if !owns_pin(store, root) {
            if matches!(store.pin_of(root), Ok(Some(_))) {
                tracing::debug!(%root, "replica no longer needed; the local pin is the user's: kept");
            }
            return;
        }
        match store.unpin(root) {
            Ok(_) => tracing::info!(%root, "replica dropped (removed or trimmed)"),
            Err(crate::store::StoreError::NotPinned { .. }) => {}
            Err(e) => {
                tracing::warn!(%root, "dropping a replica: {e}");
                return;
            }
        }
        if let Err(e) = disown_pin(store, root) {
            tracing::warn!(%root, "dropping a replica's mark: {e}");
        }
    }

    /// Sends one request to `peer` and reads its response; a peer that
    /// cannot be reached at its known addresses is looked up on the DHT (it
    /// may have restarted elsewhere) and tried once more.
    ///
    /// A peer not found is not looked up again for a repair interval: a
    /// node that is down would otherwise cost a DHT walk per probe.
    async fn exchange(&self, peer: PeerId, req: Request) -> Result<Response, String> {
        match self.exchange_once(peer, &req).await {
            Ok(r) => Ok(r),
            Err(first) => {
                let backoff = self.inner.config.repair_interval;
                let looked_up_lately = self
                    .state()
                    .not_found
                    .get(&peer)
                    .is_some_and(|t| t.elapsed() < backoff);
                if looked_up_lately {
                    return Err(first);
                }
                let lookup =
                    tokio::time::timeout(FIND_PEER_TIMEOUT, self.inner.swarm.find_peer(peer));
                if !matches!(lookup.await, Ok(Ok(()))) {
                    let mut st = self.state();
                    st.not_found.retain(|_, t| t.elapsed() < backoff);
                    st.not_found.insert(peer, Instant::now());
                    return Err(first);
                }
                self.state().not_found.remove(&peer);
                self.exchange_once(peer, &req).await
            }
        }
    }

    async fn exchange_once(&self, peer: PeerId, req: &Request) -> Result<Response, String> {
        let mut control = self
            .inner
            .control
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let work = async {
            let mut stream = control
                .open_stream(peer, StreamProtocol::new(protocol::PROTOCOL))
                .await
                .map_err(|e| e.to_string())?;
            write_message(&mut stream, &req.to_json())
                .await
                .map_err(|e| e.to_string())?;
            let v = read_message(&mut stream).await.map_err(|e| e.to_string())?;
            let _ = futures::AsyncWriteExt::close(&mut stream).await;
            Response::from_json(&v)
        };
        tokio::time::timeout(EXCHANGE_TIMEOUT, work)
            .await
            .map_err(|_| format!("{peer} did not answer in time"))?
    }

    async fn serve(self, mut incoming: libp2p_stream::IncomingStreams) {
        while let Some((peer, mut stream)) = incoming.next().await {
            let this = self.clone();
            tokio::spawn(async move {
                let work = async {
                    let v = read_message(&mut stream).await.map_err(|e| e.to_string())?;
                    let req = Request::from_json(&v)?;
                    let resp = this.answer(peer, req).await;
                    write_message(&mut stream, &resp.to_json())
                        .await
                        .map_err(|e| e.to_string())
                };
                if let Ok(Err(e)) = tokio::time::timeout(EXCHANGE_TIMEOUT, work).await {
                    tracing::debug!(%peer, "replication request: {e}");
                }
            });
        }
    }

    /// Merges a record a peer sent into ours (for roots we know, or when
    /// asked to hold one); returns ours after the merge.
    fn merge_in(&self, theirs: &Record, adopt: bool) -> Option<Record> {
        self.inner.records.merge(theirs, adopt)
    }

    async fn answer(&self, from: PeerId, req: Request) -> Response {
        let root = req.record().root;
        match req {
            Request::Probe { record, sample } => {
                let mine = self.merge_in(&record, false);
                let pinning = self.state().pinning.contains(&root);
                let pinned =
                    self.inner.store.pin_of(&root).ok().flatten() == Some(PinKind::Recursive);
                let has = sample
                    .iter()
                    .all(|c| self.inner.store.has(c).unwrap_or(false));
                let mine = match mine {
                    Some(m) if m.removed => {
                        self.drop_local_pin(&root).await;
                        Some(m)
                    }
                    Some(m) => Some(self.claim(m)),
                    None => None,
                };
                Response {
                    pinned,
                    pinning,
                    has,
                    record: mine,
                    ..Response::default()
                }
            }
            Request::Pin { record } => {
                if let Some(mine) = self.record(&root) {
                    if mine.removed && mine.version >= record.version {
                        return Response {
                            reason: format!("{root} was removed (version {})", mine.version),
                            record: Some(mine),
                            ..Response::default()
                        };
                    }
                }
                let max = self.inner.config.storage_max;
                let used = self.inner.store.used_bytes();
                let pinned =
                    self.inner.store.pin_of(&root).ok().flatten() == Some(PinKind::Recursive);
                if max > 0 && !pinned && used.saturating_add(record.size) > max {
                    return Response {
                        reason: format!(
                            "over quota: {used} bytes stored, {} more would pass the {max}-byte limit",
                            record.size
                        ),
                        ..Response::default()
                    };
                }
                let Some(rec) = self.merge_in(&record, true) else {
                    return Response::default();
                };
                if !pinned {
                    self.state().pinning.insert(root);
                    let this = self.clone();
                    let holders: Vec<PeerId> = rec
                        .holders
                        .iter()
                        .copied()
                        .filter(|p| *p != self.inner.me)
                        .chain(std::iter::once(from))
                        .collect();
                    let tasks = this.inner.swarm.clone();
                    tasks.spawn_task(async move { this.fetch_and_pin(root, holders).await });
                }
                Response {
                    accepted: true,
                    pinned,
                    pinning: !pinned,
                    record: Some(rec),
                    ..Response::default()
                }
            }
            Request::Unpin { record } => {
                let mine = self.merge_in(&record, false);
                if let Some(m) = &mine {
                    if m.removed || !m.holders.contains(&self.inner.me) {
                        self.drop_local_pin(&root).await;
                    }
                }
                Response {
                    record: mine,
                    ..Response::default()
                }
            }
        }
    }

    /// Fetches a replica asked of this node and pins it.
    async fn fetch_and_pin(&self, root: Cid, holders: Vec<PeerId>) {
        let _gc = self.inner.gc_lock.read().await;
        let opts = FetchOptions {
            stall_timeout: self.inner.config.fetch_stall,
            // The holders are named; the DHT is the fallback when they fail.
            provider_search: ProviderSearch::After(self.inner.config.fetch_stall / 4),
            max_bytes_per_sec: Some(self.inner.config.repair_bytes_per_sec).filter(|b| *b > 0),
            ..FetchOptions::default()
        };
        let started = Instant::now();
        let result = async {
            let session = self
                .inner
                .bitswap
                .session(Some(root), opts)
                .await
                .map_err(|e| e.to_string())?;
            let opened = started.elapsed();
            session
                .add_peers(holders)
                .await
                .map_err(|e| e.to_string())?;
            let mut first = None;
            let stats = self
                .inner
                .bitswap
                .fetch_dag_in(&session, root, &mut |_| {
                    first.get_or_insert_with(|| started.elapsed());
                })
                .await
                .map_err(|e| e.to_string())?;
            tracing::debug!(
                %root,
                opened_ms = opened.as_millis() as u64,
                first_block_ms = first.unwrap_or_default().as_millis() as u64,
                fetched_ms = started.elapsed().as_millis() as u64,
                "replica fetch timing"
            );
            let fetched = session.progress().bytes.load(Ordering::Relaxed);
            self.inner
                .stats
                .repair_bytes
                .fetch_add(fetched, Ordering::Relaxed);
            // Removed or trimmed while fetching: keep nothing pinned.
            let still = self
                .record(&root)
                .is_some_and(|r| !r.removed && r.holders.contains(&self.inner.me));
            if still {
                let store = &*self.inner.store;
                // A root the user had pinned here stays the user's pin.
                let had = store.pin_of(&root).map_err(|e| e.to_string())?;
                if had != Some(PinKind::Recursive) {
                    if had.is_none() {
                        own_pin(store, &root).map_err(|e| e.to_string())?;
                    }
                    store
                        .pin(&root, PinKind::Recursive)
                        .map_err(|e| e.to_string())?;
                }
            }
            Ok::<_, String>((stats, still))
        }
        .await;
        self.state().pinning.remove(&root);
        match result {
            Ok((stats, still)) => {
                tracing::info!(%root, blocks = stats.blocks, bytes = stats.bytes, ms = started.elapsed().as_millis() as u64, "replica held");
                if still {
                    // After the copy counts: a DHT walk can take seconds.
                    let _ = self.inner.swarm.provide(root).await;
                }
            }
            Err(e) => tracing::warn!(%root, "fetching a replica failed: {e}"),
        }
    }

    async fn scrub_loop(self) {
        let interval = self
            .inner
            .config
            .scrub_interval
            .max(Duration::from_millis(200));
        loop {
            tokio::time::sleep(interval).await;
            self.scrub_pass().await;
        }
    }

    /// Re-hashes every stored block (at the scrub rate); a corrupt one is
    /// forgotten and fetched again from peers that hold it.
    pub async fn scrub_pass(&self) {
        let store = Arc::clone(&self.inner.store);
        let blocks = tokio::task::spawn_blocking(move || {
            let mut v = Vec::new();
            let _ = store.for_each_block(&mut |b| {
                v.push((b.multihash, b.len));
                Ok(())
            });
            v
        })
        .await
        .unwrap_or_default();
        let rate = self.inner.config.scrub_bytes_per_sec;
        let start = Instant::now();
        let mut read = 0u64;
        for (mh, len) in blocks {
            let store = Arc::clone(&self.inner.store);
            let ok = tokio::task::spawn_blocking(move || match store.read_raw(&mh) {
                Ok(Some(data)) => crate::block::multihash_matches(&mh, &data),
                Ok(None) => true,
                Err(_) => false,
            })
            .await
            .unwrap_or(true);
            self.inner
                .stats
                .scrub_checked
                .fetch_add(1, Ordering::Relaxed);
            read += len;
            if !ok {
                let cid = Cid::new_v1(RAW, mh);
                tracing::warn!(%cid, "scrub: corrupt block, fetching it again");
                self.inner
                    .stats
                    .scrub_corrupt
                    .fetch_add(1, Ordering::Relaxed);
                if let Err(e) = self.refetch(cid).await {
                    tracing::warn!(%cid, "scrub: could not fetch a good copy: {e}");
                } else {
                    self.inner
                        .stats
                        .scrub_repaired
                        .fetch_add(1, Ordering::Relaxed);
                    tracing::info!(%cid, "scrub: repaired from a peer");
                }
            }
            if rate > 0 {
                let due = Duration::from_secs_f64(read as f64 / rate as f64);
                if let Some(wait) = due.checked_sub(start.elapsed()) {
                    tokio::time::sleep(wait).await;
                }
            }
        }
    }

    async fn refetch(&self, cid: Cid) -> Result<(), String> {
        self.inner
            .store
            .remove(cid.hash())
            .map_err(|e| e.to_string())?;
        let holders = self.inner.records.holders_besides(&self.inner.me);
        let opts = FetchOptions {
            stall_timeout: self.inner.config.fetch_stall,
            ..FetchOptions::default()
        };
        let session = self
            .inner
            .bitswap
            .session(Some(cid), opts)
            .await
            .map_err(|e| e.to_string())?;
        session
            .add_peers(holders)
            .await
            .map_err(|e| e.to_string())?;
        session.get(cid).await.map_err(|e| e.to_string())?;
        session.flush().await.map_err(|e| e.to_string())
    }
}

/// What one probe saw.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Seen {
    Live,
    Pinning,
    Failing,
}

/// Bytes of every block under `root` (local).
fn dag_size(store: &dyn Store, root: &Cid) -> Result<u64, ReplicateError> {
    let mut total = 0u64;
    crate::dag::walk::walk(
        &crate::dag::StoreBlocks(store),
        root,
        &mut HashSet::new(),
        &mut |b| {
            total += b.data().len() as u64;
            Ok(())
        },
    )
    .map_err(|e| ReplicateError::Other(e.to_string()))?;
    Ok(total)
}

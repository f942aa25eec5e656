//! The provider: announces this node on the DHT as a holder of content, for
//! new content at once and for everything again on a timer (reprovide).
//!
//! What is announced follows `[provide] strategy`: every stored block
//! (Kubo's default), the roots of pins, or every block of pinned DAGs.
//! Announcements are paced: at most `[provide] concurrency` DHT queries in
//! flight, so a node with 100,000 blocks keeps every record alive (one sweep
//! per `[provide] interval`, 22 h by default, well inside the 48 h record
//! lifetime) without flooding its peers. The time of the last complete sweep
//! is kept in the repo, so a restarted node resumes the schedule instead of
//! re-announcing everything (or forgetting to).
//!
//! The DHT key of a CID is its multihash, so a sweep announces raw CIDv1s
//! made from the stored multihashes.

use super::config::{ProvideSettings, ProvideStrategy};
use crate::block::{Cid, RAW};
use crate::dag::walk;
use crate::net::swarm::SwarmHandle;
use crate::store::{PinKind, Store, StoreError};
use futures::stream::{FuturesUnordered, StreamExt};
use std::collections::{HashSet, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::mpsc;

/// Metadata key of the last complete sweep (unix seconds, decimal).
const LAST_SWEEP_KEY: &str = "provide.last_sweep";

/// Announcement jobs queued before callers wait.
const QUEUE_DEPTH: usize = 1024;

/// How long after start a due sweep begins (peers connect first).
const FIRST_SWEEP_DELAY: Duration = Duration::from_secs(10);

/// How soon a sweep that reached no peer at all is tried again.
const SWEEP_RETRY: Duration = Duration::from_secs(300);

/// Counters, for `stats provide` and metrics.
#[derive(Debug, Default)]
pub struct ProvideStats {
    /// Announcements completed (at least one peer took the record).
    pub provided: AtomicU64,
    /// Announcements that failed (no peer reachable, timeout).
    pub failed: AtomicU64,
    /// Completed sweeps since start.
    pub sweeps: AtomicU64,
    /// Keys of new content waiting to be announced.
    pub pending: AtomicU64,
}

/// What the provider is asked to announce.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Job {
    /// This key only.
    Key(Cid),
    /// Every block of the DAG under this root that is stored (the root
    /// first), listed by the provider on a blocking thread.
    Dag(Cid),
    /// Stop answering as provider of keys the strategy no longer covers
    /// (after a garbage collection, an unpin).
    Withdraw,
}

/// A handle to the provider task.
#[derive(Clone)]
pub struct Provider {
    queue: mpsc::Sender<Job>,
    /// Sweep requests (`routing reprovide`); each answered with the number
    /// of keys announced once that sweep is complete.
    sweeps: mpsc::Sender<tokio::sync::oneshot::Sender<u64>>,
    strategy: ProvideStrategy,
    /// Its counters.
    pub stats: Arc<ProvideStats>,
}

impl Provider {
    /// Starts the provider task.
    pub fn spawn(settings: ProvideSettings, store: Arc<dyn Store>, swarm: SwarmHandle) -> Provider {
        let (tx, rx) = mpsc::channel(QUEUE_DEPTH);
        let (sweep_tx, sweep_rx) = mpsc::channel(16);
        let stats = Arc::new(ProvideStats::default());
        let task = ProviderTask {
            settings: settings.clone(),
            store,
            swarm,
            stats: Arc::clone(&stats),
        };
        let tasks = task.swarm.clone();
        tasks.spawn_task(task.run(rx, sweep_rx));
        Provider {
            queue: tx,
            sweeps: sweep_tx,
            strategy: settings.strategy,
            stats,
        }
    }

    async fn submit(&self, job: Job) {
        let _ = self.queue.send(job).await;
    }

    /// Content was added, imported or pinned under `root`, pinned as `pin`
    /// (`None`: stored but not pinned). Announced as the strategy says:
    /// `all`, every block of it; `pinned`, every block of a recursive pin
    /// (the root of a direct one); `roots`, the root of a pin. Nothing is
    /// dropped: the provider lists the DAG's blocks itself and announces
    /// them before the next sweep's.
    pub async fn announce_dag(&self, root: Cid, pin: Option<PinKind>) {
        let job = match (self.strategy, pin) {
            (ProvideStrategy::All, _) | (ProvideStrategy::Pinned, Some(PinKind::Recursive)) => {
                Job::Dag(root)
            }
            (ProvideStrategy::Pinned, Some(_)) | (ProvideStrategy::Roots, Some(_)) => {
                Job::Key(root)
            }
            (_, None) => return,
        };
        self.submit(job).await;
    }

    /// One block was stored (`block put`), pinned directly or not.
    pub async fn announce_block(&self, cid: Cid, pinned: bool) {
        if self.strategy == ProvideStrategy::All || pinned {
            self.submit(Job::Key(cid)).await;
        }
    }

    /// Blocks were fetched and cached (not pinned): announced only under
    /// the `all` strategy, as Kubo does.
    pub async fn announce_cached(&self, root: Cid) {
        if self.strategy == ProvideStrategy::All {
            self.submit(Job::Dag(root)).await;
        }
    }

    /// Blocks were removed or unpinned: stop answering as provider of what
    /// the strategy no longer covers (every sweep does this too).
    pub async fn withdraw_stale(&self) {
        self.submit(Job::Withdraw).await;
    }

    /// Announces every key of the strategy now (Kubo's `routing
    /// reprovide`); returns how many keys the sweep covered once it is done.
    pub async fn reprovide(&self) -> Option<u64> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.sweeps.send(tx).await.ok()?;
        rx.await.ok()
    }

    /// What this provider announces.
    pub fn strategy(&self) -> ProvideStrategy {
        self.strategy
    }
}

async fn provide_one(swarm: SwarmHandle, cid: Cid) -> (Cid, Result<(), crate::net::NetError>) {
    (cid, swarm.provide(cid).await)
}

struct ProviderTask {
    settings: ProvideSettings,
    store: Arc<dyn Store>,
    swarm: SwarmHandle,
    stats: Arc<ProvideStats>,
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl ProviderTask {
    fn last_sweep(&self) -> Option<u64> {
        let bytes = self.store.meta_get(LAST_SWEEP_KEY).ok()??;
        std::str::from_utf8(&bytes).ok()?.parse().ok()
    }

    /// When the next sweep is due, from the persisted last one.
    fn next_sweep_in(&self) -> Duration {
        let interval = self.settings.interval;
        match self.last_sweep() {
            None => FIRST_SWEEP_DELAY,
            Some(last) => {
                let due = last.saturating_add(interval.as_secs());
                Duration::from_secs(due.saturating_sub(now_secs())).max(FIRST_SWEEP_DELAY)
            }
        }
    }

    /// Every key the strategy announces, computed on a blocking thread.
    async fn sweep_keys(&self) -> Vec<Cid> {
        let store = Arc::clone(&self.store);
        let strategy = self.settings.strategy;
        let keys = tokio::task::spawn_blocking(move || -> Result<Vec<Cid>, StoreError> {
            let mut out = Vec::new();
            match strategy {
                ProvideStrategy::All => {
                    store.for_each_block(&mut |b| {
                        out.push(Cid::new_v1(RAW, b.multihash));
                        Ok(())
                    })?;
                }
                ProvideStrategy::Roots => {
                    out = store.pins()?.into_iter().map(|(c, _)| c).collect();
                }
                ProvideStrategy::Pinned => {
                    let mut seen = HashSet::new();
                    for (root, kind) in store.pins()? {
                        if kind == crate::store::PinKind::Direct {
                            if seen.insert(*root.hash()) {
                                out.push(root);
                            }
                            continue;
                        }
                        // A pin whose blocks are damaged still announces
                        // what can be read.
                        let source = crate::dag::StoreBlocks(&*store);
                        let _ = walk::reach(&source, &root, &mut seen, &mut |c| {
                            out.push(*c);
                            Ok(())
                        });
                    }
                }
            }
            Ok(out)
        })
        .await;
        match keys {
            Ok(Ok(k)) => k,
            Ok(Err(e)) => {
                tracing::warn!("reprovide: listing keys: {e}");
                Vec::new()
            }
            Err(_) => Vec::new(),
        }
    }

    /// The stored blocks of the DAG under `root`, root first (what is
    /// missing is skipped: a partly cached DAG announces what it has).
    async fn dag_keys(&self, root: Cid) -> Vec<Cid> {
        let store = Arc::clone(&self.store);
        tokio::task::spawn_blocking(move || {
            let mut out = Vec::new();
            let source = crate::dag::StoreBlocks(&*store);
            let _ = walk::reach(&source, &root, &mut HashSet::new(), &mut |c| {
                out.push(*c);
                Ok(())
            });
            if out.is_empty() && store.has(&root).unwrap_or(false) {
                out.push(root);
            }
            out
        })
        .await
        .unwrap_or_default()
    }

    async fn take_job(&self, job: Job, fresh: &mut VecDeque<Cid>) {
        match job {
            Job::Key(cid) => fresh.push_back(cid),
            Job::Dag(root) => fresh.extend(self.dag_keys(root).await),
            Job::Withdraw => {
                let keys = self.sweep_keys().await;
                self.withdraw(&keys, fresh).await;
            }
        }
    }

    /// Stops providing every key of ours that is neither in `keep` (what
    /// the strategy covers now) nor waiting in `fresh`.
    async fn withdraw(&self, keep: &[Cid], fresh: &VecDeque<Cid>) {
        let Ok(ours) = self.swarm.provided_keys().await else {
            return;
        };
        let keep: HashSet<Vec<u8>> = keep
            .iter()
            .chain(fresh.iter())
            .map(|c| c.hash().to_bytes())
            .collect();
        let stale: Vec<Vec<u8>> = ours.into_iter().filter(|k| !keep.contains(k)).collect();
        if !stale.is_empty() {
            tracing::info!(keys = stale.len(), "no longer providing");
            let _ = self.swarm.stop_providing(stale).await;
        }
    }

    /// Starts a sweep now: withdraws what the strategy no longer covers and
    /// queues every key it does.
    async fn start_sweep(&self, sweep: &mut VecDeque<Cid>, fresh: &VecDeque<Cid>) -> SweepRun {
        let started = tokio::time::Instant::now();
        let started_secs = now_secs();
        let provided_before = self.stats.provided.load(Ordering::Relaxed);
        let keys = self.sweep_keys().await;
        self.withdraw(&keys, fresh).await;
        tracing::info!(keys = keys.len(), "reprovide sweep starting");
        let size = keys.len() as u64;
        sweep.extend(keys);
        SweepRun {
            size,
            started,
            started_secs,
            provided_before,
        }
    }

    async fn run(
        self,
        mut queue: mpsc::Receiver<Job>,
        mut requests: mpsc::Receiver<tokio::sync::oneshot::Sender<u64>>,
    ) {
        let concurrency = self.settings.concurrency.max(1);
        let mut sweep: VecDeque<Cid> = VecDeque::new();
        let mut running: Option<SweepRun> = None;
        let mut waiting: Vec<tokio::sync::oneshot::Sender<u64>> = Vec::new();
        let mut inflight = FuturesUnordered::new();
        let timer = tokio::time::sleep(self.next_sweep_in());
        tokio::pin!(timer);
        // Re-armed when a sweep completes; until then, far away.
        let idle = || tokio::time::Instant::now() + Duration::from_secs(365 * 24 * 3600);
        // Keys of new content, announced before the sweep's.
        let mut fresh: VecDeque<Cid> = VecDeque::new();
        loop {
            loop {
                match queue.try_recv() {
                    Ok(job) => self.take_job(job, &mut fresh).await,
                    Err(mpsc::error::TryRecvError::Disconnected) => return,
                    Err(mpsc::error::TryRecvError::Empty) => break,
                }
            }
            // New content first, then the sweep, within the concurrency.
            while inflight.len() < concurrency {
                let Some(cid) = fresh.pop_front().or_else(|| sweep.pop_front()) else {
                    break;
                };
                inflight.push(provide_one(self.swarm.clone(), cid));
            }
            self.stats
                .pending
                .store(fresh.len() as u64, Ordering::Relaxed);
            if sweep.is_empty() && inflight.is_empty() {
                if let Some(run) = running.take() {
                    let next = self.finish_sweep(&run);
                    timer.as_mut().reset(next);
                    for w in waiting.drain(..) {
                        let _ = w.send(run.size);
                    }
                }
            }
            tokio::select! {
                job = queue.recv(), if inflight.len() < concurrency => match job {
                    None => return,
                    Some(job) => self.take_job(job, &mut fresh).await,
                },
                Some((cid, result)) = inflight.next(), if !inflight.is_empty() => {
                    match result {
                        Ok(()) => { self.stats.provided.fetch_add(1, Ordering::Relaxed); }
                        Err(e) => {
                            self.stats.failed.fetch_add(1, Ordering::Relaxed);
                            tracing::debug!(%cid, "provide: {e}");
                        }
                    }
                }
                request = requests.recv() => {
                    let Some(reply) = request else { continue };
                    waiting.push(reply);
                    if running.is_none() {
                        running = Some(self.start_sweep(&mut sweep, &fresh).await);
                        timer.as_mut().reset(idle());
                    }
                }
                _ = &mut timer, if running.is_none() => {
                    running = Some(self.start_sweep(&mut sweep, &fresh).await);
                    timer.as_mut().reset(idle());
                }
            }
        }
    }

    /// Records a completed sweep (or, when it reached no peer at all,
    /// schedules a retry); returns when the next one is due.
    fn finish_sweep(&self, run: &SweepRun) -> tokio::time::Instant {
        let reached = self.stats.provided.load(Ordering::Relaxed) - run.provided_before;
        if run.size > 0 && reached == 0 {
            // Nobody took a single record (no peers yet, or none
            // reachable): not a sweep; try again soon rather than in a
            // whole interval.
            tracing::info!(keys = run.size, "reprovide sweep reached no peer; retrying");
            return tokio::time::Instant::now() + SWEEP_RETRY.min(self.settings.interval);
        }
        self.stats.sweeps.fetch_add(1, Ordering::Relaxed);
        // The schedule counts from the sweep's start, so the period does
        // not grow by each sweep's length.
        let stamp = run.started_secs.to_string();
        if let Err(e) = self.store.meta_put(LAST_SWEEP_KEY, Some(stamp.as_bytes())) {
            tracing::warn!("reprovide: recording the sweep: {e}");
        }
        tracing::info!(keys = run.size, reached, "reprovide sweep complete");
        (run.started + self.settings.interval).max(tokio::time::Instant::now() + FIRST_SWEEP_DELAY)
    }
}

/// A sweep in progress: how many keys, and what to measure it against.
struct SweepRun {
    /// Keys the sweep announces.
    size: u64,
    started: tokio::time::Instant,
    /// The start as unix seconds (persisted when the sweep completes).
    started_secs: u64,
    /// Announcements that reached a peer before the sweep began (those
    /// after include new content's, which also shows peers are there).
    provided_before: u64,
}

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
use crate::store::Store;
use futures::stream::{FuturesUnordered, StreamExt};
use std::collections::{HashSet, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::mpsc;

/// Metadata key of the last complete sweep (unix seconds, decimal).
const LAST_SWEEP_KEY: &str = "provide.last_sweep";

/// Announcements waiting before new ones are dropped (a sweep catches up).
const QUEUE_DEPTH: usize = 8192;

/// How long after start a due sweep begins (peers connect first).
const FIRST_SWEEP_DELAY: Duration = Duration::from_secs(10);

/// Counters, for `stats provide` and metrics.
#[derive(Debug, Default)]
pub struct ProvideStats {
    /// Announcements completed (at least one peer took the record).
    pub provided: AtomicU64,
    /// Announcements that failed (no peer reachable, timeout).
    pub failed: AtomicU64,
    /// Completed sweeps since start.
    pub sweeps: AtomicU64,
    /// Announcements dropped because the queue was full.
    pub dropped: AtomicU64,
}

/// A handle to the provider task.
#[derive(Clone)]
pub struct Provider {
    queue: mpsc::Sender<Cid>,
    /// Sweep requests (`routing reprovide`); each answered with the number
    /// of keys announced once that sweep is complete.
    sweeps: mpsc::Sender<tokio::sync::oneshot::Sender<u64>>,
    strategy: ProvideStrategy,
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

    /// Content was added or pinned: announce `root` (and, unless the
    /// strategy is `roots`, the other `blocks`). The root waits for room
    /// in the queue; other blocks are dropped when it is full.
    pub async fn announce(&self, root: Cid, blocks: &[Cid]) {
        if self.queue.send(root).await.is_err() {
            return;
        }
        if self.strategy == ProvideStrategy::Roots {
            return;
        }
        for cid in blocks.iter().filter(|c| *c != &root) {
            if self.queue.try_send(*cid).is_err() {
                self.stats.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Blocks were fetched and cached (not pinned): announced only under
    /// the `all` strategy, as Kubo does.
    pub async fn announce_cached(&self, root: Cid) {
        if self.strategy == ProvideStrategy::All {
            let _ = self.queue.send(root).await;
        }
    }

    /// Announces every key of the strategy now (Kubo's `routing
    /// reprovide`); returns how many keys the sweep covered once it is done.
    pub async fn reprovide(&self) -> Option<u64> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.sweeps.send(tx).await.ok()?;
        rx.await.ok()
    }

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
        let keys = tokio::task::spawn_blocking(move || -> Result<Vec<Cid>, String> {
            let mut out = Vec::new();
            match strategy {
                ProvideStrategy::All => {
                    store
                        .for_each_block(&mut |b| {
                            out.push(Cid::new_v1(RAW, b.multihash));
                            Ok(())
                        })
                        .map_err(|e| e.to_string())?;
                }
                ProvideStrategy::Roots => {
                    out = store
                        .pins()
                        .map_err(|e| e.to_string())?
                        .into_iter()
                        .map(|(c, _)| c)
                        .collect();
                }
                ProvideStrategy::Pinned => {
                    let mut seen = HashSet::new();
                    for (root, kind) in store.pins().map_err(|e| e.to_string())? {
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

    async fn start_sweep(&self, sweep: &mut VecDeque<Cid>) -> u64 {
        let keys = self.sweep_keys().await;
        tracing::info!(keys = keys.len(), "reprovide sweep starting");
        let n = keys.len() as u64;
        sweep.extend(keys);
        n
    }

    async fn run(
        self,
        mut queue: mpsc::Receiver<Cid>,
        mut requests: mpsc::Receiver<tokio::sync::oneshot::Sender<u64>>,
    ) {
        let concurrency = self.settings.concurrency.max(1);
        let mut sweep: VecDeque<Cid> = VecDeque::new();
        let mut sweeping = false;
        let mut sweep_size = 0u64;
        let mut waiting: Vec<tokio::sync::oneshot::Sender<u64>> = Vec::new();
        let mut inflight = FuturesUnordered::new();
        let timer = tokio::time::sleep(self.next_sweep_in());
        tokio::pin!(timer);
        loop {
            // New content first, then the sweep, within the concurrency.
            while inflight.len() < concurrency {
                let next = match queue.try_recv() {
                    Ok(cid) => Some(cid),
                    Err(mpsc::error::TryRecvError::Disconnected) => return,
                    Err(mpsc::error::TryRecvError::Empty) => sweep.pop_front(),
                };
                let Some(cid) = next else { break };
                inflight.push(provide_one(self.swarm.clone(), cid));
            }
            if sweeping && sweep.is_empty() && inflight.is_empty() {
                sweeping = false;
                self.stats.sweeps.fetch_add(1, Ordering::Relaxed);
                let stamp = now_secs().to_string();
                if let Err(e) = self.store.meta_put(LAST_SWEEP_KEY, Some(stamp.as_bytes())) {
                    tracing::warn!("reprovide: recording the sweep: {e}");
                }
                tracing::info!(keys = sweep_size, "reprovide sweep complete");
                for w in waiting.drain(..) {
                    let _ = w.send(sweep_size);
                }
                timer
                    .as_mut()
                    .reset(tokio::time::Instant::now() + self.settings.interval);
            }
            tokio::select! {
                cid = queue.recv(), if inflight.len() < concurrency => match cid {
                    None => return,
                    Some(cid) => inflight.push(provide_one(self.swarm.clone(), cid)),
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
                    if !sweeping {
                        sweep_size = self.start_sweep(&mut sweep).await;
                        sweeping = true;
                        timer.as_mut().reset(tokio::time::Instant::now() + Duration::from_secs(365 * 24 * 3600));
                    }
                }
                _ = &mut timer, if !sweeping => {
                    sweep_size = self.start_sweep(&mut sweep).await;
                    sweeping = true;
                    // Re-armed when the sweep completes.
                    timer.as_mut().reset(tokio::time::Instant::now() + Duration::from_secs(365 * 24 * 3600));
                }
            }
        }
    }
}

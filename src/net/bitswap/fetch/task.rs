//! The task behind each fetch session: runs its [`Session`] state machine
//! over the Bitswap engine, hands blocks to waiting callers, stores them in
//! batches, looks up providers and gives up after the stall timeout.

use super::recent::{recent_take, SharedRecent};
use super::{
    fetch_instead, key, FetchCommand, FetchOptions, FetchProgress, FetchSession, ProviderSearch,
    Reply,
};
use super::{COMMAND_DEPTH, PROVIDER_SEARCH_INTERVAL};
use crate::block::{Block, Cid};
use crate::net::bitswap::driver::{Counters, EngineCommand, SessionEvent};
use crate::net::bitswap::session::{Action, Session};
use crate::net::swarm::{PeerEvent, SwarmHandle};
use crate::net::NetError;
use crate::store::{Store, StoreError};
use libp2p::PeerId;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinError;

/// Fetched blocks stored per batch.
const STORE_BATCH: usize = 32;

/// Received blocks waiting to be stored before new want-blocks are held back.
const MAX_UNSTORED: usize = 256;

/// How long a session waits on connected peers before asking the DHT.
const PROVIDER_SEARCH_DELAY: Duration = Duration::from_secs(1);

impl FetchSession {
    /// Starts a session task (needs a tokio runtime). `root` is what DHT
    /// provider lookups search for; without it, the first stuck CID is.
    pub(in crate::net::bitswap) async fn start(
        counters: Arc<Counters>,
        engine: mpsc::Sender<EngineCommand>,
        swarm: SwarmHandle,
        store: Arc<dyn Store>,
        session_id: u64,
        root: Option<Cid>,
        opts: FetchOptions,
    ) -> Result<FetchSession, NetError> {
        let (events_tx, events) = mpsc::channel(crate::net::bitswap::driver::SESSION_EVENTS_DEPTH);
        // Subscribe before reading the peer list: no connection is missed.
        let peer_events = swarm.subscribe();
        engine
            .send(EngineCommand::Register(session_id, events_tx))
            .await
            .map_err(|_| super::ENGINE_STOPPED)?;
        let connected = swarm.peers().await?;
        let (tx, rx) = mpsc::channel(COMMAND_DEPTH);
        let progress = Arc::new(FetchProgress {
            root,
            ..FetchProgress::default()
        });
        let recent: SharedRecent = Arc::default();
        counters
            .sessions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(session_id, Arc::clone(&progress));
        // Under a rate limit, few requests in flight: what is asked for
        // before the budget is checked is what overshoots it.
        let mut opts = opts;
        if opts.max_bytes_per_sec.is_some() {
            opts.session.max_in_flight_per_peer = opts.session.max_in_flight_per_peer.min(4);
            opts.session.max_in_flight = opts.session.max_in_flight.min(8);
        }
        let mut task = SessionTask {
            counters,
            started: Instant::now(),
            session: Session::new(opts.session),
            opts,
            root,
            engine,
            swarm,
            store: Arc::clone(&store),
            session_id,
            waiters: HashMap::new(),
            wanted_at: HashMap::new(),
            unstored: HashMap::new(),
            corrupt: HashSet::new(),
            storing: None,
            flush_waiters: Vec::new(),
            store_error: None,
            last_progress: Instant::now(),
            last_search: None,
            search: None,
            progress: Arc::clone(&progress),
            recent: Arc::clone(&recent),
            senders: Default::default(),
        };
        for p in connected {
            task.session.add_peer(p);
        }
        task.progress
            .peers
            .store(task.session.peers(), Ordering::Relaxed);
        tokio::spawn(task.run(rx, events, peer_events));
        Ok(FetchSession {
            commands: tx,
            store,
            progress,
            recent,
        })
    }
}

/// Stores received blocks (a blocking call): `put_many` skips blocks
/// already indexed, so those in `corrupt` are written over the corrupt
/// copy instead. Returns the new bytes.
fn store_blocks(store: &dyn Store, batch: &[Block], corrupt: &[Block]) -> Result<u64, StoreError> {
    let new = store.put_many_uncached(&mut batch.iter().cloned())?;
    for b in corrupt {
        store.replace(b)?;
        tracing::info!(cid = %b.cid(), "corrupt local copy replaced by a verified one");
    }
    Ok(new)
}

/// A batch handed to the store, and how storing it went.
type StoredBatch = (Vec<Block>, Result<u64, StoreError>);

struct SessionTask {
    counters: Arc<Counters>,
    /// When the session started (for the rate limit).
    started: Instant,
    session: Session<PeerId>,
    opts: FetchOptions,
    root: Option<Cid>,
    engine: mpsc::Sender<EngineCommand>,
    swarm: SwarmHandle,
    store: Arc<dyn Store>,
    session_id: u64,
    /// Callers waiting, by multihash bytes.
    waiters: HashMap<Vec<u8>, Vec<Reply>>,
    /// When each pending want started, for the latency histogram.
    wanted_at: HashMap<Vec<u8>, Instant>,
    /// Received, handed out, not yet durable.
    unstored: HashMap<Vec<u8>, Block>,
    /// Wanted blocks whose local copy was proven corrupt: the copy
    /// received replaces it.
    corrupt: HashSet<Vec<u8>>,
    /// The batch being stored on a blocking thread.
    storing: Option<tokio::task::JoinHandle<StoredBatch>>,
    flush_waiters: Vec<oneshot::Sender<Result<(), NetError>>>,
    /// A failed store: reported to every later caller.
    store_error: Option<StoreFailure>,
    last_progress: Instant,
    last_search: Option<Instant>,
    search: Option<tokio::task::JoinHandle<Result<Vec<PeerId>, NetError>>>,
    progress: Arc<FetchProgress>,
    recent: SharedRecent,
    /// Peers that sent a wanted block (for progress figures).
    senders: std::collections::HashSet<PeerId>,
}

/// Most distinct senders a session counts.
const MAX_COUNTED_SENDERS: usize = 4096;

/// Why storing fetched blocks failed, kept to fail every later request.
#[derive(Clone)]
enum StoreFailure {
    Store(Arc<StoreError>),
    Thread(Arc<JoinError>),
}

impl StoreFailure {
    fn error(&self) -> NetError {
        match self {
            StoreFailure::Store(e) => NetError::StoreFetched {
                source: Arc::clone(e),
            },
            StoreFailure::Thread(e) => NetError::TaskFailed {
                task: "block storing thread",
                source: Arc::clone(e),
            },
        }
    }
}

/// Waits for the task in `h`, if any (never returns otherwise), and
/// clears it.
async fn join_opt<T>(h: &mut Option<tokio::task::JoinHandle<T>>) -> Result<T, JoinError> {
    match h {
        Some(handle) => {
            let r = handle.await;
            *h = None;
            r
        }
        None => std::future::pending().await,
    }
}

impl SessionTask {
    async fn run(
        mut self,
        mut commands: mpsc::Receiver<FetchCommand>,
        mut events: mpsc::Receiver<SessionEvent>,
        mut peer_events: tokio::sync::broadcast::Receiver<PeerEvent>,
    ) {
        let mut tick = tokio::time::interval(Duration::from_millis(100));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                cmd = commands.recv() => match cmd {
                    None => break,
                    Some(cmd) => {
                        self.on_command(cmd);
                        // Take what else is queued, so one poll asks for
                        // all of it in one message per peer.
                        for _ in 0..COMMAND_DEPTH {
                            match commands.try_recv() {
                                Ok(cmd) => self.on_command(cmd),
                                Err(_) => break,
                            }
                        }
                    }
                },
                ev = events.recv() => match ev {
                    None => break,
                    Some(SessionEvent::Message(peer, msg)) => {
                        let actions = self.session.on_message(&peer, &msg);
                        if actions.iter().any(|a| matches!(a, Action::Received(_)))
                            && self.senders.len() < MAX_COUNTED_SENDERS
                            && self.senders.insert(peer)
                        {
                            self.progress
                                .senders
                                .store(self.senders.len(), Ordering::Relaxed);
                        }
                        self.act(actions).await;
                    }
                    Some(SessionEvent::PeerGone(peer)) => self.session.remove_peer(&peer),
                    Some(SessionEvent::Banned(peer)) => self.session.ban(&peer),
                },
                ev = peer_events.recv() => match ev {
                    Ok(PeerEvent::Connected(p)) => self.session.add_peer(p),
                    Ok(PeerEvent::Disconnected(p)) => self.session.remove_peer(&p),
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                        if let Ok(peers) = self.swarm.peers().await {
                            for p in peers {
                                self.session.add_peer(p);
                            }
                        }
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
                },
                done = join_opt(&mut self.storing) => self.on_stored(done).await,
                found = join_opt(&mut self.search) => {
                    match found {
                        Ok(Ok(peers)) => {
                            tracing::debug!(n = peers.len(), "providers found");
                            for p in peers {
                                self.session.reconsider(&p);
                            }
                        }
                        Ok(Err(e)) => tracing::debug!("provider lookup: {e}"),
                        Err(e) => tracing::debug!("provider lookup task: {e}"),
                    }
                }
                _ = tick.tick() => self.on_tick(),
            }
            self.progress
                .peers
                .store(self.session.peers(), Ordering::Relaxed);
            if self.unstored.len() < MAX_UNSTORED && self.within_budget() {
                let actions = self.session.poll(Instant::now());
                self.act(actions).await;
            }
            self.maybe_store();
        }
        // Every handle is gone: cancel what is still wanted, store the rest.
        self.fail_all(|| NetError::Stopped {
            task: "fetch session",
        });
        if let Some(h) = self.storing.take() {
            let done = h.await;
            self.on_stored(done).await;
        }
        let rest: Vec<Block> = self.unstored.drain().map(|(_, b)| b).collect();
        if !rest.is_empty() {
            let corrupt = self.take_corrupt(&rest);
            let store = Arc::clone(&self.store);
            let _ =
                tokio::task::spawn_blocking(move || store_blocks(&*store, &rest, &corrupt)).await;
        }
        self.counters
            .sessions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&self.session_id);
        let _ = self
            .engine
            .send(EngineCommand::Unregister(self.session_id))
            .await;
    }

    fn on_command(&mut self, cmd: FetchCommand) {
        match cmd {
            FetchCommand::Want(cid, reply) => {
                let k = key(&cid);
                if let Some(b) =
                    recent_take(&self.recent, &cid).or_else(|| self.unstored.get(&k).cloned())
                {
                    if let Some(r) = reply {
                        let _ = r.send(Ok(b));
                    }
                    return;
                }
                if let Some(e) = &self.store_error {
                    if let Some(r) = reply {
                        let _ = r.send(Err(e.error()));
                    }
                    return;
                }
                // Stored since the caller looked (a batch just landed). A
                // hint needs no bytes: don't read and re-hash the block.
                if reply.is_none() {
                    if self.store.has(&cid).unwrap_or(false) {
                        return;
                    }
                } else {
                    match self.store.get(&cid) {
                        Ok(Some(b)) => {
                            if let Some(r) = reply {
                                let _ = r.send(Ok(b));
                            }
                            return;
                        }
                        Ok(None) => {}
                        Err(e) if fetch_instead(&e) => {
                            tracing::warn!(%cid, "local copy unusable, fetching it from peers: {e}");
                            if matches!(e, StoreError::Corrupt { .. }) {
                                self.corrupt.insert(k.clone());
                            }
                        }
                        Err(e) => {
                            if let Some(r) = reply {
                                let _ = r.send(Err(e.into()));
                            }
                            return;
                        }
                    }
                }
                if self.session.pending() == 0 {
                    // The stall clock starts when wanting starts.
                    self.last_progress = Instant::now();
                }
                self.session.want(cid);
                self.wanted_at.entry(k.clone()).or_insert_with(Instant::now);
                if let Some(r) = reply {
                    self.waiters.entry(k).or_default().push(r);
                }
            }
            FetchCommand::AddPeers(peers) => {
                for p in peers {
                    self.session.add_peer(p);
                }
            }
            FetchCommand::Flush(reply) => {
                if let Some(e) = &self.store_error {
                    let _ = reply.send(Err(e.error()));
                } else if self.unstored.is_empty() && self.storing.is_none() {
                    let _ = reply.send(Ok(()));
                } else {
                    self.flush_waiters.push(reply);
                }
            }
        }
    }

    async fn act(&mut self, actions: Vec<Action<PeerId>>) {
        for action in actions {
            match action {
                Action::Send(peer, msg) => {
                    let _ = self.engine.send(EngineCommand::Send(peer, msg)).await;
                }
                Action::Received(block) => {
                    self.last_progress = Instant::now();
                    self.progress.blocks.fetch_add(1, Ordering::Relaxed);
                    self.progress
                        .bytes
                        .fetch_add(block.data().len() as u64, Ordering::Relaxed);
                    self.counters
                        .blocks_received
                        .fetch_add(1, Ordering::Relaxed);
                    self.counters
                        .bytes_received
                        .fetch_add(block.data().len() as u64, Ordering::Relaxed);
                    let k = key(block.cid());
                    if let Some(t) = self.wanted_at.remove(&k) {
                        self.counters
                            .fetch_latency
                            .observe(t.elapsed().as_secs_f64());
                    }
                    let waiters = self.waiters.remove(&k).unwrap_or_default();
                    if waiters.is_empty() {
                        self.recent
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .insert(block.clone());
                    }
                    for w in waiters {
                        let _ = w.send(Ok(block.clone()));
                    }
                    self.unstored.insert(k, block);
                }
            }
        }
    }

    /// Whether the bytes received so far are within the rate limit (a
    /// quarter second of burst allowed); new want-blocks wait otherwise.
    fn within_budget(&self) -> bool {
        let Some(rate) = self.opts.max_bytes_per_sec.filter(|r| *r > 0) else {
            return true;
        };
        let received = self.progress.bytes.load(Ordering::Relaxed);
        let allowed = (self.started.elapsed().as_secs_f64() + 0.25) * rate as f64;
        (received as f64) < allowed
    }

    fn on_tick(&mut self) {
        let now = Instant::now();
        // Callers that gave up: stop wanting what only they wanted.
        let gone: Vec<Vec<u8>> = self
            .waiters
            .iter_mut()
            .filter_map(|(k, ws)| {
                ws.retain(|w| !w.is_closed());
                ws.is_empty().then(|| k.clone())
            })
            .collect();
        for k in gone {
            self.waiters.remove(&k);
        }
        if self.session.pending() == 0 {
            return;
        }
        let stalled = now.saturating_duration_since(self.last_progress);
        if stalled >= self.opts.stall_timeout {
            let (cid, after, peers) = (
                self.session.unserved().or(self.root),
                self.opts.stall_timeout,
                self.session.peers(),
            );
            self.fail_all(|| NetError::Stalled { cid, after, peers });
            return;
        }
        let wanted_now = match self.opts.provider_search {
            ProviderSearch::Never => false,
            ProviderSearch::Eager => {
                self.session.unserved().is_some() || stalled >= PROVIDER_SEARCH_DELAY
            }
            ProviderSearch::After(delay) => stalled >= delay,
        };
        let search_due = wanted_now
            && self.search.is_none()
            && self
                .last_search
                .is_none_or(|t| now.saturating_duration_since(t) >= PROVIDER_SEARCH_INTERVAL);
        if search_due {
            let Some(target) = self.root.or_else(|| self.session.unserved()) else {
                return;
            };
            self.last_search = Some(now);
            // A retry round too: a want-have or its answer may have been
            // lost, so peers that stayed silent are asked again.
            self.session.retry_all();
            let swarm = self.swarm.clone();
            let limit = self.opts.max_providers;
            tracing::debug!(%target, "looking up providers");
            self.search = Some(tokio::spawn(async move {
                swarm.find_providers(target, limit).await
            }));
        }
    }

    /// Fails every waiting caller with `error` and cancels every want.
    fn fail_all(&mut self, error: impl Fn() -> NetError) {
        for (_, ws) in self.waiters.drain() {
            for w in ws {
                let _ = w.send(Err(error()));
            }
        }
        self.wanted_at.clear();
        let mut cancels = Vec::new();
        while let Some(cid) = self.session.first_want() {
            cancels.extend(self.session.cancel(&cid));
        }
        for a in cancels {
            if let Action::Send(peer, msg) = a {
                let _ = self.engine.try_send(EngineCommand::Send(peer, msg));
            }
        }
    }

    fn maybe_store(&mut self) {
        if self.storing.is_some() || self.unstored.is_empty() {
            return;
        }
        let idle = self.session.pending() == 0 || !self.flush_waiters.is_empty();
        if self.unstored.len() < STORE_BATCH && !idle {
            return;
        }
        let batch: Vec<Block> = self.unstored.values().cloned().collect();
        let corrupt = self.take_corrupt(&batch);
        let store = Arc::clone(&self.store);
        self.storing = Some(tokio::task::spawn_blocking(move || {
            let r = store_blocks(&*store, &batch, &corrupt);
            (batch, r)
        }));
    }

    /// The blocks of `batch` whose local copy was found corrupt.
    fn take_corrupt(&mut self, batch: &[Block]) -> Vec<Block> {
        if self.corrupt.is_empty() {
            return Vec::new();
        }
        batch
            .iter()
            .filter(|b| self.corrupt.remove(&key(b.cid())))
            .cloned()
            .collect()
    }

    async fn on_stored(&mut self, done: Result<StoredBatch, JoinError>) {
        match done {
            Ok((batch, Ok(_))) => {
                for b in batch {
                    self.unstored.remove(&key(b.cid()));
                    // Peers that asked us for it get it now.
                    let _ = self.engine.send(EngineCommand::Stored(b)).await;
                }
            }
            Ok((_, Err(e))) => {
                tracing::error!("storing fetched blocks: {e}");
                let failure = StoreFailure::Store(Arc::new(e));
                for w in self.flush_waiters.drain(..) {
                    let _ = w.send(Err(failure.error()));
                }
                self.store_error = Some(failure);
                return;
            }
            Err(e) => {
                tracing::error!("storing fetched blocks: {e}");
                self.store_error = Some(StoreFailure::Thread(Arc::new(e)));
            }
        }
        if self.unstored.is_empty() {
            for w in self.flush_waiters.drain(..) {
                let _ = w.send(match &self.store_error {
                    Some(e) => Err(e.error()),
                    None => Ok(()),
                });
            }
        }
    }
}

//! The Bitswap engine: the one task that owns every peer's [`PeerLedger`]
//! and outbox, judges inbound blocks ([`Solicited`]) and forwards messages
//! to the fetch sessions.
//!
//! The engine never touches the store. The ledgers' store actions (look
//! blocks up, read them) run on blocking threads, at most one lookup and
//! one read per peer at a time (the ledger holds what waits), and their
//! answers come back to the engine on a channel of their own, tagged with
//! the ledger they belong to: a ledger dropped meanwhile (its peer left)
//! ignores them.

use super::driver::{Counters, EngineCommand, SessionEvent};
use super::fetch::BAN_DURATION;
use super::ledger::{LedgerAction, PeerLedger};
use super::message::Message;
use super::outbox::MAX_PENDING_BLOCK_BYTES;
use super::solicited::Solicited;
use super::writer::{SharedOutbox, Writers};
use crate::block::{Block, Cid};
use crate::net::swarm::PeerEvent;
use crate::store::Store;
use libp2p::PeerId;
use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use tokio::sync::{broadcast, mpsc};

/// A peer's ledger, and the number that tells its store answers from those
/// of a ledger the peer had before.
struct Ledger {
    id: u64,
    ledger: PeerLedger,
}

/// A store answer for one peer's ledger.
pub(super) struct StoreAnswer {
    peer: PeerId,
    /// The [`Ledger::id`] that asked.
    ledger: u64,
    answer: Answer,
}

enum Answer {
    /// Sizes of the blocks looked up (`None`: not stored).
    Has(Vec<(Cid, Option<u64>)>),
    /// The blocks read (`None`: gone or corrupt).
    Read(Vec<(Cid, Option<Block>)>),
}

/// The engine task's state.
pub(super) struct Engine {
    store: Arc<dyn Store>,
    counters: Arc<Counters>,
    writers: Writers,
    ledgers: HashMap<PeerId, Ledger>,
    next_ledger: u64,
    outboxes: HashMap<PeerId, Arc<SharedOutbox>>,
    sessions: HashMap<u64, mpsc::Sender<SessionEvent>>,
    solicited: Solicited<PeerId>,
    /// Unbounded, yet bounded by construction: each ledger has at most one
    /// lookup and one read outstanding, so at most two answers per peer
    /// ledger ever wait here.
    answers: mpsc::UnboundedSender<StoreAnswer>,
}

impl Engine {
    /// The engine for `store`; [`run`](Self::run) it on a task.
    pub(super) fn new(
        store: Arc<dyn Store>,
        counters: Arc<Counters>,
        writers: Writers,
    ) -> (Engine, mpsc::UnboundedReceiver<StoreAnswer>) {
        let (answers, answers_rx) = mpsc::unbounded_channel();
        let engine = Engine {
            store,
            counters,
            writers,
            ledgers: HashMap::new(),
            next_ledger: 0,
            outboxes: HashMap::new(),
            sessions: HashMap::new(),
            solicited: Solicited::default(),
            answers,
        };
        (engine, answers_rx)
    }

    /// Runs until every command sender is gone.
    pub(super) async fn run(
        mut self,
        mut commands: mpsc::Receiver<EngineCommand>,
        mut answers: mpsc::UnboundedReceiver<StoreAnswer>,
        mut peer_events: broadcast::Receiver<PeerEvent>,
    ) {
        let mut events_open = true;
        loop {
            // Peer events first: a disconnect is broadcast before any
            // message of a later connection reaches this queue, so a
            // returning peer's new wants are never forgotten with its old
            // ones. Then store answers, which keep serving going.
            tokio::select! {
                biased;
                ev = peer_events.recv(), if events_open => match ev {
                    Ok(PeerEvent::Disconnected(peer)) => self.disconnected(peer),
                    Err(broadcast::error::RecvError::Lagged(_)) => self.reread_peers(),
                    Ok(_) => {}
                    Err(broadcast::error::RecvError::Closed) => events_open = false,
                },
                Some(answer) = answers.recv() => self.on_answer(answer),
                cmd = commands.recv() => match cmd {
                    Some(cmd) => self.on_command(cmd),
                    None => break,
                },
            }
        }
    }

    /// Wants die with the peer's last connection (as in Kubo): its ledger,
    /// and what was queued for it.
    fn disconnected(&mut self, peer: PeerId) {
        self.ledgers.remove(&peer);
        self.solicited.disconnected(&peer);
        if let Some(o) = self.outboxes.remove(&peer) {
            o.close();
        }
    }

    /// Disconnects were missed: asks who is connected (from a task of its
    /// own, so the engine never waits on the swarm).
    fn reread_peers(&self) {
        let swarm = self.writers.swarm.clone();
        let engine = self.writers.engine.clone();
        tokio::spawn(async move {
            if let Ok(peers) = swarm.peers().await {
                let peers = peers.into_iter().collect();
                let _ = engine.send(EngineCommand::Connected(peers)).await;
            }
        });
    }

    fn on_command(&mut self, cmd: EngineCommand) {
        match cmd {
            EngineCommand::Inbound(peer, msg) => {
                // A peer Bitswap talks with stays connected (see the
                // swarm's connection manager).
                self.writers.swarm.activity().touch(peer);
                self.inbound(peer, msg)
            }
            EngineCommand::Send(peer, msg) => {
                self.writers.swarm.activity().touch(peer);
                self.solicited.on_send(&peer, &msg);
                self.send(peer, msg)
            }
            EngineCommand::Register(id, s) => {
                self.sessions.insert(id, s);
            }
            EngineCommand::Unregister(id) => {
                self.sessions.remove(&id);
            }
            EngineCommand::Stored(block) => {
                let mut pushes = Vec::new();
                for (peer, l) in self.ledgers.iter_mut() {
                    if let Some(msg) = l.ledger.on_new_block(&block) {
                        pushes.push((*peer, msg));
                    }
                }
                for (peer, msg) in pushes {
                    self.send(peer, msg);
                }
            }
            EngineCommand::Room(peer) => self.serve(peer),
            EngineCommand::Connected(peers) => {
                // Writers are left alone: one may be dialing a provider,
                // and idle ones end by themselves.
                self.ledgers.retain(|p, _| peers.contains(p));
            }
            EngineCommand::WriterIdle(peer, queue, reply) => {
                // A writer no longer in the map is retired too.
                let retire = match self.outboxes.get(&peer) {
                    Some(o) if Arc::ptr_eq(o, &queue) => {
                        let empty = o.is_empty();
                        if empty {
                            self.outboxes.remove(&peer);
                        }
                        empty
                    }
                    _ => true,
                };
                let _ = reply.send(retire);
            }
            EngineCommand::WriterGone(peer, queue) => {
                // Only if it is still this peer's writer: after a
                // disconnect a new one may have taken its place.
                if !self
                    .outboxes
                    .get(&peer)
                    .is_some_and(|o| Arc::ptr_eq(o, &queue))
                {
                    return;
                }
                self.outboxes.remove(&peer);
                self.ledgers.remove(&peer);
                for s in self.sessions.values() {
                    let _ = s.try_send(SessionEvent::PeerGone(peer));
                }
            }
        }
    }

    /// A message from `peer`: its blocks are judged, its wants go to its
    /// ledger, and blocks and presences to the fetch sessions.
    fn inbound(&mut self, peer: PeerId, msg: Message) {
        if !self.solicited.on_blocks(&peer, &msg.blocks) {
            tracing::warn!(%peer, "peer sent a block nobody asked it for: banning");
            for s in self.sessions.values() {
                let _ = s.try_send(SessionEvent::Banned(peer));
            }
            self.ledgers.remove(&peer);
            if let Some(o) = self.outboxes.remove(&peer) {
                o.close();
            }
            let swarm = self.writers.swarm.clone();
            tokio::spawn(async move {
                let _ = swarm.ban(peer, BAN_DURATION).await;
            });
            return;
        }
        let next_ledger = &mut self.next_ledger;
        let l = self.ledgers.entry(peer).or_insert_with(|| {
            *next_ledger += 1;
            Ledger {
                id: *next_ledger,
                ledger: PeerLedger::default(),
            }
        });
        let (actions, _) = l.ledger.receive(&msg);
        self.act(peer, actions);
        self.serve(peer);
        if !msg.blocks.is_empty() || !msg.presences.is_empty() {
            // try_send: a session that cannot keep up loses a message and
            // re-asks after its timeout, instead of stalling every other
            // peer's traffic.
            self.sessions.retain(|_, s| !s.is_closed());
            for s in self.sessions.values() {
                if s.try_send(SessionEvent::Message(peer, msg.clone()))
                    .is_err()
                {
                    tracing::debug!(%peer, "fetch session behind: message dropped");
                }
            }
        }
    }

    /// A store answer: fed to the ledger that asked, if it is still there.
    fn on_answer(
        &mut self,
        StoreAnswer {
            peer,
            ledger,
            answer,
        }: StoreAnswer,
    ) {
        let Some(l) = self.ledgers.get_mut(&peer).filter(|l| l.id == ledger) else {
            return;
        };
        match answer {
            Answer::Has(sizes) => {
                let (actions, _) = l.ledger.on_has(sizes);
                self.act(peer, actions);
                self.serve(peer);
            }
            Answer::Read(blocks) => {
                let (actions, stats) = l.ledger.on_read(blocks);
                self.counters
                    .blocks_sent
                    .fetch_add(stats.blocks, Ordering::Relaxed);
                self.counters
                    .bytes_sent
                    .fetch_add(stats.block_bytes, Ordering::Relaxed);
                self.act(peer, actions);
                self.ask_for_room(peer);
            }
        }
    }

    /// Blocks a peer asked for, read under the room its outbox has left:
    /// the rest waits in its ledger until the writer drains the outbox to
    /// half and asks for more.
    fn serve(&mut self, peer: PeerId) {
        let Some(l) = self.ledgers.get_mut(&peer) else {
            return;
        };
        if !l.ledger.waits_for_room() {
            return;
        }
        let (room, empty) = self
            .outboxes
            .get(&peer)
            .map_or((MAX_PENDING_BLOCK_BYTES, true), |o| o.room());
        let actions = l.ledger.serve(room, empty);
        self.act(peer, actions);
        self.ask_for_room(peer);
    }

    /// Has the peer's writer ask for more ([`EngineCommand::Room`]) once its
    /// outbox drained to half, if want-blocks wait for room.
    fn ask_for_room(&self, peer: PeerId) {
        let waits = self
            .ledgers
            .get(&peer)
            .is_some_and(|l| l.ledger.waits_for_room());
        if let Some(o) = self.outboxes.get(&peer).filter(|_| waits) {
            o.want_room();
        }
    }

    /// Carries out a ledger's actions: messages to the peer's outbox, store
    /// work to a blocking thread.
    fn act(&mut self, peer: PeerId, actions: Vec<LedgerAction>) {
        let Some(ledger) = self.ledgers.get(&peer).map(|l| l.id) else {
            return;
        };
        for action in actions {
            let (store, answers) = match action {
                LedgerAction::Send(msg) => {
                    self.send(peer, msg);
                    continue;
                }
                _ => (Arc::clone(&self.store), self.answers.clone()),
            };
            match action {
                LedgerAction::Send(_) => {}
                LedgerAction::Has(cids) => {
                    tokio::task::spawn_blocking(move || {
                        let sizes = cids
                            .into_iter()
                            .map(|cid| (cid, store.size_of(&cid).unwrap_or(None)))
                            .collect();
                        let answer = Answer::Has(sizes);
                        let _ = answers.send(StoreAnswer {
                            peer,
                            ledger,
                            answer,
                        });
                    });
                }
                LedgerAction::Read(cids) => {
                    tokio::task::spawn_blocking(move || {
                        let blocks = cids.into_iter().map(|cid| (cid, read(&*store, &cid)));
                        let answer = Answer::Read(blocks.collect());
                        let _ = answers.send(StoreAnswer {
                            peer,
                            ledger,
                            answer,
                        });
                    });
                }
            }
        }
    }

    /// Queues `msg` for `peer`, starting its writer if it has none.
    fn send(&mut self, peer: PeerId, msg: Message) {
        let writers = &self.writers;
        let outbox = self
            .outboxes
            .entry(peer)
            .or_insert_with(|| writers.start(peer));
        outbox.push(msg);
    }
}

/// A block to serve: read and verified, or `None` (not stored, or corrupt:
/// never served).
fn read(store: &dyn Store, cid: &Cid) -> Option<Block> {
    match store.get(cid) {
        Ok(block) => block,
        Err(e) => {
            tracing::warn!(%cid, "not serving a block: {e}");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::block::{Block, Cid, Multihash};
    use crate::net::bitswap::fetch::FetchOptions;
    use crate::net::bitswap::test_block;
    use crate::net::swarm::NetConfig;
    use crate::net::Network;
    use crate::store::{MemoryStore, PinKind, Result, Store, StoredBlock, SweepReport};
    use std::collections::HashSet;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::Arc;
    use std::thread::ThreadId;

    /// A memory store that counts the block lookups and reads made on one
    /// thread (the runtime's) and elsewhere.
    struct Watched {
        inner: MemoryStore,
        runtime: ThreadId,
        on_runtime: AtomicU64,
        elsewhere: AtomicU64,
    }

    impl Watched {
        fn note(&self) {
            let counter = if std::thread::current().id() == self.runtime {
                &self.on_runtime
            } else {
                &self.elsewhere
            };
            counter.fetch_add(1, Ordering::Relaxed);
        }
    }

    impl Store for Watched {
        crate::store::pass_through_store_methods!(inner);
        fn put_many(&self, blocks: &mut dyn Iterator<Item = Block>) -> Result<u64> {
            self.inner.put_many(blocks)
        }
        fn get(&self, cid: &Cid) -> Result<Option<Block>> {
            self.note();
            self.inner.get(cid)
        }
        fn has(&self, cid: &Cid) -> Result<bool> {
            self.note();
            self.inner.has(cid)
        }
        fn size_of(&self, cid: &Cid) -> Result<Option<u64>> {
            self.note();
            self.inner.size_of(cid)
        }
        fn for_each_block(&self, f: &mut dyn FnMut(StoredBlock) -> Result<()>) -> Result<()> {
            self.inner.for_each_block(f)
        }
        fn read_raw(&self, mh: &Multihash) -> Result<Option<bytes::Bytes>> {
            self.note();
            self.inner.read_raw(mh)
        }
        fn sweep(&self, live: &HashSet<Multihash>) -> Result<SweepReport> {
            self.inner.sweep(live)
        }
        fn remove(&self, mh: &Multihash) -> Result<bool> {
            self.inner.remove(mh)
        }
        fn blocks_after(
            &self,
            after: Option<&Multihash>,
            limit: usize,
        ) -> Result<Vec<StoredBlock>> {
            self.inner.blocks_after(after, limit)
        }
        fn replace(&self, block: &Block) -> Result<()> {
            self.inner.replace(block)
        }
    }

    /// On a single-threaded runtime every task, the engine's among them,
    /// runs on the test's thread: a serving node whose store is never
    /// touched there does its lookups and reads off the runtime.
    #[tokio::test(flavor = "current_thread")]
    async fn the_engine_serves_without_touching_the_store_on_the_runtime() {
        let served = Arc::new(Watched {
            inner: MemoryStore::new(),
            runtime: std::thread::current().id(),
            on_runtime: AtomicU64::new(0),
            elsewhere: AtomicU64::new(0),
        });
        let blocks: Vec<Block> = (0..40).map(|i| test_block(i, 256 * 1024)).collect();
        served.inner.put_many(&mut blocks.iter().cloned()).unwrap();
        let config = NetConfig::default();
        let a = Network::start([31; 32], served.clone(), &config)
            .await
            .unwrap();
        let b = Network::start([32; 32], Arc::new(MemoryStore::new()), &config)
            .await
            .unwrap();
        let addr = a.swarm.listen_addrs().await.unwrap()[0].clone();
        b.swarm.dial(addr).await.unwrap();
        let cids: Vec<Cid> = blocks.iter().map(|b| *b.cid()).collect();
        let got = b
            .bitswap
            .fetch(&cids, &[a.peer_id], FetchOptions::default())
            .await
            .unwrap();
        assert_eq!(got, blocks);
        assert!(served.elsewhere.load(Ordering::Relaxed) >= 40);
        assert_eq!(served.on_runtime.load(Ordering::Relaxed), 0);
        assert_eq!(a.bitswap.stats().blocks_sent, 40);
    }
}

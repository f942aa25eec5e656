//! Drives the Bitswap state machines over libp2p streams.
//!
//! Bitswap messages travel one way per stream: each side opens its own
//! stream to send. Inbound streams (1.2.0, 1.1.0 and 1.0.0 are accepted)
//! are read frame by frame (`inbound.rs`) and handed to the engine
//! task (`engine.rs`), which answers through each peer's
//! [`PeerLedger`](super::ledger::PeerLedger) (its store work on blocking
//! threads) and forwards blocks and presences to the running fetch
//! sessions. Outbound messages go through one writer task per peer that
//! keeps a stream open (`writer.rs`).
//!
//! [`Bitswap`] is the cloneable handle the rest of the node uses.

use super::engine::Engine;
use super::fetch::{FetchOptions, FetchSession};
use super::message::Message;
use super::writer::{SharedOutbox, Writers};
use crate::block::{Block, Cid};
use crate::dag::fetch::DagFetch;
use crate::net::NetError;
use crate::store::Store;
use libp2p::PeerId;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use tokio::sync::mpsc;

/// Protocols accepted, newest first; we send with the first.
pub const PROTOCOLS: [&str; 3] = [
    "/ipfs/bitswap/1.2.0",
    "/ipfs/bitswap/1.1.0",
    "/ipfs/bitswap/1.0.0",
];

/// Longest a writer keeps its stream open with nothing to send (shorter
/// when the connection idle timeout is).
const WRITER_IDLE: std::time::Duration = std::time::Duration::from_secs(30);

/// Events queued for one fetch session; a session that falls this far
/// behind loses messages and re-asks after its block timeout rather than
/// stalling every other peer's traffic.
pub(super) const SESSION_EVENTS_DEPTH: usize = 256;

pub(super) enum EngineCommand {
    Inbound(PeerId, Message),
    Send(PeerId, Message),
    Register(u64, mpsc::Sender<SessionEvent>),
    Unregister(u64),
    Stored(Block),
    /// A writer ended (its peer unreachable, or its outbox closed).
    WriterGone(PeerId, Arc<SharedOutbox>),
    /// A writer's outbox drained while the peer's ledger holds more
    /// want-blocks: serve the next ones.
    Room(PeerId),
    /// The peers connected now (read after peer events were missed): the
    /// ledgers of the others go.
    Connected(HashSet<PeerId>),
    /// A writer has had nothing to send for a while and closed its
    /// stream; the engine retires it (answers `true`) unless traffic for
    /// the peer arrived meanwhile. An open stream keeps its connection
    /// alive, so writers that never ended kept every peer ever sent a want
    /// connected for good.
    WriterIdle(
        PeerId,
        Arc<SharedOutbox>,
        tokio::sync::oneshot::Sender<bool>,
    ),
}

/// What the engine tells fetch sessions.
pub(super) enum SessionEvent {
    /// Blocks or presences from a peer.
    Message(PeerId, Message),
    /// Our stream to this peer closed or could not be opened.
    PeerGone(PeerId),
    /// The peer sent a block nobody asked it for and is banned.
    Banned(PeerId),
}

/// Bitswap figures (Kubo's `bitswap stat` and more).
#[derive(Clone, Debug, Default)]
pub struct BitswapStats {
    /// Blocks received from peers (verified).
    pub blocks_received: u64,
    /// Their bytes.
    pub bytes_received: u64,
    /// Blocks served to peers.
    pub blocks_sent: u64,
    /// Their bytes.
    pub bytes_sent: u64,
    /// Fetch sessions running now.
    pub active_sessions: usize,
    /// Most peers any running session may ask.
    pub session_peers: usize,
    /// Each running session's figures.
    pub sessions: Vec<SessionStats>,
}

/// One running fetch session's figures.
#[derive(Clone, Debug, Default)]
pub struct SessionStats {
    /// What the session fetches, if it was given a root.
    pub root: Option<Cid>,
    /// Peers it may ask.
    pub peers: usize,
    /// Peers that sent it a wanted block.
    pub senders: usize,
    /// Blocks it received.
    pub blocks: u64,
    /// Their bytes.
    pub bytes: u64,
}

/// Counters shared by the engine and the sessions.
pub(super) struct Counters {
    pub blocks_sent: std::sync::atomic::AtomicU64,
    pub bytes_sent: std::sync::atomic::AtomicU64,
    pub blocks_received: std::sync::atomic::AtomicU64,
    pub bytes_received: std::sync::atomic::AtomicU64,
    /// Live sessions' figures, by session id.
    pub sessions: std::sync::Mutex<HashMap<u64, Arc<super::fetch::FetchProgress>>>,
    /// Want-to-arrival time of fetched blocks.
    pub fetch_latency: prometheus_client::metrics::histogram::Histogram,
}

/// A cloneable handle to the Bitswap engine.
#[derive(Clone)]
pub struct Bitswap {
    counters: Arc<Counters>,
    engine: mpsc::Sender<EngineCommand>,
    /// To disconnect peers that misbehave.
    swarm: crate::net::swarm::SwarmHandle,
    store: Arc<dyn Store>,
    next_session: Arc<std::sync::atomic::AtomicU64>,
}

impl Bitswap {
    /// Starts accepting Bitswap streams and the engine task.
    pub fn spawn(
        mut control: libp2p_stream::Control,
        store: Arc<dyn Store>,
        swarm: crate::net::swarm::SwarmHandle,
        fetch_latency: prometheus_client::metrics::histogram::Histogram,
        idle_timeout: std::time::Duration,
    ) -> Result<Bitswap, NetError> {
        let writer_idle = idle_timeout.min(WRITER_IDLE);
        // Bounded: inbound readers wait when the engine falls behind.
        let (tx, rx) = mpsc::channel::<EngineCommand>(256);
        super::inbound::accept_streams(&mut control, &swarm, &tx)?;
        let counters = Arc::new(Counters {
            blocks_sent: Default::default(),
            bytes_sent: Default::default(),
            blocks_received: Default::default(),
            bytes_received: Default::default(),
            sessions: Default::default(),
            fetch_latency,
        });
        let writers = Writers {
            control,
            swarm: swarm.clone(),
            engine: tx.clone(),
            idle: writer_idle,
        };
        let (engine, answers) = Engine::new(Arc::clone(&store), Arc::clone(&counters), writers);
        swarm.spawn_task(engine.run(rx, answers, swarm.subscribe()));
        Ok(Bitswap {
            counters,
            engine: tx,
            swarm,
            store,
            next_session: Arc::new(std::sync::atomic::AtomicU64::new(0)),
        })
    }

    /// Figures since start.
    pub fn stats(&self) -> BitswapStats {
        use std::sync::atomic::Ordering::Relaxed;
        let c = &self.counters;
        let sessions = c.sessions.lock().unwrap_or_else(|e| e.into_inner());
        BitswapStats {
            blocks_received: c.blocks_received.load(Relaxed),
            bytes_received: c.bytes_received.load(Relaxed),
            blocks_sent: c.blocks_sent.load(Relaxed),
            bytes_sent: c.bytes_sent.load(Relaxed),
            active_sessions: sessions.len(),
            session_peers: sessions
                .values()
                .map(|p| p.peers.load(Relaxed))
                .max()
                .unwrap_or(0),
            sessions: sessions
                .values()
                .map(|p| SessionStats {
                    root: p.root,
                    peers: p.peers.load(Relaxed),
                    senders: p.senders.load(Relaxed),
                    blocks: p.blocks.load(Relaxed),
                    bytes: p.bytes.load(Relaxed),
                })
                .collect(),
        }
    }

    /// Starts a fetch session (see [`super::fetch`]). `root` is what DHT
    /// lookups search for when connected peers lack the blocks.
    pub async fn session(
        &self,
        root: Option<Cid>,
        opts: FetchOptions,
    ) -> Result<FetchSession, NetError> {
        let id = self
            .next_session
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        FetchSession::start(
            Arc::clone(&self.counters),
            self.engine.clone(),
            self.swarm.clone(),
            Arc::clone(&self.store),
            id,
            root,
            opts,
        )
        .await
    }

    /// Fetches every CID in `cids` (asking `peers` besides the connected
    /// ones), stores them, and returns them in the order given.
    pub async fn fetch(
        &self,
        cids: &[Cid],
        peers: &[PeerId],
        opts: FetchOptions,
    ) -> Result<Vec<Block>, NetError> {
        let session = self.session(cids.first().copied(), opts).await?;
        session.add_peers(peers.to_vec()).await?;
        session.prefetch(cids);
        let mut out = Vec::with_capacity(cids.len());
        for cid in cids {
            out.push(session.get(*cid).await?);
        }
        session.flush().await?;
        Ok(out)
    }
}

impl Bitswap {
    /// Makes every block of the DAG under `root` local: what is stored is
    /// read, the rest fetched (see [`crate::dag::fetch`]: up to 512 blocks
    /// in flight, spread over every peer that has them), verified and stored
    /// durably before this returns.
    pub async fn fetch_dag(
        &self,
        root: Cid,
        peers: &[PeerId],
        opts: FetchOptions,
        progress: &mut (dyn FnMut(DagFetch) + Send),
    ) -> Result<DagFetch, NetError> {
        let session = self.session(Some(root), opts).await?;
        if !peers.is_empty() {
            session.add_peers(peers.to_vec()).await?;
        }
        self.fetch_dag_in(&session, root, progress).await
    }

    /// [`fetch_dag`](Self::fetch_dag) in an existing session.
    pub async fn fetch_dag_in(
        &self,
        session: &FetchSession,
        root: Cid,
        progress: &mut (dyn FnMut(DagFetch) + Send),
    ) -> Result<DagFetch, NetError> {
        let stats = crate::dag::fetch::fetch_dag(session, root, progress).await?;
        session.flush().await?;
        Ok(stats)
    }
}

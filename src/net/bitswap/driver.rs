//! Drives the Bitswap state machines over libp2p streams.
//!
//! Bitswap messages travel one way per stream: each side opens its own
//! stream to send. Inbound streams (1.2.0, 1.1.0 and 1.0.0 are accepted)
//! are read frame by frame and handed to the engine task, which answers
//! from the store through each peer's [`PeerLedger`] and forwards blocks and
//! presences to the running fetch sessions. Outbound messages go through one
//! writer task per peer that keeps a stream open.

use super::fetch::{FetchOptions, FetchSession, BAN_DURATION};
use super::ledger::PeerLedger;
use super::message::{frame_segments, Framed, Message, Version, MAX_MESSAGE_BYTES};
use super::outbox::Outbox;
use crate::block::{Block, Cid};
use crate::dag::fetch::DagFetch;
use crate::net::NetError;
use crate::store::Store;
use futures::{AsyncReadExt, AsyncWriteExt, StreamExt};
use libp2p::{PeerId, StreamProtocol};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use tokio::sync::mpsc;

/// Protocols accepted, newest first; we send with the first.
pub const PROTOCOLS: [&str; 3] = [
    "/ipfs/bitswap/1.2.0",
    "/ipfs/bitswap/1.1.0",
    "/ipfs/bitswap/1.0.0",
];

/// How long opening a stream to a peer (dialing it if needed) may take.
const OPEN_STREAM_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(15);

/// Longest a writer keeps its stream open with nothing to send (shorter
/// when the connection idle timeout is).
const WRITER_IDLE: std::time::Duration = std::time::Duration::from_secs(30);

/// One peer's pending traffic, shared by the engine and the peer's writer.
#[derive(Default)]
pub(super) struct SharedOutbox {
    outbox: std::sync::Mutex<Outbox>,
    ready: tokio::sync::Notify,
    /// Set when the peer disconnected: its writer drops what it still
    /// holds and ends.
    closed: std::sync::atomic::AtomicBool,
    /// Set by the engine when the peer's ledger holds want-blocks that did
    /// not fit: the writer asks for more ([`EngineCommand::Room`]) once
    /// the outbox has drained to half.
    more: std::sync::atomic::AtomicBool,
}

impl SharedOutbox {
    /// The peer is gone: what was queued for it answered wants of a
    /// connection that no longer exists. Sent after it reconnects (say,
    /// restarted), those blocks would be ones its new self never asked
    /// for, which it takes for forgeries.
    fn close(&self) {
        self.closed
            .store(true, std::sync::atomic::Ordering::Release);
        *self.outbox.lock().unwrap_or_else(|e| e.into_inner()) = Outbox::default();
        self.ready.notify_one();
    }

    fn is_closed(&self) -> bool {
        self.closed.load(std::sync::atomic::Ordering::Acquire)
    }

    fn push(&self, msg: Message) {
        self.outbox
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(msg);
        self.ready.notify_one();
    }

    /// The next message, and whether the engine should now be asked for
    /// more blocks (the ledger has some waiting and the outbox has room).
    fn take(&self) -> (Option<Message>, bool) {
        let mut outbox = self.outbox.lock().unwrap_or_else(|e| e.into_inner());
        let msg = outbox.take_message();
        let room = outbox.block_bytes() <= super::outbox::MAX_PENDING_BLOCK_BYTES / 2
            && self.more.load(std::sync::atomic::Ordering::Acquire)
            && self.more.swap(false, std::sync::atomic::Ordering::AcqRel);
        (msg, room)
    }

    /// Room for blocks in the outbox, and whether it is empty.
    fn room(&self) -> (usize, bool) {
        let outbox = self.outbox.lock().unwrap_or_else(|e| e.into_inner());
        (outbox.block_room(), outbox.is_empty())
    }
}

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
    pub blocks_received: u64,
    pub bytes_received: u64,
    pub blocks_sent: u64,
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
    pub root: Option<Cid>,
    /// Peers it may ask.
    pub peers: usize,
    /// Peers that sent it a wanted block.
    pub senders: usize,
    pub blocks: u64,
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

/// Buffers for inbound frames of at least [`POOLED_FRAME_BYTES`], reused:
/// a fresh 4 MiB buffer per message was zero-filled and faulted in before
/// the stream was read into it (≈ 4 % of a receiving daemon's CPU). Every
/// pooled buffer is [`MAX_MESSAGE_BYTES`] long and initialised once.
#[derive(Default)]
pub(super) struct FramePool {
    free: std::sync::Mutex<Vec<Vec<u8>>>,
}

/// Smallest frame read into a pooled buffer: a block kept from a frame
/// keeps its whole buffer alive, so smaller frames get buffers of their own
/// size.
const POOLED_FRAME_BYTES: usize = MAX_MESSAGE_BYTES / 2;

/// Most idle buffers the pool keeps (each [`MAX_MESSAGE_BYTES`]).
const POOLED_FRAMES: usize = 4;

impl FramePool {
    fn take(&self) -> Vec<u8> {
        self.free
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .pop()
            .unwrap_or_else(|| vec![0u8; MAX_MESSAGE_BYTES])
    }

    fn give_back(&self, buf: Vec<u8>) {
        let mut free = self.free.lock().unwrap_or_else(|e| e.into_inner());
        if free.len() < POOLED_FRAMES {
            free.push(buf);
        }
    }
}

/// A frame read into a pooled buffer; returns it to the pool when the last
/// `Bytes` slice of it (the message, its blocks) is dropped.
struct PooledFrame {
    buf: Vec<u8>,
    len: usize,
    pool: Arc<FramePool>,
}

impl AsRef<[u8]> for PooledFrame {
    fn as_ref(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

impl Drop for PooledFrame {
    fn drop(&mut self) {
        self.pool.give_back(std::mem::take(&mut self.buf));
    }
}

/// Reads one varint-framed message; `Ok(None)` at a clean end of stream.
async fn read_frame(
    stream: &mut libp2p::Stream,
    pool: &Arc<FramePool>,
) -> Result<Option<bytes::Bytes>, NetError> {
    let mut len: u64 = 0;
    for i in 0..10 {
        let mut byte = [0u8; 1];
        match stream.read(&mut byte).await {
            Ok(0) if i == 0 => return Ok(None),
            Ok(0) => {
                return Err(NetError::Protocol(
                    "stream ended inside a length prefix".into(),
                ))
            }
            Ok(_) => {}
            Err(e) => return Err(NetError::Protocol(format!("reading: {e}"))),
        }
        if i == 9 && byte[0] > 1 {
            // A tenth byte can only hold the 64th bit.
            return Err(NetError::Protocol("length prefix overflows 64 bits".into()));
        }
        len |= ((byte[0] & 0x7f) as u64) << (7 * i);
        if byte[0] & 0x80 == 0 {
            if len as usize > MAX_MESSAGE_BYTES {
                return Err(NetError::Protocol(format!(
                    "message of {len} bytes over the limit"
                )));
            }
            let len = len as usize;
            let read = |e: std::io::Error| NetError::Protocol(format!("reading message: {e}"));
            if len < POOLED_FRAME_BYTES {
                let mut buf = vec![0u8; len];
                stream.read_exact(&mut buf).await.map_err(read)?;
                return Ok(Some(bytes::Bytes::from(buf)));
            }
            let mut frame = PooledFrame {
                buf: pool.take(),
                len,
                pool: Arc::clone(pool),
            };
            stream
                .read_exact(&mut frame.buf[..len])
                .await
                .map_err(read)?;
            return Ok(Some(bytes::Bytes::from_owner(frame)));
        }
    }
    Err(NetError::Protocol("length prefix too long".into()))
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
        let (tx, mut rx) = mpsc::channel::<EngineCommand>(256);
        let frames = Arc::new(FramePool::default());
        for proto in PROTOCOLS {
            let mut incoming = control
                .accept(StreamProtocol::new(proto))
                .map_err(|e| NetError::Setup(format!("{proto}: {e}")))?;
            let tx = tx.clone();
            let frames = Arc::clone(&frames);
            swarm.spawn_task(async move {
                while let Some((peer, mut stream)) = incoming.next().await {
                    let tx = tx.clone();
                    let frames = Arc::clone(&frames);
                    tokio::spawn(async move {
                        loop {
                            match read_frame(&mut stream, &frames).await {
                                Ok(Some(bytes)) => match Message::decode_bytes(&bytes) {
                                    Ok(msg) => {
                                        if tx.send(EngineCommand::Inbound(peer, msg)).await.is_err()
                                        {
                                            return;
                                        }
                                    }
                                    Err(e) => {
                                        tracing::debug!(%peer, "bad bitswap message: {e}");
                                        return;
                                    }
                                },
                                Ok(None) => return,
                                Err(e) => {
                                    tracing::debug!(%peer, "bitswap stream: {e}");
                                    return;
                                }
                            }
                        }
                    });
                }
            });
        }
        let counters = Arc::new(Counters {
            blocks_sent: Default::default(),
            bytes_sent: Default::default(),
            blocks_received: Default::default(),
            bytes_received: Default::default(),
            sessions: Default::default(),
            fetch_latency,
        });
        let engine_counters = Arc::clone(&counters);
        let engine_store = Arc::clone(&store);
        let engine_tx = tx.clone();
        let tasks = swarm.clone();
        let mut peer_events = swarm.subscribe();
        swarm.spawn_task(async move {
            let mut ledgers: HashMap<PeerId, PeerLedger> = HashMap::new();
            let mut outboxes: HashMap<PeerId, Arc<SharedOutbox>> = HashMap::new();
            let mut sessions: HashMap<u64, mpsc::Sender<SessionEvent>> = HashMap::new();
            let mut solicited: super::session::Solicited<PeerId> = Default::default();
            let send =
                |outboxes: &mut HashMap<PeerId, Arc<SharedOutbox>>, peer: PeerId, msg: Message| {
                    let outbox = outboxes.entry(peer).or_insert_with(|| {
                        let shared = Arc::new(SharedOutbox::default());
                        tasks.spawn_task(writer(
                            control.clone(),
                            peer,
                            Arc::clone(&shared),
                            engine_tx.clone(),
                            writer_idle,
                        ));
                        shared
                    });
                    outbox.push(msg);
                };
            // Blocks a peer asked for, read under the room its outbox has
            // left: the rest waits in its ledger until the writer drains
            // the outbox to half and asks for more.
            let serve = |ledgers: &mut HashMap<PeerId, PeerLedger>,
                         outboxes: &mut HashMap<PeerId, Arc<SharedOutbox>>,
                         peer: PeerId| {
                let Some(ledger) = ledgers.get_mut(&peer) else {
                    return;
                };
                if !ledger.has_ready() {
                    return;
                }
                let (room, empty) = outboxes
                    .get(&peer)
                    .map_or((super::outbox::MAX_PENDING_BLOCK_BYTES, true), |o| o.room());
                let (replies, stats) = ledger.serve(&*engine_store, room, empty);
                engine_counters
                    .blocks_sent
                    .fetch_add(stats.blocks, std::sync::atomic::Ordering::Relaxed);
                engine_counters
                    .bytes_sent
                    .fetch_add(stats.block_bytes, std::sync::atomic::Ordering::Relaxed);
                let more = ledger.has_ready();
                for reply in replies {
                    send(outboxes, peer, reply);
                }
                if more {
                    // Set after the push, so wake the writer too: it may
                    // have taken everything before it saw the flag.
                    if let Some(o) = outboxes.get(&peer) {
                        o.more.store(true, std::sync::atomic::Ordering::Release);
                        o.ready.notify_one();
                    }
                }
            };
            let mut events_open = true;
            loop {
                // Peer events first: a disconnect is broadcast before any
                // message of a later connection reaches this queue, so a
                // returning peer's new wants are never forgotten with its
                // old ones.
                let cmd = tokio::select! {
                    biased;
                    ev = peer_events.recv(), if events_open => {
                        use tokio::sync::broadcast::error::RecvError;
                        match ev {
                            // Wants die with the peer's last connection (as
                            // in Kubo): its ledger, and what was queued.
                            Ok(crate::net::swarm::PeerEvent::Disconnected(peer)) => {
                                ledgers.remove(&peer);
                                solicited.disconnected(&peer);
                                if let Some(o) = outboxes.remove(&peer) {
                                    o.close();
                                }
                            }
                            Err(RecvError::Lagged(_)) => {
                                // Disconnects were missed: ask who is
                                // connected (from a task of its own, so the
                                // engine never waits on the swarm).
                                let swarm = tasks.clone();
                                let engine = engine_tx.clone();
                                tokio::spawn(async move {
                                    if let Ok(peers) = swarm.peers().await {
                                        let peers = peers.into_iter().collect();
                                        let _ = engine.send(EngineCommand::Connected(peers)).await;
                                    }
                                });
                            }
                            Ok(_) => {}
                            Err(RecvError::Closed) => events_open = false,
                        }
                        continue;
                    }
                    cmd = rx.recv() => match cmd {
                        Some(cmd) => cmd,
                        None => break,
                    },
                };
                match cmd {
                    EngineCommand::Inbound(peer, msg) => {
                        if !solicited.on_blocks(&peer, &msg.blocks) {
                            tracing::warn!(%peer, "peer sent a block nobody asked it for: banning");
                            for s in sessions.values() {
                                let _ = s.try_send(SessionEvent::Banned(peer));
                            }
                            ledgers.remove(&peer);
                            if let Some(o) = outboxes.remove(&peer) {
                                o.close();
                            }
                            let swarm = tasks.clone();
                            tokio::spawn(async move {
                                let _ = swarm.ban(peer, BAN_DURATION).await;
                            });
                            continue;
                        }
                        let ledger = ledgers.entry(peer).or_default();
                        let (replies, _) = ledger.receive(&msg, &*engine_store);
                        for reply in replies {
                            send(&mut outboxes, peer, reply);
                        }
                        serve(&mut ledgers, &mut outboxes, peer);
                        if !msg.blocks.is_empty() || !msg.presences.is_empty() {
                            // try_send: a session that cannot keep up loses a
                            // message and re-asks after its timeout, instead of
                            // stalling every other peer's traffic.
                            sessions.retain(|_, s| !s.is_closed());
                            for s in sessions.values() {
                                if s.try_send(SessionEvent::Message(peer, msg.clone()))
                                    .is_err()
                                {
                                    tracing::debug!(%peer, "fetch session behind: message dropped");
                                }
                            }
                        }
                    }
                    EngineCommand::Send(peer, msg) => {
                        solicited.on_send(&peer, &msg);
                        send(&mut outboxes, peer, msg)
                    }
                    EngineCommand::Register(id, s) => {
                        sessions.insert(id, s);
                    }
                    EngineCommand::Unregister(id) => {
                        sessions.remove(&id);
                    }
                    EngineCommand::Stored(block) => {
                        let mut pushes = Vec::new();
                        for (peer, ledger) in ledgers.iter_mut() {
                            if let Some(msg) = ledger.on_new_block(&block) {
                                pushes.push((*peer, msg));
                            }
                        }
                        for (peer, msg) in pushes {
                            send(&mut outboxes, peer, msg);
                        }
                    }
                    EngineCommand::Room(peer) => serve(&mut ledgers, &mut outboxes, peer),
                    EngineCommand::Connected(peers) => {
                        // Writers are left alone: one may be dialing a
                        // provider, and idle ones end by themselves.
                        ledgers.retain(|p, _| peers.contains(p));
                    }
                    EngineCommand::WriterIdle(peer, queue, reply) => {
                        // A writer no longer in the map is retired too.
                        let retire = match outboxes.get(&peer) {
                            Some(o) if Arc::ptr_eq(o, &queue) => {
                                let empty = o
                                    .outbox
                                    .lock()
                                    .unwrap_or_else(|e| e.into_inner())
                                    .is_empty();
                                if empty {
                                    outboxes.remove(&peer);
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
                        if !outboxes.get(&peer).is_some_and(|o| Arc::ptr_eq(o, &queue)) {
                            continue;
                        }
                        outboxes.remove(&peer);
                        ledgers.remove(&peer);
                        for s in sessions.values() {
                            let _ = s.try_send(SessionEvent::PeerGone(peer));
                        }
                    }
                }
            }
        });
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

/// Opens a Bitswap stream to `peer`, newest protocol first.
async fn open_stream(
    control: &mut libp2p_stream::Control,
    peer: PeerId,
) -> Option<(libp2p::Stream, Version)> {
    for proto in PROTOCOLS {
        // libp2p-stream can wait forever on some dial failures: bound it.
        let opened = tokio::time::timeout(
            OPEN_STREAM_TIMEOUT,
            control.open_stream(peer, StreamProtocol::new(proto)),
        )
        .await
        .unwrap_or_else(|_| {
            Err(libp2p_stream::OpenStreamError::Io(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "opening the stream timed out",
            )))
        });
        match opened {
            Ok(s) => {
                let version = Version::from_protocol(proto).unwrap_or(Version::V1_2);
                return Some((s, version));
            }
            Err(libp2p_stream::OpenStreamError::UnsupportedProtocol(_)) => {
                tracing::debug!(%peer, proto, "peer does not speak it");
            }
            Err(e) => {
                // Not a protocol mismatch (unreachable, timed out): another
                // version will not do better.
                tracing::debug!(%peer, proto, "cannot open bitswap stream: {e}");
                return None;
            }
        }
    }
    None
}

/// Times a writer reopens its stream after a failure before giving up.
const WRITER_RETRIES: u32 = 3;

/// Keeps one outbound stream to `peer` and writes pending traffic to it,
/// merged into as few messages as the limits allow. A stream the other side
/// dropped (libp2p-stream drops inbound streams it has no room for) is
/// reopened and the failed message sent again, a few times — unless the
/// peer disconnected meanwhile (the outbox is closed): then it ends.
async fn writer(
    mut control: libp2p_stream::Control,
    peer: PeerId,
    queue: Arc<SharedOutbox>,
    engine: mpsc::Sender<EngineCommand>,
    idle: std::time::Duration,
) {
    let mut failures = 0u32;
    let mut unsent: Option<Framed> = None;
    'open: while failures <= WRITER_RETRIES {
        if failures > 0 {
            tokio::time::sleep(std::time::Duration::from_millis(100 << failures)).await;
        }
        if queue.is_closed() {
            break;
        }
        let Some((mut stream, version)) = open_stream(&mut control, peer).await else {
            failures += 1;
            continue;
        };
        loop {
            loop {
                if queue.is_closed() {
                    // The peer disconnected: nothing held is wanted now.
                    break 'open;
                }
                let framed = match unsent.take() {
                    Some(f) => f,
                    None => {
                        let (msg, room) = queue.take();
                        if room && engine.send(EngineCommand::Room(peer)).await.is_err() {
                            return;
                        }
                        let Some(msg) = msg else { break };
                        match frame_segments(&msg, version) {
                            Ok(f) => f,
                            Err(e) => {
                                tracing::warn!(%peer, "not sending bitswap message: {e}");
                                continue;
                            }
                        }
                    }
                };
                let mut result = Ok(());
                for segment in &framed.segments {
                    result = stream.write_all(segment).await;
                    if result.is_err() {
                        break;
                    }
                }
                if let Err(e) = result {
                    tracing::debug!(%peer, "bitswap write: {e}");
                    unsent = Some(framed);
                    failures += 1;
                    continue 'open;
                }
                failures = 0;
            }
            if let Err(e) = stream.flush().await {
                tracing::debug!(%peer, "bitswap flush: {e}");
                failures += 1;
                continue 'open;
            }
            // Wake on new traffic. Bitswap streams carry nothing back, so a
            // read that returns means the peer closed or reset the stream
            // (e.g. it had no room to accept it): the next message opens a
            // new one. A writer whose engine is gone ends when idle.
            let mut probe = [0u8; 64];
            tokio::select! {
                _ = queue.ready.notified() => {}
                _ = stream.read(&mut probe) => {
                    tracing::debug!(%peer, "bitswap stream closed by the peer");
                    queue.ready.notified().await;
                    continue 'open;
                }
                _ = tokio::time::sleep(idle) => {
                    // Nothing to send for a while: close the stream so the
                    // connection can idle out, and end unless traffic came.
                    let _ = stream.close().await;
                    let (tx, rx) = tokio::sync::oneshot::channel();
                    if engine
                        .send(EngineCommand::WriterIdle(peer, Arc::clone(&queue), tx))
                        .await
                        .is_err()
                    {
                        return;
                    }
                    match rx.await {
                        Ok(false) => continue 'open,
                        Ok(true) | Err(_) => return,
                    }
                }
            }
        }
    }
    let _ = engine.send(EngineCommand::WriterGone(peer, queue)).await;
}

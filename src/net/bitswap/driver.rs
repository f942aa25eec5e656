//! Drives the Bitswap state machines over libp2p streams.
//!
//! Bitswap messages travel one way per stream: each side opens its own
//! stream to send. Inbound streams (1.2.0, 1.1.0 and 1.0.0 are accepted)
//! are read frame by frame and handed to the engine task, which answers
//! from the store through each peer's [`PeerLedger`] and forwards blocks and
//! presences to the running fetch sessions. Outbound messages go through one
//! writer task per peer that keeps a stream open.

use super::ledger::PeerLedger;
use super::message::{frame, Message, Version, MAX_MESSAGE_BYTES};
use super::session::{Action, Session, SessionConfig};
use crate::block::{Block, Cid};
use crate::net::NetError;
use crate::store::Store;
use futures::{AsyncReadExt, AsyncWriteExt, StreamExt};
use libp2p::{PeerId, StreamProtocol};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// Protocols accepted, newest first; we send with the first.
pub const PROTOCOLS: [&str; 3] = [
    "/ipfs/bitswap/1.2.0",
    "/ipfs/bitswap/1.1.0",
    "/ipfs/bitswap/1.0.0",
];

/// How long a peer that forged a block is refused.
const BAN_DURATION: Duration = Duration::from_secs(600);

/// Fetched blocks stored per batch.
const STORE_BATCH: usize = 32;

/// Messages queued for one peer's writer before senders wait.
const OUTBOX_DEPTH: usize = 64;

enum EngineCommand {
    Inbound(PeerId, Message),
    Send(PeerId, Message),
    Register(u64, mpsc::Sender<(PeerId, Message)>),
    Unregister(u64),
    Stored(Block),
    WriterGone(PeerId),
}

/// A cloneable handle to the Bitswap engine.
#[derive(Clone)]
pub struct Bitswap {
    engine: mpsc::Sender<EngineCommand>,
    /// To disconnect peers that misbehave.
    swarm: crate::net::swarm::SwarmHandle,
    store: Arc<dyn Store>,
    next_session: Arc<std::sync::atomic::AtomicU64>,
}

/// Reads one varint-framed message; `Ok(None)` at a clean end of stream.
async fn read_frame(stream: &mut libp2p::Stream) -> Result<Option<Vec<u8>>, NetError> {
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
        len |= ((byte[0] & 0x7f) as u64) << (7 * i);
        if byte[0] & 0x80 == 0 {
            if len as usize > MAX_MESSAGE_BYTES {
                return Err(NetError::Protocol(format!(
                    "message of {len} bytes over the limit"
                )));
            }
            let mut buf = vec![0u8; len as usize];
            stream
                .read_exact(&mut buf)
                .await
                .map_err(|e| NetError::Protocol(format!("reading message: {e}")))?;
            return Ok(Some(buf));
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
    ) -> Result<Bitswap, NetError> {
        // Bounded: inbound readers wait when the engine falls behind.
        let (tx, mut rx) = mpsc::channel::<EngineCommand>(256);
        for proto in PROTOCOLS {
            let mut incoming = control
                .accept(StreamProtocol::new(proto))
                .map_err(|e| NetError::Setup(format!("{proto}: {e}")))?;
            let tx = tx.clone();
            tokio::spawn(async move {
                while let Some((peer, mut stream)) = incoming.next().await {
                    let tx = tx.clone();
                    tokio::spawn(async move {
                        loop {
                            match read_frame(&mut stream).await {
                                Ok(Some(bytes)) => match Message::decode(&bytes) {
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
        let engine_store = Arc::clone(&store);
        let engine_tx = tx.clone();
        tokio::spawn(async move {
            let mut ledgers: HashMap<PeerId, PeerLedger> = HashMap::new();
            let mut outboxes: HashMap<PeerId, mpsc::Sender<Message>> = HashMap::new();
            let mut sessions: HashMap<u64, mpsc::Sender<(PeerId, Message)>> = HashMap::new();
            let send = |outboxes: &mut HashMap<PeerId, mpsc::Sender<Message>>,
                        peer: PeerId,
                        msg: Message| {
                let outbox = outboxes.entry(peer).or_insert_with(|| {
                    let (otx, orx) = mpsc::channel(OUTBOX_DEPTH);
                    tokio::spawn(writer(control.clone(), peer, orx, engine_tx.clone()));
                    otx
                });
                if outbox.try_send(msg).is_err() {
                    // The peer is not reading: drop rather than grow; the
                    // other side's session re-asks after its timeout.
                    tracing::debug!(%peer, "bitswap outbox full, message dropped");
                }
            };
            while let Some(cmd) = rx.recv().await {
                match cmd {
                    EngineCommand::Inbound(peer, msg) => {
                        let ledger = ledgers.entry(peer).or_default();
                        let (replies, _stats) = ledger.receive(&msg, &*engine_store);
                        for reply in replies {
                            send(&mut outboxes, peer, reply);
                        }
                        if !msg.blocks.is_empty() || !msg.presences.is_empty() {
                            // try_send: a session that cannot keep up loses a
                            // message and re-asks after its timeout, instead of
                            // stalling every other peer's traffic.
                            sessions.retain(|_, s| !s.is_closed());
                            for s in sessions.values() {
                                let _ = s.try_send((peer, msg.clone()));
                            }
                        }
                    }
                    EngineCommand::Send(peer, msg) => send(&mut outboxes, peer, msg),
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
                    EngineCommand::WriterGone(peer) => {
                        outboxes.remove(&peer);
                        ledgers.remove(&peer);
                    }
                }
            }
        });
        Ok(Bitswap {
            engine: tx,
            swarm,
            store,
            next_session: Arc::new(std::sync::atomic::AtomicU64::new(0)),
        })
    }

    /// Fetches every CID in `cids` from `peers` (verifying each block by
    /// construction), stores them, and returns them in the order given.
    pub async fn fetch(
        &self,
        cids: &[Cid],
        peers: &[PeerId],
        config: SessionConfig,
        deadline: Duration,
    ) -> Result<Vec<Block>, NetError> {
        let id = self
            .next_session
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let (tx, mut rx) = mpsc::channel(1024);
        self.engine
            .send(EngineCommand::Register(id, tx))
            .await
            .map_err(|_| NetError::Stopped)?;
        let mut session = Session::new(config);
        let mut got: HashMap<Vec<u8>, Block> = HashMap::new();
        for cid in cids {
            if let Some(b) = self.store.get(cid)? {
                got.insert(cid.hash().to_bytes(), b);
            } else {
                session.want(*cid);
            }
        }
        for p in peers {
            session.add_peer(*p);
        }
        let start = Instant::now();
        // Received blocks are stored in batches: one fsync per batch, not
        // per block. Bounded by STORE_BATCH blocks (≤ 2 MiB each).
        let mut unstored: Vec<Block> = Vec::new();
        let result = loop {
            if unstored.len() >= STORE_BATCH || (session.pending() == 0 && !unstored.is_empty()) {
                self.store_batch(&mut unstored).await?;
            }
            let mut actions = session.poll(Instant::now());
            if session.pending() == 0 {
                break Ok(());
            }
            if start.elapsed() > deadline {
                break Err(NetError::Timeout(format!(
                    "{} blocks still missing",
                    session.pending()
                )));
            }
            if actions.is_empty() {
                match tokio::time::timeout(Duration::from_millis(100), rx.recv()).await {
                    Ok(Some((peer, msg))) => actions = session.on_message(&peer, &msg),
                    Ok(None) => break Err(NetError::Stopped),
                    Err(_) => continue,
                }
            }
            for action in actions {
                match action {
                    Action::Send(peer, msg) => {
                        if self
                            .engine
                            .send(EngineCommand::Send(peer, msg))
                            .await
                            .is_err()
                        {
                            return Err(NetError::Stopped);
                        }
                    }
                    Action::Received(block) => {
                        got.insert(block.cid().hash().to_bytes(), block.clone());
                        unstored.push(block);
                    }
                    Action::Misbehaved(peer) => {
                        tracing::warn!(%peer, "peer sent a block it was not asked for: banning");
                        let _ = self.swarm.ban(peer, BAN_DURATION).await;
                    }
                }
            }
        };
        let _ = self.engine.send(EngineCommand::Unregister(id)).await;
        self.store_batch(&mut unstored).await?;
        result?;
        cids.iter()
            .map(|c| {
                got.get(&c.hash().to_bytes())
                    .cloned()
                    .ok_or(NetError::Protocol(format!("{c} missing after fetch")))
            })
            .collect()
    }
}

/// What a DAG fetch moved.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DagFetch {
    pub blocks: u64,
    pub bytes: u64,
}

/// CIDs asked for in one session while walking a DAG.
const DAG_FETCH_BATCH: usize = 256;

impl Bitswap {
    /// Fetches every block of the DAG under `root` that is not stored yet,
    /// level by level (each level in sessions of up to 256 CIDs, so every
    /// peer that has the blocks serves some), verifying and storing each.
    pub async fn fetch_dag(
        &self,
        root: Cid,
        peers: &[PeerId],
        config: SessionConfig,
        deadline: Duration,
        progress: &mut (dyn FnMut(DagFetch) + Send),
    ) -> Result<DagFetch, NetError> {
        let start = Instant::now();
        let mut stats = DagFetch::default();
        let mut level = vec![root];
        while !level.is_empty() {
            let mut next = Vec::new();
            for batch in level.chunks(DAG_FETCH_BATCH) {
                let left = deadline.saturating_sub(start.elapsed());
                let blocks = self.fetch(batch, peers, config, left).await?;
                for block in &blocks {
                    stats.blocks += 1;
                    stats.bytes += block.data().len() as u64;
                    let links = crate::dag::walk::links_of(block)
                        .map_err(|e| NetError::Protocol(e.to_string()))?;
                    next.extend(links);
                }
                progress(stats);
            }
            level = next;
        }
        Ok(stats)
    }

    /// Stores fetched blocks in one batch and tells the engine, which
    /// forwards them to peers that wanted them from us.
    async fn store_batch(&self, blocks: &mut Vec<Block>) -> Result<(), NetError> {
        if blocks.is_empty() {
            return Ok(());
        }
        self.store.put_many(&mut blocks.iter().cloned())?;
        for block in blocks.drain(..) {
            let _ = self.engine.send(EngineCommand::Stored(block)).await;
        }
        Ok(())
    }
}

/// Keeps one outbound stream to `peer` and writes queued messages to it.
async fn writer(
    mut control: libp2p_stream::Control,
    peer: PeerId,
    mut queue: mpsc::Receiver<Message>,
    engine: mpsc::Sender<EngineCommand>,
) {
    let mut stream = None;
    for proto in PROTOCOLS {
        match control.open_stream(peer, StreamProtocol::new(proto)).await {
            Ok(s) => {
                let version = Version::from_protocol(proto).unwrap_or(Version::V1_2);
                stream = Some((s, version));
                break;
            }
            Err(e) => tracing::debug!(%peer, proto, "cannot open bitswap stream: {e}"),
        }
    }
    if let Some((mut stream, version)) = stream {
        while let Some(msg) = queue.recv().await {
            let bytes = match frame(&msg, version) {
                Ok(b) => b,
                Err(e) => {
                    tracing::warn!(%peer, "not sending bitswap message: {e}");
                    continue;
                }
            };
            if let Err(e) = stream.write_all(&bytes).await {
                tracing::debug!(%peer, "bitswap write: {e}");
                break;
            }
        }
        let _ = stream.close().await;
    }
    let _ = engine.send(EngineCommand::WriterGone(peer)).await;
}

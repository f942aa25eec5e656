//! The sending side: one writer task per peer keeps an outbound Bitswap
//! stream open and writes what the engine queued in the peer's outbox.

use super::driver::{EngineCommand, PROTOCOLS};
use super::message::{frame_segments, Framed, Message, Version};
use super::outbox::Outbox;
use crate::net::swarm::SwarmHandle;
use futures::{AsyncReadExt, AsyncWriteExt};
use libp2p::{PeerId, StreamProtocol};
use std::sync::Arc;
use tokio::sync::mpsc;

/// How long opening a stream to a peer (dialing it if needed) may take.
const OPEN_STREAM_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(15);

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
    pub(super) fn close(&self) {
        self.closed
            .store(true, std::sync::atomic::Ordering::Release);
        *self.outbox.lock().unwrap_or_else(|e| e.into_inner()) = Outbox::default();
        self.ready.notify_one();
    }

    fn is_closed(&self) -> bool {
        self.closed.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Merges `msg` into what waits and wakes the writer.
    pub(super) fn push(&self, msg: Message) {
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
    pub(super) fn room(&self) -> (usize, bool) {
        let outbox = self.outbox.lock().unwrap_or_else(|e| e.into_inner());
        (outbox.block_room(), outbox.is_empty())
    }

    /// Whether nothing waits to be sent.
    pub(super) fn is_empty(&self) -> bool {
        self.outbox
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_empty()
    }

    /// The peer's ledger holds want-blocks that did not fit: the writer
    /// asks for more once the outbox has drained to half. Set after the
    /// push, so the writer is woken too: it may have taken everything
    /// before it saw the flag.
    pub(super) fn want_room(&self) {
        self.more.store(true, std::sync::atomic::Ordering::Release);
        self.ready.notify_one();
    }
}

/// What starting a peer's writer takes.
pub(super) struct Writers {
    pub control: libp2p_stream::Control,
    /// Runs the writers (and other tasks) until the node shuts down.
    pub swarm: SwarmHandle,
    /// The engine's queue, for the writers' requests.
    pub engine: mpsc::Sender<EngineCommand>,
    /// How long a writer keeps an idle stream open.
    pub idle: std::time::Duration,
}

impl Writers {
    /// Starts a writer for `peer`; returns the outbox it sends from.
    pub(super) fn start(&self, peer: PeerId) -> Arc<SharedOutbox> {
        let shared = Arc::new(SharedOutbox::default());
        self.swarm.spawn_task(writer(
            self.control.clone(),
            peer,
            Arc::clone(&shared),
            self.engine.clone(),
            self.idle,
        ));
        shared
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

//! The receiving side: inbound Bitswap streams read frame by frame into
//! pooled buffers, each message decoded (without copying block data) and
//! handed to the engine.
//!
//! The length prefix is read by hand, byte by byte off the stream: a clean
//! end between frames must be told from one inside a prefix, and the size
//! limit checked before a buffer is taken.

use super::driver::{EngineCommand, PROTOCOLS};
use super::message::{Message, MessageError, MAX_MESSAGE_BYTES};
use crate::net::swarm::SwarmHandle;
use crate::net::NetError;
use futures::{AsyncReadExt, StreamExt};
use libp2p::{PeerId, StreamProtocol};
use std::sync::Arc;
use tokio::sync::mpsc;

/// Buffers for inbound frames of at least [`POOLED_FRAME_BYTES`], reused:
/// a fresh 4 MiB buffer per message was zero-filled and faulted in before
/// the stream was read into it (≈ 4 % of a receiving daemon's CPU). Every
/// pooled buffer is [`MAX_MESSAGE_BYTES`] long and initialised once.
#[derive(Default)]
struct FramePool {
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

/// Reads one varint-framed message from `peer`; `Ok(None)` at a clean end
/// of stream.
async fn read_frame(
    peer: PeerId,
    stream: &mut libp2p::Stream,
    pool: &Arc<FramePool>,
) -> Result<Option<bytes::Bytes>, NetError> {
    let violation = |source| NetError::Protocol { peer, source };
    let io = |source| NetError::Read { peer, source };
    let mut len: u64 = 0;
    for i in 0..10 {
        let mut byte = [0u8; 1];
        match stream.read(&mut byte).await.map_err(io)? {
            0 if i == 0 => return Ok(None),
            0 => return Err(violation(MessageError::TruncatedLength)),
            _ => {}
        }
        if i == 9 && byte[0] > 1 {
            // A tenth byte can only hold the 64th bit.
            return Err(violation(MessageError::LengthOverflow));
        }
        len |= ((byte[0] & 0x7f) as u64) << (7 * i);
        if byte[0] & 0x80 != 0 {
            continue;
        }
        let len = usize::try_from(len).unwrap_or(usize::MAX);
        if len > MAX_MESSAGE_BYTES {
            let max = MAX_MESSAGE_BYTES;
            return Err(violation(MessageError::TooLarge { len, max }));
        }
        if len < POOLED_FRAME_BYTES {
            let mut buf = vec![0u8; len];
            stream.read_exact(&mut buf).await.map_err(io)?;
            return Ok(Some(bytes::Bytes::from(buf)));
        }
        let mut frame = PooledFrame {
            buf: pool.take(),
            len,
            pool: Arc::clone(pool),
        };
        stream.read_exact(&mut frame.buf[..len]).await.map_err(io)?;
        return Ok(Some(bytes::Bytes::from_owner(frame)));
    }
    Err(violation(MessageError::LengthOverflow))
}

/// Reads `peer`'s messages from `stream` and hands them to the engine, until
/// the stream ends (`Ok`), the engine is gone (`Ok`), or a frame or message
/// is bad.
async fn read_stream(
    peer: PeerId,
    mut stream: libp2p::Stream,
    frames: Arc<FramePool>,
    engine: mpsc::Sender<EngineCommand>,
) -> Result<(), NetError> {
    while let Some(bytes) = read_frame(peer, &mut stream, &frames).await? {
        let msg =
            Message::decode_bytes(&bytes).map_err(|source| NetError::Protocol { peer, source })?;
        if engine
            .send(EngineCommand::Inbound(peer, msg))
            .await
            .is_err()
        {
            break;
        }
    }
    Ok(())
}

/// Accepts inbound Bitswap streams of every version in [`PROTOCOLS`] and
/// reads each on a task of its own, handing messages to the engine (a
/// reader waits while the engine's queue is full). A stream ends at the
/// first bad frame or message.
pub(super) fn accept_streams(
    control: &mut libp2p_stream::Control,
    swarm: &SwarmHandle,
    engine: &mpsc::Sender<EngineCommand>,
) -> Result<(), NetError> {
    let frames = Arc::new(FramePool::default());
    for protocol in PROTOCOLS {
        let mut incoming = control
            .accept(StreamProtocol::new(protocol))
            .map_err(|source| NetError::Accept { protocol, source })?;
        let engine = engine.clone();
        let frames = Arc::clone(&frames);
        swarm.spawn_task(async move {
            while let Some((peer, stream)) = incoming.next().await {
                let reader = read_stream(peer, stream, Arc::clone(&frames), engine.clone());
                tokio::spawn(async move {
                    if let Err(e) = reader.await {
                        tracing::debug!(%peer, "bitswap stream: {e}");
                    }
                });
            }
        });
    }
    Ok(())
}

//! The receiving side: inbound Bitswap streams read frame by frame into
//! pooled buffers, each message decoded (without copying block data) and
//! handed to the engine.

use super::driver::{EngineCommand, PROTOCOLS};
use super::message::{Message, MAX_MESSAGE_BYTES};
use crate::net::swarm::SwarmHandle;
use crate::net::NetError;
use futures::{AsyncReadExt, StreamExt};
use libp2p::StreamProtocol;
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
    for proto in PROTOCOLS {
        let mut incoming = control
            .accept(StreamProtocol::new(proto))
            .map_err(|e| NetError::Setup(format!("{proto}: {e}")))?;
        let tx = engine.clone();
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
                                    if tx.send(EngineCommand::Inbound(peer, msg)).await.is_err() {
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
    Ok(())
}

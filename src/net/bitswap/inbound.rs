//! The receiving side: inbound Bitswap streams read frame by frame (large
//! frames into pooled buffers), each message decoded (without copying block
//! data) and handed to the engine.
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

/// Buffers for inbound frames of at least `POOLED_FRAME_BYTES` (2 MiB), reused:
/// a fresh 4 MiB buffer per message was zero-filled and faulted in before
/// the stream was read into it (≈ 4 % of a receiving daemon's CPU). Every
/// pooled buffer is [`MAX_MESSAGE_BYTES`] long and initialised once. The
/// pool never allocates: a large frame arriving while it is empty is read
/// into a buffer grown as its bytes arrive, which joins the pool once the
/// frame is dropped.
#[derive(Default)]
pub struct FramePool {
    free: std::sync::Mutex<Vec<Vec<u8>>>,
}

/// Smallest frame read into a pooled buffer: a block kept from a frame
/// keeps its whole buffer alive, so smaller frames get buffers of their own
/// size.
const POOLED_FRAME_BYTES: usize = MAX_MESSAGE_BYTES / 2;

/// Most idle buffers the pool keeps (each [`MAX_MESSAGE_BYTES`]).
const POOLED_FRAMES: usize = 4;

/// The buffer a frame's first bytes are read into; it doubles as more
/// arrive, so a declared length alone reserves no more than this.
const FIRST_READ_BYTES: usize = 16 * 1024;

impl FramePool {
    fn take(&self) -> Option<Vec<u8>> {
        self.free.lock().unwrap_or_else(|e| e.into_inner()).pop()
    }

    fn give_back(&self, mut buf: Vec<u8>) {
        let mut free = self.free.lock().unwrap_or_else(|e| e.into_inner());
        if free.len() < POOLED_FRAMES {
            buf.resize(MAX_MESSAGE_BYTES, 0);
            free.push(buf);
        }
    }
}

/// A frame read into a buffer of the pool; returns it to the pool when the
/// last `Bytes` slice of it (the message, its blocks) is dropped.
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

/// Reads exactly `len` bytes, growing the buffer as they arrive (doubling
/// from [`FIRST_READ_BYTES`], never past `len`).
async fn read_growing<S>(stream: &mut S, len: usize) -> std::io::Result<Vec<u8>>
where
    S: futures::AsyncRead + Unpin,
{
    let mut buf = vec![0u8; len.min(FIRST_READ_BYTES)];
    let mut filled = 0;
    while filled < len {
        if filled == buf.len() {
            let grow = buf.len().min(len - buf.len());
            buf.reserve_exact(grow);
            buf.resize(buf.len() + grow, 0);
        }
        match stream.read(&mut buf[filled..]).await? {
            0 => return Err(std::io::ErrorKind::UnexpectedEof.into()),
            n => filled += n,
        }
    }
    Ok(buf)
}

/// Reads one varint-framed message from `peer`; `Ok(None)` at a clean end
/// of stream. Memory is taken as the frame's bytes arrive, not when its
/// length is declared.
pub async fn read_frame<S>(
    peer: PeerId,
    stream: &mut S,
    pool: &Arc<FramePool>,
) -> Result<Option<bytes::Bytes>, NetError>
where
    S: futures::AsyncRead + Unpin,
{
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
            let buf = read_growing(stream, len).await.map_err(io)?;
            return Ok(Some(bytes::Bytes::from(buf)));
        }
        let pooled = |buf| PooledFrame {
            buf,
            len,
            pool: Arc::clone(pool),
        };
        let frame = match pool.take() {
            Some(buf) => {
                // Wrapped first: a failed read still returns the buffer.
                let mut frame = pooled(buf);
                stream.read_exact(&mut frame.buf[..len]).await.map_err(io)?;
                frame
            }
            None => pooled(read_growing(stream, len).await.map_err(io)?),
        };
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::pin::Pin;
    use std::task::{Context, Poll};

    /// A stream of `data` that notes the largest buffer it was asked to
    /// fill: the memory a reader had taken before the bytes came.
    struct Noting {
        data: futures::io::Cursor<Vec<u8>>,
        largest_read: usize,
    }

    impl futures::AsyncRead for Noting {
        fn poll_read(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &mut [u8],
        ) -> Poll<std::io::Result<usize>> {
            self.largest_read = self.largest_read.max(buf.len());
            Pin::new(&mut self.data).poll_read(cx, buf)
        }
    }

    fn read_all(bytes: Vec<u8>, pool: &Arc<FramePool>) -> (Vec<Option<usize>>, usize) {
        let mut stream = Noting {
            data: futures::io::Cursor::new(bytes),
            largest_read: 0,
        };
        let mut frames = Vec::new();
        loop {
            match futures::executor::block_on(read_frame(PeerId::random(), &mut stream, pool)) {
                Ok(Some(f)) => frames.push(Some(f.len())),
                Ok(None) => break,
                Err(_) => {
                    frames.push(None);
                    break;
                }
            }
        }
        (frames, stream.largest_read)
    }

    fn prefix(len: u64) -> Vec<u8> {
        let mut buf = unsigned_varint::encode::u64_buffer();
        unsigned_varint::encode::u64(len, &mut buf).to_vec()
    }

    #[test]
    fn a_declared_length_reserves_nothing_until_its_bytes_arrive() {
        let pool = Arc::new(FramePool::default());
        for declared in [POOLED_FRAME_BYTES - 1, MAX_MESSAGE_BYTES] {
            let mut bytes = prefix(declared as u64);
            bytes.extend_from_slice(&[7; 100]);
            let (frames, largest) = read_all(bytes, &pool);
            assert_eq!(frames, [None], "a truncated frame is an error");
            assert!(
                largest <= FIRST_READ_BYTES,
                "{largest} bytes for {declared}"
            );
        }
        assert!(pool.take().is_none(), "a failed read adds nothing");
    }

    #[test]
    fn frames_of_every_size_read_whole_and_large_ones_are_pooled() {
        let pool = Arc::new(FramePool::default());
        let sizes = [
            0,
            1,
            FIRST_READ_BYTES + 1,
            POOLED_FRAME_BYTES,
            MAX_MESSAGE_BYTES,
        ];
        let mut bytes = Vec::new();
        for n in sizes {
            bytes.extend(prefix(n as u64));
            bytes.extend((0..n).map(|i| i as u8));
        }
        // The first large frame is read into a buffer of its own, which
        // joins the pool when dropped; the second reads into that.
        for _ in 0..2 {
            let (frames, largest) = read_all(bytes.clone(), &pool);
            assert_eq!(frames, sizes.map(Some));
            assert_eq!(largest, MAX_MESSAGE_BYTES);
        }
        let pooled = pool.free.lock().unwrap();
        assert_eq!(pooled.len(), 1);
        assert!(pooled.iter().all(|b| b.len() == MAX_MESSAGE_BYTES));
    }
}

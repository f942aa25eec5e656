//! Object bodies between the async protocol side and the blocking
//! importer and reader: an upload's stream feeds a [`BodyReader`] the
//! importer reads on a blocking thread (through [`Digesting`], which
//! hashes and counts it), and a download's producer channel becomes the
//! response's stream ([`ChunkStream`]).

use bytes::Bytes;
use futures::{Stream, StreamExt};
use md5::Digest;
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::sync::mpsc;

/// Chunks an upload may have queued ahead of the importer.
const QUEUED_CHUNKS: usize = 16;

/// An upload's bytes, read on a blocking thread as they arrive.
pub struct BodyReader {
    rx: mpsc::Receiver<Bytes>,
    current: Bytes,
}

impl BodyReader {
    /// A reader and the sender [`pump`] fills it through.
    pub fn new() -> (mpsc::Sender<Bytes>, BodyReader) {
        let (tx, rx) = mpsc::channel(QUEUED_CHUNKS);
        let reader = BodyReader {
            rx,
            current: Bytes::new(),
        };
        (tx, reader)
    }
}

impl std::io::Read for BodyReader {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        while self.current.is_empty() {
            match self.rx.blocking_recv() {
                Some(b) => self.current = b,
                None => return Ok(0),
            }
        }
        let n = out.len().min(self.current.len());
        out[..n].copy_from_slice(&self.current.split_to(n));
        Ok(n)
    }
}

/// Sends `body` to a [`BodyReader`] until it ends or the reader is gone.
/// An error ends the upload early: the reader sees its end, and the error
/// is returned (the caller refuses the object, whatever was read).
pub async fn pump<S, E>(mut body: S, tx: mpsc::Sender<Bytes>) -> Result<(), E>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
{
    while let Some(chunk) = body.next().await {
        if tx.send(chunk?).await.is_err() {
            break;
        }
    }
    Ok(())
}

/// A reader that computes the MD5 of what passes through it and stops
/// with an error past `limit` bytes.
pub struct Digesting<R> {
    inner: R,
    md5: md5::Md5,
    read: u64,
    limit: u64,
}

/// What [`Digesting`] saw.
pub struct Digested {
    /// The MD5 of the bytes read.
    pub md5: [u8; 16],
    /// Bytes read.
    pub bytes: u64,
}

impl<R: std::io::Read> Digesting<R> {
    /// Reads `inner`, refusing more than `limit` bytes.
    pub fn new(inner: R, limit: u64) -> Self {
        Digesting {
            inner,
            md5: md5::Md5::new(),
            read: 0,
            limit,
        }
    }

    /// The digest and count of everything read.
    pub fn finish(self) -> Digested {
        Digested {
            md5: self.md5.finalize().into(),
            bytes: self.read,
        }
    }

    /// Whether more than the limit came.
    pub fn over_limit(&self) -> bool {
        self.read > self.limit
    }
}

impl<R: std::io::Read> std::io::Read for Digesting<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read += n as u64;
        if self.read > self.limit {
            return Err(std::io::Error::other(format!(
                "the body is larger than {} bytes",
                self.limit
            )));
        }
        self.md5.update(&buf[..n]);
        Ok(n)
    }
}

/// A response body's chunks, from a producer's channel.
pub struct ChunkStream(pub mpsc::Receiver<Result<Bytes, std::io::Error>>);

impl Stream for ChunkStream {
    type Item = Result<Bytes, std::io::Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.0.poll_recv(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn bodies_arrive_whole_digested_and_bounded() {
        let chunks: Vec<Result<Bytes, std::io::Error>> =
            (0..50u8).map(|i| Ok(Bytes::from(vec![i; 1000]))).collect();
        let expected: Vec<u8> = (0..50u8).flat_map(|i| vec![i; 1000]).collect();
        let (tx, reader) = BodyReader::new();
        let read = tokio::task::spawn_blocking(move || {
            let mut r = Digesting::new(reader, 1 << 20);
            let mut all = Vec::new();
            r.read_to_end(&mut all).unwrap();
            (all, r.finish())
        });
        pump(futures::stream::iter(chunks), tx).await.unwrap();
        let (all, digested) = read.await.unwrap();
        assert_eq!(all, expected);
        assert_eq!(digested.bytes, 50_000);
        assert_eq!(digested.md5, <[u8; 16]>::from(md5::Md5::digest(&expected)));

        let mut small = Digesting::new(&expected[..], 10);
        assert!(small.read_to_end(&mut Vec::new()).is_err());
        assert!(small.over_limit());
    }
}

//! Object bodies between the async protocol side and the blocking
//! importer and reader: an upload's stream feeds a [`BodyReader`] the
//! importer reads on a blocking thread (through [`Digesting`], which
//! hashes and counts it: MD5 for the ETag, and the checksum the client
//! asked for), and a download's producer channel becomes the response's
//! stream ([`ChunkStream`]). [`refusal`] says in S3's words why an
//! upload's stream failed.

use super::checksum::{Hasher, ObjectChecksum};
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

/// Why an upload's body stream failed, as S3 answers it. s3s reports its
/// own checks of the body (payload hash, chunk signatures, lengths) as
/// errors of types it does not export, so they are told apart by their
/// text.
pub fn refusal(error: Box<dyn std::error::Error + Send + Sync>) -> s3s::S3Error {
    let error = match error.downcast::<s3s::S3Error>() {
        Ok(e) => return *e,
        Err(e) => e,
    };
    let text = error.to_string();
    if text.contains("Sha256Mismatch") {
        let mut e = s3s::S3Error::with_message(
            s3s::S3ErrorCode::Custom("XAmzContentSHA256Mismatch".into()),
            "The provided 'x-amz-content-sha256' header does not match what was computed.",
        );
        e.set_status_code(axum::http::StatusCode::BAD_REQUEST);
        return e;
    }
    if text.contains("SignatureMismatch") {
        return s3s::s3_error!(
            SignatureDoesNotMatch,
            "a chunk or trailer signature of the aws-chunked body does not match"
        );
    }
    s3s::s3_error!(IncompleteBody, "the body could not be read: {text}")
}

/// A reader that computes the MD5 of what passes through it (and a
/// checksum, when given one) and stops with an error past `limit` bytes.
pub struct Digesting<R> {
    inner: R,
    md5: md5::Md5,
    checksum: Option<Hasher>,
    read: u64,
    limit: u64,
}

/// What [`Digesting`] saw.
pub struct Digested {
    /// The MD5 of the bytes read.
    pub md5: [u8; 16],
    /// The checksum of the bytes read, if one was asked for.
    pub checksum: Option<ObjectChecksum>,
    /// Bytes read.
    pub bytes: u64,
}

impl<R: std::io::Read> Digesting<R> {
    /// Reads `inner`, refusing more than `limit` bytes.
    pub fn new(inner: R, limit: u64) -> Self {
        Digesting {
            inner,
            md5: md5::Md5::new(),
            checksum: None,
            read: 0,
            limit,
        }
    }

    /// Also computes `checksum` over what is read.
    pub fn with_checksum(mut self, checksum: Hasher) -> Self {
        self.checksum = Some(checksum);
        self
    }

    /// The digests and count of everything read.
    pub fn finish(self) -> Digested {
        Digested {
            md5: self.md5.finalize().into(),
            checksum: self.checksum.map(Hasher::finish),
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
        if let Some(c) = &mut self.checksum {
            c.update(&buf[..n]);
        }
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
            let crc = Hasher::new(super::super::checksum::Algorithm::Crc32);
            let mut r = Digesting::new(reader, 1 << 20).with_checksum(crc);
            let mut all = Vec::new();
            r.read_to_end(&mut all).unwrap();
            (all, r.finish())
        });
        pump(futures::stream::iter(chunks), tx).await.unwrap();
        let (all, digested) = read.await.unwrap();
        assert_eq!(all, expected);
        assert_eq!(digested.bytes, 50_000);
        assert_eq!(digested.md5, <[u8; 16]>::from(md5::Md5::digest(&expected)));
        let mut whole = Hasher::new(super::super::checksum::Algorithm::Crc32);
        whole.update(&expected);
        assert_eq!(digested.checksum, Some(whole.finish()));

        let mut small = Digesting::new(&expected[..], 10);
        assert!(small.read_to_end(&mut Vec::new()).is_err());
        assert!(small.over_limit());
    }

    #[test]
    fn body_failures_get_s3_codes() {
        let boxed = |e: s3s::S3Error| -> Box<dyn std::error::Error + Send + Sync> { Box::new(e) };
        let ours = refusal(boxed(s3s::s3_error!(EntityTooLarge)));
        assert_eq!(ours.code().as_str(), "EntityTooLarge");
        let sha = refusal("UploadStreamError: Sha256Mismatch".into());
        assert_eq!(sha.code().as_str(), "XAmzContentSHA256Mismatch");
        assert_eq!(sha.status_code(), Some(axum::http::StatusCode::BAD_REQUEST));
        let sig = refusal("AwsChunkedStreamError: SignatureMismatch".into());
        assert_eq!(sig.code().as_str(), "SignatureDoesNotMatch");
        let cut = refusal("AwsChunkedStreamError: Incomplete".into());
        assert_eq!(cut.code().as_str(), "IncompleteBody");
    }
}

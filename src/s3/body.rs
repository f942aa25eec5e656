//! Object bodies between the async protocol side and the blocking
//! importer and reader: [`import`] stores an upload (a PUT's body, a
//! multipart upload's part) as a UnixFS file, its stream feeding a
//! [`BodyReader`] the importer reads on a blocking thread (through
//! [`Digesting`], which hashes and counts it: MD5 for the ETag, and the
//! checksum the client asked for), and a download's producer channel
//! becomes the response's stream ([`ChunkStream`]). [`refusal`] says in
//! S3's words why an upload's stream failed.

use super::checksum::{Hasher, ObjectChecksum, Requested};
use super::service::internal;
use crate::dag::builder::Built;
use crate::node::{AddOptions, AddedEntry, Node, NodeError};
use bytes::Bytes;
use futures::{Stream, StreamExt};
use md5::Digest;
use s3s::dto::StreamingBlob;
use s3s::{s3_error, S3Result};
use std::pin::Pin;
use std::sync::Arc;
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

/// The body length a write declares: `Content-Length`, or for an
/// aws-chunked body `x-amz-decoded-content-length`.
pub fn declared_length(
    content_length: Option<i64>,
    headers: &axum::http::HeaderMap,
) -> S3Result<Option<u64>> {
    if let Some(decoded) = headers.get("x-amz-decoded-content-length") {
        return decoded
            .to_str()
            .ok()
            .and_then(|v| v.trim().parse().ok())
            .map(Some)
            .ok_or_else(|| {
                s3_error!(
                    InvalidArgument,
                    "x-amz-decoded-content-length is not a length"
                )
            });
    }
    content_length
        .map(|n| {
            u64::try_from(n).map_err(|_| s3_error!(InvalidArgument, "Content-Length is negative"))
        })
        .transpose()
}

/// What an imported body may be, and what the client said of it.
pub struct Limits<'a> {
    /// Most bytes accepted.
    pub max_bytes: u64,
    /// What the limit is for, as its EntityTooLarge error names it ("a
    /// single PUT").
    pub too_large: &'static str,
    /// The length the client declared ([`declared_length`]).
    pub declared: Option<u64>,
    /// The Content-MD5 the client sent (base64).
    pub content_md5: Option<&'a str>,
    /// Keep the leaves of the file's DAG (a multipart upload's part).
    pub leaves: bool,
}

impl Limits<'_> {
    /// Refuses a declared length over the limit before any byte is read.
    pub fn check_declared(&self) -> S3Result<()> {
        if self.declared.is_some_and(|n| n > self.max_bytes) {
            return Err(self.entity_too_large());
        }
        Ok(())
    }

    fn entity_too_large(&self) -> s3s::S3Error {
        s3_error!(
            EntityTooLarge,
            "{} holds at most {} bytes",
            self.too_large,
            self.max_bytes
        )
    }

    /// The binary MD5 in Content-MD5, or InvalidDigest.
    fn expected_md5(&self) -> S3Result<Option<Vec<u8>>> {
        self.content_md5
            .map(|b64| {
                use base64::Engine;
                base64::engine::general_purpose::STANDARD
                    .decode(b64)
                    .ok()
                    .filter(|d| d.len() == 16)
                    .ok_or_else(|| s3_error!(InvalidDigest, "Content-MD5 is not a base64 MD5"))
            })
            .transpose()
    }
}

/// A body stored as a UnixFS file.
pub struct Imported {
    /// The file's root.
    pub added: AddedEntry,
    /// Its MD5, checksum and length.
    pub digested: Digested,
    /// Its checksum, checked against the client's.
    pub checksum: ObjectChecksum,
    /// Its DAG's leaves in file order, when [`Limits::leaves`] asked.
    pub leaves: Vec<Built>,
}

/// Imports `body` as one UnixFS file with the node's `[import]` options,
/// hashing it as it passes (MD5, and the `requested` checksum), unpinned:
/// the caller holds the GC lock until it has pinned the result. Refuses
/// (as S3 does) a body over the limit, one cut off or failing its payload
/// hash or chunk signatures ([`refusal`]), one shorter or longer than
/// declared, one whose MD5 is not its Content-MD5 and one whose checksum
/// is not the client's (in a header, or in `trailers`).
pub async fn import(
    node: &Arc<Node>,
    body: Option<StreamingBlob>,
    limits: &Limits<'_>,
    (requested, trailers): (&Requested, Option<s3s::TrailingHeaders>),
) -> S3Result<Imported> {
    let checksum = Hasher::new(requested.algorithm);
    limits.check_declared()?;
    let expected_md5 = limits.expected_md5()?;
    let mut opts = AddOptions::from_config(node.config()).map_err(internal)?;
    opts.pin = false;
    if let Some(declared) = limits.declared.filter(|n| *n <= WHOLE_BYTES) {
        let whole = read_whole(body, declared, limits.max_bytes).await;
        if let Some(e) = whole.failed {
            return Err(refusal(e));
        }
        if whole.read > limits.max_bytes {
            return Err(limits.entity_too_large());
        }
        if whole.read != declared {
            return Err(incomplete(whole.read, declared));
        }
        let node = Arc::clone(node);
        let keep = limits.leaves;
        let (added, digested, leaves) = tokio::task::spawn_blocking(move || {
            import_whole(&node, whole.data, &opts, keep, checksum)
        })
        .await
        .map_err(internal)?;
        let expected = (expected_md5, requested, trailers);
        return checked(limits, added, digested, leaves, expected);
    }
    let (tx, reader) = BodyReader::new();
    let bounds = (limits.max_bytes, limits.leaves);
    let importer = {
        let node = Arc::clone(node);
        tokio::task::spawn_blocking(move || import_blocking(&node, reader, &opts, bounds, checksum))
    };
    let pumped = match body {
        Some(body) => pump(body, tx).await,
        None => {
            drop(tx);
            Ok(())
        }
    };
    let (added, digested, too_large, leaves) = importer.await.map_err(internal)?;
    if let Err(e) = pumped {
        // The client's body failed (cut off, its payload hash or chunk
        // signatures).
        return Err(refusal(e));
    }
    if too_large {
        return Err(limits.entity_too_large());
    }
    checked(
        limits,
        added,
        digested,
        leaves,
        (expected_md5, requested, trailers),
    )
}

/// IncompleteBody: `read` bytes came of the `declared`.
fn incomplete(read: u64, declared: u64) -> s3s::S3Error {
    s3_error!(
        IncompleteBody,
        "{read} bytes came of the {declared} declared"
    )
}

/// What the client said a body is: its Content-MD5 (binary), the checksum
/// it asked for, and the trailers that may carry its value.
type Expected<'a> = (Option<Vec<u8>>, &'a Requested, Option<s3s::TrailingHeaders>);

/// An import's result, refused (as [`import`] says) unless the body is
/// what the client declared.
fn checked(
    limits: &Limits<'_>,
    added: Result<AddedEntry, NodeError>,
    mut digested: Digested,
    leaves: Vec<Built>,
    (expected_md5, requested, trailers): Expected<'_>,
) -> S3Result<Imported> {
    let added = added.map_err(internal)?;
    if let Some(n) = limits.declared {
        if n != digested.bytes {
            return Err(incomplete(digested.bytes, n));
        }
    }
    if expected_md5.is_some_and(|m| m[..] != digested.md5[..]) {
        return Err(s3_error!(
            BadDigest,
            "The Content-MD5 you specified did not match what we received."
        ));
    }
    let computed = digested
        .checksum
        .take()
        .ok_or_else(|| internal("the body's checksum was not computed"))?;
    let trailing = trailers.as_ref().and_then(s3s::TrailingHeaders::take);
    let checksum = requested.verify(computed, trailing.as_ref())?;
    Ok(Imported {
        added,
        digested,
        checksum,
        leaves,
    })
}

/// Bodies declared at most this long are read whole into memory, then
/// hashed and stored in one blocking call ([`import_whole`]): no channel
/// between the stream and the importer, no writer thread (one chunk at the
/// default 1 MiB chunk size).
pub const WHOLE_BYTES: u64 = 1024 * 1024;

/// A body read whole ([`read_whole`]).
struct Whole {
    /// Its bytes, up to the declared length.
    data: Bytes,
    /// How many came (more than `data` holds when more than declared came).
    read: u64,
    /// How its stream failed, if it did.
    failed: Option<Box<dyn std::error::Error + Send + Sync>>,
}

/// Reads `body` into memory, keeping at most `declared` bytes and
/// reading no further once more than `max_bytes` came.
async fn read_whole(body: Option<StreamingBlob>, declared: u64, max_bytes: u64) -> Whole {
    let mut parts: Vec<Bytes> = Vec::new();
    let (mut read, mut kept) = (0u64, 0u64);
    let mut failed = None;
    let mut body = body;
    while let Some(chunk) = match body.as_mut() {
        Some(b) => b.next().await,
        None => None,
    } {
        let mut chunk = match chunk {
            Ok(chunk) => chunk,
            Err(e) => {
                failed = Some(e);
                break;
            }
        };
        read += chunk.len() as u64;
        chunk.truncate(usize::try_from(declared - kept).unwrap_or(usize::MAX));
        kept += chunk.len() as u64;
        if !chunk.is_empty() {
            parts.push(chunk);
        }
        if read > max_bytes {
            break;
        }
    }
    let data = match parts.len() {
        0 | 1 => parts.pop().unwrap_or_default(),
        _ => parts.concat().into(),
    };
    Whole { data, read, failed }
}

/// Hashes `data` (MD5 and `checksum`) and stores it as one file with
/// `opts` on the calling thread ([`Node::add_bytes_leaves`]); keeps the
/// file's leaves when `keep_leaves`.
fn import_whole(
    node: &Node,
    data: Bytes,
    opts: &AddOptions,
    keep_leaves: bool,
    mut checksum: Hasher,
) -> (Result<AddedEntry, NodeError>, Digested, Vec<Built>) {
    checksum.update(&data);
    let digested = Digested {
        md5: md5::Md5::digest(&data).into(),
        checksum: Some(checksum.finish()),
        bytes: data.len() as u64,
    };
    let mut leaves = Vec::new();
    let added = node.add_bytes_leaves(data, opts, &mut |leaf| {
        if keep_leaves {
            leaves.push(leaf.clone());
        }
    });
    (added, digested, leaves)
}

/// What [`import_blocking`] made and saw: the file (or why not), the
/// body's digests, whether it passed the limit, and the file's leaves.
pub type Blocking = (Result<AddedEntry, NodeError>, Digested, bool, Vec<Built>);

/// Imports what `reader` yields as one UnixFS file with `opts`, on the
/// calling (blocking) thread, hashing it (MD5 and `checksum`) and stopping
/// past `max_bytes`; keeps the file's leaves when `keep_leaves` (a part's).
pub fn import_blocking(
    node: &Node,
    reader: impl std::io::Read,
    opts: &AddOptions,
    (max_bytes, keep_leaves): (u64, bool),
    checksum: Hasher,
) -> Blocking {
    let mut body = Digesting::new(reader, max_bytes).with_checksum(checksum);
    let mut leaves = Vec::new();
    let mut on_leaf = |leaf: &Built| {
        if keep_leaves {
            leaves.push(leaf.clone());
        }
    };
    let added = node.add_reader_leaves(&mut body, opts, &mut |_| {}, &mut on_leaf);
    let too_large = body.over_limit();
    (added, body.finish(), too_large, leaves)
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

//! Objects: PUT imports the body as a UnixFS file with the node's
//! `[import]` options while hashing it (MD5: the ETag), pins it, makes
//! blocks and pin durable, then commits the index entry (only then is it
//! visible; a conditional PUT's condition is decided in that commit); GET
//! and HEAD check the request's conditions, read the entry and stream the
//! file (or a range of it) from the store; DELETE and DeleteObjects remove
//! entries and, with the last key naming a CID, the endpoint's pin.
//!
//! A PUT also computes the checksum the client sent (or CRC64NVME) while
//! the body streams in and refuses the write when it, Content-MD5 or the
//! length differs (`checksum.rs`); a refused PUT leaves only unpinned
//! blocks, which the next GC removes. Pins are recorded as pending in the
//! index before they are made, so a crash cannot orphan one.

use super::body::{declared_length, import, ChunkStream, Imported, Limits};
use super::checksum::{set_checksum, Requested};
use super::conditions::{etag_of, ReadIf, Verdict, WriteIf};
use super::index::{now_ms, GroupPut, ObjectEntry, PutDone};
use super::multipart::{hex, read_range};
use super::service::{blocking, internal, s3_err, timestamp, Cairn};
use super::CID_HEADER;
use crate::block::Cid;

use crate::store::PinKind;
use s3s::dto::*;
use s3s::{s3_error, S3Response, S3Result};
use std::collections::BTreeMap;
use std::sync::Arc;

/// The largest single PUT (S3's limit; larger objects need multipart).
const MAX_PUT_BYTES: u64 = 5 * 1024 * 1024 * 1024;

/// The longest key (S3's limit), in bytes.
const MAX_KEY_BYTES: usize = 1024;

/// The most keys one DeleteObjects names (S3's limit).
const MAX_DELETE_KEYS: usize = 1000;

/// Refuses a key S3 refuses (empty, longer than 1,024 bytes) and keys
/// cairn refuses: a NUL byte (no XML listing can carry it) or a `..`
/// segment (a key may become a path, in the bucket's DAG or a client's
/// file system, and must not climb out of it).
pub(super) fn check_key(key: &str) -> S3Result<()> {
    if key.is_empty() {
        return Err(s3_error!(InvalidArgument, "the object key is empty"));
    }
    if key.len() > MAX_KEY_BYTES {
        return Err(s3_error!(
            KeyTooLongError,
            "object keys are at most {MAX_KEY_BYTES} bytes"
        ));
    }
    if key.contains('\0') {
        return Err(s3_error!(
            InvalidArgument,
            "object keys may not contain a NUL character"
        ));
    }
    if key.split('/').any(|segment| segment == "..") {
        return Err(s3_error!(
            InvalidArgument,
            "object keys may not have a '..' segment"
        ));
    }
    Ok(())
}

fn cid_header(cid: &str) -> S3Result<axum::http::HeaderMap> {
    let mut headers = axum::http::HeaderMap::new();
    let value = axum::http::HeaderValue::from_str(cid).map_err(internal)?;
    headers.insert(CID_HEADER, value);
    Ok(headers)
}

/// `output` with the `x-cairn-cid` header naming `cid`.
pub(super) fn with_cid<T>(output: T, cid: &str) -> S3Result<S3Response<T>> {
    let mut response = S3Response::new(output);
    response.headers = cid_header(cid)?;
    Ok(response)
}

/// PutObject: `headers` name the checksum to check; `trailers` (an
/// aws-chunked body's) may carry its value.
pub(super) async fn put(
    c: &Cairn,
    input: PutObjectInput,
    headers: &axum::http::HeaderMap,
    trailers: Option<s3s::TrailingHeaders>,
) -> S3Result<S3Response<PutObjectOutput>> {
    check_key(&input.key)?;
    let requested = Requested::from_headers(headers)?;
    let limits = Limits {
        max_bytes: MAX_PUT_BYTES,
        too_large: "a single PUT",
        declared: declared_length(input.content_length, headers)?,
        content_md5: input.content_md5.as_deref(),
        leaves: false,
    };
    limits.check_declared()?;
    let condition = write_condition(input.if_match.as_ref(), input.if_none_match.as_ref())?;
    c.bucket_exists(&input.bucket).await?;
    if condition != WriteIf::Always {
        // Refused early when it already cannot hold; decided for good in
        // the index write, after the import.
        let now = object(c, &input.bucket, &input.key).await?;
        condition
            .check(now.as_ref().map(|e| e.etag.as_str()))
            .map_err(|why| why.to_s3(&input.key))?;
    }

    let node = Arc::clone(c.online.node());
    // GC waits until the object is pinned (or refused).
    let gc_guard = c.online.gc_lock().clone().read_owned().await;
    let Imported {
        added,
        digested,
        checksum,
        ..
    } = import(&node, input.body, &limits, (&requested, trailers)).await?;
    let etag = hex(&digested.md5);
    let entry = ObjectEntry {
        cid: added.cid.to_string(),
        size: digested.bytes,
        etag: etag.clone(),
        content_type: input.content_type,
        metadata: input
            .metadata
            .map(|m| m.into_iter().collect::<BTreeMap<_, _>>())
            .unwrap_or_default(),
        mtime_ms: now_ms(),
        checksum: Some(checksum.clone()),
        parts: Vec::new(),
        version_id: None,
    };
    let cid_text = entry.cid.clone();
    let put = GroupPut {
        bucket: input.bucket,
        key: input.key,
        entry,
        condition,
        cid: added.cid,
    };
    // Waits for its group with no thread of its own; the GC waits until
    // the write is committed.
    let done = c.index.commit_put_async(put, Box::new(gc_guard)).await;
    let PutDone { owned, version_id } = done.map_err(s3_err)?;
    c.online
        .announce_added(added.cid, owned.then_some(PinKind::Recursive))
        .await;
    let mut output = PutObjectOutput {
        e_tag: Some(ETag::Strong(etag)),
        size: Some(i64::try_from(digested.bytes).unwrap_or(i64::MAX)),
        version_id,
        ..Default::default()
    };
    set_checksum!(output, &checksum);
    with_cid(output, &cid_text)
}

/// Where a PUT writes, and what it requires of what is there.
pub(super) struct Target<'a> {
    /// The bucket.
    pub(super) bucket: &'a str,
    /// The key.
    pub(super) key: &'a str,
    /// What the key's object must be for the write to happen.
    pub(super) condition: &'a WriteIf,
}

/// What `If-Match` and `If-None-Match` require of a PUT's key: only
/// `If-None-Match: *` and `If-Match: ETAG` (or `*`), as S3.
fn write_condition(
    if_match: Option<&ETagCondition>,
    if_none_match: Option<&ETagCondition>,
) -> S3Result<WriteIf> {
    match (if_match, if_none_match) {
        (None, None) => Ok(WriteIf::Always),
        (Some(m), None) => Ok(WriteIf::Matches(etag_of(m))),
        (None, Some(ETagCondition::Any)) => Ok(WriteIf::Absent),
        (None, Some(_)) => Err(s3_error!(
            NotImplemented,
            "a PUT's If-None-Match takes only \"*\""
        )),
        (Some(_), Some(_)) => Err(s3_error!(
            InvalidRequest,
            "If-Match and If-None-Match cannot both condition a PUT"
        )),
    }
}

/// Commits the entry of a PUT (or a completed multipart upload) whose
/// blocks are stored: with the writes that arrive meanwhile, in one group
/// commit of the index (`index/group.rs`), which flushes the store, pins
/// `cid` for the endpoint unless something holds it already, and commits
/// the entry if the target's condition holds. Returns, once the entry is
/// durable, whether the endpoint pinned `cid`, and the version ID to
/// answer with (none: the bucket was never versioned).
pub(super) fn commit(
    index: &Arc<super::index::BucketIndex>,
    target: &Target<'_>,
    entry: &ObjectEntry,
    cid: Cid,
) -> Result<(bool, Option<String>), super::S3Error> {
    let done = index.commit_put(GroupPut {
        bucket: target.bucket.to_string(),
        key: target.key.to_string(),
        entry: entry.clone(),
        condition: target.condition.clone(),
        cid,
    })?;
    Ok((done.owned, done.version_id))
}

/// The entry at `bucket`/`key`, if any.
async fn object(c: &Cairn, bucket: &str, key: &str) -> S3Result<Option<ObjectEntry>> {
    let index = Arc::clone(&c.index);
    let (b, k) = (bucket.to_string(), key.to_string());
    blocking(move || index.get(&b, &k)).await
}

/// The entry at `bucket`/`key` (its version `version`, if given) and the
/// version ID to answer with, or S3's error (`versioning.rs`); then the
/// read's conditions: 304 (with the object's ETag and Last-Modified) or
/// 412 when they say so.
async fn entry(
    c: &Cairn,
    (bucket, key): (&str, &str),
    version: Option<&str>,
    conditions: ReadIf,
) -> S3Result<(ObjectEntry, Option<String>)> {
    let (e, version_id) = super::versioning::find(c, bucket, key, version).await?;
    match conditions.evaluate(&e.etag, e.mtime_ms, now_ms()) {
        Verdict::Proceed => Ok((e, version_id)),
        Verdict::PreconditionFailed => Err(s3_error!(
            PreconditionFailed,
            "If-Match or If-Unmodified-Since does not hold for {key:?}"
        )),
        Verdict::NotModified => {
            let mut not_modified = s3_error!(NotModified);
            let mut headers = cid_header(&e.cid)?;
            let etag = ETag::Strong(e.etag.clone());
            headers.insert(
                axum::http::header::ETAG,
                etag.to_http_header().map_err(internal)?,
            );
            not_modified.set_headers(headers);
            Err(not_modified)
        }
    }
}

/// The byte range a request reads: all, or its `Range` (416 when it
/// starts past the end), with the `Content-Range` to answer.
fn range_of(range: Option<Range>, size: u64) -> S3Result<(u64, u64, Option<String>)> {
    match range {
        None => Ok((0, size, None)),
        Some(r) => {
            let within = r.check(size).map_err(|_| {
                s3_error!(
                    InvalidRange,
                    "the range is outside the object's {size} bytes"
                )
            })?;
            let content_range = format!("bytes {}-{}/{size}", within.start, within.end - 1);
            Ok((within.start, within.end - within.start, Some(content_range)))
        }
    }
}

/// What GET and HEAD answer about an object (and the range asked for),
/// as the fields both outputs share.
macro_rules! described {
    ($output:ident, $e:expr, $range:expr) => {{
        let e: &ObjectEntry = $e;
        let (start, length, content_range) = range_of($range, e.size)?;
        let output = $output {
            content_length: Some(i64::try_from(length).unwrap_or(i64::MAX)),
            content_range,
            accept_ranges: Some("bytes".into()),
            e_tag: Some(ETag::Strong(e.etag.clone())),
            last_modified: Some(timestamp(e.mtime_ms)),
            content_type: e.content_type.clone(),
            metadata: (!e.metadata.is_empty())
                .then(|| e.metadata.clone().into_iter().collect()),
            ..Default::default()
        };
        (output, start, length)
    }};
}

/// The conditions of a GET or HEAD input (the same four fields).
macro_rules! read_if {
    ($input:ident) => {
        ReadIf {
            if_match: $input.if_match,
            if_none_match: $input.if_none_match,
            if_modified_since: $input.if_modified_since,
            if_unmodified_since: $input.if_unmodified_since,
        }
    };
}

/// GetObject, whole or one range.
pub(super) async fn get(c: &Cairn, input: GetObjectInput) -> S3Result<S3Response<GetObjectOutput>> {
    let target = (input.bucket.as_str(), input.key.as_str());
    let (e, version_id) = entry(c, target, input.version_id.as_deref(), read_if!(input)).await?;
    let cid = e.cid().map_err(s3_err)?;
    let whole = input.range.is_none() && input.part_number.is_none();
    let (range, parts_count) = read_range(&e, input.part_number, input.range)?;
    let (mut output, start, length) = described!(GetObjectOutput, &e, range);
    output.parts_count = parts_count;
    output.version_id = version_id;
    if let Some(sum) = e
        .checksum
        .as_ref()
        .filter(|_| whole && enabled(&input.checksum_mode))
    {
        set_checksum!(output, sum);
    }
    if let Some(pieces) = c.online.node().held_read(&e.cid, start, Some(length)) {
        // A small hot object: its bytes are in memory, no blocking reader.
        let pieces = pieces.into_iter().map(Ok::<_, std::io::Error>);
        output.body = Some(StreamingBlob::wrap(futures::stream::iter(pieces)));
        return with_cid(output, &e.cid);
    }
    let index = Arc::clone(&c.index);
    let bucket = input.bucket.clone();
    let rx = if blocking(move || index.is_mounted(&bucket)).await? {
        // Another node's bucket: blocks come from the network as needed.
        let (reader, _) = c
            .online
            .cat(&cid.to_string(), start, Some(length))
            .await
            .map_err(internal)?;
        crate::http::spawn_producer(move |out| send_chunks(reader, out))
    } else {
        let node = Arc::clone(c.online.node());
        crate::http::spawn_producer(move |out| {
            send_chunks(node.cat(&cid.to_string(), start, Some(length))?, out)
        })
    };
    output.body = Some(StreamingBlob::wrap(ChunkStream(rx)));
    with_cid(output, &e.cid)
}

/// Sends a reader's chunks (whole blocks, or their slices at the range's
/// ends) as they are: the body's bytes are the buffers the store read them
/// into, with no copy on the way to the socket. (`io::copy` copied each
/// byte twice: into its 8 KiB buffer, then into the writer's.)
fn send_chunks(
    reader: crate::dag::reader::FileReader,
    out: &mut crate::http::ChannelWriter,
) -> Result<(), crate::http::ProducerError> {
    for chunk in reader {
        out.send(chunk?)?;
    }
    Ok(())
}

/// HeadObject.
pub(super) async fn head(
    c: &Cairn,
    input: HeadObjectInput,
) -> S3Result<S3Response<HeadObjectOutput>> {
    let target = (input.bucket.as_str(), input.key.as_str());
    let (e, version_id) = entry(c, target, input.version_id.as_deref(), read_if!(input)).await?;
    let whole = input.range.is_none() && input.part_number.is_none();
    let (range, parts_count) = read_range(&e, input.part_number, input.range)?;
    let (mut output, _, _) = described!(HeadObjectOutput, &e, range);
    output.parts_count = parts_count;
    output.version_id = version_id;
    if let Some(sum) = e
        .checksum
        .as_ref()
        .filter(|_| whole && enabled(&input.checksum_mode))
    {
        set_checksum!(output, sum);
    }
    with_cid(output, &e.cid)
}

/// Whether a GET or HEAD asked for the object's checksum
/// (`x-amz-checksum-mode: ENABLED`). A range or part is not what the
/// checksum covers: those get none, as from S3.
fn enabled(mode: &Option<ChecksumMode>) -> bool {
    mode.as_ref()
        .is_some_and(|m| m.as_str().eq_ignore_ascii_case(ChecksumMode::ENABLED))
}

/// DeleteObject: succeeds whether or not the key (or version) existed,
/// as S3; in a versioned bucket, adds a delete marker or, given a
/// `versionId`, removes that version (`index/versions.rs`).
pub(super) async fn delete(
    c: &Cairn,
    input: DeleteObjectInput,
) -> S3Result<S3Response<DeleteObjectOutput>> {
    let index = Arc::clone(&c.index);
    let (bucket, key) = (input.bucket, input.key);
    let id = super::versioning::version_arg(input.version_id.as_deref())?;
    // GC waits: the bucket tree's new nodes are stored before their pin.
    let _gc = c.online.gc_lock().read().await;
    let written = blocking(move || {
        let writer = index.writer();
        let written = writer.delete_object(&bucket, &key, id)?;
        if let Some(cid) = &written.released {
            writer.drop_pin(cid);
        }
        Ok(written)
    })
    .await?;
    Ok(S3Response::new(DeleteObjectOutput {
        delete_marker: written.marker.then_some(true),
        version_id: written.version_id,
        ..Default::default()
    }))
}

/// DeleteObjects: up to 1,000 keys, each removed as DeleteObject removes
/// it (a missing key counts as deleted, as S3); a key that cannot be
/// removed is reported in the result, not as the request's error. Quiet
/// mode reports only those.
pub(super) async fn delete_many(
    c: &Cairn,
    input: DeleteObjectsInput,
) -> S3Result<S3Response<DeleteObjectsOutput>> {
    let objects = input.delete.objects;
    if objects.is_empty() || objects.len() > MAX_DELETE_KEYS {
        return Err(s3_error!(
            MalformedXML,
            "a DeleteObjects request names 1 to {MAX_DELETE_KEYS} keys, not {}",
            objects.len()
        ));
    }
    let quiet = input.delete.quiet.unwrap_or(false);
    let index = Arc::clone(&c.index);
    let bucket = input.bucket;
    // GC waits: each deletion stores its bucket tree's new nodes before
    // their pin.
    let _gc = c.online.gc_lock().read().await;
    let outcomes = blocking(move || {
        if index.bucket(&bucket)?.is_none() {
            return Err(super::S3Error::NoSuchBucket { name: bucket });
        }
        let writer = index.writer();
        let outcomes = objects
            .into_iter()
            .map(|o| {
                let outcome = delete_one(&writer, &bucket, &o);
                (o, outcome)
            })
            .collect::<Vec<_>>();
        Ok(outcomes)
    })
    .await?;
    let mut deleted = Vec::new();
    let mut errors = Vec::new();
    for (o, outcome) in outcomes {
        match outcome {
            Ok(_) if quiet => {}
            Ok(w) => deleted.push(DeletedObject {
                key: Some(o.key),
                delete_marker: w.marker.then_some(true),
                delete_marker_version_id: (w.marker && o.version_id.is_none())
                    .then(|| w.version_id.clone())
                    .flatten(),
                version_id: o.version_id,
            }),
            Err(e) => errors.push(Error {
                code: Some(e.code().as_str().to_string()),
                key: Some(o.key),
                message: e.message().map(str::to_string),
                version_id: o.version_id,
            }),
        }
    }
    Ok(S3Response::new(DeleteObjectsOutput {
        deleted: Some(deleted),
        errors: Some(errors),
        ..Default::default()
    }))
}

/// One key (or version) of a DeleteObjects, as DeleteObject.
fn delete_one(
    writer: &super::index::Writer<'_>,
    bucket: &str,
    o: &ObjectIdentifier,
) -> S3Result<super::index::Written> {
    check_key(&o.key)?;
    // A version ID this endpoint never made names no version (S3 reports
    // NoSuchVersion for it here).
    let id = super::versioning::version_arg(o.version_id.as_deref()).map_err(|_| {
        s3_error!(
            NoSuchVersion,
            "no version {:?} of {:?}",
            o.version_id,
            o.key
        )
    })?;
    let written = writer.delete_object(bucket, &o.key, id).map_err(s3_err)?;
    if let Some(cid) = &written.released {
        writer.drop_pin(cid);
    }
    Ok(written)
}

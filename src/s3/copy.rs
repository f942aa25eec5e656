//! CopyObject without copying data: the destination key names the
//! source's CID, so both read the same blocks; the index's reference count
//! keeps the one pin until the last key naming the CID goes. Within a
//! bucket or across buckets (the access key must reach both: `auth.rs`
//! checks the source). The source is read, its `x-amz-copy-source-if-*`
//! conditions checked and the destination written under the index's write
//! lock, so a concurrent DELETE or PUT of the source cannot come between.
//!
//! `x-amz-metadata-directive`: COPY (the default) keeps the source's
//! Content-Type and `x-amz-meta-*`, REPLACE takes the request's. Copying a
//! key onto itself without REPLACE changes nothing and is refused
//! (`InvalidRequest`), as S3 does.

use super::conditions::{ReadIf, Verdict, WriteIf};
use super::index::{now_ms, BucketIndex, ObjectEntry, Version, VersionId};
use super::objects::{check_key, with_cid};
use super::service::{blocking, timestamp, Cairn};
use super::versioning::version_arg;
use super::S3Error;
use s3s::dto::*;
use s3s::{s3_error, S3Response, S3Result};
use std::sync::Arc;

/// What the request asks of the copy, checked before the index is touched.
struct CopyPlan {
    source: (String, String),
    source_version: Option<VersionId>,
    target: (String, String),
    replace: Option<(Option<String>, Metadata)>,
    source_if: ReadIf,
}

/// The bucket and key a copy (CopyObject, UploadPartCopy) reads: only a
/// bucket/key source, and its version if it names one.
pub(super) fn source_of(source: CopySource) -> S3Result<(String, String, Option<VersionId>)> {
    let CopySource::Bucket {
        bucket,
        key,
        version_id,
    } = source
    else {
        return Err(s3_error!(
            NotImplemented,
            "only bucket/key copy sources are supported, not access points"
        ));
    };
    let version = version_arg(version_id.as_deref())?;
    Ok((bucket.into(), key.into(), version))
}

/// The object a copy reads: `key`'s newest version or version `id` (none:
/// no such object, or a delete marker).
pub(super) fn source_entry(
    index: &BucketIndex,
    bucket: &str,
    key: &str,
    id: Option<VersionId>,
) -> Result<Option<ObjectEntry>, S3Error> {
    Ok(match index.version(bucket, key, id)? {
        Some(Version::Object { entry, .. }) => Some(entry),
        _ => None,
    })
}

fn plan(input: CopyObjectInput) -> S3Result<CopyPlan> {
    check_key(&input.key)?;
    let (sb, sk, source_version) = source_of(input.copy_source)?;
    let replace = match input
        .metadata_directive
        .as_ref()
        .map(MetadataDirective::as_str)
    {
        None | Some(MetadataDirective::COPY) => false,
        Some(MetadataDirective::REPLACE) => true,
        Some(other) => {
            return Err(s3_error!(
                InvalidArgument,
                "unknown x-amz-metadata-directive {other:?} (COPY or REPLACE)"
            ))
        }
    };
    Ok(CopyPlan {
        source: (sb, sk),
        source_version,
        target: (input.bucket, input.key),
        replace: replace.then(|| (input.content_type, input.metadata.unwrap_or_default())),
        source_if: ReadIf {
            if_match: input.copy_source_if_match,
            if_none_match: input.copy_source_if_none_match,
            if_modified_since: input.copy_source_if_modified_since,
            if_unmodified_since: input.copy_source_if_unmodified_since,
        },
    })
}

/// CopyObject.
pub(super) async fn copy(
    c: &Cairn,
    input: CopyObjectInput,
) -> S3Result<S3Response<CopyObjectOutput>> {
    let plan = plan(input)?;
    let index = Arc::clone(&c.index);
    // GC waits: the target bucket's new tree nodes are stored before their
    // pin.
    let _gc = c.online.gc_lock().read().await;
    let copied = blocking(move || {
        let writer = index.writer();
        let (sb, sk) = &plan.source;
        if index.is_mounted(sb)? {
            // Its bodies are another node's: no pin here holds them.
            return Ok(Err(s3_error!(
                NotImplemented,
                "copying out of the mounted bucket {sb:?} is not supported; GET and PUT it"
            )));
        }
        let Some(source) = source_entry(&index, sb, sk, plan.source_version)? else {
            return Ok(Err(match plan.source_version {
                Some(_) => s3_error!(NoSuchVersion, "no such version of {sk:?} in {sb:?} to copy"),
                None => s3_error!(NoSuchKey, "no object {sk:?} in bucket {sb:?} to copy"),
            }));
        };
        let now = now_ms();
        if plan.source_if.evaluate(&source.etag, source.mtime_ms, now) != Verdict::Proceed {
            return Ok(Err(s3_error!(
                PreconditionFailed,
                "the copy source's x-amz-copy-source-if-* conditions do not hold"
            )));
        }
        let same_version = plan.source_version.is_none();
        if plan.source == plan.target && same_version && plan.replace.is_none() {
            return Ok(Err(s3_error!(
                InvalidRequest,
                "This copy request is illegal because it is trying to copy an object to itself \
                 without changing the object's metadata (use x-amz-metadata-directive: REPLACE)"
            )));
        }
        let (content_type, metadata) = match plan.replace {
            Some((content_type, metadata)) => (content_type, metadata.into_iter().collect()),
            None => (source.content_type.clone(), source.metadata.clone()),
        };
        let source_version = source.version_id.clone();
        let entry = ObjectEntry {
            content_type,
            metadata,
            mtime_ms: now,
            ..source
        };
        // The source names the CID: the count goes up, the pin stays.
        let (tb, tk) = &plan.target;
        let written = writer.write((tb, tk), &entry, false, &WriteIf::Always)?;
        if let Some(old) = &written.released {
            writer.drop_pin(old);
        }
        Ok(Ok((entry, source_version, written.version_id)))
    })
    .await??;
    let (copied, source_version, version_id) = copied;
    with_cid(
        CopyObjectOutput {
            copy_object_result: Some(CopyObjectResult {
                e_tag: Some(ETag::Strong(copied.etag.clone())),
                last_modified: Some(timestamp(copied.mtime_ms)),
                ..Default::default()
            }),
            copy_source_version_id: source_version,
            version_id,
            ..Default::default()
        },
        &copied.cid,
    )
}

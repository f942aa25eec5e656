//! UploadPartCopy: a part made of an existing object, whole or a byte
//! range of it (`x-amz-copy-source-range: bytes=FIRST-LAST`), with the
//! source's `x-amz-copy-source-if-*` conditions checked.
//!
//! The range is read from the source's DAG and imported as an UploadPart
//! body is: hashed as it passes for the part's MD5 ETag and its checksum
//! (the upload's algorithm, else CRC64NVME), chunked with the node's
//! `[import]` options. The store skips the blocks it holds already, so when
//! the range starts on a chunk boundary of the source (a multiple of the
//! chunk size with the default fixed-size chunker) and ends on one or at
//! the object's end, the part's leaves are the source's own blocks and no
//! byte is stored twice; only a range that is not aligned is stored anew.
//! The part is then pinned and recorded as UploadPart records one (pin
//! pending first).

use super::{hex, open_upload, part_number, MAX_PART_BYTES};
use crate::node::AddOptions;
use crate::s3::body::import_blocking;
use crate::s3::checksum::{Algorithm, Hasher};
use crate::s3::conditions::{ReadIf, Verdict};
use crate::s3::copy::{source_entry, source_of};
use crate::s3::index::{now_ms, PartEntry};
use crate::s3::service::{blocking, internal, s3_err, timestamp, Cairn};
use crate::s3::S3Error;
use s3s::dto::*;
use s3s::{s3_error, S3Response, S3Result};
use std::sync::Arc;

/// The bytes `x-amz-copy-source-range` names of a `size`-byte source, as
/// (offset, length): all of it when absent.
fn copy_range(range: Option<&str>, size: u64) -> S3Result<(u64, u64)> {
    let Some(range) = range else {
        return Ok((0, size));
    };
    let malformed = || {
        s3_error!(
            InvalidArgument,
            "The x-amz-copy-source-range value must be of the form bytes=first-last \
             where first and last are the zero-based offsets of the first and last bytes to copy"
        )
    };
    let (first, last) = range
        .trim()
        .strip_prefix("bytes=")
        .and_then(|r| r.split_once('-'))
        .ok_or_else(malformed)?;
    let first: u64 = first.trim().parse().map_err(|_| malformed())?;
    let last: u64 = last.trim().parse().map_err(|_| malformed())?;
    if first > last || last >= size {
        return Err(s3_error!(
            InvalidArgument,
            "Range specified is not valid for source object of size: {size}"
        ));
    }
    Ok((first, last - first + 1))
}

/// UploadPartCopy.
pub(in crate::s3) async fn upload_part_copy(
    c: &Cairn,
    input: UploadPartCopyInput,
) -> S3Result<S3Response<UploadPartCopyOutput>> {
    let number = part_number(input.part_number)?;
    let (source_bucket, source_key, source_version) = source_of(input.copy_source)?;
    let (bucket, key, id) = (input.bucket, input.key, input.upload_id);
    let upload = open_upload(c, &bucket, &key, &id).await?;
    let source = {
        let index = Arc::clone(&c.index);
        let (b, k) = (source_bucket.clone(), source_key.clone());
        blocking(move || {
            if index.is_mounted(&b)? {
                return Ok(Err(b));
            }
            source_entry(&index, &b, &k, source_version).map(Ok)
        })
        .await?
    }
    .map_err(|b| {
        // Its bodies are another node's: no pin here holds them.
        s3_error!(
            NotImplemented,
            "copying out of the mounted bucket {b:?} is not supported; GET it and upload the part"
        )
    })?
    .ok_or_else(|| {
        s3_error!(
            NoSuchKey,
            "no object {source_key:?} in bucket {source_bucket:?} to copy"
        )
    })?;
    let conditions = ReadIf {
        if_match: input.copy_source_if_match,
        if_none_match: input.copy_source_if_none_match,
        if_modified_since: input.copy_source_if_modified_since,
        if_unmodified_since: input.copy_source_if_unmodified_since,
    };
    if conditions.evaluate(&source.etag, source.mtime_ms, now_ms()) != Verdict::Proceed {
        return Err(s3_error!(
            PreconditionFailed,
            "the copy source's x-amz-copy-source-if-* conditions do not hold"
        ));
    }
    let (offset, length) = copy_range(input.copy_source_range.as_deref(), source.size)?;
    if length > MAX_PART_BYTES {
        return Err(s3_error!(
            InvalidRequest,
            "The specified copy source is larger than the maximum allowable size for a copy source: {MAX_PART_BYTES}"
        ));
    }
    let source_cid = source.cid().map_err(s3_err)?;
    let algorithm = upload.checksum_algorithm.unwrap_or(Algorithm::Crc64Nvme);
    let node = Arc::clone(c.online.node());
    let mut opts = AddOptions::from_config(node.config()).map_err(internal)?;
    opts.pin = false;
    // GC waits until the part is pinned (or refused).
    let gc_guard = c.online.gc_lock().clone().read_owned().await;
    let index = Arc::clone(&c.index);
    let stored = blocking(move || {
        let range = node.cat(&source_cid.to_string(), offset, Some(length))?;
        let (added, mut digested, _, leaves) = import_blocking(
            &node,
            range,
            &opts,
            (MAX_PART_BYTES, true),
            Hasher::new(algorithm),
        );
        let added = added?;
        let checksum = digested.checksum.take();
        if digested.bytes != length {
            return Err(S3Error::BadEntry {
                what: "copy source",
                why: format!("{} bytes read of the {length} asked", digested.bytes),
            });
        }
        let part = PartEntry {
            cid: added.cid.to_string(),
            size: digested.bytes,
            md5: hex(&digested.md5),
            mtime_ms: now_ms(),
            checksum,
        };
        node.flush()?;
        let writer = index.writer();
        writer.pin_and_record(&added.cid, |owned| {
            writer.put_part((&bucket, &key, &id), number, &part, &leaves, owned)
        })?;
        Ok(part)
    })
    .await;
    drop(gc_guard);
    let part = stored?;
    let sums = part
        .checksum
        .as_ref()
        .map(|c| c.fields())
        .unwrap_or_default();
    Ok(S3Response::new(UploadPartCopyOutput {
        copy_part_result: Some(CopyPartResult {
            e_tag: Some(ETag::Strong(part.md5)),
            last_modified: Some(timestamp(part.mtime_ms)),
            checksum_crc32: sums.checksum_crc32,
            checksum_crc32c: sums.checksum_crc32c,
            checksum_crc64nvme: sums.checksum_crc64nvme,
            checksum_sha1: sums.checksum_sha1,
            checksum_sha256: sums.checksum_sha256,
        }),
        ..Default::default()
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copy_ranges_are_s3s() {
        assert_eq!(copy_range(None, 10).unwrap(), (0, 10));
        assert_eq!(copy_range(Some("bytes=2-5"), 10).unwrap(), (2, 4));
        assert_eq!(copy_range(Some("bytes=0-9"), 10).unwrap(), (0, 10));
        let code = |r: &str| {
            copy_range(Some(r), 10)
                .unwrap_err()
                .code()
                .as_str()
                .to_string()
        };
        for bad in [
            "bytes=5-10",
            "bytes=6-5",
            "bytes=-3",
            "bytes=3-",
            "2-5",
            "bytes=a-b",
        ] {
            assert_eq!(code(bad), "InvalidArgument", "{bad}");
        }
    }
}

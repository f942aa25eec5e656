//! ListParts and ListMultipartUploads: pages of what is open, as S3
//! pages them (part-number markers; key and upload-ID markers, prefixes
//! and delimiters).

use super::{clamp_i32, open_upload, MAX_LISTED};
use crate::s3::index::{BucketIndex, ListedUpload};
use crate::s3::service::{blocking, owner, timestamp, Cairn};
use crate::s3::S3Error;
use s3s::dto::*;
use s3s::{s3_error, S3Response, S3Result};
use std::sync::Arc;

/// Who made every upload: the one owner.
fn initiator() -> Initiator {
    let Owner { display_name, id } = owner();
    Initiator { display_name, id }
}

/// A page size a client asked for: at most [`MAX_LISTED`].
fn page_size(asked: Option<i32>, what: &str) -> S3Result<usize> {
    match asked {
        None => Ok(MAX_LISTED),
        Some(n) => usize::try_from(n)
            .map(|n| n.min(MAX_LISTED))
            .map_err(|_| s3_error!(InvalidArgument, "{what} must not be negative")),
    }
}

/// ListParts.
pub(in crate::s3) async fn list_parts(
    c: &Cairn,
    input: ListPartsInput,
) -> S3Result<S3Response<ListPartsOutput>> {
    let max = page_size(input.max_parts, "max-parts")?;
    let marker = u32::try_from(input.part_number_marker.unwrap_or(0))
        .map_err(|_| s3_error!(InvalidArgument, "part-number-marker must not be negative"))?;
    let upload = open_upload(c, &input.bucket, &input.key, &input.upload_id).await?;
    let index = Arc::clone(&c.index);
    let id = input.upload_id.clone();
    let mut parts = blocking(move || index.parts(&id, marker.saturating_add(1), max + 1)).await?;
    let truncated = parts.len() > max;
    parts.truncate(max);
    let next = parts.last().map(|(n, _)| clamp_i32(u64::from(*n)));
    let parts = parts
        .into_iter()
        .map(|(n, p)| {
            let sums = p.checksum.as_ref().map(|c| c.fields()).unwrap_or_default();
            Part {
                part_number: Some(clamp_i32(u64::from(n))),
                e_tag: Some(ETag::Strong(p.md5)),
                size: Some(i64::try_from(p.size).unwrap_or(i64::MAX)),
                last_modified: Some(timestamp(p.mtime_ms)),
                checksum_crc32: sums.checksum_crc32,
                checksum_crc32c: sums.checksum_crc32c,
                checksum_crc64nvme: sums.checksum_crc64nvme,
                checksum_sha1: sums.checksum_sha1,
                checksum_sha256: sums.checksum_sha256,
            }
        })
        .collect();
    Ok(S3Response::new(ListPartsOutput {
        bucket: Some(input.bucket),
        key: Some(input.key),
        upload_id: Some(input.upload_id),
        checksum_algorithm: upload
            .checksum_algorithm
            .map(|a| ChecksumAlgorithm::from_static(a.name())),
        checksum_type: upload
            .checksum_algorithm
            .map(|_| super::checksum_type(upload.full_object)),
        parts: Some(parts),
        is_truncated: Some(truncated),
        max_parts: Some(clamp_i32(max as u64)),
        part_number_marker: input.part_number_marker,
        next_part_number_marker: next,
        initiator: Some(initiator()),
        owner: Some(owner()),
        storage_class: Some(StorageClass::from_static(StorageClass::STANDARD)),
        ..Default::default()
    }))
}

/// A page of ListMultipartUploads: uploads, common prefixes, and where the
/// next page starts (key and upload ID) when there is more.
#[derive(Debug, Default, PartialEq, Eq)]
struct UploadPage {
    uploads: Vec<ListedUpload>,
    prefixes: Vec<String>,
    next: Option<(String, String)>,
}

/// One page of `bucket`'s uploads whose keys start with `prefix`, from
/// `start` (`KEY \0 ID`) on, keys with `delimiter` after the prefix rolled
/// into common prefixes, at most `max` entries.
fn upload_page(
    index: &BucketIndex,
    bucket: &str,
    prefix: &str,
    delimiter: Option<&str>,
    mut start: Vec<u8>,
    max: usize,
) -> Result<UploadPage, S3Error> {
    let mut page = UploadPage::default();
    if start.as_slice() < prefix.as_bytes() {
        start = prefix.as_bytes().to_vec();
    }
    loop {
        let Some(upload) = index.uploads_of(bucket, &start, 1)?.pop() else {
            return Ok(page);
        };
        if !upload.key.starts_with(prefix) {
            return Ok(page);
        }
        if page.uploads.len() + page.prefixes.len() == max {
            if let Some(last) = page.uploads.last() {
                page.next = Some((last.key.clone(), last.id.clone()));
            } else if let Some(p) = page.prefixes.last() {
                page.next = Some((p.clone(), String::new()));
            }
            return Ok(page);
        }
        let common = delimiter.filter(|d| !d.is_empty()).and_then(|d| {
            let rest = &upload.key[prefix.len()..];
            rest.find(d)
                .map(|at| upload.key[..prefix.len() + at + d.len()].to_string())
        });
        match common {
            Some(common) => {
                match crate::s3::list::past_prefix(common.as_bytes()) {
                    Some(next) => start = next,
                    None => {
                        page.prefixes.push(common);
                        return Ok(page);
                    }
                }
                page.prefixes.push(common);
            }
            None => {
                start = crate::s3::list::after(
                    &[upload.key.as_bytes(), b"\0", upload.id.as_bytes()].concat(),
                );
                page.uploads.push(upload);
            }
        }
    }
}

/// Where a listing of uploads starts after `key_marker` (and, for that
/// key, after `upload_id_marker`).
fn uploads_start(key_marker: Option<&str>, upload_id_marker: Option<&str>) -> Vec<u8> {
    match (key_marker.filter(|k| !k.is_empty()), upload_id_marker) {
        (None, _) => Vec::new(),
        (Some(k), Some(id)) if !id.is_empty() => {
            crate::s3::list::after(&[k.as_bytes(), b"\0", id.as_bytes()].concat())
        }
        // Past every upload of the key: `KEY \0 ...` < `KEY \x01`.
        (Some(k), _) => [k.as_bytes(), b"\x01"].concat(),
    }
}

/// ListMultipartUploads.
pub(in crate::s3) async fn list_uploads(
    c: &Cairn,
    input: ListMultipartUploadsInput,
) -> S3Result<S3Response<ListMultipartUploadsOutput>> {
    let max = page_size(input.max_uploads, "max-uploads")?;
    c.bucket_exists(&input.bucket).await?;
    let start = uploads_start(
        input.key_marker.as_deref(),
        input.upload_id_marker.as_deref(),
    );
    let index = Arc::clone(&c.index);
    let bucket = input.bucket.clone();
    let prefix = input.prefix.clone().unwrap_or_default();
    let delimiter = input.delimiter.clone();
    let page =
        blocking(move || upload_page(&index, &bucket, &prefix, delimiter.as_deref(), start, max))
            .await?;
    let uploads = page
        .uploads
        .into_iter()
        .map(|u| MultipartUpload {
            key: Some(u.key),
            upload_id: Some(u.id),
            initiated: Some(timestamp(u.entry.initiated_ms)),
            initiator: Some(initiator()),
            owner: Some(owner()),
            storage_class: Some(StorageClass::from_static(StorageClass::STANDARD)),
            ..Default::default()
        })
        .collect();
    let common_prefixes = page
        .prefixes
        .into_iter()
        .map(|p| CommonPrefix { prefix: Some(p) })
        .collect();
    let (next_key, next_id) = page.next.clone().unzip();
    Ok(S3Response::new(ListMultipartUploadsOutput {
        bucket: Some(input.bucket),
        prefix: input.prefix,
        delimiter: input.delimiter,
        key_marker: input.key_marker,
        upload_id_marker: input.upload_id_marker,
        max_uploads: Some(clamp_i32(max as u64)),
        is_truncated: Some(page.next.is_some()),
        next_key_marker: next_key,
        next_upload_id_marker: next_id,
        uploads: Some(uploads),
        common_prefixes: Some(common_prefixes),
        ..Default::default()
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upload_markers_start_past_what_was_listed() {
        assert_eq!(uploads_start(None, Some("x")), b"");
        assert_eq!(uploads_start(Some("k"), None), b"k\x01");
        assert_eq!(uploads_start(Some("k"), Some("id")), b"k\0id\0");
    }
}

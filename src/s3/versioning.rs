//! Bucket versioning as S3 answers it: Get/PutBucketVersioning,
//! ListObjectVersions, and the version a GET, HEAD or copy reads (the
//! index keeps the versions: `index/versions.rs`).
//!
//! - Reading a key whose newest version is a delete marker is `NoSuchKey`
//!   with `x-amz-delete-marker: true` and the marker's version ID; reading
//!   a marker by ID is `MethodNotAllowed` (405) with the same headers; an
//!   unknown ID is `NoSuchVersion`, a malformed one `InvalidArgument`.
//! - A mounted bucket's tree carries only its current versions: those are
//!   listed and read by ID; older ones are `NoSuchVersion`, saying so.
//! - ListObjectVersions pages in S3's order (key ascending, newest version
//!   first) from `key-marker`/`version-id-marker`; `max-keys` counts
//!   versions, delete markers and common prefixes.

use super::checksum::ObjectChecksum;
use super::index::{current_key, shown, ObjectEntry, Version, VersionId, Versioning};
use super::list::{after, past_prefix};
use super::service::{blocking, encoded, internal, list_args, owner, s3_err, timestamp, Cairn};
use super::S3Error;
use s3s::dto::*;
use s3s::{s3_error, S3Result};
use std::sync::Arc;

/// A request's `versionId`, checked.
pub(super) fn version_arg(id: Option<&str>) -> S3Result<Option<VersionId>> {
    id.map(|id| {
        VersionId::parse(id)
            .ok_or_else(|| s3_error!(InvalidArgument, "Invalid version id specified: {id:?}"))
    })
    .transpose()
}

/// `x-amz-delete-marker: true` and the marker's `x-amz-version-id`.
fn marker_headers(id: Option<&str>, mtime_ms: u64) -> S3Result<axum::http::HeaderMap> {
    let mut headers = axum::http::HeaderMap::new();
    headers.insert("x-amz-delete-marker", "true".parse().map_err(internal)?);
    let id = axum::http::HeaderValue::from_str(&shown(id)).map_err(internal)?;
    headers.insert("x-amz-version-id", id);
    let modified = timestamp(mtime_ms);
    let mut text = Vec::new();
    if modified
        .format(s3s::dto::TimestampFormat::HttpDate, &mut text)
        .is_ok()
    {
        if let Ok(v) = axum::http::HeaderValue::from_bytes(&text) {
            headers.insert(axum::http::header::LAST_MODIFIED, v);
        }
    }
    Ok(headers)
}

/// The version of `bucket`/`key` a read names (`id`; none: the newest)
/// and the version ID to answer with (none: the bucket was never
/// versioned); S3's errors for a delete marker, a missing key or version.
pub(super) async fn find(
    c: &Cairn,
    bucket: &str,
    key: &str,
    id: Option<&str>,
) -> S3Result<(ObjectEntry, Option<String>)> {
    let id = version_arg(id)?;
    let index = Arc::clone(&c.index);
    let (b, k) = (bucket.to_string(), key.to_string());
    let (found, state, mounted) = blocking(move || {
        let found = index.version(&b, &k, id)?;
        Ok((found, index.versioning(&b)?, index.is_mounted(&b)?))
    })
    .await?;
    match found {
        Some(Version::Object { entry, .. }) => {
            let answer = (state.is_some() || entry.version_id.is_some() || id.is_some())
                .then(|| shown(entry.version_id.as_deref()));
            Ok((entry, answer))
        }
        Some(Version::Marker {
            version_id,
            mtime_ms,
            ..
        }) => {
            let mut e = match id {
                Some(_) => s3_error!(
                    MethodNotAllowed,
                    "version {} of {key:?} is a delete marker",
                    shown(version_id.as_deref())
                ),
                None => s3_error!(NoSuchKey, "{key:?} in bucket {bucket:?} is deleted"),
            };
            e.set_headers(marker_headers(version_id.as_deref(), mtime_ms)?);
            Err(e)
        }
        None if id.is_some() && mounted => Err(s3_error!(
            NoSuchVersion,
            "the mounted bucket {bucket:?} carries only the current version of {key:?}"
        )),
        None if id.is_some() => Err(s3_error!(
            NoSuchVersion,
            "no such version of {key:?} in bucket {bucket:?}"
        )),
        None => Err(s3_error!(
            NoSuchKey,
            "no object {key:?} in bucket {bucket:?}"
        )),
    }
}

/// GetBucketVersioning: no status for a bucket never versioned (and for a
/// mounted one, whose tree does not carry it).
pub(super) async fn get(c: &Cairn, bucket: String) -> S3Result<GetBucketVersioningOutput> {
    c.bucket_exists(&bucket).await?;
    let index = Arc::clone(&c.index);
    let state = blocking(move || index.versioning(&bucket)).await?;
    Ok(GetBucketVersioningOutput {
        status: state.map(|s| BucketVersioningStatus::from(s.as_str().to_string())),
        ..Default::default()
    })
}

/// PutBucketVersioning: `Enabled` or `Suspended`.
pub(super) async fn put(c: &Cairn, input: PutBucketVersioningInput) -> S3Result<()> {
    let state = match input
        .versioning_configuration
        .status
        .as_ref()
        .map(BucketVersioningStatus::as_str)
    {
        Some(BucketVersioningStatus::ENABLED) => Versioning::Enabled,
        Some(BucketVersioningStatus::SUSPENDED) => Versioning::Suspended,
        other => {
            return Err(s3_error!(
                MalformedXML,
                "the versioning status must be Enabled or Suspended, not {other:?}"
            ))
        }
    };
    c.bucket_exists(&input.bucket).await?;
    let index = Arc::clone(&c.index);
    blocking(move || index.writer().set_versioning(&input.bucket, state)).await
}

/// One item of a version listing.
enum Item {
    Object(String, ObjectEntry, bool),
    Marker(String, Option<String>, u64, bool),
    Prefix(String),
}

/// One page of ListObjectVersions' items; where the next page starts.
fn page(
    c: &Arc<super::index::BucketIndex>,
    bucket: &str,
    q: &Query,
) -> Result<(Vec<Item>, Option<Vec<u8>>), S3Error> {
    let versions = c.versions_of(bucket)?;
    let prefix = q.prefix.as_bytes();
    let delimiter = q.delimiter.as_deref().filter(|d| !d.is_empty());
    let mut out = Vec::new();
    if q.max_keys == 0 || prefix.contains(&0) {
        return Ok((out, None));
    }
    let mut at = Some(q.start.clone());
    while let Some(from) = at.take() {
        let Some((pos, key, version)) = versions.first_from(&from)? else {
            break;
        };
        if !key.starts_with(prefix) {
            break;
        }
        if out.len() == q.max_keys {
            return Ok((out, Some(from)));
        }
        let rolled = delimiter.and_then(|d| {
            let rest = &key[prefix.len()..];
            rest.windows(d.len())
                .position(|w| w == d.as_bytes())
                .map(|i| key[..prefix.len() + i + d.len()].to_vec())
        });
        let text = String::from_utf8_lossy(&key).into_owned();
        match (rolled, version) {
            (Some(common), _) => {
                at = past_prefix(&common);
                out.push(Item::Prefix(String::from_utf8_lossy(&common).into_owned()));
            }
            (None, Version::Object { entry, current }) => {
                at = Some(after(&pos));
                out.push(Item::Object(text, entry, current));
            }
            (
                None,
                Version::Marker {
                    version_id,
                    mtime_ms,
                    current,
                },
            ) => {
                at = Some(after(&pos));
                out.push(Item::Marker(text, version_id, mtime_ms, current));
            }
        }
    }
    Ok((out, None))
}

/// What a version listing asks for.
struct Query {
    prefix: String,
    delimiter: Option<String>,
    max_keys: usize,
    start: Vec<u8>,
}

/// Where a listing after `key_marker` (and `version_marker`) starts.
fn start(
    index: &super::index::BucketIndex,
    bucket: &str,
    (prefix, delimiter): (&str, Option<&str>),
    key_marker: &str,
    version_marker: Option<&str>,
) -> Result<Vec<u8>, s3s::S3Error> {
    let k = key_marker.as_bytes();
    let from = match (
        key_marker.is_empty(),
        version_marker.filter(|v| !v.is_empty()),
    ) {
        (true, _) => Vec::new(),
        (false, None) => {
            let rolled = delimiter.filter(|d| !d.is_empty()).is_some_and(|d| {
                key_marker.len() >= prefix.len() + d.len()
                    && key_marker.starts_with(prefix)
                    && key_marker[prefix.len()..].find(d)
                        == Some(key_marker.len() - prefix.len() - d.len())
            });
            match rolled {
                true => past_prefix(k).unwrap_or_else(|| after(k)),
                // Past every version of the key.
                false => [k, &[1]].concat(),
            }
        }
        (false, Some(v)) => {
            let id = version_arg(Some(v))?
                .ok_or_else(|| s3_error!(InvalidArgument, "bad version-id-marker"))?;
            let pos = index
                .version_position(bucket, key_marker, id)
                .map_err(s3_err)?;
            after(&pos.unwrap_or_else(|| current_key(k)))
        }
    };
    Ok(from.max(prefix.as_bytes().to_vec()))
}

/// ListObjectVersions.
pub(super) async fn list(
    c: &Cairn,
    input: ListObjectVersionsInput,
) -> S3Result<ListObjectVersionsOutput> {
    let (max_keys, url) = list_args(input.max_keys, input.encoding_type.as_ref())?;
    let prefix = input.prefix.clone().unwrap_or_default();
    let index = Arc::clone(&c.index);
    let bucket = input.bucket.clone();
    let key_marker = input.key_marker.clone().unwrap_or_default();
    let version_marker = input.version_id_marker.clone();
    let delimiter = input.delimiter.clone();
    let (items, next) = tokio::task::spawn_blocking(move || {
        if index.bucket(&bucket).map_err(s3_err)?.is_none() {
            return Err(s3_err(S3Error::NoSuchBucket { name: bucket }));
        }
        let from = start(
            &index,
            &bucket,
            (&prefix, delimiter.as_deref()),
            &key_marker,
            version_marker.as_deref(),
        )?;
        let q = Query {
            prefix,
            delimiter,
            max_keys,
            start: from,
        };
        page(&index, &bucket, &q).map_err(s3_err)
    })
    .await
    .map_err(internal)??;
    let (mut versions, mut markers, mut prefixes) = (Vec::new(), Vec::new(), Vec::new());
    let mut last: Option<(String, Option<String>)> = None;
    for item in items {
        match item {
            Item::Object(key, e, current) => {
                let id = shown(e.version_id.as_deref());
                last = Some((key.clone(), Some(id.clone())));
                let (algorithm, kind) = ObjectChecksum::listed(e.checksum.as_ref());
                versions.push(ObjectVersion {
                    checksum_algorithm: algorithm,
                    checksum_type: kind,
                    key: Some(encoded(key, url)),
                    version_id: Some(id),
                    is_latest: Some(current),
                    size: Some(i64::try_from(e.size).unwrap_or(i64::MAX)),
                    e_tag: Some(ETag::Strong(e.etag)),
                    last_modified: Some(timestamp(e.mtime_ms)),
                    owner: Some(owner()),
                    storage_class: Some(ObjectVersionStorageClass::from_static(
                        ObjectVersionStorageClass::STANDARD,
                    )),
                    ..Default::default()
                });
            }
            Item::Marker(key, id, mtime_ms, current) => {
                let id = shown(id.as_deref());
                last = Some((key.clone(), Some(id.clone())));
                markers.push(DeleteMarkerEntry {
                    key: Some(encoded(key, url)),
                    version_id: Some(id),
                    is_latest: Some(current),
                    last_modified: Some(timestamp(mtime_ms)),
                    owner: Some(owner()),
                });
            }
            Item::Prefix(p) => {
                last = Some((p.clone(), None));
                prefixes.push(CommonPrefix {
                    prefix: Some(encoded(p, url)),
                });
            }
        }
    }
    let truncated = next.is_some();
    let (next_key, next_version) = match last.filter(|_| truncated) {
        Some((k, v)) => (Some(encoded(k, url)), v),
        None => (None, None),
    };
    Ok(ListObjectVersionsOutput {
        name: Some(input.bucket),
        prefix: Some(encoded(input.prefix.unwrap_or_default(), url)),
        delimiter: input.delimiter.map(|d| encoded(d, url)),
        key_marker: Some(encoded(input.key_marker.unwrap_or_default(), url)),
        version_id_marker: Some(input.version_id_marker.unwrap_or_default()),
        max_keys: Some(i32::try_from(max_keys).unwrap_or(i32::MAX)),
        is_truncated: Some(truncated),
        next_key_marker: next_key,
        next_version_id_marker: next_version,
        versions: Some(versions),
        delete_markers: Some(markers),
        common_prefixes: Some(prefixes),
        encoding_type: input.encoding_type,
        ..Default::default()
    })
}

//! The `S3` trait over cairn: buckets (create, delete when it holds no
//! object, aborting its open multipart uploads, list, head, location,
//! versioning: `versioning.rs`; ACLs in `acl.rs`) and listings (V2 and V1, one paging in
//! `list.rs`) here; objects in `objects.rs`, CopyObject in `copy.rs`,
//! multipart uploads in `multipart.rs`. Every index access runs on a
//! blocking thread.

use super::auth::KeyAuth;
use super::checksum::ObjectChecksum;
use super::index::{BucketIndex, BucketSettings, DeleteBucket};
use super::list::{self, ListQuery};
use super::S3Error;
use crate::node::online::OnlineNode;
use s3s::dto::*;
use s3s::{s3_error, S3Request, S3Response, S3Result, S3};
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

/// The storage behind the endpoint.
pub(super) struct Cairn {
    pub(super) online: Arc<OnlineNode>,
    pub(super) index: Arc<BucketIndex>,
    pub(super) auth: KeyAuth,
}

/// `error` as S3 names it (a mount not resolved yet: 503
/// ServiceUnavailable, which clients retry); anything but a missing bucket
/// or upload, a bad bucket name, an unresolved mount or a refused
/// conditional write is logged and answered as an internal error.
pub(super) fn s3_err(error: S3Error) -> s3s::S3Error {
    match error {
        S3Error::NoSuchBucket { name } => {
            s3_error!(NoSuchBucket, "the bucket {name:?} does not exist")
        }
        S3Error::InvalidBucketName { name } => {
            s3_error!(InvalidBucketName, "invalid bucket name {name:?}")
        }
        S3Error::ReadOnlyBucket { name } => {
            s3_error!(AccessDenied, "the bucket {name:?} is mounted read-only")
        }
        S3Error::WriteRefused { key, why, .. } => why.to_s3(&key),
        e @ S3Error::NoSuchUpload { .. } => s3_error!(NoSuchUpload, "{e}"),
        e @ S3Error::NotResolved { .. } => s3_error!(ServiceUnavailable, "{e}"),
        e @ S3Error::BucketExists { .. } => s3_error!(BucketAlreadyOwnedByYou, "{e}"),
        e @ S3Error::BadReplication { .. } => s3_error!(InvalidArgument, "{e}"),
        e @ S3Error::InvalidKey { .. } => s3_error!(InvalidArgument, "{e}"),
        other => internal(other),
    }
}

/// An internal error, logged with its cause.
pub(super) fn internal(error: impl std::fmt::Display) -> s3s::S3Error {
    tracing::error!("S3: {error}");
    s3s::S3Error::with_message(s3s::S3ErrorCode::InternalError, error.to_string())
}

/// Runs `f` on a blocking thread.
pub(super) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, S3Error> + Send + 'static,
) -> S3Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(internal)?
        .map_err(s3_err)
}

/// A time in ms since the epoch as S3's timestamp.
pub(super) fn timestamp(ms: u64) -> Timestamp {
    Timestamp::from(UNIX_EPOCH + Duration::from_millis(ms))
}

impl Cairn {
    /// Fails with `NoSuchBucket` unless `bucket` exists.
    pub(super) async fn bucket_exists(&self, bucket: &str) -> S3Result<()> {
        let index = Arc::clone(&self.index);
        let name = bucket.to_string();
        match blocking(move || index.bucket(&name)).await? {
            Some(_) => Ok(()),
            None => Err(s3_err(S3Error::NoSuchBucket {
                name: bucket.to_string(),
            })),
        }
    }
}

#[async_trait::async_trait]
impl S3 for Cairn {
    async fn create_bucket(
        &self,
        req: S3Request<CreateBucketInput>,
    ) -> S3Result<S3Response<CreateBucketOutput>> {
        let name = req.input.bucket;
        if !s3s::path::check_bucket_name(&name) {
            return Err(s3_err(S3Error::InvalidBucketName { name }));
        }
        // The node's default copies; public-read only when asked for.
        let settings = BucketSettings {
            replication: None,
            public_read: super::acl::canned(req.input.acl.as_ref())?,
        };
        let index = Arc::clone(&self.index);
        let bucket = name.clone();
        // GC waits: the bucket's empty tree is stored before its pin.
        let _gc = self.online.gc_lock().read().await;
        if !blocking(move || index.writer().create_bucket_with(&bucket, &settings)).await? {
            return Err(s3_error!(
                BucketAlreadyOwnedByYou,
                "the bucket {name:?} exists already"
            ));
        }
        Ok(S3Response::new(CreateBucketOutput {
            location: Some(format!("/{name}")),
        }))
    }

    async fn delete_bucket(
        &self,
        req: S3Request<DeleteBucketInput>,
    ) -> S3Result<S3Response<DeleteBucketOutput>> {
        let index = Arc::clone(&self.index);
        let name = req.input.bucket;
        let bucket = name.clone();
        let deleted = blocking(move || index.writer().delete_bucket(&bucket));
        match deleted.await? {
            DeleteBucket::Deleted => Ok(S3Response::new(DeleteBucketOutput {})),
            DeleteBucket::NoSuchBucket => Err(s3_err(S3Error::NoSuchBucket { name })),
            DeleteBucket::NotEmpty => Err(s3_error!(
                BucketNotEmpty,
                "the bucket {name:?} holds objects (or object versions): delete them first"
            )),
        }
    }

    async fn head_bucket(
        &self,
        req: S3Request<HeadBucketInput>,
    ) -> S3Result<S3Response<HeadBucketOutput>> {
        self.bucket_exists(&req.input.bucket).await?;
        Ok(S3Response::new(HeadBucketOutput::default()))
    }

    async fn get_bucket_location(
        &self,
        req: S3Request<GetBucketLocationInput>,
    ) -> S3Result<S3Response<GetBucketLocationOutput>> {
        self.bucket_exists(&req.input.bucket).await?;
        // No location constraint: us-east-1, which any region name signs for.
        Ok(S3Response::new(GetBucketLocationOutput::default()))
    }

    async fn get_bucket_versioning(
        &self,
        req: S3Request<GetBucketVersioningInput>,
    ) -> S3Result<S3Response<GetBucketVersioningOutput>> {
        super::versioning::get(self, req.input.bucket)
            .await
            .map(S3Response::new)
    }

    async fn put_bucket_versioning(
        &self,
        req: S3Request<PutBucketVersioningInput>,
    ) -> S3Result<S3Response<PutBucketVersioningOutput>> {
        super::versioning::put(self, req.input).await?;
        Ok(S3Response::new(PutBucketVersioningOutput {}))
    }

    async fn list_object_versions(
        &self,
        req: S3Request<ListObjectVersionsInput>,
    ) -> S3Result<S3Response<ListObjectVersionsOutput>> {
        super::versioning::list(self, req.input)
            .await
            .map(S3Response::new)
    }

    async fn get_bucket_acl(
        &self,
        req: S3Request<GetBucketAclInput>,
    ) -> S3Result<S3Response<GetBucketAclOutput>> {
        super::acl::get(self, req.input).await
    }

    async fn put_bucket_acl(
        &self,
        req: S3Request<PutBucketAclInput>,
    ) -> S3Result<S3Response<PutBucketAclOutput>> {
        super::acl::put(self, req.input).await
    }

    async fn list_buckets(
        &self,
        req: S3Request<ListBucketsInput>,
    ) -> S3Result<S3Response<ListBucketsOutput>> {
        let key = match &req.credentials {
            Some(c) => self.auth.key(&c.access_key).await?,
            None => None,
        };
        let Some(key) = key else {
            return Err(s3_error!(AccessDenied));
        };
        let index = Arc::clone(&self.index);
        let buckets = blocking(move || index.buckets()).await?;
        let buckets = buckets
            .into_iter()
            .filter(|(name, _)| key.allows(name))
            .map(|(name, created)| Bucket {
                name: Some(name),
                creation_date: Some(timestamp(created)),
                bucket_region: None,
            })
            .collect();
        Ok(S3Response::new(ListBucketsOutput {
            buckets: Some(buckets),
            owner: Some(owner()),
            ..Default::default()
        }))
    }

    async fn list_objects_v2(
        &self,
        req: S3Request<ListObjectsV2Input>,
    ) -> S3Result<S3Response<ListObjectsV2Output>> {
        let input = req.input;
        let (max_keys, url) = list_args(input.max_keys, input.encoding_type.as_ref())?;
        let prefix = input.prefix.clone().unwrap_or_default();
        let start = list::start_of(
            &prefix,
            input.continuation_token.as_deref(),
            input.start_after.as_deref(),
        )
        .map_err(|_| s3_error!(InvalidArgument, "the continuation token is not valid"))?;
        let query = ListQuery {
            prefix,
            delimiter: input.delimiter.clone(),
            max_keys,
            start,
        };
        let page = self.list(&input.bucket, query, url).await?;
        let key_count = page.contents.len() + page.common_prefixes.len();
        Ok(S3Response::new(ListObjectsV2Output {
            name: Some(input.bucket),
            prefix: Some(encoded(input.prefix.unwrap_or_default(), url)),
            delimiter: input.delimiter.map(|d| encoded(d, url)),
            start_after: input.start_after.map(|s| encoded(s, url)),
            max_keys: Some(i32::try_from(max_keys).unwrap_or(i32::MAX)),
            key_count: Some(i32::try_from(key_count).unwrap_or(i32::MAX)),
            continuation_token: input.continuation_token,
            is_truncated: Some(page.next.is_some()),
            next_continuation_token: page.next.as_deref().map(list::token),
            contents: Some(page.contents),
            common_prefixes: Some(page.common_prefixes),
            encoding_type: input.encoding_type,
            ..Default::default()
        }))
    }

    async fn list_objects(
        &self,
        req: S3Request<ListObjectsInput>,
    ) -> S3Result<S3Response<ListObjectsOutput>> {
        let input = req.input;
        let (max_keys, url) = list_args(input.max_keys, input.encoding_type.as_ref())?;
        let prefix = input.prefix.clone().unwrap_or_default();
        let marker = input.marker.clone().unwrap_or_default();
        let query = ListQuery {
            start: list::start_after_marker(&prefix, &marker, input.delimiter.as_deref()),
            prefix,
            delimiter: input.delimiter.clone(),
            max_keys,
        };
        let page = self.list(&input.bucket, query, url).await?;
        let truncated = page.next.is_some();
        // As S3: NextMarker only with a delimiter (otherwise the last key
        // is the next marker, and clients take it themselves).
        let next_marker = (truncated && input.delimiter.is_some())
            .then_some(page.last)
            .flatten();
        Ok(S3Response::new(ListObjectsOutput {
            name: Some(input.bucket),
            prefix: Some(encoded(input.prefix.unwrap_or_default(), url)),
            delimiter: input.delimiter.map(|d| encoded(d, url)),
            marker: Some(encoded(marker, url)),
            max_keys: Some(i32::try_from(max_keys).unwrap_or(i32::MAX)),
            is_truncated: Some(truncated),
            next_marker,
            contents: Some(page.contents),
            common_prefixes: Some(page.common_prefixes),
            encoding_type: input.encoding_type,
            ..Default::default()
        }))
    }

    async fn put_object(
        &self,
        req: S3Request<PutObjectInput>,
    ) -> S3Result<S3Response<PutObjectOutput>> {
        super::objects::put(self, req.input, &req.headers, req.trailing_headers).await
    }

    async fn get_object(
        &self,
        req: S3Request<GetObjectInput>,
    ) -> S3Result<S3Response<GetObjectOutput>> {
        super::objects::get(self, req.input).await
    }

    async fn head_object(
        &self,
        req: S3Request<HeadObjectInput>,
    ) -> S3Result<S3Response<HeadObjectOutput>> {
        super::objects::head(self, req.input).await
    }

    async fn delete_object(
        &self,
        req: S3Request<DeleteObjectInput>,
    ) -> S3Result<S3Response<DeleteObjectOutput>> {
        super::objects::delete(self, req.input).await
    }

    async fn delete_objects(
        &self,
        req: S3Request<DeleteObjectsInput>,
    ) -> S3Result<S3Response<DeleteObjectsOutput>> {
        super::objects::delete_many(self, req.input).await
    }

    async fn copy_object(
        &self,
        req: S3Request<CopyObjectInput>,
    ) -> S3Result<S3Response<CopyObjectOutput>> {
        super::copy::copy(self, req.input).await
    }

    async fn create_multipart_upload(
        &self,
        req: S3Request<CreateMultipartUploadInput>,
    ) -> S3Result<S3Response<CreateMultipartUploadOutput>> {
        super::multipart::create(self, req.input).await
    }

    async fn upload_part(
        &self,
        req: S3Request<UploadPartInput>,
    ) -> S3Result<S3Response<UploadPartOutput>> {
        super::multipart::upload_part(self, req.input, &req.headers, req.trailing_headers).await
    }

    async fn upload_part_copy(
        &self,
        req: S3Request<UploadPartCopyInput>,
    ) -> S3Result<S3Response<UploadPartCopyOutput>> {
        super::multipart::upload_part_copy(self, req.input).await
    }

    async fn complete_multipart_upload(
        &self,
        req: S3Request<CompleteMultipartUploadInput>,
    ) -> S3Result<S3Response<CompleteMultipartUploadOutput>> {
        super::multipart::complete(self, req.input).await
    }

    async fn abort_multipart_upload(
        &self,
        req: S3Request<AbortMultipartUploadInput>,
    ) -> S3Result<S3Response<AbortMultipartUploadOutput>> {
        super::multipart::abort(self, req.input).await
    }

    async fn list_parts(
        &self,
        req: S3Request<ListPartsInput>,
    ) -> S3Result<S3Response<ListPartsOutput>> {
        super::multipart::list_parts(self, req.input).await
    }

    async fn list_multipart_uploads(
        &self,
        req: S3Request<ListMultipartUploadsInput>,
    ) -> S3Result<S3Response<ListMultipartUploadsOutput>> {
        super::multipart::list_uploads(self, req.input).await
    }
}

/// The one owner every bucket (and upload) has.
pub(super) fn owner() -> Owner {
    Owner {
        display_name: Some("cairn".into()),
        id: Some("cairn".into()),
    }
}

/// A listing's `max-keys` (at most [`list::MAX_KEYS`]) and whether it
/// asked for `encoding-type=url`.
pub(super) fn list_args(
    max_keys: Option<i32>,
    encoding: Option<&EncodingType>,
) -> S3Result<(usize, bool)> {
    let max_keys = match max_keys {
        None => list::MAX_KEYS,
        Some(n) => usize::try_from(n)
            .map_err(|_| s3_error!(InvalidArgument, "max-keys must not be negative"))?
            .min(list::MAX_KEYS),
    };
    let url = match encoding {
        None => false,
        Some(e) if e.as_str() == EncodingType::URL => true,
        Some(e) => {
            return Err(s3_error!(
                InvalidArgument,
                "unknown encoding-type {:?}",
                e.as_str()
            ))
        }
    };
    Ok((max_keys, url))
}

/// One page of a listing, as S3's entries.
struct Listed {
    contents: Vec<Object>,
    common_prefixes: Vec<CommonPrefix>,
    /// Where the next page starts, when there is more.
    next: Option<Vec<u8>>,
    /// The last key or common prefix on the page, encoded as they are.
    last: Option<String>,
}

impl Cairn {
    /// One page of `query` over `bucket`'s keys; keys and prefixes
    /// URL-encoded when `url`.
    async fn list(&self, bucket: &str, query: ListQuery, url: bool) -> S3Result<Listed> {
        let index = Arc::clone(&self.index);
        let bucket = bucket.to_string();
        let page = blocking(move || {
            let objects = index.objects_of(&bucket)?;
            list::page(&query, &mut |from| objects.first_from(from))
        })
        .await?;
        let contents = page
            .objects
            .into_iter()
            .map(|(key, entry)| {
                let (algorithm, kind) = ObjectChecksum::listed(entry.checksum.as_ref());
                Object {
                    checksum_algorithm: algorithm,
                    checksum_type: kind,
                    key: Some(encoded(key, url)),
                    size: Some(i64::try_from(entry.size).unwrap_or(i64::MAX)),
                    e_tag: Some(ETag::Strong(entry.etag)),
                    last_modified: Some(timestamp(entry.mtime_ms)),
                    storage_class: Some(ObjectStorageClass::from_static(
                        ObjectStorageClass::STANDARD,
                    )),
                    ..Default::default()
                }
            })
            .collect();
        let common_prefixes = page
            .prefixes
            .into_iter()
            .map(|p| CommonPrefix {
                prefix: Some(encoded(p, url)),
            })
            .collect();
        Ok(Listed {
            contents,
            common_prefixes,
            next: page.next,
            last: page.last.map(|l| encoded(l, url)),
        })
    }
}

/// `s`, URL-encoded when `url`.
pub(super) fn encoded(s: String, url: bool) -> String {
    if url {
        url_encode(&s)
    } else {
        s
    }
}

/// `s` as S3 gives keys with `encoding-type=url`: every byte but
/// unreserved characters and `/` percent-encoded.
fn url_encode(s: &str) -> String {
    use percent_encoding::{utf8_percent_encode, NON_ALPHANUMERIC};
    const KEEP: &percent_encoding::AsciiSet = &NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'_')
        .remove(b'.')
        .remove(b'~')
        .remove(b'/');
    utf8_percent_encode(s, KEEP).to_string()
}

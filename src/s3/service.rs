//! The `S3` trait over cairn: buckets (create, delete when empty, list,
//! head) and listings here; objects in `objects.rs`. Every index access
//! runs on a blocking thread.

use super::auth::KeyAuth;
use super::index::{BucketIndex, DeleteBucket};
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

/// `error` as S3 names it; anything but a missing bucket is logged and
/// answered as an internal error.
pub(super) fn s3_err(error: S3Error) -> s3s::S3Error {
    match error {
        S3Error::NoSuchBucket { name } => {
            s3_error!(NoSuchBucket, "the bucket {name:?} does not exist")
        }
        S3Error::InvalidBucketName { name } => {
            s3_error!(InvalidBucketName, "invalid bucket name {name:?}")
        }
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
        let index = Arc::clone(&self.index);
        let bucket = name.clone();
        if !blocking(move || index.writer().create_bucket(&bucket)).await? {
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
        match blocking(move || index.writer().delete_bucket(&bucket)).await? {
            DeleteBucket::Deleted => Ok(S3Response::new(DeleteBucketOutput {})),
            DeleteBucket::NoSuchBucket => Err(s3_err(S3Error::NoSuchBucket { name })),
            DeleteBucket::NotEmpty => Err(s3_error!(
                BucketNotEmpty,
                "the bucket {name:?} holds objects: delete them first"
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
        let max_keys = match input.max_keys {
            None => list::MAX_KEYS,
            Some(n) => usize::try_from(n)
                .map_err(|_| s3_error!(InvalidArgument, "max-keys must not be negative"))?
                .min(list::MAX_KEYS),
        };
        let url_encoded = match &input.encoding_type {
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
        let index = Arc::clone(&self.index);
        let bucket = input.bucket.clone();
        let page = blocking(move || {
            let objects = index.objects_of(&bucket)?;
            list::page(&query, &mut |from| objects.first_from(from))
        })
        .await?;
        let enc = |s: String| if url_encoded { url_encode(&s) } else { s };
        let key_count = page.objects.len() + page.prefixes.len();
        let contents = page
            .objects
            .into_iter()
            .map(|(key, entry)| Object {
                key: Some(enc(key)),
                size: Some(i64::try_from(entry.size).unwrap_or(i64::MAX)),
                e_tag: Some(ETag::Strong(entry.etag)),
                last_modified: Some(timestamp(entry.mtime_ms)),
                storage_class: Some(ObjectStorageClass::from_static(
                    ObjectStorageClass::STANDARD,
                )),
                ..Default::default()
            })
            .collect();
        let common_prefixes = page
            .prefixes
            .into_iter()
            .map(|p| CommonPrefix {
                prefix: Some(enc(p)),
            })
            .collect();
        Ok(S3Response::new(ListObjectsV2Output {
            name: Some(input.bucket),
            prefix: Some(enc(input.prefix.unwrap_or_default())),
            delimiter: input.delimiter.map(enc),
            start_after: input.start_after.map(enc),
            max_keys: Some(i32::try_from(max_keys).unwrap_or(i32::MAX)),
            key_count: Some(i32::try_from(key_count).unwrap_or(i32::MAX)),
            continuation_token: input.continuation_token,
            is_truncated: Some(page.next.is_some()),
            next_continuation_token: page.next.as_deref().map(list::token),
            contents: Some(contents),
            common_prefixes: Some(common_prefixes),
            encoding_type: input.encoding_type,
            ..Default::default()
        }))
    }

    async fn put_object(
        &self,
        req: S3Request<PutObjectInput>,
    ) -> S3Result<S3Response<PutObjectOutput>> {
        super::objects::put(self, req.input).await
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
}

/// The one owner every bucket has.
fn owner() -> Owner {
    Owner {
        display_name: Some("cairn".into()),
        id: Some("cairn".into()),
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

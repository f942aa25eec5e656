//! Who may call the endpoint: s3s checks each request's AWS Signature V4
//! (headers or presigned URL) against the secret [`KeyAuth`] finds for its
//! access key ID, then [`KeyAuth`] as `S3Access` refuses keys scoped to
//! other buckets (`AccessDenied`), the source bucket of a CopyObject or
//! UploadPartCopy included, and unsigned requests but those that read a
//! public-read bucket ([`ANONYMOUS_READS`]).

use super::index::BucketIndex;
use super::keys::{AccessKey, AccessKeys};
use s3s::access::{S3Access, S3AccessContext};
use s3s::auth::Credentials;
use s3s::auth::{S3Auth, SecretKey};
use s3s::dto::{CopyObjectInput, CopySource, UploadPartCopyInput};
use s3s::{s3_error, S3Request, S3Result};
use std::sync::Arc;

/// What an unsigned request may do to a public-read bucket: read its
/// objects and list them.
pub const ANONYMOUS_READS: &[&str] = &[
    "GetObject",
    "HeadObject",
    "ListObjects",
    "ListObjectsV2",
    "HeadBucket",
];

/// The node's access keys, as s3s asks for them, and the bucket index
/// that says which buckets are public-read.
#[derive(Clone)]
pub struct KeyAuth {
    /// The access keys.
    pub keys: Arc<AccessKeys>,
    /// The buckets.
    pub index: Arc<BucketIndex>,
}

impl KeyAuth {
    /// The key `id` (read on a blocking thread: keys are files).
    pub async fn key(&self, id: &str) -> S3Result<Option<AccessKey>> {
        let keys = Arc::clone(&self.keys);
        let id = id.to_string();
        tokio::task::spawn_blocking(move || keys.get(&id))
            .await
            .map_err(|e| s3_error!(InternalError, "reading the access key: {e}"))?
            .map_err(|e| {
                tracing::error!("S3 access keys: {e}");
                s3_error!(InternalError, "the access keys cannot be read")
            })
    }

    /// `AccessDenied` unless the request is signed by a key that may read
    /// the copy `source`.
    async fn reaches(
        &self,
        credentials: Option<&Credentials>,
        source: &CopySource,
    ) -> S3Result<()> {
        let Some(credentials) = credentials else {
            return Err(s3_error!(AccessDenied, "Signature is required"));
        };
        match source {
            CopySource::Bucket { bucket, .. } => self.allows(&credentials.access_key, bucket).await,
            // Refused by the copy itself (NotImplemented).
            _ => Ok(()),
        }
    }

    /// An unsigned request: allowed only to read a public-read bucket.
    async fn anonymous(&self, op: &str, bucket: Option<&str>) -> S3Result<()> {
        let denied = || s3_error!(AccessDenied, "Signature is required");
        let Some(bucket) = bucket.filter(|_| ANONYMOUS_READS.contains(&op)) else {
            return Err(denied());
        };
        let index = Arc::clone(&self.index);
        let name = bucket.to_string();
        let public = tokio::task::spawn_blocking(move || index.settings(&name))
            .await
            .map_err(|e| s3_error!(InternalError, "reading the bucket's settings: {e}"))?
            .map_err(|e| {
                tracing::error!("S3 bucket settings: {e}");
                s3_error!(InternalError, "the bucket's settings cannot be read")
            })?
            .public_read;
        if public {
            Ok(())
        } else {
            Err(denied())
        }
    }

    /// `AccessDenied` unless the key `id` may use `bucket`.
    async fn allows(&self, id: &str, bucket: &str) -> S3Result<()> {
        match self.key(id).await? {
            Some(key) if key.allows(bucket) => Ok(()),
            _ => Err(s3_error!(
                AccessDenied,
                "this access key may not use bucket {bucket:?}"
            )),
        }
    }
}

#[async_trait::async_trait]
impl S3Auth for KeyAuth {
    async fn get_secret_key(&self, access_key: &str) -> S3Result<SecretKey> {
        match self.key(access_key).await? {
            Some(key) => Ok(SecretKey::from(key.secret)),
            None => Err(s3_error!(InvalidAccessKeyId)),
        }
    }
}

/// Whether a request's query names an object version (`versionId`).
fn names_a_version(query: Option<&str>) -> bool {
    query.is_some_and(|q| {
        q.split('&')
            .any(|pair| pair.split('=').next() == Some("versionId"))
    })
}

#[async_trait::async_trait]
impl S3Access for KeyAuth {
    async fn check(&self, cx: &mut S3AccessContext<'_>) -> S3Result<()> {
        let Some(credentials) = cx.credentials() else {
            // A version by its ID is S3's `s3:GetObjectVersion`, which a
            // public-read bucket does not grant: an older version, or one a
            // delete marker hides, is not for anyone.
            if names_a_version(cx.uri().query()) {
                return Err(s3_error!(
                    AccessDenied,
                    "reading an object version by its ID needs a signature"
                ));
            }
            let op = cx.s3_op().name().to_string();
            let bucket = cx.s3_path().get_bucket_name().map(str::to_string);
            return self.anonymous(&op, bucket.as_deref()).await;
        };
        let Some(bucket) = cx.s3_path().get_bucket_name() else {
            // ListBuckets: each key sees the buckets it may use.
            return Ok(());
        };
        let id = credentials.access_key.clone();
        let bucket = bucket.to_string();
        self.allows(&id, &bucket).await
    }

    /// A copy reads its source: the key must reach that bucket too.
    async fn copy_object(&self, req: &mut S3Request<CopyObjectInput>) -> S3Result<()> {
        self.reaches(req.credentials.as_ref(), &req.input.copy_source)
            .await
    }

    /// So does a part copy.
    async fn upload_part_copy(&self, req: &mut S3Request<UploadPartCopyInput>) -> S3Result<()> {
        self.reaches(req.credentials.as_ref(), &req.input.copy_source)
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::names_a_version;

    #[test]
    fn a_version_id_anywhere_in_the_query_is_seen() {
        assert!(names_a_version(Some("versionId=null")));
        assert!(names_a_version(Some("x=1&versionId=3")));
        assert!(names_a_version(Some("versionId")));
        assert!(!names_a_version(Some("versions")));
        assert!(!names_a_version(Some("x=versionId")));
        assert!(!names_a_version(None));
    }
}

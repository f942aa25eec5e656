//! Who may call the endpoint: s3s checks each request's AWS Signature V4
//! (headers or presigned URL) against the secret [`KeyAuth`] finds for its
//! access key ID, then [`KeyAuth`] as `S3Access` refuses unsigned requests
//! and keys scoped to other buckets (`AccessDenied`).

use super::keys::{AccessKey, AccessKeys};
use s3s::access::{S3Access, S3AccessContext};
use s3s::auth::{S3Auth, SecretKey};
use s3s::{s3_error, S3Result};
use std::sync::Arc;

/// The node's access keys, as s3s asks for them.
#[derive(Clone)]
pub struct KeyAuth(pub Arc<AccessKeys>);

impl KeyAuth {
    /// The key `id` (read on a blocking thread: keys are files).
    pub async fn key(&self, id: &str) -> S3Result<Option<AccessKey>> {
        let keys = Arc::clone(&self.0);
        let id = id.to_string();
        tokio::task::spawn_blocking(move || keys.get(&id))
            .await
            .map_err(|e| s3_error!(InternalError, "reading the access key: {e}"))?
            .map_err(|e| {
                tracing::error!("S3 access keys: {e}");
                s3_error!(InternalError, "the access keys cannot be read")
            })
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

#[async_trait::async_trait]
impl S3Access for KeyAuth {
    async fn check(&self, cx: &mut S3AccessContext<'_>) -> S3Result<()> {
        let Some(credentials) = cx.credentials() else {
            return Err(s3_error!(AccessDenied, "Signature is required"));
        };
        let Some(bucket) = cx.s3_path().get_bucket_name() else {
            // ListBuckets: each key sees the buckets it may use.
            return Ok(());
        };
        let id = credentials.access_key.clone();
        let bucket = bucket.to_string();
        match self.key(&id).await? {
            Some(key) if key.allows(&bucket) => Ok(()),
            _ => Err(s3_error!(
                AccessDenied,
                "this access key may not use bucket {bucket:?}"
            )),
        }
    }
}

//! The S3 endpoint's buckets: `s3/ls`, `s3/bucket/create` (with a
//! replication factor, public-read), `s3/bucket/public-read`,
//! `s3/bucket/publish` and `s3/bucket/mount` (cairn's own commands, for
//! `cairn s3 ...` while a daemon holds the repo).

use super::{bad_request, internal, node_err, ApiError, ApiState, Params};
use crate::s3::admin::{BucketLine, Listed, Mounted, Published};
use crate::s3::{BucketSettings, S3Endpoint, S3Error};
use axum::extract::{RawQuery, State};
use axum::Json;

fn endpoint(s: &ApiState) -> Result<&S3Endpoint, ApiError> {
    s.s3.as_ref()
        .ok_or_else(|| bad_request("this daemon serves no S3 endpoint ([s3] listen, --s3)"))
}

fn s3_err(e: S3Error) -> ApiError {
    match e {
        S3Error::Node(e) => node_err(e),
        e @ (S3Error::NoSuchBucket { .. }
        | S3Error::InvalidBucketName { .. }
        | S3Error::ReadOnlyBucket { .. }
        | S3Error::BucketExists { .. }
        | S3Error::NotResolved { .. }
        | S3Error::BadReplication { .. }
        | S3Error::BadEntry { what: "mount", .. }) => bad_request(e),
        other => internal(other),
    }
}

pub(super) async fn ls(
    State(s): State<ApiState>,
    RawQuery(q): RawQuery,
) -> Result<Json<Listed>, ApiError> {
    let q = Params::parse(q);
    let arg = q.get("arg").map(str::to_string);
    endpoint(&s)?.ls(arg).await.map(Json).map_err(s3_err)
}

pub(super) async fn bucket_create(
    State(s): State<ApiState>,
    RawQuery(q): RawQuery,
) -> Result<Json<BucketLine>, ApiError> {
    let q = Params::parse(q);
    let bucket = q.arg()?.to_string();
    let settings = BucketSettings {
        replication: q.num::<u8>("replication")?,
        public_read: q.bool("public-read", false)?,
    };
    endpoint(&s)?
        .create_bucket(bucket, settings)
        .await
        .map(Json)
        .map_err(s3_err)
}

pub(super) async fn bucket_public_read(
    State(s): State<ApiState>,
    RawQuery(q): RawQuery,
) -> Result<Json<BucketLine>, ApiError> {
    let q = Params::parse(q);
    let [bucket, setting] = q.all("arg")[..] else {
        return Err(bad_request("expected two arguments: BUCKET on|off"));
    };
    let on = on_off(setting).map_err(bad_request)?;
    endpoint(&s)?
        .set_public_read(bucket.to_string(), on)
        .await
        .map(Json)
        .map_err(s3_err)
}

/// `on` or `off` as a bool.
fn on_off(setting: &str) -> Result<bool, String> {
    match setting {
        "on" => Ok(true),
        "off" => Ok(false),
        other => Err(format!("expected on or off, not {other:?}")),
    }
}

pub(super) async fn bucket_publish(
    State(s): State<ApiState>,
    RawQuery(q): RawQuery,
) -> Result<Json<Published>, ApiError> {
    let q = Params::parse(q);
    let bucket = q.arg()?;
    let key = q.get("key").unwrap_or("self");
    let (name, root) = endpoint(&s)?.publish(bucket, key).await.map_err(s3_err)?;
    Ok(Json(Published {
        name,
        root: root.to_string(),
    }))
}

pub(super) async fn bucket_mount(
    State(s): State<ApiState>,
    RawQuery(q): RawQuery,
) -> Result<Json<Mounted>, ApiError> {
    let q = Params::parse(q);
    let [bucket, name] = q.all("arg")[..] else {
        return Err(bad_request("expected two arguments: BUCKET IPNS-NAME"));
    };
    let root = endpoint(&s)?.mount(bucket, name).await.map_err(s3_err)?;
    Ok(Json(Mounted {
        bucket: bucket.to_string(),
        name: name.to_string(),
        root: root.map(|r| r.to_string()),
    }))
}

//! The S3-compatible endpoint (`[s3] listen`): buckets of objects whose
//! bodies are UnixFS DAGs in the node's store, so every object can also be
//! fetched by its CID through the gateway or from any peer.
//!
//! The protocol (routing, XML, AWS Signature V4 in headers and presigned
//! URLs, error bodies) is the `s3s` crate's; cairn supplies the storage
//! (`service.rs` for buckets and listings, `objects.rs` for objects,
//! `copy.rs` for CopyObject),
//! the keys (`keys.rs`, checked in `auth.rs`) and the bucket index
//! (`index.rs`, paged by `list.rs`). `body.rs` moves bodies between the
//! async server and the blocking importer and reader.
//!
//! - Every request is signed with an access key (`cairn s3 key create`);
//!   a key made for some buckets gets `AccessDenied` on the others.
//! - An object PUT is imported with the node's `[import]` options and
//!   pinned; it becomes visible only once its blocks, its pin and the index
//!   entry are on disk. PUTs that arrive together are committed together
//!   (`index/group.rs`: one flush, one pin write, one root move for the
//!   group). Its ETag is the MD5 of its body; its CID comes back
//!   in the `x-cairn-cid` header of PUT, GET and HEAD.
//! - An object's pin is removed with the last key naming its CID, unless
//!   the CID was pinned before the endpoint stored it. CopyObject adds a
//!   key naming the source's CID: no bytes are copied.
//! - Conditional requests (`conditions.rs`): GET and HEAD with
//!   `If-Match`/`If-None-Match`/`If-(Un)Modified-Since`, copies with
//!   `x-amz-copy-source-if-*`, PUT with `If-None-Match: *` or `If-Match`,
//!   decided in the index write itself.
//! - Every committed state of a bucket is a content-addressed tree of
//!   DAG-CBOR nodes (`tree.rs`) whose root moves with each write
//!   (`roots.rs`); a bucket can be published under an IPNS name and
//!   mounted read-only on another node (`share.rs`); `admin.rs` answers
//!   `cairn s3 ls` and `cairn s3 bucket create`.
//! - A bucket made with a replication factor (`index/settings.rs`) has
//!   every object and tree root kept at it by the replicator
//!   (`replicas.rs`); a public-read one answers anonymous GET, HEAD and
//!   listings (`auth.rs`, `acl.rs`).
//! - Versioning (`versioning.rs`, kept by `index/versions.rs`): a bucket
//!   with versioning enabled keeps every version a write or delete
//!   replaces (delete markers too), each pinned until deleted by ID.
//! - Multipart uploads (`multipart.rs`): each part is imported as a PUT
//!   body is and pinned while its upload is open; completing links the
//!   parts' leaves into the object's DAG without copying a byte. Uploads
//!   left open longer than `[s3] multipart_expiry` are aborted by
//!   [`S3Endpoint::expire_uploads`].

mod acl;
pub mod admin;
mod auth;
mod body;
mod checksum;
mod conditions;
mod copy;
mod error;
mod index;
pub mod keys;
mod list;
mod multipart;
mod objects;
mod replicas;
mod roots;
mod service;
pub mod share;
pub mod tree;
mod versioning;

pub use error::S3Error;
pub use index::{BucketIndex, BucketSettings, ObjectEntry};
pub use keys::{AccessKey, AccessKeys};

use crate::block::Cid;
use crate::node::online::OnlineNode;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use std::sync::Arc;
use std::time::Duration;

/// The response header naming an object's CID.
pub const CID_HEADER: &str = "x-cairn-cid";

/// Makes the bucket index of `node`'s repo, if it has one, a
/// [`PinHolder`](crate::node::PinHolder) of `node` where the endpoint is
/// not running (the CLI without a daemon, a daemon with `[s3]` off): `pin
/// rm` then never unpins what a bucket still names.
pub fn hold_pins_offline(node: &crate::node::Node) -> Result<(), crate::node::NodeError> {
    let Some(repo) = node.repo_path() else {
        return Ok(());
    };
    if !repo.join("s3").join("index").is_dir() {
        return Ok(());
    }
    let index = index::BucketIndex::open(Some(repo), Arc::clone(node.store()))
        .map_err(|e| crate::node::NodeError::PinHolder(Box::new(e)))?;
    node.add_pin_holder(Arc::new(index));
    Ok(())
}

/// The endpoint's state: the node, its access keys and bucket index.
#[derive(Clone)]
pub struct S3Endpoint {
    online: Arc<OnlineNode>,
    keys: Arc<AccessKeys>,
    index: Arc<index::BucketIndex>,
}

impl S3Endpoint {
    /// Opens the endpoint of `online`'s node: its repo's keys and bucket
    /// index, or in-memory ones for a node without a repo.
    pub fn open(online: Arc<OnlineNode>) -> Result<S3Endpoint, S3Error> {
        let repo = online.node().repo_path().map(std::path::Path::to_path_buf);
        let keys = match &repo {
            Some(r) => AccessKeys::for_repo(r),
            None => AccessKeys::in_memory(),
        };
        let store = Arc::clone(online.node().store());
        let index = Arc::new(index::BucketIndex::open(repo.as_deref(), store)?);
        let node = Arc::clone(online.node());
        let unpinned = index.reconcile(&mut |cid| {
            // A pin the user claimed since stays theirs (see `drop_pins`).
            if crate::node::user_claimed(&**node.store(), cid) {
                return Ok(());
            }
            // The crash may have come before the pin was made.
            match node.store().unpin(cid) {
                Ok(_) | Err(crate::store::StoreError::NotPinned { .. }) => Ok(()),
                Err(e) => Err(S3Error::Node(e.into())),
            }
        })?;
        if !unpinned.is_empty() {
            tracing::info!(
                "S3: removed {} pins of writes a crash interrupted",
                unpinned.len()
            );
        }
        node.add_pin_holder(Arc::clone(&index) as Arc<dyn crate::node::PinHolder>);
        let source_of = Arc::clone(&online);
        index.set_remote_source(Arc::new(move |root: Cid| {
            let source: Arc<dyn crate::dag::BlockSource> = source_of.source(Some(root));
            source
        }));
        replicas::start(&online, &index);
        let swarm = &online.net().swarm;
        swarm.spawn_task(share::run_publisher(
            Arc::clone(&online),
            Arc::clone(&index),
        ));
        swarm.spawn_task(share::run_mount_follower(
            Arc::clone(&online),
            Arc::clone(&index),
        ));
        Ok(S3Endpoint {
            online,
            keys: Arc::new(keys),
            index,
        })
    }

    /// The bucket index (buckets, their roots, mounts and publications).
    pub fn index(&self) -> &Arc<BucketIndex> {
        &self.index
    }

    /// `cairn s3 ls` on the running endpoint.
    pub async fn ls(&self, arg: Option<String>) -> Result<admin::Listed, S3Error> {
        let index = Arc::clone(&self.index);
        share::blocking(move || admin::ls(&index, arg.as_deref())).await
    }

    /// Publishes `bucket` under `key`'s IPNS name (and again after each
    /// write from now on); returns the name and the root published.
    pub async fn publish(&self, bucket: &str, key: &str) -> Result<(String, Cid), S3Error> {
        share::publish(&self.online, &self.index, bucket, key).await
    }

    /// Mounts the bucket published under `name` as `bucket`, read-only;
    /// returns the root it resolved to, if it did already.
    pub async fn mount(&self, bucket: &str, name: &str) -> Result<Option<Cid>, S3Error> {
        share::mount(&self.online, &self.index, bucket, name).await
    }

    /// `cairn s3 bucket create`: a local bucket with `settings`; its line
    /// in `cairn s3 ls`.
    pub async fn create_bucket(
        &self,
        name: String,
        settings: BucketSettings,
    ) -> Result<admin::BucketLine, S3Error> {
        // GC waits: the bucket's empty tree is stored before its pin.
        let _gc = self.online.gc_lock().read().await;
        let index = Arc::clone(&self.index);
        share::blocking(move || {
            admin::create_bucket(&index, &name, &settings)?;
            admin::bucket_line(&index, &name)
        })
        .await
    }

    /// `cairn s3 bucket public-read NAME on|off`; the bucket's line in
    /// `cairn s3 ls`.
    pub async fn set_public_read(
        &self,
        name: String,
        on: bool,
    ) -> Result<admin::BucketLine, S3Error> {
        let index = Arc::clone(&self.index);
        share::blocking(move || {
            index.writer().set_public_read(&name, on)?;
            admin::bucket_line(&index, &name)
        })
        .await
    }

    /// The access keys requests are checked against.
    pub fn keys(&self) -> &Arc<AccessKeys> {
        &self.keys
    }

    /// Aborts the multipart uploads left open longer than `[s3]
    /// multipart_expiry` now, then every quarter of that (at least every
    /// second, at most every hour), until `stop` is cancelled.
    pub async fn expire_uploads(self, stop: tokio_util::sync::CancellationToken) {
        let expiry = self.online.node().config().s3.multipart_expiry;
        let every = (expiry / 4).clamp(Duration::from_secs(1), Duration::from_secs(3600));
        loop {
            let index = Arc::clone(&self.index);
            match tokio::task::spawn_blocking(move || multipart::expire(&index, expiry)).await {
                Ok(Ok(0)) => {}
                Ok(Ok(n)) => {
                    tracing::info!("S3: aborted {n} multipart uploads open longer than {expiry:?}")
                }
                Ok(Err(e)) => tracing::warn!("S3: expiring multipart uploads: {e}"),
                Err(e) => tracing::warn!("S3: expiring multipart uploads: {e}"),
            }
            tokio::select! {
                () = stop.cancelled() => return,
                () = tokio::time::sleep(every) => {}
            }
        }
    }

    /// The endpoint's routes, for [`crate::http::serve`].
    pub fn router(&self) -> axum::Router {
        let auth = auth::KeyAuth {
            keys: Arc::clone(&self.keys),
            index: Arc::clone(&self.index),
        };
        let mut builder = s3s::service::S3ServiceBuilder::new(service::Cairn {
            online: Arc::clone(&self.online),
            index: Arc::clone(&self.index),
            auth: auth.clone(),
        });
        builder.set_auth(auth.clone());
        builder.set_access(auth);
        let service = builder.build();
        let counter = self.online.request_counter();
        axum::Router::new()
            .fallback(handle)
            .layer(axum::middleware::from_fn_with_state(
                (
                    counter,
                    crate::http::Surface {
                        name: "s3",
                        route_of: read_route,
                    },
                ),
                crate::http::count_requests,
            ))
            .with_state(service)
    }
}

/// Sub-resources whose requests are not object or listing reads (ACLs,
/// tagging, uploads, bucket settings).
const SUBRESOURCES: &[&str] = &[
    "acl",
    "attributes",
    "cors",
    "encryption",
    "legal-hold",
    "lifecycle",
    "location",
    "logging",
    "notification",
    "object-lock",
    "ownershipControls",
    "policy",
    "policyStatus",
    "publicAccessBlock",
    "replication",
    "restore",
    "retention",
    "select",
    "tagging",
    "torrent",
    "uploadId",
    "uploads",
    "versioning",
    "website",
];

/// The read route of an S3 request (path-style, the only one the endpoint
/// takes), for its latency histogram: `GetObject`, `HeadObject`,
/// `ListObjects`, `ListObjectsV2`, `ListObjectVersions`; anything else
/// (writes, sub-resources, bucket settings) none.
fn read_route(request: &axum::extract::Request) -> Option<&'static str> {
    let uri = request.uri();
    let (bucket, key) = match uri.path().trim_start_matches('/').split_once('/') {
        Some((bucket, key)) => (bucket, key),
        None => (uri.path().trim_start_matches('/'), ""),
    };
    if bucket.is_empty() {
        return None;
    }
    let mut v2 = false;
    let mut versions = false;
    for (name, value) in form_urlencoded::parse(uri.query().unwrap_or("").as_bytes()) {
        if SUBRESOURCES.contains(&name.as_ref()) {
            return None;
        }
        v2 |= name == "list-type" && value == "2";
        versions |= name == "versions";
    }
    let method = request.method();
    match (key.is_empty(), method) {
        (false, &axum::http::Method::GET) => Some("GetObject"),
        (false, &axum::http::Method::HEAD) => Some("HeadObject"),
        (true, &axum::http::Method::GET) if versions => Some("ListObjectVersions"),
        (true, &axum::http::Method::GET) if v2 => Some("ListObjectsV2"),
        (true, &axum::http::Method::GET) => Some("ListObjects"),
        _ => None,
    }
}

/// Every request goes to s3s, which answers S3's errors itself; only a
/// failure outside S3's error model is a bare 500.
async fn handle(
    State(service): State<s3s::service::S3Service>,
    request: axum::extract::Request,
) -> Response {
    let request = request.map(s3s::Body::http_body_unsync);
    match service.call(request).await {
        // (An error answer to a request with a body closes the connection:
        // `http::serve` does that for every surface.)
        Ok(response) => response.map(axum::body::Body::new),
        Err(e) => {
            let e: Box<dyn std::error::Error + Send + Sync> = e.into();
            tracing::warn!("S3 request failed: {e}");
            (axum::http::StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::read_route;

    fn route(method: &str, uri: &str) -> Option<&'static str> {
        let request = axum::http::Request::builder()
            .method(method)
            .uri(uri)
            .body(axum::body::Body::empty())
            .expect("request");
        read_route(&request)
    }

    #[test]
    fn reads_are_named_by_operation_and_nothing_else_is() {
        assert_eq!(route("GET", "/b/a/key.bin"), Some("GetObject"));
        assert_eq!(
            route("GET", "/b/k?versionId=x&partNumber=1&x-id=GetObject"),
            Some("GetObject")
        );
        assert_eq!(route("HEAD", "/b/k"), Some("HeadObject"));
        assert_eq!(route("GET", "/b"), Some("ListObjects"));
        assert_eq!(
            route("GET", "/b/?prefix=a%2F&delimiter=%2F"),
            Some("ListObjects")
        );
        assert_eq!(
            route("GET", "/b?list-type=2&start-after=k"),
            Some("ListObjectsV2")
        );
        assert_eq!(route("GET", "/b?versions"), Some("ListObjectVersions"));
        for (method, uri) in [
            ("PUT", "/b/k"),
            ("DELETE", "/b/k"),
            ("GET", "/b/k?tagging"),
            ("GET", "/b/k?uploadId=1"),
            ("GET", "/b?location"),
            ("GET", "/b?uploads"),
            ("GET", "/"),
            ("HEAD", "/b"),
            ("POST", "/b?delete"),
        ] {
            assert_eq!(route(method, uri), None, "{method} {uri}");
        }
    }
}

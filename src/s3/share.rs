//! Buckets on the network. A published bucket's root goes out under an
//! IPNS name (`cairn s3 bucket publish NAME [--key KEY]`); while a daemon
//! runs, each committed write republishes it, [`PUBLISH_DEBOUNCE`] after
//! the last one. A mounted bucket (`cairn s3 bucket mount NAME IPNS-NAME`)
//! is another node's published bucket, served read-only: its name is
//! resolved every [`MOUNT_REFRESH`] and listings and reads follow the root
//! it names, fetching tree nodes and bodies through the node's block
//! source.
//!
//! Index trees: `published` (bucket → [`Published`]) and `mounts`
//! (bucket → [`Mount`]), JSON values.

use super::index::{failed, BucketIndex};
use super::tree::Tree;
use super::S3Error;
use crate::block::Cid;
use crate::dag::BlockSource;
use crate::names::ipns::{PublishOptions, ResolveOptions};
use crate::node::online::OnlineNode;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::Duration;

/// How long after the last write a published bucket's root is published.
pub const PUBLISH_DEBOUNCE: Duration = Duration::from_secs(1);

/// How often a mounted bucket's name is resolved again.
pub const MOUNT_REFRESH: Duration = Duration::from_secs(3);

/// A published bucket.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Published {
    /// The key whose name it is published under (`self`: the node's).
    pub key: String,
    /// The root last published, if any yet.
    pub root: Option<String>,
}

/// A bucket mounted from another node.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mount {
    /// The IPNS name it follows (`/ipns/...` or a bare name).
    pub name: String,
    /// The root the name last resolved to, if it has yet.
    pub root: Option<String>,
    /// When it was mounted, in ms since the Unix epoch.
    pub since_ms: u64,
}

impl Mount {
    /// The root it serves now.
    pub fn root(&self) -> Result<Option<Cid>, S3Error> {
        self.root.as_deref().map(parse_root).transpose()
    }
}

fn parse_root(text: &str) -> Result<Cid, S3Error> {
    let cid = text.trim_start_matches("/ipfs/");
    crate::block::parse_cid(cid).map_err(|e| S3Error::BadEntry {
        what: "bucket root",
        why: format!("{text:?}: {e}"),
    })
}

/// Makes the block source a mounted bucket under `root` is read from.
pub type RemoteSource = Arc<dyn Fn(Cid) -> Arc<dyn BlockSource> + Send + Sync>;

fn json<T: Serialize>(value: &T) -> Vec<u8> {
    // Structs of strings and numbers always serialize.
    serde_json::to_vec(value).unwrap_or_default()
}

fn unjson<T: for<'de> Deserialize<'de>>(what: &'static str, v: &[u8]) -> Result<T, S3Error> {
    serde_json::from_slice(v).map_err(|e| S3Error::BadEntry {
        what,
        why: e.to_string(),
    })
}

impl BucketIndex {
    fn shared(&self, name: &str) -> Result<sled::Tree, S3Error> {
        self.db().open_tree(name).map_err(failed("opening"))
    }

    /// Publishes `bucket` under `key`'s name from now on; returns its root.
    pub fn set_published(&self, bucket: &str, key: &str) -> Result<Cid, S3Error> {
        let root = self.root(bucket)?.ok_or_else(|| S3Error::NoSuchBucket {
            name: bucket.to_string(),
        })?;
        if self.mount(bucket)?.is_some() {
            return Err(S3Error::ReadOnlyBucket {
                name: bucket.to_string(),
            });
        }
        let entry = Published {
            key: key.to_string(),
            root: None,
        };
        self.shared("published")?
            .insert(bucket.as_bytes(), json(&entry))
            .map_err(failed("publishing a bucket"))?;
        self.flush()?;
        Ok(root)
    }

    /// Notes that `bucket`'s `root` went out.
    pub fn published_root(&self, bucket: &str, root: &Cid) -> Result<(), S3Error> {
        let tree = self.shared("published")?;
        let Some(v) = tree.get(bucket.as_bytes()).map_err(failed("reading"))? else {
            return Ok(());
        };
        let mut entry: Published = unjson("published bucket", &v)?;
        entry.root = Some(root.to_string());
        tree.insert(bucket.as_bytes(), json(&entry))
            .map_err(failed("publishing a bucket"))?;
        Ok(())
    }

    /// The published buckets.
    pub fn published(&self) -> Result<Vec<(String, Published)>, S3Error> {
        self.shared("published")?
            .iter()
            .map(|kv| {
                let (k, v) = kv.map_err(failed("listing published buckets"))?;
                let name = String::from_utf8_lossy(&k).into_owned();
                Ok((name, unjson("published bucket", &v)?))
            })
            .collect()
    }

    /// Mounts the bucket `name` publishes as `bucket` (read-only); a local
    /// bucket of that name stays and is refused.
    pub fn set_mount(&self, bucket: &str, name: &str) -> Result<(), S3Error> {
        if !s3s::path::check_bucket_name(bucket) {
            return Err(S3Error::InvalidBucketName {
                name: bucket.to_string(),
            });
        }
        if self.local_bucket(bucket)?.is_some() {
            return Err(S3Error::BadEntry {
                what: "mount",
                why: format!("a bucket named {bucket:?} exists here already"),
            });
        }
        let mount = Mount {
            name: name.to_string(),
            root: None,
            since_ms: super::index::now_ms(),
        };
        self.shared("mounts")?
            .insert(bucket.as_bytes(), json(&mount))
            .map_err(failed("mounting a bucket"))?;
        self.flush()
    }

    /// Sets the root a mounted bucket serves.
    pub fn set_mount_root(&self, bucket: &str, root: &Cid) -> Result<(), S3Error> {
        let Some(mut mount) = self.mount(bucket)? else {
            return Ok(());
        };
        mount.root = Some(root.to_string());
        self.shared("mounts")?
            .insert(bucket.as_bytes(), json(&mount))
            .map_err(failed("mounting a bucket"))?;
        self.flush()
    }

    /// Whether `bucket` is a mount (and no local bucket).
    pub fn is_mounted(&self, bucket: &str) -> Result<bool, S3Error> {
        Ok(self.local_bucket(bucket)?.is_none() && self.mount(bucket)?.is_some())
    }

    /// The mount named `bucket`, if any.
    pub fn mount(&self, bucket: &str) -> Result<Option<Mount>, S3Error> {
        let v = self
            .shared("mounts")?
            .get(bucket.as_bytes())
            .map_err(failed("reading a mount"))?;
        v.map(|v| unjson("mount", &v)).transpose()
    }

    /// Where mounted buckets are read from: blocks under `root` from the
    /// network (a daemon's endpoint sets it; without, the local store).
    pub fn set_remote_source(&self, source: RemoteSource) {
        *self.remote.lock().unwrap_or_else(|p| p.into_inner()) = Some(source);
    }

    /// The tree of the mounted `bucket` and its root, if it is one.
    pub(super) fn mounted(&self, bucket: &str) -> Result<Option<(Tree, Cid)>, S3Error> {
        if self.local_bucket(bucket)?.is_some() {
            return Ok(None);
        }
        let Some(mount) = self.mount(bucket)? else {
            return Ok(None);
        };
        let root = mount.root()?.ok_or_else(|| S3Error::NotResolved {
            bucket: bucket.to_string(),
            name: mount.name.clone(),
        })?;
        let remote = self
            .remote
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let tree = match remote {
            Some(source) => Tree::new(source(root)),
            None => self.local_tree(),
        };
        Ok(Some((tree, root)))
    }

    /// Every mounted bucket, by name.
    pub fn mounts(&self) -> Result<Vec<(String, Mount)>, S3Error> {
        self.shared("mounts")?
            .iter()
            .map(|kv| {
                let (k, v) = kv.map_err(failed("listing mounts"))?;
                Ok((
                    String::from_utf8_lossy(&k).into_owned(),
                    unjson("mount", &v)?,
                ))
            })
            .collect()
    }
}

/// Runs `f` on a blocking thread.
pub(super) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, S3Error> + Send + 'static,
) -> Result<T, S3Error> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| S3Error::BadEntry {
            what: "worker thread",
            why: e.to_string(),
        })?
}

/// Publishes `bucket`'s current root under its key's name; returns the
/// name and the root.
pub async fn publish(
    online: &OnlineNode,
    index: &Arc<BucketIndex>,
    bucket: &str,
    key: &str,
) -> Result<(String, Cid), S3Error> {
    let (i, b, k) = (Arc::clone(index), bucket.to_string(), key.to_string());
    let root = blocking(move || i.set_published(&b, &k)).await?;
    let opts = PublishOptions {
        key: Some(key.to_string()),
        ..Default::default()
    };
    let (name, _) = online
        .name_publish(&format!("/ipfs/{root}"), opts, true)
        .await?;
    let (i, b) = (Arc::clone(index), bucket.to_string());
    blocking(move || i.published_root(&b, &root)).await?;
    Ok((crate::names::keystore::ipns_name(&name), root))
}

/// Publishes every published bucket whose root moved since it last went
/// out.
async fn publish_moved(online: &OnlineNode, index: &Arc<BucketIndex>) -> Result<(), S3Error> {
    let i = Arc::clone(index);
    let moved = blocking(move || {
        let mut moved = Vec::new();
        for (bucket, p) in i.published()? {
            let root = i.root(&bucket)?.map(|r| r.to_string());
            if root.is_some() && root != p.root {
                moved.push((bucket, p.key));
            }
        }
        Ok(moved)
    })
    .await?;
    for (bucket, key) in moved {
        let (name, root) = publish(online, index, &bucket, &key).await?;
        tracing::info!("S3: bucket {bucket} republished as /ipns/{name}: {root}");
    }
    Ok(())
}

/// The daemon's publisher: publishes moved roots at start, then
/// [`PUBLISH_DEBOUNCE`] after each burst of writes.
pub async fn run_publisher(online: Arc<OnlineNode>, index: Arc<BucketIndex>) {
    let mut changed = index.subscribe();
    loop {
        if let Err(e) = publish_moved(&online, &index).await {
            tracing::warn!("S3: publishing buckets: {e}");
        }
        if changed.changed().await.is_err() {
            return;
        }
        // Quiet for the debounce time: each write starts it again.
        while let Ok(Ok(())) = tokio::time::timeout(PUBLISH_DEBOUNCE, changed.changed()).await {}
    }
}

/// Resolves `mount`'s name to the root it names now.
async fn resolve(online: &OnlineNode, mount: &Mount) -> Result<Cid, S3Error> {
    let opts = ResolveOptions {
        recursive: true,
        nocache: true,
    };
    let path = online.name_resolve(&mount.name, opts).await?;
    parse_root(
        path.split('/')
            .take(3)
            .collect::<Vec<_>>()
            .join("/")
            .as_str(),
    )
}

/// The daemon's mount follower: every [`MOUNT_REFRESH`], each mounted
/// bucket serves the root its name resolves to.
pub async fn run_mount_follower(online: Arc<OnlineNode>, index: Arc<BucketIndex>) {
    let mut tick = tokio::time::interval(MOUNT_REFRESH);
    loop {
        tick.tick().await;
        let i = Arc::clone(&index);
        let mounts = match blocking(move || i.mounts()).await {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!("S3: reading mounts: {e}");
                continue;
            }
        };
        for (bucket, mount) in mounts {
            let root = match resolve(&online, &mount).await {
                Ok(root) => root,
                Err(e) => {
                    tracing::debug!("S3: resolving {} for bucket {bucket}: {e}", mount.name);
                    continue;
                }
            };
            if mount.root().ok().flatten() == Some(root) {
                continue;
            }
            let i = Arc::clone(&index);
            let b = bucket.clone();
            match blocking(move || i.set_mount_root(&b, &root)).await {
                Ok(()) => tracing::info!("S3: mounted bucket {bucket} now at {root}"),
                Err(e) => tracing::warn!("S3: mounted bucket {bucket}: {e}"),
            }
        }
    }
}

/// Mounts `bucket` from `name` and resolves it once now (a name that does
/// not resolve yet is followed all the same).
pub async fn mount(
    online: &OnlineNode,
    index: &Arc<BucketIndex>,
    bucket: &str,
    name: &str,
) -> Result<Option<Cid>, S3Error> {
    let (i, b, n) = (Arc::clone(index), bucket.to_string(), name.to_string());
    let mount = blocking(move || {
        i.set_mount(&b, &n)?;
        i.mount(&b)
    })
    .await?
    .ok_or_else(|| S3Error::NoSuchBucket {
        name: bucket.to_string(),
    })?;
    let Ok(root) = resolve(online, &mount).await else {
        return Ok(None);
    };
    let (i, b) = (Arc::clone(index), bucket.to_string());
    blocking(move || i.set_mount_root(&b, &root)).await?;
    Ok(Some(root))
}

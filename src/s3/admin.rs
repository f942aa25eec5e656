//! What `cairn s3 ls` shows, the same offline (the repo's index) and
//! through a daemon's RPC API: buckets with their root CIDs (where they
//! are published or mounted from, their replication factor, whether they
//! are public-read), or a bucket's objects with CID, size, ETag and mtime,
//! in key order; and `cairn s3 bucket create` and `public-read`.

use super::index::{BucketIndex, BucketSettings};
use super::list::{self, ListQuery};
use super::S3Error;
use serde::{Deserialize, Serialize};

/// A bucket as `cairn s3 ls` shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct BucketLine {
    /// The bucket's name.
    pub name: String,
    /// The root CID of its tree (none: a mount not resolved yet).
    pub root: Option<String>,
    /// The key it is published under, if it is.
    pub published_as: Option<String>,
    /// The IPNS name it is mounted from, if it is a mount.
    pub mounted_from: Option<String>,
    /// Copies the network keeps of its objects and root, if replicated.
    #[serde(default)]
    pub replication: Option<u8>,
    /// Whether anonymous requests may read it.
    #[serde(default)]
    pub public_read: bool,
}

/// An object as `cairn s3 ls BUCKET` shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ObjectLine {
    /// Its key.
    pub key: String,
    /// The root CID of its body.
    pub cid: String,
    /// Bytes in it.
    pub size: u64,
    /// Its ETag, without quotes.
    pub etag: String,
    /// When it was written, in ms since the Unix epoch.
    pub mtime_ms: u64,
}

/// Every bucket, local and mounted, by name.
pub fn buckets(index: &BucketIndex) -> Result<Vec<BucketLine>, S3Error> {
    let published = index.published()?;
    index
        .buckets()?
        .into_iter()
        .map(|(name, _)| {
            let settings = index.settings(&name)?;
            Ok(BucketLine {
                replication: settings.replication,
                public_read: settings.public_read,
                root: index.root(&name)?.map(|r| r.to_string()),
                published_as: published
                    .iter()
                    .find(|(b, _)| *b == name)
                    .map(|(_, p)| p.key.clone()),
                mounted_from: index.mount(&name)?.map(|m| m.name),
                name,
            })
        })
        .collect()
}

/// The objects of `bucket` whose keys start with `prefix`, in key order
/// (a mounted bucket's from its tree).
pub fn objects(
    index: &BucketIndex,
    bucket: &str,
    prefix: &str,
) -> Result<Vec<ObjectLine>, S3Error> {
    let objects = index.objects_of(bucket)?;
    let mut query = ListQuery {
        prefix: prefix.to_string(),
        delimiter: None,
        max_keys: list::MAX_KEYS,
        start: prefix.as_bytes().to_vec(),
    };
    let mut out = Vec::new();
    loop {
        let page = list::page(&query, &mut |from| objects.first_from(from))?;
        out.extend(page.objects.into_iter().map(|(key, e)| ObjectLine {
            key,
            cid: e.cid,
            size: e.size,
            etag: e.etag,
            mtime_ms: e.mtime_ms,
        }));
        match page.next {
            Some(next) => query.start = next,
            None => return Ok(out),
        }
    }
}

/// What `cairn s3 ls [BUCKET[/PREFIX]]` lists.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub enum Listed {
    /// The buckets (no argument).
    Buckets(Vec<BucketLine>),
    /// One bucket's objects.
    Objects(Vec<ObjectLine>),
}

/// `cairn s3 ls`'s answer for `arg` (`BUCKET[/PREFIX]`, or none).
pub fn ls(index: &BucketIndex, arg: Option<&str>) -> Result<Listed, S3Error> {
    match arg.filter(|a| !a.is_empty()) {
        None => Ok(Listed::Buckets(buckets(index)?)),
        Some(arg) => {
            let (bucket, prefix) = arg.split_once('/').unwrap_or((arg, ""));
            Ok(Listed::Objects(objects(index, bucket, prefix)?))
        }
    }
}

/// The repo's bucket index for a command run without a daemon.
pub fn open_offline(node: &crate::node::Node) -> Result<BucketIndex, S3Error> {
    BucketIndex::open(node.repo_path(), std::sync::Arc::clone(node.store()))
}

/// The most copies `--replication` may ask for.
pub const MAX_REPLICATION: u8 = crate::replicate::record::MAX_HOLDERS as u8;

/// `cairn s3 bucket create NAME` (also through the daemon): a new local
/// bucket with `settings`. The caller holds the GC lock when a daemon
/// runs (the empty tree is stored before its pin).
pub fn create_bucket(
    index: &BucketIndex,
    name: &str,
    settings: &BucketSettings,
) -> Result<(), S3Error> {
    if !s3s::path::check_bucket_name(name) {
        return Err(S3Error::InvalidBucketName {
            name: name.to_string(),
        });
    }
    if let Some(n) = settings.replication {
        if n == 0 || n > MAX_REPLICATION {
            return Err(S3Error::BadReplication {
                factor: n,
                max: MAX_REPLICATION,
            });
        }
    }
    if index.writer().create_bucket_with(name, settings)? {
        Ok(())
    } else {
        Err(S3Error::BucketExists {
            name: name.to_string(),
        })
    }
}

/// What `s3/bucket/create` and `s3/bucket/public-read` answer: the
/// bucket's line in `cairn s3 ls`.
pub fn bucket_line(index: &BucketIndex, name: &str) -> Result<BucketLine, S3Error> {
    buckets(index)?
        .into_iter()
        .find(|b| b.name == name)
        .ok_or_else(|| S3Error::NoSuchBucket {
            name: name.to_string(),
        })
}

/// `cairn s3 bucket publish` without a daemon: the record is kept in the
/// repo (a daemon puts it on the DHT when it starts); returns the IPNS
/// name and the root.
pub fn publish_offline(
    node: &crate::node::Node,
    bucket: &str,
    key: &str,
) -> Result<(String, crate::block::Cid), S3Error> {
    let index = open_offline(node)?;
    let root = index.set_published(bucket, key)?;
    let opts = crate::names::ipns::PublishOptions {
        key: Some(key.to_string()),
        ..Default::default()
    };
    let (name, _) = node.name_publish(&format!("/ipfs/{root}"), &opts, true)?;
    index.published_root(bucket, &root)?;
    Ok((crate::names::keystore::ipns_name(&name), root))
}

/// `cairn s3 bucket mount` without a daemon: recorded; a daemon resolves
/// the name and serves the bucket when it starts.
pub fn mount_offline(node: &crate::node::Node, bucket: &str, name: &str) -> Result<(), S3Error> {
    open_offline(node)?.set_mount(bucket, name)
}

/// What `s3/bucket/publish` answers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Published {
    /// The IPNS name (`k51...`).
    pub name: String,
    /// The root CID published.
    pub root: String,
}

/// What `s3/bucket/mount` answers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Mounted {
    /// The bucket's name here.
    pub bucket: String,
    /// The IPNS name it follows.
    pub name: String,
    /// The root the name resolved to, if it did already.
    pub root: Option<String>,
}

//! Per-bucket settings, in the bucket index's database (tree `settings`:
//! bucket name → JSON [`BucketSettings`]): the replication factor a
//! bucket's objects and tree roots are kept at (`cairn s3 bucket create
//! --replication N`), and whether anonymous requests may read it
//! (public-read). A bucket's settings are written in the transaction that
//! creates it, so a name reused after a deletion never inherits those of
//! the bucket it named before; a bucket without an entry has the defaults
//! (the node's own copy only, private).

use super::{failed, now_ms, transaction_error, Abort, BucketIndex, Writer};
use crate::s3::roots::move_root;
use crate::s3::S3Error;
use serde::{Deserialize, Serialize};
use sled::transaction::{ConflictableTransactionError, Transactional};

/// The settings tree's name.
const SETTINGS: &str = "settings";

/// What a bucket is set to, besides its objects.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BucketSettings {
    /// Copies the network keeps of each object and tree root (none: the
    /// node's own pin only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replication: Option<u8>,
    /// Anonymous (unsigned) requests may read the bucket: GET and HEAD
    /// its objects, list it.
    #[serde(default)]
    pub public_read: bool,
}

impl BucketSettings {
    fn encode(&self) -> Vec<u8> {
        // An option and a bool always serialize.
        serde_json::to_vec(self).unwrap_or_default()
    }

    fn decode(bytes: &[u8]) -> Result<BucketSettings, S3Error> {
        serde_json::from_slice(bytes).map_err(|e| S3Error::BadEntry {
            what: "bucket settings",
            why: e.to_string(),
        })
    }
}

impl BucketIndex {
    fn settings_tree(&self) -> Result<sled::Tree, S3Error> {
        self.db()
            .open_tree(SETTINGS)
            .map_err(failed("opening bucket settings"))
    }

    /// The settings of `bucket` (the defaults for one that has none, or
    /// does not exist).
    pub fn settings(&self, bucket: &str) -> Result<BucketSettings, S3Error> {
        match self
            .settings_tree()?
            .get(bucket.as_bytes())
            .map_err(failed("reading bucket settings"))?
        {
            Some(v) => BucketSettings::decode(&v),
            None => Ok(BucketSettings::default()),
        }
    }

    /// Every bucket with settings other than the defaults, by name.
    pub fn all_settings(&self) -> Result<Vec<(String, BucketSettings)>, S3Error> {
        self.settings_tree()?
            .iter()
            .map(|kv| {
                let (k, v) = kv.map_err(failed("listing bucket settings"))?;
                Ok((
                    String::from_utf8_lossy(&k).into_owned(),
                    BucketSettings::decode(&v)?,
                ))
            })
            .collect()
    }
}

impl Writer<'_> {
    /// Creates `bucket` with an empty tree and `settings`; false when it
    /// exists already.
    pub fn create_bucket_with(
        &self,
        bucket: &str,
        settings: &BucketSettings,
    ) -> Result<bool, S3Error> {
        let i = self.index;
        if i.bucket(bucket)?.is_some() {
            return Ok(false);
        }
        let tree = i.settings_tree()?;
        let encoded = settings.encode();
        let default = *settings == BucketSettings::default();
        let mut empty = i.local_tree();
        let root = empty.empty()?;
        let mut m = self.stage(None, root, empty.take_fresh(&root))?;
        m.factor = settings.replication;
        let created = (&i.buckets, &i.roots, &i.refs, &i.pending, &tree)
            .transaction(|(buckets, roots, refs, pending, settings)| {
                if buckets.get(bucket.as_bytes())?.is_some() {
                    return Err(ConflictableTransactionError::Abort(Abort::Exists));
                }
                buckets.insert(bucket.as_bytes(), &now_ms().to_be_bytes()[..])?;
                if default {
                    settings.remove(bucket.as_bytes())?;
                } else {
                    settings.insert(bucket.as_bytes(), &encoded[..])?;
                }
                move_root(roots, refs, pending, bucket, &m)
            })
            .map_err(|e| transaction_error(e, bucket, ""));
        self.finish_move(&m, created.as_ref().ok().copied());
        created?;
        i.flush()?;
        Ok(true)
    }

    /// Lets anonymous requests read `bucket` (`on`), or no longer.
    pub fn set_public_read(&self, bucket: &str, on: bool) -> Result<(), S3Error> {
        self.change_settings(bucket, |s| s.public_read = on)
    }

    /// Applies `change` to the settings of the existing `bucket` (local
    /// or mounted).
    fn change_settings(
        &self,
        bucket: &str,
        change: impl FnOnce(&mut BucketSettings),
    ) -> Result<(), S3Error> {
        let i = self.index;
        if i.bucket(bucket)?.is_none() {
            return Err(S3Error::NoSuchBucket {
                name: bucket.to_string(),
            });
        }
        let mut settings = i.settings(bucket)?;
        change(&mut settings);
        let tree = i.settings_tree()?;
        let done = if settings == BucketSettings::default() {
            tree.remove(bucket.as_bytes()).map(|_| ())
        } else {
            tree.insert(bucket.as_bytes(), settings.encode())
                .map(|_| ())
        };
        done.map_err(failed("writing bucket settings"))?;
        i.flush()
    }

    /// Drops the settings of `bucket` (deleted, or mounted anew).
    pub fn forget_settings(&self, bucket: &str) -> Result<(), S3Error> {
        self.index
            .settings_tree()?
            .remove(bucket.as_bytes())
            .map_err(failed("removing bucket settings"))?;
        self.index.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{MemoryStore, Store};
    use std::sync::Arc;

    #[test]
    fn settings_are_made_with_the_bucket_changed_and_forgotten() {
        let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
        let index = BucketIndex::open(None, store).unwrap();
        let w = index.writer();
        let replicated = BucketSettings {
            replication: Some(2),
            public_read: false,
        };
        assert!(w.create_bucket_with("kept", &replicated).unwrap());
        assert!(!w
            .create_bucket_with("kept", &BucketSettings::default())
            .unwrap());
        assert_eq!(index.settings("kept").unwrap(), replicated);
        assert!(w.create_bucket("plain").unwrap());
        assert_eq!(index.settings("plain").unwrap(), BucketSettings::default());
        assert_eq!(
            index.all_settings().unwrap().len(),
            1,
            "defaults are no entry"
        );

        w.set_public_read("plain", true).unwrap();
        assert!(index.settings("plain").unwrap().public_read);
        w.set_public_read("plain", false).unwrap();
        assert_eq!(index.all_settings().unwrap().len(), 1);
        assert!(matches!(
            w.set_public_read("nope", true),
            Err(S3Error::NoSuchBucket { .. })
        ));

        // A name reused after a deletion starts from the defaults.
        w.set_public_read("kept", true).unwrap();
        w.delete_bucket("kept").unwrap();
        assert!(w.create_bucket("kept").unwrap());
        assert_eq!(index.settings("kept").unwrap(), BucketSettings::default());
    }
}

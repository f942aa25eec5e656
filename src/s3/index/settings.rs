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
    pub(super) fn settings_tree(&self) -> Result<sled::Tree, S3Error> {
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

    /// Drops the versioning state and settings of buckets that do not
    /// exist: what a bucket deleted by an earlier version (which removed
    /// them after the bucket, outside its transaction) could leave after a
    /// crash. Run at open.
    pub(super) fn forget_orphans(&self) -> Result<(), S3Error> {
        let names = |tree: &sled::Tree| -> Result<Vec<sled::IVec>, S3Error> {
            tree.iter()
                .keys()
                .collect::<Result<_, _>>()
                .map_err(failed("listing bucket states"))
        };
        let mut dropped = false;
        for name in names(&self.versioning)? {
            let bucket = String::from_utf8_lossy(&name);
            if self.local_bucket(&bucket)?.is_none() {
                self.versioning
                    .remove(&name)
                    .map_err(failed("removing a versioning state"))?;
                dropped = true;
            }
        }
        let settings = self.settings_tree()?;
        for name in names(&settings)? {
            if self.bucket(&String::from_utf8_lossy(&name))?.is_none() {
                settings
                    .remove(&name)
                    .map_err(failed("removing bucket settings"))?;
                dropped = true;
            }
        }
        if dropped {
            self.flush()?;
        }
        Ok(())
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
        let mut m = self.stage(bucket, None, root, empty.take_fresh(&root))?;
        m.factor = settings.replication;
        let created = (
            &i.buckets,
            &i.roots,
            &i.refs,
            &i.pending,
            &tree,
            &i.versioning,
            &i.bytes,
        )
            .transaction(
                |(buckets, roots, refs, pending, settings, versioning, bytes)| {
                    if buckets.get(bucket.as_bytes())?.is_some() {
                        return Err(ConflictableTransactionError::Abort(Abort::Exists));
                    }
                    buckets.insert(bucket.as_bytes(), &now_ms().to_be_bytes()[..])?;
                    bytes.insert(bucket.as_bytes(), &0u64.to_be_bytes()[..])?;
                    // A new bucket is never versioned, whatever an earlier one
                    // of its name was.
                    versioning.remove(bucket.as_bytes())?;
                    if default {
                        settings.remove(bucket.as_bytes())?;
                    } else {
                        settings.insert(bucket.as_bytes(), &encoded[..])?;
                    }
                    move_root(roots, refs, pending, bucket, &m)
                },
            )
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

    /// Deleting a bucket removes its versioning state and settings in the
    /// transaction that removes it; what an earlier version's crash left
    /// between the two is dropped at open, and never inherited by a bucket
    /// made later under the name.
    #[test]
    fn a_deleted_buckets_state_goes_with_it_even_after_a_crash() {
        use crate::s3::index::{DeleteBucket, Versioning};
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
        let public = BucketSettings {
            replication: Some(2),
            public_read: true,
        };
        {
            let index = BucketIndex::open(Some(dir.path()), Arc::clone(&store)).unwrap();
            let w = index.writer();
            w.create_bucket_with("gone", &public).unwrap();
            w.set_versioning("gone", Versioning::Enabled).unwrap();
            assert_eq!(w.delete_bucket("gone").unwrap(), DeleteBucket::Deleted);
            assert_eq!(index.versioning("gone").unwrap(), None);
            assert!(index.all_settings().unwrap().is_empty());

            // What the earlier order left when the process died between
            // the bucket's transaction and the rest.
            w.create_bucket_with("torn", &public).unwrap();
            w.set_versioning("torn", Versioning::Suspended).unwrap();
            index.buckets.remove("torn").unwrap();
            index.roots.remove("torn").unwrap();
            index.flush().unwrap();
        }
        let index = BucketIndex::open(Some(dir.path()), Arc::clone(&store)).unwrap();
        assert_eq!(index.versioning("torn").unwrap(), None);
        assert!(index.all_settings().unwrap().is_empty());
        // Even a state open has not swept: a new bucket is unversioned.
        index.versioning.insert("torn", "Enabled").unwrap();
        let w = index.writer();
        assert!(w.create_bucket("torn").unwrap());
        assert_eq!(index.versioning("torn").unwrap(), None);
        assert_eq!(index.settings("torn").unwrap(), BucketSettings::default());
    }
}

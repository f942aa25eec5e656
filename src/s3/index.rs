//! The bucket index: which buckets exist and, per bucket, each key's
//! object (CID, size, ETag, content type, metadata, mtime), in a sled
//! database of its own (`REPO/s3/index`; a temporary one for a node
//! without a repo). Each change is one sled transaction, flushed before it
//! is acknowledged, so a crash leaves the index as it was before or after
//! a write, never between.
//!
//! Trees: `buckets` (name → creation time), `o/NAME` per bucket (key →
//! [`ObjectEntry`], in byte order, which is S3's key order), `roots`
//! (name → the CID of the bucket's tree, `tree.rs`), `refs` (CID → how
//! many objects and bucket roots name it, and whether the S3 endpoint made
//! its pin): an object body or tree root is pinned while anything names
//! it, and its pin is removed with the last name only if the endpoint made
//! it; and `pending` (CID → nothing): pins the endpoint is making or
//! removing whose outcome the other trees do not show yet. Open multipart
//! uploads' parts count in `refs` too, pinned alike (`uploads.rs`).
//!
//! A pin and the index live in different databases, so a crash can fall
//! between them. `pending` closes that gap: a write records the CID there
//! (flushed) before it pins, and its commit clears the record in the same
//! transaction that counts the reference; a change that leaves a CID
//! without names records it there in the same transaction, and clears it
//! once the pin is gone. [`BucketIndex::reconcile`], at open, unpins every
//! pending CID that nothing names and clears the records: no pin the
//! endpoint made outlives a crash without an object or root naming it.
//!
//! Every change goes through [`Writer`], which keeps each bucket's tree in
//! step with its sled tree (`roots.rs`): it applies the change to the
//! tree, stores the new nodes and pins the new root (recorded as pending
//! first, then flushed), then commits the entry and the new root in one
//! sled transaction, then unpins the previous root. A crash before the
//! commit leaves the old root, whose blocks are still pinned, and a
//! pending record for the new one, which the next open unpins. Object
//! writes that arrive together take those steps once for all of them
//! (`group.rs`).

mod group;
mod refs;
mod settings;
mod uploads;
mod versions;
mod writes;

pub use group::{GroupPut, PutDone};
pub use refs::Refs;
pub use settings::BucketSettings;
pub use uploads::{ListedUpload, PartEntry, UploadEntry};
pub(super) use versions::check_key;
pub use versions::{current_key, shown, Version, VersionId, Versioning, Written};

use super::checksum::ObjectChecksum;
use super::share::RemoteSource;
use super::tree::Tree;
use super::S3Error;
use crate::block::Cid;
use crate::dag::SharedStore;
use crate::store::Store;
use serde::{Deserialize, Serialize};
use sled::transaction::{ConflictableTransactionError, TransactionError, Transactional};
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};

/// The sled page cache of the bucket index.
const CACHE_BYTES: u64 = 32 * 1024 * 1024;

/// One object as the index keeps it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectEntry {
    /// The root of the object's UnixFS file DAG.
    pub cid: String,
    /// Bytes in the object.
    pub size: u64,
    /// The ETag, without quotes (MD5 of the body in hex).
    pub etag: String,
    /// The Content-Type given at upload.
    #[serde(default)]
    pub content_type: Option<String>,
    /// `x-amz-meta-*` values, by name without the prefix.
    #[serde(default)]
    pub metadata: BTreeMap<String, String>,
    /// When it was written, in milliseconds since the Unix epoch.
    pub mtime_ms: u64,
    /// The checksum checked at upload and given back on request: the one
    /// the client sent, else CRC64NVME (none for entries written before
    /// checksums were kept).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checksum: Option<ObjectChecksum>,
    /// A multipart object's part sizes, as runs of equal sizes: (size,
    /// how many parts in a row). Empty for an object PUT whole.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub parts: Vec<[u64; 2]>,
    /// Its version ID in a versioned bucket (`versions.rs`); none: the
    /// "null" version (every object of a bucket never versioned).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version_id: Option<String>,
}

impl ObjectEntry {
    /// The object's CID.
    pub fn cid(&self) -> Result<Cid, S3Error> {
        crate::block::parse_cid(&self.cid).map_err(|e| S3Error::BadEntry {
            what: "object CID",
            why: e.to_string(),
        })
    }

    fn encode(&self) -> Vec<u8> {
        // A struct of strings and numbers always serializes.
        serde_json::to_vec(self).unwrap_or_default()
    }

    pub(super) fn decode(bytes: &[u8]) -> Result<ObjectEntry, S3Error> {
        serde_json::from_slice(bytes).map_err(|e| S3Error::BadEntry {
            what: "object",
            why: e.to_string(),
        })
    }
}

/// The index database.
pub struct BucketIndex {
    db: sled::Db,
    pub(super) buckets: sled::Tree,
    pub(super) refs: sled::Tree,
    pub(super) pending: sled::Tree,
    pub(super) roots: sled::Tree,
    /// Where tree nodes are stored and roots pinned.
    pub(super) store: Arc<dyn Store>,
    /// Counts committed root changes (the publisher waits on it).
    pub(super) changed: tokio::sync::watch::Sender<u64>,
    /// Where mounted buckets are read from.
    pub(super) remote: Mutex<Option<RemoteSource>>,
    /// Where replicated buckets' changes are reported (`replicas.rs`).
    pub(super) replicas: Mutex<Option<super::replicas::ReplicaHook>>,
    /// Open multipart uploads, their parts, their leaves (`uploads.rs`).
    uploads: sled::Tree,
    parts: sled::Tree,
    part_leaves: sled::Tree,
    /// Buckets' versioning states (`versions.rs`).
    versioning: sled::Tree,
    /// Per bucket, the bytes of its current objects (u64, big-endian),
    /// changed in each write's transaction: the size a replicated bucket's
    /// root is recorded with without walking its DAG (`replicas.rs`).
    pub(super) bytes: sled::Tree,
    /// Held by [`Writer`]: one change at a time, so a pin decision and the
    /// reference count it reads stay true until the change commits. Holds
    /// the writer's tree, whose cache of nodes lasts from one write to the
    /// next (each write reads and decodes its path's nodes once).
    write: Mutex<RefCell<Option<Tree>>>,
    /// Object writes waiting to be committed together (`group.rs`).
    group: group::GroupCommit,
}

/// What a removed bucket or key leaves behind.
#[derive(Debug, PartialEq, Eq)]
pub enum DeleteBucket {
    /// Removed.
    Deleted,
    /// No such bucket.
    NoSuchBucket,
    /// The bucket holds objects (or versions, or delete markers).
    NotEmpty,
}

pub(super) fn failed(doing: &'static str) -> impl FnOnce(sled::Error) -> S3Error {
    move |source| S3Error::Index { doing, source }
}

fn tree_name(bucket: &str) -> Vec<u8> {
    [b"o/", bucket.as_bytes()].concat()
}

/// The time now in milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

impl BucketIndex {
    /// Opens the index of the repo at `repo`, or a temporary one, whose
    /// trees live in `store`; finishes what a crash left half-done and
    /// gives a tree to each bucket that has none yet.
    pub fn open(repo: Option<&Path>, store: Arc<dyn Store>) -> Result<BucketIndex, S3Error> {
        let db = match repo {
            Some(repo) => {
                let dir = repo.join("s3").join("index");
                std::fs::create_dir_all(&dir).map_err(|source| S3Error::Io {
                    path: dir.clone(),
                    source,
                })?;
                crate::store::open_sled(&dir, CACHE_BYTES).map_err(S3Error::Open)?
            }
            None => sled::Config::new()
                .temporary(true)
                .open()
                .map_err(failed("opening a temporary index"))?,
        };
        let index = BucketIndex {
            buckets: db.open_tree("buckets").map_err(failed("opening"))?,
            refs: db.open_tree("refs").map_err(failed("opening"))?,
            pending: db.open_tree("pending").map_err(failed("opening"))?,
            roots: db.open_tree("roots").map_err(failed("opening"))?,
            uploads: db.open_tree("uploads").map_err(failed("opening"))?,
            parts: db.open_tree("parts").map_err(failed("opening"))?,
            part_leaves: db.open_tree("part_leaves").map_err(failed("opening"))?,
            versioning: db.open_tree("versioning").map_err(failed("opening"))?,
            bytes: db.open_tree("bytes").map_err(failed("opening"))?,
            db,
            store,
            changed: tokio::sync::watch::Sender::new(0),
            remote: Mutex::new(None),
            replicas: Mutex::new(None),
            write: Mutex::new(RefCell::new(None)),
            group: group::GroupCommit::default(),
        };
        index.recover()?;
        index.forget_orphans()?;
        index.count_bytes()?;
        Ok(index)
    }

    /// The root of `bucket`'s tree (none: no such bucket, or a mounted
    /// one whose name has not resolved yet).
    pub fn root(&self, bucket: &str) -> Result<Option<Cid>, S3Error> {
        if self.local_bucket(bucket)?.is_none() {
            return match self.mount(bucket)? {
                Some(m) => m.root(),
                None => Ok(None),
            };
        }
        self.roots
            .get(bucket.as_bytes())
            .map_err(failed("reading a bucket root"))?
            .map(|v| decode_cid(&v))
            .transpose()
    }

    /// Counts committed root changes: a receiver sees each new count.
    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<u64> {
        self.changed.subscribe()
    }

    /// The store the trees live in.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// The database, for the trees of the modules beside this one.
    pub(super) fn db(&self) -> &sled::Db {
        &self.db
    }

    pub(super) fn flush(&self) -> Result<(), S3Error> {
        self.db.flush().map(|_| ()).map_err(failed("flushing"))
    }

    /// The writer: changes go through it, one at a time.
    pub fn writer(&self) -> Writer<'_> {
        Writer {
            index: self,
            guard: self.write.lock().unwrap_or_else(|p| p.into_inner()),
        }
    }

    /// When `bucket` was created or mounted (ms since the epoch), if it
    /// exists.
    pub fn bucket(&self, bucket: &str) -> Result<Option<u64>, S3Error> {
        match self.local_bucket(bucket)? {
            Some(t) => Ok(Some(t)),
            None => Ok(self.mount(bucket)?.map(|m| m.since_ms)),
        }
    }

    /// When the local `bucket` was created, if it exists.
    pub(super) fn local_bucket(&self, bucket: &str) -> Result<Option<u64>, S3Error> {
        let v = self
            .buckets
            .get(bucket.as_bytes())
            .map_err(failed("reading a bucket"))?;
        Ok(v.map(|v| decode_time(&v)))
    }

    /// Every bucket (mounted ones too) and its creation time, by name.
    pub fn buckets(&self) -> Result<Vec<(String, u64)>, S3Error> {
        let mut all: Vec<(String, u64)> = self
            .buckets
            .iter()
            .map(|kv| {
                let (k, v) = kv.map_err(failed("listing buckets"))?;
                Ok((String::from_utf8_lossy(&k).into_owned(), decode_time(&v)))
            })
            .collect::<Result<_, S3Error>>()?;
        all.extend(self.mounts()?.into_iter().map(|(b, m)| (b, m.since_ms)));
        all.sort();
        all.dedup_by(|a, b| a.0 == b.0);
        Ok(all)
    }

    /// The sled tree of the local `bucket` (a mounted one is read-only).
    pub(super) fn objects(&self, bucket: &str) -> Result<sled::Tree, S3Error> {
        if self.local_bucket(bucket)?.is_none() {
            if self.mount(bucket)?.is_some() {
                return Err(S3Error::ReadOnlyBucket {
                    name: bucket.to_string(),
                });
            }
            return Err(S3Error::NoSuchBucket {
                name: bucket.to_string(),
            });
        }
        self.db
            .open_tree(tree_name(bucket))
            .map_err(failed("opening a bucket"))
    }

    /// A tree over the local store.
    pub(super) fn local_tree(&self) -> Tree {
        Tree::new(Arc::new(SharedStore(Arc::clone(&self.store))))
    }

    /// The object at `key`, if any.
    pub fn get(&self, bucket: &str, key: &str) -> Result<Option<ObjectEntry>, S3Error> {
        if let Some((mut tree, root)) = self.mounted(bucket)? {
            return tree.get(&root, key.as_bytes());
        }
        let tree = self.objects(bucket)?;
        match tree
            .get(key.as_bytes())
            .map_err(failed("reading an object"))?
        {
            Some(v) => Ok(Some(ObjectEntry::decode(&v)?)),
            None => Ok(None),
        }
    }

    /// The objects of `bucket`, to page through.
    pub fn objects_of(&self, bucket: &str) -> Result<Objects, S3Error> {
        if let Some((tree, root)) = self.mounted(bucket)? {
            return Ok(Objects(Listing::Mounted(Box::new(Mutex::new(tree)), root)));
        }
        Ok(Objects(Listing::Local(self.objects(bucket)?)))
    }

    /// The bytes of the local `bucket`'s current objects (0 for one
    /// that does not exist).
    pub fn bucket_bytes(&self, bucket: &str) -> Result<u64, S3Error> {
        let v = self
            .bytes
            .get(bucket.as_bytes())
            .map_err(failed("reading a bucket's size"))?;
        Ok(v.map_or(0, |v| decode_time(&v)))
    }

    /// Counts the bytes of each local bucket that has no count yet (made
    /// before counts were kept). Run at open.
    fn count_bytes(&self) -> Result<(), S3Error> {
        let local: Vec<sled::IVec> = self
            .buckets
            .iter()
            .keys()
            .collect::<Result<_, _>>()
            .map_err(failed("listing buckets"))?;
        let mut counted = false;
        for name in local {
            if self
                .bytes
                .contains_key(&name)
                .map_err(failed("reading a bucket's size"))?
            {
                continue;
            }
            let mut total = 0u64;
            for kv in self.objects(&String::from_utf8_lossy(&name))?.iter() {
                let (_, v) = kv.map_err(failed("listing objects"))?;
                total = total.saturating_add(ObjectEntry::decode(&v)?.size);
            }
            self.bytes
                .insert(&name, &total.to_be_bytes()[..])
                .map_err(failed("counting a bucket's size"))?;
            counted = true;
        }
        if counted {
            self.flush()?;
        }
        Ok(())
    }

    /// The reference count of `cid`.
    pub(super) fn refs_of(&self, cid: &Cid) -> Result<Option<Refs>, S3Error> {
        let v = self
            .refs
            .get(cid.to_bytes())
            .map_err(failed("reading a reference count"))?;
        v.map(|v| Refs::decode(&v)).transpose()
    }

    /// Settles what a crash left pending: each pending CID that no object
    /// names is handed to `unpin`, then every record is cleared. Run at
    /// open, before the endpoint takes writes. Returns the CIDs unpinned.
    pub fn reconcile(
        &self,
        unpin: &mut dyn FnMut(&Cid) -> Result<(), S3Error>,
    ) -> Result<Vec<Cid>, S3Error> {
        let _writer = self.writer();
        let mut unpinned = Vec::new();
        for kv in self.pending.iter() {
            let (k, _) = kv.map_err(failed("reading pending pins"))?;
            let cid = crate::block::cid_from_bytes(&k).map_err(|e| S3Error::BadEntry {
                what: "pending pin",
                why: e.to_string(),
            })?;
            if self.refs_of(&cid)?.is_none() {
                unpin(&cid)?;
                unpinned.push(cid);
            }
            self.pending
                .remove(&k)
                .map_err(failed("clearing a pending pin"))?;
        }
        self.flush()?;
        Ok(unpinned)
    }

    /// The CIDs recorded as pending.
    #[cfg(test)]
    fn pending_cids(&self) -> Vec<Vec<u8>> {
        self.pending
            .iter()
            .keys()
            .map(|k| k.map(|k| k.to_vec()).unwrap_or_default())
            .collect()
    }
}

/// An object and its key, as a listing finds it.
pub type Found = Option<(Vec<u8>, ObjectEntry)>;

/// One bucket's objects: a local bucket's sled tree, or a mounted
/// bucket's tree (its nodes cached for the listing's life).
pub struct Objects(Listing);

enum Listing {
    Local(sled::Tree),
    Mounted(Box<Mutex<Tree>>, Cid),
}

impl Objects {
    /// The first object whose key is at least `start`.
    pub fn first_from(&self, start: &[u8]) -> Result<Found, S3Error> {
        let local = match &self.0 {
            Listing::Local(tree) => tree,
            Listing::Mounted(tree, root) => {
                let mut tree = tree.lock().unwrap_or_else(|p| p.into_inner());
                return tree.first_from(root, start);
            }
        };
        match local.range(start..).next() {
            None => Ok(None),
            Some(kv) => {
                let (k, v) = kv.map_err(failed("listing objects"))?;
                Ok(Some((k.to_vec(), ObjectEntry::decode(&v)?)))
            }
        }
    }
}

pub(super) fn decode_cid(v: &[u8]) -> Result<Cid, S3Error> {
    crate::block::cid_from_bytes(v).map_err(|e| S3Error::BadEntry {
        what: "bucket root",
        why: e.to_string(),
    })
}

pub(super) fn store_err(e: crate::store::StoreError) -> S3Error {
    S3Error::Node(e.into())
}

fn decode_time(v: &[u8]) -> u64 {
    v.try_into().map(u64::from_be_bytes).unwrap_or(0)
}

/// Changes the index; holds its write lock while it lives.
pub struct Writer<'a> {
    pub(super) index: &'a BucketIndex,
    guard: MutexGuard<'a, RefCell<Option<Tree>>>,
}

impl Writer<'_> {
    /// Runs `f` with the writer's tree (nodes a change made but did not
    /// commit dropped first); not from within another `with_tree`.
    pub(super) fn with_tree<T>(&self, f: impl FnOnce(&mut Tree) -> T) -> T {
        let mut slot = self.guard.borrow_mut();
        let tree = slot.get_or_insert_with(|| self.index.local_tree());
        tree.discard_fresh();
        f(tree)
    }
}

/// Why a transaction stopped.
pub(super) enum Abort {
    NoSuchBucket,
    Exists,
    Refused(super::conditions::WriteRefused),
    Bad(Box<S3Error>),
}

pub(super) fn transaction_error(e: TransactionError<Abort>, bucket: &str, key: &str) -> S3Error {
    match e {
        TransactionError::Abort(Abort::NoSuchBucket) => S3Error::NoSuchBucket {
            name: bucket.to_string(),
        },
        TransactionError::Abort(Abort::Refused(why)) => S3Error::WriteRefused {
            bucket: bucket.to_string(),
            key: key.to_string(),
            why,
        },
        TransactionError::Abort(Abort::Bad(e)) => *e,
        TransactionError::Abort(Abort::Exists) => S3Error::BadEntry {
            what: "bucket",
            why: format!("{bucket:?} was made meanwhile"),
        },
        TransactionError::Storage(source) => S3Error::Index {
            doing: "committing a change",
            source,
        },
    }
}

pub(super) fn abort(e: S3Error) -> ConflictableTransactionError<Abort> {
    ConflictableTransactionError::Abort(Abort::Bad(Box::new(e)))
}

/// Adds `delta` (±1) to the count of `cid` in `refs`; a new count takes
/// `owned`. Returns the count left and whether the pin is the endpoint's.
pub(super) fn bump(
    refs: &sled::transaction::TransactionalTree,
    cid: &[u8],
    delta: i64,
    owned: bool,
) -> Result<Refs, ConflictableTransactionError<Abort>> {
    let now = match refs.get(cid)? {
        Some(v) => Refs::decode(&v).map_err(abort)?,
        None => Refs { count: 0, owned },
    };
    let count = now.count.saturating_add_signed(delta);
    let next = Refs { count, ..now };
    if count == 0 {
        refs.remove(cid)?;
    } else {
        refs.insert(cid, &next.encode()[..])?;
    }
    Ok(next)
}

/// Changes `bucket`'s count of object bytes in `bytes` by `+added
/// -removed` (in a write's transaction).
pub(super) fn count(
    bytes: &sled::transaction::TransactionalTree,
    bucket: &str,
    added: u64,
    removed: u64,
) -> Result<(), ConflictableTransactionError<Abort>> {
    if added == removed {
        return Ok(());
    }
    let now = bytes.get(bucket.as_bytes())?.map_or(0, |v| decode_time(&v));
    let next = now.saturating_add(added).saturating_sub(removed);
    bytes.insert(bucket.as_bytes(), &next.to_be_bytes()[..])?;
    Ok(())
}

/// Drops one reference to `cid`; when none is left and the endpoint made
/// its pin, records it as pending and returns it (to unpin).
pub(super) fn release(
    refs: &sled::transaction::TransactionalTree,
    pending: &sled::transaction::TransactionalTree,
    cid: &Cid,
) -> Result<Option<Cid>, ConflictableTransactionError<Abort>> {
    let bytes = cid.to_bytes();
    let left = bump(refs, &bytes, -1, false)?;
    if left.count == 0 && left.owned {
        pending.insert(&bytes[..], &[][..])?;
        return Ok(Some(*cid));
    }
    Ok(None)
}

impl Writer<'_> {
    /// The reference count of `cid` (none: no object names it).
    pub fn refs_of(&self, cid: &Cid) -> Result<Option<Refs>, S3Error> {
        self.index.refs_of(cid)
    }

    /// Records, durably, that the endpoint is about to pin `cid` for a
    /// write whose [`put`](Self::put) has not committed: until that commit
    /// clears the record, a crash leaves it for
    /// [`BucketIndex::reconcile`].
    pub fn intend_pin(&self, cid: &Cid) -> Result<(), S3Error> {
        let i = self.index;
        i.pending
            .insert(cid.to_bytes(), &[][..])
            .map_err(failed("recording a pin"))?;
        i.flush()
    }

    /// Clears the pending record of `cid`: its pin was removed (or a
    /// refused write's pin undone). Not flushed: a record that survives a
    /// crash only makes [`BucketIndex::reconcile`] look at `cid` again.
    pub fn settle(&self, cid: &Cid) -> Result<(), S3Error> {
        self.index
            .pending
            .remove(cid.to_bytes())
            .map(|_| ())
            .map_err(failed("clearing a pending pin"))
    }

    /// Creates `bucket` with an empty tree and the default settings;
    /// false when it exists already.
    pub fn create_bucket(&self, bucket: &str) -> Result<bool, S3Error> {
        self.create_bucket_with(bucket, &BucketSettings::default())
    }

    /// Removes `bucket` if it exists and holds no object, aborting its open
    /// multipart uploads (as S3 does, which deletes a bucket that holds
    /// only uploads) and unpinning what only they or its tree named.
    pub fn delete_bucket(&self, bucket: &str) -> Result<DeleteBucket, S3Error> {
        let i = self.index;
        let tree = match i.objects(bucket) {
            Err(S3Error::NoSuchBucket { .. }) => return Ok(DeleteBucket::NoSuchBucket),
            other => other?,
        };
        let versions = i.versions_tree(bucket)?;
        if !tree.is_empty() || !versions.is_empty() {
            return Ok(DeleteBucket::NotEmpty);
        }
        // A crash after this leaves the bucket empty, the parts' pins pending.
        let parts = self.remove_uploads_of(bucket)?;
        // The bucket, its root, its versioning state and its settings go
        // in one transaction: a crash never leaves a deleted bucket's state
        // for a bucket made later under its name to inherit.
        let settings = i.settings_tree()?;
        let released = (
            &i.buckets,
            &i.roots,
            &i.refs,
            &i.pending,
            &i.versioning,
            &settings,
            &i.bytes,
        )
            .transaction(
                |(buckets, roots, refs, pending, versioning, settings, bytes)| {
                    buckets.remove(bucket.as_bytes())?;
                    versioning.remove(bucket.as_bytes())?;
                    bytes.remove(bucket.as_bytes())?;
                    // A mount never shares a local bucket's name.
                    settings.remove(bucket.as_bytes())?;
                    let Some(root) = roots.remove(bucket.as_bytes())? else {
                        return Ok(None);
                    };
                    let root = decode_cid(&root).map_err(abort)?;
                    release(refs, pending, &root)
                },
            )
            .map_err(|e| transaction_error(e, bucket, ""))?;
        // Both are empty: one a crash leaves behind is an empty bucket's.
        i.db.drop_tree(tree_name(bucket))
            .map_err(failed("removing a bucket"))?;
        i.db.drop_tree(versions::versions_tree_name(bucket))
            .map_err(failed("removing a bucket"))?;
        i.flush()?;
        for cid in parts.iter().chain(&released) {
            self.drop_pin(cid);
        }
        Ok(DeleteBucket::Deleted)
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::s3::conditions::WriteIf;

    /// An entry naming the raw block of `data`.
    pub(in crate::s3) fn entry(data: &[u8]) -> ObjectEntry {
        let cid = crate::block::CidFormat::V1_SHA2_256.cid(crate::block::RAW, data);
        ObjectEntry {
            cid: cid.to_string(),
            size: data.len() as u64,
            etag: "e".into(),
            content_type: None,
            metadata: BTreeMap::new(),
            mtime_ms: now_ms(),
            checksum: None,
            parts: Vec::new(),
            version_id: None,
        }
    }

    #[test]
    fn buckets_and_objects_survive_reopening_and_count_references() {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn Store> = Arc::new(crate::store::MemoryStore::new());
        let a = entry(b"a");
        let b = entry(b"b");
        {
            let index = BucketIndex::open(Some(dir.path()), store.clone()).unwrap();
            let w = index.writer();
            assert!(w.create_bucket("one").unwrap());
            assert!(!w.create_bucket("one").unwrap());
            assert!(matches!(
                w.put("nope", "k", &a, true),
                Err(S3Error::NoSuchBucket { .. })
            ));
            assert_eq!(w.put("one", "x", &a, true).unwrap(), None);
            assert_eq!(w.put("one", "y", &a, false).unwrap(), None);
            let refs = w.refs_of(&a.cid().unwrap()).unwrap().unwrap();
            assert_eq!((refs.count, refs.owned), (2, true));
            // Replacing y by b leaves a still named by x.
            assert_eq!(w.put("one", "y", &b, true).unwrap(), None);
            assert_eq!(w.delete_bucket("one").unwrap(), DeleteBucket::NotEmpty);
        }
        let index = BucketIndex::open(Some(dir.path()), store.clone()).unwrap();
        assert_eq!(index.get("one", "x").unwrap(), Some(a.clone()));
        assert_eq!(index.get("one", "y").unwrap(), Some(b.clone()));
        assert_eq!(index.buckets().unwrap().len(), 1);
        let w = index.writer();
        let (gone, unpin) = w.delete("one", "x").unwrap().unwrap();
        assert_eq!(gone, a);
        assert_eq!(unpin, Some(a.cid().unwrap()), "the last key of a owned pin");
        assert_eq!(w.delete("one", "x").unwrap(), None);
        assert_eq!(
            w.put("one", "y", &a, false).unwrap(),
            Some(b.cid().unwrap())
        );
        let (_, unpin) = w.delete("one", "y").unwrap().unwrap();
        assert_eq!(unpin, None, "a's new pin was not the endpoint's");
        assert_eq!(w.delete_bucket("one").unwrap(), DeleteBucket::Deleted);
        assert_eq!(w.delete_bucket("one").unwrap(), DeleteBucket::NoSuchBucket);
        assert!(matches!(
            index.get("one", "x"),
            Err(S3Error::NoSuchBucket { .. })
        ));
    }

    #[test]
    fn conditional_puts_decide_inside_the_write() {
        use super::super::conditions::WriteRefused;
        let index = BucketIndex::open(None, Arc::new(crate::store::MemoryStore::new())).unwrap();
        let (a, b) = (entry(b"a"), entry(b"b"));
        let w = index.writer();
        w.create_bucket("one").unwrap();
        let refused = |r: Result<Option<Cid>, S3Error>| match r {
            Err(S3Error::WriteRefused { why, .. }) => Some(why),
            _ => None,
        };
        assert_eq!(
            refused(w.put_if("one", "k", &a, true, &WriteIf::Matches(None))),
            Some(WriteRefused::NoSuchKey)
        );
        w.put_if("one", "k", &a, true, &WriteIf::Absent).unwrap();
        assert_eq!(
            refused(w.put_if("one", "k", &b, true, &WriteIf::Absent)),
            Some(WriteRefused::Precondition)
        );
        let other = WriteIf::Matches(Some("other".into()));
        assert_eq!(
            refused(w.put_if("one", "k", &b, true, &other)),
            Some(WriteRefused::Precondition)
        );
        // A refused write changes nothing, reference counts included.
        assert_eq!(index.get("one", "k").unwrap(), Some(a.clone()));
        assert!(w.refs_of(&b.cid().unwrap()).unwrap().is_none());
        assert_eq!(w.refs_of(&a.cid().unwrap()).unwrap().unwrap().count, 1);
        let same = WriteIf::Matches(Some(a.etag.clone()));
        let released = w.put_if("one", "k", &b, true, &same).unwrap();
        assert_eq!(released, a.cid().ok());
        assert_eq!(index.get("one", "k").unwrap(), Some(b));
    }

    #[test]
    fn pins_a_crash_interrupted_are_found_at_open() {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn Store> = Arc::new(crate::store::MemoryStore::new());
        let (a, b, c) = (entry(b"a"), entry(b"b"), entry(b"c"));
        let (ca, cb, cc) = (a.cid().unwrap(), b.cid().unwrap(), c.cid().unwrap());
        {
            let index = BucketIndex::open(Some(dir.path()), Arc::clone(&store)).unwrap();
            let w = index.writer();
            w.create_bucket("one").unwrap();
            // a: pinned and committed; the commit clears its record.
            w.intend_pin(&ca).unwrap();
            assert_eq!(w.put("one", "a", &a, true).unwrap(), None);
            assert!(index.pending_cids().is_empty());
            // b: pinned, then the process dies before the commit.
            w.intend_pin(&cb).unwrap();
            // c: committed, then deleted; dies before the unpin.
            w.intend_pin(&cc).unwrap();
            w.put("one", "c", &c, true).unwrap();
            let (_, unpin) = w.delete("one", "c").unwrap().unwrap();
            assert_eq!(unpin, Some(cc));
        }
        let index = BucketIndex::open(Some(dir.path()), Arc::clone(&store)).unwrap();
        assert_eq!(index.pending_cids().len(), 2);
        let mut unpinned = Vec::new();
        let reported = index
            .reconcile(&mut |cid| {
                unpinned.push(*cid);
                Ok(())
            })
            .unwrap();
        unpinned.sort();
        let mut want = vec![cb, cc];
        want.sort();
        assert_eq!(unpinned, want, "b and c lost their pins, a kept it");
        assert_eq!(reported.len(), 2);
        assert!(index.pending_cids().is_empty());
        assert_eq!(index.get("one", "a").unwrap(), Some(a.clone()));
        // A released pin whose unpin finished is settled: nothing left.
        let w = index.writer();
        let (_, unpin) = w.delete("one", "a").unwrap().unwrap();
        assert_eq!(unpin, Some(ca));
        w.settle(&ca).unwrap();
        drop(w);
        assert!(index.pending_cids().is_empty());
        // A pending CID some object names again keeps its pin.
        let w = index.writer();
        w.intend_pin(&ca).unwrap();
        drop(w);
        let w = index.writer();
        w.put("one", "again", &a, true).unwrap();
        w.intend_pin(&ca).unwrap();
        drop(w);
        let none = index
            .reconcile(&mut |cid| panic!("{cid} is named"))
            .unwrap();
        assert!(none.is_empty());
    }
}

//! Object versions, as S3 keeps them in a bucket whose versioning was set
//! (`Enabled` or `Suspended`; a bucket never goes back to unversioned).
//!
//! Trees: `versioning` (bucket → `Enabled` | `Suspended`) and, per bucket,
//! `v/NAME`: its noncurrent versions and its delete markers, keyed
//! `KEY \0 (u64::MAX - SEQ)` (big-endian) → [`VersionRecord`]. Keys never
//! hold a NUL byte (`objects.rs` refuses them, and so does every write
//! here: [`check_key`]), so this is key order, and within a key newest
//! first: S3's order for ListObjectVersions; a key's records are read by
//! their exact length too, so none is taken for another key's. The
//! current version of a key stays in `o/NAME` (and the bucket's tree) as in
//! an unversioned bucket, its [`ObjectEntry::version_id`] set; a key whose
//! newest version is a delete marker has no `o/` entry.
//!
//! A version ID is its sequence number in 16 hex digits: the write's time
//! in ms shifted left 20 bits, raised past the key's newest version, so
//! IDs sort by age and never repeat within a key. Objects written before
//! versioning, and every write while it is suspended, are the "null"
//! version (no ID); a key has at most one.
//!
//! Pins: every version that is not a marker counts one reference to its
//! CID in `refs`, current or not, so its blocks stay pinned until the
//! version is deleted by ID (then its CID is released as any replaced
//! object's is). A version moving between `o/` and `v/` keeps its
//! reference; each change is one transaction over both trees, `refs`,
//! `pending` and the bucket's root, so a crash leaves every version
//! either fully there (blocks durable and pinned before the commit, as
//! for any PUT) or not at all.

use super::{abort, bump, count, failed, release, transaction_error, Abort, BucketIndex, Writer};
use super::{now_ms, ObjectEntry};
use crate::block::Cid;
use crate::s3::conditions::WriteIf;
use crate::s3::roots::move_root;
use crate::s3::S3Error;
use serde::{Deserialize, Serialize};
use sled::transaction::{ConflictableTransactionError, Transactional};

/// A bucket's versioning state, once set.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Versioning {
    /// Each write makes a new version.
    Enabled,
    /// Writes make the "null" version, replacing the previous one.
    Suspended,
}

impl Versioning {
    /// The name S3 gives the state.
    pub fn as_str(self) -> &'static str {
        match self {
            Versioning::Enabled => "Enabled",
            Versioning::Suspended => "Suspended",
        }
    }
}

/// A noncurrent version or a delete marker, as `v/NAME` keeps it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionRecord {
    /// The object (its `version_id` as this one's); none: a delete marker.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object: Option<ObjectEntry>,
    /// The version ID; none: the "null" version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version_id: Option<String>,
    /// When it was written, in ms since the Unix epoch.
    pub mtime_ms: u64,
}

impl VersionRecord {
    fn encode(&self) -> Vec<u8> {
        // Strings and numbers always serialize.
        serde_json::to_vec(self).unwrap_or_default()
    }

    fn decode(bytes: &[u8]) -> Result<VersionRecord, S3Error> {
        serde_json::from_slice(bytes).map_err(|e| S3Error::BadEntry {
            what: "object version",
            why: e.to_string(),
        })
    }

    fn cid(&self) -> Result<Option<Cid>, S3Error> {
        self.object.as_ref().map(ObjectEntry::cid).transpose()
    }

    /// As a read finds it; `newest`: a marker that is the key's newest
    /// version (an object here never is: the current one is in `o/`).
    fn into_version(self, newest: bool) -> Version {
        match self.object {
            Some(entry) => Version::Object {
                entry,
                current: false,
            },
            None => Version::Marker {
                version_id: self.version_id,
                mtime_ms: self.mtime_ms,
                current: newest,
            },
        }
    }
}

/// A version as a read finds it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Version {
    /// An object (`current`: the key's newest version).
    Object {
        /// The object, its `version_id` set unless it is the null version.
        entry: ObjectEntry,
        /// Whether it is the key's newest version.
        current: bool,
    },
    /// A delete marker.
    Marker {
        /// Its ID; none: the null version.
        version_id: Option<String>,
        /// When it was made.
        mtime_ms: u64,
        /// Whether it is the key's newest version.
        current: bool,
    },
}

/// The ID a response names for `id` (none: `null`).
pub fn shown(id: Option<&str>) -> String {
    id.unwrap_or("null").to_string()
}

/// A version ID as the request gave it: `null`, or one of ours.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VersionId {
    /// The null version.
    Null,
    /// A version made with versioning enabled.
    Seq(u64),
}

impl VersionId {
    /// Parses a request's version ID; none: not one this endpoint makes.
    pub fn parse(text: &str) -> Option<VersionId> {
        if text == "null" {
            return Some(VersionId::Null);
        }
        if text.len() != 16 || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        u64::from_str_radix(text, 16).ok().map(VersionId::Seq)
    }

    fn matches(self, id: Option<&str>) -> bool {
        match (self, id) {
            (VersionId::Null, None) => true,
            (VersionId::Seq(s), Some(id)) => VersionId::parse(id) == Some(VersionId::Seq(s)),
            _ => false,
        }
    }
}

fn id_of(seq: u64) -> String {
    format!("{seq:016x}")
}

fn seq_of(id: &str) -> u64 {
    match VersionId::parse(id) {
        Some(VersionId::Seq(s)) => s,
        _ => 0,
    }
}

/// Where version `seq` of `key` sits in `v/NAME`.
pub fn version_key(key: &[u8], seq: u64) -> Vec<u8> {
    [key, &[0], &(u64::MAX - seq).to_be_bytes()].concat()
}

/// Where the current version of `key` sits in a listing of versions:
/// before every other version of the key.
pub fn current_key(key: &[u8]) -> Vec<u8> {
    [key, &[0], &[0u8; 8]].concat()
}

/// The records of `key`'s versions in `v/NAME`, newest first: those at
/// `KEY \0 SEQ` exactly. The prefix `KEY \0` alone would also match the
/// records of a longer key that starts with `KEY \0` (were a NUL ever in a
/// key); a record of `key` is the only one of its length under the prefix.
fn versions_of_key(
    tree: &sled::Tree,
    key: &[u8],
) -> impl Iterator<Item = sled::Result<(sled::IVec, sled::IVec)>> {
    let len = key.len() + 9;
    tree.scan_prefix([key, &[0]].concat())
        .filter(move |kv| !matches!(kv, Ok((k, _)) if k.len() != len))
}

/// Refuses a key the versions tree could not keep apart from another (a
/// NUL byte ends the key part of its records); `objects.rs` refuses such
/// keys at the edge already, this keeps every other way in out too.
pub(in crate::s3) fn check_key(key: &str) -> Result<(), S3Error> {
    if key.as_bytes().contains(&0) {
        return Err(S3Error::InvalidKey {
            key: key.escape_default().to_string(),
            why: "object keys may not contain a NUL byte",
        });
    }
    Ok(())
}

/// The sequence number of the version at `at` in `v/NAME`.
fn seq_at(at: &[u8]) -> u64 {
    let mut b = [0u8; 8];
    if at.len() >= 8 {
        b.copy_from_slice(&at[at.len() - 8..]);
    }
    u64::MAX - u64::from_be_bytes(b)
}

pub(super) fn versions_tree_name(bucket: &str) -> Vec<u8> {
    [b"v/", bucket.as_bytes()].concat()
}

impl BucketIndex {
    /// `bucket`'s versioning state (none: never set, or a mounted bucket).
    pub fn versioning(&self, bucket: &str) -> Result<Option<Versioning>, S3Error> {
        let v = self
            .versioning
            .get(bucket.as_bytes())
            .map_err(failed("reading a bucket's versioning"))?;
        Ok(match v.as_deref() {
            Some(b"Enabled") => Some(Versioning::Enabled),
            Some(b"Suspended") => Some(Versioning::Suspended),
            _ => None,
        })
    }

    /// The noncurrent versions and delete markers of the local `bucket`.
    pub(super) fn versions_tree(&self, bucket: &str) -> Result<sled::Tree, S3Error> {
        self.db
            .open_tree(versions_tree_name(bucket))
            .map_err(failed("opening a bucket's versions"))
    }

    /// The noncurrent versions and markers of `key`, newest first, each
    /// with where it sits.
    pub(super) fn older_versions(
        &self,
        tree: &sled::Tree,
        key: &str,
    ) -> Result<Vec<(Vec<u8>, VersionRecord)>, S3Error> {
        versions_of_key(tree, key.as_bytes())
            .map(|kv| {
                let (k, v) = kv.map_err(failed("reading versions"))?;
                Ok((k.to_vec(), VersionRecord::decode(&v)?))
            })
            .collect()
    }

    /// The version `id` of `key` (none: the newest), if there is one. A
    /// mounted bucket's tree carries only current versions.
    pub fn version(
        &self,
        bucket: &str,
        key: &str,
        id: Option<VersionId>,
    ) -> Result<Option<Version>, S3Error> {
        let current = self.get(bucket, key)?;
        if let Some(entry) = &current {
            if id.is_none_or(|id| id.matches(entry.version_id.as_deref())) {
                let entry = entry.clone();
                return Ok(Some(Version::Object {
                    entry,
                    current: true,
                }));
            }
        }
        if self.local_bucket(bucket)?.is_none() {
            return Ok(None);
        }
        let tree = self.versions_tree(bucket)?;
        let found = match id {
            // Only a delete marker can be newer than every object.
            None => self.older_versions(&tree, key)?.into_iter().next(),
            Some(VersionId::Seq(seq)) => tree
                .get(version_key(key.as_bytes(), seq))
                .map_err(failed("reading a version"))?
                .map(|v| Ok::<_, S3Error>((Vec::new(), VersionRecord::decode(&v)?)))
                .transpose()?
                .filter(|(_, r)| VersionId::Seq(seq).matches(r.version_id.as_deref())),
            Some(VersionId::Null) => self
                .older_versions(&tree, key)?
                .into_iter()
                .find(|(_, r)| r.version_id.is_none()),
        };
        let Some((_, record)) = found else {
            return Ok(None);
        };
        if id.is_none() && record.object.is_some() {
            return Ok(None);
        }
        let newest = current.is_none()
            && self.older_versions(&tree, key)?.first().map(|(_, r)| r) == Some(&record);
        Ok(Some(record.into_version(newest)))
    }
}

/// What a write to a versioned key does to the versions beside the new
/// current one (decided under the writer lock, committed in one
/// transaction).
#[derive(Default)]
struct Plan {
    /// Records to add to `v/NAME`.
    add: Vec<(Vec<u8>, VersionRecord)>,
    /// Records to remove from `v/NAME`.
    remove: Vec<Vec<u8>>,
    /// The CID of a version dropped for good.
    release: Option<Cid>,
    /// The key's new current entry (none: no `o/` entry).
    current: Option<ObjectEntry>,
    /// The new current entry's CID gains a reference (`owned`).
    acquire: Option<(Cid, bool)>,
}

/// What a versioned write did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Written {
    /// A CID nothing names any more, to unpin (as [`Writer::put`]).
    pub released: Option<Cid>,
    /// The version ID to answer with (`null` included); none for a bucket
    /// without versioning.
    pub version_id: Option<String>,
    /// Whether the version written or removed is a delete marker.
    pub marker: bool,
}

impl Writer<'_> {
    /// Sets `bucket`'s versioning (a mounted bucket cannot be changed).
    pub fn set_versioning(&self, bucket: &str, state: Versioning) -> Result<(), S3Error> {
        let i = self.index;
        i.objects(bucket)?;
        i.versioning
            .insert(bucket.as_bytes(), state.as_str().as_bytes())
            .map_err(failed("setting a bucket's versioning"))?;
        i.flush()
    }

    /// Moves `key`'s current entry (if any) aside for a new version (or
    /// drops it, and a suspended bucket's null version); returns the new
    /// version's sequence number, past every version of the key.
    fn make_room(
        &self,
        (bucket, tree): (&str, &sled::Tree),
        key: &str,
        state: Versioning,
        plan: &mut Plan,
    ) -> Result<u64, S3Error> {
        let i = self.index;
        let older = i.older_versions(tree, key)?;
        let newest = older.first().map_or(0, |(k, _)| seq_at(k));
        let mut floor = newest;
        if let Some(now) = i.get(bucket, key)? {
            let keep = state == Versioning::Enabled || now.version_id.is_some();
            if keep {
                let seq = match &now.version_id {
                    Some(id) => seq_of(id),
                    None => (now.mtime_ms << 20).max(newest + 1),
                };
                floor = floor.max(seq);
                plan.add.push((
                    version_key(key.as_bytes(), seq),
                    VersionRecord {
                        version_id: now.version_id.clone(),
                        mtime_ms: now.mtime_ms,
                        object: Some(now),
                    },
                ));
            } else {
                plan.release = Some(now.cid()?);
            }
        }
        if state == Versioning::Suspended {
            // The null version goes, wherever it is.
            if let Some((at, record)) = older.into_iter().find(|(_, r)| r.version_id.is_none()) {
                plan.release = plan.release.or(record.cid()?);
                plan.remove.push(at);
            }
        }
        Ok((now_ms() << 20).max(floor + 1))
    }

    /// Writes `entry` as the new current version of `key` in the
    /// versioned `bucket`.
    pub(super) fn put_version(
        &self,
        target: (&str, &str),
        entry: &ObjectEntry,
        owned: bool,
        condition: &WriteIf,
        state: Versioning,
    ) -> Result<Written, S3Error> {
        let (bucket, key) = target;
        let i = self.index;
        let tree = i.versions_tree(bucket)?;
        let now = i.get(bucket, key)?;
        condition
            .check(now.as_ref().map(|e| e.etag.as_str()))
            .map_err(|why| S3Error::WriteRefused {
                bucket: bucket.to_string(),
                key: key.to_string(),
                why,
            })?;
        let mut plan = Plan::default();
        let seq = self.make_room((bucket, &tree), key, state, &mut plan)?;
        let version_id = (state == Versioning::Enabled).then(|| id_of(seq));
        plan.current = Some(ObjectEntry {
            version_id: version_id.clone(),
            ..entry.clone()
        });
        plan.acquire = Some((entry.cid()?, owned));
        let released = self.apply(bucket, key, &tree, plan)?;
        Ok(Written {
            released,
            version_id: Some(shown(version_id.as_deref())),
            marker: false,
        })
    }

    /// Deletes `key` in the versioned `bucket`: with `id`, that version
    /// for good (the next newest becomes current); without, by adding a
    /// delete marker. An unknown version is no change.
    pub(super) fn delete_version(
        &self,
        bucket: &str,
        key: &str,
        id: Option<VersionId>,
        state: Versioning,
    ) -> Result<Written, S3Error> {
        let i = self.index;
        let tree = i.versions_tree(bucket)?;
        let mut plan = Plan::default();
        let Some(id) = id else {
            let seq = self.make_room((bucket, &tree), key, state, &mut plan)?;
            let version_id = (state == Versioning::Enabled).then(|| id_of(seq));
            plan.add.push((
                version_key(key.as_bytes(), seq),
                VersionRecord {
                    object: None,
                    version_id: version_id.clone(),
                    mtime_ms: now_ms(),
                },
            ));
            let released = self.apply(bucket, key, &tree, plan)?;
            return Ok(Written {
                released,
                version_id: Some(shown(version_id.as_deref())),
                marker: true,
            });
        };
        let now = i.get(bucket, key)?;
        let mut older = i.older_versions(&tree, key)?;
        let mut marker = false;
        let promote = match now {
            Some(now) if id.matches(now.version_id.as_deref()) => {
                plan.release = Some(now.cid()?);
                true
            }
            now => {
                let Some(at) = older
                    .iter()
                    .position(|(_, r)| id.matches(r.version_id.as_deref()))
                else {
                    return Ok(Written::default());
                };
                let (k, record) = older.remove(at);
                marker = record.object.is_none();
                plan.release = record.cid()?;
                plan.remove.push(k);
                plan.current = now.clone();
                now.is_none() && at == 0
            }
        };
        if promote {
            // The next newest version becomes current, unless it is a
            // delete marker (which then is).
            plan.current = None;
            if let Some((
                k,
                VersionRecord {
                    object: Some(o), ..
                },
            )) = older.first()
            {
                plan.remove.push(k.clone());
                plan.current = Some(o.clone());
            }
        }
        let released = self.apply(bucket, key, &tree, plan)?;
        Ok(Written {
            released,
            version_id: Some(match id {
                VersionId::Null => "null".to_string(),
                VersionId::Seq(s) => id_of(s),
            }),
            marker,
        })
    }

    /// Commits `plan` for `key`: the bucket's tree and `o/` entry set to
    /// its current entry, `v/` records added and removed, references
    /// counted; returns the CID to unpin, if any.
    fn apply(
        &self,
        bucket: &str,
        key: &str,
        versions: &sled::Tree,
        plan: Plan,
    ) -> Result<Option<Cid>, S3Error> {
        let i = self.index;
        let objects = i.objects(bucket)?;
        let m = self.change(bucket, key, plan.current.as_ref())?;
        let current = plan.current.as_ref().map(ObjectEntry::encode);
        let add: Vec<(Vec<u8>, Vec<u8>)> = plan
            .add
            .iter()
            .map(|(k, r)| (k.clone(), r.encode()))
            .collect();
        let added = plan.current.as_ref().map_or(0, |e| e.size);
        let result = (
            &i.buckets, &objects, versions, &i.refs, &i.pending, &i.roots, &i.bytes,
        )
            .transaction(
                |(buckets, objects, versions, refs, pending, roots, bytes)| {
                    if buckets.get(bucket.as_bytes())?.is_none() {
                        return Err(ConflictableTransactionError::Abort(Abort::NoSuchBucket));
                    }
                    let root = move_root(roots, refs, pending, bucket, &m)?;
                    if let Some((cid, owned)) = &plan.acquire {
                        let cid = cid.to_bytes();
                        bump(refs, &cid, 1, *owned)?;
                        pending.remove(&cid[..])?;
                    }
                    let replaced = match &current {
                        Some(v) => objects.insert(key.as_bytes(), &v[..])?,
                        None => objects.remove(key.as_bytes())?,
                    };
                    let removed = match replaced {
                        Some(old) => ObjectEntry::decode(&old).map_err(abort)?.size,
                        None => 0,
                    };
                    count(bytes, bucket, added, removed)?;
                    for k in &plan.remove {
                        versions.remove(&k[..])?;
                    }
                    for (k, v) in &add {
                        versions.insert(&k[..], &v[..])?;
                    }
                    let released = match &plan.release {
                        Some(cid) => release(refs, pending, cid)?,
                        None => None,
                    };
                    Ok((released, root))
                },
            )
            .map_err(|e| transaction_error(e, bucket, key));
        let durable = self.finish_move(&m, result.as_ref().ok().map(|r| r.1));
        let (released, _) = result?;
        if !durable {
            i.flush()?;
        }
        Ok(released)
    }
}

/// Every version of one bucket's keys, to page through in S3's order: a
/// key's current version (at [`current_key`]), then its older ones and
/// markers newest first (at their `v/NAME` keys).
pub struct AllVersions {
    current: super::Objects,
    older: Option<sled::Tree>,
}

/// A version a listing finds: where it sits, its key, the version.
pub type FoundVersion = Option<(Vec<u8>, Vec<u8>, Version)>;

impl AllVersions {
    /// The first version at or after the listing position `from`.
    pub fn first_from(&self, from: &[u8]) -> Result<FoundVersion, S3Error> {
        let key_part = match from.iter().position(|b| *b == 0) {
            Some(i) => &from[..i],
            None => from,
        };
        let mut now = self.current.first_from(key_part)?;
        if let Some((k, _)) = &now {
            if current_key(k).as_slice() < from {
                now = self.current.first_from(&crate::s3::list::after(k))?;
            }
        }
        let old = match &self.older {
            Some(tree) => match tree.range(from..).next() {
                Some(kv) => {
                    let (k, v) = kv.map_err(failed("listing versions"))?;
                    Some((k.to_vec(), VersionRecord::decode(&v)?))
                }
                None => None,
            },
            None => None,
        };
        let now = now.map(|(k, e)| (current_key(&k), k, e));
        match (now, old) {
            (None, None) => Ok(None),
            (Some((pos, key, entry)), old) if old.as_ref().is_none_or(|(o, _)| pos < *o) => {
                let current = true;
                Ok(Some((pos, key, Version::Object { entry, current })))
            }
            (_, Some((pos, record))) => {
                let key = pos[..pos.len().saturating_sub(9)].to_vec();
                let newest = match &record.object {
                    Some(_) => false,
                    None => {
                        let has_current = self
                            .current
                            .first_from(&key)?
                            .is_some_and(|(k, _)| k == key);
                        let first = self
                            .older
                            .as_ref()
                            .and_then(|t| versions_of_key(t, &key).next());
                        let first = first.transpose().map_err(failed("listing versions"))?;
                        !has_current && first.is_some_and(|(k, _)| k.as_ref() == pos.as_slice())
                    }
                };
                Ok(Some((pos, key, record.into_version(newest))))
            }
            (Some(_), None) => Ok(None),
        }
    }
}

impl BucketIndex {
    /// Every version of `bucket`'s keys (a mounted bucket's current ones).
    pub fn versions_of(&self, bucket: &str) -> Result<AllVersions, S3Error> {
        let current = self.objects_of(bucket)?;
        let older = match self.local_bucket(bucket)? {
            Some(_) => Some(self.versions_tree(bucket)?),
            None => None,
        };
        Ok(AllVersions { current, older })
    }

    /// Where version `id` of `key` sits in a listing of versions (none:
    /// there is no such version).
    pub fn version_position(
        &self,
        bucket: &str,
        key: &str,
        id: VersionId,
    ) -> Result<Option<Vec<u8>>, S3Error> {
        if let Some(e) = self.get(bucket, key)? {
            if id.matches(e.version_id.as_deref()) {
                return Ok(Some(current_key(key.as_bytes())));
            }
        }
        if self.local_bucket(bucket)?.is_none() {
            return Ok(None);
        }
        Ok(match id {
            VersionId::Seq(seq) => Some(version_key(key.as_bytes(), seq)),
            VersionId::Null => self
                .older_versions(&self.versions_tree(bucket)?, key)?
                .into_iter()
                .find(|(_, r)| r.version_id.is_none())
                .map(|(k, _)| k),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::s3::index::tests::entry;
    use crate::store::MemoryStore;
    use std::sync::Arc;

    fn listed(index: &BucketIndex, bucket: &str) -> Vec<(String, Option<String>, bool, bool)> {
        let all = index.versions_of(bucket).unwrap();
        let mut out = Vec::new();
        let mut from = Vec::new();
        while let Some((pos, key, v)) = all.first_from(&from).unwrap() {
            let key = String::from_utf8(key).unwrap();
            out.push(match v {
                Version::Object { entry, current } => (key, entry.version_id, current, false),
                Version::Marker {
                    version_id,
                    current,
                    ..
                } => (key, version_id, current, true),
            });
            from = crate::s3::list::after(&pos);
        }
        out
    }

    /// A key's versions are its own: no write takes a key with a NUL
    /// byte, and a record under `KEY \0` of another (longer) key is never
    /// read as one of `KEY`'s.
    #[test]
    fn keys_with_nul_are_refused_and_never_read_as_anothers_versions() {
        let index = BucketIndex::open(None, Arc::new(MemoryStore::new())).unwrap();
        let (a, b) = (entry(b"a"), entry(b"b"));
        let w = index.writer();
        w.create_bucket("v").unwrap();
        w.set_versioning("v", Versioning::Enabled).unwrap();
        let always = &WriteIf::Always;
        for key in ["a\0", "a\0b", "\0"] {
            let refused = w.write(("v", key), &a, true, always);
            assert!(
                matches!(refused, Err(S3Error::InvalidKey { .. })),
                "{key:?}: {refused:?}"
            );
            let upload = crate::s3::index::UploadEntry {
                content_type: None,
                metadata: Default::default(),
                initiated_ms: now_ms(),
                checksum_algorithm: None,
                full_object: false,
            };
            let refused = w.create_upload("v", key, "id", &upload);
            assert!(matches!(refused, Err(S3Error::InvalidKey { .. })));
        }
        w.write(("v", "a"), &a, true, always).unwrap();
        let older = w.write(("v", "a"), &b, true, always).unwrap();
        // A record whose key starts with `a \0`, as a NUL key would make.
        let tree = index.versions_tree("v").unwrap();
        // A null version, so that read as one of `a`'s it would be
        // `a`'s null version.
        let stray = VersionRecord {
            object: None,
            version_id: None,
            mtime_ms: now_ms(),
        };
        let at = version_key(b"a\0\0\0\0\0\0\0\0\0", 1);
        assert!(at.starts_with(b"a\0"));
        tree.insert(at, stray.encode()).unwrap();
        let null = index.version("v", "a", Some(VersionId::Null)).unwrap();
        assert_eq!(null, None, "the stray record is no version of a");
        let mine = index.older_versions(&tree, "a").unwrap();
        assert_eq!(mine.len(), 1, "{mine:?}");
        assert_eq!(mine[0].1.object.as_ref().map(|o| &o.cid), Some(&a.cid));
        assert!(older.version_id.is_some());
        // b stays current, and a is the newest older version.
        let newest = index.version("v", "a", None).unwrap();
        assert!(matches!(
            newest,
            Some(Version::Object { current: true, .. })
        ));
    }

    #[test]
    fn versions_keep_their_references_until_deleted_by_id() {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn crate::store::Store> = Arc::new(MemoryStore::new());
        let (a, b, c) = (entry(b"a"), entry(b"b"), entry(b"c"));
        let ids = {
            let index = BucketIndex::open(Some(dir.path()), Arc::clone(&store)).unwrap();
            let w = index.writer();
            w.create_bucket("v").unwrap();
            w.put("v", "k", &a, true).unwrap();
            w.set_versioning("v", Versioning::Enabled).unwrap();
            let always = &WriteIf::Always;
            let wb = w.write(("v", "k"), &b, true, always).unwrap();
            let wc = w.write(("v", "k"), &c, true, always).unwrap();
            assert_eq!((wb.released, wc.released), (None, None), "all kept");
            let (idb, idc) = (wb.version_id.unwrap(), wc.version_id.unwrap());
            assert!(idb < idc, "{idb} < {idc}");
            let marker = w.delete_object("v", "k", None).unwrap();
            assert!(marker.marker);
            assert_eq!(marker.released, None);
            assert_eq!(index.get("v", "k").unwrap(), None);
            (idb, idc, marker.version_id.unwrap())
        };
        // Reopened: every version is there, in S3's order.
        let index = BucketIndex::open(Some(dir.path()), Arc::clone(&store)).unwrap();
        let (idb, idc, idm) = ids;
        assert_eq!(
            listed(&index, "v"),
            vec![
                ("k".into(), Some(idm.clone()), true, true),
                ("k".into(), Some(idc.clone()), false, false),
                ("k".into(), Some(idb.clone()), false, false),
                ("k".into(), None, false, false),
            ]
        );
        for e in [&a, &b, &c] {
            assert_eq!(index.refs_of(&e.cid().unwrap()).unwrap().unwrap().count, 1);
        }
        let w = index.writer();
        assert_eq!(
            w.delete_bucket("v").unwrap(),
            crate::s3::index::DeleteBucket::NotEmpty
        );
        // Deleting the marker makes c current again; deleting b releases it.
        let seq = |id: &str| VersionId::parse(id);
        w.delete_object("v", "k", seq(&idm)).unwrap();
        assert_eq!(index.get("v", "k").unwrap().unwrap().cid, c.cid);
        let gone = w.delete_object("v", "k", seq(&idb)).unwrap();
        assert_eq!(gone.released, Some(b.cid().unwrap()));
        // Deleting the current version promotes the null one.
        let gone = w.delete_object("v", "k", seq(&idc)).unwrap();
        assert_eq!(gone.released, Some(c.cid().unwrap()));
        let now = index.get("v", "k").unwrap().unwrap();
        assert_eq!((now.cid.as_str(), now.version_id), (a.cid.as_str(), None));
        // Suspended: writes replace the null version.
        w.set_versioning("v", Versioning::Suspended).unwrap();
        let put = w.write(("v", "k"), &b, true, &WriteIf::Always).unwrap();
        assert_eq!(put.released, Some(a.cid().unwrap()));
        assert_eq!(put.version_id.as_deref(), Some("null"));
        let gone = w.delete_object("v", "k", Some(VersionId::Null)).unwrap();
        assert_eq!(gone.released, Some(b.cid().unwrap()));
        assert!(listed(&index, "v").is_empty());
        assert_eq!(
            w.delete_bucket("v").unwrap(),
            crate::s3::index::DeleteBucket::Deleted
        );
    }
}

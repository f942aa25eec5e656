//! Object writes: PUT (conditional or not) and DELETE of a key, each one
//! sled transaction that moves the bucket's root beside the entry and the
//! reference counts. A bucket with versioning set goes through
//! `versions.rs` instead, which keeps the versions a write replaces.

use super::{abort, bump, count, release, transaction_error, Abort, ObjectEntry, Writer};
use super::{VersionId, Written};
use crate::block::Cid;
use crate::s3::conditions::WriteIf;
use crate::s3::roots::move_root;
use crate::s3::S3Error;
use sled::transaction::{ConflictableTransactionError, Transactional};

impl Writer<'_> {
    /// Sets `key` to `entry`, counting a reference to its CID (`owned`: the
    /// caller pinned it for this, when no object named it before), and
    /// moves the bucket's root. Returns a CID no object names any more
    /// whose pin the endpoint made, recorded as pending in the same
    /// transaction (which also clears the pending record of the new CID):
    /// the caller unpins it, then [`settle`](Self::settle)s it (a crash in
    /// between leaves it to [`BucketIndex::reconcile`]).
    pub fn put(
        &self,
        bucket: &str,
        key: &str,
        entry: &ObjectEntry,
        owned: bool,
    ) -> Result<Option<Cid>, S3Error> {
        self.put_if(bucket, key, entry, owned, &WriteIf::Always)
    }

    /// [`put`](Self::put) if `condition` holds for what `key` holds in the
    /// same transaction (so two conditional writes of one key cannot both
    /// pass); [`S3Error::WriteRefused`] when it does not.
    pub fn put_if(
        &self,
        bucket: &str,
        key: &str,
        entry: &ObjectEntry,
        owned: bool,
        condition: &WriteIf,
    ) -> Result<Option<Cid>, S3Error> {
        self.write((bucket, key), entry, owned, condition)
            .map(|w| w.released)
    }

    /// [`put_if`](Self::put_if), as a new version of `key` when the bucket
    /// is versioned (its ID in the answer; `entry`'s own is ignored).
    pub fn write(
        &self,
        (bucket, key): (&str, &str),
        entry: &ObjectEntry,
        owned: bool,
        condition: &WriteIf,
    ) -> Result<Written, S3Error> {
        let i = self.index;
        if let Some(state) = i.versioning(bucket)? {
            return self.put_version((bucket, key), entry, owned, condition, state);
        }
        let entry = &ObjectEntry {
            version_id: None,
            ..entry.clone()
        };
        let tree = i.objects(bucket)?;
        let new_cid = entry.cid()?.to_bytes();
        let encoded = entry.encode();
        let m = self.change(bucket, key, Some(entry))?;
        let result = (&i.buckets, &tree, &i.refs, &i.pending, &i.roots, &i.bytes)
            .transaction(|(buckets, objects, refs, pending, roots, bytes)| {
                if buckets.get(bucket.as_bytes())?.is_none() {
                    return Err(ConflictableTransactionError::Abort(Abort::NoSuchBucket));
                }
                if *condition != WriteIf::Always {
                    let now = match objects.get(key.as_bytes())? {
                        Some(v) => Some(ObjectEntry::decode(&v).map_err(abort)?),
                        None => None,
                    };
                    condition
                        .check(now.as_ref().map(|e| e.etag.as_str()))
                        .map_err(|why| ConflictableTransactionError::Abort(Abort::Refused(why)))?;
                }
                let root = move_root(roots, refs, pending, bucket, &m)?;
                bump(refs, &new_cid, 1, owned)?;
                pending.remove(&new_cid[..])?;
                let Some(old) = objects.insert(key.as_bytes(), &encoded[..])? else {
                    count(bytes, bucket, entry.size, 0)?;
                    return Ok((None, root));
                };
                let old = ObjectEntry::decode(&old).map_err(abort)?;
                count(bytes, bucket, entry.size, old.size)?;
                let old = old.cid().map_err(abort)?;
                Ok((release(refs, pending, &old)?, root))
            })
            .map_err(|e| transaction_error(e, bucket, key));
        let durable = self.finish_move(&m, result.as_ref().ok().map(|r| r.1));
        let (released, _) = result?;
        if !durable {
            i.flush()?;
        }
        Ok(Written {
            released,
            ..Written::default()
        })
    }

    /// DeleteObject of `key` (version `id`, if given) as S3 does it: in a
    /// versioned bucket, a delete marker or the removal of one version; in
    /// another, the removal of the key (its only version is "null").
    pub fn delete_object(
        &self,
        bucket: &str,
        key: &str,
        id: Option<VersionId>,
    ) -> Result<Written, S3Error> {
        if let Some(state) = self.index.versioning(bucket)? {
            return self.delete_version(bucket, key, id, state);
        }
        if id.is_some_and(|id| id != VersionId::Null) {
            return Ok(Written::default());
        }
        let released = self.delete(bucket, key)?.and_then(|(_, cid)| cid);
        Ok(Written {
            released,
            version_id: id.map(|_| "null".to_string()),
            marker: false,
        })
    }

    /// Removes `key`; returns its entry (none: there was no such key) and,
    /// as [`put`](Self::put), a CID to unpin.
    pub fn delete(
        &self,
        bucket: &str,
        key: &str,
    ) -> Result<Option<(ObjectEntry, Option<Cid>)>, S3Error> {
        let i = self.index;
        let tree = i.objects(bucket)?;
        let m = self.change(bucket, key, None)?;
        let result = (&tree, &i.refs, &i.pending, &i.roots, &i.bytes)
            .transaction(|(objects, refs, pending, roots, bytes)| {
                let root = move_root(roots, refs, pending, bucket, &m)?;
                let Some(old) = objects.remove(key.as_bytes())? else {
                    return Ok((None, root));
                };
                let old = ObjectEntry::decode(&old).map_err(abort)?;
                count(bytes, bucket, 0, old.size)?;
                let cid = old.cid().map_err(abort)?;
                let unpin = release(refs, pending, &cid)?;
                Ok((Some((old, unpin)), root))
            })
            .map_err(|e| transaction_error(e, bucket, key));
        let durable = self.finish_move(&m, result.as_ref().ok().map(|r| r.1));
        let (removed, _) = result?;
        if !durable && (removed.is_some() || m.old != Some(m.new)) {
            i.flush()?;
        }
        Ok(removed)
    }
}

//! Open multipart uploads, in the bucket index's database so that a part's
//! reference to its CID and an object's are counted in the same `refs`
//! tree (a part's DAG is pinned while any open upload or object names it).
//!
//! Trees: `uploads` (`BUCKET \0 KEY \0 ID` → [`UploadEntry`], so a bucket's
//! uploads list in key order, then by ID, which starts with the time it
//! was made), `parts` (`ID \0 NUMBER` (u32, big-endian) → [`PartEntry`]) and
//! `part_leaves` (same key → the leaves of the part's DAG, which the
//! completed object's tree links). Every change is one transaction over
//! these, `refs` and `pending`, flushed before it is acknowledged.
//!
//! A part's pin follows the objects' discipline: the endpoint records it
//! as pending before pinning, and [`Writer::put_part`] clears that record
//! in the transaction that counts the part's reference; a part replaced or
//! dropped (abort, expiry, completion, its bucket deleted) whose pin no
//! one else needs is recorded as pending in the transaction that drops its
//! reference, and settled once unpinned. So a crash never orphans a part's
//! pin ([`BucketIndex::reconcile`] finds it) nor loses an acknowledged
//! part (its reference was committed before the answer).

use super::{abort, bump, failed, release, transaction_error, Abort, BucketIndex, Writer};
use crate::block::Cid;
use crate::dag::builder::Built;
use crate::s3::checksum::{Algorithm, ObjectChecksum};
use crate::s3::S3Error;
use serde::{Deserialize, Serialize};
use sled::transaction::{ConflictableTransactionError, Transactional};
use std::collections::BTreeMap;

/// An open upload as the index keeps it: what the object will carry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UploadEntry {
    /// The Content-Type given when the upload was made.
    #[serde(default)]
    pub content_type: Option<String>,
    /// `x-amz-meta-*` values, by name without the prefix.
    #[serde(default)]
    pub metadata: BTreeMap<String, String>,
    /// When it was made, in milliseconds since the Unix epoch.
    pub initiated_ms: u64,
    /// The checksum algorithm its parts carry, if it was made with one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checksum_algorithm: Option<Algorithm>,
    /// The object's checksum is to be of its whole body (`FULL_OBJECT`),
    /// not of its parts' checksums (`COMPOSITE`).
    #[serde(default)]
    pub full_object: bool,
}

/// One uploaded part.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartEntry {
    /// The root of the part's UnixFS file DAG.
    pub cid: String,
    /// Bytes in the part.
    pub size: u64,
    /// The MD5 of its bytes, in hex (its ETag).
    pub md5: String,
    /// When it was uploaded, in milliseconds since the Unix epoch.
    pub mtime_ms: u64,
    /// Its checksum, checked at upload.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checksum: Option<ObjectChecksum>,
}

impl PartEntry {
    /// The part's CID.
    pub fn cid(&self) -> Result<Cid, S3Error> {
        crate::block::parse_cid(&self.cid).map_err(|e| S3Error::BadEntry {
            what: "part CID",
            why: e.to_string(),
        })
    }
}

/// An open upload found by a listing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListedUpload {
    /// The object key it will write.
    pub key: String,
    /// Its upload ID.
    pub id: String,
    /// What the index keeps of it.
    pub entry: UploadEntry,
}

fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    // Structs of strings and numbers always serialize.
    serde_json::to_vec(value).unwrap_or_default()
}

fn decode<T: for<'a> Deserialize<'a>>(what: &'static str, bytes: &[u8]) -> Result<T, S3Error> {
    serde_json::from_slice(bytes).map_err(|e| S3Error::BadEntry {
        what,
        why: e.to_string(),
    })
}

fn no_such_upload(id: &str) -> S3Error {
    S3Error::NoSuchUpload { id: id.to_string() }
}

/// `BUCKET \0 KEY \0 ID`: where the uploads tree keeps an upload.
fn upload_key(bucket: &str, key: &str, id: &str) -> Vec<u8> {
    [
        bucket.as_bytes(),
        b"\0",
        key.as_bytes(),
        b"\0",
        id.as_bytes(),
    ]
    .concat()
}

/// `ID \0`: the start of every key of an upload's parts.
fn parts_prefix(id: &str) -> Vec<u8> {
    [id.as_bytes(), b"\0"].concat()
}

fn part_key(id: &str, number: u32) -> Vec<u8> {
    [&parts_prefix(id)[..], &number.to_be_bytes()].concat()
}

/// The leaves of a part as `part_leaves` keeps them: per leaf, the CID's
/// length (one byte) and bytes, then its file bytes and cumulative size
/// (u64, big-endian each).
pub fn encode_leaves(leaves: &[Built]) -> Vec<u8> {
    let mut out = Vec::with_capacity(leaves.len() * 56);
    for leaf in leaves {
        let cid = leaf.cid.to_bytes();
        // A CID is a version, a codec and a multihash of at most 64 bytes.
        out.push(u8::try_from(cid.len()).unwrap_or(u8::MAX));
        out.extend_from_slice(&cid);
        out.extend_from_slice(&leaf.file_size.to_be_bytes());
        out.extend_from_slice(&leaf.tsize.to_be_bytes());
    }
    out
}

/// The leaves [`encode_leaves`] wrote.
pub fn decode_leaves(mut bytes: &[u8]) -> Result<Vec<Built>, S3Error> {
    let bad = |why: &str| S3Error::BadEntry {
        what: "part leaves",
        why: why.to_string(),
    };
    let mut leaves = Vec::new();
    while let Some((&len, rest)) = bytes.split_first() {
        let len = usize::from(len);
        if rest.len() < len + 16 {
            return Err(bad("truncated"));
        }
        let (cid, rest) = rest.split_at(len);
        let cid = crate::block::cid_from_bytes(cid).map_err(|e| bad(&e.to_string()))?;
        let (sizes, rest) = rest.split_at(16);
        let (file_size, tsize) = sizes.split_at(8);
        let number = |b: &[u8]| u64::from_be_bytes(b.try_into().unwrap_or_default());
        leaves.push(Built {
            cid,
            file_size: number(file_size),
            tsize: number(tsize),
        });
        bytes = rest;
    }
    Ok(leaves)
}

impl BucketIndex {
    /// The open upload `id` of `bucket`/`key`, if any.
    pub fn upload(
        &self,
        bucket: &str,
        key: &str,
        id: &str,
    ) -> Result<Option<UploadEntry>, S3Error> {
        self.uploads
            .get(upload_key(bucket, key, id))
            .map_err(failed("reading an upload"))?
            .map(|v| decode("upload", &v))
            .transpose()
    }

    /// The parts of upload `id` numbered `from` or more, in order, at most
    /// `limit` of them.
    pub fn parts(
        &self,
        id: &str,
        from: u32,
        limit: usize,
    ) -> Result<Vec<(u32, PartEntry)>, S3Error> {
        let prefix = parts_prefix(id);
        let mut out = Vec::new();
        for kv in self.parts.range(part_key(id, from)..).take(limit) {
            let (k, v) = kv.map_err(failed("listing parts"))?;
            let Some(number) = k.strip_prefix(&prefix[..]) else {
                break;
            };
            let number =
                number
                    .try_into()
                    .map(u32::from_be_bytes)
                    .map_err(|_| S3Error::BadEntry {
                        what: "part key",
                        why: format!("{} bytes of part number", number.len()),
                    })?;
            out.push((number, decode("part", &v)?));
        }
        Ok(out)
    }

    /// The leaves of part `number` of upload `id`.
    pub fn part_leaves(&self, id: &str, number: u32) -> Result<Vec<Built>, S3Error> {
        match self
            .part_leaves
            .get(part_key(id, number))
            .map_err(failed("reading a part"))?
        {
            Some(v) => decode_leaves(&v),
            None => Err(S3Error::BadEntry {
                what: "part leaves",
                why: format!("none stored for part {number} of upload {id}"),
            }),
        }
    }

    /// Open uploads of `bucket` from `start` (`KEY \0 ID`, inclusive) on,
    /// in key order then ID, at most `limit`.
    pub fn uploads_of(
        &self,
        bucket: &str,
        start: &[u8],
        limit: usize,
    ) -> Result<Vec<ListedUpload>, S3Error> {
        let prefix = [bucket.as_bytes(), b"\0"].concat();
        let from = [&prefix[..], start].concat();
        let mut out = Vec::new();
        for kv in self.uploads.range(from..) {
            if out.len() == limit {
                break;
            }
            let (k, v) = kv.map_err(failed("listing uploads"))?;
            let Some(rest) = k.strip_prefix(&prefix[..]) else {
                break;
            };
            out.push(listed(rest, &v)?);
        }
        Ok(out)
    }

    /// Every open upload made before `before_ms`, as (bucket, upload).
    pub fn uploads_before(&self, before_ms: u64) -> Result<Vec<(String, ListedUpload)>, S3Error> {
        let mut out = Vec::new();
        for kv in self.uploads.iter() {
            let (k, v) = kv.map_err(failed("listing uploads"))?;
            let Some(at) = k.iter().position(|b| *b == 0) else {
                continue;
            };
            let upload = listed(&k[at + 1..], &v)?;
            if upload.entry.initiated_ms < before_ms {
                out.push((String::from_utf8_lossy(&k[..at]).into_owned(), upload));
            }
        }
        Ok(out)
    }
}

/// An upload from its `KEY \0 ID` and value.
fn listed(key_and_id: &[u8], value: &[u8]) -> Result<ListedUpload, S3Error> {
    let at = key_and_id
        .iter()
        .rposition(|b| *b == 0)
        .ok_or_else(|| S3Error::BadEntry {
            what: "upload key",
            why: "no upload ID".into(),
        })?;
    Ok(ListedUpload {
        key: String::from_utf8_lossy(&key_and_id[..at]).into_owned(),
        id: String::from_utf8_lossy(&key_and_id[at + 1..]).into_owned(),
        entry: decode("upload", value)?,
    })
}

impl Writer<'_> {
    /// Records upload `id` of `bucket`/`key` (the bucket must exist and
    /// be local: a mounted one is read-only).
    pub fn create_upload(
        &self,
        bucket: &str,
        key: &str,
        id: &str,
        entry: &UploadEntry,
    ) -> Result<(), S3Error> {
        let i = self.index;
        super::versions::check_key(key)?;
        if i.is_mounted(bucket)? {
            return Err(S3Error::ReadOnlyBucket {
                name: bucket.to_string(),
            });
        }
        let encoded = encode(entry);
        (&i.buckets, &i.uploads)
            .transaction(|(buckets, uploads)| {
                if buckets.get(bucket.as_bytes())?.is_none() {
                    return Err(ConflictableTransactionError::Abort(Abort::NoSuchBucket));
                }
                uploads.insert(upload_key(bucket, key, id), &encoded[..])?;
                Ok(())
            })
            .map_err(|e| transaction_error(e, bucket, key))?;
        i.flush()
    }

    /// Stores part `number` of upload `id`, counting a reference to its
    /// CID (`owned`: the caller pinned it for this, as for
    /// [`put`](Writer::put)) and clearing its pending record; a part stored
    /// before under that number is replaced and its reference dropped.
    /// Returns, as `put`, a CID whose pin the endpoint made that nothing
    /// names any more, recorded as pending (the caller unpins and settles
    /// it).
    pub fn put_part(
        &self,
        (bucket, key, id): (&str, &str, &str),
        number: u32,
        part: &PartEntry,
        leaves: &[Built],
        owned: bool,
    ) -> Result<Option<Cid>, S3Error> {
        let i = self.index;
        let cid = part.cid()?.to_bytes();
        let (encoded, leaves) = (encode(part), encode_leaves(leaves));
        let (upload, at) = (upload_key(bucket, key, id), part_key(id, number));
        let done = (&i.uploads, &i.parts, &i.part_leaves, &i.refs, &i.pending)
            .transaction(|(uploads, parts, part_leaves, refs, pending)| {
                if uploads.get(&upload[..])?.is_none() {
                    return Err(abort(no_such_upload(id)));
                }
                bump(refs, &cid, 1, owned)?;
                pending.remove(&cid[..])?;
                part_leaves.insert(&at[..], &leaves[..])?;
                let Some(old) = parts.insert(&at[..], &encoded[..])? else {
                    return Ok(None);
                };
                let old = decode::<PartEntry>("part", &old)
                    .and_then(|p| p.cid())
                    .map_err(abort)?;
                release(refs, pending, &old)
            })
            .map_err(|e| transaction_error(e, bucket, key))?;
        i.flush()?;
        Ok(done)
    }

    /// Removes upload `id` and its parts (aborted, completed or expired),
    /// dropping the parts' references. Returns the CIDs whose pins the
    /// endpoint made that nothing names any more, recorded as pending in
    /// the same transaction (the caller unpins and settles them).
    pub fn remove_upload(&self, bucket: &str, key: &str, id: &str) -> Result<Vec<Cid>, S3Error> {
        let i = self.index;
        // Parts change only through a writer, and this one holds the lock.
        let mut numbered = Vec::new();
        for kv in i.parts.scan_prefix(parts_prefix(id)) {
            let (k, v) = kv.map_err(failed("listing parts"))?;
            numbered.push((k, decode::<PartEntry>("part", &v)?.cid()?));
        }
        let upload = upload_key(bucket, key, id);
        let released = (&i.uploads, &i.parts, &i.part_leaves, &i.refs, &i.pending)
            .transaction(|(uploads, parts, part_leaves, refs, pending)| {
                if uploads.remove(&upload[..])?.is_none() {
                    return Err(abort(no_such_upload(id)));
                }
                let mut released = Vec::new();
                for (k, cid) in &numbered {
                    parts.remove(k)?;
                    part_leaves.remove(k)?;
                    released.extend(release(refs, pending, cid)?);
                }
                Ok(released)
            })
            .map_err(|e| transaction_error(e, bucket, key))?;
        i.flush()?;
        Ok(released)
    }

    /// Removes every open upload of `bucket` ([`remove_upload`] each):
    /// the bucket is being deleted. Returns the CIDs to unpin and settle.
    ///
    /// [`remove_upload`]: Writer::remove_upload
    pub(super) fn remove_uploads_of(&self, bucket: &str) -> Result<Vec<Cid>, S3Error> {
        let mut released = Vec::new();
        for upload in self.index.uploads_of(bucket, b"", usize::MAX)? {
            released.extend(self.remove_upload(bucket, &upload.key, &upload.id)?);
        }
        Ok(released)
    }
}

#[cfg(test)]
mod tests {
    use super::super::ObjectEntry;
    use super::*;
    use crate::store::{MemoryStore, PinKind, Store};
    use std::sync::Arc;

    fn built(data: &[u8]) -> Built {
        let cid = crate::block::CidFormat::V1_SHA2_256.cid(crate::block::RAW, data);
        Built {
            cid,
            file_size: data.len() as u64,
            tsize: data.len() as u64,
        }
    }

    fn part(data: &[u8]) -> PartEntry {
        PartEntry {
            cid: built(data).cid.to_string(),
            size: data.len() as u64,
            md5: "m".into(),
            mtime_ms: 1,
            checksum: None,
        }
    }

    fn upload_entry() -> UploadEntry {
        UploadEntry {
            content_type: None,
            metadata: BTreeMap::new(),
            initiated_ms: 5,
            checksum_algorithm: None,
            full_object: false,
        }
    }

    #[test]
    fn leaves_round_trip_and_damage_is_an_error() {
        let leaves = vec![built(b"a"), built(b"bb"), built(b"")];
        let bytes = encode_leaves(&leaves);
        let back = decode_leaves(&bytes).unwrap();
        assert_eq!(back.len(), 3);
        for (a, b) in leaves.iter().zip(&back) {
            assert_eq!((a.cid, a.file_size, a.tsize), (b.cid, b.file_size, b.tsize));
        }
        assert!(decode_leaves(&bytes[..bytes.len() - 1]).is_err());
        assert!(decode_leaves(&[3, 1, 2]).is_err());
        assert!(decode_leaves(&[]).unwrap().is_empty());
    }

    #[test]
    fn parts_count_references_until_the_upload_goes() {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
        let index = BucketIndex::open(Some(dir.path()), store).unwrap();
        let w = index.writer();
        let entry = upload_entry();
        assert!(matches!(
            w.create_upload("nope", "k", "u1", &entry),
            Err(S3Error::NoSuchBucket { .. })
        ));
        w.create_bucket("b").unwrap();
        w.create_upload("b", "k", "u1", &entry).unwrap();
        w.create_upload("b", "k", "u2", &entry).unwrap();
        w.create_upload("b", "j", "u3", &entry).unwrap();
        let (a, b) = (part(b"a"), part(b"b"));
        let up = ("b", "k", "u1");
        assert!(matches!(
            w.put_part(("b", "k", "nope"), 1, &a, &[built(b"a")], true),
            Err(S3Error::NoSuchUpload { .. })
        ));
        assert!(matches!(
            w.put_part(("b", "j", "u1"), 1, &a, &[built(b"a")], true),
            Err(S3Error::NoSuchUpload { .. })
        ));
        assert_eq!(w.put_part(up, 1, &a, &[built(b"a")], true).unwrap(), None);
        assert_eq!(w.put_part(up, 2, &a, &[built(b"a")], false).unwrap(), None);
        // Replacing part 2 by b keeps a, still part 1.
        assert_eq!(w.put_part(up, 2, &b, &[built(b"b")], true).unwrap(), None);
        // The object made of them names a too.
        let object = ObjectEntry {
            cid: a.cid.clone(),
            size: 1,
            etag: "e".into(),
            content_type: None,
            metadata: BTreeMap::new(),
            mtime_ms: 1,
            checksum: None,
            parts: Vec::new(),
            version_id: None,
        };
        w.put("b", "k", &object, false).unwrap();
        let listed: Vec<u32> = index
            .parts("u1", 0, 10)
            .unwrap()
            .iter()
            .map(|p| p.0)
            .collect();
        assert_eq!(listed, [1, 2]);
        assert_eq!(index.parts("u1", 2, 10).unwrap()[0].1, b);
        assert_eq!(index.parts("u1", 0, 1).unwrap().len(), 1);
        assert_eq!(index.part_leaves("u1", 2).unwrap()[0].cid, built(b"b").cid);
        assert_eq!(
            index
                .uploads_of("b", b"", 10)
                .unwrap()
                .iter()
                .map(|u| u.id.as_str())
                .collect::<Vec<_>>(),
            ["u3", "u1", "u2"],
            "by key, then ID"
        );
        assert_eq!(index.uploads_of("b", b"k\0u2", 10).unwrap().len(), 1);
        assert_eq!(index.uploads_before(6).unwrap().len(), 3);
        assert!(index.uploads_before(5).unwrap().is_empty());

        // Removing the upload releases b (only part 2 named it), not a.
        assert_eq!(
            w.remove_upload("b", "k", "u1").unwrap(),
            vec![b.cid().unwrap()]
        );
        assert!(matches!(
            w.remove_upload("b", "k", "u1"),
            Err(S3Error::NoSuchUpload { .. })
        ));
        assert!(index.parts("u1", 0, 10).unwrap().is_empty());
        assert!(index.upload("b", "k", "u1").unwrap().is_none());
        assert_eq!(w.refs_of(&a.cid().unwrap()).unwrap().unwrap().count, 1);
    }

    #[test]
    fn part_pins_a_crash_interrupted_are_found_at_open() {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
        let (a, b, c) = (part(b"a"), part(b"b"), part(b"c"));
        let (ca, cb, cc) = (a.cid().unwrap(), b.cid().unwrap(), c.cid().unwrap());
        let entry = upload_entry();
        let up = ("b", "k", "u1");
        {
            let index = BucketIndex::open(Some(dir.path()), Arc::clone(&store)).unwrap();
            let w = index.writer();
            w.create_bucket("b").unwrap();
            w.create_upload("b", "k", "u1", &entry).unwrap();
            // a: pinned and recorded (acknowledged): its record is cleared.
            w.intend_pin(&ca).unwrap();
            assert_eq!(w.put_part(up, 1, &a, &[built(b"a")], true).unwrap(), None);
            assert!(index.pending_cids().is_empty());
            // b: pinned, then the process dies before the part is recorded.
            w.intend_pin(&cb).unwrap();
            // c: recorded, then replaced; dies before its unpin.
            w.intend_pin(&cc).unwrap();
            w.put_part(up, 2, &c, &[built(b"c")], true).unwrap();
            assert_eq!(
                w.put_part(up, 2, &a, &[built(b"a")], false).unwrap(),
                Some(cc)
            );
        }
        let index = BucketIndex::open(Some(dir.path()), Arc::clone(&store)).unwrap();
        let mut unpinned = index.reconcile(&mut |_| Ok(())).unwrap();
        unpinned.sort();
        let mut want = vec![cb, cc];
        want.sort();
        assert_eq!(unpinned, want, "b and c lose their pins");
        // The acknowledged parts survive, a's pin with them.
        let numbers: Vec<u32> = index
            .parts("u1", 1, 10)
            .unwrap()
            .iter()
            .map(|p| p.0)
            .collect();
        assert_eq!(numbers, [1, 2]);
        assert_eq!(index.refs_of(&ca).unwrap().unwrap().count, 2);

        // Aborted: a is released and recorded; a crash before the unpin
        // leaves it to the next reconcile.
        let w = index.writer();
        assert_eq!(w.remove_upload("b", "k", "u1").unwrap(), vec![ca]);
        drop(w);
        assert_eq!(index.reconcile(&mut |_| Ok(())).unwrap(), vec![ca]);

        // A deleted bucket's open upload releases its parts, and the
        // bucket unpins them with its tree's root.
        let w = index.writer();
        w.create_upload("b", "k", "u2", &entry).unwrap();
        w.intend_pin(&cb).unwrap();
        store.pin(&cb, PinKind::Recursive).unwrap();
        w.put_part(("b", "k", "u2"), 1, &b, &[built(b"b")], true)
            .unwrap();
        assert_eq!(
            w.delete_bucket("b").unwrap(),
            super::super::DeleteBucket::Deleted
        );
        assert_eq!(store.pin_of(&cb).unwrap(), None);
        assert!(index.pending_cids().is_empty());
        assert!(index.upload("b", "k", "u2").unwrap().is_none());
        assert!(index.parts("u2", 1, 10).unwrap().is_empty());
    }
}

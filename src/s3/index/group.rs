//! Group commit of object writes (PUT, CompleteMultipartUpload): a write
//! that arrives while a group is being committed waits, and the writes
//! waiting when that group ends are committed together in the next one,
//! as a database group-commits its log. A write that finds no leader
//! starts one (a blocking thread that commits groups until none is left
//! waiting); waiting writes hold no thread, only the channel their answer
//! comes on. Nothing is answered before its group is durable.
//!
//! The writes of a group into one bucket without versioning share every
//! durable step a single write made ([`Writer::put_group`]): one flush of
//! the store, one of the new tree nodes, one pending-pin flush of the
//! index for the bodies and the new root, one journal write for their
//! pins, one index transaction (the entries, the root's move, the
//! reference counts), one index flush, then one journal write removing the
//! pins nothing names any more (the previous root, overwritten bodies).
//! A crash anywhere in between leaves what a single write's crash left:
//! the old root and entries, and pending records [`BucketIndex::reconcile`]
//! settles. Writes into a versioned bucket go one at a time inside the
//! group (`versions.rs`), as before.
//!
//! Bounded: a group takes at most [`MAX_GROUP`] writes and
//! [`MAX_GROUP_BYTES`] of keys and entries (one transaction's size); at
//! most [`MAX_WAITING`] writes wait, and a write beyond that waits for
//! room before it joins (backpressure on the requests).

use super::{abort, bump, count, release, transaction_error, Abort, BucketIndex};
use super::{ObjectEntry, Writer};
use crate::block::Cid;
use crate::s3::conditions::WriteIf;
use crate::s3::replicas::ReplicaEvent;
use crate::s3::roots::{move_root, RootMove};
use crate::s3::S3Error;
use crate::store::PinKind;
use sled::transaction::{ConflictableTransactionError, Transactional};
use std::collections::{BTreeMap, HashMap, HashSet};

mod queue;
pub use queue::GroupCommit;

/// Most writes one group commits.
pub const MAX_GROUP: usize = 256;

/// Most bytes of keys and entries one group carries.
pub const MAX_GROUP_BYTES: usize = 8 << 20;

/// Most writes waiting for a group; one more waits for room first.
pub const MAX_WAITING: usize = 1024;

/// One object write to commit: `entry` at `key` of `bucket` if
/// `condition` holds. Its body (`entry`'s CID) is durable already.
pub struct GroupPut {
    /// The bucket.
    pub bucket: String,
    /// The key.
    pub key: String,
    /// The object.
    pub entry: ObjectEntry,
    /// What the key must hold for the write to happen.
    pub condition: WriteIf,
    /// The object's CID (`entry`'s, parsed).
    pub cid: Cid,
}

impl GroupPut {
    /// Bytes the write adds to its group.
    fn weight(&self) -> usize {
        self.bucket.len() + self.key.len() + self.entry.encode().len()
    }
}

/// A committed write: whether the endpoint pinned its CID for it, and
/// the version ID to answer with (none: the bucket was never versioned).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct PutDone {
    /// The endpoint made the CID's pin for this write.
    pub owned: bool,
    /// The version written, in a versioned bucket.
    pub version_id: Option<String>,
}

/// `e` again, for another write of a group that failed as a whole: the
/// errors S3 answers with their own codes as they are, the others as the
/// group's failure.
fn shared_error(e: &S3Error) -> S3Error {
    match e {
        S3Error::NoSuchBucket { name } => S3Error::NoSuchBucket { name: name.clone() },
        S3Error::ReadOnlyBucket { name } => S3Error::ReadOnlyBucket { name: name.clone() },
        S3Error::WriteRefused { bucket, key, why } => S3Error::WriteRefused {
            bucket: bucket.clone(),
            key: key.clone(),
            why: *why,
        },
        other => S3Error::GroupCommit {
            why: other.to_string(),
        },
    }
}

/// Answers every write of `writes` with `e`.
fn fail(answers: &mut [Option<Result<PutDone, S3Error>>], writes: &[usize], e: &S3Error) {
    for &n in writes {
        answers[n] = Some(Err(shared_error(e)));
    }
}

impl BucketIndex {
    /// Commits `puts` (the leader's work): the store flushed, then the
    /// writes under the writer. Returns each write's answer.
    fn commit_group(&self, puts: Vec<GroupPut>) -> Vec<Result<PutDone, S3Error>> {
        // The bodies' blocks are durable before any pin or entry names them.
        match self.store.flush() {
            Err(e) => {
                let e = super::store_err(e);
                puts.iter().map(|_| Err(shared_error(&e))).collect()
            }
            Ok(()) => self.writer().put_group(&puts),
        }
    }
}

/// What a group decided for one bucket without versioning.
struct BucketPlan {
    /// The writes (their indexes in the group) that pass their condition,
    /// in order.
    writes: Vec<usize>,
    /// The root's move, once staged.
    staged: Option<RootMove>,
}

impl Writer<'_> {
    /// Commits `puts` (see the module's comment); each one's answer, in
    /// order.
    pub fn put_group(&self, puts: &[GroupPut]) -> Vec<Result<PutDone, S3Error>> {
        let mut answers: Vec<Option<Result<PutDone, S3Error>>> =
            puts.iter().map(|_| None).collect();
        let mut plans: BTreeMap<&str, BucketPlan> = BTreeMap::new();
        // What each key holds as the group goes (a condition sees the
        // writes before it in the group), and whether the endpoint pins
        // each body CID (decided once, before anything names it).
        let mut now: HashMap<(&str, &str), Option<String>> = HashMap::new();
        let mut owned: HashMap<Cid, bool> = HashMap::new();
        for (n, put) in puts.iter().enumerate() {
            match self.plan_one(put, &mut now, &mut owned) {
                Ok(false) => answers[n] = Some(self.write_one(put)),
                Ok(true) => plans
                    .entry(put.bucket.as_str())
                    .or_insert_with(|| BucketPlan {
                        writes: Vec::new(),
                        staged: None,
                    })
                    .writes
                    .push(n),
                Err(e) => answers[n] = Some(Err(e)),
            }
        }
        if !plans.is_empty() {
            self.commit_plans(puts, &mut plans, &owned, &mut answers);
        }
        answers
            .into_iter()
            .map(|a| {
                a.unwrap_or_else(|| {
                    Err(S3Error::GroupCommit {
                        why: "the write was left out of its group".into(),
                    })
                })
            })
            .collect()
    }

    /// Whether `put` joins its bucket's batch (true), goes alone (a
    /// versioned bucket: false), or is refused; records what its key
    /// holds after it and whether the endpoint pins its CID.
    fn plan_one<'p>(
        &self,
        put: &'p GroupPut,
        now: &mut HashMap<(&'p str, &'p str), Option<String>>,
        owned: &mut HashMap<Cid, bool>,
    ) -> Result<bool, S3Error> {
        let i = self.index;
        if i.versioning(&put.bucket)?.is_some() {
            return Ok(false);
        }
        super::check_key(&put.key)?;
        let at = (put.bucket.as_str(), put.key.as_str());
        let held = match now.get(&at) {
            Some(held) => held.clone(),
            None => match i.objects(&put.bucket)?.get(put.key.as_bytes()) {
                Ok(Some(v)) => Some(ObjectEntry::decode(&v)?.etag),
                Ok(None) => None,
                Err(e) => return Err(super::failed("reading an object")(e)),
            },
        };
        put.condition
            .check(held.as_deref())
            .map_err(|why| S3Error::WriteRefused {
                bucket: put.bucket.clone(),
                key: put.key.clone(),
                why,
            })?;
        if let std::collections::hash_map::Entry::Vacant(v) = owned.entry(put.cid) {
            v.insert(self.pin_is_ours_to_make(&put.cid)?);
        }
        now.insert(at, Some(put.entry.etag.clone()));
        Ok(true)
    }

    /// One write on its own (a versioned bucket's): pinned, then recorded.
    fn write_one(&self, put: &GroupPut) -> Result<PutDone, S3Error> {
        let mut version_id = None;
        let owned = self.pin_and_record(&put.cid, |owned| {
            let target = (put.bucket.as_str(), put.key.as_str());
            let written = self.write(target, &put.entry, owned, &put.condition)?;
            version_id = written.version_id;
            Ok(written.released)
        })?;
        Ok(PutDone { owned, version_id })
    }

    /// Pins `cid` for the endpoint unless an object, an upload's part or
    /// the user has it pinned already (recording the pin as pending first,
    /// so a crash before `record` commits leaves it to
    /// [`BucketIndex::reconcile`]), then records what names it with
    /// `record` (told whether the pin is the endpoint's; its transaction
    /// clears the pending record); a failed `record` takes the new pin
    /// back. Releases the CID `record` returns (nothing names it any
    /// more). The caller made `cid`'s blocks durable. Returns whether it
    /// pinned `cid`.
    pub fn pin_and_record(
        &self,
        cid: &Cid,
        record: impl FnOnce(bool) -> Result<Option<Cid>, S3Error>,
    ) -> Result<bool, S3Error> {
        let pin_here = self.pin_is_ours_to_make(cid)?;
        if pin_here {
            self.intend_pins(&[*cid])?;
            if let Err(e) = self.pin_for_endpoint(&[*cid]) {
                self.drop_pin(cid);
                return Err(e);
            }
        }
        let released = match record(pin_here) {
            Ok(r) => r,
            Err(e) => {
                if pin_here {
                    self.drop_pin(cid);
                }
                return Err(e);
            }
        };
        if let Some(old) = released {
            self.drop_pin(&old);
        }
        Ok(pin_here)
    }

    /// Whether the endpoint pins `cid` for a new name: nothing in the
    /// index names it and it has no recursive pin of its own, or only the
    /// replicator's (a copy held for another node is not one to count
    /// on: its tombstone removes the pin; pinning it makes it ours).
    pub(in crate::s3) fn pin_is_ours_to_make(&self, cid: &Cid) -> Result<bool, S3Error> {
        let store = &*self.index.store;
        Ok(self.refs_of(cid)?.is_none()
            && (store.pin_of(cid).map_err(super::store_err)? != Some(PinKind::Recursive)
                || crate::replicate::owns_pin(store, cid)))
    }

    /// Pins `cids` recursively for the endpoint in one journal write; a
    /// pin the replicator had made becomes the endpoint's (as a user's
    /// pin does).
    pub(in crate::s3) fn pin_for_endpoint(&self, cids: &[Cid]) -> Result<(), S3Error> {
        let store = &*self.index.store;
        store
            .pin_many(cids, PinKind::Recursive)
            .map_err(super::store_err)?;
        for cid in cids {
            crate::replicate::disown_pin(store, cid).map_err(super::store_err)?;
        }
        Ok(())
    }

    /// The batched part of [`put_group`](Self::put_group): every bucket's
    /// tree moved, the pins made, each bucket's transaction, one flush,
    /// the pins let go.
    fn commit_plans(
        &self,
        puts: &[GroupPut],
        plans: &mut BTreeMap<&str, BucketPlan>,
        owned: &HashMap<Cid, bool>,
        answers: &mut [Option<Result<PutDone, S3Error>>],
    ) {
        let i = self.index;
        let mut blocks = Vec::new();
        for (bucket, plan) in plans.iter_mut() {
            match self.stage_group(bucket, puts, &plan.writes) {
                Ok((m, fresh)) => {
                    blocks.extend(fresh);
                    plan.staged = Some(m);
                }
                Err(e) => fail(answers, &plan.writes, &e),
            }
        }
        plans.retain(|_, p| p.staged.is_some());
        // The bodies the endpoint pins (each CID once), then new roots.
        let mut pins: Vec<Cid> = Vec::new();
        let mut seen = HashSet::new();
        for plan in plans.values() {
            for &n in &plan.writes {
                let cid = puts[n].cid;
                if owned.get(&cid).copied().unwrap_or(false) && seen.insert(cid) {
                    pins.push(cid);
                }
            }
        }
        for plan in plans.values() {
            if let Some(m) = plan.staged.as_ref().filter(|m| m.pinned) {
                if seen.insert(m.new) {
                    pins.push(m.new);
                }
            }
        }
        // Tree nodes durable, pins recorded as pending, then made.
        let pinned = (|| {
            if !blocks.is_empty() {
                i.store
                    .put_many(&mut blocks.into_iter())
                    .map_err(super::store_err)?;
            }
            self.intend_pins(&pins)?;
            if let Err(e) = self.pin_for_endpoint(&pins) {
                self.drop_pins(&pins);
                return Err(e);
            }
            i.store.flush().map_err(super::store_err)
        })();
        if let Err(e) = pinned {
            for plan in plans.values() {
                fail(answers, &plan.writes, &e);
            }
            return;
        }
        let mut unpin: Vec<Cid> = Vec::new();
        let mut moved: Vec<&RootMove> = Vec::new();
        let mut first = HashSet::new();
        for plan in plans.values() {
            let Some(m) = plan.staged.as_ref() else {
                continue;
            };
            match self.transact(puts, m, &plan.writes, owned) {
                Ok(released) => {
                    unpin.extend(released);
                    moved.push(m);
                    for &n in &plan.writes {
                        let cid = puts[n].cid;
                        let ours = first.insert(cid) && owned.get(&cid).copied().unwrap_or(false);
                        answers[n] = Some(Ok(PutDone {
                            owned: ours,
                            version_id: None,
                        }));
                    }
                }
                Err(e) => fail(answers, &plan.writes, &e),
            }
        }
        // The commits on disk before any pin they replaced goes (a failed
        // flush keeps them: their pending records let the next open
        // settle them).
        if !moved.is_empty() {
            if let Err(e) = i.flush() {
                tracing::warn!("S3: keeping the pins a group replaced: {e}");
                for plan in plans.values() {
                    fail(answers, &plan.writes, &e);
                }
                return;
            }
        }
        // What this group pinned that nothing names (a failed bucket's).
        for cid in &pins {
            if matches!(self.refs_of(cid), Ok(None)) {
                unpin.push(*cid);
            }
        }
        self.drop_pins(&unpin);
        for m in moved {
            if m.old != Some(m.new) {
                i.changed.send_modify(|n| *n += 1);
            }
            self.report_move(m);
            if let Some(factor) = m.factor {
                for &n in &plans[m.bucket.as_str()].writes {
                    let (cid, size) = (puts[n].cid, None);
                    i.report(ReplicaEvent::Keep { cid, factor, size });
                }
            }
        }
    }

    /// `bucket`'s tree with the entries of `writes` set, its new nodes
    /// (to store) and the root's move (the new root pinned by the group if
    /// nothing holds it yet).
    fn stage_group(
        &self,
        bucket: &str,
        puts: &[GroupPut],
        writes: &[usize],
    ) -> Result<(RootMove, Vec<crate::block::Block>), S3Error> {
        let i = self.index;
        let old = self.root_of(bucket)?;
        let entries: Vec<ObjectEntry> = writes
            .iter()
            .map(|&n| ObjectEntry {
                version_id: None,
                ..puts[n].entry.clone()
            })
            .collect();
        let changes = writes
            .iter()
            .zip(&entries)
            .map(|(&n, e)| (puts[n].key.as_bytes(), Some(e)));
        let (new, fresh) = self.with_tree(|tree| {
            let new = tree.apply_all(&old, changes)?;
            Ok::<_, S3Error>((new, tree.take_fresh(&new)))
        })?;
        let pinned = old != new && self.pin_is_ours_to_make(&new)?;
        let m = RootMove {
            bucket: bucket.to_string(),
            old: Some(old),
            new,
            pinned,
            factor: i.settings(bucket)?.replication,
            named: None,
        };
        Ok((m, fresh))
    }

    /// One bucket's transaction: its root moved by `m` and the entries of
    /// `writes`, their conditions checked again. Returns the CIDs nothing
    /// names any more (recorded as pending: to unpin).
    fn transact(
        &self,
        puts: &[GroupPut],
        m: &RootMove,
        writes: &[usize],
        owned: &HashMap<Cid, bool>,
    ) -> Result<Vec<Cid>, S3Error> {
        let i = self.index;
        let bucket = m.bucket.as_str();
        let tree = i.objects(bucket)?;
        let mut entries = Vec::with_capacity(writes.len());
        for &n in writes {
            let put = &puts[n];
            let cid = put.cid;
            let entry = ObjectEntry {
                version_id: None,
                ..put.entry.clone()
            };
            let ours = owned.get(&cid).copied().unwrap_or(false);
            entries.push((put, cid.to_bytes(), entry.encode(), entry.size, ours));
        }
        let key = writes.first().map_or("", |&n| puts[n].key.as_str());
        (&i.buckets, &tree, &i.refs, &i.pending, &i.roots, &i.bytes)
            .transaction(|(buckets, objects, refs, pending, roots, bytes)| {
                if buckets.get(bucket.as_bytes())?.is_none() {
                    return Err(ConflictableTransactionError::Abort(Abort::NoSuchBucket));
                }
                let mut released: Vec<Cid> = move_root(roots, refs, pending, bucket, m)?
                    .into_iter()
                    .collect();
                for (put, new_cid, encoded, size, ours) in &entries {
                    if put.condition != WriteIf::Always {
                        let held = match objects.get(put.key.as_bytes())? {
                            Some(v) => Some(ObjectEntry::decode(&v).map_err(abort)?.etag),
                            None => None,
                        };
                        put.condition.check(held.as_deref()).map_err(|why| {
                            ConflictableTransactionError::Abort(Abort::Refused(why))
                        })?;
                    }
                    bump(refs, new_cid, 1, *ours)?;
                    pending.remove(&new_cid[..])?;
                    let Some(old) = objects.insert(put.key.as_bytes(), &encoded[..])? else {
                        count(bytes, bucket, *size, 0)?;
                        continue;
                    };
                    let old = ObjectEntry::decode(&old).map_err(abort)?;
                    count(bytes, bucket, *size, old.size)?;
                    let old = old.cid().map_err(abort)?;
                    released.extend(release(refs, pending, &old)?);
                }
                Ok(released)
            })
            .map_err(|e| transaction_error(e, bucket, key))
    }

    /// Records, durably and in one flush, that the endpoint is about to
    /// pin `cids` for writes not committed yet (see
    /// [`intend_pin`](Self::intend_pin)).
    pub(in crate::s3) fn intend_pins(&self, cids: &[Cid]) -> Result<(), S3Error> {
        if cids.is_empty() {
            return Ok(());
        }
        let mut batch = sled::Batch::default();
        for cid in cids {
            batch.insert(cid.to_bytes(), &[][..]);
        }
        let i = self.index;
        i.pending
            .apply_batch(batch)
            .map_err(super::failed("recording pins"))?;
        i.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::s3::conditions::WriteRefused;
    use crate::s3::index::tests::entry;
    use crate::store::{MemoryStore, Store};
    use std::sync::Arc;

    fn put(bucket: &str, key: &str, e: &ObjectEntry, condition: WriteIf) -> GroupPut {
        GroupPut {
            bucket: bucket.into(),
            key: key.into(),
            entry: e.clone(),
            condition,
            cid: e.cid().unwrap(),
        }
    }

    #[test]
    fn a_group_decides_each_write_in_order_and_moves_the_root_once() {
        let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
        let index = BucketIndex::open(None, Arc::clone(&store)).unwrap();
        index.writer().create_bucket("one").unwrap();
        let empty = index.root("one").unwrap().unwrap();
        let (a, b, c, d) = (entry(b"a"), entry(b"b"), entry(b"c"), entry(b"d"));
        let group = [
            put("one", "k1", &a, WriteIf::Always),
            put("one", "k2", &a, WriteIf::Always),
            put("one", "k1", &b, WriteIf::Matches(Some(a.etag.clone()))),
            put("one", "k3", &c, WriteIf::Absent),
            put("one", "k3", &d, WriteIf::Absent),
            put("nope", "k", &d, WriteIf::Always),
            put("one", "bad\0key", &d, WriteIf::Always),
        ];
        let answers = index.writer().put_group(&group);
        let owned: Vec<Option<bool>> = answers
            .iter()
            .map(|a| a.as_ref().ok().map(|d| d.owned))
            .collect();
        // a pinned by its first write only; b and c by theirs.
        assert_eq!(
            owned[..4],
            [Some(true), Some(false), Some(true), Some(true)]
        );
        assert!(matches!(
            answers[4],
            Err(S3Error::WriteRefused {
                why: WriteRefused::Precondition,
                ..
            })
        ));
        assert!(matches!(answers[5], Err(S3Error::NoSuchBucket { .. })));
        assert!(matches!(answers[6], Err(S3Error::InvalidKey { .. })));
        assert_eq!(index.get("one", "k1").unwrap(), Some(b.clone()));
        assert_eq!(index.get("one", "k2").unwrap(), Some(a.clone()));
        assert_eq!(index.get("one", "k3").unwrap(), Some(c.clone()));
        // a is named once (k1's a was replaced within the group).
        let w = index.writer();
        assert_eq!(w.refs_of(&a.cid().unwrap()).unwrap().unwrap().count, 1);
        assert!(w.refs_of(&d.cid().unwrap()).unwrap().is_none());
        drop(w);
        for e in [&a, &b, &c] {
            assert_eq!(
                store.pin_of(&e.cid().unwrap()).unwrap(),
                Some(PinKind::Recursive)
            );
        }
        assert_eq!(store.pin_of(&d.cid().unwrap()).unwrap(), None);
        // One new root, which reads back every entry; the old one unpinned.
        let root = index.root("one").unwrap().unwrap();
        assert_eq!(store.pin_of(&root).unwrap(), Some(PinKind::Recursive));
        assert_eq!(store.pin_of(&empty).unwrap(), None);
        let mut tree = index.local_tree();
        assert_eq!(tree.get(&root, b"k1").unwrap(), Some(b));
        assert_eq!(tree.get(&root, b"k3").unwrap(), Some(c));
        assert!(index.pending_cids().is_empty());
    }

    #[test]
    fn concurrent_writers_are_all_committed() {
        let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
        let index = Arc::new(BucketIndex::open(None, Arc::clone(&store)).unwrap());
        index.writer().create_bucket("one").unwrap();
        let writers: Vec<_> = (0..16u32)
            .map(|t| {
                let index = Arc::clone(&index);
                std::thread::spawn(move || {
                    for i in 0..20u32 {
                        let e = entry(format!("{t}/{i}").as_bytes());
                        let key = format!("t{t}/{i}");
                        let done = index.commit_put(put("one", &key, &e, WriteIf::Always));
                        assert!(done.unwrap().owned, "{key}");
                    }
                })
            })
            .collect();
        for w in writers {
            w.join().unwrap();
        }
        let mut tree = index.local_tree();
        let root = index.root("one").unwrap().unwrap();
        for t in 0..16u32 {
            for i in 0..20u32 {
                let want = entry(format!("{t}/{i}").as_bytes());
                let key = format!("t{t}/{i}");
                let got = index.get("one", &key).unwrap().unwrap();
                assert_eq!(got.cid, want.cid);
                assert_eq!(
                    tree.get(&root, key.as_bytes()).unwrap().unwrap().cid,
                    want.cid
                );
            }
        }
        // Every object's pin and the root's; nothing pending.
        assert_eq!(store.pins().unwrap().len(), 16 * 20 + 1);
        assert!(index.pending_cids().is_empty());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn waiting_writes_keep_their_hold_until_committed() {
        use futures::FutureExt;
        let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
        let index = Arc::new(BucketIndex::open(None, Arc::clone(&store)).unwrap());
        index.writer().create_bucket("one").unwrap();
        let gc = Arc::new(tokio::sync::RwLock::new(()));
        let tasks: Vec<_> = (0..200u32)
            .map(|n| {
                let (index, gc) = (Arc::clone(&index), Arc::clone(&gc));
                tokio::spawn(async move {
                    let e = entry(format!("{n}").as_bytes());
                    let write = put("one", &format!("k{n}"), &e, WriteIf::Always);
                    let hold = gc.read_owned().await;
                    index.commit_put_async(write, Box::new(hold)).await
                })
            })
            .collect();
        for t in tasks {
            assert!(t.await.unwrap().unwrap().owned);
        }
        // A write whose caller stops waiting is still committed, and the
        // GC waits for it.
        let e = entry(b"dropped");
        let hold = Arc::clone(&gc).read_owned().await;
        let write = index.commit_put_async(put("one", "gone", &e, WriteIf::Always), Box::new(hold));
        let _ = write.now_or_never();
        let _gc = gc.write().await;
        assert_eq!(index.get("one", "gone").unwrap(), Some(e));
        for n in 0..200u32 {
            let want = entry(format!("{n}").as_bytes()).cid;
            let got = index.get("one", &format!("k{n}")).unwrap().unwrap();
            assert_eq!(got.cid, want);
        }
        assert_eq!(store.pins().unwrap().len(), 201 + 1);
        assert!(index.pending_cids().is_empty());
    }
}

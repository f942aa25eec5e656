//! Pins: what the user keeps (recursive and direct pins, listed with the
//! indirect blocks below them), and the replication records an offline
//! node writes for the daemon to act on.

use super::{Node, NodeError};
use crate::block::Cid;
use crate::dag::walk;
use crate::replicate::record::Record;
use crate::store::{PinKind, Store, StoreError};
use std::collections::HashSet;

/// Metadata key prefix of the marks of the CIDs the user pinned (`pin
/// add`, `add`, `block put --pin`): a CID has one pin, whoever made it, and
/// the mark tells another holder of that pin (the S3 endpoint) that it is
/// not its alone to remove.
const USER_CLAIM_PREFIX: &str = "userpin/";

fn user_claim_key(cid: &Cid) -> String {
    format!("{USER_CLAIM_PREFIX}{cid}")
}

/// Whether the user pinned `cid`, so that another part of the node that
/// holds the same pin (the S3 endpoint) must leave it when it lets go.
/// True when the store cannot tell: nothing is unpinned on a guess.
pub(crate) fn user_claimed(store: &dyn Store, cid: &Cid) -> bool {
    !matches!(store.meta_get(&user_claim_key(cid)), Ok(None))
}

/// Forgets the user's claim on `cid` (its pin is the user's alone now, or
/// gone). Writes only when there is a mark.
fn forget_user_claim(store: &dyn Store, cid: &Cid) -> Result<(), StoreError> {
    let key = user_claim_key(cid);
    if store.meta_get(&key)?.is_some() {
        store.meta_put(&key, None)?;
    }
    Ok(())
}

/// A part of the node besides the user that keeps CIDs pinned through the
/// store's one pin per CID (the S3 endpoint: its objects, versions and
/// bucket roots). `pin rm` asks every holder before it removes a pin, so a
/// CID something still names is never left unpinned.
pub trait PinHolder: Send + Sync {
    /// Whether `cid` is still needed by this holder, answered under the
    /// holder's own write lock. If it is and the user pinned it too
    /// (`user_pinned`), or the holder names the CID under a pin it did not
    /// make, the holder takes the pin over (it removes it when it lets go)
    /// and answers [`Hold::Kept`]; if the pin is the holder's alone,
    /// [`Hold::Refused`].
    fn hold(&self, cid: &Cid, user_pinned: bool) -> Result<Hold, NodeError>;
}

/// A [`PinHolder`]'s answer to `pin rm`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Hold {
    /// The holder does not need the CID.
    Free,
    /// The holder needs the CID and keeps its pin from now on; the text
    /// says who (e.g. "the S3 endpoint").
    Kept(String),
    /// The pin is the holder's, never the user's: `pin rm` refuses.
    Refused(String),
}

/// What `pin rm` did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Unpinned {
    /// The pin, of this kind, is gone.
    Removed(PinKind),
    /// The user's claim is gone, but the pin stays: the holder named here
    /// still needs the CID and now keeps it alone.
    KeptBy(String),
}

/// A pin as `pin ls` shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PinEntry {
    /// The pinned (or indirectly kept) block.
    pub cid: Cid,
    /// "recursive", "direct" or "indirect".
    pub kind: &'static str,
}

impl Node {
    /// Pins `cid` for the user: a pin the replicator had made to hold a
    /// copy for the network becomes theirs, and is no longer removed when
    /// that copy is trimmed; a pin the S3 endpoint had made (an object's,
    /// a bucket's root) is marked as theirs too ([`user_claimed`]), so it
    /// stays when the object is deleted or the root moves on.
    pub(super) fn user_pin(&self, cid: &Cid, kind: PinKind) -> Result<(), NodeError> {
        // The mark first: a crash before the pin leaves a mark that only
        // keeps a pin longer, never one that lets a pin go.
        self.store.meta_put(&user_claim_key(cid), Some(b"1"))?;
        self.store.pin(cid, kind)?;
        crate::replicate::disown_pin(&*self.store, cid)?;
        Ok(())
    }

    /// Pins `cid`; a recursive pin first checks every block below is
    /// stored. A direct pin of a CID pinned recursively is refused, as
    /// Kubo refuses it (it would drop the blocks below from the pin).
    pub fn pin_add(&self, cid: &Cid, recursive: bool) -> Result<(), NodeError> {
        if recursive {
            walk::reach(&*self.source(), cid, &mut HashSet::new(), &mut |_| Ok(()))?;
            self.user_pin(cid, PinKind::Recursive)?;
        } else {
            if !self.store.has(cid)? {
                return Err(NodeError::NotLocal { cid: *cid });
            }
            if self.store.pin_of(cid)? == Some(PinKind::Recursive) {
                return Err(NodeError::PinnedRecursively { cid: *cid });
            }
            self.user_pin(cid, PinKind::Direct)?;
        }
        Ok(())
    }

    /// Registers `holder`: `pin rm` asks it before removing a pin.
    pub fn add_pin_holder(&self, holder: std::sync::Arc<dyn PinHolder>) {
        self.pin_holders
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(holder);
    }

    /// Pins `cid` recursively without walking its DAG: for a caller that has
    /// just made every block of it local (a network fetch), under the GC
    /// lock, so the walk would only re-read and re-hash what it just stored.
    pub fn pin_complete(&self, cid: &Cid) -> Result<(), NodeError> {
        self.user_pin(cid, PinKind::Recursive)?;
        Ok(())
    }

    /// Records (offline) that `root` should be kept at `factor` copies:
    /// the daemon places them when it runs. The root must be pinned here.
    pub fn replicate_later(&self, root: &Cid, factor: u8) -> Result<(), NodeError> {
        if self.store.pin_of(root)? != Some(PinKind::Recursive) {
            return Err(NodeError::NotPinned { cid: *root });
        }
        let max = self.config.replication.max.max(factor);
        let me = self.peer_id()?;
        let size: u64 = self
            .dag_cids(root)?
            .iter()
            .map(|c| self.store.size_of(c).ok().flatten().unwrap_or(0))
            .sum();
        let rec = match self.replication_record(root)? {
            Some(mut r) => {
                r.factor = factor.max(1);
                r.max = max;
                r.removed = false;
                r.size = size;
                r.holders.insert(me);
                r.bump();
                r
            }
            None => Record::started(*root, factor, max, size, me, crate::replicate::unix_now()),
        };
        crate::replicate::own_pin(&*self.store, root)?;
        self.store
            .meta_put(&Record::key(root), Some(&rec.encode()))?;
        Ok(())
    }

    /// Turns `root`'s replication record into a tombstone (offline `pin
    /// rm`): holders learn it when the daemon runs. False when `root` is not
    /// replicated.
    pub fn replication_tombstone(&self, root: &Cid) -> Result<bool, NodeError> {
        let Some(mut r) = self.replication_record(root)? else {
            return Ok(false);
        };
        if !r.removed {
            r.removed = true;
            r.bump();
            self.store.meta_put(&Record::key(root), Some(&r.encode()))?;
        }
        Ok(true)
    }

    /// The stored replication record of `root`, if any.
    fn replication_record(&self, root: &Cid) -> Result<Option<Record>, NodeError> {
        let Some(bytes) = self.store.meta_get(&Record::key(root))? else {
            return Ok(None);
        };
        Record::decode(&bytes)
            .map(Some)
            .map_err(|e| NodeError::Record {
                root: *root,
                source: e.into(),
            })
    }

    /// Removes the user's pin on `cid` (and the replicator's claim on
    /// it). A CID another holder still names ([`PinHolder`]) keeps its
    /// pin, now that holder's alone ([`Unpinned::KeptBy`]); one whose pin
    /// was never the user's is refused ([`NodeError::HeldBy`]).
    pub fn pin_rm(&self, cid: &Cid) -> Result<Unpinned, NodeError> {
        let user_pinned = self.store.meta_get(&user_claim_key(cid))?.is_some();
        let holders = self
            .pin_holders
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        for holder in holders {
            match holder.hold(cid, user_pinned)? {
                Hold::Free => {}
                Hold::Kept(by) => {
                    forget_user_claim(&*self.store, cid)?;
                    return Ok(Unpinned::KeptBy(by));
                }
                Hold::Refused(by) => return Err(NodeError::HeldBy { cid: *cid, by }),
            }
        }
        let kind = self.store.unpin(cid)?;
        crate::replicate::disown_pin(&*self.store, cid)?;
        forget_user_claim(&*self.store, cid)?;
        Ok(Unpinned::Removed(kind))
    }

    /// The pin kinds `pin ls --type` names (`all` is every kind); `None`
    /// for a name that is none of them.
    pub fn pin_kinds(kind: &str) -> Option<&'static [&'static str]> {
        Some(match kind {
            "all" => &["recursive", "direct", "indirect"],
            "recursive" => &["recursive"],
            "direct" => &["direct"],
            "indirect" => &["indirect"],
            _ => return None,
        })
    }

    /// Pins of the kinds asked for; "indirect" walks the recursive pins.
    pub fn pin_ls(&self, kinds: &[&str]) -> Result<Vec<PinEntry>, NodeError> {
        let pins = self.store.pins()?;
        let mut out = vec![];
        for (cid, kind) in &pins {
            if kinds.contains(&kind.as_str()) {
                out.push(PinEntry {
                    cid: *cid,
                    kind: kind.as_str(),
                });
            }
        }
        if kinds.contains(&"indirect") {
            let pinned: HashSet<Cid> = pins.iter().map(|(c, _)| *c).collect();
            let mut seen = HashSet::new();
            let source = self.source();
            for (root, kind) in &pins {
                if *kind != PinKind::Recursive {
                    continue;
                }
                walk::reach(&*source, root, &mut seen, &mut |c| {
                    if c != root && !pinned.contains(c) {
                        out.push(PinEntry {
                            cid: *c,
                            kind: "indirect",
                        });
                    }
                    Ok(())
                })?;
            }
        }
        Ok(out)
    }
}

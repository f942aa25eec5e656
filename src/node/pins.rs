//! Pins: what the user keeps (recursive and direct pins, listed with the
//! indirect blocks below them), and the replication records an offline
//! node writes for the daemon to act on.

use super::{Node, NodeError};
use crate::block::Cid;
use crate::dag::walk;
use crate::replicate::record::Record;
use crate::store::{PinKind, Store, StoreError};
use std::collections::HashSet;

/// Metadata key prefix of the marks of pins the user made on a CID that
/// was pinned already (by the S3 endpoint, say: one pin a CID, whoever
/// made it).
const USER_CLAIM_PREFIX: &str = "userpin/";

fn user_claim_key(cid: &Cid) -> String {
    format!("{USER_CLAIM_PREFIX}{cid}")
}

/// Whether the user pinned `cid` while it was pinned already, so that the
/// part of the node that made the pin (the S3 endpoint) must leave it when
/// it lets go. True when the store cannot tell: nothing is unpinned on a
/// guess.
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
        let held = self.store.pin_of(cid)?.is_some();
        self.store.pin(cid, kind)?;
        if held {
            self.store.meta_put(&user_claim_key(cid), Some(b"1"))?;
        }
        crate::replicate::disown_pin(&*self.store, cid)?;
        Ok(())
    }

    /// Pins `cid`; a recursive pin first checks every block below is stored.
    pub fn pin_add(&self, cid: &Cid, recursive: bool) -> Result<(), NodeError> {
        if recursive {
            walk::reach(&*self.source(), cid, &mut HashSet::new(), &mut |_| Ok(()))?;
            self.user_pin(cid, PinKind::Recursive)?;
        } else {
            if !self.store.has(cid)? {
                return Err(NodeError::NotLocal { cid: *cid });
            }
            self.user_pin(cid, PinKind::Direct)?;
        }
        Ok(())
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

    /// Removes the pin on `cid` (and the replicator's claim on it); returns
    /// what kind it was.
    pub fn pin_rm(&self, cid: &Cid) -> Result<PinKind, NodeError> {
        let kind = self.store.unpin(cid)?;
        crate::replicate::disown_pin(&*self.store, cid)?;
        forget_user_claim(&*self.store, cid)?;
        Ok(kind)
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

//! The pins of logs' heads.
//!
//! A log keeps its chain by one recursive pin on its head (it reaches
//! every older batch through `prev`). Before the logs pin a head they
//! mark it as theirs (`log/pin/CID` → the log's name, in the metadata
//! journal), and the mark goes once the pin is let go, so:
//!
//! - a crash between pinning a new head and writing the log's state
//!   leaves a marked pin on a CID no log names: it is let go when the
//!   logs are next opened ([`Logs::reconcile_pins`]); a pin without the
//!   mark (the user's own) is never touched;
//! - a head pinned already by someone else (the user, the S3 endpoint)
//!   is marked as theirs too (the user's claim mark), so the pin stays
//!   theirs when the log moves past it;
//! - a copy the network asked this node to hold is handed back to the
//!   replicator rather than unpinned.
//!
//! The current heads are also roots of garbage collection
//! ([`Logs::heads`]), so a head whose pin the user removed keeps its
//! chain (and is pinned again when the logs are next opened).

use super::state::META_PREFIX;
use super::{LogError, LogState, Logs};
use crate::block::{parse_cid, Cid};
use crate::store::{PinKind, Store, StoreError};
use std::collections::HashSet;

/// Prefix of the marks of pins the logs made.
const PIN_PREFIX: &str = "log/pin/";

fn pin_key(cid: &Cid) -> String {
    format!("{PIN_PREFIX}{cid}")
}

/// Whether the logs hold a pin of `cid` (true when the store cannot
/// tell: a pin is then treated as held by someone else).
#[cfg(test)]
pub(crate) fn holds_pin(store: &dyn Store, cid: &Cid) -> bool {
    !matches!(store.meta_get(&pin_key(cid)), Ok(None))
}

/// Marks `cid`'s pin as the user's too, as `Node::user_pin` does
/// (`userpin/CID`, read by [`crate::node::user_claimed`]): the logs leave
/// it when they let go.
pub(super) fn claim_for_user(store: &dyn Store, cid: &Cid) -> Result<(), StoreError> {
    store.meta_put(&format!("userpin/{cid}"), Some(b"1"))
}

impl Logs {
    /// Every log's head, the roots garbage collection keeps (a damaged
    /// state is left out).
    pub fn heads(&self) -> Result<Vec<Cid>, StoreError> {
        Ok(self
            .store
            .meta_scan(META_PREFIX)?
            .into_iter()
            .filter_map(|(key, bytes)| {
                let name = &key[META_PREFIX.len()..];
                LogState::decode(name, &bytes)
                    .ok()?
                    .head_cid(name)
                    .ok()
                    .flatten()
            })
            .collect())
    }

    /// The name of a log whose head is `cid`, if any.
    pub fn head_owner(&self, cid: &Cid) -> Result<Option<String>, LogError> {
        Ok(self
            .list()?
            .into_iter()
            .find(|e| e.state.head_cid(&e.name).ok().flatten() == Some(*cid))
            .map(|e| e.name))
    }

    /// Pins `head` as log `name`'s, of `kind` (the log state's
    /// [`head_pin_kind`](LogState::head_pin_kind)): marked first, and no
    /// replication tombstone removes it (a copy held for the network may
    /// have pinned it first). A recursive pin someone else holds too (the
    /// user, the replicator) is never made direct.
    pub(super) fn pin_head(&self, name: &str, head: &Cid, kind: PinKind) -> Result<(), LogError> {
        let store = &*self.store;
        let key = pin_key(head);
        let current = store.pin_of(head)?;
        if store.meta_get(&key)?.is_none() {
            if current.is_some() && !crate::replicate::owns_pin(store, head) {
                // Someone else's pin: it stays theirs after the log's.
                claim_for_user(store, head)?;
            }
            store.meta_put(&key, Some(name.as_bytes()))?;
        }
        let shared = crate::node::user_claimed(store, head)
            || crate::replicate::replicated_here(store, head);
        let kind = match current {
            Some(PinKind::Recursive) if shared => PinKind::Recursive,
            _ => kind,
        };
        if current != Some(kind) {
            store.pin(head, kind)?;
        }
        crate::replicate::disown_pin(store, head)?;
        Ok(())
    }

    /// The roots garbage collection keeps for the logs, recursive and
    /// direct: the head of a log that keeps its whole chain, and every
    /// kept batch (head to floor) of a [bounded](LogState::bounded) one.
    /// A damaged state is left out; a chain that breaks off (a batch not
    /// stored) keeps what was reached.
    pub fn gc_roots(&self) -> Result<(Vec<Cid>, Vec<Cid>), StoreError> {
        let (mut recursive, mut direct) = (Vec::new(), Vec::new());
        for (key, bytes) in self.store.meta_scan(META_PREFIX)? {
            let name = &key[META_PREFIX.len()..];
            let Ok(state) = LogState::decode(name, &bytes) else {
                continue;
            };
            let Ok(Some(head)) = state.head_cid(name) else {
                continue;
            };
            if !state.bounded() {
                recursive.push(head);
                continue;
            }
            let mut at = Some(head);
            let mut above = u64::MAX;
            while let Some(cid) = at {
                direct.push(cid);
                match self.batch(&cid) {
                    // Offsets fall along the chain: it ends.
                    Ok(b) if b.first > state.floor && b.first < above => {
                        above = b.first;
                        at = b.prev;
                    }
                    Ok(_) => at = None,
                    Err(e) => {
                        tracing::warn!(log = name, %cid, "logs: walking the kept chain: {e}");
                        at = None;
                    }
                }
            }
        }
        Ok((recursive, direct))
    }

    /// Lets go of the pin of a head log `name` moved past (the new head's
    /// pin keeps its blocks).
    pub(super) fn let_go(&self, name: &str, old: Option<Cid>) {
        let Some(old) = old else { return };
        if let Err(e) = self.unpin_head(&old) {
            tracing::warn!(log = name, %old, "logs: letting go of a past head: {e}");
        }
    }

    fn unpin_head(&self, old: &Cid) -> Result<(), StoreError> {
        let store = &*self.store;
        if crate::node::user_claimed(store, old) {
            // The user's (or the S3 endpoint's) pin too: it stays.
        } else if crate::replicate::replicated_here(store, old) {
            // A copy the network asked this node to hold stays, the
            // replicator's to remove.
            crate::replicate::own_pin(store, old)?;
        } else {
            match store.unpin(old) {
                Ok(_) | Err(StoreError::NotPinned { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        let key = pin_key(old);
        if store.meta_get(&key)?.is_some() {
            store.meta_put(&key, None)?;
        }
        Ok(())
    }

    /// Makes the pins agree with the logs' states after a crash: a head
    /// whose pin is missing is pinned again, and a pin the logs marked
    /// whose CID no log names as its head is let go.
    pub(super) fn reconcile_pins(&self) -> Result<(), LogError> {
        let mut heads = HashSet::new();
        for entry in self.list()? {
            if let Some(head) = entry.state.head_cid(&entry.name)? {
                heads.insert(head);
                let kind = entry.state.head_pin_kind();
                let pinned = self.store.pin_of(&head)?;
                // Missing, or recursive where the log keeps part of its
                // chain (a crash after its floor moved).
                let redo = pinned.is_none()
                    || (kind == PinKind::Direct && pinned == Some(PinKind::Recursive));
                if redo && self.store.has(&head)? {
                    self.pin_head(&entry.name, &head, kind)?;
                }
            }
        }
        for (key, name) in self.store.meta_scan(PIN_PREFIX)? {
            let Ok(cid) = parse_cid(&key[PIN_PREFIX.len()..]) else {
                tracing::warn!("logs: a pin mark that names no CID: {key:?}");
                continue;
            };
            if !heads.contains(&cid) {
                let name = String::from_utf8_lossy(&name);
                tracing::info!(log = %name, %cid, "logs: letting go of the pin of a head an interrupted change left");
                self.let_go(&name, Some(cid));
            }
        }
        Ok(())
    }
}

impl crate::node::PinHolder for Logs {
    /// A log's current head is the logs': `pin rm` of it is refused when
    /// the pin is the log's alone, and takes only the user's claim when
    /// the user pinned it too (the log lets the pin go when it moves on).
    fn hold(
        &self,
        cid: &Cid,
        user_pinned: bool,
    ) -> Result<crate::node::Hold, crate::node::NodeError> {
        use crate::node::Hold;
        // Under the logs' writer: no append moves a head meanwhile.
        let _w = self.writing();
        let owner = self
            .head_owner(cid)
            .map_err(|e| crate::node::NodeError::PinHolder(Box::new(e)))?;
        Ok(match owner {
            None => Hold::Free,
            Some(name) => {
                let by = format!("the log {name:?} (its head)");
                if user_pinned {
                    Hold::Kept(by)
                } else {
                    Hold::Refused(by)
                }
            }
        })
    }
}

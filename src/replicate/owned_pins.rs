//! Which local pins are the replicator's: a mark in the store's metadata
//! next to a pin made to hold a copy for the network, or by `pin add
//! --replication`. Only such pins are removed when a copy is trimmed or
//! the root's record becomes a tombstone; a pin the user made here without
//! replication is theirs.

use crate::block::Cid;
use crate::store::{Store, StoreError};

/// Metadata key prefix of the marks.
const OWNED_PIN_PREFIX: &str = "replpin/";

fn owned_pin_key(root: &Cid) -> String {
    format!("{OWNED_PIN_PREFIX}{root}")
}

/// Marks `root`'s local pin as the replicator's.
pub(crate) fn own_pin(store: &dyn Store, root: &Cid) -> Result<(), StoreError> {
    store.meta_put(&owned_pin_key(root), Some(b"1"))
}

/// The user pinned (or unpinned) `root` here: the pin is no longer the
/// replicator's to remove. Writes (and flushes) only when there is a mark,
/// so an ordinary pin costs one index lookup more.
pub(crate) fn disown_pin(store: &dyn Store, root: &Cid) -> Result<(), StoreError> {
    let key = owned_pin_key(root);
    if store.meta_get(&key)?.is_some() {
        store.meta_put(&key, None)?;
    }
    Ok(())
}

/// Whether this node keeps a live replication record of `root` (it holds,
/// or held, a copy for the network): a pin of it another part of the node
/// lets go of is handed back to the replicator ([`own_pin`]) rather than
/// removed, so the network's copy is never dropped as a side effect.
pub(crate) fn replicated_here(store: &dyn Store, root: &Cid) -> bool {
    match store.meta_get(&super::record::Record::key(root)) {
        Ok(Some(bytes)) => super::record::Record::decode(&bytes).is_ok_and(|r| !r.removed),
        Ok(None) => false,
        // Unreadable: assume it is, so nothing is unpinned on a guess.
        Err(_) => true,
    }
}

/// Whether `root`'s local pin is the replicator's (false when the store
/// cannot tell).
pub(crate) fn owns_pin(store: &dyn Store, root: &Cid) -> bool {
    matches!(store.meta_get(&owned_pin_key(root)), Ok(Some(_)))
}

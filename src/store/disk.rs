//! Disk store: segment files + sled index (being written).
use super::MemoryStore;

/// Options of the disk store.
#[derive(Clone, Debug, Default)]
pub struct DiskStoreOptions {}

/// Placeholder type so the crate builds while the disk store is written.
pub type DiskStore = MemoryStore;

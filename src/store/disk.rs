//! Disk store: segment files + sled index (being written on branch `store`).
use super::MemoryStore;

/// Options of the disk store.
#[derive(Clone, Debug)]
pub struct DiskStoreOptions {
    pub segment_max_bytes: u64,
    pub commit_bytes: u64,
    pub compact_live_ratio: f64,
    pub cache_bytes: u64,
}

impl Default for DiskStoreOptions {
    fn default() -> Self {
        DiskStoreOptions {
            segment_max_bytes: 256 << 20,
            commit_bytes: 64 << 20,
            compact_live_ratio: 0.5,
            cache_bytes: 16 << 20,
        }
    }
}

/// Placeholder type so the crate builds while the disk store is written.
pub type DiskStore = MemoryStore;

impl MemoryStore {
    /// Placeholder until the disk store lands.
    pub fn open(_dir: &std::path::Path, _opts: DiskStoreOptions) -> super::Result<Self> {
        Ok(MemoryStore::new())
    }
}

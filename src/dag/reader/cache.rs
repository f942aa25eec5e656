//! Remembered answers of path resolution and directory listings
//! ([`ResolveCache`]): what `CID/a/b` names, and the entries of a
//! directory by its CID.
//!
//! Content addressing makes both trivially correct: the blocks under a CID
//! never change, so neither does what a path under it names nor what a
//! directory holds, and nothing is ever invalidated. Only answers that
//! were read in full are kept (every block of them was read and verified,
//! from the store or from a peer); an error never is, so a block not
//! fetched yet is never remembered as "not found". Both caches are bounded
//! by their bytes, each entry weighing its bytes plus a fixed overhead, so
//! that the number of entries is bounded too.

use super::{directory::resolve_steps, list, load_root, DirEntry, Node};
use crate::block::Cid;
use crate::dag::{BlockSource, DagError};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

/// What each entry weighs beyond its own bytes (the key, moka's
/// bookkeeping): with it, `capacity / ENTRY_OVERHEAD_BYTES` bounds the
/// number of entries.
const ENTRY_OVERHEAD_BYTES: usize = 128;

/// The largest share of the listing cache one directory may take
/// (1/`LISTING_SHARE`): a huge directory is listed afresh every time
/// rather than pushing every other listing out.
const LISTING_SHARE: u64 = 8;

/// What a path under a root names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResolvedPath {
    /// The CID the path names.
    pub cid: Cid,
    /// The CID of every step, the root first and `cid` last (the
    /// gateway's `X-Ipfs-Roots`).
    pub roots: Arc<[Cid]>,
    /// What `cid` is ([`Node::kind`]), when a resolution read it.
    pub kind: Option<&'static str>,
}

/// Hits and misses of one cache, and what memory pressure took from it,
/// for metrics.
#[derive(Debug, Default)]
pub struct CacheCounters {
    /// Lookups answered from the cache.
    pub hits: AtomicU64,
    /// Lookups that had to read blocks.
    pub misses: AtomicU64,
    /// Times the cache was emptied because memory was short
    /// ([`ResolveCache::shed`]) while it held something.
    pub pressure_sheds: AtomicU64,
    /// Bytes (by the weigher) those emptyings dropped.
    pub pressure_dropped_bytes: AtomicU64,
}

/// Resolved paths by (root, path) and directory listings by CID.
pub struct ResolveCache {
    paths: moka::sync::Cache<(Cid, String), ResolvedPath>,
    listings: moka::sync::Cache<Cid, Arc<[DirEntry]>>,
    listing_max_bytes: u64,
    path_counts: CacheCounters,
    listing_counts: CacheCounters,
    /// Cleared while memory is short ([`ResolveCache::shed`]): nothing new
    /// is kept until [`ResolveCache::admit_again`].
    admitting: AtomicBool,
}

impl std::fmt::Debug for ResolveCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResolveCache")
            .field("path_bytes", &self.paths.weighted_size())
            .field("listing_bytes", &self.listings.weighted_size())
            .finish()
    }
}

/// The key of `segments` under `root`: the names joined by `/` (a name
/// never holds one: neither a path split on `/` nor the gateway's checked
/// segments can).
fn key<S: AsRef<str>>(root: Cid, segments: &[S]) -> (Cid, String) {
    let mut path = String::new();
    for (i, s) in segments.iter().enumerate() {
        if i > 0 {
            path.push('/');
        }
        path.push_str(s.as_ref());
    }
    (root, path)
}

fn weight_of<T>(bytes: usize) -> u32 {
    let own = std::mem::size_of::<T>();
    u32::try_from(bytes.saturating_add(own + ENTRY_OVERHEAD_BYTES)).unwrap_or(u32::MAX)
}

fn listing_weight(entries: &[DirEntry]) -> usize {
    entries
        .iter()
        .map(|e| e.name.len() + std::mem::size_of::<DirEntry>() + ENTRY_OVERHEAD_BYTES)
        .sum()
}

impl ResolveCache {
    /// Caches of at most `path_bytes` of resolved paths and
    /// `listing_bytes` of listings (0: that cache keeps nothing).
    pub fn new(path_bytes: u64, listing_bytes: u64) -> ResolveCache {
        let paths = moka::sync::Cache::builder()
            .max_capacity(path_bytes)
            .weigher(|k: &(Cid, String), v: &ResolvedPath| {
                weight_of::<ResolvedPath>(k.1.len() + v.roots.len() * std::mem::size_of::<Cid>())
            })
            .build();
        let listings = moka::sync::Cache::builder()
            .max_capacity(listing_bytes)
            .weigher(|_: &Cid, v: &Arc<[DirEntry]>| weight_of::<Arc<[DirEntry]>>(listing_weight(v)))
            .build();
        ResolveCache {
            paths,
            listings,
            listing_max_bytes: listing_bytes / LISTING_SHARE,
            path_counts: CacheCounters::default(),
            listing_counts: CacheCounters::default(),
            admitting: AtomicBool::new(true),
        }
    }

    /// Empties both caches because memory is short, and keeps nothing new
    /// until [`admit_again`](Self::admit_again): lookups then read blocks
    /// (from the store, or the memory tier while it holds them). Returns
    /// the bytes dropped, counted per cache in its
    /// [`CacheCounters::pressure_dropped_bytes`].
    pub fn shed(&self) -> u64 {
        self.admitting.store(false, Relaxed);
        let (path_bytes, _) = self.path_usage();
        let (listing_bytes, _) = self.listing_usage();
        self.paths.invalidate_all();
        self.listings.invalidate_all();
        self.paths.run_pending_tasks();
        self.listings.run_pending_tasks();
        for (counts, bytes) in [
            (&self.path_counts, path_bytes),
            (&self.listing_counts, listing_bytes),
        ] {
            if bytes > 0 {
                counts.pressure_sheds.fetch_add(1, Relaxed);
                counts.pressure_dropped_bytes.fetch_add(bytes, Relaxed);
            }
        }
        path_bytes + listing_bytes
    }

    /// Lets the caches keep answers again after a [`shed`](Self::shed).
    pub fn admit_again(&self) {
        self.admitting.store(true, Relaxed);
    }

    /// Whether answers are being kept (not since a [`shed`](Self::shed)
    /// without an [`admit_again`](Self::admit_again)).
    pub fn admitting(&self) -> bool {
        self.admitting.load(Relaxed)
    }

    /// Hits and misses of resolved paths.
    pub fn path_counts(&self) -> &CacheCounters {
        &self.path_counts
    }

    /// Hits and misses of listings.
    pub fn listing_counts(&self) -> &CacheCounters {
        &self.listing_counts
    }

    /// Bytes (by the weigher) and entries the path cache holds now.
    pub fn path_usage(&self) -> (u64, u64) {
        self.paths.run_pending_tasks();
        (self.paths.weighted_size(), self.paths.entry_count())
    }

    /// Bytes (by the weigher) and entries the listing cache holds now.
    pub fn listing_usage(&self) -> (u64, u64) {
        self.listings.run_pending_tasks();
        (self.listings.weighted_size(), self.listings.entry_count())
    }

    /// What `segments` under `root` name, when remembered: reads no block,
    /// so async code may ask. Counts a hit only (a caller that misses goes
    /// on to [`resolve`](Self::resolve), which counts the miss).
    pub fn cached<S: AsRef<str>>(&self, root: Cid, segments: &[S]) -> Option<ResolvedPath> {
        if segments.is_empty() {
            return Some(unresolved(root));
        }
        let found = self.paths.get(&key(root, segments))?;
        self.path_counts.hits.fetch_add(1, Relaxed);
        Some(found)
    }

    /// What `segments` (names) under `root` name, from the cache or read
    /// through the directories (and HAMT shards) from `source`, then
    /// remembered. Errors are returned, never remembered.
    pub fn resolve<S: AsRef<str>>(
        &self,
        source: &dyn BlockSource,
        root: Cid,
        segments: &[S],
    ) -> Result<ResolvedPath, DagError> {
        if segments.is_empty() {
            return Ok(unresolved(root));
        }
        let key = key(root, segments);
        if let Some(found) = self.paths.get(&key) {
            self.path_counts.hits.fetch_add(1, Relaxed);
            return Ok(found);
        }
        self.path_counts.misses.fetch_add(1, Relaxed);
        let steps = resolve_steps(source, root, segments.iter().map(|s| s.as_ref()))?;
        let resolved = ResolvedPath {
            cid: *steps.last().unwrap_or(&root),
            roots: steps.into(),
            kind: None,
        };
        if self.admitting() {
            self.paths.insert(key, resolved.clone());
        }
        Ok(resolved)
    }

    /// [`resolve`](Self::resolve), then the block the path names, decoded
    /// as the block a read starts at ([`load_root`]); its kind is
    /// remembered with the path.
    pub fn resolve_node<S: AsRef<str>>(
        &self,
        source: &dyn BlockSource,
        root: Cid,
        segments: &[S],
    ) -> Result<(ResolvedPath, Node), DagError> {
        let mut resolved = self.resolve(source, root, segments)?;
        let node = load_root(source, &resolved.cid)?;
        if resolved.kind.is_none() && !segments.is_empty() && self.admitting() {
            resolved.kind = Some(node.kind());
            self.paths.insert(key(root, segments), resolved.clone());
        }
        Ok((resolved, node))
    }

    /// The remembered listing of the directory `cid`: reads no block, so
    /// async code may ask. Counts a hit only.
    pub fn listing(&self, cid: &Cid) -> Option<Arc<[DirEntry]>> {
        let found = self.listings.get(cid)?;
        self.listing_counts.hits.fetch_add(1, Relaxed);
        Some(found)
    }

    /// The listing of `cid` ([`list`]), from the cache or read from
    /// `source`, then remembered unless it is too large a share of the
    /// cache. Errors are returned, never remembered.
    pub fn list(&self, source: &dyn BlockSource, cid: &Cid) -> Result<Arc<[DirEntry]>, DagError> {
        if let Some(found) = self.listings.get(cid) {
            self.listing_counts.hits.fetch_add(1, Relaxed);
            return Ok(found);
        }
        self.listing_counts.misses.fetch_add(1, Relaxed);
        let entries: Arc<[DirEntry]> = list(source, cid)?.into();
        if self.admitting() && listing_weight(&entries) as u64 <= self.listing_max_bytes {
            self.listings.insert(*cid, Arc::clone(&entries));
        }
        Ok(entries)
    }
}

/// The empty path: the root itself, nothing to remember.
fn unresolved(root: Cid) -> ResolvedPath {
    ResolvedPath {
        cid: root,
        roots: Arc::from([root]),
        kind: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::block::{Block, CidFormat, HashAlg, RAW};
    use crate::dag::builder::{directory_block, Built};
    use crate::dag::hamt::build_sharded;
    use crate::store::{MemoryStore, Store};

    const FORMAT: CidFormat = CidFormat {
        version: 1,
        hash: HashAlg::Sha2_256,
    };

    fn put_file(store: &MemoryStore, text: &str) -> Built {
        let block = Block::new(FORMAT, RAW, text.as_bytes().to_vec());
        let built = Built {
            cid: *block.cid(),
            file_size: text.len() as u64,
            tsize: text.len() as u64,
        };
        store.put(block).expect("put");
        built
    }

    /// `root/` holding `plain/a.txt` and `big/file-NNNN` (a HAMT of 600).
    fn tree(store: &MemoryStore) -> (Cid, Vec<(String, Built)>) {
        let a = put_file(store, "hello");
        let (plain, plain_built) = directory_block(FORMAT, vec![("a.txt".into(), a)]);
        store.put(plain).expect("put");
        let shard: Vec<(String, Built)> = (0..600)
            .map(|i| (format!("file-{i:04}"), put_file(store, &format!("f{i}"))))
            .collect();
        let big = build_sharded(FORMAT, shard.clone(), &mut |b| {
            store.put(b)?;
            Ok(())
        })
        .expect("hamt");
        let (root, root_built) = directory_block(
            FORMAT,
            vec![("plain".into(), plain_built), ("big".into(), big)],
        );
        store.put(root).expect("put");
        (root_built.cid, shard)
    }

    #[test]
    fn paths_through_plain_and_sharded_directories_are_remembered() {
        let store = MemoryStore::new();
        let (root, shard) = tree(&store);
        let cache = ResolveCache::new(1 << 20, 1 << 20);
        let r = cache
            .resolve(&store, root, &["plain", "a.txt"])
            .expect("plain");
        assert_eq!(r.roots.len(), 3);
        assert_eq!(r.roots[0], root);
        assert_eq!(cache.path_counts().misses.load(Relaxed), 1);
        // A second time: from the cache, with no block read at all.
        let empty = MemoryStore::new();
        let again = cache.resolve(&empty, root, &["plain", "a.txt"]);
        assert_eq!(again.expect("cached"), r);
        assert_eq!(cache.cached(root, &["plain", "a.txt"]), Some(r));
        assert_eq!(cache.path_counts().hits.load(Relaxed), 2);

        let (name, built) = &shard[417];
        let (r, node) = cache
            .resolve_node(&store, root, &["big", name.as_str()])
            .expect("sharded");
        assert_eq!(r.cid, built.cid);
        assert_eq!(node.kind(), "file");
        let again = cache.cached(root, &["big", name.as_str()]).expect("kept");
        assert_eq!((again.cid, again.kind), (built.cid, Some("file")));
        assert_eq!(*again.roots.last().expect("steps"), built.cid);
    }

    #[test]
    fn errors_are_never_remembered() {
        let store = MemoryStore::new();
        let (root, _) = tree(&store);
        let cache = ResolveCache::new(1 << 20, 1 << 20);
        assert!(matches!(
            cache.resolve(&store, root, &["plain", "absent"]),
            Err(DagError::NoSuchPath { .. })
        ));
        assert!(cache.cached(root, &["plain", "absent"]).is_none());
        // A block not here yet: not found now, found once it arrives.
        let partial = MemoryStore::new();
        partial
            .put(store.get(&root).expect("get").expect("root"))
            .expect("put");
        assert!(cache.resolve(&partial, root, &["plain", "a.txt"]).is_err());
        assert!(cache.list(&partial, &root).is_err());
        assert!(cache.cached(root, &["plain", "a.txt"]).is_none());
        assert!(cache.listing(&root).is_none());
        assert!(cache.resolve(&store, root, &["plain", "a.txt"]).is_ok());
        assert_eq!(cache.list(&store, &root).expect("list").len(), 2);
        assert!(cache.listing(&root).is_some());
    }

    #[test]
    fn listings_are_remembered_by_cid_and_bounded() {
        let store = MemoryStore::new();
        let (root, shard) = tree(&store);
        let big = cache_free_resolve(&store, root, "big");
        let cache = ResolveCache::new(1 << 20, 4 << 20);
        let listed = cache.list(&store, &big).expect("list");
        assert_eq!(listed.len(), shard.len());
        assert!(cache.listing(&big).as_deref() == Some(&*listed));
        assert_eq!(cache.listing_counts().misses.load(Relaxed), 1);

        // A cache too small for the sharded directory's listing (~150 KB,
        // more than an eighth of it) lists it every time and keeps nothing.
        let small = ResolveCache::new(1 << 20, 1 << 20);
        assert_eq!(small.list(&store, &big).expect("list").len(), shard.len());
        assert!(small.listing(&big).is_none());
        assert_eq!(small.listing_usage().1, 0);

        // Many paths in a small cache: its bytes stay within the bound.
        let tiny = ResolveCache::new(16 << 10, 0);
        for (name, _) in &shard {
            tiny.resolve(&store, root, &["big", name.as_str()])
                .expect("resolve");
        }
        let (bytes, entries) = tiny.path_usage();
        assert!(bytes <= 16 << 10, "{bytes} bytes kept");
        assert!(entries > 0 && entries < shard.len() as u64, "{entries}");
        // No listing is kept with no room for any.
        tiny.list(&store, &root).expect("list");
        assert!(tiny.listing(&root).is_none());
    }

    #[test]
    fn shedding_drops_both_caches_counts_it_and_keeps_nothing_until_admitted() {
        let store = MemoryStore::new();
        let (root, _) = tree(&store);
        let cache = ResolveCache::new(1 << 20, 1 << 20);
        let first = cache
            .resolve(&store, root, &["plain", "a.txt"])
            .expect("resolve");
        cache.list(&store, &root).expect("list");
        let (path_bytes, _) = cache.path_usage();
        let (listing_bytes, _) = cache.listing_usage();
        assert!(path_bytes > 0 && listing_bytes > 0);

        assert_eq!(cache.shed(), path_bytes + listing_bytes);
        assert_eq!(cache.path_usage(), (0, 0));
        assert_eq!(cache.listing_usage(), (0, 0));
        let counts = [cache.path_counts(), cache.listing_counts()];
        assert_eq!(counts.map(|c| c.pressure_sheds.load(Relaxed)), [1, 1]);
        assert_eq!(
            counts.map(|c| c.pressure_dropped_bytes.load(Relaxed)),
            [path_bytes, listing_bytes]
        );
        // Still answered (from blocks), but nothing kept while shed.
        let again = cache.resolve_node(&store, root, &["plain", "a.txt"]);
        assert_eq!(again.expect("resolve").0.cid, first.cid);
        assert_eq!(cache.list(&store, &root).expect("list").len(), 2);
        assert!(cache.cached(root, &["plain", "a.txt"]).is_none());
        assert!(cache.listing(&root).is_none());
        // An empty cache shed again counts nothing more.
        assert_eq!(cache.shed(), 0);
        assert_eq!(cache.path_counts().pressure_sheds.load(Relaxed), 1);

        cache.admit_again();
        cache
            .resolve(&store, root, &["plain", "a.txt"])
            .expect("resolve");
        assert!(cache.cached(root, &["plain", "a.txt"]).is_some());
    }

    fn cache_free_resolve(store: &MemoryStore, root: Cid, name: &str) -> Cid {
        super::super::resolve_path(store, root, name).expect("resolve")
    }
}

//! Reading content: resolving paths, reading files (whole or a byte
//! range), writing a file or tree out, listing directories, and the CIDs
//! of a DAG.

use super::{Node, NodeError};
use crate::block::{parse_cid, Cid};
use crate::dag::reader::{
    self, ExportStats, FileReader, ReadOptions, ResolveCache, MAX_HELD_BLOCKS,
};
use crate::dag::{walk, BlockSource, DagError};
use bytes::Bytes;
use std::collections::HashSet;
use std::path::Path;
use std::sync::Arc;

impl Node {
    /// Resolves `/ipfs/CID/path` or `CID/path` to the CID it names.
    pub fn resolve(&self, path: &str) -> Result<Cid, NodeError> {
        self.resolve_in(&*self.source(), path)
    }

    /// Resolves `path` like [`resolve`](Self::resolve), reading blocks
    /// from `source` (e.g. a network fetch session).
    /// Resolutions are remembered ([`resolve_cache`](Self::resolve_cache)).
    pub fn resolve_in(&self, source: &dyn BlockSource, path: &str) -> Result<Cid, NodeError> {
        let (root, names) = path_names(path)?;
        Ok(self.resolved.resolve(source, root, &names)?.cid)
    }

    /// The resolved paths and directory listings this node remembers.
    pub fn resolve_cache(&self) -> &Arc<ResolveCache> {
        &self.resolved
    }

    /// What `path` names, when its resolution is remembered; reads no
    /// block, so async code may ask.
    pub fn resolved(&self, path: &str) -> Option<Cid> {
        let (root, names) = path_names(path).ok()?;
        Some(self.resolved.cached(root, &names)?.cid)
    }

    /// Bytes `[offset, offset + length)` of the file at `path`, as shared
    /// slices of its blocks, when memory holds all it takes: the path's
    /// resolution ([`resolved`](Self::resolved)) and every block of the
    /// file (the hot tier, at most [`MAX_HELD_BLOCKS`] of them). Reads no
    /// store, so async code answers small hot reads with it, no blocking
    /// thread; `None` sends the caller to the usual reader (which also
    /// reports anything wrong). An offset past the end gives no bytes.
    pub fn held_read(&self, path: &str, offset: u64, length: Option<u64>) -> Option<Vec<Bytes>> {
        let cid = self.resolved(path)?;
        let hot = self.hot.as_ref()?;
        let node = reader::Node::decode(&hot.get(&cid)?).ok()?;
        let pieces = match node.whole_file() {
            Some(bytes) => vec![bytes.clone()],
            None => reader::held_pieces(&node, &|c| hot.get(c), MAX_HELD_BLOCKS)?,
        };
        let size = node.file_size();
        let offset = offset.min(size);
        let take = length.map_or(size - offset, |l| l.min(size - offset));
        Some(reader::slice_pieces(&pieces, offset, take))
    }

    /// Like [`cat`](Self::cat), reading blocks from `source` with `opts`.
    pub fn cat_from(
        &self,
        source: Arc<dyn BlockSource>,
        path: &str,
        offset: u64,
        length: Option<u64>,
        opts: ReadOptions,
    ) -> Result<FileReader, NodeError> {
        let cid = self.resolve_in(&*source, path)?;
        Ok(FileReader::new(source, cid, offset, length, opts)?)
    }

    /// A reader over `[offset, offset + length)` of the file at `path`.
    pub fn cat(
        &self,
        path: &str,
        offset: u64,
        length: Option<u64>,
    ) -> Result<FileReader, NodeError> {
        self.cat_from(self.source(), path, offset, length, self.read_opts)
    }

    /// Writes the file or tree at `path` to `out` (which must not exist).
    pub fn get(
        &self,
        path: &str,
        out: &Path,
        progress: &mut dyn FnMut(u64),
    ) -> Result<ExportStats, NodeError> {
        let cid = self.resolve(path)?;
        Ok(reader::export(
            self.source(),
            cid,
            out,
            self.read_opts,
            progress,
        )?)
    }

    /// Lists a directory.
    pub fn ls(&self, path: &str) -> Result<Vec<reader::DirEntry>, NodeError> {
        let cid = self.resolve(path)?;
        Ok(self.resolved.list(&*self.source(), &cid)?.to_vec())
    }

    /// Size of the file (or cumulative size otherwise) at `path`.
    pub fn file_size(&self, path: &str) -> Result<u64, NodeError> {
        let cid = self.resolve(path)?;
        Ok(reader::load(&*self.source(), &cid)?.file_size())
    }

    /// Every CID of the DAG under `root` (parents first; all must be stored).
    pub fn dag_cids(&self, root: &Cid) -> Result<Vec<Cid>, NodeError> {
        let mut out = Vec::new();
        walk::reach(&*self.source(), root, &mut HashSet::new(), &mut |c| {
            out.push(*c);
            Ok(())
        })?;
        Ok(out)
    }

    /// Whether every block of the DAG under `root` is stored.
    pub fn has_dag(&self, root: &Cid) -> Result<bool, NodeError> {
        match walk::reach(&*self.source(), root, &mut HashSet::new(), &mut |_| Ok(())) {
            Ok(()) => Ok(true),
            Err(DagError::NotFound { .. }) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }
}

/// The root of `/ipfs/CID/a/b` (or `CID/a/b`) and its names, empty ones
/// left out.
fn path_names(path: &str) -> Result<(Cid, Vec<&str>), NodeError> {
    let root = parse_cid(path)?;
    let trimmed = path.trim().trim_start_matches("/ipfs/");
    let rest = trimmed.split_once('/').map_or("", |(_, r)| r);
    Ok((root, rest.split('/').filter(|s| !s.is_empty()).collect()))
}

/// The resolution caches of a node whose memory tier is `hot_bytes`: a
/// sixteenth of it for paths (at most 4 MiB) and an eighth for listings
/// (at most 8 MiB); none with the tier off.
pub(super) fn resolve_cache_for(hot_bytes: u64) -> Arc<ResolveCache> {
    Arc::new(ResolveCache::new(
        (hot_bytes / 16).min(4 << 20),
        (hot_bytes / 8).min(8 << 20),
    ))
}

/// Exposes the resolution caches' counters on `/metrics`.
#[derive(Debug)]
pub(super) struct ResolveCollector(pub(super) Arc<ResolveCache>);

impl prometheus_client::collector::Collector for ResolveCollector {
    fn encode(
        &self,
        mut encoder: prometheus_client::encoding::DescriptorEncoder,
    ) -> Result<(), std::fmt::Error> {
        use crate::net::metrics::{encode_counter, encode_gauge};
        use std::sync::atomic::Ordering::Relaxed;
        let gauge = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
        let caches = [
            (
                "path",
                "resolved paths",
                self.0.path_counts(),
                self.0.path_usage(),
            ),
            (
                "listing",
                "directory listings",
                self.0.listing_counts(),
                self.0.listing_usage(),
            ),
        ];
        for (name, what, counts, (bytes, entries)) in caches {
            encode_counter(
                &mut encoder,
                &format!("{name}_cache_hits"),
                &format!("Lookups of {what} answered from memory"),
                counts.hits.load(Relaxed),
            )?;
            encode_counter(
                &mut encoder,
                &format!("{name}_cache_misses"),
                &format!("Lookups of {what} that read blocks"),
                counts.misses.load(Relaxed),
            )?;
            encode_gauge(
                &mut encoder,
                &format!("{name}_cache_bytes"),
                &format!("Bytes the cache of {what} holds (with bookkeeping)"),
                gauge(bytes),
            )?;
            encode_gauge(
                &mut encoder,
                &format!("{name}_cache_entries"),
                &format!("Entries the cache of {what} holds"),
                gauge(entries),
            )?;
            encode_counter(
                &mut encoder,
                &format!("{name}_cache_pressure_sheds"),
                &format!("Times the cache of {what} was emptied because memory was short"),
                counts.pressure_sheds.load(Relaxed),
            )?;
            encode_counter(
                &mut encoder,
                &format!("{name}_cache_pressure_dropped_bytes"),
                &format!("Bytes the cache of {what} dropped because memory was short"),
                counts.pressure_dropped_bytes.load(Relaxed),
            )?;
        }
        Ok(())
    }
}

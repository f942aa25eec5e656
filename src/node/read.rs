//! Reading content: resolving paths, reading files (whole or a byte
//! range), writing a file or tree out, listing directories, and the CIDs
//! of a DAG.

use super::{Node, NodeError};
use crate::block::{parse_cid, Cid};
use crate::dag::reader::{self, ExportStats, FileReader, ReadOptions};
use crate::dag::{walk, BlockSource, DagError};
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
    pub fn resolve_in(&self, source: &dyn BlockSource, path: &str) -> Result<Cid, NodeError> {
        let root = parse_cid(path)?;
        let trimmed = path.trim().trim_start_matches("/ipfs/");
        let rest = trimmed.split_once('/').map_or("", |(_, r)| r);
        Ok(reader::resolve_path(source, root, rest)?)
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
        Ok(reader::list(&*self.source(), &cid)?)
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

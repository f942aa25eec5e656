//! The directory tree under the MFS root: finding a path, and changing the
//! entry at a path by rewriting the directories above it (path copying:
//! every directory from the root down to the change gets a new block, the
//! rest of the tree is shared with the old root). Directories are rebuilt
//! as `add` builds them: plain, or HAMT-sharded past the threshold.

use super::file::{format_of, Sink};
use super::{MfsError, MfsPath};
use crate::block::{Cid, CidFormat};
use crate::dag::builder::{directory_block, Built};
use crate::dag::hamt::{build_directory, Sharding};
use crate::dag::reader::{directory_entries, load, lookup, Node};
use crate::dag::{BlockSource, DagError};

/// What a change does to the entry it is given (`None`: absent), returning
/// the entry to leave there (`None`: remove it).
pub(super) type Change<'a> =
    dyn FnMut(Option<Built>, &mut Sink<'_>) -> Result<Option<Built>, MfsError> + 'a;

/// The tree as its operations read it.
pub(super) struct Tree<'a> {
    pub source: &'a dyn BlockSource,
    pub sharding: Sharding,
    /// The format of directories made new.
    pub format: CidFormat,
}

impl Tree<'_> {
    /// The CID at `path` under `root`.
    pub fn find(&self, root: Cid, path: &MfsPath) -> Result<Cid, MfsError> {
        let mut cid = root;
        for (depth, name) in path.names().iter().enumerate() {
            let node = load(self.source, &cid)?;
            if !matches!(node, Node::Directory { .. } | Node::HamtShard { .. }) {
                return Err(MfsError::NotADirectory {
                    path: path.prefix(depth).to_string(),
                });
            }
            cid = lookup(self.source, cid, node, name)?.ok_or_else(|| MfsError::NotFound {
                path: path.prefix(depth + 1).to_string(),
            })?;
        }
        Ok(cid)
    }

    /// The entries of the directory `dir` (at `path`), as `add` holds them.
    pub fn entries(&self, dir: &Cid, path: &MfsPath) -> Result<Vec<(String, Built)>, MfsError> {
        let node = load(self.source, dir)?;
        if !matches!(node, Node::Directory { .. } | Node::HamtShard { .. }) {
            return Err(MfsError::NotADirectory {
                path: path.to_string(),
            });
        }
        Ok(directory_entries(self.source, dir, node)?
            .into_iter()
            .map(|l| {
                let built = Built {
                    cid: l.cid,
                    file_size: 0,
                    tsize: l.tsize,
                };
                (l.name, built)
            })
            .collect())
    }

    /// An empty directory in this tree's format.
    pub fn empty_dir(&self, sink: &mut Sink<'_>) -> Result<Built, DagError> {
        let (block, built) = directory_block(self.format, Vec::new());
        sink(block)?;
        Ok(built)
    }

    /// Applies `change` to the entry at `path` (not the root) under `root`
    /// and rebuilds the directories above it; the new root. Missing
    /// directories on the way are made with `parents`, else the path does
    /// not exist.
    pub fn update(
        &self,
        root: Cid,
        path: &MfsPath,
        parents: bool,
        change: &mut Change<'_>,
        sink: &mut Sink<'_>,
    ) -> Result<Built, MfsError> {
        if path.is_root() {
            return Err(MfsError::Root);
        }
        self.update_in(root, path, 0, parents, change, sink)
    }

    fn update_in(
        &self,
        dir: Cid,
        path: &MfsPath,
        depth: usize,
        parents: bool,
        change: &mut Change<'_>,
        sink: &mut Sink<'_>,
    ) -> Result<Built, MfsError> {
        let mut entries = self.entries(&dir, &path.prefix(depth))?;
        let name = &path.names()[depth];
        let at = entries.iter().position(|(n, _)| n == name);
        let old = at.map(|i| entries[i].1.clone());
        let new = if depth + 1 == path.names().len() {
            change(old, sink)?
        } else {
            let child = match old {
                Some(b) => b.cid,
                None if parents => self.empty_dir(sink)?.cid,
                None => {
                    return Err(MfsError::NotFound {
                        path: path.prefix(depth + 1).to_string(),
                    })
                }
            };
            Some(self.update_in(child, path, depth + 1, parents, change, sink)?)
        };
        match (at, new) {
            (Some(i), Some(b)) => entries[i].1 = b,
            (Some(i), None) => {
                entries.remove(i);
            }
            (None, Some(b)) => entries.push((name.clone(), b)),
            (None, None) => {}
        }
        let format = format_of(&dir).unwrap_or(self.format);
        Ok(build_directory(format, self.sharding, entries, sink)?)
    }
}

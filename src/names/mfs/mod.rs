//! MFS, Kubo's "mutable file system" (`ipfs files`): a directory tree you
//! change with file-system verbs (mkdir, write, mv, rm, cp), each state of
//! which is an ordinary immutable UnixFS DAG named by its root CID.
//!
//! - this file: [`Mfs`], the operations, and how the root is kept;
//! - `error.rs`: [`MfsError`];
//! - `options.rs`: `[mfs]` in `config.toml` ([`MfsSettings`]) and the
//!   options of writes ([`WriteOptions`], [`FormatOverrides`]);
//! - `path.rs`: [`MfsPath`], parsing and cleaning paths;
//! - `tree.rs`: finding paths and path-copying changes up to the root;
//! - `file.rs`: writing byte ranges into files (only the touched leaves
//!   and the nodes above them are made anew).
//!
//! Every block is made with the node's import options, the same builder
//! `add` uses, so a file or directory written here has the CID `add` gives
//! the same content (directories shard as HAMTs past the same threshold).
//!
//! The root CID is kept in the store's metadata journal under
//! [`ROOT_KEY`] (appended and fsynced: a crash leaves the old root or the
//! new one), written only after every block of the new tree is durable.
//! Operations take one lock for their whole run, so they apply one at a
//! time; garbage collection takes it too ([`Mfs::with_root`]) and keeps
//! every block the root reaches.

mod error;
mod file;
mod options;
mod path;
mod tree;

pub use error::MfsError;
pub use options::{AutopublishSettings, FormatOverrides, MfsSettings, WriteOptions};
pub use path::MfsPath;

use crate::block::{Block, Cid, RAW};
use crate::dag::builder::{Built, ImportOptions};
use crate::dag::reader::{load, FileReader, Node, ReadOptions};
use crate::dag::{BlockSource, DagError};
use crate::store::Store;
use file::WriteSpec;
use std::io::Read;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use tree::Tree;

/// The metadata key the root CID is kept under.
pub const ROOT_KEY: &str = "mfs/root";

/// Blocks gathered before they are handed to the store in one batch.
const BATCH_BLOCKS: usize = 64;

/// What kind of node a path names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MfsKind {
    /// A file (or a raw block).
    File,
    /// A directory, plain or sharded.
    Directory,
    /// A symbolic link.
    Symlink,
}

impl MfsKind {
    /// The name `files stat` gives it.
    pub fn as_str(self) -> &'static str {
        match self {
            MfsKind::File => "file",
            MfsKind::Directory => "directory",
            MfsKind::Symlink => "symlink",
        }
    }
}

/// What `files stat` tells of a path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MfsStat {
    /// The node's CID.
    pub cid: Cid,
    /// File bytes (0 for directories).
    pub size: u64,
    /// The block and every block below it.
    pub cumulative_size: u64,
    /// Links of the node.
    pub blocks: u64,
    /// What it is.
    pub kind: MfsKind,
}

/// One entry of `files ls`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MfsEntry {
    /// Its name in the directory.
    pub name: String,
    /// What it is.
    pub kind: MfsKind,
    /// File bytes (0 for directories).
    pub size: u64,
    /// Its CID.
    pub cid: Cid,
}

/// The mutable tree of one node.
pub struct Mfs {
    store: Arc<dyn Store>,
    source: Arc<dyn BlockSource>,
    import: ImportOptions,
    /// The current root, once read or made; held for a whole operation.
    root: Mutex<Option<Cid>>,
    blocks_written: AtomicU64,
    changes: tokio::sync::watch::Sender<u64>,
}

impl Mfs {
    /// The tree kept in `store`, building new content with `import`.
    pub fn new(store: Arc<dyn Store>, import: ImportOptions) -> Mfs {
        Mfs {
            source: Arc::new(crate::dag::SharedStore(Arc::clone(&store))),
            store,
            import,
            root: Mutex::new(None),
            blocks_written: AtomicU64::new(0),
            changes: tokio::sync::watch::channel(0).0,
        }
    }

    /// The import options new content is built with.
    pub fn import_options(&self) -> &ImportOptions {
        &self.import
    }

    /// Blocks handed to the store by MFS operations so far.
    pub fn blocks_written(&self) -> u64 {
        self.blocks_written.load(Ordering::Relaxed)
    }

    /// Changes counted as they are committed (autopublish waits on it).
    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<u64> {
        self.changes.subscribe()
    }

    /// Runs `f` with the kept root (`None`: MFS never used) while holding
    /// the lock, so no operation changes the tree meanwhile (GC).
    pub fn with_root<T>(&self, f: impl FnOnce(Option<Cid>) -> T) -> Result<T, MfsError> {
        let guard = self.lock();
        let root = match *guard {
            Some(root) => Some(root),
            None => self.kept_root()?,
        };
        Ok(f(root))
    }

    /// The current root CID.
    pub fn root(&self) -> Result<Cid, MfsError> {
        let mut guard = self.lock();
        self.current(&mut guard)
    }

    fn lock(&self) -> MutexGuard<'_, Option<Cid>> {
        self.root.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn kept_root(&self) -> Result<Option<Cid>, MfsError> {
        let Some(bytes) = self.store.meta_get(ROOT_KEY)? else {
            return Ok(None);
        };
        crate::block::cid_from_bytes(&bytes)
            .map(Some)
            .map_err(|e| MfsError::DamagedRoot {
                reason: e.to_string(),
            })
    }

    /// The root under the lock: the kept one, or a new empty directory.
    fn current(&self, guard: &mut MutexGuard<'_, Option<Cid>>) -> Result<Cid, MfsError> {
        if let Some(root) = **guard {
            return Ok(root);
        }
        let root = match self.kept_root()? {
            Some(root) => root,
            None => {
                let batch = Batch::new(self);
                let empty = self.tree().empty_dir(&mut |b| batch.push(b))?;
                batch.finish()?;
                self.store.meta_put(ROOT_KEY, Some(&empty.cid.to_bytes()))?;
                empty.cid
            }
        };
        **guard = Some(root);
        Ok(root)
    }

    fn tree(&self) -> Tree<'_> {
        Tree {
            source: &*self.source,
            sharding: self.import.sharding,
            format: self.import.format,
        }
    }

    /// Runs a change under the lock: `f` gets the root and a block sink and
    /// returns the new root, which is kept once its blocks are durable.
    fn change(
        &self,
        f: impl FnOnce(&Tree<'_>, Cid, &mut file::Sink<'_>) -> Result<Cid, MfsError>,
    ) -> Result<Cid, MfsError> {
        let mut guard = self.lock();
        let root = self.current(&mut guard)?;
        let batch = Batch::new(self);
        let tree = Tree {
            source: &batch,
            ..self.tree()
        };
        let new_root = f(&tree, root, &mut |b| batch.push(b))?;
        batch.finish()?;
        if new_root != root {
            self.store.meta_put(ROOT_KEY, Some(&new_root.to_bytes()))?;
            *guard = Some(new_root);
            self.changes.send_modify(|n| *n += 1);
        }
        Ok(new_root)
    }

    /// The CID at `path`.
    pub fn resolve(&self, path: &MfsPath) -> Result<Cid, MfsError> {
        let root = self.root()?;
        self.tree().find(root, path)
    }

    /// `files stat`.
    pub fn stat(&self, path: &MfsPath) -> Result<MfsStat, MfsError> {
        let cid = self.resolve(path)?;
        stat_of(&*self.source, cid)
    }

    /// `files ls`: a directory's entries sorted by name (with `long`, their
    /// kinds, sizes and CIDs), or a file as its one entry.
    pub fn ls(&self, path: &MfsPath, long: bool) -> Result<Vec<MfsEntry>, MfsError> {
        let cid = self.resolve(path)?;
        let tree = self.tree();
        let entry = |name: String, cid: Cid| -> Result<MfsEntry, MfsError> {
            if !long {
                return Ok(MfsEntry {
                    name,
                    kind: MfsKind::File,
                    size: 0,
                    cid,
                });
            }
            let s = stat_of(&*self.source, cid)?;
            Ok(MfsEntry {
                name,
                kind: s.kind,
                size: s.size,
                cid,
            })
        };
        match load(&*self.source, &cid)? {
            Node::Directory { .. } | Node::HamtShard { .. } => {
                let mut entries = tree.entries(&cid, path)?;
                entries.sort_by(|a, b| a.0.cmp(&b.0));
                entries
                    .into_iter()
                    .map(|(name, b)| entry(name, b.cid))
                    .collect()
            }
            _ => Ok(vec![entry(path.name().unwrap_or("").to_string(), cid)?]),
        }
    }

    /// `files read`: the file's bytes from `offset`, at most `count`.
    pub fn read(
        &self,
        path: &MfsPath,
        offset: u64,
        count: Option<u64>,
    ) -> Result<FileReader, MfsError> {
        let cid = self.resolve(path)?;
        if stat_of(&*self.source, cid)?.kind == MfsKind::Directory {
            return Err(MfsError::IsADirectory {
                path: path.to_string(),
            });
        }
        Ok(FileReader::new(
            Arc::clone(&self.source),
            cid,
            offset,
            count,
            ReadOptions::default(),
        )?)
    }

    /// `files mkdir`: a new empty directory (with `parents`, missing ones
    /// on the way too, and an existing directory is no error), named with
    /// `format` if given.
    pub fn mkdir(
        &self,
        path: &MfsPath,
        parents: bool,
        format: FormatOverrides,
    ) -> Result<(), MfsError> {
        let format = format.apply(self.import)?.format;
        if path.is_root() {
            return if parents {
                Ok(())
            } else {
                Err(MfsError::Exists { path: "/".into() })
            };
        }
        self.change(|tree, root, sink| {
            let dirs = Tree { format, ..*tree };
            let built = tree.update(
                root,
                path,
                parents,
                &mut |old, sink| match old {
                    None => Ok(Some(dirs.empty_dir(sink)?)),
                    Some(b) if parents && is_directory(tree.source, &b.cid)? => Ok(Some(b)),
                    Some(_) => Err(MfsError::Exists {
                        path: path.to_string(),
                    }),
                },
                sink,
            )?;
            Ok(built.cid)
        })?;
        Ok(())
    }

    /// `files write`: `data` into the file at `path`.
    pub fn write(
        &self,
        path: &MfsPath,
        data: &mut dyn Read,
        opts: &WriteOptions,
    ) -> Result<(), MfsError> {
        let import = opts.format.apply(self.import)?;
        let mut limited;
        let data: &mut dyn Read = match opts.count {
            Some(n) => {
                limited = Read::take(data, n);
                &mut limited
            }
            None => data,
        };
        let mut data = Some(data);
        self.change(|tree, root, sink| {
            let built = tree.update(
                root,
                path,
                opts.parents,
                &mut |old, sink| {
                    let old = match old {
                        None if !opts.create => {
                            return Err(MfsError::NotFound {
                                path: path.to_string(),
                            })
                        }
                        None => None,
                        Some(b) => {
                            if stat_of(tree.source, b.cid)?.kind != MfsKind::File {
                                return Err(MfsError::IsADirectory {
                                    path: path.to_string(),
                                });
                            }
                            (!opts.truncate).then_some(b.cid)
                        }
                    };
                    let data = data
                        .take()
                        .ok_or(DagError::Internal("write applied twice"))?;
                    let spec = WriteSpec {
                        data,
                        offset: opts.offset,
                    };
                    Ok(Some(file::write(&self.source, &import, old, spec, sink)?))
                },
                sink,
            )?;
            Ok(built.cid)
        })?;
        Ok(())
    }

    /// `files rm`: removes the entry at `path` (a directory only with
    /// `recursive`; with `force`, a missing path is no error).
    pub fn rm(&self, path: &MfsPath, recursive: bool, force: bool) -> Result<(), MfsError> {
        self.change(|tree, root, sink| {
            let result = tree.update(
                root,
                path,
                false,
                &mut |old, _| match old {
                    None => Err(MfsError::NotFound {
                        path: path.to_string(),
                    }),
                    Some(b) if !recursive && !force && is_directory(tree.source, &b.cid)? => {
                        Err(MfsError::DirectoryNeedsRecursive {
                            path: path.to_string(),
                        })
                    }
                    Some(_) => Ok(None),
                },
                sink,
            );
            match result {
                Ok(built) => Ok(built.cid),
                Err(MfsError::NotFound { .. }) if force => Ok(root),
                Err(e) => Err(e),
            }
        })?;
        Ok(())
    }

    /// `files cp`: puts `cid` (a node of MFS or any local DAG) at `dst`,
    /// or, when `into` (`dst` given with a trailing `/`) and `dst` is a
    /// directory, inside it as `name` (else as the CID).
    pub fn cp(
        &self,
        cid: Cid,
        name: Option<&str>,
        dst: &MfsPath,
        into: bool,
        parents: bool,
    ) -> Result<(), MfsError> {
        self.place(cid, name, None, dst, into, parents)
    }

    /// The CID at `src` (for `cp` from an MFS path).
    pub fn cp_source(&self, src: &MfsPath) -> Result<Cid, MfsError> {
        self.resolve(src)
    }

    /// `files mv`: moves `src` to `dst` (into `dst` when it is an existing
    /// directory).
    pub fn mv(&self, src: &MfsPath, dst: &MfsPath) -> Result<(), MfsError> {
        if src.is_root() {
            return Err(MfsError::Root);
        }
        if src.contains(dst) && src != dst {
            return Err(MfsError::IntoItself {
                from: src.to_string(),
                to: dst.to_string(),
            });
        }
        let cid = self.resolve(src)?;
        self.place(cid, src.name(), Some(src), dst, true, false)
    }

    /// Links `cid` at `dst` (inside it as `name`, or the CID, when `into`
    /// and `dst` is a directory), removing `from` in the same change.
    fn place(
        &self,
        cid: Cid,
        name: Option<&str>,
        from: Option<&MfsPath>,
        dst: &MfsPath,
        into: bool,
        parents: bool,
    ) -> Result<(), MfsError> {
        let source = &*self.source;
        let tsize = cumulative_size(source, &cid)?;
        self.change(|tree, root, sink| {
            let mut target = dst.clone();
            let existing = tree.find(root, dst);
            if let Ok(dir) = &existing {
                if into && is_directory(source, dir)? {
                    let name = name.map_or_else(|| cid.to_string(), str::to_string);
                    target = dst.join(&name);
                }
            }
            if from == Some(&target) {
                return Ok(root);
            }
            let mut root = root;
            if let Some(src) = from {
                root = tree
                    .update(root, src, false, &mut |_, _| Ok(None), sink)?
                    .cid;
            }
            let built = tree.update(
                root,
                &target,
                parents,
                &mut |old, _| match old {
                    Some(_) => Err(MfsError::Exists {
                        path: target.to_string(),
                    }),
                    None => Ok(Some(Built {
                        cid,
                        file_size: 0,
                        tsize,
                    })),
                },
                sink,
            )?;
            Ok(built.cid)
        })?;
        Ok(())
    }

    /// `files flush`: the CID at `path` (every change is already kept).
    pub fn flush(&self, path: &MfsPath) -> Result<Cid, MfsError> {
        self.store.flush()?;
        let cid = self.resolve(path)?;
        self.changes.send_modify(|n| *n += 1);
        Ok(cid)
    }

    /// `files chcid`: names the node at `path` with `format` (its bytes
    /// unchanged), and the directories above it anew.
    pub fn chcid(&self, path: &MfsPath, format: FormatOverrides) -> Result<(), MfsError> {
        let format = format.apply(self.import)?.format;
        let renamed = |cid: Cid, sink: &mut file::Sink<'_>| -> Result<Cid, MfsError> {
            let block = self.source.block(&cid)?;
            if format.version == 0 && cid.codec() == RAW {
                return Err(MfsError::Options(
                    "CIDv0 cannot name a raw block (a file of raw leaves)".into(),
                ));
            }
            let renamed = Block::new(format, cid.codec(), block.data().clone());
            let new = *renamed.cid();
            sink(renamed)?;
            Ok(new)
        };
        self.change(|tree, root, sink| {
            if path.is_root() {
                return renamed(root, sink);
            }
            let built = tree.update(
                root,
                path,
                false,
                &mut |old, sink| match old {
                    None => Err(MfsError::NotFound {
                        path: path.to_string(),
                    }),
                    Some(b) => Ok(Some(Built {
                        cid: renamed(b.cid, sink)?,
                        ..b
                    })),
                },
                sink,
            )?;
            Ok(built.cid)
        })?;
        Ok(())
    }
}

/// Whether `cid` is a directory (plain or sharded).
fn is_directory(source: &dyn BlockSource, cid: &Cid) -> Result<bool, MfsError> {
    Ok(stat_of(source, *cid)?.kind == MfsKind::Directory)
}

/// The block's size plus the cumulative sizes its links record.
fn cumulative_size(source: &dyn BlockSource, cid: &Cid) -> Result<u64, MfsError> {
    Ok(stat_of(source, *cid)?.cumulative_size)
}

/// What `files stat` says of the node `cid`.
fn stat_of(source: &dyn BlockSource, cid: Cid) -> Result<MfsStat, MfsError> {
    let block = source.block(&cid)?;
    let node = Node::decode(&block)?;
    let own = block.data().len() as u64;
    let (kind, links) = match &node {
        Node::Raw(_) => (MfsKind::File, &[][..]),
        Node::File { links, .. } => (MfsKind::File, &links[..]),
        Node::Directory { links } | Node::HamtShard { links } => (MfsKind::Directory, &links[..]),
        Node::Symlink { .. } => (MfsKind::Symlink, &[][..]),
    };
    Ok(MfsStat {
        cid,
        size: node.file_size(),
        cumulative_size: own + links.iter().map(|l| l.tsize).sum::<u64>(),
        blocks: links.len() as u64,
        kind,
    })
}

/// Blocks of one operation, handed to the store in batches (each durable
/// before the root that needs it is kept); read back through it before
/// they are written (a move reads the tree its removal made).
struct Batch<'a> {
    mfs: &'a Mfs,
    blocks: Mutex<Vec<Block>>,
}

impl<'a> Batch<'a> {
    fn new(mfs: &'a Mfs) -> Self {
        Batch {
            mfs,
            blocks: Mutex::new(Vec::new()),
        }
    }

    fn pending(&self) -> MutexGuard<'_, Vec<Block>> {
        self.blocks.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn push(&self, block: Block) -> Result<(), DagError> {
        let mut blocks = self.pending();
        blocks.push(block);
        if blocks.len() >= BATCH_BLOCKS {
            self.write(&mut blocks)?;
        }
        Ok(())
    }

    fn write(&self, blocks: &mut Vec<Block>) -> Result<(), DagError> {
        let n = blocks.len() as u64;
        self.mfs.store.put_many(&mut blocks.drain(..))?;
        self.mfs.blocks_written.fetch_add(n, Ordering::Relaxed);
        Ok(())
    }

    fn finish(self) -> Result<(), MfsError> {
        self.write(&mut self.pending())?;
        Ok(())
    }
}

impl BlockSource for Batch<'_> {
    fn block(&self, cid: &Cid) -> Result<Block, DagError> {
        let found = self.pending().iter().find(|b| b.cid() == cid).cloned();
        match found {
            Some(b) => Ok(b),
            None => self.mfs.source.block(cid),
        }
    }
}

#[cfg(test)]
mod tests;

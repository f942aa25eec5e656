//! Adding content: a file or directory tree from disk, bytes from a reader,
//! or a stream of entries (the RPC API's multipart upload), chunked into a
//! UnixFS DAG whose blocks a writer thread stores while hashing goes on.

use super::{Node, NodeError, UnsupportedInput};
use crate::block::{Block, Cid, CidFormat};
use crate::dag::builder::{
    build_file, build_file_chunks, build_file_leaves, directory_block, symlink_block, Built,
    ImportOptions,
};
use crate::dag::hamt::{self, Sharding};
use crate::dag::DagError;
use crate::store::PinKind;
use bytes::Bytes;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::Arc;

/// Options of one `add`.
#[derive(Clone, Debug)]
pub struct AddOptions {
    /// How the DAG is built (CID format, chunker, layout, sharding).
    pub import: ImportOptions,
    /// Pin the root recursively once everything is stored.
    pub pin: bool,
    /// Compute CIDs without storing anything.
    pub only_hash: bool,
    /// Include files and directories whose name starts with a dot.
    pub hidden: bool,
    /// Wrap what is added in a directory (Kubo's `-w`; streamed adds).
    pub wrap: bool,
}

impl AddOptions {
    /// Add and pin, building the DAG as `config`'s `[import]` says (what
    /// `cairn add` does without flags).
    pub fn from_config(config: &super::Config) -> Result<AddOptions, NodeError> {
        Ok(AddOptions {
            import: config.import.options()?,
            ..AddOptions::default()
        })
    }
}

impl Default for AddOptions {
    /// cairn's import defaults, pinned, dot-files left out, no wrapping.
    fn default() -> Self {
        AddOptions {
            import: ImportOptions::default(),
            pin: true,
            only_hash: false,
            hidden: false,
            wrap: false,
        }
    }
}

/// One entry `add` produced (printed as `added <cid> <name>`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AddedEntry {
    /// The entry's root CID.
    pub cid: Cid,
    /// Path relative to the parent of what was added (Kubo's naming).
    pub name: String,
    /// File bytes (0 for directories).
    pub size: u64,
    /// Cumulative DAG size: the block and everything below it (what Kubo's
    /// `add` reports as `Size`).
    pub dag_size: u64,
}

/// One entry of a streamed add ([`Node::add_entries`]).
pub enum AddInput {
    /// A directory; its entries follow it.
    Directory {
        /// Path relative to the upload (`dir`, `dir/sub`).
        path: String,
    },
    /// A file and its bytes.
    File {
        /// Path relative to the upload; empty for a nameless upload.
        path: String,
        /// The file's bytes.
        reader: Box<dyn Read + Send>,
    },
    /// A symbolic link.
    Symlink {
        /// Path relative to the upload.
        path: String,
        /// Where the link points.
        target: String,
    },
}

impl AddInput {
    /// The entry's path relative to the upload.
    pub fn path(&self) -> &str {
        match self {
            AddInput::Directory { path }
            | AddInput::File { path, .. }
            | AddInput::Symlink { path, .. } => path,
        }
    }
}

/// Where builders hand their blocks.
type BlockSink<'a> = dyn FnMut(Block) -> Result<(), DagError> + 'a;

impl Node {
    /// Adds a file, or with `recursive` a directory tree, calling `on_entry`
    /// for each entry (children before their directory) and `progress` with
    /// the file bytes read so far. Returns the root entry.
    pub fn add_path(
        &self,
        path: &Path,
        recursive: bool,
        opts: &AddOptions,
        on_entry: &mut dyn FnMut(&AddedEntry),
        progress: &mut dyn FnMut(u64),
    ) -> Result<AddedEntry, NodeError> {
        validate(&opts.import)?;
        let meta = std::fs::symlink_metadata(path).map_err(|e| NodeError::Input {
            path: path.to_path_buf(),
            source: e,
        })?;
        if meta.is_dir() && !recursive {
            return Err(NodeError::Unsupported {
                path: path.to_path_buf(),
                kind: UnsupportedInput::DirectoryNotRecursive,
            });
        }
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| path.display().to_string());
        let mut read_total = 0u64;
        let (root, built) = self.with_block_writer(opts.only_hash, &mut |sink| {
            let mut ctx = AddCtx {
                opts,
                sink,
                on_entry: &mut *on_entry,
                progress: &mut *progress,
                read_total: &mut read_total,
            };
            let built = ctx.add_any(path, &name, &meta)?;
            Ok((built.cid, built))
        })?;
        if opts.pin && !opts.only_hash {
            self.user_pin(&root, PinKind::Recursive)?;
        }
        Ok(AddedEntry {
            cid: root,
            name,
            size: built.file_size,
            dag_size: built.tsize,
        })
    }

    /// Adds bytes from a reader as one file (e.g. standard input).
    pub fn add_reader(
        &self,
        input: impl Read,
        opts: &AddOptions,
        progress: &mut dyn FnMut(u64),
    ) -> Result<AddedEntry, NodeError> {
        self.add_reader_leaves(input, opts, progress, &mut |_| {})
    }

    /// [`add_reader`](Self::add_reader), telling `on_leaf` of each leaf of
    /// the file's DAG in order (an S3 multipart object links its parts'
    /// leaves).
    pub fn add_reader_leaves(
        &self,
        input: impl Read,
        opts: &AddOptions,
        progress: &mut dyn FnMut(u64),
        on_leaf: &mut dyn FnMut(&Built),
    ) -> Result<AddedEntry, NodeError> {
        validate(&opts.import)?;
        let mut counting = CountingReader {
            inner: input,
            total: 0,
            progress,
        };
        let (cid, built) = self.with_block_writer(opts.only_hash, &mut |sink| {
            let built = build_file_leaves(&mut counting, &opts.import, sink, &mut *on_leaf)?;
            Ok((built.cid, built))
        })?;
        if opts.pin && !opts.only_hash {
            self.user_pin(&cid, PinKind::Recursive)?;
        }
        Ok(AddedEntry {
            cid,
            name: cid.to_string(),
            size: built.file_size,
            dag_size: built.tsize,
        })
    }

    /// [`add_reader_leaves`](Self::add_reader_leaves) of a body already in
    /// memory, all on the calling thread: cut without a copy, hashed, then
    /// stored in one `put_many`, with no writer thread (for a small body,
    /// starting one costs more than the write). Holds every block until
    /// then, so it is for bodies of a few chunks at most.
    pub fn add_bytes_leaves(
        &self,
        data: Bytes,
        opts: &AddOptions,
        on_leaf: &mut dyn FnMut(&Built),
    ) -> Result<AddedEntry, NodeError> {
        validate(&opts.import)?;
        let chunks = opts.import.chunker.chunks_of(data);
        let mut blocks: Vec<Block> = Vec::new();
        let mut keep = |block: Block| -> Result<(), DagError> {
            blocks.push(block);
            Ok(())
        };
        let built = build_file_chunks(chunks, &opts.import, &mut keep, on_leaf)?;
        if !opts.only_hash {
            self.store.put_many(&mut blocks.into_iter())?;
            if opts.pin {
                self.user_pin(&built.cid, PinKind::Recursive)?;
            }
        }
        Ok(AddedEntry {
            cid: built.cid,
            name: built.cid.to_string(),
            size: built.file_size,
            dag_size: built.tsize,
        })
    }

    /// Adds a stream of entries (the RPC API's multipart upload): paths
    /// relative to the upload (`dir`, `dir/file`), each directory before its
    /// contents and each directory's contents together (depth-first, as
    /// Kubo's clients send them), except that a directory still empty when
    /// left may be filled later (clients that name every directory of a
    /// level before its files). Calls `on_entry` per entry, a directory
    /// once its last child is in; `block` with each block's CID as it is
    /// stored. Returns the top-level entries, pinned when `opts.pin`.
    pub fn add_entries(
        &self,
        next: &mut dyn FnMut() -> Option<Result<AddInput, NodeError>>,
        opts: &AddOptions,
        on_entry: &mut dyn FnMut(&AddedEntry),
        block: &mut dyn FnMut(&Cid),
        progress: &mut dyn FnMut(&str, u64, bool),
    ) -> Result<Vec<AddedEntry>, NodeError> {
        validate(&opts.import)?;
        let roots = self.with_block_writer(opts.only_hash, &mut |sink| {
            let mut counted = |b: Block| {
                block(b.cid());
                sink(b)
            };
            let mut tree = TreeAssembler {
                opts,
                open: Vec::new(),
                roots: Vec::new(),
                built: Vec::new(),
            };
            while let Some(entry) = next() {
                tree.add(entry?, &mut counted, on_entry, progress)?;
            }
            while !tree.open.is_empty() {
                tree.close_innermost(&mut counted, on_entry)?;
            }
            if opts.wrap {
                return Ok(vec![tree.wrap(&mut counted, on_entry)?]);
            }
            Ok(tree.roots)
        })?;
        if opts.pin && !opts.only_hash {
            for r in &roots {
                self.user_pin(&r.cid, PinKind::Recursive)?;
            }
        }
        Ok(roots)
    }

    /// Runs `produce` with a sink that stores blocks on a writer thread (so
    /// hashing and disk writes overlap), or discards them for `only_hash`.
    fn with_block_writer<T>(
        &self,
        only_hash: bool,
        produce: &mut dyn FnMut(&mut BlockSink<'_>) -> Result<T, NodeError>,
    ) -> Result<T, NodeError> {
        if only_hash {
            return produce(&mut |_| Ok(()));
        }
        // Bounded: at most this many blocks wait between hashing and writing.
        let (tx, rx) = mpsc::sync_channel::<Block>(32);
        let store = Arc::clone(&self.store);
        std::thread::scope(|scope| {
            let writer = scope.spawn(move || store.put_many(&mut rx.into_iter()));
            let produced = produce(&mut |block| {
                tx.send(block)
                    .map_err(|_| DagError::Internal("block writer stopped"))
            });
            drop(tx);
            let written = writer.join().map_err(|_| NodeError::WriterPanicked)?;
            // A store error explains a producer's "writer stopped".
            written?;
            produced
        })
    }
}

/// Checks the import options of an add.
fn validate(import: &ImportOptions) -> Result<(), NodeError> {
    import
        .validate()
        .map_err(|e| NodeError::ImportOptions(e.into()))
}

/// A read error of the file at `path` is the input's fault; other errors
/// keep their kind.
fn input_error(path: impl Into<PathBuf>) -> impl FnOnce(DagError) -> NodeError {
    move |e| match e {
        DagError::Read(io) => NodeError::Input {
            path: path.into(),
            source: io,
        },
        other => other.into(),
    }
}

/// Stores a directory of `children`: one block, or a HAMT when `sharding`
/// says it is too large for one.
fn store_directory(
    format: CidFormat,
    sharding: Sharding,
    children: Vec<(String, Built)>,
    sink: &mut BlockSink<'_>,
) -> Result<Built, NodeError> {
    Ok(hamt::build_directory(format, sharding, children, sink)?)
}

/// Counts the bytes read through it, reporting the running total.
struct CountingReader<'p, R> {
    inner: R,
    total: u64,
    progress: &'p mut dyn FnMut(u64),
}

impl<R: Read> Read for CountingReader<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.total += n as u64;
        (self.progress)(self.total);
        Ok(n)
    }
}

/// Splits `a/b/c` into (`a/b`, `c`), refusing names that could escape a
/// directory or that UnixFS cannot hold.
fn split_entry_path(path: &str) -> Result<(&str, &str), NodeError> {
    if path.is_empty() {
        // A nameless top-level file (named by its CID later).
        return Ok(("", ""));
    }
    let (parent, name) = path.rsplit_once('/').unwrap_or(("", path));
    for part in path.split('/') {
        if part.is_empty() || part == "." || part == ".." || part.contains('\0') {
            return Err(NodeError::Unsupported {
                path: PathBuf::from(path),
                kind: UnsupportedInput::BadEntryPath,
            });
        }
    }
    Ok((parent, name))
}

/// A directory of a streamed add still being assembled.
#[derive(Default)]
struct OpenDir {
    /// Its finished entries.
    entries: Vec<(String, Built)>,
    /// Subdirectories closed before any entry of theirs arrived: clients
    /// that send every directory of a level before its files (Python's
    /// `ipfshttpclient` does) fill them later, as Kubo allows. Reopened when
    /// their entries come, built when this directory is.
    waiting: Vec<(String, OpenDir)>,
}

/// Directories of a streamed add that are still receiving entries.
struct TreeAssembler<'a> {
    opts: &'a AddOptions,
    /// Open directories, outermost first: (path, contents so far).
    open: Vec<(String, OpenDir)>,
    roots: Vec<AddedEntry>,
    /// The DAG figures of each root (for wrapping).
    built: Vec<Built>,
}

impl TreeAssembler<'_> {
    /// Takes one entry of the stream: goes to its directory (closing those
    /// it is outside of, reopening a waiting one), then opens it (a
    /// directory) or stores it (a file, a symlink).
    fn add(
        &mut self,
        entry: AddInput,
        sink: &mut BlockSink<'_>,
        on_entry: &mut dyn FnMut(&AddedEntry),
        progress: &mut dyn FnMut(&str, u64, bool),
    ) -> Result<(), NodeError> {
        let path = entry.path().to_string();
        let (parent, name) = split_entry_path(&path)?;
        self.go_to(parent, sink, on_entry)?;
        let format = self.opts.import.format;
        match entry {
            AddInput::Directory { .. } => {
                if path.is_empty() {
                    return Err(NodeError::Unsupported {
                        path: PathBuf::new(),
                        kind: UnsupportedInput::UnnamedDirectory,
                    });
                }
                // Named again (Kubo merges): reopen it.
                let again = self.open.last_mut().and_then(|(_, dir)| {
                    let at = dir.waiting.iter().position(|(n, _)| n == name)?;
                    Some(dir.waiting.swap_remove(at).1)
                });
                self.open.push((path, again.unwrap_or_default()));
            }
            AddInput::Symlink { target, .. } => {
                let (b, built) = symlink_block(format, target.as_bytes());
                sink(b)?;
                self.attach(&path, name, built, on_entry);
            }
            AddInput::File { mut reader, .. } => {
                let mut counting = CountingReader {
                    inner: &mut reader,
                    total: 0,
                    progress: &mut |n| progress(&path, n, false),
                };
                let built = build_file(&mut counting, &self.opts.import, sink)
                    .map_err(input_error(&path))?;
                // Kubo ends each file with a line of its full size.
                let total = counting.total;
                progress(&path, total, true);
                self.attach(&path, name, built, on_entry);
            }
        }
        Ok(())
    }

    /// Makes `parent` the innermost open directory (none open, for `""`):
    /// closes the open directories it is outside of and reopens waiting
    /// ones on the way down; fails if `parent` was never opened or is
    /// already built.
    fn go_to(
        &mut self,
        parent: &str,
        sink: &mut BlockSink<'_>,
        on_entry: &mut dyn FnMut(&AddedEntry),
    ) -> Result<(), NodeError> {
        loop {
            let Some((path, dir)) = self.open.last_mut() else {
                if parent.is_empty() {
                    return Ok(());
                }
                break;
            };
            if path == parent {
                return Ok(());
            }
            if let Some(rest) = parent
                .strip_prefix(path.as_str())
                .and_then(|r| r.strip_prefix('/'))
            {
                let next = rest.split('/').next().unwrap_or(rest);
                let Some(at) = dir.waiting.iter().position(|(n, _)| n == next) else {
                    break;
                };
                let (name, waiting) = dir.waiting.swap_remove(at);
                let path = format!("{path}/{name}");
                self.open.push((path, waiting));
                continue;
            }
            self.close_innermost(sink, on_entry)?;
        }
        Err(NodeError::Unsupported {
            path: PathBuf::from(parent),
            kind: UnsupportedInput::OutsideDirectory,
        })
    }

    /// Closes the innermost open directory: one that received nothing yet
    /// waits in its parent; any other is built.
    fn close_innermost(
        &mut self,
        sink: &mut BlockSink<'_>,
        on_entry: &mut dyn FnMut(&AddedEntry),
    ) -> Result<(), NodeError> {
        let Some((path, dir)) = self.open.pop() else {
            return Ok(());
        };
        let name = path.rsplit('/').next().unwrap_or(&path).to_string();
        if dir.entries.is_empty() {
            if let Some((_, parent)) = self.open.last_mut() {
                parent.waiting.push((name, dir));
                return Ok(());
            }
        }
        let built = self.build_dir(&path, dir, sink, on_entry)?;
        self.attach(&path, &name, built, on_entry);
        Ok(())
    }

    /// Stores `dir` (its waiting subdirectories first, each reported).
    fn build_dir(
        &self,
        path: &str,
        mut dir: OpenDir,
        sink: &mut BlockSink<'_>,
        on_entry: &mut dyn FnMut(&AddedEntry),
    ) -> Result<Built, NodeError> {
        for (name, sub) in std::mem::take(&mut dir.waiting) {
            let sub_path = format!("{path}/{name}");
            let built = self.build_dir(&sub_path, sub, sink, on_entry)?;
            on_entry(&AddedEntry {
                cid: built.cid,
                name: sub_path,
                size: built.file_size,
                dag_size: built.tsize,
            });
            dir.entries.push((name, built));
        }
        let import = &self.opts.import;
        store_directory(import.format, import.sharding, dir.entries, sink)
    }

    /// Kubo's -w: one directory holding every top-level entry, reported
    /// last with an empty name.
    fn wrap(
        &self,
        sink: &mut BlockSink<'_>,
        on_entry: &mut dyn FnMut(&AddedEntry),
    ) -> Result<AddedEntry, NodeError> {
        let children: Vec<(String, Built)> = self
            .roots
            .iter()
            .zip(self.built.iter())
            .map(|(e, b)| (e.name.clone(), b.clone()))
            .collect();
        let (block, built) = directory_block(self.opts.import.format, children);
        sink(block)?;
        let wrapper = AddedEntry {
            cid: built.cid,
            name: String::new(),
            size: 0,
            dag_size: built.tsize,
        };
        on_entry(&wrapper);
        Ok(wrapper)
    }

    /// Records a finished entry in its open parent, or as a root.
    fn attach(
        &mut self,
        path: &str,
        name: &str,
        built: Built,
        on_entry: &mut dyn FnMut(&AddedEntry),
    ) {
        // A nameless upload (Kubo's clients send `filename=""` for bare
        // bytes) is named by its CID, as Kubo does.
        let entry = AddedEntry {
            cid: built.cid,
            name: if path.is_empty() {
                built.cid.to_string()
            } else {
                path.to_string()
            },
            size: built.file_size,
            dag_size: built.tsize,
        };
        on_entry(&entry);
        match self.open.last_mut() {
            Some((_, dir)) => dir.entries.push((name.to_string(), built)),
            None => {
                self.roots.push(entry);
                self.built.push(built);
            }
        }
    }
}

/// State of one recursive add from disk.
struct AddCtx<'a, 's> {
    opts: &'a AddOptions,
    sink: &'s mut BlockSink<'s>,
    on_entry: &'a mut dyn FnMut(&AddedEntry),
    progress: &'a mut dyn FnMut(u64),
    read_total: &'a mut u64,
}

impl AddCtx<'_, '_> {
    /// Adds the file, directory or symlink at `path`, named `name` in the
    /// output.
    fn add_any(
        &mut self,
        path: &Path,
        name: &str,
        meta: &std::fs::Metadata,
    ) -> Result<Built, NodeError> {
        let input_err = |e| NodeError::Input {
            path: path.to_path_buf(),
            source: e,
        };
        let ft = meta.file_type();
        let built = if ft.is_symlink() {
            let target = std::fs::read_link(path).map_err(input_err)?;
            let (block, built) = symlink_block(
                self.opts.import.format,
                target.as_os_str().as_encoded_bytes(),
            );
            (self.sink)(block)?;
            built
        } else if ft.is_dir() {
            self.add_dir(path, name)?
        } else if ft.is_file() {
            let file = std::fs::File::open(path).map_err(input_err)?;
            let base = *self.read_total;
            let progress = &mut *self.progress;
            let mut counting = CountingReader {
                // The chunker reads whole chunks: no buffer copy in between.
                inner: file,
                total: 0,
                progress: &mut |n| progress(base + n),
            };
            let built = build_file(&mut counting, &self.opts.import, self.sink)
                .map_err(input_error(path))?;
            *self.read_total = base + counting.total;
            built
        } else {
            return Err(NodeError::Unsupported {
                path: path.to_path_buf(),
                kind: UnsupportedInput::FileType,
            });
        };
        (self.on_entry)(&AddedEntry {
            cid: built.cid,
            name: name.to_string(),
            size: built.file_size,
            dag_size: built.tsize,
        });
        Ok(built)
    }

    /// Adds the directory at `path`: its entries in name order (hidden
    /// ones only when asked), then the directory itself.
    fn add_dir(&mut self, path: &Path, name: &str) -> Result<Built, NodeError> {
        let input_err = |e| NodeError::Input {
            path: path.to_path_buf(),
            source: e,
        };
        let mut names = vec![];
        for entry in std::fs::read_dir(path).map_err(input_err)? {
            let entry = entry.map_err(input_err)?;
            let file_name = entry.file_name();
            let Some(child) = file_name.to_str() else {
                return Err(NodeError::Unsupported {
                    path: entry.path(),
                    kind: UnsupportedInput::NonUtf8Name,
                });
            };
            if !self.opts.hidden && child.starts_with('.') {
                continue;
            }
            names.push(child.to_string());
        }
        names.sort();
        let mut children = Vec::with_capacity(names.len());
        for child in names {
            let child_path = path.join(&child);
            let child_meta =
                std::fs::symlink_metadata(&child_path).map_err(|e| NodeError::Input {
                    path: child_path.clone(),
                    source: e,
                })?;
            let built = self.add_any(&child_path, &format!("{name}/{child}"), &child_meta)?;
            children.push((child, built));
        }
        let import = &self.opts.import;
        store_directory(import.format, import.sharding, children, self.sink)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dag::builder::Layout;

    fn add_stream(
        node: &Node,
        entries: &[(&str, Option<&'static [u8]>)],
    ) -> Result<Cid, NodeError> {
        let mut it = entries.iter().map(|(path, data)| {
            let path = path.to_string();
            Ok(match data {
                None => AddInput::Directory { path },
                Some(bytes) => AddInput::File {
                    path,
                    reader: Box::new(*bytes),
                },
            })
        });
        let roots = node.add_entries(
            &mut || it.next(),
            &AddOptions::default(),
            &mut |_| {},
            &mut |_| {},
            &mut |_, _, _| {},
        )?;
        Ok(roots[0].cid)
    }

    #[test]
    fn bodies_in_memory_make_the_dags_readers_make() {
        let node = Node::in_memory(super::super::Config::default(), [7; 32]);
        let data: Vec<u8> = (0..600_000u32).map(|i| (i * 13 % 251) as u8).collect();
        for chunker in ["size-262144", "size-1000", "cdc-4096-16384-65536"] {
            for layout in [Layout::Balanced, Layout::Trickle] {
                let mut opts = AddOptions::default();
                opts.import.chunker = chunker.parse().unwrap();
                opts.import.layout = layout;
                opts.pin = false;
                for len in [0, 1, 4096, 262_144, 262_145, 600_000] {
                    let (mut a, mut b) = (Vec::new(), Vec::new());
                    let read = node
                        .add_reader_leaves(&data[..len], &opts, &mut |_| {}, &mut |l| a.push(l.cid))
                        .unwrap();
                    let body = Bytes::copy_from_slice(&data[..len]);
                    let held = node
                        .add_bytes_leaves(body, &opts, &mut |l| b.push(l.cid))
                        .unwrap();
                    assert_eq!(held, read, "{chunker} {layout:?} {len}");
                    assert_eq!(a, b);
                    let back: Vec<u8> = node
                        .cat(&held.cid.to_string(), 0, None)
                        .unwrap()
                        .flat_map(|c| c.unwrap().to_vec())
                        .collect();
                    assert_eq!(back, &data[..len]);
                }
            }
        }
    }

    #[test]
    fn directories_named_before_their_files_build_the_same_tree() {
        let node = Node::in_memory(super::super::Config::default(), [7; 32]);
        let depth_first = add_stream(
            &node,
            &[
                ("d", None),
                ("d/a.txt", Some(b"a\n")),
                ("d/empty", None),
                ("d/s1", None),
                ("d/s1/deep", None),
                ("d/s1/deep/c", Some(b"c\n")),
                ("d/s1/x", Some(b"x\n")),
                ("d/s2", None),
                ("d/s2/y", Some(b"y\n")),
            ],
        )
        .unwrap();
        // ipfshttpclient's order: a level's directories, then its files.
        let levels = add_stream(
            &node,
            &[
                ("d", None),
                ("d/empty", None),
                ("d/s1", None),
                ("d/s2", None),
                ("d/a.txt", Some(b"a\n")),
                ("d/s1/deep", None),
                ("d/s1/x", Some(b"x\n")),
                ("d/s1/deep/c", Some(b"c\n")),
                ("d/s2/y", Some(b"y\n")),
            ],
        )
        .unwrap();
        assert_eq!(levels, depth_first);
        // A directory that already holds entries is built when left.
        let err = add_stream(
            &node,
            &[
                ("d", None),
                ("d/s1", None),
                ("d/s1/x", Some(b"x\n")),
                ("d/a.txt", Some(b"a\n")),
                ("d/s1/late", Some(b"late\n")),
            ],
        )
        .unwrap_err();
        assert!(err.to_string().contains("outside its directory"), "{err}");
    }
}

//! The node: wires the store and the DAG layer together from a [`Config`]
//! and exposes every capability as a plain Rust API (the CLI, and later the
//! RPC server, gateway and netsim, call this).
//!
//! This module holds the offline operations: add, cat, get, ls, pins,
//! blocks, CAR import/export, GC, stat and verify.

pub mod config;
pub mod online;
pub mod provide;
pub mod repo;

pub use config::Config;
pub use repo::Repo;

use crate::block::{parse_cid, Block, BlockError, Cid, CidFormat, Multihash, RAW};
use crate::dag::builder::{build_file, directory_block, symlink_block, Built, ImportOptions};
use crate::dag::car::{CarReader, CarWriter};
use crate::dag::reader::{self, ExportStats, FileReader, ReadOptions};
use crate::dag::{hamt, walk, BlockSource, DagError};
use crate::store::{MemoryStore, PinKind, Store, StoreError, StoreStat, SweepReport};
use std::collections::HashSet;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::Arc;

/// Errors of node operations.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error("repository {path}: {reason}")]
    Repo { path: PathBuf, reason: String },
    #[error("{path}: {source}")]
    Input {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {reason}")]
    Unsupported { path: PathBuf, reason: String },
    #[error(transparent)]
    Dag(#[from] DagError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Block(#[from] BlockError),
    #[error("invalid options: {0}")]
    Options(String),
    #[error("CAR: {0}")]
    Car(#[source] crate::dag::car::CarError),
    #[error("block {cid} is not in the local store")]
    NotLocal { cid: Cid },
    #[error("network: {0}")]
    Net(String),
}

/// Options of one `add`.
#[derive(Clone, Debug)]
pub struct AddOptions {
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

/// One entry `add` produced (printed as `added <cid> <name>`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AddedEntry {
    pub cid: Cid,
    /// Path relative to the parent of what was added (Kubo's naming).
    pub name: String,
    /// File bytes (0 for directories).
    pub size: u64,
    /// Cumulative DAG size: the block and everything below it (what Kubo's
    /// `add` reports as `Size`).
    pub dag_size: u64,
}

/// Problems `repo verify` found.
#[derive(Clone, Debug, Default)]
pub struct VerifyReport {
    pub checked: u64,
    /// Blocks whose bytes do not hash to their multihash, as raw CIDv1s.
    pub corrupt: Vec<Cid>,
    /// Blocks that could not be read at all, with the reason.
    pub unreadable: Vec<(Cid, String)>,
    /// Pinned roots with missing or corrupt blocks below them.
    pub broken_pins: Vec<(Cid, String)>,
}

/// What `dag import` did.
#[derive(Clone, Debug)]
pub struct CarImport {
    pub roots: Vec<Cid>,
    pub blocks: u64,
    pub new_bytes: u64,
}

/// `repo stat` figures.
#[derive(Clone, Debug, Default)]
pub struct RepoStat {
    pub store: StoreStat,
    pub segments: Vec<crate::store::SegmentUsage>,
    pub path: Option<PathBuf>,
}

/// A pin as `pin ls` shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PinEntry {
    pub cid: Cid,
    /// "recursive", "direct" or "indirect".
    pub kind: &'static str,
}

/// A cairn node (offline part).
pub struct Node {
    store: Arc<dyn Store>,
    config: Config,
    path: Option<PathBuf>,
    read_opts: ReadOptions,
    key_seed: [u8; 32],
}

impl Node {
    /// Opens the repo at `path` (creating it on first use).
    pub fn open(path: &Path) -> Result<Node, NodeError> {
        let repo = Repo::open(path)?;
        let key_seed = *repo.key_seed();
        Ok(Node {
            store: Arc::new(repo.store),
            config: repo.config,
            path: Some(repo.path),
            read_opts: ReadOptions::default(),
            key_seed,
        })
    }

    /// A node whose blocks live in memory (tests, netsim).
    pub fn in_memory(config: Config, key_seed: [u8; 32]) -> Node {
        Node {
            store: Arc::new(MemoryStore::new()),
            config,
            path: None,
            read_opts: ReadOptions::default(),
            key_seed,
        }
    }

    /// The node's Ed25519 secret seed (its libp2p identity).
    pub fn key_seed(&self) -> [u8; 32] {
        self.key_seed
    }

    /// The libp2p peer ID this node has.
    pub fn peer_id(&self) -> Result<libp2p::PeerId, NodeError> {
        let key = crate::net::swarm::keypair_from_seed(self.key_seed)
            .map_err(|e| NodeError::Options(e.to_string()))?;
        Ok(key.public().to_peer_id())
    }

    /// Kubo's `ipfs id` JSON for this node, with `addrs` as its addresses
    /// (each gets `/p2p/<id>` appended).
    pub fn id_json(&self, addrs: &[String]) -> Result<serde_json::Value, NodeError> {
        use base64::Engine as _;
        let key = crate::net::swarm::keypair_from_seed(self.key_seed)
            .map_err(|e| NodeError::Options(e.to_string()))?;
        let peer = key.public().to_peer_id();
        let mut protocols: Vec<String> = crate::net::bitswap::driver::PROTOCOLS
            .iter()
            .map(|s| s.to_string())
            .collect();
        protocols.push(self.config.net.kad_protocol.clone());
        protocols.extend(
            [
                "/ipfs/id/1.0.0",
                "/ipfs/id/push/1.0.0",
                "/ipfs/ping/1.0.0",
                crate::replicate::protocol::PROTOCOL,
            ]
            .map(String::from),
        );
        protocols.sort();
        Ok(serde_json::json!({
            "ID": peer.to_string(),
            "PublicKey": base64::engine::general_purpose::STANDARD.encode(key.public().encode_protobuf()),
            "Addresses": addrs.iter().map(|a| format!("{a}/p2p/{peer}")).collect::<Vec<_>>(),
            "AgentVersion": format!("cairn/{}", env!("CARGO_PKG_VERSION")),
            "Protocols": protocols,
        }))
    }

    /// Starts networking on this node's store with its identity and `net`
    /// (usually `config().net`, with flags applied). Needs a tokio runtime.
    pub async fn start_network(
        &self,
        net: &config::NetSettings,
    ) -> Result<crate::net::Network, NodeError> {
        let config = net.to_net_config().map_err(NodeError::Options)?;
        crate::net::Network::start(self.key_seed, Arc::clone(&self.store), &config)
            .await
            .map_err(|e| NodeError::Options(e.to_string()))
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    fn source(&self) -> Arc<dyn BlockSource> {
        Arc::new(StoreSource(Arc::clone(&self.store)))
    }

    // ----- add -----

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
        opts.import.validate().map_err(NodeError::Options)?;
        let meta = std::fs::symlink_metadata(path).map_err(|e| NodeError::Input {
            path: path.to_path_buf(),
            source: e,
        })?;
        if meta.is_dir() && !recursive {
            return Err(NodeError::Unsupported {
                path: path.to_path_buf(),
                reason: "is a directory (use -r)".into(),
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
        opts.import.validate().map_err(NodeError::Options)?;
        let mut counting = CountingReader {
            inner: input,
            total: 0,
            progress,
        };
        let (cid, built) = self.with_block_writer(opts.only_hash, &mut |sink| {
            let built = build_file(&mut counting, &opts.import, sink)?;
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

    /// Adds a stream of entries (the RPC API's multipart upload): paths
    /// relative to the upload (`dir`, `dir/file`), each directory before its
    /// contents and each directory's contents together (depth-first, as
    /// Kubo's clients send them). Calls `on_entry` per entry, a directory
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
        opts.import.validate().map_err(NodeError::Options)?;
        let roots =
            self.with_block_writer(opts.only_hash, &mut |sink| {
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
                    let entry = entry?;
                    let path = entry.path().to_string();
                    let (parent, name) = split_entry_path(&path)?;
                    tree.close_until(parent, &mut counted, on_entry)?;
                    match entry {
                        AddInput::Directory { .. } => {
                            if path.is_empty() {
                                return Err(NodeError::Unsupported {
                                    path: PathBuf::new(),
                                    reason: "a directory in an upload needs a name".into(),
                                });
                            }
                            tree.open.push((path, Vec::new()));
                        }
                        AddInput::Symlink { target, .. } => {
                            let (b, built) = symlink_block(opts.import.format, target.as_bytes());
                            counted(b)?;
                            tree.attach(&path, name, built, on_entry);
                        }
                        AddInput::File { mut reader, .. } => {
                            let mut counting = CountingReader {
                                inner: &mut reader,
                                total: 0,
                                progress: &mut |n| progress(&path, n, false),
                            };
                            let built = build_file(&mut counting, &opts.import, &mut counted)
                                .map_err(|e| match e {
                                    DagError::Read(io) => NodeError::Input {
                                        path: PathBuf::from(&path),
                                        source: io,
                                    },
                                    other => other.into(),
                                })?;
                            // Kubo ends each file with a line of its full size.
                            let total = counting.total;
                            progress(&path, total, true);
                            tree.attach(&path, name, built, on_entry);
                        }
                    }
                }
                tree.close_until("", &mut counted, on_entry)?;
                if opts.wrap {
                    // Kubo's -w: one directory holding every top-level
                    // entry, reported last with an empty name.
                    let children: Vec<(String, Built)> = tree
                        .roots
                        .iter()
                        .zip(tree.built.iter())
                        .map(|(e, b)| (e.name.clone(), b.clone()))
                        .collect();
                    let (block, built) = directory_block(opts.import.format, children);
                    counted(block)?;
                    let wrapper = AddedEntry {
                        cid: built.cid,
                        name: String::new(),
                        size: 0,
                        dag_size: built.tsize,
                    };
                    on_entry(&wrapper);
                    return Ok(vec![wrapper]);
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
            let written = writer
                .join()
                .map_err(|_| NodeError::Options("block writer panicked".into()))?;
            // A store error explains a producer's "writer stopped".
            written?;
            produced
        })
    }

    // ----- read -----

    /// Resolves `/ipfs/CID/path` or `CID/path` to the CID it names.
    pub fn resolve(&self, path: &str) -> Result<Cid, NodeError> {
        let root = parse_cid(path)?;
        let trimmed = path.trim().trim_start_matches("/ipfs/");
        let rest = trimmed.split_once('/').map_or("", |(_, r)| r);
        Ok(reader::resolve_path(&*self.source(), root, rest)?)
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
        let cid = self.resolve(path)?;
        Ok(FileReader::new(
            self.source(),
            cid,
            offset,
            length,
            self.read_opts,
        )?)
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

    // ----- pins -----

    /// Pins `cid` for the user: a pin the replicator had made to hold a
    /// copy for the network becomes theirs, and is no longer removed when
    /// that copy is trimmed.
    fn user_pin(&self, cid: &Cid, kind: PinKind) -> Result<(), NodeError> {
        self.store.pin(cid, kind)?;
        crate::replicate::disown_pin(&*self.store, cid)?;
        Ok(())
    }

    /// Pins `cid`; a recursive pin first checks every block below is stored.
    pub fn pin_add(&self, cid: &Cid, recursive: bool) -> Result<(), NodeError> {
        if recursive {
            walk::reach(&*self.source(), cid, &mut HashSet::new(), &mut |_| Ok(()))?;
            self.user_pin(cid, PinKind::Recursive)?;
        } else {
            if !self.store.has(cid)? {
                return Err(NodeError::NotLocal { cid: *cid });
            }
            self.user_pin(cid, PinKind::Direct)?;
        }
        Ok(())
    }

    /// Pins `cid` recursively without walking its DAG: for a caller that has
    /// just made every block of it local (a network fetch), under the GC
    /// lock, so the walk would only re-read and re-hash what it just stored.
    pub fn pin_complete(&self, cid: &Cid) -> Result<(), NodeError> {
        self.user_pin(cid, PinKind::Recursive)?;
        Ok(())
    }

    /// Records (offline) that `root` should be kept at `factor` copies:
    /// the daemon places them when it runs. The root must be pinned here.
    pub fn replicate_later(&self, root: &Cid, factor: u8) -> Result<(), NodeError> {
        use crate::replicate::record::Record;
        if self.store.pin_of(root)? != Some(PinKind::Recursive) {
            return Err(NodeError::Options(format!(
                "{root} is not pinned recursively here"
            )));
        }
        let max = self.config.replication.max.max(factor);
        let me = self.peer_id()?;
        let size: u64 = self
            .dag_cids(root)?
            .iter()
            .map(|c| self.store.size_of(c).ok().flatten().unwrap_or(0))
            .sum();
        let rec = match self.store.meta_get(&Record::key(root))? {
            Some(bytes) => {
                let mut r = Record::decode(&bytes).map_err(NodeError::Options)?;
                r.factor = factor.max(1);
                r.max = max;
                r.removed = false;
                r.size = size;
                r.holders.insert(me);
                r.bump();
                r
            }
            None => Record::new(*root, factor, max, size, me),
        };
        crate::replicate::own_pin(&*self.store, root)?;
        self.store
            .meta_put(&Record::key(root), Some(&rec.encode()))?;
        Ok(())
    }

    /// Turns `root`'s replication record into a tombstone (offline `pin
    /// rm`): holders learn it when the daemon runs. False when `root` is not
    /// replicated.
    pub fn replication_tombstone(&self, root: &Cid) -> Result<bool, NodeError> {
        use crate::replicate::record::Record;
        let Some(bytes) = self.store.meta_get(&Record::key(root))? else {
            return Ok(false);
        };
        let mut r = Record::decode(&bytes).map_err(NodeError::Options)?;
        if !r.removed {
            r.removed = true;
            r.bump();
            self.store.meta_put(&Record::key(root), Some(&r.encode()))?;
        }
        Ok(true)
    }

    pub fn pin_rm(&self, cid: &Cid) -> Result<PinKind, NodeError> {
        let kind = self.store.unpin(cid)?;
        crate::replicate::disown_pin(&*self.store, cid)?;
        Ok(kind)
    }

    /// Pins of the kinds asked for; "indirect" walks the recursive pins.
    pub fn pin_ls(&self, kinds: &[&str]) -> Result<Vec<PinEntry>, NodeError> {
        let pins = self.store.pins()?;
        let mut out = vec![];
        for (cid, kind) in &pins {
            if kinds.contains(&kind.as_str()) {
                out.push(PinEntry {
                    cid: *cid,
                    kind: kind.as_str(),
                });
            }
        }
        if kinds.contains(&"indirect") {
            let pinned: HashSet<Cid> = pins.iter().map(|(c, _)| *c).collect();
            let mut seen = HashSet::new();
            let source = self.source();
            for (root, kind) in &pins {
                if *kind != PinKind::Recursive {
                    continue;
                }
                walk::reach(&*source, root, &mut seen, &mut |c| {
                    if c != root && !pinned.contains(c) {
                        out.push(PinEntry {
                            cid: *c,
                            kind: "indirect",
                        });
                    }
                    Ok(())
                })?;
            }
        }
        Ok(out)
    }

    // ----- blocks -----

    pub fn block_get(&self, cid: &Cid) -> Result<Block, NodeError> {
        self.store
            .get(cid)?
            .ok_or(NodeError::NotLocal { cid: *cid })
    }

    /// Stores one block under `codec` with `format`; returns its CID.
    pub fn block_put(
        &self,
        data: Vec<u8>,
        format: CidFormat,
        codec: u64,
        pin: bool,
    ) -> Result<Cid, NodeError> {
        let block = Block::verified(format.cid(codec, &data), data)?;
        let cid = *block.cid();
        self.store.put(block)?;
        if pin {
            self.user_pin(&cid, PinKind::Direct)?;
        }
        Ok(cid)
    }

    /// Size of a stored block.
    pub fn block_stat(&self, cid: &Cid) -> Result<u64, NodeError> {
        self.store
            .size_of(cid)?
            .ok_or(NodeError::NotLocal { cid: *cid })
    }

    // ----- CAR -----

    /// Writes the DAG under `cid` as a CAR v1 (blocks depth-first, root in
    /// the header) to `out`; returns the number of blocks.
    pub fn dag_export(&self, cid: &Cid, out: impl std::io::Write) -> Result<u64, NodeError> {
        let mut car = CarWriter::new(out, &[*cid]).map_err(NodeError::Car)?;
        let mut blocks = 0;
        walk::walk(&*self.source(), cid, &mut HashSet::new(), &mut |block| {
            blocks += 1;
            car.write_block(block).map_err(|e| DagError::Write {
                path: "CAR output".into(),
                source: std::io::Error::other(e),
            })
        })?;
        car.finish().map_err(NodeError::Car)?;
        Ok(blocks)
    }

    /// Imports every block of a CAR (verifying each), then pins its roots
    /// recursively when `pin_roots` (which fails if a root's DAG is incomplete).
    pub fn dag_import(&self, input: impl Read, pin_roots: bool) -> Result<CarImport, NodeError> {
        let mut car = CarReader::new(std::io::BufReader::with_capacity(1 << 20, input))
            .map_err(NodeError::Car)?;
        let roots = car.roots().to_vec();
        let mut failure = None;
        let mut blocks = 0u64;
        let mut iter = std::iter::from_fn(|| match car.next_block() {
            Ok(Some(b)) => {
                blocks += 1;
                Some(b)
            }
            Ok(None) => None,
            Err(e) => {
                failure = Some(e);
                None
            }
        });
        let new_bytes = self.store.put_many(&mut iter)?;
        if let Some(e) = failure {
            return Err(NodeError::Car(e));
        }
        if pin_roots {
            for root in &roots {
                self.pin_add(root, true)?;
            }
        }
        Ok(CarImport {
            roots,
            blocks,
            new_bytes,
        })
    }

    // ----- repo -----

    /// Removes every block no pin reaches and compacts storage.
    pub fn gc(&self) -> Result<SweepReport, NodeError> {
        let pins = self.store.pins()?;
        let recursive: Vec<Cid> = pins
            .iter()
            .filter(|p| p.1 == PinKind::Recursive)
            .map(|p| p.0)
            .collect();
        let direct: Vec<Cid> = pins
            .iter()
            .filter(|p| p.1 == PinKind::Direct)
            .map(|p| p.0)
            .collect();
        let live = walk::live_set(&*self.source(), &recursive, &direct)?;
        Ok(self.store.sweep(&live)?)
    }

    pub fn stat(&self) -> Result<RepoStat, NodeError> {
        Ok(RepoStat {
            store: self.store.stat()?,
            segments: self.store.segment_usage()?,
            path: self.path.clone(),
        })
    }

    /// Re-hashes every stored block and checks every pin is complete.
    pub fn verify(&self, progress: &mut dyn FnMut(u64)) -> Result<VerifyReport, NodeError> {
        let mut report = VerifyReport::default();
        let store = Arc::clone(&self.store);
        store.for_each_block(&mut |entry| {
            let cid = Cid::new_v1(RAW, entry.multihash);
            report.checked += 1;
            progress(report.checked);
            match store.read_raw(&entry.multihash) {
                Ok(Some(data)) => {
                    if !hash_matches(&entry.multihash, &data) {
                        report.corrupt.push(cid);
                    }
                }
                Ok(None) => report.unreadable.push((cid, "indexed but missing".into())),
                Err(e) => report.unreadable.push((cid, e.to_string())),
            }
            Ok(())
        })?;
        let mut seen = HashSet::new();
        for (root, kind) in self.store.pins()? {
            let result = match kind {
                PinKind::Recursive => {
                    walk::walk(&*self.source(), &root, &mut seen, &mut |_| Ok(()))
                }
                PinKind::Direct => self.source().block(&root).map(|_| ()),
            };
            if let Err(e) = result {
                report.broken_pins.push((root, e.to_string()));
            }
        }
        Ok(report)
    }

    pub fn flush(&self) -> Result<(), NodeError> {
        Ok(self.store.flush()?)
    }
}

fn hash_matches(mh: &Multihash, data: &[u8]) -> bool {
    crate::block::multihash_matches(mh, data)
}

/// Where builders hand their blocks.
type BlockSink<'a> = dyn FnMut(Block) -> Result<(), DagError> + 'a;

/// Adapts the node's store to the DAG layer.
struct StoreSource(Arc<dyn Store>);

impl BlockSource for StoreSource {
    fn block(&self, cid: &Cid) -> Result<Block, DagError> {
        self.0.block(cid)
    }

    fn has_block(&self, cid: &Cid) -> Result<bool, DagError> {
        self.0.has_block(cid)
    }
}

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

/// One entry of a streamed add ([`Node::add_entries`]).
pub enum AddInput {
    Directory {
        path: String,
    },
    File {
        path: String,
        reader: Box<dyn Read + Send>,
    },
    Symlink {
        path: String,
        target: String,
    },
}

impl AddInput {
    pub fn path(&self) -> &str {
        match self {
            AddInput::Directory { path }
            | AddInput::File { path, .. }
            | AddInput::Symlink { path, .. } => path,
        }
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
    let bad = |reason: &str| NodeError::Unsupported {
        path: PathBuf::from(path),
        reason: reason.to_string(),
    };
    for part in path.split('/') {
        if part.is_empty() || part == "." || part == ".." || part.contains('\0') {
            return Err(bad("not a valid entry path (empty, `.` or `..` component)"));
        }
    }
    Ok((parent, name))
}

/// Directories of a streamed add that are still receiving entries.
struct TreeAssembler<'a> {
    opts: &'a AddOptions,
    /// Open directories, outermost first: (path, children so far).
    open: Vec<(String, Vec<(String, Built)>)>,
    roots: Vec<AddedEntry>,
    /// The DAG figures of each root (for wrapping).
    built: Vec<Built>,
}

impl TreeAssembler<'_> {
    /// Closes open directories until the innermost one is `parent` (or none
    /// is open, for `""`); fails if `parent` was never opened.
    fn close_until(
        &mut self,
        parent: &str,
        sink: &mut dyn FnMut(Block) -> Result<(), DagError>,
        on_entry: &mut dyn FnMut(&AddedEntry),
    ) -> Result<(), NodeError> {
        while let Some((path, _)) = self.open.last() {
            if path == parent {
                return Ok(());
            }
            let Some((path, children)) = self.open.pop() else {
                break;
            };
            let (block, built) = directory_block(self.opts.import.format, children.clone());
            let built = if self
                .opts
                .import
                .sharding
                .should_shard(&children, block.data().len())
            {
                hamt::build_sharded(self.opts.import.format, children, sink)?
            } else {
                sink(block)?;
                built
            };
            let name = path.rsplit('/').next().unwrap_or(&path).to_string();
            self.attach(&path, &name, built, on_entry);
        }
        if parent.is_empty() {
            Ok(())
        } else {
            Err(NodeError::Unsupported {
                path: PathBuf::from(parent),
                reason: "entry arrives outside its directory (directories must come first, \
                         their contents together)"
                    .into(),
            })
        }
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
            Some((_, children)) => children.push((name.to_string(), built)),
            None => {
                self.roots.push(entry);
                self.built.push(built);
            }
        }
    }
}

/// State of one recursive add.
struct AddCtx<'a, 's> {
    opts: &'a AddOptions,
    sink: &'s mut dyn FnMut(Block) -> Result<(), DagError>,
    on_entry: &'a mut dyn FnMut(&AddedEntry),
    progress: &'a mut dyn FnMut(u64),
    read_total: &'a mut u64,
}

impl AddCtx<'_, '_> {
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
            let mut names = vec![];
            for entry in std::fs::read_dir(path).map_err(input_err)? {
                let entry = entry.map_err(input_err)?;
                let file_name = entry.file_name();
                let Some(child) = file_name.to_str() else {
                    return Err(NodeError::Unsupported {
                        path: entry.path(),
                        reason: "file name is not valid UTF-8 (UnixFS names are UTF-8)".into(),
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
            let sharding = self.opts.import.sharding;
            let (block, built) = directory_block(self.opts.import.format, children.clone());
            if sharding.should_shard(&children, block.data().len()) {
                hamt::build_sharded(self.opts.import.format, children, self.sink)?
            } else {
                (self.sink)(block)?;
                built
            }
        } else if ft.is_file() {
            let file = std::fs::File::open(path).map_err(input_err)?;
            let base = *self.read_total;
            let progress = &mut *self.progress;
            let mut total = 0;
            let mut counting = CountingReader {
                // The chunker reads whole chunks: no buffer copy in between.
                inner: file,
                total: 0,
                progress: &mut |n| {
                    total = n;
                    progress(base + n)
                },
            };
            let built =
                build_file(&mut counting, &self.opts.import, self.sink).map_err(|e| match e {
                    DagError::Read(io) => NodeError::Input {
                        path: path.to_path_buf(),
                        source: io,
                    },
                    other => other.into(),
                })?;
            *self.read_total = base + counting.total;
            built
        } else {
            return Err(NodeError::Unsupported {
                path: path.to_path_buf(),
                reason: "not a regular file, directory or symlink".into(),
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
}

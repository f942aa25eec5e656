//! One interface to a node whether its repo is open in this process
//! ([`Node`](crate::node::Node)) or a daemon owns it and answers over the
//! RPC API ([`Client`]): a program writes each command once against
//! [`NodeApi`] (the CLI does). Answers are the RPC's [`types`], so both
//! sides give the same values; commands that need the network fail on a
//! node with no daemon with [`CommandError::NeedsDaemon`].

mod files;
mod local;
mod remote;

pub use files::{FilesApi, WriteInput};

use crate::block::HashAlg;
use crate::dag::reader::ExportStats;
use crate::names::KeyFormat;
use crate::node::{AddOptions, NodeError};
use crate::rpc::client::{Client, ClientError};
use crate::rpc::types;
use crate::store::RebuildReport;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Why a command through [`NodeApi`] failed.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    /// The node refused or failed it (no daemon: the repo is open here).
    #[error(transparent)]
    Node(Box<NodeError>),
    /// The daemon refused or failed it, or could not be reached.
    #[error(transparent)]
    Client(#[from] ClientError),
    /// The command needs the network, so a running daemon.
    #[error("{what} needs a running daemon ({why})")]
    NeedsDaemon {
        /// The command, or "this command".
        what: &'static str,
        /// What it needs the daemon for.
        why: &'static str,
    },
    /// The command needs the repo to itself and a daemon has it open.
    #[error("the daemon has the repo open: stop it before {what}")]
    DaemonRunning {
        /// What the command does (`rebuilding the index`).
        what: &'static str,
    },
    /// An argument the command cannot take.
    #[error("{0}")]
    Invalid(String),
    /// A local file could not be read or written.
    #[error("{}: {source}", path.display())]
    File {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// What the daemon sent could not be unpacked into `path`.
    #[error("unpacking into {}: {reason}", path.display())]
    Unpack {
        /// Where it was being unpacked.
        path: PathBuf,
        /// What was wrong.
        reason: String,
    },
    /// Writing the command's output failed (a closed pipe, a full disk).
    #[error("writing the output: {0}")]
    Output(#[source] std::io::Error),
}

impl From<NodeError> for CommandError {
    fn from(e: NodeError) -> CommandError {
        CommandError::Node(Box::new(e))
    }
}

impl CommandError {
    /// A network command asked of a node with no daemon.
    fn needs_daemon() -> CommandError {
        CommandError::NeedsDaemon {
            what: "this command",
            why: "start one with `cairn daemon`",
        }
    }

    fn file(path: &Path) -> impl FnOnce(std::io::Error) -> CommandError + '_ {
        move |source| CommandError::File {
            path: path.to_path_buf(),
            source,
        }
    }
}

/// What `add` reads.
#[derive(Clone, Copy, Debug)]
pub enum AddSource<'a> {
    /// Files, directories and symlinks, each added as its own root.
    Paths {
        /// The paths.
        paths: &'a [PathBuf],
        /// Whether directories are added (Kubo's `-r`).
        recursive: bool,
    },
    /// This process's standard input, as one file named by its CID.
    Stdin,
}

/// Where `block put` reads the block from.
#[derive(Clone, Debug)]
pub enum BlockInput {
    /// A file.
    File(PathBuf),
    /// This process's standard input.
    Stdin,
}

/// How `dag put` reads and stores its input (Kubo's option names).
#[derive(Clone, Debug)]
pub struct DagPutArgs {
    /// The input's codec (`dag-json`, `dag-cbor`, `dag-pb`, `raw`).
    pub input_codec: String,
    /// The stored block's codec.
    pub store_codec: String,
    /// The hash of its CID (CIDv1).
    pub hash: HashAlg,
    /// Pin it recursively.
    pub pin: bool,
}

/// A node's commands, answered the same whether the repo is open in this
/// process or through a daemon's RPC API. Paths are `CID[/path]` or
/// `/ipfs/CID[/path]`; progress callbacks get running totals.
pub trait NodeApi: FilesApi {
    /// The node's identity, addresses and protocols (`id`).
    fn id(&self) -> Result<types::IdResponse, CommandError>;

    /// Adds `input`; `on_added` sees each entry as it is added (for
    /// [`AddSource::Stdin`], the one file, named by its CID), `progress` the
    /// bytes read so far. Returns the CID of the last root added.
    fn add(
        &self,
        input: AddSource<'_>,
        opts: &AddOptions,
        on_added: &mut dyn FnMut(&types::AddedLine),
        progress: &mut dyn FnMut(u64),
    ) -> Result<Option<String>, CommandError>;

    /// Writes a file's bytes from `offset` (at most `length`) to `out`.
    fn cat(
        &self,
        path: &str,
        offset: u64,
        length: Option<u64>,
        out: &mut dyn Write,
        progress: &mut dyn FnMut(u64),
    ) -> Result<(), CommandError>;

    /// Writes the file or directory tree at `path` to `out` (which must not
    /// exist; nothing is left there when this fails).
    fn get(
        &self,
        path: &str,
        out: &Path,
        progress: &mut dyn FnMut(u64),
    ) -> Result<ExportStats, CommandError>;

    /// A directory's entries (or a file's one).
    fn ls(&self, path: &str) -> Result<Vec<types::LsLink>, CommandError>;

    /// Pins the root `path` names (fetching what is missing when online),
    /// kept at `replication` copies if given; `progress` gets blocks
    /// present so far. Returns the CIDs pinned.
    fn pin_add(
        &self,
        path: &str,
        recursive: bool,
        replication: Option<u8>,
        progress: &mut dyn FnMut(u64),
    ) -> Result<Vec<String>, CommandError>;

    /// Unpins the root `path` names (network-wide if it was replicated).
    fn pin_rm(&self, path: &str) -> Result<Vec<String>, CommandError>;

    /// Pins of `kind` (`all`, `recursive`, `direct` or `indirect`) as
    /// `(cid, kind)`, in listing order.
    fn pin_ls(&self, kind: &str) -> Result<Vec<(String, String)>, CommandError>;

    /// Where a replicated root's copies are (asks the holders: online only).
    fn pin_status(&self, _path: &str) -> Result<types::PinStatus, CommandError> {
        Err(CommandError::NeedsDaemon {
            what: "pin status",
            why: "it asks the holders",
        })
    }

    /// Writes a block's bytes to `out`.
    fn block_get(&self, cid: &str, out: &mut dyn Write) -> Result<(), CommandError>;

    /// Stores a block under a CID with `codec` (`raw`, `dag-pb`) and
    /// `hash`; returns it.
    fn block_put(
        &self,
        input: BlockInput,
        codec: &str,
        hash: HashAlg,
        pin: bool,
    ) -> Result<types::BlockStat, CommandError>;

    /// A block's CID and size.
    fn block_stat(&self, cid: &str) -> Result<types::BlockStat, CommandError>;

    /// Writes the DAG under `path`'s root as a CAR v1 to `out`.
    fn dag_export(&self, path: &str, out: &mut dyn Write) -> Result<(), CommandError>;

    /// Imports a CAR file: its roots (pinned if `pin_roots`), then totals.
    fn dag_import(
        &self,
        file: &Path,
        pin_roots: bool,
    ) -> Result<Vec<types::DagImportEvent>, CommandError>;

    /// Writes the value at `path` (a block, or a value inside one) to
    /// `out`, encoded in `codec` (`dag-json`, `dag-cbor`, `dag-pb`, `raw`).
    fn dag_get(&self, path: &str, codec: &str, out: &mut dyn Write) -> Result<(), CommandError>;

    /// Stores `input` as one block, as `args` say; returns its CID.
    fn dag_put(
        &self,
        input: BlockInput,
        args: &DagPutArgs,
    ) -> Result<types::DagPutOutput, CommandError>;

    /// The last block `path` reaches and the rest of the path inside it.
    fn dag_resolve(&self, path: &str) -> Result<types::DagResolveOutput, CommandError>;

    /// The `/ipfs/CID[/rest]` a `/ipfs/` or `/ipns/` path (or a CID with a
    /// path) names; `recursive` follows names that point at names.
    fn resolve_path(
        &self,
        path: &str,
        recursive: bool,
    ) -> Result<types::ResolveOutput, CommandError>;

    /// The sizes of the block `path` names.
    fn object_stat(&self, path: &str) -> Result<types::ObjectStatOutput, CommandError>;

    /// The node's config as JSON, secrets redacted.
    fn config_show(&self) -> Result<serde_json::Value, CommandError>;

    /// Removes unpinned blocks and compacts segments.
    fn repo_gc(&self) -> Result<types::GcResponse, CommandError>;

    /// The repo's size and contents.
    fn repo_stat(&self) -> Result<types::RepoStatResponse, CommandError>;

    /// Re-hashes every block; `progress` gets blocks checked so far.
    fn repo_verify(
        &self,
        progress: &mut dyn FnMut(u64),
    ) -> Result<types::VerifyResponse, CommandError>;

    /// What rebuilding the index from the segments found (the repo must be
    /// open here: see [`Node::open_rebuilding_index`](crate::node::Node::open_rebuilding_index)).
    fn repo_rebuild_index(&self) -> Result<RebuildReport, CommandError> {
        Err(CommandError::DaemonRunning {
            what: "rebuilding the index",
        })
    }

    /// Makes a key called `name` of type `kind` (`ed25519`).
    fn key_gen(&self, name: &str, kind: &str) -> Result<types::KeyOutput, CommandError>;

    /// Every key, `self` first.
    fn key_list(&self) -> Result<Vec<types::KeyOutput>, CommandError>;

    /// Removes the key called `name`; returns what it was.
    fn key_rm(&self, name: &str) -> Result<types::KeyOutput, CommandError>;

    /// Renames key `old` to `new` (replacing a key called `new` if `force`).
    fn key_rename(
        &self,
        old: &str,
        new: &str,
        force: bool,
    ) -> Result<types::KeyRenameOutput, CommandError>;

    /// The private key called `name` in `format` (Kubo's names:
    /// `libp2p-protobuf-cleartext`, `pem-pkcs8-cleartext`).
    fn key_export(&self, name: &str, format: KeyFormat) -> Result<Vec<u8>, CommandError>;

    /// Stores the private key in `file` (in `format`) as key `name`.
    fn key_import(
        &self,
        name: &str,
        file: &Path,
        format: KeyFormat,
    ) -> Result<types::KeyOutput, CommandError>;

    /// Publishes `value` (`/ipfs/CID[/path]`, `/ipns/NAME` or a CID)
    /// under `opts.key`'s name; without a daemon only with
    /// `allow_offline` (the record is kept in the repo).
    fn name_publish(
        &self,
        value: &str,
        opts: &crate::names::ipns::PublishOptions,
        allow_offline: bool,
    ) -> Result<types::NamePublishOutput, CommandError>;

    /// The path an IPNS name (`NAME` or `/ipns/NAME[/path]`) points at;
    /// without a daemon, only names this node published.
    fn name_resolve(
        &self,
        name: &str,
        opts: crate::names::ipns::ResolveOptions,
    ) -> Result<types::NameResolveOutput, CommandError>;

    /// Connected peers.
    fn swarm_peers(&self) -> Result<Vec<types::SwarmPeer>, CommandError> {
        Err(CommandError::needs_daemon())
    }

    /// Dials a peer's multiaddr; returns what happened, line by line.
    fn swarm_connect(&self, _addr: &str) -> Result<Vec<String>, CommandError> {
        Err(CommandError::needs_daemon())
    }

    /// Peers the DHT names as providers of `cid` (at most `max`).
    fn find_providers(&self, _cid: &str, _max: usize) -> Result<Vec<String>, CommandError> {
        Err(CommandError::needs_daemon())
    }

    /// Announces every provided root now; returns how many keys.
    fn reprovide(&self) -> Result<u64, CommandError> {
        Err(CommandError::needs_daemon())
    }

    /// Bytes in and out, totals and rates.
    fn stats_bw(&self) -> Result<types::BandwidthStats, CommandError> {
        Err(CommandError::needs_daemon())
    }

    /// The DHT's mode and routing table.
    fn stats_dht(&self) -> Result<types::DhtStats, CommandError> {
        Err(CommandError::needs_daemon())
    }

    /// Bitswap's counters and partners.
    fn bitswap_stat(&self) -> Result<types::BitswapStat, CommandError> {
        Err(CommandError::needs_daemon())
    }

    /// Asks the daemon to stop.
    fn shutdown(&self) -> Result<(), CommandError> {
        Err(CommandError::needs_daemon())
    }

    /// The daemon's client when commands go through one (to watch a fetch's
    /// peers while it runs).
    fn client(&self) -> Option<&Client> {
        None
    }
}

//! [`NodeError`]: what a node operation can fail with, carrying the path,
//! CID or setting it concerns and the error of the layer below.

use super::config::ConfigError;
use crate::block::{BlockError, Cid};
use crate::dag::car::CarError;
use crate::dag::DagError;
use crate::net::NetError;
use crate::replicate::ReplicateError;
use crate::store::StoreError;
use std::path::PathBuf;
use std::sync::Arc;

/// An error another layer reports as text (or as a type of its own): kept
/// as the source so its type survives where it has one.
pub type BoxedSource = Box<dyn std::error::Error + Send + Sync>;

/// Errors of node operations.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// No repo was named and there is no home directory to default to.
    #[error("no home directory to put the repo in; pass --repo or set CAIRN_REPO")]
    NoRepoPath,
    /// A file or directory of the repo could not be created, read or written.
    #[error("repository {path}: cannot {action}: {source}")]
    RepoIo {
        /// The file or directory concerned.
        path: PathBuf,
        /// What was being done ("create", "read", "write").
        action: &'static str,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// `config.toml` does not parse, or a setting in it has a bad value.
    #[error(
        "{}{}{}: {}",
        .path.display(),
        .line.map_or(String::new(), |l| format!(" (line {l})")),
        .key.as_ref().map_or(String::new(), |k| format!(": {k}")),
        .source.message().trim()
    )]
    ConfigFile {
        /// The `config.toml` read.
        path: PathBuf,
        /// Line of the offending setting, when known.
        line: Option<usize>,
        /// The offending setting as `[section] key`, when known.
        key: Option<String>,
        /// The underlying error.
        #[source]
        source: toml::de::Error,
    },
    /// The default configuration could not be written out as TOML.
    #[error("{path}: cannot serialise the default config: {source}")]
    ConfigSerialise {
        /// The `config.toml` to write.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: toml::ser::Error,
    },
    /// The system gave no randomness for a new node key.
    #[error("{path}: no randomness for the node key: {source}")]
    KeyRandomness {
        /// The key file to write.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: getrandom::Error,
    },
    /// The key file does not hold a 32-byte seed.
    #[error("{path}: key file holds {len} bytes, expected 32")]
    KeyLength {
        /// The key file.
        path: PathBuf,
        /// Bytes the key file holds.
        len: usize,
    },
    /// A setting is invalid where it is used.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A file or directory being added could not be read.
    #[error("{path}: {source}")]
    Input {
        /// The file or directory concerned.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// Something being added that UnixFS or the upload format cannot hold.
    #[error("{path}: {kind}")]
    Unsupported {
        /// The file or directory concerned.
        path: PathBuf,
        /// Why it cannot be stored.
        kind: UnsupportedInput,
    },
    /// The import options of an add are inconsistent (links, CID version,
    /// hash).
    #[error("invalid import options: {0}")]
    ImportOptions(#[source] BoxedSource),
    /// A streamed upload (the RPC API's multipart body) could not be read;
    /// the source says what was wrong with it.
    #[error("{0}")]
    Upload(#[source] BoxedSource),
    /// The DAG layer failed (missing blocks, bad nodes, paths).
    #[error(transparent)]
    Dag(#[from] DagError),
    /// The block store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A block or CID is malformed.
    #[error(transparent)]
    Block(#[from] BlockError),
    /// `dag put` input that does not decode, or cannot be stored in the
    /// codec asked for.
    #[error("invalid input: {0}")]
    DagInput(#[source] crate::dag::ipld::CodecError),
    /// A CAR stream is malformed or could not be written.
    #[error("CAR: {0}")]
    Car(#[source] CarError),
    /// A block that must be local is not.
    #[error("block {cid} is not in the local store")]
    NotLocal {
        /// The block concerned.
        cid: Cid,
    },
    /// Replication asked for a root that is not pinned recursively here.
    #[error("{cid} is not pinned recursively here")]
    NotPinned {
        /// The block concerned.
        cid: Cid,
    },
    /// `pin add --recursive=false` of a CID pinned recursively.
    #[error("{cid} is already pinned recursively")]
    PinnedRecursively {
        /// The block concerned.
        cid: Cid,
    },
    /// `pin rm` of a pin another part of the node made and still needs.
    #[error("{cid} is kept by {by}, not pinned by you: its pin goes when nothing there names it")]
    HeldBy {
        /// The block concerned.
        cid: Cid,
        /// Who holds it ("the S3 endpoint").
        by: String,
    },
    /// A [`PinHolder`](super::PinHolder) could not answer `pin rm`.
    #[error("asking who else keeps the pin: {0}")]
    PinHolder(#[source] BoxedSource),
    /// The stored replication record of `root` does not decode.
    #[error("replication record of {root}: {source}")]
    Record {
        /// The replicated root.
        root: Cid,
        /// The underlying error.
        #[source]
        source: BoxedSource,
    },
    /// A keystore operation failed.
    #[error(transparent)]
    Key(#[from] crate::names::KeyError),
    /// An IPNS publish or resolve failed.
    #[error(transparent)]
    Ipns(#[from] crate::names::ipns::IpnsError),
    /// An MFS (`files`) operation failed.
    #[error(transparent)]
    Mfs(#[from] crate::names::mfs::MfsError),
    /// Replication could not start or act.
    #[error("replication: {0}")]
    Replicate(#[from] ReplicateError),
    /// The network layer failed (its store errors come out as
    /// [`NodeError::Store`]).
    #[error("network: {0}")]
    Net(#[source] NetError),
    /// The block `cid`, not local, could not be fetched from peers.
    #[error("fetching {cid}: {source}")]
    RemoteFetch {
        /// The block wanted.
        cid: Cid,
        /// Why the fetch failed (shared by every request that waited).
        #[source]
        source: Arc<NetError>,
    },
    /// A blocking task of an online operation panicked or was cancelled.
    #[error("{task} thread: {source}")]
    Join {
        /// Which task ("reader", "resolver", "pin").
        task: &'static str,
        /// The underlying error.
        #[source]
        source: tokio::task::JoinError,
    },
    /// The thread that writes an add's blocks panicked.
    #[error("the block writer thread panicked")]
    WriterPanicked,
}

/// Why an input of `add` cannot be stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum UnsupportedInput {
    /// A directory given without `-r`.
    #[error("is a directory (use -r)")]
    DirectoryNotRecursive,
    /// An upload entry that is a directory with an empty name.
    #[error("a directory in an upload needs a name")]
    UnnamedDirectory,
    /// An upload path with an empty, `.` or `..` component (or a NUL).
    #[error("not a valid entry path (empty, `.` or `..` component)")]
    BadEntryPath,
    /// An upload entry after its directory was closed.
    #[error(
        "entry arrives outside its directory (directories must come first, \
         their contents together)"
    )]
    OutsideDirectory,
    /// A file name that is not UTF-8.
    #[error("file name is not valid UTF-8 (UnixFS names are UTF-8)")]
    NonUtf8Name,
    /// A device, socket or FIFO.
    #[error("not a regular file, directory or symlink")]
    FileType,
}

/// The store's errors stay store errors (a full store is one the caller
/// can act on), whether they came through the network or not.
impl From<NetError> for NodeError {
    fn from(e: NetError) -> Self {
        match e {
            NetError::Store(s) => NodeError::Store(s),
            other => NodeError::Net(other),
        }
    }
}

//! What can stop a run, or fail one operation of it (an add, a get, a
//! final check), and writing a run's output.

use crate::plot::PlotError;
use cairn::block::Cid;
use cairn::node::config::ConfigError;
use cairn::node::NodeError;
use cairn::replicate::ReplicateError;
use std::path::PathBuf;

/// Why a run, or one of its operations, failed.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// The tokio runtime of the run could not be built.
    #[error("building the tokio runtime: {0}")]
    Runtime(#[source] std::io::Error),
    /// A task of the run panicked or was cancelled.
    #[error("{what}: {source}")]
    Task {
        /// What the task was doing.
        what: &'static str,
        /// Why it did not finish.
        #[source]
        source: tokio::task::JoinError,
    },
    /// The node of a slot could not be created or started.
    #[error("starting node {slot}: {source}")]
    NodeStart {
        /// The slot of the node.
        slot: usize,
        /// What the node reported.
        #[source]
        source: NodeError,
    },
    /// An add found no node up to run on.
    #[error("no node is up")]
    NoNodeUp,
    /// The nodes' import settings are not valid.
    #[error("import settings: {0}")]
    Import(#[source] ConfigError),
    /// Adding a workload file failed.
    #[error("adding file {file}: {source}")]
    Add {
        /// The file's number in the workload.
        file: usize,
        /// What the node reported.
        #[source]
        source: NodeError,
    },
    /// Pinning an added file with its replication factor failed.
    #[error("replicating {cid}: {source}")]
    Replicate {
        /// The file's root.
        cid: Cid,
        /// What replication reported.
        #[source]
        source: ReplicateError,
    },
    /// A file could not be opened for reading.
    #[error("opening {cid}: {source}")]
    Open {
        /// The file's root.
        cid: Cid,
        /// What the node reported.
        #[source]
        source: NodeError,
    },
    /// Reading a file's bytes failed (a block could not be fetched).
    #[error("reading {cid}: {source}")]
    Read {
        /// The file's root.
        cid: Cid,
        /// What the reader reported.
        #[source]
        source: std::io::Error,
    },
    /// A file read back other bytes than were added.
    #[error("{cid}: wrong bytes")]
    WrongBytes {
        /// The file's root.
        cid: Cid,
    },
    /// A fetch did not finish in time.
    #[error("{cid}: timed out")]
    TimedOut {
        /// The file's root.
        cid: Cid,
    },
    /// A file of the run's output could not be written.
    #[error("writing {path}: {source}")]
    Write {
        /// The file or directory.
        path: PathBuf,
        /// What the file system reported.
        #[source]
        source: std::io::Error,
    },
    /// The report could not be encoded as JSON.
    #[error("encoding report.json: {0}")]
    Json(#[source] serde_json::Error),
    /// A plot could not be drawn.
    #[error(transparent)]
    Plot(#[from] PlotError),
}

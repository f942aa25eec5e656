//! The errors of replication.

use super::protocol::ProtocolError;
use crate::block::Cid;
use crate::dag::DagError;
use crate::net::NetError;
use crate::store::StoreError;
use libp2p::PeerId;

/// Errors of replication commands and of the exchanges with peers.
#[derive(Debug, thiserror::Error)]
pub enum ReplicateError {
    /// Only a root pinned recursively here can be replicated.
    #[error("{root} is not pinned here: pin it (recursively) before replicating it")]
    NotPinned {
        /// The root asked for.
        root: Cid,
    },
    /// No replication record of `root` here.
    #[error("{root} has no replication record here")]
    Unknown {
        /// The root asked for.
        root: Cid,
    },
    /// A replication factor out of range.
    #[error("replication factor must be between 1 and {max}, not {factor}")]
    Factor {
        /// The factor asked for.
        factor: u32,
        /// The largest factor a record can hold.
        max: u32,
    },
    /// Reading the stored replication records at start failed.
    #[error("loading the replication records: {0}")]
    Load(#[source] StoreError),
    /// The store failed on `cid` (a replicated root, or a block of one).
    #[error("storage, for {cid}: {source}")]
    Store {
        /// The root or block concerned.
        cid: Cid,
        /// The store's error (I/O and corruption are its own variants).
        #[source]
        source: StoreError,
    },
    /// Walking the local DAG of `root` failed.
    #[error("walking the DAG of {root}: {source}")]
    Walk {
        /// The root walked.
        root: Cid,
        /// What the walk hit (a missing or malformed block, the store).
        #[source]
        source: DagError,
    },
    /// Another handler already serves the replication protocol.
    #[error("serving {protocol}: {source}")]
    Listen {
        /// The protocol name.
        protocol: &'static str,
        /// libp2p's refusal.
        #[source]
        source: libp2p_stream::AlreadyRegistered,
    },
    /// No stream to `peer` could be opened.
    #[error("opening a replication stream to {peer} (about {root}): {source}")]
    Open {
        /// The peer asked.
        peer: PeerId,
        /// The root the request was about.
        root: Cid,
        /// Why the stream did not open.
        #[source]
        source: libp2p_stream::OpenStreamError,
    },
    /// The exchange with `peer` failed midway, or its answer is malformed.
    #[error("replication exchange with {peer} (about {root}): {source}")]
    Protocol {
        /// The peer asked.
        peer: PeerId,
        /// The root the request was about.
        root: Cid,
        /// What went wrong on the stream.
        #[source]
        source: ProtocolError,
    },
    /// `peer` did not answer within the exchange timeout.
    #[error("{peer} did not answer in time (about {root})")]
    Timeout {
        /// The peer asked.
        peer: PeerId,
        /// The root the request was about.
        root: Cid,
    },
    /// Fetching `cid` (a replica's root, or a block the scrub found
    /// corrupt) from peers failed.
    #[error("fetching {cid}: {source}")]
    Fetch {
        /// The root or block fetched.
        cid: Cid,
        /// The network's error.
        #[source]
        source: NetError,
    },
    /// A store task on a blocking thread panicked or was cancelled.
    #[error("a blocking store task failed: {0}")]
    Blocking(#[source] tokio::task::JoinError),
}

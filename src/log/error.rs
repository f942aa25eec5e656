//! [`LogError`]: what went wrong with a log, and where.

use crate::block::Cid;
use crate::dag::batch::BatchError;

/// Errors of the logs.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    /// No log of that name.
    #[error("no log named {name:?}")]
    NotFound {
        /// The name.
        name: String,
    },
    /// A log of that name exists.
    #[error("a log named {name:?} exists")]
    Exists {
        /// The name.
        name: String,
    },
    /// A name outside the rules.
    #[error("invalid {kind} name {name:?}: use 1 to 64 ASCII letters, digits, '.', '_' or '-', not starting with '.'")]
    BadName {
        /// `log` or `group`.
        kind: &'static str,
        /// The name (cut short).
        name: String,
    },
    /// A log id that is not a peer ID.
    #[error("{id:?} is not a log id (the peer ID `log ls` shows for it)")]
    BadId {
        /// The id (cut short).
        id: String,
    },
    /// A retention that is neither an age nor a size.
    #[error("invalid retention {text:?}: expected an age (7d, 12h) or a size (10GiB, 500MB)")]
    BadRetention {
        /// The text (cut short).
        text: String,
    },
    /// A replication factor of 0.
    #[error("the replication factor must be at least 1")]
    Replication,
    /// Too many logs on this node.
    #[error("this node keeps at most {max} logs")]
    TooMany {
        /// The limit.
        max: usize,
    },
    /// An append of nothing.
    #[error("nothing to append")]
    Empty,
    /// A message over the limit.
    #[error("a message of {bytes} bytes is over the limit of {max}")]
    MessageTooLarge {
        /// Its size.
        bytes: usize,
        /// The limit.
        max: usize,
    },
    /// An append to a log this node follows (one writer per log for now).
    #[error("log {name:?} is followed from another node: append on the node that created it")]
    NotWritable {
        /// The log.
        name: String,
    },
    /// Batches offered for a log this node writes itself.
    #[error("log {name:?} is not followed here")]
    NotFollowed {
        /// The log.
        name: String,
    },
    /// An offset past the log's end.
    #[error("offset {offset} is past the log's end ({end})")]
    BeyondEnd {
        /// The offset asked for.
        offset: u64,
        /// The log's next offset.
        end: u64,
    },
    /// An offset retention dropped (Kafka's OffsetOutOfRange).
    #[error("offset {offset} of log {name:?} is no longer kept (its retention dropped the older messages): the first available offset is {first}")]
    OffsetOutOfRange {
        /// The log.
        name: String,
        /// The offset asked for.
        offset: u64,
        /// The log's first kept offset.
        first: u64,
    },
    /// `log follow` on a node subscribed to as many topics as it may.
    #[error("cannot follow: this node already listens on {max} pub/sub topics, the most `[pubsub] max_topics` allows (a followed log takes one): raise max_topics under [pubsub] in the repo's config.toml and restart the daemon, or end a `pubsub sub`")]
    TopicCap {
        /// `[pubsub] max_topics`.
        max: usize,
    },
    /// `log follow` when the log's topic cannot be subscribed to.
    #[error("cannot follow: the log's pub/sub topic: {reason}")]
    Pubsub {
        /// Why.
        reason: String,
    },
    /// The node is stopping.
    #[error("the node is stopping")]
    Stopping,
    /// A CID that is not one of the log's batches.
    #[error("{cid} is not a batch of log {name:?}")]
    NotInLog {
        /// The CID.
        cid: Cid,
        /// The log.
        name: String,
    },
    /// A batch of the chain is not stored here.
    #[error("batch {cid} of the log is missing")]
    MissingBatch {
        /// The batch.
        cid: Cid,
    },
    /// A block that is not a valid batch, or a chain with a gap.
    #[error(transparent)]
    Batch(#[from] BatchError),
    /// What the repo keeps of a log does not read back.
    #[error("log {name:?} is damaged: {reason}")]
    Damaged {
        /// The log.
        name: String,
        /// What is wrong.
        reason: String,
    },
    /// `log create NAME` when the keystore has a key `log-NAME` already.
    #[error("the keystore has a key named {key:?} already, not made for this log: remove or rename it (`cairn key rm {key}`), or choose another log name")]
    KeyExists {
        /// The key's name.
        key: String,
    },
    /// The log's key.
    #[error("the log's key: {0}")]
    Key(#[from] crate::names::KeyError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
}

impl LogError {
    /// Whether the caller asked for something wrong (400 on the RPC), as
    /// opposed to the node failing.
    pub fn is_bad_request(&self) -> bool {
        matches!(
            self,
            LogError::NotFound { .. }
                | LogError::Exists { .. }
                | LogError::KeyExists { .. }
                | LogError::BadName { .. }
                | LogError::BadId { .. }
                | LogError::BadRetention { .. }
                | LogError::Replication
                | LogError::TooMany { .. }
                | LogError::Empty
                | LogError::MessageTooLarge { .. }
                | LogError::NotWritable { .. }
                | LogError::NotFollowed { .. }
                | LogError::BeyondEnd { .. }
                | LogError::OffsetOutOfRange { .. }
                | LogError::TopicCap { .. }
                | LogError::Pubsub { .. }
                | LogError::NotInLog { .. }
        )
    }
}

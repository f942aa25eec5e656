//! What the S3 endpoint's own state (keys, bucket index) can fail on;
//! request errors are `s3s::S3Error`s in S3's XML.

use std::path::PathBuf;

/// Errors of the access keys and the bucket index.
#[derive(Debug, thiserror::Error)]
pub enum S3Error {
    /// A key or index file could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A key file that is not a key.
    #[error("S3 key file {}: {why}", path.display())]
    BadKeyFile {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        why: String,
    },
    /// A bucket name S3 would refuse.
    #[error("invalid bucket name {name:?} (3 to 63 characters: lower-case letters, digits, '-' and '.', starting and ending with a letter or digit)")]
    InvalidBucketName {
        /// The name given.
        name: String,
    },
    /// No bucket of that name.
    #[error("no bucket named {name:?}")]
    NoSuchBucket {
        /// The name.
        name: String,
    },
    /// A mounted bucket whose IPNS name has not resolved yet: nothing to
    /// serve until it does (it is retried every few seconds).
    #[error("the mounted bucket {bucket:?} has not resolved {name} yet: try again shortly")]
    NotResolved {
        /// The bucket.
        bucket: String,
        /// The IPNS name it follows.
        name: String,
    },
    /// A bucket of that name exists already.
    #[error("a bucket named {name:?} exists already")]
    BucketExists {
        /// The name.
        name: String,
    },
    /// A replication factor no bucket can be kept at.
    #[error("replication factor {factor}: a bucket is kept at 1 to {max} copies")]
    BadReplication {
        /// The factor asked for.
        factor: u8,
        /// The most copies a root can have.
        max: u8,
    },
    /// No open multipart upload of that ID (for that bucket and key).
    #[error("no multipart upload {id:?}: never made, or completed or aborted")]
    NoSuchUpload {
        /// The upload ID given.
        id: String,
    },
    /// No random bytes for a new key.
    #[error("no randomness for a new key: {0}")]
    Randomness(#[source] getrandom::Error),
    /// The bucket index database could not be opened.
    #[error("the S3 bucket index: {0}")]
    Open(#[source] crate::store::StoreError),
    /// The node's store failed (storing, pinning, flushing).
    #[error(transparent)]
    Node(#[from] crate::node::NodeError),
    /// The bucket index failed.
    #[error("S3 bucket index error while {doing}: {source}")]
    Index {
        /// What was being done.
        doing: &'static str,
        /// What sled said.
        #[source]
        source: sled::Error,
    },
    /// A node of a bucket's tree is in neither the store nor the network.
    #[error("bucket tree node {cid} is missing")]
    TreeNodeMissing {
        /// The node.
        cid: crate::block::Cid,
    },
    /// A node of a bucket's tree could not be read.
    #[error("bucket tree node {cid} could not be read: {why}")]
    TreeNodeUnreadable {
        /// The node.
        cid: crate::block::Cid,
        /// What the block source said.
        why: String,
    },
    /// A block that is not a well-formed node of a bucket's tree.
    #[error("damaged bucket tree node {cid}: {why}")]
    TreeNodeCorrupt {
        /// The node.
        cid: crate::block::Cid,
        /// What is wrong.
        why: String,
    },
    /// A bucket mounted from another node: it cannot be written here.
    #[error("bucket {name:?} is mounted read-only")]
    ReadOnlyBucket {
        /// The bucket.
        name: String,
    },
    /// A conditional write (`If-None-Match: *`, `If-Match`) whose
    /// condition did not hold when the index was about to change.
    #[error("the write of {key:?} in bucket {bucket:?} was refused: {why:?}")]
    WriteRefused {
        /// The bucket.
        bucket: String,
        /// The key.
        key: String,
        /// Which way the condition failed.
        why: super::conditions::WriteRefused,
    },
    /// An object key the index cannot keep: one with a NUL byte (the
    /// versions tree ends each key with one, `index/versions.rs`).
    #[error("invalid object key {key:?}: {why}")]
    InvalidKey {
        /// The key as given.
        key: String,
        /// What is wrong with it.
        why: &'static str,
    },
    /// The group commit a write waited in failed as a whole
    /// (`index/group.rs`): the write was not made.
    #[error("the group of writes this one was committed with failed: {why}")]
    GroupCommit {
        /// What the group failed on.
        why: String,
    },
    /// An index entry that does not decode: the index is damaged.
    #[error("damaged S3 index entry ({what}): {why}")]
    BadEntry {
        /// Which kind of entry.
        what: &'static str,
        /// What is wrong.
        why: String,
    },
}

//! [`MfsError`]: what an MFS operation can fail with.

use super::ROOT_KEY;
use crate::dag::DagError;
use crate::store::StoreError;

/// Errors of MFS operations; the messages are Kubo's where it has one.
#[derive(Debug, thiserror::Error)]
pub enum MfsError {
    /// Nothing at the path.
    #[error("{path}: file does not exist")]
    NotFound {
        /// The path.
        path: String,
    },
    /// Something already there.
    #[error("{path}: file already exists")]
    Exists {
        /// The path.
        path: String,
    },
    /// A path step that is not a directory.
    #[error("{path}: not a directory")]
    NotADirectory {
        /// The path.
        path: String,
    },
    /// A file operation on a directory.
    #[error("{path}: is a directory")]
    IsADirectory {
        /// The path.
        path: String,
    },
    /// Removing a directory without `-r`.
    #[error("{path} is a directory, use -r to remove directories")]
    DirectoryNeedsRecursive {
        /// The path.
        path: String,
    },
    /// An operation that cannot apply to `/`.
    #[error("cannot change the root directory itself (remove or move what is in it)")]
    Root,
    /// Moving or copying a directory into itself.
    #[error("cannot move {from} into itself ({to})")]
    IntoItself {
        /// The source.
        from: String,
        /// The destination.
        to: String,
    },
    /// A path that cannot be an MFS path.
    #[error("invalid path {path:?}: {reason}")]
    BadPath {
        /// The path (its first 200 characters).
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// Options that cannot be used together or at all.
    #[error("{0}")]
    Options(String),
    /// The DAG below could not be read or built.
    #[error(transparent)]
    Dag(#[from] DagError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The kept root does not decode as a CID.
    #[error("the MFS root kept under {ROOT_KEY:?} is damaged: {reason}")]
    DamagedRoot {
        /// What is wrong with it.
        reason: String,
    },
}

impl MfsError {
    /// Whether the caller asked for something impossible (as opposed to the
    /// node failing).
    pub fn is_bad_request(&self) -> bool {
        !matches!(
            self,
            MfsError::Dag(_) | MfsError::Store(_) | MfsError::DamagedRoot { .. }
        )
    }
}

//! Bodies of the block and DAG commands: `block/*`, `dag/*`.

use serde::{Deserialize, Serialize};

/// `block/stat` and `block/put`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct BlockStat {
    /// The block's CID.
    pub key: String,
    /// Its bytes.
    pub size: u64,
}

/// One line of `dag/import`: a root, or the totals (the last line).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum DagImportEvent {
    /// A root named in the CAR header.
    Root(DagImportRoot),
    /// Blocks and bytes imported.
    Stats(DagImportStats),
}

/// A root line of `dag/import`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DagImportRoot {
    /// The root.
    pub root: ImportedRoot,
}

/// A root of a CAR and whether pinning it failed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ImportedRoot {
    /// The root's CID as a DAG-JSON link.
    pub cid: CidLink,
    /// Why pinning it failed; empty when it did not.
    pub pin_error_msg: String,
}

/// A DAG-JSON link: `{"/": "<cid>"}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CidLink {
    /// The CID.
    #[serde(rename = "/")]
    pub cid: String,
}

/// The totals line of `dag/import`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DagImportStats {
    /// The totals.
    pub stats: ImportStats,
}

/// Blocks and bytes a CAR brought.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ImportStats {
    /// Bytes of blocks that were new to the store.
    pub block_bytes_count: u64,
    /// Blocks read from the CAR.
    pub block_count: u64,
}

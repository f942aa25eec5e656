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

/// `dag/put`: the stored block (one line per input).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DagPutOutput {
    /// Its CID as a DAG-JSON link.
    pub cid: CidLink,
}

/// `dag/resolve`: the last block a path reaches and the rest of the path
/// inside it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DagResolveOutput {
    /// The block, as a DAG-JSON link.
    pub cid: CidLink,
    /// The path's steps inside that block (empty when it ends on a link).
    pub rem_path: String,
}

impl From<&crate::dag::ipld::Resolved> for DagResolveOutput {
    fn from(r: &crate::dag::ipld::Resolved) -> Self {
        DagResolveOutput {
            cid: CidLink {
                cid: r.cid.to_string(),
            },
            rem_path: r.rem_path.clone(),
        }
    }
}

/// `resolve`: the `/ipfs/` path a path or name resolves to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ResolveOutput {
    /// `/ipfs/CID`, with the steps inside the last block when there are.
    pub path: String,
}

impl From<&crate::dag::ipld::Resolved> for ResolveOutput {
    fn from(r: &crate::dag::ipld::Resolved) -> Self {
        let mut path = format!("/ipfs/{}", r.cid);
        if !r.rem_path.is_empty() {
            path.push('/');
            path.push_str(&r.rem_path);
        }
        ResolveOutput { path }
    }
}

/// `object/stat`: a block's sizes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ObjectStatOutput {
    /// Its encoded bytes.
    pub block_size: u64,
    /// The block plus everything its links reach (dag-pb), else the block.
    pub cumulative_size: u64,
    /// dag-pb: its `Data` bytes; other codecs: the block.
    pub data_size: u64,
    /// Its CID.
    pub hash: String,
    /// dag-pb: the bytes that are not `Data`.
    pub links_size: u64,
    /// Links it holds.
    pub num_links: u64,
}

impl From<&crate::node::ObjectStat> for ObjectStatOutput {
    fn from(s: &crate::node::ObjectStat) -> Self {
        ObjectStatOutput {
            block_size: s.block_size,
            cumulative_size: s.cumulative_size,
            data_size: s.data_size,
            hash: s.cid.to_string(),
            links_size: s.links_size,
            num_links: s.num_links,
        }
    }
}

/// `config KEY`: one setting.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ConfigValue {
    /// The dotted key asked for.
    pub key: String,
    /// Its value (secrets redacted).
    pub value: serde_json::Value,
}

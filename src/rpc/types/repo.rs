//! Bodies of the `repo/*` commands.

use serde::{Deserialize, Serialize};

/// `repo/gc`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct GcResponse {
    /// Segments rewritten.
    pub compacted_segments: u64,
    /// Bytes freed on disk.
    pub reclaimed_bytes: u64,
    /// Blocks removed.
    pub removed_blocks: u64,
    /// Their bytes.
    pub removed_bytes: u64,
}

impl From<&crate::store::SweepReport> for GcResponse {
    fn from(r: &crate::store::SweepReport) -> GcResponse {
        GcResponse {
            compacted_segments: r.compacted_segments,
            reclaimed_bytes: r.reclaimed_bytes,
            removed_blocks: r.removed_blocks,
            removed_bytes: r.removed_bytes,
        }
    }
}

/// `repo/stat`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct RepoStatResponse {
    /// Bytes of live blocks.
    pub block_bytes: u64,
    /// Live blocks.
    pub num_objects: u64,
    /// Segment files.
    pub num_segments: u64,
    /// Pins.
    pub pins: u64,
    /// The repository directory (empty for an in-memory node).
    pub repo_path: String,
    /// Bytes of data the store's segments hold on disk (holes punched by
    /// garbage collection not counted).
    pub repo_size: u64,
    /// Each segment's use.
    pub segments: Vec<SegmentStat>,
    /// `cairn-repo@<version>`.
    pub version: String,
}

/// One segment in [`RepoStatResponse`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct SegmentStat {
    /// Bytes of the file holding data (its size less punched holes).
    #[serde(default)]
    pub data_bytes: u64,
    /// The segment file's size.
    pub file_bytes: u64,
    /// Its number.
    pub id: u32,
    /// Bytes of live blocks in it.
    pub live_bytes: u64,
}

impl From<&crate::node::RepoStat> for RepoStatResponse {
    fn from(st: &crate::node::RepoStat) -> RepoStatResponse {
        RepoStatResponse {
            block_bytes: st.store.block_bytes,
            num_objects: st.store.blocks,
            num_segments: st.store.segments,
            pins: st.store.pins,
            repo_path: st
                .path
                .as_ref()
                .map(|p| p.display().to_string())
                .unwrap_or_default(),
            repo_size: st.store.stored_bytes,
            segments: st
                .segments
                .iter()
                .map(|g| SegmentStat {
                    data_bytes: g.data_bytes,
                    file_bytes: g.file_bytes,
                    id: g.id,
                    live_bytes: g.live_bytes,
                })
                .collect(),
            version: format!("cairn-repo@{}", env!("CARGO_PKG_VERSION")),
        }
    }
}

/// `repo/verify`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct VerifyResponse {
    /// `[cid, why]` of each pin whose DAG is incomplete.
    pub broken_pins: Vec<(String, String)>,
    /// Blocks checked.
    pub checked: u64,
    /// Blocks whose bytes do not match their CID.
    pub corrupt: Vec<String>,
    /// `[cid, why]` of each block that could not be read.
    pub unreadable: Vec<(String, String)>,
}

impl From<&crate::node::VerifyReport> for VerifyResponse {
    fn from(r: &crate::node::VerifyReport) -> VerifyResponse {
        let pairs = |v: &[(crate::block::Cid, String)]| {
            v.iter().map(|(c, w)| (c.to_string(), w.clone())).collect()
        };
        VerifyResponse {
            broken_pins: pairs(&r.broken_pins),
            checked: r.checked,
            corrupt: r.corrupt.iter().map(|c| c.to_string()).collect(),
            unreadable: pairs(&r.unreadable),
        }
    }
}

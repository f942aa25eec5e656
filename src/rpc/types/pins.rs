//! Bodies of the `pin/*` commands.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// `pin/add`'s lines: progress, then the pins made.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum PinAddEvent {
    /// Blocks of the DAG present so far (with `progress=true`).
    Progress(PinProgress),
    /// The roots pinned: the last line.
    Done(Pins),
}

/// Progress of `pin/add`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct PinProgress {
    /// Blocks present so far.
    pub progress: u64,
}

/// Roots pinned or unpinned (`pin/add`, `pin/rm`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Pins {
    /// Their CIDs.
    pub pins: Vec<String>,
}

/// `pin/ls`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct PinLsResponse {
    /// Kubo's map: CID to its pin type.
    pub keys: BTreeMap<String, PinType>,
    /// cairn's: `[cid, type]` in listing order.
    pub order: Vec<(String, String)>,
}

/// A pin's type in [`PinLsResponse`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct PinType {
    /// `recursive`, `direct` or `indirect`.
    pub r#type: String,
}

/// `pin/status` (cairn's): where a replicated root's copies are.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PinStatus {
    /// The root.
    pub cid: String,
    /// Copies wanted.
    pub factor: u8,
    /// Each holder, closest to the root first.
    pub holders: Vec<HolderStatus>,
    /// Most copies placed.
    pub max: u8,
    /// Removed network-wide (a tombstone).
    pub removed: bool,
    /// `ok`, `repairing`, `under-replicated` or `removed`.
    pub state: String,
}

/// One holder in [`PinStatus`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HolderStatus {
    /// Its peer ID.
    pub peer: String,
    /// Since when (unix seconds) it is in this state, when known.
    pub since: Option<u64>,
    /// `pinned`, `pinning`, `unreachable` or `lost`.
    pub state: String,
}

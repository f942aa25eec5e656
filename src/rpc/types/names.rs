//! Bodies of the `key/*` and `name/*` commands.

use serde::{Deserialize, Serialize};

/// A key: `key/gen`, `key/import`, and each entry of `key/list` and
/// `key/rm`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct KeyOutput {
    /// Its name (`self` for the node's key).
    pub name: String,
    /// Its IPNS name (base36 `k51...` by default, or the peer ID with
    /// `ipns-base=b58mh`).
    pub id: String,
}

/// `key/list` and `key/rm`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct KeyList {
    /// The keys.
    pub keys: Vec<KeyOutput>,
}

/// `key/rename`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct KeyRenameOutput {
    /// The old name.
    pub was: String,
    /// The new name.
    pub now: String,
    /// The key's IPNS name.
    pub id: String,
    /// Whether a key called `now` was replaced.
    pub overwrite: bool,
}

/// `name/publish`: the name and what it now points at.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct NamePublishOutput {
    /// The IPNS name (base36 `k51...`).
    pub name: String,
    /// The path published.
    pub value: String,
}

/// `name/resolve`: the path a name points at.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct NameResolveOutput {
    /// The path (with the asked name's own path appended).
    pub path: String,
}

/// `name/pubsub/state`: whether IPNS over pub/sub is on.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct NamePubsubState {
    /// `[ipns] pubsub`.
    pub enabled: bool,
}

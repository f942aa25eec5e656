//! Options of MFS: `[mfs]` in `config.toml` and the flags of `files write`
//! and the other commands that make blocks.

use super::MfsError;
use crate::block::HashAlg;
use crate::dag::builder::ImportOptions;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// `[mfs]` in `config.toml`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MfsSettings {
    /// Keep an MFS path published under an IPNS name (`[mfs.autopublish]`).
    pub autopublish: Option<AutopublishSettings>,
}

/// `[mfs.autopublish]`: republish `path`'s CID under `key`'s IPNS name
/// whenever MFS changes, at most once per `debounce`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AutopublishSettings {
    /// The key whose name is published (`self`: the node's own).
    pub key: String,
    /// The MFS path whose CID is published.
    pub path: String,
    /// Changes within this time of each other are published once.
    #[serde(with = "humantime_serde")]
    pub debounce: Duration,
}

impl Default for AutopublishSettings {
    fn default() -> Self {
        AutopublishSettings {
            key: "self".into(),
            path: "/".into(),
            debounce: Duration::from_secs(1),
        }
    }
}

/// How `files write` writes.
#[derive(Clone, Debug, Default)]
pub struct WriteOptions {
    /// Where in the file the bytes go.
    pub offset: u64,
    /// Make the file if it does not exist.
    pub create: bool,
    /// Empty the file before writing.
    pub truncate: bool,
    /// Make missing parent directories.
    pub parents: bool,
    /// Write at most this many bytes of the input.
    pub count: Option<u64>,
    /// CID version, hash and leaves other than the node's.
    pub format: FormatOverrides,
}

/// CID version, hash and leaf kind asked for by flags (`--cid-version`,
/// `--hash`, `--raw-leaves`), over the node's import options, resolved as
/// Kubo resolves them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FormatOverrides {
    /// CID version: 0 implies sha2-256 and dag-pb leaves, 1 raw leaves.
    pub cid_version: Option<u8>,
    /// Hash function (with CIDv0, only sha2-256).
    pub hash: Option<HashAlg>,
    /// Raw leaves or dag-pb ones.
    pub raw_leaves: Option<bool>,
}

impl FormatOverrides {
    /// Whether no flag was given.
    pub fn is_empty(&self) -> bool {
        *self == FormatOverrides::default()
    }

    /// `base` with these applied: `--cid-version` without `--hash` means
    /// sha2-256, as in Kubo; a hash other than sha2-256 needs CIDv1.
    pub fn apply(&self, base: ImportOptions) -> Result<ImportOptions, MfsError> {
        let mut opts = base;
        opts.set_cid_version_and_hash(self.cid_version, self.hash)
            .map_err(|e| MfsError::Options(e.to_string()))?;
        if let Some(r) = self.raw_leaves {
            opts.raw_leaves = r;
        }
        opts.validate()
            .map_err(|e| MfsError::Options(e.to_string()))?;
        Ok(opts)
    }
}

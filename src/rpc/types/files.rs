//! The bodies of `files/*` (MFS), in Kubo's shapes.

use crate::names::mfs::{MfsEntry, MfsKind, MfsStat};
use serde::{Deserialize, Serialize};

/// `files/ls`: `{"Entries":[...]}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct FilesLs {
    /// The entries, sorted by name.
    pub entries: Vec<FilesEntry>,
}

/// One `files/ls` entry. Without `long`, only `Name` is filled (Kubo's
/// zero values elsewhere).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct FilesEntry {
    /// The CID (`""` without `long`).
    pub hash: String,
    /// Its name.
    pub name: String,
    /// File bytes (0 for directories and without `long`).
    pub size: u64,
    /// 0: file, 1: directory (Kubo's numbers).
    pub r#type: u8,
}

impl FilesEntry {
    /// Kubo's `Type` of a directory.
    pub const DIRECTORY: u8 = 1;

    /// The entry as `files/ls` sends it (`long`: with type, size, CID).
    pub fn from_entry(e: &MfsEntry, long: bool) -> FilesEntry {
        if !long {
            return FilesEntry {
                hash: String::new(),
                name: e.name.clone(),
                size: 0,
                r#type: 0,
            };
        }
        FilesEntry {
            hash: e.cid.to_string(),
            name: e.name.clone(),
            size: e.size,
            r#type: u8::from(e.kind == MfsKind::Directory),
        }
    }
}

/// `files/stat`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct FilesStat {
    /// Links of the node.
    pub blocks: u64,
    /// The node's block and every block below it.
    pub cumulative_size: u64,
    /// Its CID.
    pub hash: String,
    /// File bytes (0 for directories).
    pub size: u64,
    /// `file`, `directory` or `symlink`.
    pub r#type: String,
}

impl From<&MfsStat> for FilesStat {
    fn from(s: &MfsStat) -> FilesStat {
        FilesStat {
            blocks: s.blocks,
            cumulative_size: s.cumulative_size,
            hash: s.cid.to_string(),
            size: s.size,
            r#type: s.kind.as_str().to_string(),
        }
    }
}

/// `files/flush`: `{"Cid": ...}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct FilesCid {
    /// The CID at the path flushed.
    pub cid: String,
}

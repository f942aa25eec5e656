//! Bodies of the UnixFS commands: `ls` and `add`.

use serde::{Deserialize, Serialize};

/// `ls`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct LsResponse {
    /// One per path asked about.
    pub objects: Vec<LsObject>,
}

/// One listed directory.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct LsObject {
    /// The path as asked.
    pub hash: String,
    /// Its entries.
    pub links: Vec<LsLink>,
}

/// One directory entry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct LsLink {
    /// The entry's CID.
    pub hash: String,
    /// Its name.
    pub name: String,
    /// File bytes (0 for a directory).
    pub size: u64,
    /// Symlink target in Kubo; empty here.
    pub target: String,
    /// [`LsLink::DIRECTORY`], [`LsLink::FILE`] or [`LsLink::SYMLINK`].
    pub r#type: u8,
}

impl LsLink {
    /// Kubo's type for a directory.
    pub const DIRECTORY: u8 = 1;
    /// Kubo's type for a file.
    pub const FILE: u8 = 2;
    /// Kubo's type for a symbolic link.
    pub const SYMLINK: u8 = 4;

    /// The entry of a UnixFS directory listing, as Kubo reports it (a
    /// directory's size is 0).
    pub fn from_entry(e: &crate::dag::reader::DirEntry) -> LsLink {
        let r#type = match e.kind {
            "directory" | "sharded directory" => Self::DIRECTORY,
            "symlink" => Self::SYMLINK,
            _ => Self::FILE,
        };
        LsLink {
            hash: e.cid.to_string(),
            name: e.name.clone(),
            size: if r#type == Self::DIRECTORY { 0 } else { e.size },
            target: String::new(),
            r#type,
        }
    }
}

/// One line of `add`: an entry added, or progress through a file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum AddEvent {
    /// An entry was added.
    Added(AddedLine),
    /// Bytes of a file read so far (with `progress=true`).
    Progress(AddProgress),
}

/// An entry `add` produced.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct AddedLine {
    /// Its CID.
    pub hash: String,
    /// Its path relative to the upload.
    pub name: String,
    /// Cumulative DAG size, as a decimal string (as Kubo sends it).
    pub size: String,
}

impl From<&crate::node::AddedEntry> for AddedLine {
    fn from(e: &crate::node::AddedEntry) -> AddedLine {
        AddedLine {
            hash: e.cid.to_string(),
            name: e.name.clone(),
            size: e.dag_size.to_string(),
        }
    }
}

/// Progress through one file of an `add`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct AddProgress {
    /// Bytes of the file read so far.
    pub bytes: u64,
    /// The file's path relative to the upload.
    pub name: String,
}

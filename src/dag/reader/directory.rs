//! Directories: their entries (plain or HAMT-sharded), listings, and path
//! resolution through them.

use super::{load, Node};
use crate::block::Cid;
use crate::dag::pb::PbLink;
use crate::dag::{hamt, BlockSource, DagError};

/// Follows `path` (slash-separated names) from `root` through directories.
pub fn resolve_path(source: &dyn BlockSource, root: Cid, path: &str) -> Result<Cid, DagError> {
    let steps = resolve_steps(source, root, path.split('/').filter(|s| !s.is_empty()))?;
    Ok(*steps.last().unwrap_or(&root))
}

/// Follows `names` from `root` through directories: the CID of every
/// step, `root` first and what the last name names last.
pub fn resolve_steps<'n>(
    source: &dyn BlockSource,
    root: Cid,
    names: impl Iterator<Item = &'n str>,
) -> Result<Vec<Cid>, DagError> {
    let mut steps = vec![root];
    let mut cid = root;
    for name in names {
        let found = lookup(source, cid, load(source, &cid)?, name)?;
        cid = found.ok_or_else(|| no_such_path(cid, name))?;
        steps.push(cid);
    }
    Ok(steps)
}

/// One step of path resolution: the CID `name` names in the directory
/// `node` (whose CID is `dir`), plain or HAMT-sharded (reading only the
/// shards on the name's hash path from `source`); `None` if absent.
pub fn lookup(
    source: &dyn BlockSource,
    dir: Cid,
    node: Node,
    name: &str,
) -> Result<Option<Cid>, DagError> {
    match node {
        Node::Directory { links } => Ok(links.into_iter().find(|l| l.name == name).map(|l| l.cid)),
        Node::HamtShard { links } => hamt::lookup(source, &dir, links, name),
        other => Err(not_a_directory(dir, &other)),
    }
}

/// The error for a path step `name` missing from the directory `dir`.
pub(crate) fn no_such_path(dir: Cid, name: &str) -> DagError {
    DagError::NoSuchPath {
        cid: dir,
        name: name.to_string(),
    }
}

fn not_a_directory(cid: Cid, node: &Node) -> DagError {
    DagError::WrongKind {
        cid,
        expected: "directory",
        actual: node.kind(),
    }
}

/// The entries of a plain or HAMT-sharded directory, names unprefixed.
pub fn directory_entries(
    source: &dyn BlockSource,
    cid: &Cid,
    node: Node,
) -> Result<Vec<PbLink>, DagError> {
    match node {
        Node::Directory { links } => Ok(links),
        Node::HamtShard { links } => hamt::entries(source, cid, links),
        other => Err(not_a_directory(*cid, &other)),
    }
}

/// One entry of a directory listing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DirEntry {
    /// The entry's name in the directory.
    pub name: String,
    /// What the entry links to.
    pub cid: Cid,
    /// For files, the file size; for others, the cumulative DAG size.
    pub size: u64,
    /// What it is ([`Node::kind`]).
    pub kind: &'static str,
}

/// Lists a directory's entries (or, for a file, its single entry as Kubo's
/// `ls` shows the chunks — here: none).
pub fn list(source: &dyn BlockSource, cid: &Cid) -> Result<Vec<DirEntry>, DagError> {
    let links = match load(source, cid)? {
        Node::Directory { links } => links,
        Node::File { links, .. } => links,
        Node::Raw(_) | Node::Symlink { .. } => return Ok(vec![]),
        node @ Node::HamtShard { .. } => directory_entries(source, cid, node)?,
    };
    let mut out = Vec::with_capacity(links.len());
    for link in links {
        let node = load(source, &link.cid)?;
        let size = match node {
            Node::Raw(_) | Node::File { .. } => node.file_size(),
            _ => link.tsize,
        };
        out.push(DirEntry {
            name: link.name,
            cid: link.cid,
            size,
            kind: node.kind(),
        });
    }
    Ok(out)
}

//! Writing a UnixFS tree out: to the file system ([`export`]) or as a tar
//! stream ([`export_tar`]), with entry names checked ([`safe_name`]).

use super::{directory_entries, load, FileReader, Node, ReadOptions};
use crate::block::Cid;
use crate::dag::{BlockSource, DagError};
use std::io;
use std::path::Path;
use std::sync::Arc;

/// Checks that a directory entry name is safe to create on a file system.
pub fn safe_name(dir: &Cid, name: &str) -> Result<(), DagError> {
    let bad = name.is_empty()
        || name == "."
        || name == ".."
        || name.contains('/')
        || name.contains('\\')
        || name.contains('\0');
    if bad {
        Err(DagError::UnsafeName {
            cid: *dir,
            name: name.to_string(),
        })
    } else {
        Ok(())
    }
}

/// Totals of an export, for progress and messages.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ExportStats {
    /// Files written.
    pub files: u64,
    /// Directories created.
    pub directories: u64,
    /// Symbolic links created.
    pub symlinks: u64,
    /// File bytes written.
    pub bytes: u64,
}

/// Writes the file, directory tree or symlink at `cid` to `out`, which must
/// not exist yet. Entry names are checked, so nothing is written outside
/// `out`. `progress` is called with the bytes written so far.
pub fn export(
    source: Arc<dyn BlockSource>,
    cid: Cid,
    out: &Path,
    opts: ReadOptions,
    progress: &mut dyn FnMut(u64),
) -> Result<ExportStats, DagError> {
    let write_err = |e: io::Error| DagError::Write {
        path: out.display().to_string(),
        source: e,
    };
    if out.symlink_metadata().is_ok() {
        return Err(write_err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            "already exists; refusing to overwrite",
        )));
    }
    // Everything goes to a hidden sibling first and is renamed into place
    // only when complete: a failure leaves nothing half-written.
    let name = out.file_name().and_then(|n| n.to_str()).unwrap_or("out");
    let tmp = out.with_file_name(format!(".{name}.cairn-partial-{}", std::process::id()));
    if tmp.symlink_metadata().is_ok() {
        return Err(write_err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            format!("{} exists (left by an earlier run?)", tmp.display()),
        )));
    }
    let mut stats = ExportStats::default();
    let result = export_rec(&source, cid, &tmp, opts, progress, &mut stats, 0)
        .and_then(|()| std::fs::rename(&tmp, out).map_err(write_err));
    if result.is_err() {
        let _ = if tmp.is_dir() && !tmp.is_symlink() {
            std::fs::remove_dir_all(&tmp)
        } else {
            std::fs::remove_file(&tmp)
        };
    }
    result.map(|()| stats)
}

/// Writes the file or tree under `cid` as a tar stream (ustar with GNU long
/// names) to `out`, its top entry named `name`, as Kubo's `get` API does.
/// Names are checked as [`export`] checks them.
pub fn export_tar(
    source: &Arc<dyn BlockSource>,
    cid: Cid,
    name: &str,
    opts: ReadOptions,
    out: impl io::Write,
) -> Result<ExportStats, DagError> {
    let mut tar = tar::Builder::new(out);
    let mut stats = ExportStats::default();
    tar_rec(source, cid, name, opts, &mut tar, &mut stats, 0)?;
    tar.into_inner().map_err(|e| DagError::Write {
        path: "tar output".into(),
        source: e,
    })?;
    Ok(stats)
}

fn tar_rec<W: io::Write>(
    source: &Arc<dyn BlockSource>,
    cid: Cid,
    path: &str,
    opts: ReadOptions,
    tar: &mut tar::Builder<W>,
    stats: &mut ExportStats,
    depth: usize,
) -> Result<(), DagError> {
    let write_err = |e: io::Error| DagError::Write {
        path: path.to_string(),
        source: e,
    };
    if depth > 256 {
        return Err(DagError::Malformed {
            cid,
            reason: "directory tree deeper than 256".into(),
        });
    }
    let mut header = tar::Header::new_gnu();
    header.set_mtime(0);
    let node = load(&**source, &cid)?;
    match node {
        node @ (Node::Raw(_) | Node::File { .. }) => {
            let size = node.file_size();
            header.set_entry_type(tar::EntryType::Regular);
            header.set_size(size);
            header.set_mode(0o644);
            let reader = FileReader::new(Arc::clone(source), cid, 0, None, opts)?;
            tar.append_data(&mut header, path, reader)
                .map_err(write_err)?;
            stats.files += 1;
            stats.bytes += size;
        }
        node @ (Node::Directory { .. } | Node::HamtShard { .. }) => {
            let links = directory_entries(&**source, &cid, node)?;
            header.set_entry_type(tar::EntryType::Directory);
            header.set_size(0);
            header.set_mode(0o755);
            tar.append_data(&mut header, format!("{path}/"), io::empty())
                .map_err(write_err)?;
            stats.directories += 1;
            for link in links {
                safe_name(&cid, &link.name)?;
                let child = format!("{path}/{}", link.name);
                tar_rec(source, link.cid, &child, opts, tar, stats, depth + 1)?;
            }
        }
        Node::Symlink { target } => {
            let target = String::from_utf8(target).map_err(|_| DagError::Malformed {
                cid,
                reason: "symlink target is not UTF-8".into(),
            })?;
            header.set_entry_type(tar::EntryType::Symlink);
            header.set_size(0);
            header.set_mode(0o777);
            tar.append_link(&mut header, path, &target)
                .map_err(write_err)?;
            stats.symlinks += 1;
        }
    }
    Ok(())
}

fn export_rec(
    source: &Arc<dyn BlockSource>,
    cid: Cid,
    out: &Path,
    opts: ReadOptions,
    progress: &mut dyn FnMut(u64),
    stats: &mut ExportStats,
    depth: usize,
) -> Result<(), DagError> {
    let write_err = |e: io::Error| DagError::Write {
        path: out.display().to_string(),
        source: e,
    };
    if depth > 256 {
        return Err(DagError::Malformed {
            cid,
            reason: "directory tree deeper than 256".into(),
        });
    }
    if out.symlink_metadata().is_ok() {
        return Err(write_err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            "already exists; refusing to overwrite",
        )));
    }
    let node = load(&**source, &cid)?;
    match node {
        Node::Raw(_) | Node::File { .. } => {
            let reader = FileReader::new(Arc::clone(source), cid, 0, None, opts)?;
            let mut f = std::fs::File::create(out).map_err(write_err)?;
            for chunk in reader {
                let chunk = chunk?;
                io::Write::write_all(&mut f, &chunk).map_err(write_err)?;
                stats.bytes += chunk.len() as u64;
                progress(stats.bytes);
            }
            stats.files += 1;
        }
        node @ (Node::Directory { .. } | Node::HamtShard { .. }) => {
            let links = directory_entries(&**source, &cid, node)?;
            std::fs::create_dir(out).map_err(write_err)?;
            stats.directories += 1;
            for link in links {
                safe_name(&cid, &link.name)?;
                export_rec(
                    source,
                    link.cid,
                    &out.join(&link.name),
                    opts,
                    progress,
                    stats,
                    depth + 1,
                )?;
            }
        }
        Node::Symlink { target } => {
            let target = String::from_utf8(target).map_err(|_| DagError::Malformed {
                cid,
                reason: "symlink target is not UTF-8".into(),
            })?;
            std::os::unix::fs::symlink(&target, out).map_err(write_err)?;
            stats.symlinks += 1;
        }
    }
    Ok(())
}

//! [`FilesApi`]: MFS (`files`) commands, answered the same by a repo open
//! in this process and through a daemon's `files/*` endpoints.

use super::CommandError;
use crate::names::mfs::{FormatOverrides, WriteOptions};
use crate::node::Node;
use crate::rpc::client::{Client, UploadPart};
use crate::rpc::types::{self, FilesEntry, FilesStat};
use std::io::Write;
use std::path::PathBuf;

/// Where `files write` reads its bytes.
#[derive(Clone, Debug)]
pub enum WriteInput {
    /// A file.
    File(PathBuf),
    /// This process's standard input.
    Stdin,
}

/// MFS commands (see [`Mfs`](crate::names::mfs::Mfs)); paths are MFS paths
/// (`/a/b`), but `files_cp`'s source may be `/ipfs/CID[/path]`.
pub trait FilesApi {
    /// Makes a directory (with `parents`, missing ones on the way too).
    fn files_mkdir(
        &self,
        path: &str,
        parents: bool,
        format: FormatOverrides,
    ) -> Result<(), CommandError>;

    /// Writes `input` into the file at `path`.
    fn files_write(
        &self,
        path: &str,
        input: WriteInput,
        opts: &WriteOptions,
    ) -> Result<(), CommandError>;

    /// Writes the file's bytes from `offset` (at most `count`) to `out`.
    fn files_read(
        &self,
        path: &str,
        offset: u64,
        count: Option<u64>,
        out: &mut dyn Write,
    ) -> Result<(), CommandError>;

    /// A directory's entries, or a file as its one entry.
    fn files_ls(&self, path: &str, long: bool) -> Result<Vec<FilesEntry>, CommandError>;

    /// What is at `path`.
    fn files_stat(&self, path: &str) -> Result<FilesStat, CommandError>;

    /// Copies `src` to `dst`.
    fn files_cp(&self, src: &str, dst: &str, parents: bool) -> Result<(), CommandError>;

    /// Moves `src` to `dst`.
    fn files_mv(&self, src: &str, dst: &str) -> Result<(), CommandError>;

    /// Removes each of `paths`.
    fn files_rm(&self, paths: &[String], recursive: bool, force: bool) -> Result<(), CommandError>;

    /// The CID at `path`, everything written durable.
    fn files_flush(&self, path: &str) -> Result<String, CommandError>;

    /// Names the node at `path` with another CID version or hash.
    fn files_chcid(&self, path: &str, format: FormatOverrides) -> Result<(), CommandError>;
}

impl Node {
    /// After a change made without a daemon: `[mfs.autopublish]`'s record.
    fn changed(&self) -> Result<(), CommandError> {
        Ok(self.files_autopublish_offline()?)
    }
}

impl FilesApi for Node {
    fn files_mkdir(
        &self,
        path: &str,
        parents: bool,
        format: FormatOverrides,
    ) -> Result<(), CommandError> {
        Node::files_mkdir(self, path, parents, format)?;
        self.changed()
    }

    fn files_write(
        &self,
        path: &str,
        input: WriteInput,
        opts: &WriteOptions,
    ) -> Result<(), CommandError> {
        match input {
            WriteInput::Stdin => Node::files_write(self, path, &mut std::io::stdin().lock(), opts)?,
            WriteInput::File(file) => {
                let mut f = std::fs::File::open(&file).map_err(CommandError::file(&file))?;
                Node::files_write(self, path, &mut f, opts)?
            }
        }
        self.changed()
    }

    fn files_read(
        &self,
        path: &str,
        offset: u64,
        count: Option<u64>,
        out: &mut dyn Write,
    ) -> Result<(), CommandError> {
        for chunk in Node::files_read(self, path, offset, count)? {
            let chunk = chunk.map_err(crate::node::NodeError::from)?;
            out.write_all(&chunk).map_err(CommandError::Output)?;
        }
        Ok(())
    }

    fn files_ls(&self, path: &str, long: bool) -> Result<Vec<FilesEntry>, CommandError> {
        let entries = Node::files_ls(self, path, long)?;
        Ok(entries
            .iter()
            .map(|e| FilesEntry::from_entry(e, long))
            .collect())
    }

    fn files_stat(&self, path: &str) -> Result<FilesStat, CommandError> {
        Ok(FilesStat::from(&Node::files_stat(self, path)?))
    }

    fn files_cp(&self, src: &str, dst: &str, parents: bool) -> Result<(), CommandError> {
        Node::files_cp(self, src, dst, parents)?;
        self.changed()
    }

    fn files_mv(&self, src: &str, dst: &str) -> Result<(), CommandError> {
        Node::files_mv(self, src, dst)?;
        self.changed()
    }

    fn files_rm(&self, paths: &[String], recursive: bool, force: bool) -> Result<(), CommandError> {
        Node::files_rm(self, paths, recursive, force)?;
        self.changed()
    }

    fn files_flush(&self, path: &str) -> Result<String, CommandError> {
        let cid = Node::files_flush(self, path)?;
        self.changed()?;
        Ok(cid.to_string())
    }

    fn files_chcid(&self, path: &str, format: FormatOverrides) -> Result<(), CommandError> {
        Node::files_chcid(self, path, format)?;
        self.changed()
    }
}

/// Query arguments for CID version, hash and leaves, as Kubo names them.
fn format_args(f: &FormatOverrides) -> Vec<(&'static str, String)> {
    let mut args = Vec::new();
    if let Some(v) = f.cid_version {
        args.push(("cid-version", v.to_string()));
    }
    if let Some(h) = f.hash {
        args.push(("hash", h.to_string()));
    }
    if let Some(r) = f.raw_leaves {
        args.push(("raw-leaves", r.to_string()));
    }
    args
}

/// `owned` as the `(&str, &str)` pairs the client takes.
fn borrowed<'a>(owned: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    owned.iter().map(|(k, v)| (*k, v.as_str())).collect()
}

impl FilesApi for Client {
    fn files_mkdir(
        &self,
        path: &str,
        parents: bool,
        format: FormatOverrides,
    ) -> Result<(), CommandError> {
        let mut args = format_args(&format);
        args.push(("arg", path.to_string()));
        args.push(("parents", parents.to_string()));
        Ok(self.call("files/mkdir", &borrowed(&args))?)
    }

    fn files_write(
        &self,
        path: &str,
        input: WriteInput,
        opts: &WriteOptions,
    ) -> Result<(), CommandError> {
        let mut args = format_args(&opts.format);
        args.push(("arg", path.to_string()));
        args.push(("offset", opts.offset.to_string()));
        args.push(("create", opts.create.to_string()));
        args.push(("truncate", opts.truncate.to_string()));
        args.push(("parents", opts.parents.to_string()));
        if let Some(n) = opts.count {
            args.push(("count", n.to_string()));
        }
        let part = match input {
            WriteInput::Stdin => UploadPart::Stdin {
                name: "data".into(),
            },
            WriteInput::File(path) => {
                // Opened here too, so a missing file is the same error as
                // without a daemon.
                std::fs::File::open(&path).map_err(CommandError::file(&path))?;
                UploadPart::File {
                    name: "data".into(),
                    path,
                }
            }
        };
        self.call_lines(
            "files/write",
            &borrowed(&args),
            Some(vec![part]),
            &mut |_: serde_json::Value| Ok(()),
        )?;
        Ok(())
    }

    fn files_read(
        &self,
        path: &str,
        offset: u64,
        count: Option<u64>,
        out: &mut dyn Write,
    ) -> Result<(), CommandError> {
        let offset = offset.to_string();
        let count = count.map(|c| c.to_string());
        let mut args = vec![("arg", path), ("offset", offset.as_str())];
        if let Some(c) = &count {
            args.push(("count", c.as_str()));
        }
        self.call_to("files/read", &args, out, &mut |_| {})?;
        Ok(())
    }

    fn files_ls(&self, path: &str, long: bool) -> Result<Vec<FilesEntry>, CommandError> {
        let long = long.to_string();
        let v: types::FilesLs =
            self.call_json("files/ls", &[("arg", path), ("long", long.as_str())])?;
        Ok(v.entries)
    }

    fn files_stat(&self, path: &str) -> Result<FilesStat, CommandError> {
        Ok(self.call_json("files/stat", &[("arg", path)])?)
    }

    fn files_cp(&self, src: &str, dst: &str, parents: bool) -> Result<(), CommandError> {
        let parents = parents.to_string();
        let args = [("arg", src), ("arg", dst), ("parents", parents.as_str())];
        Ok(self.call("files/cp", &args)?)
    }

    fn files_mv(&self, src: &str, dst: &str) -> Result<(), CommandError> {
        Ok(self.call("files/mv", &[("arg", src), ("arg", dst)])?)
    }

    fn files_rm(&self, paths: &[String], recursive: bool, force: bool) -> Result<(), CommandError> {
        let (recursive, force) = (recursive.to_string(), force.to_string());
        let mut args: Vec<(&str, &str)> = paths.iter().map(|p| ("arg", p.as_str())).collect();
        args.push(("recursive", recursive.as_str()));
        args.push(("force", force.as_str()));
        Ok(self.call("files/rm", &args)?)
    }

    fn files_flush(&self, path: &str) -> Result<String, CommandError> {
        let v: types::FilesCid = self.call_json("files/flush", &[("arg", path)])?;
        Ok(v.cid)
    }

    fn files_chcid(&self, path: &str, format: FormatOverrides) -> Result<(), CommandError> {
        let mut args = format_args(&format);
        args.push(("arg", path.to_string()));
        Ok(self.call("files/chcid", &borrowed(&args))?)
    }
}

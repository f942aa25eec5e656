//! `cairn files ...` (MFS, Kubo's `ipfs files`): the subcommands and how
//! each prints, written once against [`NodeApi`].

use anyhow::Result;
use cairn::block::HashAlg;
use cairn::names::mfs::{FormatOverrides, WriteOptions};
use cairn::rpc::api::{NodeApi, WriteInput};
use cairn::rpc::types::FilesEntry;
use clap::{Args, Subcommand};
use std::io::Write;
use std::path::PathBuf;

/// `--cid-version` and `--hash` (and, for writes, `--raw-leaves`).
#[derive(Args, Clone, Copy)]
pub(super) struct FormatArgs {
    /// CID version of new nodes (0 or 1; 1 without --hash means sha2-256)
    /// [default: [import] in config.toml]
    #[arg(long)]
    cid_version: Option<u8>,
    /// Hash function of new nodes (sha2-256 or blake3) [default: [import]]
    #[arg(long)]
    hash: Option<HashAlg>,
}

impl FormatArgs {
    fn overrides(self, raw_leaves: Option<bool>) -> FormatOverrides {
        FormatOverrides {
            cid_version: self.cid_version,
            hash: self.hash,
            raw_leaves,
        }
    }
}

#[derive(Subcommand)]
pub(super) enum FilesCommand {
    /// Make a directory.
    Mkdir {
        /// MFS path, e.g. /docs
        path: String,
        /// Make missing parent directories; an existing directory is no error.
        #[arg(long, short = 'p')]
        parents: bool,
        #[command(flatten)]
        format: FormatArgs,
    },
    /// Write a file's bytes (from FILE, or standard input) into an MFS file.
    Write {
        /// MFS path of the file
        path: String,
        /// Where the bytes come from [default: standard input]
        file: Option<PathBuf>,
        /// Byte offset to write at (past the end: the gap reads as zeros)
        #[arg(long, short = 'o', default_value_t = 0)]
        offset: u64,
        /// Make the file if it does not exist
        #[arg(long, short = 'e')]
        create: bool,
        /// Make missing parent directories
        #[arg(long, short = 'p')]
        parents: bool,
        /// Empty the file before writing
        #[arg(long, short = 't')]
        truncate: bool,
        /// Write at most this many bytes
        #[arg(long, short = 'n')]
        count: Option<u64>,
        /// Raw leaves [default: [import] raw_leaves; true with --cid-version 1]
        #[arg(long, value_parser = super::args::parse_bool_flag, num_args = 0..=1, default_missing_value = "true")]
        raw_leaves: Option<bool>,
        #[command(flatten)]
        format: FormatArgs,
    },
    /// Print a file's bytes.
    Read {
        /// MFS path of the file
        path: String,
        /// Byte offset to start at
        #[arg(long, short = 'o', default_value_t = 0)]
        offset: u64,
        /// Most bytes to print
        #[arg(long, short = 'n')]
        count: Option<u64>,
    },
    /// List a directory (or name a file).
    Ls {
        /// MFS path
        #[arg(default_value = "/")]
        path: String,
        /// Print each entry's CID and size too
        #[arg(short = 'l', long)]
        long: bool,
    },
    /// Show a path's CID, sizes and type.
    Stat {
        /// MFS path
        path: String,
        /// Print only the CID
        #[arg(long)]
        hash: bool,
        /// Print only the size
        #[arg(long)]
        size: bool,
    },
    /// Copy an MFS path or /ipfs/CID[/path] to an MFS path (into a
    /// directory when DEST ends in /).
    Cp {
        /// MFS path or /ipfs/CID[/path] (its blocks must be local)
        source: String,
        /// MFS path
        dest: String,
        /// Make missing parent directories
        #[arg(long, short = 'p')]
        parents: bool,
    },
    /// Move or rename (into DEST when it is a directory).
    Mv {
        /// MFS path
        source: String,
        /// MFS path
        dest: String,
    },
    /// Remove files, or directories with -r.
    Rm {
        /// MFS paths
        #[arg(required = true)]
        paths: Vec<String>,
        /// Remove directories and what they hold
        #[arg(long, short = 'r')]
        recursive: bool,
        /// Remove directories too, and a missing path is no error
        #[arg(long)]
        force: bool,
    },
    /// Print the CID of a path (every change is already kept).
    Flush {
        /// MFS path
        #[arg(default_value = "/")]
        path: String,
    },
    /// Name a node with another CID version or hash.
    Chcid {
        /// MFS path
        #[arg(default_value = "/")]
        path: String,
        #[command(flatten)]
        format: FormatArgs,
    },
    /// Publish a path's current CID under an IPNS name.
    Publish {
        /// MFS path
        #[arg(default_value = "/")]
        path: String,
        /// The key whose name is published
        #[arg(long, short = 'k', default_value = "self")]
        key: String,
        /// Publish without a daemon (the record is kept in the repo) or
        /// with no DHT peer to take it
        #[arg(long)]
        allow_offline: bool,
    },
}

/// Runs one `files` subcommand.
pub(super) fn run(api: &dyn NodeApi, out: &mut dyn Write, cmd: FilesCommand) -> Result<()> {
    match cmd {
        FilesCommand::Mkdir {
            path,
            parents,
            format,
        } => api.files_mkdir(&path, parents, format.overrides(None))?,
        FilesCommand::Write {
            path,
            file,
            offset,
            create,
            parents,
            truncate,
            count,
            raw_leaves,
            format,
        } => {
            let opts = WriteOptions {
                offset,
                create,
                truncate,
                parents,
                count,
                format: format.overrides(raw_leaves),
            };
            let input = match file {
                Some(f) if f.as_os_str() != "-" => WriteInput::File(f),
                _ => WriteInput::Stdin,
            };
            api.files_write(&path, input, &opts)?;
        }
        FilesCommand::Read {
            path,
            offset,
            count,
        } => api.files_read(&path, offset, count, out)?,
        FilesCommand::Ls { path, long } => {
            for e in api.files_ls(&path, long)? {
                print_entry(out, &e, long)?;
            }
        }
        FilesCommand::Stat { path, hash, size } => {
            let s = api.files_stat(&path)?;
            if hash {
                writeln!(out, "{}", s.hash)?;
            } else if size {
                writeln!(out, "{}", s.size)?;
            } else {
                writeln!(out, "{}", s.hash)?;
                writeln!(out, "Size: {}", s.size)?;
                writeln!(out, "CumulativeSize: {}", s.cumulative_size)?;
                writeln!(out, "ChildBlocks: {}", s.blocks)?;
                writeln!(out, "Type: {}", s.r#type)?;
            }
        }
        FilesCommand::Cp {
            source,
            dest,
            parents,
        } => api.files_cp(&source, &dest, parents)?,
        FilesCommand::Mv { source, dest } => api.files_mv(&source, &dest)?,
        FilesCommand::Rm {
            paths,
            recursive,
            force,
        } => api.files_rm(&paths, recursive, force)?,
        FilesCommand::Flush { path } => writeln!(out, "{}", api.files_flush(&path)?)?,
        FilesCommand::Chcid { path, format } => api.files_chcid(&path, format.overrides(None))?,
        FilesCommand::Publish {
            path,
            key,
            allow_offline,
        } => {
            let cid = api.files_stat(&path)?.hash;
            let opts = cairn::names::ipns::PublishOptions {
                key: Some(key),
                lifetime: None,
                ttl: None,
            };
            let v = api.name_publish(&format!("/ipfs/{cid}"), &opts, allow_offline)?;
            writeln!(out, "Published to {}: {}", v.name, v.value)?;
        }
    }
    Ok(())
}

/// An `ls` line as Kubo prints it: the name (a directory's with `/` when
/// long), then with `-l` its CID and size.
fn print_entry(out: &mut dyn Write, e: &FilesEntry, long: bool) -> Result<()> {
    if !long {
        writeln!(out, "{}", e.name)?;
        return Ok(());
    }
    let slash = if e.r#type == FilesEntry::DIRECTORY {
        "/"
    } else {
        ""
    };
    writeln!(out, "{}{slash}\t{}\t{}", e.name, e.hash, e.size)?;
    Ok(())
}

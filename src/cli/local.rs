//! Commands on the repo directly, when no daemon runs: each prints what
//! the daemon path prints.

use super::args::*;
use super::output::{print_repo_stat, print_verify};
use super::progress::{self, tree_size};
use anyhow::{bail, Context, Result};
use cairn::block::{parse_cid, CidFormat, HashAlg, DAG_PB, RAW};
use cairn::node::{AddOptions, Node};
use cairn::rpc::types;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

pub(super) fn id(node: &Node) -> Result<()> {
    // Offline, the configured addresses are where it will listen; one with
    // port 0 names no address until a daemon picks the port.
    let addrs: Vec<String> = node
        .config()
        .net
        .listen
        .iter()
        .filter(|a| {
            a.parse::<libp2p::Multiaddr>().is_ok_and(|m| {
                !m.iter().any(|p| {
                    matches!(
                        p,
                        libp2p::multiaddr::Protocol::Tcp(0) | libp2p::multiaddr::Protocol::Udp(0)
                    )
                })
            })
        })
        .cloned()
        .collect();
    let v = types::IdResponse::for_node(node, &addrs)?;
    println!("{}", serde_json::to_string_pretty(&v)?);
    Ok(())
}

pub(super) fn add(node: &Node, a: AddArgs) -> Result<()> {
    let opts = AddOptions {
        import: import_options(node.config(), &a)?,
        pin: a.pin,
        only_hash: a.only_hash,
        hidden: a.hidden,
        wrap: false,
    };
    let mut out = std::io::stdout().lock();
    let quiet = a.quiet;
    let show = !a.quieter;
    let use_stdin = a.paths.is_empty() || (a.paths.len() == 1 && a.paths[0] == Path::new("-"));
    if use_stdin {
        let bar = progress::bytes_bar(a.no_progress, None, "adding");
        let entry =
            node.add_reader(std::io::stdin().lock(), &opts, &mut |n| bar.set_position(n))?;
        bar.finish_and_clear();
        if a.quieter || quiet {
            writeln!(out, "{}", entry.cid)?;
        } else {
            writeln!(out, "added {} {}", entry.cid, entry.name)?;
        }
        return Ok(());
    }
    let total: u64 = a.paths.iter().map(|p| tree_size(p, a.hidden)).sum();
    let bar = progress::bytes_bar(a.no_progress, Some(total), "adding");
    let mut last = None;
    for path in &a.paths {
        let mut write_err = None;
        let root = node.add_path(
            path,
            a.recursive,
            &opts,
            &mut |e| {
                if !show {
                    return;
                }
                let r = if quiet {
                    writeln!(out, "{}", e.cid)
                } else {
                    writeln!(out, "added {} {}", e.cid, e.name)
                };
                if let Err(err) = r {
                    write_err.get_or_insert(err);
                }
            },
            &mut |n| bar.set_position(n),
        )?;
        if let Some(e) = write_err {
            return Err(e.into());
        }
        last = Some(root.cid);
    }
    bar.finish_and_clear();
    if a.quieter {
        if let Some(cid) = last {
            writeln!(out, "{cid}")?;
        }
    }
    Ok(())
}

pub(super) fn cat(node: &Node, path: &str, offset: u64, length: Option<u64>) -> Result<()> {
    let reader = node.cat(path, offset, length)?;
    // Straight to fd 1: std's stdout is line-buffered and would copy every
    // chunk; small chunks still coalesce here, whole blocks bypass the buffer.
    let _lock = std::io::stdout().lock();
    // SAFETY: fd 1 stays open for the process; ManuallyDrop never closes it.
    let raw = std::mem::ManuallyDrop::new(unsafe {
        <std::fs::File as std::os::fd::FromRawFd>::from_raw_fd(1)
    });
    let mut out = std::io::BufWriter::with_capacity(64 * 1024, &*raw);
    for chunk in reader {
        out.write_all(&chunk?)?;
    }
    out.flush()?;
    Ok(())
}

pub(super) fn get(node: &Node, path: &str, output: Option<PathBuf>) -> Result<()> {
    let out = match output {
        Some(o) => o,
        None => PathBuf::from(parse_cid(path)?.to_string()),
    };
    let size = node.file_size(path).unwrap_or(0);
    let bar = progress::bytes_bar(false, (size > 0).then_some(size), "getting");
    let stats = node.get(path, &out, &mut |n| bar.set_position(n))?;
    bar.finish_and_clear();
    eprintln!(
        "Saving file(s) to {} ({} files, {} directories, {} bytes)",
        out.display(),
        stats.files,
        stats.directories,
        stats.bytes
    );
    Ok(())
}

pub(super) fn pin(node: &Node, cmd: PinCommand) -> Result<()> {
    let mut out = std::io::stdout().lock();
    match cmd {
        PinCommand::Add {
            cids,
            recursive,
            replication,
        } => {
            if cids.is_empty() {
                bail!("pin add needs at least one CID");
            }
            if replication.is_some() && !recursive {
                bail!("--replication needs a recursive pin");
            }
            for c in cids {
                let cid = node.resolve(&c)?;
                node.pin_add(&cid, recursive)
                    .with_context(|| format!("pinning {cid}"))?;
                if let Some(n) = replication {
                    node.replicate_later(&cid, n)?;
                }
                writeln!(
                    out,
                    "pinned {cid} {}",
                    if recursive { "recursively" } else { "directly" }
                )?;
            }
        }
        PinCommand::Rm { cids } => {
            if cids.is_empty() {
                bail!("pin rm needs at least one CID");
            }
            for c in cids {
                let cid = node.resolve(&c)?;
                let replicated = node.replication_tombstone(&cid)?;
                match node.pin_rm(&cid) {
                    Ok(_) => {}
                    Err(_) if replicated => {}
                    Err(e) => return Err(e.into()),
                }
                writeln!(out, "unpinned {cid}")?;
            }
        }
        PinCommand::Status { .. } => {
            bail!("pin status needs a running daemon (it asks the holders)")
        }
        PinCommand::Ls { r#type, quiet } => {
            let kinds: Vec<&str> = match r#type.as_str() {
                "all" => vec!["recursive", "direct", "indirect"],
                k @ ("recursive" | "direct" | "indirect") => vec![k],
                other => bail!(
                    "unknown pin type {other:?} (expected all, recursive, direct or indirect)"
                ),
            };
            for p in node.pin_ls(&kinds)? {
                if quiet {
                    writeln!(out, "{}", p.cid)?;
                } else {
                    writeln!(out, "{} {}", p.cid, p.kind)?;
                }
            }
        }
    }
    Ok(())
}

pub(super) fn block(node: &Node, cmd: BlockCommand) -> Result<()> {
    let mut out = std::io::stdout().lock();
    match cmd {
        BlockCommand::Get { cid } => {
            let b = node.block_get(&parse_cid(&cid)?)?;
            out.write_all(b.data())?;
        }
        BlockCommand::Put {
            file,
            cid_codec,
            mhtype,
            pin,
        } => {
            let codec = match cid_codec.as_str() {
                "raw" => RAW,
                "dag-pb" => DAG_PB,
                other => bail!("unsupported codec {other:?} (expected raw or dag-pb)"),
            };
            let limit = cairn::block::MAX_BLOCK_BYTES as u64 + 1;
            let mut data = Vec::new();
            match file {
                Some(f) => std::fs::File::open(&f)
                    .with_context(|| format!("{}", f.display()))?
                    .take(limit)
                    .read_to_end(&mut data)?,
                None => std::io::stdin().lock().take(limit).read_to_end(&mut data)?,
            };
            let version = if codec == DAG_PB && mhtype == HashAlg::Sha2_256 {
                0
            } else {
                1
            };
            let cid = node.block_put(
                data,
                CidFormat {
                    version,
                    hash: mhtype,
                },
                codec,
                pin,
            )?;
            writeln!(out, "{cid}")?;
        }
        BlockCommand::Stat { cid } => {
            let cid = parse_cid(&cid)?;
            let size = node.block_stat(&cid)?;
            writeln!(out, "Key: {cid}\nSize: {size}")?;
        }
    }
    Ok(())
}

pub(super) fn dag(node: &Node, cmd: DagCommand) -> Result<()> {
    match cmd {
        DagCommand::Export { cid } => {
            let cid = node.resolve(&cid)?;
            let stdout = std::io::stdout();
            let mut out = std::io::BufWriter::with_capacity(1 << 20, stdout.lock());
            node.dag_export(&cid, &mut out)?;
            out.flush()?;
        }
        DagCommand::Import { files, pin_roots } => {
            if files.is_empty() {
                bail!("dag import needs at least one CAR file");
            }
            let mut out = std::io::stdout().lock();
            for f in files {
                let input = std::fs::File::open(&f).with_context(|| format!("{}", f.display()))?;
                let r = node
                    .dag_import(input, pin_roots)
                    .with_context(|| format!("importing {}", f.display()))?;
                for root in &r.roots {
                    if pin_roots {
                        writeln!(out, "Pinned root {root} success")?;
                    } else {
                        writeln!(out, "Root {root}")?;
                    }
                }
                writeln!(
                    out,
                    "Imported {} blocks ({} new bytes)",
                    r.blocks, r.new_bytes
                )?;
            }
        }
    }
    Ok(())
}

pub(super) fn repo_cmd(node: &Node, cmd: RepoCommand) -> Result<()> {
    let mut out = std::io::stdout().lock();
    match cmd {
        RepoCommand::Gc { quiet } => {
            let spinner = progress::spinner("collecting garbage");
            let r = node.gc()?;
            spinner.finish_and_clear();
            if !quiet {
                writeln!(
                    out,
                    "removed {} blocks ({} bytes); reclaimed {} bytes from {} segments",
                    r.removed_blocks, r.removed_bytes, r.reclaimed_bytes, r.compacted_segments
                )?;
            }
        }
        RepoCommand::Stat => {
            print_repo_stat(&mut out, &types::RepoStatResponse::from(&node.stat()?))?
        }
        RepoCommand::RebuildIndex => {
            let report = node.index_rebuilt().cloned().unwrap_or_default();
            writeln!(
                out,
                "rebuilt the index: {}",
                super::output::rebuilt(&report)
            )?;
        }
        RepoCommand::Verify => {
            let spinner = progress::spinner("verifying blocks");
            let r = node.verify(&mut |n| spinner.set_position(n))?;
            spinner.finish_and_clear();
            print_verify(&mut out, &types::VerifyResponse::from(&r))?;
        }
    }
    Ok(())
}

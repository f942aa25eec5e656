//! Commands through a running daemon's RPC API (it owns the repo while it
//! runs): each prints what the offline path prints.

use super::args::*;
use super::output::{print_bw, print_pin_status, print_repo_stat, print_verify};
use super::progress::{self, tree_size};
use anyhow::{bail, Context, Result};
use cairn::block::parse_cid;
use cairn::dag::hamt::SizeEstimate;
use cairn::rpc::types;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Runs a command through the daemon's RPC API; output matches the
/// offline path's.
pub(super) fn through_daemon(
    client: &cairn::rpc::client::Client,
    config: &cairn::node::Config,
    command: Command,
) -> Result<()> {
    let mut out = std::io::stdout().lock();
    match command {
        Command::Init | Command::Version => unreachable!("handled before"),
        Command::Id => {
            let v: types::IdResponse = client.call_json("id", &[])?;
            writeln!(out, "{}", serde_json::to_string_pretty(&v)?)?;
        }
        Command::Swarm(SwarmCommand::Peers) => {
            let v: types::SwarmPeers = client.call_json("swarm/peers", &[])?;
            for p in v.peers {
                writeln!(out, "{}/p2p/{}", p.addr, p.peer)?;
            }
        }
        Command::Swarm(SwarmCommand::Connect { addr }) => {
            let v: types::Strings = client.call_json("swarm/connect", &[("arg", &addr)])?;
            for line in v.strings {
                writeln!(out, "{line}")?;
            }
        }
        Command::Routing(RoutingCommand::Findprovs { cid, num_providers }) => {
            let n = num_providers.to_string();
            let mut found = Vec::new();
            client.call_lines(
                "routing/findprovs",
                &[("arg", &cid), ("num-providers", &n)],
                None,
                &mut |v: types::RoutingEvent| {
                    if v.r#type == types::RoutingEvent::PROVIDER {
                        found.extend(v.responses.into_iter().map(|r| r.id));
                    }
                    Ok(())
                },
            )?;
            for id in found {
                writeln!(out, "{id}")?;
            }
        }
        Command::Routing(RoutingCommand::Reprovide) => {
            let v: types::ReprovideResponse = client.call_json("routing/reprovide", &[])?;
            writeln!(out, "announced {} keys", v.keys)?;
        }
        Command::Stats(StatsCommand::Bw) => {
            let v: types::BandwidthStats = client.call_json("stats/bw", &[])?;
            print_bw(&mut out, &v)?;
        }
        Command::Bitswap(BitswapCommand::Stat) => {
            let v: types::BitswapStat = client.call_json("bitswap/stat", &[])?;
            writeln!(out, "bitswap status")?;
            writeln!(out, "\tblocks received: {}", v.blocks_received)?;
            writeln!(out, "\tblocks sent: {}", v.blocks_sent)?;
            writeln!(out, "\tdata received: {}", v.data_received)?;
            writeln!(out, "\tdata sent: {}", v.data_sent)?;
            writeln!(out, "\tfetches running: {}", v.active_sessions)?;
            writeln!(out, "\tpartners [{}]", v.peers.len())?;
        }
        Command::Shutdown => {
            client.call("shutdown", &[])?;
        }
        Command::Daemon { .. } => bail!("a daemon is already running on this repo"),
        Command::Add(a) => {
            drop(out);
            add_through(client, config, a)?;
        }
        Command::Cat {
            path,
            offset,
            length,
        } => {
            let offset = offset.to_string();
            let length = length.map(|l| l.to_string());
            let mut args = vec![("arg", path.as_str()), ("offset", offset.as_str())];
            if let Some(l) = &length {
                args.push(("length", l.as_str()));
            }
            drop(out);
            let bar = progress::bytes_bar(false, None, "fetching");
            let watch = progress::watch_peers(client.duplicate(), bar.clone(), &path);
            let mut stdout = std::io::stdout().lock();
            let result = client.call_to("cat", &args, &mut stdout, &mut |n| bar.set_position(n));
            watch.stop();
            bar.finish_and_clear();
            result?;
            stdout.flush()?;
        }
        Command::Get { path, output } => {
            drop(out);
            get_through(client, &path, output)?;
        }
        Command::Ls { path } => {
            let v: types::LsResponse = client.call_json("ls", &[("arg", &path)])?;
            for obj in v.objects {
                for l in obj.links {
                    if l.r#type == types::LsLink::DIRECTORY {
                        writeln!(out, "{} - {}/", l.hash, l.name)?;
                    } else {
                        writeln!(out, "{} {} {}", l.hash, l.size, l.name)?;
                    }
                }
            }
        }
        Command::Pin(PinCommand::Add {
            cids,
            recursive,
            replication,
        }) => {
            if cids.is_empty() {
                bail!("pin add needs at least one CID");
            }
            let r = recursive.to_string();
            let factor = replication.map(|n| n.to_string());
            for c in cids {
                let bar = progress::spinner("fetching blocks");
                let watch = progress::watch_peers(client.duplicate(), bar.clone(), &c);
                let mut pinned = Vec::new();
                let mut args = vec![
                    ("arg", c.as_str()),
                    ("recursive", r.as_str()),
                    ("progress", "true"),
                ];
                if let Some(f) = &factor {
                    args.push(("replication", f.as_str()));
                }
                let result = client.call_lines("pin/add", &args, None, &mut |v| {
                    match v {
                        types::PinAddEvent::Progress(p) => bar.set_position(p.progress),
                        types::PinAddEvent::Done(p) => pinned.extend(p.pins),
                    }
                    Ok(())
                });
                watch.stop();
                bar.finish_and_clear();
                result.with_context(|| format!("pinning {c}"))?;
                for cid in pinned {
                    writeln!(
                        out,
                        "pinned {cid} {}",
                        if recursive { "recursively" } else { "directly" }
                    )?;
                }
            }
        }
        Command::Pin(PinCommand::Rm { cids }) => {
            if cids.is_empty() {
                bail!("pin rm needs at least one CID");
            }
            for c in cids {
                let v: types::Pins = client.call_json("pin/rm", &[("arg", &c)])?;
                for p in v.pins {
                    writeln!(out, "unpinned {p}")?;
                }
            }
        }
        Command::Pin(PinCommand::Status { cid, json }) => {
            let v: types::PinStatus = client.call_json("pin/status", &[("arg", &cid)])?;
            if json {
                writeln!(out, "{}", serde_json::to_string_pretty(&v)?)?;
            } else {
                print_pin_status(&mut out, &v)?;
            }
        }
        Command::Pin(PinCommand::Ls { r#type, quiet }) => {
            let v: types::PinLsResponse = client.call_json("pin/ls", &[("type", &r#type)])?;
            for (cid, kind) in v.order {
                if quiet {
                    writeln!(out, "{cid}")?;
                } else {
                    writeln!(out, "{cid} {kind}")?;
                }
            }
        }
        Command::Block(BlockCommand::Get { cid }) => {
            client.call_to("block/get", &[("arg", &cid)], &mut out, &mut |_| {})?;
        }
        Command::Block(BlockCommand::Put {
            file,
            cid_codec,
            mhtype,
            pin,
        }) => {
            let part = match file {
                Some(f) => cairn::rpc::client::UploadPart::File {
                    name: "block".into(),
                    path: f,
                },
                None => cairn::rpc::client::UploadPart::Stdin {
                    name: "block".into(),
                },
            };
            let mh = mhtype.to_string();
            let pin = pin.to_string();
            let mut key = String::new();
            client.call_lines(
                "block/put",
                &[("cid-codec", &cid_codec), ("mhtype", &mh), ("pin", &pin)],
                Some(vec![part]),
                &mut |v: types::BlockStat| {
                    key = v.key;
                    Ok(())
                },
            )?;
            writeln!(out, "{key}")?;
        }
        Command::Block(BlockCommand::Stat { cid }) => {
            let v: types::BlockStat = client.call_json("block/stat", &[("arg", &cid)])?;
            writeln!(out, "Key: {}\nSize: {}", v.key, v.size)?;
        }
        Command::Dag(DagCommand::Export { cid }) => {
            let mut w = std::io::BufWriter::with_capacity(1 << 20, out);
            client.call_to("dag/export", &[("arg", &cid)], &mut w, &mut |_| {})?;
            w.flush()?;
        }
        Command::Dag(DagCommand::Import { files, pin_roots }) => {
            if files.is_empty() {
                bail!("dag import needs at least one CAR file");
            }
            let p = pin_roots.to_string();
            for f in files {
                if !f.is_file() {
                    bail!("{}: not a readable file", f.display());
                }
                let part = cairn::rpc::client::UploadPart::File {
                    name: "car".into(),
                    path: f.clone(),
                };
                let mut lines = Vec::new();
                client
                    .call_lines(
                        "dag/import",
                        &[("pin-roots", &p)],
                        Some(vec![part]),
                        &mut |v| {
                            lines.push(v);
                            Ok(())
                        },
                    )
                    .with_context(|| format!("importing {}", f.display()))?;
                for v in lines {
                    match v {
                        types::DagImportEvent::Root(r) if pin_roots => {
                            writeln!(out, "Pinned root {} success", r.root.cid.cid)?
                        }
                        types::DagImportEvent::Root(r) => writeln!(out, "Root {}", r.root.cid.cid)?,
                        types::DagImportEvent::Stats(s) => writeln!(
                            out,
                            "Imported {} blocks ({} new bytes)",
                            s.stats.block_count, s.stats.block_bytes_count
                        )?,
                    }
                }
            }
        }
        Command::Repo(RepoCommand::Gc { quiet }) => {
            let spinner = progress::spinner("collecting garbage");
            let v = client.call_json::<types::GcResponse>("repo/gc", &[]);
            spinner.finish_and_clear();
            let v = v?;
            if !quiet {
                writeln!(
                    out,
                    "removed {} blocks ({} bytes); reclaimed {} bytes from {} segments",
                    v.removed_blocks, v.removed_bytes, v.reclaimed_bytes, v.compacted_segments
                )?;
            }
        }
        Command::Repo(RepoCommand::Stat) => {
            let stat: types::RepoStatResponse = client.call_json("repo/stat", &[])?;
            print_repo_stat(&mut out, &stat)?;
        }
        Command::Repo(RepoCommand::RebuildIndex) => {
            bail!("the daemon has the repo open: stop it before rebuilding the index")
        }
        Command::Repo(RepoCommand::Verify) => {
            let spinner = progress::spinner("verifying blocks");
            let report = client.call_json::<types::VerifyResponse>("repo/verify", &[]);
            spinner.finish_and_clear();
            let report = report?;
            print_verify(&mut out, &report)?;
        }
    }
    Ok(())
}

/// The parts of an upload of `paths`, in the order an offline add walks
/// them (sorted names, directories before their contents), with the same
/// checks.
fn plan_upload(
    paths: &[PathBuf],
    recursive: bool,
    hidden: bool,
) -> Result<Vec<cairn::rpc::client::UploadPart>> {
    use cairn::rpc::client::UploadPart;
    fn walk(path: &Path, name: String, hidden: bool, parts: &mut Vec<UploadPart>) -> Result<()> {
        let meta =
            std::fs::symlink_metadata(path).with_context(|| format!("{}", path.display()))?;
        let ft = meta.file_type();
        if ft.is_symlink() {
            let target = std::fs::read_link(path).with_context(|| format!("{}", path.display()))?;
            let Some(target) = target.to_str() else {
                bail!("{}: symlink target is not valid UTF-8", path.display());
            };
            parts.push(UploadPart::Symlink {
                name,
                target: target.to_string(),
            });
        } else if ft.is_dir() {
            let mut names = Vec::new();
            for entry in std::fs::read_dir(path).with_context(|| format!("{}", path.display()))? {
                let entry = entry.with_context(|| format!("{}", path.display()))?;
                let Some(child) = entry.file_name().to_str().map(String::from) else {
                    bail!(
                        "{}: file name is not valid UTF-8 (UnixFS names are UTF-8)",
                        entry.path().display()
                    );
                };
                if !hidden && child.starts_with('.') {
                    continue;
                }
                names.push(child);
            }
            names.sort();
            parts.push(UploadPart::Directory { name: name.clone() });
            for child in names {
                walk(&path.join(&child), format!("{name}/{child}"), hidden, parts)?;
            }
        } else if ft.is_file() {
            parts.push(UploadPart::File {
                name,
                path: path.to_path_buf(),
            });
        } else {
            bail!(
                "{}: not a regular file, directory or symlink",
                path.display()
            );
        }
        Ok(())
    }
    let mut parts = Vec::new();
    for path in paths {
        let meta =
            std::fs::symlink_metadata(path).with_context(|| format!("{}", path.display()))?;
        if meta.is_dir() && !recursive {
            bail!("{}: is a directory (use -r)", path.display());
        }
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| path.display().to_string());
        walk(path, name, hidden, &mut parts)?;
    }
    Ok(parts)
}

/// `add` through the daemon: uploads the files, prints what it answers.
fn add_through(
    client: &cairn::rpc::client::Client,
    config: &cairn::node::Config,
    a: AddArgs,
) -> Result<()> {
    // Options resolved here exactly as offline (the repo's config.toml,
    // then flags), then sent explicitly: the same CIDs either way.
    let opts = import_options(config, &a)?;
    let mut args: Vec<(&str, String)> = vec![
        ("cid-version", opts.format.version.to_string()),
        ("hash", opts.format.hash.to_string()),
        ("chunker", opts.chunker.to_string()),
        ("raw-leaves", opts.raw_leaves.to_string()),
        ("max-links", opts.max_links.to_string()),
        ("layout", opts.layout.to_string()),
        ("shard-threshold", opts.sharding.threshold_bytes.to_string()),
        (
            "shard-estimate",
            match opts.sharding.estimate {
                SizeEstimate::Links => "links",
                SizeEstimate::Block => "block",
            }
            .to_string(),
        ),
    ];
    args.push(("pin", a.pin.to_string()));
    args.push(("only-hash", a.only_hash.to_string()));
    args.push(("progress", "true".into()));
    let use_stdin = a.paths.is_empty() || (a.paths.len() == 1 && a.paths[0] == Path::new("-"));
    let (parts, total) = if use_stdin {
        (
            vec![cairn::rpc::client::UploadPart::Stdin {
                name: "stdin".into(),
            }],
            None,
        )
    } else {
        let total: u64 = a.paths.iter().map(|p| tree_size(p, a.hidden)).sum();
        (plan_upload(&a.paths, a.recursive, a.hidden)?, Some(total))
    };
    let bar = progress::bytes_bar(a.no_progress, total, "adding");
    let mut out = std::io::stdout().lock();
    let mut last = None;
    let arg_refs: Vec<(&str, &str)> = args.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let show = !a.quieter;
    // Progress lines count each file's bytes; the bar shows the sum.
    let (mut done_bytes, mut current, mut current_bytes) = (0u64, String::new(), 0u64);
    client.call_lines("add", &arg_refs, Some(parts), &mut |v| {
        let added = match v {
            types::AddEvent::Progress(p) => {
                if p.name != current {
                    done_bytes += current_bytes;
                    current = p.name;
                }
                current_bytes = p.bytes;
                bar.set_position(done_bytes + p.bytes);
                return Ok(());
            }
            types::AddEvent::Added(a) => a,
        };
        let (hash, name) = (added.hash.as_str(), added.name.as_str());
        let name = if use_stdin { hash } else { name };
        if !name.contains('/') {
            last = Some(hash.to_string());
        }
        if show && !use_stdin {
            let r = if a.quiet {
                writeln!(out, "{hash}")
            } else {
                writeln!(out, "added {hash} {name}")
            };
            r.map_err(cairn::rpc::client::ClientError::Output)?;
        }
        Ok(())
    })?;
    bar.finish_and_clear();
    if let Some(cid) = last {
        if use_stdin {
            if a.quieter || a.quiet {
                writeln!(out, "{cid}")?;
            } else {
                writeln!(out, "added {cid} {cid}")?;
            }
        } else if a.quieter {
            writeln!(out, "{cid}")?;
        }
    }
    Ok(())
}

/// `get` through the daemon: a tar stream unpacked into a hidden sibling of
/// the output, renamed into place when complete.
fn get_through(
    client: &cairn::rpc::client::Client,
    path: &str,
    output: Option<PathBuf>,
) -> Result<()> {
    let out = match output {
        Some(o) => o,
        None => PathBuf::from(parse_cid(path)?.to_string()),
    };
    if out.symlink_metadata().is_ok() {
        bail!("{}: already exists; refusing to overwrite", out.display());
    }
    let name = out
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("out")
        .to_string();
    let tmp = out.with_file_name(format!(".{name}.cairn-partial-{}", std::process::id()));
    std::fs::create_dir(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
    let bar = progress::bytes_bar(false, None, "getting");
    let watch = progress::watch_peers(client.duplicate(), bar.clone(), path);
    let result = (|| -> Result<(u64, u64, u64)> {
        let reader = client.call_reader("get", &[("arg", path)])?;
        let counting = progress::CountingRead::new(reader, |n| bar.set_position(n));
        let mut archive = tar::Archive::new(counting);
        archive.set_preserve_permissions(false);
        archive.set_overwrite(false);
        archive.set_preserve_mtime(false);
        let (mut files, mut dirs, mut bytes) = (0u64, 0u64, 0u64);
        let mut top: Option<PathBuf> = None;
        for entry in archive.entries()? {
            let mut entry = entry?;
            let entry_path = entry.path()?.into_owned();
            let first = entry_path
                .components()
                .next()
                .map(|c| PathBuf::from(c.as_os_str()));
            if top.is_none() {
                top = first.clone();
            } else if first != top {
                bail!("the daemon sent a tar with more than one top entry");
            }
            match entry.header().entry_type() {
                tar::EntryType::Directory => dirs += 1,
                tar::EntryType::Regular => {
                    files += 1;
                    bytes += entry.header().size()?;
                }
                _ => {}
            }
            // unpack_in refuses absolute paths, `..` and writes through
            // symlinks outside the target.
            if !entry.unpack_in(&tmp)? {
                bail!("refusing unsafe entry {}", entry_path.display());
            }
        }
        let top = top.context("the daemon sent an empty tar")?;
        std::fs::rename(tmp.join(&top), &out)
            .with_context(|| format!("moving into {}", out.display()))?;
        Ok((files, dirs, bytes))
    })();
    watch.stop();
    bar.finish_and_clear();
    let _ = std::fs::remove_dir_all(&tmp);
    let (files, dirs, bytes) = result?;
    eprintln!(
        "Saving file(s) to {} ({files} files, {dirs} directories, {bytes} bytes)",
        out.display()
    );
    Ok(())
}

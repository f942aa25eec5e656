//! Every command but `init`, `version` and `daemon`, written once against
//! [`NodeApi`]: the same code runs on the repo directly or through a
//! running daemon, so both print the same.

use super::args::*;
use super::output::{print_bw, print_pin_status, print_repo_stat, print_verify, rebuilt};
use super::progress::{self, tree_size};
use anyhow::{bail, Context, Result};
use cairn::block::parse_cid;
use cairn::node::{AddOptions, Config};
use cairn::rpc::api::{AddSource, BlockInput, DagPutArgs, NodeApi};
use cairn::rpc::types;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Runs `command` on `api`; `config` is the repo's (for `add`'s defaults).
pub(super) fn run(api: &dyn NodeApi, config: &Config, command: Command) -> Result<()> {
    let mut out = std::io::stdout().lock();
    match command {
        Command::Init { .. }
        | Command::Version
        | Command::Daemon { .. }
        | Command::S3(_)
        | Command::Pubsub(_)
        | Command::Log(_) => {
            unreachable!("handled before")
        }
        Command::Id => writeln!(out, "{}", serde_json::to_string_pretty(&api.id()?)?)?,
        Command::Swarm(SwarmCommand::Peers) => {
            for p in api.swarm_peers()? {
                writeln!(out, "{}/p2p/{}", p.addr, p.peer)?;
            }
        }
        Command::Swarm(SwarmCommand::Connect { addr }) => {
            for line in api.swarm_connect(&addr)? {
                writeln!(out, "{line}")?;
            }
        }
        Command::Routing(RoutingCommand::Findprovs { cid, num_providers }) => {
            for id in api.find_providers(&cid, num_providers)? {
                writeln!(out, "{id}")?;
            }
        }
        Command::Routing(RoutingCommand::Reprovide) => {
            writeln!(out, "announced {} keys", api.reprovide()?)?
        }
        Command::Stats(StatsCommand::Bw) => print_bw(&mut out, &api.stats_bw()?)?,
        Command::Stats(StatsCommand::Dht) => {
            writeln!(out, "{}", serde_json::to_string_pretty(&api.stats_dht()?)?)?
        }
        Command::Bitswap(BitswapCommand::Stat) => {
            let v = api.bitswap_stat()?;
            writeln!(out, "bitswap status")?;
            writeln!(out, "\tblocks received: {}", v.blocks_received)?;
            writeln!(out, "\tblocks sent: {}", v.blocks_sent)?;
            writeln!(out, "\tdata received: {}", v.data_received)?;
            writeln!(out, "\tdata sent: {}", v.data_sent)?;
            writeln!(out, "\tfetches running: {}", v.active_sessions)?;
            writeln!(out, "\tpartners [{}]", v.peers.len())?;
        }
        Command::Shutdown => api.shutdown()?,
        Command::Add(a) => {
            drop(out);
            add(api, config, a)?;
        }
        Command::Cat {
            path,
            offset,
            length,
        } => {
            drop(out);
            let bar = progress::bytes_bar(false, None, "fetching");
            let watch = watch(api, &bar, &path);
            let result = to_stdout(64 * 1024, &mut |w| {
                Ok(api.cat(&path, offset, length, w, &mut |n| bar.set_position(n))?)
            });
            watch.stop();
            bar.finish_and_clear();
            result?;
        }
        Command::Get { path, output } => {
            drop(out);
            get(api, &path, output)?;
        }
        Command::Ls { path } => {
            for l in api.ls(&path)? {
                // As Kubo's `ipfs ls`: directories show `-` for a size.
                if l.r#type == types::LsLink::DIRECTORY {
                    writeln!(out, "{} - {}/", l.hash, l.name)?;
                } else {
                    writeln!(out, "{} {} {}", l.hash, l.size, l.name)?;
                }
            }
        }
        Command::Pin(cmd) => pin(api, &mut out, cmd)?,
        Command::Block(BlockCommand::Get { cid }) => {
            drop(out);
            to_stdout(64 * 1024, &mut |w| Ok(api.block_get(&cid, w)?))?;
        }
        Command::Block(BlockCommand::Put {
            file,
            cid_codec,
            mhtype,
            pin,
        }) => {
            let input = file.map_or(BlockInput::Stdin, BlockInput::File);
            let stat = api.block_put(input, &cid_codec, mhtype, pin)?;
            writeln!(out, "{}", stat.key)?;
        }
        Command::Block(BlockCommand::Stat { cid }) => {
            let v = api.block_stat(&cid)?;
            writeln!(out, "Key: {}\nSize: {}", v.key, v.size)?;
        }
        Command::Dag(cmd) => {
            drop(out);
            dag(api, cmd)?;
        }
        Command::Resolve { path, recursive } => {
            writeln!(out, "{}", api.resolve_path(&path, recursive)?.path)?
        }
        Command::Object(ObjectCommand::Stat { path }) => {
            let v = api.object_stat(&path)?;
            writeln!(out, "NumLinks:       {}", v.num_links)?;
            writeln!(out, "BlockSize:      {}", v.block_size)?;
            writeln!(out, "LinksSize:      {}", v.links_size)?;
            writeln!(out, "DataSize:       {}", v.data_size)?;
            writeln!(out, "CumulativeSize: {}", v.cumulative_size)?;
        }
        Command::Config(ConfigCommand::Show) => writeln!(
            out,
            "{}",
            serde_json::to_string_pretty(&api.config_show()?)?
        )?,
        Command::Key(cmd) => key(api, &mut out, cmd)?,
        Command::Name(cmd) => name(api, &mut out, cmd)?,
        Command::Files(cmd) => super::files::run(api, &mut out, cmd)?,
        Command::Repo(RepoCommand::Gc { quiet }) => {
            let spinner = progress::spinner("collecting garbage");
            let v = api.repo_gc();
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
        Command::Repo(RepoCommand::Stat) => print_repo_stat(&mut out, &api.repo_stat()?)?,
        Command::Repo(RepoCommand::RebuildIndex) => {
            let report = api.repo_rebuild_index()?;
            writeln!(out, "rebuilt the index: {}", rebuilt(&report))?;
        }
        Command::Repo(RepoCommand::Verify) => {
            let spinner = progress::spinner("verifying blocks");
            let report = api.repo_verify(&mut |n| spinner.set_position(n));
            spinner.finish_and_clear();
            print_verify(&mut out, &report?)?;
        }
    }
    Ok(())
}

/// `cairn dag ...`: IPLD blocks and CAR files.
fn dag(api: &dyn NodeApi, cmd: DagCommand) -> Result<()> {
    let mut out = std::io::stdout().lock();
    match cmd {
        DagCommand::Export { cid } => {
            drop(out);
            to_stdout(1 << 20, &mut |w| Ok(api.dag_export(&cid, w)?))?;
        }
        DagCommand::Import { files, pin_roots } => {
            if files.is_empty() {
                bail!("dag import needs at least one CAR file");
            }
            for f in files {
                let events = api
                    .dag_import(&f, pin_roots)
                    .with_context(|| format!("importing {}", f.display()))?;
                for v in events {
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
        DagCommand::Get { path, output_codec } => {
            drop(out);
            to_stdout(64 * 1024, &mut |w| {
                Ok(api.dag_get(&path, &output_codec, w)?)
            })?;
        }
        DagCommand::Put {
            file,
            store_codec,
            input_codec,
            hash,
            pin,
        } => {
            let input = file.map_or(BlockInput::Stdin, BlockInput::File);
            let args = DagPutArgs {
                input_codec,
                store_codec,
                hash,
                pin,
            };
            writeln!(out, "{}", api.dag_put(input, &args)?.cid.cid)?;
        }
        DagCommand::Resolve { path } => {
            let r = api.dag_resolve(&path)?;
            if r.rem_path.is_empty() {
                writeln!(out, "{}", r.cid.cid)?;
            } else {
                writeln!(out, "{}/{}", r.cid.cid, r.rem_path)?;
            }
        }
    }
    Ok(())
}

/// Runs `write` on standard output with a buffer of `capacity` bytes,
/// straight to fd 1: std's stdout is line-buffered and would copy every
/// chunk; small chunks still coalesce here, whole blocks bypass the buffer.
fn to_stdout(capacity: usize, write: &mut dyn FnMut(&mut dyn Write) -> Result<()>) -> Result<()> {
    let _lock = std::io::stdout().lock();
    // SAFETY: fd 1 stays open for the process; ManuallyDrop never closes it.
    let raw = std::mem::ManuallyDrop::new(unsafe {
        <std::fs::File as std::os::fd::FromRawFd>::from_raw_fd(1)
    });
    let mut out = std::io::BufWriter::with_capacity(capacity, &*raw);
    write(&mut out)?;
    out.flush()?;
    Ok(())
}

/// While a daemon fetches `path`, shows its peers in `bar`.
fn watch(api: &dyn NodeApi, bar: &indicatif::ProgressBar, path: &str) -> progress::PeerWatch {
    progress::watch_peers(api.client().map(|c| c.duplicate()), bar.clone(), path)
}

fn add(api: &dyn NodeApi, config: &Config, a: AddArgs) -> Result<()> {
    let opts = AddOptions {
        import: import_options(config, &a)?,
        pin: a.pin,
        only_hash: a.only_hash,
        hidden: a.hidden,
        wrap: false,
    };
    let use_stdin = a.paths.is_empty() || (a.paths.len() == 1 && a.paths[0] == Path::new("-"));
    let (input, total) = if use_stdin {
        (AddSource::Stdin, None)
    } else {
        let total: u64 = a.paths.iter().map(|p| tree_size(p, a.hidden)).sum();
        let paths = AddSource::Paths {
            paths: &a.paths,
            recursive: a.recursive,
        };
        (paths, Some(total))
    };
    let bar = progress::bytes_bar(a.no_progress, total, "adding");
    let mut out = std::io::stdout().lock();
    let mut write_err = None;
    let show = !a.quieter;
    let last = api.add(
        input,
        &opts,
        &mut |added| {
            if !show {
                return;
            }
            let r = if a.quiet {
                writeln!(out, "{}", added.hash)
            } else {
                writeln!(out, "added {} {}", added.hash, added.name)
            };
            if let Err(e) = r {
                write_err.get_or_insert(e);
            }
        },
        &mut |n| bar.set_position(n),
    )?;
    bar.finish_and_clear();
    if let Some(e) = write_err {
        return Err(e.into());
    }
    if let (true, Some(cid)) = (a.quieter, last) {
        writeln!(out, "{cid}")?;
    }
    Ok(())
}

fn get(api: &dyn NodeApi, path: &str, output: Option<PathBuf>) -> Result<()> {
    let out = match output {
        Some(o) => o,
        None => PathBuf::from(parse_cid(path)?.to_string()),
    };
    let bar = progress::bytes_bar(false, None, "getting");
    let watch = watch(api, &bar, path);
    let stats = api.get(path, &out, &mut |n| bar.set_position(n));
    watch.stop();
    bar.finish_and_clear();
    let stats = stats?;
    eprintln!(
        "Saving file(s) to {} ({} files, {} directories, {} bytes)",
        out.display(),
        stats.files,
        stats.directories,
        stats.bytes
    );
    Ok(())
}

fn pin(api: &dyn NodeApi, out: &mut dyn Write, cmd: PinCommand) -> Result<()> {
    match cmd {
        PinCommand::Add {
            cids,
            recursive,
            replication,
        } => {
            if cids.is_empty() {
                bail!("pin add needs at least one CID");
            }
            for c in cids {
                let bar = progress::spinner("fetching blocks");
                let watch = watch(api, &bar, &c);
                let pinned = api.pin_add(&c, recursive, replication, &mut |n| bar.set_position(n));
                watch.stop();
                bar.finish_and_clear();
                let how = if recursive { "recursively" } else { "directly" };
                for cid in pinned.with_context(|| format!("pinning {c}"))? {
                    writeln!(out, "pinned {cid} {how}")?;
                }
            }
        }
        PinCommand::Rm { cids } => {
            if cids.is_empty() {
                bail!("pin rm needs at least one CID");
            }
            for c in cids {
                for p in api.pin_rm(&c)? {
                    writeln!(out, "unpinned {p}")?;
                }
            }
        }
        PinCommand::Status { cid, json } => {
            let v = api.pin_status(&cid)?;
            if json {
                writeln!(out, "{}", serde_json::to_string_pretty(&v)?)?;
            } else {
                print_pin_status(out, &v)?;
            }
        }
        PinCommand::Ls { r#type, quiet } => {
            for (cid, kind) in api.pin_ls(&r#type)? {
                if quiet {
                    writeln!(out, "{cid}")?;
                } else {
                    writeln!(out, "{cid} {kind}")?;
                }
            }
        }
    }
    Ok(())
}

fn name(api: &dyn NodeApi, out: &mut dyn Write, cmd: NameCommand) -> Result<()> {
    match cmd {
        NameCommand::Publish {
            path,
            key,
            lifetime,
            ttl,
            allow_offline,
        } => {
            let opts = cairn::names::ipns::PublishOptions {
                key: Some(key),
                lifetime,
                ttl,
            };
            let v = api.name_publish(&path, &opts, allow_offline)?;
            writeln!(out, "Published to {}: {}", v.name, v.value)?;
        }
        NameCommand::Resolve {
            name,
            recursive,
            nocache,
        } => {
            let opts = cairn::names::ipns::ResolveOptions { recursive, nocache };
            writeln!(out, "{}", api.name_resolve(&name, opts)?.path)?;
        }
    }
    Ok(())
}

fn key(api: &dyn NodeApi, out: &mut dyn Write, cmd: KeyCommand) -> Result<()> {
    match cmd {
        KeyCommand::Gen { name, r#type } => writeln!(out, "{}", api.key_gen(&name, &r#type)?.id)?,
        KeyCommand::List { long } => {
            for k in api.key_list()? {
                if long {
                    writeln!(out, "{} {}", k.id, k.name)?;
                } else {
                    writeln!(out, "{}", k.name)?;
                }
            }
        }
        KeyCommand::Rm { names } => {
            if names.is_empty() {
                bail!("key rm needs at least one key name");
            }
            for name in names {
                writeln!(out, "{}", api.key_rm(&name)?.name)?;
            }
        }
        KeyCommand::Rename { old, new, force } => {
            let r = api.key_rename(&old, &new, force)?;
            let replaced = if r.overwrite {
                " (replacing the key that had that name)"
            } else {
                ""
            };
            writeln!(out, "Key {} renamed to {}{replaced}", r.id, r.now)?;
        }
        KeyCommand::Export {
            name,
            output,
            format,
        } => {
            let path = output.unwrap_or_else(|| PathBuf::from(format!("{name}.key")));
            let bytes = api.key_export(&name, format)?;
            write_private_new(&path, &bytes)?;
        }
        KeyCommand::Import { name, file, format } => {
            writeln!(out, "{}", api.key_import(&name, &file, format)?.id)?
        }
    }
    Ok(())
}

/// Writes a new file only its owner can read (an exported private key);
/// an existing file is never replaced.
fn write_private_new(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| {
            format!(
                "{}: cannot create (it is never overwritten)",
                path.display()
            )
        })?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .with_context(|| format!("writing {}", path.display()))
}

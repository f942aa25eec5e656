//! Command-line interface: flag parsing and output formatting only; every
//! operation is a call into `cairn::node`. Command and flag names follow
//! Kubo's `ipfs` where Kubo has the same command.

mod progress;

use anyhow::{anyhow, bail, Context, Result};
use cairn::block::{parse_cid, CidFormat, HashAlg, DAG_PB, RAW};
use cairn::daemon::{Daemon, DaemonOptions};
use cairn::dag::builder::{ImportOptions, Layout};
use cairn::dag::chunker::ChunkerSpec;
use cairn::dag::hamt::{Sharding, SizeEstimate};
use cairn::node::{repo, AddOptions, Node};
use cairn::rpc::types;
use clap::{Args, Parser, Subcommand};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

#[derive(Parser)]
#[command(
    name = "cairn",
    version,
    about = "Peer-to-peer, content-addressed storage (IPFS-compatible)"
)]
struct Cli {
    /// Repository directory [default: $CAIRN_REPO, else the platform data dir]
    #[arg(long, global = true, value_name = "PATH")]
    repo: Option<PathBuf>,
    /// Log level on stderr: error, warn, info, debug, trace, or a filter
    /// such as `cairn=debug,libp2p=info` [default: $RUST_LOG, else warn]
    #[arg(long, global = true, value_name = "FILTER")]
    log_level: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Create the repository (config, key, store); done implicitly on first use.
    Init,
    /// Add files or directories; prints `added <cid> <name>` per entry.
    Add(AddArgs),
    /// Print a file's bytes (or a range of them).
    Cat {
        /// CID or /ipfs/CID/path
        path: String,
        /// Byte offset to start at
        #[arg(long, short = 'o', default_value_t = 0)]
        offset: u64,
        /// Maximum number of bytes to print
        #[arg(long, short = 'l')]
        length: Option<u64>,
    },
    /// Write a file or directory tree to disk.
    Get {
        /// CID or /ipfs/CID/path
        path: String,
        /// Where to write it [default: the CID]
        #[arg(long, short = 'o')]
        output: Option<PathBuf>,
    },
    /// List a directory's entries.
    Ls {
        /// CID or /ipfs/CID/path
        path: String,
    },
    /// Pin and unpin content so GC keeps it.
    #[command(subcommand)]
    Pin(PinCommand),
    /// Raw blocks.
    #[command(subcommand)]
    Block(BlockCommand),
    /// DAG import and export as CAR files.
    #[command(subcommand)]
    Dag(DagCommand),
    /// Repository maintenance.
    #[command(subcommand)]
    Repo(RepoCommand),
    /// Print the version.
    Version,
    /// Run the node: libp2p swarm and Bitswap, until SIGINT or SIGTERM.
    Daemon {
        /// Listen multiaddrs (`--listen A B` or `--listen A --listen B`) [default: [net] listen in config.toml]
        #[arg(long, num_args = 1.., value_name = "MULTIADDR")]
        listen: Vec<String>,
        /// RPC API address [default: [api] listen in config.toml, 127.0.0.1:5001]
        #[arg(long)]
        api: Option<String>,
        /// Peers to connect to at start, /ip4/../tcp/../p2p/ID (several after one flag, or the flag repeated), besides [net] bootstrap in config.toml
        #[arg(long, num_args = 1.., value_name = "MULTIADDR")]
        bootstrap: Vec<String>,
        /// Gateway address [default: [gateway] listen in config.toml, 127.0.0.1:8080; "off" for none]
        #[arg(long)]
        gateway: Option<String>,
    },
    /// Show the node's identity as Kubo's `ipfs id` JSON.
    Id,
    /// Connections to other peers (needs a running daemon).
    #[command(subcommand)]
    Swarm(SwarmCommand),
    /// Content routing on the DHT (needs a running daemon).
    #[command(subcommand)]
    Routing(RoutingCommand),
    /// Traffic figures (needs a running daemon).
    #[command(subcommand)]
    Stats(StatsCommand),
    /// Bitswap figures (needs a running daemon).
    #[command(subcommand)]
    Bitswap(BitswapCommand),
    /// Stop the running daemon.
    Shutdown,
}

#[derive(Subcommand)]
enum BitswapCommand {
    /// Blocks and bytes received and sent, fetches running, partners (as
    /// `ipfs bitswap stat`).
    Stat,
}

#[derive(Subcommand)]
enum StatsCommand {
    /// Bytes in and out through the transport, totals and current rates.
    Bw,
}

#[derive(Subcommand)]
enum SwarmCommand {
    /// List connected peers: `<addr>/p2p/<peer>`.
    Peers,
    /// Connect to a peer: /ip4/A/tcp/P/p2p/ID.
    Connect { addr: String },
}

#[derive(Subcommand)]
enum RoutingCommand {
    /// Announce every key of the provide strategy on the DHT now.
    Reprovide,
    /// Find peers that provide a CID.
    Findprovs {
        cid: String,
        /// Most providers to find.
        #[arg(long, short = 'n', default_value_t = 20)]
        num_providers: usize,
    },
}

fn parse_bool_flag(s: &str) -> Result<bool, String> {
    match s {
        "true" | "1" | "yes" => Ok(true),
        "false" | "0" | "no" => Ok(false),
        _ => Err(format!("expected true or false, not {s:?}")),
    }
}

#[derive(Args)]
struct AddArgs {
    /// Files or directories to add; none (or `-`) reads standard input.
    paths: Vec<PathBuf>,
    /// Add directories recursively.
    #[arg(short, long)]
    recursive: bool,
    /// Print only the final root CID.
    #[arg(short = 'Q', long)]
    quieter: bool,
    /// Print only CIDs.
    #[arg(short, long)]
    quiet: bool,
    /// Only compute CIDs; store nothing.
    #[arg(short = 'n', long)]
    only_hash: bool,
    /// Pin what is added (--pin=false to not).
    #[arg(long, value_parser = parse_bool_flag, num_args = 0..=1, default_missing_value = "true", default_value = "true")]
    pin: bool,
    /// CID version: 0 (Kubo's default, implies sha2-256 and dag-pb leaves) or 1.
    #[arg(long)]
    cid_version: Option<u8>,
    /// Hash function: blake3 or sha2-256.
    #[arg(long)]
    hash: Option<HashAlg>,
    /// size-N (N <= 1048576) or cdc-MIN-AVG-MAX.
    #[arg(long, short = 's')]
    chunker: Option<ChunkerSpec>,
    /// Raw leaves (default: true for CIDv1, false for CIDv0).
    #[arg(long, value_parser = parse_bool_flag, num_args = 0..=1, default_missing_value = "true")]
    raw_leaves: Option<bool>,
    /// Links per interior node (default 174).
    #[arg(long)]
    max_links: Option<usize>,
    /// DAG layout: balanced or trickle.
    #[arg(long)]
    layout: Option<Layout>,
    /// Use the trickle layout (Kubo's --trickle).
    #[arg(long, short = 't')]
    trickle: bool,
    /// Preset: unixfs-v0-2015 (alias legacy-cid-v0: Kubo's defaults) or unixfs-v1-2025.
    #[arg(long)]
    profile: Option<String>,
    /// Include files whose names start with a dot.
    #[arg(short = 'H', long)]
    hidden: bool,
    /// Hide the progress bar.
    #[arg(long)]
    no_progress: bool,
}

#[derive(Subcommand)]
enum PinCommand {
    /// Pin objects (recursively by default).
    Add {
        cids: Vec<String>,
        /// Pin the whole DAG (--recursive=false pins the block only).
        #[arg(long, short, value_parser = parse_bool_flag, num_args = 0..=1, default_missing_value = "true", default_value = "true")]
        recursive: bool,
        /// Keep this many copies on live nodes (placed and repaired by the
        /// daemon) [default: no replication; the usual factor is in
        /// [replication] factor]
        #[arg(long, value_name = "N")]
        replication: Option<u8>,
    },
    /// Remove pins (of a replicated root: on every holder).
    Rm { cids: Vec<String> },
    /// Where the copies of a replicated root are (needs a running daemon).
    Status {
        cid: String,
        /// As JSON: {"cid", "factor", "state", "holders": [{"peer", "state", "since"}]}
        #[arg(long)]
        json: bool,
    },
    /// List pins.
    Ls {
        /// all, recursive, direct or indirect
        #[arg(long, short = 't', default_value = "all")]
        r#type: String,
        /// Print CIDs only.
        #[arg(short, long)]
        quiet: bool,
    },
}

#[derive(Subcommand)]
enum BlockCommand {
    /// Print a block's raw bytes.
    Get { cid: String },
    /// Store a block read from a file (or standard input); prints its CID.
    Put {
        file: Option<PathBuf>,
        /// raw or dag-pb
        #[arg(long, default_value = "raw")]
        cid_codec: String,
        /// Hash function: blake3 or sha2-256
        #[arg(long, default_value = "sha2-256")]
        mhtype: HashAlg,
        /// Pin the block directly.
        #[arg(long)]
        pin: bool,
    },
    /// Print a block's CID and size.
    Stat { cid: String },
}

#[derive(Subcommand)]
enum DagCommand {
    /// Write a DAG as a CAR v1 file to standard output.
    Export { cid: String },
    /// Import blocks from CAR files.
    Import {
        files: Vec<PathBuf>,
        /// Pin the roots named in the CAR headers (--pin-roots=false to not).
        #[arg(long, value_parser = parse_bool_flag, num_args = 0..=1, default_missing_value = "true", default_value = "true")]
        pin_roots: bool,
    },
}

#[derive(Subcommand)]
enum RepoCommand {
    /// Remove every block no pin reaches and compact the store.
    Gc {
        #[arg(short, long)]
        quiet: bool,
    },
    /// Blocks, bytes, pins and segment figures.
    Stat,
    /// Re-hash every block; name the corrupt ones.
    Verify,
}

pub fn run() -> Result<()> {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        // Help and version go to stdout as clap prints them.
        Err(e) if !e.use_stderr() => e.exit(),
        // Usage errors: one line, like every other error.
        Err(e) => {
            let text = e.render().to_string();
            let line = text.lines().next().unwrap_or("invalid arguments");
            bail!("{}", line.trim_start_matches("error: "));
        }
    };
    // Commands report their own errors in one line; the daemon logs.
    let default_level = if matches!(cli.command, Command::Daemon { .. }) {
        // kad warns at every periodic bootstrap while no peer is known,
        // which is the normal state of a private node with no bootstrap list.
        "warn,libp2p_kad::behaviour=error"
    } else {
        "off"
    };
    init_logging(cli.log_level.as_deref(), default_level)?;
    if let Command::Version = cli.command {
        println!("cairn version {}", env!("CARGO_PKG_VERSION"));
        return Ok(());
    }
    let repo_path = match cli.repo {
        Some(p) => p,
        None => repo::default_repo_path()?,
    };
    if let Command::Init = cli.command {
        let created = repo::Repo::init(&repo_path)?;
        // Opening once creates the store and proves the repo is usable.
        let node = Node::open(&repo_path)?;
        node.flush()?;
        if created {
            println!("initialized cairn repository at {}", repo_path.display());
        } else {
            println!("cairn repository at {} already exists", repo_path.display());
        }
        return Ok(());
    }
    // A running daemon owns the repo: commands go through its API.
    let token = repo::Repo::exists(&repo_path)
        .then(|| repo::Repo::read_config(&repo_path).ok())
        .flatten()
        .and_then(|c| c.api.tokens.first().cloned());
    if let Some(client) = cairn::rpc::client::Client::for_repo(&repo_path, token) {
        let config = repo::Repo::read_config(&repo_path)?;
        return through_daemon(&client, &config, cli.command);
    }
    let node = Node::open(&repo_path)?;
    match cli.command {
        Command::Init | Command::Version => unreachable!("handled above"),
        Command::Swarm(_)
        | Command::Routing(_)
        | Command::Stats(_)
        | Command::Bitswap(_)
        | Command::Shutdown => {
            bail!("this command needs a running daemon (start one with `cairn daemon`)")
        }
        Command::Add(args) => add(&node, args),
        Command::Cat {
            path,
            offset,
            length,
        } => cat(&node, &path, offset, length),
        Command::Get { path, output } => get(&node, &path, output),
        Command::Ls { path } => {
            let mut out = std::io::stdout().lock();
            for e in node.ls(&path)? {
                // As Kubo's `ipfs ls`: directories show `-` for a size.
                if e.kind.contains("directory") {
                    writeln!(out, "{} - {}/", e.cid, e.name)?;
                } else {
                    writeln!(out, "{} {} {}", e.cid, e.size, e.name)?;
                }
            }
            Ok(())
        }
        Command::Pin(cmd) => pin(&node, cmd),
        Command::Block(cmd) => block(&node, cmd),
        Command::Dag(cmd) => dag(&node, cmd),
        Command::Repo(cmd) => repo_cmd(&node, cmd),
        Command::Daemon {
            listen,
            api,
            bootstrap,
            gateway,
        } => daemon(node, listen, api, bootstrap, gateway),
        Command::Id => id(&node),
    }
}

/// Runs a command through the daemon's RPC API; output matches the
/// offline path's.
fn through_daemon(
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

/// `stats bw` output, as Kubo prints it.
fn print_bw(out: &mut dyn Write, v: &types::BandwidthStats) -> Result<()> {
    writeln!(out, "Bandwidth")?;
    writeln!(out, "TotalIn: {}", v.total_in)?;
    writeln!(out, "TotalOut: {}", v.total_out)?;
    writeln!(out, "RateIn: {:.0} B/s", v.rate_in)?;
    writeln!(out, "RateOut: {:.0} B/s", v.rate_out)?;
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

fn id(node: &Node) -> Result<()> {
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

/// `cairn daemon`: the flags over `config.toml`, then [`Daemon`] until a
/// signal or `cairn shutdown`; prints the start-up lines scripts parse.
fn daemon(
    node: Node,
    listen: Vec<String>,
    api: Option<String>,
    bootstrap: Vec<String>,
    gateway: Option<String>,
) -> Result<()> {
    let mut config = node.config().clone();
    if !listen.is_empty() {
        config.net.listen = listen;
    }
    config.net.bootstrap.extend(bootstrap);
    if let Some(api) = api {
        config.api.listen = api;
    }
    if let Some(gateway) = gateway {
        config.gateway.listen = gateway;
    }
    let options = DaemonOptions::from_config(&config)?;
    let node = std::sync::Arc::new(node);
    tune_allocator();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let result = runtime.block_on(async {
        // Handlers first: a signal while the node starts (bootstrap dials
        // can take seconds) is kept and stops it cleanly once it is up,
        // instead of killing it with nothing flushed.
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
        let mut interrupt =
            signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
        let mut daemon = Daemon::start(node.clone(), options).await?;
        let peer = daemon.peer_id();
        println!("PeerID: {peer}");
        for addr in daemon.swarm_addrs() {
            println!("Swarm listening on {addr}/p2p/{peer}");
        }
        for peer in daemon.bootstrapped() {
            println!("Connected to {peer}");
        }
        for (addr, e) in daemon.bootstrap_failures() {
            eprintln!("bootstrap {addr}: {e}");
        }
        if let Some(addr) = daemon.gateway_addr() {
            println!(
                "Gateway server listening on {}",
                cairn::rpc::to_multiaddr(addr)
            );
        }
        if let Some(addr) = daemon.api_addr() {
            println!(
                "RPC API server listening on {}",
                cairn::rpc::to_multiaddr(addr)
            );
        }
        println!("Daemon is ready");
        tokio::select! {
            _ = interrupt.recv() => {}
            _ = term.recv() => {}
            _ = daemon.shutdown_requested() => {}
        }
        println!("Received shutdown signal, stopping");
        daemon.shutdown().await?;
        anyhow::Ok(())
    });
    // Blocking work still running (an upload cut off at the end of the
    // grace period) ends with the runtime, then the store is flushed again.
    drop(runtime);
    result?;
    node.flush()?;
    Ok(())
}

/// `tracing` output on stderr, filtered by `--log-level`, else `$RUST_LOG`,
/// else `default`.
fn init_logging(level: Option<&str>, default: &str) -> Result<()> {
    use tracing_subscriber::EnvFilter;
    let filter = match level {
        Some(l) => EnvFilter::try_new(l).map_err(|e| anyhow!("--log-level {l:?}: {e}"))?,
        None => EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default)),
    };
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
    Ok(())
}

/// The daemon allocates and frees a buffer per Bitswap message (up to
/// 4 MiB). glibc serves such sizes with a fresh mmap each time, so every
/// message paid page faults and page zeroing (≈ 10 % of a transfer's CPU,
/// measured with perf); raising the threshold keeps them on the heap, reused.
fn tune_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator tuning; called before other threads start.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 32 * 1024 * 1024);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 128 * 1024 * 1024);
    }
}

/// Resolves add flags the way Kubo does: CIDv0 implies sha2-256 and dag-pb
/// leaves; a non-sha2 hash moves an implicit CIDv0 to CIDv1; CIDv1 turns raw
/// leaves on unless told otherwise.
fn import_options(config: &cairn::node::Config, a: &AddArgs) -> Result<ImportOptions> {
    let mut opts = match a.profile.as_deref() {
        None => config
            .import
            .options()
            .map_err(|e| anyhow!("config.toml [import]: {e}"))?,
        Some("legacy-cid-v0" | "unixfs-v0-2015" | "kubo") => ImportOptions::kubo(),
        Some("unixfs-v1-2025") => ImportOptions {
            format: CidFormat {
                version: 1,
                hash: HashAlg::Sha2_256,
            },
            chunker: ChunkerSpec::Fixed { size: 1024 * 1024 },
            raw_leaves: true,
            max_links: 1024,
            layout: Layout::Balanced,
            sharding: Sharding {
                estimate: SizeEstimate::Block,
                ..Sharding::default()
            },
        },
        Some(other) => {
            bail!("unknown profile {other:?} (expected unixfs-v0-2015 (alias legacy-cid-v0) or unixfs-v1-2025)")
        }
    };
    if let Some(v) = a.cid_version {
        if v > 1 {
            bail!("unknown CID version {v} (expected 0 or 1)");
        }
        opts.format.version = v;
        if v == 0 {
            if let Some(h) = a.hash.filter(|h| *h != HashAlg::Sha2_256) {
                bail!("CIDv0 only supports sha2-256, not {h}");
            }
            opts.format.hash = HashAlg::Sha2_256;
        }
        opts.raw_leaves = v == 1;
    }
    if let Some(h) = a.hash {
        opts.format.hash = h;
        if h != HashAlg::Sha2_256 && opts.format.version == 0 {
            opts.format.version = 1;
            opts.raw_leaves = true;
        }
    }
    if let Some(c) = a.chunker {
        opts.chunker = c;
    }
    if let Some(r) = a.raw_leaves {
        opts.raw_leaves = r;
    }
    if let Some(m) = a.max_links {
        opts.max_links = m;
    }
    if let Some(l) = a.layout {
        opts.layout = l;
    }
    if a.trickle {
        opts.layout = Layout::Trickle;
    }
    opts.validate().map_err(|e| anyhow!(e))?;
    Ok(opts)
}

fn add(node: &Node, a: AddArgs) -> Result<()> {
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

/// Bytes under `path`, for the progress bar (best effort).
fn tree_size(path: &Path, hidden: bool) -> u64 {
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return 0;
    };
    if meta.is_file() {
        return meta.len();
    }
    if !meta.is_dir() {
        return 0;
    }
    std::fs::read_dir(path)
        .map(|rd| {
            rd.flatten()
                .filter(|e| hidden || !e.file_name().to_string_lossy().starts_with('.'))
                .map(|e| tree_size(&e.path(), hidden))
                .sum()
        })
        .unwrap_or(0)
}

fn cat(node: &Node, path: &str, offset: u64, length: Option<u64>) -> Result<()> {
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

fn get(node: &Node, path: &str, output: Option<PathBuf>) -> Result<()> {
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

fn pin(node: &Node, cmd: PinCommand) -> Result<()> {
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

fn block(node: &Node, cmd: BlockCommand) -> Result<()> {
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

fn dag(node: &Node, cmd: DagCommand) -> Result<()> {
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

fn repo_cmd(node: &Node, cmd: RepoCommand) -> Result<()> {
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
        RepoCommand::Verify => {
            let spinner = progress::spinner("verifying blocks");
            let r = node.verify(&mut |n| spinner.set_position(n))?;
            spinner.finish_and_clear();
            print_verify(&mut out, &types::VerifyResponse::from(&r))?;
        }
    }
    Ok(())
}

fn print_repo_stat(out: &mut dyn Write, st: &types::RepoStatResponse) -> Result<()> {
    if !st.repo_path.is_empty() {
        writeln!(out, "RepoPath:     {}", st.repo_path)?;
    }
    writeln!(out, "NumObjects:   {}", st.num_objects)?;
    writeln!(out, "BlockBytes:   {}", st.block_bytes)?;
    writeln!(out, "RepoSize:     {}", st.repo_size)?;
    writeln!(out, "Pins:         {}", st.pins)?;
    writeln!(out, "Segments:     {}", st.num_segments)?;
    let share = if st.repo_size == 0 {
        1.0
    } else {
        st.block_bytes as f64 / st.repo_size as f64
    };
    writeln!(out, "LiveShare:    {:.1}%", share * 100.0)?;
    for seg in &st.segments {
        let pct = if seg.file_bytes == 0 {
            100.0
        } else {
            seg.live_bytes as f64 * 100.0 / seg.file_bytes as f64
        };
        writeln!(
            out,
            "  segment {:08}: {} of {} bytes live ({pct:.1}%)",
            seg.id, seg.live_bytes, seg.file_bytes
        )?;
    }
    Ok(())
}

fn print_verify(out: &mut dyn Write, r: &types::VerifyResponse) -> Result<()> {
    for cid in &r.corrupt {
        writeln!(out, "corrupt block {cid}")?;
    }
    for (cid, why) in &r.unreadable {
        writeln!(out, "unreadable block {cid}: {why}")?;
    }
    for (cid, why) in &r.broken_pins {
        writeln!(out, "incomplete pin {cid}: {why}")?;
    }
    let bad = r.corrupt.len() + r.unreadable.len() + r.broken_pins.len();
    if bad > 0 {
        bail!("verify found {bad} problems in {} blocks", r.checked);
    }
    writeln!(out, "verified {} blocks: all good", r.checked)?;
    Ok(())
}

/// `pin status` as text, like `ipfs-cluster-ctl status`.
fn print_pin_status(out: &mut dyn Write, v: &types::PinStatus) -> Result<()> {
    let pinned = v.holders.iter().filter(|h| h.state == "pinned").count();
    writeln!(
        out,
        "{}: {} ({pinned}/{} pinned, max {})",
        v.cid, v.state, v.factor, v.max
    )?;
    for h in &v.holders {
        let since = h
            .since
            .map(|t| {
                let at = std::time::UNIX_EPOCH + std::time::Duration::from_secs(t);
                format!(" since {}", humantime::format_rfc3339_seconds(at))
            })
            .unwrap_or_default();
        writeln!(out, "    > {} : {}{since}", h.peer, h.state.to_uppercase())?;
    }
    Ok(())
}

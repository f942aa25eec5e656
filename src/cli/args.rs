//! The command line: every command, subcommand and flag (clap), and how
//! `add`'s flags resolve into import options over `config.toml`.

use anyhow::{anyhow, Result};
use cairn::block::HashAlg;
use cairn::dag::builder::{ImportOptions, Layout};
use cairn::dag::chunker::ChunkerSpec;
use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

#[derive(Parser)]
#[command(
    name = "cairn",
    version,
    about = "Peer-to-peer, content-addressed storage (IPFS-compatible)"
)]
pub(super) struct Cli {
    /// Repository directory [default: $CAIRN_REPO, else the platform data dir]
    #[arg(long, global = true, value_name = "PATH")]
    pub(super) repo: Option<PathBuf>,
    /// Log level on stderr: error, warn, info, debug, trace, or a filter
    /// such as `cairn=debug,libp2p=info` [default: $RUST_LOG, else warn]
    #[arg(long, global = true, value_name = "FILTER")]
    pub(super) log_level: Option<String>,
    #[command(subcommand)]
    pub(super) command: Command,
}

#[derive(Subcommand)]
pub(super) enum Command {
    /// Create the repository (config, key, store); done implicitly on first use.
    Init {
        /// Network profile of the new config: "local" (the default: loopback,
        /// no bootstrap peers) or "public" (all interfaces on port 4001, the
        /// public IPFS bootstrap peers, NAT traversal on)
        #[arg(long, value_name = "PROFILE")]
        profile: Option<cairn::node::config::Profile>,
    },
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
    /// IPLD blocks (get, put, resolve) and DAG import and export as CAR files.
    #[command(subcommand)]
    Dag(DagCommand),
    /// Resolve an /ipfs/ or /ipns/ path to the /ipfs/CID it names.
    Resolve {
        /// /ipfs/CID/path, /ipns/NAME/path or CID/path
        path: String,
        /// Follow names that point at names (--recursive=false: one step).
        #[arg(long, short = 'r', value_parser = parse_bool_flag, num_args = 0..=1, default_missing_value = "true", default_value = "true")]
        recursive: bool,
    },
    /// A block's sizes, as Kubo's `ipfs object stat`.
    #[command(subcommand)]
    Object(ObjectCommand),
    /// The node's config.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Repository maintenance.
    #[command(subcommand)]
    Repo(RepoCommand),
    /// Named keys (for IPNS names), as Kubo's `ipfs key`.
    #[command(subcommand)]
    Key(KeyCommand),
    /// IPNS names: publish a path under a key's name, resolve names.
    #[command(subcommand)]
    Name(NameCommand),
    /// MFS: a mutable tree of files and directories, as Kubo's `ipfs files`.
    #[command(subcommand)]
    Files(super::files::FilesCommand),
    /// The S3-compatible endpoint: access keys.
    #[command(subcommand)]
    S3(super::s3::S3Command),
    /// Pub/sub: publish on a topic, print its messages, list topics and
    /// peers (through the running daemon), as Kubo's `ipfs pubsub`.
    #[command(subcommand)]
    Pubsub(super::pubsub::PubsubCommand),
    /// Durable logs: create, follow, append, read (from an offset, as a
    /// consumer group, following), list (through the running daemon).
    #[command(subcommand)]
    Log(super::log::LogCommand),
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
        /// S3 endpoint address, e.g. 127.0.0.1:9000 [default: [s3] listen in config.toml, none]
        #[arg(long)]
        s3: Option<String>,
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
pub(super) enum BitswapCommand {
    /// Blocks and bytes received and sent, fetches running, partners (as
    /// `ipfs bitswap stat`).
    Stat,
}

#[derive(Subcommand)]
pub(super) enum StatsCommand {
    /// Bytes in and out through the transport, totals and current rates.
    Bw,
    /// The DHT's mode (server or client) and routing table, as JSON.
    Dht,
}

#[derive(Subcommand)]
pub(super) enum SwarmCommand {
    /// List connected peers: `<addr>/p2p/<peer>`.
    Peers,
    /// Connect to a peer: /ip4/A/tcp/P/p2p/ID.
    Connect { addr: String },
}

#[derive(Subcommand)]
pub(super) enum RoutingCommand {
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

/// A `--flag=VALUE` that is neither true nor false.
#[derive(Debug, thiserror::Error)]
#[error("expected true or false, not {0:?}")]
pub(super) struct NotABool(String);

pub(super) fn parse_bool_flag(s: &str) -> Result<bool, NotABool> {
    match s {
        "true" | "1" | "yes" => Ok(true),
        "false" | "0" | "no" => Ok(false),
        _ => Err(NotABool(s.to_string())),
    }
}

#[derive(Args)]
pub(super) struct AddArgs {
    /// Files or directories to add; none (or `-`) reads standard input.
    pub(super) paths: Vec<PathBuf>,
    /// Add directories recursively.
    #[arg(short, long)]
    pub(super) recursive: bool,
    /// Print only the final root CID.
    #[arg(short = 'Q', long)]
    pub(super) quieter: bool,
    /// Print only CIDs.
    #[arg(short, long)]
    pub(super) quiet: bool,
    /// Only compute CIDs; store nothing.
    #[arg(short = 'n', long)]
    pub(super) only_hash: bool,
    /// Pin what is added (--pin=false to not).
    #[arg(long, value_parser = parse_bool_flag, num_args = 0..=1, default_missing_value = "true", default_value = "true")]
    pub(super) pin: bool,
    /// CID version: 1 (the default) or 0 (implies sha2-256 and dag-pb leaves).
    #[arg(long)]
    pub(super) cid_version: Option<u8>,
    /// Hash function: sha2-256 (the default) or blake3.
    #[arg(long)]
    pub(super) hash: Option<HashAlg>,
    /// size-N (N <= 1048576) or cdc-MIN-AVG-MAX.
    #[arg(long, short = 's')]
    pub(super) chunker: Option<ChunkerSpec>,
    /// Raw leaves (default: true for CIDv1, false for CIDv0).
    #[arg(long, value_parser = parse_bool_flag, num_args = 0..=1, default_missing_value = "true")]
    pub(super) raw_leaves: Option<bool>,
    /// Links per interior node (default 1024).
    #[arg(long)]
    pub(super) max_links: Option<usize>,
    /// DAG layout: balanced or trickle.
    #[arg(long)]
    pub(super) layout: Option<Layout>,
    /// Use the trickle layout (Kubo's --trickle).
    #[arg(long, short = 't')]
    pub(super) trickle: bool,
    /// Preset the flags then adjust: unixfs-v1-2025 (the default), unixfs-v0-2015
    /// (alias legacy-cid-v0: Kubo's `ipfs add` defaults) or cairn-blake3.
    #[arg(long)]
    pub(super) profile: Option<String>,
    /// Include files whose names start with a dot.
    #[arg(short = 'H', long)]
    pub(super) hidden: bool,
    /// Hide the progress bar.
    #[arg(long)]
    pub(super) no_progress: bool,
}

#[derive(Subcommand)]
pub(super) enum PinCommand {
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
pub(super) enum BlockCommand {
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
pub(super) enum DagCommand {
    /// Write a DAG as a CAR v1 file to standard output.
    Export { cid: String },
    /// Import blocks from CAR files.
    Import {
        files: Vec<PathBuf>,
        /// Pin the roots named in the CAR headers (--pin-roots=false to not).
        #[arg(long, value_parser = parse_bool_flag, num_args = 0..=1, default_missing_value = "true", default_value = "true")]
        pin_roots: bool,
    },
    /// Print the block a path names (or the value inside it) as DAG-JSON.
    Get {
        /// CID/path or /ipfs/CID/path
        path: String,
        /// dag-json, dag-cbor, dag-pb or raw
        #[arg(long, default_value = "dag-json")]
        output_codec: String,
    },
    /// Store a DAG-JSON document (from a file or standard input) as one
    /// block, DAG-CBOR by default; prints its CID.
    Put {
        file: Option<PathBuf>,
        /// The stored block's codec: dag-cbor, dag-json, dag-pb or raw
        #[arg(long, default_value = "dag-cbor")]
        store_codec: String,
        /// The input's codec: dag-json, dag-cbor, dag-pb or raw
        #[arg(long, default_value = "dag-json")]
        input_codec: String,
        /// Hash function: sha2-256 or blake3
        #[arg(long, default_value = "sha2-256")]
        hash: HashAlg,
        /// Pin the block recursively (what it links to must be stored).
        #[arg(long)]
        pin: bool,
    },
    /// Print the block a path ends in, and the rest of the path inside it.
    Resolve {
        /// CID/path or /ipfs/CID/path
        path: String,
    },
}

#[derive(Subcommand)]
pub(super) enum ObjectCommand {
    /// Links, block, links, data and cumulative sizes of a block.
    Stat {
        /// CID/path or /ipfs/CID/path
        path: String,
    },
}

#[derive(Subcommand)]
pub(super) enum ConfigCommand {
    /// Print the config as JSON, API tokens and other secrets redacted.
    Show,
}

#[derive(Subcommand)]
pub(super) enum NameCommand {
    /// Point a key's IPNS name at a path (/ipfs/CID[/path], /ipns/NAME or a CID).
    Publish {
        /// The path.
        path: String,
        /// The key whose name is published.
        #[arg(long, short = 'k', default_value = "self")]
        key: String,
        /// How long the record stays valid [default: [ipns] record_lifetime, 48h].
        #[arg(long, short = 't', value_parser = humantime::parse_duration)]
        lifetime: Option<std::time::Duration>,
        /// How long resolvers may cache it [default: [ipns] record_ttl, 1h].
        #[arg(long, value_parser = humantime::parse_duration)]
        ttl: Option<std::time::Duration>,
        /// Publish without a daemon (the record is kept in the repo) or with
        /// no DHT peer to take it.
        #[arg(long)]
        allow_offline: bool,
    },
    /// Print the path an IPNS name points at.
    Resolve {
        /// The name (NAME, a DNSLink domain, or /ipns/NAME[/path]).
        name: String,
        /// Follow names that point at names (--recursive=false for one step).
        #[arg(long, short = 'r', value_parser = parse_bool_flag, num_args = 0..=1, default_missing_value = "true", default_value = "true")]
        recursive: bool,
        /// Ask the network even if the name is cached.
        #[arg(long, short = 'n')]
        nocache: bool,
    },
}

#[derive(Subcommand)]
pub(super) enum KeyCommand {
    /// Make a new key; prints its IPNS name.
    Gen {
        /// The key's name.
        name: String,
        /// Key type (ed25519).
        #[arg(long, short = 't', default_value = "ed25519")]
        r#type: String,
    },
    /// List the keys (`self` is the node's own).
    List {
        /// Show each key's IPNS name before its name.
        #[arg(short = 'l')]
        long: bool,
    },
    /// Remove keys.
    Rm {
        /// Their names.
        names: Vec<String>,
    },
    /// Rename a key.
    Rename {
        /// Its name.
        old: String,
        /// Its new name.
        new: String,
        /// Replace a key that has the new name.
        #[arg(long, short = 'f')]
        force: bool,
    },
    /// Write a private key to a file (created readable by you only).
    Export {
        /// The key's name.
        name: String,
        /// The file (default: NAME.key; never overwritten).
        #[arg(long, short = 'o')]
        output: Option<PathBuf>,
        /// libp2p-protobuf-cleartext or pem-pkcs8-cleartext.
        #[arg(long, default_value = "libp2p-protobuf-cleartext")]
        format: cairn::names::KeyFormat,
    },
    /// Store a private key from a file as a new key; prints its IPNS name.
    Import {
        /// The new key's name.
        name: String,
        /// The file holding the private key.
        file: PathBuf,
        /// libp2p-protobuf-cleartext or pem-pkcs8-cleartext.
        #[arg(long, default_value = "libp2p-protobuf-cleartext")]
        format: cairn::names::KeyFormat,
    },
}

#[derive(Subcommand)]
pub(super) enum RepoCommand {
    /// Remove every block no pin reaches and compact the store.
    Gc {
        #[arg(short, long)]
        quiet: bool,
    },
    /// Blocks, bytes, pins and segment figures.
    Stat,
    /// Re-hash every block; name the corrupt ones.
    Verify,
    /// Rebuild the block index from the segment files (pins are kept).
    RebuildIndex,
}

/// Resolves add flags the way Kubo does: a profile (or config.toml's
/// `[import]`) is the base each flag adjusts; `--cid-version` and `--hash`
/// follow [`ImportOptions::set_cid_version_and_hash`].
pub(super) fn import_options(config: &cairn::node::Config, a: &AddArgs) -> Result<ImportOptions> {
    let mut opts = match a.profile.as_deref() {
        None => config
            .import
            .options()
            .map_err(|e| anyhow!("config.toml [import]: {e}"))?,
        Some(name) => ImportOptions::profile(name)?,
    };
    opts.set_cid_version_and_hash(a.cid_version, a.hash)?;
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

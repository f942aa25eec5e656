//! Command-line interface: flag parsing ([`args`]) and output
//! ([`output`]) around [`commands`], each written once against the
//! library's `NodeApi`: a running daemon's RPC API when one owns the repo,
//! else the repo directly. Command and flag names follow Kubo's `ipfs`
//! where Kubo has the same command.

mod args;
mod commands;
mod files;
mod log;
mod output;
mod progress;
mod pubsub;
mod s3;

use anyhow::{anyhow, bail, Context, Result};
use args::{Cli, Command, RepoCommand};
use cairn::daemon::{Daemon, DaemonOptions};
use cairn::node::{repo, Node};
use clap::Parser;

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
        // Before any other thread starts: glibc fixes its arena limit then.
        cairn::daemon::memory::limit_arenas();
        // kad warns at every periodic bootstrap while no peer is known,
        // which is the normal state of a private node with no bootstrap list.
        // s3s logs every refused S3 request (a client's error) as an error;
        // the endpoint logs its own failures.
        "warn,libp2p_kad::behaviour=error,s3s::ops=off"
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
    if let Command::Init { profile } = cli.command {
        let config = cairn::node::config::Config::for_profile(profile.unwrap_or_default());
        let created = repo::Repo::init_with(&repo_path, &config)?;
        if !created && profile.is_some() {
            bail!(
                "cairn repository at {} already exists: --profile only sets up a new one \
                 (set [net] profile in its config.toml instead)",
                repo_path.display()
            );
        }
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
    if let Command::S3(command) = cli.command {
        // Key files in the repo, whoever owns its store.
        repo::Repo::init(&repo_path)?;
        return s3::run(&repo_path, command);
    }
    // A running daemon owns the repo: commands go through its API.
    let token = repo::Repo::exists(&repo_path)
        .then(|| repo::Repo::read_config(&repo_path).ok())
        .flatten()
        .and_then(|c| c.api.tokens.first().cloned());
    let client = cairn::rpc::client::Client::for_repo(&repo_path, token);
    if let Command::Pubsub(command) = cli.command {
        return pubsub::run(client.as_ref(), command);
    }
    if let Command::Log(command) = cli.command {
        return log::run(client.as_ref(), command);
    }
    if let Some(client) = client {
        if let Command::Daemon { .. } = cli.command {
            bail!("a daemon is already running on this repo");
        }
        let config = repo::Repo::read_config(&repo_path)?;
        return commands::run(&client, &config, cli.command);
    }
    let node = match cli.command {
        Command::Repo(RepoCommand::RebuildIndex) => Node::open_rebuilding_index(&repo_path)?,
        _ => Node::open(&repo_path)?,
    };
    if let Some(r) = node.index_rebuilt().filter(|r| r.reason.is_some()) {
        let why = r.reason.as_deref().unwrap_or_default();
        let found = output::rebuilt(r);
        eprintln!(
            "cairn: the index could not be used ({why}); rebuilt it from the segments: {found}"
        );
    }
    match cli.command {
        Command::Daemon {
            listen,
            api,
            bootstrap,
            gateway,
            s3,
        } => daemon(node, listen, api, bootstrap, gateway, s3),
        command => commands::run(&node, node.config(), command),
    }
}

/// `cairn daemon`: the flags over `config.toml`, then [`Daemon`] until a
/// signal or `cairn shutdown`; prints the start-up lines scripts parse.
fn daemon(
    node: Node,
    listen: Vec<String>,
    api: Option<String>,
    bootstrap: Vec<String>,
    gateway: Option<String>,
    s3: Option<String>,
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
    if let Some(s3) = s3 {
        config.s3.listen = s3;
    }
    let options = DaemonOptions::from_config(&config)?;
    let node = std::sync::Arc::new(node);
    cairn::daemon::memory::tune_allocator();
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
        let memory = cairn::daemon::memory::TRIM_INTERVAL;
        tokio::spawn(cairn::daemon::memory::return_freed_memory(memory));
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
        if let Some(addr) = daemon.s3_addr() {
            println!("S3 endpoint listening on http://{addr}");
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

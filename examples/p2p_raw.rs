//! Raw libp2p stream throughput over TCP + Noise + Yamux between two
//! processes: the ceiling against which Bitswap transfers are compared.
//!
//! The transport is built exactly like cairn's (`src/net/swarm.rs`), with a
//! behaviour holding only `libp2p_stream::Behaviour`; with
//! `CAIRN_RAW_YAMUX=default` (on both sides) it uses libp2p's default Yamux
//! settings instead.
//!
//! ```text
//! cargo run --release --example p2p_raw -- listen
//!     LISTEN /ip4/127.0.0.1/tcp/PORT/p2p/PEERID
//! cargo run --release --example p2p_raw -- send <multiaddr> <bytes> [--streams N]
//!     {"bytes":B,"seconds":S,"mb_per_s":X,"streams":N}
//! ```
//!
//! The listener serves until killed or until its stdin reaches EOF (so run
//! it with a stdin that stays open, e.g. `tail -f /dev/null | ... listen &`).
//! Per stream it reads to EOF, counting bytes, then writes the count as
//! 8 bytes little-endian and closes. The sender splits `<bytes>` across its
//! streams, times from the first write to the last acknowledgement, and
//! reports MB/s with MB = 10^6 bytes.

use anyhow::{anyhow, bail, Context as _, Result};
use clap::{Parser, Subcommand};
use futures::{AsyncReadExt, AsyncWriteExt, StreamExt};
use libp2p::multiaddr::Protocol;
use libp2p::swarm::{NetworkBehaviour, SwarmEvent};
use libp2p::{identity, noise, tcp, Multiaddr, PeerId, StreamProtocol, Swarm};
use std::io::{Read as _, Write as _};
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

const PROTOCOL: StreamProtocol = StreamProtocol::new("/cairn-bench/raw/1.0.0");
const CHUNK: usize = 1 << 20;

#[derive(Parser)]
#[command(about = "Raw libp2p stream throughput (TCP + Noise + Yamux)")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Listen on 127.0.0.1 and count the bytes of each incoming stream.
    Listen,
    /// Dial a listener and send `bytes` in total over `streams` streams.
    Send {
        /// The listener's address, ending in `/p2p/<peer id>`.
        addr: Multiaddr,
        /// Total bytes to send, split across the streams.
        bytes: u64,
        /// Streams opened in parallel.
        #[arg(long, default_value_t = 1)]
        streams: u32,
    },
}

#[derive(NetworkBehaviour)]
struct Behaviour {
    stream: libp2p_stream::Behaviour,
}

/// The same transport stack as cairn's `net::swarm::build` (TCP part).
fn build_swarm() -> Result<Swarm<Behaviour>> {
    let key = identity::Keypair::generate_ed25519();
    let swarm = libp2p::SwarmBuilder::with_existing_identity(key)
        .with_tokio()
        .with_tcp(
            tcp::Config::default().nodelay(true),
            noise::Config::new,
            || {
                // CAIRN_RAW_YAMUX=default: libp2p's own Yamux settings
                // (yamux 0.13, auto-tuned window) instead of cairn's.
                if std::env::var("CAIRN_RAW_YAMUX").as_deref() == Ok("default") {
                    libp2p::yamux::Config::default()
                } else {
                    cairn::net::swarm::yamux_config()
                }
            },
        )
        .context("building the TCP transport")?
        .with_behaviour(|_| Behaviour {
            stream: libp2p_stream::Behaviour::new(),
        })
        .context("building the behaviour")?
        .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(300)))
        .build();
    Ok(swarm)
}

fn main() -> std::process::ExitCode {
    // `{:#}`: the error and its causes on one line, without the backtrace
    // anyhow's `Debug` adds when RUST_BACKTRACE is set.
    match run(Cli::parse()) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("p2p_raw: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the tokio runtime")?;
    runtime.block_on(async {
        match cli.cmd {
            Cmd::Listen => listen().await,
            Cmd::Send {
                addr,
                bytes,
                streams,
            } => send(addr, bytes, streams).await,
        }
    })
}

async fn listen() -> Result<()> {
    let mut swarm = build_swarm()?;
    let mut incoming = swarm
        .behaviour()
        .stream
        .new_control()
        .accept(PROTOCOL)
        .map_err(|e| anyhow!("registering {PROTOCOL}: {e}"))?;
    swarm
        .listen_on("/ip4/127.0.0.1/tcp/0".parse()?)
        .context("listening on 127.0.0.1")?;
    let local = *swarm.local_peer_id();

    // The first listen address, printed once.
    let addr = loop {
        match swarm.select_next_some().await {
            SwarmEvent::NewListenAddr { address, .. } => break address,
            SwarmEvent::ListenerError { error, .. } => bail!("listener error: {error}"),
            SwarmEvent::ListenerClosed { reason, .. } => bail!("listener closed: {reason:?}"),
            _ => {}
        }
    };
    {
        let mut out = std::io::stdout().lock();
        writeln!(out, "LISTEN {}", addr.with(Protocol::P2p(local)))?;
        out.flush()?;
    }

    tokio::spawn(async move {
        loop {
            if let SwarmEvent::ListenerClosed { reason, .. } = swarm.select_next_some().await {
                eprintln!("listener closed: {reason:?}");
            }
        }
    });

    tokio::spawn(async move {
        while let Some((peer, stream)) = incoming.next().await {
            tokio::spawn(async move {
                if let Err(e) = serve(stream).await {
                    eprintln!("stream from {peer}: {e:#}");
                }
            });
        }
    });

    // Serve until stdin reaches EOF (or the process is killed). Tokio's
    // `io-std` feature is not enabled, so a blocking thread watches stdin.
    tokio::task::spawn_blocking(|| -> std::io::Result<()> {
        let mut stdin = std::io::stdin().lock();
        let mut sink = [0u8; 256];
        while stdin.read(&mut sink)? > 0 {}
        Ok(())
    })
    .await
    .context("stdin watcher panicked")?
    .context("reading stdin")?;
    Ok(())
}

/// Reads to EOF counting bytes, answers the count (u64 LE) and closes.
async fn serve(mut stream: libp2p::Stream) -> Result<()> {
    let mut buf = vec![0u8; CHUNK];
    let mut total: u64 = 0;
    loop {
        let n = stream.read(&mut buf).await.context("reading")?;
        if n == 0 {
            break;
        }
        total += n as u64;
    }
    stream
        .write_all(&total.to_le_bytes())
        .await
        .context("writing the count")?;
    stream.close().await.context("closing")?;
    Ok(())
}

async fn send(addr: Multiaddr, bytes: u64, streams: u32) -> Result<()> {
    if streams == 0 {
        bail!("--streams must be at least 1");
    }
    let peer = match addr.iter().last() {
        Some(Protocol::P2p(peer)) => peer,
        _ => bail!("{addr} does not end in /p2p/<peer id>"),
    };
    let mut swarm = build_swarm()?;
    let mut control = swarm.behaviour().stream.new_control();
    swarm
        .dial(addr.clone())
        .with_context(|| format!("dialing {addr}"))?;

    // Drive the swarm in the background; report when connected.
    let (connected_tx, connected_rx) = oneshot::channel::<Result<()>>();
    tokio::spawn(drive(swarm, peer, connected_tx));
    connected_rx
        .await
        .map_err(|_| anyhow!("swarm task ended"))?
        .with_context(|| format!("connecting to {addr}"))?;

    // Open (negotiate) all streams before the clock starts.
    let mut opened = Vec::with_capacity(streams as usize);
    for i in 0..streams {
        let stream = control
            .open_stream(peer, PROTOCOL)
            .await
            .with_context(|| format!("opening stream {i} to {peer}"))?;
        opened.push(stream);
    }

    let per = bytes / u64::from(streams);
    let extra = bytes % u64::from(streams);
    let start = Instant::now();
    let tasks: Vec<_> = opened
        .into_iter()
        .enumerate()
        .map(|(i, stream)| {
            let share = per + u64::from((i as u64) < extra);
            tokio::spawn(async move {
                push(stream, share)
                    .await
                    .with_context(|| format!("stream {i}"))
            })
        })
        .collect();
    let mut acked: u64 = 0;
    for task in tasks {
        acked += task.await.context("stream task panicked")??;
    }
    let seconds = start.elapsed().as_secs_f64();
    if acked != bytes {
        bail!("listener acknowledged {acked} bytes, sent {bytes}");
    }
    let mb_per_s = bytes as f64 / 1e6 / seconds;
    // Fields in this order (serde_json's `json!` would sort them).
    println!(
        "{{\"bytes\":{bytes},\"seconds\":{seconds},\"mb_per_s\":{mb_per_s},\"streams\":{streams}}}"
    );
    Ok(())
}

/// Polls the swarm forever; sends the outcome of the dial once.
async fn drive(mut swarm: Swarm<Behaviour>, peer: PeerId, connected: oneshot::Sender<Result<()>>) {
    let mut connected = Some(connected);
    loop {
        match swarm.select_next_some().await {
            SwarmEvent::ConnectionEstablished { peer_id, .. } if peer_id == peer => {
                if let Some(tx) = connected.take() {
                    let _ = tx.send(Ok(()));
                }
            }
            SwarmEvent::OutgoingConnectionError { error, .. } => {
                if let Some(tx) = connected.take() {
                    let _ = tx.send(Err(anyhow!(error)));
                }
            }
            SwarmEvent::ConnectionClosed {
                peer_id,
                cause: Some(cause),
                ..
            } => eprintln!("connection to {peer_id} closed: {cause}"),
            _ => {}
        }
    }
}

/// Writes `share` bytes, closes the write side and reads back the count.
async fn push(mut stream: libp2p::Stream, share: u64) -> Result<u64> {
    let buf = vec![0xa5u8; CHUNK];
    let mut left = share;
    while left > 0 {
        let n = left.min(CHUNK as u64) as usize;
        stream.write_all(&buf[..n]).await.context("writing")?;
        left -= n as u64;
    }
    stream.close().await.context("closing the write side")?;
    let mut count = [0u8; 8];
    stream
        .read_exact(&mut count)
        .await
        .context("reading the acknowledgement")?;
    Ok(u64::from_le_bytes(count))
}

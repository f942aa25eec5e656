//! `cairn pubsub`: publish on a topic, print a topic's messages as they
//! arrive, list the topics subscribed to and the peers pub/sub runs with.
//! Pub/sub lives on the network, so every command goes through the
//! running daemon's RPC API (Kubo's `pubsub/*`, topics multibase-encoded).

use anyhow::{bail, Context, Result};
use cairn::rpc::client::{Client, UploadPart};
use cairn::rpc::types::{decode_multibase, encode_multibase, PubsubMessage, Strings};
use clap::Subcommand;
use std::io::Write;
use std::path::PathBuf;

#[derive(Subcommand)]
pub(super) enum PubsubCommand {
    /// Publish a message on TOPIC: the contents of FILE, or of standard
    /// input when FILE is `-` or left out (at most about 1 MiB).
    Pub {
        /// The topic.
        topic: String,
        /// The message's file (`-`: standard input).
        file: Option<PathBuf>,
    },
    /// Print TOPIC's messages as they arrive, until interrupted: each
    /// message's data then a newline (Kubo writes no newline), or with
    /// `--enc json` one JSON object a line as Kubo's RPC sends it.
    Sub {
        /// The topic.
        topic: String,
        /// `text` (the data) or `json` (from, data, seqno, topicIDs).
        #[arg(long, default_value = "text", value_parser = ["text", "json"])]
        enc: String,
    },
    /// List the topics this node is subscribed to.
    Ls,
    /// List the peers this node runs pub/sub with (those subscribed to
    /// TOPIC, if given).
    Peers {
        /// The topic.
        topic: Option<String>,
    },
}

/// Runs `command` through the daemon's API (`None`: no daemon runs).
pub(super) fn run(client: Option<&Client>, command: PubsubCommand) -> Result<()> {
    let Some(client) = client else {
        bail!(
            "cairn pubsub needs a running daemon (pub/sub is on the network): start `cairn daemon`"
        )
    };
    let mut out = std::io::stdout().lock();
    match command {
        PubsubCommand::Pub { topic, file } => {
            let part = data_part(file)?;
            let arg = encode_multibase(topic.as_bytes());
            client.call_lines::<serde_json::Value>(
                "pubsub/pub",
                &[("arg", &arg)],
                Some(vec![part]),
                &mut |_| Ok(()),
            )?;
        }
        PubsubCommand::Sub { topic, enc } => {
            let arg = encode_multibase(topic.as_bytes());
            client.call_lines(
                "pubsub/sub",
                &[("arg", &arg)],
                None,
                &mut |m: PubsubMessage| {
                    let written = if enc == "json" {
                        serde_json::to_writer(&mut out, &m)
                            .map_err(std::io::Error::other)
                            .and_then(|()| out.write_all(b"\n"))
                    } else {
                        let data = m.data_bytes().map_err(|e| {
                            cairn::rpc::client::ClientError::Api(format!("a message's data: {e}"))
                        })?;
                        out.write_all(&data).and_then(|()| out.write_all(b"\n"))
                    };
                    written
                        .and_then(|()| out.flush())
                        .map_err(cairn::rpc::client::ClientError::Output)
                },
            )?;
        }
        PubsubCommand::Ls => {
            let topics: Strings = client.call_json("pubsub/ls", &[])?;
            for t in topics.strings {
                let bytes = decode_multibase(&t)
                    .map_err(anyhow::Error::msg)
                    .context("a topic in the daemon's answer")?;
                writeln!(out, "{}", String::from_utf8_lossy(&bytes).escape_debug())?;
            }
        }
        PubsubCommand::Peers { topic } => {
            let arg = topic.map(|t| encode_multibase(t.as_bytes()));
            let args: Vec<(&str, &str)> = arg.iter().map(|a| ("arg", a.as_str())).collect();
            let peers: Strings = client.call_json("pubsub/peers", &args)?;
            for p in peers.strings {
                writeln!(out, "{p}")?;
            }
        }
    }
    Ok(())
}

/// The upload part named `data` of a command's `[FILE|-]` argument: the
/// file, or standard input when there is none or it is `-`.
pub(super) fn data_part(file: Option<std::path::PathBuf>) -> anyhow::Result<UploadPart> {
    Ok(match file {
        Some(path) if path.as_os_str() != "-" => {
            if !path.is_file() {
                bail!("{}: not a readable file", path.display());
            }
            UploadPart::File {
                name: "data".into(),
                path,
            }
        }
        _ => UploadPart::Stdin {
            name: "data".into(),
        },
    })
}

//! `cairn log`: durable logs (create, follow, append, read, list) through
//! the running daemon's RPC API (`log/*`). Logs are announced and fetched
//! on the network, so every command needs the daemon.

use anyhow::{bail, Result};
use cairn::rpc::client::{Client, ClientError};
use cairn::rpc::types::{
    decode_multibase, LogAppended, LogCommitted, LogInfo, LogList, LogMessage,
};
use clap::Subcommand;
use std::io::Write;
use std::path::PathBuf;

#[derive(Subcommand)]
pub(super) enum LogCommand {
    /// Create a log called NAME on this node; prints its name and its id
    /// (what `log follow` takes on other nodes).
    Create {
        /// The log's name (letters, digits, `.`, `_`, `-`).
        name: String,
        /// Copies the network keeps of the log [default: [replication] factor].
        #[arg(long)]
        replication: Option<u8>,
        /// How much to keep: an age (`7d`) or a size (`10GiB`) of the
        /// newest messages; older batches are dropped (the head batch is
        /// always kept) and freed by the next `repo gc`.
        #[arg(long)]
        retention: Option<String>,
    },
    /// Follow the log ID (created on another node) here as NAME [default:
    /// the ID]: its batches are fetched as its head is announced, so
    /// `log read NAME` reads it locally, also after restarts.
    Follow {
        /// The log's id, as `log create` or `log ls` printed it.
        id: String,
        /// The local name.
        name: Option<String>,
        /// Copies the network keeps [default: [replication] factor].
        #[arg(long)]
        replication: Option<u8>,
    },
    /// Append the lines of FILE (standard input when `-` or left out) to
    /// log NAME, one message a line; returns once they are durable.
    Append {
        /// The log.
        name: String,
        /// The file (`-`: standard input).
        file: Option<PathBuf>,
    },
    /// Print log NAME's messages in order, one a line, from the start (or
    /// where --from, --from-cid or --group says) to its current end, or
    /// with --follow as they come until interrupted.
    Read {
        /// The log.
        name: String,
        /// The first offset to read.
        #[arg(long, conflicts_with = "from_cid")]
        from: Option<u64>,
        /// Start at this batch (a CID of the log's chain).
        #[arg(long)]
        from_cid: Option<String>,
        /// Keep reading as messages are appended.
        #[arg(long)]
        follow: bool,
        /// A consumer group: start where it last stopped and commit what
        /// was printed, so the next `read --group` goes on from there.
        #[arg(long)]
        group: Option<String>,
        /// Print `{"Offset": N, "Data": "u..."}` lines instead of the data.
        #[arg(long)]
        json: bool,
    },
    /// List the logs of this node.
    Ls,
}

/// Runs `command` through the daemon's API (`None`: no daemon runs).
pub(super) fn run(client: Option<&Client>, command: LogCommand) -> Result<()> {
    let Some(client) = client else {
        bail!("cairn log needs a running daemon (logs live on the network): start `cairn daemon`")
    };
    let mut out = std::io::stdout().lock();
    match command {
        LogCommand::Create {
            name,
            replication,
            retention,
        } => {
            let r = replication.map(|r| r.to_string());
            let mut args = vec![("arg", name.as_str())];
            args.extend(r.as_deref().map(|r| ("replication", r)));
            args.extend(retention.as_deref().map(|r| ("retention", r)));
            let info: LogInfo = client.call_json("log/create", &args)?;
            writeln!(out, "{} {}", info.name, info.id)?;
        }
        LogCommand::Follow {
            id,
            name,
            replication,
        } => {
            let r = replication.map(|r| r.to_string());
            let mut args = vec![("arg", id.as_str())];
            args.extend(name.as_deref().map(|n| ("name", n)));
            args.extend(r.as_deref().map(|r| ("replication", r)));
            let info: LogInfo = client.call_json("log/follow", &args)?;
            writeln!(out, "{} {}", info.name, info.id)?;
        }
        LogCommand::Append { name, file } => {
            let part = super::pubsub::data_part(file)?;
            let mut answer: Option<LogAppended> = None;
            client.call_lines(
                "log/append",
                &[("arg", &name)],
                Some(vec![part]),
                &mut |a: LogAppended| {
                    answer = Some(a);
                    Ok(())
                },
            )?;
            let Some(a) = answer else {
                bail!("the daemon sent no answer to the append");
            };
            writeln!(
                out,
                "appended {} messages at offsets {}..{} (head {})",
                a.count,
                a.first,
                a.next.saturating_sub(1),
                a.head
            )?;
        }
        LogCommand::Read {
            name,
            from,
            from_cid,
            follow,
            group,
            json,
        } => {
            let from = from.map(|f| f.to_string());
            let mut args = vec![("arg", name.as_str())];
            args.extend(from.as_deref().map(|f| ("from", f)));
            args.extend(from_cid.as_deref().map(|c| ("from-cid", c)));
            args.extend(group.as_deref().map(|g| ("group", g)));
            if follow {
                args.push(("follow", "true"));
            }
            let mut read_to: Option<u64> = None;
            let commit = |offset: u64| -> Result<(), ClientError> {
                if let Some(g) = &group {
                    let o = offset.to_string();
                    let _: LogCommitted = client.call_json(
                        "log/commit",
                        &[("arg", &name), ("group", g), ("offset", &o)],
                    )?;
                }
                Ok(())
            };
            client.call_lines("log/read", &args, None, &mut |m: LogMessage| {
                if let Some(asked) = m.asked {
                    let whose = match &group {
                        Some(g) => format!("group {g}'s committed offset {asked}"),
                        None => format!("offset {asked}"),
                    };
                    eprintln!(
                        "cairn: log {name}: {whose} is no longer kept (retention dropped the \
                         older messages): reading from the first available offset, {}",
                        m.offset
                    );
                }
                let written = if json {
                    serde_json::to_writer(&mut out, &m)
                        .map_err(std::io::Error::other)
                        .and_then(|()| out.write_all(b"\n"))
                } else {
                    let data = decode_multibase(&m.data)
                        .map_err(|e| ClientError::Api(format!("a message's data: {e}")))?;
                    out.write_all(&data).and_then(|()| out.write_all(b"\n"))
                };
                written
                    .and_then(|()| out.flush())
                    .map_err(ClientError::Output)?;
                read_to = Some(m.offset + 1);
                // Following, each message is committed once printed.
                if follow {
                    commit(m.offset + 1)?;
                }
                Ok(())
            })?;
            if let (Some(offset), false) = (read_to, follow) {
                commit(offset)?;
            }
        }
        LogCommand::Ls => {
            let list: LogList = client.call_json("log/ls", &[])?;
            for l in list.logs {
                write!(
                    out,
                    "{}\t{}\t{} messages\treplication {}\t{}",
                    l.name, l.origin, l.next, l.replication, l.id
                )?;
                if l.first > 0 {
                    write!(out, "\tfirst offset {}", l.first)?;
                }
                writeln!(out)?;
            }
        }
    }
    Ok(())
}

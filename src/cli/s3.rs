//! `cairn s3`: the S3 endpoint's access keys, its buckets and their
//! roots (`ls`), and buckets on the network (`bucket publish|mount`).
//! Keys are files in the repo (`REPO/s3/keys`), so those commands work
//! with or without a running daemon, and a daemon sees a new key at once.
//! The bucket index is a database a running daemon holds locked, so `ls`
//! and `bucket` go through the daemon's API when one runs, and open the
//! repo themselves when none does.

use anyhow::{bail, Result};
use cairn::node::{repo, Node};
use cairn::rpc::client::Client;
use cairn::s3::admin::{self, Listed, Mounted, Published};
use cairn::s3::AccessKeys;
use clap::Subcommand;
use std::path::Path;

#[derive(Subcommand)]
pub(super) enum S3Command {
    /// Access keys for the S3 endpoint (`[s3] listen` in config.toml).
    #[command(subcommand)]
    Key(S3KeyCommand),
    /// List buckets with their root CIDs, or a bucket's objects with CID,
    /// size, ETag and mtime.
    Ls {
        /// `BUCKET` or `BUCKET/PREFIX`; none: the buckets.
        arg: Option<String>,
    },
    /// Buckets on the network: publish one under an IPNS name, or serve
    /// another node's read-only.
    #[command(subcommand)]
    Bucket(S3BucketCommand),
}

#[derive(Subcommand)]
pub(super) enum S3BucketCommand {
    /// Publish the bucket's root under an IPNS name; while the daemon runs,
    /// writes to it republish the new root (a second after the last one).
    Publish {
        /// The bucket.
        name: String,
        /// The key whose name it is published under.
        #[arg(long, default_value = "self")]
        key: String,
    },
    /// Serve the bucket another node publishes under IPNS-NAME as NAME,
    /// read-only, following the roots it republishes.
    Mount {
        /// The bucket's name here.
        name: String,
        /// The IPNS name it is published under (`/ipns/k51...` or `k51...`).
        ipns_name: String,
    },
}

#[derive(Subcommand)]
pub(super) enum S3KeyCommand {
    /// Make an access key; prints its ID and secret (shown only this once).
    Create {
        /// A bucket the key may use (repeat for several); none: every bucket.
        #[arg(long = "bucket", value_name = "NAME")]
        buckets: Vec<String>,
    },
    /// List the access key IDs and the buckets each may use (not secrets).
    Ls,
    /// Remove an access key: requests signed with it are refused from now on.
    Rm {
        /// The access key ID.
        id: String,
    },
}

/// The running daemon's API client, if a daemon holds the repo.
fn daemon_client(repo_path: &Path) -> Option<Client> {
    let token = repo::Repo::read_config(repo_path)
        .ok()
        .and_then(|c| c.api.tokens.first().cloned());
    Client::for_repo(repo_path, token)
}

fn print_listed(listed: Listed) {
    match listed {
        Listed::Buckets(buckets) => {
            for b in buckets {
                let mut line = format!("{} {}", b.name, b.root.as_deref().unwrap_or("-"));
                if let Some(key) = b.published_as {
                    line.push_str(&format!(" published:{key}"));
                }
                if let Some(name) = b.mounted_from {
                    line.push_str(&format!(" mounted:{name}"));
                }
                println!("{line}");
            }
        }
        Listed::Objects(objects) => {
            for o in objects {
                let mtime = std::time::UNIX_EPOCH + std::time::Duration::from_millis(o.mtime_ms);
                println!(
                    "{} {} {} {} {}",
                    o.cid,
                    o.size,
                    o.etag,
                    humantime::format_rfc3339_millis(mtime),
                    o.key
                );
            }
        }
    }
}

/// `ls`: through the daemon, or on the repo.
fn ls(repo_path: &Path, arg: Option<String>) -> Result<()> {
    if let Some(client) = daemon_client(repo_path) {
        let args: Vec<(&str, &str)> = arg.iter().map(|a| ("arg", a.as_str())).collect();
        print_listed(client.call_json("s3/ls", &args)?);
        return Ok(());
    }
    let node = Node::open(repo_path)?;
    let index = admin::open_offline(&node)?;
    print_listed(admin::ls(&index, arg.as_deref())?);
    Ok(())
}

/// `bucket publish|mount`: through the daemon, or on the repo.
fn bucket(repo_path: &Path, command: S3BucketCommand) -> Result<()> {
    let client = daemon_client(repo_path);
    match (command, client) {
        (S3BucketCommand::Publish { name, key }, Some(client)) => {
            let p: Published =
                client.call_json("s3/bucket/publish", &[("arg", &name), ("key", &key)])?;
            println!("Published {name} to {}: /ipfs/{}", p.name, p.root);
        }
        (S3BucketCommand::Mount { name, ipns_name }, Some(client)) => {
            let m: Mounted =
                client.call_json("s3/bucket/mount", &[("arg", &name), ("arg", &ipns_name)])?;
            match m.root {
                Some(root) => println!("Mounted {} from {}: /ipfs/{root}", m.bucket, m.name),
                None => println!("Mounted {} from {} (not resolved yet)", m.bucket, m.name),
            }
        }
        (S3BucketCommand::Publish { name, key }, None) => {
            let node = Node::open(repo_path)?;
            let (ipns, root) = admin::publish_offline(&node, &name, &key)?;
            node.flush()?;
            println!(
                "Published {name} to {ipns}: /ipfs/{root} (kept in the repo until a daemon runs)"
            );
        }
        (S3BucketCommand::Mount { name, ipns_name }, None) => {
            let node = Node::open(repo_path)?;
            admin::mount_offline(&node, &name, &ipns_name)?;
            println!("Mounted {name} from {ipns_name} (resolved when a daemon runs)");
        }
    }
    Ok(())
}

pub(super) fn run(repo: &Path, command: S3Command) -> Result<()> {
    let keys = AccessKeys::for_repo(repo);
    let command = match command {
        S3Command::Key(k) => k,
        S3Command::Ls { arg } => return ls(repo, arg),
        S3Command::Bucket(b) => return bucket(repo, b),
    };
    match command {
        S3KeyCommand::Create { buckets } => {
            let key = keys.create(&buckets)?;
            println!("AccessKeyId: {}", key.id);
            println!("SecretAccessKey: {}", key.secret);
        }
        S3KeyCommand::Ls => {
            for key in keys.list()? {
                let scope = if key.buckets.is_empty() {
                    "*".to_string()
                } else {
                    key.buckets.join(",")
                };
                println!("{} {scope}", key.id);
            }
        }
        S3KeyCommand::Rm { id } => {
            if !keys.remove(&id)? {
                bail!("no S3 access key {id:?}");
            }
            println!("removed {id}");
        }
    }
    Ok(())
}

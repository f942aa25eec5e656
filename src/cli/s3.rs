//! `cairn s3`: the S3 endpoint's access keys, its buckets and their
//! roots (`ls`), buckets with a replication factor or public-read (`bucket
//! create|public-read`), and buckets on the network (`bucket
//! publish|mount`).
//! Keys are files in the repo (`REPO/s3/keys`), so those commands work
//! with or without a running daemon, and a daemon sees a new key at once.
//! The bucket index is a database a running daemon holds locked, so `ls`
//! and `bucket` go through the daemon's API when one runs, and open the
//! repo themselves when none does.

use anyhow::{bail, Result};
use cairn::node::{repo, Node};
use cairn::rpc::client::Client;
use cairn::s3::admin::{self, BucketLine, Listed, Mounted, Published};
use cairn::s3::{AccessKeys, BucketIndex, BucketSettings};
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
    /// Create a bucket; with --replication N the network keeps N copies of
    /// each of its objects and of its root (the repair loop of `pin add
    /// --replication`); with --public-read anyone may GET, HEAD and list it
    /// without a key.
    Create {
        /// The bucket.
        name: String,
        /// Copies of each object and of the bucket's root kept on live
        /// nodes.
        #[arg(long, value_parser = clap::value_parser!(u8).range(1..=i64::from(admin::MAX_REPLICATION)))]
        replication: Option<u8>,
        /// Let anonymous (unsigned) requests read the bucket.
        #[arg(long)]
        public_read: bool,
    },
    /// Let anonymous requests read the bucket (GET, HEAD, list), or no
    /// longer.
    PublicRead {
        /// The bucket.
        name: String,
        /// `on` or `off`.
        #[arg(value_parser = ["on", "off"])]
        setting: String,
    },
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
                if let Some(n) = b.replication {
                    line.push_str(&format!(" replication:{n}"));
                }
                if b.public_read {
                    line.push_str(" public-read");
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

/// `bucket create`: through the daemon, or on the repo.
fn create(repo_path: &Path, name: &str, settings: BucketSettings) -> Result<()> {
    let line = match daemon_client(repo_path) {
        Some(client) => {
            let n = settings.replication.map(|n| n.to_string());
            let mut args = vec![("arg", name)];
            args.extend(n.as_deref().map(|n| ("replication", n)));
            if settings.public_read {
                args.push(("public-read", "true"));
            }
            client.call_json("s3/bucket/create", &args)?
        }
        None => offline(repo_path, name, |index| {
            admin::create_bucket(index, name, &settings)
        })?,
    };
    print_listed(Listed::Buckets(vec![line]));
    Ok(())
}

/// `bucket public-read`: through the daemon, or on the repo.
fn public_read(repo_path: &Path, name: &str, setting: &str) -> Result<()> {
    let line = match daemon_client(repo_path) {
        Some(client) => {
            client.call_json("s3/bucket/public-read", &[("arg", name), ("arg", setting)])?
        }
        None => offline(repo_path, name, |index| {
            index.writer().set_public_read(name, setting == "on")
        })?,
    };
    print_listed(Listed::Buckets(vec![line]));
    Ok(())
}

/// Runs `change` on the repo's bucket index (no daemon runs); `name`'s
/// line after it.
fn offline(
    repo_path: &Path,
    name: &str,
    change: impl FnOnce(&BucketIndex) -> Result<(), cairn::s3::S3Error>,
) -> Result<BucketLine> {
    let node = Node::open(repo_path)?;
    let index = admin::open_offline(&node)?;
    change(&index)?;
    let line = admin::bucket_line(&index, name)?;
    drop(index);
    node.flush()?;
    Ok(line)
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
        (
            S3BucketCommand::Create {
                name,
                replication,
                public_read: public,
            },
            _,
        ) => {
            let settings = BucketSettings {
                replication,
                public_read: public,
            };
            return create(repo_path, &name, settings);
        }
        (S3BucketCommand::PublicRead { name, setting }, _) => {
            return public_read(repo_path, &name, &setting)
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

//! `cairn s3`: the S3 endpoint's access keys. Keys are files in the repo
//! (`REPO/s3/keys`), so these commands work with or without a running
//! daemon, and a daemon sees a new key at once.

use anyhow::{bail, Result};
use cairn::s3::AccessKeys;
use clap::Subcommand;
use std::path::Path;

#[derive(Subcommand)]
pub(super) enum S3Command {
    /// Access keys for the S3 endpoint (`[s3] listen` in config.toml).
    #[command(subcommand)]
    Key(S3KeyCommand),
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

pub(super) fn run(repo: &Path, command: S3Command) -> Result<()> {
    let keys = AccessKeys::for_repo(repo);
    match command {
        S3Command::Key(S3KeyCommand::Create { buckets }) => {
            let key = keys.create(&buckets)?;
            println!("AccessKeyId: {}", key.id);
            println!("SecretAccessKey: {}", key.secret);
        }
        S3Command::Key(S3KeyCommand::Ls) => {
            for key in keys.list()? {
                let scope = if key.buckets.is_empty() {
                    "*".to_string()
                } else {
                    key.buckets.join(",")
                };
                println!("{} {scope}", key.id);
            }
        }
        S3Command::Key(S3KeyCommand::Rm { id }) => {
            if !keys.remove(&id)? {
                bail!("no S3 access key {id:?}");
            }
            println!("removed {id}");
        }
    }
    Ok(())
}

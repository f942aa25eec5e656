//! The repository directory: `config.toml`, the node key, the block store.
//!
//! ```text
//! REPO/
//!   config.toml     settings (see `node::config`), written on init
//!   key             the node's Ed25519 secret seed (32 bytes, mode 0600)
//!   store.lock      held by the process that has the repo open
//!   segments/       block bodies (see `store::disk`)
//!   index/          sled index: block locations, segment lengths
//!   journal         pins and node metadata (replication records, ...)
//!   api             the running daemon's RPC address (see `rpc`)
//! ```
//!
//! The repo is created on first use (`cairn init` does it explicitly).

use super::config::Config;
use super::NodeError;
use crate::store::DiskStore;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Environment variable naming the repo directory.
pub const REPO_ENV: &str = "CAIRN_REPO";

/// The default repo: `$CAIRN_REPO`, else the platform data directory.
pub fn default_repo_path() -> Result<PathBuf, NodeError> {
    if let Some(p) = std::env::var_os(REPO_ENV).filter(|p| !p.is_empty()) {
        return Ok(PathBuf::from(p));
    }
    directories::ProjectDirs::from("", "", "cairn")
        .map(|d| d.data_dir().to_path_buf())
        .ok_or(NodeError::NoRepoPath)
}

/// An open repository.
pub struct Repo {
    /// The repo directory.
    pub path: PathBuf,
    /// Its `config.toml`, read and checked.
    pub config: Config,
    /// Its block store, opened (and locked) by this process.
    pub store: DiskStore,
    key: [u8; 32],
}

/// A repo I/O error on `path` while doing `action`.
fn io_error(path: &Path, action: &'static str) -> impl FnOnce(std::io::Error) -> NodeError {
    let path = path.to_path_buf();
    move |source| NodeError::RepoIo {
        path,
        action,
        source,
    }
}

impl Repo {
    /// Whether `path` already holds a repo.
    pub fn exists(path: &Path) -> bool {
        path.join("config.toml").is_file()
    }

    /// Creates the repo files if missing (config, key), keeping existing ones.
    pub fn init(path: &Path) -> Result<bool, NodeError> {
        Self::init_with(path, &Config::default())
    }

    /// Creates the repo files if missing, a new `config.toml` holding
    /// `config` (e.g. [`Config::for_profile`]); existing files are kept.
    pub fn init_with(path: &Path, config: &Config) -> Result<bool, NodeError> {
        std::fs::create_dir_all(path).map_err(io_error(path, "create"))?;
        let mut created = false;
        let config_path = path.join("config.toml");
        if !config_path.exists() {
            let text =
                toml::to_string_pretty(config).map_err(|source| NodeError::ConfigSerialise {
                    path: config_path.clone(),
                    source,
                })?;
            write_new(&config_path, text.as_bytes(), 0o644)
                .map_err(io_error(&config_path, "write"))?;
            created = true;
        }
        let key_path = path.join("key");
        if !key_path.exists() {
            let mut seed = [0u8; 32];
            getrandom::fill(&mut seed).map_err(|source| NodeError::KeyRandomness {
                path: key_path.clone(),
                source,
            })?;
            write_new(&key_path, &seed, 0o600).map_err(io_error(&key_path, "write"))?;
            created = true;
        }
        Ok(created)
    }

    /// Opens (creating on first use) the repo at `path`; with
    /// `rebuild_index`, its block index is first rebuilt from the segments.
    pub fn open(path: &Path, rebuild_index: bool) -> Result<Repo, NodeError> {
        Self::init(path)?;
        let config = Self::read_config(path)?;
        let key_path = path.join("key");
        let key_bytes = std::fs::read(&key_path).map_err(io_error(&key_path, "read"))?;
        let key: [u8; 32] = key_bytes
            .as_slice()
            .try_into()
            .map_err(|_| NodeError::KeyLength {
                path: key_path.clone(),
                len: key_bytes.len(),
            })?;
        let options = config.store.options(config.storage.max.bytes());
        let store = match rebuild_index {
            true => DiskStore::open_rebuilding_index(path, options)?,
            false => DiskStore::open(path, options)?,
        };
        Ok(Repo {
            path: path.to_path_buf(),
            config,
            store,
            key,
        })
    }

    /// Reads and checks `config.toml` (without opening the store, so it
    /// works while a daemon holds the repo).
    pub fn read_config(path: &Path) -> Result<Config, NodeError> {
        let config_path = path.join("config.toml");
        let text = std::fs::read_to_string(&config_path).map_err(io_error(&config_path, "read"))?;
        toml::from_str(&text).map_err(|source| {
            let before = source.span().map(|s| &text[..s.start.min(text.len())]);
            NodeError::ConfigFile {
                path: config_path,
                line: before.map(|b| b.lines().count().max(1)),
                key: before.and_then(setting_at_end),
                source,
            }
        })
    }

    /// The node's Ed25519 secret seed.
    pub fn key_seed(&self) -> &[u8; 32] {
        &self.key
    }
}

/// The setting (`[section] key`) whose value starts at the end of `before`,
/// the text of `config.toml` up to an error.
fn setting_at_end(before: &str) -> Option<String> {
    let (_, line) = before.rsplit_once('\n').unwrap_or(("", before));
    let key = line.split_once('=')?.0.trim();
    if key.is_empty() || key.starts_with('[') {
        return None;
    }
    let section = before
        .lines()
        .rev()
        .map(str::trim)
        .find(|l| l.starts_with('[') && l.ends_with(']'));
    Some(match section {
        Some(s) => format!("{s} {key}"),
        None => key.to_string(),
    })
}

/// Writes a new file atomically (temp file, fsync, rename) with `mode`.
fn write_new(path: &Path, bytes: &[u8], mode: u32) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent() {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bad_setting_is_refused_on_read_naming_its_line_and_key() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("config.toml"),
            "[replication]\nfactor = 2\n\n[storage]\nmax = \"5XB\"\n",
        )
        .unwrap();
        let err = Repo::read_config(dir.path()).unwrap_err().to_string();
        assert!(
            err.ends_with("config.toml (line 5): [storage] max: unknown unit \"xb\" in \"5XB\""),
            "{err}"
        );
        std::fs::write(
            dir.path().join("config.toml"),
            "[net]\ndht_mode = \"both\"\n",
        )
        .unwrap();
        let err = Repo::read_config(dir.path()).unwrap_err().to_string();
        assert!(
            err.contains("(line 2): [net] dht_mode: unknown variant"),
            "{err}"
        );
    }
}

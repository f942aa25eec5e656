//! The repository directory: `config.toml`, the node key, the block store.
//!
//! ```text
//! REPO/
//!   config.toml     settings (see `config.rs`), written on init
//!   key             the node's Ed25519 secret seed (32 bytes, mode 0600)
//!   store.lock      held by the process that has the repo open
//!   segments/       block bodies (see store/disk.rs)
//!   index/          sled index: blocks, pins, segment lengths
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
        .ok_or_else(|| NodeError::Repo {
            path: PathBuf::from("~"),
            reason: "no home directory to put the repo in; pass --repo or set CAIRN_REPO".into(),
        })
}

/// An open repository.
pub struct Repo {
    pub path: PathBuf,
    pub config: Config,
    pub store: DiskStore,
    key: [u8; 32],
}

impl Repo {
    /// Whether `path` already holds a repo.
    pub fn exists(path: &Path) -> bool {
        path.join("config.toml").is_file()
    }

    /// Creates the repo files if missing (config, key), keeping existing ones.
    pub fn init(path: &Path) -> Result<bool, NodeError> {
        let repo_err = |reason: String| NodeError::Repo {
            path: path.to_path_buf(),
            reason,
        };
        std::fs::create_dir_all(path).map_err(|e| repo_err(format!("cannot create: {e}")))?;
        let mut created = false;
        let config_path = path.join("config.toml");
        if !config_path.exists() {
            let text = toml::to_string_pretty(&Config::default())
                .map_err(|e| repo_err(format!("cannot serialise config: {e}")))?;
            write_new(&config_path, text.as_bytes(), 0o644)
                .map_err(|e| repo_err(format!("cannot write config.toml: {e}")))?;
            created = true;
        }
        let key_path = path.join("key");
        if !key_path.exists() {
            let mut seed = [0u8; 32];
            getrandom::fill(&mut seed)
                .map_err(|e| repo_err(format!("no randomness for the node key: {e}")))?;
            write_new(&key_path, &seed, 0o600)
                .map_err(|e| repo_err(format!("cannot write key: {e}")))?;
            created = true;
        }
        Ok(created)
    }

    /// Opens (creating on first use) the repo at `path`.
    pub fn open(path: &Path) -> Result<Repo, NodeError> {
        Self::init(path)?;
        let repo_err = |reason: String| NodeError::Repo {
            path: path.to_path_buf(),
            reason,
        };
        let config = Self::read_config(path)?;
        let key_bytes = std::fs::read(path.join("key"))
            .map_err(|e| repo_err(format!("cannot read key: {e}")))?;
        let key: [u8; 32] = key_bytes.as_slice().try_into().map_err(|_| {
            repo_err(format!(
                "key file holds {} bytes, expected 32",
                key_bytes.len()
            ))
        })?;
        let max_bytes = config
            .storage
            .max_bytes()
            .map_err(|e| repo_err(format!("config.toml: {e}")))?;
        let store = DiskStore::open(path, config.store.options(max_bytes))?;
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
        let repo_err = |reason: String| NodeError::Repo {
            path: path.to_path_buf(),
            reason,
        };
        let text = std::fs::read_to_string(path.join("config.toml"))
            .map_err(|e| repo_err(format!("cannot read config.toml: {e}")))?;
        toml::from_str(&text).map_err(|e| {
            let line = e
                .span()
                .map(|s| text[..s.start.min(text.len())].lines().count().max(1));
            let at = line.map_or(String::new(), |l| format!(" (line {l})"));
            repo_err(format!("config.toml{at}: {}", e.message().trim()))
        })
    }

    /// The node's Ed25519 secret seed.
    pub fn key_seed(&self) -> &[u8; 32] {
        &self.key
    }
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

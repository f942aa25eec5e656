//! MFS on a node: the tree over the node's store and import options, what
//! `files cp` copies from outside MFS, and `[mfs.autopublish]` (offline:
//! the record is kept in the repo after each change; online: published
//! on the DHT after changes settle for the debounce time).

use super::online::OnlineNode;
use super::{Config, Node, NodeError};
use crate::block::Cid;
use crate::dag::reader::FileReader;
use crate::names::ipns::{IpnsError, PublishOptions};
use crate::names::mfs::{FormatOverrides, Mfs, MfsEntry, MfsError, MfsPath, MfsStat, WriteOptions};
use crate::net::NetError;
use crate::store::Store;
use std::io::Read;
use std::sync::Arc;

/// The node's tree. A bad `[import]` section leaves the defaults here; it
/// is reported by [`Node::mfs_checked`] before anything is written.
pub(super) fn open(store: &Arc<dyn Store>, config: &Config) -> Arc<Mfs> {
    let import = config.import.options().unwrap_or_default();
    Arc::new(Mfs::new(Arc::clone(store), import))
}

/// What `files cp` copies: a CID and the name it gets inside a directory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CopySource {
    /// The node copied.
    pub cid: Cid,
    /// Its name: the source path's last name, or the CID.
    pub name: String,
}

impl Node {
    /// The node's MFS tree (reads; see [`Node::mfs_checked`] for changes).
    pub fn mfs(&self) -> &Arc<Mfs> {
        &self.mfs
    }

    /// The MFS tree, once the `[import]` settings its writes use check.
    pub fn mfs_checked(&self) -> Result<&Arc<Mfs>, NodeError> {
        self.config.import.options()?;
        Ok(&self.mfs)
    }

    /// What `files cp` copies from `src`: an MFS path, or
    /// `/ipfs/CID[/path]` whose every block is stored here (MFS keeps what
    /// it links, so it must be complete).
    pub fn files_copy_source(&self, src: &str) -> Result<CopySource, NodeError> {
        if src.starts_with("/ipfs/") {
            let cid = self.resolve(src)?;
            if !self.has_dag(&cid)? {
                return Err(NodeError::NotLocal { cid });
            }
            let last = src.trim_end_matches('/').rsplit('/').next().unwrap_or("");
            let name = if last.is_empty() || crate::block::parse_cid(last).is_ok() {
                cid.to_string()
            } else {
                last.to_string()
            };
            return Ok(CopySource { cid, name });
        }
        let path = MfsPath::parse(src)?;
        let cid = self.mfs.resolve(&path)?;
        let name = path.name().map_or_else(|| cid.to_string(), str::to_string);
        Ok(CopySource { cid, name })
    }

    /// `files mkdir`.
    pub fn files_mkdir(
        &self,
        path: &str,
        parents: bool,
        format: FormatOverrides,
    ) -> Result<(), NodeError> {
        let path = MfsPath::parse(path)?;
        Ok(self.mfs_checked()?.mkdir(&path, parents, format)?)
    }

    /// `files write`: `data` into the file at `path`.
    pub fn files_write(
        &self,
        path: &str,
        data: &mut dyn Read,
        opts: &WriteOptions,
    ) -> Result<(), NodeError> {
        let path = MfsPath::parse(path)?;
        Ok(self.mfs_checked()?.write(&path, data, opts)?)
    }

    /// `files read`.
    pub fn files_read(
        &self,
        path: &str,
        offset: u64,
        count: Option<u64>,
    ) -> Result<FileReader, NodeError> {
        Ok(self.mfs.read(&MfsPath::parse(path)?, offset, count)?)
    }

    /// `files ls`.
    pub fn files_ls(&self, path: &str, long: bool) -> Result<Vec<MfsEntry>, NodeError> {
        Ok(self.mfs.ls(&MfsPath::parse(path)?, long)?)
    }

    /// `files stat`.
    pub fn files_stat(&self, path: &str) -> Result<MfsStat, NodeError> {
        Ok(self.mfs.stat(&MfsPath::parse(path)?)?)
    }

    /// `files cp`: `src` (an MFS path or `/ipfs/CID[/path]`) to `dst`
    /// (inside it when `dst` ends in `/`).
    pub fn files_cp(&self, src: &str, dst: &str, parents: bool) -> Result<(), NodeError> {
        let into = dst.ends_with('/') && dst != "/";
        let dst = MfsPath::parse(dst)?;
        let mfs = self.mfs_checked()?;
        let from = self.files_copy_source(src)?;
        Ok(mfs.cp(from.cid, Some(&from.name), &dst, into, parents)?)
    }

    /// `files mv`.
    pub fn files_mv(&self, src: &str, dst: &str) -> Result<(), NodeError> {
        let (src, dst) = (MfsPath::parse(src)?, MfsPath::parse(dst)?);
        Ok(self.mfs_checked()?.mv(&src, &dst)?)
    }

    /// `files rm` of each path in turn.
    pub fn files_rm(
        &self,
        paths: &[String],
        recursive: bool,
        force: bool,
    ) -> Result<(), NodeError> {
        let mfs = self.mfs_checked()?;
        for path in paths {
            mfs.rm(&MfsPath::parse(path)?, recursive, force)?;
        }
        Ok(())
    }

    /// `files flush`: the CID at `path`.
    pub fn files_flush(&self, path: &str) -> Result<Cid, NodeError> {
        Ok(self.mfs.flush(&MfsPath::parse(path)?)?)
    }

    /// `files chcid`.
    pub fn files_chcid(&self, path: &str, format: FormatOverrides) -> Result<(), NodeError> {
        let path = MfsPath::parse(path)?;
        Ok(self.mfs_checked()?.chcid(&path, format)?)
    }

    /// With `[mfs.autopublish]`, keeps a record of its path's current CID
    /// under its key in the repo (without a daemon: a daemon puts it on
    /// the DHT when its republisher runs).
    pub fn files_autopublish_offline(&self) -> Result<(), NodeError> {
        let Some(settings) = &self.config.mfs.autopublish else {
            return Ok(());
        };
        let (value, opts) = autopublish_value(&self.mfs, settings)?;
        self.names().publish_local(&value, &opts)?;
        Ok(())
    }
}

/// The value and options an autopublish publishes now.
fn autopublish_value(
    mfs: &Mfs,
    settings: &crate::names::mfs::AutopublishSettings,
) -> Result<(String, PublishOptions), MfsError> {
    let cid = mfs.resolve(&MfsPath::parse(&settings.path)?)?;
    let opts = PublishOptions {
        key: Some(settings.key.clone()),
        lifetime: None,
        ttl: None,
    };
    Ok((format!("/ipfs/{cid}"), opts))
}

impl OnlineNode {
    /// With `[mfs.autopublish]`, publishes its path's CID whenever MFS
    /// changed, once the changes have settled for the debounce time.
    pub(super) fn start_mfs_autopublish(&self) {
        let Some(settings) = self.node().config().mfs.autopublish.clone() else {
            return;
        };
        let node = Arc::clone(self.node());
        let swarm = self.net().swarm.clone();
        let mut changes = node.mfs().subscribe();
        self.net().swarm.spawn_task(async move {
            while changes.changed().await.is_ok() {
                tokio::time::sleep(settings.debounce).await;
                changes.borrow_and_update();
                let n = Arc::clone(&node);
                let s = settings.clone();
                let local = tokio::task::spawn_blocking(move || {
                    let (value, opts) = autopublish_value(n.mfs(), &s)?;
                    Ok::<_, NodeError>(n.names().publish_local(&value, &opts)?)
                })
                .await;
                let (name, bytes) = match local {
                    Ok(Ok((name, bytes, _))) => (name, bytes),
                    Ok(Err(e)) => {
                        tracing::warn!(error = %e, "MFS autopublish failed");
                        continue;
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "MFS autopublish task failed");
                        continue;
                    }
                };
                match node.names().put(&swarm, &name, bytes).await {
                    Ok(()) | Err(IpnsError::Net(NetError::NoValuePeers)) => {}
                    Err(e) => tracing::warn!(error = %e, "MFS autopublish: DHT put failed"),
                }
            }
        });
    }
}

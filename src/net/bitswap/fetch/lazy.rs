//! A block source that fetches only what the store lacks (or holds only
//! as a corrupt or unreadable copy).

use super::{fetch_instead, FetchOptions, FetchSession};
use crate::block::{Block, Cid};
use crate::dag::{BlockSource, DagError};
use crate::net::bitswap::driver::Bitswap;
use crate::net::NetError;
use crate::store::Store;
use std::sync::Arc;

/// A block source that reads the store and starts a fetch session only when
/// a block is missing: content that is local costs no network work (the
/// gateway's common case), content that is not is fetched as by
/// [`FetchSession`]. For blocking threads (the DAG reader's), within a tokio
/// runtime whose handle it keeps. Once its `cancel` token is cancelled
/// (the request it serves ended), a block it waits for from peers fails at
/// once instead of holding the thread until the stall timeout.
pub struct LazySource {
    bitswap: Bitswap,
    store: Arc<dyn Store>,
    root: Option<Cid>,
    opts: FetchOptions,
    runtime: tokio::runtime::Handle,
    session: std::sync::OnceLock<Result<FetchSession, NetError>>,
    cancel: tokio_util::sync::CancellationToken,
}

impl LazySource {
    /// Needs to be created inside the runtime (it keeps its handle).
    pub fn new(
        bitswap: Bitswap,
        store: Arc<dyn Store>,
        root: Option<Cid>,
        opts: FetchOptions,
    ) -> LazySource {
        LazySource {
            bitswap,
            store,
            root,
            opts,
            runtime: tokio::runtime::Handle::current(),
            session: std::sync::OnceLock::new(),
            cancel: tokio_util::sync::CancellationToken::new(),
        }
    }

    /// This source, its network waits ending when `cancel` is cancelled.
    pub fn until(mut self, cancel: tokio_util::sync::CancellationToken) -> LazySource {
        self.cancel = cancel;
        self
    }

    /// Runs `work` on the runtime until it ends or the source is cancelled.
    fn unless_cancelled<T>(
        &self,
        cid: &Cid,
        work: impl std::future::Future<Output = Result<T, NetError>>,
    ) -> Result<T, DagError> {
        let ended = self.runtime.block_on(async {
            tokio::select! {
                r = work => Some(r),
                () = self.cancel.cancelled() => None,
            }
        });
        match ended {
            None => Err(DagError::Fetch {
                cid: *cid,
                reason: "the request ended".into(),
            }),
            Some(Ok(v)) => Ok(v),
            Some(Err(NetError::Store(s))) => Err(DagError::Store(s)),
            Some(Err(e)) => Err(DagError::Fetch {
                cid: *cid,
                reason: e.to_string(),
            }),
        }
    }

    /// The session, started on first use (blocking).
    fn session(&self) -> Result<&FetchSession, DagError> {
        if self.cancel.is_cancelled() {
            return Err(DagError::Fetch {
                cid: self.root.unwrap_or_default(),
                reason: "the request ended".into(),
            });
        }
        let s = self.session.get_or_init(|| {
            let bitswap = self.bitswap.clone();
            let (root, opts) = (self.root, self.opts);
            self.runtime
                .block_on(async move { bitswap.session(root, opts).await })
        });
        s.as_ref().map_err(|e| DagError::Fetch {
            cid: self.root.unwrap_or_default(),
            reason: e.to_string(),
        })
    }

    /// The session if one was needed (for progress figures).
    pub fn started(&self) -> Option<&FetchSession> {
        self.session.get().and_then(|s| s.as_ref().ok())
    }
}

impl BlockSource for LazySource {
    fn block(&self, cid: &Cid) -> Result<Block, DagError> {
        if let Some(b) = crate::block::identity_block(cid) {
            return Ok(b);
        }
        if self.started().is_none() {
            match self.store.get(cid) {
                Ok(Some(b)) => return Ok(b),
                Ok(None) => {}
                // The session reads it again, asks peers, and replaces a
                // corrupt copy with the verified one.
                Err(e) if fetch_instead(&e) => {}
                Err(e) => return Err(e.into()),
            }
        }
        let session = self.session()?;
        self.unless_cancelled(cid, session.get(*cid))
    }

    fn fetching(&self) -> bool {
        self.started().is_some()
    }

    fn whole_file_root(&self, block: &Block) {
        // Read from the store or fetched into it, verified either way.
        self.store.offer_whole_file(block);
    }

    fn prefetch(&self, cids: &[Cid]) {
        if let Some(s) = self.started() {
            return s.prefetch(cids);
        }
        let missing = cids.iter().any(|c| {
            c.hash().code() != crate::block::IDENTITY && !self.store.has(c).unwrap_or(false)
        });
        if missing {
            if let Ok(s) = self.session() {
                s.prefetch(cids);
            }
        }
    }
}

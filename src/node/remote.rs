//! Fetches of content that is not local, as requests start them: bounded
//! in number (each holds a blocking thread while it reads), and shared, so
//! many requests for one missing CID wait on a single fetch. Requests for
//! local content never go through here, so they never queue behind these.

use super::NodeError;
use crate::block::Cid;
use crate::net::bitswap::fetch::FetchSession;
use crate::net::NetError;
use futures::future::{BoxFuture, FutureExt, Shared, WeakShared};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// A root block's fetch, run by whoever awaits it first.
type Fetch = BoxFuture<'static, Result<(), Arc<NetError>>>;

/// One fetch of a root block, awaited by every request that wants it.
type RootFetch = Shared<Fetch>;

/// The gate remote fetches pass: a permit each, one fetch per root.
pub(super) struct RemoteFetches {
    permits: Arc<Semaphore>,
    /// Root fetches in flight; an entry whose every waiter has gone (its
    /// fetch dropped, cancelling the wants) no longer upgrades.
    inflight: Mutex<HashMap<Cid, WeakShared<Fetch>>>,
}

impl RemoteFetches {
    /// A gate letting `max` remote fetches run at once (at least one).
    pub(super) fn new(max: usize) -> RemoteFetches {
        RemoteFetches {
            permits: Arc::new(Semaphore::new(max.max(1))),
            inflight: Mutex::new(HashMap::new()),
        }
    }

    /// Waits for a permit, then for the block `root` to be stored, sharing
    /// the fetch with other requests for it; `start` begins a new fetch's
    /// session. The permit is the caller's until it drops it (while it
    /// reads the rest of the DAG). Dropping the future stops waiting, and
    /// the fetch ends when nobody waits for it any more.
    pub(super) async fn root(
        &self,
        root: Cid,
        start: impl FnOnce() -> BoxFuture<'static, Result<FetchSession, NetError>>,
    ) -> Result<OwnedSemaphorePermit, NodeError> {
        let permit = Arc::clone(&self.permits)
            .acquire_owned()
            .await
            .map_err(|_| {
                NodeError::Net(NetError::Stopped {
                    task: "remote fetch gate",
                })
            })?;
        let fetch = self.shared(root, start);
        let result = fetch.await;
        self.forget_if_done(&root);
        match result {
            Ok(()) => Ok(permit),
            Err(source) => Err(NodeError::RemoteFetch { cid: root, source }),
        }
    }

    /// The fetch of `root` in flight, or a new one.
    fn shared(
        &self,
        root: Cid,
        start: impl FnOnce() -> BoxFuture<'static, Result<FetchSession, NetError>>,
    ) -> RootFetch {
        let mut inflight = self.inflight.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(f) = inflight.get(&root).and_then(WeakShared::upgrade) {
            return f;
        }
        inflight.retain(|_, f| f.upgrade().is_some());
        let session = start();
        let fetch: Fetch = async move {
            let session = session.await.map_err(Arc::new)?;
            session.get(root).await.map_err(Arc::new)?;
            session.flush().await.map_err(Arc::new)
        }
        .boxed();
        let fetch = fetch.shared();
        if let Some(weak) = fetch.downgrade() {
            inflight.insert(root, weak);
        }
        fetch
    }

    /// Drops the entry of `root` once its fetch has ended.
    fn forget_if_done(&self, root: &Cid) {
        let mut inflight = self.inflight.lock().unwrap_or_else(|e| e.into_inner());
        let done = inflight
            .get(root)
            .and_then(WeakShared::upgrade)
            .is_none_or(|f| f.peek().is_some());
        if done {
            inflight.remove(root);
        }
    }
}

//! Fetches of content that is not local, as requests start them: bounded
//! in number (each holds a blocking thread while it reads), and shared, so
//! many requests for one missing CID wait on a single fetch. Requests for
//! local content never go through here, so they never queue behind these.
//! A request's [`RemoteTurn`] ends its fetches when the request ends.

use super::NodeError;
use crate::block::Cid;
use crate::net::bitswap::fetch::FetchSession;
use crate::net::NetError;
use futures::future::{BoxFuture, FutureExt, Shared, WeakShared};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::{CancellationToken, DropGuard};

/// A root block's fetch, run by whoever awaits it first.
type Fetch = BoxFuture<'static, Result<(), Arc<NetError>>>;

/// One fetch of a root block, awaited by every request that wants it.
type RootFetch = Shared<Fetch>;

/// The gate remote fetches pass: a permit each, one fetch per root.
pub(super) struct RemoteFetches {
    permits: Arc<Semaphore>,
    /// The number of permits, to tell how many are taken.
    max: usize,
    /// Root fetches in flight; an entry whose every waiter has gone (its
    /// fetch dropped, cancelling the wants) no longer upgrades.
    inflight: Mutex<HashMap<Cid, WeakShared<Fetch>>>,
}

impl RemoteFetches {
    /// A gate letting `max` remote fetches run at once (at least one).
    pub(super) fn new(max: usize) -> RemoteFetches {
        RemoteFetches {
            permits: Arc::new(Semaphore::new(max.max(1))),
            max: max.max(1),
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

    /// A gauge of the turns taken, for `/metrics`.
    pub(super) fn collector(&self) -> RemoteFetchCollector {
        RemoteFetchCollector {
            permits: Arc::clone(&self.permits),
            max: self.max,
        }
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

/// A request's claim on fetching from peers: its turn among remote fetches
/// (none when its root is local) and a token cancelled when this is
/// dropped, which stops the waits of every fetch made for the request.
/// Whoever answers holds it until the response has been sent or dropped.
#[derive(Debug)]
pub struct RemoteTurn {
    _turn: Option<OwnedSemaphorePermit>,
    cancel: CancellationToken,
    _stop: DropGuard,
}

impl RemoteTurn {
    /// A turn (`None` for local content) whose drop cancels `cancel`.
    pub(super) fn new(turn: Option<OwnedSemaphorePermit>, cancel: CancellationToken) -> RemoteTurn {
        RemoteTurn {
            _turn: turn,
            _stop: cancel.clone().drop_guard(),
            cancel,
        }
    }

    /// The token to give the request's block sources and readers.
    pub fn cancel_token(&self) -> CancellationToken {
        self.cancel.clone()
    }
}

/// Exposes how many turns among remote fetches are taken.
#[derive(Debug)]
pub(super) struct RemoteFetchCollector {
    permits: Arc<Semaphore>,
    max: usize,
}

impl prometheus_client::collector::Collector for RemoteFetchCollector {
    fn encode(
        &self,
        mut encoder: prometheus_client::encoding::DescriptorEncoder,
    ) -> Result<(), std::fmt::Error> {
        let taken = self.max.saturating_sub(self.permits.available_permits());
        crate::net::metrics::encode_gauge(
            &mut encoder,
            "remote_fetches",
            "Requests fetching content that is not local (turns taken of [net] max_remote_fetches)",
            i64::try_from(taken).unwrap_or(i64::MAX),
        )
    }
}

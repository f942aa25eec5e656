//! This node's own copies: fetching one a peer asked it to hold and
//! pinning it, listing itself in a record that forgot it, and dropping one
//! that was trimmed or removed.

use super::owned_pins::{disown_pin, own_pin, owns_pin};
use super::record::{self, Record};
use super::{ReplicateError, Replicator};
use crate::block::Cid;
use crate::dag::fetch::DagFetch;
use crate::net::bitswap::fetch::{FetchOptions, FetchSession, ProviderSearch};
use crate::store::{PinKind, StoreError};
use libp2p::PeerId;
use std::sync::atomic::Ordering;
use std::time::Instant;

impl Replicator {
    /// Fetches a replica asked of this node from `holders` and pins it.
    pub(super) async fn fetch_and_pin(&self, root: Cid, holders: Vec<PeerId>) {
        let _gc = self.inner.gc_lock.read().await;
        let started = Instant::now();
        let result = self.fetch_replica(root, holders, started).await;
        self.state().pinning.remove(&root);
        match result {
            Ok((stats, still)) => {
                tracing::info!(%root, blocks = stats.blocks, bytes = stats.bytes, ms = started.elapsed().as_millis() as u64, "replica held");
                if still {
                    // After the copy counts: a DHT walk can take seconds.
                    let _ = self.inner.swarm.provide(root).await;
                }
            }
            Err(e) => tracing::warn!(%root, "fetching a replica failed: {e}"),
        }
    }

    /// The work of [`fetch_and_pin`](Self::fetch_and_pin): what was
    /// fetched, and whether the copy is still wanted here (and pinned).
    async fn fetch_replica(
        &self,
        root: Cid,
        holders: Vec<PeerId>,
        started: Instant,
    ) -> Result<(DagFetch, bool), ReplicateError> {
        let fetch_error = |source| ReplicateError::Fetch { cid: root, source };
        let opts = FetchOptions {
            stall_timeout: self.inner.config.fetch_stall,
            // The holders are named; the DHT is the fallback when they fail.
            provider_search: ProviderSearch::After(self.inner.config.fetch_stall / 4),
            max_bytes_per_sec: Some(self.inner.config.repair_bytes_per_sec).filter(|b| *b > 0),
            ..FetchOptions::default()
        };
        let session = self.session_with(root, holders, opts).await?;
        let opened = started.elapsed();
        let mut first = None;
        let stats = self
            .inner
            .bitswap
            .fetch_dag_in(&session, root, &mut |_| {
                first.get_or_insert_with(|| started.elapsed());
            })
            .await
            .map_err(fetch_error)?;
        tracing::debug!(
            %root,
            opened_ms = opened.as_millis() as u64,
            first_block_ms = first.unwrap_or_default().as_millis() as u64,
            fetched_ms = started.elapsed().as_millis() as u64,
            "replica fetch timing"
        );
        let fetched = session.progress().bytes.load(Ordering::Relaxed);
        self.inner
            .stats
            .repair_bytes
            .fetch_add(fetched, Ordering::Relaxed);
        // Removed or trimmed while fetching: keep nothing pinned.
        let still = self
            .record(&root)
            .is_some_and(|r| !r.removed && r.holders.contains(&self.inner.me));
        if still {
            self.blocking(move |this| this.pin_replica(&root))
                .await?
                .map_err(|source| ReplicateError::Store { cid: root, source })?;
        }
        Ok((stats, still))
    }

    /// A fetch session for `cid` that asks `holders` besides the
    /// connected peers.
    pub(super) async fn session_with(
        &self,
        cid: Cid,
        holders: Vec<PeerId>,
        opts: FetchOptions,
    ) -> Result<FetchSession, ReplicateError> {
        let fetch_error = |source| ReplicateError::Fetch { cid, source };
        let session = self
            .inner
            .bitswap
            .session(Some(cid), opts)
            .await
            .map_err(fetch_error)?;
        session.add_peers(holders).await.map_err(fetch_error)?;
        Ok(session)
    }

    /// Pins a fetched replica as the replicator's; a root the user had
    /// pinned here stays the user's pin (store writes: on a blocking
    /// thread).
    fn pin_replica(&self, root: &Cid) -> Result<(), StoreError> {
        let store = &*self.inner.store;
        let had = store.pin_of(root)?;
        if had != Some(PinKind::Recursive) {
            if had.is_none() {
                own_pin(store, root)?;
            }
            store.pin(root, PinKind::Recursive)?;
        }
        Ok(())
    }

    /// A record that does not list this node although it holds the root
    /// (a newer version from a holder that had not heard of this copy:
    /// records merge by version) lists it again, as a new version. Only an
    /// explicit trim or a tombstone removes a copy; a merge never does, or
    /// two holders acting at once would delete each other's placements.
    /// Store reads and writes: on a blocking thread.
    pub(super) fn claim(&self, rec: Record) -> Record {
        let me = self.inner.me;
        if rec.removed || rec.holders.contains(&me) || rec.holders.len() >= record::MAX_HOLDERS {
            return rec;
        }
        let holds = self.state().pinning.contains(&rec.root) || self.pinned_here(&rec.root);
        if !holds {
            return rec;
        }
        self.inner
            .records
            .update(&rec.root, |current| {
                let mut claimed = current?.clone();
                if claimed.removed
                    || claimed.holders.contains(&me)
                    || claimed.holders.len() >= record::MAX_HOLDERS
                {
                    return None;
                }
                claimed.holders.insert(me);
                claimed.bump();
                Some(claimed)
            })
            .unwrap_or(rec)
    }

    /// [`claim`](Self::claim) from async code.
    pub(super) async fn claim_off_runtime(&self, rec: Record) -> Record {
        let claiming = rec.clone();
        match self.blocking(move |this| this.claim(claiming)).await {
            Ok(claimed) => claimed,
            Err(e) => {
                tracing::warn!(root = %rec.root, "listing this node as a holder: {e}");
                rec
            }
        }
    }

    /// Removes the local pin of `root` if the replicator made it (see
    /// [`super::owned_pins`]); a pin of the user's own stays. Store writes:
    /// on a blocking thread.
    pub(super) fn drop_local_pin(&self, root: &Cid) {
        let store = &*self.inner.store;
        if !owns_pin(store, root) {
            if matches!(store.pin_of(root), Ok(Some(_))) {
                tracing::debug!(%root, "replica no longer needed; the local pin is the user's: kept");
            }
            return;
        }
        match store.unpin(root) {
            Ok(_) => tracing::info!(%root, "replica dropped (removed or trimmed)"),
            Err(StoreError::NotPinned { .. }) => {}
            Err(e) => {
                tracing::warn!(%root, "dropping a replica: {e}");
                return;
            }
        }
        if let Err(e) = disown_pin(store, root) {
            tracing::warn!(%root, "dropping a replica's mark: {e}");
        }
    }

    /// [`drop_local_pin`](Self::drop_local_pin) from async code.
    pub(super) async fn unpin_replica(&self, root: Cid) {
        if let Err(e) = self.blocking(move |this| this.drop_local_pin(&root)).await {
            tracing::warn!(%root, "dropping a replica: {e}");
        }
    }
}

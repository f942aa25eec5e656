//! The scrub: every `[replication] scrub_interval`, every stored block is
//! read and re-hashed at the scrub rate; a corrupt one is forgotten and
//! fetched again from the peers holding replicated roots.

use super::{ReplicateError, Replicator};
use crate::block::{Cid, RAW};
use crate::net::bitswap::fetch::FetchOptions;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

impl Replicator {
    /// Re-hashes every stored block (at the scrub rate); a corrupt one is
    /// forgotten and fetched again from peers that hold it.
    pub async fn scrub_pass(&self) {
        let blocks = self
            .blocking(|this| {
                let mut v = Vec::new();
                let _ = this.inner.store.for_each_block(&mut |b| {
                    v.push((b.multihash, b.len));
                    Ok(())
                });
                v
            })
            .await
            .unwrap_or_default();
        let rate = self.inner.config.scrub_bytes_per_sec;
        let start = Instant::now();
        let mut read = 0u64;
        for (mh, len) in blocks {
            let ok = self
                .blocking(move |this| match this.inner.store.read_raw(&mh) {
                    Ok(Some(data)) => crate::block::multihash_matches(&mh, &data),
                    Ok(None) => true,
                    Err(_) => false,
                })
                .await
                .unwrap_or(true);
            self.inner
                .stats
                .scrub_checked
                .fetch_add(1, Ordering::Relaxed);
            read += len;
            if !ok {
                let cid = Cid::new_v1(RAW, mh);
                tracing::warn!(%cid, "scrub: corrupt block, fetching it again");
                self.inner
                    .stats
                    .scrub_corrupt
                    .fetch_add(1, Ordering::Relaxed);
                if let Err(e) = self.refetch(cid).await {
                    tracing::warn!(%cid, "scrub: could not fetch a good copy: {e}");
                } else {
                    self.inner
                        .stats
                        .scrub_repaired
                        .fetch_add(1, Ordering::Relaxed);
                    tracing::info!(%cid, "scrub: repaired from a peer");
                }
            }
            if rate > 0 {
                let due = Duration::from_secs_f64(read as f64 / rate as f64);
                if let Some(wait) = due.checked_sub(start.elapsed()) {
                    tokio::time::sleep(wait).await;
                }
            }
        }
    }

    /// Forgets the corrupt block `cid` and fetches it again from the other
    /// holders of replicated roots (the DHT as a fallback).
    async fn refetch(&self, cid: Cid) -> Result<(), ReplicateError> {
        let mh = *cid.hash();
        self.blocking(move |this| this.inner.store.remove(&mh))
            .await?
            .map_err(|source| ReplicateError::Store { cid, source })?;
        let holders = self.inner.records.holders_besides(&self.inner.me);
        let opts = FetchOptions {
            stall_timeout: self.inner.config.fetch_stall,
            ..FetchOptions::default()
        };
        let session = self.session_with(cid, holders, opts).await?;
        let fetch_error = |source| ReplicateError::Fetch { cid, source };
        session.get(cid).await.map_err(fetch_error)?;
        session.flush().await.map_err(fetch_error)
    }
}

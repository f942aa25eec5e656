//! The scrub: every `[replication] scrub_interval`, every stored block is
//! read and re-hashed at the scrub rate, a page of the store at a time.
//!
//! Only proof acts: a block whose bytes hash to another digest than its
//! name (or whose index entry no block can have) is corrupt, and a fetch
//! session brings a copy from the other holders of replicated roots (the
//! DHT as a fallback), verifies it and writes it over the corrupt one
//! ([`Store::replace`](crate::store::Store::replace)); nothing is removed
//! first, so a block nobody else has stays as it is. A read that fails
//! (EIO, too many open files) proves nothing: it is counted and the block
//! is read again next pass.

use super::{ReplicateError, Replicator};
use crate::block::{verify, BlockError, Cid, Multihash, RAW};
use crate::net::bitswap::fetch::FetchOptions;
use crate::store::{Store, StoreError, StoredBlock};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// Index entries read per page of a pass.
const SCRUB_PAGE: usize = 1024;

/// What one scrub pass found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ScrubReport {
    /// Blocks read and judged.
    pub checked: u64,
    /// Blocks proven corrupt.
    pub corrupt: u64,
    /// Corrupt blocks replaced by a verified copy from peers.
    pub repaired: u64,
    /// Blocks whose read failed (left as they are).
    pub unreadable: u64,
}

/// What reading a stored block showed.
#[derive(Debug)]
enum Verdict {
    /// Its bytes hash to its name (or its hash is one cairn cannot check).
    Intact,
    /// Forgotten since the page was listed.
    Gone,
    /// Proven corrupt.
    Corrupt,
    /// The read failed: nothing is known about its bytes.
    Unreadable(StoreError),
}

/// Reads the block `mh` names and judges it.
fn judge(store: &dyn Store, mh: &Multihash) -> Verdict {
    let cid = Cid::new_v1(RAW, *mh);
    match store.read_raw(mh) {
        Ok(None) => Verdict::Gone,
        Ok(Some(data)) => match verify(&cid, &data) {
            Err(BlockError::HashMismatch { .. }) => Verdict::Corrupt,
            _ => Verdict::Intact,
        },
        Err(StoreError::Corrupt { .. }) => Verdict::Corrupt,
        Err(e) => Verdict::Unreadable(e),
    }
}

impl Replicator {
    /// Re-hashes every stored block (at the scrub rate), a page at a time;
    /// a corrupt one is replaced by a verified copy from peers that hold
    /// it. Returns what the pass found.
    pub async fn scrub_pass(&self) -> ScrubReport {
        let rate = self.inner.config.scrub_bytes_per_sec;
        let start = Instant::now();
        let mut report = ScrubReport::default();
        let mut read = 0u64;
        let mut after: Option<Multihash> = None;
        loop {
            let page = self
                .blocking(move |this| this.inner.store.blocks_after(after.as_ref(), SCRUB_PAGE))
                .await;
            let page: Vec<StoredBlock> = match page {
                Ok(Ok(page)) => page,
                Ok(Err(e)) => {
                    tracing::warn!("scrub: listing stored blocks: {e}; pass ends");
                    break;
                }
                Err(e) => {
                    tracing::warn!("scrub: {e}; pass ends");
                    break;
                }
            };
            let Some(last) = page.last() else { break };
            after = Some(last.multihash);
            for entry in page {
                self.scrub_block(entry.multihash, &mut report).await;
                read += entry.len;
                if rate > 0 {
                    let due = Duration::from_secs_f64(read as f64 / rate as f64);
                    if let Some(wait) = due.checked_sub(start.elapsed()) {
                        tokio::time::sleep(wait).await;
                    }
                }
            }
        }
        report
    }

    /// Reads and judges one block; a corrupt one is fetched again.
    async fn scrub_block(&self, mh: Multihash, report: &mut ScrubReport) {
        let stats = &self.inner.stats;
        let verdict = self
            .blocking(move |this| judge(&*this.inner.store, &mh))
            .await;
        let cid = Cid::new_v1(RAW, mh);
        match verdict {
            Ok(Verdict::Intact) | Ok(Verdict::Gone) => {}
            Ok(Verdict::Unreadable(e)) => {
                tracing::warn!(%cid, "scrub: cannot read the block (left as it is): {e}");
                report.unreadable += 1;
                stats.scrub_unreadable.fetch_add(1, Ordering::Relaxed);
            }
            Ok(Verdict::Corrupt) => {
                tracing::warn!(%cid, "scrub: corrupt block, fetching a good copy");
                report.corrupt += 1;
                stats.scrub_corrupt.fetch_add(1, Ordering::Relaxed);
                match self.refetch(cid).await {
                    Ok(()) => {
                        report.repaired += 1;
                        stats.scrub_repaired.fetch_add(1, Ordering::Relaxed);
                        tracing::info!(%cid, "scrub: replaced by a verified copy from a peer");
                    }
                    Err(e) => {
                        tracing::warn!(%cid, "scrub: no good copy yet (the block is kept): {e}")
                    }
                }
            }
            Err(e) => {
                tracing::warn!(%cid, "scrub: {e}");
                return;
            }
        }
        report.checked += 1;
        stats.scrub_checked.fetch_add(1, Ordering::Relaxed);
    }

    /// Fetches a verified copy of the corrupt block `cid` from the other
    /// holders of replicated roots (the DHT as a fallback); the session
    /// writes it over the corrupt copy. Succeeds once the store reads the
    /// block back intact.
    async fn refetch(&self, cid: Cid) -> Result<(), ReplicateError> {
        let holders = self.inner.records.holders_besides(&self.inner.me);
        let opts = FetchOptions {
            stall_timeout: self.inner.config.fetch_stall,
            ..FetchOptions::default()
        };
        let session = self.session_with(cid, holders, opts).await?;
        let fetch_error = |source| ReplicateError::Fetch { cid, source };
        session.get(cid).await.map_err(fetch_error)?;
        session.flush().await.map_err(fetch_error)?;
        self.blocking(move |this| this.inner.store.get(&cid))
            .await?
            .map(|_| ())
            .map_err(|source| ReplicateError::Store { cid, source })
    }
}

//! Answering peers' requests (see [`super::protocol`]): probes, requests to
//! hold a copy, and trims or removals. Each answer first merges the
//! record the peer sent into ours.

use super::protocol::{read_message, write_message, ProtocolError, Request, Response};
use super::record::Record;
use super::{Replicator, EXCHANGE_TIMEOUT};
use crate::block::Cid;
use futures::StreamExt;
use libp2p::PeerId;

impl Replicator {
    /// Answers every stream peers open, each in a task of its own.
    pub(super) async fn serve(self, mut incoming: libp2p_stream::IncomingStreams) {
        while let Some((peer, mut stream)) = incoming.next().await {
            let this = self.clone();
            tokio::spawn(async move {
                let work = async {
                    let req: Request = read_message(&mut stream).await?;
                    let resp = this.answer(peer, req).await;
                    write_message(&mut stream, &resp).await?;
                    Ok::<_, ProtocolError>(())
                };
                if let Ok(Err(e)) = tokio::time::timeout(EXCHANGE_TIMEOUT, work).await {
                    tracing::debug!(%peer, "replication request: {e}");
                }
            });
        }
    }

    /// The answer to `req` from `from`. The store work runs on a blocking
    /// thread; a fetch of a copy to hold starts in a task of its own.
    async fn answer(&self, from: PeerId, req: Request) -> Response {
        let root = req.record().root;
        self.inner.swarm.activity().touch(from);
        let answered = match req {
            Request::Probe { record, sample } => {
                self.blocking(move |this| (this.answer_probe(&record, &sample), None))
                    .await
            }
            Request::Pin { record } => {
                self.blocking(move |this| this.answer_pin(from, &record))
                    .await
            }
            Request::Unpin { record } => {
                self.blocking(move |this| (this.answer_unpin(&record), None))
                    .await
            }
        };
        match answered {
            Ok((response, fetch)) => {
                if let Some(holders) = fetch {
                    let this = self.clone();
                    self.inner
                        .swarm
                        .spawn_task(async move { this.fetch_and_pin(root, holders).await });
                }
                response
            }
            Err(e) => {
                tracing::warn!(%root, peer = %from, "answering a replication request: {e}");
                Response::default()
            }
        }
    }

    /// Do we hold the root and the sampled blocks? A tombstone drops our
    /// copy; a record that forgot us lists us again.
    fn answer_probe(&self, record: &Record, sample: &[Cid]) -> Response {
        let root = record.root;
        let mine = self.inner.records.merge(record, false);
        let pinning = self.state().pinning.contains(&root);
        let pinned = self.pinned_here(&root);
        let has = self.has_all(sample);
        let mine = match mine {
            Some(m) if m.removed => {
                self.drop_local_pin(&root);
                Some(m)
            }
            Some(m) => Some(self.claim(m)),
            None => None,
        };
        Response {
            pinned,
            pinning,
            has,
            record: mine,
            ..Response::default()
        }
    }

    /// Takes a copy to hold unless the root was removed or the quota would
    /// be passed; returns the holders to fetch it from when a fetch is to
    /// start.
    fn answer_pin(&self, from: PeerId, record: &Record) -> (Response, Option<Vec<PeerId>>) {
        let root = record.root;
        if let Some(mine) = self.record(&root) {
            if mine.removed && mine.version >= record.version {
                let refused = Response {
                    reason: format!("{root} was removed (version {})", mine.version),
                    record: Some(mine),
                    ..Response::default()
                };
                return (refused, None);
            }
        }
        let max = self.inner.config.storage_max;
        let used = self.inner.store.used_bytes();
        let pinned = self.pinned_here(&root);
        if max > 0 && !pinned && used.saturating_add(record.size) > max {
            let refused = Response {
                reason: format!(
                    "over quota: {used} bytes stored, {} more would pass the {max}-byte limit",
                    record.size
                ),
                ..Response::default()
            };
            return (refused, None);
        }
        let Some(rec) = self.inner.records.merge(record, true) else {
            return (Response::default(), None);
        };
        let fetch = (!pinned).then(|| {
            self.state().pinning.insert(root);
            rec.holders
                .iter()
                .copied()
                .filter(|p| *p != self.inner.me)
                .chain(std::iter::once(from))
                .collect()
        });
        let accepted = Response {
            accepted: true,
            pinned,
            pinning: !pinned,
            record: Some(rec),
            ..Response::default()
        };
        (accepted, fetch)
    }

    /// A record that no longer lists us, or a tombstone: drop our copy.
    fn answer_unpin(&self, record: &Record) -> Response {
        let mine = self.inner.records.merge(record, false);
        if let Some(m) = &mine {
            if m.removed || !m.holders.contains(&self.inner.me) {
                self.drop_local_pin(&record.root);
            }
        }
        Response {
            record: mine,
            ..Response::default()
        }
    }
}

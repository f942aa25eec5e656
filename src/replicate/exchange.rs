//! Asking a peer: one request and its response over a new stream, with a
//! DHT lookup of a peer that cannot be reached at its known addresses.

use super::protocol::{read_message, write_message, Request, Response, PROTOCOL};
use super::{ReplicateError, Replicator, EXCHANGE_TIMEOUT};
use libp2p::{PeerId, StreamProtocol};
use std::time::{Duration, Instant};

/// How long looking a peer up on the DHT may take.
const FIND_PEER_TIMEOUT: Duration = Duration::from_secs(5);

impl Replicator {
    /// Sends one request to `peer` and reads its response; a peer that
    /// cannot be reached at its known addresses is looked up on the DHT (it
    /// may have restarted elsewhere) and tried once more.
    ///
    /// A peer not found is not looked up again for a repair interval: a
    /// node that is down would otherwise cost a DHT walk per probe.
    pub(super) async fn exchange(
        &self,
        peer: PeerId,
        req: Request,
    ) -> Result<Response, ReplicateError> {
        match self.exchange_once(peer, &req).await {
            Ok(r) => Ok(r),
            Err(first) => {
                let backoff = self.inner.config.repair_interval;
                let looked_up_lately = self
                    .state()
                    .not_found
                    .get(&peer)
                    .is_some_and(|t| t.elapsed() < backoff);
                if looked_up_lately {
                    return Err(first);
                }
                let lookup =
                    tokio::time::timeout(FIND_PEER_TIMEOUT, self.inner.swarm.find_peer(peer));
                if !matches!(lookup.await, Ok(Ok(_))) {
                    let mut st = self.state();
                    st.not_found.retain(|_, t| t.elapsed() < backoff);
                    st.not_found.insert(peer, Instant::now());
                    return Err(first);
                }
                self.state().not_found.remove(&peer);
                self.exchange_once(peer, &req).await
            }
        }
    }

    /// One request to `peer` at the addresses known now.
    pub(super) async fn exchange_once(
        &self,
        peer: PeerId,
        req: &Request,
    ) -> Result<Response, ReplicateError> {
        let root = req.record().root;
        // A peer holding our replicas stays connected (the swarm's
        // connection manager keeps recently active peers).
        self.inner.swarm.activity().touch(peer);
        let mut control = self
            .inner
            .control
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let work = async {
            let mut stream = control
                .open_stream(peer, StreamProtocol::new(PROTOCOL))
                .await
                .map_err(|source| ReplicateError::Open { peer, root, source })?;
            let failed = |source| ReplicateError::Protocol { peer, root, source };
            write_message(&mut stream, req).await.map_err(failed)?;
            let response = read_message(&mut stream).await.map_err(failed)?;
            let _ = futures::AsyncWriteExt::close(&mut stream).await;
            Ok(response)
        };
        tokio::time::timeout(EXCHANGE_TIMEOUT, work)
            .await
            .map_err(|_| ReplicateError::Timeout { peer, root })?
    }
}

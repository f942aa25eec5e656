//! The network side of durable logs ([`crate::log`]), one task per node
//! plus one per followed log:
//!
//! - a log created here has its head announced on its topic
//!   ([`announce::topic`]) after every change and again every
//!   [`ANNOUNCE_INTERVAL`] (so a follower that was offline learns it), and
//!   published under the log key's IPNS name (at most every
//!   [`PUBLISH_INTERVAL`]); with a replication factor above 1 its head is
//!   handed to the replicator (the previous head's replication removed),
//!   so the repair loop keeps the live chain at that many copies;
//! - a followed log listens on its topic: a head signed by the log's key
//!   and past the local one is fetched back by CID over Bitswap (from the
//!   announcer and whoever else has the blocks) until the local head, each
//!   link checked, then taken in oldest first ([`Logs::adopt`]), so every
//!   message arrives once and in order.

use super::online::OnlineNode;
use super::Node;
use crate::block::{Block, Cid};
use crate::dag::batch::{self, LogBatch};
use crate::log::announce::{self, HeadAnnounce};
use crate::log::{LogError, LogState, Logs, Origin};
use crate::names::ipns::PublishOptions;
use crate::net::bitswap::fetch::FetchOptions;
use crate::net::Network;
use crate::replicate::Replicator;
use libp2p::PeerId;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How often a local log's head is announced again.
pub const ANNOUNCE_INTERVAL: Duration = Duration::from_secs(2);

/// Least time between two IPNS publications of a log's head.
pub const PUBLISH_INTERVAL: Duration = Duration::from_secs(30);

/// Most batches one catch-up fetches (their CIDs are held meanwhile).
pub const MAX_CATCHUP_BATCHES: usize = 1 << 20;

/// Batches taken in per step of a catch-up.
const ADOPT_STEP: usize = 256;

/// How long a burst of changes is let settle before heads are announced.
const SETTLE: Duration = Duration::from_millis(20);

/// What the log tasks need of the online node.
#[derive(Clone)]
struct LogDriver {
    node: Arc<Node>,
    net: Arc<Network>,
    replicator: Replicator,
    gc_lock: Arc<tokio::sync::RwLock<()>>,
    fetch: FetchOptions,
}

/// What the driver did last for a local log.
#[derive(Default)]
struct Sent {
    /// The head handed to the replicator.
    replicated: Option<Cid>,
    /// The head published under the IPNS name, and when.
    published: Option<(Cid, Instant)>,
}

impl OnlineNode {
    /// Starts the log tasks.
    pub(super) fn start_logs(&self) {
        let driver = LogDriver {
            node: Arc::clone(self.node()),
            net: Arc::clone(self.net()),
            replicator: self.replicator().clone(),
            gc_lock: Arc::clone(self.gc_lock()),
            fetch: self.fetch_options(),
        };
        self.net().swarm.spawn_task(driver.run());
    }
}

impl LogDriver {
    fn logs(&self) -> &Arc<Logs> {
        self.node.logs()
    }

    async fn run(self) {
        let mut changes = self.logs().changes();
        let mut tick = tokio::time::interval(ANNOUNCE_INTERVAL);
        let mut following: HashSet<String> = HashSet::new();
        let mut sent: HashMap<String, Sent> = HashMap::new();
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                changed = changes.changed() => {
                    if changed.is_err() {
                        return;
                    }
                    tokio::time::sleep(SETTLE).await;
                }
            }
            changes.borrow_and_update();
            let logs = Arc::clone(self.logs());
            let list = match tokio::task::spawn_blocking(move || logs.list()).await {
                Ok(Ok(list)) => list,
                Ok(Err(e)) => {
                    tracing::warn!("logs: listing: {e}");
                    continue;
                }
                Err(_) => return,
            };
            for entry in list {
                match entry.state.origin {
                    Origin::Local => {
                        let s = sent.entry(entry.name.clone()).or_default();
                        self.send_head(&entry.name, &entry.state, s).await;
                    }
                    Origin::Follow => {
                        if following.insert(entry.name.clone()) {
                            let this = self.clone();
                            let (name, id) = (entry.name, entry.state.id);
                            self.net
                                .swarm
                                .spawn_task(async move { this.follow(name, id).await });
                        }
                    }
                }
            }
        }
    }

    /// Announces a local log's head, and replicates and publishes it when
    /// it moved.
    async fn send_head(&self, name: &str, state: &LogState, sent: &mut Sent) {
        let Ok(Some(head)) = state.head_cid(name) else {
            return;
        };
        let key = match self.logs().key(name) {
            Ok(k) => k,
            Err(e) => {
                tracing::warn!(log = name, "logs: its key: {e}");
                return;
            }
        };
        let a = HeadAnnounce {
            id: state.id.clone(),
            head,
            next: state.next,
        };
        match a.encode(&key) {
            Ok(data) => {
                let topic = announce::topic(&state.id);
                if let Err(e) = self.net.swarm.pubsub_publish(topic, data.into()).await {
                    tracing::debug!(log = name, "logs: announcing the head: {e}");
                }
            }
            Err(e) => tracing::warn!(log = name, "logs: signing the head: {e}"),
        }
        if state.replication > 1 && sent.replicated != Some(head) {
            match self
                .replicator
                .keep_held(head, Some(state.replication), Some(state.bytes))
                .await
            {
                Ok(_) => {
                    if let Some(old) = sent.replicated.replace(head) {
                        self.replicator.unpin(&old).await;
                    }
                }
                Err(e) => tracing::warn!(log = name, %head, "logs: replicating the head: {e}"),
            }
        }
        let due = sent
            .published
            .is_none_or(|(h, at)| h != head && at.elapsed() >= PUBLISH_INTERVAL);
        if due {
            sent.published = Some((head, Instant::now()));
            self.publish(name, head).await;
        }
    }

    /// Publishes `/ipfs/HEAD` under log `name`'s key (best effort: a node
    /// with no DHT peers keeps the record for later).
    async fn publish(&self, name: &str, head: Cid) {
        let names = Arc::clone(self.node.names());
        let opts = PublishOptions {
            key: Some(format!("{}{name}", crate::log::KEY_PREFIX)),
            lifetime: None,
            ttl: None,
        };
        let value = format!("/ipfs/{head}");
        let local = tokio::task::spawn_blocking(move || names.publish_local(&value, &opts)).await;
        let Ok(Ok((peer, bytes, _))) = local else {
            tracing::debug!(
                log = name,
                "logs: publishing the head under its name failed"
            );
            return;
        };
        if let Err(e) = self.node.names().put(&self.net.swarm, &peer, bytes).await {
            tracing::debug!(log = name, "logs: putting the head's name: {e}");
        }
    }

    /// Follows log `id` as `name` until its subscription ends.
    async fn follow(self, name: String, id: String) {
        let mut sub = match self.net.swarm.pubsub_subscribe(announce::topic(&id)).await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(log = name, "logs: following: {e}");
                return;
            }
        };
        while let Some(m) = sub.next().await {
            // The newest of what is waiting.
            let mut best: Option<(HeadAnnounce, PeerId)> = None;
            let mut next = Some(m);
            while let Some(m) = next {
                match HeadAnnounce::decode(&id, &m.data) {
                    Ok(a) if best.as_ref().is_none_or(|(b, _)| a.next > b.next) => {
                        best = Some((a, m.from));
                    }
                    Ok(_) => {}
                    Err(e) => tracing::debug!(log = name, peer = %m.from, "logs: {e}"),
                }
                next = sub.try_next();
            }
            let Some((a, from)) = best else { continue };
            let logs = Arc::clone(self.logs());
            let n = name.clone();
            let state = match tokio::task::spawn_blocking(move || logs.get(&n)).await {
                Ok(Ok(s)) if s.origin == Origin::Follow && s.id == id => s,
                // Removed or replaced: stop following.
                Ok(_) | Err(_) => return,
            };
            if a.next <= state.next {
                continue;
            }
            if let Err(e) = self.catch_up(&name, &state, &a, from).await {
                tracing::warn!(log = name, head = %a.head, peer = %from, "logs: catching up: {e}");
            }
        }
    }

    /// Fetches the batches from `a.head` back to the local head, checking
    /// each link, then takes them in oldest first.
    async fn catch_up(
        &self,
        name: &str,
        state: &LogState,
        a: &HeadAnnounce,
        from: PeerId,
    ) -> Result<(), CatchUpError> {
        // Fetched blocks stay unpinned until adopted: no GC meanwhile.
        let _guard = self.gc_lock.read().await;
        let session = self.net.bitswap.session(Some(a.head), self.fetch).await?;
        session.add_peers(vec![from]).await?;
        let ours = state.head_cid(name)?;
        let mut cids: Vec<Cid> = Vec::new();
        let mut newer: Option<(Cid, LogBatch)> = None;
        let mut at = Some(a.head);
        while let Some(cid) = at {
            if Some(cid) == ours {
                break;
            }
            if cids.len() >= MAX_CATCHUP_BATCHES {
                return Err(CatchUpError::TooFarBehind);
            }
            let block = session.get(cid).await?;
            let b = LogBatch::decode(&block).map_err(LogError::from)?;
            match &newer {
                Some((ncid, n)) => {
                    batch::check_link(&state.id, *ncid, n, cid, &b).map_err(LogError::from)?
                }
                None if b.end() != a.next || b.log != state.id => {
                    return Err(CatchUpError::Mismatch(cid));
                }
                None => {}
            }
            if b.end() <= state.next {
                // Past the local head without meeting it: another chain.
                return Err(CatchUpError::Mismatch(cid));
            }
            cids.push(cid);
            at = b.prev;
            newer = Some((cid, b));
        }
        session.flush().await?;
        drop(session);
        // Oldest first, a step at a time.
        for step in cids.rchunks(ADOPT_STEP) {
            let logs = Arc::clone(self.logs());
            let store = Arc::clone(self.node.store());
            let (n, step) = (name.to_string(), step.to_vec());
            tokio::task::spawn_blocking(move || {
                let mut batches: Vec<(Block, LogBatch)> = Vec::with_capacity(step.len());
                for cid in &step {
                    let block = store
                        .get(cid)?
                        .ok_or(LogError::MissingBatch { cid: *cid })?;
                    let b = LogBatch::decode(&block)?;
                    batches.push((block, b));
                }
                logs.adopt(&n, batches)
            })
            .await
            .map_err(|_| CatchUpError::Stopped)??;
        }
        Ok(())
    }
}

/// Why a catch-up stopped.
#[derive(Debug, thiserror::Error)]
enum CatchUpError {
    #[error(transparent)]
    Log(#[from] LogError),
    #[error("fetching: {0}")]
    Net(#[from] crate::net::NetError),
    #[error("more than {MAX_CATCHUP_BATCHES} batches behind")]
    TooFarBehind,
    #[error("the announced chain does not continue the local one (at {0})")]
    Mismatch(Cid),
    #[error("the node is stopping")]
    Stopped,
}

impl From<crate::store::StoreError> for CatchUpError {
    fn from(e: crate::store::StoreError) -> Self {
        CatchUpError::Log(e.into())
    }
}

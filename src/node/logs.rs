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
//!   message arrives once and in order; never below the floor the head
//!   announcement carries (retention dropped those batches), and the
//!   follower's own floor follows it ([`Logs::raise_floor`]). A follower
//!   whose topic cannot be subscribed to tries again with capped
//!   exponential backoff ([`resubscribe_wait`]); `log follow` itself
//!   subscribes first and hands that subscription to the follower
//!   ([`OnlineNode::follow_log`]), so a node at its topic cap refuses
//!   at once.
//!
//! Local logs with a retention have it applied every [`RETAIN_INTERVAL`]
//! (and after each append).

use super::online::OnlineNode;
use super::Node;
use crate::block::{Block, Cid};
use crate::dag::batch::{self, LogBatch};
use crate::log::announce::{self, HeadAnnounce};
use crate::log::{LogError, LogState, Logs, Origin};
use crate::names::ipns::PublishOptions;
use crate::net::bitswap::fetch::FetchOptions;
use crate::net::pubsub::{PubsubError, Subscription};
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

/// How often the daemon applies the retention of its logs (besides after
/// every append): an age passes without appends.
pub const RETAIN_INTERVAL: Duration = Duration::from_secs(10);

/// How long a burst of changes is let settle before heads are announced.
const SETTLE: Duration = Duration::from_millis(20);

/// The wait before a follower tries its topic again after a failed
/// subscription (doubled at each failure, up to [`RESUBSCRIBE_MAX`]).
pub const RESUBSCRIBE_FIRST: Duration = Duration::from_secs(1);

/// The longest wait between two subscription attempts of a follower.
pub const RESUBSCRIBE_MAX: Duration = Duration::from_secs(60);

/// The wait after `failures` failed subscription attempts in a row: capped
/// exponential backoff.
pub fn resubscribe_wait(failures: u32) -> Duration {
    RESUBSCRIBE_FIRST
        .saturating_mul(1u32 << failures.min(16))
        .min(RESUBSCRIBE_MAX)
}

/// The followed logs whose follow task runs (by local name), shared by the
/// driver and `log follow`, so a log has one task, made once.
pub(super) type Following = Arc<std::sync::Mutex<HashSet<String>>>;

fn lock(following: &Following) -> std::sync::MutexGuard<'_, HashSet<String>> {
    following.lock().unwrap_or_else(|e| e.into_inner())
}

/// Takes a log's name out of [`Following`] when its follow task ends.
struct FollowTask(Following, String);

impl Drop for FollowTask {
    fn drop(&mut self) {
        lock(&self.0).remove(&self.1);
    }
}

/// What the log tasks need of the online node.
#[derive(Clone)]
struct LogDriver {
    node: Arc<Node>,
    net: Arc<Network>,
    replicator: Replicator,
    gc_lock: Arc<tokio::sync::RwLock<()>>,
    fetch: FetchOptions,
    following: Following,
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
    fn log_driver(&self) -> LogDriver {
        LogDriver {
            node: Arc::clone(self.node()),
            net: Arc::clone(self.net()),
            replicator: self.replicator().clone(),
            gc_lock: Arc::clone(self.gc_lock()),
            fetch: self.fetch_options(),
            following: Arc::clone(&self.log_following),
        }
    }

    /// Starts the log tasks.
    pub(super) fn start_logs(&self) {
        self.net().swarm.spawn_task(self.log_driver().run());
    }

    /// `log follow`: follows log `id` here as `name`. The log's topic is
    /// subscribed first, and that subscription is the one its follow task
    /// listens on, so a node that cannot take one more topic (`[pubsub]
    /// max_topics`) or has pub/sub off refuses at once
    /// ([`LogError::TopicCap`], [`LogError::Pubsub`]) and keeps no
    /// half-made followed log.
    pub async fn follow_log(
        &self,
        name: &str,
        id: &str,
        replication: u8,
    ) -> Result<LogState, LogError> {
        crate::log::state::check_name("log", name)?;
        id.parse::<PeerId>().map_err(|_| LogError::BadId {
            id: id.chars().take(80).collect(),
        })?;
        let logs = Arc::clone(self.node().logs());
        let follow = {
            let (name, id) = (name.to_string(), id.to_string());
            move || logs.follow(&name, &id, replication)
        };
        let driver = self.log_driver();
        if !lock(&driver.following).insert(name.to_string()) {
            // Its task runs (it listens already): only the state is asked.
            return tokio::task::spawn_blocking(follow)
                .await
                .map_err(|_| LogError::Stopping)?;
        }
        let task = FollowTask(Arc::clone(&driver.following), name.to_string());
        let sub = match self.net().swarm.pubsub_subscribe(announce::topic(id)).await {
            Ok(sub) => sub,
            Err(PubsubError::TooManyTopics { max }) => return Err(LogError::TopicCap { max }),
            Err(e) => {
                return Err(LogError::Pubsub {
                    reason: e.to_string(),
                })
            }
        };
        // A refusal drops the subscription (and `task`, the name with it).
        let state = tokio::task::spawn_blocking(follow)
            .await
            .map_err(|_| LogError::Stopping)??;
        let (name, id) = (name.to_string(), state.id.clone());
        self.net()
            .swarm
            .spawn_task(async move { driver.follow(task, name, id, Some(sub)).await });
        Ok(state)
    }
}

impl LogDriver {
    fn logs(&self) -> &Arc<Logs> {
        self.node.logs()
    }

    async fn run(self) {
        let mut changes = self.logs().changes();
        let mut tick = tokio::time::interval(ANNOUNCE_INTERVAL);
        let mut sent: HashMap<String, Sent> = HashMap::new();
        let mut last_retain = Instant::now();
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
            let retain_due = last_retain.elapsed() >= RETAIN_INTERVAL;
            if retain_due {
                last_retain = Instant::now();
            }
            for mut entry in list {
                match entry.state.origin {
                    Origin::Local => {
                        if retain_due && entry.state.retention.is_some() {
                            if let Some(state) = self.retain(&entry.name).await {
                                entry.state = state;
                            }
                        }
                        let s = sent.entry(entry.name.clone()).or_default();
                        self.send_head(&entry.name, &entry.state, s).await;
                    }
                    Origin::Follow => {
                        if lock(&self.following).insert(entry.name.clone()) {
                            let this = self.clone();
                            let task = FollowTask(Arc::clone(&self.following), entry.name.clone());
                            let (name, id) = (entry.name, entry.state.id);
                            self.net
                                .swarm
                                .spawn_task(async move { this.follow(task, name, id, None).await });
                        }
                    }
                }
            }
        }
    }

    /// Applies local log `name`'s retention (ages pass without appends):
    /// its new state when that dropped batches.
    async fn retain(&self, name: &str) -> Option<LogState> {
        let logs = Arc::clone(self.logs());
        let n = name.to_string();
        let now_ms = crate::log::now_ms();
        match tokio::task::spawn_blocking(move || {
            logs.retain(&n, now_ms)?;
            logs.get(&n)
        })
        .await
        {
            Ok(Ok(state)) => Some(state),
            Ok(Err(e)) => {
                tracing::warn!(log = name, "logs: applying the retention: {e}");
                None
            }
            Err(_) => None,
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
            floor: state.floor,
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
        // A replica pins a head recursively, so the whole chain: a log
        // that keeps part of it is not handed to the replicator.
        if state.replication > 1 && !state.bounded() && sent.replicated != Some(head) {
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

    /// Whether `name` is still a followed log of id `id` (`None`: the
    /// node is stopping).
    async fn still_followed(&self, name: &str, id: &str) -> Option<bool> {
        let logs = Arc::clone(self.logs());
        let n = name.to_string();
        match tokio::task::spawn_blocking(move || logs.get(&n)).await {
            Ok(Ok(s)) => Some(s.origin == Origin::Follow && s.id == id),
            Ok(Err(_)) => Some(false),
            Err(_) => None,
        }
    }

    /// Subscribes to log `id`'s topic, trying again with capped
    /// exponential backoff ([`resubscribe_wait`]) while `name` is still
    /// followed (`None` once it is not, or the node stops).
    async fn subscribe(&self, name: &str, id: &str) -> Option<Subscription> {
        let mut failures = 0u32;
        loop {
            if self.still_followed(name, id).await != Some(true) {
                return None;
            }
            match self.net.swarm.pubsub_subscribe(announce::topic(id)).await {
                Ok(sub) => {
                    if failures > 0 {
                        tracing::info!(
                            log = name,
                            "logs: following again after {failures} failed subscriptions"
                        );
                    }
                    return Some(sub);
                }
                Err(PubsubError::Stopped) => return None,
                Err(e) => {
                    let wait = resubscribe_wait(failures);
                    failures = failures.saturating_add(1);
                    let hint = match e {
                        PubsubError::TooManyTopics { .. } => " (raise [pubsub] max_topics)",
                        _ => "",
                    };
                    tracing::warn!(
                        log = name,
                        "logs: following: subscribing to its topic: {e}{hint}; trying again in {wait:?}"
                    );
                    tokio::time::sleep(wait).await;
                }
            }
        }
    }

    /// Follows log `id` as `name` (on `sub`, or a subscription of its own)
    /// until it is no longer followed or the node stops.
    async fn follow(self, _task: FollowTask, name: String, id: String, sub: Option<Subscription>) {
        let mut sub = match sub {
            Some(sub) => sub,
            None => match self.subscribe(&name, &id).await {
                Some(sub) => sub,
                None => return,
            },
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
            if a.next > state.next {
                if let Err(e) = self.catch_up(&name, &state, &a, from).await {
                    tracing::warn!(log = name, head = %a.head, peer = %from, "logs: catching up: {e}");
                    continue;
                }
            }
            if a.floor > state.floor {
                // The creator dropped old batches: so does this node.
                let logs = Arc::clone(self.logs());
                let (n, floor) = (name.clone(), a.floor);
                match tokio::task::spawn_blocking(move || logs.raise_floor(&n, floor)).await {
                    Ok(Ok(_)) => {}
                    Ok(Err(e)) => tracing::warn!(log = name, "logs: moving the floor: {e}"),
                    Err(_) => return,
                }
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
        // Set when the walk stops at the creator's floor, above the local
        // head: nothing below it is fetched.
        let mut restart = false;
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
            if b.first > 0 && b.first <= a.floor && b.first >= state.next {
                restart = true;
                break;
            }
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
            // Only the oldest step starts at the floor.
            let restart = std::mem::take(&mut restart);
            tokio::task::spawn_blocking(move || {
                let mut batches: Vec<(Block, LogBatch)> = Vec::with_capacity(step.len());
                for cid in &step {
                    let block = store
                        .get(cid)?
                        .ok_or(LogError::MissingBatch { cid: *cid })?;
                    let b = LogBatch::decode(&block)?;
                    batches.push((block, b));
                }
                logs.adopt(&n, batches, restart)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resubscribing_backs_off_exponentially_up_to_a_cap() {
        let waits: Vec<u64> = (0..9).map(|f| resubscribe_wait(f).as_secs()).collect();
        assert_eq!(waits, [1, 2, 4, 8, 16, 32, 60, 60, 60]);
        assert_eq!(resubscribe_wait(u32::MAX), RESUBSCRIBE_MAX);
    }
}

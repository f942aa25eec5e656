//! Pub/sub: libp2p gossipsub as Kubo speaks it (`/meshsub/1.1.0` and
//! `/1.0.0`, StrictSign, Kubo's message ids), and the local subscriptions
//! messages are handed to.
//!
//! - `gossip.rs`: the gossipsub behaviour built from a [`PubsubConfig`]
//!   (message ids, size limits, peer scoring, bounded queues).
//! - `idle.rs`: [`IdleStreams`], which keeps gossipsub's open streams from
//!   holding a connection open.
//! - `hub.rs`: [`Hub`], the plain state machine that fans a received (or
//!   published) message out to this node's subscribers.
//!
//! The swarm task owns both; callers reach them through
//! [`SwarmHandle`](crate::net::swarm::SwarmHandle)'s `pubsub_*` methods.

mod gossip;
mod hub;
mod idle;

pub use gossip::{
    behaviour, kubo_message_id, topic_score_params, Gossipsub, PubsubBehaviour, ENVELOPE_BYTES,
};
pub use hub::{Delivery, Hub};
pub use idle::IdleStreams;

use bytes::Bytes;
use libp2p::PeerId;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

/// Pub/sub settings (`[pubsub]` in `config.toml`).
#[derive(Clone, Debug, PartialEq)]
pub struct PubsubConfig {
    /// Largest RPC frame sent or accepted (gossipsub's `max_transmit_size`,
    /// go-libp2p-pubsub's 1 MiB by default). A message's data may use this
    /// less [`ENVELOPE_BYTES`] and its topic's length
    /// ([`max_data_bytes`](Self::max_data_bytes)).
    pub max_message_bytes: usize,
    /// How long a message id is remembered to drop duplicates (Kubo: 120 s).
    pub seen_ttl: Duration,
    /// Messages queued for one local subscriber; a subscriber further
    /// behind loses the newest (as go-libp2p-pubsub's 32). Worst case held
    /// per subscriber: this × `max_message_bytes`.
    pub subscriber_queue: usize,
    /// Messages queued for sending to one peer (publish and forward); more
    /// are dropped and the peer counted slow. Worst case held per peer:
    /// this × `max_message_bytes`.
    pub peer_queue: usize,
    /// Most topics this node subscribes to, and most topics one peer may
    /// announce to us.
    pub max_topics: usize,
    /// Score peers (gossipsub v1.1 peer scoring): peers that send invalid
    /// messages or misbehave in the mesh are pruned, then ignored.
    pub score: bool,
}

impl Default for PubsubConfig {
    fn default() -> Self {
        PubsubConfig {
            max_message_bytes: 1 << 20,
            seen_ttl: Duration::from_secs(120),
            subscriber_queue: 32,
            peer_queue: 64,
            max_topics: 100,
            score: true,
        }
    }
}

impl PubsubConfig {
    /// The most data one message on `topic` may carry: the frame limit
    /// less the signed envelope (source, seqno, signature, topic).
    pub fn max_data_bytes(&self, topic: &str) -> usize {
        self.max_message_bytes
            .saturating_sub(ENVELOPE_BYTES)
            .saturating_sub(topic.len())
    }
}

/// Errors of pub/sub.
#[derive(Debug, thiserror::Error)]
pub enum PubsubError {
    /// `[pubsub] enabled = false`.
    #[error("pubsub is disabled ([pubsub] enabled = false)")]
    Disabled,
    /// A message larger than a frame can carry.
    #[error("message of {bytes} bytes is too large for topic {topic:?}: at most {max} bytes")]
    TooLarge {
        /// The topic.
        topic: String,
        /// The message's size.
        bytes: usize,
        /// The most its topic allows.
        max: usize,
    },
    /// A topic that cannot be used.
    #[error("topic {topic:?}: {reason}")]
    Topic {
        /// The topic.
        topic: String,
        /// Why not.
        reason: &'static str,
    },
    /// Subscribing to one more topic than `[pubsub] max_topics` allows.
    #[error("already subscribed to {max} topics ([pubsub] max_topics)")]
    TooManyTopics {
        /// The limit.
        max: usize,
    },
    /// Gossipsub refused to publish.
    #[error("publishing on {topic:?}: {source}")]
    Publish {
        /// The topic.
        topic: String,
        /// Gossipsub's error.
        #[source]
        source: libp2p_gossipsub::PublishError,
    },
    /// The swarm task has stopped (the node shuts down).
    #[error("the swarm task has stopped")]
    Stopped,
}

/// A message published on a topic, as a subscriber receives it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Received {
    /// The peer that published (signed) it.
    pub from: PeerId,
    /// Its publisher's sequence number.
    pub seqno: u64,
    /// The topic.
    pub topic: String,
    /// The payload.
    pub data: Bytes,
    /// The peer that forwarded it to us; `None` for our own messages.
    pub via: Option<PeerId>,
}

/// A local subscription to a topic: messages arrive in order until it is
/// dropped (which unsubscribes once no other local subscriber is left).
pub struct Subscription {
    topic: String,
    rx: mpsc::Receiver<Arc<Received>>,
    on_drop: Option<Box<dyn FnOnce() + Send + Sync>>,
}

impl Subscription {
    /// A subscription fed by `rx`; `on_drop` runs when it is dropped.
    pub fn new(
        topic: String,
        rx: mpsc::Receiver<Arc<Received>>,
        on_drop: Box<dyn FnOnce() + Send + Sync>,
    ) -> Subscription {
        Subscription {
            topic,
            rx,
            on_drop: Some(on_drop),
        }
    }

    /// The topic subscribed to.
    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// The next message; `None` once the node stopped.
    pub async fn next(&mut self) -> Option<Arc<Received>> {
        self.rx.recv().await
    }

    /// The next message if one is waiting.
    pub fn try_next(&mut self) -> Option<Arc<Received>> {
        self.rx.try_recv().ok()
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.rx.close();
        if let Some(f) = self.on_drop.take() {
            f();
        }
    }
}

impl std::fmt::Debug for Subscription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subscription")
            .field("topic", &self.topic)
            .finish()
    }
}

/// Checks a topic name before it reaches gossipsub: not empty, and short
/// enough that a message still fits a frame.
pub fn check_topic(topic: &str) -> Result<(), PubsubError> {
    let reason = if topic.is_empty() {
        "a topic cannot be empty"
    } else if topic.len() > MAX_TOPIC_BYTES {
        "a topic is at most 1024 bytes"
    } else {
        return Ok(());
    };
    Err(PubsubError::Topic {
        topic: topic.chars().take(64).collect(),
        reason,
    })
}

/// The longest topic name accepted.
pub const MAX_TOPIC_BYTES: usize = 1024;

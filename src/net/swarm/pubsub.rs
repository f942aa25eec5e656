//! The swarm task's side of pub/sub: carrying out publish, subscribe and
//! listing commands on the gossipsub behaviour, and handing received
//! messages to the local subscribers ([`Hub`]).
//!
//! Semantics follow Kubo's: publishing on a topic no peer joined succeeds
//! (rust-libp2p calls it an error), and a node's own messages reach its
//! own subscribers (rust-libp2p emits no event for them).

use super::build::Behaviour;
use super::Command;
use crate::net::pubsub::{
    check_topic, topic_score_params, Hub, PubsubBehaviour, PubsubConfig, PubsubError, Received,
    Subscription,
};
use bytes::Bytes;
use libp2p::{PeerId, Swarm};
use libp2p_gossipsub as gossipsub;
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};

/// Pub/sub commands for the swarm task.
pub(crate) enum PubsubCommand {
    /// Publish data on a topic.
    Publish(String, Bytes, oneshot::Sender<Result<(), PubsubError>>),
    /// Add a local subscriber.
    Subscribe(String, oneshot::Sender<Result<Subscription, PubsubError>>),
    /// A local subscriber (topic, id) went away.
    Left(String, u64),
    /// The topics with a local subscriber.
    Topics(oneshot::Sender<Result<Vec<String>, PubsubError>>),
    /// Peers speaking gossipsub (subscribed to the topic, if one is given).
    Peers(
        Option<String>,
        oneshot::Sender<Result<Vec<PeerId>, PubsubError>>,
    ),
    /// A peer's gossipsub score (`None`: scoring off or pubsub disabled).
    Score(PeerId, oneshot::Sender<Option<f64>>),
}

/// What the swarm task keeps for pub/sub.
pub(super) struct PubsubState {
    /// `None`: pub/sub is off.
    config: Option<PubsubConfig>,
    hub: Hub,
    local: PeerId,
    /// The seqno of the last message published with no peer to send it to
    /// (only our own subscribers see it).
    local_seqno: u64,
}

impl PubsubState {
    /// The state for the node `local` with `config` (`None`: off).
    pub(super) fn new(local: PeerId, config: Option<PubsubConfig>) -> PubsubState {
        let c = config.clone().unwrap_or_default();
        PubsubState {
            hub: Hub::new(c.subscriber_queue, c.max_topics),
            config,
            local,
            local_seqno: 0,
        }
    }
}

fn gossip(swarm: &mut Swarm<Behaviour>) -> Result<&mut PubsubBehaviour, PubsubError> {
    swarm
        .behaviour_mut()
        .pubsub
        .as_mut()
        .ok_or(PubsubError::Disabled)
}

/// Leaves `topic` on the network (its last local subscriber is gone).
fn leave(swarm: &mut Swarm<Behaviour>, topic: &str) {
    if let Ok(gs) = gossip(swarm) {
        gs.unsubscribe(&gossipsub::IdentTopic::new(topic));
        tracing::debug!(topic, "pubsub: unsubscribed");
    }
}

/// Carries out one pub/sub command.
pub(super) fn on_command(
    swarm: &mut Swarm<Behaviour>,
    state: &mut PubsubState,
    cmd: PubsubCommand,
    self_tx: &mpsc::WeakSender<Command>,
) {
    match cmd {
        PubsubCommand::Publish(topic, data, reply) => {
            let _ = reply.send(publish(swarm, state, topic, data));
        }
        PubsubCommand::Subscribe(topic, reply) => {
            let _ = reply.send(subscribe(swarm, state, topic, self_tx));
        }
        PubsubCommand::Left(topic, id) => {
            if state.hub.remove(&topic, id) {
                leave(swarm, &topic);
            }
        }
        PubsubCommand::Topics(reply) => {
            let answer = gossip(swarm).map(|_| ()).map(|()| {
                for topic in state.hub.prune() {
                    leave(swarm, &topic);
                }
                state.hub.topics()
            });
            let _ = reply.send(answer);
        }
        PubsubCommand::Peers(topic, reply) => {
            let answer = gossip(swarm).map(|gs| {
                let hash = topic.map(gossipsub::TopicHash::from_raw);
                let speaks: std::collections::HashSet<PeerId> = gs
                    .peer_protocol()
                    .filter(|(_, kind)| kind.as_static_ref().starts_with("Gossipsub"))
                    .map(|(p, _)| *p)
                    .collect();
                let mut peers: Vec<PeerId> = gs
                    .all_peers()
                    .filter(|(p, topics)| {
                        speaks.contains(p) && hash.as_ref().is_none_or(|h| topics.contains(&h))
                    })
                    .map(|(p, _)| *p)
                    .collect();
                peers.sort_by_key(|p| p.to_string());
                peers
            });
            let _ = reply.send(answer);
        }
        PubsubCommand::Score(peer, reply) => {
            let _ = reply.send(gossip(swarm).ok().and_then(|gs| gs.peer_score(&peer)));
        }
    }
}

fn publish(
    swarm: &mut Swarm<Behaviour>,
    state: &mut PubsubState,
    topic: String,
    data: Bytes,
) -> Result<(), PubsubError> {
    check_topic(&topic)?;
    let config = state.config.as_ref().ok_or(PubsubError::Disabled)?;
    let max = config.max_data_bytes(&topic);
    if data.len() > max {
        return Err(PubsubError::TooLarge {
            topic,
            bytes: data.len(),
            max,
        });
    }
    let gs = gossip(swarm)?;
    let seqno = match gs.publish(gossipsub::IdentTopic::new(&topic), data.to_vec()) {
        // The id ends in the seqno's 8 bytes (`kubo_message_id`).
        Ok(id) => {
            id.0.rchunks(8)
                .next()
                .and_then(|b| <[u8; 8]>::try_from(b).ok())
                .map(u64::from_be_bytes)
                .unwrap_or_default()
        }
        // Kubo: publishing with nobody listening is not an error.
        Err(gossipsub::PublishError::NoPeersSubscribedToTopic) => {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos() as u64);
            state.local_seqno = now.max(state.local_seqno + 1);
            state.local_seqno
        }
        Err(source) => return Err(PubsubError::Publish { topic, source }),
    };
    let message = Arc::new(Received {
        from: state.local,
        seqno,
        topic,
        data,
        via: None,
    });
    if state.hub.deliver(&message).emptied {
        leave(swarm, &message.topic);
    }
    Ok(())
}

fn subscribe(
    swarm: &mut Swarm<Behaviour>,
    state: &mut PubsubState,
    topic: String,
    self_tx: &mpsc::WeakSender<Command>,
) -> Result<Subscription, PubsubError> {
    check_topic(&topic)?;
    let score = state.config.as_ref().is_some_and(|c| c.score);
    let gs = gossip(swarm)?;
    let (id, rx, new) = state.hub.subscribe(&topic)?;
    if new {
        let t = gossipsub::IdentTopic::new(&topic);
        if let Err(e) = gs.subscribe(&t) {
            state.hub.remove(&topic, id);
            tracing::warn!(topic, "pubsub: subscribing failed: {e}");
            return Err(PubsubError::Topic {
                topic,
                reason: "gossipsub refused the subscription",
            });
        }
        if score {
            if let Err(e) = gs.set_topic_params(t, topic_score_params()) {
                tracing::warn!(topic, "pubsub: topic score parameters refused: {e}");
            }
        }
        tracing::debug!(topic, "pubsub: subscribed");
    }
    let tx = self_tx.clone();
    let left = topic.clone();
    Ok(Subscription::new(
        topic,
        rx,
        Box::new(move || {
            // When the command queue is full the subscriber is still
            // found gone by the next delivery or listing.
            if let Some(tx) = tx.upgrade() {
                let _ = tx.try_send(Command::Pubsub(PubsubCommand::Left(left, id)));
            }
        }),
    ))
}

/// Handles one gossipsub event.
pub(super) fn on_event(
    swarm: &mut Swarm<Behaviour>,
    state: &mut PubsubState,
    event: gossipsub::Event,
) {
    match event {
        gossipsub::Event::Message {
            propagation_source,
            message,
            ..
        } => {
            // StrictSign: a message without source or seqno never gets here.
            let (Some(from), Some(seqno)) = (message.source, message.sequence_number) else {
                return;
            };
            let received = Arc::new(Received {
                from,
                seqno,
                topic: message.topic.into_string(),
                data: Bytes::from(message.data),
                via: Some(propagation_source),
            });
            let d = state.hub.deliver(&received);
            if d.dropped > 0 {
                tracing::debug!(
                    topic = received.topic,
                    dropped = d.dropped,
                    "pubsub: subscriber too slow, message dropped"
                );
            }
            if d.emptied {
                leave(swarm, &received.topic);
            }
        }
        gossipsub::Event::Subscribed { peer_id, topic } => {
            tracing::debug!(%peer_id, %topic, "pubsub: peer subscribed");
        }
        gossipsub::Event::Unsubscribed { peer_id, topic } => {
            tracing::debug!(%peer_id, %topic, "pubsub: peer unsubscribed");
        }
        gossipsub::Event::SlowPeer {
            peer_id,
            failed_messages,
        } => {
            tracing::debug!(%peer_id, ?failed_messages, "pubsub: peer too slow, messages dropped");
        }
        gossipsub::Event::GossipsubNotSupported { .. } => {}
    }
}

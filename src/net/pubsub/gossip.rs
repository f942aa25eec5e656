//! The gossipsub behaviour, set up to interoperate with Kubo
//! (go-libp2p-pubsub) and js-libp2p:
//!
//! - Protocols `/meshsub/1.2.0`, `/1.1.0` and `/1.0.0` (rust-libp2p's
//!   defaults; Kubo speaks 1.1 and 1.0, js-libp2p all three).
//! - StrictSign: every message we publish is signed with the node key and
//!   carries source and seqno; unsigned or badly signed messages are
//!   refused (and count against their sender's score).
//! - Message ids as go-libp2p-pubsub's default (`DefaultMsgIdFn`): the
//!   source's peer-id bytes followed by the 8 seqno bytes. Ids travel in
//!   IHAVE/IWANT/IDONTWANT, so a Kubo peer and this node must agree on
//!   them; rust-libp2p's own default (base58 + decimal) does not.
//! - Frames of at most `max_message_bytes` (Go's 1 MiB, which also counts
//!   the envelope: see [`ENVELOPE_BYTES`]), flood publishing and a 120 s
//!   duplicate cache as Kubo, and a bounded queue per connection.
//! - Peer scoring (see [`topic_score_params`]).

use super::idle::IdleStreams;
use super::PubsubConfig;
use libp2p::identity::Keypair;
use libp2p_gossipsub as gossipsub;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

/// The gossipsub behaviour cairn runs: its streams do not keep a
/// connection open (see [`IdleStreams`]).
pub type PubsubBehaviour = IdleStreams<Gossipsub>;

/// rust-libp2p's gossipsub as cairn configures it.
pub type Gossipsub = gossipsub::Behaviour<
    gossipsub::IdentityTransform,
    gossipsub::MaxCountSubscriptionFilter<gossipsub::AllowAllSubscriptionFilter>,
>;

/// Bytes of a published frame that are not the message's data or topic:
/// the RPC and message tags and lengths, the source peer id (38 bytes for
/// an Ed25519 key), the 8-byte seqno and the 64-byte signature; an upper
/// bound (the test below encodes the worst case).
pub const ENVELOPE_BYTES: usize = 160;

/// go-libp2p-pubsub's message id: the source's peer-id bytes, then the
/// seqno's 8 big-endian bytes (a message without either gets the empty
/// part, as Go's `GetFrom`/`GetSeqno` give).
pub fn kubo_message_id(message: &gossipsub::Message) -> gossipsub::MessageId {
    let mut id = message.source.map(|p| p.to_bytes()).unwrap_or_default();
    if let Some(seqno) = message.sequence_number {
        id.extend_from_slice(&seqno.to_be_bytes());
    }
    gossipsub::MessageId::new(&id)
}

/// Score parameters of a topic this node subscribes to.
///
/// rust-libp2p's defaults punish a mesh peer that forwards fewer than 20
/// messages (P3), which every quiet topic does, and only count invalid
/// messages (P4) on topics that have parameters at all. Here the positive
/// parts are small (time in mesh at most +5, first deliveries at most +5)
/// and one invalid message costs -100, so a peer that sends one lands
/// below the graylist threshold (-80) whatever it earned before: its
/// messages are then ignored until the penalty decays (10 min).
pub fn topic_score_params() -> gossipsub::TopicScoreParams {
    gossipsub::TopicScoreParams {
        topic_weight: 1.0,
        time_in_mesh_weight: 0.005,
        time_in_mesh_quantum: Duration::from_secs(1),
        time_in_mesh_cap: 1000.0,
        first_message_deliveries_weight: 0.25,
        first_message_deliveries_decay: gossipsub::score_parameter_decay(Duration::from_secs(600)),
        first_message_deliveries_cap: 20.0,
        mesh_message_deliveries_weight: 0.0,
        mesh_failure_penalty_weight: 0.0,
        invalid_message_deliveries_weight: -100.0,
        invalid_message_deliveries_decay: gossipsub::score_parameter_decay(Duration::from_secs(
            600,
        )),
        ..gossipsub::TopicScoreParams::default()
    }
}

/// Peer score parameters: rust-libp2p's defaults, except that loopback
/// addresses are not counted as many peers behind one IP (every peer of a
/// test cluster on one machine would be penalised).
fn peer_score_params() -> gossipsub::PeerScoreParams {
    gossipsub::PeerScoreParams {
        ip_colocation_factor_whitelist: [
            IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V6(Ipv6Addr::LOCALHOST),
        ]
        .into(),
        ..gossipsub::PeerScoreParams::default()
    }
}

/// The gossipsub behaviour for the node with `key`; its metrics go to
/// `registry` (under `gossipsub_`).
pub fn behaviour(
    key: &Keypair,
    config: &PubsubConfig,
    registry: &mut prometheus_client::registry::Registry,
) -> Result<PubsubBehaviour, Box<dyn std::error::Error + Send + Sync>> {
    let gs_config = gossipsub::ConfigBuilder::default()
        .validation_mode(gossipsub::ValidationMode::Strict)
        .message_id_fn(kubo_message_id)
        .max_transmit_size(config.max_message_bytes)
        .duplicate_cache_time(config.seen_ttl)
        .flood_publish(true)
        .connection_handler_queue_len(config.peer_queue.max(2))
        .build()?;
    let filter = gossipsub::MaxCountSubscriptionFilter {
        filter: gossipsub::AllowAllSubscriptionFilter {},
        max_subscribed_topics: config.max_topics,
        max_subscriptions_per_request: config.max_topics,
    };
    let mut behaviour = Gossipsub::new_with_subscription_filter_and_transform(
        gossipsub::MessageAuthenticity::Signed(key.clone()),
        gs_config,
        filter,
        gossipsub::IdentityTransform,
    )?;
    if config.score {
        behaviour.with_peer_score(
            peer_score_params(),
            gossipsub::PeerScoreThresholds::default(),
        )?;
    }
    let metrics = gossipsub::MetricsConfig {
        max_topics: config.max_topics,
        max_never_subscribed_topics: 16,
        ..gossipsub::MetricsConfig::default()
    };
    let behaviour = behaviour.with_metrics(registry.sub_registry_with_prefix("gossipsub"), metrics);
    Ok(IdleStreams::new(behaviour))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::pubsub::MAX_TOPIC_BYTES;
    use crate::proto::{put_bytes_field, put_varint};

    fn key() -> Keypair {
        Keypair::ed25519_from_bytes([7u8; 32]).unwrap()
    }

    #[test]
    fn message_ids_are_kubos_peer_bytes_then_big_endian_seqno() {
        let key = key();
        let peer = key.public().to_peer_id();
        let message = gossipsub::Message {
            source: Some(peer),
            data: b"hello".to_vec(),
            sequence_number: Some(0x0102_0304_0506_0708),
            topic: gossipsub::TopicHash::from_raw("t"),
        };
        // An Ed25519 peer id: identity multihash (0x00), length 36, then
        // the protobuf PublicKey {Type: Ed25519 (1), Data: 32 bytes}.
        let mut want = vec![0x00, 0x24, 0x08, 0x01, 0x12, 0x20];
        want.extend_from_slice(&key.public().try_into_ed25519().unwrap().to_bytes());
        want.extend_from_slice(&[1, 2, 3, 4, 5, 6, 7, 8]);
        assert_eq!(want.len(), 38 + 8);
        assert_eq!(kubo_message_id(&message).0, want);
        // The data plays no part: the same source and seqno is one message.
        let other = gossipsub::Message {
            data: b"other".to_vec(),
            ..message.clone()
        };
        assert_eq!(kubo_message_id(&other), kubo_message_id(&message));
        let unsigned = gossipsub::Message {
            source: None,
            sequence_number: None,
            ..message
        };
        assert!(kubo_message_id(&unsigned).0.is_empty());
    }

    #[test]
    fn the_largest_message_allowed_fits_a_frame_with_its_envelope() {
        let config = PubsubConfig::default();
        let key = key();
        let topic = "t".repeat(MAX_TOPIC_BYTES);
        let data = vec![0xAB; config.max_data_bytes(&topic)];
        // rpc.proto: Message {from = 1, data = 2, seqno = 3, topic = 4,
        // signature = 5, key = 6 (absent: an Ed25519 key is in `from`)};
        // RPC {publish = 2}.
        let mut message = Vec::new();
        put_bytes_field(&mut message, 1, &key.public().to_peer_id().to_bytes());
        put_bytes_field(&mut message, 2, &data);
        put_bytes_field(&mut message, 3, &u64::MAX.to_be_bytes());
        put_bytes_field(&mut message, 4, topic.as_bytes());
        put_bytes_field(&mut message, 5, &[0xCD; 64]);
        let mut rpc = Vec::new();
        put_bytes_field(&mut rpc, 2, &message);
        assert!(
            rpc.len() <= config.max_message_bytes,
            "{} > {}",
            rpc.len(),
            config.max_message_bytes
        );
        // The length prefix is not part of the limit (Go's msgio and
        // rust's codec both bound the frame's body).
        let mut prefix = Vec::new();
        put_varint(&mut prefix, rpc.len() as u64);
        assert!(prefix.len() <= 3);
        // And the bound is not loose by much.
        assert!(config.max_message_bytes - rpc.len() < 64);
    }

    #[test]
    fn score_parameters_are_valid_and_one_invalid_message_graylists() {
        let topic = topic_score_params();
        topic.validate().unwrap();
        let mut params = peer_score_params();
        params
            .topics
            .insert(gossipsub::TopicHash::from_raw("t"), topic.clone());
        params.validate().unwrap();
        let best = topic.time_in_mesh_weight * topic.time_in_mesh_cap
            + topic.first_message_deliveries_weight * topic.first_message_deliveries_cap;
        let one_invalid = topic.invalid_message_deliveries_weight;
        let graylist = gossipsub::PeerScoreThresholds::default().graylist_threshold;
        assert!(topic.topic_weight * (best + one_invalid) < graylist);
    }

    #[test]
    fn the_behaviour_builds_from_the_defaults_and_without_scoring() {
        let mut registry = prometheus_client::registry::Registry::default();
        let mut b = behaviour(&key(), &PubsubConfig::default(), &mut registry).unwrap();
        let peer = key().public().to_peer_id();
        assert_eq!(b.peer_score(&peer), Some(0.0));
        let topic = gossipsub::IdentTopic::new("t");
        assert!(b.subscribe(&topic).unwrap());
        b.set_topic_params(topic, topic_score_params()).unwrap();
        let config = PubsubConfig {
            score: false,
            ..PubsubConfig::default()
        };
        let b = behaviour(&key(), &config, &mut registry).unwrap();
        assert_eq!(b.peer_score(&peer), None);
    }
}

//! [`PubsubSettings`]: `[pubsub]` in `config.toml`, the gossipsub settings
//! (see `net::pubsub`).

use super::{ByteSize, ConfigError};
use crate::net::pubsub::{PubsubConfig, ENVELOPE_BYTES, MAX_TOPIC_BYTES};
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// The smallest `max_message_bytes` accepted: room for the envelope, the
/// longest topic and some data.
const MIN_MESSAGE_BYTES: u64 = 4096;

/// The largest `max_message_bytes` accepted: a frame must fit one Yamux
/// window (16 MiB), and more than 4 MiB is refused by js-libp2p anyway.
const MAX_MESSAGE_BYTES: u64 = 4 << 20;

/// `[pubsub]`: gossipsub (`cairn pubsub`, `pubsub/*` in the RPC API).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PubsubSettings {
    /// Speak gossipsub (`/meshsub/1.1.0`, `/1.0.0`, `/1.2.0`); off: the
    /// `pubsub` commands fail and peers see no pub/sub protocol.
    pub enabled: bool,
    /// Largest frame sent or accepted, envelope included (Kubo's 1 MiB): a
    /// message's data may be about 160 bytes plus its topic's length less.
    pub max_message_bytes: ByteSize,
    /// How long a message id is remembered, so a duplicate is dropped
    /// (Kubo: 120 s).
    #[serde(with = "humantime_serde")]
    pub seen_ttl: Duration,
    /// Messages waiting for one local subscriber (`pubsub sub`); one that
    /// falls further behind misses messages. Memory per subscriber is at
    /// most this × `max_message_bytes`.
    pub subscriber_queue: usize,
    /// Messages waiting to be sent to one peer; more are dropped and the
    /// peer counted slow. Memory per peer is at most this ×
    /// `max_message_bytes`.
    pub peer_queue: usize,
    /// Most topics this node subscribes to, and most one peer may announce.
    pub max_topics: usize,
    /// Gossipsub v1.1 peer scoring: a peer that sends an invalid message is
    /// ignored for a while.
    pub score: bool,
}

impl Default for PubsubSettings {
    fn default() -> Self {
        let d = PubsubConfig::default();
        PubsubSettings {
            enabled: true,
            max_message_bytes: ByteSize(d.max_message_bytes as u64),
            seen_ttl: d.seen_ttl,
            subscriber_queue: d.subscriber_queue,
            peer_queue: d.peer_queue,
            max_topics: d.max_topics,
            score: d.score,
        }
    }
}

impl PubsubSettings {
    /// The network layer's settings; `None` when pub/sub is off.
    pub fn to_pubsub_config(&self) -> Result<Option<PubsubConfig>, ConfigError> {
        if !self.enabled {
            return Ok(None);
        }
        let bad = |what: String| Err(ConfigError::Pubsub(what));
        let bytes = self.max_message_bytes.bytes();
        if !(MIN_MESSAGE_BYTES..=MAX_MESSAGE_BYTES).contains(&bytes) {
            return bad(format!(
                "max_message_bytes {bytes} is not between {MIN_MESSAGE_BYTES} and \
                 {MAX_MESSAGE_BYTES}"
            ));
        }
        if self.seen_ttl < Duration::from_secs(1) {
            return bad("seen_ttl must be at least 1s".into());
        }
        for (name, value, max) in [
            ("subscriber_queue", self.subscriber_queue, 65536),
            ("peer_queue", self.peer_queue, 65536),
            ("max_topics", self.max_topics, 65536),
        ] {
            if !(1..=max).contains(&value) {
                return bad(format!("{name} {value} is not between 1 and {max}"));
            }
        }
        debug_assert!(MIN_MESSAGE_BYTES as usize > ENVELOPE_BYTES + MAX_TOPIC_BYTES);
        Ok(Some(PubsubConfig {
            max_message_bytes: bytes as usize,
            seen_ttl: self.seen_ttl,
            subscriber_queue: self.subscriber_queue,
            peer_queue: self.peer_queue,
            max_topics: self.max_topics,
            score: self.score,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::node::Config;

    #[test]
    fn pubsub_is_on_by_default_with_kubos_limits() {
        let c = Config::default();
        let p = c.pubsub.to_pubsub_config().unwrap().unwrap();
        assert_eq!(p, PubsubConfig::default());
        assert_eq!(p.max_message_bytes, 1 << 20);
        assert_eq!(p.seen_ttl, Duration::from_secs(120));
        let text = toml::to_string_pretty(&c).unwrap();
        assert!(text.contains("[pubsub]\nenabled = true\n"), "{text}");
        assert!(text.contains("max_message_bytes = \"1MiB\""), "{text}");
    }

    #[test]
    fn settings_load_and_bad_values_are_refused() {
        let c: Config = toml::from_str(
            "[pubsub]\nenabled = false\nmax_message_bytes = \"64KiB\"\nseen_ttl = \"2m\"\n",
        )
        .unwrap();
        assert_eq!(c.pubsub.to_pubsub_config().unwrap(), None);
        let on = PubsubSettings {
            enabled: true,
            ..c.pubsub
        };
        let p = on.to_pubsub_config().unwrap().unwrap();
        assert_eq!(p.max_message_bytes, 65536);
        for bad in [
            "[pubsub]\nmax_message_bytes = \"100\"\n",
            "[pubsub]\nmax_message_bytes = \"5MiB\"\n",
            "[pubsub]\nseen_ttl = \"0s\"\n",
            "[pubsub]\nsubscriber_queue = 0\n",
            "[pubsub]\nmax_topics = 0\n",
        ] {
            let c: Config = toml::from_str(bad).unwrap();
            let e = c.pubsub.to_pubsub_config().unwrap_err().to_string();
            assert!(e.starts_with("[pubsub] "), "{bad}: {e}");
        }
        assert!(toml::from_str::<Config>("[pubsub]\nenabled = \"yes\"\n").is_err());
        assert!(toml::from_str::<Config>("[pubsub]\nbogus = 1\n").is_err());
    }
}

//! [`Hub`]: this node's local subscribers per topic, and the fan-out of a
//! message to them. A plain state machine (no I/O, no waiting): each
//! subscriber has a bounded queue, a message for a full queue is dropped
//! and counted (go-libp2p-pubsub drops for a slow subscriber too), so the
//! swarm task never waits on a slow reader.

use super::{PubsubError, Received};
use std::collections::BTreeMap;
use std::sync::Arc;
use tokio::sync::mpsc;

/// One local subscriber.
struct LocalSub {
    id: u64,
    tx: mpsc::Sender<Arc<Received>>,
}

/// What handing one message to a topic's subscribers did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Delivery {
    /// Subscribers that got it.
    pub delivered: usize,
    /// Subscribers whose queue was full (they miss it).
    pub dropped: usize,
    /// The topic's last subscriber had gone: the node should unsubscribe.
    pub emptied: bool,
}

/// Local subscribers by topic.
pub struct Hub {
    topics: BTreeMap<String, Vec<LocalSub>>,
    next_id: u64,
    queue: usize,
    max_topics: usize,
    dropped: u64,
}

impl Hub {
    /// A hub giving each subscriber a queue of `queue` messages, with at
    /// most `max_topics` topics.
    pub fn new(queue: usize, max_topics: usize) -> Hub {
        Hub {
            topics: BTreeMap::new(),
            next_id: 0,
            queue: queue.max(1),
            max_topics,
            dropped: 0,
        }
    }

    /// Adds a subscriber to `topic`: its id, its queue, and whether the
    /// topic is new here (the node must subscribe on the network).
    pub fn subscribe(
        &mut self,
        topic: &str,
    ) -> Result<(u64, mpsc::Receiver<Arc<Received>>, bool), PubsubError> {
        let new = !self.topics.contains_key(topic);
        if new && self.topics.len() >= self.max_topics {
            // Subscribers that left make room.
            self.prune();
            if self.topics.len() >= self.max_topics {
                return Err(PubsubError::TooManyTopics {
                    max: self.max_topics,
                });
            }
        }
        let (tx, rx) = mpsc::channel(self.queue);
        self.next_id += 1;
        let id = self.next_id;
        let subs = self.topics.entry(topic.to_string()).or_default();
        let new = subs.is_empty();
        subs.push(LocalSub { id, tx });
        Ok((id, rx, new))
    }

    /// Removes subscriber `id` of `topic`; true when it was the topic's last.
    pub fn remove(&mut self, topic: &str, id: u64) -> bool {
        let Some(subs) = self.topics.get_mut(topic) else {
            return false;
        };
        subs.retain(|s| s.id != id && !s.tx.is_closed());
        if subs.is_empty() {
            self.topics.remove(topic);
            return true;
        }
        false
    }

    /// Hands `message` to its topic's subscribers.
    pub fn deliver(&mut self, message: &Arc<Received>) -> Delivery {
        let mut d = Delivery::default();
        let Some(subs) = self.topics.get_mut(&message.topic) else {
            return d;
        };
        subs.retain(|s| match s.tx.try_send(Arc::clone(message)) {
            Ok(()) => {
                d.delivered += 1;
                true
            }
            Err(mpsc::error::TrySendError::Full(_)) => {
                d.dropped += 1;
                true
            }
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        });
        self.dropped += d.dropped as u64;
        if subs.is_empty() {
            self.topics.remove(&message.topic);
            d.emptied = true;
        }
        d
    }

    /// Forgets subscribers that are gone; the topics left with none.
    pub fn prune(&mut self) -> Vec<String> {
        let mut emptied = Vec::new();
        self.topics.retain(|topic, subs| {
            subs.retain(|s| !s.tx.is_closed());
            if subs.is_empty() {
                emptied.push(topic.clone());
            }
            !subs.is_empty()
        });
        emptied
    }

    /// The topics with a subscriber, sorted.
    pub fn topics(&self) -> Vec<String> {
        self.topics.keys().cloned().collect()
    }

    /// Messages dropped so far because a subscriber's queue was full.
    pub fn dropped_total(&self) -> u64 {
        self.dropped
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use libp2p::PeerId;

    fn message(topic: &str, n: u64) -> Arc<Received> {
        Arc::new(Received {
            from: PeerId::random(),
            seqno: n,
            topic: topic.into(),
            data: bytes::Bytes::from(n.to_string()),
            via: None,
        })
    }

    #[test]
    fn a_full_queue_drops_and_counts_and_others_still_get_it() {
        let mut hub = Hub::new(2, 10);
        let (_, mut slow, first) = hub.subscribe("t").unwrap();
        assert!(first);
        let (_, mut fast, again) = hub.subscribe("t").unwrap();
        assert!(!again);
        for n in 0..2 {
            let d = hub.deliver(&message("t", n));
            assert_eq!((d.delivered, d.dropped, d.emptied), (2, 0, false));
            assert_eq!(fast.try_recv().unwrap().seqno, n);
        }
        let d = hub.deliver(&message("t", 2));
        assert_eq!((d.delivered, d.dropped), (1, 1));
        assert_eq!(hub.dropped_total(), 1);
        assert_eq!(fast.try_recv().unwrap().seqno, 2);
        assert_eq!(slow.try_recv().unwrap().seqno, 0);
        assert_eq!(slow.try_recv().unwrap().seqno, 1);
        assert!(slow.try_recv().is_err());
        // Other topics reach nobody.
        assert_eq!(hub.deliver(&message("u", 0)), Delivery::default());
    }

    #[test]
    fn the_last_subscriber_out_empties_the_topic() {
        let mut hub = Hub::new(4, 10);
        let (a, _ra, _) = hub.subscribe("t").unwrap();
        let (b, rb, _) = hub.subscribe("t").unwrap();
        assert!(!hub.remove("t", a));
        assert_eq!(hub.topics(), vec!["t".to_string()]);
        drop(rb);
        // Gone without saying so: found by the next delivery.
        let d = hub.deliver(&message("t", 0));
        assert!(d.emptied);
        assert!(hub.topics().is_empty());
        assert!(!hub.remove("t", b));
        let (_, rc, _) = hub.subscribe("u").unwrap();
        drop(rc);
        assert_eq!(hub.prune(), vec!["u".to_string()]);
    }

    #[test]
    fn topics_are_bounded_and_freed_by_leaving() {
        let mut hub = Hub::new(1, 2);
        let (_, r1, _) = hub.subscribe("a").unwrap();
        let (_, _r2, _) = hub.subscribe("b").unwrap();
        let (_, _r3, _) = hub.subscribe("a").unwrap();
        assert!(matches!(
            hub.subscribe("c"),
            Err(PubsubError::TooManyTopics { max: 2 })
        ));
        drop(r1);
        drop(_r3);
        assert!(hub.subscribe("c").unwrap().2);
        assert_eq!(hub.topics(), vec!["b".to_string(), "c".to_string()]);
    }
}

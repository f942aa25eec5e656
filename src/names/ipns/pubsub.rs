//! IPNS over pub/sub, as Kubo's experimental `--enable-namesys-pubsub`
//! (go-libp2p-pubsub-router): a name's records are also published on a
//! gossipsub topic, so a node that follows the name hears of a new record
//! as soon as it is published instead of after its cached answer expires
//! and a DHT walk.
//!
//! Wire format: the topic of a name is `/record/` followed by the unpadded
//! base64url of its routing key (`/ipns/` + the peer ID's bytes, see
//! [`routing_key`]); a message's data is the record's protobuf bytes, the
//! same bytes the DHT stores.
//!
//! [`PubsubNames`] keeps the names this node follows (at most
//! `[ipns] pubsub_names`) and the best record seen for each. A node
//! follows a name once it has looked it up (on the DHT) or published it.
//! Every record that arrives is checked as the DHT checks one (signature by
//! the name's key, V1 copies, end of life, size: [`record::validate`]);
//! invalid ones are refused and counted, older ones ignored, and a better
//! one replaces the held record and the cached answer of the name.
//!
//! Not done (as Kubo does): refusing an invalid record inside gossipsub
//! (it is forwarded before this check), finding the topic's peers through
//! the DHT, and asking peers for the latest record on joining (Kubo's
//! `/libp2p/fetch`); the lookup that starts following a name gives the
//! latest record instead.

use super::record::{self, IpnsRecord};
use super::{routing_key, IpnsError};
use crate::names::cache::TtlCache;
use crate::net::swarm::SwarmHandle;
use base64::Engine as _;
use libp2p::PeerId;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

/// The prefix of record topics.
pub const TOPIC_PREFIX: &str = "/record/";

/// The pub/sub topic of `name`'s records: `/record/` and the unpadded
/// base64url of its routing key (go-libp2p-pubsub-router's `KeyToTopic`).
pub fn record_topic(name: &PeerId) -> String {
    let key = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(routing_key(name));
    format!("{TOPIC_PREFIX}{key}")
}

/// What became of a record that arrived on a name's topic.
#[derive(Debug)]
pub enum Offer {
    /// Valid and better than the one held: it is the name's record now.
    Taken(IpnsRecord),
    /// Valid, but not better than the one held (a duplicate or an older
    /// record): ignored.
    Stale,
    /// Invalid for this name (malformed, forged, expired, too large):
    /// refused and counted.
    Refused(IpnsError),
}

/// A held record: its bytes and contents.
type Held = (Vec<u8>, IpnsRecord);

/// Counters of IPNS over pub/sub.
#[derive(Debug, Default)]
pub struct PubsubStats {
    /// Records taken from pub/sub (better than the one held).
    pub taken: AtomicU64,
    /// Records from pub/sub refused as invalid.
    pub refused: AtomicU64,
    /// Records published on a name's topic.
    pub sent: AtomicU64,
}

/// The names this node follows on pub/sub and the best record of each.
#[derive(Debug)]
pub struct PubsubNames {
    enabled: bool,
    max_names: usize,
    /// Followed names; `None` until a record of the name is known.
    follows: Mutex<HashMap<PeerId, Option<Held>>>,
    /// The resolve cache of the IPNS service, updated with taken records.
    cache: Arc<TtlCache<PeerId, String>>,
    stats: PubsubStats,
}

impl PubsubNames {
    /// Following at most `max_names` names when `enabled`; taken records
    /// update `cache`.
    pub fn new(
        enabled: bool,
        max_names: usize,
        cache: Arc<TtlCache<PeerId, String>>,
    ) -> PubsubNames {
        PubsubNames {
            enabled,
            max_names,
            follows: Mutex::new(HashMap::new()),
            cache,
            stats: PubsubStats::default(),
        }
    }

    /// Whether IPNS over pub/sub is on (`[ipns] pubsub`).
    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// Its counters.
    pub fn stats(&self) -> &PubsubStats {
        &self.stats
    }

    /// The names followed, sorted.
    pub fn followed(&self) -> Vec<PeerId> {
        let mut names: Vec<PeerId> = lock(&self.follows).keys().copied().collect();
        names.sort_by_key(|p| p.to_bytes());
        names
    }

    /// The best record of `name` heard on pub/sub or noted, if followed.
    pub fn held(&self, name: &PeerId) -> Option<Vec<u8>> {
        lock(&self.follows)
            .get(name)
            .and_then(|h| h.as_ref())
            .map(|(bytes, _)| bytes.clone())
    }

    /// Checks `bytes`, received on `name`'s topic at `now`, and keeps it
    /// (updating the cached answer) when it is valid and better than the
    /// record held. Records for names not followed are refused.
    pub fn offer(&self, name: &PeerId, bytes: &[u8], now: SystemTime) -> Offer {
        let rec = match record::validate(name, bytes, now) {
            Ok(rec) => rec,
            Err(e) => {
                self.stats.refused.fetch_add(1, Ordering::Relaxed);
                return Offer::Refused(e);
            }
        };
        let mut follows = lock(&self.follows);
        let Some(held) = follows.get_mut(name) else {
            return Offer::Stale;
        };
        if let Some((_, best)) = held {
            if record::compare(&rec, best) != std::cmp::Ordering::Greater {
                return Offer::Stale;
            }
        }
        *held = Some((bytes.to_vec(), rec.clone()));
        drop(follows);
        self.cache
            .insert(*name, rec.value_text(), super::service::cache_time(&rec));
        self.stats.taken.fetch_add(1, Ordering::Relaxed);
        Offer::Taken(rec)
    }

    /// Notes `rec` (bytes and contents, already valid) as `name`'s record
    /// if the name is followed and it is better than the one held.
    fn note(&self, name: &PeerId, bytes: &[u8], rec: &IpnsRecord) {
        if let Some(held) = lock(&self.follows).get_mut(name) {
            let better = held
                .as_ref()
                .is_none_or(|(_, b)| record::compare(rec, b) == std::cmp::Ordering::Greater);
            if better {
                *held = Some((bytes.to_vec(), rec.clone()));
            }
        }
    }

    /// Reserves a place for `name`: true when it was not followed and
    /// there is room.
    fn reserve(&self, name: &PeerId) -> bool {
        let mut follows = lock(&self.follows);
        if follows.contains_key(name) {
            return false;
        }
        if follows.len() >= self.max_names {
            tracing::debug!(%name, max = self.max_names, "IPNS pubsub: following as many names as [ipns] pubsub_names allows");
            return false;
        }
        follows.insert(*name, None);
        true
    }

    /// Follows `name` on pub/sub (when on, not yet followed and there is
    /// room), noting `known` (a valid record of it) as the one held; the
    /// subscription lasts as long as the node.
    pub fn follow(
        self: &Arc<Self>,
        swarm: &SwarmHandle,
        name: PeerId,
        known: Option<(&[u8], &IpnsRecord)>,
    ) {
        if !self.enabled {
            return;
        }
        let new = self.reserve(&name);
        if let Some((bytes, rec)) = known {
            self.note(&name, bytes, rec);
        }
        if new {
            let this = Arc::clone(self);
            let handle = swarm.clone();
            swarm.spawn_task(async move { this.run(handle, name).await });
        }
    }

    /// Publishes `bytes` (a record of `name`) on the name's topic, when on.
    /// Nobody listening is not an error (as Kubo).
    pub async fn announce(
        &self,
        swarm: &SwarmHandle,
        name: &PeerId,
        bytes: &[u8],
    ) -> Result<(), crate::net::pubsub::PubsubError> {
        if !self.enabled {
            return Ok(());
        }
        swarm
            .pubsub_publish(record_topic(name), bytes.to_vec().into())
            .await?;
        self.stats.sent.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// The follower of one name: takes what arrives on its topic until
    /// the node stops.
    async fn run(self: Arc<Self>, swarm: SwarmHandle, name: PeerId) {
        let topic = record_topic(&name);
        let mut sub = match swarm.pubsub_subscribe(topic).await {
            Ok(sub) => sub,
            Err(e) => {
                tracing::debug!(%name, "IPNS pubsub: cannot follow the name: {e}");
                lock(&self.follows).remove(&name);
                return;
            }
        };
        tracing::debug!(%name, "IPNS pubsub: following");
        while let Some(m) = sub.next().await {
            match self.offer(&name, &m.data, SystemTime::now()) {
                Offer::Taken(rec) => {
                    tracing::debug!(%name, from = %m.from, sequence = rec.sequence, "IPNS pubsub: newer record taken")
                }
                Offer::Stale => {}
                Offer::Refused(e) => {
                    tracing::debug!(%name, from = %m.from, "IPNS pubsub: record refused: {e}")
                }
            }
        }
        lock(&self.follows).remove(&name);
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;
    use libp2p::identity::Keypair;
    use std::time::Duration;

    fn signed(key: &Keypair, value: &str, seq: u64) -> Vec<u8> {
        let eol = SystemTime::now() + Duration::from_secs(3600);
        record::create(key, value.as_bytes(), seq, eol, Duration::from_secs(60)).unwrap()
    }

    #[test]
    fn a_names_topic_is_record_and_the_unpadded_base64url_of_its_routing_key() {
        // go-libp2p-pubsub-router's KeyToTopic for the key "/ipns/" + id.
        let name = Keypair::generate_ed25519().public().to_peer_id();
        let topic = record_topic(&name);
        let b64 = topic.strip_prefix("/record/").unwrap();
        assert!(!b64.contains('=') && !b64.contains('+') && !b64.contains('/'));
        let key = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(b64)
            .unwrap();
        assert_eq!(key, [b"/ipns/".as_slice(), &name.to_bytes()].concat());
        // "/ipns/" is "L2lwbnMv" in base64url.
        assert!(b64.starts_with("L2lwbnMv"), "{topic}");
    }

    #[test]
    fn better_records_are_taken_older_ignored_and_invalid_refused() {
        let cache = Arc::new(TtlCache::new(8));
        let names = PubsubNames::new(true, 1, Arc::clone(&cache));
        let key = Keypair::generate_ed25519();
        let name = key.public().to_peer_id();
        let now = SystemTime::now();
        // Not followed: nothing kept.
        assert!(matches!(
            names.offer(&name, &signed(&key, "/ipfs/a", 1), now),
            Offer::Stale
        ));
        assert!(names.reserve(&name));
        assert!(!names.reserve(&name), "once");
        assert!(!names.reserve(&PeerId::random()), "bounded");
        let first = signed(&key, "/ipfs/a", 1);
        let rec = record::validate(&name, &first, now).unwrap();
        names.note(&name, &first, &rec);
        assert_eq!(names.held(&name), Some(first.clone()));

        let newer = signed(&key, "/ipfs/b", 2);
        assert!(matches!(names.offer(&name, &newer, now), Offer::Taken(r) if r.sequence == 2));
        assert_eq!(cache.get(&name).unwrap().0, "/ipfs/b");
        assert!(matches!(names.offer(&name, &newer, now), Offer::Stale));
        assert!(matches!(names.offer(&name, &first, now), Offer::Stale));
        assert_eq!(cache.get(&name).unwrap().0, "/ipfs/b");

        // Garbage, another key's record, a tampered one: refused, counted.
        let other = signed(&Keypair::generate_ed25519(), "/ipfs/c", 9);
        let mut tampered = signed(&key, "/ipfs/d", 9);
        let at = tampered.len() - 3;
        tampered[at] ^= 1;
        for bad in [&b"not a record"[..], &other, &tampered] {
            assert!(matches!(names.offer(&name, bad, now), Offer::Refused(_)));
        }
        assert_eq!(names.stats().refused.load(Ordering::Relaxed), 3);
        assert_eq!(names.stats().taken.load(Ordering::Relaxed), 1);
        assert_eq!(names.held(&name), Some(newer));
        assert_eq!(names.followed(), vec![name]);
    }
}

//! Publishing, resolving and republishing a node's IPNS names.
//!
//! [`Names`] keeps the last record this node published for each of its
//! keys in the repo's metadata (`ipns.<peer id>`: the record's bytes), so
//! sequence numbers survive restarts and every publish takes the next one.
//! Online, a record also goes to the DHT (kad PUT_VALUE under
//! [`routing_key`]); the republisher signs each kept record again with a
//! new end of life (same value and sequence) at startup and every
//! `republish_interval`, before `record_lifetime` runs out.
//!
//! Resolving collects the DHT's answers (and our own record), keeps the
//! best valid one ([`record::select`]) and caches its value for the record's
//! TTL (never past its end of life) in a bounded cache; `nocache` skips the
//! cache. `/ipns/` values are followed when resolving recursively, and
//! `/ipns/` names that are domains resolve through DNSLink
//! ([`crate::names::dnslink`]) on the way.

use super::pubsub::PubsubNames;
use super::record::{self, IpnsRecord};
use super::{parse_name, routing_key, IpnsError, IpnsValidator, IPNS_PREFIX};
use crate::names::cache::TtlCache;
use crate::names::dnslink::{self, DnsLink};
use crate::names::Keystore;
use crate::net::swarm::SwarmHandle;
use crate::store::Store;
use libp2p::PeerId;
use serde::{Deserialize, Serialize};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

/// A renewed record's name and bytes, `None` when its key is gone.
type RenewResult = Result<Option<(PeerId, Vec<u8>)>, IpnsError>;

/// Metadata key prefix of the records this node published.
const META_PREFIX: &str = "ipns.";

/// Answers a DHT resolve collects before choosing, unless the walk ends
/// first (Kubo's quorum for IPNS).
const RESOLVE_ANSWERS: usize = 16;

/// Most `/ipns/` hops a recursive resolve follows (Kubo's limit).
pub const MAX_RESOLVE_DEPTH: usize = 32;

/// How soon a republish round that failed is tried again.
const REPUBLISH_RETRY: Duration = Duration::from_secs(60);

/// `[ipns]` in `config.toml`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IpnsSettings {
    /// How often every name this node published is signed and published
    /// again (Kubo: 4 h); also done when the daemon starts.
    #[serde(with = "humantime_serde")]
    pub republish_interval: Duration,
    /// How long a published record stays valid (its end of life; Kubo: 48 h).
    #[serde(with = "humantime_serde")]
    pub record_lifetime: Duration,
    /// How long resolvers may cache a record, unless `--ttl` says otherwise.
    #[serde(with = "humantime_serde")]
    pub record_ttl: Duration,
    /// Most resolved names kept in the cache (IPNS names and DNSLink
    /// domains each).
    pub cache_entries: usize,
    /// IPNS over pub/sub (Kubo's `--enable-namesys-pubsub`): records are
    /// also published on the name's `/record/` topic, and names this node
    /// looked up are followed there, so updates arrive at once.
    pub pubsub: bool,
    /// Most names followed on pub/sub (each is a topic subscription,
    /// counted in `[pubsub] max_topics`).
    pub pubsub_names: usize,
}

impl Default for IpnsSettings {
    fn default() -> Self {
        IpnsSettings {
            republish_interval: Duration::from_secs(4 * 3600),
            record_lifetime: Duration::from_secs(48 * 3600),
            record_ttl: Duration::from_secs(3600),
            cache_entries: 1024,
            pubsub: false,
            pubsub_names: 32,
        }
    }
}

/// How to publish.
#[derive(Clone, Debug, Default)]
pub struct PublishOptions {
    /// The key whose name is published (`self` when `None`).
    pub key: Option<String>,
    /// Validity from now (the configured `record_lifetime` when `None`).
    pub lifetime: Option<Duration>,
    /// Cache time for resolvers (the configured `record_ttl` when `None`).
    pub ttl: Option<Duration>,
}

/// How to resolve.
#[derive(Clone, Copy, Debug)]
pub struct ResolveOptions {
    /// Follow `/ipns/` values until an `/ipfs/` path.
    pub recursive: bool,
    /// Ask the network even when the name is cached.
    pub nocache: bool,
}

impl Default for ResolveOptions {
    fn default() -> Self {
        ResolveOptions {
            recursive: true,
            nocache: false,
        }
    }
}

/// Counters of the IPNS service (exported as metrics).
#[derive(Debug, Default)]
pub struct NamesStats {
    /// Records published by `name publish`.
    pub published: AtomicU64,
    /// Records republished.
    pub republished: AtomicU64,
    /// Resolves answered from the cache.
    pub cache_hits: AtomicU64,
    /// Peers sent the best record after they answered an outdated one.
    pub corrected: AtomicU64,
}

/// The IPNS service of a node: its keys, its repo, its cache.
pub struct Names {
    keys: Arc<Keystore>,
    store: Arc<dyn Store>,
    settings: IpnsSettings,
    cache: Arc<TtlCache<PeerId, String>>,
    pubsub: Arc<PubsubNames>,
    dnslink: DnsLink,
    /// Publishes take their sequence numbers one at a time.
    publishing: Mutex<()>,
    validator: Arc<IpnsValidator>,
    stats: Arc<NamesStats>,
}

impl Names {
    /// The service over `keys` and the repo metadata of `store`.
    /// DNSLink domains resolve through the system's DNS resolver.
    pub fn new(keys: Arc<Keystore>, store: Arc<dyn Store>, settings: IpnsSettings) -> Names {
        let dnslink = DnsLink::system(settings.cache_entries);
        Names::with_dnslink(keys, store, settings, dnslink)
    }

    /// The service with DNSLink domains resolved by `dnslink`.
    pub fn with_dnslink(
        keys: Arc<Keystore>,
        store: Arc<dyn Store>,
        settings: IpnsSettings,
        dnslink: DnsLink,
    ) -> Names {
        let cache = Arc::new(TtlCache::new(settings.cache_entries));
        let pubsub = PubsubNames::new(settings.pubsub, settings.pubsub_names, Arc::clone(&cache));
        Names {
            keys,
            store,
            cache,
            pubsub: Arc::new(pubsub),
            dnslink,
            settings,
            publishing: Mutex::new(()),
            validator: Arc::new(IpnsValidator::default()),
            stats: Arc::new(NamesStats::default()),
        }
    }

    /// The validator the DHT's record store checks value records with.
    pub fn validator(&self) -> Arc<IpnsValidator> {
        Arc::clone(&self.validator)
    }

    /// The service's counters.
    pub fn stats(&self) -> &Arc<NamesStats> {
        &self.stats
    }

    /// IPNS over pub/sub: the names followed and their records.
    pub fn pubsub(&self) -> &Arc<PubsubNames> {
        &self.pubsub
    }

    /// The settings it runs with.
    pub fn settings(&self) -> &IpnsSettings {
        &self.settings
    }

    /// Signs a record of `value` (a path, or a bare CID meaning `/ipfs/CID`)
    /// under `opts.key`'s name with the next sequence number (the same one
    /// when the value is unchanged, as Kubo) and keeps it
    /// in the repo; returns the name and the record's bytes and contents.
    /// Put it on the DHT with [`put`](Self::put). Blocking (repo writes).
    pub fn publish_local(
        &self,
        value: &str,
        opts: &PublishOptions,
    ) -> Result<(PeerId, Vec<u8>, IpnsRecord), IpnsError> {
        let value = normalise_value(value)?;
        let key_name = opts.key.as_deref().unwrap_or(crate::names::keystore::SELF);
        let key = self.keys.get(key_name)?;
        let name = key.public().to_peer_id();
        let _one_at_a_time = lock(&self.publishing);
        // As Kubo: the sequence moves only when the value does (a record
        // of the same value is only renewed: new end of life and TTL).
        let sequence = match self.own_record(&name)? {
            Some((_, previous)) if previous.value == value.as_bytes() => previous.sequence,
            Some((_, previous)) => previous.sequence.saturating_add(1),
            None => 0,
        };
        let lifetime = opts.lifetime.unwrap_or(self.settings.record_lifetime);
        let ttl = opts.ttl.unwrap_or(self.settings.record_ttl);
        let eol = SystemTime::now() + lifetime;
        let bytes = record::create(&key, value.as_bytes(), sequence, eol, ttl)?;
        self.store.meta_put(&meta_key(&name), Some(&bytes))?;
        self.stats.published.fetch_add(1, Ordering::Relaxed);
        let rec = record::fields(&bytes)?;
        self.remember(&name, &rec);
        Ok((name, bytes, rec))
    }

    /// Stores `name`'s record on the DHT; with `[ipns] pubsub`, first
    /// publishes it on the name's topic (and follows the name there).
    pub async fn put(
        &self,
        dht: &SwarmHandle,
        name: &PeerId,
        bytes: Vec<u8>,
    ) -> Result<(), IpnsError> {
        if self.pubsub.enabled() {
            if let Ok(rec) = record::fields(&bytes) {
                self.pubsub
                    .follow(dht, *name, Some((bytes.as_slice(), &rec)));
            }
            if let Err(e) = self.pubsub.announce(dht, name, &bytes).await {
                tracing::debug!(%name, "IPNS pubsub: publishing the record: {e}");
            }
        }
        Ok(dht.put_value(routing_key(name), bytes).await?)
    }

    /// Resolves `input` (`NAME`, `/ipns/NAME[/path]`, NAME a key's name or
    /// a DNSLink domain) to the path it points at (with the input's own
    /// path appended): from the cache, the records this node published,
    /// the DHT when `dht` is given, and DNS for domains.
    pub async fn resolve(
        &self,
        input: &str,
        opts: ResolveOptions,
        dht: Option<&SwarmHandle>,
    ) -> Result<String, IpnsError> {
        Ok(self.resolve_ttl(input, opts, dht).await?.0)
    }

    /// [`resolve`](Self::resolve), with how long the answer may be cached:
    /// the shortest TTL along the chain of names, never past an end of life.
    pub async fn resolve_ttl(
        &self,
        input: &str,
        opts: ResolveOptions,
        dht: Option<&SwarmHandle>,
    ) -> Result<(String, Duration), IpnsError> {
        let mut path = input.trim().to_string();
        if !path.starts_with(IPNS_PREFIX) {
            path = format!("{IPNS_PREFIX}{path}");
        }
        let mut ttl = Duration::MAX;
        for _ in 0..MAX_RESOLVE_DEPTH {
            let (value, valid, rest) = self.resolve_step(&path, opts.nocache, dht).await?;
            ttl = ttl.min(valid);
            path = format!("{value}{rest}");
            if !opts.recursive || !path.starts_with(IPNS_PREFIX) {
                return Ok((path, ttl));
            }
        }
        Err(IpnsError::TooDeep {
            name: input.to_string(),
            depth: MAX_RESOLVE_DEPTH,
        })
    }

    /// One step of `/ipns/NAME/rest`: what NAME (a key's name or a
    /// domain) points at, how long that may be cached, and `/rest`.
    async fn resolve_step(
        &self,
        path: &str,
        nocache: bool,
        dht: Option<&SwarmHandle>,
    ) -> Result<(String, Duration, String), IpnsError> {
        let after = path.strip_prefix(IPNS_PREFIX).unwrap_or(path);
        let (first, rest) = after.split_at(after.find('/').unwrap_or(after.len()));
        if dnslink::is_domain(first) {
            let (value, ttl) = self.dnslink.resolve(first, nocache).await?;
            return Ok((value, ttl, rest.trim_end_matches('/').to_string()));
        }
        let (name, rest) = parse_name(path)?;
        let (value, ttl) = self.resolve_one(&name, nocache, dht).await?;
        Ok((value, ttl, rest))
    }

    /// The value of `name`'s best record and how long it may be cached.
    async fn resolve_one(
        &self,
        name: &PeerId,
        nocache: bool,
        dht: Option<&SwarmHandle>,
    ) -> Result<(String, Duration), IpnsError> {
        if !nocache {
            if let Some(hit) = self.cached(name) {
                self.stats.cache_hits.fetch_add(1, Ordering::Relaxed);
                return Ok(hit);
            }
        }
        let (bytes, best) = self.best_record(name, dht).await?;
        self.remember(name, &best);
        if let Some(dht) = dht {
            self.pubsub
                .follow(dht, *name, Some((bytes.as_slice(), &best)));
        }
        Ok((best.value_text(), cache_time(&best)))
    }

    /// The best valid record of `name` (its bytes and contents) among the
    /// one this node published and what the DHT answers (when `dht` is
    /// given), by the spec's rules. Peers that answered another record (an
    /// outdated or invalid one) are sent the best, as Kubo's DHT does.
    pub async fn best_record(
        &self,
        name: &PeerId,
        dht: Option<&SwarmHandle>,
    ) -> Result<(Vec<u8>, IpnsRecord), IpnsError> {
        let mut candidates: Vec<Vec<u8>> = Vec::new();
        if let Some((bytes, _)) = self.own_record(name)? {
            candidates.push(bytes);
        }
        // What pub/sub brought (it may be newer than what the DHT holds).
        candidates.extend(self.pubsub.held(name));
        let mut answers = Vec::new();
        if let Some(dht) = dht {
            match dht.get_values(routing_key(name), RESOLVE_ANSWERS).await {
                Ok(found) => answers = found,
                Err(e) if candidates.is_empty() => return Err(e.into()),
                Err(e) => tracing::debug!(%name, "IPNS lookup on the DHT: {e}"),
            }
        }
        candidates.extend(answers.iter().map(|a| a.value.clone()));
        let now = SystemTime::now();
        let (i, best) = record::select(name, candidates.iter().map(Vec::as_slice), now)
            .ok_or(IpnsError::NotFound { name: *name })?;
        let bytes = candidates.swap_remove(i);
        let outdated: Vec<PeerId> = answers
            .iter()
            .filter(|a| a.value != bytes)
            .flat_map(|a| a.peers.iter().copied())
            .collect();
        if let (Some(dht), false) = (dht, outdated.is_empty()) {
            tracing::debug!(%name, peers = outdated.len(), "IPNS: sending the best record to peers that hold another");
            self.stats
                .corrected
                .fetch_add(outdated.len() as u64, Ordering::Relaxed);
            if let Err(e) = dht
                .put_value_to(routing_key(name), bytes.clone(), outdated)
                .await
            {
                tracing::debug!(%name, "IPNS: correcting outdated peers: {e}");
            }
        }
        Ok((bytes, best))
    }

    /// Signs every record this node published again with a new end of life
    /// (same value and sequence), keeps it, and puts it on the DHT; returns
    /// how many went out and the first failure. The repo's reads and
    /// writes run on a blocking thread, off the async runtime.
    pub async fn republish(self: &Arc<Self>, dht: &SwarmHandle) -> (usize, Option<IpnsError>) {
        let names = Arc::clone(self);
        let renewed = match tokio::task::spawn_blocking(move || names.renew_all()).await {
            Ok(Ok(r)) => r,
            Ok(Err(e)) => return (0, Some(e)),
            Err(e) => {
                let e = crate::net::NetError::TaskFailed {
                    task: "IPNS republish",
                    source: Arc::new(e),
                };
                return (0, Some(e.into()));
            }
        };
        let mut done = 0;
        let mut failure = None;
        for (meta, renewed) in renewed {
            let result = match renewed {
                Ok(Some((name, bytes))) => self.put(dht, &name, bytes).await,
                Ok(None) => continue,
                Err(e) => Err(e),
            };
            match result {
                Ok(()) => {
                    done += 1;
                    self.stats.republished.fetch_add(1, Ordering::Relaxed);
                }
                Err(e) => {
                    // A node alone (or still joining) has no peer to take
                    // records: not worth a warning every retry.
                    if matches!(e, IpnsError::Net(crate::net::NetError::NoValuePeers)) {
                        tracing::debug!(record = %meta, "IPNS republish: {e}");
                    } else {
                        tracing::warn!(record = %meta, "IPNS republish: {e}");
                    }
                    failure.get_or_insert(e);
                }
            }
        }
        (done, failure)
    }

    /// Every kept record renewed ([`renew`](Self::renew)), by metadata key.
    /// Blocking (repo reads and writes).
    fn renew_all(&self) -> Result<Vec<(String, RenewResult)>, IpnsError> {
        let entries = self.store.meta_scan(META_PREFIX)?;
        Ok(entries
            .into_iter()
            .map(|(meta, bytes)| {
                let renewed = self.renew(&meta, &bytes);
                (meta, renewed)
            })
            .collect())
    }

    /// Runs the republisher until the node stops: a round at once, then
    /// every `republish_interval` (a failed round is retried within a
    /// minute).
    pub async fn run_republisher(self: Arc<Self>, dht: SwarmHandle) {
        loop {
            let (done, failure) = self.republish(&dht).await;
            if done > 0 {
                tracing::info!(records = done, "IPNS records republished");
            }
            let wait = match failure {
                Some(_) => REPUBLISH_RETRY.min(self.settings.republish_interval),
                None => self.settings.republish_interval,
            };
            tokio::time::sleep(wait).await;
        }
    }

    /// A kept record signed again with a new end of life: the name and the
    /// new bytes, or `None` when its key is gone.
    fn renew(&self, meta: &str, bytes: &[u8]) -> RenewResult {
        let Some(name) = meta
            .strip_prefix(META_PREFIX)
            .and_then(|p| p.parse::<PeerId>().ok())
        else {
            return Ok(None);
        };
        let Some(key) = self.key_of(&name)? else {
            return Ok(None);
        };
        let _one_at_a_time = lock(&self.publishing);
        let old = record::fields(bytes)?;
        let eol = SystemTime::now() + self.settings.record_lifetime;
        let renewed = record::create(&key, &old.value, old.sequence, eol, old.ttl)?;
        self.store.meta_put(meta, Some(&renewed))?;
        Ok(Some((name, renewed)))
    }

    /// The keypair whose name is `name`, if it is one of ours.
    fn key_of(&self, name: &PeerId) -> Result<Option<libp2p::identity::Keypair>, IpnsError> {
        for info in self.keys.list()? {
            if info.id == *name {
                return Ok(Some(self.keys.get(&info.name)?));
            }
        }
        Ok(None)
    }

    /// The record this node last published for `name` (bytes and fields).
    fn own_record(&self, name: &PeerId) -> Result<Option<(Vec<u8>, IpnsRecord)>, IpnsError> {
        let Some(bytes) = self.store.meta_get(&meta_key(name))? else {
            return Ok(None);
        };
        let fields = record::fields(&bytes)?;
        Ok(Some((bytes, fields)))
    }

    /// A cached value of `name` and how much longer it may be served.
    fn cached(&self, name: &PeerId) -> Option<(String, Duration)> {
        self.cache.get(name)
    }

    /// Caches `rec`'s value for its TTL, never past its end of life.
    fn remember(&self, name: &PeerId, rec: &IpnsRecord) {
        self.cache.insert(*name, rec.value_text(), cache_time(rec));
    }
}

/// How long `rec` may be cached: its TTL, never past its end of life.
pub(super) fn cache_time(rec: &IpnsRecord) -> Duration {
    let left = rec
        .eol
        .duration_since(SystemTime::now())
        .unwrap_or_default();
    rec.ttl.min(left)
}

/// The metadata key of `name`'s kept record.
fn meta_key(name: &PeerId) -> String {
    format!("{META_PREFIX}{name}")
}

/// `value` as a path: `/ipfs/CID[/path]` (its CID checked), `/ipns/NAME[/path]`,
/// or a bare CID (meaning `/ipfs/CID`).
fn normalise_value(value: &str) -> Result<String, IpnsError> {
    let v = value.trim();
    let bad = || IpnsError::BadValue {
        value: value.to_string(),
    };
    if v.starts_with(IPNS_PREFIX) {
        parse_name(v)?;
        return Ok(v.to_string());
    }
    let path = if v.starts_with("/ipfs/") {
        v.to_string()
    } else if !v.starts_with('/') {
        format!("/ipfs/{v}")
    } else {
        return Err(bad());
    };
    crate::block::parse_cid(&path).map_err(|_| bad())?;
    Ok(path)
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::MemoryStore;

    fn names(settings: IpnsSettings) -> Names {
        let keys = Arc::new(Keystore::in_memory([7; 32]));
        Names::new(keys, Arc::new(MemoryStore::new()), settings)
    }

    fn resolve(n: &Names, input: &str, opts: ResolveOptions) -> Result<String, IpnsError> {
        futures::executor::block_on(n.resolve(input, opts, None))
    }

    const CID: &str = "bafkqaaa";

    #[test]
    fn publish_takes_the_next_sequence_and_resolves_offline() {
        let n = names(IpnsSettings::default());
        let (name, _, first) = n.publish_local(CID, &PublishOptions::default()).unwrap();
        assert_eq!(first.sequence, 0);
        assert_eq!(first.value_text(), "/ipfs/bafkqaaa");
        let (again, _, second) = n
            .publish_local("/ipfs/bafkqaaa/x", &PublishOptions::default())
            .unwrap();
        assert_eq!((again, second.sequence), (name, 1));
        // The same value again keeps the sequence (Kubo), with a new EOL.
        let (_, _, same) = n
            .publish_local("/ipfs/bafkqaaa/x", &PublishOptions::default())
            .unwrap();
        assert_eq!(same.sequence, 1);
        assert!(same.eol >= second.eol);
        let k51 = crate::names::keystore::ipns_name(&name);
        let opts = ResolveOptions {
            recursive: true,
            nocache: true,
        };
        assert_eq!(resolve(&n, &k51, opts).unwrap(), "/ipfs/bafkqaaa/x");
        assert_eq!(
            resolve(&n, &format!("/ipns/{k51}/a"), opts).unwrap(),
            "/ipfs/bafkqaaa/x/a"
        );
        // Unknown names are not found; bad values refused.
        let other = crate::names::keystore::ipns_name(&PeerId::random());
        assert!(matches!(
            resolve(&n, &other, opts),
            Err(IpnsError::BadName { .. }) | Err(IpnsError::NotFound { .. })
        ));
        for bad in ["/etc/passwd", "not a cid", "/ipfs/nope"] {
            assert!(
                matches!(
                    n.publish_local(bad, &PublishOptions::default()),
                    Err(IpnsError::BadValue { .. })
                ),
                "{bad}"
            );
        }
        let (_, _, moved) = n.publish_local(CID, &PublishOptions::default()).unwrap();
        assert_eq!(moved.sequence, 2, "a new value takes the next sequence");
    }

    #[test]
    fn names_pointing_at_names_resolve_recursively_or_one_step() {
        let n = names(IpnsSettings::default());
        n.keys.generate("other", "ed25519").unwrap();
        let (own, _, _) = n.publish_local(CID, &PublishOptions::default()).unwrap();
        let own_path = format!("/ipns/{}", crate::names::keystore::ipns_name(&own));
        let opts = PublishOptions {
            key: Some("other".into()),
            ..Default::default()
        };
        let (other, _, _) = n.publish_local(&own_path, &opts).unwrap();
        let other = crate::names::keystore::ipns_name(&other);
        let deep = ResolveOptions::default();
        assert_eq!(resolve(&n, &other, deep).unwrap(), "/ipfs/bafkqaaa");
        let shallow = ResolveOptions {
            recursive: false,
            nocache: false,
        };
        assert_eq!(resolve(&n, &other, shallow).unwrap(), own_path);
    }

    #[test]
    fn the_cache_is_bounded_and_follows_the_ttl() {
        let n = names(IpnsSettings {
            cache_entries: 2,
            ..Default::default()
        });
        let key = libp2p::identity::Keypair::generate_ed25519();
        let eol = SystemTime::now() + Duration::from_secs(60);
        let mut peers = Vec::new();
        for i in 0..3u64 {
            let p = PeerId::random();
            let ttl = Duration::from_secs(10 + i);
            let bytes = record::create(&key, b"/ipfs/x", i, eol, ttl).unwrap();
            n.remember(&p, &record::fields(&bytes).unwrap());
            peers.push(p);
        }
        assert_eq!(n.cache.len(), 2);
        assert!(n.cached(&peers[0]).is_none(), "the soonest to expire went");
        assert!(n.cached(&peers[2]).is_some());
        // A zero TTL is not served from the cache.
        let bytes = record::create(&key, b"/ipfs/y", 9, eol, Duration::ZERO).unwrap();
        n.remember(&peers[1], &record::fields(&bytes).unwrap());
        assert!(n.cached(&peers[1]).is_none());
    }
}

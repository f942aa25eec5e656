//! The DHT's record store: our own provider keys, the provider records
//! other peers placed with us, and value records (IPNS records), each
//! checked by a [`ValueValidator`] before it is kept.
//!
//! rust-libp2p's `MemoryStore` counts our keys and other peers' against one
//! cap (1,024 by default), never drops other peers' records once they
//! expire unless someone asks for that very key, and keeps whatever
//! addresses a record came with. This store keeps them apart:
//!
//! - our keys are a set with its own cap ([`RecordLimits::max_local_keys`]),
//!   sized for every block of a large repo; a record is made from the key
//!   when asked (our addresses are filled in by Kademlia at answer time);
//! - other peers' records are bounded by bytes
//!   ([`RecordLimits::max_remote_bytes`]) and by 20 providers per key
//!   (Kademlia's replication factor), keep at most
//!   [`MAX_ADDRS_PER_RECORD`] addresses of at most [`MAX_ADDR_BYTES`] each,
//!   and are swept when they expire ([`ProviderStore::remove_expired`], on a
//!   timer in the swarm task). A full store ignores new records from others
//!   (as `MemoryStore` does when a key has its 20 providers): which records
//!   we keep is never decided by whoever sends the most.
//! - value records pass the node's [`ValueValidator`] (the layer that knows
//!   the record format gives it) before they are stored, whether another
//!   peer PUTs them or we publish; one replaces the record held under its
//!   key only if the validator ranks it at least as good, and it expires
//!   when the validator says it stops being valid. A refused PUT fails
//!   for its sender (kad resets the request). Without a validator, value
//!   records are refused.

use libp2p::kad::store::{Error, RecordStore, Result};
use libp2p::kad::{ProviderRecord, Record, RecordKey, K_VALUE};
use libp2p::PeerId;
use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Instant, SystemTime};

/// Decides which value records the store keeps (implemented by the layer
/// that knows their format: IPNS records in `names::ipns`).
pub trait ValueValidator: Send + Sync + std::fmt::Debug {
    /// Whether `value` may be stored under `key`: `Ok` with the time it
    /// stops being valid, or why not.
    fn validate(&self, key: &[u8], value: &[u8]) -> std::result::Result<SystemTime, String>;

    /// Whether `new` (valid) should replace `held` under `key`.
    fn replaces(&self, key: &[u8], held: &[u8], new: &[u8]) -> bool;
}

/// Addresses kept per provider record from another peer.
pub const MAX_ADDRS_PER_RECORD: usize = 8;

/// Longest address kept (bytes); longer ones are dropped.
pub const MAX_ADDR_BYTES: usize = 256;

/// Accounted cost of a record besides its key and addresses (the peer id,
/// the expiry, the vectors' headers and the map entry).
const RECORD_OVERHEAD_BYTES: usize = 128;

/// Bounds of a [`ProviderStore`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecordLimits {
    /// Keys we announce ourselves as provider of.
    pub max_local_keys: usize,
    /// Bytes of provider records held for other peers.
    pub max_remote_bytes: usize,
    /// Value records held for other peers.
    pub max_values: usize,
    /// Largest value record.
    pub max_value_bytes: usize,
}

impl Default for RecordLimits {
    fn default() -> Self {
        RecordLimits {
            max_local_keys: 10_000_000,
            max_remote_bytes: 128 * 1024 * 1024,
            max_values: 1024,
            max_value_bytes: 16 * 1024,
        }
    }
}

/// Kademlia's record store in cairn (see the module docs).
pub struct ProviderStore {
    local: PeerId,
    limits: RecordLimits,
    local_keys: HashSet<RecordKey>,
    remote: HashMap<RecordKey, Vec<ProviderRecord>>,
    remote_bytes: usize,
    remote_records: usize,
    values: HashMap<RecordKey, Record>,
    validator: Option<Arc<dyn ValueValidator>>,
}

fn cost(r: &ProviderRecord) -> usize {
    RECORD_OVERHEAD_BYTES
        + r.key.as_ref().len()
        + r.addresses.iter().map(|a| a.as_ref().len()).sum::<usize>()
}

impl ProviderStore {
    /// An empty store for the node `local`.
    pub fn new(local: PeerId, limits: RecordLimits) -> Self {
        ProviderStore {
            local,
            limits,
            local_keys: HashSet::new(),
            remote: HashMap::new(),
            remote_bytes: 0,
            remote_records: 0,
            values: HashMap::new(),
            validator: None,
        }
    }

    /// The store, checking value records with `validator`.
    pub fn with_validator(mut self, validator: Option<Arc<dyn ValueValidator>>) -> Self {
        self.validator = validator;
        self
    }

    fn local_record(&self, key: &RecordKey) -> ProviderRecord {
        ProviderRecord {
            key: key.clone(),
            provider: self.local,
            expires: None,
            addresses: Vec::new(),
        }
    }

    /// Drops other peers' provider records and value records that expired
    /// by `now`; returns how many provider records went.
    pub fn remove_expired(&mut self, now: Instant) -> usize {
        let mut removed = 0;
        let mut freed = 0;
        self.remote.retain(|_, records| {
            records.retain(|r| {
                let keep = !r.is_expired(now);
                if !keep {
                    removed += 1;
                    freed += cost(r);
                }
                keep
            });
            !records.is_empty()
        });
        self.remote_records -= removed;
        self.remote_bytes -= freed;
        self.values.retain(|_, v| !v.is_expired(now));
        removed
    }

    /// Our keys, other peers' records and their accounted bytes.
    pub fn counts(&self) -> (usize, usize, usize) {
        (
            self.local_keys.len(),
            self.remote_records,
            self.remote_bytes,
        )
    }
}

impl RecordStore for ProviderStore {
    type RecordsIter<'a> = Box<dyn Iterator<Item = Cow<'a, Record>> + 'a>;
    type ProvidedIter<'a> = Box<dyn Iterator<Item = Cow<'a, ProviderRecord>> + 'a>;

    fn get(&self, k: &RecordKey) -> Option<Cow<'_, Record>> {
        self.values.get(k).map(Cow::Borrowed)
    }

    fn put(&mut self, mut r: Record) -> Result<()> {
        if r.value.len() > self.limits.max_value_bytes {
            return Err(Error::ValueTooLarge);
        }
        // kad's store errors have no kind for an invalid record: a refused
        // one fails as a full store would.
        let Some(validator) = &self.validator else {
            return Err(Error::MaxRecords);
        };
        let eol = match validator.validate(r.key.as_ref(), &r.value) {
            Ok(eol) => eol,
            Err(reason) => {
                tracing::debug!(key = ?r.key, %reason, "value record refused");
                return Err(Error::MaxRecords);
            }
        };
        if let Some(held) = self.values.get(&r.key) {
            if held.value != r.value && !validator.replaces(r.key.as_ref(), &held.value, &r.value) {
                tracing::debug!(key = ?r.key, "value record refused: the one held is better");
                return Err(Error::MaxRecords);
            }
        }
        let left = eol.duration_since(SystemTime::now()).unwrap_or_default();
        if let Some(valid_until) = Instant::now().checked_add(left) {
            r.expires = Some(r.expires.map_or(valid_until, |e| e.min(valid_until)));
        }
        if !self.values.contains_key(&r.key) && self.values.len() >= self.limits.max_values {
            return Err(Error::MaxRecords);
        }
        self.values.insert(r.key.clone(), r);
        Ok(())
    }

    fn remove(&mut self, k: &RecordKey) {
        self.values.remove(k);
    }

    fn records(&self) -> Self::RecordsIter<'_> {
        Box::new(self.values.values().map(Cow::Borrowed))
    }

    fn add_provider(&mut self, mut record: ProviderRecord) -> Result<()> {
        if record.provider == self.local {
            if !self.local_keys.contains(&record.key)
                && self.local_keys.len() >= self.limits.max_local_keys
            {
                return Err(Error::MaxProvidedKeys);
            }
            self.local_keys.insert(record.key);
            return Ok(());
        }
        record
            .addresses
            .retain(|a| a.as_ref().len() <= MAX_ADDR_BYTES);
        record.addresses.truncate(MAX_ADDRS_PER_RECORD);
        let new_cost = cost(&record);
        let records = self.remote.entry(record.key.clone()).or_default();
        if let Some(old) = records.iter_mut().find(|r| r.provider == record.provider) {
            let old_cost = cost(old);
            if self.remote_bytes - old_cost + new_cost > self.limits.max_remote_bytes {
                // A refresh that would not fit keeps the old addresses, with
                // the new expiry.
                old.expires = record.expires;
                return Ok(());
            }
            self.remote_bytes = self.remote_bytes - old_cost + new_cost;
            *old = record;
            return Ok(());
        }
        if records.len() >= K_VALUE.get()
            || self.remote_bytes + new_cost > self.limits.max_remote_bytes
        {
            if records.is_empty() {
                self.remote.remove(&record.key);
            }
            return Ok(());
        }
        records.push(record);
        self.remote_records += 1;
        self.remote_bytes += new_cost;
        Ok(())
    }

    fn providers(&self, key: &RecordKey) -> Vec<ProviderRecord> {
        let mut out: Vec<ProviderRecord> = self.remote.get(key).cloned().unwrap_or_default();
        if self.local_keys.contains(key) {
            out.push(self.local_record(key));
        }
        out
    }

    fn provided(&self) -> Self::ProvidedIter<'_> {
        Box::new(
            self.local_keys
                .iter()
                .map(|k| Cow::Owned(self.local_record(k))),
        )
    }

    fn remove_provider(&mut self, k: &RecordKey, p: &PeerId) {
        if *p == self.local {
            self.local_keys.remove(k);
            return;
        }
        let Some(records) = self.remote.get_mut(k) else {
            return;
        };
        if let Some(i) = records.iter().position(|r| r.provider == *p) {
            let r = records.remove(i);
            self.remote_records -= 1;
            self.remote_bytes -= cost(&r);
        }
        if records.is_empty() {
            self.remote.remove(k);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use libp2p::Multiaddr;
    use std::time::Duration;

    fn key(i: u32) -> RecordKey {
        RecordKey::new(&format!("key {i}"))
    }

    fn remote(k: RecordKey, provider: PeerId, expires: Option<Instant>) -> ProviderRecord {
        ProviderRecord {
            key: k,
            provider,
            expires,
            addresses: vec!["/ip4/127.0.0.1/tcp/4001".parse().unwrap()],
        }
    }

    #[test]
    fn our_keys_are_kept_apart_from_other_peers_records() {
        let me = PeerId::random();
        let mut s = ProviderStore::new(
            me,
            RecordLimits {
                max_local_keys: 100_000,
                max_remote_bytes: 10_000,
                ..RecordLimits::default()
            },
        );
        // Other peers fill their share...
        let other = PeerId::random();
        for i in 0..1000 {
            s.add_provider(remote(key(i), other, None)).unwrap();
        }
        let (_, remote_records, remote_bytes) = s.counts();
        assert!(remote_records < 1000, "bounded by bytes");
        assert!(remote_bytes <= 10_000);
        // ...and 100,000 keys of ours still fit.
        for i in 0..100_000 {
            s.add_provider(ProviderRecord::new(key(i), me, Vec::new()))
                .unwrap();
        }
        assert!(matches!(
            s.add_provider(ProviderRecord::new(key(100_001), me, Vec::new())),
            Err(Error::MaxProvidedKeys)
        ));
        assert_eq!(s.provided().count(), 100_000);
        let ps = s.providers(&key(0));
        assert_eq!(ps.len(), 2);
        assert!(ps
            .iter()
            .any(|p| p.provider == me && p.addresses.is_empty()));
        s.remove_provider(&key(0), &me);
        assert_eq!(s.providers(&key(0)).len(), 1);
    }

    /// Accepts values starting with "ok", valid a minute; a longer value
    /// is better.
    #[derive(Debug)]
    struct Prefix;

    impl ValueValidator for Prefix {
        fn validate(&self, _: &[u8], v: &[u8]) -> std::result::Result<SystemTime, String> {
            if v.starts_with(b"ok") {
                Ok(SystemTime::now() + Duration::from_secs(60))
            } else {
                Err("not ok".into())
            }
        }

        fn replaces(&self, _: &[u8], held: &[u8], new: &[u8]) -> bool {
            new.len() >= held.len()
        }
    }

    #[test]
    fn value_records_pass_the_validator_and_only_better_ones_replace() {
        let value = |v: &[u8]| Record::new(key(1), v.to_vec());
        let mut bare = ProviderStore::new(PeerId::random(), RecordLimits::default());
        assert!(bare.put(value(b"ok")).is_err(), "no validator: refused");
        let mut s = ProviderStore::new(PeerId::random(), RecordLimits::default())
            .with_validator(Some(Arc::new(Prefix)));
        assert!(s.put(value(b"bad")).is_err());
        assert!(s.get(&key(1)).is_none(), "a refused record is not kept");
        s.put(value(b"ok-longer")).unwrap();
        let held = s.get(&key(1)).unwrap().into_owned();
        assert!(held
            .expires
            .is_some_and(|e| e <= Instant::now() + Duration::from_secs(60)));
        assert!(
            s.put(value(b"ok")).is_err(),
            "a worse record does not replace"
        );
        s.put(value(b"ok-longer")).unwrap();
        s.put(value(b"ok-even-longer")).unwrap();
        assert_eq!(s.get(&key(1)).unwrap().value, b"ok-even-longer");
        assert_eq!(
            s.remove_expired(Instant::now() + Duration::from_secs(61)),
            0
        );
        assert!(s.get(&key(1)).is_none(), "expired with its validity");
    }

    #[test]
    fn other_peers_records_are_bounded_and_expire() {
        let me = PeerId::random();
        let mut s = ProviderStore::new(me, RecordLimits::default());
        let now = Instant::now();
        // At most 20 providers per key.
        for _ in 0..30 {
            s.add_provider(remote(
                key(1),
                PeerId::random(),
                Some(now + Duration::from_secs(60)),
            ))
            .unwrap();
        }
        assert_eq!(s.providers(&key(1)).len(), K_VALUE.get());
        // Addresses are capped in number and length.
        let mut r = remote(key(2), PeerId::random(), Some(now));
        let long: Multiaddr = format!("/dns4/{}/tcp/1", "a".repeat(300)).parse().unwrap();
        r.addresses = std::iter::repeat_n(r.addresses[0].clone(), 50)
            .chain([long])
            .collect();
        s.add_provider(r).unwrap();
        assert_eq!(
            s.providers(&key(2))[0].addresses.len(),
            MAX_ADDRS_PER_RECORD
        );
        // Expired records are swept, and their bytes given back.
        let (_, records, _) = s.counts();
        assert_eq!(records, 21);
        assert_eq!(s.remove_expired(now + Duration::from_secs(1)), 1);
        assert_eq!(s.remove_expired(now + Duration::from_secs(61)), 20);
        assert_eq!(s.counts(), (0, 0, 0));
    }
}

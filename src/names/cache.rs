//! [`TtlCache`]: resolved names kept for as long as their records allow,
//! in a bounded map (IPNS names by peer ID, DNSLink domains by name).

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// A bounded map whose entries expire: a full cache first drops expired
/// entries, then the one expiring soonest.
#[derive(Debug)]
pub struct TtlCache<K, V> {
    entries: Mutex<HashMap<K, (V, Instant)>>,
    capacity: usize,
}

impl<K: Eq + Hash + Clone, V: Clone> TtlCache<K, V> {
    /// A cache of at most `capacity` entries (0 keeps nothing).
    pub fn new(capacity: usize) -> Self {
        TtlCache {
            entries: Mutex::new(HashMap::new()),
            capacity,
        }
    }

    /// The value kept for `key` and how much longer it may be served.
    pub fn get(&self, key: &K) -> Option<(V, Duration)> {
        let entries = self.lock();
        let now = Instant::now();
        entries
            .get(key)
            .filter(|(_, until)| *until > now)
            .map(|(v, until)| (v.clone(), *until - now))
    }

    /// Keeps `value` for `key` during `ttl`; a zero TTL forgets `key`.
    pub fn insert(&self, key: K, value: V, ttl: Duration) {
        let mut entries = self.lock();
        if self.capacity == 0 || ttl.is_zero() {
            entries.remove(&key);
            return;
        }
        let Some(until) = Instant::now().checked_add(ttl) else {
            return;
        };
        if entries.len() >= self.capacity && !entries.contains_key(&key) {
            let now = Instant::now();
            entries.retain(|_, (_, until)| *until > now);
            if entries.len() >= self.capacity {
                let soonest = entries
                    .iter()
                    .min_by_key(|(_, (_, until))| *until)
                    .map(|(k, _)| k.clone());
                if let Some(k) = soonest {
                    entries.remove(&k);
                }
            }
        }
        entries.insert(key, (value, until));
    }

    /// How many entries are kept (expired ones included until evicted).
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether nothing is kept.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<K, (V, Instant)>> {
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_and_expiring() {
        let cache = TtlCache::new(2);
        for i in 0..3u64 {
            cache.insert(i, i * 10, Duration::from_secs(10 + i));
        }
        assert_eq!(cache.len(), 2);
        assert!(cache.get(&0).is_none(), "the soonest to expire went");
        let (v, left) = cache.get(&2).unwrap();
        assert_eq!(v, 20);
        assert!(left <= Duration::from_secs(12) && left > Duration::from_secs(11));
        cache.insert(2, 99, Duration::ZERO);
        assert!(cache.get(&2).is_none(), "a zero TTL forgets");
        let none: TtlCache<u8, u8> = TtlCache::new(0);
        none.insert(1, 1, Duration::from_secs(5));
        assert!(none.is_empty());
    }
}

//! DNSLink: domain names that point at content through DNS, as the
//! DNSLink spec (dnslink.dev) and Kubo read them.
//!
//! `/ipns/example.org[/path]` is looked up as the TXT records of
//! `_dnslink.example.org` through the system resolver (`/etc/resolv.conf`,
//! its `timeout` and `attempts` options included). The strings of one TXT
//! record are joined; the record that reads `dnslink=/ipfs/CID[/path]` or
//! `dnslink=/ipns/NAME[/path]` (NAME an IPNS name or another DNSLink
//! domain; Kubo's legacy `dnslink=CID` too) is the domain's value, and
//! other TXT records are ignored. Two valid `dnslink=` paths are an error
//! (as in Kubo: the domain's owner must remove one). The bare domain's own
//! TXT records are not read: Kubo dropped that fallback in 2023 (boxo,
//! "remove support for legacy root dnslink").
//!
//! A value is cached for its TXT record's TTL in a bounded [`TtlCache`];
//! failures are not cached. Following `/ipns/` values (and the depth
//! limit) is the caller's: see [`Names::resolve_ttl`](super::ipns::Names::resolve_ttl).
//!
//! The gateway's subdomain form inlines a domain in one DNS label
//! (`example-org.ipns.{gateway}`, `-` written `--`): [`uninline`] reverses it.

use super::cache::TtlCache;
use futures::future::BoxFuture;
use hickory_resolver::TokioResolver;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The label DNSLink records live under.
const DNSLINK_LABEL: &str = "_dnslink.";

/// The prefix of a DNSLink TXT record.
const DNSLINK_PREFIX: &str = "dnslink=";

/// Why a domain did not resolve through DNSLink.
#[derive(Debug, Clone, thiserror::Error)]
pub enum DnsLinkError {
    /// Not a domain name.
    #[error("{domain:?} is not a domain name: {reason}")]
    BadDomain {
        /// The text given.
        domain: String,
        /// Why.
        reason: &'static str,
    },
    /// No TXT record at `_dnslink.{domain}` starts with `dnslink=`.
    #[error("{domain} has no DNSLink: no dnslink= TXT record at _dnslink.{domain}")]
    NoRecord {
        /// The domain.
        domain: String,
    },
    /// A `dnslink=` record whose value is not a valid path.
    #[error("the DNSLink of {domain} is malformed: {entry:?} is not dnslink=/ipfs/CID or dnslink=/ipns/NAME")]
    Malformed {
        /// The domain.
        domain: String,
        /// The record as read.
        entry: String,
    },
    /// More than one valid `dnslink=` path.
    #[error("{domain} has {count} DNSLink paths at _dnslink.{domain}: its owner must remove all but one")]
    Ambiguous {
        /// The domain.
        domain: String,
        /// How many.
        count: usize,
    },
    /// The DNS lookup itself failed (no resolver, timeout, server failure).
    #[error("DNSLink lookup for {domain} failed: {reason}")]
    Lookup {
        /// The domain.
        domain: String,
        /// What the resolver said.
        reason: String,
    },
}

/// The TXT records of a name and how long they may be cached.
#[derive(Clone, Debug, Default)]
pub struct TxtAnswer {
    /// Each record's strings joined.
    pub records: Vec<String>,
    /// The records' TTL.
    pub ttl: Duration,
}

/// Why a TXT lookup gave no records.
#[derive(Debug, Clone)]
pub enum TxtError {
    /// The name does not exist or has no TXT record.
    NotFound,
    /// The lookup failed.
    Failed(String),
}

/// Looks up TXT records (the system resolver, or a fake in tests).
pub trait TxtLookup: Send + Sync {
    /// The TXT records of the fully qualified `name`.
    fn txt<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<TxtAnswer, TxtError>>;
}

/// DNSLink resolution: a TXT lookup and a cache of domains' values.
pub struct DnsLink {
    lookup: Box<dyn TxtLookup>,
    cache: TtlCache<String, String>,
}

impl DnsLink {
    /// Resolution through `lookup`, caching at most `cache_entries` domains.
    pub fn new(lookup: Box<dyn TxtLookup>, cache_entries: usize) -> DnsLink {
        DnsLink {
            lookup,
            cache: TtlCache::new(cache_entries),
        }
    }

    /// Resolution through the system resolver.
    pub fn system(cache_entries: usize) -> DnsLink {
        DnsLink::new(Box::new(SystemResolver::default()), cache_entries)
    }

    /// The path `domain`'s DNSLink names (`/ipfs/…` or `/ipns/…`, one step)
    /// and how long it may be cached; from the cache unless `nocache`.
    pub async fn resolve(
        &self,
        domain: &str,
        nocache: bool,
    ) -> Result<(String, Duration), DnsLinkError> {
        let domain = check_domain(domain)?;
        if !nocache {
            if let Some(hit) = self.cache.get(&domain) {
                return Ok(hit);
            }
        }
        let fqdn = format!("{DNSLINK_LABEL}{domain}.");
        let answer = match self.lookup.txt(&fqdn).await {
            Ok(a) => a,
            Err(TxtError::NotFound) => return Err(DnsLinkError::NoRecord { domain }),
            Err(TxtError::Failed(reason)) => return Err(DnsLinkError::Lookup { domain, reason }),
        };
        let value = value_of(&domain, &answer.records)?;
        tracing::debug!(%domain, %value, ttl = ?answer.ttl, "DNSLink resolved");
        self.cache.insert(domain, value.clone(), answer.ttl);
        Ok((value, answer.ttl))
    }
}

/// Whether `name` (the first segment after `/ipns/`) is a domain rather
/// than a key's name: key names (CIDs, peer IDs) never contain a dot.
pub fn is_domain(name: &str) -> bool {
    name.contains('.')
}

/// `domain` lowercased without a final dot, if it is a domain name
/// (RFC 1035 lengths; letters, digits, `-` and `_`).
fn check_domain(domain: &str) -> Result<String, DnsLinkError> {
    let bad = |reason| DnsLinkError::BadDomain {
        domain: domain.to_string(),
        reason,
    };
    let d = domain.strip_suffix('.').unwrap_or(domain);
    if d.is_empty() || d.len() > 253 {
        return Err(bad("empty or longer than 253 characters"));
    }
    for label in d.split('.') {
        if label.is_empty() || label.len() > 63 {
            return Err(bad("a label is empty or longer than 63 characters"));
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err(bad("a label starts or ends with '-'"));
        }
        if !label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(bad("only letters, digits, '-' and '_' are allowed"));
        }
    }
    Ok(d.to_ascii_lowercase())
}

/// The one DNSLink path among `records`.
fn value_of(domain: &str, records: &[String]) -> Result<String, DnsLinkError> {
    let entries: Vec<&str> = records
        .iter()
        .filter_map(|r| r.trim().strip_prefix(DNSLINK_PREFIX))
        .collect();
    let paths: Vec<String> = entries.iter().filter_map(|e| parse_value(e)).collect();
    match (paths.len(), entries.first()) {
        (1, _) => Ok(paths.into_iter().next().unwrap_or_default()),
        (0, None) => Err(DnsLinkError::NoRecord {
            domain: domain.to_string(),
        }),
        (0, Some(entry)) => Err(DnsLinkError::Malformed {
            domain: domain.to_string(),
            entry: format!("{DNSLINK_PREFIX}{entry}"),
        }),
        (count, _) => Err(DnsLinkError::Ambiguous {
            domain: domain.to_string(),
            count,
        }),
    }
}

/// A `dnslink=` value as a path: `/ipfs/CID[/path]`, `/ipns/NAME[/path]`
/// (NAME a key's name or a domain) or a bare CID.
fn parse_value(value: &str) -> Option<String> {
    let v = value.trim();
    if let Some(rest) = v.strip_prefix(super::ipns::IPNS_PREFIX) {
        let name = rest.split('/').next().unwrap_or_default();
        let ok = if is_domain(name) {
            check_domain(name).is_ok()
        } else {
            super::ipns::parse_name(v).is_ok()
        };
        return ok.then(|| v.to_string());
    }
    let path = if v.starts_with("/ipfs/") {
        v.to_string()
    } else if !v.starts_with('/') {
        format!("/ipfs/{v}")
    } else {
        return None;
    };
    crate::block::parse_cid(&path).ok().map(|_| path)
}

/// The domain a subdomain gateway label inlines (`my-v--long-example-com`
/// is `my.v-long.example.com`), as the subdomain gateway spec says.
pub fn uninline(label: &str) -> String {
    let mut out = String::with_capacity(label.len());
    let mut chars = label.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '-' if chars.peek() == Some(&'-') => {
                chars.next();
                out.push('-');
            }
            '-' => out.push('.'),
            c => out.push(c),
        }
    }
    out
}

/// Most TXT answers a DNSLink lookup reads (a DNS message holds fewer).
const MAX_TXT_RECORDS: usize = 64;

/// The system's resolver (`/etc/resolv.conf`), read on first use; its own
/// cache is off, since [`DnsLink`] caches values and `nocache` must reach
/// the DNS server.
#[derive(Default)]
pub struct SystemResolver {
    resolver: OnceLock<Result<TokioResolver, String>>,
}

impl SystemResolver {
    fn resolver(&self) -> Result<&TokioResolver, TxtError> {
        self.resolver
            .get_or_init(|| {
                let mut builder = TokioResolver::builder_tokio()
                    .map_err(|e| format!("reading the system's DNS configuration: {e}"))?;
                builder.options_mut().cache_size = 0;
                Ok(builder.build())
            })
            .as_ref()
            .map_err(|e| TxtError::Failed(e.clone()))
    }
}

impl TxtLookup for SystemResolver {
    fn txt<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<TxtAnswer, TxtError>> {
        Box::pin(async move {
            let resolver = self.resolver()?;
            match resolver.txt_lookup(name).await {
                Ok(lookup) => {
                    let ttl = lookup
                        .valid_until()
                        .saturating_duration_since(Instant::now());
                    let records = lookup
                        .iter()
                        .take(MAX_TXT_RECORDS)
                        .map(|txt| {
                            let parts: Vec<u8> = txt.txt_data().concat();
                            String::from_utf8_lossy(&parts).into_owned()
                        })
                        .collect();
                    Ok(TxtAnswer { records, ttl })
                }
                Err(e) if e.is_nx_domain() || e.is_no_records_found() => Err(TxtError::NotFound),
                Err(e) => Err(TxtError::Failed(e.to_string())),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    /// TXT records from a map; counts the lookups.
    struct Fake(HashMap<String, Vec<String>>, Arc<AtomicUsize>);

    impl TxtLookup for Fake {
        fn txt<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<TxtAnswer, TxtError>> {
            self.1.fetch_add(1, Ordering::Relaxed);
            let answer = match self.0.get(name) {
                Some(r) if r.first().map(String::as_str) == Some("SERVFAIL") => {
                    Err(TxtError::Failed("server failure".into()))
                }
                Some(r) => Ok(TxtAnswer {
                    records: r.clone(),
                    ttl: Duration::from_secs(30),
                }),
                None => Err(TxtError::NotFound),
            };
            Box::pin(async move { answer })
        }
    }

    const CID: &str = "bafkqaaa";

    fn counted(records: &[(&str, &[&str])]) -> (DnsLink, Arc<AtomicUsize>) {
        let map = records
            .iter()
            .map(|(n, r)| (n.to_string(), r.iter().map(|s| s.to_string()).collect()))
            .collect();
        let lookups = Arc::new(AtomicUsize::new(0));
        let fake = Fake(map, Arc::clone(&lookups));
        (DnsLink::new(Box::new(fake), 8), lookups)
    }

    fn dnslink(records: &[(&str, &[&str])]) -> DnsLink {
        counted(records).0
    }

    fn resolve(d: &DnsLink, domain: &str) -> Result<String, DnsLinkError> {
        futures::executor::block_on(d.resolve(domain, false)).map(|(v, _)| v)
    }

    #[test]
    fn dnslink_records_resolve_as_kubo_reads_them() {
        let k51 = crate::names::keystore::ipns_name(&libp2p::PeerId::random());
        let ipns = format!("dnslink=/ipns/{k51}");
        let d = dnslink(&[
            (
                "_dnslink.example.org.",
                &["v=spf1 -all", "dnslink=/ipfs/bafkqaaa/a"],
            ),
            ("_dnslink.legacy.org.", &["dnslink=bafkqaaa"]),
            ("_dnslink.chain.org.", &["dnslink=/ipns/example.org/b"]),
            ("_dnslink.key.org.", &[&ipns]),
            ("_dnslink.bad.org.", &["dnslink=/ipfs/nope"]),
            (
                "_dnslink.two.org.",
                &["dnslink=/ipfs/bafkqaaa", "dnslink=bafkqaaa"],
            ),
            ("_dnslink.other.org.", &["google-site-verification=x"]),
            ("_dnslink.broken.org.", &["SERVFAIL"]),
            ("bare.org.", &["dnslink=/ipfs/bafkqaaa"]),
        ]);
        assert_eq!(resolve(&d, "example.org").unwrap(), "/ipfs/bafkqaaa/a");
        assert_eq!(resolve(&d, "Example.ORG.").unwrap(), "/ipfs/bafkqaaa/a");
        assert_eq!(resolve(&d, "legacy.org").unwrap(), format!("/ipfs/{CID}"));
        assert_eq!(resolve(&d, "chain.org").unwrap(), "/ipns/example.org/b");
        assert_eq!(resolve(&d, "key.org").unwrap(), format!("/ipns/{k51}"));
        let err = |domain| resolve(&d, domain).unwrap_err();
        assert!(matches!(err("bad.org"), DnsLinkError::Malformed { .. }));
        assert!(matches!(
            err("two.org"),
            DnsLinkError::Ambiguous { count: 2, .. }
        ));
        assert!(matches!(err("other.org"), DnsLinkError::NoRecord { .. }));
        assert!(matches!(err("missing.org"), DnsLinkError::NoRecord { .. }));
        assert!(matches!(err("broken.org"), DnsLinkError::Lookup { .. }));
        // No fallback to the bare domain's TXT records (Kubo dropped it).
        assert!(matches!(err("bare.org"), DnsLinkError::NoRecord { .. }));
        for bad in ["a..b", "-a.org", "a b.org", "x.ex%61mple.org", ".", ""] {
            assert!(matches!(err(bad), DnsLinkError::BadDomain { .. }), "{bad}");
        }
        assert!(err("missing.org")
            .to_string()
            .contains("_dnslink.missing.org"));
    }

    #[test]
    fn values_are_cached_for_the_ttl_and_nocache_asks_again() {
        let (d, count) = counted(&[("_dnslink.example.org.", &["dnslink=/ipfs/bafkqaaa"])]);
        let lookups = || count.load(Ordering::Relaxed);
        let (_, ttl) = futures::executor::block_on(d.resolve("example.org", false)).unwrap();
        assert_eq!(ttl, Duration::from_secs(30));
        let (_, left) = futures::executor::block_on(d.resolve("example.org", false)).unwrap();
        assert!(left <= ttl);
        assert_eq!(lookups(), 1, "the second answer came from the cache");
        futures::executor::block_on(d.resolve("example.org", true)).unwrap();
        assert_eq!(lookups(), 2);
        // Failures are not cached.
        for _ in 0..2 {
            let _ = futures::executor::block_on(d.resolve("missing.org", false));
        }
        assert_eq!(lookups(), 4);
    }

    #[test]
    fn inlined_labels_give_back_the_domain() {
        assert_eq!(uninline("example-org"), "example.org");
        assert_eq!(uninline("my-v--long-example-com"), "my.v-long.example.com");
        assert_eq!(uninline("a---b"), "a-.b");
        assert!(is_domain("example.org") && !is_domain("k51qzi5uqu5d"));
    }
}

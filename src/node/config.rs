//! `config.toml`: every setting of a node, read once and passed down.
//!
//! Every value is checked when the file is read: sizes are [`ByteSize`]s,
//! choices are enums, so a bad value is an error naming its line and key
//! rather than a surprise when the setting is first used.

mod connections;
mod net;
mod pubsub;
mod show;
mod size;

pub use connections::ConnectionSettings;
pub use net::{DhtMode, NetSettings, Profile, RelayLimitSettings, PUBLIC_BOOTSTRAP};
pub use pubsub::PubsubSettings;
pub use show::REDACTED;
pub use size::{parse_size, ByteSize, SizeError};

use crate::block::{CidFormat, HashAlg};
use crate::dag::builder::{ImportOptions, Layout};
use crate::dag::chunker::ChunkerSpec;
use crate::dag::hamt::{Sharding, SizeEstimate};
use crate::store::DiskStoreOptions;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// Settings that are wrong where they are used (not caught by reading the
/// file: addresses given as flags, options that depend on each other).
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A `[net] listen` address (or `--listen` flag) is not a multiaddr.
    #[error("[net] listen {addr:?}: {source}")]
    ListenAddr {
        /// The address as written.
        addr: String,
        /// The underlying error.
        #[source]
        source: libp2p::multiaddr::Error,
    },
    /// A `[net] static_relays` entry is not a multiaddr ending in
    /// `/p2p/<ID>`.
    #[error("[net] static_relays {addr:?}: {why}")]
    RelayAddr {
        /// The address as written.
        addr: String,
        /// What is wrong with it.
        why: String,
    },
    /// `[net] conn_low_water` above `conn_high_water`.
    #[error("[net] conn_low_water ({low}) is above conn_high_water ({high}): a trim could never reach it (conn_high_water = 0 turns the connection manager off)")]
    ConnWaterMarks {
        /// `conn_low_water`.
        low: usize,
        /// `conn_high_water`.
        high: usize,
    },
    /// The `[import]` settings do not fit together (e.g. CIDv0 with BLAKE3).
    #[error("[import]: {0}")]
    Import(#[source] super::BoxedSource),
    /// A `[pubsub]` value out of its range.
    #[error("[pubsub] {0}")]
    Pubsub(String),
}

/// The whole configuration file.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Defaults for `add` (each can be overridden by a flag).
    pub import: ImportConfig,
    /// Block store tuning.
    pub store: StoreConfig,
    /// Peer-to-peer networking (the daemon).
    pub net: NetSettings,
    /// The daemon's RPC API.
    pub api: ApiSettings,
    /// Announcing content on the DHT.
    pub provide: ProvideSettings,
    /// The HTTP gateway.
    pub gateway: GatewaySettings,
    /// How much this node stores.
    pub storage: StorageSettings,
    /// Keeping pinned roots at their replication factor.
    pub replication: ReplicationSettings,
    /// IPNS: record lifetime and TTL, republishing, the resolve cache.
    pub ipns: crate::names::ipns::IpnsSettings,
    /// MFS (`files`): keeping a path published.
    pub mfs: crate::names::mfs::MfsSettings,
    /// The S3-compatible endpoint.
    pub s3: S3Settings,
    /// Pub/sub (gossipsub).
    pub pubsub: PubsubSettings,
}

impl Config {
    /// The defaults with `[net]` set up for `profile`: [`Config::default`]
    /// for "local", [`NetSettings::public`] for "public".
    pub fn for_profile(profile: Profile) -> Config {
        let net = match profile {
            Profile::Local => NetSettings::default(),
            Profile::Public => NetSettings::public(),
        };
        Config {
            net,
            ..Config::default()
        }
    }
}

/// `[s3]`: the S3-compatible endpoint the daemon serves (see `crate::s3`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct S3Settings {
    /// Address to listen on, e.g. "127.0.0.1:9000"; empty (the default) or
    /// "off" serves no S3 endpoint. Every request must be signed with an
    /// access key (`cairn s3 key create`), wherever it listens.
    pub listen: String,
    /// Timeouts and connection caps (`[s3.connections]`).
    pub connections: ConnectionSettings,
    /// A multipart upload left open this long is aborted (its parts' blocks
    /// go at the next GC), as an S3 lifecycle rule would; checked when the
    /// endpoint starts and periodically after.
    #[serde(with = "humantime_serde")]
    pub multipart_expiry: Duration,
}

impl Default for S3Settings {
    /// No endpoint; uploads expire after 7 days.
    fn default() -> Self {
        S3Settings {
            listen: String::new(),
            connections: ConnectionSettings::default(),
            multipart_expiry: Duration::from_secs(7 * 24 * 3600),
        }
    }
}

/// `[storage]`: limits on what this node keeps.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StorageSettings {
    /// Most block data stored, e.g. "50GB", "512MiB" ("0": no limit). A hard
    /// limit: writes past it fail with a clear error, and the node refuses
    /// replicas that would not fit.
    pub max: ByteSize,
}

impl Default for StorageSettings {
    fn default() -> Self {
        StorageSettings { max: ByteSize(0) }
    }
}

/// `[replication]`: replication factor and repair (see `replicate`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ReplicationSettings {
    /// Copies a root pinned with replication keeps on live nodes.
    pub factor: u8,
    /// Copies tolerated before trimming (returning holders); ≥ factor.
    pub max: u8,
    /// How often each root's holders are checked and copies placed.
    #[serde(with = "humantime_serde")]
    pub repair_interval: Duration,
    /// A holder that fails checks is declared lost (and replaced) only
    /// after this long: a restart or short outage moves nothing.
    #[serde(with = "humantime_serde")]
    pub grace: Duration,
    /// Repair fetches stay under this many bytes per second ("0": no limit).
    pub repair_bandwidth: ByteSize,
    /// Time between two scrub passes (re-hashing every stored block).
    #[serde(with = "humantime_serde")]
    pub scrub_interval: Duration,
    /// Scrub reads at most this many bytes per second (it is low priority).
    pub scrub_bandwidth: ByteSize,
    /// A removed root's tombstone is forgotten this long after this node
    /// learned it: long enough for every holder that was down to return
    /// and learn it (one that returns later may place its copies again).
    #[serde(with = "humantime_serde")]
    pub tombstone_ttl: Duration,
}

impl Default for ReplicationSettings {
    fn default() -> Self {
        ReplicationSettings {
            factor: 3,
            max: 4,
            repair_interval: Duration::from_secs(600),
            grace: Duration::from_secs(900),
            repair_bandwidth: ByteSize(50_000_000),
            scrub_interval: Duration::from_secs(24 * 3600),
            scrub_bandwidth: ByteSize(20_000_000),
            tombstone_ttl: Duration::from_secs(7 * 24 * 3600),
        }
    }
}

/// `[gateway]`: the read-only HTTP gateway the daemon serves.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GatewaySettings {
    /// Address to listen on (loopback by default; the gateway is read-only
    /// wherever it listens). An empty string turns the gateway off.
    pub listen: String,
    /// A response whose first byte is not ready within this ends in 504.
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
    /// Redirect `/ipfs/CID/...` on `localhost` to `CID.ipfs.localhost`,
    /// giving each site its own origin.
    pub subdomain_redirect: bool,
    /// Timeouts and connection caps (`[gateway.connections]`).
    pub connections: ConnectionSettings,
}

impl Default for GatewaySettings {
    fn default() -> Self {
        GatewaySettings {
            listen: "127.0.0.1:8080".into(),
            timeout: Duration::from_secs(60),
            subdomain_redirect: false,
            connections: ConnectionSettings::default(),
        }
    }
}

/// Which blocks the node announces as provider on the DHT.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProvideStrategy {
    /// Every stored block (Kubo's default).
    All,
    /// Only the roots of pins.
    Roots,
    /// Every block of pinned DAGs.
    Pinned,
}

/// `[provide]`: provider records and reproviding.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ProvideSettings {
    /// "all" (every stored block, as Kubo), "roots" or "pinned".
    pub strategy: ProvideStrategy,
    /// How often every record is announced again (the IPFS DHT spec's
    /// republish interval; records live 48 h).
    #[serde(with = "humantime_serde")]
    pub interval: Duration,
    /// DHT provide queries in flight at once.
    pub concurrency: usize,
}

impl Default for ProvideSettings {
    fn default() -> Self {
        ProvideSettings {
            strategy: ProvideStrategy::All,
            interval: Duration::from_secs(22 * 3600),
            concurrency: 16,
        }
    }
}

/// `[api]`: where the daemon serves its RPC API.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ApiSettings {
    /// Address to listen on. Loopback by default; any other address needs
    /// `tokens` (the API can change the node: pins, adds, shutdown).
    pub listen: String,
    /// Bearer tokens that may call the API (Kubo's `API.Authorizations`
    /// idea). When set, every request needs `Authorization: Bearer TOKEN`;
    /// the CLI sends the first one. Each must be at least 16 bytes.
    pub tokens: Vec<String>,
    /// Web origins (`scheme://host[:port]`) whose pages may call the API.
    /// None by default: a request a browser sends from any web page is
    /// refused (see README, Security).
    pub allowed_origins: Vec<String>,
    /// Timeouts and connection caps (`[api.connections]`).
    pub connections: ConnectionSettings,
}

impl Default for ApiSettings {
    fn default() -> Self {
        ApiSettings {
            listen: "127.0.0.1:5001".into(),
            tokens: Vec::new(),
            allowed_origins: Vec::new(),
            connections: ConnectionSettings::default(),
        }
    }
}

/// Defaults for new content.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ImportConfig {
    /// CID version of new content: 1 (the default) or 0.
    pub cid_version: u8,
    /// Hash function: "sha2-256" (the default, Kubo's) or "blake3" (faster
    /// on one core; not every IPFS tool reads it).
    #[serde(with = "as_text")]
    pub hash: HashAlg,
    /// "size-N" or "cdc-MIN-AVG-MAX".
    #[serde(with = "as_text")]
    pub chunker: ChunkerSpec,
    /// Raw leaves (only meaningful for CIDv1; CIDv0 always uses dag-pb leaves
    /// unless a flag asks otherwise).
    pub raw_leaves: bool,
    /// Links per interior node.
    pub max_links: usize,
    /// "balanced" or "trickle".
    #[serde(with = "as_text")]
    pub layout: Layout,
    /// Directories whose estimated size is over this become HAMT shards.
    pub shard_threshold_bytes: u64,
    /// How directory size is estimated: "block" (the default, Kubo's
    /// `unixfs-v1-2025`) or "links" (Kubo's classic `ipfs add`).
    #[serde(with = "SizeEstimateName")]
    pub shard_estimate: SizeEstimate,
}

/// [`SizeEstimate`]'s names in `config.toml` (serde's remote derive: the
/// compiler checks this mirrors the DAG layer's enum).
#[derive(Serialize, Deserialize)]
#[serde(remote = "SizeEstimate", rename_all = "lowercase")]
enum SizeEstimateName {
    Links,
    Block,
}

/// Settings written as the text their type parses from and displays as
/// (hash functions, chunkers, layouts), checked when the file is read.
mod as_text {
    use serde::{de::Error as _, Deserialize, Deserializer, Serializer};
    use std::fmt::Display;
    use std::str::FromStr;

    pub fn serialize<T: Display, S: Serializer>(value: &T, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(value)
    }

    pub fn deserialize<'de, T, D>(d: D) -> Result<T, D::Error>
    where
        T: FromStr,
        T::Err: Display,
        D: Deserializer<'de>,
    {
        let text = String::deserialize(d)?;
        text.parse().map_err(D::Error::custom)
    }
}

impl Default for ImportConfig {
    /// The settings of [`ImportOptions::default`] (Kubo's `unixfs-v1-2025`).
    fn default() -> Self {
        let o = ImportOptions::default();
        ImportConfig {
            cid_version: o.format.version,
            hash: o.format.hash,
            chunker: o.chunker,
            raw_leaves: o.raw_leaves,
            max_links: o.max_links,
            layout: o.layout,
            shard_threshold_bytes: o.sharding.threshold_bytes,
            shard_estimate: o.sharding.estimate,
        }
    }
}

impl ImportConfig {
    /// The import options these settings describe.
    pub fn options(&self) -> Result<ImportOptions, ConfigError> {
        let opts = ImportOptions {
            format: CidFormat {
                version: self.cid_version,
                hash: self.hash,
            },
            chunker: self.chunker,
            raw_leaves: self.raw_leaves && self.cid_version > 0,
            max_links: self.max_links,
            layout: self.layout,
            sharding: Sharding {
                threshold_bytes: self.shard_threshold_bytes,
                estimate: self.shard_estimate,
            },
        };
        opts.validate().map_err(|e| ConfigError::Import(e.into()))?;
        Ok(opts)
    }
}

/// Disk store settings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StoreConfig {
    /// Start a new segment file past this many bytes.
    pub segment_max_bytes: u64,
    /// `add` makes its blocks durable and indexes them every this many bytes.
    pub commit_bytes: u64,
    /// GC compacts a segment whose live share falls below this (0..1).
    pub compact_live_ratio: f64,
    /// Index cache size in bytes.
    pub cache_bytes: u64,
    /// Bytes kept in a reserve file (`REPO/reserve`) that opening the repo,
    /// `pin rm` and `repo gc` release on a full disk so they can still work
    /// (0: none).
    pub reserve_bytes: u64,
    /// Write blocks fetched from peers with `O_DIRECT` (around the page
    /// cache) where the file system supports it; tmpfs never does.
    pub direct_io: bool,
    /// Memory for verified blocks that reads come back to (the hot tier,
    /// `store::HotStore`): small files served from memory. 0: off.
    pub hot_cache: ByteSize,
    /// The largest block the hot tier keeps: larger blocks are read from
    /// disk every time, so streaming them costs no memory there.
    pub hot_cache_block_max: ByteSize,
    /// The largest whole file of one block the hot tier keeps (a raw
    /// block or single-block UnixFS file read as the root of a read, not
    /// a leaf of a larger file): 1 MiB, the default chunker's largest
    /// one-block file. Below `hot_cache_block_max` it counts as that.
    pub hot_cache_file_max: ByteSize,
}

impl Default for StoreConfig {
    fn default() -> Self {
        let d = DiskStoreOptions::default();
        StoreConfig {
            segment_max_bytes: d.segment_max_bytes,
            commit_bytes: d.commit_bytes,
            compact_live_ratio: d.compact_live_ratio,
            cache_bytes: d.cache_bytes,
            reserve_bytes: d.reserve_bytes,
            direct_io: d.direct_io,
            hot_cache: ByteSize(32 << 20),
            // Not the default chunker's 1 MiB leaves: with those held, a
            // daemon that served a few large files twice keeps the whole
            // cache's worth after the reads (tests/memory.rs gives back).
            hot_cache_block_max: ByteSize(256 << 10),
            // A whole 1 MiB file is kept; a 1 MiB leaf of a larger file
            // is not, so streaming large files still costs no memory.
            hot_cache_file_max: ByteSize(1 << 20),
        }
    }
}

impl StoreConfig {
    /// Disk store options, with the quota from `[storage] max`.
    pub fn options(&self, max_bytes: u64) -> DiskStoreOptions {
        DiskStoreOptions {
            segment_max_bytes: self.segment_max_bytes,
            commit_bytes: self.commit_bytes,
            compact_live_ratio: self.compact_live_ratio,
            cache_bytes: self.cache_bytes,
            reserve_bytes: self.reserve_bytes,
            max_bytes,
            direct_io: self.direct_io,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_config_round_trips_and_means_cairn_defaults() {
        let c = Config::default();
        let text = toml::to_string_pretty(&c).unwrap();
        let back: Config = toml::from_str(&text).unwrap();
        assert_eq!(back, c);
        assert_eq!(c.import.options().unwrap(), ImportOptions::default());
        assert!(toml::from_str::<Config>("[import]\nbogus = 1\n").is_err());
    }

    #[test]
    fn defaults_are_kubos_unixfs_v1_2025_and_blake3_is_one_line_away() {
        let c = Config::default();
        assert_eq!(
            c.import.options().unwrap(),
            ImportOptions::profile("unixfs-v1-2025").unwrap()
        );
        let c: Config = toml::from_str("[import]\nhash = \"blake3\"\n").unwrap();
        let opts = c.import.options().unwrap();
        assert_eq!(opts.format, CidFormat::V1_BLAKE3);
        assert_eq!(
            ImportOptions {
                format: CidFormat::V1_SHA2_256,
                ..opts
            },
            ImportOptions::default()
        );
    }

    #[test]
    fn every_documented_form_loads_and_bad_values_are_refused() {
        // README's example, netsim's generated config, the tests' settings.
        let c: Config = toml::from_str(
            r#"
[import]
hash = "sha2-256"
chunker = "cdc-65536-262144-1048576"
layout = "trickle"
shard_estimate = "block"

[net]
listen = []
dht_mode = "server"

[provide]
strategy = "pinned"

[replication]
repair_bandwidth = "1MB"
scrub_bandwidth = "0"

[storage]
max = "200KB"
"#,
        )
        .unwrap();
        assert_eq!(c.import.hash, HashAlg::Sha2_256);
        assert_eq!(c.import.layout, Layout::Trickle);
        assert_eq!(c.import.shard_estimate, SizeEstimate::Block);
        assert_eq!(c.net.dht_mode, DhtMode::Server);
        assert_eq!(c.replication.repair_bandwidth, ByteSize(1_000_000));
        assert_eq!(c.replication.scrub_bandwidth, ByteSize(0));
        assert_eq!(c.storage.max, ByteSize(200_000));
        let c: Config = toml::from_str(
            "[import]\nchunker = \"default\"\n[replication]\nrepair_bandwidth = \"12345\"\n\
             [storage]\nmax = \"500GB\"\n",
        )
        .unwrap();
        assert_eq!(c.import.chunker, ChunkerSpec::default());
        assert_eq!(c.replication.repair_bandwidth, ByteSize(12345));
        assert_eq!(c.storage.max, ByteSize(500_000_000_000));
        for bad in [
            "[storage]\nmax = \"5XB\"\n",
            "[replication]\nrepair_bandwidth = \"fast\"\n",
            "[net]\ndht_mode = \"both\"\n",
            "[import]\nhash = \"md5\"\n",
            "[import]\nchunker = \"rabin\"\n",
            "[import]\nlayout = \"flat\"\n",
            "[import]\nshard_estimate = \"guess\"\n",
            "[provide]\nstrategy = \"some\"\n",
        ] {
            assert!(toml::from_str::<Config>(bad).is_err(), "{bad}");
        }
    }
}

//! Scenario files (`netsim/scenarios/*.toml`).
//!
//! Every duration in a scenario is simulated time, written as humantime
//! (`"90s"`, `"8h"`). The run maps simulated time to the wall clock by
//! `speed` (simulated seconds per wall-clock second): every timer a node
//! sets from the scenario (repair interval, grace, reprovide, fetch
//! timeouts), every link latency and every workload or fault instant is
//! divided by `speed` before it reaches tokio. What the scenario cannot
//! scale runs at wall-clock pace and so looks `speed` times slower in
//! simulated time: CPU work (hashing, Noise), libp2p's own fixed timers
//! (identify, ping, Kademlia's 60 s query timeout), and link bandwidth
//! unless `uplink` is set. `speed = 1` is real time (use it when latency
//! matters, as in `lookup`).

use serde::Deserialize;
use std::time::Duration;

/// Why a scenario file was refused.
#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    /// Not TOML, or not the scenario format (unknown key, wrong type, bad
    /// size or duration).
    #[error(transparent)]
    Format(#[from] toml::de::Error),
    /// A value outside what the simulator accepts.
    #[error("{field}: {rule}")]
    Invalid {
        /// The setting, as written in the file.
        field: &'static str,
        /// What it must be.
        rule: &'static str,
    },
    /// Something planned after the run's end.
    #[error(
        "{what} at {} is past the end of the run (duration + settle = {})",
        humantime::format_duration(*.at),
        humantime::format_duration(*.end)
    )]
    PastTheEnd {
        /// The workload or fault concerned.
        what: &'static str,
        /// When it was planned (simulated, after the warmup).
        at: Duration,
        /// When the run ends.
        end: Duration,
    },
}

/// A byte count written as a size (`"300KiB"`, `"10MB"`, `"0"`): the
/// type of cairn's own config file.
pub use cairn::node::config::ByteSize;
/// Which blocks a node announces on the DHT: cairn's `[provide] strategy`.
pub use cairn::node::config::ProvideStrategy;

fn default_seed() -> u64 {
    1
}
fn default_speed() -> f64 {
    1.0
}

/// A scenario file: the network, its nodes' settings, the workload, the
/// faults and the expectations a run is checked against.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// Names the run's output directory and report.
    pub name: String,
    /// What the scenario shows, for people reading the file.
    #[serde(default)]
    pub description: String,
    /// Nodes at the start.
    pub nodes: usize,
    /// The seed a run uses unless given another.
    #[serde(default = "default_seed")]
    pub seed: u64,
    /// Simulated seconds per wall-clock second.
    #[serde(default = "default_speed")]
    pub speed: f64,
    /// How long the workload and fault phase lasts (simulated), after the
    /// nodes have started.
    #[serde(with = "humantime_serde")]
    pub duration: Duration,
    /// After `duration`: time for repairs and convergence before the final
    /// checks (simulated).
    #[serde(with = "humantime_serde", default)]
    pub settle: Duration,
    /// Time between two samples of the replication state (simulated).
    #[serde(with = "humantime_serde", default)]
    pub sample_every: Option<Duration>,
    /// How nodes meet.
    #[serde(default)]
    pub topology: Topology,
    /// Link latency, bandwidth and encryption.
    #[serde(default)]
    pub network: NetworkModel,
    /// cairn settings of every node.
    #[serde(default)]
    pub node: NodeSettings,
    /// NATs in front of some nodes, and relays (none unless set).
    #[serde(default)]
    pub nat: NatModel,
    /// What users do.
    #[serde(default)]
    pub workload: Vec<Workload>,
    /// What goes wrong.
    #[serde(default)]
    pub faults: Vec<Fault>,
    /// Thresholds the run is checked against.
    #[serde(default)]
    pub expect: Expect,
}

/// How nodes meet.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Topology {
    /// Each node dials this many nodes started before it (chosen at
    /// random from the seed), then walks the DHT.
    pub bootstrap_links: usize,
    /// Nodes started at once while the network forms (wall-clock batches).
    pub start_batch: usize,
    /// Wait after all nodes started before the workload begins (simulated).
    #[serde(with = "humantime_serde")]
    pub warmup: Duration,
    /// Pacing for networks too large for the CPU to form at once: when
    /// set, each start batch waits until fewer than this many connections
    /// per wall-clock second are being opened (the DHT walks of the nodes
    /// already started), and the warmup goes on after its minimum until
    /// the rate falls below it (at most 30 min of wall clock). 0: off.
    pub quiet_rate: u64,
}

impl Default for Topology {
    fn default() -> Self {
        Topology {
            bootstrap_links: 3,
            start_batch: 25,
            warmup: Duration::from_secs(10),
            quiet_rate: 0,
        }
    }
}

/// Links.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NetworkModel {
    /// One-way delay of each link.
    pub latency: Latency,
    /// Per-node uplink cap in bytes per simulated second ("0": none), e.g.
    /// "10MB".
    pub uplink: Option<ByteSize>,
    /// Connections exchange identities in plaintext instead of running
    /// Noise (the network is inside one process): spares the CPU of
    /// handshakes and encryption when that, not cairn, is the limit.
    pub plaintext: bool,
}

/// One-way link delay: fixed per pair of nodes, drawn from a log-normal
/// distribution with this median and shape, clipped to [min, max].
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Latency {
    /// Median delay ("0s": no latency at all).
    #[serde(with = "humantime_serde")]
    pub median: Duration,
    /// Shape of the log-normal distribution.
    pub sigma: f64,
    /// Shortest delay.
    #[serde(with = "humantime_serde")]
    pub min: Duration,
    /// Longest delay ("0s": one hour).
    #[serde(with = "humantime_serde")]
    pub max: Duration,
}

impl Default for Latency {
    fn default() -> Self {
        Latency {
            median: Duration::ZERO,
            sigma: 0.0,
            min: Duration::ZERO,
            max: Duration::ZERO,
        }
    }
}

/// NATs (the fabric's model: `fabric.rs`). With `share` above zero, every
/// node runs cairn's NAT traversal as the public profile does (AutoNAT,
/// relay client, DCUtR hole punching); nodes behind a NAT run the DHT in
/// automatic mode (AutoNAT decides; a node it finds unreachable is a
/// client), reachable ones as servers (as every node without NAT does),
/// and `relays` of the reachable ones serve as circuit relays with Kubo's
/// limits. The first node is always reachable, and new nodes bootstrap
/// from reachable ones only.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NatModel {
    /// Share of the nodes behind a NAT (0: none, the all-reachable network).
    pub share: f64,
    /// Share of those whose NAT is symmetric (no hole punch gets through);
    /// the others are cone NATs (endpoint-independent mapping,
    /// port-restricted filtering).
    pub symmetric: f64,
    /// Reachable nodes that run the relay service.
    pub relays: usize,
    /// How long a NAT keeps the mapping a dial opened (simulated).
    #[serde(with = "humantime_serde")]
    pub mapping_ttl: Duration,
}

impl Default for NatModel {
    fn default() -> Self {
        NatModel {
            share: 0.0,
            symmetric: 0.0,
            relays: 0,
            mapping_ttl: Duration::from_secs(120),
        }
    }
}

impl NatModel {
    /// Whether any node is behind a NAT.
    pub fn on(&self) -> bool {
        self.share > 0.0
    }
}

/// cairn settings of every node (the `config.toml` values that matter
/// here; durations simulated).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NodeSettings {
    /// `[replication] factor`: copies each replicated file should have.
    pub replication_factor: u8,
    /// `[replication] max`: copies above which a file is trimmed.
    pub replication_max: u8,
    /// `[replication] repair_interval`.
    #[serde(with = "humantime_serde")]
    pub repair_interval: Duration,
    /// `[replication] grace`: how long a holder may be gone before repair.
    #[serde(with = "humantime_serde")]
    pub grace: Duration,
    /// Repair fetch budget in bytes per simulated second ("0": none).
    pub repair_bandwidth: ByteSize,
    /// `[provide] strategy`: "all", "roots" or "pinned".
    pub provide_strategy: ProvideStrategy,
    /// `[provide] interval`.
    #[serde(with = "humantime_serde")]
    pub reprovide_interval: Duration,
    /// `[net] fetch_timeout`.
    #[serde(with = "humantime_serde")]
    pub fetch_timeout: Duration,
    /// `[net] idle_timeout`.
    #[serde(with = "humantime_serde")]
    pub idle_timeout: Duration,
    /// DHT routing table refresh period ("0s": none).
    #[serde(with = "humantime_serde")]
    pub dht_refresh: Duration,
    /// Pings on each connection every this long ("0s": none on a timer);
    /// unset: cairn's default, 15 s of wall-clock time at any speed.
    #[serde(default, with = "humantime_serde")]
    pub ping_interval: Option<Duration>,
    /// `[replication] scrub_interval`: every node re-hashes its blocks
    /// this often ("0s": no scrub within a run).
    #[serde(with = "humantime_serde")]
    pub scrub_interval: Duration,
}

impl Default for NodeSettings {
    fn default() -> Self {
        NodeSettings {
            replication_factor: 3,
            replication_max: 4,
            repair_interval: Duration::from_secs(600),
            grace: Duration::from_secs(900),
            repair_bandwidth: ByteSize(0),
            provide_strategy: ProvideStrategy::Roots,
            reprovide_interval: Duration::from_secs(22 * 3600),
            fetch_timeout: Duration::from_secs(60),
            idle_timeout: Duration::from_secs(120),
            dht_refresh: Duration::from_secs(600),
            ping_interval: None,
            scrub_interval: Duration::ZERO,
        }
    }
}

/// What users do. `at` is simulated time after the warmup; operations are
/// spread evenly over `spread`, each from a node chosen at random among
/// those up.
#[derive(Clone, Debug, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Workload {
    /// Add `files` files of `size` bytes ("256KiB"); with `factor` > 0 each
    /// is pinned with that replication factor.
    Add {
        /// When the first add starts.
        #[serde(with = "humantime_serde")]
        at: Duration,
        /// Over how long the adds are spread.
        #[serde(with = "humantime_serde", default)]
        spread: Duration,
        /// How many files.
        files: usize,
        /// Each file's size.
        size: ByteSize,
        /// Replication factor (0: pinned on the adding node only).
        #[serde(default)]
        factor: u8,
    },
    /// Fetch `count` added files from nodes that do not hold them; the
    /// bytes are checked.
    Get(Repeated),
    /// DHT find-providers of `count` added files from random nodes: time
    /// to the first provider record.
    Lookup(Repeated),
}

/// `count` timed operations spread evenly over `spread` from `at`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Repeated {
    /// When the first operation starts.
    #[serde(with = "humantime_serde")]
    pub at: Duration,
    /// Over how long the operations are spread.
    #[serde(with = "humantime_serde", default)]
    pub spread: Duration,
    /// How many operations.
    pub count: usize,
    /// Each operation fails after this long.
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
}

/// What goes wrong. Times are simulated, after the warmup.
#[derive(Clone, Debug, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Fault {
    /// `nodes` random nodes crash at `at`; they restart (same key and
    /// store) after `restart_after`, or never (permanent departure: the
    /// store is gone).
    Crash {
        /// When they crash.
        #[serde(with = "humantime_serde")]
        at: Duration,
        /// How many nodes.
        nodes: usize,
        /// Downtime before the restart (unset: they never come back).
        #[serde(with = "humantime_serde", default)]
        restart_after: Option<Duration>,
    },
    /// Every node alternates sessions and downtimes, log-normally
    /// distributed, between `from` and `to`; at the end of a session a node
    /// leaves for good with probability `leave_share`, and a new empty node
    /// joins in its place.
    Churn {
        /// When churn starts.
        #[serde(with = "humantime_serde")]
        from: Duration,
        /// When it stops (nodes down then come back on schedule).
        #[serde(with = "humantime_serde")]
        to: Duration,
        /// Median session length.
        #[serde(with = "humantime_serde")]
        session_median: Duration,
        /// Shape of the sessions' log-normal distribution.
        session_sigma: f64,
        /// Median downtime.
        #[serde(with = "humantime_serde")]
        downtime_median: Duration,
        /// Shape of the downtimes' log-normal distribution.
        downtime_sigma: f64,
        /// Chance that a session ends in leaving for good.
        #[serde(default)]
        leave_share: f64,
    },
    /// A random `share` of the nodes is cut off from the rest at `at`
    /// until `heal`.
    Partition {
        /// When the split starts.
        #[serde(with = "humantime_serde")]
        at: Duration,
        /// When it heals.
        #[serde(with = "humantime_serde")]
        heal: Duration,
        /// Share of the nodes cut off (0 < share < 1).
        share: f64,
    },
    /// At `at`, the disks of `nodes` random nodes holding replicated files
    /// go bad: each block they store reads EIO with probability
    /// `unreadable` (until `heal`, when set) or has a bit flipped with
    /// probability `flipped` (until a verified copy replaces it).
    Disk {
        /// When the disks go bad.
        #[serde(with = "humantime_serde")]
        at: Duration,
        /// How many nodes.
        nodes: usize,
        /// Share of their blocks that read EIO.
        #[serde(default)]
        unreadable: f64,
        /// Share of their blocks with a flipped bit.
        #[serde(default)]
        flipped: f64,
        /// When the EIO stops (unset: never).
        #[serde(with = "humantime_serde", default)]
        heal: Option<Duration>,
    },
    /// `links` random live connections are reset every `every` between
    /// `from` and `to`.
    Drops {
        /// When the first reset happens.
        #[serde(with = "humantime_serde")]
        from: Duration,
        /// When resets stop.
        #[serde(with = "humantime_serde")]
        to: Duration,
        /// Time between two rounds of resets.
        #[serde(with = "humantime_serde")]
        every: Duration,
        /// Connections reset per round.
        links: usize,
    },
}

/// Pass/fail thresholds: the run exits with an error when one is missed.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Expect {
    /// Least share of lookups that find a provider.
    pub lookup_success: Option<f64>,
    /// Least share of gets that return the right bytes.
    pub get_success: Option<f64>,
    /// Least share of files fully retrievable at the end.
    pub durability: Option<f64>,
    /// Every replicated file has at least its factor of live holders at
    /// the end.
    pub factor_restored: bool,
    /// No replicated file has more live copies than `max` at the end.
    pub trimmed: bool,
    /// Every replicated file has at least its factor of live holders
    /// whose copy reads back whole and verified at the end.
    pub intact_copies: bool,
    /// No node whose disk did not go bad stores a corrupt block at the
    /// end.
    pub no_corrupt_spread: bool,
    /// Every block that read EIO is still stored on its (live) node at
    /// the end.
    pub unreadable_kept: bool,
}

impl Scenario {
    /// Reads a scenario from its TOML text and checks its values.
    pub fn parse(text: &str) -> Result<Scenario, ScenarioError> {
        let s: Scenario = toml::from_str(text)?;
        s.validate()?;
        Ok(s)
    }

    fn validate(&self) -> Result<(), ScenarioError> {
        let invalid = |field, rule| Err(ScenarioError::Invalid { field, rule });
        if self.nodes < 2 {
            return invalid("nodes", "at least 2");
        }
        if !(self.speed > 0.0 && self.speed.is_finite()) {
            return invalid("speed", "a positive number");
        }
        if self.duration.is_zero() {
            return invalid("duration", "more than zero");
        }
        if self.node.replication_factor == 0 {
            return invalid("node.replication_factor", "at least 1");
        }
        let nat = &self.nat;
        if !(0.0..1.0).contains(&nat.share) || !(0.0..=1.0).contains(&nat.symmetric) {
            return invalid("nat", "0 ≤ share < 1, 0 ≤ symmetric ≤ 1");
        }
        let reachable = self.nodes - (self.nodes as f64 * nat.share).round() as usize;
        if nat.on() && (nat.relays == 0 || nat.relays > reachable) {
            return invalid(
                "nat.relays",
                "at least 1 when nodes are behind NAT, at most the reachable nodes",
            );
        }
        for f in &self.faults {
            match f {
                Fault::Partition { at, heal, share } => {
                    if heal <= at || !(0.0..1.0).contains(share) || *share <= 0.0 {
                        return invalid("partition", "heal after at, 0 < share < 1");
                    }
                }
                Fault::Churn {
                    from,
                    to,
                    session_median,
                    downtime_median,
                    leave_share,
                    ..
                } => {
                    if to <= from
                        || session_median.is_zero()
                        || downtime_median.is_zero()
                        || !(0.0..=1.0).contains(leave_share)
                    {
                        return invalid(
                            "churn",
                            "to after from, medians above zero, 0 ≤ leave_share ≤ 1",
                        );
                    }
                }
                Fault::Drops { every, .. } => {
                    if every.is_zero() {
                        return invalid("drops", "every above zero");
                    }
                }
                Fault::Disk {
                    at,
                    unreadable,
                    flipped,
                    heal,
                    ..
                } => {
                    let share = |v: &f64| (0.0..=1.0).contains(v);
                    if !share(unreadable)
                        || !share(flipped)
                        || unreadable + flipped > 1.0
                        || heal.is_some_and(|h| h <= *at)
                    {
                        return invalid(
                            "disk",
                            "0 ≤ unreadable, flipped and their sum ≤ 1; heal after at",
                        );
                    }
                }
                Fault::Crash { .. } => {}
            }
        }
        // The run ends at duration + settle: nothing may be planned later.
        let end = self.duration + self.settle;
        let late = |what: &'static str, at: Duration| -> Result<(), ScenarioError> {
            if at > end {
                Err(ScenarioError::PastTheEnd { what, at, end })
            } else {
                Ok(())
            }
        };
        for w in &self.workload {
            match w {
                Workload::Add { at, spread, .. } => late("workload", *at + *spread)?,
                Workload::Get(ops) | Workload::Lookup(ops) => {
                    late("workload", ops.at + ops.spread)?
                }
            }
        }
        for f in &self.faults {
            match f {
                Fault::Crash { at, .. } => late("crash", *at)?,
                Fault::Churn { to, .. } => late("churn", *to)?,
                Fault::Partition { heal, .. } => late("partition heal", *heal)?,
                Fault::Drops { to, .. } => late("drops", *to)?,
                Fault::Disk { at, heal, .. } => late("disk heal", heal.unwrap_or(*at))?,
            }
        }
        Ok(())
    }

    /// A simulated duration on the wall clock.
    pub fn wall(&self, sim: Duration) -> Duration {
        Duration::from_secs_f64(sim.as_secs_f64() / self.speed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_scenarios_parse() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/scenarios");
        let mut n = 0;
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.extension().is_some_and(|x| x == "toml") {
                let text = std::fs::read_to_string(&p).unwrap();
                Scenario::parse(&text).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
                n += 1;
            }
        }
        assert!(
            n >= 6,
            "lookup, churn, partition, smoke, disk and nat-500 at least"
        );
    }

    #[test]
    fn bad_scenarios_get_clear_errors() {
        let base = "name = \"x\"\nnodes = 10\nduration = \"1m\"\n";
        assert!(Scenario::parse(base).is_ok());
        let refusal = |text: &str| Scenario::parse(text).unwrap_err().to_string();
        assert!(refusal("name = \"x\"\nnodes = 1\nduration = \"1m\"").contains("nodes"));
        assert!(refusal(&format!("{base}speed = 0.0")).contains("speed"));
        let add = "[[workload]]\nkind = \"add\"\nat = \"1s\"\nfiles = 1\n";
        assert!(refusal(&format!("{base}{add}size = \"lots\"")).contains("size"));
        assert!(refusal(&format!("{base}[node]\nprovide_strategy = \"some\"")).contains("roots"));
        assert!(Scenario::parse(&format!("{base}bogus = 1")).is_err());
        let get = "[[workload]]\nkind = \"get\"\nat = \"50s\"\nspread = \"20s\"\n";
        assert!(
            refusal(&format!("{base}{get}count = 1\ntimeout = \"1s\"")).contains("past the end")
        );
    }

    #[test]
    fn the_nat_model_is_read_and_checked() {
        let base = "name = \"x\"\nnodes = 10\nduration = \"1m\"\n";
        let sc = Scenario::parse(base).unwrap();
        assert!(!sc.nat.on());
        let sc = Scenario::parse(&format!(
            "{base}[nat]\nshare = 0.6\nsymmetric = 0.25\nrelays = 2\nmapping_ttl = \"30s\"\n"
        ))
        .unwrap();
        assert!(sc.nat.on());
        assert_eq!(sc.nat.relays, 2);
        assert_eq!(sc.nat.mapping_ttl, Duration::from_secs(30));
        let refusal = |text: &str| Scenario::parse(text).unwrap_err().to_string();
        assert!(refusal(&format!("{base}[nat]\nshare = 1.0\nrelays = 1\n")).contains("nat"));
        assert!(refusal(&format!("{base}[nat]\nshare = 0.5\n")).contains("nat.relays"));
        assert!(
            refusal(&format!("{base}[nat]\nshare = 0.6\nrelays = 5\n")).contains("nat.relays"),
            "4 reachable nodes cannot hold 5 relays"
        );
    }

    #[test]
    fn pacing_and_plaintext_are_read() {
        let text = "name = \"x\"\nnodes = 10\nduration = \"1m\"\n\
                    [topology]\nquiet_rate = 150\n[network]\nplaintext = true\n\
                    [node]\ndht_refresh = \"1h\"\nping_interval = \"0s\"\n";
        let sc = Scenario::parse(text).unwrap();
        assert_eq!(sc.topology.quiet_rate, 150);
        assert!(sc.network.plaintext);
        assert_eq!(sc.node.dht_refresh, Duration::from_secs(3600));
        assert_eq!(sc.node.ping_interval, Some(Duration::ZERO));
        let plain = Scenario::parse("name = \"x\"\nnodes = 10\nduration = \"1m\"\n").unwrap();
        assert_eq!(plain.topology.quiet_rate, 0);
        assert!(!plain.network.plaintext);
    }
}

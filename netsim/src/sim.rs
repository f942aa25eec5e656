//! Runs a scenario: real cairn nodes (`Node` + `OnlineNode`, the code the
//! daemon runs) on one tokio runtime, connected through the [`Fabric`],
//! driven by the scenario's workload and faults, observed from outside.
//!
//! Reproducibility: node keys, file contents, the times of every operation
//! and fault, and the random numbers that pick nodes and files all come
//! from the seed. Which node an operation lands on is picked among the
//! nodes up at that moment, and the network itself runs on real tasks and
//! timers, so measured latencies and repair times vary a little between
//! two runs of one seed; the spread over seeds is what the README reports.

use crate::fabric::{node_addr, Fabric, LatencyModel, NoLatency};
use crate::report::{OpSample, Report, Sample};
use crate::rng::Rng;
use crate::scenario::{Fault, Scenario, Workload};
use anyhow::{Context, Result};
use cairn::block::Cid;
use cairn::net::swarm::ExtraTransport;
use cairn::node::online::OnlineNode;
use cairn::node::{AddOptions, Config, Node};
use cairn::store::PinKind;
use libp2p::core::muxing::StreamMuxerBox;
use libp2p::core::Transport;
use libp2p::PeerId;
use std::collections::{BinaryHeap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;

/// Link delays from the scenario: a log-normal draw per pair of nodes.
struct PairLatency {
    seed: u64,
    median: Duration,
    sigma: f64,
    min: Duration,
    max: Duration,
    speed: f64,
}

impl LatencyModel for PairLatency {
    fn one_way(&self, a: usize, b: usize) -> Duration {
        let (lo, hi) = (a.min(b) as u64, a.max(b) as u64);
        let mut r = Rng::derive(self.seed, "latency", lo << 32 | hi);
        let d = r
            .lognormal(self.median, self.sigma)
            .clamp(self.min, self.max);
        Duration::from_secs_f64(d.as_secs_f64() / self.speed)
    }
}

/// One place in the network: a node that may be up, down or gone.
struct Slot {
    node: Option<Arc<Node>>,
    online: Option<Arc<OnlineNode>>,
    peer: PeerId,
    departed: bool,
}

/// A file the workload added.
#[derive(Clone)]
struct FileRec {
    cid: Cid,
    size: usize,
    content_seed: u64,
    factor: u8,
    /// Simulated seconds after the warmup when the add finished.
    added_at: f64,
}

/// Something scheduled, at a simulated time.
#[derive(Clone, Debug)]
enum Event {
    Add {
        file: usize,
        size: usize,
        factor: u8,
        pick: u64,
    },
    Get {
        pick: u64,
        timeout: Duration,
    },
    Lookup {
        pick: u64,
        timeout: Duration,
    },
    Crash {
        slot: usize,
        restart_after: Option<Duration>,
    },
    Restart {
        slot: usize,
    },
    /// A churn session ends for `slot`.
    SessionEnd {
        slot: usize,
        churn: usize,
    },
    Partition {
        share: f64,
        pick: u64,
    },
    Heal,
    Drops {
        links: usize,
        pick: u64,
    },
    Sample,
}

struct Timed {
    at: Duration,
    seq: u64,
    event: Event,
}

impl PartialEq for Timed {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}
impl Eq for Timed {}
impl PartialOrd for Timed {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Timed {
    // Reversed: BinaryHeap pops the earliest.
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (other.at, other.seq).cmp(&(self.at, self.seq))
    }
}

/// Per replicated file: since when it has had fewer live holders than its
/// factor (simulated seconds).
#[derive(Default)]
struct Tracking {
    /// Files that reached their factor and have fallen below it since.
    below_since: HashMap<usize, f64>,
    repair_times: Vec<f64>,
    /// Files that have been at their factor at a sample.
    reached: HashSet<usize>,
    /// Simulated seconds from an add to its file's first sample at factor.
    placement_times: Vec<f64>,
    /// Most copies each file had at a sample (live or not).
    peak: HashMap<usize, usize>,
    /// Files counted lost so far.
    lost: HashSet<usize>,
    /// Of those, files that had reached their factor first.
    lost_after_factor: usize,
    /// Slots holding each file at the last sample.
    holders: HashMap<usize, Vec<usize>>,
    /// Each file's latest copy changes (said when it is lost).
    history: HashMap<usize, std::collections::VecDeque<String>>,
    /// Copies dropped by nodes that had not left (trims), and of those the
    /// ones dropped while the file had no more than its factor live.
    dropped: usize,
    dropped_at_or_below_factor: usize,
}

pub struct Sim {
    sc: Scenario,
    seed: u64,
    fabric: Fabric,
    slots: Mutex<Vec<Slot>>,
    files: Mutex<Vec<Option<FileRec>>>,
    lookups: Mutex<Vec<OpSample>>,
    gets: Mutex<Vec<OpSample>>,
    samples: Mutex<Vec<Sample>>,
    tracking: Mutex<Tracking>,
    /// Replication counters of node incarnations that stopped.
    stopped_repairs: Mutex<(u64, u64)>,
    log: Mutex<Vec<String>>,
    start: Instant,
    quiet: bool,
}

/// The 32-byte key seed of slot `n`.
fn key_seed(seed: u64, n: usize) -> [u8; 32] {
    let mut r = Rng::derive(seed, "key", n as u64);
    let mut k = [0u8; 32];
    r.fill(&mut k);
    k
}

fn content(seed: u64, size: usize) -> Vec<u8> {
    let mut v = vec![0u8; size];
    Rng::new(seed).fill(&mut v);
    v
}

impl Sim {
    pub fn new(sc: Scenario, seed: u64, quiet: bool) -> Result<Arc<Sim>> {
        let lat = &sc.network.latency;
        let latency: Arc<dyn LatencyModel> = if lat.median.is_zero() {
            Arc::new(NoLatency)
        } else {
            Arc::new(PairLatency {
                seed,
                median: lat.median,
                sigma: lat.sigma,
                min: lat.min,
                max: if lat.max.is_zero() {
                    Duration::from_secs(3600)
                } else {
                    lat.max
                },
                speed: sc.speed,
            })
        };
        let uplink = match &sc.network.uplink {
            Some(u) => cairn::node::config::parse_size(u).map_err(anyhow::Error::msg)?,
            None => 0,
        };
        // Bytes per wall-clock second: a simulated second is 1/speed wall.
        let uplink_wall = (uplink as f64 * sc.speed) as u64;
        let fabric = Fabric::new(latency, uplink_wall);
        Ok(Arc::new(Sim {
            sc,
            seed,
            fabric,
            slots: Mutex::new(Vec::new()),
            files: Mutex::new(Vec::new()),
            lookups: Mutex::new(Vec::new()),
            gets: Mutex::new(Vec::new()),
            samples: Mutex::new(Vec::new()),
            tracking: Mutex::new(Tracking::default()),
            stopped_repairs: Mutex::new((0, 0)),
            log: Mutex::new(Vec::new()),
            start: Instant::now(),
            quiet,
        }))
    }

    fn say(&self, line: String) {
        if !self.quiet {
            eprintln!("[{:>8.1}s sim] {line}", self.sim_now());
        }
        self.log
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(line);
    }

    /// Simulated seconds since the run started.
    fn sim_now(&self) -> f64 {
        self.start.elapsed().as_secs_f64() * self.sc.speed
    }

    fn slots(&self) -> std::sync::MutexGuard<'_, Vec<Slot>> {
        self.slots.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The cairn config of every node: the defaults a user gets, with the
    /// scenario's settings (durations on the wall clock).
    fn node_config(&self) -> Result<Config> {
        let n = &self.sc.node;
        let w = |d: Duration| humantime::format_duration(self.sc.wall(d)).to_string();
        let wall_ms = |d: Duration| format!("{}ms", self.sc.wall(d).as_millis().max(1));
        let bw =
            cairn::node::config::parse_size(&n.repair_bandwidth).map_err(anyhow::Error::msg)?;
        let text = format!(
            r#"
[net]
listen = []
dht_mode = "server"
idle_timeout = "{idle}"
dht_refresh = "{refresh}"
ping_interval = "{ping}"
fetch_timeout = "{fetch}"

[provide]
strategy = "{strategy}"
interval = "{reprovide}"

[replication]
factor = {factor}
max = {max}
repair_interval = "{repair}"
grace = "{grace}"
repair_bandwidth = "{bw}"
scrub_interval = "1000h"
"#,
            idle = w(n.idle_timeout),
            refresh = w(n.dht_refresh),
            ping = n.ping_interval.map_or_else(|| "15s".to_string(), w),
            fetch = wall_ms(n.fetch_timeout),
            strategy = n.provide_strategy,
            reprovide = w(n.reprovide_interval),
            factor = n.replication_factor,
            max = n.replication_max.max(n.replication_factor),
            repair = wall_ms(n.repair_interval),
            grace = wall_ms(n.grace),
            bw = (bw as f64 * self.sc.speed) as u64,
        );
        toml::from_str::<Config>(&text).context("node config")
    }

    /// Starts the node of `slot` (creating it on first start) and dials its
    /// bootstrap links. With `wait` it returns once those dials and the
    /// walk's start are done (the initial start paces itself by that);
    /// otherwise the dialing runs on its own, so a restart never holds up
    /// the scenario's clock.
    async fn start_slot(self: &Arc<Self>, slot: usize, wait: bool) -> Result<()> {
        let node = {
            let mut slots = self.slots();
            while slots.len() <= slot {
                let n = slots.len();
                let key = key_seed(self.seed, n);
                let node = Node::in_memory(self.node_config()?, key);
                let peer = node.peer_id().map_err(anyhow::Error::msg)?;
                slots.push(Slot {
                    node: Some(Arc::new(node)),
                    online: None,
                    peer,
                    departed: false,
                });
            }
            match &slots[slot].node {
                Some(n) => Arc::clone(n),
                None => return Ok(()),
            }
        };
        self.fabric.set_up(slot, true);
        let mut settings = node.config().net.clone();
        settings.listen = vec![node_addr(slot).to_string()];
        let fabric = self.fabric.clone();
        let plaintext = self.sc.network.plaintext;
        settings.extra_transport = Some(ExtraTransport(Arc::new(move |key| {
            if plaintext {
                return fabric
                    .transport(slot)
                    .upgrade(libp2p::core::upgrade::Version::V1Lazy)
                    .authenticate(libp2p::plaintext::Config::new(key))
                    .multiplex(cairn::net::swarm::yamux_config())
                    .map(|(peer, muxer), _| (peer, StreamMuxerBox::new(muxer)))
                    .boxed();
            }
            let noise = match libp2p::noise::Config::new(key) {
                Ok(n) => n,
                Err(e) => {
                    tracing::error!("noise keys: {e}");
                    return libp2p::core::transport::dummy::DummyTransport::new().boxed();
                }
            };
            fabric
                .transport(slot)
                .upgrade(libp2p::core::upgrade::Version::V1Lazy)
                .authenticate(noise)
                .multiplex(cairn::net::swarm::yamux_config())
                .map(|(peer, muxer), _| (peer, StreamMuxerBox::new(muxer)))
                .boxed()
        })));
        let online = OnlineNode::start(node, &settings)
            .await
            .map_err(|e| anyhow::anyhow!("starting node {slot}: {e}"))?;
        let online = Arc::new(online);
        self.slots()[slot].online = Some(Arc::clone(&online));
        // Bootstrap links: nodes up, chosen from the seed.
        let targets = {
            let slots = self.slots();
            let up: Vec<usize> = (0..slots.len())
                .filter(|&i| i != slot && slots[i].online.is_some())
                .collect();
            let mut r = Rng::derive(self.seed, "bootstrap", slot as u64);
            r.sample(up.len(), self.sc.topology.bootstrap_links)
                .into_iter()
                .map(|i| node_addr(up[i]).with(libp2p::multiaddr::Protocol::P2p(slots[up[i]].peer)))
                .collect::<Vec<_>>()
        };
        if !targets.is_empty() {
            // A dial that cannot finish must not hold up the start.
            let dial = async move {
                let _ =
                    tokio::time::timeout(Duration::from_secs(30), online.bootstrap(&targets)).await;
            };
            if wait {
                dial.await;
            } else {
                tokio::spawn(dial);
            }
        }
        Ok(())
    }

    /// Stops the node of `slot` as a crash would; `forever` also drops its
    /// store.
    fn stop_slot(&self, slot: usize, forever: bool) {
        let online = {
            let mut slots = self.slots();
            let Some(s) = slots.get_mut(slot) else { return };
            if forever {
                s.departed = true;
                s.node = None;
            }
            s.online.take()
        };
        self.fabric.set_up(slot, false);
        if let Some(o) = online {
            use std::sync::atomic::Ordering::Relaxed;
            let stats = o.replicator().stats();
            let mut t = self
                .stopped_repairs
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            t.0 += stats.repairs.load(Relaxed);
            t.1 += stats.repair_bytes.load(Relaxed);
            o.shutdown();
        }
    }

    fn up_slots(&self) -> Vec<(usize, Arc<OnlineNode>)> {
        self.slots()
            .iter()
            .enumerate()
            .filter_map(|(i, s)| s.online.as_ref().map(|o| (i, Arc::clone(o))))
            .collect()
    }

    /// Whether `slot`'s store holds `cid` pinned (recursively: complete).
    fn holds(slot: &Slot, cid: &Cid) -> bool {
        slot.node
            .as_ref()
            .is_some_and(|n| matches!(n.store().pin_of(cid), Ok(Some(PinKind::Recursive))))
    }

    fn added_files(&self) -> Vec<(usize, FileRec)> {
        self.files
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .enumerate()
            .filter_map(|(i, f)| f.clone().map(|f| (i, f)))
            .collect()
    }

    /// Builds the whole schedule from the seed.
    fn schedule(&self) -> (BinaryHeap<Timed>, usize) {
        let mut heap = BinaryHeap::new();
        let mut seq = 0u64;
        let mut push = |heap: &mut BinaryHeap<Timed>, at: Duration, event: Event| {
            seq += 1;
            heap.push(Timed { at, seq, event });
        };
        let mut r = Rng::derive(self.seed, "schedule", 0);
        let mut files = 0usize;
        let spread_at = |at: Duration, spread: Duration, i: usize, n: usize| {
            at + Duration::from_secs_f64(spread.as_secs_f64() * i as f64 / n.max(1) as f64)
        };
        for w in &self.sc.workload {
            match w {
                Workload::Add {
                    at,
                    spread,
                    files: n,
                    size,
                    factor,
                } => {
                    let size = cairn::node::config::parse_size(size).unwrap_or(0) as usize;
                    for i in 0..*n {
                        push(
                            &mut heap,
                            spread_at(*at, *spread, i, *n),
                            Event::Add {
                                file: files,
                                size,
                                factor: *factor,
                                pick: r.next_u64(),
                            },
                        );
                        files += 1;
                    }
                }
                Workload::Get {
                    at,
                    spread,
                    count,
                    timeout,
                } => {
                    for i in 0..*count {
                        push(
                            &mut heap,
                            spread_at(*at, *spread, i, *count),
                            Event::Get {
                                pick: r.next_u64(),
                                timeout: *timeout,
                            },
                        );
                    }
                }
                Workload::Lookup {
                    at,
                    spread,
                    count,
                    timeout,
                } => {
                    for i in 0..*count {
                        push(
                            &mut heap,
                            spread_at(*at, *spread, i, *count),
                            Event::Lookup {
                                pick: r.next_u64(),
                                timeout: *timeout,
                            },
                        );
                    }
                }
            }
        }
        for (k, f) in self.sc.faults.iter().enumerate() {
            match f {
                Fault::Crash {
                    at,
                    nodes,
                    restart_after,
                } => {
                    for slot in r.sample(self.sc.nodes, *nodes) {
                        push(
                            &mut heap,
                            *at,
                            Event::Crash {
                                slot,
                                restart_after: *restart_after,
                            },
                        );
                    }
                }
                Fault::Churn {
                    from,
                    session_median,
                    session_sigma,
                    ..
                } => {
                    for slot in 0..self.sc.nodes {
                        let mut cr = Rng::derive(self.seed, "churn", slot as u64);
                        // The first session is already under way: a
                        // uniform share of a full one remains.
                        let first = cr
                            .lognormal(*session_median, *session_sigma)
                            .mul_f64(cr.unit());
                        push(
                            &mut heap,
                            *from + first,
                            Event::SessionEnd { slot, churn: k },
                        );
                    }
                }
                Fault::Partition { at, heal, share } => {
                    push(
                        &mut heap,
                        *at,
                        Event::Partition {
                            share: *share,
                            pick: r.next_u64(),
                        },
                    );
                    push(&mut heap, *heal, Event::Heal);
                }
                Fault::Drops {
                    from,
                    to,
                    every,
                    links,
                } => {
                    let mut t = *from;
                    while t < *to {
                        push(
                            &mut heap,
                            t,
                            Event::Drops {
                                links: *links,
                                pick: r.next_u64(),
                            },
                        );
                        t += *every;
                    }
                }
            }
        }
        let end = self.sc.duration + self.sc.settle;
        let every = self
            .sc
            .sample_every
            .unwrap_or_else(|| end / 100)
            .max(Duration::from_millis(100));
        let mut t = Duration::ZERO;
        while t <= end {
            push(&mut heap, t, Event::Sample);
            t += every;
        }
        (heap, files)
    }

    /// Runs the scenario to the end and returns what was measured.
    pub async fn run(self: &Arc<Self>) -> Result<Report> {
        let started = std::time::Instant::now();
        let rss_before = crate::report::rss_bytes();
        let cpu_before = crate::report::cpu_seconds();
        // Start the network in batches; each node bootstraps to nodes
        // already up.
        let batch = self.sc.topology.start_batch.max(1);
        let mut n = 0;
        while n < self.sc.nodes {
            let end = (n + batch).min(self.sc.nodes);
            if n == 0 {
                // The first node alone, so the next ones have a peer.
                self.start_slot(0, true).await?;
                n = 1;
                continue;
            }
            let starts: Vec<_> = (n..end)
                .map(|slot| {
                    let this = Arc::clone(self);
                    tokio::spawn(async move { this.start_slot(slot, true).await })
                })
                .collect();
            for s in starts {
                s.await.context("start task")??;
            }
            let before = n;
            n = end;
            if n < self.sc.nodes {
                self.wait_quiet(Duration::from_secs(120)).await;
            }
            if n / 100 > before / 100 || n == self.sc.nodes {
                self.say(format!(
                    "{n} nodes started ({:.1} s wall)",
                    started.elapsed().as_secs_f64()
                ));
            }
        }
        let startup_secs = started.elapsed().as_secs_f64();
        self.say(format!(
            "{} nodes up in {startup_secs:.1} s wall; warming up",
            self.sc.nodes
        ));
        // Warm up, saying every 10 s how many links are open: forming the
        // DHT is most of what a large network spends here.
        let warm_end = Instant::now() + self.sc.wall(self.sc.topology.warmup);
        while Instant::now() < warm_end {
            let step = warm_end
                .saturating_duration_since(Instant::now())
                .min(Duration::from_secs(10));
            let before = self.fabric.opened();
            tokio::time::sleep(step).await;
            let opened = self.fabric.opened() - before;
            self.say(format!(
                "warming up: {} links open, {:.0} opened/s (wall), {:.0} MiB resident",
                self.fabric.open_links(),
                opened as f64 / step.as_secs_f64().max(0.001),
                crate::report::rss_bytes() as f64 / (1 << 20) as f64
            ));
            if std::env::var_os("NETSIM_DEBUG").is_some() {
                self.debug_kad_metrics();
            }
        }
        if self.sc.topology.quiet_rate > 0 {
            self.say("warmup minimum over; waiting for the DHT walks to calm".into());
            self.wait_quiet(Duration::from_secs(1800)).await;
        }
        let rss_nodes = crate::report::rss_bytes();
        let cpu_idle_start = crate::report::cpu_seconds();
        let idle_wall = std::time::Instant::now();
        // A short idle window to measure what idle nodes cost.
        tokio::time::sleep(Duration::from_secs(2)).await;
        let idle_cpu = (crate::report::cpu_seconds() - cpu_idle_start)
            / idle_wall.elapsed().as_secs_f64()
            / self.sc.nodes as f64;

        let (mut heap, planned_files) = self.schedule();
        *self.files.lock().unwrap_or_else(|e| e.into_inner()) = vec![None; planned_files];
        let phase_start = Instant::now();
        let mut ops = Vec::new();
        let mut partition_groups: Option<Vec<u32>> = None;
        // Churn draws each node's next session end and restart as it goes,
        // and a long-tailed draw can land days past the scenario: the run
        // ends at its duration plus settle time, whatever is still queued.
        let end = self.sc.duration + self.sc.settle;
        while let Some(Timed { at, event, .. }) = heap.pop() {
            if at > end {
                break;
            }
            tokio::time::sleep_until(phase_start + self.sc.wall(at)).await;
            let t = at.as_secs_f64();
            match event {
                Event::Add {
                    file,
                    size,
                    factor,
                    pick,
                } => {
                    let this = Arc::clone(self);
                    ops.push(tokio::spawn(async move {
                        if let Err(e) = this.add(file, size, factor, pick, t).await {
                            this.say(format!("add of file {file} failed: {e:#}"));
                        }
                    }));
                }
                Event::Get { pick, timeout } => {
                    let this = Arc::clone(self);
                    ops.push(tokio::spawn(
                        async move { this.get(t, pick, timeout).await },
                    ));
                }
                Event::Lookup { pick, timeout } => {
                    let this = Arc::clone(self);
                    ops.push(tokio::spawn(
                        async move { this.lookup(t, pick, timeout).await },
                    ));
                }
                Event::Crash {
                    slot,
                    restart_after,
                } => {
                    self.stop_slot(slot, restart_after.is_none());
                    match restart_after {
                        Some(after) => heap.push(Timed {
                            at: at + after,
                            seq: u64::MAX - heap.len() as u64,
                            event: Event::Restart { slot },
                        }),
                        None => self.say(format!("node {slot} left for good")),
                    }
                }
                Event::Restart { slot } => {
                    let up = self.slots().get(slot).is_some_and(|s| s.online.is_some());
                    if !up {
                        if let Err(e) = self.start_slot(slot, false).await {
                            self.say(format!("restart of node {slot}: {e:#}"));
                        }
                    }
                }
                Event::SessionEnd { slot, churn } => {
                    self.session_end(&mut heap, at, slot, churn).await;
                }
                Event::Partition { share, pick } => {
                    let count = self.slots().len();
                    let mut r = Rng::new(pick);
                    let side: HashSet<usize> = r
                        .sample(count, ((count as f64) * share).round() as usize)
                        .into_iter()
                        .collect();
                    let groups: Vec<u32> = (0..count).map(|i| side.contains(&i) as u32).collect();
                    self.say(format!(
                        "partition: {} nodes cut off from {}",
                        side.len(),
                        count - side.len()
                    ));
                    self.fabric.partition(groups.clone());
                    partition_groups = Some(groups);
                }
                Event::Heal => {
                    self.fabric.heal();
                    self.say("partition healed".into());
                }
                Event::Drops { links, pick } => {
                    let mut r = Rng::new(pick);
                    self.fabric.break_random_links(links, &mut |n| r.below(n));
                }
                Event::Sample => self.sample(t),
            }
        }
        self.finish_ops(ops).await;
        let end = self.sim_now();
        self.say("final checks".into());
        let (durable, checked, restored, above_max) =
            self.final_checks(partition_groups.as_deref()).await;
        let hops = self.hop_counts().await;
        let report = self.report(crate::report::Costs {
            startup_secs,
            rss_before,
            rss_nodes,
            cpu_seconds: crate::report::cpu_seconds() - cpu_before,
            wall_seconds: started.elapsed().as_secs_f64(),
            idle_cpu_per_node: idle_cpu,
            sim_seconds: end,
        });
        let mut report = report;
        report.durability = if checked == 0 {
            None
        } else {
            Some(durable as f64 / checked as f64)
        };
        report.files_checked = checked;
        report.files_retrievable = durable;
        report.restored = restored;
        report.above_max = above_max;
        report.hops = hops;
        for (_, o) in self.up_slots() {
            o.shutdown();
        }
        Ok(report)
    }

    /// Waits for the workload's operations still running, at most as long
    /// as the longest operation timeout (adds have none) plus a minute of
    /// wall clock; the rest are aborted and said, so a run always reaches
    /// its final checks.
    async fn finish_ops(&self, ops: Vec<tokio::task::JoinHandle<()>>) {
        let running = ops.iter().filter(|h| !h.is_finished()).count();
        if running == 0 {
            return;
        }
        self.say(format!("waiting for {running} operations still running"));
        let longest = self
            .sc
            .workload
            .iter()
            .filter_map(|w| match w {
                Workload::Get { timeout, .. } | Workload::Lookup { timeout, .. } => {
                    Some(self.sc.wall(*timeout))
                }
                _ => None,
            })
            .max()
            .unwrap_or_default();
        let deadline = Instant::now() + longest + Duration::from_secs(60);
        let mut cut = 0;
        for op in ops {
            let abort = op.abort_handle();
            if tokio::time::timeout_at(deadline, op).await.is_err() {
                abort.abort();
                cut += 1;
            }
        }
        if cut > 0 {
            self.say(format!(
                "{cut} operations had not finished {} s after the last one started; aborted",
                (longest + Duration::from_secs(60)).as_secs()
            ));
        }
    }

    async fn session_end(
        self: &Arc<Self>,
        heap: &mut BinaryHeap<Timed>,
        at: Duration,
        slot: usize,
        churn: usize,
    ) {
        let Some(Fault::Churn {
            to,
            session_median,
            session_sigma,
            downtime_median,
            downtime_sigma,
            leave_share,
            ..
        }) = self.sc.faults.get(churn).cloned()
        else {
            return;
        };
        if at >= to {
            return;
        }
        let up = self.slots().get(slot).is_some_and(|s| s.online.is_some());
        if !up {
            return;
        }
        // One stream per slot: the same seed gives every slot the same
        // sessions however the run's timing goes.
        let mut r = Rng::derive(self.seed, "session", (slot as u64) << 20 | at.as_secs());
        if r.unit() < leave_share {
            self.stop_slot(slot, true);
            let new = self.slots().len();
            if let Err(e) = self.start_slot(new, false).await {
                self.say(format!("node {new} could not join: {e:#}"));
                return;
            }
            let next = at + r.lognormal(session_median, session_sigma);
            heap.push(Timed {
                at: next,
                seq: u64::MAX / 2 - new as u64,
                event: Event::SessionEnd { slot: new, churn },
            });
        } else {
            self.stop_slot(slot, false);
            let back = at + r.lognormal(downtime_median, downtime_sigma);
            heap.push(Timed {
                at: back,
                seq: u64::MAX / 4 - slot as u64,
                event: Event::Restart { slot },
            });
            let next = back + r.lognormal(session_median, session_sigma);
            heap.push(Timed {
                at: next,
                seq: u64::MAX / 8 - slot as u64,
                event: Event::SessionEnd { slot, churn },
            });
        }
    }

    async fn add(
        self: &Arc<Self>,
        file: usize,
        size: usize,
        factor: u8,
        pick: u64,
        t: f64,
    ) -> Result<()> {
        let up = self.up_slots();
        if up.is_empty() {
            anyhow::bail!("no node is up");
        }
        let (_, online) = &up[(pick % up.len() as u64) as usize];
        let content_seed = Rng::derive(self.seed, "file", file as u64).next_u64();
        let node = Arc::clone(online.node());
        let opts = AddOptions {
            import: node.config().import.options().map_err(anyhow::Error::msg)?,
            pin: true,
            only_hash: false,
            hidden: false,
            wrap: false,
        };
        let cid = tokio::task::spawn_blocking(move || -> Result<Cid> {
            let data = content(content_seed, size);
            let entry = node.add_reader(&data[..], &opts, &mut |_| {})?;
            Ok(entry.cid)
        })
        .await??;
        online
            .announce_added(cid, Some(cairn::store::PinKind::Recursive))
            .await;
        if factor > 0 {
            online
                .replicator()
                .pin(cid, Some(factor))
                .await
                .map_err(|e| anyhow::anyhow!("replicate: {e}"))?;
        }
        if let Some(slot) = self
            .files
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get_mut(file)
        {
            *slot = Some(FileRec {
                cid,
                size,
                content_seed,
                factor,
                added_at: t,
            });
        }
        Ok(())
    }

    /// Picks an added file and an up node not holding it.
    fn pick_target(&self, pick: u64) -> Option<(FileRec, usize, Arc<OnlineNode>)> {
        let files = self.added_files();
        if files.is_empty() {
            return None;
        }
        let mut r = Rng::new(pick);
        let (_, file) = files[r.below(files.len())].clone();
        let candidates: Vec<(usize, Arc<OnlineNode>)> = {
            let slots = self.slots();
            slots
                .iter()
                .enumerate()
                .filter(|(_, s)| !Self::holds(s, &file.cid))
                .filter_map(|(i, s)| s.online.as_ref().map(|o| (i, Arc::clone(o))))
                .collect()
        };
        if candidates.is_empty() {
            return None;
        }
        let (slot, online) = candidates[r.below(candidates.len())].clone();
        Some((file, slot, online))
    }

    async fn get(self: &Arc<Self>, t: f64, pick: u64, timeout: Duration) {
        let Some((file, slot, online)) = self.pick_target(pick) else {
            return;
        };
        let started = Instant::now();
        let ok = tokio::time::timeout(self.sc.wall(timeout), fetch_and_check(&online, &file))
            .await
            .unwrap_or(Ok(false))
            .unwrap_or(false);
        let ms = started.elapsed().as_secs_f64() * self.sc.speed * 1000.0;
        self.gets
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(OpSample {
                t,
                ms,
                ok,
                node: slot,
                key: file.cid.to_string(),
            });
    }

    async fn lookup(self: &Arc<Self>, t: f64, pick: u64, timeout: Duration) {
        let Some((file, slot, online)) = self.pick_target(pick) else {
            return;
        };
        let started = Instant::now();
        let found = tokio::time::timeout(
            self.sc.wall(timeout),
            online.net().swarm.find_providers(file.cid, 1),
        )
        .await;
        let ok = matches!(found, Ok(Ok(ref p)) if !p.is_empty());
        let ms = started.elapsed().as_secs_f64() * self.sc.speed * 1000.0;
        self.lookups
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(OpSample {
                t,
                ms,
                ok,
                node: slot,
                key: file.cid.to_string(),
            });
    }

    /// With `quiet_rate` set: waits (at most `limit` of wall clock) until
    /// connections are opened at less than that rate, measured over 2 s.
    async fn wait_quiet(&self, limit: Duration) {
        let rate = self.sc.topology.quiet_rate;
        if rate == 0 {
            return;
        }
        let give_up = Instant::now() + limit;
        let mut said = Instant::now();
        loop {
            let before = self.fabric.opened();
            tokio::time::sleep(Duration::from_secs(2)).await;
            let now = (self.fabric.opened() - before) / 2;
            if now < rate {
                return;
            }
            if Instant::now() >= give_up {
                self.say(format!(
                    "still {now} connections opened per second after {} s; going on",
                    limit.as_secs()
                ));
                return;
            }
            if said.elapsed() >= Duration::from_secs(10) {
                said = Instant::now();
                self.say(format!(
                    "waiting for quiet: {now} connections opened per second (limit {rate}), {:.0} MiB resident",
                    crate::report::rss_bytes() as f64 / (1 << 20) as f64
                ));
            }
        }
    }

    /// NETSIM_DEBUG: the DHT query counters of a few nodes (how many walks
    /// and requests they made, how many failed).
    fn debug_kad_metrics(&self) {
        let nodes: Vec<(usize, Arc<OnlineNode>)> = {
            let slots = self.slots();
            let n = slots.len();
            [0, n / 2, n.saturating_sub(1)]
                .into_iter()
                .filter_map(|i| slots.get(i)?.online.as_ref().map(|o| (i, Arc::clone(o))))
                .collect()
        };
        for (i, o) in nodes {
            let mut text = String::new();
            {
                let registry = o.net().metrics.lock().unwrap_or_else(|e| e.into_inner());
                let _ = prometheus_client::encoding::text::encode(&mut text, &registry);
            }
            let wanted: Vec<&str> = text
                .lines()
                .filter(|l| {
                    !l.starts_with('#')
                        && (l.contains("kad_query_result_num_requests_count")
                            || l.contains("kad_query_result_num_failure_sum")
                            || l.contains("kad_query_result_num_requests_sum")
                            || l.contains("kad_inbound_requests_total")
                            || l.contains("kad_query_result_duration_seconds_sum")
                            || l.contains("kad_query_result_duration_seconds_count"))
                })
                .collect();
            eprintln!("  node {i}: {}", wanted.join(" | "));
        }
    }

    /// Records the replication state: live holders per replicated file.
    fn sample(&self, t: f64) {
        use std::sync::atomic::Ordering::Relaxed;
        let files = self.added_files();
        let slots = self.slots();
        let nodes_up = slots.iter().filter(|s| s.online.is_some()).count();
        let mut at_factor = 0;
        let mut below = 0;
        let mut unavailable = 0;
        let mut lost = 0;
        let mut replicated = 0;
        let mut tracking = self.tracking.lock().unwrap_or_else(|e| e.into_inner());
        let mut lost_now = Vec::new();
        for (i, f) in &files {
            if f.factor == 0 {
                continue;
            }
            replicated += 1;
            let holding: Vec<usize> = (0..slots.len())
                .filter(|&k| Self::holds(&slots[k], &f.cid))
                .collect();
            let live = holding
                .iter()
                .filter(|&&k| slots[k].online.is_some())
                .count();
            let anywhere = holding.len();
            let before = tracking
                .holders
                .insert(*i, holding.clone())
                .unwrap_or_default();
            let mut changes = Vec::new();
            for &k in &before {
                if !holding.contains(&k) {
                    if slots[k].departed {
                        changes.push(format!("{t:.0}s: node {k} left for good"));
                    } else {
                        tracking.dropped += 1;
                        tracking.dropped_at_or_below_factor += (live <= f.factor as usize) as usize;
                        changes.push(format!(
                            "{t:.0}s: node {k} ({}) dropped its copy, {live} live",
                            if slots[k].online.is_some() {
                                "up"
                            } else {
                                "down"
                            }
                        ));
                    }
                }
            }
            for &k in &holding {
                if !before.contains(&k) {
                    changes.push(format!("{t:.0}s: node {k} holds it"));
                }
            }
            if !changes.is_empty() {
                let h = tracking.history.entry(*i).or_default();
                h.extend(changes);
                while h.len() > 16 {
                    h.pop_front();
                }
            }
            let peak = tracking.peak.entry(*i).or_default();
            *peak = (*peak).max(anywhere);
            let peak = *peak;
            if live >= f.factor as usize {
                at_factor += 1;
                if let Some(since) = tracking.below_since.remove(i) {
                    tracking.repair_times.push(t - since);
                }
                if tracking.reached.insert(*i) {
                    tracking.placement_times.push((t - f.added_at).max(0.0));
                }
            } else {
                below += 1;
                // A repair episode: only files that had their copies (a
                // new file's first placement is timed apart).
                if tracking.reached.contains(i) {
                    tracking.below_since.entry(*i).or_insert(t);
                }
            }
            if live == 0 {
                unavailable += 1;
            }
            if anywhere == 0 {
                lost += 1;
                if tracking.lost.insert(*i) {
                    let reached = tracking.reached.contains(i);
                    tracking.lost_after_factor += reached as usize;
                    // Ends with what became of the holders at the sample
                    // before (recorded above).
                    let history: Vec<String> = tracking
                        .history
                        .get(i)
                        .map(|h| h.iter().cloned().collect())
                        .unwrap_or_default();
                    lost_now.push((*i, f.cid, reached, peak, history));
                }
            }
        }
        let (mut repairs, mut repair_bytes) = *self
            .stopped_repairs
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let (mut provided, mut provide_failed) = (0, 0);
        for s in slots.iter() {
            if let Some(o) = &s.online {
                repairs += o.replicator().stats().repairs.load(Relaxed);
                repair_bytes += o.replicator().stats().repair_bytes.load(Relaxed);
                provided += o.provider().stats.provided.load(Relaxed);
                provide_failed += o.provider().stats.failed.load(Relaxed);
            }
        }
        drop(slots);
        drop(tracking);
        for (i, cid, reached, peak, history) in lost_now {
            self.say(format!(
                "file {i} ({cid}) lost: no node left holds it ({}); latest copy changes: {}",
                if reached {
                    "it had reached its factor".to_string()
                } else {
                    format!("it never reached its factor; at most {peak} copies at a sample")
                },
                history.join("; ")
            ));
        }
        let open_connections = self.fabric.open_links();
        self.say(format!(
            "{nodes_up} nodes up, {open_connections} links open ({} opened so far), {}/{} files at factor, {} unavailable, {} lost",
            self.fabric.opened(),
            at_factor,
            files.len(),
            unavailable,
            lost
        ));
        self.samples
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(Sample {
                t,
                nodes_up,
                files: files.len(),
                replicated,
                at_factor,
                below_factor: below,
                unavailable,
                lost,
                repairs,
                repair_bytes,
                network_bytes: self.fabric.stats.bytes.load(Relaxed),
                open_connections,
                provided,
                provide_failed,
            });
    }

    /// Fetches every added file from an up node that does not hold it and
    /// checks the bytes. With a partition, the node is taken from the other
    /// side of the split than the file's holders where possible. Returns
    /// (retrievable, checked, every replicated file has at least its factor
    /// of live holders, files with more than max).
    async fn final_checks(self: &Arc<Self>, groups: Option<&[u32]>) -> (usize, usize, bool, usize) {
        let files = self.added_files();
        let mut r = Rng::derive(self.seed, "final", 0);
        let mut tasks = Vec::new();
        let limit = Arc::new(tokio::sync::Semaphore::new(16));
        for (_, f) in &files {
            let candidates: Vec<Arc<OnlineNode>> = {
                let slots = self.slots();
                let side = |i: usize| groups.and_then(|g| g.get(i).copied()).unwrap_or(0);
                let sides: HashSet<u32> = slots
                    .iter()
                    .enumerate()
                    .filter(|(_, s)| Self::holds(s, &f.cid))
                    .map(|(i, _)| side(i))
                    .collect();
                let c = slots
                    .iter()
                    .enumerate()
                    .filter(|(_, s)| !Self::holds(s, &f.cid))
                    .filter_map(|(i, s)| s.online.as_ref().map(|o| (i, Arc::clone(o))))
                    .collect::<Vec<_>>();
                let other: Vec<Arc<OnlineNode>> = c
                    .iter()
                    .filter(|(i, _)| !sides.contains(&side(*i)))
                    .map(|(_, o)| Arc::clone(o))
                    .collect();
                let all = c.into_iter().map(|(_, o)| o).collect::<Vec<_>>();
                if other.is_empty() {
                    all
                } else {
                    other
                }
            };
            if candidates.is_empty() {
                continue;
            }
            let online = Arc::clone(&candidates[r.below(candidates.len())]);
            let f = f.clone();
            let limit = Arc::clone(&limit);
            let timeout = self.sc.wall(self.sc.node.fetch_timeout * 2);
            tasks.push(tokio::spawn(async move {
                let _permit = limit.acquire().await;
                let started = std::time::Instant::now();
                let r = match tokio::time::timeout(timeout, fetch_and_check(&online, &f)).await {
                    Ok(Ok(true)) => Ok(()),
                    Ok(Ok(false)) => Err("wrong bytes".to_string()),
                    Ok(Err(e)) => Err(format!("{e:#}")),
                    Err(_) => Err("timed out".to_string()),
                };
                (f.cid, r, started.elapsed())
            }));
        }
        let checked = tasks.len();
        let mut ok = 0;
        let mut wall = Vec::new();
        let started = std::time::Instant::now();
        for (n, t) in tasks.into_iter().enumerate() {
            if let Ok((cid, r, took)) = t.await {
                wall.push(took.as_secs_f64());
                match r {
                    Ok(()) => ok += 1,
                    Err(e) => self.say(format!("final check of {cid} failed: {e}")),
                }
            }
            if (n + 1) % 100 == 0 {
                wall.sort_by(f64::total_cmp);
                self.say(format!(
                    "final checks: {} of {checked} done, {ok} retrievable, {:.0} s wall so far; one fetch p50 {:.2} s max {:.2} s wall",
                    n + 1,
                    started.elapsed().as_secs_f64(),
                    wall[wall.len() / 2],
                    wall[wall.len() - 1]
                ));
            }
        }
        let slots = self.slots();
        let max = self
            .sc
            .node
            .replication_max
            .max(self.sc.node.replication_factor) as usize;
        let mut histogram: std::collections::BTreeMap<usize, usize> = Default::default();
        let mut restored = true;
        let mut above_max = 0;
        for (_, f) in files.iter().filter(|(_, f)| f.factor > 0) {
            let live = slots
                .iter()
                .filter(|s| s.online.is_some() && Self::holds(s, &f.cid))
                .count();
            *histogram.entry(live).or_default() += 1;
            restored &= live >= f.factor as usize;
            if live > max.max(f.factor as usize) {
                above_max += 1;
                if std::env::var_os("NETSIM_DEBUG").is_some() {
                    for (i, s) in slots.iter().enumerate() {
                        if let (Some(o), true) = (&s.online, Self::holds(s, &f.cid)) {
                            let r = o.replicator().record(&f.cid);
                            let o2 = Arc::clone(o);
                            let cid = f.cid;
                            let st = tokio::task::block_in_place(|| {
                                tokio::runtime::Handle::current().block_on(async move {
                                    o2.replicator().status(&cid).await.ok().map(|st| {
                                        st.holders
                                            .iter()
                                            .map(|h| h.state.as_str())
                                            .collect::<Vec<_>>()
                                    })
                                })
                            });
                            self.say(format!("    status: {st:?}"));
                            self.say(format!(
                                "  {} holder {i}: {:?}",
                                f.cid,
                                r.map(|r| (
                                    r.version,
                                    r.removed,
                                    r.holders.len(),
                                    r.holders.contains(&s.peer)
                                ))
                            ));
                        }
                    }
                }
            }
        }
        drop(slots);
        if !histogram.is_empty() {
            self.say(format!(
                "live copies per replicated file (copies: files): {histogram:?}"
            ));
        }
        (ok, checked, restored, above_max)
    }

    /// Hops of a greedy walk (one peer at a time, always to the closest
    /// known peer) from each lookup's node to one of the 20 live nodes
    /// closest to the key, over the routing tables the nodes hold at the
    /// end of the run. libp2p does not report the path a query took, so
    /// this is the routing-table view of the same lookups.
    async fn hop_counts(&self) -> Vec<u32> {
        let lookups = self
            .lookups
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        if lookups.is_empty() {
            return Vec::new();
        }
        let up = self.up_slots();
        let mut tables: HashMap<PeerId, Vec<PeerId>> = HashMap::new();
        let mut slot_peer: HashMap<usize, PeerId> = HashMap::new();
        for (i, o) in &up {
            let peers = o
                .net()
                .swarm
                .routing_table()
                .await
                .unwrap_or_default()
                .into_iter()
                .map(|(p, _)| p)
                .collect();
            tables.insert(o.net().peer_id, peers);
            slot_peer.insert(*i, o.net().peer_id);
        }
        let kad_key = |bytes: &[u8]| -> [u8; 32] {
            use sha2::Digest;
            sha2::Sha256::digest(bytes).into()
        };
        let distance = |a: &[u8; 32], b: &[u8; 32]| -> [u8; 32] {
            let mut d = [0u8; 32];
            for i in 0..32 {
                d[i] = a[i] ^ b[i];
            }
            d
        };
        let peer_keys: HashMap<PeerId, [u8; 32]> = tables
            .keys()
            .map(|p| (*p, kad_key(&p.to_bytes())))
            .collect();
        let mut hops = Vec::new();
        for l in lookups.iter().filter(|l| l.ok) {
            let Ok(cid) = l.key.parse::<Cid>() else {
                continue;
            };
            let Some(start) = slot_peer.get(&l.node) else {
                continue;
            };
            let target = kad_key(&cid.hash().to_bytes());
            let mut by_distance: Vec<(&PeerId, [u8; 32])> = peer_keys
                .iter()
                .map(|(p, k)| (p, distance(k, &target)))
                .collect();
            by_distance.sort_by_key(|a| a.1);
            let closest: HashSet<PeerId> = by_distance.iter().take(20).map(|(p, _)| **p).collect();
            let mut current = *start;
            let mut count = 0u32;
            while !closest.contains(&current) && count < 64 {
                let here = distance(&peer_keys[&current], &target);
                let next = tables[&current]
                    .iter()
                    .filter_map(|p| peer_keys.get(p).map(|k| (*p, distance(k, &target))))
                    .min_by(|a, b| a.1.cmp(&b.1));
                match next {
                    Some((p, d)) if d < here => {
                        current = p;
                        count += 1;
                    }
                    _ => break,
                }
            }
            if closest.contains(&current) {
                hops.push(count);
            }
        }
        hops
    }

    fn report(&self, costs: crate::report::Costs) -> Report {
        let tracking = self.tracking.lock().unwrap_or_else(|e| e.into_inner());
        let mut repair_times = tracking.repair_times.clone();
        // Files still below their factor at the end count as unrepaired.
        let unrepaired = tracking.below_since.len();
        repair_times.sort_by(f64::total_cmp);
        let mut placement_times = tracking.placement_times.clone();
        placement_times.sort_by(f64::total_cmp);
        let lost_after_factor = tracking.lost_after_factor;
        let (dropped, dropped_at_or_below_factor) =
            (tracking.dropped, tracking.dropped_at_or_below_factor);
        Report {
            scenario: self.sc.name.clone(),
            seed: self.seed,
            nodes: self.sc.nodes,
            speed: self.sc.speed,
            lookups: self
                .lookups
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone(),
            gets: self.gets.lock().unwrap_or_else(|e| e.into_inner()).clone(),
            samples: self
                .samples
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone(),
            repair_times,
            unrepaired,
            placement_times,
            lost_after_factor,
            dropped,
            dropped_at_or_below_factor,
            files_added: self.added_files().len(),
            files_planned: self.files.lock().unwrap_or_else(|e| e.into_inner()).len(),
            durability: None,
            files_checked: 0,
            files_retrievable: 0,
            restored: false,
            above_max: 0,
            hops: Vec::new(),
            slots_used: self.slots().len(),
            costs,
            log: self.log.lock().unwrap_or_else(|e| e.into_inner()).clone(),
        }
    }
}

/// Reads the whole file through `online` (fetching what is missing) and
/// compares it with what was added.
async fn fetch_and_check(online: &OnlineNode, file: &FileRec) -> Result<bool> {
    let (mut reader, _) = online
        .cat(&file.cid.to_string(), 0, None)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let expected_seed = file.content_seed;
    let size = file.size;
    tokio::task::spawn_blocking(move || -> Result<bool> {
        let mut got = Vec::with_capacity(size);
        std::io::Read::read_to_end(&mut reader, &mut got)?;
        Ok(got == content(expected_seed, size))
    })
    .await?
}

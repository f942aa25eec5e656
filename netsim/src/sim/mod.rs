//! Runs a scenario: real cairn nodes (`Node` + `OnlineNode`, the code the
//! daemon runs) on one tokio runtime, connected through the [`Fabric`],
//! driven by the scenario's workload and faults, observed from outside.
//!
//! - `schedule`: the events of a run, in time order;
//! - `nodes`: starting, stopping and configuring the nodes;
//! - `operations`: adds, gets and lookups;
//! - `observation`: samples of the replication state and the report;
//! - `final_checks`: retrievability, live copies and lookup hops at the end;
//! - `disks`: storage faults (EIO, flipped bits) and what became of them;
//! - `nat`: which nodes sit behind NATs or relay, and what their NAT
//!   traversal did;
//! - `error`: what can fail;
//! - this file: the run itself (start-up, warmup, the event loop).
//!
//! Reproducibility: node keys, file contents, the times of every operation
//! and fault, and the random numbers that pick nodes and files all come
//! from the seed. Which node an operation lands on is picked among the
//! nodes up at that moment, and the network itself runs on real tasks and
//! timers, so measured latencies and repair times vary a little between
//! two runs of one seed; the spread over seeds is what the README reports.

mod disks;
mod error;
mod final_checks;
mod nat;
mod nodes;
mod observation;
mod operations;
mod schedule;

use crate::fabric::Fabric;
use crate::lock;
use crate::report::{OpSample, Report, Sample};
use crate::rng::Rng;
use crate::scenario::Scenario;
use nodes::Slot;
use observation::Tracking;
use operations::FileRec;
use schedule::{Event, Timed};

pub use error::SimError;
use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;

/// One run of a scenario with one seed: the nodes, the fabric they talk
/// over, and what has been measured so far.
pub struct Sim {
    sc: Scenario,
    seed: u64,
    fabric: Fabric,
    /// Which slots sit behind NATs and which relay.
    nat: nat::NatPlan,
    slots: Mutex<Vec<Slot>>,
    files: Mutex<Vec<Option<FileRec>>>,
    lookups: Mutex<Vec<OpSample>>,
    gets: Mutex<Vec<OpSample>>,
    samples: Mutex<Vec<Sample>>,
    tracking: Mutex<Tracking>,
    /// Replication counters of node incarnations that stopped.
    stopped_repairs: Mutex<(u64, u64)>,
    /// The storage faults injected.
    disks: Mutex<disks::DiskLog>,
    log: Mutex<Vec<String>>,
    start: Instant,
    quiet: bool,
}

impl Sim {
    /// A run of `sc` with `seed`, nothing started yet; `quiet` keeps its
    /// progress lines off stderr (they still go to the report's log).
    pub fn new(sc: Scenario, seed: u64, quiet: bool) -> Arc<Sim> {
        let fabric = Sim::fabric(&sc, seed);
        let nat = nat::NatPlan::new(&sc, seed);
        for slot in 0..sc.nodes {
            fabric.set_nat(slot, nat.kind(slot));
        }
        fabric.set_mapping_ttl(sc.wall(sc.nat.mapping_ttl));
        Arc::new(Sim {
            sc,
            seed,
            fabric,
            nat,
            slots: Mutex::new(Vec::new()),
            files: Mutex::new(Vec::new()),
            lookups: Mutex::new(Vec::new()),
            gets: Mutex::new(Vec::new()),
            samples: Mutex::new(Vec::new()),
            tracking: Mutex::new(Tracking::default()),
            stopped_repairs: Mutex::new((0, 0)),
            disks: Mutex::default(),
            log: Mutex::new(Vec::new()),
            start: Instant::now(),
            quiet,
        })
    }

    /// Logs a progress line (and prints it unless quiet).
    fn say(&self, line: String) {
        if !self.quiet {
            eprintln!("[{:>8.1}s sim] {line}", self.sim_now());
        }
        lock(&self.log).push(line);
    }

    /// Simulated seconds since the run started.
    fn sim_now(&self) -> f64 {
        self.start.elapsed().as_secs_f64() * self.sc.speed
    }

    /// Runs the scenario to the end and returns what was measured.
    pub async fn run(self: &Arc<Self>) -> Result<Report, SimError> {
        let started = std::time::Instant::now();
        let rss_before = crate::report::rss_bytes();
        let cpu_before = crate::report::cpu_seconds();
        self.start_network(started).await?;
        let startup_secs = started.elapsed().as_secs_f64();
        self.say(format!(
            "{} nodes up in {startup_secs:.1} s wall; warming up",
            self.sc.nodes
        ));
        self.warm_up().await;
        let rss_nodes = crate::report::rss_bytes();
        let cpu_idle_start = crate::report::cpu_seconds();
        let idle_wall = std::time::Instant::now();
        // A short idle window to measure what idle nodes cost.
        tokio::time::sleep(Duration::from_secs(2)).await;
        let idle_cpu = (crate::report::cpu_seconds() - cpu_idle_start)
            / idle_wall.elapsed().as_secs_f64()
            / self.sc.nodes as f64;

        let partition_groups = self.play().await;
        let end = self.sim_now();
        self.say("final checks".into());
        let checks = self.final_checks(partition_groups.as_deref()).await;
        let hops = self.hop_counts().await;
        let nat = self.nat_report();
        let mut report = self.report(crate::report::Costs {
            startup_secs,
            rss_before,
            rss_nodes,
            cpu_seconds: crate::report::cpu_seconds() - cpu_before,
            wall_seconds: started.elapsed().as_secs_f64(),
            idle_cpu_per_node: idle_cpu,
            sim_seconds: end,
        });
        report.durability = if checks.checked == 0 {
            None
        } else {
            Some(checks.retrievable as f64 / checks.checked as f64)
        };
        report.files_checked = checks.checked;
        report.files_retrievable = checks.retrievable;
        report.restored = checks.restored;
        report.above_max = checks.above_max;
        report.hops = hops;
        report.disks = self.disk_checks();
        report.nat = nat;
        for (_, o) in self.up_slots() {
            o.shutdown();
        }
        Ok(report)
    }

    /// Starts the network in batches; each node bootstraps to nodes
    /// already up.
    async fn start_network(self: &Arc<Self>, started: std::time::Instant) -> Result<(), SimError> {
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
                s.await.map_err(|source| SimError::Task {
                    what: "starting a node",
                    source,
                })??;
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
        Ok(())
    }

    /// Warms up, saying every 10 s how many links are open: forming the
    /// DHT is most of what a large network spends here.
    async fn warm_up(&self) {
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
    }

    /// Plays the schedule to the end of the run (duration + settle) and
    /// waits for the operations it started. Returns the groups of the last
    /// partition, if there was one.
    async fn play(self: &Arc<Self>) -> Option<Vec<u32>> {
        let (mut heap, planned_files) = self.schedule();
        *lock(&self.files) = vec![None; planned_files];
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
                            this.say(format!("add failed: {e}"));
                        }
                    }));
                }
                Event::Op { op, pick, timeout } => {
                    let this = Arc::clone(self);
                    ops.push(tokio::spawn(async move {
                        this.timed_op(op, t, pick, timeout).await
                    }));
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
                    if !self.is_up(slot) {
                        if let Err(e) = self.start_slot(slot, false).await {
                            self.say(format!("restart: {e}"));
                        }
                    }
                }
                Event::SessionEnd { slot, churn } => {
                    self.session_end(&mut heap, at, slot, churn).await;
                }
                Event::Partition { share, pick } => {
                    partition_groups = Some(self.partition(share, pick));
                }
                Event::Heal => {
                    self.fabric.heal();
                    self.say("partition healed".into());
                }
                Event::Drops { links, pick } => {
                    let mut r = Rng::new(pick);
                    self.fabric.break_random_links(links, &mut |n| r.below(n));
                }
                Event::Disk {
                    nodes,
                    unreadable,
                    flipped,
                    pick,
                } => self.break_disks(nodes, unreadable, flipped, pick),
                Event::DiskHeal => self.heal_disks(),
                Event::Sample => self.sample(t),
            }
        }
        self.finish_ops(ops).await;
        partition_groups
    }

    /// Cuts a random `share` of the slots (drawn from `pick`) off from the
    /// rest; returns each slot's side.
    fn partition(&self, share: f64, pick: u64) -> Vec<u32> {
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
        groups
    }
}

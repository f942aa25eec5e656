//! What the run observes from outside the nodes: periodic samples of the
//! replication state (holders per file, repair and placement episodes,
//! copies lost and dropped), DHT counters for debugging, and the report
//! assembled from them.

use super::Sim;
use crate::lock;
use crate::report::{Report, Sample};
use cairn::node::online::OnlineNode;
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;

/// What the samples have found so far about the replicated files: repair
/// and placement episodes, peaks, losses, holders and their changes.
#[derive(Default)]
pub(super) struct Tracking {
    /// Files that reached their factor and have fallen below it since:
    /// since when (simulated seconds).
    below_since: HashMap<usize, f64>,
    /// Simulated seconds each finished repair episode took.
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
    history: HashMap<usize, VecDeque<String>>,
    /// Copies dropped by nodes that had not left (trims), and of those the
    /// ones dropped while the file had no more than its factor live.
    dropped: usize,
    dropped_at_or_below_factor: usize,
}

impl Sim {
    /// NETSIM_DEBUG: the DHT query counters of a few nodes (how many walks
    /// and requests they made, how many failed).
    pub(super) fn debug_kad_metrics(&self) {
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
                let registry = lock(&o.net().metrics);
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
    pub(super) fn sample(&self, t: f64) {
        use std::sync::atomic::Ordering::Relaxed;
        let files = self.added_files();
        let slots = self.slots();
        let nodes_up = slots.iter().filter(|s| s.online.is_some()).count();
        let mut at_factor = 0;
        let mut below = 0;
        let mut unavailable = 0;
        let mut lost = 0;
        let mut replicated = 0;
        let mut tracking = lock(&self.tracking);
        let mut lost_now = Vec::new();
        for (i, f) in &files {
            if f.factor == 0 {
                continue;
            }
            replicated += 1;
            let holding: Vec<usize> = (0..slots.len())
                .filter(|&k| slots[k].holds(&f.cid))
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
        let (mut repairs, mut repair_bytes) = *lock(&self.stopped_repairs);
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
        lock(&self.samples).push(Sample {
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

    /// The report of the run so far: what was sampled and timed; the final
    /// checks fill in the rest.
    pub(super) fn report(&self, costs: crate::report::Costs) -> Report {
        let tracking = lock(&self.tracking);
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
            lookups: lock(&self.lookups).clone(),
            gets: lock(&self.gets).clone(),
            samples: lock(&self.samples).clone(),
            repair_times,
            unrepaired,
            placement_times,
            lost_after_factor,
            dropped,
            dropped_at_or_below_factor,
            files_added: self.added_files().len(),
            files_planned: lock(&self.files).len(),
            durability: None,
            files_checked: 0,
            files_retrievable: 0,
            restored: false,
            above_max: 0,
            hops: Vec::new(),
            slots_used: self.slots().len(),
            disks: None,
            nat: None,
            costs,
            log: lock(&self.log).clone(),
        }
    }
}

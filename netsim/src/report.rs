//! What a run measured: the JSON file, the terminal summary, the checks
//! against the scenario's expectations, and the spread over seeds.

use crate::fabric::Nat;
use crate::scenario::Expect;
use serde::Serialize;

mod nat;
pub use nat::NatReport;

/// One lookup or get.
#[derive(Clone, Debug, Serialize)]
pub struct OpSample {
    /// Simulated seconds after the warmup when it started.
    pub t: f64,
    /// Simulated milliseconds it took.
    pub ms: f64,
    /// It succeeded (the right bytes, or a provider found) in time.
    pub ok: bool,
    /// The slot of the node it ran on.
    pub node: usize,
    /// The CID it was about.
    pub key: String,
    /// The NAT of the node it ran on (`open` without NATs).
    pub nat: Nat,
    /// The NAT of the node that added the file.
    pub origin_nat: Nat,
    /// A get that succeeded, with NATs in the scenario: how the node was
    /// connected to the file's origin just after ("direct", "relayed"),
    /// unset when it was not.
    pub via: Option<&'static str>,
}

/// The replication state at one moment.
#[derive(Clone, Debug, Serialize)]
pub struct Sample {
    /// Simulated seconds after the warmup.
    pub t: f64,
    /// Nodes running.
    pub nodes_up: usize,
    /// Files added so far.
    pub files: usize,
    /// Of those, files pinned with a replication factor.
    pub replicated: usize,
    /// Replicated files with at least their factor of live holders.
    pub at_factor: usize,
    /// Replicated files with fewer.
    pub below_factor: usize,
    /// No live node holds the file.
    pub unavailable: usize,
    /// No node that has not left for good holds it.
    pub lost: usize,
    /// Copies placed by repairs so far (every node incarnation).
    pub repairs: u64,
    /// Bytes those repairs fetched.
    pub repair_bytes: u64,
    /// Bytes the fabric carried so far.
    pub network_bytes: u64,
    /// Connections open now.
    pub open_connections: usize,
    /// Provider announcements that reached peers / that failed, summed
    /// over the nodes up.
    pub provided: u64,
    /// See `provided`.
    pub provide_failed: u64,
}

/// Storage faults injected, and what became of them by the end (nodes
/// up at the end).
#[derive(Clone, Debug, Default, Serialize)]
pub struct DiskReport {
    /// Nodes whose disk went bad.
    pub nodes: usize,
    /// Blocks given a flipped bit.
    pub flipped: usize,
    /// Blocks made to read EIO.
    pub unreadable: usize,
    /// Corrupt blocks the scrubs found.
    pub scrub_corrupt: u64,
    /// Of those, blocks replaced by a verified copy from a peer.
    pub scrub_repaired: u64,
    /// Scrub reads that failed (the blocks left as they were).
    pub scrub_unreadable: u64,
    /// Replicated files.
    pub replicated: usize,
    /// Of those, files with at least their factor of live holders whose
    /// copy reads back whole and verified.
    pub intact_at_factor: usize,
    /// Corrupt blocks stored on nodes whose disk went bad.
    pub corrupt_on_faulted: usize,
    /// Corrupt blocks stored on the other nodes.
    pub corrupt_elsewhere: usize,
    /// Blocks still reading EIO.
    pub unreadable_at_end: usize,
    /// Blocks that read EIO and are no longer stored on their node.
    pub unreadable_lost: usize,
}

/// What the machine paid.
#[derive(Clone, Debug, Serialize)]
pub struct Costs {
    /// Wall-clock seconds to start every node.
    pub startup_secs: f64,
    /// Resident bytes before the first node started.
    pub rss_before: u64,
    /// Resident bytes once the network had formed.
    pub rss_nodes: u64,
    /// CPU seconds of the whole run.
    pub cpu_seconds: f64,
    /// Wall-clock seconds of the whole run.
    pub wall_seconds: f64,
    /// CPU share of one core per idle node.
    pub idle_cpu_per_node: f64,
    /// Simulated seconds from the end of the warmup to the final checks.
    pub sim_seconds: f64,
}

/// Everything a run measured (`report.json`).
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    /// The scenario's name.
    pub scenario: String,
    /// The seed of this run.
    pub seed: u64,
    /// Nodes at the start.
    pub nodes: usize,
    /// Simulated seconds per wall-clock second.
    pub speed: f64,
    /// Every lookup.
    pub lookups: Vec<OpSample>,
    /// Every get.
    pub gets: Vec<OpSample>,
    /// The replication state over time.
    pub samples: Vec<Sample>,
    /// Simulated seconds from a file falling below its factor to having
    /// it again (sampled; includes the grace period).
    pub repair_times: Vec<f64>,
    /// Files that had reached their factor and were below it at the end.
    pub unrepaired: usize,
    /// Simulated seconds from each add to its file's first sample at
    /// factor (sampled).
    pub placement_times: Vec<f64>,
    /// Files lost (no node that has not left holds them) after they had
    /// reached their factor.
    pub lost_after_factor: usize,
    /// Copies dropped by nodes that had not left (trims, tombstones), and
    /// of those the ones dropped while the file had no more than its
    /// factor of live copies (sampled).
    pub dropped: usize,
    /// See `dropped`.
    pub dropped_at_or_below_factor: usize,
    /// Adds that succeeded.
    pub files_added: usize,
    /// Adds the workload planned.
    pub files_planned: usize,
    /// Share of the checked files retrievable at the end (none checked:
    /// unset).
    pub durability: Option<f64>,
    /// Files the final checks tried to fetch.
    pub files_checked: usize,
    /// Of those, files fetched with the right bytes.
    pub files_retrievable: usize,
    /// Every replicated file had at least its factor of live copies at
    /// the end.
    pub restored: bool,
    /// Replicated files with more live copies than `max` at the end.
    pub above_max: usize,
    /// Greedy routing-table hops of each successful lookup.
    pub hops: Vec<u32>,
    /// Node slots used (nodes that joined in place of departed ones
    /// included).
    pub slots_used: usize,
    /// Storage faults and their outcome (scenarios that have or check
    /// them).
    pub disks: Option<DiskReport>,
    /// What NAT traversal did (scenarios with NATs).
    pub nat: Option<NatReport>,
    /// What the machine paid.
    pub costs: Costs,
    /// The progress lines of the run.
    pub log: Vec<String>,
}

/// The current resident set size of this process.
pub fn rss_bytes() -> u64 {
    let Ok(text) = std::fs::read_to_string("/proc/self/statm") else {
        return 0;
    };
    let pages: u64 = text
        .split_whitespace()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    pages * page.max(1) as u64
}

/// CPU time (user + system) this process has used.
pub fn cpu_seconds() -> f64 {
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: getrusage writes a rusage into the pointer it is given.
    let rc = unsafe { libc::getrusage(libc::RUSAGE_SELF, usage.as_mut_ptr()) };
    if rc != 0 {
        return 0.0;
    }
    // SAFETY: initialised by the successful call above.
    let u = unsafe { usage.assume_init() };
    let t = |tv: libc::timeval| tv.tv_sec as f64 + tv.tv_usec as f64 / 1e6;
    t(u.ru_utime) + t(u.ru_stime)
}

/// The `p`-quantile (0..=1) of sorted values.
pub fn quantile(sorted: &[f64], p: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted.get(i).copied()
}

fn sorted_ms(ops: &[OpSample]) -> Vec<f64> {
    let mut v: Vec<f64> = ops.iter().filter(|o| o.ok).map(|o| o.ms).collect();
    v.sort_by(f64::total_cmp);
    v
}

fn share_ok(ops: &[OpSample]) -> Option<f64> {
    (!ops.is_empty()).then(|| ops.iter().filter(|o| o.ok).count() as f64 / ops.len() as f64)
}

/// Headline figures, also what the spread over seeds is computed from.
#[derive(Clone, Debug, Serialize)]
pub struct Headline {
    /// Share of lookups that found a provider.
    pub lookup_success: Option<f64>,
    /// Median time to the first provider of successful lookups.
    pub lookup_p50_ms: Option<f64>,
    /// 90th percentile of the same.
    pub lookup_p90_ms: Option<f64>,
    /// 99th percentile of the same.
    pub lookup_p99_ms: Option<f64>,
    /// Mean greedy routing-table hops of successful lookups.
    pub hops_mean: Option<f64>,
    /// Share of gets that returned the right bytes.
    pub get_success: Option<f64>,
    /// Median time of successful gets.
    pub get_p50_ms: Option<f64>,
    /// 90th percentile of the same.
    pub get_p90_ms: Option<f64>,
    /// Share of files retrievable at the end.
    pub durability: Option<f64>,
    /// Files no node holds at the last sample.
    pub files_lost: usize,
    /// Files lost after reaching their factor.
    pub lost_after_factor: usize,
    /// Median simulated seconds from an add to its copies placed.
    pub placement_p50_s: Option<f64>,
    /// 90th percentile of the same.
    pub placement_p90_s: Option<f64>,
    /// Median simulated seconds to restore a file's factor.
    pub repair_p50_s: Option<f64>,
    /// 90th percentile of the same.
    pub repair_p90_s: Option<f64>,
    /// Longest of the same.
    pub repair_max_s: Option<f64>,
    /// Copies placed by repairs.
    pub repairs: u64,
    /// Bytes those repairs fetched.
    pub repair_bytes: u64,
    /// Lowest share of replicated files at their factor at a sample.
    pub min_at_factor_share: Option<f64>,
    /// Resident memory per node once the network had formed.
    pub memory_per_node_mib: f64,
    /// Percent of a core each idle node used.
    pub idle_cpu_per_node_pct: f64,
}

impl Report {
    /// The headline figures of this run.
    pub fn headline(&self) -> Headline {
        let l = sorted_ms(&self.lookups);
        let g = sorted_ms(&self.gets);
        let last = self.samples.last();
        let min_at_factor = self
            .samples
            .iter()
            .filter(|s| s.replicated > 0)
            .map(|s| s.at_factor as f64 / s.replicated as f64)
            .min_by(f64::total_cmp);
        Headline {
            lookup_success: share_ok(&self.lookups),
            lookup_p50_ms: quantile(&l, 0.5),
            lookup_p90_ms: quantile(&l, 0.9),
            lookup_p99_ms: quantile(&l, 0.99),
            hops_mean: (!self.hops.is_empty())
                .then(|| self.hops.iter().map(|&h| h as f64).sum::<f64>() / self.hops.len() as f64),
            get_success: share_ok(&self.gets),
            get_p50_ms: quantile(&g, 0.5),
            get_p90_ms: quantile(&g, 0.9),
            durability: self.durability,
            files_lost: last.map_or(0, |s| s.lost),
            lost_after_factor: self.lost_after_factor,
            placement_p50_s: quantile(&self.placement_times, 0.5),
            placement_p90_s: quantile(&self.placement_times, 0.9),
            repair_p50_s: quantile(&self.repair_times, 0.5),
            repair_p90_s: quantile(&self.repair_times, 0.9),
            repair_max_s: self.repair_times.last().copied(),
            repairs: last.map_or(0, |s| s.repairs),
            repair_bytes: last.map_or(0, |s| s.repair_bytes),
            min_at_factor_share: min_at_factor,
            memory_per_node_mib: self.costs.rss_nodes.saturating_sub(self.costs.rss_before) as f64
                / self.nodes.max(1) as f64
                / (1024.0 * 1024.0),
            idle_cpu_per_node_pct: self.costs.idle_cpu_per_node * 100.0,
        }
    }

    /// The terminal summary.
    pub fn summary(&self) -> String {
        let h = self.headline();
        let mut out = String::new();
        let c = &self.costs;
        let mut line = |s: String| {
            out.push_str(&s);
            out.push('\n');
        };
        line(format!(
            "== {} (seed {}): {} nodes ({} slots used), {:.0} s simulated in {:.0} s wall (speed {})",
            self.scenario,
            self.seed,
            self.nodes,
            self.slots_used,
            c.sim_seconds,
            c.wall_seconds,
            self.speed
        ));
        line(format!(
            "cost: start {:.1} s; {:.1} MiB and {:.2} % of a core per idle node; {:.0} CPU-s in all",
            c.startup_secs, h.memory_per_node_mib, h.idle_cpu_per_node_pct, c.cpu_seconds
        ));
        let ms = |v: Option<f64>| v.map_or("-".into(), |v| format!("{v:.0} ms"));
        let pct = |v: Option<f64>| v.map_or("-".into(), |v| format!("{:.2} %", v * 100.0));
        if !self.lookups.is_empty() {
            line(format!(
                "lookups: {} run, success {}, time to first provider p50 {} p90 {} p99 {}, greedy hops mean {}",
                self.lookups.len(),
                pct(h.lookup_success),
                ms(h.lookup_p50_ms),
                ms(h.lookup_p90_ms),
                ms(h.lookup_p99_ms),
                h.hops_mean.map_or("-".into(), |v| format!("{v:.2}")),
            ));
        }
        if !self.gets.is_empty() {
            line(format!(
                "gets: {} run, success {}, p50 {} p90 {}",
                self.gets.len(),
                pct(h.get_success),
                ms(h.get_p50_ms),
                ms(h.get_p90_ms)
            ));
        }
        if let Some(s) = self.samples.last() {
            line(format!(
                "DHT provider announcements: {} placed, {} failed (nodes up at the end)",
                s.provided, s.provide_failed
            ));
        }
        line(format!(
            "files: {} of {} added; retrievable at the end: {} of {} checked ({})",
            self.files_added,
            self.files_planned,
            self.files_retrievable,
            self.files_checked,
            pct(h.durability)
        ));
        if let Some(s) = self.samples.last().filter(|s| s.replicated > 0) {
            let secs = |v: Option<f64>| v.map_or("-".into(), |v| format!("{v:.0} s"));
            line(format!(
                "replication: {} replicated files, {} at factor at the end, {} lost ({} of them after reaching their factor); lowest share at factor during the run {} (a new file counts as below until its copies are placed)",
                s.replicated,
                s.at_factor,
                s.lost,
                self.lost_after_factor,
                pct(h.min_at_factor_share)
            ));
            line(format!(
                "copies dropped by nodes that had not left: {} ({} while the file had no more than its factor live)",
                self.dropped, self.dropped_at_or_below_factor
            ));
            line(format!(
                "placement: new files at factor after p50 {} p90 {} (simulated, from the add; sampled every sample interval)",
                secs(h.placement_p50_s),
                secs(h.placement_p90_s)
            ));
            line(format!(
                "repair: {} episodes (a file that had its copies falling below its factor), time to restore p50 {} p90 {} max {} (simulated, grace included); {} still below; {} copies placed, {:.1} MiB moved",
                self.repair_times.len(),
                secs(h.repair_p50_s),
                secs(h.repair_p90_s),
                secs(h.repair_max_s),
                self.unrepaired,
                s.repairs,
                s.repair_bytes as f64 / (1024.0 * 1024.0)
            ));
            line(format!(
                "at the end: every replicated file at its factor or above: {}; files above max: {}",
                self.restored, self.above_max
            ));
        }
        if let Some(d) = &self.disks {
            line(format!(
                "disks: {} nodes went bad ({} blocks with a flipped bit, {} reading EIO); scrubs found {} corrupt, replaced {} with verified copies, {} reads failed",
                d.nodes, d.flipped, d.unreadable, d.scrub_corrupt, d.scrub_repaired, d.scrub_unreadable
            ));
            line(format!(
                "disks at the end: {} of {} replicated files with their factor of intact copies; corrupt blocks on the bad disks {}, elsewhere {}; blocks still reading EIO {}, blocks that read EIO and were lost {}",
                d.intact_at_factor,
                d.replicated,
                d.corrupt_on_faulted,
                d.corrupt_elsewhere,
                d.unreadable_at_end,
                d.unreadable_lost
            ));
        }
        if let Some(n) = &self.nat {
            out.push_str(&n.summary(&self.lookups, &self.gets));
        }
        out
    }

    /// The expectations this run missed (empty: passed).
    pub fn failures(&self, expect: &Expect) -> Vec<String> {
        let h = self.headline();
        let mut bad = Vec::new();
        let mut check = |name: &str, got: Option<f64>, want: Option<f64>| {
            if let Some(want) = want {
                match got {
                    Some(g) if g + 1e-12 >= want => {}
                    other => bad.push(format!(
                        "{name}: {} (expected at least {:.2} %)",
                        other.map_or("not measured".into(), |g| format!("{:.2} %", g * 100.0)),
                        want * 100.0
                    )),
                }
            }
        };
        check("lookup success", h.lookup_success, expect.lookup_success);
        check("get success", h.get_success, expect.get_success);
        check("durability", h.durability, expect.durability);
        if expect.factor_restored && !self.restored {
            bad.push("not every replicated file is back at its factor".into());
        }
        if expect.trimmed && self.above_max > 0 {
            bad.push(format!(
                "{} replicated files have more copies than max",
                self.above_max
            ));
        }
        let d = self.disks.as_ref();
        if expect.intact_copies {
            match d {
                Some(d) if d.intact_at_factor == d.replicated => {}
                Some(d) => bad.push(format!(
                    "{} of {} replicated files have fewer intact copies than their factor",
                    d.replicated - d.intact_at_factor,
                    d.replicated
                )),
                None => bad.push("intact copies: not measured".into()),
            }
        }
        if expect.no_corrupt_spread {
            match d {
                Some(d) if d.corrupt_elsewhere == 0 => {}
                Some(d) => bad.push(format!(
                    "{} corrupt blocks on nodes whose disk was sound",
                    d.corrupt_elsewhere
                )),
                None => bad.push("corrupt blocks: not measured".into()),
            }
        }
        if expect.unreadable_kept {
            match d {
                Some(d) if d.unreadable_lost == 0 => {}
                Some(d) => bad.push(format!(
                    "{} blocks that read EIO were dropped",
                    d.unreadable_lost
                )),
                None => bad.push("blocks that read EIO: not measured".into()),
            }
        }
        if self.files_added < self.files_planned {
            bad.push(format!(
                "only {} of {} adds succeeded",
                self.files_added, self.files_planned
            ));
        }
        bad
    }
}

/// min / median / max of each headline figure over several runs.
pub fn spread(reports: &[Report]) -> String {
    let heads: Vec<serde_json::Value> = reports
        .iter()
        .map(|r| serde_json::to_value(r.headline()).unwrap_or_default())
        .collect();
    let Some(first) = heads.first().and_then(|h| h.as_object()) else {
        return String::new();
    };
    let mut out = format!(
        "== spread over {} seeds (min / median / max)\n",
        reports.len()
    );
    for key in first.keys() {
        let mut v: Vec<f64> = heads.iter().filter_map(|h| h[key].as_f64()).collect();
        if v.is_empty() {
            continue;
        }
        v.sort_by(f64::total_cmp);
        out.push_str(&format!(
            "{key}: {:.3} / {:.3} / {:.3}\n",
            v[0],
            v[v.len() / 2],
            v[v.len() - 1]
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles() {
        let v = [1.0, 2.0, 3.0, 4.0, 5.0];
        assert_eq!(quantile(&v, 0.5), Some(3.0));
        assert_eq!(quantile(&v, 0.0), Some(1.0));
        assert_eq!(quantile(&v, 1.0), Some(5.0));
        assert_eq!(quantile(&[], 0.5), None);
    }

    #[test]
    fn process_costs_are_read() {
        assert!(rss_bytes() > 0);
        assert!(cpu_seconds() >= 0.0);
    }
}

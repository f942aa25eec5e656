//! What happens when: the events of a run (workload operations, faults,
//! samples) drawn from the seed into a time-ordered queue, and churn's
//! sessions, which queue the next ones as they end.

use super::Sim;
use crate::rng::Rng;
use crate::scenario::{Fault, Workload};
use std::collections::BinaryHeap;
use std::sync::Arc;
use std::time::Duration;

/// A timed operation from one node: fetch a whole file, or look up its
/// providers.
#[derive(Clone, Copy, Debug)]
pub(super) enum Op {
    Get,
    Lookup,
}

/// Something scheduled, at a simulated time.
#[derive(Clone, Debug)]
pub(super) enum Event {
    Add {
        file: usize,
        size: usize,
        factor: u8,
        pick: u64,
    },
    Op {
        op: Op,
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
    /// Disks of `nodes` nodes go bad (see `Fault::Disk`).
    Disk {
        nodes: usize,
        unreadable: f64,
        flipped: f64,
        pick: u64,
    },
    /// Blocks that read EIO read well again.
    DiskHeal,
    Sample,
}

/// An event and when it happens; `seq` orders events at the same instant.
pub(super) struct Timed {
    pub(super) at: Duration,
    pub(super) seq: u64,
    pub(super) event: Event,
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

impl Sim {
    /// Builds the whole schedule from the seed; returns it and how many
    /// files the workload adds.
    pub(super) fn schedule(&self) -> (BinaryHeap<Timed>, usize) {
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
            let (op, ops) = match w {
                Workload::Add {
                    at,
                    spread,
                    files: n,
                    size,
                    factor,
                } => {
                    for i in 0..*n {
                        push(
                            &mut heap,
                            spread_at(*at, *spread, i, *n),
                            Event::Add {
                                file: files,
                                size: size.0 as usize,
                                factor: *factor,
                                pick: r.next_u64(),
                            },
                        );
                        files += 1;
                    }
                    continue;
                }
                Workload::Get(ops) => (Op::Get, ops),
                Workload::Lookup(ops) => (Op::Lookup, ops),
            };
            for i in 0..ops.count {
                push(
                    &mut heap,
                    spread_at(ops.at, ops.spread, i, ops.count),
                    Event::Op {
                        op,
                        pick: r.next_u64(),
                        timeout: ops.timeout,
                    },
                );
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
                Fault::Disk {
                    at,
                    nodes,
                    unreadable,
                    flipped,
                    heal,
                } => {
                    push(
                        &mut heap,
                        *at,
                        Event::Disk {
                            nodes: *nodes,
                            unreadable: *unreadable,
                            flipped: *flipped,
                            pick: r.next_u64(),
                        },
                    );
                    if let Some(heal) = heal {
                        push(&mut heap, *heal, Event::DiskHeal);
                    }
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

    /// A churn session of `slot` ends at `at`: the node leaves for good
    /// (and a new one joins) or goes down for a while; its next session end
    /// (and restart) are queued.
    pub(super) async fn session_end(
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
        if at >= to || !self.is_up(slot) {
            return;
        }
        // One stream per slot: the same seed gives every slot the same
        // sessions however the run's timing goes.
        let mut r = Rng::derive(self.seed, "session", (slot as u64) << 20 | at.as_secs());
        if r.unit() < leave_share {
            self.stop_slot(slot, true);
            let new = self.slots().len();
            if let Err(e) = self.start_slot(new, false).await {
                self.say(format!("a new node could not join: {e}"));
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
}

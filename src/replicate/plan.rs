//! Repair decisions as a pure function: a record, what the last probes saw
//! of each holder, the candidate peers and `now` in; who acts, who is lost,
//! whom to ask for a copy and whom to trim out.
//!
//! - A holder that answered a probe with every sampled block is live; one
//!   still fetching is pinning (for as long as it keeps answering); one
//!   that failed (no answer, or blocks missing) is suspect until `grace`
//!   has passed, then lost.
//! - Exactly one holder acts for a root: the live holder closest to the
//!   root by XOR distance (so every holder can tell whether it is the one).
//! - The acting holder asks the closest candidates for copies while live +
//!   pinning + suspect holders are fewer than the factor (suspects are not
//!   replaced before their grace ends, so a short outage moves nothing),
//!   and trims the farthest live holders beyond `max`. When only one copy
//!   is up, suspects stop counting: one departure would lose the file, so
//!   copies are placed at once (and trimmed again if the suspects return).
//!
//! Distances are between SHA-256 digests of the peer ID and of the root's
//! multihash, as in the Kademlia DHT.

use super::record::Record;
use crate::block::Cid;
use libp2p::PeerId;
use sha2::{Digest, Sha256};
use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

/// What probes have seen of a holder.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Observed {
    /// Answered with every sampled block, pinned.
    Live {
        /// When it last did.
        at: Instant,
    },
    /// Accepted and still fetching. A holder that keeps answering is
    /// fetching, however long a large DAG takes: only silence ages it into
    /// lost.
    Pinning {
        /// Since when it is fetching.
        since: Instant,
        /// When it last said so.
        seen: Instant,
    },
    /// No answer, or blocks missing.
    Failing {
        /// Since when.
        since: Instant,
    },
}

/// A holder's state as `pin status` shows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HolderState {
    /// Live: pinned, with every sampled block.
    Pinned,
    /// Fetching its copy.
    Pinning,
    /// Failing for less than the grace period.
    Unreachable,
    /// Failing for longer than the grace period.
    Lost,
}

impl HolderState {
    /// The name `pin status` prints.
    pub fn as_str(&self) -> &'static str {
        match self {
            HolderState::Pinned => "pinned",
            HolderState::Pinning => "pinning",
            HolderState::Unreachable => "unreachable",
            HolderState::Lost => "lost",
        }
    }
}

/// The root's overall state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RootState {
    /// At least `factor` live holders.
    Ok,
    /// Copies are being placed or fetched.
    Repairing,
    /// Fewer live holders than the factor and nothing under way.
    UnderReplicated,
}

impl RootState {
    /// The name `pin status` prints.
    pub fn as_str(&self) -> &'static str {
        match self {
            RootState::Ok => "ok",
            RootState::Repairing => "repairing",
            RootState::UnderReplicated => "under-replicated",
        }
    }
}

/// One round's decisions.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RepairPlan {
    /// This node is the live holder closest to the root.
    pub acting: bool,
    /// Holders that answered with their copy, closest to the root first.
    pub live: Vec<PeerId>,
    /// Holders still fetching their copy (and answering).
    pub pinning: Vec<PeerId>,
    /// Holders failing for less than the grace period.
    pub suspect: Vec<PeerId>,
    /// Holders failing (or silent while fetching) for longer.
    pub lost: Vec<PeerId>,
    /// Ask these for a copy (acting only), closest first.
    pub place: Vec<PeerId>,
    /// The next closest candidates, asked in order in place of any in
    /// `place` that cannot be reached or refuses, so one down candidate
    /// does not hold a copy back for a whole round.
    pub spares: Vec<PeerId>,
    /// Drop these from the holders (acting only).
    pub trim: Vec<PeerId>,
    /// Lost holders to forget (acting only, once the factor is live
    /// without them): records would otherwise grow by every holder ever
    /// replaced, up to their cap, after which no copy could be placed. One
    /// that comes back with its copy lists itself again.
    pub forget: Vec<PeerId>,
}

impl RepairPlan {
    /// The root's overall state under this plan, for `factor` copies.
    pub fn state(&self, factor: u8) -> RootState {
        if self.live.len() >= factor as usize {
            RootState::Ok
        } else if !self.pinning.is_empty() || !self.place.is_empty() {
            RootState::Repairing
        } else {
            RootState::UnderReplicated
        }
    }
}

/// Below this many copies up (live or pinning), suspects no longer count
/// towards the factor: copies are placed without waiting for their grace.
const LAST_COPIES: usize = 2;

/// Candidates kept in reserve for placements that fail.
const SPARES: usize = 6;

/// Kademlia-style key of bytes.
fn key(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

/// XOR distance between a peer and a root (compare as big-endian).
pub fn distance(peer: &PeerId, root: &Cid) -> [u8; 32] {
    let a = key(&peer.to_bytes());
    let b = key(&root.hash().to_bytes());
    let mut d = [0u8; 32];
    for i in 0..32 {
        d[i] = a[i] ^ b[i];
    }
    d
}

/// `peers` sorted by distance to `root`, closest first.
pub fn by_distance(root: &Cid, peers: impl IntoIterator<Item = PeerId>) -> Vec<PeerId> {
    let mut v: Vec<(PeerId, [u8; 32])> =
        peers.into_iter().map(|p| (p, distance(&p, root))).collect();
    v.sort_by_key(|a| a.1);
    v.dedup_by(|a, b| a.0 == b.0);
    v.into_iter().map(|(p, _)| p).collect()
}

/// Decides one round for `record` as seen by `me`.
///
/// `observed` holds the latest probe result per holder (a holder never
/// probed counts as suspect from `now`); `candidates` are peers that could
/// take a copy (any order); `refused` those that declined lately.
pub fn plan(
    record: &Record,
    me: &PeerId,
    observed: &HashMap<PeerId, Observed>,
    candidates: &[PeerId],
    refused: &HashSet<PeerId>,
    now: Instant,
    grace: Duration,
) -> RepairPlan {
    let mut p = RepairPlan::default();
    if record.removed {
        return p;
    }
    for h in &record.holders {
        match observed.get(h) {
            Some(Observed::Live { .. }) => p.live.push(*h),
            Some(Observed::Pinning { seen, .. }) => {
                if now.saturating_duration_since(*seen) < grace {
                    p.pinning.push(*h)
                } else {
                    p.lost.push(*h)
                }
            }
            Some(Observed::Failing { since }) => {
                if now.saturating_duration_since(*since) < grace {
                    p.suspect.push(*h)
                } else {
                    p.lost.push(*h)
                }
            }
            None => p.suspect.push(*h),
        }
    }
    p.live = by_distance(&record.root, p.live.iter().copied());
    p.acting = p.live.first() == Some(me);
    if !p.acting {
        return p;
    }
    // Suspects count only while another copy is up besides this one: the
    // last copy up is never left alone for a grace period, since its
    // holder leaving for good in that window would lose the file.
    let up = p.live.len() + p.pinning.len();
    let counted = if up >= LAST_COPIES {
        up + p.suspect.len()
    } else {
        up
    };
    let wanted = record.factor as usize;
    if counted < wanted {
        let taken: HashSet<PeerId> = record.holders.iter().copied().collect();
        let mut ordered = by_distance(
            &record.root,
            candidates
                .iter()
                .copied()
                .filter(|c| c != me && !taken.contains(c) && !refused.contains(c)),
        );
        ordered.truncate(wanted - counted + SPARES);
        p.spares = ordered.split_off((wanted - counted).min(ordered.len()));
        p.place = ordered;
    }
    let max = record.max.max(record.factor) as usize;
    if p.live.len() > max {
        p.trim = p.live[max..].to_vec();
    }
    if p.live.len() >= wanted {
        p.forget = p.lost.clone();
    }
    p
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    fn root() -> Cid {
        Cid::from_str("bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku").unwrap()
    }

    fn peers(n: usize) -> Vec<PeerId> {
        by_distance(&root(), (0..n).map(|_| PeerId::random()))
    }

    /// `n` peers by distance to the root, and a record (`factor`, `max`)
    /// held by those at the positions `held`.
    fn setup(n: usize, factor: u8, max: u8, held: &[usize]) -> (Vec<PeerId>, Record) {
        let ps = peers(n);
        let mut rec = Record::new(root(), factor, max, 10, ps[held[0]]);
        rec.holders.extend(held.iter().map(|i| ps[*i]));
        (ps, rec)
    }

    /// [`plan`] as `me` with every peer of `ps` a candidate, none refused.
    fn plan_all(
        rec: &Record,
        me: &PeerId,
        obs: &HashMap<PeerId, Observed>,
        ps: &[PeerId],
        now: Instant,
        grace: Duration,
    ) -> RepairPlan {
        plan(rec, me, obs, ps, &HashSet::new(), now, grace)
    }

    #[test]
    fn the_closest_live_holder_places_copies_on_the_closest_candidates() {
        let now = Instant::now();
        // Holders: the 2nd and 5th closest; both live.
        let (ps, rec) = setup(8, 3, 4, &[1, 4]);
        let obs: HashMap<_, _> = [
            (ps[1], Observed::Live { at: now }),
            (ps[4], Observed::Live { at: now }),
        ]
        .into();
        let g = Duration::from_secs(60);
        let p = plan_all(&rec, &ps[1], &obs, &ps, now, g);
        assert!(p.acting);
        assert_eq!(p.place, vec![ps[0]], "the closest free candidate");
        assert_eq!(
            p.spares,
            vec![ps[2], ps[3], ps[5], ps[6], ps[7]],
            "then the rest in order of distance, holders left out"
        );
        assert_eq!(p.state(3), RootState::Repairing);
        // The other holder does not act.
        assert!(!plan_all(&rec, &ps[4], &obs, &ps, now, g).acting);
        // A refusal moves placement on to the next closest.
        let refused = HashSet::from([ps[0]]);
        let p = plan(&rec, &ps[1], &obs, &ps, &refused, now, g);
        assert_eq!(p.place, vec![ps[2]]);
    }

    #[test]
    fn suspects_wait_for_the_grace_period_then_are_replaced() {
        let t0 = Instant::now();
        let (ps, rec) = setup(6, 3, 4, &[0, 1, 2]);
        let g = Duration::from_secs(30);
        let mut obs: HashMap<_, _> = [
            (ps[0], Observed::Live { at: t0 }),
            (ps[1], Observed::Failing { since: t0 }),
            (ps[2], Observed::Live { at: t0 }),
        ]
        .into();
        let p = plan_all(&rec, &ps[0], &obs, &ps, t0 + Duration::from_secs(10), g);
        assert!(p.place.is_empty(), "within grace nothing moves");
        assert_eq!(p.suspect, vec![ps[1]]);
        let p = plan_all(&rec, &ps[0], &obs, &ps, t0 + g, g);
        assert_eq!(p.lost, vec![ps[1]]);
        assert_eq!(p.place, vec![ps[3]]);
        assert_eq!(p.state(3), RootState::Repairing);
        assert!(p.forget.is_empty(), "kept until its replacement is live");
        // Once the replacement is live the lost holder is forgotten.
        let mut placed = rec.clone();
        placed.holders.insert(ps[3]);
        let mut obs2 = obs.clone();
        obs2.insert(ps[3], Observed::Live { at: t0 + g });
        let p = plan_all(&placed, &ps[0], &obs2, &ps, t0 + g, g);
        assert_eq!(p.forget, vec![ps[1]]);
        assert!(p.place.is_empty());
        // When the acting holder itself is gone, the next closest live acts.
        obs.insert(ps[0], Observed::Failing { since: t0 });
        let p = plan_all(&rec, &ps[2], &obs, &ps, t0 + g, g);
        assert!(p.acting);
        assert_eq!(p.place.len(), 2);
    }

    #[test]
    fn the_last_copy_up_does_not_wait_for_the_grace_period() {
        let t0 = Instant::now();
        let (ps, rec) = setup(8, 3, 4, &[0, 1, 2]);
        let g = Duration::from_secs(30);
        let now = t0 + Duration::from_secs(1);
        let obs: HashMap<_, _> = [
            (ps[0], Observed::Live { at: now }),
            (ps[1], Observed::Failing { since: t0 }),
            (ps[2], Observed::Failing { since: t0 }),
        ]
        .into();
        let p = plan_all(&rec, &ps[0], &obs, &ps, now, g);
        assert_eq!(p.suspect.len(), 2);
        assert!(p.lost.is_empty());
        assert_eq!(p.place.len(), 2, "two copies placed within the grace");
        // A second copy up (here one still fetching): suspects count again.
        let mut placed = rec.clone();
        placed.holders.insert(p.place[0]);
        let mut obs2 = obs.clone();
        obs2.insert(
            p.place[0],
            Observed::Pinning {
                since: now,
                seen: now,
            },
        );
        let p = plan_all(&placed, &ps[0], &obs2, &ps, now, g);
        assert!(p.place.is_empty(), "{p:?}");
        // The suspects return: five live, trimmed back to the maximum.
        let mut all = placed.clone();
        all.holders.insert(ps[5]);
        let obs3: HashMap<_, _> = all
            .holders
            .iter()
            .map(|h| (*h, Observed::Live { at: now }))
            .collect();
        let p = plan_all(&all, &p.live[0], &obs3, &ps, now, g);
        assert_eq!(p.trim.len(), all.holders.len() - 4);
    }

    #[test]
    fn a_holder_still_fetching_counts_while_it_answers() {
        let t0 = Instant::now();
        let (ps, rec) = setup(6, 2, 2, &[0, 1]);
        let g = Duration::from_secs(30);
        let later = t0 + 4 * g;
        let mut obs: HashMap<_, _> = [
            (ps[0], Observed::Live { at: later }),
            // Placed long ago, said "pinning" at the last probe.
            (
                ps[1],
                Observed::Pinning {
                    since: t0,
                    seen: later,
                },
            ),
        ]
        .into();
        let p = plan_all(&rec, &ps[0], &obs, &ps, later, g);
        assert_eq!(p.pinning, vec![ps[1]]);
        assert!(p.place.is_empty(), "a large DAG may take long to fetch");
        // Silent for the grace period: lost, replaced.
        obs.insert(
            ps[1],
            Observed::Pinning {
                since: t0,
                seen: t0 + g,
            },
        );
        let p = plan_all(&rec, &ps[0], &obs, &ps, later, g);
        assert_eq!(p.lost, vec![ps[1]]);
        assert_eq!(p.place.len(), 1);
    }

    #[test]
    fn returning_holders_are_trimmed_back_to_max_farthest_first() {
        let now = Instant::now();
        let (ps, mut rec) = setup(6, 3, 4, &[0, 1, 2, 3, 4, 5]);
        let obs: HashMap<_, _> = ps
            .iter()
            .map(|p| (*p, Observed::Live { at: now }))
            .collect();
        let g = Duration::from_secs(1);
        let p = plan_all(&rec, &ps[0], &obs, &ps, now, g);
        assert_eq!(p.trim, vec![ps[4], ps[5]]);
        assert!(p.place.is_empty());
        assert_eq!(p.state(3), RootState::Ok);
        // A tombstone plans nothing.
        rec.removed = true;
        let p = plan_all(&rec, &ps[0], &obs, &ps, now, g);
        assert_eq!(p, RepairPlan::default());
    }
}

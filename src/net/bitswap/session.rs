//! The fetching side of Bitswap as a plain state machine: one session per
//! `get`, asking several peers at once.
//!
//! For each wanted CID the session first sends want-have (with
//! send-dont-have) to every candidate peer, then want-block to the peer
//! that said Have with the fewest blocks in flight — so the blocks of one
//! file spread over every peer that has them. Once a peer has shown it holds
//! blocks of this session (a Have or a block), later wants go to it as
//! want-block at once, saving a round trip; a DontHave or a timeout sends
//! the want back to probing every other peer. A want-block that takes longer
//! than the timeout, or whose peer leaves, moves to another peer that has
//! the block. A peer that sends a block nobody asked it for is reported as
//! misbehaving and not asked again in this session.
//!
//! No I/O and no clock: callers pass `now` and carry out the [`Action`]s.
//! Peers are any `Clone + Eq + Hash` type, so tests and netsim drive it
//! without libp2p.

use super::message::{Message, Presence, WantEntry, WantType};
use crate::block::{Block, Cid};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::hash::Hash;
use std::time::{Duration, Instant};

/// Tuning of a session.
#[derive(Clone, Copy, Debug)]
pub struct SessionConfig {
    /// Want-blocks outstanding at one peer at a time.
    pub max_in_flight_per_peer: usize,
    /// Want-blocks outstanding in the whole session: more providers split
    /// this rather than multiply it (what is in flight is memory the
    /// receiver holds, in yamux windows and frame buffers).
    pub max_in_flight: usize,
    /// How long a want-block may take before another peer is tried.
    pub block_timeout: Duration,
}

impl Default for SessionConfig {
    fn default() -> Self {
        SessionConfig {
            max_in_flight_per_peer: 128,
            max_in_flight: 128,
            block_timeout: Duration::from_secs(5),
        }
    }
}

/// What the caller must do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action<P> {
    /// Send this message to this peer.
    Send(P, Message),
    /// A wanted block arrived (its CID is the hash of its bytes).
    Received(Block),
}

#[derive(Clone, Debug)]
enum State<P> {
    /// Not asked anywhere yet (or every asked peer left).
    New,
    /// Want-have sent to these peers.
    Probing,
    /// Want-block sent to this peer at this time.
    Fetching(P, Instant),
}

struct Want<P> {
    cid: Cid,
    state: State<P>,
    /// Peers that said Have.
    haves: Vec<P>,
    /// Peers that said DontHave, timed out, or left.
    excluded: HashSet<P>,
    /// Peers asked (want-have or want-block) for this CID.
    asked: HashSet<P>,
    /// When want-haves last went out for it.
    probed_at: Option<Instant>,
}

impl<P: Clone + Eq + Hash> Want<P> {
    /// Want-haves to every peer not yet asked for it nor excluded (only
    /// those not proven yet, with `unproven_only`); the want is probing if
    /// any was asked.
    fn probe(
        &mut self,
        peers: &HashMap<P, PeerState>,
        unproven_only: bool,
        now: Instant,
        out: &mut HashMap<P, Message>,
    ) {
        let mut asked_any = false;
        for (peer, state) in peers {
            let skip = unproven_only && state.proven;
            if skip || self.asked.contains(peer) || self.excluded.contains(peer) {
                continue;
            }
            self.asked.insert(peer.clone());
            let have = entry(self.cid, WantType::Have, false);
            out.entry(peer.clone()).or_default().wantlist.push(have);
            asked_any = true;
        }
        if asked_any {
            self.state = State::Probing;
            self.probed_at = Some(now);
        }
    }

    /// A want-block to `peer`, counted in its and the session's (`total`)
    /// requests in flight.
    fn fetch_from(
        &mut self,
        peer: P,
        peers: &mut HashMap<P, PeerState>,
        total: &mut usize,
        now: Instant,
        out: &mut HashMap<P, Message>,
    ) {
        if let Some(ps) = peers.get_mut(&peer) {
            ps.in_flight += 1;
            *total += 1;
        }
        self.state = State::Fetching(peer.clone(), now);
        self.asked.insert(peer.clone());
        let block = entry(self.cid, WantType::Block, false);
        out.entry(peer).or_default().wantlist.push(block);
    }
}

#[derive(Default)]
struct PeerState {
    in_flight: usize,
    /// Said Have or sent a block in this session.
    proven: bool,
}

/// One fetch session.
pub struct Session<P: Clone + Eq + Hash> {
    config: SessionConfig,
    /// In the order they were wanted, so earlier wants (the next bytes of
    /// a stream) are sent first.
    wants: BTreeMap<u64, Want<P>>,
    /// Multihash bytes → sequence number (peers may answer under another
    /// codec, so blocks are matched by multihash).
    index: HashMap<Vec<u8>, u64>,
    next_seq: u64,
    peers: HashMap<P, PeerState>,
    /// Peers that sent a block nobody asked them for: never asked again in
    /// this session, whoever names them.
    banned: HashSet<P>,
}

fn key(cid: &Cid) -> Vec<u8> {
    cid.hash().to_bytes()
}

/// A want-list entry as sessions send them (a want asks to be told
/// DontHave).
pub(super) fn entry(cid: Cid, want_type: WantType, cancel: bool) -> WantEntry {
    WantEntry {
        cid,
        priority: 1,
        cancel,
        want_type,
        send_dont_have: !cancel,
    }
}

impl<P: Clone + Eq + Hash> Session<P> {
    /// A session with nothing wanted and no peers yet.
    pub fn new(config: SessionConfig) -> Self {
        Session {
            config,
            wants: BTreeMap::new(),
            index: HashMap::new(),
            next_seq: 0,
            peers: HashMap::new(),
            banned: HashSet::new(),
        }
    }

    /// Blocks still wanted.
    pub fn pending(&self) -> usize {
        self.wants.len()
    }

    /// Whether `cid` is still wanted.
    pub fn is_wanted(&self, cid: &Cid) -> bool {
        self.index.contains_key(&key(cid))
    }

    /// The earliest CID still wanted.
    pub fn first_want(&self) -> Option<Cid> {
        self.wants.values().next().map(|w| w.cid)
    }

    /// Stops wanting `cid`; returns the cancels for the peers asked.
    pub fn cancel(&mut self, cid: &Cid) -> Vec<Action<P>> {
        let Some(want) = self.remove_want(&key(cid)) else {
            return Vec::new();
        };
        if let State::Fetching(p, _) = &want.state {
            if let Some(ps) = self.peers.get_mut(p) {
                ps.in_flight = ps.in_flight.saturating_sub(1);
            }
        }
        let mut out: Vec<Action<P>> = Vec::new();
        for peer in &want.asked {
            out.push(Action::Send(
                peer.clone(),
                Message {
                    wantlist: vec![entry(want.cid, WantType::Block, true)],
                    ..Message::default()
                },
            ));
        }
        out
    }

    /// A wanted CID nobody can be asked for: every known peer said
    /// DontHave, timed out or left, and none is being asked. The caller
    /// should look for more peers (e.g. DHT providers).
    pub fn unserved(&self) -> Option<Cid> {
        self.wants.values().find_map(|w| {
            let waiting = matches!(w.state, State::Fetching(..))
                || !w.haves.is_empty()
                || self
                    .peers
                    .keys()
                    .any(|p| !w.excluded.contains(p) && !w.asked.contains(p));
            let probing_someone = matches!(w.state, State::Probing)
                && w.asked
                    .iter()
                    .any(|p| self.peers.contains_key(p) && !w.excluded.contains(p));
            (!waiting && !probing_someone).then_some(w.cid)
        })
    }

    /// Peers currently usable.
    pub fn peers(&self) -> usize {
        self.peers.len()
    }

    /// Asks for a block; the caller bounds how many are wanted at once.
    pub fn want(&mut self, cid: Cid) {
        let k = key(&cid);
        if self.index.contains_key(&k) {
            return;
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        self.index.insert(k, seq);
        self.wants.insert(
            seq,
            Want {
                cid,
                state: State::New,
                haves: Vec::new(),
                excluded: HashSet::new(),
                asked: HashSet::new(),
                probed_at: None,
            },
        );
    }

    fn remove_want(&mut self, k: &[u8]) -> Option<Want<P>> {
        let seq = self.index.remove(k)?;
        self.wants.remove(&seq)
    }

    /// A peer that may have the blocks (connected or a provider).
    pub fn add_peer(&mut self, peer: P) {
        if self.banned.contains(&peer) {
            return;
        }
        self.peers.entry(peer).or_default();
    }

    /// A peer misbehaved (sent a block nobody asked it for): it is dropped
    /// and not asked again in this session.
    pub fn ban(&mut self, peer: &P) {
        self.remove_peer(peer);
        self.banned.insert(peer.clone());
    }

    /// Gives `peer` another chance at every want not being fetched: it is
    /// asked again as if new (a provider the DHT named, or a retry round
    /// after messages may have been lost).
    pub fn reconsider(&mut self, peer: &P) {
        if self.banned.contains(peer) {
            return;
        }
        self.peers.entry(peer.clone()).or_default();
        for w in self.wants.values_mut() {
            if matches!(w.state, State::Fetching(..)) {
                continue;
            }
            w.excluded.remove(peer);
            w.asked.remove(peer);
        }
    }

    /// Every known peer gets another chance (see [`reconsider`](Self::reconsider)).
    pub fn retry_all(&mut self) {
        let peers: Vec<P> = self.peers.keys().cloned().collect();
        for p in &peers {
            self.reconsider(p);
        }
    }

    /// A peer disconnected: its want-blocks go elsewhere on the next poll.
    pub fn remove_peer(&mut self, peer: &P) {
        self.peers.remove(peer);
        for w in self.wants.values_mut() {
            w.haves.retain(|p| p != peer);
            w.excluded.insert(peer.clone());
            if matches!(&w.state, State::Fetching(p, _) if p == peer) {
                w.state = State::Probing;
            }
        }
    }

    /// Handles a message from `peer`.
    pub fn on_message(&mut self, peer: &P, msg: &Message) -> Vec<Action<P>> {
        let mut actions = Vec::new();
        if self.banned.contains(peer) {
            return actions;
        }
        // A peer that talks to us is reachable, whatever we heard before.
        self.peers.entry(peer.clone()).or_default();
        for block in &msg.blocks {
            let k = key(block.cid());
            let Some(want) = self.remove_want(&k) else {
                // Not wanted here: another session on this node may have
                // asked this peer for it, or it is a late duplicate. The
                // engine judges blocks nobody asked for (`solicited`).
                continue;
            };
            if let State::Fetching(p, _) = &want.state {
                if let Some(ps) = self.peers.get_mut(p) {
                    ps.in_flight = ps.in_flight.saturating_sub(1);
                }
            }
            if let Some(ps) = self.peers.get_mut(peer) {
                ps.proven = true;
            }
            // Tell everyone else asked for it to stop.
            for other in want.asked.iter().filter(|p| *p != peer) {
                let cancel = Message {
                    wantlist: vec![entry(want.cid, WantType::Block, true)],
                    ..Message::default()
                };
                actions.push(Action::Send(other.clone(), cancel));
            }
            // Deliver under the CID asked for (the bytes are the same).
            actions.push(Action::Received(Block::new_unchecked(
                want.cid,
                block.data().clone(),
            )));
        }
        for (cid, presence) in &msg.presences {
            let Some(want) = self
                .index
                .get(&key(cid))
                .and_then(|seq| self.wants.get_mut(seq))
            else {
                // A Have for a block that came from elsewhere meanwhile
                // still shows the peer holds this session's content.
                if *presence == Presence::Have {
                    if let Some(ps) = self.peers.get_mut(peer) {
                        ps.proven = true;
                    }
                }
                continue;
            };
            match presence {
                Presence::Have => {
                    if !want.haves.contains(peer) {
                        want.haves.push(peer.clone());
                    }
                    if let Some(ps) = self.peers.get_mut(peer) {
                        ps.proven = true;
                    }
                }
                Presence::DontHave => {
                    want.haves.retain(|p| p != peer);
                    want.excluded.insert(peer.clone());
                    if matches!(&want.state, State::Fetching(p, _) if p == peer) {
                        if let Some(ps) = self.peers.get_mut(peer) {
                            ps.in_flight = ps.in_flight.saturating_sub(1);
                        }
                        want.state = State::Probing;
                    }
                }
            }
        }
        actions
    }

    /// Advances timers and sends what should be sent now.
    pub fn poll(&mut self, now: Instant) -> Vec<Action<P>> {
        let mut out: HashMap<P, Message> = HashMap::new();
        let timeout = self.config.block_timeout;
        let max = self.config.max_in_flight_per_peer;
        let mut total: usize = self.peers.values().map(|s| s.in_flight).sum();
        for want in self.wants.values_mut() {
            // A want-block that took too long: exclude that peer for it.
            if let State::Fetching(p, since) = &want.state {
                if now.saturating_duration_since(*since) >= timeout {
                    let p = p.clone();
                    if let Some(ps) = self.peers.get_mut(&p) {
                        ps.in_flight = ps.in_flight.saturating_sub(1);
                        total = total.saturating_sub(1);
                    }
                    want.haves.retain(|x| x != &p);
                    want.excluded.insert(p);
                    want.state = State::Probing;
                }
            }
            if matches!(want.state, State::Fetching(..)) {
                continue;
            }
            // Peers that answered neither Have nor DontHave in time count
            // as not having it (a lost message, a peer that ignores us).
            if let Some(at) = want.probed_at {
                if want.haves.is_empty() && now.saturating_duration_since(at) >= timeout {
                    want.probed_at = None;
                    for p in &want.asked {
                        want.excluded.insert(p.clone());
                    }
                }
            }
            // Want-block to the least busy peer that said Have.
            let room = total < self.config.max_in_flight;
            let best = want
                .haves
                .iter()
                .filter(|p| room && self.peers.get(*p).is_some_and(|s| s.in_flight < max))
                .min_by_key(|p| self.peers.get(*p).map_or(usize::MAX, |s| s.in_flight))
                .cloned();
            if let Some(peer) = best {
                want.fetch_from(peer, &mut self.peers, &mut total, now, &mut out);
                continue;
            }
            // A new want goes straight to the least busy proven peer as a
            // want-block; if that fails it comes back here as probing.
            if matches!(want.state, State::New) {
                let proven = self
                    .peers
                    .iter()
                    .filter(|(p, s)| {
                        room && s.proven && s.in_flight < max && !want.excluded.contains(*p)
                    })
                    .min_by_key(|(_, s)| s.in_flight)
                    .map(|(p, _)| p.clone());
                let any_proven = self
                    .peers
                    .iter()
                    .any(|(p, s)| s.proven && !want.excluded.contains(p));
                if proven.is_none() && any_proven {
                    // Proven peers are busy: ask the peers not proven yet
                    // whether they have it (so a file spreads over every
                    // provider, not only the first to answer), or wait for
                    // a proven one when there are none.
                    want.probe(&self.peers, true, now, &mut out);
                    continue;
                }
                if let Some(peer) = proven {
                    want.fetch_from(peer, &mut self.peers, &mut total, now, &mut out);
                    continue;
                }
            }
            // Want-have to every peer not yet asked and not excluded.
            want.probe(&self.peers, false, now, &mut out);
        }
        out.into_iter().map(|(p, m)| Action::Send(p, m)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block(i: u32) -> Block {
        crate::net::bitswap::test_block(i, 8)
    }

    /// (peer, [(cid, want type, cancel)]) of every Send, by peer.
    type Sends = Vec<(u8, Vec<(Cid, WantType, bool)>)>;

    fn sends(actions: &[Action<u8>]) -> Sends {
        let mut v: Vec<_> = actions
            .iter()
            .filter_map(|a| match a {
                Action::Send(p, m) => Some((
                    *p,
                    m.wantlist
                        .iter()
                        .map(|e| (e.cid, e.want_type, e.cancel))
                        .collect(),
                )),
                _ => None,
            })
            .collect();
        v.sort_by_key(|s| s.0);
        v
    }

    fn have(cid: Cid) -> Message {
        Message {
            presences: vec![(cid, Presence::Have)],
            ..Message::default()
        }
    }

    #[test]
    fn want_have_then_want_block_spread_over_peers() {
        let now = Instant::now();
        let mut s = Session::new(SessionConfig::default());
        let blocks: Vec<Block> = (0..4).map(block).collect();
        for b in &blocks {
            s.want(*b.cid());
        }
        s.add_peer(1u8);
        s.add_peer(2u8);
        let first = s.poll(now);
        assert_eq!(sends(&first).len(), 2, "want-have to both peers");
        assert!(sends(&first)
            .iter()
            .all(|(_, w)| w.len() == 4 && w.iter().all(|e| e.1 == WantType::Have)));
        // Both have everything: want-blocks split between them.
        for b in &blocks {
            s.on_message(&1, &have(*b.cid()));
            s.on_message(&2, &have(*b.cid()));
        }
        let second = sends(&s.poll(now));
        assert_eq!(second.len(), 2);
        assert_eq!(second[0].1.len(), 2);
        assert_eq!(second[1].1.len(), 2);
        // Deliveries complete the session and cancel the other peer's wants.
        for (peer, wants) in &second {
            for (cid, _, _) in wants {
                let b = blocks.iter().find(|b| b.cid() == cid).unwrap().clone();
                let acts = s.on_message(
                    peer,
                    &Message {
                        blocks: vec![b.clone()],
                        ..Message::default()
                    },
                );
                assert!(acts.contains(&Action::Received(b)));
                assert!(acts
                    .iter()
                    .any(|a| matches!(a, Action::Send(p, m) if p != peer && m.wantlist[0].cancel)));
            }
        }
        assert_eq!(s.pending(), 0);
    }

    #[test]
    fn slow_or_departed_peers_are_replaced() {
        let now = Instant::now();
        let cfg = SessionConfig {
            block_timeout: Duration::from_secs(1),
            ..SessionConfig::default()
        };
        let mut s = Session::new(cfg);
        let b = block(7);
        s.want(*b.cid());
        s.add_peer(1u8);
        s.add_peer(2u8);
        s.poll(now);
        s.on_message(&1, &have(*b.cid()));
        s.on_message(&2, &have(*b.cid()));
        let asked = sends(&s.poll(now));
        assert_eq!(asked.len(), 1);
        let slow = asked[0].0;
        // Nothing for a second: the other peer is asked.
        let retry = sends(&s.poll(now + Duration::from_secs(1)));
        assert_eq!(retry.len(), 1);
        assert_ne!(retry[0].0, slow);
        assert_eq!(retry[0].1[0].1, WantType::Block);
        // That one leaves: the want goes back to probing; a newcomer is asked.
        s.remove_peer(&retry[0].0);
        s.add_peer(3u8);
        let again = sends(&s.poll(now + Duration::from_secs(1)));
        assert_eq!(again, vec![(3u8, vec![(*b.cid(), WantType::Have, false)])]);
    }

    #[test]
    fn blocks_this_session_did_not_want_are_ignored() {
        let now = Instant::now();
        let mut s = Session::new(SessionConfig::default());
        let wanted = block(1);
        s.want(*wanted.cid());
        s.add_peer(9u8);
        s.poll(now);
        // Another session's block (or a forged one: the engine judges).
        let other = Message {
            blocks: vec![block(666)],
            ..Message::default()
        };
        assert!(s.on_message(&9, &other).is_empty());
        assert_eq!(s.peers(), 1);
        assert_eq!(s.pending(), 1);
    }

    #[test]
    fn wants_beyond_a_busy_proven_peer_probe_the_others() {
        let now = Instant::now();
        let mut s = Session::new(SessionConfig {
            max_in_flight_per_peer: 2,
            ..SessionConfig::default()
        });
        let root = block(0);
        s.want(*root.cid());
        s.add_peer(1u8);
        s.add_peer(2u8);
        s.poll(now);
        // Peer 1 answers first with the block; peer 2's Have comes after
        // the want is gone and still counts.
        s.on_message(
            &1,
            &Message {
                blocks: vec![root.clone()],
                ..Message::default()
            },
        );
        s.on_message(&2, &have(*root.cid()));
        let next: Vec<Block> = (1..7).map(block).collect();
        for b in &next {
            s.want(*b.cid());
        }
        let sent = sends(&s.poll(now));
        // Both proven: want-blocks split between them, two each.
        assert_eq!(sent.len(), 2, "{sent:?}");
        assert!(sent
            .iter()
            .all(|(_, w)| w.len() == 2 && w.iter().all(|e| e.1 == WantType::Block)));

        // A third peer, never proven: the wants the busy proven peers
        // cannot take go to it as want-haves.
        s.add_peer(3u8);
        let sent = sends(&s.poll(now));
        assert_eq!(sent.len(), 1, "{sent:?}");
        assert_eq!(sent[0].0, 3);
        assert_eq!(sent[0].1.len(), 2);
        assert!(sent[0].1.iter().all(|e| e.1 == WantType::Have));
    }

    #[test]
    fn providers_split_the_session_window_rather_than_multiply_it() {
        let now = Instant::now();
        let mut s = Session::new(SessionConfig {
            max_in_flight_per_peer: 4,
            max_in_flight: 6,
            ..SessionConfig::default()
        });
        let root = block(0);
        s.want(*root.cid());
        for p in 1..=3u8 {
            s.add_peer(p);
        }
        s.poll(now);
        for p in 1..=3u8 {
            s.on_message(&p, &have(*root.cid()));
        }
        s.on_message(
            &1,
            &Message {
                blocks: vec![root.clone()],
                ..Message::default()
            },
        );
        let next: Vec<Block> = (1..20).map(block).collect();
        for b in &next {
            s.want(*b.cid());
        }
        for p in 2..=3u8 {
            s.on_message(
                &p,
                &Message {
                    presences: next.iter().map(|b| (*b.cid(), Presence::Have)).collect(),
                    ..Message::default()
                },
            );
        }
        s.on_message(
            &1,
            &Message {
                presences: next.iter().map(|b| (*b.cid(), Presence::Have)).collect(),
                ..Message::default()
            },
        );
        let blocks_asked = |sent: &Sends| -> Vec<usize> {
            sent.iter()
                .map(|(_, w)| w.iter().filter(|e| e.1 == WantType::Block).count())
                .collect()
        };
        let sent = sends(&s.poll(now));
        let asked = blocks_asked(&sent);
        // Six in flight in all (not 3 × 4), two at each provider.
        assert_eq!(asked.iter().sum::<usize>(), 6, "{sent:?}");
        assert!(asked.iter().all(|n| *n == 2), "{sent:?}");
        // One arrives: one more want-block, no more.
        let got = sent
            .iter()
            .find_map(|(p, w)| w.iter().find(|e| e.1 == WantType::Block).map(|e| (*p, e.0)))
            .expect("a want-block");
        let b = next
            .iter()
            .find(|b| *b.cid() == got.1)
            .expect("a wanted block");
        s.on_message(
            &got.0,
            &Message {
                blocks: vec![b.clone()],
                ..Message::default()
            },
        );
        assert_eq!(blocks_asked(&sends(&s.poll(now))).iter().sum::<usize>(), 1);
    }

    #[test]
    fn a_banned_peer_is_not_asked_again_in_the_session() {
        let now = Instant::now();
        let mut s = Session::new(SessionConfig::default());
        let b = block(1);
        s.want(*b.cid());
        s.add_peer(1u8);
        s.add_peer(2u8);
        s.poll(now);
        s.ban(&1);
        // Named again (connected anew, a DHT provider), or talking to us:
        // still not asked, and what it says is not heard.
        s.add_peer(1);
        s.reconsider(&1);
        assert!(s.on_message(&1, &have(*b.cid())).is_empty());
        s.retry_all();
        let later = now + Duration::from_secs(60);
        let sent = sends(&s.poll(later));
        assert!(sent.iter().all(|(p, _)| *p == 2), "{sent:?}");
        assert!(!sent.is_empty());
        assert_eq!(s.peers(), 1);
    }

    #[test]
    fn proven_peers_get_want_blocks_at_once_in_want_order() {
        let now = Instant::now();
        let mut s = Session::new(SessionConfig::default());
        let root = block(0);
        s.want(*root.cid());
        s.add_peer(1u8);
        s.add_peer(2u8);
        s.poll(now);
        s.on_message(&1, &have(*root.cid()));
        s.on_message(
            &1,
            &Message {
                blocks: vec![root],
                ..Message::default()
            },
        );
        // Peer 1 proved itself: the next wants go to it as want-blocks,
        // in the order wanted, and peer 2 is not bothered.
        let next: Vec<Block> = (1..6).map(block).collect();
        for b in &next {
            s.want(*b.cid());
        }
        let sent = sends(&s.poll(now));
        assert_eq!(sent.len(), 1);
        assert_eq!(sent[0].0, 1);
        let order: Vec<Cid> = sent[0].1.iter().map(|e| e.0).collect();
        assert_eq!(order, next.iter().map(|b| *b.cid()).collect::<Vec<_>>());
        assert!(sent[0].1.iter().all(|e| e.1 == WantType::Block));
        // A DontHave sends that want to peer 2 as a want-have.
        let dont = Message {
            presences: vec![(*next[0].cid(), Presence::DontHave)],
            ..Message::default()
        };
        s.on_message(&1, &dont);
        let sent = sends(&s.poll(now));
        assert_eq!(
            sent,
            vec![(2u8, vec![(*next[0].cid(), WantType::Have, false)])]
        );
        // Cancelling tells both peers asked.
        let cancels = sends(&s.cancel(next[0].cid()));
        assert_eq!(cancels.len(), 2);
        assert!(cancels.iter().all(|(_, w)| w[0].2));
        assert!(!s.is_wanted(next[0].cid()));
    }

    #[test]
    fn a_want_nobody_can_serve_is_reported() {
        let now = Instant::now();
        let mut s = Session::new(SessionConfig::default());
        let b = block(3);
        s.want(*b.cid());
        assert_eq!(s.unserved(), Some(*b.cid()), "no peers at all");
        s.add_peer(1u8);
        assert_eq!(s.unserved(), None, "peer 1 can still be asked");
        s.poll(now);
        assert_eq!(s.unserved(), None, "peer 1 is being asked");
        let dont = Message {
            presences: vec![(*b.cid(), Presence::DontHave)],
            ..Message::default()
        };
        s.on_message(&1, &dont);
        assert_eq!(s.unserved(), Some(*b.cid()));
        s.add_peer(2u8);
        assert_eq!(s.unserved(), None);
    }

    #[test]
    fn silent_peers_time_out_and_the_want_becomes_unserved() {
        let now = Instant::now();
        let cfg = SessionConfig {
            block_timeout: Duration::from_secs(1),
            ..SessionConfig::default()
        };
        let mut s = Session::new(cfg);
        let b = block(4);
        s.want(*b.cid());
        s.add_peer(1u8);
        assert_eq!(sends(&s.poll(now)).len(), 1);
        assert_eq!(s.unserved(), None);
        // No answer at all within the timeout.
        assert!(sends(&s.poll(now + Duration::from_secs(1))).is_empty());
        assert_eq!(s.unserved(), Some(*b.cid()));
    }
}

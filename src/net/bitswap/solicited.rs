//! Which blocks each peer was asked for, node-wide: tells a forged or
//! unsolicited block (its sender is banned) from one another session asked
//! for, or a late duplicate. A plain state machine the engine drives.

use super::message::Message;
use crate::block::{Block, Cid};
use std::collections::{HashMap, HashSet};

fn key(cid: &Cid) -> Vec<u8> {
    cid.hash().to_bytes()
}

/// Node-wide record of which blocks each peer was asked for (by any
/// session), to tell a forged or unsolicited block (the peer is banned)
/// from one another session asked for or a late duplicate.
///
/// Bounded per peer: at most [`Solicited::MAX_PER_PEER`] outstanding asks
/// (the oldest are forgotten first) and [`Solicited::TOLERATED`] keys whose
/// blocks are accepted without being asked now: received already (a
/// duplicate), cancelled (the block may have crossed the cancel), or
/// forgotten for room. A peer's record goes with its last connection.
#[derive(Debug)]
pub struct Solicited<P: std::hash::Hash + Eq> {
    asked: HashMap<P, PeerAsks>,
}

#[derive(Debug, Default)]
struct PeerAsks {
    /// Key → the sequence number of its latest ask.
    wanted: HashMap<Vec<u8>, u64>,
    /// Asks in order, for forgetting the oldest; entries whose sequence
    /// number no longer matches `wanted` are stale and skipped.
    order: std::collections::VecDeque<(u64, Vec<u8>)>,
    next: u64,
    tolerated: HashSet<Vec<u8>>,
    tolerated_order: std::collections::VecDeque<Vec<u8>>,
}

impl PeerAsks {
    fn ask(&mut self, k: Vec<u8>, max: usize) {
        let seq = self.next;
        self.next += 1;
        self.wanted.insert(k.clone(), seq);
        self.order.push_back((seq, k));
        while self.wanted.len() > max {
            let Some((seq, k)) = self.order.pop_front() else {
                break;
            };
            if self.wanted.get(&k) == Some(&seq) {
                self.wanted.remove(&k);
                self.tolerate(k);
            }
        }
        if self.order.len() > 2 * max.max(16) {
            let wanted = &self.wanted;
            self.order.retain(|(seq, k)| wanted.get(k) == Some(seq));
        }
    }

    fn tolerate(&mut self, k: Vec<u8>) {
        if !self.tolerated.insert(k.clone()) {
            return;
        }
        self.tolerated_order.push_back(k);
        while self.tolerated_order.len() > Solicited::<u8>::TOLERATED {
            if let Some(old) = self.tolerated_order.pop_front() {
                self.tolerated.remove(&old);
            }
        }
    }

    fn is_empty(&self) -> bool {
        self.wanted.is_empty() && self.tolerated.is_empty()
    }
}

impl<P: std::hash::Hash + Eq> Default for Solicited<P> {
    fn default() -> Self {
        Solicited {
            asked: HashMap::new(),
        }
    }
}

impl<P: std::hash::Hash + Eq + Clone> Solicited<P> {
    /// Outstanding asks remembered per peer.
    pub const MAX_PER_PEER: usize = 65_536;
    /// Keys per peer whose blocks are accepted without a current ask.
    pub const TOLERATED: usize = 1024;
    const MAX_PEERS: usize = 4096;

    /// Notes the wants (and cancels) in a message sent to `peer`.
    pub fn on_send(&mut self, peer: &P, msg: &Message) {
        if msg.wantlist.is_empty() {
            return;
        }
        if !self.asked.contains_key(peer) {
            if msg.wantlist.iter().all(|w| w.cancel) {
                return;
            }
            if self.asked.len() >= Self::MAX_PEERS {
                self.asked.retain(|_, a| !a.wanted.is_empty());
            }
        }
        let asks = self.asked.entry(peer.clone()).or_default();
        for w in &msg.wantlist {
            let k = key(&w.cid);
            if w.cancel {
                if asks.wanted.remove(&k).is_some() {
                    asks.tolerate(k);
                }
            } else {
                asks.ask(k, Self::MAX_PER_PEER);
            }
        }
    }

    /// Whether every block in a message from `peer` was asked of it (or is
    /// tolerated); false, at the first that was not, means the peer
    /// misbehaved.
    pub fn on_blocks(&mut self, peer: &P, blocks: &[Block]) -> bool {
        if blocks.is_empty() {
            return true;
        }
        let Some(asks) = self.asked.get_mut(peer) else {
            return false;
        };
        for b in blocks {
            let k = key(b.cid());
            if asks.wanted.remove(&k).is_some() {
                asks.tolerate(k);
            } else if !asks.tolerated.contains(&k) {
                return false;
            }
        }
        true
    }

    /// The peer's last connection closed: its wants died with it (both
    /// sides drop them), so a block it sends on a later connection must
    /// have been asked again. Blocks of the old connection that are still
    /// being read stay acceptable (its newest asks are tolerated), and the
    /// record is dropped for good when room is needed.
    pub fn disconnected(&mut self, peer: &P) {
        let Some(asks) = self.asked.get_mut(peer) else {
            return;
        };
        let order = std::mem::take(&mut asks.order);
        let wanted = std::mem::take(&mut asks.wanted);
        for (seq, k) in order.into_iter().rev().take(Self::TOLERATED) {
            if wanted.get(&k) == Some(&seq) {
                asks.tolerate(k);
            }
        }
    }

    /// Peers with a record (for tests and bounds).
    pub fn peers(&self) -> usize {
        self.asked.values().filter(|a| !a.is_empty()).count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::bitswap::message::WantType;
    use crate::net::bitswap::session::entry;

    fn block(i: u32) -> Block {
        crate::net::bitswap::test_block(i, 8)
    }

    #[test]
    fn solicited_tracks_what_each_peer_was_asked() {
        let mut t = Solicited::default();
        let a = block(1);
        let b = block(2);
        let ask = Message {
            wantlist: vec![entry(*a.cid(), WantType::Block, false)],
            ..Message::default()
        };
        t.on_send(&7u8, &ask);
        assert!(t.on_blocks(&7, std::slice::from_ref(&a)), "asked");
        assert!(
            t.on_blocks(&7, std::slice::from_ref(&a)),
            "a late duplicate"
        );
        assert!(!t.on_blocks(&7, std::slice::from_ref(&b)), "never asked");
        assert!(
            !t.on_blocks(&8, std::slice::from_ref(&a)),
            "asked of another peer"
        );
        // A cancel does not make a block already on its way unsolicited.
        let cancel = Message {
            wantlist: vec![
                entry(*b.cid(), WantType::Have, false),
                entry(*b.cid(), WantType::Block, true),
            ],
            ..Message::default()
        };
        t.on_send(&7, &cancel);
        assert!(t.on_blocks(&7, std::slice::from_ref(&b)));
    }

    #[test]
    fn solicited_stays_bounded_and_strict_after_many_asks() {
        let mut t: Solicited<u8> = Solicited::default();
        // Far more asks than it keeps, as want-haves to a peer that never
        // sends those blocks would make over a long run.
        let n = Solicited::<u8>::MAX_PER_PEER + Solicited::<u8>::TOLERATED + 10;
        for chunk in (0..n as u32).collect::<Vec<_>>().chunks(1000) {
            let msg = Message {
                wantlist: chunk
                    .iter()
                    .map(|i| entry(*block(*i).cid(), WantType::Have, false))
                    .collect(),
                ..Message::default()
            };
            t.on_send(&7, &msg);
        }
        let asks = &t.asked[&7];
        assert_eq!(asks.wanted.len(), Solicited::<u8>::MAX_PER_PEER);
        assert!(asks.order.len() <= 2 * Solicited::<u8>::MAX_PER_PEER);
        assert_eq!(asks.tolerated.len(), Solicited::<u8>::TOLERATED);
        // The newest asks are still known, and a forgery is still caught:
        // no peer becomes exempt by being asked a lot.
        assert!(t.on_blocks(&7, &[block(n as u32 - 1)]));
        assert!(!t.on_blocks(&7, &[block(u32::MAX)]));
        // The oldest were forgotten without a trace; blocks after a
        // forgery in the same message are not looked at.
        assert!(!t.on_blocks(&7, &[block(0)]));
        assert!(!t.on_blocks(&7, &[block(u32::MAX), block(n as u32 - 2)]));
        assert!(t.on_blocks(&7, &[block(n as u32 - 2)]));
        // After a disconnect what was asked is no longer wanted, but blocks
        // still being read from the old connection are not forgeries.
        t.disconnected(&7);
        assert!(t.asked[&7].wanted.is_empty());
        assert!(t.on_blocks(&7, &[block(n as u32 - 3)]));
        assert!(!t.on_blocks(&7, &[block(u32::MAX - 1)]));
    }
}

//! The serving side of Bitswap as a plain state machine: what one peer
//! wants from us, and the messages that answer it.
//!
//! [`PeerLedger::receive`] takes a decoded message and answers what is
//! cheap at once: Have for want-have, DontHave when asked to say so. A
//! want-block for a block we hold joins the peer's ready queue, and
//! [`PeerLedger::serve`] reads blocks from that queue under a byte budget
//! (the room left in the peer's outbox), so a message naming the same
//! 2 MiB block a thousand times costs one read, and no message makes us
//! read more than the peer's send queue can hold. Wants we cannot serve
//! yet stay in the ledger (bounded) so that a block stored later can be
//! pushed with [`PeerLedger::on_new_block`]. No I/O of its own, no clock:
//! the network task owns the stream and calls these.

use super::message::{
    Message, Presence, WantEntry, WantType, MAX_BLOCKS_PER_MESSAGE, MAX_MESSAGE_BYTES,
    MAX_WANTLIST_ENTRIES,
};
use crate::block::{Block, Cid};
use crate::store::Store;
use std::collections::{BTreeMap, HashMap, VecDeque};

/// Bytes kept free in each reply for framing and presences.
const REPLY_HEADROOM_BYTES: usize = 64 * 1024;

/// Want-blocks we hold and have not sent yet, per peer at most.
pub const MAX_READY_WANTS: usize = MAX_WANTLIST_ENTRIES;

/// What one remote peer has asked us for and not yet received.
#[derive(Default)]
pub struct PeerLedger {
    /// Wants we cannot answer yet, keyed by CID bytes for a deterministic
    /// order.
    wants: BTreeMap<Vec<u8>, WantEntry>,
    /// Want-blocks for blocks we hold, in the order asked. `order` may
    /// hold keys no longer in `ready` (cancelled, or already served): they
    /// are skipped when reached.
    ready: HashMap<Vec<u8>, WantEntry>,
    order: VecDeque<Vec<u8>>,
}

/// Counts for metrics and tests.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReplyStats {
    pub blocks: u64,
    pub block_bytes: u64,
    pub haves: u64,
    pub dont_haves: u64,
    /// Wants dropped because the ledger was full.
    pub refused_wants: u64,
}

/// Packs blocks and presences into replies under the message size limit.
#[derive(Default)]
struct ReplyBuilder {
    done: Vec<Message>,
    current: Message,
    current_bytes: usize,
}

impl ReplyBuilder {
    fn room_for(&mut self, bytes: usize) {
        let full = self.current_bytes + bytes + REPLY_HEADROOM_BYTES > MAX_MESSAGE_BYTES
            || self.current.blocks.len() >= MAX_BLOCKS_PER_MESSAGE;
        if full && !self.current.is_empty() {
            self.done.push(std::mem::take(&mut self.current));
            self.current_bytes = 0;
        }
    }

    fn block(&mut self, block: Block) {
        let len = block.data().len() + 80;
        self.room_for(len);
        self.current_bytes += len;
        self.current.blocks.push(block);
    }

    fn presence(&mut self, cid: Cid, p: Presence) {
        self.room_for(80);
        self.current_bytes += 80;
        self.current.presences.push((cid, p));
    }

    fn finish(mut self) -> Vec<Message> {
        if !self.current.is_empty() {
            self.done.push(self.current);
        }
        self.done
    }
}

impl PeerLedger {
    /// Number of outstanding wants (waiting for a block, or ready to send).
    pub fn len(&self) -> usize {
        self.wants.len() + self.ready.len()
    }

    pub fn is_empty(&self) -> bool {
        self.wants.is_empty() && self.ready.is_empty()
    }

    /// Whether want-blocks wait for [`serve`](Self::serve).
    pub fn has_ready(&self) -> bool {
        !self.ready.is_empty()
    }

    /// Applies the peer's message: cancels, Haves and DontHaves at once
    /// (the returned messages carry only presences); want-blocks for blocks
    /// we hold wait for [`serve`](Self::serve).
    pub fn receive(&mut self, msg: &Message, store: &dyn Store) -> (Vec<Message>, ReplyStats) {
        if msg.full {
            self.wants.clear();
            self.ready.clear();
            self.order.clear();
        }
        let mut stats = ReplyStats::default();
        let mut reply = ReplyBuilder::default();
        for want in &msg.wantlist {
            let key = want.cid.to_bytes();
            if want.cancel {
                self.wants.remove(&key);
                self.ready.remove(&key);
                continue;
            }
            if self.ready.contains_key(&key) {
                // Asked again before we got to it: once is enough.
                continue;
            }
            let held = store.has(&want.cid).unwrap_or(false);
            match (want.want_type, held) {
                (WantType::Have, true) => {
                    reply.presence(want.cid, Presence::Have);
                    stats.haves += 1;
                    self.wants.remove(&key);
                    continue;
                }
                (WantType::Block, true) => {
                    self.wants.remove(&key);
                    if self.ready.len() < MAX_READY_WANTS {
                        self.ready.insert(key.clone(), want.clone());
                        self.order.push_back(key);
                        self.compact_order();
                    } else {
                        stats.refused_wants += 1;
                    }
                    continue;
                }
                (_, false) => {}
            }
            if want.send_dont_have {
                reply.presence(want.cid, Presence::DontHave);
                stats.dont_haves += 1;
            }
            self.keep_waiting(key, want.clone(), &mut stats);
        }
        (reply.finish(), stats)
    }

    fn keep_waiting(&mut self, key: Vec<u8>, want: WantEntry, stats: &mut ReplyStats) {
        if self.wants.len() < MAX_WANTLIST_ENTRIES || self.wants.contains_key(&key) {
            self.wants.insert(key, want);
        } else {
            stats.refused_wants += 1;
        }
    }

    /// Drops keys of `order` that are no longer ready once it has grown
    /// well past what is ready (a peer that keeps wanting and cancelling).
    fn compact_order(&mut self) {
        if self.order.len() <= 2 * MAX_READY_WANTS {
            return;
        }
        let mut seen = std::collections::HashSet::new();
        let ready = &self.ready;
        self.order
            .retain(|k| ready.contains_key(k) && seen.insert(k.clone()));
    }

    /// Reads ready want-blocks from the store, in the order asked, until
    /// their bytes reach `budget_bytes` (at least one block when
    /// `at_least_one`, so a peer whose outbox is empty always gets
    /// something). A block that turns out to be corrupt or gone is answered
    /// as DontHave (when asked to say so) and waited for again, never
    /// served.
    pub fn serve(
        &mut self,
        store: &dyn Store,
        budget_bytes: usize,
        at_least_one: bool,
    ) -> (Vec<Message>, ReplyStats) {
        let mut stats = ReplyStats::default();
        let mut reply = ReplyBuilder::default();
        let mut spent = 0usize;
        while let Some(key) = self.order.front() {
            if !self.ready.contains_key(key) {
                self.order.pop_front();
                continue;
            }
            let may_send = spent < budget_bytes || (at_least_one && stats.blocks == 0);
            if !may_send {
                break;
            }
            let Some(key) = self.order.pop_front() else {
                break;
            };
            let Some(want) = self.ready.remove(&key) else {
                continue;
            };
            match store.get(&want.cid) {
                Ok(Some(block)) => {
                    let len = block.data().len();
                    spent += len;
                    stats.blocks += 1;
                    stats.block_bytes += len as u64;
                    reply.block(block);
                }
                _ => {
                    if want.send_dont_have {
                        reply.presence(want.cid, Presence::DontHave);
                        stats.dont_haves += 1;
                    }
                    self.keep_waiting(key, want, &mut stats);
                }
            }
        }
        (reply.finish(), stats)
    }

    /// A block just arrived in our store: answer this peer if it wanted it.
    pub fn on_new_block(&mut self, block: &Block) -> Option<Message> {
        let want = self.wants.remove(&block.cid().to_bytes())?;
        let mut msg = Message::default();
        match want.want_type {
            WantType::Block => msg.blocks.push(block.clone()),
            WantType::Have => msg.presences.push((want.cid, Presence::Have)),
        }
        Some(msg)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::block::{CidFormat, HashAlg, RAW};
    use crate::store::MemoryStore;

    fn block(i: u32, len: usize) -> Block {
        let mut data = vec![i as u8; len];
        data.extend_from_slice(&i.to_le_bytes());
        Block::new(
            CidFormat {
                version: 1,
                hash: HashAlg::Blake3,
            },
            RAW,
            data,
        )
    }

    fn want(cid: Cid, want_type: WantType, send_dont_have: bool) -> WantEntry {
        WantEntry {
            cid,
            priority: 1,
            cancel: false,
            want_type,
            send_dont_have,
        }
    }

    /// Everything `receive` and then `serve` (unbounded) answer.
    fn answer(
        ledger: &mut PeerLedger,
        msg: &Message,
        store: &MemoryStore,
    ) -> (Message, ReplyStats) {
        let (mut replies, mut stats) = ledger.receive(msg, store);
        let (served, s) = ledger.serve(store, usize::MAX, true);
        replies.extend(served);
        stats.blocks += s.blocks;
        stats.block_bytes += s.block_bytes;
        stats.dont_haves += s.dont_haves;
        let mut all = Message::default();
        for r in replies {
            all.blocks.extend(r.blocks);
            all.presences.extend(r.presences);
        }
        (all, stats)
    }

    #[test]
    fn answers_haves_blocks_and_dont_haves() {
        let store = MemoryStore::new();
        let (a, b, c) = (block(1, 100), block(2, 100), block(3, 100));
        store.put(a.clone()).unwrap();
        store.put(b.clone()).unwrap();
        let mut ledger = PeerLedger::default();
        let msg = Message {
            wantlist: vec![
                want(*a.cid(), WantType::Have, true),
                want(*b.cid(), WantType::Block, true),
                want(*c.cid(), WantType::Block, true),
            ],
            ..Message::default()
        };
        // Presences at once, the block when served.
        let (replies, _) = ledger.receive(&msg, &store);
        assert_eq!(replies.len(), 1);
        assert!(replies[0].blocks.is_empty());
        assert_eq!(
            replies[0].presences,
            vec![(*a.cid(), Presence::Have), (*c.cid(), Presence::DontHave)]
        );
        assert!(ledger.has_ready());
        let (served, stats) = ledger.serve(&store, usize::MAX, true);
        assert_eq!(served.len(), 1);
        assert_eq!(served[0].blocks, vec![b]);
        assert_eq!(stats.blocks, 1);
        assert!(!ledger.has_ready());
        // c is remembered and pushed once we have it.
        assert_eq!(ledger.len(), 1);
        assert_eq!(ledger.on_new_block(&c).unwrap().blocks, vec![c.clone()]);
        assert!(ledger.on_new_block(&c).is_none());
    }

    #[test]
    fn corrupt_blocks_are_never_served() {
        let store = MemoryStore::new();
        let a = block(1, 100);
        store.put(a.clone()).unwrap();
        store.corrupt_for_test(a.cid(), bytes::Bytes::from_static(b"evil"));
        let mut ledger = PeerLedger::default();
        let msg = Message {
            wantlist: vec![want(*a.cid(), WantType::Block, true)],
            ..Message::default()
        };
        let (all, _) = answer(&mut ledger, &msg, &store);
        assert!(all.blocks.is_empty());
        assert_eq!(all.presences, vec![(*a.cid(), Presence::DontHave)]);
    }

    #[test]
    fn replies_stay_under_the_message_limit_and_wants_are_bounded() {
        let store = MemoryStore::new();
        let blocks: Vec<Block> = (0..12).map(|i| block(i, 1 << 20)).collect();
        for b in &blocks {
            store.put(b.clone()).unwrap();
        }
        let mut ledger = PeerLedger::default();
        let msg = Message {
            wantlist: blocks
                .iter()
                .map(|b| want(*b.cid(), WantType::Block, false))
                .collect(),
            ..Message::default()
        };
        let (replies, _) = ledger.receive(&msg, &store);
        assert!(replies.is_empty());
        let (replies, stats) = ledger.serve(&store, usize::MAX, true);
        assert_eq!(stats.blocks, 12);
        assert!(replies.len() >= 3);
        for r in &replies {
            assert!(r.encode().len() <= MAX_MESSAGE_BYTES);
        }
        // A flood of unknown wants is capped.
        let flood = Message {
            wantlist: (100..100 + MAX_WANTLIST_ENTRIES as u32 + 50)
                .map(|i| want(*block(i, 1).cid(), WantType::Block, false))
                .collect(),
            ..Message::default()
        };
        let (_, stats) = ledger.receive(&flood, &store);
        assert_eq!(ledger.len(), MAX_WANTLIST_ENTRIES);
        assert_eq!(stats.refused_wants, 50);
    }

    #[test]
    fn serving_stays_within_the_budget_and_reads_a_repeated_want_once() {
        let store = MemoryStore::new();
        let blocks: Vec<Block> = (0..8).map(|i| block(i, 1 << 20)).collect();
        for b in &blocks {
            store.put(b.clone()).unwrap();
        }
        let mut ledger = PeerLedger::default();
        // The same block asked for a thousand times, then the others.
        let mut wantlist: Vec<WantEntry> = (0..1000)
            .map(|_| want(*blocks[0].cid(), WantType::Block, false))
            .collect();
        wantlist.extend(
            blocks[1..]
                .iter()
                .map(|b| want(*b.cid(), WantType::Block, false)),
        );
        ledger.receive(
            &Message {
                wantlist,
                ..Message::default()
            },
            &store,
        );
        // 3 MiB of room: three blocks (the budget is reached, not passed
        // by more than one block), in the order asked.
        let (first, stats) = ledger.serve(&store, 3 << 20, false);
        assert_eq!(stats.blocks, 3);
        let sent: Vec<Block> = first.into_iter().flat_map(|m| m.blocks).collect();
        assert_eq!(sent, blocks[..3].to_vec());
        // No room: nothing, unless the peer's queue is empty.
        assert_eq!(ledger.serve(&store, 0, false).1.blocks, 0);
        assert_eq!(ledger.serve(&store, 0, true).1.blocks, 1);
        // A cancel before serving removes it.
        ledger.receive(
            &Message {
                wantlist: vec![WantEntry {
                    cancel: true,
                    ..want(*blocks[4].cid(), WantType::Block, false)
                }],
                ..Message::default()
            },
            &store,
        );
        let (rest, stats) = ledger.serve(&store, usize::MAX, true);
        assert_eq!(stats.blocks, 3);
        let sent: Vec<Block> = rest.into_iter().flat_map(|m| m.blocks).collect();
        assert_eq!(sent, blocks[5..].to_vec());
        assert!(ledger.is_empty());
    }
}

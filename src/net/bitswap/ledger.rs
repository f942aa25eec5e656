//! The serving side of Bitswap as a plain state machine: what one peer
//! wants from us, and the messages that answer it.
//!
//! [`PeerLedger::receive`] takes a decoded message and the block store and
//! returns the replies: blocks for want-block, Have for want-have, DontHave
//! when asked to say so. Wants we cannot serve yet stay in the ledger
//! (bounded) so that a block stored later can be pushed with
//! [`PeerLedger::on_new_block`]. No I/O, no clock: the network task owns the
//! stream and calls these.

use super::message::{
    Message, Presence, WantEntry, WantType, MAX_MESSAGE_BYTES, MAX_WANTLIST_ENTRIES,
};
use crate::block::{Block, Cid};
use crate::store::Store;
use std::collections::BTreeMap;

/// Bytes kept free in each reply for framing and presences.
const REPLY_HEADROOM_BYTES: usize = 64 * 1024;

/// What one remote peer has asked us for and not yet received.
#[derive(Default)]
pub struct PeerLedger {
    /// Keyed by CID bytes for a deterministic order.
    wants: BTreeMap<Vec<u8>, WantEntry>,
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
        if self.current_bytes + bytes + REPLY_HEADROOM_BYTES > MAX_MESSAGE_BYTES
            && !self.current.is_empty()
        {
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
    /// Number of outstanding wants.
    pub fn len(&self) -> usize {
        self.wants.len()
    }

    pub fn is_empty(&self) -> bool {
        self.wants.is_empty()
    }

    /// Applies the peer's message and answers every want we can. Store
    /// errors (a corrupt block) are answered as "don't have", never served.
    pub fn receive(&mut self, msg: &Message, store: &dyn Store) -> (Vec<Message>, ReplyStats) {
        if msg.full {
            self.wants.clear();
        }
        let mut stats = ReplyStats::default();
        let mut reply = ReplyBuilder::default();
        for want in &msg.wantlist {
            let key = want.cid.to_bytes();
            if want.cancel {
                self.wants.remove(&key);
                continue;
            }
            let served = match want.want_type {
                WantType::Have => match store.has(&want.cid) {
                    Ok(true) => {
                        reply.presence(want.cid, Presence::Have);
                        stats.haves += 1;
                        true
                    }
                    _ => false,
                },
                WantType::Block => match store.get(&want.cid) {
                    Ok(Some(block)) => {
                        stats.blocks += 1;
                        stats.block_bytes += block.data().len() as u64;
                        reply.block(block);
                        true
                    }
                    _ => false,
                },
            };
            if served {
                self.wants.remove(&key);
                continue;
            }
            if want.send_dont_have {
                reply.presence(want.cid, Presence::DontHave);
                stats.dont_haves += 1;
            }
            if self.wants.len() < MAX_WANTLIST_ENTRIES || self.wants.contains_key(&key) {
                self.wants.insert(key, want.clone());
            } else {
                stats.refused_wants += 1;
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
        let (replies, stats) = ledger.receive(&msg, &store);
        assert_eq!(replies.len(), 1);
        assert_eq!(replies[0].blocks, vec![b]);
        assert_eq!(
            replies[0].presences,
            vec![(*a.cid(), Presence::Have), (*c.cid(), Presence::DontHave)]
        );
        assert_eq!((stats.blocks, stats.haves, stats.dont_haves), (1, 1, 1));
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
        let (replies, _) = ledger.receive(&msg, &store);
        assert!(replies[0].blocks.is_empty());
        assert_eq!(replies[0].presences, vec![(*a.cid(), Presence::DontHave)]);
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
        let (replies, stats) = ledger.receive(&msg, &store);
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
}

//! What waits to be sent to one peer, merged into as few messages as the
//! limits allow.
//!
//! The engine pushes want entries, presences and blocks as they come; the
//! peer's writer takes them out one message at a time whenever its stream is
//! free. While the stream is busy (or still opening) new entries merge into
//! the pending ones instead of queueing as separate messages: a later entry
//! for a CID replaces an earlier one (a cancel overrides the want it
//! cancels). Bounded: wants and presences by count, blocks by bytes; what
//! does not fit is dropped and counted, and the other side re-asks after
//! its timeout.

use super::message::{
    Message, Presence, WantEntry, MAX_BLOCKS_PER_MESSAGE, MAX_MESSAGE_BYTES, MAX_WANTLIST_ENTRIES,
};
use crate::block::Block;
use std::collections::{HashMap, VecDeque};

/// Want entries held for one peer at most.
pub const MAX_PENDING_WANTS: usize = 16 * MAX_WANTLIST_ENTRIES;

/// Presences held for one peer at most.
pub const MAX_PENDING_PRESENCES: usize = 16 * MAX_WANTLIST_ENTRIES;

/// Block bytes held for one peer at most.
pub const MAX_PENDING_BLOCK_BYTES: usize = 32 * 1024 * 1024;

/// Bytes kept free in each message for framing, wants and presences.
const HEADROOM_BYTES: usize = 128 * 1024;

/// Pending traffic to one peer.
#[derive(Default)]
pub struct Outbox {
    /// Want entries in order; `want_index` finds an entry by CID bytes.
    wants: VecDeque<Option<WantEntry>>,
    want_index: HashMap<Vec<u8>, usize>,
    /// Offset of `wants[0]` in the positions `want_index` records.
    want_base: usize,
    live_wants: usize,
    presences: VecDeque<(crate::block::Cid, Presence)>,
    blocks: VecDeque<Block>,
    block_bytes: usize,
    /// Entries dropped because a bound was reached.
    pub dropped: u64,
}

impl Outbox {
    /// Whether nothing waits to be sent.
    pub fn is_empty(&self) -> bool {
        self.live_wants == 0 && self.presences.is_empty() && self.blocks.is_empty()
    }

    /// Bytes of blocks waiting to be sent.
    pub fn block_bytes(&self) -> usize {
        self.block_bytes
    }

    /// Block bytes that can still be queued before blocks are dropped.
    pub fn block_room(&self) -> usize {
        MAX_PENDING_BLOCK_BYTES.saturating_sub(self.block_bytes)
    }

    /// Merges `msg` into what is pending.
    pub fn push(&mut self, msg: Message) {
        for w in msg.wantlist {
            self.push_want(w);
        }
        for p in msg.presences {
            if self.presences.len() >= MAX_PENDING_PRESENCES {
                self.dropped += 1;
                continue;
            }
            self.presences.push_back(p);
        }
        for b in msg.blocks {
            let len = b.data().len();
            if self.block_bytes + len > MAX_PENDING_BLOCK_BYTES && !self.blocks.is_empty() {
                self.dropped += 1;
                continue;
            }
            self.block_bytes += len;
            self.blocks.push_back(b);
        }
    }

    fn push_want(&mut self, w: WantEntry) {
        let k = w.cid.to_bytes();
        if let Some(&pos) = self.want_index.get(&k) {
            if let Some(slot) = self.wants.get_mut(pos - self.want_base) {
                *slot = Some(w);
                return;
            }
        }
        if self.live_wants >= MAX_PENDING_WANTS {
            self.dropped += 1;
            return;
        }
        let pos = self.want_base + self.wants.len();
        self.wants.push_back(Some(w));
        self.want_index.insert(k, pos);
        self.live_wants += 1;
    }

    /// The next message to send: up to 1,024 want entries, the presences
    /// and as many blocks as fit under the 4 MiB message limit (always at
    /// least one). `None` when nothing is pending.
    pub fn take_message(&mut self) -> Option<Message> {
        if self.is_empty() {
            return None;
        }
        let mut msg = Message::default();
        while msg.wantlist.len() < MAX_WANTLIST_ENTRIES {
            let Some(slot) = self.wants.pop_front() else {
                break;
            };
            self.want_base += 1;
            if let Some(w) = slot {
                self.want_index.remove(&w.cid.to_bytes());
                self.live_wants -= 1;
                msg.wantlist.push(w);
            }
        }
        let mut bytes = 0usize;
        while let Some(p) = self.presences.pop_front() {
            msg.presences.push(p);
            bytes += 80;
            if msg.presences.len() >= MAX_WANTLIST_ENTRIES {
                break;
            }
        }
        while let Some(b) = self.blocks.front() {
            let len = b.data().len() + 80;
            if !msg.blocks.is_empty()
                && (bytes + len + HEADROOM_BYTES > MAX_MESSAGE_BYTES
                    || msg.blocks.len() >= MAX_BLOCKS_PER_MESSAGE)
            {
                break;
            }
            bytes += len;
            self.block_bytes -= b.data().len();
            if let Some(b) = self.blocks.pop_front() {
                msg.blocks.push(b);
            }
        }
        Some(msg)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::block::Cid;
    use crate::net::bitswap::message::WantType;
    use crate::net::bitswap::test_block as block;

    fn want(cid: Cid, cancel: bool) -> WantEntry {
        WantEntry {
            cid,
            priority: 1,
            cancel,
            want_type: WantType::Block,
            send_dont_have: true,
        }
    }

    #[test]
    fn small_messages_merge_and_a_cancel_replaces_its_want() {
        let mut o = Outbox::default();
        let cids: Vec<Cid> = (0..5).map(|i| *block(i, 8).cid()).collect();
        for c in &cids {
            o.push(Message {
                wantlist: vec![want(*c, false)],
                ..Message::default()
            });
        }
        o.push(Message {
            wantlist: vec![want(cids[1], true)],
            ..Message::default()
        });
        let m = o.take_message().unwrap();
        assert_eq!(m.wantlist.len(), 5);
        assert_eq!(m.wantlist[1].cid, cids[1]);
        assert!(m.wantlist[1].cancel);
        assert!(o.take_message().is_none());
        // After a take, a new entry for the same CID is queued again.
        o.push(Message {
            wantlist: vec![want(cids[0], false)],
            ..Message::default()
        });
        assert_eq!(o.take_message().unwrap().wantlist.len(), 1);
    }

    #[test]
    fn blocks_split_under_the_message_limit_and_are_bounded() {
        let mut o = Outbox::default();
        for i in 0..200 {
            o.push(Message {
                blocks: vec![block(i, 1 << 20)],
                ..Message::default()
            });
        }
        assert!(o.dropped > 0, "over 32 MiB is dropped");
        let mut n = 0;
        while let Some(m) = o.take_message() {
            let bytes: usize = m.blocks.iter().map(|b| b.data().len()).sum();
            assert!(bytes <= MAX_MESSAGE_BYTES, "{bytes}");
            assert!(!m.blocks.is_empty());
            n += m.blocks.len();
        }
        assert_eq!(n as u64 + o.dropped, 200);
        assert!(o.is_empty());
    }

    #[test]
    fn wantlists_are_cut_at_the_protocol_limit() {
        let mut o = Outbox::default();
        for i in 0..2500 {
            o.push(Message {
                wantlist: vec![want(*block(i, 8).cid(), false)],
                ..Message::default()
            });
        }
        let sizes: Vec<usize> = std::iter::from_fn(|| o.take_message())
            .map(|m| m.wantlist.len())
            .collect();
        assert_eq!(sizes, vec![1024, 1024, 452]);
    }
}

//! Received blocks nobody has asked for yet, kept for the reader that will.

use super::key;
use crate::block::{Block, Cid};
use std::collections::HashMap;
use std::sync::Arc;

/// Bytes of recently received blocks a session keeps for its readers.
const RECENT_BYTES: usize = 64 * 1024 * 1024;

/// Blocks that arrived before anyone asked for them (a prefetch hint ran
/// ahead of its reader), kept so the reader that asks later gets it from
/// memory instead of reading and re-hashing it from the store (both cost as
/// much as receiving it). The reader takes the block out; a block a waiter
/// received at once is never kept (holding it would keep its whole frame
/// buffer alive). Oldest out first, bounded by bytes.
#[derive(Default)]
pub(super) struct RecentBlocks {
    blocks: HashMap<Vec<u8>, Block>,
    order: std::collections::VecDeque<Vec<u8>>,
    bytes: usize,
}

impl RecentBlocks {
    pub(super) fn insert(&mut self, block: Block) {
        let k = key(block.cid());
        let len = block.data().len();
        if self.blocks.insert(k.clone(), block).is_some() {
            return;
        }
        self.order.push_back(k);
        self.bytes += len;
        while self.bytes > RECENT_BYTES {
            let Some(old) = self.order.pop_front() else {
                break;
            };
            if let Some(b) = self.blocks.remove(&old) {
                self.bytes -= b.data().len();
            }
        }
    }

    pub(super) fn take(&mut self, cid: &Cid) -> Option<Block> {
        let k = key(cid);
        let b = self.blocks.remove(&k)?;
        self.bytes -= b.data().len();
        // `order` keeps the key until eviction skips it; compacted when
        // mostly such leftovers, so it stays bounded.
        if self.order.len() > 2 * self.blocks.len() + 64 {
            let blocks = &self.blocks;
            self.order.retain(|o| blocks.contains_key(o));
        }
        // Under the CID asked for (peers may answer under another codec).
        Some(Block::new_unchecked(*cid, b.data().clone()))
    }
}

pub(super) type SharedRecent = Arc<std::sync::Mutex<RecentBlocks>>;

pub(super) fn recent_take(recent: &SharedRecent, cid: &Cid) -> Option<Block> {
    recent.lock().unwrap_or_else(|e| e.into_inner()).take(cid)
}

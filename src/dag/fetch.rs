//! Fetching a whole DAG: every block a root reaches, many in flight at once.
//!
//! The walk asks a [`BlockFetcher`] (the network layer's fetch session, or
//! anything that gets blocks asynchronously) for each block, up to
//! [`DAG_FETCH_WINDOW`] at a time, and follows each block's links as soon as
//! it arrives, whichever order they come in. Each distinct block (by
//! multihash) is asked for once.

use super::walk::links_of;
use super::DagError;
use crate::block::{Block, Cid, Multihash};
use futures::StreamExt;
use std::collections::{HashSet, VecDeque};
use std::future::Future;

/// Blocks of a DAG fetch in flight at once.
pub const DAG_FETCH_WINDOW: usize = 512;

/// What a DAG fetch moved.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DagFetch {
    /// Blocks of the DAG (fetched or already stored).
    pub blocks: u64,
    /// Their bytes.
    pub bytes: u64,
}

/// Where a DAG fetch gets its blocks.
pub trait BlockFetcher: Sync {
    /// Why a block could not be had; a block that does not decode as
    /// dag-pb becomes one too.
    type Error: From<DagError> + Send;

    /// The verified block `cid`.
    fn get(&self, cid: Cid) -> impl Future<Output = Result<Block, Self::Error>> + Send;

    /// A hint that these blocks will be asked for next (a network source
    /// starts fetching them).
    fn prefetch(&self, cids: &[Cid]);
}

/// Gets every block of the DAG under `root` from `fetcher`, calling
/// `progress` after each block with the figures so far. Stops at the first
/// block that cannot be had or does not decode.
pub async fn fetch_dag<F: BlockFetcher>(
    fetcher: &F,
    root: Cid,
    progress: &mut (dyn FnMut(DagFetch) + Send),
) -> Result<DagFetch, F::Error> {
    let mut stats = DagFetch::default();
    let mut queue = VecDeque::from([root]);
    let mut seen: HashSet<Multihash> = HashSet::new();
    // Unordered: a block is walked (and dropped) as soon as it arrives,
    // whichever provider sent it; waiting for DAG order would hold every
    // block that overtook a slow one, and the frame buffers under them.
    let mut inflight = futures::stream::FuturesUnordered::new();
    while !queue.is_empty() || !inflight.is_empty() {
        let mut hints = Vec::new();
        while inflight.len() < DAG_FETCH_WINDOW {
            let Some(cid) = queue.pop_front() else { break };
            if !seen.insert(*cid.hash()) {
                continue;
            }
            hints.push(cid);
            inflight.push(fetcher.get(cid));
        }
        fetcher.prefetch(&hints);
        let Some(block) = inflight.next().await else {
            break;
        };
        let block = block?;
        stats.blocks += 1;
        stats.bytes += block.data().len() as u64;
        queue.extend(links_of(&block)?);
        progress(stats);
    }
    Ok(stats)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::block::{CidFormat, HashAlg, RAW};
    use crate::dag::pb::{PbLink, PbNode};
    use std::collections::HashMap;
    use std::sync::Mutex;

    /// Blocks in memory; counts how often each is asked for.
    #[derive(Default)]
    struct Blocks {
        blocks: HashMap<Multihash, Block>,
        asked: Mutex<HashMap<Multihash, usize>>,
    }

    impl BlockFetcher for Blocks {
        type Error = DagError;

        async fn get(&self, cid: Cid) -> Result<Block, DagError> {
            *self.asked.lock().unwrap().entry(*cid.hash()).or_default() += 1;
            self.blocks
                .get(cid.hash())
                .cloned()
                .ok_or(DagError::NotFound { cid })
        }

        fn prefetch(&self, _cids: &[Cid]) {}
    }

    fn leaf(i: u32) -> Block {
        let format = CidFormat {
            version: 1,
            hash: HashAlg::Blake3,
        };
        Block::new(format, RAW, format!("leaf {i}").into_bytes())
    }

    fn node(children: &[&Block]) -> Block {
        let links = children
            .iter()
            .map(|c| PbLink {
                cid: *c.cid(),
                name: String::new(),
                tsize: c.data().len() as u64,
            })
            .collect();
        let data = PbNode { links, data: None }.encode();
        let format = CidFormat {
            version: 1,
            hash: HashAlg::Blake3,
        };
        Block::new(format, crate::block::DAG_PB, data)
    }

    #[tokio::test]
    async fn every_distinct_block_is_fetched_once() {
        let leaves: Vec<Block> = (0..3).map(leaf).collect();
        // Two parents share a leaf; the root names one parent twice.
        let a = node(&[&leaves[0], &leaves[1]]);
        let b = node(&[&leaves[1], &leaves[2]]);
        let root = node(&[&a, &b, &a]);
        let mut store = Blocks::default();
        for blk in leaves.iter().chain([&a, &b, &root]) {
            store.blocks.insert(*blk.cid().hash(), blk.clone());
        }
        let mut calls = 0;
        let stats = fetch_dag(&store, *root.cid(), &mut |_| calls += 1)
            .await
            .unwrap();
        assert_eq!(stats.blocks, 6);
        let bytes: usize = store.blocks.values().map(|b| b.data().len()).sum();
        assert_eq!(stats.bytes, bytes as u64);
        assert_eq!(calls, 6);
        assert!(store.asked.lock().unwrap().values().all(|n| *n == 1));
    }

    #[tokio::test]
    async fn a_missing_block_fails_the_fetch() {
        let gone = leaf(9);
        let root = node(&[&gone]);
        let mut store = Blocks::default();
        store.blocks.insert(*root.cid().hash(), root.clone());
        let err = fetch_dag(&store, *root.cid(), &mut |_| {}).await;
        assert!(matches!(err, Err(DagError::NotFound { cid }) if cid == *gone.cid()));
    }
}

//! Single blocks: read, store (with a CID made for them) and size.

use super::{Node, NodeError};
use crate::block::{Block, Cid, CidFormat};
use crate::store::PinKind;

impl Node {
    /// The stored block `cid`.
    pub fn block_get(&self, cid: &Cid) -> Result<Block, NodeError> {
        self.store
            .get(cid)?
            .ok_or(NodeError::NotLocal { cid: *cid })
    }

    /// Stores one block under `codec` with `format`; returns its CID.
    pub fn block_put(
        &self,
        data: Vec<u8>,
        format: CidFormat,
        codec: u64,
        pin: bool,
    ) -> Result<Cid, NodeError> {
        let block = Block::verified(format.cid(codec, &data), data)?;
        let cid = *block.cid();
        self.store.put(block)?;
        if pin {
            self.user_pin(&cid, PinKind::Direct)?;
        }
        Ok(cid)
    }

    /// Size of a stored block.
    pub fn block_stat(&self, cid: &Cid) -> Result<u64, NodeError> {
        self.store
            .size_of(cid)?
            .ok_or(NodeError::NotLocal { cid: *cid })
    }
}

/// Exposes the memory tier's counters (`[store] hot_cache`) on `/metrics`.
#[derive(Debug)]
pub(super) struct HotCollector(pub(super) std::sync::Arc<crate::store::HotCache>);

impl prometheus_client::collector::Collector for HotCollector {
    fn encode(
        &self,
        mut encoder: prometheus_client::encoding::DescriptorEncoder,
    ) -> Result<(), std::fmt::Error> {
        use crate::net::metrics::{encode_counter, encode_gauge};
        use std::sync::atomic::Ordering::Relaxed;
        let s = self.0.stats();
        encode_counter(
            &mut encoder,
            "hot_cache_hits",
            "Block reads answered from the memory tier",
            s.hits.load(Relaxed),
        )?;
        encode_counter(
            &mut encoder,
            "hot_cache_misses",
            "Block reads that went to the store beneath the memory tier",
            s.misses.load(Relaxed),
        )?;
        encode_counter(
            &mut encoder,
            "hot_cache_hit_bytes",
            "Bytes of blocks answered from the memory tier",
            s.hit_bytes.load(Relaxed),
        )?;
        encode_gauge(
            &mut encoder,
            "hot_cache_bytes",
            "Bytes the memory tier holds (blocks and their bookkeeping)",
            i64::try_from(self.0.weighted_bytes()).unwrap_or(i64::MAX),
        )?;
        encode_gauge(
            &mut encoder,
            "hot_cache_blocks",
            "Blocks the memory tier holds",
            i64::try_from(self.0.entries()).unwrap_or(i64::MAX),
        )?;
        encode_gauge(
            &mut encoder,
            "hot_cache_capacity_bytes",
            "Most bytes the memory tier holds ([store] hot_cache)",
            i64::try_from(self.0.capacity()).unwrap_or(i64::MAX),
        )?;
        encode_gauge(
            &mut encoder,
            "hot_cache_allowed_bytes",
            "Bytes the memory tier may grow to now (less than its capacity while memory is short)",
            i64::try_from(self.0.allowed()).unwrap_or(i64::MAX),
        )?;
        encode_counter(
            &mut encoder,
            "hot_cache_pressure_sheds",
            "Times the memory tier was emptied because the process neared its memory limit",
            s.pressure_sheds.load(Relaxed),
        )?;
        encode_counter(
            &mut encoder,
            "hot_cache_pressure_dropped_bytes",
            "Bytes the memory tier dropped because the process neared its memory limit",
            s.pressure_dropped_bytes.load(Relaxed),
        )
    }
}

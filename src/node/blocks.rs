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

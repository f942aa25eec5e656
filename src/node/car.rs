//! CAR v1 import and export (`dag import`, `dag export`).

use super::{Node, NodeError};
use crate::block::Cid;
use crate::dag::car::{CarReader, CarWriter};
use crate::dag::{walk, DagError};
use std::collections::HashSet;
use std::io::Read;

/// What `dag import` did.
#[derive(Clone, Debug)]
pub struct CarImport {
    /// The roots the CAR's header names.
    pub roots: Vec<Cid>,
    /// Blocks read from the CAR.
    pub blocks: u64,
    /// Bytes of blocks the store did not hold before.
    pub new_bytes: u64,
}

impl Node {
    /// Writes the DAG under `cid` as a CAR v1 (blocks depth-first, root in
    /// the header) to `out`; returns the number of blocks.
    pub fn dag_export(&self, cid: &Cid, out: impl std::io::Write) -> Result<u64, NodeError> {
        let mut car = CarWriter::new(out, &[*cid]).map_err(NodeError::Car)?;
        let mut blocks = 0;
        walk::walk(&*self.source(), cid, &mut HashSet::new(), &mut |block| {
            blocks += 1;
            car.write_block(block).map_err(|e| DagError::Write {
                path: "CAR output".into(),
                source: std::io::Error::other(e),
            })
        })?;
        car.finish().map_err(NodeError::Car)?;
        Ok(blocks)
    }

    /// Imports every block of a CAR (verifying each), then pins its roots
    /// recursively when `pin_roots` (which fails if a root's DAG is incomplete).
    pub fn dag_import(&self, input: impl Read, pin_roots: bool) -> Result<CarImport, NodeError> {
        let mut car = CarReader::new(std::io::BufReader::with_capacity(1 << 20, input))
            .map_err(NodeError::Car)?;
        let roots = car.roots().to_vec();
        let mut failure = None;
        let mut blocks = 0u64;
        let mut iter = std::iter::from_fn(|| match car.next_block() {
            Ok(Some(b)) => {
                blocks += 1;
                Some(b)
            }
            Ok(None) => None,
            Err(e) => {
                failure = Some(e);
                None
            }
        });
        let new_bytes = self.store.put_many(&mut iter)?;
        if let Some(e) = failure {
            return Err(NodeError::Car(e));
        }
        if pin_roots {
            for root in &roots {
                self.pin_add(root, true)?;
            }
        }
        Ok(CarImport {
            roots,
            blocks,
            new_bytes,
        })
    }
}

//! Reference counts of the bucket index's `refs` tree: how many objects,
//! bucket roots and open uploads' parts name a CID, and whether the
//! endpoint made its pin. Encoded as the count (u64, big-endian) and one
//! byte, 1 when the pin is the endpoint's.

use crate::s3::S3Error;

/// A reference count entry: objects naming a CID, and whether the S3
/// endpoint pinned it (and so unpins it when the count reaches zero).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Refs {
    /// Objects naming the CID.
    pub count: u64,
    /// The endpoint made the pin.
    pub owned: bool,
}

impl Refs {
    pub(super) fn encode(self) -> [u8; 9] {
        let mut b = [0u8; 9];
        b[..8].copy_from_slice(&self.count.to_be_bytes());
        b[8] = u8::from(self.owned);
        b
    }

    pub(super) fn decode(b: &[u8]) -> Result<Refs, S3Error> {
        match b {
            [count @ .., owned] if count.len() == 8 => Ok(Refs {
                count: u64::from_be_bytes(count.try_into().unwrap_or_default()),
                owned: *owned != 0,
            }),
            _ => Err(S3Error::BadEntry {
                what: "reference count",
                why: format!("{} bytes, expected 9", b.len()),
            }),
        }
    }
}

/// Who `pin rm` is told holds a CID the index names.
const HOLDER: &str =
    "the S3 endpoint (an object, a version, an upload's part or a bucket root names it)";

impl crate::node::PinHolder for super::BucketIndex {
    fn hold(
        &self,
        cid: &crate::block::Cid,
        user_pinned: bool,
    ) -> Result<crate::node::Hold, crate::node::NodeError> {
        use crate::node::Hold;
        let held = (|| {
            // Under the writer: no write decides about this pin meanwhile.
            let _writer = self.writer();
            let Some(refs) = self.refs_of(cid)? else {
                return Ok(Hold::Free);
            };
            if refs.owned && !user_pinned {
                return Ok(Hold::Refused(HOLDER.into()));
            }
            if !refs.owned {
                // The pin was the user's; the endpoint keeps it from now on
                // and removes it when nothing names the CID any more.
                let taken = Refs {
                    owned: true,
                    ..refs
                };
                self.refs
                    .insert(cid.to_bytes(), &taken.encode()[..])
                    .map_err(super::failed("taking a pin over"))?;
                self.flush()?;
            }
            Ok(Hold::Kept(HOLDER.into()))
        })();
        held.map_err(|e: S3Error| crate::node::NodeError::PinHolder(Box::new(e)))
    }
}

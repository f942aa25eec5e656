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

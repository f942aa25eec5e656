//! dag-pb nodes and the UnixFS data inside them.

use crate::cid::any_cid;
use crate::harness::{any_bytes, check, check_alloc, mutate, mutations, peak_alloc, Failure};
use cairn::dag::pb::{DataType, PbLink, PbNode, UnixFs};
use proptest::collection::vec;
use proptest::option;
use proptest::prelude::*;

/// Any UnixFS data.
pub fn any_unixfs() -> impl Strategy<Value = UnixFs> {
    let kind = prop::sample::select(vec![
        DataType::Raw,
        DataType::Directory,
        DataType::File,
        DataType::Metadata,
        DataType::Symlink,
        DataType::HamtShard,
    ]);
    (
        kind,
        option::of(any_bytes(64)),
        option::of(any::<u64>()),
        vec(any::<u64>(), 0..6),
        option::of(any::<u64>()),
        option::of(any::<u64>()),
        option::of(any::<u32>()),
    )
        .prop_map(
            |(kind, data, filesize, blocksizes, hash_type, fanout, mode)| {
                let mut u = UnixFs::new(kind);
                u.data = data;
                u.filesize = filesize;
                u.blocksizes = blocksizes;
                u.hash_type = hash_type;
                u.fanout = fanout;
                u.mode = mode;
                u
            },
        )
}

/// Any dag-pb node: links with any CID, name and size; data that is
/// UnixFS or arbitrary.
pub fn any_node() -> impl Strategy<Value = PbNode> {
    let link = (any_cid(), ".{0,12}", any::<u64>()).prop_map(|(cid, name, tsize)| PbLink {
        cid,
        name,
        tsize,
    });
    let data = prop_oneof![any_unixfs().prop_map(|u| u.encode()), any_bytes(64)];
    (vec(link, 0..5), option::of(data)).prop_map(|(links, data)| PbNode { links, data })
}

/// dag-pb input: arbitrary, or a valid node's mutated.
fn node_input() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        any_bytes(256),
        (any_node(), mutations()).prop_map(|(n, m)| mutate(n.encode(), &m)),
        (any_unixfs(), mutations()).prop_map(|(u, m)| mutate(u.encode(), &m)),
    ]
}

/// Arbitrary and mutated bytes: no panic, bounded allocation, and what
/// decodes re-encodes to bytes that decode to the same.
pub fn dag_pb_bytes(cases: u32) -> Result<(), Failure> {
    check("dag_pb_bytes", cases, node_input(), |bytes| {
        let (node, peak) = peak_alloc(|| PbNode::decode(&bytes));
        check_alloc("PbNode::decode", bytes.len(), peak)?;
        if let Ok(node) = node {
            prop_assert_eq!(PbNode::decode(&node.encode()), Ok(node));
        }
        let (unixfs, peak) = peak_alloc(|| UnixFs::decode(&bytes));
        check_alloc("UnixFs::decode", bytes.len(), peak)?;
        if let Ok(u) = unixfs {
            prop_assert_eq!(UnixFs::decode(&u.encode()), Ok(u));
        }
        Ok(())
    })
}

/// Every node and every UnixFS value decode from their encoding as
/// themselves.
pub fn dag_pb_round_trip(cases: u32) -> Result<(), Failure> {
    check(
        "dag_pb_round_trip",
        cases,
        (any_node(), any_unixfs()),
        |(node, u)| {
            prop_assert_eq!(PbNode::decode(&node.encode()), Ok(node));
            prop_assert_eq!(UnixFs::decode(&u.encode()), Ok(u));
            Ok(())
        },
    )
}

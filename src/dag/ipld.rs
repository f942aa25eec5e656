//! Blocks as IPLD data (`dag get`, `dag put`, `dag resolve`): DAG-CBOR
//! and DAG-JSON decoded to and encoded from the [`Ipld`] data model
//! (`serde_ipld_dagcbor`, `serde_ipld_dagjson`), dag-pb seen in the shape
//! Kubo gives it (`{"Data": bytes, "Links": [{"Hash", "Name", "Tsize"}]}`),
//! raw blocks as bytes; the links a block holds; and paths followed through
//! any of them (map keys and list indexes in DAG-CBOR/DAG-JSON, entry names
//! in UnixFS directories, HAMT shards included).

use super::pb::{PbLink, PbNode};
use super::{reader, BlockSource, DagError};
use crate::block::{Cid, DAG_CBOR, DAG_JSON, DAG_PB, RAW};
pub use ipld_core::ipld::Ipld;
use std::collections::BTreeMap;

/// The codecs [`decode`] and [`encode`] take, by their multicodec names.
pub const CODECS: [(&str, u64); 4] = [
    ("dag-cbor", DAG_CBOR),
    ("dag-json", DAG_JSON),
    ("dag-pb", DAG_PB),
    ("raw", RAW),
];

/// The codec named `name` (`dag-cbor`, `dag-json`, `dag-pb`, `raw`), or
/// a message naming those.
pub fn codec_named(name: &str) -> Result<u64, String> {
    CODECS
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, c)| *c)
        .ok_or_else(|| {
            let known: Vec<&str> = CODECS.iter().map(|(n, _)| *n).collect();
            format!(
                "unknown codec {name:?} (expected one of {})",
                known.join(", ")
            )
        })
}

/// Why bytes are not the codec they claim, or data cannot be encoded in a
/// codec.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{codec}: {reason}")]
pub struct CodecError {
    /// The codec's name.
    pub codec: &'static str,
    /// What is wrong.
    pub reason: String,
}

fn codec_error(codec: u64, reason: impl std::fmt::Display) -> CodecError {
    CodecError {
        codec: CODECS
            .iter()
            .find(|(_, c)| *c == codec)
            .map_or("unknown codec", |(n, _)| n),
        reason: reason.to_string(),
    }
}

/// `data` decoded under `codec`.
pub fn decode(codec: u64, data: &[u8]) -> Result<Ipld, CodecError> {
    match codec {
        DAG_CBOR => serde_ipld_dagcbor::from_slice(data).map_err(|e| codec_error(codec, e)),
        DAG_JSON => serde_ipld_dagjson::from_slice(data).map_err(|e| codec_error(codec, e)),
        DAG_PB => PbNode::decode(data)
            .map(|n| pb_to_ipld(&n))
            .map_err(|e| codec_error(codec, e)),
        RAW => Ok(Ipld::Bytes(data.to_vec())),
        other => Err(codec_error(
            other,
            format!("codec 0x{other:x} is not supported"),
        )),
    }
}

/// `value` encoded under `codec`. dag-pb takes only Kubo's dag-pb shape;
/// raw takes only bytes.
pub fn encode(codec: u64, value: &Ipld) -> Result<Vec<u8>, CodecError> {
    match codec {
        DAG_CBOR => serde_ipld_dagcbor::to_vec(value).map_err(|e| codec_error(codec, e)),
        DAG_JSON => serde_ipld_dagjson::to_vec(value).map_err(|e| codec_error(codec, e)),
        DAG_PB => ipld_to_pb(value)
            .map(|n| n.encode())
            .map_err(|e| codec_error(codec, e)),
        RAW => match value {
            Ipld::Bytes(b) => Ok(b.clone()),
            _ => Err(codec_error(codec, "only bytes can be stored as raw")),
        },
        other => Err(codec_error(
            other,
            format!("codec 0x{other:x} is not supported"),
        )),
    }
}

/// A dag-pb node in Kubo's data model: `Data` (absent when the node has
/// none) and `Links`, each with `Hash`, `Name` and `Tsize`.
pub fn pb_to_ipld(node: &PbNode) -> Ipld {
    let links = node
        .links
        .iter()
        .map(|l| {
            Ipld::Map(BTreeMap::from([
                ("Hash".to_string(), Ipld::Link(l.cid)),
                ("Name".to_string(), Ipld::String(l.name.clone())),
                ("Tsize".to_string(), Ipld::Integer(l.tsize.into())),
            ]))
        })
        .collect();
    let mut map = BTreeMap::from([("Links".to_string(), Ipld::List(links))]);
    if let Some(data) = &node.data {
        map.insert("Data".to_string(), Ipld::Bytes(data.clone()));
    }
    Ipld::Map(map)
}

/// The dag-pb node `value` describes in Kubo's shape ([`pb_to_ipld`]).
pub fn ipld_to_pb(value: &Ipld) -> Result<PbNode, String> {
    let Ipld::Map(map) = value else {
        return Err("a dag-pb node is a map with Data and Links".into());
    };
    if let Some(extra) = map.keys().find(|k| *k != "Data" && *k != "Links") {
        return Err(format!("unexpected field {extra:?} in a dag-pb node"));
    }
    let data = match map.get("Data") {
        None => None,
        Some(Ipld::Bytes(b)) => Some(b.clone()),
        Some(_) => return Err("Data must be bytes".into()),
    };
    let links = match map.get("Links") {
        None => Vec::new(),
        Some(Ipld::List(links)) => links.iter().map(pb_link).collect::<Result<_, _>>()?,
        Some(_) => return Err("Links must be a list".into()),
    };
    Ok(PbNode { links, data })
}

fn pb_link(value: &Ipld) -> Result<PbLink, String> {
    let Ipld::Map(map) = value else {
        return Err("a dag-pb link is a map with Hash, Name and Tsize".into());
    };
    if let Some(extra) = map
        .keys()
        .find(|k| !["Hash", "Name", "Tsize"].contains(&k.as_str()))
    {
        return Err(format!("unexpected field {extra:?} in a dag-pb link"));
    }
    let cid = match map.get("Hash") {
        Some(Ipld::Link(c)) => *c,
        _ => return Err("a dag-pb link needs Hash, a link".into()),
    };
    let name = match map.get("Name") {
        None => String::new(),
        Some(Ipld::String(s)) => s.clone(),
        Some(_) => return Err("Name must be a string".into()),
    };
    let tsize = match map.get("Tsize") {
        None => 0,
        Some(Ipld::Integer(n)) => u64::try_from(*n).map_err(|_| "Tsize out of range")?,
        Some(_) => return Err("Tsize must be an integer".into()),
    };
    Ok(PbLink { cid, name, tsize })
}

/// Every link in `value`, in order (depth-first).
pub fn links(value: &Ipld) -> Vec<Cid> {
    let mut out = Vec::new();
    // Explicit stack: decoded data can nest deeply.
    let mut stack = vec![value];
    while let Some(v) = stack.pop() {
        match v {
            Ipld::Link(c) => out.push(*c),
            Ipld::List(items) => stack.extend(items.iter().rev()),
            Ipld::Map(map) => stack.extend(map.values().rev()),
            _ => {}
        }
    }
    out
}

/// Where a path led: the last block it reached, the steps taken inside
/// that block (`rem_path`, empty when the path ended on a link), and the
/// value found there.
#[derive(Debug, Clone, PartialEq)]
pub struct Resolved {
    /// The last block reached.
    pub cid: Cid,
    /// The rest of the path inside that block, `/`-separated.
    pub rem_path: String,
    /// The value at the path's end.
    pub value: Ipld,
}

/// Follows `path` (`/`-separated, empty segments ignored) from `root`:
/// through UnixFS directory entries in dag-pb blocks, map keys and list
/// indexes in DAG-CBOR and DAG-JSON, crossing every link it meets.
pub fn resolve(source: &dyn BlockSource, root: Cid, path: &str) -> Result<Resolved, DagError> {
    let mut cid = root;
    let mut value = load(source, &cid)?;
    let mut inside: Vec<&str> = Vec::new();
    for seg in path.split('/').filter(|s| !s.is_empty()) {
        let next = if cid.codec() == DAG_PB && inside.is_empty() {
            Ipld::Link(reader::resolve_path(source, cid, seg)?)
        } else {
            step(&value, seg).ok_or_else(|| DagError::NoSuchPath {
                cid,
                name: inside
                    .iter()
                    .chain([&seg])
                    .copied()
                    .collect::<Vec<_>>()
                    .join("/"),
            })?
        };
        match next {
            Ipld::Link(c) => {
                cid = c;
                value = load(source, &cid)?;
                inside.clear();
            }
            other => {
                value = other;
                inside.push(seg);
            }
        }
    }
    Ok(Resolved {
        cid,
        rem_path: inside.join("/"),
        value,
    })
}

/// The value under `seg` in `value`: a map's key or a list's index.
fn step(value: &Ipld, seg: &str) -> Option<Ipld> {
    match value {
        Ipld::Map(map) => map.get(seg).cloned(),
        Ipld::List(items) => seg
            .parse::<usize>()
            .ok()
            .and_then(|i| items.get(i).cloned()),
        _ => None,
    }
}

/// Block `cid` decoded under its codec.
pub fn load(source: &dyn BlockSource, cid: &Cid) -> Result<Ipld, DagError> {
    let block = source.block(cid)?;
    decode(cid.codec(), block.data()).map_err(|e| DagError::Codec {
        cid: *cid,
        source: e,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::block::{Block, CidFormat};
    use crate::store::{MemoryStore, Store};
    use proptest::prelude::*;

    /// IPLD values without floats (whose text forms are not one-to-one).
    fn value() -> impl Strategy<Value = Ipld> {
        let cid =
            Cid::try_from("bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy").unwrap();
        let leaf = prop_oneof![
            Just(Ipld::Null),
            any::<bool>().prop_map(Ipld::Bool),
            any::<i64>().prop_map(|n| Ipld::Integer(n.into())),
            ".{0,12}".prop_map(Ipld::String),
            prop::collection::vec(any::<u8>(), 0..24).prop_map(Ipld::Bytes),
            Just(Ipld::Link(cid)),
        ];
        leaf.prop_recursive(4, 48, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(Ipld::List),
                // A lone "/" key is DAG-JSON's link or bytes marker: not
                // a map key a round trip keeps.
                prop::collection::btree_map("[a-z0-9_]{0,8}", inner, 0..6).prop_map(Ipld::Map),
            ]
        })
    }

    proptest! {
        #[test]
        fn values_round_trip_through_both_codecs(v in value()) {
            for codec in [DAG_CBOR, DAG_JSON] {
                let bytes = encode(codec, &v).unwrap();
                prop_assert_eq!(&decode(codec, &bytes).unwrap(), &v);
            }
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
            for (_, codec) in CODECS {
                if let Ok(v) = decode(codec, &bytes) {
                    let _ = links(&v);
                    let _ = ipld_to_pb(&v);
                }
            }
        }
    }

    fn put(store: &MemoryStore, codec: u64, value: &Ipld) -> Cid {
        let data = encode(codec, value).unwrap();
        let block = Block::new(CidFormat::V1_SHA2_256, codec, data);
        let cid = *block.cid();
        store.put(block).unwrap();
        cid
    }

    #[test]
    fn dag_json_and_dag_cbor_round_trip_with_links() {
        let leaf =
            Cid::try_from("bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy").unwrap();
        let json = br#"{"a":[1,{"/":"bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy"}],"b":{"/":{"bytes":"aGk"}}}"#;
        let v = decode(DAG_JSON, json).unwrap();
        assert_eq!(links(&v), vec![leaf]);
        assert_eq!(encode(DAG_JSON, &v).unwrap(), json.to_vec());
        let cbor = encode(DAG_CBOR, &v).unwrap();
        assert_eq!(decode(DAG_CBOR, &cbor).unwrap(), v);
        // Non-canonical or broken input is refused.
        assert!(decode(DAG_JSON, b"{\"a\":").is_err());
        assert!(decode(DAG_CBOR, &[0xff]).is_err());
        assert!(encode(RAW, &v).is_err());
    }

    #[test]
    fn dag_pb_has_kubos_shape_both_ways() {
        let child =
            Cid::try_from("bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy").unwrap();
        let node = PbNode {
            links: vec![PbLink {
                cid: child,
                name: "a".into(),
                tsize: 7,
            }],
            data: Some(vec![8, 1]),
        };
        let v = pb_to_ipld(&node);
        assert_eq!(
            String::from_utf8(encode(DAG_JSON, &v).unwrap()).unwrap(),
            format!(
                r#"{{"Data":{{"/":{{"bytes":"CAE"}}}},"Links":[{{"Hash":{{"/":"{child}"}},"Name":"a","Tsize":7}}]}}"#
            )
        );
        assert_eq!(ipld_to_pb(&v).unwrap(), node);
        let bad = decode(DAG_JSON, br#"{"Data":{"/":{"bytes":"CAE"}},"Extra":1}"#).unwrap();
        assert!(ipld_to_pb(&bad).unwrap_err().contains("Extra"));
    }

    #[test]
    fn paths_cross_links_and_stop_inside_a_block() {
        let store = MemoryStore::new();
        let leaf = put(&store, RAW, &Ipld::Bytes(b"hi".to_vec()));
        let inner = put(
            &store,
            DAG_CBOR,
            &Ipld::Map(BTreeMap::from([(
                "list".to_string(),
                Ipld::List(vec![Ipld::Integer(5), Ipld::Link(leaf)]),
            )])),
        );
        let root = put(
            &store,
            DAG_JSON,
            &Ipld::Map(BTreeMap::from([("in".to_string(), Ipld::Link(inner))])),
        );
        let r = resolve(&store, root, "/in/list/1").unwrap();
        assert_eq!((r.cid, r.rem_path.as_str()), (leaf, ""));
        assert_eq!(r.value, Ipld::Bytes(b"hi".to_vec()));
        let r = resolve(&store, root, "in/list/0").unwrap();
        assert_eq!((r.cid, r.rem_path.as_str()), (inner, "list/0"));
        assert_eq!(r.value, Ipld::Integer(5));
        let r = resolve(&store, root, "").unwrap();
        assert_eq!(r.cid, root);
        assert!(matches!(
            resolve(&store, root, "in/nope"),
            Err(DagError::NoSuchPath { cid, ref name }) if cid == inner && name == "nope"
        ));
        assert!(resolve(&store, root, "in/list/9").is_err());
    }
}

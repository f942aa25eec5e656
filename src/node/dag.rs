//! IPLD on a node: `dag get`, `dag put`, `dag resolve` and `object stat`,
//! over any codec [`crate::dag::ipld`] reads.

use super::{Node, NodeError};
use crate::block::{parse_cid, Block, Cid, CidFormat, HashAlg, DAG_PB, MAX_BLOCK_BYTES};
use crate::dag::ipld::{self, Resolved};
use crate::dag::pb::PbNode;
use crate::dag::BlockSource;

/// How `dag put` reads its input and stores it.
#[derive(Clone, Copy, Debug)]
pub struct DagPutOptions {
    /// The codec of the input (`dag-json` in Kubo).
    pub input_codec: u64,
    /// The codec the block is stored in (`dag-cbor` in Kubo).
    pub store_codec: u64,
    /// The hash of the stored block's CID (CIDv1).
    pub hash: HashAlg,
    /// Pin the block recursively (its links must be stored).
    pub pin: bool,
}

/// `object stat`: a block's sizes, as Kubo reports them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ObjectStat {
    /// The block.
    pub cid: Cid,
    /// Links it holds.
    pub num_links: u64,
    /// Its encoded bytes.
    pub block_size: u64,
    /// dag-pb: the bytes that are not `Data` (links and framing).
    pub links_size: u64,
    /// dag-pb: its `Data` bytes; other codecs: the whole block.
    pub data_size: u64,
    /// dag-pb: the block plus every link's `Tsize`; others: the block.
    pub cumulative_size: u64,
}

/// The root CID of `path` (`CID[/path]` or `/ipfs/CID[/path]`) and the
/// path below it.
pub fn split_path(path: &str) -> Result<(Cid, &str), NodeError> {
    let root = parse_cid(path)?;
    let trimmed = path.trim().trim_start_matches("/ipfs/");
    Ok((root, trimmed.split_once('/').map_or("", |(_, r)| r)))
}

impl Node {
    /// Follows `path` through IPLD data, reading blocks from `source`.
    pub fn dag_resolve_in(
        &self,
        source: &dyn BlockSource,
        path: &str,
    ) -> Result<Resolved, NodeError> {
        let (root, rest) = split_path(path)?;
        Ok(ipld::resolve(source, root, rest)?)
    }

    /// [`dag_resolve_in`](Self::dag_resolve_in) on local blocks.
    pub fn dag_resolve(&self, path: &str) -> Result<Resolved, NodeError> {
        self.dag_resolve_in(&*self.source(), path)
    }

    /// Stores `input` (decoded under `opts.input_codec`, refused if it does
    /// not decode) as one block in `opts.store_codec`; returns its CID.
    pub fn dag_put(&self, input: &[u8], opts: DagPutOptions) -> Result<Cid, NodeError> {
        let value = ipld::decode(opts.input_codec, input).map_err(NodeError::DagInput)?;
        let data = ipld::encode(opts.store_codec, &value).map_err(NodeError::DagInput)?;
        let format = CidFormat {
            version: 1,
            hash: opts.hash,
        };
        let block = Block::new(format, opts.store_codec, data);
        block.check_size()?;
        let cid = *block.cid();
        self.store.put(block)?;
        if opts.pin {
            self.pin_add(&cid, true)?;
        }
        Ok(cid)
    }

    /// The sizes of the block at `path`, reading blocks from `source`.
    pub fn object_stat_in(
        &self,
        source: &dyn BlockSource,
        path: &str,
    ) -> Result<ObjectStat, NodeError> {
        let resolved = self.dag_resolve_in(source, path)?;
        let cid = resolved.cid;
        let block = source.block(&cid).map_err(NodeError::Dag)?;
        let len = block.data().len() as u64;
        if cid.codec() == DAG_PB {
            let node = PbNode::decode(block.data()).map_err(|source| {
                NodeError::Dag(crate::dag::DagError::Undecodable { cid, source })
            })?;
            let data_size = node.data.as_ref().map_or(0, |d| d.len() as u64);
            return Ok(ObjectStat {
                cid,
                num_links: node.links.len() as u64,
                block_size: len,
                links_size: len - data_size,
                data_size,
                cumulative_size: node
                    .links
                    .iter()
                    .fold(len, |sum, l| sum.saturating_add(l.tsize)),
            });
        }
        let value = ipld::load(source, &cid)?;
        Ok(ObjectStat {
            cid,
            num_links: ipld::links(&value).len() as u64,
            block_size: len,
            links_size: 0,
            data_size: len,
            cumulative_size: len,
        })
    }

    /// [`object_stat_in`](Self::object_stat_in) on local blocks.
    pub fn object_stat(&self, path: &str) -> Result<ObjectStat, NodeError> {
        self.object_stat_in(&*self.source(), path)
    }
}

/// The largest input `dag put` reads for one block: a block's limit, with
/// room for a text encoding (DAG-JSON's base64 bytes) of a full block.
pub const MAX_DAG_PUT_INPUT: usize = MAX_BLOCK_BYTES * 2;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::block::{DAG_CBOR, DAG_JSON, RAW};

    fn node() -> Node {
        Node::in_memory(crate::node::Config::default(), [7; 32])
    }

    fn opts(input_codec: u64, store_codec: u64) -> DagPutOptions {
        DagPutOptions {
            input_codec,
            store_codec,
            hash: HashAlg::Sha2_256,
            pin: false,
        }
    }

    #[test]
    fn put_then_get_and_stat_through_links() {
        let n = node();
        let leaf = n
            .dag_put(br#"{"/":{"bytes":"aGk"}}"#, opts(DAG_JSON, RAW))
            .unwrap();
        assert_eq!(leaf.codec(), RAW);
        let doc = format!(r#"{{"hello":"world","leaf":{{"/":"{leaf}"}}}}"#);
        let mut o = opts(DAG_JSON, DAG_CBOR);
        o.pin = true;
        let root = n.dag_put(doc.as_bytes(), o).unwrap();
        assert!(root.to_string().starts_with("bafyrei"), "{root}");
        assert_eq!(n.pin_ls(&["recursive"]).unwrap().len(), 1);
        let r = n.dag_resolve(&format!("/ipfs/{root}/hello")).unwrap();
        assert_eq!((r.cid, r.rem_path.as_str()), (root, "hello"));
        assert_eq!(r.value, ipld::Ipld::String("world".into()));
        assert_eq!(n.dag_resolve(&format!("{root}/leaf")).unwrap().cid, leaf);
        let stat = n.object_stat(&root.to_string()).unwrap();
        assert_eq!(stat.num_links, 1);
        assert_eq!(stat.block_size, stat.data_size);
    }

    #[test]
    fn bad_or_oversized_input_is_refused() {
        let n = node();
        let bad = n.dag_put(b"{\"a\":", opts(DAG_JSON, DAG_CBOR)).unwrap_err();
        assert!(matches!(bad, NodeError::DagInput(_)), "{bad}");
        // A link whose target is absent cannot be pinned recursively.
        let dangling = r#"{"/":"bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy"}"#;
        let mut o = opts(DAG_JSON, DAG_CBOR);
        o.pin = true;
        assert!(n.dag_put(dangling.as_bytes(), o).is_err());
        let big = format!(r#""{}""#, "x".repeat(MAX_BLOCK_BYTES));
        let err = n
            .dag_put(big.as_bytes(), opts(DAG_JSON, DAG_CBOR))
            .unwrap_err();
        assert!(
            matches!(
                err,
                NodeError::Block(crate::block::BlockError::TooLarge { .. })
            ),
            "{err}"
        );
    }

    #[test]
    fn dag_pb_stats_as_kubo() {
        let n = node();
        let file = n
            .dag_put(br#"{"/":{"bytes":"aGk"}}"#, opts(DAG_JSON, RAW))
            .unwrap();
        let dir = format!(
            r#"{{"Data":{{"/":{{"bytes":"CAE"}}}},"Links":[{{"Hash":{{"/":"{file}"}},"Name":"f","Tsize":2}}]}}"#
        );
        let cid = n.dag_put(dir.as_bytes(), opts(DAG_JSON, DAG_PB)).unwrap();
        let s = n.object_stat(&cid.to_string()).unwrap();
        let len = n.block_stat(&cid).unwrap();
        assert_eq!(
            (s.num_links, s.block_size, s.data_size, s.links_size),
            (1, len, 2, len - 2)
        );
        assert_eq!(s.cumulative_size, len + 2);
        assert_eq!(n.dag_resolve(&format!("{cid}/f")).unwrap().cid, file);
    }
}

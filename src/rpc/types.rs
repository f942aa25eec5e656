//! The RPC API's JSON bodies, as serde types shared by the server (which
//! serializes them) and the client (which deserializes them, a missing field
//! being an error). Field names are Kubo's (`rename_all = "PascalCase"`,
//! `ID` and the like spelled out); cairn's own bodies (`pin/status`) keep
//! their lower-case names. Fields are declared in alphabetical order of their
//! wire names, the order the API has always sent them in.

use crate::node::{Node, NodeError};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// An error, in Kubo's shape: status 500 (`Code` 0, the node's fault) or 400
/// (`Code` 1, the caller's); also a line of a JSON-lines stream that fails.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ErrorBody {
    /// 0: the node failed; 1: the request was wrong.
    pub code: u8,
    /// What went wrong.
    pub message: String,
    /// Always `"error"`.
    pub r#type: String,
}

impl ErrorBody {
    /// The value of [`type`](Self::type) that marks an error.
    pub const TYPE: &'static str = "error";

    /// An error with `code` (0 or 1) and `message`.
    pub fn new(code: u8, message: impl Into<String>) -> ErrorBody {
        ErrorBody {
            code,
            message: message.into(),
            r#type: Self::TYPE.to_string(),
        }
    }
}

/// `id`: the node's identity (Kubo's `ipfs id`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct IdResponse {
    /// Listen addresses, each ending in `/p2p/<ID>`.
    pub addresses: Vec<String>,
    /// `cairn/<version>`.
    pub agent_version: String,
    /// The peer ID.
    #[serde(rename = "ID")]
    pub id: String,
    /// Protocols spoken, sorted.
    pub protocols: Vec<String>,
    /// The public key, protobuf-encoded, in base64.
    pub public_key: String,
}

impl IdResponse {
    /// `node`'s identity, listening on `addrs` (without `/p2p/`).
    pub fn for_node(node: &Node, addrs: &[String]) -> Result<IdResponse, NodeError> {
        use base64::Engine as _;
        let key = crate::net::swarm::keypair_from_seed(node.key_seed())?;
        let peer = key.public().to_peer_id();
        let mut protocols: Vec<String> = crate::net::bitswap::driver::PROTOCOLS
            .iter()
            .map(|s| s.to_string())
            .collect();
        protocols.push(node.config().net.kad_protocol.clone());
        protocols.extend(
            [
                "/ipfs/id/1.0.0",
                "/ipfs/id/push/1.0.0",
                "/ipfs/ping/1.0.0",
                crate::replicate::protocol::PROTOCOL,
            ]
            .map(String::from),
        );
        protocols.sort();
        Ok(IdResponse {
            addresses: addrs.iter().map(|a| format!("{a}/p2p/{peer}")).collect(),
            agent_version: format!("cairn/{}", env!("CARGO_PKG_VERSION")),
            id: peer.to_string(),
            protocols,
            public_key: base64::engine::general_purpose::STANDARD
                .encode(key.public().encode_protobuf()),
        })
    }
}

/// `version`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct VersionResponse {
    /// Source commit (empty: not recorded).
    pub commit: String,
    /// Go version in Kubo; empty here.
    pub golang: String,
    /// Repository format.
    pub repo: String,
    /// `<arch>/<os>`.
    pub system: String,
    /// cairn's version.
    pub version: String,
}

impl VersionResponse {
    /// This build's version answer.
    pub fn current() -> VersionResponse {
        VersionResponse {
            commit: String::new(),
            golang: String::new(),
            repo: "cairn-1".into(),
            system: format!("{}/{}", std::env::consts::ARCH, std::env::consts::OS),
            version: env!("CARGO_PKG_VERSION").into(),
        }
    }
}

/// `swarm/peers`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct SwarmPeers {
    /// Each connected peer.
    pub peers: Vec<SwarmPeer>,
}

/// One connected peer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct SwarmPeer {
    /// The connection's remote address.
    pub addr: String,
    /// The peer ID.
    pub peer: String,
}

/// A list of lines (`swarm/connect`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Strings {
    /// The lines.
    pub strings: Vec<String>,
}

/// One line of `routing/findprovs`: a routing event.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct RoutingEvent {
    /// Unused (empty).
    pub extra: String,
    /// Unused (empty).
    #[serde(rename = "ID")]
    pub id: String,
    /// The peers the event is about.
    pub responses: Vec<PeerInfo>,
    /// The event kind; [`RoutingEvent::PROVIDER`] names a provider.
    pub r#type: u8,
}

impl RoutingEvent {
    /// Kubo's event type for "found a provider".
    pub const PROVIDER: u8 = 4;

    /// A provider found.
    pub fn provider(peer: String) -> RoutingEvent {
        RoutingEvent {
            extra: String::new(),
            id: String::new(),
            responses: vec![PeerInfo {
                addrs: Vec::new(),
                id: peer,
            }],
            r#type: Self::PROVIDER,
        }
    }
}

/// A peer and the addresses known for it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct PeerInfo {
    /// Its addresses (may be empty).
    pub addrs: Vec<String>,
    /// The peer ID.
    #[serde(rename = "ID")]
    pub id: String,
}

/// `routing/reprovide`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ReprovideResponse {
    /// Announcements that failed since the node started.
    pub failed: u64,
    /// Keys announced by this call.
    pub keys: u64,
    /// Announcements made since the node started.
    pub provided: u64,
}

/// `stats/bw`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct BandwidthStats {
    /// Bytes a second in, recently.
    pub rate_in: f64,
    /// Bytes a second out, recently.
    pub rate_out: f64,
    /// Bytes in since start.
    pub total_in: u64,
    /// Bytes out since start.
    pub total_out: u64,
}

/// `bitswap/stat`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct BitswapStat {
    /// Fetch sessions running.
    pub active_sessions: u64,
    /// Blocks received (verified).
    pub blocks_received: u64,
    /// Blocks served.
    pub blocks_sent: u64,
    /// Bytes received.
    pub data_received: u64,
    /// Bytes served.
    pub data_sent: u64,
    /// Connected peers.
    pub peers: Vec<String>,
    /// Most peers any running session may ask.
    pub session_peers: u64,
    /// cairn's: each running fetch, for progress bars.
    pub sessions: Vec<SessionStat>,
}

/// One running fetch in [`BitswapStat`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct SessionStat {
    /// Blocks it received.
    pub blocks: u64,
    /// Their bytes.
    pub bytes: u64,
    /// Peers it may ask.
    pub peers: u64,
    /// What it fetches, when it was given a root.
    pub root: Option<String>,
    /// Peers that sent it a wanted block.
    pub senders: u64,
}

/// `ls`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct LsResponse {
    /// One per path asked about.
    pub objects: Vec<LsObject>,
}

/// One listed directory.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct LsObject {
    /// The path as asked.
    pub hash: String,
    /// Its entries.
    pub links: Vec<LsLink>,
}

/// One directory entry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct LsLink {
    /// The entry's CID.
    pub hash: String,
    /// Its name.
    pub name: String,
    /// File bytes (0 for a directory).
    pub size: u64,
    /// Symlink target in Kubo; empty here.
    pub target: String,
    /// [`LsLink::DIRECTORY`], [`LsLink::FILE`] or [`LsLink::SYMLINK`].
    pub r#type: u8,
}

impl LsLink {
    /// Kubo's type for a directory.
    pub const DIRECTORY: u8 = 1;
    /// Kubo's type for a file.
    pub const FILE: u8 = 2;
    /// Kubo's type for a symbolic link.
    pub const SYMLINK: u8 = 4;

    /// The entry of a UnixFS directory listing, as Kubo reports it (a
    /// directory's size is 0).
    pub fn from_entry(e: &crate::dag::reader::DirEntry) -> LsLink {
        let r#type = match e.kind {
            "directory" | "sharded directory" => Self::DIRECTORY,
            "symlink" => Self::SYMLINK,
            _ => Self::FILE,
        };
        LsLink {
            hash: e.cid.to_string(),
            name: e.name.clone(),
            size: if r#type == Self::DIRECTORY { 0 } else { e.size },
            target: String::new(),
            r#type,
        }
    }
}

/// One line of `add`: an entry added, or progress through a file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum AddEvent {
    /// An entry was added.
    Added(AddedLine),
    /// Bytes of a file read so far (with `progress=true`).
    Progress(AddProgress),
}

/// An entry `add` produced.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct AddedLine {
    /// Its CID.
    pub hash: String,
    /// Its path relative to the upload.
    pub name: String,
    /// Cumulative DAG size, as a decimal string (as Kubo sends it).
    pub size: String,
}

impl From<&crate::node::AddedEntry> for AddedLine {
    fn from(e: &crate::node::AddedEntry) -> AddedLine {
        AddedLine {
            hash: e.cid.to_string(),
            name: e.name.clone(),
            size: e.dag_size.to_string(),
        }
    }
}

/// Progress through one file of an `add`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct AddProgress {
    /// Bytes of the file read so far.
    pub bytes: u64,
    /// The file's path relative to the upload.
    pub name: String,
}

/// `pin/add`'s lines: progress, then the pins made.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum PinAddEvent {
    /// Blocks of the DAG present so far (with `progress=true`).
    Progress(PinProgress),
    /// The roots pinned: the last line.
    Done(Pins),
}

/// Progress of `pin/add`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct PinProgress {
    /// Blocks present so far.
    pub progress: u64,
}

/// Roots pinned or unpinned (`pin/add`, `pin/rm`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Pins {
    /// Their CIDs.
    pub pins: Vec<String>,
}

/// `pin/ls`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct PinLsResponse {
    /// Kubo's map: CID to its pin type.
    pub keys: BTreeMap<String, PinType>,
    /// cairn's: `[cid, type]` in listing order.
    pub order: Vec<(String, String)>,
}

/// A pin's type in [`PinLsResponse`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct PinType {
    /// `recursive`, `direct` or `indirect`.
    pub r#type: String,
}

/// `pin/status` (cairn's): where a replicated root's copies are.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PinStatus {
    /// The root.
    pub cid: String,
    /// Copies wanted.
    pub factor: u8,
    /// Each holder, closest to the root first.
    pub holders: Vec<HolderStatus>,
    /// Most copies placed.
    pub max: u8,
    /// Removed network-wide (a tombstone).
    pub removed: bool,
    /// `ok`, `repairing`, `under-replicated` or `removed`.
    pub state: String,
}

/// One holder in [`PinStatus`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HolderStatus {
    /// Its peer ID.
    pub peer: String,
    /// Since when (unix seconds) it is in this state, when known.
    pub since: Option<u64>,
    /// `pinned`, `pinning`, `unreachable` or `lost`.
    pub state: String,
}

/// `block/stat` and `block/put`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct BlockStat {
    /// The block's CID.
    pub key: String,
    /// Its bytes.
    pub size: u64,
}

/// One line of `dag/import`: a root, or the totals (the last line).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum DagImportEvent {
    /// A root named in the CAR header.
    Root(DagImportRoot),
    /// Blocks and bytes imported.
    Stats(DagImportStats),
}

/// A root line of `dag/import`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DagImportRoot {
    /// The root.
    pub root: ImportedRoot,
}

/// A root of a CAR and whether pinning it failed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ImportedRoot {
    /// The root's CID as a DAG-JSON link.
    pub cid: CidLink,
    /// Why pinning it failed; empty when it did not.
    pub pin_error_msg: String,
}

/// A DAG-JSON link: `{"/": "<cid>"}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CidLink {
    /// The CID.
    #[serde(rename = "/")]
    pub cid: String,
}

/// The totals line of `dag/import`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DagImportStats {
    /// The totals.
    pub stats: ImportStats,
}

/// Blocks and bytes a CAR brought.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ImportStats {
    /// Bytes of blocks that were new to the store.
    pub block_bytes_count: u64,
    /// Blocks read from the CAR.
    pub block_count: u64,
}

/// `repo/gc`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct GcResponse {
    /// Segments rewritten.
    pub compacted_segments: u64,
    /// Bytes freed on disk.
    pub reclaimed_bytes: u64,
    /// Blocks removed.
    pub removed_blocks: u64,
    /// Their bytes.
    pub removed_bytes: u64,
}

impl From<&crate::store::SweepReport> for GcResponse {
    fn from(r: &crate::store::SweepReport) -> GcResponse {
        GcResponse {
            compacted_segments: r.compacted_segments,
            reclaimed_bytes: r.reclaimed_bytes,
            removed_blocks: r.removed_blocks,
            removed_bytes: r.removed_bytes,
        }
    }
}

/// `repo/stat`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct RepoStatResponse {
    /// Bytes of live blocks.
    pub block_bytes: u64,
    /// Live blocks.
    pub num_objects: u64,
    /// Segment files.
    pub num_segments: u64,
    /// Pins.
    pub pins: u64,
    /// The repository directory (empty for an in-memory node).
    pub repo_path: String,
    /// Bytes of data the store's segments hold on disk (holes punched by
    /// garbage collection not counted).
    pub repo_size: u64,
    /// Each segment's use.
    pub segments: Vec<SegmentStat>,
    /// `cairn-repo@<version>`.
    pub version: String,
}

/// One segment in [`RepoStatResponse`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct SegmentStat {
    /// Bytes of the file holding data (its size less punched holes).
    #[serde(default)]
    pub data_bytes: u64,
    /// The segment file's size.
    pub file_bytes: u64,
    /// Its number.
    pub id: u32,
    /// Bytes of live blocks in it.
    pub live_bytes: u64,
}

impl From<&crate::node::RepoStat> for RepoStatResponse {
    fn from(st: &crate::node::RepoStat) -> RepoStatResponse {
        RepoStatResponse {
            block_bytes: st.store.block_bytes,
            num_objects: st.store.blocks,
            num_segments: st.store.segments,
            pins: st.store.pins,
            repo_path: st
                .path
                .as_ref()
                .map(|p| p.display().to_string())
                .unwrap_or_default(),
            repo_size: st.store.stored_bytes,
            segments: st
                .segments
                .iter()
                .map(|g| SegmentStat {
                    data_bytes: g.data_bytes,
                    file_bytes: g.file_bytes,
                    id: g.id,
                    live_bytes: g.live_bytes,
                })
                .collect(),
            version: format!("cairn-repo@{}", env!("CARGO_PKG_VERSION")),
        }
    }
}

/// `repo/verify`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct VerifyResponse {
    /// `[cid, why]` of each pin whose DAG is incomplete.
    pub broken_pins: Vec<(String, String)>,
    /// Blocks checked.
    pub checked: u64,
    /// Blocks whose bytes do not match their CID.
    pub corrupt: Vec<String>,
    /// `[cid, why]` of each block that could not be read.
    pub unreadable: Vec<(String, String)>,
}

impl From<&crate::node::VerifyReport> for VerifyResponse {
    fn from(r: &crate::node::VerifyReport) -> VerifyResponse {
        let pairs = |v: &[(crate::block::Cid, String)]| {
            v.iter().map(|(c, w)| (c.to_string(), w.clone())).collect()
        };
        VerifyResponse {
            broken_pins: pairs(&r.broken_pins),
            checked: r.checked,
            corrupt: r.corrupt.iter().map(|c| c.to_string()).collect(),
            unreadable: pairs(&r.unreadable),
        }
    }
}

/// A key: `key/gen`, `key/import`, and each entry of `key/list` and
/// `key/rm`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct KeyOutput {
    /// Its name (`self` for the node's key).
    pub name: String,
    /// Its IPNS name (base36 `k51...` by default, or the peer ID with
    /// `ipns-base=b58mh`).
    pub id: String,
}

/// `key/list` and `key/rm`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct KeyList {
    /// The keys.
    pub keys: Vec<KeyOutput>,
}

/// `key/rename`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct KeyRenameOutput {
    /// The old name.
    pub was: String,
    /// The new name.
    pub now: String,
    /// The key's IPNS name.
    pub id: String,
    /// Whether a key called `now` was replaced.
    pub overwrite: bool,
}

/// `name/publish`: the name and what it now points at.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct NamePublishOutput {
    /// The IPNS name (base36 `k51...`).
    pub name: String,
    /// The path published.
    pub value: String,
}

/// `name/resolve`: the path a name points at.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct NameResolveOutput {
    /// The path (with the asked name's own path appended).
    pub path: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wire<T: Serialize>(v: &T) -> String {
        serde_json::to_string(v).unwrap()
    }

    #[test]
    fn bodies_keep_their_wire_spelling() {
        assert_eq!(
            wire(&ErrorBody::new(1, "bad")),
            r#"{"Code":1,"Message":"bad","Type":"error"}"#
        );
        assert_eq!(
            wire(&RoutingEvent::provider("P".into())),
            r#"{"Extra":"","ID":"","Responses":[{"Addrs":[],"ID":"P"}],"Type":4}"#
        );
        let ls = LsResponse {
            objects: vec![LsObject {
                hash: "H".into(),
                links: vec![LsLink {
                    hash: "C".into(),
                    name: "a".into(),
                    size: 3,
                    target: String::new(),
                    r#type: LsLink::FILE,
                }],
            }],
        };
        assert_eq!(
            wire(&ls),
            r#"{"Objects":[{"Hash":"H","Links":[{"Hash":"C","Name":"a","Size":3,"Target":"","Type":2}]}]}"#
        );
        let root = DagImportEvent::Root(DagImportRoot {
            root: ImportedRoot {
                cid: CidLink { cid: "C".into() },
                pin_error_msg: String::new(),
            },
        });
        assert_eq!(
            wire(&root),
            r#"{"Root":{"Cid":{"/":"C"},"PinErrorMsg":""}}"#
        );
        let pins = PinLsResponse {
            keys: [(
                "C".to_string(),
                PinType {
                    r#type: "direct".into(),
                },
            )]
            .into(),
            order: vec![("C".into(), "direct".into())],
        };
        assert_eq!(
            wire(&pins),
            r#"{"Keys":{"C":{"Type":"direct"}},"Order":[["C","direct"]]}"#
        );
        let status = PinStatus {
            cid: "C".into(),
            factor: 2,
            holders: vec![HolderStatus {
                peer: "P".into(),
                since: None,
                state: "pinned".into(),
            }],
            max: 3,
            removed: false,
            state: "ok".into(),
        };
        assert_eq!(
            wire(&status),
            r#"{"cid":"C","factor":2,"holders":[{"peer":"P","since":null,"state":"pinned"}],"max":3,"removed":false,"state":"ok"}"#
        );
    }

    #[test]
    fn stream_lines_read_back_as_their_variant() {
        let added: AddEvent =
            serde_json::from_str(r#"{"Hash":"C","Name":"a","Size":"9"}"#).unwrap();
        assert!(matches!(added, AddEvent::Added(ref a) if a.size == "9"));
        let progress: AddEvent = serde_json::from_str(r#"{"Name":"a","Bytes":5}"#).unwrap();
        assert!(matches!(progress, AddEvent::Progress(ref p) if p.bytes == 5));
        let done: PinAddEvent = serde_json::from_str(r#"{"Pins":["C"]}"#).unwrap();
        assert_eq!(
            done,
            PinAddEvent::Done(Pins {
                pins: vec!["C".into()]
            })
        );
        let stats: DagImportEvent =
            serde_json::from_str(r#"{"Stats":{"BlockCount":2,"BlockBytesCount":7}}"#).unwrap();
        assert!(matches!(stats, DagImportEvent::Stats(_)));
    }

    #[test]
    fn a_missing_field_is_an_error() {
        assert!(serde_json::from_str::<BlockStat>(r#"{"Key":"C"}"#).is_err());
        assert!(serde_json::from_str::<AddEvent>(r#"{"Name":"a"}"#).is_err());
        assert!(serde_json::from_str::<GcResponse>("{}").is_err());
    }
}

//! The RPC API's JSON bodies, as serde types shared by the server (which
//! serializes them) and the client (which deserializes them, a missing field
//! being an error). Field names are Kubo's (`rename_all = "PascalCase"`,
//! `ID` and the like spelled out); cairn's own bodies (`pin/status`) keep
//! their lower-case names. Fields are declared in alphabetical order of their
//! wire names, the order the API has always sent them in.

mod content;
mod dag;
mod files;
mod logs;
mod names;
mod network;
mod pins;
mod pubsub;
mod repo;

pub use content::*;
pub use dag::*;
pub use files::*;
pub use logs::*;
pub use names::*;
pub use network::*;
pub use pins::*;
pub use pubsub::*;
pub use repo::*;

use serde::{Deserialize, Serialize};

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

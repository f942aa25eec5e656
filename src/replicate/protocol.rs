// Hand-written framing: this protocol's own wire format, bounded before allocating.
//! The replication protocol, `/cairn/replicate/1.0.0`: one request and one
//! response per stream, each a 4-byte big-endian length and a JSON object of
//! at most 256 KiB. Every message carries the sender's record of the root
//! (R, see [`super::record`]), so records spread (and tombstones win) with
//! every exchange.
//!
//! Requests:
//! - `{"record":R,"sample":[CID...],"type":"probe"}`: do you hold the root,
//!   and these blocks of it? → `{"has","pinned","pinning","record"}`
//! - `{"record":R,"type":"pin"}`: please hold a copy → `{"accepted",
//!   "reason","record"}` (refused when over quota or removed)
//! - `{"record":R,"type":"unpin"}`: R no longer lists you, or is a
//!   tombstone: drop the pin → `{"record"}`
//!
//! A response always carries all six fields (`accepted`, `has`, `pinned`,
//! `pinning`, `reason`, `record`, the last `null` when the responder has no
//! record); a missing one reads as false, empty or none. Fields are written
//! in alphabetical order, the order earlier versions wrote them in.

use super::record::Record;
use crate::block::{cid_from_text, Cid};
use futures::{AsyncReadExt, AsyncWriteExt};
use serde::de::{DeserializeOwned, Error as _};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The protocol name streams are opened with.
pub const PROTOCOL: &str = "/cairn/replicate/1.0.0";

/// Largest message either side accepts.
pub const MAX_MESSAGE_BYTES: usize = 256 * 1024;

/// Most sampled CIDs in a probe.
pub const MAX_SAMPLE: usize = 64;

/// Longest refusal reason kept from a peer, in characters.
const MAX_REASON_CHARS: usize = 500;

/// Errors reading or writing a message.
#[derive(Debug, thiserror::Error)]
pub enum ProtocolError {
    /// The stream failed.
    #[error("replication stream: {0}")]
    Io(#[from] std::io::Error),
    /// A message over [`MAX_MESSAGE_BYTES`], either way.
    #[error("message of {len} bytes over the {max}-byte limit")]
    TooLarge {
        /// The message's length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A message that does not parse as what was expected.
    #[error("malformed replication message: {0}")]
    Malformed(#[source] serde_json::Error),
    /// A message that could not be written as JSON.
    #[error("encoding a replication message: {0}")]
    Encode(#[source] serde_json::Error),
}

/// What one peer asks another.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(into = "RequestWire", from = "RequestWire")]
pub enum Request {
    /// Do you hold the root, and these blocks of it?
    Probe {
        /// The sender's record.
        record: Record,
        /// Blocks of the root's DAG to check (at most [`MAX_SAMPLE`]).
        sample: Vec<Cid>,
    },
    /// Please hold a copy.
    Pin {
        /// The sender's record, listing the receiver.
        record: Record,
    },
    /// The record no longer lists you, or is a tombstone: drop your pin.
    Unpin {
        /// The sender's record.
        record: Record,
    },
}

/// A request's JSON form (fields in alphabetical order).
#[derive(Serialize, Deserialize)]
struct RequestWire {
    record: Record,
    /// Probes only; `null` or missing reads as none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    sample: Option<Sample>,
    #[serde(rename = "type")]
    kind: RequestKind,
}

#[derive(Clone, Copy, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
enum RequestKind {
    Probe,
    Pin,
    Unpin,
}

/// Sampled CIDs, as strings; at most [`MAX_SAMPLE`].
struct Sample(Vec<Cid>);

impl Serialize for Sample {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.0.iter().map(|c| c.to_string()))
    }
}

impl<'de> Deserialize<'de> for Sample {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Sample, D::Error> {
        let list = Vec::<String>::deserialize(d)?;
        if list.len() > MAX_SAMPLE {
            return Err(D::Error::invalid_length(
                list.len(),
                &"at most 64 sampled CIDs",
            ));
        }
        list.iter()
            .map(|c| {
                cid_from_text(c)
                    .map_err(|e| D::Error::custom(format_args!("bad sampled CID {c:?}: {e}")))
            })
            .collect::<Result<_, _>>()
            .map(Sample)
    }
}

impl From<Request> for RequestWire {
    fn from(req: Request) -> RequestWire {
        let (record, sample, kind) = match req {
            Request::Probe { record, sample } => (record, Some(Sample(sample)), RequestKind::Probe),
            Request::Pin { record } => (record, None, RequestKind::Pin),
            Request::Unpin { record } => (record, None, RequestKind::Unpin),
        };
        RequestWire {
            record,
            sample,
            kind,
        }
    }
}

impl From<RequestWire> for Request {
    fn from(w: RequestWire) -> Request {
        let record = w.record;
        match w.kind {
            RequestKind::Probe => Request::Probe {
                record,
                sample: w.sample.map(|s| s.0).unwrap_or_default(),
            },
            RequestKind::Pin => Request::Pin { record },
            RequestKind::Unpin => Request::Unpin { record },
        }
    }
}

/// The answer to a request. Fields in alphabetical order (see the module
/// comment).
#[derive(Clone, Debug, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Response {
    /// A pin request was taken: the responder is fetching or holds a copy.
    pub accepted: bool,
    /// The responder has every sampled block.
    pub has: bool,
    /// The responder pins the root recursively.
    pub pinned: bool,
    /// The responder is fetching the root to hold it.
    pub pinning: bool,
    /// Why a pin request was refused (at most 500 characters are kept).
    #[serde(deserialize_with = "short_reason")]
    pub reason: String,
    /// The responder's record of the root after merging the request's.
    pub record: Option<Record>,
}

fn short_reason<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    let reason = String::deserialize(d)?;
    Ok(reason.chars().take(MAX_REASON_CHARS).collect())
}

impl Request {
    /// The sender's record of the root the request is about.
    pub fn record(&self) -> &Record {
        match self {
            Request::Probe { record, .. } | Request::Pin { record } | Request::Unpin { record } => {
                record
            }
        }
    }
}

/// Writes one framed JSON message.
pub async fn write_message<S, M>(stream: &mut S, message: &M) -> Result<(), ProtocolError>
where
    S: futures::AsyncWrite + Unpin,
    M: Serialize,
{
    let bytes = serde_json::to_vec(message).map_err(ProtocolError::Encode)?;
    if bytes.len() > MAX_MESSAGE_BYTES {
        return Err(ProtocolError::TooLarge {
            len: bytes.len(),
            max: MAX_MESSAGE_BYTES,
        });
    }
    stream
        .write_all(&(bytes.len() as u32).to_be_bytes())
        .await?;
    stream.write_all(&bytes).await?;
    stream.flush().await?;
    Ok(())
}

/// Reads one framed JSON message (bounded) as an `M`.
pub async fn read_message<S, M>(stream: &mut S) -> Result<M, ProtocolError>
where
    S: futures::AsyncRead + Unpin,
    M: DeserializeOwned,
{
    let mut len = [0u8; 4];
    stream.read_exact(&mut len).await?;
    let len = u32::from_be_bytes(len) as usize;
    if len > MAX_MESSAGE_BYTES {
        return Err(ProtocolError::TooLarge {
            len,
            max: MAX_MESSAGE_BYTES,
        });
    }
    // Grown as bytes arrive: a length prefix alone reserves nothing.
    let mut buf = Vec::new();
    (&mut *stream)
        .take(len as u64)
        .read_to_end(&mut buf)
        .await?;
    if buf.len() < len {
        return Err(ProtocolError::Io(std::io::ErrorKind::UnexpectedEof.into()));
    }
    serde_json::from_slice(&buf).map_err(ProtocolError::Malformed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use libp2p::PeerId;
    use std::str::FromStr;

    fn root() -> Cid {
        Cid::from_str("bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku").unwrap()
    }

    fn decode<M: DeserializeOwned>(json: &str) -> Result<M, serde_json::Error> {
        serde_json::from_str(json)
    }

    #[test]
    fn messages_round_trip_and_bad_ones_are_refused() {
        let rec = Record::new(root(), 3, 4, 9, PeerId::random());
        for req in [
            Request::Probe {
                record: rec.clone(),
                sample: vec![root()],
            },
            Request::Pin {
                record: rec.clone(),
            },
            Request::Unpin {
                record: rec.clone(),
            },
        ] {
            let json = serde_json::to_string(&req).unwrap();
            assert_eq!(decode::<Request>(&json).unwrap(), req);
        }
        let resp = Response {
            pinned: true,
            record: Some(rec.clone()),
            ..Response::default()
        };
        let json = serde_json::to_string(&resp).unwrap();
        assert_eq!(decode::<Response>(&json).unwrap(), resp);
        let record = String::from_utf8(rec.encode()).unwrap();
        assert!(decode::<Request>(r#"{"type": "boom"}"#).is_err());
        assert!(decode::<Request>(&format!(r#"{{"type":"boom","record":{record}}}"#)).is_err());
        assert!(decode::<Request>(r#"{"type":"pin"}"#).is_err(), "no record");
        let many = vec![format!("\"{}\"", root()); MAX_SAMPLE + 1].join(",");
        let probe = format!(r#"{{"type":"probe","record":{record},"sample":[{many}]}}"#);
        assert!(decode::<Request>(&probe).is_err(), "sample over the limit");
        let probe = format!(r#"{{"type":"probe","record":{record},"sample":["x"]}}"#);
        assert!(decode::<Request>(&probe).is_err(), "bad sampled CID");
        let long = decode::<Response>(&format!(r#"{{"reason":"{}"}}"#, "x".repeat(600)));
        assert_eq!(long.unwrap().reason.len(), MAX_REASON_CHARS);

        let mut framed = Vec::new();
        futures::executor::block_on(write_message(&mut framed, &resp)).unwrap();
        let mut cursor = futures::io::Cursor::new(framed);
        let read: Response = futures::executor::block_on(read_message(&mut cursor)).unwrap();
        assert_eq!(read, resp);
        let mut huge = futures::io::Cursor::new(vec![0xff, 0xff, 0xff, 0xff]);
        let read = futures::executor::block_on(read_message::<_, Response>(&mut huge));
        assert!(matches!(read, Err(ProtocolError::TooLarge { .. })));
    }

    /// Messages exactly as the previous version wrote them (captured from
    /// it) decode, and are written as the same bytes: peers running it
    /// understand this one and the other way round.
    #[test]
    fn messages_of_the_previous_version_decode_and_are_written_alike() {
        const RECORD: &str = r#"{"factor":3,"holders":["12D3KooWK99VoVxNE7XzyBwXEzW7xhK7Gpv85r9F3V3fyKSUKPH5"],"max":4,"removed":false,"root":"bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku","size":9,"version":1}"#;
        const TOMBSTONE: &str = r#"{"factor":3,"holders":["12D3KooWK99VoVxNE7XzyBwXEzW7xhK7Gpv85r9F3V3fyKSUKPH5"],"max":4,"removed":true,"root":"bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku","size":9,"version":7}"#;
        let peer =
            PeerId::from_str("12D3KooWK99VoVxNE7XzyBwXEzW7xhK7Gpv85r9F3V3fyKSUKPH5").unwrap();
        let record = Record::new(root(), 3, 4, 9, peer);
        let mut tombstone = record.clone();
        tombstone.removed = true;
        tombstone.version = 7;

        let probe = format!(
            r#"{{"record":{RECORD},"sample":["{}"],"type":"probe"}}"#,
            root()
        );
        let pin = format!(r#"{{"record":{RECORD},"type":"pin"}}"#);
        let unpin = format!(r#"{{"record":{RECORD},"type":"unpin"}}"#);
        let requests = [
            (
                probe,
                Request::Probe {
                    record: record.clone(),
                    sample: vec![root()],
                },
            ),
            (
                pin,
                Request::Pin {
                    record: record.clone(),
                },
            ),
            (
                unpin,
                Request::Unpin {
                    record: record.clone(),
                },
            ),
        ];
        for (json, req) in requests {
            assert_eq!(decode::<Request>(&json).unwrap(), req, "{json}");
            assert_eq!(serde_json::to_string(&req).unwrap(), json);
        }

        let empty = r#"{"accepted":false,"has":false,"pinned":false,"pinning":false,"reason":"","record":null}"#;
        let full = format!(
            r#"{{"accepted":false,"has":true,"pinned":true,"pinning":false,"reason":"over quota","record":{TOMBSTONE}}}"#
        );
        let responses = [
            (empty.to_string(), Response::default()),
            (
                full,
                Response {
                    pinned: true,
                    has: true,
                    reason: "over quota".into(),
                    record: Some(tombstone),
                    ..Response::default()
                },
            ),
        ];
        for (json, resp) in responses {
            assert_eq!(decode::<Response>(&json).unwrap(), resp, "{json}");
            assert_eq!(serde_json::to_string(&resp).unwrap(), json);
        }
        // The previous version read missing fields as false or none; so
        // does this one, and a probe without a sample samples nothing.
        assert_eq!(decode::<Response>("{}").unwrap(), Response::default());
        let bare = format!(r#"{{"record":{RECORD},"type":"probe"}}"#);
        assert_eq!(
            decode::<Request>(&bare).unwrap(),
            Request::Probe {
                record,
                sample: vec![]
            }
        );
    }
}

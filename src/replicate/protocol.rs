//! The replication protocol, `/cairn/replicate/1.0.0`: one request and one
//! response per stream, each a 4-byte big-endian length and a JSON object of
//! at most 256 KiB. Every message carries the sender's record of the root,
//! so records spread (and tombstones win) with every exchange.
//!
//! Requests:
//! - `{"type":"probe","record":R,"sample":[CID...]}`: do you hold the root,
//!   and these blocks of it? → `{"pinned","pinning","has","record"}`
//! - `{"type":"pin","record":R}`: please hold a copy → `{"accepted",
//!   "reason","record"}` (refused when over quota or removed)
//! - `{"type":"unpin","record":R}`: R no longer lists you, or is a
//!   tombstone: drop the pin → `{"record"}`

use super::record::Record;
use crate::block::Cid;
use futures::{AsyncReadExt, AsyncWriteExt};
use serde_json::{json, Value};
use std::str::FromStr;

pub const PROTOCOL: &str = "/cairn/replicate/1.0.0";

/// Largest message either side accepts.
pub const MAX_MESSAGE_BYTES: usize = 256 * 1024;

/// Most sampled CIDs in a probe.
pub const MAX_SAMPLE: usize = 64;

#[derive(Clone, Debug, PartialEq)]
pub enum Request {
    Probe { record: Record, sample: Vec<Cid> },
    Pin { record: Record },
    Unpin { record: Record },
}

#[derive(Clone, Debug, PartialEq, Default)]
pub struct Response {
    pub pinned: bool,
    pub pinning: bool,
    pub has: bool,
    pub accepted: bool,
    pub reason: String,
    pub record: Option<Record>,
}

impl Request {
    pub fn record(&self) -> &Record {
        match self {
            Request::Probe { record, .. } | Request::Pin { record } | Request::Unpin { record } => {
                record
            }
        }
    }

    pub fn to_json(&self) -> Value {
        match self {
            Request::Probe { record, sample } => json!({
                "type": "probe",
                "record": record.to_json(),
                "sample": sample.iter().map(|c| c.to_string()).collect::<Vec<_>>(),
            }),
            Request::Pin { record } => json!({ "type": "pin", "record": record.to_json() }),
            Request::Unpin { record } => json!({ "type": "unpin", "record": record.to_json() }),
        }
    }

    pub fn from_json(v: &Value) -> Result<Request, String> {
        let record = Record::from_json(&v["record"])?;
        match v["type"].as_str() {
            Some("probe") => {
                let list = v["sample"].as_array().cloned().unwrap_or_default();
                if list.len() > MAX_SAMPLE {
                    return Err(format!("sample of {} CIDs (max {MAX_SAMPLE})", list.len()));
                }
                let sample = list
                    .iter()
                    .map(|c| {
                        c.as_str()
                            .and_then(|s| Cid::from_str(s).ok())
                            .ok_or_else(|| format!("bad sampled CID {c}"))
                    })
                    .collect::<Result<_, _>>()?;
                Ok(Request::Probe { record, sample })
            }
            Some("pin") => Ok(Request::Pin { record }),
            Some("unpin") => Ok(Request::Unpin { record }),
            other => Err(format!("unknown request type {other:?}")),
        }
    }
}

impl Response {
    pub fn to_json(&self) -> Value {
        json!({
            "pinned": self.pinned,
            "pinning": self.pinning,
            "has": self.has,
            "accepted": self.accepted,
            "reason": self.reason,
            "record": self.record.as_ref().map(|r| r.to_json()),
        })
    }

    pub fn from_json(v: &Value) -> Result<Response, String> {
        let record = if v["record"].is_null() {
            None
        } else {
            Some(Record::from_json(&v["record"])?)
        };
        Ok(Response {
            pinned: v["pinned"].as_bool().unwrap_or(false),
            pinning: v["pinning"].as_bool().unwrap_or(false),
            has: v["has"].as_bool().unwrap_or(false),
            accepted: v["accepted"].as_bool().unwrap_or(false),
            reason: v["reason"]
                .as_str()
                .unwrap_or("")
                .chars()
                .take(500)
                .collect(),
            record,
        })
    }
}

/// Writes one framed JSON message.
pub async fn write_message<S: futures::AsyncWrite + Unpin>(
    stream: &mut S,
    value: &Value,
) -> std::io::Result<()> {
    let bytes = serde_json::to_vec(value).map_err(std::io::Error::other)?;
    if bytes.len() > MAX_MESSAGE_BYTES {
        return Err(std::io::Error::other("message over the size limit"));
    }
    stream
        .write_all(&(bytes.len() as u32).to_be_bytes())
        .await?;
    stream.write_all(&bytes).await?;
    stream.flush().await
}

/// Reads one framed JSON message (bounded).
pub async fn read_message<S: futures::AsyncRead + Unpin>(stream: &mut S) -> std::io::Result<Value> {
    let mut len = [0u8; 4];
    stream.read_exact(&mut len).await?;
    let len = u32::from_be_bytes(len) as usize;
    if len > MAX_MESSAGE_BYTES {
        return Err(std::io::Error::other(format!(
            "message of {len} bytes over the limit"
        )));
    }
    let mut buf = vec![0u8; len];
    stream.read_exact(&mut buf).await?;
    serde_json::from_slice(&buf).map_err(std::io::Error::other)
}

#[cfg(test)]
mod tests {
    use super::*;
    use libp2p::PeerId;

    #[test]
    fn messages_round_trip_and_bad_ones_are_refused() {
        let root =
            Cid::from_str("bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku").unwrap();
        let rec = Record::new(root, 3, 4, 9, PeerId::random());
        for req in [
            Request::Probe {
                record: rec.clone(),
                sample: vec![root],
            },
            Request::Pin {
                record: rec.clone(),
            },
            Request::Unpin {
                record: rec.clone(),
            },
        ] {
            assert_eq!(Request::from_json(&req.to_json()).unwrap(), req);
        }
        let resp = Response {
            pinned: true,
            record: Some(rec),
            ..Response::default()
        };
        assert_eq!(Response::from_json(&resp.to_json()).unwrap(), resp);
        assert!(Request::from_json(&json!({"type": "boom"})).is_err());
        let mut framed = Vec::new();
        futures::executor::block_on(write_message(&mut framed, &json!({"a": 1}))).unwrap();
        let mut cursor = futures::io::Cursor::new(framed);
        assert_eq!(
            futures::executor::block_on(read_message(&mut cursor)).unwrap(),
            json!({"a": 1})
        );
        let mut huge = futures::io::Cursor::new(vec![0xff, 0xff, 0xff, 0xff]);
        assert!(futures::executor::block_on(read_message(&mut huge)).is_err());
    }
}

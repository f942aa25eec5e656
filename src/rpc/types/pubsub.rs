//! Bodies of `pubsub/*` and the text encoding Kubo uses on its RPC for
//! topics and message bytes: multibase base64url (`u`, no padding), in
//! URL arguments and in the answers alike. `ls` and `peers` answer
//! [`Strings`](super::Strings).

use serde::{Deserialize, Serialize};

/// One message of a `pubsub/sub` stream (one JSON object a line). Empty
/// fields are left out, as Kubo's `omitempty` does.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PubsubMessage {
    /// The publisher's peer ID (plain text, not multibase).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub from: String,
    /// The payload, multibase base64url.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub data: String,
    /// The publisher's sequence number: 8 bytes big-endian, multibase.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub seqno: String,
    /// The topics, each multibase.
    #[serde(default, rename = "topicIDs", skip_serializing_if = "Vec::is_empty")]
    pub topic_ids: Vec<String>,
}

impl PubsubMessage {
    /// The line for a received message.
    pub fn from_received(m: &crate::net::pubsub::Received) -> PubsubMessage {
        PubsubMessage {
            from: m.from.to_string(),
            data: encode_multibase(&m.data),
            seqno: encode_multibase(&m.seqno.to_be_bytes()),
            topic_ids: vec![encode_multibase(m.topic.as_bytes())],
        }
    }

    /// The payload's bytes.
    pub fn data_bytes(&self) -> Result<Vec<u8>, String> {
        decode_multibase(&self.data)
    }
}

/// `bytes` as multibase base64url (`u...`), as Kubo writes topics and
/// data.
pub fn encode_multibase(bytes: &[u8]) -> String {
    multibase::encode(multibase::Base::Base64Url, bytes)
}

/// A `u...` multibase argument's bytes; Kubo's error text otherwise (any
/// other base is refused: it may not survive a URL).
pub fn decode_multibase(arg: &str) -> Result<Vec<u8>, String> {
    match multibase::decode(arg) {
        Err(e) => Err(format!("URL arg must be multibase encoded: {e}")),
        Ok((multibase::Base::Base64Url, bytes)) => Ok(bytes),
        Ok(_) => Err("URL arg must be base64url encoded".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topics_travel_as_kubos_multibase_base64url() {
        assert_eq!(encode_multibase(b"test-room"), "udGVzdC1yb29t");
        assert_eq!(decode_multibase("udGVzdC1yb29t").unwrap(), b"test-room");
        assert_eq!(encode_multibase(&[0xfb, 0xff]), "u-_8");
        let e = decode_multibase("foobar").unwrap_err();
        assert!(e.starts_with("URL arg must be multibase encoded"), "{e}");
        // base64 ('m') is multibase, but not URL-safe.
        let e = decode_multibase("mZm9vYmFyCg").unwrap_err();
        assert_eq!(e, "URL arg must be base64url encoded");
    }

    #[test]
    fn a_message_line_has_kubos_field_names_and_leaves_out_empty_ones() {
        let peer = libp2p::PeerId::random();
        let m = crate::net::pubsub::Received {
            from: peer,
            seqno: 0x0102_0304_0506_0708,
            topic: "t".into(),
            data: bytes::Bytes::from_static(b"hi"),
            via: None,
        };
        let line = serde_json::to_value(PubsubMessage::from_received(&m)).unwrap();
        assert_eq!(
            line,
            serde_json::json!({
                "from": peer.to_string(),
                "data": "uaGk",
                "seqno": "uAQIDBAUGBwg",
                "topicIDs": ["udA"],
            })
        );
        let empty = serde_json::to_string(&PubsubMessage::default()).unwrap();
        assert_eq!(empty, "{}");
    }
}

//! Bodies of the `log/*` commands (cairn's own, in Kubo's style: fields
//! PascalCase, message bytes multibase base64url as `pubsub/*` sends
//! them).

use serde::{Deserialize, Serialize};

/// One log: `log/create`, `log/follow`, and each entry of `log/ls`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct LogInfo {
    /// Bytes of messages in its chain.
    pub bytes: u64,
    /// Its newest batch's CID (empty: nothing appended yet).
    pub head: String,
    /// Its id (the peer ID of its key): what `log follow` takes.
    #[serde(rename = "ID")]
    pub id: String,
    /// Its local name.
    pub name: String,
    /// The offset the next message gets (the number of messages so far).
    pub next: u64,
    /// The first offset kept (its retention dropped the messages before).
    #[serde(default)]
    pub first: u64,
    /// `local` (appended to here) or `follow` (taken from its creator).
    pub origin: String,
    /// Copies the network keeps.
    pub replication: u8,
    /// How much is kept (`7d`, `10GiB`; empty: everything).
    pub retention: String,
}

/// `log/ls`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct LogList {
    /// The logs, by name.
    pub logs: Vec<LogInfo>,
}

/// `log/append`: where the messages went.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct LogAppended {
    /// Messages appended.
    pub count: u64,
    /// The offset of the first.
    pub first: u64,
    /// The log's head after the append.
    pub head: String,
    /// The offset the next message will get.
    pub next: u64,
}

/// One line of `log/read`: a message and its offset.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct LogMessage {
    /// The message, multibase base64url (`u...`).
    pub data: String,
    /// Its offset.
    pub offset: u64,
    /// On the first message only, when the read starts at the log's
    /// first kept offset because the one asked for (a group's committed
    /// offset, or 0 when none was given) was dropped by retention: that
    /// offset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub asked: Option<u64>,
}

/// `log/commit`: the offset a group committed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct LogCommitted {
    /// The group.
    pub group: String,
    /// The next offset it reads.
    pub offset: u64,
}

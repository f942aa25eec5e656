//! Durable logs: named, append-only sequences of messages with dense
//! offsets, stored as chains of batches ([`crate::dag::batch`]) and kept
//! like any other DAG (pinned, replicated, fetched by CID).
//!
//! - this file: [`Logs`], the logs of one node: create, append, read,
//!   list, consumer groups, and taking in batches fetched from peers;
//! - `append.rs`: appends, all or nothing and one at a time per log
//!   ([`Append`]);
//! - `pins.rs`: the pins of heads, marked as the logs', reconciled with
//!   the logs' states when they are opened; the logs as a
//!   [`PinHolder`](crate::node::PinHolder) of their heads and their roots
//!   of garbage collection;
//! - `retain.rs`: retention, a floor below which batches are dropped;
//! - `state.rs`: what the repo keeps of a log ([`LogState`]) and of its
//!   groups, and the rules for names and retention;
//! - [`announce`]: heads announced on a log's pub/sub topic, signed by
//!   the log's key;
//! - `error.rs`: [`LogError`].
//!
//! Write order of an append: the batches' blocks are made durable
//! (`put_many`), the new head is pinned recursively (it reaches every
//! older batch through `prev`), the log's state naming the new head is
//! written to the metadata journal (fsynced), and only then the old head's
//! pin goes. A crash before the state is written leaves the old head and
//! an extra pin; after it, the new head (its pin checked again when the
//! log is next opened). An append returns once its messages are durable.
//!
//! Reads find a batch by offset through an index of the chain kept in
//! memory (first offset → CID, built on the first read of a log by one
//! walk back from the head that checks every link, then extended as
//! batches are added): about 50 bytes a batch.
//!
//! Garbage collection must not run between an append's block write and
//! its pin: callers hold the node's GC lock around an append (from
//! [`Logs::begin_append`] to [`Logs::finish_append`]) and [`Logs::adopt`]
//! as `add` does.

pub mod announce;
mod append;
mod error;
mod pins;
mod retain;
pub mod state;

#[cfg(test)]
use pins::holds_pin;

pub use append::Append;
pub use error::LogError;
pub use retain::Dropped;
pub use state::{parse_retention, LogState, Origin, Retention};

use crate::block::{Block, Cid};
use crate::dag::batch::{self, LogBatch};
use crate::names::Keystore;
use crate::store::Store;
use bytes::Bytes;
use state::{check_name, group_key, meta_key, META_PREFIX};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};

/// The prefix of the keystore names of logs' keys.
pub const KEY_PREFIX: &str = "log-";

/// Most logs a node keeps.
pub const MAX_LOGS: usize = 1024;

/// A log and its name, as `log ls` lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogEntry {
    /// Its local name.
    pub name: String,
    /// What the repo keeps of it.
    pub state: LogState,
}

/// What an append made.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Appended {
    /// The offset of the first message appended.
    pub first: u64,
    /// The offset the next message will get.
    pub next: u64,
    /// The new head batch.
    pub head: Cid,
}

/// Messages read from a log.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReadChunk {
    /// Each message with its offset, in order, contiguous from the offset
    /// asked for.
    pub messages: Vec<(u64, Bytes)>,
    /// The offset after the last message returned (the one asked for if
    /// none).
    pub next: u64,
    /// The log's next offset: messages up to it exist.
    pub end: u64,
}

/// The logs of one node.
pub struct Logs {
    store: Arc<dyn Store>,
    keys: Arc<Keystore>,
    /// Held by every change of a log's state (create, append, adopt).
    write: Mutex<()>,
    /// Per log: first offset → batch, for logs read since they were opened.
    index: Mutex<HashMap<String, Arc<BTreeMap<u64, Cid>>>>,
    /// Per log: the turn an append holds from start to end.
    turns: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// Logs whose damaged state was warned about.
    warned: Mutex<HashSet<String>>,
    changes: tokio::sync::watch::Sender<u64>,
}

impl Logs {
    /// The logs kept in `store`, their keys in `keys`. Heads whose pin a
    /// crash left unmade are pinned again.
    pub fn open(store: Arc<dyn Store>, keys: Arc<Keystore>) -> Logs {
        let logs = Logs {
            store,
            keys,
            write: Mutex::new(()),
            index: Mutex::new(HashMap::new()),
            turns: Mutex::new(HashMap::new()),
            warned: Mutex::new(HashSet::new()),
            changes: tokio::sync::watch::channel(0).0,
        };
        if let Err(e) = logs.reconcile_pins() {
            tracing::warn!("logs: checking heads' pins: {e}");
        }
        logs
    }

    fn writing(&self) -> MutexGuard<'_, ()> {
        self.write.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn indexes(&self) -> MutexGuard<'_, HashMap<String, Arc<BTreeMap<u64, Cid>>>> {
        self.index.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A counter bumped whenever a log gets new messages (readers that
    /// follow wait on it).
    pub fn changes(&self) -> tokio::sync::watch::Receiver<u64> {
        self.changes.subscribe()
    }

    /// The state of log `name`.
    pub fn get(&self, name: &str) -> Result<LogState, LogError> {
        check_name("log", name)?;
        let bytes = self
            .store
            .meta_get(&meta_key(name))?
            .ok_or_else(|| LogError::NotFound {
                name: name.to_string(),
            })?;
        LogState::decode(name, &bytes)
    }

    /// Every log, by name. A log whose state does not read back is left
    /// out (with a warning, once), so the others go on working.
    pub fn list(&self) -> Result<Vec<LogEntry>, LogError> {
        let mut out = Vec::new();
        for (key, bytes) in self.store.meta_scan(META_PREFIX)? {
            let name = key[META_PREFIX.len()..].to_string();
            match LogState::decode(&name, &bytes) {
                Ok(state) => out.push(LogEntry { name, state }),
                Err(e) => {
                    let mut warned = self.warned.lock().unwrap_or_else(|e| e.into_inner());
                    if warned.insert(name) {
                        tracing::warn!("logs: skipped: {e}");
                    }
                }
            }
        }
        Ok(out)
    }

    fn put_state(&self, name: &str, state: &LogState) -> Result<(), LogError> {
        Ok(self
            .store
            .meta_put(&meta_key(name), Some(&state.encode()))?)
    }

    /// `log create`: a new, empty log called `name`, with a key of its own
    /// (`log-NAME` in the keystore) whose peer ID is the log's id.
    pub fn create(
        &self,
        name: &str,
        replication: u8,
        retention: Option<Retention>,
    ) -> Result<LogState, LogError> {
        check_name("log", name)?;
        if replication == 0 {
            return Err(LogError::Replication);
        }
        let _w = self.writing();
        self.check_new(name)?;
        let key_name = format!("{KEY_PREFIX}{name}");
        // A key of that name is not this log's (the log is new): taking
        // it would publish over its IPNS record.
        let id = match self.keys.get(&key_name) {
            Ok(_) => return Err(LogError::KeyExists { key: key_name }),
            Err(crate::names::KeyError::NotFound { .. }) => {
                self.keys.generate(&key_name, "ed25519")?.id
            }
            Err(e) => return Err(e.into()),
        };
        let state = LogState {
            id: id.to_string(),
            replication,
            retention,
            head: None,
            next: 0,
            floor: 0,
            batches: 0,
            bytes: 0,
            origin: Origin::Local,
        };
        self.put_state(name, &state)?;
        self.changes.send_modify(|n| *n += 1);
        Ok(state)
    }

    /// `log follow`: a log called `name` here that takes the batches of
    /// log `id` (created on another node) as they are announced.
    pub fn follow(&self, name: &str, id: &str, replication: u8) -> Result<LogState, LogError> {
        check_name("log", name)?;
        id.parse::<libp2p::PeerId>().map_err(|_| LogError::BadId {
            id: id.chars().take(80).collect(),
        })?;
        let _w = self.writing();
        if let Ok(existing) = self.get(name) {
            if existing.id == id && existing.origin == Origin::Follow {
                return Ok(existing);
            }
        }
        self.check_new(name)?;
        let state = LogState {
            id: id.to_string(),
            replication: replication.max(1),
            retention: None,
            head: None,
            next: 0,
            floor: 0,
            batches: 0,
            bytes: 0,
            origin: Origin::Follow,
        };
        self.put_state(name, &state)?;
        self.changes.send_modify(|n| *n += 1);
        Ok(state)
    }

    /// The key of local log `name` (it signs the log's announced heads
    /// and names it in IPNS).
    pub fn key(&self, name: &str) -> Result<libp2p::identity::Keypair, LogError> {
        check_name("log", name)?;
        Ok(self.keys.get(&format!("{KEY_PREFIX}{name}"))?)
    }

    fn check_new(&self, name: &str) -> Result<(), LogError> {
        if self.store.meta_get(&meta_key(name))?.is_some() {
            return Err(LogError::Exists {
                name: name.to_string(),
            });
        }
        if self.store.meta_scan(META_PREFIX)?.len() >= MAX_LOGS {
            return Err(LogError::TooMany { max: MAX_LOGS });
        }
        Ok(())
    }

    /// Adds the batches an append or adopt `made` on top of `old_head` to
    /// the cached index of `name`, if that index ends at `old_head`. An
    /// index that does not (a reader that built it from an older state
    /// stored it after an append) is dropped, never extended over a gap:
    /// the next read builds it again.
    fn extend_index(&self, name: &str, old_head: Option<Cid>, made: &[(u64, Cid)]) {
        let mut indexes = self.indexes();
        let Some(index) = indexes.get_mut(name) else {
            return;
        };
        if index.last_key_value().map(|(_, c)| *c) == old_head {
            // Copied only if a reader holds it meanwhile.
            Arc::make_mut(index).extend(made.iter().copied());
        } else {
            indexes.remove(name);
        }
    }

    /// The batch `cid` of the local store, decoded.
    fn batch(&self, cid: &Cid) -> Result<LogBatch, LogError> {
        let block = self
            .store
            .get(cid)?
            .ok_or(LogError::MissingBatch { cid: *cid })?;
        Ok(LogBatch::decode(&block)?)
    }

    /// The index of log `name` (built now if need be), checked against
    /// its state: first offset → batch.
    /// Shared, not copied: a read step costs a lookup, not a copy of
    /// the index.
    fn index_of(&self, name: &str, state: &LogState) -> Result<Arc<BTreeMap<u64, Cid>>, LogError> {
        if let Some(index) = self.indexes().get(name) {
            if index.last_key_value().map(|(_, c)| c.to_string()) == state.head {
                return Ok(Arc::clone(index));
            }
        }
        let mut index = BTreeMap::new();
        let mut at = state.head_cid(name)?;
        let mut newer: Option<(Cid, LogBatch)> = None;
        while let Some(cid) = at {
            let b = self.batch(&cid)?;
            match &newer {
                Some((ncid, n)) => batch::check_link(&state.id, *ncid, n, cid, &b)?,
                None if b.end() != state.next || b.log != state.id => {
                    return Err(LogError::Damaged {
                        name: name.to_string(),
                        reason: format!("its head {cid} ends at {}, not {}", b.end(), state.next),
                    })
                }
                None => {}
            }
            index.insert(b.first, cid);
            if b.first <= state.floor {
                // The oldest batch kept: retention dropped the ones below.
                break;
            }
            at = b.prev;
            newer = Some((cid, b));
        }
        let index = Arc::new(index);
        self.indexes().insert(name.to_string(), Arc::clone(&index));
        Ok(index)
    }

    /// `log read`: messages of log `name` from offset `from`, at most
    /// `max_messages` and about `max_bytes` (always one message if any).
    pub fn read(
        &self,
        name: &str,
        from: u64,
        max_messages: usize,
        max_bytes: usize,
    ) -> Result<ReadChunk, LogError> {
        let state = self.get(name)?;
        if from > state.next {
            return Err(LogError::BeyondEnd {
                offset: from,
                end: state.next,
            });
        }
        if from < state.floor {
            return Err(LogError::OffsetOutOfRange {
                name: name.to_string(),
                offset: from,
                first: state.floor,
            });
        }
        let mut chunk = ReadChunk {
            messages: Vec::new(),
            next: from,
            end: state.next,
        };
        if from == state.next || max_messages == 0 {
            return Ok(chunk);
        }
        let index = self.index_of(name, &state)?;
        let start = index.range(..=from).next_back().map_or(0, |(f, _)| *f);
        let mut bytes = 0usize;
        for cid in index.range(start..).map(|(_, c)| *c) {
            let b = self.batch(&cid)?;
            if b.first > chunk.next {
                // A hole in the index: never skip past it silently.
                self.indexes().remove(name);
                return Err(LogError::Damaged {
                    name: name.to_string(),
                    reason: format!("its index has no batch holding offset {}", chunk.next),
                });
            }
            for (i, m) in b.messages.into_iter().enumerate() {
                let offset = b.first + i as u64;
                if offset < from {
                    continue;
                }
                if chunk.messages.len() >= max_messages
                    || (!chunk.messages.is_empty() && bytes + m.len() > max_bytes)
                {
                    return Ok(chunk);
                }
                bytes += m.len();
                chunk.next = offset + 1;
                chunk.messages.push((offset, m));
            }
        }
        Ok(chunk)
    }

    /// The offset of the first message of batch `cid` of log `name`
    /// (`log read --from-cid`).
    pub fn offset_of(&self, name: &str, cid: &Cid) -> Result<u64, LogError> {
        let state = self.get(name)?;
        let index = self.index_of(name, &state)?;
        index
            .iter()
            .find(|(_, c)| *c == cid)
            .map(|(f, _)| *f)
            .ok_or(LogError::NotInLog {
                cid: *cid,
                name: name.to_string(),
            })
    }

    /// The offset group `group` of log `name` committed (0: none yet).
    pub fn committed(&self, name: &str, group: &str) -> Result<u64, LogError> {
        check_name("group", group)?;
        self.get(name)?;
        let Some(bytes) = self.store.meta_get(&group_key(name, group))? else {
            return Ok(0);
        };
        std::str::from_utf8(&bytes)
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| LogError::Damaged {
                name: name.to_string(),
                reason: format!("group {group}'s offset"),
            })
    }

    /// Commits `offset` (the next one group `group` will read) for log
    /// `name`, durably.
    pub fn commit(&self, name: &str, group: &str, offset: u64) -> Result<(), LogError> {
        check_name("group", group)?;
        let state = self.get(name)?;
        if offset > state.next {
            return Err(LogError::BeyondEnd {
                offset,
                end: state.next,
            });
        }
        let key = group_key(name, group);
        Ok(self
            .store
            .meta_put(&key, Some(offset.to_string().as_bytes()))?)
    }

    /// Takes in batches of followed log `name` fetched from peers,
    /// `newest` first, the oldest continuing the log's current head: each
    /// link is checked ([`batch::check_link`]) before anything is stored,
    /// then the blocks are stored, the newest pinned and made the head.
    /// With `restart`, the oldest may instead be the log's floor as its
    /// creator announced it (the batches below were dropped by retention
    /// and are never fetched): it must start at or after the local next
    /// offset, and becomes the local floor. Returns the new next offset.
    pub fn adopt(
        &self,
        name: &str,
        newest: Vec<(Block, LogBatch)>,
        restart: bool,
    ) -> Result<u64, LogError> {
        let _w = self.writing();
        let mut state = self.get(name)?;
        if state.origin != Origin::Follow {
            return Err(LogError::NotFollowed {
                name: name.to_string(),
            });
        }
        let Some((head_block, _)) = newest.first() else {
            return Ok(state.next);
        };
        let head = *head_block.cid();
        let old_head = state.head_cid(name)?;
        // Oldest first: it continues the current head.
        let mut made = Vec::with_capacity(newest.len());
        let mut prev: Option<(Cid, LogBatch)> = match old_head {
            Some(c) => Some((c, self.batch(&c)?)),
            None => None,
        };
        let mut bytes = 0u64;
        let mut floor = None;
        for (block, b) in newest.iter().rev() {
            if b.log != state.id {
                return Err(batch::BatchError::OtherLog {
                    cid: *block.cid(),
                    found: b.log.clone(),
                    expected: state.id.clone(),
                }
                .into());
            }
            let continues = prev.as_ref().is_some_and(|(pcid, _)| b.prev == Some(*pcid));
            match &prev {
                _ if restart
                    && made.is_empty()
                    && !continues
                    && b.first > 0
                    && b.first >= state.next =>
                {
                    // The creator's floor: the chain kept starts here.
                    if b.prev.is_none() {
                        return Err(LogError::Batch(batch::BatchError::BadStart {
                            cid: *block.cid(),
                            first: b.first,
                            has_prev: b.prev.is_some(),
                        }));
                    }
                    floor = Some(b.first);
                }
                Some((pcid, p)) => batch::check_link(&state.id, *block.cid(), b, *pcid, p)?,
                None if b.first != 0 || b.prev.is_some() => {
                    return Err(LogError::Batch(batch::BatchError::BadStart {
                        cid: *block.cid(),
                        first: b.first,
                        has_prev: b.prev.is_some(),
                    }))
                }
                None => {}
            }
            made.push((b.first, *block.cid()));
            bytes += b.message_bytes() as u64;
            prev = Some((*block.cid(), b.clone()));
        }
        let next = prev.as_ref().map_or(state.next, |(_, b)| b.end());
        let count = newest.len() as u64;
        self.store
            .put_many(&mut newest.into_iter().map(|(block, _)| block))?;
        if let Some(f) = floor {
            // What was kept below is dropped: the kept chain starts anew.
            state.floor = f;
            state.batches = 0;
            state.bytes = 0;
        }
        self.pin_head(name, &head, state.head_pin_kind())?;
        state.head = Some(head.to_string());
        state.next = next;
        state.batches += count;
        state.bytes += bytes;
        self.put_state(name, &state)?;
        self.let_go(name, old_head);
        if floor.is_some() {
            self.indexes().remove(name);
        } else {
            self.extend_index(name, old_head, &made);
        }
        self.changes.send_modify(|n| *n += 1);
        Ok(next)
    }
}

/// The clock in unix milliseconds (0 before 1970).
pub(crate) fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

#[cfg(test)]
mod tests;

//! Appends: all or nothing, one at a time per log.
//!
//! An append that arrives in parts (an upload read as it streams) is an
//! [`Append`]: it takes the log's append turn ([`Logs::append_turn`]) so
//! no other append to the log runs until it ends, each part's batches are
//! stored as they are made ([`Logs::append_part`], blocks durable but not
//! pinned: the caller holds garbage collection off until the end), and
//! only [`Logs::finish_append`] pins the new head and writes the log's
//! state. An append dropped before its finish (a line over the limit, a
//! broken upload, a full disk) leaves the log as it was: its batches are
//! unreachable blocks the next garbage collection removes, and a retry
//! appends them once.

use super::{now_ms, Appended, LogError, Logs, Origin};
use crate::block::{Block, Cid};
use crate::dag::batch::{LogBatch, MAX_BATCH_BYTES, MAX_BATCH_MESSAGES, MAX_MESSAGE_BYTES};
use bytes::Bytes;
use std::sync::Arc;
use tokio::sync::{Mutex as TurnLock, OwnedMutexGuard};

/// An append under way: batches stored, the log's state not yet moved.
pub struct Append {
    name: String,
    _turn: OwnedMutexGuard<()>,
    id: String,
    old_head: Option<Cid>,
    /// The newest batch stored so far (the old head before any).
    pub(super) prev: Option<Cid>,
    first: u64,
    next: u64,
    bytes: u64,
    /// Each batch stored: its first offset and CID, oldest first.
    made: Vec<(u64, Cid)>,
    time_ms: u64,
}

impl Append {
    /// Messages taken so far.
    pub fn count(&self) -> u64 {
        self.next - self.first
    }
}

impl Logs {
    /// The lock an append to log `name` holds from start to end (one
    /// append at a time per log, so each append's messages stay
    /// contiguous). Checks the log exists and is appended to here.
    pub fn append_turn(&self, name: &str) -> Result<Arc<TurnLock<()>>, LogError> {
        let state = self.get(name)?;
        if state.origin != Origin::Local {
            return Err(LogError::NotWritable {
                name: name.to_string(),
            });
        }
        let mut turns = self.turns.lock().unwrap_or_else(|e| e.into_inner());
        Ok(Arc::clone(turns.entry(name.to_string()).or_default()))
    }

    /// Starts an append to log `name`, holding its turn.
    pub fn begin_append(&self, name: &str, turn: OwnedMutexGuard<()>) -> Result<Append, LogError> {
        let state = self.get(name)?;
        if state.origin != Origin::Local {
            return Err(LogError::NotWritable {
                name: name.to_string(),
            });
        }
        let old_head = state.head_cid(name)?;
        Ok(Append {
            name: name.to_string(),
            _turn: turn,
            id: state.id,
            old_head,
            prev: old_head,
            first: state.next,
            next: state.next,
            bytes: 0,
            made: Vec::new(),
            time_ms: now_ms(),
        })
    }

    /// Stores `messages` as batches continuing `tx`, durably but
    /// unpinned (the caller holds garbage collection off until
    /// [`Logs::finish_append`]). Messages beyond a batch's bounds go in
    /// several batches, chained. On an error the append must be dropped.
    pub fn append_part(&self, tx: &mut Append, messages: Vec<Bytes>) -> Result<(), LogError> {
        if let Some(m) = messages.iter().find(|m| m.len() > MAX_MESSAGE_BYTES) {
            return Err(LogError::MessageTooLarge {
                bytes: m.len(),
                max: MAX_MESSAGE_BYTES,
            });
        }
        let mut blocks: Vec<Block> = Vec::new();
        let (mut prev, mut next, mut all_bytes) = (tx.prev, tx.next, tx.bytes);
        let mut made = Vec::new();
        let mut rest = messages.into_iter().peekable();
        while rest.peek().is_some() {
            let mut batch = LogBatch {
                log: tx.id.clone(),
                first: next,
                messages: Vec::new(),
                prev,
                time_ms: tx.time_ms,
            };
            let mut bytes = 0usize;
            while let Some(m) = rest.peek() {
                if batch.messages.len() == MAX_BATCH_MESSAGES || bytes + m.len() > MAX_BATCH_BYTES {
                    break;
                }
                bytes += m.len();
                batch.messages.extend(rest.next());
            }
            let block = batch.encode()?;
            prev = Some(*block.cid());
            made.push((batch.first, *block.cid()));
            next = batch.end();
            all_bytes += bytes as u64;
            blocks.push(block);
        }
        self.store.put_many(&mut blocks.into_iter())?;
        tx.prev = prev;
        tx.next = next;
        tx.bytes = all_bytes;
        tx.made.extend(made);
        Ok(())
    }

    /// Ends append `tx`: pins its newest batch and makes it the log's
    /// head (the state written and fsynced), so every message of it is
    /// in the log, or (on an error) none.
    pub fn finish_append(&self, tx: Append) -> Result<Appended, LogError> {
        let (Some(head), false) = (tx.prev, tx.made.is_empty()) else {
            return Err(LogError::Empty);
        };
        let name = tx.name.as_str();
        let _w = self.writing();
        let mut state = self.get(name)?;
        if state.head_cid(name)? != tx.old_head || state.next != tx.first {
            // Appends hold the log's turn: only a bug gets here.
            return Err(LogError::Damaged {
                name: name.to_string(),
                reason: "its head moved during an append".into(),
            });
        }
        self.pin_head(name, &head, state.head_pin_kind())?;
        state.head = Some(head.to_string());
        state.next = tx.next;
        state.batches += tx.made.len() as u64;
        state.bytes += tx.bytes;
        self.put_state(name, &state)?;
        self.let_go(name, tx.old_head);
        self.extend_index(name, tx.old_head, &tx.made);
        // The append is durable whatever retention does now.
        if let Err(e) = self.retain_locked(name, &mut state, now_ms()) {
            tracing::warn!(log = name, "logs: applying the retention: {e}");
        }
        self.changes.send_modify(|n| *n += 1);
        Ok(Appended {
            first: tx.first,
            next: tx.next,
            head,
        })
    }

    /// `log append` in one call: `messages` at the end of log `name`,
    /// durable when this returns. Not for async contexts (it waits for
    /// the log's turn).
    pub fn append(&self, name: &str, messages: Vec<Bytes>) -> Result<Appended, LogError> {
        if let Some(m) = messages.iter().find(|m| m.len() > MAX_MESSAGE_BYTES) {
            return Err(LogError::MessageTooLarge {
                bytes: m.len(),
                max: MAX_MESSAGE_BYTES,
            });
        }
        let turn = self.append_turn(name)?.blocking_lock_owned();
        let mut tx = self.begin_append(name, turn)?;
        if messages.is_empty() {
            return Err(LogError::Empty);
        }
        self.append_part(&mut tx, messages)?;
        self.finish_append(tx)
    }
}

//! Retention: a log created with `--retention 7d|10GiB` keeps only its
//! newest batches.
//!
//! A log keeps a floor in its state ([`LogState::floor`]): the first
//! offset kept, where the oldest kept batch starts. Batches older than
//! the retention's age, or beyond its size counted back from the head,
//! are dropped by moving the floor up, always keeping the head batch. A
//! log with a retention pins its head directly, not recursively, and its
//! kept batches (head to floor) are roots of garbage collection one by one
//! ([`Logs::gc_roots`]), so a dropped batch is reached by nothing and the
//! next `repo gc` frees it. Reads below the floor are refused
//! ([`LogError::OffsetOutOfRange`]).
//!
//! The creator runs retention after every append and periodically (the
//! daemon, for ages); its head announcements carry the floor, and a
//! follower never fetches below it and moves its own floor with it
//! ([`Logs::raise_floor`]).

use super::{LogError, LogState, Logs, Origin, Retention};
use crate::store::PinKind;

/// What moving a log's floor dropped.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Dropped {
    /// The new floor: the first offset kept.
    pub floor: u64,
    /// Batches dropped.
    pub batches: u64,
    /// Their message bytes.
    pub bytes: u64,
}

impl Logs {
    /// Applies log `name`'s retention at `now_ms` (unix milliseconds):
    /// what it dropped, if anything. Only a log created here with a
    /// retention drops anything.
    pub fn retain(&self, name: &str, now_ms: u64) -> Result<Option<Dropped>, LogError> {
        let _w = self.writing();
        let mut state = self.get(name)?;
        let dropped = self.retain_locked(name, &mut state, now_ms)?;
        if dropped.is_some() {
            self.changes.send_modify(|n| *n += 1);
        }
        Ok(dropped)
    }

    /// [`Logs::retain`] for a caller holding the writer, `state` the
    /// log's current one (updated).
    pub(super) fn retain_locked(
        &self,
        name: &str,
        state: &mut LogState,
        now_ms: u64,
    ) -> Result<Option<Dropped>, LogError> {
        let (Some(retention), Origin::Local) = (state.retention, &state.origin) else {
            return Ok(None);
        };
        let Some(head) = state.head_cid(name)? else {
            return Ok(None);
        };
        let index = self.index_of(name, state)?;
        let start = index
            .range(..=state.floor)
            .next_back()
            .map_or(state.floor, |(f, _)| *f);
        let mut dropped = Dropped::default();
        let mut floor = state.floor;
        for (&first, cid) in index.range(start..) {
            floor = first;
            if *cid == head {
                break;
            }
            let b = self.batch(cid)?;
            let drop = match retention {
                Retention::Bytes(max) => state.bytes.saturating_sub(dropped.bytes) > max,
                Retention::Age(age) => {
                    let age_ms = u64::try_from(age.as_millis()).unwrap_or(u64::MAX);
                    b.time_ms.saturating_add(age_ms) < now_ms
                }
            };
            if !drop {
                break;
            }
            dropped.batches += 1;
            dropped.bytes += b.message_bytes() as u64;
        }
        if dropped.batches == 0 {
            return Ok(None);
        }
        dropped.floor = floor;
        self.set_floor(name, state, dropped)?;
        Ok(Some(dropped))
    }

    /// Followed log `name`: moves its floor up to `floor` as its creator
    /// announced it (to the start of the batch holding that offset), so
    /// the batches below are dropped here too.
    pub fn raise_floor(&self, name: &str, floor: u64) -> Result<Option<Dropped>, LogError> {
        let _w = self.writing();
        let mut state = self.get(name)?;
        if state.origin != Origin::Follow || floor <= state.floor || state.head.is_none() {
            return Ok(None);
        }
        let index = self.index_of(name, &state)?;
        let Some((&to, _)) = index.range(..=floor.min(state.next)).next_back() else {
            return Ok(None);
        };
        if to <= state.floor {
            return Ok(None);
        }
        let mut dropped = Dropped {
            floor: to,
            ..Dropped::default()
        };
        for cid in index.range(..to).map(|(_, c)| *c) {
            dropped.batches += 1;
            dropped.bytes += self.batch(&cid)?.message_bytes() as u64;
        }
        self.set_floor(name, &mut state, dropped)?;
        self.changes.send_modify(|n| *n += 1);
        Ok(Some(dropped))
    }

    /// Writes log `name`'s new floor (`dropped.floor`) and counts, then
    /// makes its head's pin direct (the kept batches are garbage
    /// collection's roots through the state from now on) and trims the
    /// cached index.
    fn set_floor(
        &self,
        name: &str,
        state: &mut LogState,
        dropped: Dropped,
    ) -> Result<(), LogError> {
        state.floor = dropped.floor;
        state.batches = state.batches.saturating_sub(dropped.batches);
        state.bytes = state.bytes.saturating_sub(dropped.bytes);
        self.put_state(name, state)?;
        if let Some(head) = state.head_cid(name)? {
            // A crash before this leaves a recursive pin that keeps more
            // than needed, made direct when the logs are next opened.
            self.pin_head(name, &head, PinKind::Direct)?;
        }
        let mut indexes = self.indexes();
        if let Some(index) = indexes.get_mut(name) {
            let kept = std::sync::Arc::make_mut(index).split_off(&dropped.floor);
            *index = std::sync::Arc::new(kept);
        }
        tracing::debug!(
            log = name,
            floor = dropped.floor,
            batches = dropped.batches,
            "logs: retention dropped old batches"
        );
        Ok(())
    }
}

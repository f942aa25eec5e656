//! The group commit's queue: writes wait in it for their group with no
//! thread of their own (each for its answer on a channel), and one leader
//! at a time, on a blocking thread, commits groups from it until it is
//! empty ([`BucketIndex::commit_group`]).

use super::{GroupPut, PutDone, MAX_GROUP, MAX_GROUP_BYTES, MAX_WAITING};
use crate::s3::index::BucketIndex;
use crate::s3::S3Error;
use std::any::Any;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::sync::{oneshot, OwnedSemaphorePermit, Semaphore};

/// One write waiting for its group: where its answer goes, its room in
/// the queue, and what it holds until committed.
struct Queued {
    put: GroupPut,
    weight: usize,
    answer: oneshot::Sender<Result<PutDone, S3Error>>,
    _room: OwnedSemaphorePermit,
    _hold: Option<Box<dyn Any + Send>>,
}

/// The writes waiting for a group, and whether a leader commits them.
#[derive(Default)]
struct Waiting {
    queue: VecDeque<Queued>,
    leading: bool,
}

/// The group commit's queue (one per index). Waiting writes hold no
/// thread: each waits for its answer on a channel, and one leader at a
/// time (on a blocking thread) commits groups until the queue is empty.
pub struct GroupCommit {
    waiting: Mutex<Waiting>,
    /// [`MAX_WAITING`] places in the queue.
    room: Arc<Semaphore>,
}

impl Default for GroupCommit {
    fn default() -> Self {
        GroupCommit {
            waiting: Mutex::default(),
            room: Arc::new(Semaphore::new(MAX_WAITING)),
        }
    }
}

/// The answer of a write whose group never finished.
fn stopped() -> S3Error {
    S3Error::GroupCommit {
        why: "the group's commit stopped".into(),
    }
}

/// Ends a leader's turn if it panics: the writes of its group are
/// answered with an error (their senders dropped), and so are those still
/// queued, so that no write waits for a leader that is gone.
struct Leading<'a>(&'a GroupCommit);

impl Drop for Leading<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.0.stop();
        }
    }
}

/// A leader's turn on a blocking thread: dropped unrun (the runtime
/// shutting down), it answers the queue with an error instead.
struct Turn {
    index: Arc<BucketIndex>,
    ran: bool,
}

impl Drop for Turn {
    fn drop(&mut self) {
        if !self.ran {
            self.index.group.stop();
        }
    }
}

impl GroupCommit {
    fn lock(&self) -> MutexGuard<'_, Waiting> {
        self.waiting.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Ends the leader's turn with no more commits: every queued write
    /// is answered with an error.
    fn stop(&self) {
        let mut w = self.lock();
        w.leading = false;
        for q in w.queue.drain(..) {
            let _ = q.answer.send(Err(stopped()));
        }
    }

    /// Queues `put`; its answer's channel, and whether the caller must
    /// start a leader (none is running).
    fn enqueue(
        &self,
        put: GroupPut,
        room: OwnedSemaphorePermit,
        hold: Option<Box<dyn Any + Send>>,
    ) -> (oneshot::Receiver<Result<PutDone, S3Error>>, bool) {
        let weight = put.weight();
        let (answer, rx) = oneshot::channel();
        let mut w = self.lock();
        w.queue.push_back(Queued {
            put,
            weight,
            answer,
            _room: room,
            _hold: hold,
        });
        let lead = !w.leading;
        w.leading = true;
        (rx, lead)
    }

    /// Commits groups from the queue until it is empty (the leader's
    /// turn). Blocks.
    fn lead(&self, index: &BucketIndex) {
        let _turn = Leading(self);
        loop {
            let group = {
                let mut w = self.lock();
                if w.queue.is_empty() {
                    w.leading = false;
                    return;
                }
                take_group(&mut w.queue)
            };
            let mut answers_to = Vec::with_capacity(group.len());
            let mut puts = Vec::with_capacity(group.len());
            let mut held = Vec::with_capacity(group.len());
            for q in group {
                answers_to.push(q.answer);
                puts.push(q.put);
                held.push((q._room, q._hold));
            }
            let answers = index.commit_group(puts);
            for (to, answer) in answers_to.into_iter().zip(answers) {
                let _ = to.send(answer);
            }
        }
    }
}

/// Starts a leader for `index`'s queue: on a blocking thread of the
/// runtime, or (outside one: unit tests' threads) on this thread.
fn start_leader(index: &Arc<BucketIndex>) {
    let mut turn = Turn {
        index: Arc::clone(index),
        ran: false,
    };
    match tokio::runtime::Handle::try_current() {
        Ok(runtime) => {
            runtime.spawn_blocking(move || {
                turn.ran = true;
                turn.index.group.lead(&turn.index);
            });
        }
        Err(_) => {
            turn.ran = true;
            index.group.lead(index);
        }
    }
}

/// The first writes of `queue`, up to the group's bounds (at least one).
fn take_group(queue: &mut VecDeque<Queued>) -> Vec<Queued> {
    let mut group = Vec::new();
    let mut bytes = 0usize;
    while let Some(q) = queue.front() {
        if !group.is_empty() && (group.len() >= MAX_GROUP || bytes + q.weight > MAX_GROUP_BYTES) {
            break;
        }
        bytes += q.weight;
        group.extend(queue.pop_front());
    }
    group
}

impl BucketIndex {
    /// Commits `put` with the other writes waiting (see `group.rs`);
    /// returns once it is durable (or failed). Blocks: call it
    /// on a blocking thread.
    pub fn commit_put(self: &Arc<Self>, put: GroupPut) -> Result<PutDone, S3Error> {
        let room = Arc::clone(&self.group.room);
        let room = futures::executor::block_on(room.acquire_owned()).map_err(|_| stopped())?;
        let (answer, lead) = self.group.enqueue(put, room, None);
        if lead {
            start_leader(self);
        }
        answer.blocking_recv().unwrap_or_else(|_| Err(stopped()))
    }

    /// [`commit_put`](Self::commit_put) without a thread while it waits;
    /// `hold` (the GC lock's guard) is let go once the write is committed,
    /// even if the caller stops waiting.
    pub async fn commit_put_async(
        self: &Arc<Self>,
        put: GroupPut,
        hold: Box<dyn Any + Send>,
    ) -> Result<PutDone, S3Error> {
        let room = Arc::clone(&self.group.room);
        let room = room.acquire_owned().await.map_err(|_| stopped())?;
        let (answer, lead) = self.group.enqueue(put, room, Some(hold));
        if lead {
            start_leader(self);
        }
        answer.await.unwrap_or_else(|_| Err(stopped()))
    }
}

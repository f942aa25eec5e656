//! Durable logs: `log/create`, `log/follow`, `log/append`, `log/read`,
//! `log/commit` and `log/ls` (cairn's own commands, shaped as Kubo's:
//! the log's name in `arg`, options in the query, the appended data as a
//! multipart file, `read` answered as JSON lines).
//!
//! `append` splits its file at newlines, one message a line (a last line
//! without a newline is a message too), and appends a batch whenever
//! [`APPEND_MESSAGES`] lines or [`APPEND_BYTES`] are waiting, so the
//! upload is never held whole. The upload is one append, all or nothing
//! ([`Append`]): its batches are stored as it streams, and the log's head
//! moves once, after its last line, only if the whole upload was good (a
//! line over the limit or a broken upload appends nothing, so a retry
//! does not append twice). Two uploads to one log take turns, each one's
//! messages contiguous.

use super::upload::UploadError;
use super::{bad_request, internal, json_lines_or_error, ApiError, ApiState, Line, Params};
use crate::block::parse_cid;
use crate::dag::batch::{MAX_BATCH_BYTES, MAX_BATCH_MESSAGES, MAX_MESSAGE_BYTES};
use crate::log::{parse_retention, Append, LogError, LogState, Logs, Origin, Retention};
use crate::rpc::types::{
    encode_multibase, LogAppended, LogCommitted, LogInfo, LogList, LogMessage,
};
use axum::extract::{FromRequest, Multipart, RawQuery, Request, State};
use axum::response::Response;
use axum::Json;
use bytes::{Bytes, BytesMut};
use std::sync::Arc;
use tokio::sync::mpsc;

/// Lines waiting before they are appended as one step.
pub const APPEND_MESSAGES: usize = MAX_BATCH_MESSAGES;

/// Bytes waiting before they are appended as one step.
pub const APPEND_BYTES: usize = MAX_BATCH_BYTES;

/// Messages read from the store per step of a `read`.
const READ_MESSAGES: usize = 1024;

/// Message bytes read from the store per step of a `read`.
const READ_BYTES: usize = 1 << 20;

/// A log failure as an answer: the caller's mistakes are 400.
pub(super) fn log_err(e: LogError) -> ApiError {
    if e.is_bad_request() {
        bad_request(e)
    } else {
        internal(e)
    }
}

/// Runs blocking log work on a blocking thread.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, LogError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| internal(format!("worker thread: {e}")))?
        .map_err(log_err)
}

fn logs(s: &ApiState) -> Arc<Logs> {
    Arc::clone(s.online.node().logs())
}

/// How `log ls` shows a log.
pub(super) fn info(name: &str, state: &LogState) -> LogInfo {
    LogInfo {
        bytes: state.bytes,
        head: state.head.clone().unwrap_or_default(),
        id: state.id.clone(),
        name: name.to_string(),
        next: state.next,
        first: state.floor,
        origin: match state.origin {
            Origin::Local => "local",
            Origin::Follow => "follow",
        }
        .to_string(),
        replication: state.replication,
        retention: match state.retention {
            None => String::new(),
            Some(Retention::Age(d)) => humantime::format_duration(d).to_string(),
            Some(Retention::Bytes(b)) => format!("{b}B"),
        },
    }
}

fn replication(q: &Params, s: &ApiState) -> Result<u8, ApiError> {
    let default = s.online.node().config().replication.factor;
    Ok(q.num::<u8>("replication")?.unwrap_or(default).max(1))
}

pub(super) async fn create(
    State(s): State<ApiState>,
    RawQuery(q): RawQuery,
) -> Result<Json<LogInfo>, ApiError> {
    let q = Params::parse(q);
    let name = q.arg()?.to_string();
    let factor = q.num::<u8>("replication")?;
    if factor == Some(0) {
        return Err(log_err(LogError::Replication));
    }
    let factor = factor.map_or_else(|| replication(&q, &s), Ok)?;
    let retention = q
        .single("retention")?
        .map(parse_retention)
        .transpose()
        .map_err(log_err)?;
    let logs = logs(&s);
    let state = {
        let name = name.clone();
        blocking(move || logs.create(&name, factor, retention)).await?
    };
    Ok(Json(info(&name, &state)))
}

pub(super) async fn follow(
    State(s): State<ApiState>,
    RawQuery(q): RawQuery,
) -> Result<Json<LogInfo>, ApiError> {
    let q = Params::parse(q);
    let id = q.arg()?.to_string();
    let name = q.single("name")?.unwrap_or(id.as_str()).to_string();
    let factor = replication(&q, &s)?;
    let state = s
        .online
        .follow_log(&name, &id, factor)
        .await
        .map_err(log_err)?;
    Ok(Json(info(&name, &state)))
}

pub(super) async fn ls(State(s): State<ApiState>) -> Result<Json<LogList>, ApiError> {
    let logs = logs(&s);
    let list = blocking(move || logs.list()).await?;
    Ok(Json(LogList {
        logs: list.iter().map(|e| info(&e.name, &e.state)).collect(),
    }))
}

pub(super) async fn commit(
    State(s): State<ApiState>,
    RawQuery(q): RawQuery,
) -> Result<Json<LogCommitted>, ApiError> {
    let q = Params::parse(q);
    let name = q.arg()?.to_string();
    let group = q
        .single("group")?
        .ok_or_else(|| bad_request("argument \"group\" is required"))?
        .to_string();
    let offset = q
        .num::<u64>("offset")?
        .ok_or_else(|| bad_request("argument \"offset\" is required"))?;
    let logs = logs(&s);
    let g = group.clone();
    blocking(move || logs.commit(&name, &g, offset)).await?;
    Ok(Json(LogCommitted { group, offset }))
}

/// Stores `pending` (if any) as batches of append `tx`, which it hands
/// back (an error drops it: nothing of the upload is appended).
async fn store_part(
    s: &ApiState,
    mut tx: Append,
    pending: &mut Vec<Bytes>,
) -> Result<Append, ApiError> {
    if pending.is_empty() {
        return Ok(tx);
    }
    let messages = std::mem::take(pending);
    let logs = logs(s);
    blocking(move || logs.append_part(&mut tx, messages).map(|()| tx)).await
}

pub(super) async fn append(
    State(s): State<ApiState>,
    RawQuery(q): RawQuery,
    req: Request,
) -> Result<Json<LogAppended>, ApiError> {
    let q = Params::parse(q);
    let name = q.arg()?.to_string();
    let mut multipart = Multipart::from_request(req, &()).await.map_err(|e| {
        bad_request(format!(
            "the data must be a multipart file: {}",
            e.body_text()
        ))
    })?;
    let result = append_from(&s, &name, &mut multipart).await;
    if result.is_err() {
        // A client still sending its file would see a broken pipe, not
        // the answer: read (and drop) a bounded rest of the upload first.
        drain(&mut multipart).await;
    }
    result
}

/// Most bytes of a refused upload read before the answer.
const DRAIN_BYTES: usize = 64 << 20;

async fn drain(multipart: &mut Multipart) {
    let mut read = 0usize;
    while let Ok(Some(mut field)) = multipart.next_field().await {
        while let Ok(Some(chunk)) = field.chunk().await {
            read += chunk.len();
            if read > DRAIN_BYTES {
                return;
            }
        }
    }
}

async fn append_from(
    s: &ApiState,
    name: &str,
    multipart: &mut Multipart,
) -> Result<Json<LogAppended>, ApiError> {
    // The log exists and takes appends before any byte is taken; then
    // it is this upload's alone until its end.
    let turn = {
        let logs = logs(s);
        let n = name.to_string();
        blocking(move || logs.append_turn(&n)).await?
    };
    let turn = turn.lock_owned().await;
    // The batches stay unpinned until the end: no GC meanwhile.
    let _gc = s.online.gc_lock().read().await;
    let mut tx = {
        let logs = logs(s);
        let n = name.to_string();
        blocking(move || logs.begin_append(&n, turn)).await?
    };
    let mut field = multipart
        .next_field()
        .await
        .map_err(UploadError::from)?
        .ok_or(UploadError::Empty)?;
    let mut line = BytesMut::new();
    let mut pending: Vec<Bytes> = Vec::new();
    let mut pending_bytes = 0usize;
    let too_long = || {
        log_err(LogError::MessageTooLarge {
            bytes: MAX_MESSAGE_BYTES + 1,
            max: MAX_MESSAGE_BYTES,
        })
    };
    while let Some(chunk) = field.chunk().await.map_err(UploadError::from)? {
        let mut rest = &chunk[..];
        while !rest.is_empty() {
            let (part, ended) = match rest.iter().position(|b| *b == b'\n') {
                Some(i) => (&rest[..i], true),
                None => (rest, false),
            };
            if line.len() + part.len() > MAX_MESSAGE_BYTES {
                return Err(too_long());
            }
            line.extend_from_slice(part);
            rest = &rest[(part.len() + usize::from(ended))..];
            if ended {
                let m = line.split().freeze();
                pending_bytes += m.len();
                pending.push(m);
                if pending.len() >= APPEND_MESSAGES || pending_bytes >= APPEND_BYTES {
                    tx = store_part(s, tx, &mut pending).await?;
                    pending_bytes = 0;
                }
            }
        }
    }
    if !line.is_empty() {
        pending.push(line.freeze());
    }
    tx = store_part(s, tx, &mut pending).await?;
    let count = tx.count();
    let logs = logs(s);
    let a = blocking(move || logs.finish_append(tx)).await?;
    Ok(Json(LogAppended {
        count,
        first: a.first,
        head: a.head.to_string(),
        next: a.next,
    }))
}

pub(super) async fn read(
    State(s): State<ApiState>,
    RawQuery(q): RawQuery,
) -> Result<Response, ApiError> {
    let q = Params::parse(q);
    let name = q.arg()?.to_string();
    let follow = q.bool("follow", false)?;
    let from = q.num::<u64>("from")?;
    let from_cid = q
        .single("from-cid")?
        .map(|c| parse_cid(c).map_err(bad_request))
        .transpose()?;
    let group = q.single("group")?.map(str::to_string);
    if from.is_some() && from_cid.is_some() {
        return Err(bad_request("give --from or --from-cid, not both"));
    }
    let logs = logs(&s);
    // An offset given below the floor is refused; one the read chose (a
    // group's, or the start) begins at the floor, the first line saying so.
    let (start, mut asked) = {
        let logs = Arc::clone(&logs);
        let name = name.clone();
        blocking(move || {
            let floor = logs.get(&name)?.floor;
            let asked = match (from, from_cid, group) {
                (Some(o), _, _) if o < floor => {
                    return Err(LogError::OffsetOutOfRange {
                        name: name.clone(),
                        offset: o,
                        first: floor,
                    })
                }
                (Some(o), _, _) => o,
                (None, Some(c), _) => logs.offset_of(&name, &c)?,
                (None, None, Some(g)) => logs.committed(&name, &g)?,
                (None, None, None) => 0,
            };
            Ok(if asked < floor {
                (floor, Some(asked))
            } else {
                (asked, None)
            })
        })
        .await?
    };
    let (tx, rx) = mpsc::channel::<Line<LogMessage>>(256);
    let mut changes = logs.changes();
    tokio::spawn(async move {
        let mut at = start;
        loop {
            // Seen before reading, so a change while reading wakes the wait.
            changes.borrow_and_update();
            let (l, n) = (Arc::clone(&logs), name.clone());
            let chunk =
                tokio::task::spawn_blocking(move || l.read(&n, at, READ_MESSAGES, READ_BYTES))
                    .await
                    .map_err(|e| LogError::Damaged {
                        name: name.clone(),
                        reason: format!("worker thread: {e}"),
                    })
                    .and_then(|r| r);
            let chunk = match chunk {
                Ok(c) => c,
                // Retention passed the reader meanwhile: on from the floor.
                Err(LogError::OffsetOutOfRange { first, .. }) if first > at => {
                    asked = asked.or(Some(at));
                    at = first;
                    continue;
                }
                Err(e) => {
                    let code = u8::from(e.is_bad_request());
                    let _ = tx
                        .send(Err(crate::rpc::types::ErrorBody::new(code, e.to_string())))
                        .await;
                    return;
                }
            };
            if chunk.messages.is_empty() {
                if !follow {
                    return;
                }
                // A client that went away ends the follow at once, not at
                // the next message (which may never come).
                tokio::select! {
                    changed = changes.changed() => if changed.is_err() { return },
                    () = tx.closed() => return,
                }
                continue;
            }
            at = chunk.next;
            for (offset, data) in chunk.messages {
                let line = LogMessage {
                    data: encode_multibase(&data),
                    offset,
                    asked: asked.take(),
                };
                if tx.send(Ok(line)).await.is_err() {
                    return;
                }
            }
        }
    });
    Ok(json_lines_or_error(rx).await)
}

//! Pins: `pin/add` (fetching the DAG, optionally replicated at a factor),
//! `pin/rm`, `pin/ls` and `pin/status` (cairn's: where a replicated root's
//! copies are).

use super::{
    bad_request, blocking, internal, json_lines, node_err, stream_error, ApiError, ApiState, Line,
    Params,
};
use crate::block::{parse_cid, Cid};
use crate::node::{NodeError, Unpinned};
use crate::rpc::types::{
    HolderStatus, PinAddEvent, PinLsResponse, PinProgress, PinStatus, PinType, Pins,
};
use axum::extract::{RawQuery, State};
use axum::response::Response;
use axum::Json;
use std::collections::BTreeMap;
use std::sync::Arc;
use tokio::sync::mpsc;

pub(super) async fn pin_add(
    State(s): State<ApiState>,
    RawQuery(q): RawQuery,
) -> Result<Response, ApiError> {
    let q = Params::parse(q);
    let recursive = q.bool("recursive", true)?;
    let progress = q.bool("progress", false)?;
    // cairn's extension: keep this many copies on live nodes.
    let replication = q.num::<u8>("replication")?;
    if replication.is_some() && !recursive {
        return Err(bad_request("replication needs a recursive pin"));
    }
    let paths: Vec<String> = q.all("arg").iter().map(|a| a.to_string()).collect();
    if paths.is_empty() {
        return Err(bad_request("argument \"arg\" is required"));
    }
    let mut cids = Vec::new();
    // Resolving stops fetching if the client goes away (this future dropped).
    let cancel = tokio_util::sync::CancellationToken::new();
    let _stop = cancel.clone().drop_guard();
    for p in &paths {
        parse_cid(p).map_err(bad_request)?;
        cids.push(
            s.online
                .resolve(p, cancel.clone())
                .await
                .map_err(node_err)?,
        );
    }
    let (tx, rx) = mpsc::channel::<Line<PinAddEvent>>(64);
    let online = Arc::clone(&s.online);
    tokio::spawn(async move {
        let _guard = online.gc_lock().read().await;
        let mut done = Vec::new();
        for cid in cids {
            let tx2 = tx.clone();
            let mut last = 0u64;
            let result = online
                .pin_add(cid, recursive, &mut |st| {
                    if progress && st.blocks >= last + 64 {
                        last = st.blocks;
                        let _ = tx2.try_send(Ok(PinAddEvent::Progress(PinProgress {
                            progress: st.blocks,
                        })));
                    }
                })
                .await;
            let failure = match (result, replication) {
                (Err(e), _) => Some(e.to_string()),
                (Ok(()), Some(factor)) => online
                    .replicator()
                    .pin(cid, Some(factor))
                    .await
                    .err()
                    .map(|e| e.to_string()),
                (Ok(()), None) => None,
            };
            if let Some(e) = failure {
                let _ = tx
                    .send(Err(stream_error(format!("pinning {cid}: {e}"))))
                    .await;
                return;
            }
            done.push(cid.to_string());
        }
        let _ = tx.send(Ok(PinAddEvent::Done(Pins { pins: done }))).await;
    });
    Ok(json_lines(rx))
}

pub(super) async fn pin_rm(
    State(s): State<ApiState>,
    RawQuery(q): RawQuery,
) -> Result<Json<Pins>, ApiError> {
    let q = Params::parse(q);
    let mut removed = Vec::new();
    for p in q.all("arg") {
        parse_cid(p).map_err(bad_request)?;
        let node = Arc::clone(s.online.node());
        let p = p.to_string();
        let cid = blocking(move || node.resolve(&p)).await?;
        let node = Arc::clone(s.online.node());
        let unpinned = tokio::task::spawn_blocking(move || node.pin_rm(&cid))
            .await
            .map_err(|e| internal(format!("worker thread: {e}")))?;
        match unpinned {
            // Still named by the S3 endpoint (its pin now): its
            // replication, if any, is not the user's to end.
            Ok(Unpinned::KeptBy(_)) => {}
            Err(e @ NodeError::HeldBy { .. }) => return Err(node_err(e)),
            // A replicated root is removed network-wide (a tombstone),
            // even where this node held no pin of its own.
            Ok(Unpinned::Removed(_)) => {
                s.online.replicator().unpin(&cid).await;
            }
            Err(e) => {
                if !s.online.replicator().unpin(&cid).await {
                    return Err(node_err(e));
                }
            }
        }
        removed.push(cid.to_string());
    }
    if removed.is_empty() {
        return Err(bad_request("argument \"arg\" is required"));
    }
    s.online.withdraw_stale().await;
    Ok(Json(Pins { pins: removed }))
}

pub(super) async fn pin_ls(
    State(s): State<ApiState>,
    RawQuery(q): RawQuery,
) -> Result<Json<PinLsResponse>, ApiError> {
    let q = Params::parse(q);
    let kind = q.get("type").unwrap_or("all").to_string();
    let kinds = crate::node::Node::pin_kinds(&kind).ok_or_else(|| {
        bad_request(format!(
            "unknown pin type {kind:?} (expected all, recursive, direct or indirect)"
        ))
    })?;
    let node = Arc::clone(s.online.node());
    let pins = blocking(move || node.pin_ls(kinds)).await?;
    let wanted: Vec<Cid> = q
        .all("arg")
        .iter()
        .map(|a| parse_cid(a).map_err(bad_request))
        .collect::<Result<_, _>>()?;
    // Kubo answers a map; `Order` keeps cairn's listing order for the CLI.
    let mut keys = BTreeMap::new();
    let mut order = Vec::new();
    for p in pins {
        if !wanted.is_empty() && !wanted.contains(&p.cid) {
            continue;
        }
        let r#type = p.kind.to_string();
        keys.insert(
            p.cid.to_string(),
            PinType {
                r#type: r#type.clone(),
            },
        );
        order.push((p.cid.to_string(), r#type));
    }
    // As Kubo: asking about something that is not pinned is an error.
    if let Some(c) = wanted.iter().find(|c| !keys.contains_key(&c.to_string())) {
        return Err(internal(format!("path '{c}' is not pinned")));
    }
    Ok(Json(PinLsResponse { keys, order }))
}

/// `pin status`: every holder of a replicated root with its state, and the
/// root's overall state (probed now).
pub(super) async fn pin_status(
    State(s): State<ApiState>,
    RawQuery(q): RawQuery,
) -> Result<Json<PinStatus>, ApiError> {
    let q = Params::parse(q);
    let cid = parse_cid(q.arg()?).map_err(bad_request)?;
    let st = s
        .online
        .replicator()
        .status(&cid)
        .await
        .map_err(|e| match e {
            crate::replicate::ReplicateError::Unknown { .. } => bad_request(e),
            other => internal(other),
        })?;
    let holders = st
        .holders
        .iter()
        .map(|h| HolderStatus {
            peer: h.peer.to_string(),
            since: h.since,
            state: h.state.as_str().to_string(),
        })
        .collect();
    let state = if st.record.removed {
        "removed"
    } else {
        st.state.as_str()
    };
    Ok(Json(PinStatus {
        cid: cid.to_string(),
        factor: st.record.factor,
        holders,
        max: st.record.max,
        removed: st.record.removed,
        state: state.to_string(),
    }))
}

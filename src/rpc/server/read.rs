//! Reading content: `cat` (a file's bytes), `get` (a tar of a file or
//! tree) and `ls` (a directory's entries), fetching from peers as needed.
//!
//! Content that is not local is read within a turn among remote fetches
//! ([`RemoteTurn`]), held until the response has been sent: a client that
//! goes away ends the fetches made for it and frees its turn at once.

use super::{bad_request, blocking, node_err, ApiError, ApiState, Params};
use crate::block::{parse_cid, Cid};
use crate::dag::reader::ReadOptions;
use crate::dag::BlockSource;
use crate::http::{holding, stream_blocking};
use crate::node::online::RemoteTurn;
use crate::rpc::types::{LsLink, LsObject, LsResponse};
use axum::body::Body;
use axum::extract::{RawQuery, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::Json;
use std::sync::Arc;

/// Takes the turn for reading the DAG under `root` (see `RemoteTurn`) and
/// resolves `path` within it.
pub(super) async fn resolve_in_turn(
    s: &ApiState,
    path: &str,
    root: Cid,
) -> Result<(Cid, RemoteTurn), ApiError> {
    let turn = s.online.remote_turn(root).await.map_err(node_err)?;
    let cid = s
        .online
        .resolve(path, turn.cancel_token())
        .await
        .map_err(node_err)?;
    Ok((cid, turn))
}

pub(super) async fn cat(
    State(s): State<ApiState>,
    RawQuery(q): RawQuery,
) -> Result<Response, ApiError> {
    let q = Params::parse(q);
    let (path, root) = q.path_arg()?;
    let offset = q.num::<u64>("offset")?.unwrap_or(0);
    let length = q.num::<u64>("length")?;
    if let Some(pieces) = s.online.node().held_read(&path, offset, length) {
        // All in memory: answered at once, no blocking reader, no copy.
        let body = Body::from_stream(futures::stream::iter(
            pieces.into_iter().map(Ok::<_, std::convert::Infallible>),
        ));
        let ctype = [(header::CONTENT_TYPE, "application/octet-stream")];
        return Ok((ctype, body).into_response());
    }
    let turn = s.online.remote_turn(root).await.map_err(node_err)?;
    let (reader, session) = s
        .online
        .cat_until(&path, offset, length, turn.cancel_token())
        .await
        .map_err(node_err)?;
    let online = Arc::clone(&s.online);
    let body = stream_blocking("application/octet-stream", move |out| {
        for chunk in reader {
            out.send(chunk?)?;
        }
        drop(session);
        drop(online);
        Ok(())
    });
    Ok(holding(body, turn))
}

pub(super) async fn get(
    State(s): State<ApiState>,
    RawQuery(q): RawQuery,
) -> Result<Response, ApiError> {
    let q = Params::parse(q);
    let (path, root) = q.path_arg()?;
    let (cid, turn) = resolve_in_turn(&s, &path, root).await?;
    let name = if cid == root {
        root.to_string()
    } else {
        path.trim_end_matches('/')
            .rsplit('/')
            .next()
            .unwrap_or("out")
            .to_string()
    };
    let source: Arc<dyn BlockSource> = s.online.source_until(Some(cid), turn.cancel_token());
    let online = Arc::clone(&s.online);
    let body = stream_blocking("application/x-tar", move |out| {
        let opts = ReadOptions::default().fetching_ahead(16 << 20);
        crate::dag::reader::export_tar(&source, cid, &name, opts, out)?;
        drop(online);
        Ok(())
    });
    Ok(holding(body, turn))
}

pub(super) async fn ls(
    State(s): State<ApiState>,
    RawQuery(q): RawQuery,
) -> Result<Json<LsResponse>, ApiError> {
    let q = Params::parse(q);
    let mut objects = Vec::new();
    for path in q.all("arg") {
        let root = parse_cid(path).map_err(bad_request)?;
        let cache = Arc::clone(s.online.node().resolve_cache());
        let remembered = s
            .online
            .node()
            .resolved(path)
            .and_then(|c| cache.listing(&c));
        let entries = match remembered {
            Some(entries) => entries,
            None => {
                // Dropped with this future when the client goes away.
                let (cid, turn) = resolve_in_turn(&s, path, root).await?;
                let source = s.online.source_until(Some(cid), turn.cancel_token());
                let entries = blocking(move || Ok(cache.list(&*source, &cid)?)).await?;
                drop(turn);
                entries
            }
        };
        objects.push(LsObject {
            hash: path.to_string(),
            links: entries.iter().map(LsLink::from_entry).collect(),
        });
    }
    if objects.is_empty() {
        return Err(bad_request("argument \"arg\" is required"));
    }
    Ok(Json(LsResponse { objects }))
}

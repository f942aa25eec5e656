//! Reading content: `cat` (a file's bytes), `get` (a tar of a file or
//! tree) and `ls` (a directory's entries), fetching from peers as needed.

use super::{bad_request, blocking, node_err, ApiError, ApiState, Params};
use crate::block::parse_cid;
use crate::dag::reader::ReadOptions;
use crate::dag::BlockSource;
use crate::http::stream_blocking;
use crate::rpc::types::{LsLink, LsObject, LsResponse};
use axum::extract::{RawQuery, State};
use axum::response::Response;
use axum::Json;
use std::sync::Arc;

pub(super) async fn cat(
    State(s): State<ApiState>,
    RawQuery(q): RawQuery,
) -> Result<Response, ApiError> {
    let q = Params::parse(q);
    let (path, _) = q.path_arg()?;
    let offset = q.num::<u64>("offset")?.unwrap_or(0);
    let length = q.num::<u64>("length")?;
    let (reader, session) = s
        .online
        .cat(&path, offset, length)
        .await
        .map_err(node_err)?;
    let online = Arc::clone(&s.online);
    Ok(stream_blocking("application/octet-stream", move |out| {
        for chunk in reader {
            out.send(chunk?)?;
        }
        drop(session);
        drop(online);
        Ok(())
    }))
}

pub(super) async fn get(
    State(s): State<ApiState>,
    RawQuery(q): RawQuery,
) -> Result<Response, ApiError> {
    let q = Params::parse(q);
    let (path, root) = q.path_arg()?;
    let cid = s.online.resolve(&path).await.map_err(node_err)?;
    let name = if cid == root {
        root.to_string()
    } else {
        path.trim_end_matches('/')
            .rsplit('/')
            .next()
            .unwrap_or("out")
            .to_string()
    };
    let session = s.online.session(Some(cid)).await.map_err(node_err)?;
    let source: Arc<dyn BlockSource> = Arc::new(session);
    let online = Arc::clone(&s.online);
    Ok(stream_blocking("application/x-tar", move |out| {
        let opts = ReadOptions::default().fetching_ahead(64);
        crate::dag::reader::export_tar(&source, cid, &name, opts, out)?;
        drop(online);
        Ok(())
    }))
}

pub(super) async fn ls(
    State(s): State<ApiState>,
    RawQuery(q): RawQuery,
) -> Result<Json<LsResponse>, ApiError> {
    let q = Params::parse(q);
    let mut objects = Vec::new();
    for path in q.all("arg") {
        parse_cid(path).map_err(bad_request)?;
        let cid = s.online.resolve(path).await.map_err(node_err)?;
        let session = s.online.session(Some(cid)).await.map_err(node_err)?;
        let entries = blocking(move || Ok(crate::dag::reader::list(&session, &cid)?)).await?;
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

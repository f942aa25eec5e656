//! DAGs as CAR files: `dag/export` (fetching what is missing first) and
//! `dag/import` (each uploaded CAR, streamed); blocks as IPLD data:
//! `dag/get`, `dag/put`, `dag/resolve`, and the path commands over them,
//! `resolve` (of `/ipfs/` and `/ipns/` paths) and `object/stat`. Paths are
//! followed with blocks fetched from peers when they are not local.

use super::upload::{feed, first_part, PartReader, UploadError};
use super::{
    bad_request, blocking, json_lines, node_err, stream_error, ApiError, ApiState, Line, Params,
};
use crate::block::HashAlg;
use crate::dag::ipld::{self, Resolved};
use crate::http::stream_blocking;
use crate::names::ipns::ResolveOptions;
use crate::node::{split_path, DagPutOptions, NodeError, MAX_DAG_PUT_INPUT};
use crate::rpc::types::{
    CidLink, DagImportEvent, DagImportRoot, DagImportStats, DagPutOutput, DagResolveOutput,
    ImportStats, ImportedRoot, ObjectStatOutput, ResolveOutput,
};
use axum::extract::{Multipart, RawQuery, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::Json;
use std::sync::Arc;
use tokio::sync::mpsc;

pub(super) async fn dag_export(
    State(s): State<ApiState>,
    RawQuery(q): RawQuery,
) -> Result<Response, ApiError> {
    let q = Params::parse(q);
    let (path, root) = q.path_arg()?;
    // The fetches below end with this future when the client goes away.
    let (cid, turn) = super::read::resolve_in_turn(&s, &path, root).await?;
    // Make the DAG local first: a CAR is written in walk order.
    s.online
        .fetch_dag(cid, None, &mut |_| {})
        .await
        .map_err(node_err)?;
    // What is left is local: the turn goes back to other fetches.
    drop(turn);
    let node = Arc::clone(s.online.node());
    Ok(stream_blocking("application/vnd.ipld.car", move |out| {
        node.dag_export(&cid, out)?;
        Ok(())
    }))
}

pub(super) async fn dag_import(
    State(s): State<ApiState>,
    RawQuery(q): RawQuery,
    mut multipart: Multipart,
) -> Result<Response, ApiError> {
    let q = Params::parse(q);
    let pin_roots = q.bool("pin-roots", true)?;
    let (tx, rx) = mpsc::channel::<Line<DagImportEvent>>(16);
    let online = Arc::clone(&s.online);
    tokio::spawn(async move {
        let _guard = online.gc_lock().read().await;
        loop {
            let field = match multipart.next_field().await {
                Ok(Some(f)) => f,
                Ok(None) => break,
                Err(e) => {
                    let _ = tx.send(Err(stream_error(UploadError::Read(e)))).await;
                    return;
                }
            };
            let (ctx, reader) = PartReader::new();
            let node = Arc::clone(online.node());
            let import = tokio::task::spawn_blocking(move || node.dag_import(reader, pin_roots));
            feed(field, &ctx).await;
            drop(ctx);
            match import.await {
                Ok(Ok(r)) => {
                    for root in &r.roots {
                        let pin = pin_roots.then_some(crate::store::PinKind::Recursive);
                        online.announce_added(*root, pin).await;
                        let line = DagImportEvent::Root(DagImportRoot {
                            root: ImportedRoot {
                                cid: CidLink {
                                    cid: root.to_string(),
                                },
                                pin_error_msg: String::new(),
                            },
                        });
                        let _ = tx.send(Ok(line)).await;
                    }
                    let stats = ImportStats {
                        block_bytes_count: r.new_bytes,
                        block_count: r.blocks,
                    };
                    let _ = tx
                        .send(Ok(DagImportEvent::Stats(DagImportStats { stats })))
                        .await;
                }
                Ok(Err(e)) => {
                    let _ = tx.send(Err(stream_error(e))).await;
                    return;
                }
                Err(e) => {
                    let _ = tx
                        .send(Err(stream_error(format!("import failed: {e}"))))
                        .await;
                    return;
                }
            }
        }
    });
    Ok(json_lines(rx))
}

/// A codec option (`output-codec`, `store-codec`, `input-codec`) by name.
fn codec(q: &Params, key: &str, default: &str) -> Result<u64, ApiError> {
    ipld::codec_named(q.get(key).unwrap_or(default)).map_err(|e| bad_request(format!("{key}: {e}")))
}

/// Runs `f` on the node with a block source for the DAG under `path`'s
/// root, fetching from peers within a turn (see `RemoteTurn`).
async fn with_source<T: Send + 'static>(
    s: &ApiState,
    path: &str,
    f: impl FnOnce(&crate::node::Node, &dyn crate::dag::BlockSource, &str) -> Result<T, NodeError>
        + Send
        + 'static,
) -> Result<T, ApiError> {
    let (root, _) = split_path(path).map_err(node_err)?;
    let turn = s.online.remote_turn(root).await.map_err(node_err)?;
    let source = s.online.source_until(Some(root), turn.cancel_token());
    let node = Arc::clone(s.online.node());
    let path = path.to_string();
    let out = blocking(move || f(&node, &*source, &path)).await;
    drop(turn);
    out
}

async fn resolve_ipld(s: &ApiState, path: &str) -> Result<Resolved, ApiError> {
    with_source(s, path, |node, source, path| {
        node.dag_resolve_in(source, path)
    })
    .await
}

pub(super) async fn dag_get(
    State(s): State<ApiState>,
    RawQuery(q): RawQuery,
) -> Result<Response, ApiError> {
    let q = Params::parse(q);
    let out = codec(&q, "output-codec", "dag-json")?;
    let resolved = resolve_ipld(&s, q.arg()?).await?;
    let bytes = ipld::encode(out, &resolved.value).map_err(bad_request)?;
    let ctype = match out {
        crate::block::DAG_JSON => "application/json",
        _ => "application/octet-stream",
    };
    Ok(([(header::CONTENT_TYPE, ctype)], bytes).into_response())
}

pub(super) async fn dag_resolve(
    State(s): State<ApiState>,
    RawQuery(q): RawQuery,
) -> Result<Json<DagResolveOutput>, ApiError> {
    let q = Params::parse(q);
    let r = resolve_ipld(&s, q.arg()?).await?;
    Ok(Json(DagResolveOutput::from(&r)))
}

pub(super) async fn dag_put(
    State(s): State<ApiState>,
    RawQuery(q): RawQuery,
    mut multipart: Multipart,
) -> Result<Response, ApiError> {
    let q = Params::parse(q);
    let hash: HashAlg = q
        .get("hash")
        .unwrap_or("sha2-256")
        .parse()
        .map_err(bad_request)?;
    let opts = DagPutOptions {
        input_codec: codec(&q, "input-codec", "dag-json")?,
        store_codec: codec(&q, "store-codec", "dag-cbor")?,
        hash,
        pin: q.bool("pin", false)?,
    };
    let _guard = s.online.gc_lock().read().await;
    let mut lines = Vec::new();
    // One block per part, as Kubo: each answered by a line.
    loop {
        let input = match first_part(&mut multipart, MAX_DAG_PUT_INPUT).await {
            Ok(input) => input,
            Err(UploadError::Empty) if !lines.is_empty() => break,
            Err(e) => return Err(e.into()),
        };
        let node = Arc::clone(s.online.node());
        let cid = blocking(move || node.dag_put(&input, opts)).await?;
        s.online.announce_block(cid, opts.pin).await;
        let line = DagPutOutput {
            cid: CidLink {
                cid: cid.to_string(),
            },
        };
        let mut text = serde_json::to_string(&line).map_err(super::internal)?;
        text.push('\n');
        lines.push(text);
    }
    Ok(([(header::CONTENT_TYPE, "application/json")], lines.concat()).into_response())
}

pub(super) async fn resolve(
    State(s): State<ApiState>,
    RawQuery(q): RawQuery,
) -> Result<Json<ResolveOutput>, ApiError> {
    let q = Params::parse(q);
    let arg = q.arg()?;
    let recursive = q.bool("recursive", true)?;
    let path = if arg.starts_with("/ipns/") {
        let opts = ResolveOptions {
            recursive,
            nocache: false,
        };
        let path = s.online.name_resolve(arg, opts).await.map_err(node_err)?;
        if !recursive {
            return Ok(Json(ResolveOutput { path }));
        }
        path
    } else {
        arg.to_string()
    };
    let r = resolve_ipld(&s, &path).await?;
    Ok(Json(ResolveOutput::from(&r)))
}

pub(super) async fn object_stat(
    State(s): State<ApiState>,
    RawQuery(q): RawQuery,
) -> Result<Json<ObjectStatOutput>, ApiError> {
    let q = Params::parse(q);
    let stat = with_source(&s, q.arg()?, |node, source, path| {
        node.object_stat_in(source, path)
    })
    .await?;
    Ok(Json(ObjectStatOutput::from(&stat)))
}

//! DAGs as CAR files: `dag/export` (fetching what is missing first) and
//! `dag/import` (each uploaded CAR, streamed).

use super::upload::{feed, PartReader, UploadError};
use super::{json_lines, node_err, stream_error, ApiError, ApiState, Line, Params};
use crate::http::stream_blocking;
use crate::rpc::types::{
    CidLink, DagImportEvent, DagImportRoot, DagImportStats, ImportStats, ImportedRoot,
};
use axum::extract::{Multipart, RawQuery, State};
use axum::response::Response;
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

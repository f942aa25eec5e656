//! Raw blocks: `block/get`, `block/stat` and `block/put`.

use super::upload::first_part;
use super::{bad_request, blocking, node_err, ApiError, ApiState, Params};
use crate::block::{parse_cid, CidFormat, HashAlg, DAG_PB, RAW};
use crate::rpc::types::BlockStat;
use axum::extract::{Multipart, RawQuery, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::Json;
use std::sync::Arc;

pub(super) async fn block_get(
    State(s): State<ApiState>,
    RawQuery(q): RawQuery,
) -> Result<Response, ApiError> {
    let q = Params::parse(q);
    let cid = parse_cid(q.arg()?).map_err(bad_request)?;
    let session = s.online.session(Some(cid)).await.map_err(node_err)?;
    let block = session.get(cid).await.map_err(|e| node_err(e.into()))?;
    Ok((
        [(header::CONTENT_TYPE, "application/octet-stream")],
        block.data().clone(),
    )
        .into_response())
}

pub(super) async fn block_stat(
    State(s): State<ApiState>,
    RawQuery(q): RawQuery,
) -> Result<Json<BlockStat>, ApiError> {
    let q = Params::parse(q);
    let cid = parse_cid(q.arg()?).map_err(bad_request)?;
    let session = s.online.session(Some(cid)).await.map_err(node_err)?;
    let block = session.get(cid).await.map_err(|e| node_err(e.into()))?;
    Ok(Json(BlockStat {
        key: cid.to_string(),
        size: block.data().len() as u64,
    }))
}

pub(super) async fn block_put(
    State(s): State<ApiState>,
    RawQuery(q): RawQuery,
    mut multipart: Multipart,
) -> Result<Json<BlockStat>, ApiError> {
    let q = Params::parse(q);
    let codec = match q.get("cid-codec").unwrap_or("raw") {
        "raw" => RAW,
        "dag-pb" => DAG_PB,
        other => {
            return Err(bad_request(format!(
                "unsupported codec {other:?} (expected raw or dag-pb)"
            )))
        }
    };
    let hash: HashAlg = q
        .get("mhtype")
        .unwrap_or("sha2-256")
        .parse()
        .map_err(bad_request)?;
    let pin = q.bool("pin", false)?;
    let data = first_part(&mut multipart, crate::block::MAX_BLOCK_BYTES).await?;
    let size = data.len();
    let version = if codec == DAG_PB && hash == HashAlg::Sha2_256 {
        0
    } else {
        1
    };
    let node = Arc::clone(s.online.node());
    let cid =
        blocking(move || node.block_put(data, CidFormat { version, hash }, codec, pin)).await?;
    s.online.announce_block(cid, pin).await;
    Ok(Json(BlockStat {
        key: cid.to_string(),
        size: size as u64,
    }))
}

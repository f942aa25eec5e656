//! Trustless responses (the trustless gateway spec): one raw block, or a
//! CAR v1 of the path's blocks and the `dag-scope` / `entity-bytes` below,
//! which the client verifies block by block.

use super::error::GatewayError;
use super::request::{query_param, Request};
use super::response::{blocking, common_headers, empty, resolve, streamed};
use crate::dag::car::CarWriter;
use crate::dag::scope::{self, DagScope, EntityBytes};
use crate::dag::DagError;
use crate::http::ProducerError;
use crate::node::NodeError;
use axum::body::Body;
use axum::http::{header, HeaderValue, StatusCode, Uri};
use axum::response::Response;
use std::sync::Arc;

/// The block the path names, as `application/vnd.ipld.raw`.
pub(super) async fn raw(req: &Request<'_>) -> Result<Response, GatewayError> {
    let (s, content) = (req.s, &req.content);
    let source = req.source();
    let (cid, roots) = resolve(s, content, Arc::clone(&source)).await?;
    let etag = format!("\"{cid}.raw\"");
    if let Some(r) = req.not_modified(&roots, &etag) {
        return Ok(r);
    }
    // Held in the memory tier (verified when admitted): no hand-off.
    let held = s.online.node().hot_cache().and_then(|h| h.get(&cid));
    let block = match held {
        Some(block) => block,
        None => {
            blocking(
                s,
                || format!("{cid} could not be retrieved"),
                move || source.block(&cid),
            )
            .await?
        }
    };
    let len = block.data().len();
    let mut r = if req.head {
        empty(StatusCode::OK, content, &roots, &etag)
    } else {
        let mut r = Response::new(Body::from(block.data().clone()));
        common_headers(&mut r, content, &roots, &etag);
        r
    };
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/vnd.ipld.raw"),
    );
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    h.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{cid}.bin\"")) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    Ok(r)
}

/// A query parameter parsed by its type, if given.
fn parsed_param<T>(uri: &Uri, param: &'static str) -> Result<Option<T>, GatewayError>
where
    T: std::str::FromStr,
    T::Err: Into<crate::node::BoxedSource>,
{
    query_param(uri, param)
        .map(|v| v.parse::<T>())
        .transpose()
        .map_err(|e| GatewayError::BadParameter {
            param,
            source: e.into(),
        })
}

/// A CAR v1 of the path's blocks, then the blocks `dag-scope` and
/// `entity-bytes` select below the last one.
pub(super) async fn car(req: &Request<'_>) -> Result<Response, GatewayError> {
    let (s, content, uri) = (req.s, &req.content, req.uri);
    let scope: DagScope = parsed_param(uri, "dag-scope")?.unwrap_or(DagScope::All);
    let bytes: Option<EntityBytes> = parsed_param(uri, "entity-bytes")?;
    if let Some(v) = query_param(uri, "car-version") {
        if v != "1" {
            return Err(GatewayError::CarVersion {
                version: v.into_owned(),
            });
        }
    }
    let accept = req
        .headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if accept.contains("version=2") && query_param(uri, "car-version").is_none() {
        return Err(GatewayError::CarV2Accepted);
    }
    let source = req.source();
    // The root block must be there (404/504 before any byte is sent).
    let (_, roots) = resolve(s, content, Arc::clone(&source)).await?;
    let scope_name = match scope {
        DagScope::Block => "block",
        DagScope::Entity => "entity",
        DagScope::All => "all",
    };
    let range = bytes.map_or(String::new(), |b| {
        format!(
            ".{}:{}",
            b.from,
            b.to.map_or("*".to_string(), |t| t.to_string())
        )
    });
    let last = roots.last().unwrap_or(&content.root);
    let etag = format!("\"{last}.car.{scope_name}{range}\"");
    if let Some(r) = req.not_modified(&roots, &etag) {
        return Ok(r);
    }
    let mut r = empty(StatusCode::OK, content, &roots, &etag);
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/vnd.ipld.car; version=1; order=dfs; dups=n"),
    );
    h.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{last}.car\"")) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    let root = content.root;
    let segments = content.segments.clone();
    streamed(
        s,
        r,
        req.head,
        |_, _| {},
        move |out| -> Result<(), ProducerError> {
            let mut car = CarWriter::new(out, &[root]).map_err(NodeError::Car)?;
            // The path as resolved (from the resolution cache when it
            // knew it): plain directories on the way are not searched.
            let steps = &roots;
            scope::scoped_blocks_resolved(&*source, steps, &segments, scope, bytes, &mut |b| {
                car.write_block(&b).map_err(|e| DagError::Write {
                    path: "CAR response".into(),
                    source: std::io::Error::other(e),
                })
            })?;
            car.finish().map_err(NodeError::Car)?;
            Ok(())
        },
    )
    .await
}

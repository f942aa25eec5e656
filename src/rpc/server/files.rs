//! MFS: `files/mkdir`, `write`, `read`, `ls`, `stat`, `cp`, `mv`, `rm`,
//! `flush` and `chcid`, with Kubo's arguments (long names and their
//! one-letter aliases) and answers. Changes answer 200 with an empty JSON body,
//! as Kubo's do.

use super::upload::{feed, PartReader, UploadError};
use super::{bad_request, blocking, internal, node_err, ApiError, ApiState, NoOutput, Params};
use crate::block::HashAlg;
use crate::http::stream_blocking;
use crate::names::mfs::{FormatOverrides, WriteOptions};
use crate::rpc::types::{FilesCid, FilesEntry, FilesLs, FilesStat};
use axum::extract::{Multipart, RawQuery, State};
use axum::response::Response;
use axum::Json;
use std::sync::Arc;

/// A boolean under the first of `names` given, parsed as every RPC option
/// is ([`Params::bool`]).
fn flag(q: &Params, names: &[&str], default: bool) -> Result<bool, ApiError> {
    match names.iter().find(|n| q.get(n).is_some()) {
        Some(name) => q.bool(name, default),
        None => Ok(default),
    }
}

/// A number under any of `names`.
fn number(q: &Params, names: &[&str]) -> Result<Option<u64>, ApiError> {
    for n in names {
        if let Some(v) = q.num::<u64>(n)? {
            return Ok(Some(v));
        }
    }
    Ok(None)
}

/// The path argument, `/` when absent (`ls`, `flush`, `chcid`).
fn path_or_root(q: &Params) -> String {
    q.get("arg").unwrap_or("/").to_string()
}

/// `cid-version`, `hash` and `raw-leaves`.
fn format(q: &Params) -> Result<FormatOverrides, ApiError> {
    let cid_version = q.num::<u8>("cid-version")?;
    let hash = q
        .get("hash")
        .map(|h| h.parse::<HashAlg>())
        .transpose()
        .map_err(bad_request)?;
    let raw_leaves = match q.get("raw-leaves") {
        Some(_) => Some(flag(q, &["raw-leaves"], false)?),
        None => None,
    };
    Ok(FormatOverrides {
        cid_version,
        hash,
        raw_leaves,
    })
}

/// Runs a change on a blocking thread; 200 with an empty (JSON) body.
async fn change(
    s: &ApiState,
    f: impl FnOnce(&crate::node::Node) -> Result<(), crate::node::NodeError> + Send + 'static,
) -> Result<NoOutput, ApiError> {
    let node = Arc::clone(s.online.node());
    blocking(move || f(&node)).await?;
    Ok(NoOutput)
}

pub(super) async fn mkdir(
    State(s): State<ApiState>,
    RawQuery(q): RawQuery,
) -> Result<NoOutput, ApiError> {
    let q = Params::parse(q);
    let path = q.arg()?.to_string();
    let parents = flag(&q, &["parents", "p"], false)?;
    let fmt = format(&q)?;
    change(&s, move |n| n.files_mkdir(&path, parents, fmt)).await
}

pub(super) async fn write(
    State(s): State<ApiState>,
    RawQuery(q): RawQuery,
    mut multipart: Multipart,
) -> Result<NoOutput, ApiError> {
    let q = Params::parse(q);
    let path = q.arg()?.to_string();
    let opts = WriteOptions {
        offset: number(&q, &["offset", "o"])?.unwrap_or(0),
        create: flag(&q, &["create", "e"], false)?,
        truncate: flag(&q, &["truncate", "t"], false)?,
        parents: flag(&q, &["parents", "p"], false)?,
        count: number(&q, &["count", "n"])?,
        format: format(&q)?,
    };
    let field = multipart
        .next_field()
        .await
        .map_err(UploadError::Read)?
        .ok_or_else(|| bad_request("argument \"data\" is required"))?;
    let (tx, mut reader) = PartReader::new();
    let node = Arc::clone(s.online.node());
    let writer = tokio::task::spawn_blocking(move || node.files_write(&path, &mut reader, &opts));
    feed(field, &tx).await;
    drop(tx);
    let written = writer
        .await
        .map_err(|e| internal(format!("worker thread: {e}")))?;
    // A write refused before its bytes were all read: read the rest, so
    // the client, still sending, gets the answer instead of a reset.
    while let Ok(Some(_)) = multipart.next_field().await {}
    written.map_err(node_err)?;
    Ok(NoOutput)
}

pub(super) async fn read(
    State(s): State<ApiState>,
    RawQuery(q): RawQuery,
) -> Result<Response, ApiError> {
    let q = Params::parse(q);
    let path = q.arg()?.to_string();
    let offset = number(&q, &["offset", "o"])?.unwrap_or(0);
    let count = number(&q, &["count", "n"])?;
    let node = Arc::clone(s.online.node());
    let reader = blocking(move || node.files_read(&path, offset, count)).await?;
    Ok(stream_blocking("application/octet-stream", move |out| {
        for chunk in reader {
            out.send(chunk?)?;
        }
        Ok(())
    }))
}

pub(super) async fn ls(
    State(s): State<ApiState>,
    RawQuery(q): RawQuery,
) -> Result<Json<FilesLs>, ApiError> {
    let q = Params::parse(q);
    let path = path_or_root(&q);
    let long = flag(&q, &["long", "l"], false)?;
    // `U` (unsorted) is accepted; entries always come sorted.
    flag(&q, &["U"], false)?;
    let node = Arc::clone(s.online.node());
    let entries = blocking(move || node.files_ls(&path, long)).await?;
    Ok(Json(FilesLs {
        entries: entries
            .iter()
            .map(|e| FilesEntry::from_entry(e, long))
            .collect(),
    }))
}

pub(super) async fn stat(
    State(s): State<ApiState>,
    RawQuery(q): RawQuery,
) -> Result<Json<FilesStat>, ApiError> {
    let q = Params::parse(q);
    let path = q.arg()?.to_string();
    // `hash` and `size` choose what the CLI prints; the answer holds all.
    flag(&q, &["hash"], false)?;
    flag(&q, &["size"], false)?;
    let node = Arc::clone(s.online.node());
    let stat = blocking(move || node.files_stat(&path)).await?;
    Ok(Json(FilesStat::from(&stat)))
}

/// The two path arguments of `cp` and `mv`.
fn two_args(q: &Params, what: &str) -> Result<(String, String), ApiError> {
    match q.all("arg")[..] {
        [a, b] => Ok((a.to_string(), b.to_string())),
        _ => Err(bad_request(format!(
            "files/{what} needs two arguments: source and destination"
        ))),
    }
}

pub(super) async fn cp(
    State(s): State<ApiState>,
    RawQuery(q): RawQuery,
) -> Result<NoOutput, ApiError> {
    let q = Params::parse(q);
    let (src, dst) = two_args(&q, "cp")?;
    let parents = flag(&q, &["parents", "p"], false)?;
    change(&s, move |n| n.files_cp(&src, &dst, parents)).await
}

pub(super) async fn mv(
    State(s): State<ApiState>,
    RawQuery(q): RawQuery,
) -> Result<NoOutput, ApiError> {
    let q = Params::parse(q);
    let (src, dst) = two_args(&q, "mv")?;
    change(&s, move |n| n.files_mv(&src, &dst)).await
}

pub(super) async fn rm(
    State(s): State<ApiState>,
    RawQuery(q): RawQuery,
) -> Result<NoOutput, ApiError> {
    let q = Params::parse(q);
    let paths: Vec<String> = q.all("arg").iter().map(|a| a.to_string()).collect();
    if paths.is_empty() {
        return Err(bad_request("argument \"path\" is required"));
    }
    let recursive = flag(&q, &["recursive", "r"], false)?;
    let force = flag(&q, &["force"], false)?;
    change(&s, move |n| n.files_rm(&paths, recursive, force)).await
}

pub(super) async fn flush(
    State(s): State<ApiState>,
    RawQuery(q): RawQuery,
) -> Result<Json<FilesCid>, ApiError> {
    let q = Params::parse(q);
    let path = path_or_root(&q);
    let node = Arc::clone(s.online.node());
    let cid = blocking(move || node.files_flush(&path)).await?;
    Ok(Json(FilesCid {
        cid: cid.to_string(),
    }))
}

pub(super) async fn chcid(
    State(s): State<ApiState>,
    RawQuery(q): RawQuery,
) -> Result<NoOutput, ApiError> {
    let q = Params::parse(q);
    let path = path_or_root(&q);
    let fmt = format(&q)?;
    change(&s, move |n| n.files_chcid(&path, fmt)).await
}

//! Keys: `key/gen`, `key/list`, `key/rm`, `key/rename`, `key/export` and
//! `key/import`, with Kubo's arguments and answers.

use super::upload::first_part;
use super::{bad_request, blocking, ApiError, ApiState, Params};
use crate::names::{KeyFormat, KeyInfo};
use crate::node::NodeError;
use crate::rpc::types::{KeyList, KeyOutput, KeyRenameOutput};
use axum::extract::{Multipart, RawQuery, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::Json;
use std::sync::Arc;

/// The most bytes an imported key may have (an Ed25519 key is < 200).
const MAX_KEY_BYTES: usize = 64 * 1024;

/// How key IDs are written (`ipns-base`): Kubo's default base36 CIDs, or
/// `b58mh`, the peer ID.
#[derive(Clone, Copy)]
enum IdBase {
    Base36,
    PeerId,
}

impl IdBase {
    fn from_params(q: &Params) -> Result<IdBase, ApiError> {
        match q.get("ipns-base").unwrap_or("base36") {
            "base36" => Ok(IdBase::Base36),
            "b58mh" => Ok(IdBase::PeerId),
            other => Err(bad_request(format!(
                "ipns-base: unsupported {other:?} (expected base36 or b58mh)"
            ))),
        }
    }

    fn output(self, k: &KeyInfo) -> KeyOutput {
        KeyOutput {
            name: k.name.clone(),
            id: self.id(k),
        }
    }

    fn id(self, k: &KeyInfo) -> String {
        match self {
            IdBase::Base36 => k.ipns_name(),
            IdBase::PeerId => k.id.to_string(),
        }
    }
}

fn format_param(q: &Params) -> Result<KeyFormat, ApiError> {
    q.get("format")
        .map_or(Ok(KeyFormat::default()), str::parse)
        .map_err(bad_request)
}

pub(super) async fn key_gen(
    State(s): State<ApiState>,
    RawQuery(q): RawQuery,
) -> Result<Json<KeyOutput>, ApiError> {
    let q = Params::parse(q);
    let base = IdBase::from_params(&q)?;
    let name = q.arg()?.to_string();
    let kind = q.get("type").unwrap_or("ed25519").to_string();
    let node = Arc::clone(s.online.node());
    let key = blocking(move || Ok(node.keys().generate(&name, &kind)?)).await?;
    Ok(Json(base.output(&key)))
}

pub(super) async fn key_list(
    State(s): State<ApiState>,
    RawQuery(q): RawQuery,
) -> Result<Json<KeyList>, ApiError> {
    let q = Params::parse(q);
    let base = IdBase::from_params(&q)?;
    // `l` (list IDs too) is accepted; the answer always has both, as Kubo's.
    q.bool("l", false)?;
    let node = Arc::clone(s.online.node());
    let keys = blocking(move || Ok(node.keys().list()?)).await?;
    Ok(Json(KeyList {
        keys: keys.iter().map(|k| base.output(k)).collect(),
    }))
}

pub(super) async fn key_rm(
    State(s): State<ApiState>,
    RawQuery(q): RawQuery,
) -> Result<Json<KeyList>, ApiError> {
    let q = Params::parse(q);
    let base = IdBase::from_params(&q)?;
    let names: Vec<String> = q.all("arg").iter().map(|a| a.to_string()).collect();
    if names.is_empty() {
        return Err(bad_request("argument \"arg\" is required"));
    }
    let node = Arc::clone(s.online.node());
    let removed = blocking(move || {
        names
            .iter()
            .map(|n| node.keys().remove(n).map_err(NodeError::from))
            .collect::<Result<Vec<_>, _>>()
    })
    .await?;
    Ok(Json(KeyList {
        keys: removed.iter().map(|k| base.output(k)).collect(),
    }))
}

pub(super) async fn key_rename(
    State(s): State<ApiState>,
    RawQuery(q): RawQuery,
) -> Result<Json<KeyRenameOutput>, ApiError> {
    let q = Params::parse(q);
    let base = IdBase::from_params(&q)?;
    let force = q.bool("force", false)?;
    let [old, new] = q.all("arg")[..] else {
        return Err(bad_request("key/rename needs two arguments: old and new"));
    };
    let (old, new) = (old.to_string(), new.to_string());
    let node = Arc::clone(s.online.node());
    let was = old.clone();
    let (key, overwrite) = blocking(move || Ok(node.keys().rename(&old, &new, force)?)).await?;
    Ok(Json(KeyRenameOutput {
        was,
        now: key.name.clone(),
        id: base.id(&key),
        overwrite,
    }))
}

pub(super) async fn key_export(
    State(s): State<ApiState>,
    RawQuery(q): RawQuery,
) -> Result<Response, ApiError> {
    let q = Params::parse(q);
    let format = format_param(&q)?;
    let name = q.arg()?.to_string();
    let node = Arc::clone(s.online.node());
    let bytes = blocking(move || Ok(node.keys().export(&name, format)?)).await?;
    Ok((
        [
            (header::CONTENT_TYPE, "application/octet-stream"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        bytes,
    )
        .into_response())
}

pub(super) async fn key_import(
    State(s): State<ApiState>,
    RawQuery(q): RawQuery,
    mut multipart: Multipart,
) -> Result<Json<KeyOutput>, ApiError> {
    let q = Params::parse(q);
    let base = IdBase::from_params(&q)?;
    let format = format_param(&q)?;
    let name = q.arg()?.to_string();
    let bytes = first_part(&mut multipart, MAX_KEY_BYTES).await?;
    let node = Arc::clone(s.online.node());
    let key = blocking(move || Ok(node.keys().import(&name, &bytes, format)?)).await?;
    Ok(Json(base.output(&key)))
}

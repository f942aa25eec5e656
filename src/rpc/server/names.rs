//! IPNS: `name/publish` and `name/resolve`, with Kubo's arguments and
//! answers (`{"Name","Value"}`, `{"Path"}`), and `name/pubsub/state|subs`
//! (IPNS over pub/sub: on or off, the names followed).

use super::{bad_request, node_err, ApiError, ApiState, Params};
use crate::names::ipns::{PublishOptions, ResolveOptions};
use crate::rpc::types::{NamePublishOutput, NamePubsubState, NameResolveOutput, Strings};
use axum::extract::{RawQuery, State};
use axum::Json;
use std::time::Duration;

/// A duration parameter as Go writes them (`48h`, `1h30m`, `300ms`).
fn duration(q: &Params, key: &str) -> Result<Option<Duration>, ApiError> {
    q.get(key)
        .map(|v| {
            humantime::parse_duration(v)
                .map_err(|e| bad_request(format!("{key}: {v:?} is not a duration: {e}")))
        })
        .transpose()
}

pub(super) async fn name_publish(
    State(s): State<ApiState>,
    RawQuery(q): RawQuery,
) -> Result<Json<NamePublishOutput>, ApiError> {
    let q = Params::parse(q);
    let value = q.arg()?.to_string();
    // Kubo first checks that the path resolves; cairn publishes any valid
    // path, so `resolve` is read (and checked) but changes nothing.
    q.bool("resolve", true)?;
    let opts = PublishOptions {
        key: Some(q.get("key").unwrap_or("self").to_string()),
        lifetime: duration(&q, "lifetime")?,
        ttl: duration(&q, "ttl")?,
    };
    let allow_offline = q.bool("allow-offline", false)?;
    let (name, rec) = s
        .online
        .name_publish(&value, opts, allow_offline)
        .await
        .map_err(node_err)?;
    Ok(Json(NamePublishOutput {
        name: crate::names::keystore::ipns_name(&name),
        value: rec.value_text(),
    }))
}

pub(super) async fn name_resolve(
    State(s): State<ApiState>,
    RawQuery(q): RawQuery,
) -> Result<Json<NameResolveOutput>, ApiError> {
    let q = Params::parse(q);
    let name = q.arg()?.to_string();
    let opts = ResolveOptions {
        recursive: q.bool("recursive", true)?,
        nocache: q.bool("nocache", false)?,
    };
    let path = s.online.name_resolve(&name, opts).await.map_err(node_err)?;
    Ok(Json(NameResolveOutput { path }))
}

pub(super) async fn name_pubsub_state(State(s): State<ApiState>) -> Json<NamePubsubState> {
    Json(NamePubsubState {
        enabled: s.online.node().names().pubsub().enabled(),
    })
}

pub(super) async fn name_pubsub_subs(State(s): State<ApiState>) -> Json<Strings> {
    let followed = s.online.node().names().pubsub().followed();
    Json(Strings {
        strings: followed
            .iter()
            .map(|n| format!("/ipns/{}", crate::names::keystore::ipns_name(n)))
            .collect(),
    })
}

//! Pub/sub: `pubsub/pub`, `pubsub/sub`, `pubsub/ls` and `pubsub/peers`, as
//! Kubo answers them: topics in URL arguments are multibase base64url
//! (`u...`), `pub` takes the data as a multipart file, `sub` streams one
//! JSON message a line for as long as the client reads.
//!
//! `pub` also takes the form clients older than Kubo 0.11 send (aioipfs
//! picks it from the agent version): two raw arguments, topic then data,
//! and no body. Two arguments cannot be the newer form, which has one.

use super::upload::{first_part, UploadError};
use super::{bad_request, internal, line_bytes, ApiError, ApiState, NoOutput, Params};
use crate::net::pubsub::PubsubError;
use crate::rpc::types::{decode_multibase, encode_multibase, PubsubMessage, Strings};
use axum::extract::{FromRequest, Multipart, RawQuery, Request, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::Json;
use futures::StreamExt as _;

/// A pub/sub failure as an answer: the caller's mistakes are 400.
fn pubsub_err(e: PubsubError) -> ApiError {
    match e {
        PubsubError::TooLarge { .. }
        | PubsubError::Topic { .. }
        | PubsubError::TooManyTopics { .. } => bad_request(e),
        other => internal(other),
    }
}

/// A topic given as a multibase `arg`.
fn topic_arg(arg: &str) -> Result<String, ApiError> {
    let bytes = decode_multibase(arg).map_err(bad_request)?;
    String::from_utf8(bytes).map_err(|_| bad_request("the topic is not UTF-8"))
}

pub(super) async fn publish(
    State(s): State<ApiState>,
    RawQuery(q): RawQuery,
    req: Request,
) -> Result<NoOutput, ApiError> {
    let q = Params::parse(q);
    let (topic, data) = match q.all("arg").as_slice() {
        // The pre-0.11 form: raw topic and data.
        [topic, data] => (topic.to_string(), data.as_bytes().to_vec()),
        [arg] => {
            let topic = topic_arg(arg)?;
            let max = s.online.node().config().pubsub.max_message_bytes.bytes() as usize;
            let mut multipart = Multipart::from_request(req, &()).await.map_err(|e| {
                bad_request(format!(
                    "the data must be a multipart file: {}",
                    e.body_text()
                ))
            })?;
            let data = match first_part(&mut multipart, max).await {
                Err(UploadError::TooLarge { limit }) => {
                    return Err(bad_request(format!(
                        "message is too large for topic {topic:?}: over {limit} bytes"
                    )))
                }
                other => other?,
            };
            (topic, data)
        }
        [] => return Err(bad_request("argument \"topic\" is required")),
        _ => {
            return Err(bad_request(
                "expected one topic argument and the data as a file",
            ))
        }
    };
    s.online
        .net()
        .swarm
        .pubsub_publish(topic, data.into())
        .await
        .map_err(pubsub_err)?;
    Ok(NoOutput)
}

pub(super) async fn subscribe(
    State(s): State<ApiState>,
    RawQuery(q): RawQuery,
) -> Result<Response, ApiError> {
    let q = Params::parse(q);
    let topic = topic_arg(q.arg()?)?;
    // `discover` (find peers on the DHT) is accepted and ignored, as Kubo.
    let _ = q.bool("discover", false)?;
    let sub = s
        .online
        .net()
        .swarm
        .pubsub_subscribe(topic)
        .await
        .map_err(pubsub_err)?;
    // One line a message; the subscription ends (and is left on the
    // network once no other subscriber remains) when the client goes.
    let lines = futures::stream::unfold(sub, |mut sub| async move {
        let m = sub.next().await?;
        Some((PubsubMessage::from_received(&m), sub))
    })
    .map(|m| Ok::<_, std::io::Error>(line_bytes(&Ok(m))));
    Ok((
        [
            (header::CONTENT_TYPE, "application/json"),
            (header::HeaderName::from_static("x-chunked-output"), "1"),
        ],
        axum::body::Body::from_stream(lines),
    )
        .into_response())
}

pub(super) async fn ls(State(s): State<ApiState>) -> Result<Json<Strings>, ApiError> {
    let topics = s
        .online
        .net()
        .swarm
        .pubsub_topics()
        .await
        .map_err(pubsub_err)?;
    Ok(Json(Strings {
        strings: topics
            .iter()
            .map(|t| encode_multibase(t.as_bytes()))
            .collect(),
    }))
}

pub(super) async fn peers(
    State(s): State<ApiState>,
    RawQuery(q): RawQuery,
) -> Result<Json<Strings>, ApiError> {
    let q = Params::parse(q);
    let topic = q.get("arg").map(topic_arg).transpose()?;
    let peers = s
        .online
        .net()
        .swarm
        .pubsub_peers(topic)
        .await
        .map_err(pubsub_err)?;
    Ok(Json(Strings {
        strings: peers.iter().map(|p| p.to_string()).collect(),
    }))
}

//! Who may call the RPC API: the middleware every API request passes
//! through before it reaches a handler, refusing callers without a
//! configured bearer token.

use super::server::{ApiError, ApiState};
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};

/// Refuses requests without a configured bearer token (when tokens are set),
/// in Kubo's error shape, comparing in constant time.
pub(crate) async fn authorize(
    State(s): State<ApiState>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    if s.tokens.is_empty() {
        return next.run(request).await;
    }
    let given = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    let ok = s.tokens.iter().any(|t| {
        t.len() == given.len()
            && t.bytes()
                .zip(given.bytes())
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                == 0
    });
    if ok {
        next.run(request).await
    } else {
        ApiError(
            StatusCode::UNAUTHORIZED,
            "missing or wrong bearer token (see [api] tokens)".into(),
        )
        .into_response()
    }
}

//! The request body limit (`PARLEY_MAX_BODY_BYTES`), for every route, before any handler.
//!
//! A body over the limit is answered 413 with a GraphQL error body. Answering at once and
//! closing would often lose that answer: a client still uploading gets a reset connection
//! instead of the 413. So the rest of the body is read and thrown away first, up to
//! `DRAIN_BYTES` and `DRAIN_TIME`; a client sending more than that is cut off. The same holds
//! for a declared `Content-Length` and for chunked bodies that turn out too long.

use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;

use crate::error::{ErrorCode, graphql_error};

/// At most this much of a refused body is read before the connection is closed.
const DRAIN_BYTES: usize = 16 << 20;
/// …and for at most this long.
const DRAIN_TIME: Duration = Duration::from_secs(5);

/// Buffers the body (every route's handler reads it whole anyway), or refuses it.
pub async fn limit_body(State(max): State<usize>, request: Request, next: Next) -> Response {
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let (parts, body) = request.into_parts();
    let mut chunks = body.into_data_stream();
    if declared.is_some_and(|n| n > max as u64) {
        return refuse(chunks, 0).await;
    }
    let mut buffer = Vec::with_capacity(declared.map_or(0, |n| n as usize));
    while let Some(chunk) = chunks.next().await {
        let Ok(chunk) = chunk else {
            return StatusCode::BAD_REQUEST.into_response();
        };
        if buffer.len() + chunk.len() > max {
            return refuse(chunks, buffer.len() + chunk.len()).await;
        }
        buffer.extend_from_slice(&chunk);
    }
    next.run(Request::from_parts(parts, Body::from(Bytes::from(buffer)))).await
}

/// Reads what the client is still sending (within bounds), then answers 413.
async fn refuse(mut chunks: axum::body::BodyDataStream, mut read: usize) -> Response {
    let drain = async {
        while read <= DRAIN_BYTES {
            match chunks.next().await {
                Some(Ok(chunk)) => read += chunk.len(),
                _ => break,
            }
        }
    };
    let _ = tokio::time::timeout(DRAIN_TIME, drain).await;
    let error = graphql_error(ErrorCode::BadUserInput, "the request body is too large");
    let body = serde_json::json!({ "errors": [error] }).to_string();
    let headers = [(header::CONTENT_TYPE, "application/json"), (header::CONNECTION, "close")];
    (StatusCode::PAYLOAD_TOO_LARGE, headers, body).into_response()
}

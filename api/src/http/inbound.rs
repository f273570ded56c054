//! `POST /webhooks/inboxes/{id}/messages`: customer messages from an SMS gateway, a mail
//! bridge or any system holding the inbox secret. 401 for an unknown inbox or a missing, bad
//! or stale signature (one answer for both, so inbox ids cannot be probed), 400 naming the
//! field for bad input, 409 for an `externalId` another inbox used, 413 above the body limit
//! (the router's), 503 when the database did not answer (retry), 201 with the stored message,
//! and 200 with the same for a redelivery.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use serde_json::json;

use super::HttpState;
use crate::error::ErrorCode;
use crate::support::ingest;
use crate::support::payload::{Inbound, RawInbound};
use crate::support::signature;
use entity::support_inboxes;

pub async fn receive(
    State(state): State<Arc<HttpState>>,
    Path(inbox_id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let app = &state.app;
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let inbox = match uuid::Uuid::parse_str(&inbox_id) {
        Ok(id) => crate::error::found(ingest::inbox(app, id).await),
        Err(_) => Ok(None),
    };
    let mut inbox = match inbox {
        Ok(Some(inbox)) => inbox,
        Ok(None) => return refused("unknown inbox or bad signature"),
        // A gateway retries a 5xx, not a 4xx: a database hiccup must not lose the message.
        Err(e) => return unavailable(&e),
    };
    let verify = |inbox: &support_inboxes::Model| {
        signature::verify(
            &inbox.webhook_secret,
            header("x-parley-timestamp"),
            header("x-parley-signature"),
            &body,
            Utc::now(),
        )
    };
    let mut signed = verify(&inbox);
    if signed.is_err() {
        // The inbox is cached: its secret may have been rotated since, and a message signed
        // with the new one must not be refused (a gateway does not retry a 401).
        match app.directory.inbox_fresh(&app.store, inbox.id).await {
            Ok(Some(fresh)) => {
                signed = verify(&fresh);
                inbox = fresh;
            }
            Ok(None) => return refused("unknown inbox or bad signature"),
            Err(e) => return unavailable(&e),
        }
    }
    if let Err(why) = signed {
        tracing::info!(inbox = %inbox.id, why, "inbound webhook refused");
        return refused("unknown inbox or bad signature");
    }
    let raw: RawInbound = match serde_json::from_slice(&body) {
        Ok(raw) => raw,
        Err(e) => return bad_input(&format!("body: not the expected JSON ({e})")),
    };
    let limits = &app.limits;
    let inbound = match Inbound::parse(raw, limits.max_message_chars, limits.max_attachments) {
        Ok(inbound) => inbound,
        Err(e) => return bad_input(e.public_message()),
    };
    match ingest::ingest_detached(app, &inbox, inbound).await {
        Ok(done) => {
            let status = if done.created { StatusCode::CREATED } else { StatusCode::OK };
            let m = &done.message;
            let answer = json!({
                "messageId": m.id, "conversationId": m.room_id, "seq": m.seq, "duplicate": !done.created,
            });
            (status, axum::Json(answer)).into_response()
        }
        Err(e) if e.code() == ErrorCode::BadUserInput => bad_input(e.public_message()),
        Err(e) if e.code() == ErrorCode::Conflict => {
            (StatusCode::CONFLICT, axum::Json(json!({ "error": e.public_message() }))).into_response()
        }
        Err(e) => unavailable(&e),
    }
}

fn unavailable(error: &crate::error::ApiError) -> Response {
    tracing::error!(%error, "inbound message not stored");
    (StatusCode::SERVICE_UNAVAILABLE, axum::Json(json!({ "error": "not stored; retry" }))).into_response()
}

fn refused(why: &str) -> Response {
    (StatusCode::UNAUTHORIZED, axum::Json(json!({ "error": why }))).into_response()
}

/// 400 with the message and the field it names (`"contact.phone: …"` → `contact.phone`).
fn bad_input(message: &str) -> Response {
    let field = message.split_once(':').map(|(f, _)| f.trim()).filter(|f| !f.contains(' '));
    (StatusCode::BAD_REQUEST, axum::Json(json!({ "error": message, "field": field }))).into_response()
}

//! `/notifications/unsubscribe`: the link in every notification email. A GET (a person
//! clicking, or a mail scanner following links) only shows a button; the POST behind it, or
//! the one a mail client sends by itself (RFC 8058 one-click), turns email off.

use std::sync::Arc;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use uuid::Uuid;

use super::HttpState;
use crate::notifications::unsubscribe;

#[derive(Deserialize)]
pub struct Link {
    user: Uuid,
    token: String,
}

/// No scripts, no styles, no other origin: the form posts back to this same URL.
const POLICY: &str = "default-src 'none'; form-action 'self'";

/// A link a mail client mangled (no user, or not an id) gets the same page as a forged one,
/// not axum's plain-text rejection.
type Linked = Result<Query<Link>, QueryRejection>;

pub async fn confirm(State(state): State<Arc<HttpState>>, link: Linked) -> Response {
    let Ok(Query(link)) = link else { return not_found() };
    if !unsubscribe::verify(&state.app.notifier, link.user, &link.token) {
        return not_found();
    }
    page(
        StatusCode::OK,
        "<p>Stop notification emails from Parley?</p><form method=\"post\"><button>Turn emails off</button></form>",
    )
}

pub async fn unsubscribe(State(state): State<Arc<HttpState>>, link: Linked) -> Response {
    let Ok(Query(link)) = link else { return not_found() };
    match unsubscribe::turn_email_off(&state.app, link.user, &link.token).await {
        Ok(()) => {
            page(StatusCode::OK, "<p>Notification emails are off. Turn them on again in your settings.</p>")
        }
        Err(error) if error.code() == crate::error::ErrorCode::NotFound => not_found(),
        Err(error) => {
            tracing::warn!(%error, "unsubscribe failed");
            page(StatusCode::SERVICE_UNAVAILABLE, "<p>Something went wrong; try again in a moment.</p>")
        }
    }
}

fn not_found() -> Response {
    page(StatusCode::NOT_FOUND, "<p>This link is not valid.</p>")
}

fn page(status: StatusCode, body: &str) -> Response {
    let html =
        format!("<!doctype html><meta charset=\"utf-8\"><title>Parley email notifications</title>{body}");
    let headers =
        [(header::CONTENT_TYPE, "text/html; charset=utf-8"), (header::CONTENT_SECURITY_POLICY, POLICY)];
    (status, headers, html).into_response()
}

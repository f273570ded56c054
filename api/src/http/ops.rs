//! Operational endpoints: liveness, readiness and Prometheus metrics.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use super::HttpState;

/// The process is up.
pub async fn healthz() -> &'static str {
    "ok"
}

/// The database and the bus answer.
pub async fn readyz(State(state): State<Arc<HttpState>>) -> Response {
    let database = state.app.store.ping().await.is_ok();
    let bus = state.app.bus.is_ready().await;
    let body = format!("database: {}\nbus: {}\n", up(database), up(bus));
    let status = if database && bus { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (status, body).into_response()
}

fn up(ok: bool) -> &'static str {
    if ok { "up" } else { "down" }
}

pub async fn metrics(State(state): State<Arc<HttpState>>) -> Response {
    match &state.metrics {
        Some(handle) => handle.render().into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

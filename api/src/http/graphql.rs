//! GraphQL over HTTP, as the GraphQL-over-HTTP spec says: POST and GET at `/graphql`,
//! `application/graphql-response+json` (4xx when a request fails before execution) or
//! `application/json` (always 200) by the `Accept` header, and no mutations over GET.

use std::collections::HashSet;
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Instant;

use async_graphql::dataloader::DataLoader;
use async_graphql::parser::types::OperationType;
use async_graphql::{BatchRequest, Request, Response as GqlResponse};
use axum::body::Bytes;
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use tokio::task::AbortHandle;
use tracing::Instrument;

use super::{HttpState, json_values, ws};
use crate::auth::{Viewer, bearer_token};
use crate::error::{ApiError, ErrorCode, graphql_error};
use crate::graphql::documents::{self, RanOperation};
use crate::graphql::loaders::Loaders;

const GRAPHQL_RESPONSE: &str = "application/graphql-response+json";
const JSON: &str = "application/json";

/// The media type the client asked for.
#[derive(Clone, Copy, PartialEq, Eq)]
enum MediaType {
    GraphqlResponse,
    Json,
}

impl MediaType {
    fn negotiate(headers: &HeaderMap) -> Self {
        let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()).unwrap_or("");
        if accept.contains(GRAPHQL_RESPONSE) { Self::GraphqlResponse } else { Self::Json }
    }

    fn as_str(self) -> &'static str {
        match self {
            Self::GraphqlResponse => GRAPHQL_RESPONSE,
            Self::Json => JSON,
        }
    }
}

pub async fn post(State(state): State<Arc<HttpState>>, headers: HeaderMap, body: Bytes) -> Response {
    let media = MediaType::negotiate(&headers);
    let content_type = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    if !content_type.starts_with(JSON) {
        return refuse(
            media,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ErrorCode::BadUserInput,
            "send application/json",
        );
    }
    let max_values = json_values::allowed(state.app.limits.max_body_bytes);
    if json_values::count(&body) > max_values {
        let message = format!("the body holds more than {max_values} JSON values");
        return refuse(media, StatusCode::BAD_REQUEST, ErrorCode::BadUserInput, message);
    }
    let request = match serde_json::from_slice::<BatchRequest>(&body) {
        Ok(BatchRequest::Single(request)) => request,
        Ok(BatchRequest::Batch(_)) => {
            return refuse(
                media,
                StatusCode::BAD_REQUEST,
                ErrorCode::BadUserInput,
                "batched requests are not supported",
            );
        }
        Err(err) => {
            let message = format!("the body is not a GraphQL request: {err}");
            return refuse(media, StatusCode::BAD_REQUEST, ErrorCode::BadUserInput, message);
        }
    };
    execute(&state, &headers, media, request).await
}

/// `GET /graphql`: a WebSocket upgrade, or a query in the URL.
pub async fn get_or_upgrade(
    State(state): State<Arc<HttpState>>,
    headers: HeaderMap,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
    RawQuery(query): RawQuery,
) -> Response {
    if let Ok(upgrade) = upgrade {
        return ws::upgrade(state, upgrade);
    }
    let media = MediaType::negotiate(&headers);
    let query = query.as_deref().unwrap_or("");
    let max_values = json_values::allowed(state.app.limits.max_body_bytes);
    if json_values::count_in_url(query) > max_values {
        let message = format!("the URL holds more than {max_values} JSON values");
        return refuse(media, StatusCode::BAD_REQUEST, ErrorCode::BadUserInput, message);
    }
    let request = match async_graphql::http::parse_query_string(query) {
        Ok(request) => request,
        Err(err) => {
            let message = format!("invalid GraphQL request in the URL: {err}");
            return refuse(media, StatusCode::BAD_REQUEST, ErrorCode::BadUserInput, message);
        }
    };
    if let Some(message) = documents::over_length(&request.query, state.app.limits.max_query_bytes) {
        return refuse(media, StatusCode::BAD_REQUEST, ErrorCode::BadUserInput, message);
    }
    if is_mutation(&request) {
        let mut response =
            refuse(media, StatusCode::METHOD_NOT_ALLOWED, ErrorCode::BadUserInput, "mutations need POST");
        response.headers_mut().insert(header::ALLOW, HeaderValue::from_static("POST"));
        return response;
    }
    execute(&state, &headers, media, request).await
}

/// Whether the operation to run is a mutation (unparsable queries fail later, in execution).
fn is_mutation(request: &Request) -> bool {
    let Ok(document) = async_graphql::parser::parse_query(&request.query) else { return false };
    let name = request.operation_name.as_deref();
    document
        .operations
        .iter()
        .find(|(op_name, _)| name.is_none() || op_name.map(|n| n.as_str()) == name)
        .is_some_and(|(_, op)| op.node.ty == OperationType::Mutation)
}

async fn execute(state: &HttpState, headers: &HeaderMap, media: MediaType, mut request: Request) -> Response {
    if let Some(value) = headers.get(header::AUTHORIZATION) {
        let token = value.to_str().map(bearer_token).unwrap_or("");
        match state.app.auth.authenticate(&state.app.store, &state.app.directory, token).await {
            Ok(viewer) => request = with_viewer(state, request, viewer),
            Err(err) if err.code() == ErrorCode::Unauthenticated => {
                return refuse(media, StatusCode::UNAUTHORIZED, err.code(), err.public_message().to_owned());
            }
            Err(err) => {
                // Logged (with the request id) and masked by the conversion.
                let error = async_graphql::Error::from(err).into_server_error(Default::default());
                return respond(
                    media,
                    StatusCode::INTERNAL_SERVER_ERROR,
                    &GqlResponse::from_errors(vec![error]),
                );
            }
        }
    }
    let (ran, asked) = (RanOperation::default(), request.operation_name.clone());
    let started = Instant::now();
    // In a task of its own, which a client that goes away stops only before its document
    // turns out to hold a mutation: a mutation dropped between its commit and its announcement
    // was stored but never announced (a removed member's other sessions kept receiving the
    // room). A query still stops with its client, so no work outlives the one who asked.
    let (schema, request) = (state.schema.clone(), request.data(ran.clone()));
    let task = tokio::spawn(async move { schema.execute(request).await }.in_current_span());
    let _unless_mutation = StopUnlessMutation { task: task.abort_handle(), ran: ran.clone() };
    let response = match task.await {
        Ok(response) => response,
        Err(panicked) => {
            let error = async_graphql::Error::from(ApiError::internal(panicked));
            let response = GqlResponse::from_errors(vec![error.into_server_error(Default::default())]);
            return respond(media, StatusCode::INTERNAL_SERVER_ERROR, &response);
        }
    };
    let operation = operation_label(ran.name().or(asked.as_deref()));
    let outcome = if response.errors.is_empty() { "ok" } else { "error" };
    metrics::histogram!("parley_graphql_request_seconds", "operation" => operation, "outcome" => outcome)
        .record(started.elapsed().as_secs_f64());
    let status = if media == MediaType::GraphqlResponse && failed_before_execution(&response) {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    respond(media, status, &response)
}

/// Stops a request's task when the request is dropped (its client went away), unless its
/// document holds a mutation; once the task ended, stopping it does nothing.
struct StopUnlessMutation {
    task: AbortHandle,
    ran: RanOperation,
}

impl Drop for StopUnlessMutation {
    fn drop(&mut self) {
        if !self.ran.is_mutation() {
            self.task.abort();
        }
    }
}

/// Operation names label the latency metric. Clients choose them, so only the first
/// `MAX_OPERATION_LABELS` distinct names get their own series; the rest share "other".
fn operation_label(name: Option<&str>) -> String {
    const MAX_OPERATION_LABELS: usize = 200;
    static SEEN: LazyLock<Mutex<HashSet<String>>> = LazyLock::new(Default::default);
    let Some(name) = name.filter(|n| n.len() <= 64) else { return "anonymous".to_owned() };
    let mut seen = SEEN.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    if seen.contains(name) || seen.len() < MAX_OPERATION_LABELS {
        seen.insert(name.to_owned());
        name.to_owned()
    } else {
        "other".to_owned()
    }
}

/// Attaches the caller and their per-request loaders.
pub fn with_viewer(state: &HttpState, request: Request, viewer: Viewer) -> Request {
    let loaders = Loaders {
        store: state.app.store.clone(),
        directory: state.app.directory.clone(),
        presence: state.app.presence.clone(),
        viewer: viewer.clone(),
    };
    let loaders = DataLoader::new(loaders, tokio::spawn);
    request.data(viewer).data(loaders)
}

/// Parse and validation errors leave no data and carry no path.
fn failed_before_execution(response: &GqlResponse) -> bool {
    response.data == async_graphql::Value::Null
        && !response.errors.is_empty()
        && response.errors.iter().all(|e| e.path.is_empty())
}

fn refuse(media: MediaType, status: StatusCode, code: ErrorCode, message: impl Into<String>) -> Response {
    // A request that is not well-formed gets a 4xx whatever the media type; only executed
    // requests answer application/json with 200.
    respond(media, status, &GqlResponse::from_errors(vec![graphql_error(code, message)]))
}

fn respond(media: MediaType, status: StatusCode, response: &GqlResponse) -> Response {
    // A request error (the operation never ran) has no `data` entry at all in
    // application/graphql-response+json; async-graphql would write `"data": null`.
    let encoded = if media == MediaType::GraphqlResponse && failed_before_execution(response) {
        serde_json::to_vec(&serde_json::json!({ "errors": response.errors }))
    } else {
        serde_json::to_vec(response)
    };
    match encoded {
        Ok(body) => (status, [(header::CONTENT_TYPE, media.as_str())], body).into_response(),
        Err(err) => {
            tracing::error!(%err, "cannot encode a GraphQL response");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

//! The HTTP surface: the router and its layers (request ids, tracing, CORS, body limit,
//! compression),
//! GraphQL over HTTP, GraphQL over WebSocket, the browser pages (GraphiQL, `/app`), the
//! unsubscribe link of notification emails, the inbound support webhook, health and metrics.
//!
//! Architecture invariant: only this module knows axum and HTTP headers; it turns requests
//! into a `Viewer` (through `auth`) and GraphQL executions, nothing more.

mod assets;
mod body_limit;
mod graphql;
mod inbound;
mod json_values;
mod ops;
mod unsubscribe;
mod ws;

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::handler::Handler;
use axum::http::{HeaderName, HeaderValue, Method, header};
use axum::routing::{MethodRouter, get};
use metrics_exporter_prometheus::PrometheusHandle;
use tokio::sync::{mpsc, watch};
use tower::ServiceBuilder;
use tower_http::compression::CompressionLayer;
use tower_http::compression::predicate::{NotForContentType, Predicate, SizeAbove};
use tower_http::cors::{AllowOrigin, Any, CorsLayer};
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;

use crate::graphql::ParleySchema;
use crate::graphql::frames::FrameMemo;
use crate::state::AppState;

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// What the handlers share.
#[derive(Clone)]
pub struct HttpState {
    pub app: AppState,
    pub schema: ParleySchema,
    /// Subscription payloads shared by the subscribers of one document (shared fan-out).
    pub frames: FrameMemo,
    pub metrics: Option<PrometheusHandle>,
    pub playground: bool,
    /// The demo users and tokens when this process seeded the demo, for `/app`'s sign-in.
    pub demo_logins: Option<Arc<Vec<crate::demo::DemoLogin>>>,
    /// Flips to true on shutdown: WebSockets close with 1001.
    pub shutdown: watch::Receiver<bool>,
    /// Every WebSocket connection holds this state (and so this sender) until it ends, so
    /// shutdown can wait for their close frames by waiting for the channel to close.
    pub websockets: mpsc::Sender<()>,
}

pub fn router(state: HttpState, cors_origins: &str) -> Router {
    let max_body = state.app.limits.max_body_bytes;
    let trace = TraceLayer::new_for_http().make_span_with(|request: &axum::http::Request<_>| {
        let request_id = request.headers().get(&REQUEST_ID).and_then(|v| v.to_str().ok()).unwrap_or("-");
        tracing::info_span!("request", method = %request.method(), path = %request.uri().path(), request_id)
    });
    // The first layer is the outermost: every answer, a refusal of the body limit included,
    // gets a request id and CORS headers (a page on another origin reads its 413).
    let layers = ServiceBuilder::new()
        .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
        .layer(trace)
        .layer(PropagateRequestIdLayer::new(REQUEST_ID))
        .layer(cors(cors_origins))
        // One limit for every route, enforced before any handler reads the body.
        .layer(axum::middleware::from_fn_with_state(max_body, body_limit::limit_body));
    Router::new()
        .route("/", compressed(assets::graphiql))
        .route("/app", compressed(assets::app))
        .route("/app/", compressed(assets::app))
        .route("/app/demo-users", get(assets::demo_users))
        .route("/assets/{*path}", compressed(assets::asset))
        // Not the WebSocket upgrade of GET: a 101 has no body to compress.
        .route("/graphql", get(graphql::get_or_upgrade).post(graphql::post.layer(compression())))
        .route("/healthz", get(ops::healthz))
        .route("/readyz", get(ops::readyz))
        .route("/metrics", compressed(ops::metrics))
        .route("/webhooks/inboxes/{id}/messages", axum::routing::post(inbound::receive))
        .route("/notifications/unsubscribe", get(unsubscribe::confirm).post(unsubscribe::unsubscribe))
        // `body_limit` is the limit; axum's own default (2 MiB) would cap a larger setting.
        // After the routes: a layer wraps only the routes that exist when it is added.
        .layer(DefaultBodyLimit::disable())
        .layer(layers)
        .with_state(Arc::new(state))
}

/// gzip for clients that accept it, on bodies of 1 KiB or more (below, the header and the
/// CPU cost more than the bytes saved), images excepted (already compressed).
fn compression() -> CompressionLayer<impl Predicate> {
    CompressionLayer::new()
        .no_br()
        .no_deflate()
        .no_zstd()
        .compress_when(SizeAbove::new(1024).and(NotForContentType::IMAGES))
}

fn compressed<H, T>(handler: H) -> MethodRouter<Arc<HttpState>>
where
    H: Handler<T, Arc<HttpState>>,
    T: 'static,
{
    get(handler.layer(compression()))
}

fn cors(origins: &str) -> CorsLayer {
    let layer = CorsLayer::new().allow_methods([Method::GET, Method::POST, Method::OPTIONS]).allow_headers([
        header::AUTHORIZATION,
        header::CONTENT_TYPE,
        header::ACCEPT,
    ]);
    if origins.trim() == "*" {
        return layer.allow_origin(Any);
    }
    let list: Vec<HeaderValue> =
        origins.split(',').filter_map(|o| HeaderValue::from_str(o.trim()).ok()).collect();
    layer.allow_origin(AllowOrigin::list(list))
}

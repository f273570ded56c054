//! The browser pages Parley serves itself: GraphiQL at `/`, the reference web client at
//! `/app`, and their files under `/assets/`. All of them are embedded in the binary from
//! `api/assets/` (vendored GraphiQL and React builds included), so the pages work on a machine
//! without internet, and a Content-Security-Policy lets them load and connect to this server
//! only. `/app/demo-users` offers the demo's users to `/app`'s sign-in form.
//! `PARLEY_PLAYGROUND=false` turns all of it off.
//!
//! Architecture invariant: nothing here knows GraphQL; the pages are static files that talk
//! to `/graphql` like any other client.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Json;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::uri::Authority;
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use rust_embed::RustEmbed;

use super::HttpState;

#[derive(RustEmbed)]
#[folder = "assets/"]
struct Assets;

/// Scripts, styles and connections from this origin only. `connect-src 'self'` covers
/// `ws:`/`wss:` to the same host in CSP Level 3.
const APP_POLICY: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
     connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";
/// The same for GraphiQL, whose fonts and icons are `data:` URIs and whose editor (CodeMirror)
/// and React components set inline styles.
const GRAPHIQL_POLICY: &str = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
     img-src 'self' data:; font-src 'self' data:; connect-src 'self'; object-src 'none'; \
     base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// GraphiQL.
pub async fn graphiql(State(state): State<Arc<HttpState>>, headers: HeaderMap) -> Response {
    page(&state, "graphiql/index.html", &headers)
}

/// The reference web client.
pub async fn app(State(state): State<Arc<HttpState>>, headers: HeaderMap) -> Response {
    page(&state, "app/index.html", &headers)
}

/// The demo users with tokens, for `/app`'s sign-in buttons: only when this process seeded the
/// demo into an empty database at start-up, and only to `/app` itself in a browser on this
/// machine (they are the tokens the start-up banner printed to its terminal). 404 otherwise.
pub async fn demo_users(
    State(state): State<Arc<HttpState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let local = peer.ip().is_loopback() && asked_for_loopback(&headers, &uri);
    match &state.demo_logins {
        Some(logins) if state.playground && local && !relayed_or_cross_site(&headers) => {
            Json(logins.as_slice()).into_response()
        }
        _ => StatusCode::NOT_FOUND.into_response(),
    }
}

/// Whether the browser addressed this machine by a loopback name. A site whose own name
/// resolves to 127.0.0.1 (DNS rebinding) is same-origin with itself, so only the name the
/// browser used tells its page apart from `/app`.
fn asked_for_loopback(headers: &HeaderMap, uri: &Uri) -> bool {
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok());
    // HTTP/2 names it in the request's authority instead.
    let authority = host.and_then(|host| host.parse::<Authority>().ok()).or_else(|| uri.authority().cloned());
    authority.is_some_and(|authority| matches!(authority.host(), "localhost" | "127.0.0.1" | "[::1]" | "::1"))
}

/// True when a loopback peer is not the browser on this machine showing `/app`: a page of
/// another site fetching from it (CORS would let that page read the answer), or a reverse
/// proxy on this machine relaying someone from anywhere.
fn relayed_or_cross_site(headers: &HeaderMap) -> bool {
    let value = |name: &str| headers.get(name).map(|v| v.to_str().unwrap_or_default());
    let relayed =
        ["forwarded", "x-forwarded-for", "x-real-ip"].iter().any(|name| headers.contains_key(*name));
    // Browsers name the requesting site in `Sec-Fetch-Site`, and send `Origin` on a
    // cross-origin read; a same-origin one must name this server as the origin.
    let cross_site = value("sec-fetch-site").is_some_and(|site| site != "same-origin" && site != "none");
    let foreign_origin = value("origin").is_some_and(|origin| {
        let origin_host = origin.split_once("://").map_or(origin, |(_, host)| host);
        value("host") != Some(origin_host)
    });
    relayed || cross_site || foreign_origin
}

/// A file the pages load: `/assets/{path}`.
pub async fn asset(
    State(state): State<Arc<HttpState>>,
    Path(path): Path<String>,
    headers: HeaderMap,
) -> Response {
    page(&state, &path, &headers)
}

/// Every page and file is off with the playground.
fn page(state: &HttpState, path: &str, headers: &HeaderMap) -> Response {
    if !state.playground {
        return StatusCode::NOT_FOUND.into_response();
    }
    file(path, headers)
}

/// The embedded file with its type and an ETag: browsers revalidate (`no-cache`) and get a
/// 304 until a new binary ships different bytes.
///
/// The tag is weak: the compression layer sends the file gzipped to some clients and plain to
/// others under this one tag, and a strong tag promises one byte sequence (RFC 9110 §8.8.1).
/// `If-None-Match` compares weakly in any case (§13.1.2).
fn file(path: &str, headers: &HeaderMap) -> Response {
    let Some(file) = Assets::get(path) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let opaque = format!("\"{}\"", hex::encode(file.metadata.sha256_hash()));
    // Vary on every answer, the 304 too: the compression layer adds it only to what it may compress.
    let common = [
        (header::ETAG, format!("W/{opaque}")),
        (header::CACHE_CONTROL, "no-cache".to_owned()),
        (header::VARY, "accept-encoding".to_owned()),
    ];
    if headers.get_all(header::IF_NONE_MATCH).iter().any(|tags| none_match_hits(tags, &opaque)) {
        return (StatusCode::NOT_MODIFIED, common).into_response();
    }
    let kind = (header::CONTENT_TYPE, file.metadata.mimetype().to_owned());
    let nosniff = (header::X_CONTENT_TYPE_OPTIONS, "nosniff".to_owned());
    let mut response = (common, [kind, nosniff], file.data).into_response();
    // Every page, also when fetched by its /assets/ path, carries its policy.
    if path.ends_with(".html") {
        let policy = if path.starts_with("graphiql/") { GRAPHIQL_POLICY } else { APP_POLICY };
        let page_headers = response.headers_mut();
        page_headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(policy));
        page_headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    }
    response
}

/// Whether an `If-None-Match` line (`*`, or tags with or without `W/`) names `opaque`.
fn none_match_hits(tags: &HeaderValue, opaque: &str) -> bool {
    let Ok(tags) = tags.to_str() else { return false };
    tags.split(',').map(str::trim).any(|tag| tag == "*" || tag.strip_prefix("W/").unwrap_or(tag) == opaque)
}

//! The browser pages Parley serves itself: GraphiQL at `/`, the reference web client at
//! `/app`, and their files under `/assets/`. All of them are embedded in the binary from
//! `api/assets/` (vendored GraphiQL and React builds included), so the pages work on a machine
//! without internet, and a Content-Security-Policy lets them load and connect to this server
//! only. `PARLEY_PLAYGROUND=false` turns all of it off.
//!
//! Architecture invariant: nothing here knows GraphQL; the pages are static files that talk
//! to `/graphql` like any other client.

use std::fmt::Write;
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use rust_embed::RustEmbed;

use super::HttpState;

#[derive(RustEmbed)]
#[folder = "assets/"]
struct Assets;

/// Scripts, styles and connections from this origin only (GraphiQL's fonts and icons are
/// `data:` URIs; React sets inline styles). `connect-src 'self'` covers `ws:`/`wss:` to the
/// same host in CSP Level 3.
const PAGE_POLICY: &str = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
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

/// A file the pages load: `/assets/{path}`.
pub async fn asset(
    State(state): State<Arc<HttpState>>,
    Path(path): Path<String>,
    headers: HeaderMap,
) -> Response {
    if !state.playground {
        return StatusCode::NOT_FOUND.into_response();
    }
    file(&path, &headers)
}

fn page(state: &HttpState, path: &str, headers: &HeaderMap) -> Response {
    if !state.playground {
        return StatusCode::NOT_FOUND.into_response();
    }
    let mut response = file(path, headers);
    let page_headers = response.headers_mut();
    page_headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(PAGE_POLICY));
    page_headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    response
}

/// The embedded file with its type and an ETag: browsers revalidate (`no-cache`) and get a
/// 304 until a new binary ships different bytes.
fn file(path: &str, headers: &HeaderMap) -> Response {
    let Some(file) = Assets::get(path) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let etag = file.metadata.sha256_hash().iter().fold(String::from("\""), |mut tag, byte| {
        let _ = write!(tag, "{byte:02x}");
        tag
    }) + "\"";
    let common = [(header::ETAG, etag.clone()), (header::CACHE_CONTROL, "no-cache".to_owned())];
    if headers.get(header::IF_NONE_MATCH).is_some_and(|tag| tag.as_bytes() == etag.as_bytes()) {
        return (StatusCode::NOT_MODIFIED, common).into_response();
    }
    let kind = (header::CONTENT_TYPE, file.metadata.mimetype().to_owned());
    let nosniff = (header::X_CONTENT_TYPE_OPTIONS, "nosniff".to_owned());
    (common, [kind, nosniff], file.data).into_response()
}

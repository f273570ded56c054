//! The browser pages over plain HTTP: GraphiQL (`/`) and the reference client (`/app`) load
//! every file from the server itself, under a Content-Security-Policy that allows nothing
//! else; files revalidate with ETags; `PARLEY_PLAYGROUND=false` removes all of it. What the
//! pages do in a browser is in `browser`.

use crate::helpers::{Backend, TestApp, spawn_app, spawn_app_with};

backend_tests!(pages_load_everything_from_the_server, assets_revalidate_and_stay_inside_their_folder);

/// The `src` and `href` attributes of a page.
fn references(html: &str) -> Vec<String> {
    ["src=\"", "href=\""]
        .iter()
        .flat_map(|attribute| html.split(attribute).skip(1))
        .filter_map(|rest| rest.split('"').next())
        .map(str::to_owned)
        .collect()
}

async fn get(app: &TestApp, path: &str) -> reqwest::Response {
    app.http.get(app.url(path)).send().await.expect("GET")
}

fn header(response: &reqwest::Response, name: &str) -> String {
    response.headers().get(name).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned()
}

async fn pages_load_everything_from_the_server(backend: Backend) {
    let app = spawn_app(backend).await;
    for page in ["/", "/app"] {
        let response = get(&app, page).await;
        assert_eq!(response.status().as_u16(), 200, "{page}");
        assert!(header(&response, "content-type").starts_with("text/html"), "{page}");
        let policy = header(&response, "content-security-policy");
        for directive in ["default-src 'self'", "script-src 'self'", "connect-src 'self'"] {
            assert!(policy.contains(directive), "{page}: {directive} in {policy:?}");
        }
        let html = response.text().await.expect("the page");
        let files = references(&html);
        assert!(!files.is_empty(), "{page} loads scripts and styles");
        // `data:` URIs (the empty favicon) are inline and request nothing.
        for file in files.into_iter().filter(|f| !f.starts_with("data:")) {
            assert!(file.starts_with("/assets/"), "{page} loads {file} from elsewhere");
            let asset = get(&app, &file).await;
            assert_eq!(asset.status().as_u16(), 200, "{file}");
            let kind = header(&asset, "content-type");
            let expected = if file.ends_with(".css") { "text/css" } else { "javascript" };
            assert!(kind.contains(expected), "{file} served as {kind}");
        }
    }
    for page in ["/assets/app/index.html", "/assets/graphiql/index.html"] {
        let policy = header(&get(&app, page).await, "content-security-policy");
        assert!(policy.contains("default-src 'self'"), "{page} by its file path: {policy:?}");
    }
    let licences = get(&app, "/assets/vendor/LICENSES.md").await.text().await.expect("licences");
    assert!(licences.contains("graphiql@3.9.0") && licences.contains("MIT"), "the vendored files' licences");

    // No demo was seeded by this server: no demo users to offer.
    assert_eq!(get(&app, "/app/demo-users").await.status().as_u16(), 404);

    let closed = spawn_app_with(backend, &[("PARLEY_PLAYGROUND", "false")]).await;
    for path in ["/", "/app", "/assets/app/app.js", "/assets/vendor/graphiql-3.9.0.min.js"] {
        assert_eq!(get(&closed, path).await.status().as_u16(), 404, "{path} with the playground off");
    }
}

async fn assets_revalidate_and_stay_inside_their_folder(backend: Backend) {
    let app = spawn_app(backend).await;
    let first = get(&app, "/assets/app/app.js").await;
    let etag = header(&first, "etag");
    // Weak: the gzipped and the plain file are sent under one tag.
    assert!(etag.starts_with("W/\"") && etag.len() > 10, "a weak ETag: {etag:?}");
    assert_eq!(header(&first, "cache-control"), "no-cache");
    let revalidate = async |if_none_match: &str, accept_encoding: &str| {
        let request = app.http.get(app.url("/assets/app/app.js")).header("Accept-Encoding", accept_encoding);
        request.header("If-None-Match", if_none_match).send().await.expect("GET")
    };
    let again = revalidate(&etag, "identity").await;
    assert_eq!(again.status().as_u16(), 304);
    assert_eq!(header(&again, "etag"), etag, "a 304 names the tag it matched");
    assert_eq!(
        header(&again, "vary").to_ascii_lowercase(),
        "accept-encoding",
        "a cache keeps both encodings"
    );
    assert!(again.bytes().await.expect("body").is_empty());
    let gzipped = revalidate("\"old\"", "gzip").await;
    assert_eq!(gzipped.status().as_u16(), 200);
    assert_eq!(header(&gzipped, "content-encoding"), "gzip");
    assert_eq!(header(&gzipped, "etag"), etag, "one weak tag for both encodings");
    let vary =
        gzipped.headers().get_all("vary").iter().filter(|v| v.as_bytes().starts_with(b"accept-encoding"));
    assert_eq!(vary.count(), 1, "Vary: accept-encoding, once");
    // Compared weakly (RFC 9110 §13.1.2), in a list, or `*`.
    let strong = etag.trim_start_matches("W/");
    for hit in [strong.to_owned(), format!("\"old\", {etag}"), "*".to_owned()] {
        assert_eq!(revalidate(&hit, "gzip").await.status().as_u16(), 304, "If-None-Match: {hit}");
    }
    assert_eq!(revalidate("\"old\", W/\"older\"", "identity").await.status().as_u16(), 200);
    let two_lines = app.http.get(app.url("/assets/app/app.js")).header("If-None-Match", "\"old\"");
    let two_lines = two_lines.header("If-None-Match", &etag).send().await.expect("GET");
    assert_eq!(two_lines.status().as_u16(), 304, "If-None-Match over two header lines");

    // Encoded, so the client sends them as they are instead of resolving the dots itself.
    for path in
        ["/assets/nothing.js", "/assets/..%2fCargo.toml", "/assets/%2e%2e%2fapi%2fsrc%2flib.rs", "/assets/"]
    {
        assert_eq!(get(&app, path).await.status().as_u16(), 404, "{path}");
    }
}

/// SQLite only: the demo is seeded into an empty database.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_freshly_seeded_demo_offers_its_users_to_this_machine() {
    let app = spawn_app_with(Backend::Sqlite, &[("PARLEY_DEMO", "true")]).await;
    let logins: serde_json::Value = get(&app, "/app/demo-users").await.json().await.expect("JSON");
    let handles: Vec<&str> =
        logins.as_array().expect("a list").iter().filter_map(|u| u["handle"].as_str()).collect();
    assert_eq!(handles, ["alice", "bob", "carol", "admin"]);
    assert_eq!(logins[0]["displayName"], "Alice Archer");
    let token = logins[0]["token"].as_str().expect("a token");
    let me = app.gql_token(Some(token), "{ viewer { handle } }", serde_json::json!({})).await;
    assert_eq!(me["data"]["viewer"]["handle"], "alice");

    // `/app` itself asks as a same-origin page; another site's page in the same browser, or
    // someone relayed by a reverse proxy on this machine, is not offered the tokens.
    let asked_with = |name: &'static str, value: String| {
        let request = app.http.get(app.url("/app/demo-users")).header(name, value);
        async move { request.send().await.expect("GET").status().as_u16() }
    };
    let own_origin = app.url("").trim_end_matches('/').to_owned();
    assert_eq!(asked_with("Sec-Fetch-Site", "same-origin".into()).await, 200);
    assert_eq!(asked_with("Origin", own_origin).await, 200);
    assert_eq!(asked_with("Sec-Fetch-Site", "cross-site".into()).await, 404);
    assert_eq!(asked_with("Origin", "https://attacker.example".into()).await, 404);
    assert_eq!(asked_with("X-Forwarded-For", "203.0.113.9".into()).await, 404);
    // A site whose name resolves to this machine (DNS rebinding) is same-origin with itself.
    let port = app.addr.rsplit_once(':').map_or("", |(_, port)| port);
    let rebound = app.http.get(app.url("/app/demo-users")).header("Host", format!("rebound.example:{port}"));
    let rebound = rebound.header("Sec-Fetch-Site", "same-origin").send().await.expect("GET");
    assert_eq!(rebound.status().as_u16(), 404);
    let by_name = app.http.get(app.url("/app/demo-users")).header("Host", format!("localhost:{port}"));
    assert_eq!(by_name.send().await.expect("GET").status().as_u16(), 200, "localhost is this machine");

    let closed =
        spawn_app_with(Backend::Sqlite, &[("PARLEY_DEMO", "true"), ("PARLEY_PLAYGROUND", "false")]).await;
    assert_eq!(get(&closed, "/app/demo-users").await.status().as_u16(), 404);
}

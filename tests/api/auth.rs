//! Authentication: which tokens open the API over HTTP and WebSocket, and what
//! every other token gets (missing, expired, forged, `alg: none`, wrong
//! organisation, another issuer or audience when those are checked, a shared-secret token
//! where a public key verifies), and a WebSocket outliving its token. Also `viewer`, the
//! caller's own identity.

use serde_json::{Value, json};

use crate::helpers::ws::{Protocol, WsClient, bearer};
use crate::helpers::{
    Backend, JWT_SECRET, TestApp, WAIT, assert_error_code, claims, data, mint_token, spawn_app,
    spawn_app_with,
};

backend_tests!(
    viewer_is_the_token_subject,
    self_minted_token_is_accepted,
    missing_token_is_unauthenticated,
    expired_token_is_rejected_with_401,
    token_signed_with_another_secret_is_rejected,
    alg_none_token_is_rejected,
    token_for_unknown_org_is_unauthenticated,
    token_mixing_two_orgs_is_unauthenticated,
    websocket_init_with_bad_token_closes_4403,
    websocket_init_accepts_token_key_variants,
    a_websocket_closes_once_its_token_expires,
    an_issuers_tokens_are_checked_with_its_public_key_issuer_and_audience,
);

const VIEWER: &str = "{ viewer { id handle displayName role } }";

/// POSTs `{ viewer { id } }` with `token`; returns status and JSON body.
async fn viewer_with(app: &TestApp, token: &str) -> (u16, Value) {
    let response = app.post_graphql(Some(token), &json!({ "query": VIEWER })).await;
    let status = response.status().as_u16();
    let body: Value = response.json().await.expect("an error body is JSON");
    (status, body)
}

/// A token the server must refuse before running anything: 401, UNAUTHENTICATED, no data.
async fn assert_rejected(app: &TestApp, token: &str) {
    let (status, body) = viewer_with(app, token).await;
    assert_eq!(status, 401, "expected 401 for a bad token, got {status}: {body:#}");
    assert_error_code(&body, "UNAUTHENTICATED");
    assert!(body["data"]["viewer"].is_null(), "a bad token must not see the viewer: {body:#}");
}

fn b64(value: &Value) -> String {
    // URL-safe base64 without padding, as JWT segments are written.
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let bytes = value.to_string().into_bytes();
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk.iter().enumerate().fold(0u32, |acc, (i, b)| acc | (u32::from(*b) << (16 - 8 * i)));
        for i in 0..=chunk.len() {
            out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}

async fn viewer_is_the_token_subject(backend: Backend) {
    let app = spawn_app(backend).await;
    let org = app.create_org().await;
    let alice = org.user("alice").await;
    let admin = org.user_with_role("root", "admin").await;

    let viewer = app.ok(&alice, VIEWER, json!({})).await["viewer"].clone();
    assert_eq!(
        viewer,
        json!({ "id": alice.id, "handle": alice.handle, "displayName": "Alice", "role": "MEMBER" })
    );
    let viewer = app.ok(&admin, VIEWER, json!({})).await["viewer"].clone();
    assert_eq!(viewer["role"], "ADMIN");
}

async fn self_minted_token_is_accepted(backend: Backend) {
    // The forged-token tests below only prove something if a correctly minted
    // token with the same claims works.
    let app = spawn_app(backend).await;
    let org = app.create_org().await;
    let alice = org.user("alice").await;
    let token = mint_token(&claims(&alice.id, &org.id, "member"), JWT_SECRET);

    let (status, body) = viewer_with(&app, &token).await;
    assert_eq!(status, 200);
    assert_eq!(data(body)["viewer"]["handle"], "alice");
}

async fn missing_token_is_unauthenticated(backend: Backend) {
    let app = spawn_app(backend).await;
    let org = app.create_org().await;
    let alice = org.user("alice").await;
    let room = crate::helpers::api::create_channel(&app, &alice, "general", &[]).await;

    let response = app.post_graphql(None, &json!({ "query": VIEWER })).await;
    assert_eq!(response.status().as_u16(), 200, "a missing token yields field errors");
    let body: Value = response.json().await.expect("JSON body");
    assert_error_code(&body, "UNAUTHENTICATED");

    let send = app
        .gql_token(
            None,
            &crate::helpers::api::send_query(),
            json!({ "input": { "roomId": room, "body": "anon" } }),
        )
        .await;
    assert_error_code(&send, "UNAUTHENTICATED");
    assert_eq!(crate::helpers::api::latest_seq(&app, &alice, &room).await, 0, "nothing was stored");
}

async fn expired_token_is_rejected_with_401(backend: Backend) {
    let app = spawn_app(backend).await;
    let org = app.create_org().await;
    let alice = org.user("alice").await;
    let mut expired = claims(&alice.id, &org.id, "member");
    let now = chrono::Utc::now().timestamp();
    // Well beyond any leeway (at most 30 s).
    expired["iat"] = json!(now - 7200);
    expired["exp"] = json!(now - 3600);

    assert_rejected(&app, &mint_token(&expired, JWT_SECRET)).await;
}

async fn token_signed_with_another_secret_is_rejected(backend: Backend) {
    let app = spawn_app(backend).await;
    let org = app.create_org().await;
    let alice = org.user("alice").await;
    let forged = mint_token(&claims(&alice.id, &org.id, "owner"), "not-the-server-secret-at-all-0123456789");

    assert_rejected(&app, &forged).await;
    assert_rejected(&app, "not.a.jwt").await;
    assert_rejected(&app, &format!("{}x", alice.token)).await;
}

async fn alg_none_token_is_rejected(backend: Backend) {
    let app = spawn_app(backend).await;
    let org = app.create_org().await;
    let alice = org.user("alice").await;
    let header = b64(&json!({ "alg": "none", "typ": "JWT" }));
    let payload = b64(&claims(&alice.id, &org.id, "owner"));

    assert_rejected(&app, &format!("{header}.{payload}.")).await;
}

async fn token_for_unknown_org_is_unauthenticated(backend: Backend) {
    let app = spawn_app(backend).await;
    let org = app.create_org().await;
    let alice = org.user("alice").await;
    let unknown_org = uuid::Uuid::now_v7().to_string();
    let token = mint_token(&claims(&alice.id, &unknown_org, "member"), JWT_SECRET);

    let (status, body) = viewer_with(&app, &token).await;
    assert!(status == 200 || status == 401, "unexpected status {status}");
    assert_error_code(&body, "UNAUTHENTICATED");
}

async fn token_mixing_two_orgs_is_unauthenticated(backend: Backend) {
    // A correctly signed token whose subject belongs to another organisation
    // than its `org` claim must not act in either organisation.
    let app = spawn_app(backend).await;
    let acme = app.create_org().await;
    let globex = app.create_org().await;
    let alice = acme.user("alice").await;
    let token = mint_token(&claims(&alice.id, &globex.id, "member"), JWT_SECRET);

    let (status, body) = viewer_with(&app, &token).await;
    assert!(status == 200 || status == 401, "unexpected status {status}");
    assert_error_code(&body, "UNAUTHENTICATED");
}

async fn websocket_init_with_bad_token_closes_4403(backend: Backend) {
    let app = spawn_app(backend).await;
    let org = app.create_org().await;
    let alice = org.user("alice").await;
    let mut expired = claims(&alice.id, &org.id, "member");
    expired["exp"] = json!(chrono::Utc::now().timestamp() - 3600);

    let payloads = [
        bearer("garbage"),
        bearer(&mint_token(&expired, JWT_SECRET)),
        bearer(&mint_token(&claims(&alice.id, &org.id, "member"), "wrong-secret-wrong-secret-wrong")),
        json!({}),
    ];
    for payload in payloads {
        let mut client = WsClient::open(&app, Protocol::TransportWs).await;
        client.send_json(json!({ "type": "connection_init", "payload": payload })).await;
        let closed = client.expect_close(WAIT).await;
        assert_eq!(closed.code, Some(4403), "init payload {payload} closed with {closed:?}");
    }
}

async fn websocket_init_accepts_token_key_variants(backend: Backend) {
    // SPEC §8: the key is case-insensitive and `token` is accepted too.
    let app = spawn_app(backend).await;
    let org = app.create_org().await;
    let alice = org.user("alice").await;
    let payloads = [
        bearer(&alice.token),
        json!({ "authorization": format!("Bearer {}", alice.token) }),
        json!({ "token": alice.token }),
    ];
    for payload in payloads {
        let mut client = WsClient::connect_with(&app, Protocol::TransportWs, payload).await;
        let mut sub =
            client.subscribe("1", "subscription { unreadCountChanged { roomId } }", json!({})).await;
        sub.assert_nothing(crate::helpers::QUIET).await;
        client.assert_open();
    }
}

/// A deployment behind an identity provider: tokens are verified with its public key
/// (EdDSA here), and `iss` and `aud` are checked. Its tokens open the API; one of another
/// issuer, for another audience, without either claim, or signed with a shared secret does
/// not.
async fn an_issuers_tokens_are_checked_with_its_public_key_issuer_and_audience(backend: Backend) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let (private, public) = (dir.path().join("private.pem"), dir.path().join("public.pem"));
    let openssl = |args: &[&str]| {
        let status = std::process::Command::new("openssl").args(args).status().expect("openssl runs");
        assert!(status.success(), "openssl {args:?}");
    };
    let (private_path, public_path) = (private.to_str().expect("a path"), public.to_str().expect("a path"));
    openssl(&["genpkey", "-algorithm", "ed25519", "-out", private_path]);
    openssl(&["pkey", "-in", private_path, "-pubout", "-out", public_path]);
    let settings = [
        ("PARLEY_JWT_PUBLIC_KEY", public_path),
        ("PARLEY_JWT_ISSUER", "https://id.example"),
        ("PARLEY_JWT_AUDIENCE", "parley"),
    ];
    let app = spawn_app_with(backend, &settings).await;
    let org = app.create_org().await;
    let dana = app.cli(&["user", "create", "--org", &org.slug, "--handle", "dana"]).await;

    let key = jsonwebtoken::EncodingKey::from_ed_pem(&std::fs::read(&private).expect("the private key"))
        .expect("an Ed25519 key");
    let header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::EdDSA);
    let signed = |iss: Option<&str>, aud: Option<&str>| {
        let mut claims = claims(&dana, &org.id, "member");
        if let Some(iss) = iss {
            claims["iss"] = json!(iss);
        }
        if let Some(aud) = aud {
            claims["aud"] = json!(aud);
        }
        jsonwebtoken::encode(&header, &claims, &key).expect("sign a token")
    };

    let (status, body) = viewer_with(&app, &signed(Some("https://id.example"), Some("parley"))).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(data(body)["viewer"]["handle"], "dana");
    assert_rejected(&app, &signed(Some("https://other.example"), Some("parley"))).await;
    assert_rejected(&app, &signed(Some("https://id.example"), Some("another-app"))).await;
    // A token the provider made for no audience, or without an issuer, is not one for us.
    assert_rejected(&app, &signed(Some("https://id.example"), None)).await;
    assert_rejected(&app, &signed(None, Some("parley"))).await;
    let mut shared = claims(&dana, &org.id, "member");
    shared["iss"] = json!("https://id.example");
    shared["aud"] = json!("parley");
    assert_rejected(&app, &mint_token(&shared, JWT_SECRET)).await;
}

/// A WebSocket lives only as long as its token is accepted: `exp` plus the 5 s leeway. This
/// token expired 2 s ago, so `connection_init` still accepts it, and the socket closes with
/// 4403 about 3 s later, as a request with it would be refused; another token's stays open.
async fn a_websocket_closes_once_its_token_expires(backend: Backend) {
    let app = spawn_app(backend).await;
    let org = app.create_org().await;
    let alice = org.user("alice").await;
    let now =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("after 1970").as_secs();
    let mut expiring = claims(&alice.id, &org.id, "member");
    expiring["exp"] = json!(now - 2);
    let token = mint_token(&expiring, JWT_SECRET);
    let started = std::time::Instant::now();
    let mut brief = WsClient::connect_with(&app, Protocol::TransportWs, bearer(&token)).await;
    let _sub = brief.subscribe("1", "subscription { unreadCountChanged { roomId } }", json!({})).await;
    let mut lasting = WsClient::connect(&app, &alice).await;
    let _kept = lasting.subscribe("1", "subscription { unreadCountChanged { roomId } }", json!({})).await;

    let closed = brief.expect_close(std::time::Duration::from_secs(10)).await;
    assert_eq!(closed.code, Some(4403), "{closed:?}");
    assert!(started.elapsed() >= std::time::Duration::from_secs(1), "not before the leeway ran out");
    assert_rejected(&app, &token).await;
    lasting.assert_open();
}

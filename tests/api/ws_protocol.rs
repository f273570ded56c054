//! WebSocket protocol conformance: every close code `graphql-transport-ws`
//! prescribes (4400, 4401, 4403 is in `auth`, 4408, 4409, 4429), ping/pong,
//! `complete`, errors for bad subscriptions, the per-connection subscription
//! cap, the legacy `graphql-ws` flow, 1001 on graceful shutdown, and 1001 for a client
//! that stopped answering pings.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::json;
use tokio::time::{timeout, timeout_at};
use tokio_tungstenite::connect_async;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;

use crate::helpers::api::{create_channel, send};
use crate::helpers::ws::{Protocol, WsClient, bearer};
use crate::helpers::{Backend, QUIET, WAIT, spawn_app, spawn_app_with};

backend_tests!(
    no_init_within_the_timeout_closes_4408,
    second_init_closes_4429,
    subscribe_before_ack_closes_4401,
    duplicate_active_subscription_id_closes_4409,
    malformed_messages_close_4400,
    ping_is_answered_with_pong,
    invalid_subscription_gets_an_error_frame,
    complete_stops_delivery,
    a_subscribe_larger_than_the_read_buffer_works,
    subscription_cap_answers_rate_limited,
    the_subscription_cap_counts_root_fields,
    legacy_graphql_ws_flow,
    shutdown_closes_websockets_with_1001,
    a_client_that_answers_nothing_is_closed_and_live_ones_kept,
);

const ALL: &str = "subscription { messageAdded { seq body } }";

async fn no_init_within_the_timeout_closes_4408(backend: Backend) {
    let app = spawn_app_with(backend, &[("PARLEY_WS_INIT_TIMEOUT_MS", "300")]).await;
    let mut client = WsClient::open(&app, Protocol::TransportWs).await;
    let started = tokio::time::Instant::now();

    let closed = client.expect_close(Duration::from_secs(3)).await;
    assert_eq!(closed.code, Some(4408), "closed with {:?}: {}", closed.code, closed.reason);
    assert!(
        started.elapsed() >= Duration::from_millis(200),
        "closed before the timeout: {:?}",
        started.elapsed()
    );
}

async fn second_init_closes_4429(backend: Backend) {
    let app = spawn_app(backend).await;
    let alice = app.create_org().await.user("alice").await;
    let mut client = WsClient::connect(&app, &alice).await;

    client.send_json(json!({ "type": "connection_init", "payload": bearer(&alice.token) })).await;
    assert_eq!(client.expect_close(WAIT).await.code, Some(4429));
}

async fn subscribe_before_ack_closes_4401(backend: Backend) {
    let app = spawn_app(backend).await;
    let mut client = WsClient::open(&app, Protocol::TransportWs).await;

    client.send_json(json!({ "id": "1", "type": "subscribe", "payload": { "query": ALL } })).await;
    assert_eq!(client.expect_close(WAIT).await.code, Some(4401));
}

async fn duplicate_active_subscription_id_closes_4409(backend: Backend) {
    let app = spawn_app(backend).await;
    let org = app.create_org().await;
    let alice = org.user("alice").await;
    let room = create_channel(&app, &alice, "general", &[]).await;
    let mut client = WsClient::connect(&app, &alice).await;

    // A completed id may be reused.
    let first = client.subscribe("a", ALL, json!({})).await;
    first.complete().await;
    client.settle().await;
    let mut again = client.subscribe("a", ALL, json!({})).await;
    send(&app, &alice, &room, "reused id works").await;
    assert_eq!(again.next("messageAdded").await["body"], "reused id works");

    client.subscribe_raw("a", ALL, json!({})).await;
    assert_eq!(client.expect_close(WAIT).await.code, Some(4409));
}

async fn malformed_messages_close_4400(backend: Backend) {
    let app = spawn_app(backend).await;
    let alice = app.create_org().await.user("alice").await;
    let frames = [
        "this is not json".to_owned(),
        json!({ "type": "no-such-type" }).to_string(),
        json!({ "id": "1", "type": "subscribe" }).to_string(),
        json!({ "type": "subscribe", "payload": { "query": ALL } }).to_string(),
        json!([1, 2, 3]).to_string(),
    ];
    for frame in &frames {
        let mut client = WsClient::connect(&app, &alice).await;
        client.send_text(frame).await;
        let closed = client.expect_close(WAIT).await;
        assert_eq!(closed.code, Some(4400), "frame {frame} closed with {closed:?}");
    }
    // Also before connection_init.
    let mut client = WsClient::open(&app, Protocol::TransportWs).await;
    client.send_text("{").await;
    assert_eq!(client.expect_close(WAIT).await.code, Some(4400));

    // A message may hold one JSON value per 10 bytes of the 256 KiB frame limit: 26 214.
    let padded = |n: usize| {
        let payload = json!({ "query": ALL, "variables": { "pad": vec![1; n] } });
        json!({ "id": "p", "type": "subscribe", "payload": payload }).to_string()
    };
    let mut client = WsClient::connect(&app, &alice).await;
    client.send_text(&padded(20_000)).await;
    client.ping_pong().await;
    client.assert_open();
    client.send_text(&padded(30_000)).await;
    let closed = client.expect_close(WAIT).await;
    assert_eq!(closed.code, Some(4400), "{closed:?}");
    assert_eq!(closed.reason, "invalid message: more than 26214 JSON values");
}

async fn ping_is_answered_with_pong(backend: Backend) {
    let app = spawn_app(backend).await;
    let alice = app.create_org().await.user("alice").await;

    // Ping may be sent at any time, even before connection_init.
    let mut early = WsClient::open(&app, Protocol::TransportWs).await;
    early.ping_pong().await;
    early.assert_open();

    let mut client = WsClient::connect(&app, &alice).await;
    client.ping_pong().await;
    client.send_json(json!({ "type": "ping", "payload": { "at": 1 } })).await;
    let pong = client.next_control(WAIT).await.expect("a pong");
    assert_eq!(pong["type"], "pong");
    // A pong the client sends unprompted is ignored, not an error.
    client.send_json(json!({ "type": "pong" })).await;
    client.ping_pong().await;
    client.assert_open();
}

async fn invalid_subscription_gets_an_error_frame(backend: Backend) {
    let app = spawn_app(backend).await;
    let alice = app.create_org().await.user("alice").await;
    let mut client = WsClient::connect(&app, &alice).await;

    let mut bad = client.subscribe("bad", "subscription { noSuchField }", json!({})).await;
    let frame = bad.next_frame(WAIT).await;
    assert_eq!(frame["type"], "error", "a validation failure is an `error` frame: {frame:#}");
    assert!(frame["payload"].as_array().is_some_and(|e| !e.is_empty()), "{frame:#}");

    let mut syntax = client.subscribe("syntax", "subscription {", json!({})).await;
    assert_eq!(syntax.next_frame(WAIT).await["type"], "error");

    // Refused after validation by async-graphql itself, which gives no code; the server does.
    let two = "subscription A { messageAdded { seq } } subscription B { messageAdded { seq } }";
    let mut unnamed = client.subscribe("unnamed", two, json!({})).await;
    let frame = unnamed.next_frame(WAIT).await;
    assert_eq!(frame["type"], "error");
    assert_eq!(frame["payload"][0]["extensions"]["code"], "BAD_USER_INPUT", "{frame:#}");
    client.ping_pong().await;
    client.assert_open();
}

async fn complete_stops_delivery(backend: Backend) {
    let app = spawn_app(backend).await;
    let org = app.create_org().await;
    let alice = org.user("alice").await;
    let room = create_channel(&app, &alice, "general", &[]).await;
    let mut client = WsClient::connect(&app, &alice).await;
    let mut sub = client.subscribe("1", ALL, json!({})).await;

    send(&app, &alice, &room, "first").await;
    assert_eq!(sub.next("messageAdded").await["seq"], 1);
    sub.complete().await;
    client.settle().await;
    send(&app, &alice, &room, "second").await;
    sub.assert_nothing(QUIET).await;
    client.assert_open();
}

/// The server reads at most 512 bytes at a time (idle connections stay small); a larger message,
/// here a 32 KiB document, still arrives whole, and the connection goes on.
async fn a_subscribe_larger_than_the_read_buffer_works(backend: Backend) {
    let app = spawn_app(backend).await;
    let org = app.create_org().await;
    let alice = org.user("alice").await;
    let room = create_channel(&app, &alice, "general", &[]).await;
    let mut client = WsClient::connect(&app, &alice).await;
    let padded = format!("subscription {{ messageAdded {{ seq {} body }} }}", " ".repeat(32 << 10));
    let mut sub = client.subscribe("1", &padded, json!({})).await;

    send(&app, &alice, &room, "through a large document").await;
    assert_eq!(sub.next("messageAdded").await["body"], "through a large document");
    client.ping_pong().await;
}

async fn subscription_cap_answers_rate_limited(backend: Backend) {
    let app = spawn_app_with(backend, &[("PARLEY_MAX_SUBSCRIPTIONS", "2")]).await;
    let org = app.create_org().await;
    let alice = org.user("alice").await;
    let room = create_channel(&app, &alice, "general", &[]).await;
    let mut client = WsClient::connect(&app, &alice).await;
    let mut one = client.subscribe("1", ALL, json!({})).await;
    let mut two = client.subscribe("2", ALL, json!({})).await;

    let mut three = client.subscribe("3", ALL, json!({})).await;
    assert_eq!(three.next_error_code().await, "RATE_LIMITED");
    client.assert_open();

    send(&app, &alice, &room, "to both").await;
    assert_eq!(one.next("messageAdded").await["seq"], 1);
    assert_eq!(two.next("messageAdded").await["seq"], 1);
    three.assert_nothing(QUIET).await;

    // Completing one frees its slot.
    one.complete().await;
    client.settle().await;
    let mut four = client.subscribe("4", ALL, json!({})).await;
    send(&app, &alice, &room, "to the new one").await;
    assert_eq!(four.next("messageAdded").await["seq"], 2);
}

/// A document with several root fields takes a slot per field: aliasing one field many
/// times in each document cannot multiply what one connection follows.
async fn the_subscription_cap_counts_root_fields(backend: Backend) {
    let app = spawn_app_with(backend, &[("PARLEY_MAX_SUBSCRIPTIONS", "3")]).await;
    let org = app.create_org().await;
    let alice = org.user("alice").await;
    let room = create_channel(&app, &alice, "general", &[]).await;
    let mut client = WsClient::connect(&app, &alice).await;
    let twice = "subscription { a: messageAdded { seq } b: messageAdded { seq } }";
    let mut two = client.subscribe("1", twice, json!({})).await;
    let mut over = client.subscribe("2", twice, json!({})).await;
    assert_eq!(over.next_error_code().await, "RATE_LIMITED");
    client.assert_open();
    // The refused document gave back the slot its first field took.
    let mut third = client.subscribe("3", ALL, json!({})).await;

    send(&app, &alice, &room, "to three feeds").await;
    let mut fields: Vec<String> = Vec::new();
    for _ in 0..2 {
        let data = two.next_data().await;
        fields.extend(data.as_object().expect("a result").keys().cloned());
    }
    fields.sort();
    assert_eq!(fields, ["a", "b"]);
    assert_eq!(third.next("messageAdded").await["seq"], 1);

    two.complete().await;
    client.settle().await;
    let mut again = client.subscribe("4", twice, json!({})).await;
    send(&app, &alice, &room, "to the slots given back").await;
    assert_eq!(again.next_data().await.as_object().map(|data| data.len()), Some(1));
    assert_eq!(again.next_data().await.as_object().map(|data| data.len()), Some(1));
}

async fn legacy_graphql_ws_flow(backend: Backend) {
    let app = spawn_app(backend).await;
    let org = app.create_org().await;
    let alice = org.user("alice").await;
    let room = create_channel(&app, &alice, "general", &[]).await;

    let mut client = WsClient::connect_with(&app, Protocol::LegacyWs, bearer(&alice.token)).await;
    let mut sub = client.subscribe("1", ALL, json!({})).await;
    send(&app, &alice, &room, "over the legacy protocol").await;
    let frame = sub.next_frame(WAIT).await;
    assert_eq!(frame["type"], "data", "{frame:#}");
    assert_eq!(frame["payload"]["data"]["messageAdded"]["body"], "over the legacy protocol");

    sub.complete().await; // `stop`
    client.settle().await;
    send(&app, &alice, &room, "after stop").await;
    sub.assert_no_data(QUIET).await;
    client.assert_open();

    // A bad token is refused on the legacy protocol too.
    let mut refused = WsClient::open(&app, Protocol::LegacyWs).await;
    refused.send_json(json!({ "type": "connection_init", "payload": bearer("garbage") })).await;
    let answer = refused.next_control(WAIT).await;
    assert!(
        answer.as_ref().is_none_or(|f| f["type"] != "connection_ack"),
        "legacy init with a bad token was acked"
    );
}

async fn shutdown_closes_websockets_with_1001(backend: Backend) {
    let mut app = spawn_app(backend).await;
    let alice = app.create_org().await.user("alice").await;
    let mut client = WsClient::connect(&app, &alice).await;
    let _sub = client.subscribe("1", ALL, json!({})).await;

    let status = app.terminate().await;
    let closed = client.expect_close(WAIT).await;
    assert_eq!(closed.code, Some(1001), "clients are told to reconnect elsewhere: {closed:?}");
    assert!(status.success(), "a graceful shutdown exits cleanly: {status}");
}

/// A phone that lost its network sends no FIN: its connection is closed after three quiet
/// keepalive periods, so it stops showing online. Clients that read, of either protocol,
/// answer the pings (the legacy one only at the WebSocket level) and are kept.
async fn a_client_that_answers_nothing_is_closed_and_live_ones_kept(backend: Backend) {
    // Two seconds, so that a stall of a loaded machine does not pass for a dead client.
    let app = spawn_app_with(backend, &[("PARLEY_WS_KEEPALIVE_SECS", "2")]).await;
    let org = app.create_org().await;
    let (alice, bob) = (org.user("alice").await, org.user("bob").await);
    let room = create_channel(&app, &alice, "general", &[&bob]).await;
    let mut current = WsClient::connect(&app, &bob).await;
    let mut legacy = WsClient::connect_with(&app, Protocol::LegacyWs, bearer(&bob.token)).await;
    let mut request = app.ws_url().into_client_request().expect("a valid ws:// url");
    request.headers_mut().insert("Sec-WebSocket-Protocol", HeaderValue::from_static("graphql-transport-ws"));
    let (mut silent, _) = connect_async(request).await.expect("WebSocket handshake");
    let init = json!({ "type": "connection_init", "payload": bearer(&bob.token) });
    silent.send(Message::text(init.to_string())).await.expect("connection_init sent");
    match timeout(WAIT, silent.next()).await.expect("an answer") {
        Some(Ok(Message::Text(text))) => assert!(text.contains("connection_ack"), "{text}"),
        other => panic!("expected connection_ack, got {other:?}"),
    }

    // Not read (so not answered) for five periods; then what it was sent ends in a close
    // (or, as the client's pong now meets a closed socket, in a broken pipe).
    tokio::time::sleep(Duration::from_secs(10)).await;
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        match timeout_at(deadline, silent.next()).await.expect("the server closes") {
            Some(Ok(Message::Close(frame))) => {
                assert_eq!(frame.map(|f| u16::from(f.code)), Some(1001));
                break;
            }
            Some(Ok(_)) => {}
            Some(Err(_)) | None => break,
        }
    }
    assert_eq!(app.metric("parley_ws_unanswered_closed_total").await, 1.0, "closed as unanswered");

    current.assert_open();
    legacy.assert_open();
    let mut a = current.subscribe("1", ALL, json!({})).await;
    let mut b = legacy.subscribe("1", ALL, json!({})).await;
    current.settle().await;
    legacy.settle().await;
    send(&app, &alice, &room, "still here").await;
    assert_eq!(a.next("messageAdded").await["body"], "still here");
    assert_eq!(b.next("messageAdded").await["body"], "still here");
}

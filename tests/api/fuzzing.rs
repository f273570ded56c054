//! Hostile input at the two doors: random and mutated frames at a live WebSocket (both
//! subprotocols) and random bodies at `/graphql`. Each case must be answered or closed with a
//! documented code, and the server must stay healthy after each (`/healthz`, and a fresh
//! connection still works at the end).
//!
//! Cases come from proptest strategies drawn with a `TestRunner` (the checks are async, so
//! there is no shrinking); a failure prints its case.

use std::time::Duration;

use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config, TestRunner};
use serde_json::{Value, json};

use crate::helpers::ws::{Protocol, WsClient, bearer};
use crate::helpers::{Backend, TestApp, spawn_app};

backend_tests!(
    random_websocket_frames_are_answered_or_closed_cleanly,
    random_http_bodies_are_refused_cleanly
);

const CASES: u32 = 128;

/// Close codes the server documents (ARCHITECTURE.md, WebSocket protocol).
const DOCUMENTED_CLOSES: [u16; 9] = [1000, 1001, 1009, 4400, 4401, 4403, 4408, 4409, 4429];

/// Any JSON value, a few levels deep, with long and odd strings among them.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_filter("finite", |f| f.is_finite()).prop_map(Value::from),
        ".{0,40}".prop_map(Value::from),
        (1usize..20_000).prop_map(|n| Value::from("x".repeat(n))),
    ];
    leaf.prop_recursive(3, 24, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::from),
            prop::collection::hash_map("[a-zA-Z_]{1,12}", inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// A protocol message of either subprotocol with random fields, a valid one, or garbage.
fn ws_frame() -> impl Strategy<Value = String> {
    let kinds = prop_oneof![
        Just("connection_init"),
        Just("ping"),
        Just("pong"),
        Just("subscribe"),
        Just("start"),
        Just("complete"),
        Just("stop"),
        Just("connection_terminate"),
        Just("next"),
        Just("nonsense"),
    ];
    let message = (kinds, json_value(), json_value())
        .prop_map(|(kind, id, payload)| json!({ "type": kind, "id": id, "payload": payload }).to_string());
    let subscribe = (json_value(), ".{0,60}").prop_map(|(id, query)| {
        json!({ "type": "subscribe", "id": id, "payload": { "query": query } }).to_string()
    });
    let truncated = (json_value(), any::<prop::sample::Index>()).prop_map(|(payload, at)| {
        let text = json!({ "type": "subscribe", "id": "1", "payload": payload }).to_string();
        let cut = at.index(text.len().max(1));
        text.char_indices()
            .map(|(i, _)| i)
            .take_while(|i| *i <= cut)
            .last()
            .map_or(text.clone(), |i| text[..i].to_owned())
    });
    prop_oneof![message, subscribe, truncated, ".{0,200}", json_value().prop_map(|v| v.to_string())]
}

/// A request body: random bytes, a random JSON value, or a request with fields of any type.
fn http_body() -> impl Strategy<Value = Vec<u8>> {
    let request = (json_value(), json_value(), json_value()).prop_map(|(query, variables, name)| {
        json!({ "query": query, "variables": variables, "operationName": name }).to_string().into_bytes()
    });
    let query = ".{0,200}".prop_map(|q| json!({ "query": q }).to_string().into_bytes());
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..300),
        json_value().prop_map(|v| v.to_string().into_bytes()),
        request,
        query,
        (1usize..400).prop_map(|depth| format!("{}{}", "[".repeat(depth), "]".repeat(depth)).into_bytes()),
    ]
}

/// Draws `CASES` values of `strategy`.
fn cases<S: Strategy>(strategy: S) -> Vec<S::Value> {
    let mut runner = TestRunner::new(Config::with_cases(CASES));
    (0..CASES).map(|_| strategy.new_tree(&mut runner).expect("a generated case").current()).collect()
}

async fn random_websocket_frames_are_answered_or_closed_cleanly(backend: Backend) {
    let app = spawn_app(backend).await;
    let alice = app.create_org().await.user("alice").await;
    let frames = cases((ws_frame(), any::<bool>(), any::<bool>()));
    for (frame, authenticate, legacy) in frames {
        let protocol = if legacy { Protocol::LegacyWs } else { Protocol::TransportWs };
        let mut ws = if authenticate {
            WsClient::connect_with(&app, protocol, bearer(&alice.token)).await
        } else {
            WsClient::open(&app, protocol).await
        };
        ws.send_text(&frame).await;
        // Answered (or ignored) and still open, or closed with a documented code.
        ws.send_json(json!({ "type": "ping" })).await;
        let closed = loop {
            match ws.next_control(Duration::from_secs(3)).await {
                Some(reply) if reply["type"] == "pong" => break None,
                Some(_) => continue,
                None => break Some(ws.expect_close(Duration::from_secs(3)).await),
            }
        };
        if let Some(closed) = closed {
            let code = closed.code.unwrap_or(0);
            assert!(DOCUMENTED_CLOSES.contains(&code), "closed with {closed:?} after {frame:.300}");
        }
        assert_healthy(&app, &frame).await;
    }
    WsClient::connect(&app, &alice).await.ping_pong().await;
}

async fn random_http_bodies_are_refused_cleanly(backend: Backend) {
    let app = spawn_app(backend).await;
    let alice = app.create_org().await.user("alice").await;
    let content_types = ["application/json", "application/json; charset=utf-8", "text/plain", ""];
    for (body, kind, authenticate) in cases((http_body(), 0..content_types.len(), any::<bool>())) {
        let mut request = app.http.post(app.url("/graphql")).body(body.clone());
        if !content_types[kind].is_empty() {
            request = request.header("Content-Type", content_types[kind]);
        }
        if authenticate {
            request = request.bearer_auth(&alice.token);
        }
        let response = request.send().await.expect("an answer to every body");
        let status = response.status().as_u16();
        let text = response.text().await.expect("a body");
        let shown = String::from_utf8_lossy(&body).chars().take(300).collect::<String>();
        assert!([200, 400, 401, 413, 415].contains(&status), "{status} for {shown}: {text}");
        let answer: Value = serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text}"));
        if status != 200 {
            let codes =
                answer["errors"].as_array().map(|e| e.iter().all(|e| e["extensions"]["code"].is_string()));
            assert_eq!(codes, Some(true), "a refusal carries coded errors: {text}");
        }
        assert_healthy(&app, &shown).await;
    }
}

async fn assert_healthy(app: &TestApp, case: &str) {
    let response = app.http.get(app.url("/healthz")).send().await;
    let status = response.map(|r| r.status().as_u16()).unwrap_or(0);
    assert_eq!(status, 200, "unhealthy after {case:.300}");
}

//! One subscription of a [`WsClient`](super::ws::WsClient): its frames in
//! order, with the assertions tests make on them (the next result, an error
//! code, nothing within a quiet period) and `complete`.

use std::time::Duration;

use futures_util::SinkExt;
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio::time::timeout;
use tokio_tungstenite::tungstenite::Message;

use super::WAIT;
use super::ws::{Protocol, Sink};

/// One subscription's frames (`next`/`data`, `error`, `complete`).
pub struct Subscription {
    pub id: String,
    rx: mpsc::UnboundedReceiver<Value>,
    sink: Sink,
    protocol: Protocol,
}

impl Subscription {
    pub(super) fn new(id: &str, rx: mpsc::UnboundedReceiver<Value>, sink: Sink, protocol: Protocol) -> Self {
        Subscription { id: id.to_owned(), rx, sink, protocol }
    }

    /// The next frame of this subscription; panics on timeout or close.
    pub async fn next_frame(&mut self, wait: Duration) -> Value {
        match timeout(wait, self.rx.recv()).await {
            Ok(Some(frame)) => frame,
            Ok(None) => panic!("connection closed while waiting on subscription {}", self.id),
            Err(_) => panic!("nothing arrived on subscription {} within {wait:?}", self.id),
        }
    }

    /// The `data` of the next result; panics on errors, `complete` or timeout.
    pub async fn next_data(&mut self) -> Value {
        let frame = self.next_frame(WAIT).await;
        match frame["type"].as_str() {
            Some("next" | "data") => {
                let errors = frame["payload"]["errors"].as_array();
                assert!(errors.is_none_or(|e| e.is_empty()), "subscription {} errored: {frame:#}", self.id);
                frame["payload"]["data"].clone()
            }
            _ => panic!("expected a result on subscription {}, got {frame:#}", self.id),
        }
    }

    /// The next result's root field, e.g. `next("messageAdded")`.
    pub async fn next(&mut self, field: &str) -> Value {
        self.next_data().await[field].clone()
    }

    /// The code of the error this subscription ended with, from an `error`
    /// frame or a result carrying `errors`.
    pub async fn next_error_code(&mut self) -> String {
        let frame = self.next_frame(WAIT).await;
        let errors = match frame["type"].as_str() {
            Some("error") => frame["payload"].clone(),
            Some("next" | "data") => frame["payload"]["errors"].clone(),
            _ => panic!("expected an error on subscription {}, got {frame:#}", self.id),
        };
        // graphql-transport-ws sends a list; legacy graphql-ws may send one object.
        let first = errors.as_array().and_then(|e| e.first().cloned()).unwrap_or(errors);
        first["extensions"]["code"]
            .as_str()
            .unwrap_or_else(|| panic!("error without extensions.code: {frame:#}"))
            .to_owned()
    }

    /// Asserts that no frame at all arrives within `wait` (the connection
    /// closing counts as a failure too).
    pub async fn assert_nothing(&mut self, wait: Duration) {
        match timeout(wait, self.rx.recv()).await {
            Err(_) => {}
            Ok(Some(frame)) => panic!("expected nothing on subscription {}, got {frame:#}", self.id),
            Ok(None) => panic!("connection closed while asserting quiet on subscription {}", self.id),
        }
    }

    /// Asserts that no result arrives within `wait`; a `complete` is allowed
    /// (the server may end a subscription whose room became unreadable).
    pub async fn assert_no_data(&mut self, wait: Duration) {
        let deadline = tokio::time::Instant::now() + wait;
        while let Ok(Some(frame)) = tokio::time::timeout_at(deadline, self.rx.recv()).await {
            assert_eq!(
                frame["type"], "complete",
                "expected no result on subscription {}, got {frame:#}",
                self.id
            );
        }
    }

    /// The next frame within `wait`: `Ok(Some)`, `Ok(None)` when nothing came, or `Err(())`
    /// once the connection has closed (its instance went away, say).
    pub async fn poll(&mut self, wait: Duration) -> Result<Option<Value>, ()> {
        match timeout(wait, self.rx.recv()).await {
            Ok(Some(frame)) => Ok(Some(frame)),
            Ok(None) => Err(()),
            Err(_) => Ok(None),
        }
    }

    /// Results until `wait` passes without a new one; errors fail the test.
    pub async fn drain(&mut self, field: &str, wait: Duration) -> Vec<Value> {
        let mut results = Vec::new();
        while let Ok(Some(frame)) = timeout(wait, self.rx.recv()).await {
            assert!(matches!(frame["type"].as_str(), Some("next" | "data")), "unexpected frame {frame:#}");
            results.push(frame["payload"]["data"][field].clone());
        }
        results
    }

    /// Stops the subscription (`complete`, or legacy `stop`).
    pub async fn complete(&self) {
        let kind = match self.protocol {
            Protocol::TransportWs => "complete",
            Protocol::LegacyWs => "stop",
        };
        let frame = json!({ "id": self.id, "type": kind }).to_string();
        let _ = self.sink.lock().await.send(Message::text(frame)).await;
    }

    /// Waits for a `roomUpdated` of `room_id` with one of `reasons`, skipping
    /// MEMBERS_CHANGED events (a membership change may also announce itself so).
    pub async fn next_room_update(&mut self, room_id: &str, reasons: &[&str]) -> Value {
        loop {
            let update = self.next("roomUpdated").await;
            if update["roomId"] == json!(room_id) && reasons.iter().any(|r| update["reason"] == json!(r)) {
                return update;
            }
            assert_eq!(
                update["reason"], "MEMBERS_CHANGED",
                "expected {reasons:?} for {room_id}, got {update:#}"
            );
        }
    }
}
